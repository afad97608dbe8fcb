//! The load generator: thread-per-core (one monoio runtime per thread),
//! each thread driving its share of keep-alive connections in a closed
//! loop (optionally paced to a target rate), recording latency in HDR
//! histograms and answers by status.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use monoio::net::{TcpStream, UnixStream};

use super::pacer::{self, Pace, Tickets};
use crate::config::Driver;
use crate::http1::{Conn, Framing};

/// One kind of request in the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A priced Stripe-style charge.
    Charge,
    /// A zero-cost GET.
    Get,
    /// A streamed LLM call.
    Llm,
    /// A call outside the key's allowlist (refused).
    Refused,
}

/// What to send: per kind, a weight; per request, a key.
pub struct Workload {
    /// Cumulative weights over kinds.
    pub mix: Vec<(Kind, u32)>,
    /// Stripe-vendor tokens (charges, gets, refused).
    pub stripe_tokens: Vec<String>,
    /// OpenAI-vendor tokens (LLM calls).
    pub llm_tokens: Vec<String>,
    /// Cumulative Zipf (or uniform) distribution over key indexes.
    pub key_cdf: Vec<f64>,
    /// Path prefix (`/stripe` through a proxy, empty direct to the mock).
    pub stripe_prefix: String,
    /// Path prefix for LLM calls.
    pub llm_prefix: String,
    /// Authorization override (the real secret when going direct).
    pub fixed_auth: Option<String>,
}

