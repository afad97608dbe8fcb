//! Test harness: a real capgate process on loopback ports, a real fjall
//! store in a temp dir, and an in-process recording mock vendor.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use capgate::mock::MockVendor;
use serde_json::{json, Value};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const REAL_SECRET: &str = "sk_test_REAL_SECRET_abc123";

/// A running capgate process (killed on drop).
pub struct Capgate {
    child: Child,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    pub data_dir: PathBuf,
    pub config: PathBuf,
}

/// A recording mock vendor that expects `REAL_SECRET`.
pub fn mock() -> MockVendor {
    MockVendor::start("127.0.0.1:0".parse().unwrap(), Some(REAL_SECRET.to_string())).unwrap()
}

/// A config pointing every vendor kind under test at `mock`.
pub fn config_for(mock: &MockVendor, extra: &str) -> String {
    let up = format!("http://{}", mock.addr);
    format!(
        "[demo]\nenabled = false\n\
         [vendors.stripe]\nupstream = \"{up}\"\ncredential_env = \"CAPGATE_TEST_SECRET\"\n\
         [vendors.openai]\nupstream = \"{up}\"\ncredential_env = \"CAPGATE_TEST_SECRET\"\n\
         [vendors.anthropic]\nupstream = \"{up}\"\ncredential_env = \"CAPGATE_TEST_SECRET\"\n\
         [vendors.resend]\nupstream = \"{up}\"\ncredential_env = \"CAPGATE_TEST_SECRET\"\n\
         [vendors.twilio]\nupstream = \"{up}\"\ncredential_env = \"CAPGATE_TEST_SECRET\"\naccount_sid_env = \"CAPGATE_TEST_SID\"\n\
         [vendors.deadvendor]\nkind = \"stripe\"\nupstream = \"http://127.0.0.1:9\"\ncredential_env = \"CAPGATE_TEST_SECRET\"\n\
         {extra}"
    )
}

impl Capgate {
    /// Starts capgate with `config_text` on a data dir.
    pub fn start(config_text: &str, data_dir: &Path) -> Capgate {
        let config = data_dir.with_extension("toml");
        std::fs::write(&config, config_text).unwrap();
        Self::start_with(&config, data_dir, &[])
    }

