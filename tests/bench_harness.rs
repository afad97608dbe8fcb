//! `capgate bench` end to end: the real binary starts its mock vendor and a
//! capgate on loopback, issues keys and drives load for two short rounds.

use std::process::Command;
use std::sync::Mutex;

/// The runs in this file take one at a time: each drives the machine's
/// cores, and the paced run's rate would suffer from the other's load.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn two_rounds_each_get_fresh_keys_and_no_key_overspends() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let out = Command::new(env!("CARGO_BIN_EXE_capgate"))
        .args(["bench", "--keys", "20", "--tenants", "2", "--connections", "4", "--duration", "1", "--cap-usd", "1", "--no-nginx", "--rounds", "2", "--json"])
        .output()
        .expect("capgate bench runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed: {stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(v["rounds"], 2);
    let rows = v["rows"].as_array().expect("rows");
    let names: Vec<&str> = rows.iter().filter_map(|r| r["target"].as_str()).collect();
    assert_eq!(names, ["direct (mock vendor), round 1", "capgate, round 1", "direct (mock vendor), round 2", "capgate, round 2"]);
    for r in rows {
        assert_eq!(r["errors"], 0, "{r}");
        assert!(r["rps"].as_f64().unwrap_or(0.0) > 0.0, "{r}");
    }
    // $1 caps and $0.50 charges: each key allows two charges (spent in the
    // warm-up), then capgate answers 429.
    for r in rows.iter().filter(|r| r["target"].as_str().is_some_and(|t| t.starts_with("capgate"))) {
        assert!(r["statuses"]["429"].as_u64().unwrap_or(0) > 0, "{r}");
        // The proxy's CPU per request is split by thread; its core threads did work.
        let core = &r["cpu_us_per_request"]["capgate-core"];
        let cpu = core["user"].as_f64().unwrap_or(0.0) + core["system"].as_f64().unwrap_or(0.0);
        assert!(cpu > 0.0, "{r}");
    }
    for r in rows.iter().filter(|r| r["target"].as_str().is_some_and(|t| t.starts_with("direct"))) {
        assert!(r["cpu_us_per_request"].as_object().is_some_and(|m| m.is_empty()), "no proxy, no proxy CPU: {r}");
    }
    // Both rounds' keys are checked, and none spent more than its cap; the
    // hot keys of both rounds did reach it.
    assert_eq!(v["keys_checked_for_overspend"], 40);
    assert_eq!(v["keys_overspent"], 0);
    let spent = v["spent_usd_checked_keys"].as_f64().unwrap_or(0.0);
    assert!((10.0..=40.0).contains(&spent), "spent ${spent} over 40 keys with $1 caps");
    assert!(v["capgate_vs_nginx_throughput"].is_null(), "no nginx, no ratio");
}

#[test]
fn a_paced_run_holds_its_rate_and_counts_late_sends() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let v = paced_run("4", "400");
    assert_eq!(v["load"]["rate"], 400.0);
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "direct and capgate");
    for r in rows {
        assert_eq!(r["errors"], 0, "{r}");
        // Paced, not closed-loop: a send never leaves before its slot
        // (loopback alone would do thousands). At most the 1 s warm-up's
        // 400 slots can still be owed when the 2 s window opens, so the
        // window sees at most (400 + 800) / 2 = 600 req/s, 650 with slack.
        // How close to 400 it gets, and how many sends leave late, depend
        // on the machine: a loaded CI runner falls behind a debug build.
        let rps = r["rps"].as_f64().unwrap_or(0.0);
        assert!(rps > 0.0 && rps <= 650.0, "{r}");
        let answered = answered(r);
        assert!(answered > 0, "{r}");
        let late = r["late_sends"].as_u64().expect("late_sends is reported");
        assert!(late <= answered + 4, "a late send is one of the sends: {r}");
    }
}

#[test]
fn a_rate_no_machine_can_hold_counts_nearly_every_send_late() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // One connection at a million requests per second: its slots are 1 µs
    // apart and no loopback round trip is that quick, so each send after the
    // first leaves more than one interval behind its slot.
    let v = paced_run("1", "1000000");
    for r in v["rows"].as_array().expect("rows") {
        assert_eq!(r["errors"], 0, "{r}");
        let answered = answered(r);
        let late = r["late_sends"].as_u64().expect("late_sends is reported");
        assert!(answered > 10 && late * 10 >= answered * 9, "nearly every send is late: {r}");
    }
}

/// Requests a report row counts as answered, over all statuses.
fn answered(row: &serde_json::Value) -> u64 {
    row["statuses"].as_object().expect("statuses").values().filter_map(serde_json::Value::as_u64).sum()
}

/// A short paced `capgate bench` run without nginx; its JSON report.
fn paced_run(connections: &str, rate: &str) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_capgate"))
        .args(["bench", "--keys", "20", "--tenants", "2", "--connections", connections, "--duration", "2", "--cap-usd", "1000", "--no-nginx", "--rate", rate, "--json"])
        .output()
        .expect("capgate bench runs");
    assert!(out.status.success(), "bench failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

#[test]
fn out_of_range_connections_and_rates_are_refused_before_anything_starts() {
    for (args, says) in [
        (vec!["--connections", "0"], "--connections takes 1 to 65536"),
        (vec!["--connections", "70000"], "--connections takes 1 to 65536"),
        (vec!["--rate=0"], "--rate takes 1 to 10000000 requests per second"),
        (vec!["--rate=0.5"], "--rate takes 1 to 10000000 requests per second"),
        (vec!["--rate=-5"], "--rate takes 1 to 10000000 requests per second"),
        (vec!["--rate", "nan"], "--rate takes 1 to 10000000 requests per second"),
        (vec!["--rate", "1e10"], "--rate takes 1 to 10000000 requests per second"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_capgate")).arg("bench").arg("--no-nginx").args(&args).output().expect("capgate bench runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: no report");
    }
}
