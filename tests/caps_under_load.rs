//! The cap holds under concurrency (200 requests on one key across all
//! workers forward exactly what fits) and across restarts.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::*;

#[test]
fn concurrent_requests_forward_exactly_what_fits() {
    let mock = Arc::new(mock());
    let dir = tempdir();
    let cg = Arc::new(Capgate::start(&config_for(&mock, ""), &dir.path().join("data")));
    // $75 cap, $1 charges: exactly 75 of 200 fit.
    let (id, token) = cg.issue_stripe(75.0, "load/one-key");
    let handles: Vec<_> = (0..200)
        .map(|i| {
            let cg = Arc::clone(&cg);
            let token = token.clone();
            // Distinct bodies: identical ones would be duplicates (see below).
            std::thread::spawn(move || form_call(&cg.proxy_url("/stripe/v1/payment_intents"), &token, &format!("amount=100&currency=usd&metadata[n]={i}")).0)
        })
        .collect();
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let capped = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((ok, capped), (75, 125), "{statuses:?}");
    assert_eq!(mock.count(), 75, "exactly the calls that fit reached the vendor");
    let forwarded_cents: u64 = mock.recorded().iter().map(|r| {
        let body = String::from_utf8_lossy(&r.body).into_owned();
        body.split('&').find_map(|kv| kv.strip_prefix("amount=")).unwrap().parse::<u64>().unwrap()
    }).sum();
    assert_eq!(forwarded_cents, 7500);
    assert_eq!(cg.key(&id)["spent_today_usd"], 75.0);
}

#[test]
fn concurrent_identical_charges_are_charged_once() {
    let mock = Arc::new(mock());
    let dir = tempdir();
    let cg = Arc::new(Capgate::start(&config_for(&mock, ""), &dir.path().join("data")));
    let (id, token) = cg.issue_stripe(1000.0, "load/dupes");
    let handles: Vec<_> = (0..50)
        .map(|_| {
            let cg = Arc::clone(&cg);
            let token = token.clone();
            std::thread::spawn(move || cg.charge(&token, 2500).0)
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 200);
    }
    assert_eq!(cg.key(&id)["spent_today_usd"], 25.0);
    let keys: std::collections::HashSet<String> = mock.recorded().iter().map(|r| r.header("idempotency-key").unwrap()).collect();
    assert_eq!(keys.len(), 1, "every copy carried the same idempotency key");
}

#[test]
fn restart_keeps_keys_and_todays_spend() {
    let mock = mock();
    let dir = tempdir();
    let data = dir.path().join("data");
    let cg = Capgate::start(&config_for(&mock, ""), &data);
    let (id, token) = cg.issue_stripe(100.0, "restart/a");
    let (revoked_id, revoked_tok) = cg.issue_stripe(100.0, "restart/b");
    assert_eq!(cg.charge(&token, 6000).0, 200);
    assert_eq!(common::call("DELETE", &cg.admin_url(&format!("/v1/keys/{revoked_id}")), Some(ADMIN_TOKEN), None).0, 200);
    let config = cg.config.clone();
    cg.kill();
    let cg = Capgate::start_with(&config, &data, &[]);
    assert_eq!(cg.key(&id)["spent_today_usd"], 60.0);
    let (s, v, _) = cg.charge(&token, 5000);
    assert_eq!((s, v["code"].as_str()), (429, Some("cap_exhausted")), "a restart never resets a cap");
    // The duplicate guard's memory is per process: after a restart the same
    // body gets a new idempotency key but the cap still holds.
    assert_eq!(cg.charge(&token, 4000).0, 200);
    assert_eq!(cg.charge(&revoked_tok, 100).1["error"], "key_revoked");
    assert_eq!(cg.audit_at_least(&format!("key_id={id}&kind=call"), 3).len(), 3);
}
