//! The admin API: authentication, key issuance (and the seeds' /vault/keys
//! alias with `vault_key` and `agent_run_label`), field-naming 400s, audit
//! queries by key, label and time.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;

#[test]
fn admin_routes_need_the_admin_token() {
    let mock = mock();
    let dir = tempdir();
    let cg = Capgate::start(&config_for(&mock, ""), &dir.path().join("data"));
    let body = json!({"vendor": "stripe", "daily_usd_cap": 1, "allowed_endpoints": ["/v1/charges"]});
    assert_eq!(call("POST", &cg.admin_url("/v1/keys"), None, Some(body.clone())).0, 401);
    assert_eq!(call("POST", &cg.admin_url("/v1/keys"), Some("wrong-token-wrong-token"), Some(body)).0, 401);
    assert_eq!(call("GET", &cg.admin_url("/v1/audit"), None, None).0, 401);
    let (s, v, _) = call("GET", &cg.admin_url("/healthz"), None, None);
    assert_eq!((s, v["status"].as_str()), (200, Some("ok")));
}

#[test]
fn seed_snippet_shape_works() {
    // Flowise/Dify: POST /vault/keys with agent_run_label, read vault_key.
    let mock = mock();
    let dir = tempdir();
    let cg = Capgate::start(&config_for(&mock, ""), &dir.path().join("data"));
    let (s, v, _) = call(
        "POST",
        &cg.admin_url("/vault/keys"),
        Some(ADMIN_TOKEN),
        Some(json!({"vendor": "stripe", "daily_usd_cap": 200, "allowed_endpoints": ["POST /v1/payment_intents", "GET /v1/customers/*"], "expires_in": "1h", "agent_run_label": "flowise/abc"})),
    );
    assert_eq!(s, 201, "{v}");
    let vk = v["vault_key"].as_str().unwrap();
    assert_eq!(v["token"].as_str().unwrap(), vk);
    assert!(vk.starts_with("vk_") && vk.len() >= 3 + 32);
    assert_eq!(v["label"], "flowise/abc");
    assert_eq!(v["daily_usd_cap"], 200.0);
    assert!(v["expires_at"].as_str().unwrap().ends_with('Z'));
    // The token is never shown again.
    let (_, got, _) = call("GET", &cg.admin_url(&format!("/v1/keys/{}", v["id"].as_str().unwrap())), Some(ADMIN_TOKEN), None);
    assert!(!got.to_string().contains(vk));
    // Dify's HTTP node: form body, Bearer vault key.
    let (s, _, _) = form_call(&cg.proxy_url("/stripe/v1/payment_intents"), vk, "amount=1500&currency=usd&customer=cus_42");
    assert_eq!(s, 200);
    // And the data dir holds no plaintext token.
    drop(cg);
    let mut found = false;
    for entry in walk(&dir.path().join("data")) {
        if std::fs::read(&entry).map(|b| b.windows(vk.len()).any(|w| w == vk.as_bytes())).unwrap_or(false) {
            found = true;
        }
    }
    assert!(!found, "token stored in plaintext");
}

fn walk(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() { out.extend(walk(&path)); } else { out.push(path); }
        }
    }
    out
}

#[test]
fn bad_key_requests_name_the_field() {
    let mock = mock();
    let dir = tempdir();
    let cg = Capgate::start(&config_for(&mock, ""), &dir.path().join("data"));
    let cases = [
        (json!({"vendor": "nope", "daily_usd_cap": 1, "allowed_endpoints": ["/x"]}), "vendor"),
        (json!({"vendor": "stripe", "daily_usd_cap": -5, "allowed_endpoints": ["/x"]}), "daily_usd_cap"),
        (json!({"vendor": "stripe", "daily_usd_cap": "ten", "allowed_endpoints": ["/x"]}), "daily_usd_cap"),
        (json!({"vendor": "stripe", "daily_usd_cap": 1, "allowed_endpoints": ["/x"], "expires_in": "forever"}), "expires_in"),
        (json!({"vendor": "stripe", "daily_usd_cap": 1, "allowed_endpoints": ["POST v1/charges"]}), "allowed_endpoints[0]"),
        (json!({"vendor": "stripe", "daily_usd_cap": 1, "allowed_endpoints": ["POST /v1/cus_*"]}), "allowed_endpoints[0]"),
    ];
    for (body, field) in cases {
        let (s, v, _) = call("POST", &cg.admin_url("/v1/keys"), Some(ADMIN_TOKEN), Some(body.clone()));
        assert_eq!(s, 400, "{body}");
        assert!(v["message"].as_str().unwrap().contains(field), "{body} → {v}");
    }
    let (s, v, _) = raw_json(&cg, b"{not json");
    assert_eq!(s, 400, "{v}");
    assert_eq!(call("GET", &cg.admin_url("/v1/keys/key_missing"), Some(ADMIN_TOKEN), None).0, 404);
}