    pub fn start_with(config: &Path, data_dir: &Path, extra_env: &[(&str, &str)]) -> Capgate {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_capgate"));
        cmd.args(["serve", "--proxy-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--workers", "2", "--config"])
            .arg(config)
            .arg("--data-dir")
            .arg(data_dir)
            .env("CAPGATE_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("CAPGATE_TEST_SECRET", REAL_SECRET)
            .env("CAPGATE_TEST_SID", "ACrealsid")
            .env("CAPGATE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn capgate");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let (mut proxy, mut admin) = (None, None);
        for line in lines.by_ref() {
            let line = line.expect("capgate stdout");
            let addr_after = |marker: &str| line.split(marker).nth(1).and_then(|r| r.split_whitespace().next()).and_then(|a| a.parse::<SocketAddr>().ok());
            if line.contains("proxy listening on") {
                proxy = addr_after("http://");
            } else if line.contains("admin API on") {
                admin = addr_after("http://");
            } else if line.contains("capgate: ready") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Capgate { child, proxy: proxy.expect("proxy addr"), admin: admin.expect("admin addr"), data_dir: data_dir.to_path_buf(), config: config.to_path_buf() }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the process (SIGKILL) and waits for it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    pub fn proxy_url(&self, path: &str) -> String {
        format!("http://{}{}", self.proxy, path)
    }

    /// Issues a key; returns (id, token).
    pub fn issue(&self, body: Value) -> (String, String) {
        let (status, v, _) = call("POST", &self.admin_url("/v1/keys"), Some(ADMIN_TOKEN), Some(body));
        assert_eq!(status, 201, "{v}");
        (v["id"].as_str().unwrap().to_string(), v["token"].as_str().unwrap().to_string())
    }

    pub fn issue_stripe(&self, cap: f64, label: &str) -> (String, String) {
        self.issue(json!({"vendor": "stripe", "daily_usd_cap": cap, "allowed_endpoints": ["POST /v1/payment_intents", "POST /v1/charges", "GET /v1/customers/*"], "expires_in": "1h", "label": label}))
    }

    /// A Stripe-style form charge through the proxy.
    pub fn charge(&self, token: &str, cents: u64) -> (u16, Value, Vec<(String, String)>) {
        form_call(&self.proxy_url("/stripe/v1/payment_intents"), token, &format!("amount={cents}&currency=usd&customer=cus_1"))
    }

    pub fn key(&self, id: &str) -> Value {
        let (s, v, _) = call("GET", &self.admin_url(&format!("/v1/keys/{id}")), Some(ADMIN_TOKEN), None);
        assert_eq!(s, 200, "{v}");
        v
    }

    pub fn audit(&self, query: &str) -> Vec<Value> {
        let (s, v, _) = call("GET", &self.admin_url(&format!("/v1/audit?{query}")), Some(ADMIN_TOKEN), None);
        assert_eq!(s, 200, "{v}");
        v["data"].as_array().unwrap().clone()
    }

    /// Polls the audit log until `ready` holds (a refusal's or settlement's
    /// event is written after its response), then returns the events; after
    /// 10 s it returns what is there for the caller's assertions to name.
    pub fn audit_until(&self, query: &str, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let events = self.audit(query);
            if ready(&events) || Instant::now() > deadline {
                return events;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every event queued before this call is in the log: audits
    /// a refusal of its own (an unknown key) and waits for it. The writer
    /// takes events in the order they were queued, so whatever an earlier
    /// answered call queued is in the log by then.
    pub fn audit_barrier(&self) {
        let (s, _, headers) = self.charge("vk_audit_barrier", 100);
        assert_eq!(s, 401);
        let rid = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("x-capgate-request-id")).map(|(_, v)| v.clone()).expect("request id");
        let seen = self.audit_until("decision=refused&limit=1000", |e| e.iter().any(|e| e["request_id"] == rid.as_str()));
        assert!(seen.iter().any(|e| e["request_id"] == rid.as_str()), "the barrier's own refusal {rid} never reached the audit log");
    }

    /// The events matching `query` once at least `n` are there.
    pub fn audit_at_least(&self, query: &str, n: usize) -> Vec<Value> {
        self.audit_until(query, |e| e.len() >= n)
    }
}

impl Drop for Capgate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(Duration::from_secs(20)).build()
}

fn finish(r: Result<ureq::Response, ureq::Error>) -> (u16, Value, Vec<(String, String)>) {
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = resp.status();
    let headers = resp.headers_names().into_iter().map(|n| { let v = resp.header(&n).unwrap_or("").to_string(); (n, v) }).collect();
    let text = resp.into_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)), headers)
}

/// A JSON call with an optional Bearer token.
pub fn call(method: &str, url: &str, bearer: Option<&str>, body: Option<Value>) -> (u16, Value, Vec<(String, String)>) {
    let mut req = agent().request(method, url);
    if let Some(t) = bearer {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    finish(match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    })
}

/// A form POST with a Bearer token (what the Stripe SDKs send).
pub fn form_call(url: &str, bearer: &str, form: &str) -> (u16, Value, Vec<(String, String)>) {
    finish(agent().post(url).set("Authorization", &format!("Bearer {bearer}")).set("Content-Type", "application/x-www-form-urlencoded").send_string(form))
}

/// A POST with extra headers.
pub fn form_call_with(url: &str, bearer: &str, form: &str, headers: &[(&str, &str)]) -> (u16, Value, Vec<(String, String)>) {
    let mut req = agent().post(url).set("Authorization", &format!("Bearer {bearer}")).set("Content-Type", "application/x-www-form-urlencoded");
    for (k, v) in headers {
        req = req.set(k, v);
    }
    finish(req.send_string(form))
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// Sends raw bytes and returns the raw answer (until close, or 3 s without
/// more bytes; the first may take 20 s on a loaded machine).
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if out.is_empty() {
                    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                }
                out.extend_from_slice(&buf[..n]);
                if out.windows(4).any(|w| w == b"\r\n\r\n") && String::from_utf8_lossy(&out).contains("connection: close") {
                    // read the rest of the small body
                    if let Ok(n) = s.read(&mut buf) { out.extend_from_slice(&buf[..n]); }
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}
