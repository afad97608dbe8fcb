//! The capacity-planning harness behind `capgate bench`. It starts a fast
//! mock vendor and capgate (or targets a running capgate with `--target`),
//! issues vault keys across tenants, drives keep-alive load from a
//! thread-per-core generator, and reports throughput, latency percentiles,
//! refusals by status, errors, and the proxy's CPU seconds and peak RSS,
//! side by side with the same load sent straight to the mock (the floor)
//! and through nginx as a plain reverse proxy (when nginx is installed).

pub mod load;
pub mod pacer;

/// Most connections a run drives (the pacer numbers a thread's connections
/// in 16 bits).
pub const MAX_CONNECTIONS: usize = u16::MAX as usize + 1;
/// Highest `--rate`, requests per second.
pub const MAX_RATE: f64 = 10_000_000.0;
pub mod procs;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use load::{key_cdf, Kind, Outcome, Workload};

/// Options of `capgate bench`.
#[derive(Debug, Clone)]
pub struct BenchArgs {
    /// Target a running capgate (proxy address) instead of starting one.
    pub target: Option<SocketAddr>,
    /// Admin address of the targeted capgate.
    pub target_admin: Option<SocketAddr>,
    /// Vault keys to issue.
    pub keys: usize,
    /// Tenants the keys are spread over (labels `tenant-N/...`).
    pub tenants: usize,
    /// Keep-alive connections.
    pub connections: usize,
    /// Measured duration.
    pub duration: Duration,
    /// Zipf exponent for key choice (0 = uniform).
    pub zipf: f64,
    /// Mix weights: charges, gets, llm, refused.
    pub mix: [u32; 4],
    /// Pace to this many requests per second in total (closed loop otherwise).
    pub rate: Option<f64>,
    /// capgate workers (0 = all cores).
    pub workers: usize,
    /// Pin the proxy to core 0 and the mock and generator to core 1.
    pub pin: bool,
    /// Audit durability for the started capgate: "sync" or "interval".
    pub durability: String,
    /// monoio driver for the started capgate.
    pub driver: String,
    /// Skip the nginx comparison.
    pub no_nginx: bool,
    /// Generator threads (0 = all cores not given to the proxy).
    pub generator_threads: usize,
    /// Daily cap per key, USD.
    pub cap_usd: f64,
    /// Rounds of (direct, nginx, capgate); nginx and capgate swap order
    /// every round, and the ratios are the medians over the rounds.
    pub rounds: usize,
}

/// One target's figures.
#[derive(Debug, Clone)]
pub struct Row {
    /// Target name.
    pub name: String,
    /// Requests per second.
    pub rps: f64,
    /// Latency percentiles, µs.
    pub p50: u64,
    /// p90.
    pub p90: u64,
    /// p99.
    pub p99: u64,
    /// p99.9.
    pub p999: u64,
    /// Answers by status.
    pub statuses: Vec<(u16, u64)>,
    /// Transport errors.
    pub errors: u64,
    /// Proxy CPU seconds during the run (None for direct).
    pub proxy_cpu_secs: Option<f64>,
    /// Proxy peak RSS, KiB.
    pub proxy_peak_rss_kib: Option<u64>,
    /// Generator CPU seconds.
    pub generator_cpu_secs: f64,
    /// Generator saturated its cores (its figures are a floor, not the proxy's limit).
    pub generator_saturated: bool,
    /// Paced sends that left more than one interval behind their slot.
    pub late_sends: u64,
    /// The proxy's CPU per completed request in the measured window, µs,
    /// by thread group: (group, user, system), largest first.
    pub cpu_us_per_request: Vec<(String, f64, f64)>,
}