/// A cumulative distribution over `n` keys: Zipf with exponent `s`, or uniform when `s == 0`.
pub fn key_cdf(n: usize, s: f64) -> Vec<f64> {
    let weights: Vec<f64> = (1..=n.max(1)).map(|i| if s == 0.0 { 1.0 } else { 1.0 / (i as f64).powf(s) }).collect();
    let total: f64 = weights.iter().sum();
    let mut acc = 0.0;
    weights.iter().map(|w| {
        acc += w / total;
        acc
    }).collect()
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl Workload {
    fn pick(&self, rng: &mut Rng, seq: u64) -> (Kind, Vec<u8>) {
        let total = self.mix.last().map_or(1, |m| m.1).max(1);
        let r = (rng.next() % u64::from(total)) as u32;
        let kind = self.mix.iter().find(|(_, c)| r < *c).map_or(Kind::Get, |(k, _)| *k);
        let u = rng.unit();
        let idx = self.key_cdf.partition_point(|c| *c < u);
        let token = |list: &Vec<String>| list.get(idx % list.len().max(1)).cloned().unwrap_or_default();
        let (path, body, token) = match kind {
            Kind::Charge => (format!("{}/v1/payment_intents", self.stripe_prefix), format!("amount=50&currency=usd&metadata[n]={seq}"), token(&self.stripe_tokens)),
            Kind::Get => (format!("{}/v1/customers/cus_{}", self.stripe_prefix, idx), String::new(), token(&self.stripe_tokens)),
            Kind::Refused => (format!("{}/v1/refunds", self.stripe_prefix), "charge=ch_1".to_string(), token(&self.stripe_tokens)),
            Kind::Llm => (
                format!("{}/v1/chat/completions", self.llm_prefix),
                r#"{"model":"gpt-4o-mini","stream":true,"max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#.to_string(),
                token(&self.llm_tokens),
            ),
        };
        let auth = self.fixed_auth.clone().unwrap_or(token);
        let method = if kind == Kind::Get { "GET" } else { "POST" };
        let ctype = if kind == Kind::Llm { "application/json" } else { "application/x-www-form-urlencoded" };
        let mut req = format!("{method} {path} HTTP/1.1\r\nhost: bench\r\nauthorization: Bearer {auth}\r\n");
        if method == "POST" {
            req.push_str(&format!("content-type: {ctype}\r\ncontent-length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        req.push_str(&body);
        (kind, req.into_bytes())
    }
}

/// Merged results of a run.
pub struct Outcome {
    /// Latency in microseconds.
    pub latency: Histogram<u64>,
    /// Answers by status.
    pub statuses: BTreeMap<u16, u64>,
    /// Transport errors.
    pub errors: u64,
    /// Completed requests in the measured window.
    pub completed: u64,
    /// Paced sends (with a rate) that went out more than one interval after
    /// their slot: the generator fell behind, so the latency it recorded for
    /// them leaves out the wait.
    pub late_sends: u64,
    /// Measured window.
    pub elapsed: Duration,
    /// CPU seconds the generator itself used.
    pub generator_cpu_secs: f64,
}

struct ThreadResult {
    latency: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    late_sends: u64,
}

impl ThreadResult {
    fn new() -> ThreadResult {
        ThreadResult { latency: new_hist(), statuses: BTreeMap::new(), errors: 0, late_sends: 0 }
    }

    fn merge(&mut self, r: ThreadResult) {
        let _ = self.latency.add(&r.latency);
        for (s, n) in r.statuses {
            *self.statuses.entry(s).or_default() += n;
        }
        self.errors += r.errors;
        self.late_sends += r.late_sends;
    }
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!("valid sigfigs")))
}

/// How hard and how long to drive a target.
pub struct Drive {
    /// Generator threads.
    pub threads: usize,
    /// Keep-alive connections, spread over the threads.
    pub connections: usize,
    /// Unmeasured run-up.
    pub warmup: Duration,
    /// Measured window.
    pub duration: Duration,
    /// Total requests/s to pace to (`None`: as fast as possible).
    pub rate: Option<f64>,
    /// Print a progress line while running.
    pub progress: bool,
}

/// Runs the workload against `addr`. `window` is called with `true` as the
/// measured window opens and `false` as it closes (after the warm-up, and
/// before the generator stops), so the caller can sample what it needs at
/// the window's edges.
pub fn run(addr: SocketAddr, work: Arc<Workload>, drive: &Drive, window: &mut dyn FnMut(bool)) -> Outcome {
    let Drive { threads, connections, warmup, duration, rate, progress } = *drive;
    let done = Arc::new(AtomicU64::new(0));
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let threads = threads.max(1);
    // Paced connections start from a common epoch, each at its own phase.
    let epoch = Instant::now() + Duration::from_millis(50);
    let mut first_conn = 0;
    let mut pacers = Vec::new();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let conns = connections / threads + usize::from(t < connections % threads);
            let base = first_conn;
            first_conn += conns;
            let paces: Option<Vec<Pace>> = rate.map(|r| (0..conns).map(|c| Pace::of(base + c, connections, r, epoch)).collect());
            // A paced thread's connections wait for tickets from its pacer.
            let pacer_end = paces.clone().map(|p| pacer::start(p, Arc::clone(&stop))).and_then(|started| match started {
                Ok((handle, end)) => {
                    pacers.push(handle);
                    Some(end)
                }
                Err(e) => {
                    eprintln!("the load generator's pacer did not start ({e}); this thread paces with monoio's 1 ms timer");
                    None
                }
            });
            let (work, done, measuring, stop) = (Arc::clone(&work), Arc::clone(&done), Arc::clone(&measuring), Arc::clone(&stop));
            std::thread::spawn(move || {
                crate::runtime::block_on(Driver::Epoll, move || async move {
                    let tickets = pacer_end.and_then(|end| match end.set_nonblocking(true).and_then(|()| UnixStream::from_std(end)) {
                        Ok(end) => {
                            let tickets = Rc::new(Tickets::new(conns));
                            monoio::spawn(Rc::clone(&tickets).dispatch(end));
                            Some(tickets)
                        }
                        Err(e) => {
                            // Dropping the end stops the pacer (its next write fails).
                            eprintln!("the load generator's pacer could not be read ({e}); this thread paces with monoio's 1 ms timer");
                            None
                        }
                    });
                    let mut tasks = Vec::new();
                    for c in 0..conns {
                        let (work, done, measuring, stop) = (Arc::clone(&work), Arc::clone(&done), Arc::clone(&measuring), Arc::clone(&stop));
                        let pace = paces.as_ref().map(|p| (tickets.clone(), c, p[c]));
                        tasks.push(monoio::spawn(async move { connection(addr, work, (t * super::MAX_CONNECTIONS + c) as u64 + 1, done, measuring, stop, pace).await }));
                    }
                    let mut merged = ThreadResult::new();
                    for task in tasks {
                        merged.merge(task.await);
                    }
                    merged
                })
            })
        })
        .collect();
    std::thread::sleep(warmup);
    window(true);
    let start_count = done.load(Ordering::Relaxed);
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let cpu_start = super::procs::self_cpu_secs();
    while started.elapsed() < duration {
        std::thread::sleep(Duration::from_secs(1).min(duration.saturating_sub(started.elapsed())));
        if progress {
            let n = done.load(Ordering::Relaxed) - start_count;
            eprint!("\r  {:>4.0}s  {:>9} requests  {:>9.0} req/s   ", started.elapsed().as_secs_f64(), n, n as f64 / started.elapsed().as_secs_f64().max(1e-9));
        }
    }
    let completed = done.load(Ordering::Relaxed) - start_count;
    let elapsed = started.elapsed();
    measuring.store(false, Ordering::Relaxed);
    let cpu_end = super::procs::self_cpu_secs();
    window(false);
    stop.store(true, Ordering::Relaxed);
    if progress {
        eprintln!();
    }
    for p in pacers {
        let _ = p.join();
    }
    let mut all = ThreadResult::new();
    for h in handles {
        if let Ok(Ok(r)) = h.join() {
            all.merge(r);
        }
    }
    Outcome { latency: all.latency, statuses: all.statuses, errors: all.errors, completed, elapsed, late_sends: all.late_sends, generator_cpu_secs: cpu_end - cpu_start }
}

