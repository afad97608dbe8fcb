//! The official Python SDKs from PyPI (stripe, openai, anthropic, twilio,
//! resend) driven against a real capgate process and the recording mock
//! vendor. Each SDK is changed only in its base URL and API key (the vault
//! key). For every vendor this proves that:
//! - the SDK's call succeeds and parses the answer;
//! - the vendor sees the real credential and never the vault key;
//! - the call is priced as expected in the audit log and the key's spend;
//! - capgate's refusals (cap 429, scope 403, revoked 401) surface as the
//!   SDK's own typed errors, and the SDK does not retry them.
//!
//! The Python side lives in `tests/sdk/check_<vendor>.py`; each prints one
//! JSON line with what it observed. The SDKs must be installed first:
//! `python3 -m pip install -r tests/sdk/requirements.txt` (a missing
//! interpreter or SDK fails the test, it is never skipped).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use serde_json::{json, Value};

const INSTALL_HINT: &str = "python3 -m pip install -r tests/sdk/requirements.txt";
/// How long one script may run (SDK imports are slow on a loaded machine).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

/// capgate, the mock vendor and two keys: `main` (for the successful calls,
/// revoked by the script) and `capped` (cap below one call's price).
struct Setup {
    mock: MockVendor,
    cg: Capgate,
    _dir: tempfile::TempDir,
    main_id: String,
    main_token: String,
    cap_id: String,
    cap_token: String,
}

fn setup(vendor: &str, allowed: &[&str], cap_usd: f64, tiny_cap_usd: f64) -> Setup {
    let mock = mock();
    let dir = tempdir();
    let cg = Capgate::start(&config_for(&mock, ""), &dir.path().join("data"));
    let (main_id, main_token) =
        cg.issue(json!({"vendor": vendor, "daily_usd_cap": cap_usd, "allowed_endpoints": allowed, "expires_in": "1h", "label": format!("sdk/{vendor}/main")}));
    let (cap_id, cap_token) =
        cg.issue(json!({"vendor": vendor, "daily_usd_cap": tiny_cap_usd, "allowed_endpoints": allowed, "expires_in": "1h", "label": format!("sdk/{vendor}/capped")}));
    Setup { mock, cg, _dir: dir, main_id, main_token, cap_id, cap_token }
}

/// Runs `tests/sdk/check_<vendor>.py` and returns its JSON line.
fn run_script(vendor: &str, s: &Setup) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("sdk").join(format!("check_{vendor}.py"));
    assert!(script.is_file(), "missing {}", script.display());
    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .env("CAPGATE_PROXY", format!("http://{}", s.cg.proxy))
        .env("CAPGATE_ADMIN", format!("http://{}", s.cg.admin))
        .env("CAPGATE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("CAPGATE_TOKEN", &s.main_token)
        .env("CAPGATE_KEY_ID", &s.main_id)
        .env("CAPGATE_CAP_TOKEN", &s.cap_token)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Loopback calls must not go through a proxy, and the SDKs must not pick
    // up real credentials or base URLs from the environment.
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_BASE_URL",
        "RESEND_API_KEY",
        "RESEND_API_URL",
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_EDGE",
        "TWILIO_REGION",
        "STRIPE_API_KEY",
    ] {
        cmd.env_remove(var);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => panic!("cannot run python3 ({e}). The SDK tests need Python 3 and the vendor SDKs: install Python 3, then run `{INSTALL_HINT}`"),
    };
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if started.elapsed() > SCRIPT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = out_reader.join().unwrap();
    let err = err_reader.join().unwrap();
    let Some(status) = status else {
        panic!("{} timed out after {SCRIPT_TIMEOUT:?}\nstdout:\n{out}\nstderr:\n{err}", script.display());
    };
    if err.contains("CAPGATE_SDK_MISSING") || err.contains("ModuleNotFoundError") || err.contains("ImportError") {
        panic!("the {vendor} Python SDK is missing or at the wrong version: run `{INSTALL_HINT}`\nstderr of {}:\n{err}", script.display());
    }
    assert!(status.success(), "{} failed ({status})\nstdout:\n{out}\nstderr:\n{err}", script.display());
    let line = out.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_else(|| panic!("{} printed nothing\nstderr:\n{err}", script.display()));
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{} printed a line that is not JSON ({e}): {line}\nstderr:\n{err}", script.display()));
    eprintln!("{vendor} SDK report: {v}");
    v
}