impl Row {
    fn from(name: &str, o: &Outcome, proxy_cpu: Option<f64>, rss: Option<u64>, gen_cores: usize, cpu_us_per_request: Vec<(String, f64, f64)>) -> Row {
        let secs = o.elapsed.as_secs_f64().max(1e-9);
        Row {
            name: name.into(),
            rps: o.completed as f64 / secs,
            p50: o.latency.value_at_quantile(0.50),
            p90: o.latency.value_at_quantile(0.90),
            p99: o.latency.value_at_quantile(0.99),
            p999: o.latency.value_at_quantile(0.999),
            statuses: o.statuses.iter().map(|(s, n)| (*s, *n)).collect(),
            errors: o.errors,
            proxy_cpu_secs: proxy_cpu,
            proxy_peak_rss_kib: rss,
            generator_cpu_secs: o.generator_cpu_secs,
            generator_saturated: o.generator_cpu_secs / secs > 0.9 * gen_cores as f64,
            late_sends: o.late_sends,
            cpu_us_per_request,
        }
    }

    fn json(&self) -> Value {
        json!({
            "target": self.name, "rps": self.rps, "p50_us": self.p50, "p90_us": self.p90, "p99_us": self.p99, "p999_us": self.p999,
            "statuses": self.statuses.iter().map(|(s, n)| (s.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "errors": self.errors, "proxy_cpu_secs": self.proxy_cpu_secs, "proxy_peak_rss_kib": self.proxy_peak_rss_kib,
            "generator_cpu_secs": self.generator_cpu_secs, "generator_saturated": self.generator_saturated,
            "late_sends": self.late_sends,
            "cpu_us_per_request": self.cpu_us_per_request.iter().map(|(g, u, s)| (g.clone(), json!({"user": u, "system": s}))).collect::<serde_json::Map<_, _>>(),
        })
    }
}

const MOCK_SECRET: &str = "sk_bench_mock_secret";
const DEFAULT_ADMIN_TOKEN: &str = "bench-admin-token-0123456789";

/// The admin token: `CAPGATE_ADMIN_TOKEN` (for `--target`), else the one
/// the harness gives the capgate it starts.
fn admin_token() -> String {
    std::env::var("CAPGATE_ADMIN_TOKEN").unwrap_or_else(|_| DEFAULT_ADMIN_TOKEN.to_string())
}

fn exe() -> Result<PathBuf, String> {
    std::env::current_exe().map_err(|e| format!("cannot find the capgate binary: {e}"))
}

fn wait_ready(child: &mut Child, marker: &str) -> Result<Vec<String>, String> {
    let out = child.stdout.take().ok_or("no stdout")?;
    let mut lines = Vec::new();
    for line in BufReader::new(out).lines() {
        let line = line.map_err(|e| e.to_string())?;
        let done = line.contains(marker);
        lines.push(line);
        if done {
            return Ok(lines);
        }
    }
    Err(format!("child exited before {marker:?}: {lines:?}"))
}

fn addr_in(lines: &[String], marker: &str) -> Option<SocketAddr> {
    lines.iter().find(|l| l.contains(marker))?.split("http://").nth(1)?.split_whitespace().next()?.parse().ok()
}

fn start_mock(pin: Option<&str>, workers: usize) -> Result<(Child, SocketAddr), String> {
    let mut child = procs::pinned(&exe()?.to_string_lossy(), pin)
        .args(["mock-vendor", "--listen", "127.0.0.1:0", "--workers", &workers.to_string(), "--credential", MOCK_SECRET])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the mock vendor: {e}"))?;
    let lines = wait_ready(&mut child, "mock vendor on")?;
    let addr = addr_in(&lines, "mock vendor on").ok_or("mock address")?;
    Ok((child, addr))
}

fn start_capgate(args: &BenchArgs, mock: SocketAddr, dir: &Path, pin: Option<&str>) -> Result<(Child, SocketAddr, SocketAddr), String> {
    let config = dir.join("bench.toml");
    let up = format!("http://{mock}");
    let durability = if args.durability == "interval" { "durability = \"interval\"\ninterval_ms = 50\n" } else { "durability = \"sync\"\n" };
    std::fs::write(
        &config,
        format!(
            "[proxy]\ndriver = \"{}\"\n[storage]\n{durability}[demo]\nenabled = false\n\
             [vendors.stripe]\nupstream = \"{up}\"\ncredential_env = \"BENCH_MOCK_SECRET\"\n\
             [vendors.openai]\nupstream = \"{up}\"\ncredential_env = \"BENCH_MOCK_SECRET\"\n",
            args.driver
        ),
    )
    .map_err(|e| e.to_string())?;
    let mut child = procs::pinned(&exe()?.to_string_lossy(), pin)
        .args(["serve", "--proxy-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--workers", &args.workers.to_string(), "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("CAPGATE_ADMIN_TOKEN", admin_token())
        .env("BENCH_MOCK_SECRET", MOCK_SECRET)
        .env("CAPGATE_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start capgate: {e}"))?;
    let lines = wait_ready(&mut child, "capgate: ready")?;
    let proxy = addr_in(&lines, "proxy listening on").ok_or("proxy address")?;
    let admin = addr_in(&lines, "admin API on").ok_or("admin address")?;
    Ok((child, proxy, admin))
}

fn nginx_config(listen: u16, mock: SocketAddr, workers: usize, prefix: &Path) -> String {
    let template = include_str!("../../ops/bench/nginx.conf");
    template
        .replace("{{WORKERS}}", &workers.to_string())
        .replace("{{LISTEN}}", &listen.to_string())
        .replace("{{UPSTREAM}}", &mock.to_string())
        .replace("{{SECRET}}", MOCK_SECRET)
        .replace("{{PREFIX}}", &prefix.to_string_lossy())
}

fn start_nginx(mock: SocketAddr, workers: usize, dir: &Path, pin: Option<&str>) -> Result<Option<(Child, SocketAddr)>, String> {
    let Some(nginx) = ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"].into_iter().find(|p| Path::new(p).exists()) else {
        return Ok(None);
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    let prefix = dir.join("nginx");
    std::fs::create_dir_all(prefix.join("logs")).map_err(|e| e.to_string())?;
    let conf = prefix.join("nginx.conf");
    std::fs::write(&conf, nginx_config(port, mock, workers, &prefix)).map_err(|e| e.to_string())?;
    let child = procs::pinned(nginx, pin)
        .args(["-p"])
        .arg(&prefix)
        .arg("-c")
        .arg(&conf)
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start nginx: {e}"))?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().map_err(|e| format!("{e}"))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            return Err("nginx did not start listening".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Some((child, addr)))
}

fn admin_post(admin: SocketAddr, path: &str, body: &Value) -> Result<Value, String> {
    let resp = ureq_like_post(admin, path, &serde_json::to_vec(body).map_err(|e| e.to_string())?)?;
    serde_json::from_slice(&resp).map_err(|e| format!("admin answer: {e}"))
}

/// A minimal blocking HTTP/1.1 POST for the admin API (control plane only).
fn ureq_like_post(addr: SocketAddr, path: &str, body: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    let head = format!("POST {path} HTTP/1.1\r\nhost: admin\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", admin_token(), body.len());
    s.write_all(head.as_bytes()).and_then(|_| s.write_all(body)).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| e.to_string())?;
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").ok_or("bad admin answer")?;
    let status = String::from_utf8_lossy(out.get(9..12).unwrap_or_default()).into_owned();
    if !status.starts_with('2') {
        return Err(format!("admin {path} answered {status}: {}", String::from_utf8_lossy(&out[split + 4..])));
    }
    Ok(out[split + 4..].to_vec())
}

fn admin_get(addr: SocketAddr, path: &str) -> Result<Value, String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: admin\r\nauthorization: Bearer {}\r\nconnection: close\r\n\r\n", admin_token()).as_bytes()).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| e.to_string())?;
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").ok_or("bad admin answer")?;
    serde_json::from_slice(&out[split + 4..]).map_err(|e| e.to_string())
}

/// Issues keys in batches; returns (stripe tokens, llm tokens, all ids).
/// Tokens for Stripe-vendor keys, tokens for LLM keys, and every key id.
type IssuedKeys = (Vec<String>, Vec<String>, Vec<String>);

fn issue_keys(admin: SocketAddr, args: &BenchArgs) -> Result<IssuedKeys, String> {
    let llm_share = if args.mix[2] > 0 { 10 } else { 0 };
    let (mut stripe, mut llm, mut ids) = (Vec::new(), Vec::new(), Vec::new());
    let mut i = 0;
    while i < args.keys {
        let n = (args.keys - i).min(10_000);
        let batch: Vec<Value> = (i..i + n)
            .map(|k| {
                let tenant = k % args.tenants.max(1);
                if llm_share > 0 && k % 100 < llm_share {
                    json!({"vendor": "openai", "daily_usd_cap": args.cap_usd, "allowed_endpoints": ["POST /v1/chat/completions"], "expires_in": "24h", "label": format!("tenant-{tenant}/llm-{k}")})
                } else {
                    json!({"vendor": "stripe", "daily_usd_cap": args.cap_usd, "allowed_endpoints": ["POST /v1/payment_intents", "GET /v1/customers/*"], "expires_in": "24h", "label": format!("tenant-{tenant}/key-{k}")})
                }
            })
            .collect();
        let v = admin_post(admin, "/v1/keys/batch", &Value::Array(batch))?;
        for k in v["data"].as_array().ok_or("batch answer")? {
            let token = k["token"].as_str().unwrap_or_default().to_string();
            ids.push(k["id"].as_str().unwrap_or_default().to_string());
            if k["vendor"] == "openai" {
                llm.push(token);
            } else {
                stripe.push(token);
            }
        }
        i += n;
    }
    if llm.is_empty() {
        llm = stripe.clone();
    }
    Ok((stripe, llm, ids))
}

fn workload(args: &BenchArgs, stripe: Vec<String>, llm: Vec<String>, prefixed: bool, fixed_auth: Option<String>) -> Workload {
    let kinds = [Kind::Charge, Kind::Get, Kind::Llm, Kind::Refused];
    let mut acc = 0;
    let mix = kinds
        .iter()
        .zip(args.mix)
        .filter(|(_, w)| *w > 0)
        .map(|(k, w)| {
            acc += w;
            (*k, acc)
        })
        .collect();
    let n = stripe.len().max(1);
    Workload {
        mix,
        stripe_tokens: stripe,
        llm_tokens: llm,
        key_cdf: key_cdf(n, args.zipf),
        stripe_prefix: if prefixed { "/stripe".into() } else { String::new() },
        llm_prefix: if prefixed { "/openai".into() } else { String::new() },
        fixed_auth,
    }
}

fn run_one(name: &str, addr: SocketAddr, work: Arc<Workload>, args: &BenchArgs, proxy_pid: Option<u32>, gen_threads: usize) -> Row {
    eprintln!("▶ {name}: {} connections, {:?}", args.connections, args.duration);
    let cpu0 = proxy_pid.map(procs::cpu_secs);
    let drive = load::Drive { threads: gen_threads, connections: args.connections, warmup: Duration::from_secs(1), duration: args.duration, rate: args.rate, progress: true };
    let (mut opened, mut closed) = (None, None);
    let o = load::run(addr, work, &drive, &mut |open| {
        let now = proxy_pid.map(procs::thread_cpu_secs);
        if open {
            opened = now;
        } else {
            closed = now;
        }
    });
    let cpu = proxy_pid.zip(cpu0).map(|(p, c0)| (procs::cpu_secs(p) - c0) * args.duration.as_secs_f64() / o.elapsed.as_secs_f64().max(1e-9));
    let rss = proxy_pid.map(procs::peak_rss_kib);
    let per_request = match (opened, closed) {
        (Some(a), Some(b)) if o.completed > 0 => cpu_per_request(&a, &b, o.completed),
        _ => Vec::new(),
    };
    Row::from(name, &o, cpu, rss, gen_threads, per_request)
}

/// CPU µs per request by thread group between two samples, (group, user,
/// system), largest first; groups that used nothing are left out.
fn cpu_per_request(before: &BTreeMap<String, (f64, f64)>, after: &BTreeMap<String, (f64, f64)>, requests: u64) -> Vec<(String, f64, f64)> {
    let per = |secs: f64| secs.max(0.0) * 1e6 / requests as f64;
    let mut out: Vec<(String, f64, f64)> = after
        .iter()
        .map(|(g, (u, s))| {
            let (u0, s0) = before.get(g).copied().unwrap_or_default();
            (g.clone(), per(u - u0), per(s - s0))
        })
        .filter(|(_, u, s)| u + s > 0.0)
        .collect();
    out.sort_by(|a, b| (b.1 + b.2).total_cmp(&(a.1 + a.2)));
    out
}

/// One round's rows, measured back to back.
struct Round {
    direct: Row,
    nginx: Option<Row>,
    capgate: Row,
}

/// Median of some figures (the mean of the middle two for an even count).
fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// Runs the harness; prints the report (markdown, or JSON with `json`).
///
/// # Errors
/// When a component cannot start.
pub fn run(args: &BenchArgs, json_out: bool) -> Result<Value, String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (proxy_pin, other_pin) = if args.pin && cores >= 2 { (Some("0"), Some(format!("1-{}", cores - 1))) } else { (None, None) };
    if let Some(p) = &other_pin {
        procs::pin_self(p);
    }
    let gen_threads = if args.generator_threads > 0 { args.generator_threads } else if args.pin { (cores - 1).max(1) } else { cores };
    let rounds = args.rounds.max(1);
    let dir = tempfile_dir()?;
    let (mock, mock_addr) = start_mock(other_pin.as_deref(), 1)?;
    let mock = procs::Stopped::new(mock);

