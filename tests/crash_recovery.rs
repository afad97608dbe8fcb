//! Crash safety (run in a release build by `.ci/run`): `kill -9` capgate
//! in the middle of load on several keys, restart it on the same data dir,
//! and check that every answered call is in the audit log, that each key's
//! spend equals the sum of its events, and that no key got cap room back:
//! the vendor never receives more than a cap allows, across the crash.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const KEYS: usize = 4;
const CAP_USD: f64 = 1000.0;

fn amounts_received_by_key(mock: &MockVendor) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    for r in mock.recorded() {
        let body = String::from_utf8_lossy(&r.body).into_owned();
        let pairs: HashMap<String, String> = form_urlencoded::parse(body.as_bytes()).into_owned().collect();
        *out.entry(pairs["metadata[key]"].clone()).or_insert(0) += pairs["amount"].parse::<u64>().unwrap();
    }
    out
}

/// Drives $1 charges on every key from 8 threads until `stop` or until
/// every key is capped; records the request ids of answered calls.
fn load(cg: &Capgate, tokens: &[(String, String)], stop: &AtomicBool, answered: &Mutex<Vec<(usize, String)>>) {
    let seq = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..8 {
            let seq = &seq;
            s.spawn(move || {
                let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(5)).build();
                let mut capped = HashSet::new();
                while !stop.load(Ordering::Relaxed) && capped.len() < KEYS {
                    let k = (t + seq.fetch_add(1, Ordering::Relaxed) as usize) % KEYS;
                    if capped.contains(&k) {
                        continue;
                    }
                    let n = seq.fetch_add(1, Ordering::Relaxed);
                    let resp = agent
                        .post(&cg.proxy_url("/stripe/v1/charges"))
                        .set("Authorization", &format!("Bearer {}", tokens[k].1))
                        .send_string(&format!("amount=100&currency=usd&metadata[key]={k}&metadata[n]={n}"));
                    match resp {
                        Ok(r) => answered.lock().unwrap().push((k, r.header("x-capgate-request-id").unwrap().to_string())),
                        Err(ureq::Error::Status(429, _)) => {
                            capped.insert(k);
                        }
                        Err(ureq::Error::Status(code, r)) => panic!("unexpected {code}: {}", r.into_string().unwrap_or_default()),
                        Err(_) => return, // the server is gone
                    }
                }
            });
        }
    });
}

#[test]
fn kill_9_mid_load_loses_no_answered_call_and_frees_no_cap() {
    let mock = mock();
    let dir = tempdir();
    let data = dir.path().join("data");
    let cg = Capgate::start(&config_for(&mock, ""), &data);
    let keys: Vec<(String, String)> = (0..KEYS).map(|i| cg.issue_stripe(CAP_USD, &format!("crash/k{i}"))).collect();
    let answered = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| load(&cg, &keys, &stop, &answered));
        // Let the load get going (not a fixed sleep: a slow machine answers
        // fewer calls in a given time), then SIGKILL while requests are in flight.
        let deadline = Instant::now() + Duration::from_secs(30);
        while answered.lock().unwrap().len() < 50 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        unsafe_kill(&cg);
        stop.store(true, Ordering::Relaxed);
    });
    let answered = answered.into_inner().unwrap();
    assert!(answered.len() > 20, "the crash happened mid-load ({} answered)", answered.len());
    assert!(answered.len() < KEYS * CAP_USD as usize, "the crash happened before every key was capped");
    let config = cg.config.clone();
    drop(cg);

    let cg = Capgate::start_with(&config, &data, &[]);
    let received_at_crash = amounts_received_by_key(&mock);
    for (i, (id, _)) in keys.iter().enumerate() {
        let resp = ureq::get(&cg.admin_url(&format!("/v1/audit/export?format=ndjson&key_id={id}"))).set("Authorization", &format!("Bearer {ADMIN_TOKEN}")).call().unwrap();
        let events: Vec<Value> = resp.into_string().unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let logged: HashSet<&str> = events.iter().filter(|e| e["kind"] == "call").map(|e| e["request_id"].as_str().unwrap()).collect();
        for (_, rid) in answered.iter().filter(|(k, _)| *k == i) {
            assert!(logged.contains(rid.as_str()), "answered call {rid} missing from the audit log");
        }
        let sum: i64 = events.iter().map(|e| e["spend_delta_micros"].as_i64().unwrap()).sum();
        let spent = (cg.key(id)["spent_today_usd"].as_f64().unwrap() * 1e6).round() as i64;
        assert_eq!(spent, sum, "key {i}: spend equals the sum of its events");
        let received = *received_at_crash.get(&i.to_string()).unwrap_or(&0) as i64 * 10_000;
        assert!(spent >= received, "key {i}: the vendor got ${} but only ${} is counted after the crash", received as f64 / 1e6, spent as f64 / 1e6);
    }
    // Keep going until every key is capped: the vendor never gets more than a cap.
    let stop = AtomicBool::new(false);
    let answered2 = Mutex::new(Vec::new());
    load(&cg, &keys, &stop, &answered2);
    let cap_cents = (CAP_USD * 100.0) as u64;
    for (k, total) in amounts_received_by_key(&mock) {
        assert!(total <= cap_cents, "key {k}: vendor received {total} cents over a cap of {cap_cents}");
    }
}

fn unsafe_kill(cg: &Capgate) {
    // `Capgate::kill` consumes; here the harness keeps the handle for its
    // config path, so send SIGKILL by pid.
    let status = std::process::Command::new("kill").args(["-9", &cg.pid().to_string()]).status().unwrap();
    assert!(status.success());
}
