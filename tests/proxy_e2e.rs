//! End-to-end proxy behaviour over real loopback sockets: credential swap,
//! every refusal, revocation, expiry, vendor errors and upstream failures.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;

#[test]
fn forwards_with_real_credential_and_never_the_vault_key() {
    let mock = mock();
    let dir = tempdir();
    let cg = Capgate::start(&config_for(&mock, ""), &dir.path().join("data"));
    let (id, token) = cg.issue_stripe(200.0, "flowise/s1");
    let (status, body, headers) = cg.charge(&token, 1999);
    assert_eq!(status, 200, "{body}");
    assert!(body["id"].as_str().unwrap().starts_with("pi_mock"));
    assert!(header(&headers, "x-capgate-request-id").unwrap().starts_with("req_"));
    let rec = mock.recorded();
    assert_eq!(rec.len(), 1);
    let r = &rec[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.target, "/v1/payment_intents");
    assert_eq!(r.header("authorization").unwrap(), format!("Bearer {REAL_SECRET}"));
    let all_headers: String = r.headers.iter().map(|(n, v)| format!("{n}: {}\n", String::from_utf8_lossy(v))).collect();
    assert!(!all_headers.contains(&token), "vault key leaked upstream: {all_headers}");
    assert_eq!(String::from_utf8_lossy(&r.body), "amount=1999&currency=usd&customer=cus_1");
    // Spend and audit reflect the priced call.
    let k = cg.key(&id);
    assert_eq!(k["spent_today_usd"], 19.99);
    let events = cg.audit(&format!("key_id={id}&kind=call"));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["decision"], "allowed");
    assert_eq!(events[0]["settled_micros"], 19_990_000);
    assert_eq!(events[0]["label"], "flowise/s1");
    assert_eq!(events[0]["object_id"].as_str().unwrap(), body["id"].as_str().unwrap());
}

#[test]
fn every_refusal_has_its_status_code_and_is_never_forwarded() {
    let mock = mock();
    let dir = tempdir();
    let cg = Capgate::start(&config_for(&mock, ""), &dir.path().join("data"));
    let (_, token) = cg.issue_stripe(10.0, "t/refusals");

    // unknown token
    let (s, v, h) = cg.charge("vk_0000000000000000000000000000000000000000000000ff", 100);
    assert_eq!((s, v["error"].as_str()), (401, Some("invalid_key")));
    assert_eq!(header(&h, "x-should-retry"), Some("false"));
    let (s, v, _) = call("GET", &cg.proxy_url("/stripe/v1/customers/cus_1"), None, None);
    assert_eq!((s, v["error"].as_str()), (401, Some("invalid_key")));

    // wrong vendor
    let (s, v, _) = call("POST", &cg.proxy_url("/openai/v1/chat/completions"), Some(&token), Some(json!({"model": "gpt-4o-mini"})));
    assert_eq!((s, v["error"].as_str()), (403, Some("vendor_not_allowed")));

    // endpoint outside the allowlist
    let (s, v, _) = form_call(&cg.proxy_url("/stripe/v1/refunds"), &token, "charge=ch_1");
    assert_eq!((s, v["error"].as_str()), (403, Some("endpoint_not_allowed")));
    let (s, _, _) = call("DELETE", &cg.proxy_url("/stripe/v1/customers/cus_1"), Some(&token), None);
    assert_eq!(s, 403);

    // over the cap: $10 cap, $6 fits, a second $6 does not
    assert_eq!(cg.charge(&token, 600).0, 200);
    let (s, v, h) = cg.charge(&token, 601);
    assert_eq!(s, 429, "{v}");
    assert_eq!(v["error"], "daily_cap_exceeded");
    assert_eq!(v["code"], "cap_exhausted");
    assert_eq!(v["daily_usd_cap"], 10.0);
    assert_eq!(v["spent_today_usd"], 6.0);
    assert!(v["message"].as_str().unwrap().contains("cap"));
    assert!(header(&h, "retry-after").unwrap().parse::<u64>().unwrap() <= 86_400);
    assert_eq!(header(&h, "stripe-should-retry"), Some("false"));

    // Only the one good charge reached the vendor.
    assert_eq!(mock.count(), 1);
}