    // nginx as a plain reverse proxy.
    let nginx_workers = if args.pin { 1 } else { args.workers.max(1).min(cores) };
    let nginx = if args.no_nginx { None } else { start_nginx(mock_addr, nginx_workers, &dir, proxy_pin)?.map(|(c, a)| (procs::Stopped::new(c), a)) };
    if nginx.is_none() && !args.no_nginx {
        eprintln!("nginx is not installed (apt-get install nginx): skipping the nginx comparison");
    }

    // capgate.
    let (cg, proxy, admin, cg_pid) = match (args.target, args.target_admin) {
        (Some(p), Some(a)) => (None, p, a, None),
        (Some(_), None) => return Err("--target needs --target-admin to issue keys".into()),
        _ => {
            let (child, p, a) = start_capgate(args, mock_addr, &dir, proxy_pin)?;
            let pid = child.id();
            (Some(procs::Stopped::new(child)), p, a, Some(pid))
        }
    };

    let named = |name: &str, r: usize| if rounds > 1 { format!("{name}, round {}", r + 1) } else { name.to_string() };
    let mut results = Vec::new();
    let mut ids = Vec::new();
    let mut issue_secs = 0.0;
    let mut per_key_rss = None;
    for r in 0..rounds {
        // Floor: straight to the mock.
        let direct = workload(args, vec!["direct".into()], vec!["direct".into()], false, Some(MOCK_SECRET.into()));
        let direct = run_one(&named("direct (mock vendor)", r), mock_addr, Arc::new(direct), args, None, gen_threads);
        let run_nginx = || {
            nginx.as_ref().map(|(child, addr)| {
                let w = workload(args, vec!["plain".into()], vec!["plain".into()], true, Some("ignored-by-nginx".into()));
                run_one(&named("nginx (reverse proxy, enforces nothing)", r), *addr, Arc::new(w), args, Some(child.id()), gen_threads)
            })
        };
        // Each round's capgate gets fresh keys, so capped runs start alike.
        let mut run_capgate = || -> Result<Row, String> {
            let rss_before = cg_pid.map(procs::rss_kib);
            let t = Instant::now();
            let (stripe, llm, round_ids) = issue_keys(admin, args)?;
            if r == 0 {
                issue_secs = t.elapsed().as_secs_f64();
                per_key_rss = match (rss_before, cg_pid.map(procs::rss_kib)) {
                    (Some(b), Some(a)) if args.keys > 0 => Some((a.saturating_sub(b)) as f64 * 1024.0 / args.keys as f64),
                    _ => None,
                };
            }
            ids.extend(round_ids);
            let w = workload(args, stripe, llm, true, None);
            Ok(run_one(&named("capgate", r), proxy, Arc::new(w), args, cg_pid, gen_threads))
        };
        // Alternate which proxy goes first, so neither always gets the
        // machine right after the other's load.
        let (nginx_row, capgate_row) = if r % 2 == 0 {
            let n = run_nginx();
            (n, run_capgate()?)
        } else {
            let c = run_capgate()?;
            (run_nginx(), c)
        };
        results.push(Round { direct, nginx: nginx_row, capgate: capgate_row });
    }