async fn connection(addr: SocketAddr, work: Arc<Workload>, seed: u64, done: Arc<AtomicU64>, measuring: Arc<AtomicBool>, stop: Arc<AtomicBool>, pace: Option<(Option<Rc<Tickets>>, usize, Pace)>) -> ThreadResult {
    let mut res = ThreadResult::new();
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut seq = seed << 32;
    let mut next_send = pace.as_ref().map_or_else(Instant::now, |(_, _, p)| p.first);
    'reconnect: while !stop.load(Ordering::Relaxed) {
        let Ok(stream) = TcpStream::connect_addr(addr).await else {
            res.errors += 1;
            monoio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let mut conn = Conn::new(stream);
        while !stop.load(Ordering::Relaxed) {
            if let Some((tickets, me, p)) = &pace {
                match tickets {
                    Some(t) => {
                        if !t.wait(*me).await {
                            break 'reconnect;
                        }
                    }
                    None => monoio::time::sleep(next_send.saturating_duration_since(Instant::now())).await,
                }
                if Instant::now().saturating_duration_since(next_send) > p.interval && measuring.load(Ordering::Relaxed) {
                    res.late_sends += 1;
                }
                next_send += p.interval;
            }
            seq += 1;
            let (_, bytes) = work.pick(&mut rng, seq);
            let t = Instant::now();
            if conn.write_all(bytes).await.is_err() {
                res.errors += 1;
                continue 'reconnect;
            }
            let head = match conn.read_response_head(false, Duration::from_secs(30)).await {
                Ok(h) => h,
                Err(_) => {
                    res.errors += 1;
                    continue 'reconnect;
                }
            };
            let framing = if head.framing == Framing::UntilClose { Framing::None } else { head.framing };
            if conn.read_body(framing, 64 << 20, Duration::from_secs(30)).await.is_err() {
                res.errors += 1;
                continue 'reconnect;
            }
            done.fetch_add(1, Ordering::Relaxed);
            if measuring.load(Ordering::Relaxed) {
                let _ = res.latency.record(t.elapsed().as_micros().max(1) as u64);
                *res.statuses.entry(head.status).or_default() += 1;
            }
            if !head.keep_alive {
                continue 'reconnect;
            }
        }
    }
    res
}