#[test]
fn revoke_takes_effect_on_the_next_request() {
    let mock = mock();
    let dir = tempdir();
    let cg = Capgate::start(&config_for(&mock, ""), &dir.path().join("data"));
    let (id, token) = cg.issue_stripe(100.0, "t/revoke");
    assert_eq!(cg.charge(&token, 100).0, 200);
    let (s, v, _) = call("DELETE", &cg.admin_url(&format!("/v1/keys/{id}")), Some(ADMIN_TOKEN), None);
    assert_eq!((s, v["revoked"].as_bool()), (200, Some(true)));
    // Many requests so both workers see it.
    for _ in 0..6 {
        let (s, v, _) = cg.charge(&token, 100);
        assert_eq!((s, v["error"].as_str()), (401, Some("key_revoked")));
    }
    assert_eq!(mock.count(), 1);
    // Listing and the vault alias show the revoked key.
    let (_, v, _) = call("GET", &cg.admin_url("/vault/keys?label_prefix=t/"), Some(ADMIN_TOKEN), None);
    assert_eq!(v["data"][0]["revoked"], true);
    // Refusals of a known key are audited under its id and label.
    let events = cg.audit_until("label_prefix=t/revoke", |e| e.iter().filter(|e| e["code"] == "key_revoked").count() >= 6);
    assert_eq!(events.iter().filter(|e| e["code"] == "key_revoked" && e["key_id"] == id.as_str()).count(), 6);
}

#[test]
fn expired_keys_are_refused() {
    let mock = mock();
    let dir = tempdir();
    let cg = Capgate::start(&config_for(&mock, ""), &dir.path().join("data"));
    let (_, token) = cg.issue(json!({"vendor": "stripe", "daily_usd_cap": 5, "allowed_endpoints": ["POST /v1/charges"], "expires_in": "1s"}));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (s, v, _) = form_call(&cg.proxy_url("/stripe/v1/charges"), &token, "amount=100&currency=usd");
    assert_eq!((s, v["error"].as_str()), (401, Some("key_expired")));
    assert_eq!(mock.count(), 0);
}

#[test]
fn vendor_errors_release_the_reservation() {
    let mock = mock();
    let dir = tempdir();
    let cg = Capgate::start(&config_for(&mock, ""), &dir.path().join("data"));
    let (id, token) = cg.issue_stripe(10.0, "t/errors");
    let (s, v, _) = form_call_with(&cg.proxy_url("/stripe/v1/charges"), &token, "amount=900&currency=usd", &[("x-mock-status", "402")]);
    assert_eq!(s, 402, "vendor status passes through: {v}");
    assert_eq!(v["error"]["type"], "card_error");
    assert_eq!(cg.key(&id)["spent_today_usd"], 0.0);
    // The full cap is still available.
    assert_eq!(cg.charge(&token, 1000).0, 200);
}

#[test]
fn unreachable_vendor_is_502_and_costs_nothing() {
    let mock = mock();
    let dir = tempdir();
    let cg = Capgate::start(&config_for(&mock, ""), &dir.path().join("data"));
    let (id, token) = cg.issue(json!({"vendor": "deadvendor", "daily_usd_cap": 10, "allowed_endpoints": ["POST /v1/charges"]}));
    let (s, v, h) = form_call(&cg.proxy_url("/deadvendor/v1/charges"), &token, "amount=500&currency=usd");
    assert_eq!((s, v["error"].as_str()), (502, Some("upstream_unavailable")), "{v}");
    assert_eq!(header(&h, "x-should-retry"), Some("true"));
    assert_eq!(cg.key(&id)["spent_today_usd"], 0.0);
}

#[test]
fn a_dropped_answer_keeps_the_reservation() {
    let mock = mock();
    let dir = tempdir();
    let cg = Capgate::start(&config_for(&mock, ""), &dir.path().join("data"));
    let (id, token) = cg.issue_stripe(10.0, "t/dropped");
    let (s, v, _) = form_call_with(&cg.proxy_url("/stripe/v1/charges"), &token, "amount=400&currency=usd", &[("x-mock-close", "1")]);
    assert_eq!((s, v["error"].as_str()), (502, Some("upstream_error")), "{v}");
    assert_eq!(cg.key(&id)["spent_today_usd"], 4.0, "the vendor may have charged: keep it counted");
}