    // Overspend check: no key spent more than its cap (every key, or 2,000
    // spread over all rounds' keys when there are more than 10,000).
    let step = if ids.len() <= 10_000 { 1 } else { ids.len() / 2_000 };
    let checked = ids.iter().step_by(step).count();
    let mut overspent = 0;
    let mut spent_total = 0.0;
    for id in ids.iter().step_by(step) {
        let k = admin_get(admin, &format!("/v1/keys/{id}"))?;
        let spent = k["spent_today_usd"].as_f64().unwrap_or(0.0);
        spent_total += spent;
        if spent > k["daily_usd_cap"].as_f64().unwrap_or(0.0) + 1e-9 {
            overspent += 1;
        }
    }
    drop((nginx, cg, mock));
    let _ = std::fs::remove_dir_all(&dir);

    let ratio = |x: &Round| x.nginx.as_ref().map(|n| x.capgate.rps / n.rps.max(1e-9));
    let added = |x: &Row, d: &Row, p99: bool| if p99 { x.p99 as f64 - d.p99 as f64 } else { x.p50 as f64 - d.p50 as f64 };
    let med_i = |v: Vec<f64>| median(v).map(|m| m.round() as i64);
    let rows: Vec<&Row> = results.iter().flat_map(|x| [Some(&x.direct), x.nginx.as_ref(), Some(&x.capgate)].into_iter().flatten()).collect();
    let summary = json!({
        "machine": {"cores": cores, "pinned": args.pin, "capgate_workers": args.workers, "generator_threads": gen_threads, "driver": args.driver, "durability": args.durability},
        "load": {"keys": args.keys, "tenants": args.tenants, "connections": args.connections, "duration_s": args.duration.as_secs_f64(), "zipf": args.zipf, "mix": {"charges": args.mix[0], "gets": args.mix[1], "llm": args.mix[2], "refused": args.mix[3]}, "rate": args.rate},
        "rounds": rounds,
        "rows": rows.iter().map(|r| r.json()).collect::<Vec<_>>(),
        "capgate_vs_nginx_throughput_by_round": results.iter().filter_map(ratio).collect::<Vec<_>>(),
        "capgate_vs_nginx_throughput": median(results.iter().filter_map(ratio).collect()),
        "capgate_added_p50_us": med_i(results.iter().map(|x| added(&x.capgate, &x.direct, false)).collect()),
        "capgate_added_p99_us": med_i(results.iter().map(|x| added(&x.capgate, &x.direct, true)).collect()),
        "nginx_added_p50_us": med_i(results.iter().filter_map(|x| x.nginx.as_ref().map(|n| added(n, &x.direct, false))).collect()),
        "nginx_added_p99_us": med_i(results.iter().filter_map(|x| x.nginx.as_ref().map(|n| added(n, &x.direct, true))).collect()),
        "key_issue_seconds": issue_secs,
        "resident_bytes_per_key": per_key_rss,
        "keys_checked_for_overspend": checked,
        "keys_overspent": overspent,
        "spent_usd_checked_keys": spent_total,
    });
    if json_out {
        println!("{}", serde_json::to_string_pretty(&summary).unwrap_or_default());
    } else {
        print_report(&rows, &summary);
    }
    Ok(summary)
}