fn raw_json(cg: &Capgate, body: &[u8]) -> (u16, serde_json::Value, ()) {
    let req = format!("POST /v1/keys HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    let answer = raw(cg.admin, &bytes);
    let status = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let json = answer.split("\r\n\r\n").nth(1).and_then(|b| serde_json::from_str(b).ok()).unwrap_or_default();
    (status, json, ())
}

#[test]
fn audit_covers_allowed_and_refused_calls_by_key_label_and_time() {
    let mock = mock();
    let dir = tempdir();
    let cg = Capgate::start(&config_for(&mock, ""), &dir.path().join("data"));
    let (id_a, tok_a) = cg.issue_stripe(5.0, "flowise/a");
    let (_, tok_b) = cg.issue_stripe(5.0, "dify/b");
    let t0 = capgate::clock::now_ms();
    assert_eq!(cg.charge(&tok_a, 300).0, 200);
    assert_eq!(cg.charge(&tok_a, 301).0, 429);
    assert_eq!(cg.charge(&tok_b, 100).0, 200);
    assert_eq!(cg.charge("vk_nope", 100).0, 401);
    cg.audit_at_least(&format!("since={t0}&kind=call"), 4);
    let a = cg.audit(&format!("key_id={id_a}&kind=call"));
    assert_eq!(a.len(), 2);
    assert_eq!((a[0]["decision"].as_str(), a[1]["decision"].as_str()), (Some("allowed"), Some("refused")));
    assert_eq!(a[1]["code"], "daily_cap_exceeded");
    assert_eq!(a[1]["status"], 429);
    let flowise = cg.audit("label_prefix=flowise/&kind=call");
    assert_eq!(flowise.len(), 2);
    let all = cg.audit(&format!("since={t0}&kind=call"));
    assert_eq!(all.len(), 4, "the unauthenticated call is audited too");
    assert!(all.iter().any(|e| e["code"] == "invalid_key" && e["key_id"] == ""));
    assert!(cg.audit(&format!("until={t0}")).is_empty());
    // A priced call is preceded by its durable reservation.
    let reserves = cg.audit(&format!("key_id={id_a}&kind=reserve"));
    assert_eq!(reserves.len(), 1);
    assert_eq!(reserves[0]["spend_delta_micros"], 3_000_000);
    assert_eq!(cg.audit("decision=refused&kind=call").len(), 2);
    assert_eq!(cg.audit("vendor=stripe&kind=call").len(), 4, "the route names the vendor even for unknown keys");
    // Pagination.
    let (_, page, _) = call("GET", &cg.admin_url("/v1/audit?limit=3&kind=call"), Some(ADMIN_TOKEN), None);
    assert_eq!(page["count"], 3);
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let (_, page2, _) = call("GET", &cg.admin_url(&format!("/v1/audit?limit=3&kind=call&cursor={cursor}")), Some(ADMIN_TOKEN), None);
    assert_eq!(page2["count"], 1);
    assert!(page2["next_cursor"].is_null());
}

#[test]
fn a_stopped_worker_fails_its_keys_closed_and_health_says_so() {
    let mock = mock();
    let dir = tempdir();
    let config = dir.path().join("capgate.toml");
    std::fs::write(&config, config_for(&mock, "")).unwrap();
    // Worker 1 of 2 stops right after starting.
    let cg = Capgate::start_with(&config, &dir.path().join("data"), &[("CAPGATE_FAULT_STOP_WORKER", "1")]);
    // It stops a few milliseconds after the server answers.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (s, v) = loop {
        let (s, v, _) = call("GET", &cg.admin_url("/healthz"), None, None);
        if s != 200 || std::time::Instant::now() > deadline {
            break (s, v);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!((s, v["status"].as_str()), (503, Some("degraded")), "{v}");
    assert_eq!((v["workers"]["running"].as_u64(), v["workers"]["stopped"].as_u64()), (Some(1), Some(1)), "{v}");
    // Keys are spread over both workers by their ids: 24 keys all on one
    // worker happens once in 8 million runs.
    let (mut served, mut refused) = (0, 0);
    for i in 0..24 {
        let (_, token) = cg.issue_stripe(100.0, &format!("t/{i}"));
        let (s, v, headers) = cg.charge(&token, 100);
        match s {
            200 => served += 1,
            503 => {
                assert_eq!(v["error"].as_str(), Some("ledger_unavailable"), "{v}");
                assert!(headers.iter().any(|(k, v)| k == "x-should-retry" && v == "true"), "a call that was never forwarded may be retried");
                refused += 1;
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert!(served > 0 && refused > 0, "served {served}, refused {refused}");
    assert_eq!(mock.count(), served, "a refused call never reaches the vendor");
}
