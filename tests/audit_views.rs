//! The audit log as operators use it: spend views that agree exactly with a
//! full scan, streamed NDJSON/CSV export (HTTP and CLI), and failing closed
//! when the log cannot be written.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn export(cg: &Capgate, query: &str) -> String {
    let resp = ureq::get(&cg.admin_url(&format!("/v1/audit/export?{query}"))).set("Authorization", &format!("Bearer {ADMIN_TOKEN}")).call().unwrap();
    assert_eq!(resp.header("transfer-encoding"), Some("chunked"), "export is streamed");
    resp.into_string().unwrap()
}

fn spend(cg: &Capgate, query: &str) -> Value {
    let (s, v, _) = call("GET", &cg.admin_url(&format!("/v1/spend?{query}")), Some(ADMIN_TOKEN), None);
    assert_eq!(s, 200, "{v}");
    v
}

#[test]
fn spend_views_agree_with_a_full_scan_of_the_log() {
    let mock = mock();
    let dir = tempdir();
    let cg = Capgate::start(&config_for(&mock, ""), &dir.path().join("data"));
    let labels = ["flowise/s1", "flowise/s2", "dify/chat-9", "flask-u1"];
    let keys: Vec<(String, String)> = labels.iter().map(|l| cg.issue_stripe(40.0, l)).collect();
    let (_, oai) = cg.issue(json!({"vendor": "openai", "daily_usd_cap": 5, "allowed_endpoints": ["POST /v1/chat/completions"], "label": "flowise/llm"}));
    for round in 0..12u64 {
        for (i, (_, token)) in keys.iter().enumerate() {
            let cents = 300 + round * 10 + i as u64;
            let _ = form_call(&cg.proxy_url("/stripe/v1/payment_intents"), token, &format!("amount={cents}&currency=usd"));
        }
        let _ = form_call_with(&cg.proxy_url("/stripe/v1/charges"), &keys[0].1, &format!("amount={}&currency=usd", 100 + round), &[("x-mock-status", "402")]);
        let _ = call("POST", &cg.proxy_url("/openai/v1/chat/completions"), Some(&oai), Some(json!({"model": "gpt-4o-mini", "max_tokens": 20, "messages": [{"role": "user", "content": format!("hi {round}")}]})));
        let _ = cg.charge("vk_unknown", 100);
    }
    // Every one of the 12 x 7 calls leaves a call event, but a refusal's event is
    // written after its response: wait until the log holds all of them, then for
    // the compaction thread to fold everything in.
    let expected_calls = 12 * (labels.len() as u64 + 3);
    let deadline = Instant::now() + Duration::from_secs(10);
    let events: Vec<Value> = loop {
        let events: Vec<Value> = export(&cg, "format=ndjson").lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let calls = events.iter().filter(|e| e["kind"] == "call").count() as u64;
        let settles = events.iter().filter(|e| e["kind"] == "settle").count() as u64;
        assert!(calls <= expected_calls && settles <= 12, "{calls} call events for {expected_calls} calls, {settles} settlements for 12 LLM calls");
        if calls == expected_calls && settles == 12 {
            break events;
        }
        assert!(Instant::now() < deadline, "the log holds {calls} of {expected_calls} call events");
        std::thread::sleep(Duration::from_millis(50));
    };
    let logged_spend: i64 = events.iter().map(|e| e["spend_delta_micros"].as_i64().unwrap()).sum();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let total = spend(&cg, "group_by=day")["total"].clone();
        if total["events"].as_u64().unwrap() >= expected_calls && total["spend_micros"].as_i64().unwrap() == logged_spend {
            break;
        }
        assert!(Instant::now() < deadline, "views did not catch up");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The scan, computed here from the export.
    for (group_by, field) in [("label", "label"), ("key", "key_id"), ("vendor", "vendor")] {
        for prefix in ["", "flowise/", "flowise/s1", "dify"] {
            let mut scan: BTreeMap<String, (i64, u64, u64)> = BTreeMap::new();
            for e in events.iter().filter(|e| e["label"].as_str().unwrap().starts_with(prefix)) {
                let row = scan.entry(e[field].as_str().unwrap().to_string()).or_default();
                row.0 += e["spend_delta_micros"].as_i64().unwrap();
                if e["kind"] == "call" {
                    row.1 += 1;
                    if e["decision"] == "refused" {
                        row.2 += 1;
                    }
                }
            }
            let v = spend(&cg, &format!("group_by={group_by}&label_prefix={prefix}"));
            let views: BTreeMap<String, (i64, u64, u64)> = v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| (r["group"].as_str().unwrap().to_string(), (r["spend_micros"].as_i64().unwrap(), r["events"].as_u64().unwrap(), r["refused"].as_u64().unwrap())))
                .collect();
            assert_eq!(views, scan, "group_by={group_by} label_prefix={prefix}");
        }
    }
    // The flowise/ rollup is the sum of its labels and matches the keys' spend.
    let flowise = spend(&cg, "group_by=day&label_prefix=flowise/");
    let key_spend: f64 = keys[..2].iter().map(|(id, _)| cg.key(id)["spent_today_usd"].as_f64().unwrap()).sum();
    let llm = events.iter().filter(|e| e["label"] == "flowise/llm").map(|e| e["spend_delta_micros"].as_i64().unwrap()).sum::<i64>();
    assert_eq!(flowise["total"]["spend_micros"].as_i64().unwrap(), (key_spend * 1e6).round() as i64 + llm);
    // Bad parameters are named.
    let (s, v, _) = call("GET", &cg.admin_url("/v1/spend?group_by=month"), Some(ADMIN_TOKEN), None);
    assert!(s == 400 && v["message"].as_str().unwrap().contains("group_by"));
}