fn print_report(rows: &[&Row], s: &Value) {
    println!("\n| target | req/s | p50 µs | p90 µs | p99 µs | p99.9 µs | answers by status | errors | proxy CPU s | proxy peak RSS MiB | generator saturated |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let statuses: Vec<String> = r.statuses.iter().map(|(s, n)| format!("{s}: {n}")).collect();
        println!(
            "| {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            r.rps,
            r.p50,
            r.p90,
            r.p99,
            r.p999,
            statuses.join(", "),
            r.errors,
            r.proxy_cpu_secs.map_or("-".into(), |c| format!("{c:.1}")),
            r.proxy_peak_rss_kib.map_or("-".into(), |k| format!("{:.1}", k as f64 / 1024.0)),
            if r.generator_saturated { "yes" } else { "no" }
        );
    }
    println!();
    let f = |k: &str| s[k].as_f64().map_or("n/a".to_string(), |v| format!("{v:.2}"));
    let i = |k: &str| s[k].as_i64().map_or("n/a".to_string(), |v| v.to_string());
    let by_round: Vec<String> = s["capgate_vs_nginx_throughput_by_round"].as_array().into_iter().flatten().filter_map(Value::as_f64).map(|v| format!("{v:.2}")).collect();
    let nginx_measured = s["capgate_vs_nginx_throughput"].is_f64();
    if !nginx_measured {
        println!("capgate/nginx throughput: n/a (nginx was not measured)");
    } else if by_round.len() > 1 {
        println!("capgate/nginx throughput: {}x (median of {} rounds: {})", f("capgate_vs_nginx_throughput"), by_round.len(), by_round.join(", "));
        println!("added latency over direct, medians over the rounds:");
    } else {
        println!("capgate/nginx throughput: {}x", f("capgate_vs_nginx_throughput"));
    }
    let nginx_added = if s["nginx_added_p50_us"].is_null() { String::new() } else { format!("; nginx p50 {} µs, p99 {} µs", i("nginx_added_p50_us"), i("nginx_added_p99_us")) };
    println!("added latency over direct: capgate p50 {} µs, p99 {} µs{nginx_added}", i("capgate_added_p50_us"), i("capgate_added_p99_us"));
    let with_cpu: Vec<&&Row> = rows.iter().filter(|r| !r.cpu_us_per_request.is_empty()).collect();
    if !with_cpu.is_empty() {
        println!("proxy CPU per request in the measured window, µs (user + system, by thread):");
        for r in with_cpu {
            let total: f64 = r.cpu_us_per_request.iter().map(|(_, u, s)| u + s).sum();
            let parts: Vec<String> = r.cpu_us_per_request.iter().filter(|(_, u, s)| u + s >= 0.05).map(|(g, u, s)| format!("{g} {u:.1} + {s:.1}")).collect();
            println!("- {}: {total:.1} = {}", r.name, parts.join(", "));
        }
    }
    if !s["load"]["rate"].is_null() {
        let late: Vec<String> = rows.iter().map(|r| format!("{} {}", r.name, r.late_sends)).collect();
        println!("paced sends more than one interval behind their slot (their wait is not in the latency): {}", late.join(", "));
    }
    println!("keys: {} issued in {:.2} s; resident memory per key: {} bytes", s["load"]["keys"], s["key_issue_seconds"].as_f64().unwrap_or(0.0), f("resident_bytes_per_key"));
    println!("overspend: {} of {} keys checked spent more than their cap", s["keys_overspent"], s["keys_checked_for_overspend"]);
}

fn tempfile_dir() -> Result<PathBuf, String> {
    let mut r = [0u8; 8];
    getrandom::getrandom(&mut r).map_err(|e| e.to_string())?;
    let dir = std::env::temp_dir().join(format!("capgate-bench-{}", r.iter().map(|b| format!("{b:02x}")).collect::<String>()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![0.9, 0.7, 1.1]), Some(0.9));
        assert_eq!(median(vec![1.0, 0.5, 0.75, 2.0]), Some(0.875));
    }
}
