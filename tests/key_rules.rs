//! Per-key parameter rules, the duplicate-charge guard and SDK-shaped
//! refusals, end to end.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;

#[test]
fn per_call_limit_and_daily_call_limit() {
    let mock = mock();
    let dir = tempdir();
    let cg = Capgate::start(&config_for(&mock, ""), &dir.path().join("data"));
    let (_, token) = cg.issue(json!({"vendor": "stripe", "daily_usd_cap": 1000, "max_usd_per_call": 50, "max_calls": 3, "allowed_endpoints": ["POST /v1/charges", "GET /v1/customers/*"]}));
    let (s, v, _) = form_call(&cg.proxy_url("/stripe/v1/charges"), &token, "amount=5001&currency=usd");
    assert_eq!((s, v["error"].as_str()), (403, Some("per_call_limit_exceeded")), "{v}");
    for i in 0..3 {
        let (s, _, _) = form_call(&cg.proxy_url("/stripe/v1/charges"), &token, &format!("amount={}&currency=usd", 100 + i));
        assert_eq!(s, 200);
    }
    let (s, v, h) = call("GET", &cg.proxy_url("/stripe/v1/customers/cus_1"), Some(&token), None);
    assert_eq!((s, v["error"].as_str()), (429, Some("call_cap_exceeded")), "{v}");
    assert!(header(&h, "retry-after").is_some());
    assert_eq!(mock.count(), 3);
}

#[test]
fn constraints_check_form_json_and_arrays() {
    let mock = mock();
    let dir = tempdir();
    let cg = Capgate::start(&config_for(&mock, ""), &dir.path().join("data"));
    let (_, stripe) = cg.issue(json!({"vendor": "stripe", "daily_usd_cap": 1000, "allowed_endpoints": ["POST /v1/payment_intents"], "constraints": {"customer": ["cus_123"], "currency": ["usd"]}}));
    let url = cg.proxy_url("/stripe/v1/payment_intents");
    assert_eq!(form_call(&url, &stripe, "amount=100&currency=usd&customer=cus_123").0, 200);
    let (s, v, _) = form_call(&url, &stripe, "amount=100&currency=usd&customer=cus_999");
    assert_eq!((s, v["error"].as_str(), v["param"].as_str()), (403, Some("param_not_allowed"), Some("customer")));
    assert!(!v["message"].as_str().unwrap().contains("cus_999"), "the value is not echoed");
    let (s, v, _) = form_call(&url, &stripe, "amount=100&currency=usd");
    assert_eq!((s, v["param"].as_str()), (403, Some("customer")), "leaving the parameter out does not dodge it");
    let (s, _, _) = call("POST", &url, Some(&stripe), Some(json!({"amount": 100, "currency": "eur", "customer": "cus_123"})));
    assert_eq!(s, 403);

    let (_, resend) = cg.issue(json!({"vendor": "resend", "daily_usd_cap": 10, "allowed_endpoints": ["POST /emails"], "constraints": {"to": ["*@example.com"]}}));
    let url = cg.proxy_url("/resend/emails");
    let mail = |to: serde_json::Value| json!({"from": "a@corp.test", "to": to, "subject": "s", "html": "x"});
    assert_eq!(call("POST", &url, Some(&resend), Some(mail(json!(["a@example.com", "b@example.com"])))).0, 200);
    let (s, v, _) = call("POST", &url, Some(&resend), Some(mail(json!(["a@example.com", "b@example.com.evil.io"]))));
    assert_eq!((s, v["param"].as_str()), (403, Some("to")));

    let (_, twilio) = cg.issue(json!({"vendor": "twilio", "daily_usd_cap": 10, "allowed_endpoints": ["POST /2010-04-01/Accounts/*/Messages.json"], "constraints": {"To": ["+1555*"]}}));
    let url = cg.proxy_url("/twilio/2010-04-01/Accounts/ACx/Messages.json");
    assert_eq!(form_call(&url, &twilio, "To=%2B15551234567&From=%2B15550000000&Body=hi").0, 200);
    assert_eq!(form_call(&url, &twilio, "To=%2B447700900123&From=%2B15550000000&Body=hi").0, 403);
    assert_eq!(mock.count(), 3);
}

