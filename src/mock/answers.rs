//! The mock vendor's canned answers, shaped like each real vendor's.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};

use crate::http1::conn::{encode_response_head, simple_response};
use crate::http1::RequestHead;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

fn params(body: &[u8]) -> Value {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return v;
    }
    let map: serde_json::Map<String, Value> = form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))).collect();
    Value::Object(map)
}

fn json_reply(v: &Value, keep_alive: bool) -> Vec<u8> {
    simple_response(200, "application/json", &[], &serde_json::to_vec(v).unwrap_or_default(), keep_alive)
}

fn sse_reply(events: &[String], keep_alive: bool) -> Vec<u8> {
    let mut out = encode_response_head(200, "OK", &[("content-type", b"text/event-stream".as_slice())], None, keep_alive);
    for e in events {
        out.extend_from_slice(format!("{:x}\r\n{e}\r\n", e.len()).as_bytes());
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Now as RFC 2822 (Twilio's date format), e.g. `Mon, 24 Nov 2025 10:00:00 +0000`.
fn rfc2822_now() -> String {
    let secs = unix_now();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} +0000",
        WEEKDAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn amount(p: &Value) -> Value {
    match &p["amount"] {
        Value::String(s) => s.parse::<u64>().map(Value::from).unwrap_or(Value::Null),
        v => v.clone(),
    }
}

/// The answer for a request the mock accepted.
pub fn answer(head: &RequestHead, body: &[u8]) -> Vec<u8> {
    let path = head.target.split('?').next().unwrap_or("");
    let p = params(body);
    let ka = head.keep_alive;
    let n = next_id();
    match (head.method.as_str(), path) {
        ("POST", "/v1/payment_intents") => json_reply(&json!({"id": format!("pi_mock{n}"), "object": "payment_intent", "amount": amount(&p), "currency": p["currency"], "customer": p["customer"], "status": "requires_confirmation", "created": unix_now(), "livemode": false}), ka),
        ("POST", "/v1/charges") => json_reply(&json!({"id": format!("ch_mock{n}"), "object": "charge", "amount": amount(&p), "currency": p["currency"], "status": "succeeded"}), ka),
        ("POST", "/v1/refunds") => json_reply(&json!({"id": format!("re_mock{n}"), "object": "refund", "amount": amount(&p), "status": "succeeded"}), ka),
        ("GET", p2) if p2.starts_with("/v1/customers/") => json_reply(&json!({"id": p2.trim_start_matches("/v1/customers/"), "object": "customer"}), ka),
        ("POST", "/v1/chat/completions") => {
            let model = p["model"].as_str().unwrap_or("gpt-4o-mini").to_string();
            let id = format!("chatcmpl-mock{n}");
            let created = unix_now();
            // What the OpenAI SDKs' chunk models read: id, object, created, model, choices.
            let chunk = |choices: Value| json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model, "system_fingerprint": "fp_mock", "choices": choices});
            if p["stream"] == json!(true) {
                let mut ev = vec![
                    format!("data: {}\n\n", chunk(json!([{"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "logprobs": null, "finish_reason": null}]))),
                    format!("data: {}\n\n", chunk(json!([{"index": 0, "delta": {"content": "lo"}, "logprobs": null, "finish_reason": "stop"}]))),
                ];
                if p["stream_options"]["include_usage"] == json!(true) {
                    let mut last = chunk(json!([]));
                    last["usage"] = json!({"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14});
                    ev.push(format!("data: {last}\n\n"));
                }
                ev.push("data: [DONE]\n\n".to_string());
                sse_reply(&ev, ka)
            } else {
                json_reply(
                    &json!({"id": id, "object": "chat.completion", "created": created, "model": model, "system_fingerprint": "fp_mock",
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello", "refusal": null}, "logprobs": null, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14}}),
                    ka,
                )
            }
        }
        ("POST", "/v1/messages") => {
            let model = p["model"].as_str().unwrap_or("claude-sonnet-4").to_string();
            let id = format!("msg_mock{n}");
            if p["stream"] == json!(true) {
                // The full event sequence the Anthropic SDKs' stream accumulators expect.
                let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
                let ev = vec![
                    event("message_start", json!({"type": "message_start", "message": {"id": id, "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
                        "usage": {"input_tokens": 20, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}})),
                    event("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
                    event("ping", json!({"type": "ping"})),
                    event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}})),
                    event("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
                    event("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 5}})),
                    event("message_stop", json!({"type": "message_stop"})),
                ];
                sse_reply(&ev, ka)
            } else {
                json_reply(
                    &json!({"id": id, "type": "message", "role": "assistant", "model": model, "content": [{"type": "text", "text": "Hello"}], "stop_reason": "end_turn", "stop_sequence": null,
                        "usage": {"input_tokens": 20, "output_tokens": 5, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}),
                    ka,
                )
            }
        }
        ("POST", p2) if p2.starts_with("/2010-04-01/Accounts/") && p2.ends_with("/Messages.json") => {
            // Twilio's Message resource (what the SDKs' MessageInstance reads).
            let account = p2.trim_start_matches("/2010-04-01/Accounts/").split('/').next().unwrap_or("");
            let sid = format!("SMmock{n}");
            let date = rfc2822_now();
            json_reply(
                &json!({"sid": sid, "account_sid": account, "api_version": "2010-04-01", "status": "queued", "direction": "outbound-api",
                    "to": p["To"], "from": p["From"], "messaging_service_sid": p["MessagingServiceSid"], "body": p["Body"],
                    "num_segments": "1", "num_media": "0", "price": null, "price_unit": "USD", "error_code": null, "error_message": null,
                    "date_created": date, "date_updated": date, "date_sent": null,
                    "uri": format!("/2010-04-01/Accounts/{account}/Messages/{sid}.json"),
                    "subresource_uris": {"media": format!("/2010-04-01/Accounts/{account}/Messages/{sid}/Media.json")}}),
                ka,
            )
        }
        ("GET", p2) if p2.starts_with("/v1/mock/bytes/") => {
            let n = p2.trim_start_matches("/v1/mock/bytes/").parse::<usize>().unwrap_or(0).min(16 << 20);
            let body: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
            simple_response(200, "application/octet-stream", &[], &body, ka)
        }
        ("POST", "/emails") => json_reply(&json!({"id": format!("email_mock{n}")}), ka),
        ("POST", "/emails/batch") => json_reply(&json!({"data": [{"id": format!("email_mock{n}")}]}), ka),
        _ => json_reply(&json!({"id": format!("obj_mock{n}"), "object": "mock", "method": head.method, "path": path}), ka),
    }
}