#[test]
fn export_streams_ndjson_and_csv_over_http_and_cli() {
    let mock = mock();
    let dir = tempdir();
    let data = dir.path().join("data");
    let cg = Capgate::start(&config_for(&mock, ""), &data);
    let (id, token) = cg.issue_stripe(1000.0, "export/a");
    for i in 0..150 {
        assert_eq!(cg.charge(&token, 100 + i).0, 200);
    }
    std::thread::sleep(Duration::from_millis(200));
    let ndjson = export(&cg, &format!("format=ndjson&key_id={id}&kind=call"));
    assert_eq!(ndjson.lines().count(), 150);
    let csv = export(&cg, &format!("format=csv&key_id={id}"));
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with("time,ts_ms,seq,request_id,kind,key_id,label"));
    assert_eq!(lines.count(), 300, "150 calls and their 150 reservations");
    let (s, _, _) = call("GET", &cg.admin_url("/v1/audit/export?format=xml"), Some(ADMIN_TOKEN), None);
    assert_eq!(s, 400);
    let all_http = export(&cg, "format=ndjson").lines().count();
    cg.kill();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_capgate")).args(["audit", "export", "--format", "ndjson", "--data-dir"]).arg(&data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), all_http);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_capgate")).args(["audit", "export", "--format", "csv", "--label-prefix", "export/", "--data-dir"]).arg(&data).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 301);
}

#[test]
fn an_unwritable_audit_log_fails_closed() {
    let mock = mock();
    let dir = tempdir();
    let data = dir.path().join("data");
    let config = dir.path().join("c.toml");
    std::fs::write(&config, config_for(&mock, "")).unwrap();
    let cg = Capgate::start_with(&config, &data, &[("CAPGATE_FAULT_AUDIT_FAIL_AFTER", "2")]);
    let (_, token) = cg.issue(json!({"vendor": "stripe", "daily_usd_cap": 100, "allowed_endpoints": ["POST /v1/charges", "GET /v1/customers/*"]}));
    // The first priced call writes two events (reservation and call), then the log "breaks".
    assert_eq!(form_call(&cg.proxy_url("/stripe/v1/charges"), &token, "amount=100&currency=usd").0, 200);
    let (s, v, _) = form_call(&cg.proxy_url("/stripe/v1/charges"), &token, "amount=101&currency=usd");
    assert_eq!((s, v["error"].as_str()), (503, Some("audit_unavailable")), "{v}");
    let (s, v, _) = call("GET", &cg.admin_url("/healthz"), None, None);
    assert_eq!((s, v["status"].as_str()), (503, Some("degraded")));
    let (s, _, _) = call("GET", &cg.proxy_url("/stripe/v1/customers/cus_1"), Some(&token), None);
    assert_eq!(s, 503, "zero-cost calls fail closed by default");
    assert_eq!(mock.count(), 1);
    drop(cg);
    // With the switch on, zero-cost calls keep flowing.
    std::fs::write(&config, config_for(&mock, "[storage]\nfree_calls_when_audit_down = true\n")).unwrap();
    let cg = Capgate::start_with(&config, &dir.path().join("data2"), &[("CAPGATE_FAULT_AUDIT_FAIL_AFTER", "0")]);
    let (_, token) = cg.issue(json!({"vendor": "stripe", "daily_usd_cap": 100, "allowed_endpoints": ["POST /v1/charges", "GET /v1/customers/*"]}));
    for _ in 0..3 {
        let (s, _, _) = call("GET", &cg.proxy_url("/stripe/v1/customers/cus_1"), Some(&token), None);
        assert_eq!(s, 200);
    }
    let (s, v, _) = form_call(&cg.proxy_url("/stripe/v1/charges"), &token, "amount=100&currency=usd");
    assert_eq!((s, v["error"].as_str()), (503, Some("audit_unavailable")));
}