#[test]
fn json_bodies_are_priced_like_forms() {
    // The Flask snippet posts JSON to the Stripe route.
    let mock = mock();
    let dir = tempdir();
    let cg = Capgate::start(&config_for(&mock, ""), &dir.path().join("data"));
    let (id, token) = cg.issue(json!({"label": "flask-u1-r1", "vendor": "stripe", "allowed_endpoints": ["/v1/payment_intents", "/v1/payment_intents/*"], "daily_usd_cap": 1000, "expires_in": "5m"}));
    let (s, _, _) = call("POST", &cg.proxy_url("/stripe/v1/payment_intents"), Some(&token), Some(json!({"amount": 25000, "currency": "usd", "customer": "cus_9"})));
    assert_eq!(s, 200);
    assert_eq!(cg.key(&id)["spent_today_usd"], 250.0);
    let (s, v, _) = call("POST", &cg.proxy_url("/stripe/v1/payment_intents"), Some(&token), Some(json!({"amount": 80000, "currency": "usd", "customer": "cus_9"})));
    assert_eq!((s, v["code"].as_str()), (429, Some("cap_exhausted")));
}

#[test]
fn sse_streams_pass_through_and_settle_from_usage() {
    let mock = mock();
    let dir = tempdir();
    let cg = Capgate::start(&config_for(&mock, ""), &dir.path().join("data"));
    let (id, token) = cg.issue(json!({"vendor": "openai", "daily_usd_cap": 5, "allowed_endpoints": ["POST /v1/chat/completions"], "label": "t/sse"}));
    let (s, v, h) = call("POST", &cg.proxy_url("/openai/v1/chat/completions"), Some(&token), Some(json!({"model": "gpt-4o-mini", "stream": true, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]})));
    assert_eq!(s, 200);
    assert_eq!(header(&h, "content-type"), Some("text/event-stream"));
    let text = v.as_str().unwrap();
    assert!(text.contains("data: [DONE]") && text.contains("\"usage\""), "{text}");
    // capgate asked for the usage chunk on the client's behalf.
    let sent: serde_json::Value = serde_json::from_slice(&mock.recorded()[0].body).unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true);
    let events = cg.audit_until(&format!("key_id={id}"), |e| e.iter().any(|e| e["kind"] == "settle"));
    let settle = events.iter().find(|e| e["kind"] == "settle").expect("settle event");
    let call_ev = events.iter().find(|e| e["kind"] == "call").unwrap();
    assert!(settle["settled_micros"].as_u64().unwrap() < call_ev["reserved_micros"].as_u64().unwrap());
    let spent = cg.key(&id)["spent_today_usd"].as_f64().unwrap();
    assert!((spent - settle["settled_usd"].as_f64().unwrap()).abs() < 1e-9, "spend settles to usage");
}

#[test]
fn large_answers_are_relayed_intact_over_keep_alive() {
    let mock = mock();
    let dir = tempdir();
    let cg = Capgate::start(&config_for(&mock, ""), &dir.path().join("data"));
    let (_, token) = cg.issue(json!({"vendor": "stripe", "daily_usd_cap": 1, "allowed_endpoints": ["GET /v1/mock/bytes/*"]}));
    let agent = ureq::AgentBuilder::new().build();
    for n in [0usize, 1, 70_000, 1_500_000] {
        let resp = agent.get(&cg.proxy_url(&format!("/stripe/v1/mock/bytes/{n}"))).set("Authorization", &format!("Bearer {token}")).call().unwrap();
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut resp.into_reader(), &mut body).unwrap();
        assert_eq!(body.len(), n);
        assert!(body.iter().enumerate().all(|(i, b)| *b == b'a' + (i % 26) as u8));
    }
}

#[test]
fn paths_without_a_vendor_prefix_go_to_the_keys_vendor() {
    // stripe-node can only change the host, not add a /stripe prefix.
    let mock = mock();
    let dir = tempdir();
    let cg = Capgate::start(&config_for(&mock, ""), &dir.path().join("data"));
    let (id, token) = cg.issue_stripe(10.0, "t/hostonly");
    let (s, v, _) = form_call(&cg.proxy_url("/v1/payment_intents"), &token, "amount=250&currency=usd");
    assert_eq!(s, 200, "{v}");
    assert_eq!(mock.recorded()[0].target, "/v1/payment_intents");
    assert_eq!(cg.key(&id)["spent_today_usd"], 2.5);
    let (s, _, _) = form_call(&cg.proxy_url("/v1/refunds"), &token, "charge=ch_1");
    assert_eq!(s, 403);
}