/// Asserts the SDK raised `class` (its own typed error) for HTTP `status`.
fn assert_refused_as(out: &Value, step: &str, class: &str, status: u16) {
    let r = &out[step];
    assert_eq!(r["class"], class, "{step}: expected the SDK to raise {class} (HTTP {status}); observed {r}\nfull report: {out}");
    assert_eq!(r["status"], status, "{step}: status as the SDK saw it: {r}");
}

fn recorded_text(r: &capgate::mock::Recorded) -> String {
    let headers: String = r.headers.iter().map(|(n, v)| format!("{n}: {}\n", String::from_utf8_lossy(v))).collect();
    format!("{} {}\n{headers}\n{}", r.method, r.target, String::from_utf8_lossy(&r.body))
}

/// Every request the vendor saw carries exactly one `auth_header` equal to
/// `auth_value`, none of the `absent` headers, and no vault key anywhere
/// (path, headers, body, or inside a Basic credential).
fn assert_real_credential_only(s: &Setup, auth_header: &str, auth_value: &str, absent: &[&str]) {
    let recorded = s.mock.recorded();
    assert!(!recorded.is_empty(), "nothing reached the mock vendor");
    for r in &recorded {
        let text = recorded_text(r);
        for token in [&s.main_token, &s.cap_token] {
            assert!(!text.contains(token.as_str()), "vault key leaked upstream:\n{text}");
        }
        for (name, value) in &r.headers {
            let v = String::from_utf8_lossy(value);
            if let Some(b64) = v.strip_prefix("Basic ") {
                let decoded = base64::engine::general_purpose::STANDARD.decode(b64.trim()).unwrap_or_default();
                let decoded = String::from_utf8_lossy(&decoded);
                assert!(!decoded.contains("vk_"), "vault key leaked upstream inside a Basic credential ({name}): {decoded}");
            }
        }
        let auth: Vec<_> = r.headers.iter().filter(|(n, _)| n == auth_header).collect();
        assert_eq!(auth.len(), 1, "exactly one {auth_header} header upstream:\n{text}");
        assert_eq!(String::from_utf8_lossy(&auth[0].1), auth_value, "the real credential upstream:\n{text}");
        for name in absent {
            assert!(r.header(name).is_none(), "{name} must not reach the vendor:\n{text}");
        }
    }
}

fn of_kind<'a>(events: &'a [Value], kind: &str, decision: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind && e["decision"] == decision).collect()
}

fn refused_with<'a>(events: &'a [Value], code: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["decision"] == "refused" && e["code"] == code).collect()
}

/// The main key's audit trail: `allowed` forwarded calls (plus `settles`
/// settlement events), one 403 scope refusal and one 401 after revocation.
fn main_key_events(s: &Setup, allowed: usize, settles: usize) -> Vec<Value> {
    let query = format!("key_id={}", s.main_id);
    s.cg.audit_until(&query, |e| {
        of_kind(e, "call", "allowed").len() >= allowed
            && of_kind(e, "settle", "allowed").len() >= settles
            && refused_with(e, "endpoint_not_allowed").len() == 1
            && refused_with(e, "key_revoked").len() == 1
    });
    // Anything more (an SDK retry) would be in the log by the barrier.
    s.cg.audit_barrier();
    let events = s.cg.audit(&query);
    let dump = serde_json::to_string_pretty(&events).unwrap();
    assert_eq!(of_kind(&events, "call", "allowed").len(), allowed, "forwarded calls in the audit log:\n{dump}");
    assert_eq!(of_kind(&events, "settle", "allowed").len(), settles, "settlements in the audit log:\n{dump}");
    let scope = refused_with(&events, "endpoint_not_allowed");
    assert_eq!(scope.len(), 1, "one scope refusal (no SDK retry):\n{dump}");
    assert_eq!(scope[0]["status"], 403);
    let revoked = refused_with(&events, "key_revoked");
    assert_eq!(revoked.len(), 1, "one refusal after revocation (no SDK retry):\n{dump}");
    assert_eq!(revoked[0]["status"], 401);
    let refused = events.iter().filter(|e| e["decision"] == "refused").count();
    assert_eq!(refused, 2, "no other refusal was audited for the main key:\n{dump}");
    events
}

