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

/// Micro-dollars as text for messages: cents when exact, else up to six
/// decimals (an SMS segment costs $0.0079, not "$0.01").
pub fn usd_text(micros: u64) -> String {
    if micros % 10_000 == 0 {
        format!("${}.{:02}", micros / 1_000_000, (micros % 1_000_000) / 10_000)
    } else {
        let s = format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000);
        format!("${}", s.trim_end_matches('0'))
    }
}

/// The error-body shape a client's SDK understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyShape {
    /// capgate's flat JSON (`"error": "<code>"`), for curl, requests, fetch.
    Flat,
    /// Stripe's `{"error": {"type", "code", "message"}}`.
    Stripe,
    /// OpenAI/Anthropic (Stainless) SDKs: `{"error": {"type", "code", "message"}}`.
    Nested,
    /// Flat, plus Resend's `name` and `statusCode`.
    Resend,
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
                "This call ({}) would exceed the vault key's daily cap of {}; {} already spent today (UTC).",
                usd_text(cost),
                usd_text(cap),
                usd_text(spent)
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
            format!("This call ({}) is above the vault key's per-call limit of {}.", usd_text(cost), usd_text(max)),
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

    /// 503: the core that keeps this key's spend is not answering (it
    /// stopped, or capgate is shutting down), so the call cannot be checked
    /// against its cap.
    pub fn ledger_unavailable() -> Self {
        Self::new(503, "ledger_unavailable", Source::Internal, "The spend ledger for this key is not answering (a worker stopped, or capgate is shutting down); the call was not forwarded. If it persists, restart capgate.")
    }

    /// 409: the UTC day ended between the call's arrival and its
    /// reservation. A retry counts against the new day (SDKs retry 409).
    pub fn day_rolled_over() -> Self {
        Self::new(409, "day_rolled_over", Source::Policy, "The UTC day ended while this call was being checked; it was not forwarded. Retry it: it will count against the new day.")
    }

    /// 500 for internal faults.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "internal_error", Source::Internal, message)
    }

    /// The body in the shape the client's SDK reads, so the SDK raises its
    /// own typed error (chosen by status) carrying capgate's message.
    /// capgate's `code` and figures stay at the top level in every shape.
    pub fn shaped_body(&self, shape: BodyShape, request_id: &str) -> Vec<u8> {
        let mut obj = Map::new();
        match shape {
            BodyShape::Flat | BodyShape::Resend => {
                obj.insert("error".into(), json!(self.code));
                obj.insert("message".into(), json!(self.message));
            }
            BodyShape::Stripe | BodyShape::Nested => {
                let kind = match (shape, self.status) {
                    (_, s) if s >= 500 => "api_error",
                    (BodyShape::Nested, 429) => "rate_limit_error",
                    (BodyShape::Nested, 401) => "authentication_error",
                    (BodyShape::Nested, 403) => "permission_error",
                    _ => "invalid_request_error",
                };
                obj.insert("error".into(), json!({"type": kind, "code": self.code, "message": self.message, "param": self.extra.get("param")}));
                obj.insert("capgate_error".into(), json!(self.code));
            }
        }
        obj.insert("code".into(), json!(self.code));
        for (k, v) in &self.extra {
            obj.insert(k.clone(), v.clone());
        }
        if shape == BodyShape::Resend {
            let name = match self.status {
                429 => "rate_limit_exceeded",
                401 | 403 => "invalid_api_key",
                400 | 413 => "validation_error",
                _ => "application_error",
            };
            obj.insert("name".into(), json!(name));
            obj.insert("statusCode".into(), json!(self.status));
        }
        if !request_id.is_empty() {
            obj.insert("request_id".into(), json!(request_id));
        }
        serde_json::to_vec(&Value::Object(obj)).unwrap_or_default()
    }

    /// Whether the call certainly never reached the vendor and nothing was
    /// counted, so a retry is safe (SDKs read `x-should-retry` before their
    /// automatic retries).
    pub fn safe_to_retry(&self) -> bool {
        matches!(self.code, "upstream_unavailable" | "ledger_unavailable" | "day_rolled_over")
    }

    /// The flat JSON answer body.
    pub fn body(&self, request_id: &str) -> Vec<u8> {
        self.shaped_body(BodyShape::Flat, request_id)
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
        assert!(v["message"].as_str().unwrap().contains("$60.00"));
    }

    #[test]
    fn only_calls_that_never_left_are_safe_to_retry() {
        assert!(Refusal::upstream_unavailable("connect refused").safe_to_retry());
        let ledger = Refusal::ledger_unavailable();
        assert!(ledger.safe_to_retry());
        assert_eq!((ledger.status, ledger.code), (503, "ledger_unavailable"));
        assert!(Refusal::day_rolled_over().safe_to_retry());
        for r in [
            Refusal::cap_exceeded(1, 1, 1, 1),
            Refusal::audit_unavailable(),
            Refusal::new(502, "upstream_error", Source::Upstream, "reset"),
            Refusal::new(504, "upstream_timeout", Source::Upstream, "slow"),
        ] {
            assert!(!r.safe_to_retry(), "{}", r.code);
        }
    }

    #[test]
    fn small_amounts_keep_their_decimals() {
        assert_eq!(usd_text(7_900), "$0.0079");
        assert_eq!(usd_text(19_990_000), "$19.99");
        assert_eq!(usd_text(3), "$0.000003");
        assert_eq!(usd_text(0), "$0.00");
    }

    #[test]
    fn sdk_shapes_nest_the_error_and_keep_capgate_fields() {
        let r = Refusal::cap_exceeded(1_000_000, 0, 2_000_000, 5);
        for shape in [BodyShape::Stripe, BodyShape::Nested] {
            let v: Value = serde_json::from_slice(&r.shaped_body(shape, "")).unwrap();
            assert_eq!(v["error"]["code"], "daily_cap_exceeded");
            assert!(v["error"]["message"].as_str().unwrap().contains("cap"));
            assert_eq!(v["code"], "cap_exhausted");
        }
        let v: Value = serde_json::from_slice(&r.shaped_body(BodyShape::Resend, "")).unwrap();
        assert_eq!((v["error"].as_str(), v["name"].as_str(), v["statusCode"].as_u64()), (Some("daily_cap_exceeded"), Some("rate_limit_exceeded"), Some(429)));
    }
}
