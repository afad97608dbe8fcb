//! Bad input gets a clear 4xx, never a panic and never a forwarded request:
//! allowlist bypass attempts, malformed HTTP, ambiguous framing, huge bodies.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{json, Value};

#[test]
fn allowlist_bypass_attempts_are_refused() {
    let mock = mock();
    let dir = tempdir();
    let cg = Capgate::start(&config_for(&mock, ""), &dir.path().join("data"));
    let (_, token) = cg.issue(json!({"vendor": "stripe", "daily_usd_cap": 100, "allowed_endpoints": ["POST /v1/payment_intents", "GET /v1/customers/*"]}));
    let attempts = [
        "/stripe/v1/payment_intents/../refunds",
        "/stripe/v1/payment_intents/%2e%2e/refunds",
        "/stripe/v1/payment_intents/.%2E/refunds",
        "/stripe//v1/refunds",
        "//stripe/v1/refunds",
        "/stripe/v1%2Frefunds",
        "/stripe/v1/payment_intents%2F..%2Frefunds",
        "/stripe/v1/customers/cus_1/../../refunds",
        "/stripe/v1/customers/%252e%252e",
        "/stripe/v1/refunds",
        "/stripe/V1/payment_intents",
        "/stripe/v1/payment_intents/",
    ];
    for path in attempts {
        let (s, v, _) = form_call(&cg.proxy_url(path), &token, "amount=100&currency=usd");
        assert!(s == 400 || s == 403, "{path} → {s} {v}");
        assert!(v["error"].is_string(), "{path}: JSON error body");
    }
    // Method override headers are not honoured (and not forwarded).
    let (s, _, _) = form_call_with(&cg.proxy_url("/stripe/v1/customers/cus_1"), &token, "", &[("X-HTTP-Method-Override", "GET")]);
    assert_eq!(s, 403);
    assert_eq!(mock.count(), 0, "nothing reached the vendor");
    // The allowed forms still work.
    assert_eq!(form_call(&cg.proxy_url("/stripe/v1/payment%5Fintents"), &token, "amount=100&currency=usd").0, 200);
    assert_eq!(mock.recorded()[0].target, "/v1/payment_intents");
    // Each refusal is audited under the path it was judged by: the raw
    // target when it could not be canonicalised, else the canonical path.
    let refused: Vec<Value> = cg.audit_at_least("decision=refused&limit=100", attempts.len() + 1);
    assert_eq!(refused.len(), attempts.len() + 1, "{refused:?}");
    let path_of = |code: &str| refused.iter().filter(|e| e["code"] == code).map(|e| e["path"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    let unroutable = path_of("invalid_path");
    assert!(unroutable.contains(&"/stripe/v1%2Frefunds".to_string()), "{unroutable:?}");
    assert!(unroutable.iter().all(|p| attempts.contains(&p.as_str())), "{unroutable:?}");
    let judged = path_of("endpoint_not_allowed");
    assert!(judged.contains(&"/v1/refunds".to_string()), "{judged:?}");
}

#[test]
fn malformed_http_gets_4xx_and_is_never_forwarded() {
    let mock = mock();
    let dir = tempdir();
    let cg = Capgate::start(&config_for(&mock, ""), &dir.path().join("data"));
    let (_, token) = cg.issue_stripe(100.0, "t/hostile");
    let auth = format!("Authorization: Bearer {token}\r\n");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"GARBAGE\r\n\r\n".to_vec(), "400"),
        (format!("POST /stripe/v1/charges HTTP/1.1\r\n{auth}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n").into_bytes(), "400"),
        (format!("POST /stripe/v1/charges HTTP/1.1\r\n{auth}Content-Length: 5\r\nContent-Length: 7\r\n\r\nhello").into_bytes(), "400"),
        (format!("POST /stripe/v1/charges HTTP/1.1\r\n{auth}Transfer-Encoding: gzip\r\n\r\n").into_bytes(), "400"),
        (format!("POST /stripe/v1/charges HTTP/1.1\r\n{auth}Content-Length: 99999999\r\n\r\n").into_bytes(), "413"),
        (format!("GET /stripe/v1/customers/cus_1 HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(40_000)).into_bytes(), "431"),
        (format!("POST /stripe/v1/charges HTTP/1.1\r\n{auth}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n").into_bytes(), "400"),
        (b"GET http://evil.example/v1/customers HTTP/1.1\r\n\r\n".to_vec(), "400"),
        (b"GET /stripe/v1/customers/\xff HTTP/1.1\r\n\r\n".to_vec(), "400"),
    ];
    for (bytes, want) in cases {
        let answer = raw(cg.proxy, &bytes);
        assert!(answer.starts_with(&format!("HTTP/1.1 {want}")), "{:?} → {answer:?}", String::from_utf8_lossy(&bytes[..bytes.len().min(80)]));
    }
    // Chunked framing a lenient parser could read two ways: a bare LF
    // inside an extension, a size line without digits (some read it as the
    // last chunk), a trailer line without a colon. Refused as framing.
    for body in [&b"5;x\ny\r\nhello\r\n0\r\n\r\n"[..], b"\r\n\r\n", b"5\r\nhello\r\n0\r\nno colon here\r\n\r\n"] {
        let mut bytes = format!("POST /stripe/v1/charges HTTP/1.1\r\n{auth}Transfer-Encoding: chunked\r\n\r\n").into_bytes();
        bytes.extend_from_slice(body);
        let answer = raw(cg.proxy, &bytes);
        assert!(answer.starts_with("HTTP/1.1 400") && answer.contains("invalid_body_framing"), "{:?} → {answer:?}", String::from_utf8_lossy(body));
    }
    // A chunked body larger than the limit.
    let big = "a".repeat(1024 * 1024 + 10);
    let mut chunked = format!("POST /stripe/v1/charges HTTP/1.1\r\n{auth}Transfer-Encoding: chunked\r\n\r\n").into_bytes();
    for piece in big.as_bytes().chunks(64 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let answer = raw(cg.proxy, &chunked);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    // A chunk declared past the limit is refused from its size line, before
    // any of its data is sent (or buffered).
    let declared = format!("POST /stripe/v1/charges HTTP/1.1\r\n{auth}Transfer-Encoding: chunked\r\n\r\n{:x}\r\n", 1024 * 1024 + 1);
    let answer = raw(cg.proxy, declared.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    assert_eq!(mock.count(), 0);
    // The server is still healthy afterwards.
    assert_eq!(cg.charge(&token, 100).0, 200);
}

#[test]
fn chunked_requests_are_dechunked_and_priced() {
    let mock = mock();
    let dir = tempdir();
    let cg = Capgate::start(&config_for(&mock, ""), &dir.path().join("data"));
    let (id, token) = cg.issue_stripe(100.0, "t/chunked");
    let body = "amount=700&currency=usd";
    let req = format!("POST /stripe/v1/charges HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n", &body[..5], body.len() - 5, &body[5..]);
    let answer = raw(cg.proxy, req.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(String::from_utf8_lossy(&mock.recorded()[0].body), body);
    assert_eq!(cg.key(&id)["spent_today_usd"], 7.0);
    // Chunk extensions are ignored and trailers dropped (RFC 9112 §7.1),
    // and the connection stays in step: a second request written right
    // behind the first is read as its own.
    // (Another amount: the duplicate guard would replay the same charge.)
    let first = "amount=800&currency=usd";
    let second = "amount=300&currency=usd";
    let pipelined = format!(
        "POST /stripe/v1/charges HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n\
         5;name=value\r\n{}\r\n{:X} ; a=\"q;x\"\r\n{}\r\n0;last\r\nDigest: sha-256=abc\r\nX-Trailer: 1\r\n\r\n\
         POST /stripe/v1/charges HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{second}",
        &first[..5], first.len() - 5, &first[5..], second.len()
    );
    let answers = raw(cg.proxy, pipelined.as_bytes());
    assert_eq!(answers.matches("HTTP/1.1 200").count(), 2, "{answers}");
    let recorded = mock.recorded();
    assert_eq!(recorded.len(), 3);
    assert_eq!(String::from_utf8_lossy(&recorded[1].body), first);
    assert_eq!(String::from_utf8_lossy(&recorded[2].body), second);
    assert!(recorded[1].headers.iter().all(|(n, _)| n != "digest" && n != "x-trailer" && n != "transfer-encoding"), "{:?}", recorded[1].headers);
    assert_eq!(cg.key(&id)["spent_today_usd"], 18.0);
}

#[test]
fn odd_content_types_get_an_answer_and_the_core_keeps_serving() {
    let mock = mock();
    let dir = tempdir();
    let cg = Capgate::start(&config_for(&mock, ""), &dir.path().join("data"));
    let (id, token) = cg.issue_stripe(100.0, "t/odd-ct");
    // Multi-byte characters in the media type, where "+json" would be looked for.
    for ct in ["a\u{e9}xxxx", "\u{fc}", "x/\u{e9}+json\u{e9}"] {
        let body = "amount=100&currency=usd";
        let req = format!("POST /stripe/v1/charges HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        let answer = raw(cg.proxy, req.as_bytes());
        assert!(answer.starts_with("HTTP/1.1 4"), "{ct:?} gets a clear refusal (its parameters are unreadable): {answer}");
    }
    assert!(mock.recorded().is_empty(), "nothing unpriced is forwarded");
    // The same proxy still serves, on every core (distinct amounts: the
    // duplicate guard would replay identical charges).
    for cents in 100..104 {
        let (status, _, _) = cg.charge(&token, cents);
        assert_eq!(status, 200);
    }
    assert_eq!(cg.key(&id)["spent_today_usd"], 4.06);
}