/// The capped key saw exactly one refused call (the SDK did not retry the
/// 429), nothing was forwarded on it, and nothing was spent.
fn assert_cap_refused_once(s: &Setup) {
    let query = format!("key_id={}", s.cap_id);
    // The script has exited, so any SDK retry has happened by now, and the
    // barrier waits until its event is written too.
    s.cg.audit_barrier();
    let events = s.cg.audit(&query);
    let dump = serde_json::to_string_pretty(&events).unwrap();
    let refused: Vec<_> = events.iter().filter(|e| e["decision"] == "refused").collect();
    assert_eq!(refused.len(), 1, "exactly one refusal on the capped key (the SDK must not retry a cap 429):\n{dump}");
    let e = refused[0];
    assert_eq!(e["status"], 429, "{dump}");
    assert!(e["code"].as_str().unwrap_or("").contains("cap"), "cap refusal code: {dump}");
    assert_eq!(e["settled_micros"], 0, "{dump}");
    assert!(events.iter().all(|e| e["decision"] == "refused"), "nothing was forwarded on the capped key:\n{dump}");
    let k = s.cg.key(&s.cap_id);
    assert_eq!(k["spent_today_usd"], 0.0, "a refused call costs nothing: {k}");
}

fn assert_spent(s: &Setup, micros: u64) {
    let k = s.cg.key(&s.main_id);
    let spent = k["spent_today_usd"].as_f64().unwrap();
    assert!((spent - micros as f64 / 1e6).abs() < 1e-9, "spent_today_usd: expected {} USD, got {k}", micros as f64 / 1e6);
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str().unwrap_or_else(|| panic!("{what}: expected a string, got {v}"))
}

#[test]
fn stripe_python_sdk() {
    let s = setup("stripe", &["POST /v1/payment_intents"], 100.0, 10.0);
    let out = run_script("stripe", &s);

    // Both styles (module globals, StripeClient) parse the answer.
    let a = &out["module_create"];
    assert!(str_of(&a["id"], "id").starts_with("pi_mock"), "{out}");
    assert_eq!((a["class"].as_str(), a["object"].as_str(), a["amount"].as_u64(), a["currency"].as_str()), (Some("PaymentIntent"), Some("payment_intent"), Some(1999), Some("usd")), "{out}");
    let b = &out["client_create"];
    assert!(str_of(&b["id"], "id").starts_with("pi_mock"), "{out}");
    assert_eq!((b["class"].as_str(), b["amount"].as_u64()), (Some("PaymentIntent"), Some(2500)), "{out}");

    // Refusals as stripe-python's own error classes, with capgate's code and message.
    assert_refused_as(&out, "scope", "PermissionError", 403);
    assert_eq!(out["scope"]["error_code"], "endpoint_not_allowed", "{out}");
    assert_refused_as(&out, "cap", "RateLimitError", 429);
    assert!(str_of(&out["cap"]["user_message"], "cap user_message").contains("cap"), "the 429 message names the cap: {out}");
    assert_refused_as(&out, "revoked", "AuthenticationError", 401);
    assert_eq!(out["revoked"]["error_code"], "key_revoked", "{out}");

    // Upstream: two form posts with the real secret, never the vault key.
    let rec = s.mock.recorded();
    assert_eq!(rec.len(), 2, "only the two allowed calls reached the vendor");
    for (r, amount) in rec.iter().zip([1999, 2500]) {
        assert_eq!((r.method.as_str(), r.target.as_str()), ("POST", "/v1/payment_intents"));
        let body = String::from_utf8_lossy(&r.body);
        assert!(body.contains(&format!("amount={amount}")) && body.contains("currency=usd"), "{body}");
        assert!(r.header("x-stripe-client-user-agent").is_some(), "the request came from the Stripe SDK:\n{}", recorded_text(r));
    }
    assert_real_credential_only(&s, "authorization", &format!("Bearer {REAL_SECRET}"), &["x-api-key"]);

    // Priced from the amount: 19.99 USD and 25.00 USD.
    let events = main_key_events(&s, 2, 0);
    let calls = of_kind(&events, "call", "allowed");
    for (ev, (micros, id)) in calls.iter().zip([(19_990_000u64, &a["id"]), (25_000_000, &b["id"])]) {
        assert_eq!((ev["reserved_micros"].as_u64(), ev["settled_micros"].as_u64()), (Some(micros), Some(micros)), "{ev}");
        assert_eq!(ev["status"], 200);
        assert_eq!(&ev["object_id"], id, "{ev}");
    }
    assert_spent(&s, 44_990_000);
    assert_cap_refused_once(&s);
}

