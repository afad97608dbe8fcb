//! Turning an admin `POST /v1/keys` body into a validated key. Every bad
//! field is a 400 whose message names the field.

use std::time::Duration;

use serde_json::Value;

use super::{owner_hash, token, KeyRules, VaultKey};
use crate::error::Refusal;
use crate::policy::Allowlist;

/// Longest allowed `expires_in`.
pub const MAX_EXPIRES: Duration = Duration::from_secs(366 * 86_400);
/// `expires_in` when none is given.
pub const DEFAULT_EXPIRES: Duration = Duration::from_secs(86_400);
/// Largest accepted `daily_usd_cap` (one million dollars a day).
pub const MAX_CAP_USD: f64 = 1_000_000.0;

const FIELDS: &[&str] = &[
    "vendor",
    "daily_usd_cap",
    "allowed_endpoints",
    "expires_in",
    "label",
    "agent_run_label",
    "max_usd_per_call",
    "max_calls",
    "constraints",
    "allow_full_refunds",
];

/// Parses the optional parameter rules.
fn parse_rules(obj: &serde_json::Map<String, Value>) -> Result<KeyRules, Refusal> {
    let max_per_call_micros = obj.get("max_usd_per_call").filter(|v| !v.is_null()).map(|v| parse_usd(v).map_err(|e| field_error("max_usd_per_call", e))).transpose()?;
    let max_calls = match obj.get("max_calls").filter(|v| !v.is_null()) {
        Some(v) => Some(v.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| field_error("max_calls", "must be a whole number of calls per day"))?),
        None => None,
    };
    let mut constraints = Vec::new();
    match obj.get("constraints") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (param, allowed) in map {
                let name = format!("constraints.{param}");
                if param.is_empty() || param.len() > 128 {
                    return Err(field_error("constraints", "parameter names must be 1 to 128 characters"));
                }
                let values = match allowed {
                    Value::String(s) => vec![s.clone()],
                    Value::Array(a) if !a.is_empty() => a
                        .iter()
                        .map(|v| match v {
                            Value::String(s) => Ok(s.clone()),
                            Value::Number(n) => Ok(n.to_string()),
                            Value::Bool(b) => Ok(b.to_string()),
                            _ => Err(field_error(&name, "values must be strings (globs with '*')")),
                        })
                        .collect::<Result<_, _>>()?,
                    _ => return Err(field_error(&name, "must be a non-empty array of allowed values")),
                };
                constraints.push((param.clone(), values));
            }
        }
        Some(_) => return Err(field_error("constraints", "must be an object like {\"currency\": [\"usd\"]}")),
    }
    let allow_full_refunds = match obj.get("allow_full_refunds") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(field_error("allow_full_refunds", "must be true or false")),
    };
    if allow_full_refunds && max_per_call_micros.is_none() {
        return Err(field_error("allow_full_refunds", "needs max_usd_per_call: a refund without an amount reserves that much"));
    }
    Ok(KeyRules { max_per_call_micros, max_calls, constraints, allow_full_refunds })
}

fn field_error(field: &str, why: impl std::fmt::Display) -> Refusal {
    Refusal::bad_request("invalid_field", format!("{field}: {why}"))
}

/// A key ready to store, plus its one-time token.
pub struct NewKey {
    /// The key.
    pub key: VaultKey,
    /// The token, returned to the caller once and never stored.
    pub token: String,
}

/// Parses `"5m"`, `"72h"`, `"1h 30m"`, `"2d"` (and a bare number of seconds).
pub fn parse_expires_in(v: &Value) -> Result<Duration, String> {
    let d = match v {
        Value::String(s) => humantime::parse_duration(s.trim()).map_err(|e| format!("cannot parse {s:?} as a duration ({e}); use e.g. \"5m\", \"1h\", \"72h\""))?,
        Value::Number(n) => Duration::from_secs(n.as_u64().ok_or("must be a positive whole number of seconds or a string like \"1h\"")?),
        _ => return Err("must be a string like \"5m\", \"1h\" or \"72h\"".into()),
    };
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    if d > MAX_EXPIRES {
        return Err("must be at most 366 days".into());
    }
    Ok(d)
}

