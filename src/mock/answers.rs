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
    let mut out = encode_response_head(200, "OK", &[("content-type".into(), b"text/event-stream".to_vec())], None, keep_alive);
    for e in events {
        out.extend_from_slice(format!("{:x}\r\n{e}\r\n", e.len()).as_bytes());
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
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
        ("POST", "/v1/payment_intents") => json_reply(&json!({"id": format!("pi_mock{n}"), "object": "payment_intent", "amount": amount(&p), "currency": p["currency"], "customer": p["customer"], "status": "requires_confirmation"}), ka),
        ("POST", "/v1/charges") => json_reply(&json!({"id": format!("ch_mock{n}"), "object": "charge", "amount": amount(&p), "currency": p["currency"], "status": "succeeded"}), ka),
        ("POST", "/v1/refunds") => json_reply(&json!({"id": format!("re_mock{n}"), "object": "refund", "amount": amount(&p), "status": "succeeded"}), ka),
        ("GET", p2) if p2.starts_with("/v1/customers/") => json_reply(&json!({"id": p2.trim_start_matches("/v1/customers/"), "object": "customer"}), ka),
        ("POST", "/v1/chat/completions") => {
            let model = p["model"].as_str().unwrap_or("gpt-4o-mini").to_string();
            if p["stream"] == json!(true) {
                let mut ev = vec![
                    format!("data: {}\n\n", json!({"id": format!("chatcmpl-mock{n}"), "object": "chat.completion.chunk", "model": model, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": null}]})),
                    format!("data: {}\n\n", json!({"id": format!("chatcmpl-mock{n}"), "object": "chat.completion.chunk", "model": model, "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]})),
                ];
                if p["stream_options"]["include_usage"] == json!(true) {
                    ev.push(format!("data: {}\n\n", json!({"id": format!("chatcmpl-mock{n}"), "object": "chat.completion.chunk", "model": model, "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14}})));
                }
                ev.push("data: [DONE]\n\n".to_string());
                sse_reply(&ev, ka)
            } else {
                json_reply(&json!({"id": format!("chatcmpl-mock{n}"), "object": "chat.completion", "model": model, "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14}}), ka)
            }
        }
        ("POST", "/v1/messages") => {
            let model = p["model"].as_str().unwrap_or("claude-sonnet-4").to_string();
            if p["stream"] == json!(true) {
                let ev = vec![
                    format!("event: message_start\ndata: {}\n\n", json!({"type": "message_start", "message": {"id": format!("msg_mock{n}"), "type": "message", "role": "assistant", "model": model, "content": [], "usage": {"input_tokens": 20, "output_tokens": 1}}})),
                    format!("event: content_block_delta\ndata: {}\n\n", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}})),
                    format!("event: message_delta\ndata: {}\n\n", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 5}})),
                    format!("event: message_stop\ndata: {}\n\n", json!({"type": "message_stop"})),
                ];
                sse_reply(&ev, ka)
            } else {
                json_reply(&json!({"id": format!("msg_mock{n}"), "type": "message", "role": "assistant", "model": model, "content": [{"type": "text", "text": "Hello"}], "stop_reason": "end_turn", "usage": {"input_tokens": 20, "output_tokens": 5}}), ka)
            }
        }
        ("POST", p2) if p2.starts_with("/2010-04-01/Accounts/") && p2.ends_with("/Messages.json") => {
            json_reply(&json!({"sid": format!("SMmock{n}"), "status": "queued", "to": p["To"], "body": p["Body"]}), ka)
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