#[test]
fn https_upstreams_are_reached_over_tls() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let mock = MockVendor::start_tls("127.0.0.1:0".parse().unwrap(), Some(REAL_SECRET.to_string()), &cert.cert.pem(), &cert.signing_key.serialize_pem()).unwrap();
    let dir = tempdir();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    let plain = common::mock();
    let extra = format!("[vendors.tlsvendor]\nkind = \"stripe\"\nupstream = \"https://localhost:{}\"\ncredential_env = \"CAPGATE_TEST_SECRET\"\nca_file = \"{}\"\n", mock.addr.port(), ca.display());
    let cg = Capgate::start(&config_for(&plain, &extra), &dir.path().join("data"));
    let (id, token) = cg.issue(json!({"vendor": "tlsvendor", "daily_usd_cap": 10, "allowed_endpoints": ["POST /v1/charges"]}));
    for cents in [150, 160] {
        let (s, v, _) = form_call(&cg.proxy_url("/tlsvendor/v1/charges"), &token, &format!("amount={cents}&currency=usd"));
        assert_eq!(s, 200, "{v}");
    }
    let rec = mock.recorded();
    assert_eq!(rec.len(), 2, "both calls arrived over TLS (the second on a pooled connection)");
    assert_eq!(rec[0].header("authorization").unwrap(), format!("Bearer {REAL_SECRET}"));
    assert_eq!(rec[0].header("host").unwrap(), format!("localhost:{}", mock.addr.port()));
    assert_eq!(cg.key(&id)["spent_today_usd"], 3.1);
    // An upstream whose certificate is not trusted is refused before anything is sent.
    let untrusted = format!("[vendors.badtls]\nkind = \"stripe\"\nupstream = \"https://localhost:{}\"\ncredential_env = \"CAPGATE_TEST_SECRET\"\n", mock.addr.port());
    drop(cg);
    let cg = Capgate::start(&config_for(&plain, &untrusted), &dir.path().join("data2"));
    let (id, token) = cg.issue(json!({"vendor": "badtls", "daily_usd_cap": 10, "allowed_endpoints": ["POST /v1/charges"]}));
    let (s, v, _) = form_call(&cg.proxy_url("/badtls/v1/charges"), &token, "amount=100&currency=usd");
    assert_eq!((s, v["error"].as_str()), (502, Some("upstream_unavailable")), "{v}");
    assert!(v["message"].as_str().unwrap().contains("TLS"), "{v}");
    assert_eq!(cg.key(&id)["spent_today_usd"], 0.0);
    assert_eq!(mock.count(), 2);
}

#[test]
fn a_vendor_connection_with_bytes_past_its_answer_is_not_reused() {
    let mock = mock();
    let dir = tempdir();
    let cg = Capgate::start(&config_for(&mock, ""), &dir.path().join("data"));
    let (id, token) = cg.issue_stripe(10.0, "t/stray");
    // Two requests on one client connection, so one core serves both and
    // the second would take the first's pooled vendor connection. The
    // vendor sends an unasked-for 402 behind its first answer; read as the
    // second answer, it would refuse a call the vendor never saw.
    let call = |amount: u32, extra: &str, last: bool| {
        let body = format!("amount={amount}&currency=usd");
        let close = if last { "Connection: close\r\n" } else { "" };
        format!("POST /stripe/v1/charges HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/x-www-form-urlencoded\r\n{extra}{close}Content-Length: {}\r\n\r\n{body}", body.len())
    };
    let answers = raw(cg.proxy, format!("{}{}", call(100, "x-mock-stray: 1\r\n", false), call(200, "", true)).as_bytes());
    assert_eq!(answers.matches("HTTP/1.1 200").count(), 2, "{answers}");
    assert!(!answers.contains("402"), "{answers}");
    assert_eq!(mock.count(), 2);
    assert_eq!(cg.key(&id)["spent_today_usd"], 3.0);
}

#[test]
fn a_vendor_too_slow_to_answer_is_504_and_keeps_the_reservation() {
    let mock = mock();
    let dir = tempdir();
    let cg = Capgate::start(&config_for(&mock, "[proxy]\nresponse_timeout_ms = 300\n"), &dir.path().join("data"));
    let (id, token) = cg.issue_stripe(10.0, "t/slow");
    // The mock answers long after capgate's 300 ms (a stalled runner must
    // not let the answer win); capgate answers well within the client's 20 s.
    let (s, v, _) = form_call_with(&cg.proxy_url("/stripe/v1/charges"), &token, "amount=250&currency=usd", &[("x-mock-delay-ms", "15000")]);
    assert_eq!((s, v["error"].as_str()), (504, Some("upstream_timeout")), "{v}");
    assert_eq!(cg.key(&id)["spent_today_usd"], 2.5);
}
