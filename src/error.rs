//! The one refusal type. Every request capgate declines (bad input, policy,
//! cap, upstream trouble, audit trouble) is a [`Refusal`], from which both the
//! client's JSON answer and the audit event's decision code are written.

use serde_json::{json, Map, Value};

/// Where a refusal came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Malformed or oversized client input.
    Client,
    /// The vault key's policy (auth, scope, cap) said no.
    Policy,
    /// The vendor could not be reached.
    Upstream,
    /// The audit log could not be written.
    Audit,
    /// A bug or resource problem inside capgate.
    Internal,
}

/// A declined request: HTTP status, stable machine code and a human message.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// HTTP status sent to the client.
    pub status: u16,
    /// Stable machine-readable code (the JSON `error` field).
    pub code: &'static str,
    /// Human-readable explanation. Never contains a secret.
    pub message: String,
    /// Which layer refused.
    pub source: Source,
    /// Seconds after which retrying can succeed (cap refusals).
    pub retry_after: Option<u64>,
    /// Extra JSON fields merged into the body (cap figures).
    pub extra: Map<String, Value>,
}

/// Micro-dollars rendered as USD for human-facing JSON.
pub fn usd(micros: u64) -> f64 {
    micros as f64 / 1_000_000.0
}

impl Refusal {
    /// A refusal with no extra fields.
    pub fn new(status: u16, code: &'static str, source: Source, message: impl Into<String>) -> Self {
        Refusal { status, code, message: message.into(), source, retry_after: None, extra: Map::new() }
    }

    /// 400 for malformed client input.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, code, Source::Client, message)
    }

    /// 401: no such vault key.
    pub fn invalid_key() -> Self {
        Self::new(401, "invalid_key", Source::Policy, "The vault key is missing or not recognised.")
    }

    /// 401: the key was revoked.
    pub fn key_revoked() -> Self {
        Self::new(401, "key_revoked", Source::Policy, "This vault key has been revoked.")
    }

    /// 401: the key is past its expiry.
    pub fn key_expired() -> Self {
        Self::new(401, "key_expired", Source::Policy, "This vault key has expired.")
    }

    /// 403: the key is for another vendor.
    pub fn vendor_not_allowed(key_vendor: &str, asked: &str) -> Self {
        Self::new(
            403,
            "vendor_not_allowed",
            Source::Policy,
            format!("This vault key is for vendor '{key_vendor}', not '{asked}'."),
        )
    }

    /// 403: the endpoint is outside the key's allowlist.
    pub fn endpoint_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            403,
            "endpoint_not_allowed",
            Source::Policy,
            format!("{method} {path} is not in this vault key's allowed_endpoints."),
        )
    }

    /// 429: the call would cross the daily cap. Never forwarded.
    pub fn cap_exceeded(cap: u64, spent: u64, cost: u64, retry_after: u64) -> Self {
        let mut r = Self::new(
            429,
            "daily_cap_exceeded",
            Source::Policy,
            format!(
                "This call (${:.2}) would exceed the vault key's daily cap of ${:.2}; ${:.2} already spent today (UTC).",
                usd(cost),
                usd(cap),
                usd(spent)
            ),
        );
        r.retry_after = Some(retry_after);
        r.extra.insert("code".into(), json!("cap_exhausted"));
        r.extra.insert("daily_usd_cap".into(), json!(usd(cap)));
        r.extra.insert("spent_today_usd".into(), json!(usd(spent)));
        r.extra.insert("request_usd".into(), json!(usd(cost)));
        r.extra.insert("remaining_usd".into(), json!(usd(cap.saturating_sub(spent))));
        r
    }

    /// 403: a constrained parameter has a value the key does not allow.
    /// The value itself is not echoed.
    pub fn param_not_allowed(param: &str) -> Self {
        let mut r = Self::new(403, "param_not_allowed", Source::Policy, format!("parameter '{param}' is missing or has a value this vault key does not allow"));
        r.extra.insert("param".into(), json!(param));
        r
    }

    /// 403: one call costs more than the key's per-call limit.
    pub fn per_call_limit_exceeded(cost: u64, max: u64) -> Self {
        Self::new(
            403,
            "per_call_limit_exceeded",
            Source::Policy,
            format!("This call (${:.2}) is above the vault key's per-call limit of ${:.2}.", usd(cost), usd(max)),
        )
    }

    /// 429: the key's daily call limit is reached.
    pub fn call_cap_exceeded(max: u32, retry_after: u64) -> Self {
        let mut r = Self::new(429, "call_cap_exceeded", Source::Policy, format!("This vault key's limit of {max} calls per UTC day is reached."));
        r.retry_after = Some(retry_after);
        r.extra.insert("max_calls".into(), json!(max));
        r
    }

    /// 502: the vendor was not reached; nothing was charged.
    pub fn upstream_unavailable(message: impl Into<String>) -> Self {
        Self::new(502, "upstream_unavailable", Source::Upstream, message)
    }

    /// 503: the audit log cannot be written, so spend-carrying calls stop.
    pub fn audit_unavailable() -> Self {
        Self::new(503, "audit_unavailable", Source::Audit, "The audit log cannot be written; capgate refuses calls that carry spend until it recovers.")
    }

    /// 500 for internal faults.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "internal_error", Source::Internal, message)
    }

    /// The JSON answer body.
    pub fn body(&self, request_id: &str) -> Vec<u8> {
        let mut obj = Map::new();
        obj.insert("error".into(), json!(self.code));
        obj.insert("code".into(), json!(self.code));
        obj.insert("message".into(), json!(self.message));
        for (k, v) in &self.extra {
            obj.insert(k.clone(), v.clone());
        }
        if !request_id.is_empty() {
            obj.insert("request_id".into(), json!(request_id));
        }
        serde_json::to_vec(&Value::Object(obj)).unwrap_or_default()
    }

    /// The body in Stripe's error shape, for Stripe SDK clients: the SDK
    /// raises its own typed error (by status) with capgate's message, and
    /// capgate's `code` and figures stay at the top level.
    pub fn stripe_body(&self, request_id: &str) -> Vec<u8> {
        let mut obj = Map::new();
        let kind = if self.status >= 500 { "api_error" } else { "invalid_request_error" };
        obj.insert("error".into(), json!({"type": kind, "code": self.code, "message": self.message}));
        obj.insert("code".into(), json!(self.code));
        for (k, v) in &self.extra {
            obj.insert(k.clone(), v.clone());
        }
        obj.insert("capgate_error".into(), json!(self.code));
        if !request_id.is_empty() {
            obj.insert("request_id".into(), json!(request_id));
        }
        serde_json::to_vec(&Value::Object(obj)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_body_has_both_codes_and_figures() {
        let r = Refusal::cap_exceeded(200_000_000, 150_000_000, 60_000_000, 30);
        let v: Value = serde_json::from_slice(&r.body("req_1")).unwrap();
        assert_eq!(r.status, 429);
        assert_eq!(v["error"], "daily_cap_exceeded");
        assert_eq!(v["code"], "cap_exhausted");
        assert_eq!(v["daily_usd_cap"], 200.0);
        assert_eq!(v["spent_today_usd"], 150.0);
        assert_eq!(v["request_id"], "req_1");
    }
}