#[test]
fn openai_python_sdk() {
    // Cap key: 20 micro-dollars, below the worst-case reserve of any call
    // with max_tokens=50 (50 x $0.60/M = 30 micro-dollars of output alone).
    let s = setup("openai", &["POST /v1/chat/completions"], 5.0, 0.00002);
    let out = run_script("openai", &s);

    let chat = &out["chat"];
    assert!(str_of(&chat["id"], "id").starts_with("chatcmpl-mock"), "{out}");
    assert_eq!((chat["class"].as_str(), chat["content"].as_str()), (Some("ChatCompletion"), Some("Hello")), "{out}");
    assert_eq!(chat["usage"], json!({"prompt_tokens": 12, "completion_tokens": 2}), "{out}");
    let stream = &out["stream"];
    assert_eq!((stream["class"].as_str(), stream["text"].as_str()), (Some("ChatCompletionChunk"), Some("Hello")), "{out}");
    assert_eq!(stream["usage"], json!({"prompt_tokens": 12, "completion_tokens": 2}), "the SDK sees the usage chunk capgate asked for: {out}");
    assert!(str_of(&stream["ids"][0], "stream id").starts_with("chatcmpl-mock"), "{out}");

    assert_refused_as(&out, "scope", "PermissionDeniedError", 403);
    assert_refused_as(&out, "cap", "RateLimitError", 429);
    assert_refused_as(&out, "revoked", "AuthenticationError", 401);
    // openai-python takes its message only from an `error` object; with
    // capgate's flat body (where `error` is a string) the exception text is
    // just "Error code: 429" and the reason survives only in `body`.
    for (step, reason) in [("cap", "daily_cap_exceeded"), ("scope", "endpoint_not_allowed"), ("revoked", "key_revoked")] {
        let seen = format!("{} {}", out[step]["message"], out[step]["body"]);
        assert!(seen.contains(reason), "{step}: the SDK error carries capgate's reason {reason}: {out}");
    }

    let rec = s.mock.recorded();
    assert_eq!(rec.len(), 2, "only the two allowed calls reached the vendor");
    for r in &rec {
        assert_eq!((r.method.as_str(), r.target.as_str()), ("POST", "/v1/chat/completions"));
    }
    let plain: Value = serde_json::from_slice(&rec[0].body).unwrap();
    assert_eq!((plain["model"].as_str(), plain["max_tokens"].as_u64()), (Some("gpt-4o-mini"), Some(50)));
    let streamed: Value = serde_json::from_slice(&rec[1].body).unwrap();
    assert_eq!(streamed["stream"], true);
    assert_eq!(streamed["stream_options"]["include_usage"], true, "capgate asked for usage on the SDK's behalf");
    assert_real_credential_only(&s, "authorization", &format!("Bearer {REAL_SECRET}"), &["x-api-key"]);

    // Reserved as a worst case, settled from usage: 12 x $0.15/M + 2 x $0.60/M
    // = 3 micro-dollars for each call.
    let events = main_key_events(&s, 2, 2);
    for settle in of_kind(&events, "settle", "allowed") {
        assert_eq!(settle["settled_micros"], 3, "{settle}");
        let reserved = settle["reserved_micros"].as_u64().unwrap();
        assert!(reserved >= 30 + 3, "the reserve covers max_tokens and the body: {settle}");
    }
    for call in of_kind(&events, "call", "allowed") {
        assert!(call["reserved_micros"].as_u64().unwrap() >= 33, "{call}");
    }
    assert_eq!(of_kind(&events, "call", "allowed")[0]["object_id"], chat["id"]);
    assert_spent(&s, 6);
    assert_cap_refused_once(&s);
}