#[test]
fn repeated_charges_are_replayed_not_charged_twice() {
    let mock = mock();
    let dir = tempdir();
    let cg = Capgate::start(&config_for(&mock, ""), &dir.path().join("data"));
    let (id, token) = cg.issue_stripe(100.0, "t/dupes");
    // An agent loop resending the same charge (params in another order, too).
    assert_eq!(form_call(&cg.proxy_url("/stripe/v1/payment_intents"), &token, "amount=4000&currency=usd&customer=cus_1").0, 200);
    assert_eq!(form_call(&cg.proxy_url("/stripe/v1/payment_intents"), &token, "customer=cus_1&currency=usd&amount=4000").0, 200);
    assert_eq!(form_call(&cg.proxy_url("/stripe/v1/payment_intents"), &token, "amount=4000&currency=usd&customer=cus_1").0, 200);
    assert_eq!(cg.key(&id)["spent_today_usd"], 40.0, "charged once");
    let rec = mock.recorded();
    let keys: Vec<String> = rec.iter().map(|r| r.header("idempotency-key").unwrap()).collect();
    // capgate-<fingerprint, 32 hex digits>-<ms of the first call>
    let parts: Vec<&str> = keys[0].split('-').collect();
    assert_eq!(parts.len(), 3, "{}", keys[0]);
    assert_eq!(parts[0], "capgate");
    assert!(parts[1].len() == 32 && parts[1].bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{}", keys[0]);
    assert!(parts[2].parse::<u64>().is_ok_and(|ms| ms > 1_700_000_000_000), "{}", keys[0]);
    assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
    // A different charge gets its own key and is counted.
    assert_eq!(form_call(&cg.proxy_url("/stripe/v1/payment_intents"), &token, "amount=4100&currency=usd&customer=cus_1").0, 200);
    assert_ne!(mock.recorded()[3].header("idempotency-key").unwrap(), keys[0]);
    assert_eq!(cg.key(&id)["spent_today_usd"], 81.0);
    // The client's own Idempotency-Key is kept and not second-guessed.
    assert_eq!(form_call_with(&cg.proxy_url("/stripe/v1/payment_intents"), &token, "amount=100&currency=usd", &[("Idempotency-Key", "client-key-1")]).0, 200);
    assert_eq!(mock.recorded()[4].header("idempotency-key").unwrap(), "client-key-1");
    assert_eq!(mock.recorded()[4].headers.iter().filter(|(n, _)| n == "idempotency-key").count(), 1);
}

#[test]
fn stripe_sdk_clients_get_stripe_shaped_refusals() {
    let mock = mock();
    let dir = tempdir();
    let cg = Capgate::start(&config_for(&mock, ""), &dir.path().join("data"));
    let (_, token) = cg.issue_stripe(1.0, "t/shape");
    let (s, v, h) = form_call_with(&cg.proxy_url("/stripe/v1/payment_intents"), &token, "amount=500&currency=usd", &[("X-Stripe-Client-User-Agent", "{}")]);
    assert_eq!(s, 429);
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(v["error"]["code"], "daily_cap_exceeded");
    assert!(v["error"]["message"].as_str().unwrap().contains("cap"));
    assert_eq!(v["code"], "cap_exhausted");
    assert_eq!(header(&h, "stripe-should-retry"), Some("false"));
    // Everyone else gets the flat shape.
    let (_, v, _) = cg.charge(&token, 500);
    assert_eq!(v["error"], "daily_cap_exceeded");
}

#[test]
fn currencies_are_priced_in_their_minor_units() {
    let mock = mock();
    let dir = tempdir();
    let cg = Capgate::start(&config_for(&mock, "[pricing.currency.rates_usd]\njpy = 0.01\nkwd = 3.0\n"), &dir.path().join("data"));
    let (id, token) = cg.issue_stripe(1000.0, "t/fx");
    assert_eq!(form_call(&cg.proxy_url("/stripe/v1/charges"), &token, "amount=1000&currency=jpy").0, 200); // ¥1000 = $10
    assert_eq!(form_call(&cg.proxy_url("/stripe/v1/charges"), &token, "amount=1500&currency=kwd").0, 200); // 1.500 KWD = $4.50
    assert_eq!(cg.key(&id)["spent_today_usd"], 14.5);
    let (s, v, _) = form_call(&cg.proxy_url("/stripe/v1/charges"), &token, "amount=100&currency=xyz");
    assert_eq!((s, v["error"].as_str()), (400, Some("unpriced_currency")));
    assert_eq!(mock.count(), 2);
}