/// Parses a USD amount into micro-dollars.
pub fn parse_usd(v: &Value) -> Result<u64, String> {
    let x = v.as_f64().ok_or("must be a number of US dollars, e.g. 200 or 12.5")?;
    if !x.is_finite() || x < 0.0 {
        return Err("must be zero or a positive number".into());
    }
    if x > MAX_CAP_USD {
        return Err(format!("must be at most {MAX_CAP_USD}"));
    }
    Ok((x * 1_000_000.0).round() as u64)
}

/// Validates an admin body against the configured vendors and builds a key.
///
/// # Errors
/// A 400 refusal naming the offending field.
pub fn build_key(body: &[u8], vendor_known: impl Fn(&str) -> bool, now_ms: u64) -> Result<NewKey, Refusal> {
    let v: Value = serde_json::from_slice(body).map_err(|e| Refusal::bad_request("invalid_json", format!("body is not valid JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| Refusal::bad_request("invalid_json", "body must be a JSON object"))?;
    if let Some(unknown) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(field_error(unknown, format!("unknown field; expected one of {}", FIELDS.join(", "))));
    }
    let vendor = match obj.get("vendor") {
        Some(Value::String(s)) if vendor_known(s) => s.clone(),
        Some(Value::String(s)) => return Err(field_error("vendor", format!("unknown vendor {s:?}"))),
        Some(_) => return Err(field_error("vendor", "must be a string")),
        None => return Err(field_error("vendor", "is required")),
    };
    let cap_micros = parse_usd(obj.get("daily_usd_cap").ok_or_else(|| field_error("daily_usd_cap", "is required"))?)
        .map_err(|e| field_error("daily_usd_cap", e))?;
    let entries: Vec<String> = match obj.get("allowed_endpoints") {
        Some(Value::Array(a)) if !a.is_empty() => a
            .iter()
            .enumerate()
            .map(|(i, e)| e.as_str().map(str::to_string).ok_or_else(|| field_error(&format!("allowed_endpoints[{i}]"), "must be a string")))
            .collect::<Result<_, _>>()?,
        Some(Value::Array(_)) => return Err(field_error("allowed_endpoints", "must list at least one endpoint")),
        Some(_) => return Err(field_error("allowed_endpoints", "must be an array of strings like \"POST /v1/payment_intents\"")),
        None => return Err(field_error("allowed_endpoints", "is required")),
    };
    let allowed = Allowlist::parse(&entries).map_err(|(i, e)| field_error(&format!("allowed_endpoints[{i}]"), e))?;
    let expires = match obj.get("expires_in") {
        Some(v) => parse_expires_in(v).map_err(|e| field_error("expires_in", e))?,
        None => DEFAULT_EXPIRES,
    };
    let label = match (obj.get("label"), obj.get("agent_run_label")) {
        (Some(Value::String(s)), _) | (None, Some(Value::String(s))) => s.clone(),
        (None, None) => String::new(),
        (Some(_), _) => return Err(field_error("label", "must be a string")),
        (None, Some(_)) => return Err(field_error("agent_run_label", "must be a string")),
    };
    if label.len() > 256 || label.chars().any(char::is_control) {
        return Err(field_error("label", "must be at most 256 characters with no control characters"));
    }
    let rules = parse_rules(obj)?;
    let random = |e: getrandom::Error| Refusal::internal(format!("random source failed: {e}"));
    let token = token::new_token().map_err(random)?;
    let id = token::new_key_id().map_err(random)?;
    let key = VaultKey {
        owner_hash: owner_hash(&id),
        id: id.into(),
        token_hash: token::hash(&token),
        vendor: vendor.into(),
        label: label.into(),
        cap_micros,
        allowed: std::sync::Arc::new(allowed),
        created_ms: now_ms,
        expires_ms: now_ms.saturating_add(expires.as_millis() as u64),
        revoked_ms: None,
        rules,
    };
    Ok(NewKey { key, token })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(body: &str) -> Result<NewKey, Refusal> {
        build_key(body.as_bytes(), |v| v == "stripe", 1_000)
    }

    #[test]
    fn valid_key_with_alias_label() {
        let k = build(r#"{"vendor":"stripe","daily_usd_cap":200,"allowed_endpoints":["POST /v1/payment_intents","GET /v1/customers/*"],"expires_in":"1h","agent_run_label":"flowise/s1"}"#).unwrap();
        assert_eq!(k.key.cap_micros, 200_000_000);
        assert_eq!(&*k.key.label, "flowise/s1");
        assert_eq!(k.key.expires_ms, 1_000 + 3_600_000);
        assert!(k.token.starts_with("vk_"));
        assert_eq!(k.key.token_hash, token::hash(&k.token));
        assert_eq!(k.key.rules, KeyRules::default());
    }

    #[test]
    fn rules_parse() {
        let k = build(r#"{"vendor":"stripe","daily_usd_cap":50,"allowed_endpoints":["/x"],"max_usd_per_call":20,"max_calls":3,"constraints":{"currency":["usd"],"customer":"cus_*"}}"#).unwrap();
        assert_eq!(k.key.rules.max_per_call_micros, Some(20_000_000));
        assert_eq!(k.key.rules.max_calls, Some(3));
        assert_eq!(k.key.rules.constraints, vec![("currency".to_string(), vec!["usd".to_string()]), ("customer".to_string(), vec!["cus_*".to_string()])]);
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            ("not json", "JSON"),
            (r#"{"vendor":"nope","daily_usd_cap":1,"allowed_endpoints":["/x"]}"#, "vendor"),
            (r#"{"vendor":"stripe","daily_usd_cap":-1,"allowed_endpoints":["/x"]}"#, "daily_usd_cap"),
            (r#"{"vendor":"stripe","daily_usd_cap":"lots","allowed_endpoints":["/x"]}"#, "daily_usd_cap"),
            (r#"{"vendor":"stripe","daily_usd_cap":1,"allowed_endpoints":["/x"],"expires_in":"soon"}"#, "expires_in"),
            (r#"{"vendor":"stripe","daily_usd_cap":1,"allowed_endpoints":["FETCH /x"]}"#, "allowed_endpoints[0]"),
            (r#"{"vendor":"stripe","daily_usd_cap":1,"allowed_endpoints":[]}"#, "allowed_endpoints"),
            (r#"{"vendor":"stripe","daily_usd_cap":1,"allowed_endpoints":["/x"],"cap":3}"#, "cap"),
            (r#"{"vendor":"stripe","daily_usd_cap":1,"allowed_endpoints":["/x"],"max_calls":-1}"#, "max_calls"),
            (r#"{"vendor":"stripe","daily_usd_cap":1,"allowed_endpoints":["/x"],"max_usd_per_call":"x"}"#, "max_usd_per_call"),
            (r#"{"vendor":"stripe","daily_usd_cap":1,"allowed_endpoints":["/x"],"constraints":{"to":[]}}"#, "constraints.to"),
            (r#"{"vendor":"stripe","daily_usd_cap":1,"allowed_endpoints":["/x"],"constraints":["to"]}"#, "constraints"),
            (r#"{"vendor":"stripe","daily_usd_cap":1,"allowed_endpoints":["/x"],"allow_full_refunds":true}"#, "allow_full_refunds"),
        ];
        for (body, field) in cases {
            let r = build(body).err().unwrap_or_else(|| panic!("accepted {body}"));
            assert_eq!(r.status, 400, "{body}");
            assert!(r.message.contains(field), "{body}: {}", r.message);
        }
    }
}