#[test]
fn anthropic_python_sdk() {
    // Cap key: $0.001, below the reserve of max_tokens=100 at $15/M output.
    let s = setup("anthropic", &["POST /v1/messages"], 5.0, 0.001);
    let out = run_script("anthropic", &s);

    let create = &out["create"];
    assert!(str_of(&create["id"], "id").starts_with("msg_mock"), "{out}");
    assert_eq!((create["class"].as_str(), create["text"].as_str(), create["stop_reason"].as_str()), (Some("Message"), Some("Hello"), Some("end_turn")), "{out}");
    assert_eq!(create["usage"], json!({"input_tokens": 20, "output_tokens": 5}), "{out}");
    let stream = &out["stream"];
    assert!(str_of(&stream["id"], "stream id").starts_with("msg_mock"), "{out}");
    assert_eq!((stream["text"].as_str(), stream["final_text"].as_str(), stream["stop_reason"].as_str()), (Some("Hello"), Some("Hello"), Some("end_turn")), "{out}");
    assert_eq!(stream["usage"], json!({"input_tokens": 20, "output_tokens": 5}), "{out}");
    let raw = &out["raw_stream"];
    assert_eq!(raw["types"][0], "message_start", "{out}");
    assert_eq!(raw["types"].as_array().unwrap().last().unwrap(), "message_stop", "{out}");

    assert_refused_as(&out, "scope", "PermissionDeniedError", 403);
    assert_refused_as(&out, "cap", "RateLimitError", 429);
    assert!(str_of(&out["cap"]["message"], "cap message").contains("daily cap"), "the 429 message carries capgate's: {out}");
    assert_refused_as(&out, "revoked", "AuthenticationError", 401);

    let rec = s.mock.recorded();
    assert_eq!(rec.len(), 3, "only the three allowed calls reached the vendor");
    for r in &rec {
        assert_eq!((r.method.as_str(), r.target.as_str()), ("POST", "/v1/messages"));
        assert!(r.header("anthropic-version").is_some(), "SDK headers pass through:\n{}", recorded_text(r));
    }
    assert_real_credential_only(&s, "x-api-key", REAL_SECRET, &["authorization"]);

    // Settled from usage: 20 x $3/M + 5 x $15/M = 135 micro-dollars per call.
    let events = main_key_events(&s, 3, 3);
    for settle in of_kind(&events, "settle", "allowed") {
        assert_eq!(settle["settled_micros"], 135, "{settle}");
        assert!(settle["reserved_micros"].as_u64().unwrap() > 1_500, "reserve covers max_tokens=100: {settle}");
    }
    assert_eq!(of_kind(&events, "call", "allowed")[0]["object_id"], create["id"]);
    assert_spent(&s, 405);
    assert_cap_refused_once(&s);
}

#[test]
fn twilio_python_sdk() {
    // Cap key: $0.005, below one segment to +1 ($0.0079).
    let s = setup("twilio", &["POST /2010-04-01/Accounts/*/Messages.json"], 5.0, 0.005);
    let out = run_script("twilio", &s);

    let m = &out["create"];
    assert!(str_of(&m["sid"], "sid").starts_with("SMmock"), "{out}");
    assert_eq!((m["class"].as_str(), m["status"].as_str(), m["to"].as_str(), m["from"].as_str(), m["body"].as_str()), (Some("MessageInstance"), Some("queued"), Some("+15551234567"), Some("+15550000000"), Some("hello")), "{out}");
    assert!(m["date_created"].is_string(), "dates parse: {out}");

    assert_refused_as(&out, "scope", "TwilioRestException", 403);
    assert_refused_as(&out, "cap", "TwilioRestException", 429);
    assert!(str_of(&out["cap"]["msg"], "cap msg").contains("daily cap"), "the 429 message carries capgate's: {out}");
    assert_refused_as(&out, "revoked", "TwilioRestException", 401);
    assert!(str_of(&out["revoked"]["msg"], "revoked msg").contains("revoked"), "{out}");

    // The real account SID in the path, Basic auth with the real secret.
    let rec = s.mock.recorded();
    assert_eq!(rec.len(), 1, "only the allowed call reached the vendor");
    assert_eq!((rec[0].method.as_str(), rec[0].target.as_str()), ("POST", "/2010-04-01/Accounts/ACrealsid/Messages.json"));
    let form: Vec<(String, String)> = form_urlencoded::parse(&rec[0].body).into_owned().collect();
    for (k, v) in [("To", "+15551234567"), ("From", "+15550000000"), ("Body", "hello")] {
        assert!(form.contains(&(k.to_string(), v.to_string())), "{k}={v} in {form:?}");
    }
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("ACrealsid:{REAL_SECRET}"));
    assert_real_credential_only(&s, "authorization", &format!("Basic {basic}"), &["x-api-key"]);
    assert!(!recorded_text(&rec[0]).contains("ACfake0000"), "the agent's SID is replaced:\n{}", recorded_text(&rec[0]));

    // One GSM-7 segment to +1: $0.0079.
    let events = main_key_events(&s, 1, 0);
    let call = of_kind(&events, "call", "allowed")[0];
    assert_eq!((call["reserved_micros"].as_u64(), call["settled_micros"].as_u64()), (Some(7_900), Some(7_900)), "{call}");
    assert_eq!(call["object_id"], m["sid"], "{call}");
    assert_spent(&s, 7_900);
    assert_cap_refused_once(&s);
}

#[test]
fn resend_python_sdk() {
    // Cap key: $0.001, below two recipients at $0.0009.
    let s = setup("resend", &["POST /emails"], 5.0, 0.001);
    let out = run_script("resend", &s);

    assert!(str_of(&out["send"]["id"], "id").starts_with("email_mock"), "{out}");

    // resend-python maps errors by the body's `name`; capgate's flat body has
    // none, so the SDK raises its base class ResendError with the status.
    for (step, status) in [("scope", 403), ("cap", 429), ("revoked", 401)] {
        let r = &out[step];
        assert_eq!(r["is_resend_error"], true, "{step}: expected a ResendError: {out}");
        assert!(r["mro"].as_array().unwrap().iter().any(|c| c == "ResendError"), "{step}: {out}");
        assert_eq!(r["status"], status, "{step}: {out}");
    }
    assert!(str_of(&out["cap"]["message"], "cap message").contains("daily cap"), "the 429 message carries capgate's: {out}");

    let rec = s.mock.recorded();
    assert_eq!(rec.len(), 1, "only the allowed call reached the vendor");
    assert_eq!((rec[0].method.as_str(), rec[0].target.as_str()), ("POST", "/emails"));
    let sent: Value = serde_json::from_slice(&rec[0].body).unwrap();
    assert_eq!(sent["to"], json!(["b@example.com", "c@example.com"]));
    assert_real_credential_only(&s, "authorization", &format!("Bearer {REAL_SECRET}"), &["x-api-key"]);

    // Two recipients at $0.0009 each.
    let events = main_key_events(&s, 1, 0);
    let call = of_kind(&events, "call", "allowed")[0];
    assert_eq!((call["reserved_micros"].as_u64(), call["settled_micros"].as_u64()), (Some(1_800), Some(1_800)), "{call}");
    assert_eq!(call["object_id"], out["send"]["id"], "{call}");
    assert_spent(&s, 1_800);
    assert_cap_refused_once(&s);
}
