//! Pure request routing and header rewriting: which vendor and canonical
//! path a target names, which vault key the client presented (Bearer,
//! `x-api-key` or Basic, as the vendor SDKs send it), and the exact head
//! sent upstream (hop-by-hop headers, the vault key and method-override
//! headers dropped; the real credential added).

use std::borrow::Cow;

use base64::Engine;

use crate::error::Refusal;
use crate::http1::head::Headers;
use crate::policy::{canonicalize, split_vendor};
use crate::vendors::Vendor;

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Vendor route name; `None` when the path names no configured vendor
    /// (SDKs that only let you change the host), in which case the vault
    /// key's own vendor is used.
    pub vendor: Option<std::sync::Arc<str>>,
    /// Canonical vendor path (after the vendor segment).
    pub path: String,
    /// Raw query (without '?'), possibly empty.
    pub query: String,
}

/// Splits and canonicalises an origin-form target. `is_vendor` says which
/// first segments name a configured vendor.
///
/// # Errors
/// 400 `invalid_path` for anything that cannot be canonicalised safely.
pub fn route(target: &str, is_vendor: impl Fn(&str) -> bool) -> Result<Route, Refusal> {
    if !target.starts_with('/') {
        return Err(Refusal::bad_request("invalid_path", "request target must be a path like /stripe/v1/charges"));
    }
    let (raw_path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    if query.contains('#') {
        return Err(Refusal::bad_request("invalid_path", "request target must not contain '#'"));
    }
    let mut path = canonicalize(raw_path).map_err(|e| Refusal::bad_request(e.code(), format!("path refused: {e}")))?;
    let vendor = match split_vendor(&path) {
        Some((v, _)) if is_vendor(v) => Some(std::sync::Arc::<str>::from(v)),
        _ => None,
    };
    if let Some(v) = &vendor {
        path.drain(..1 + v.len()); // "/<vendor>" off the front, in place
    }
    Ok(Route { vendor, path, query: query.to_string() })
}

/// The vault key the client presented, from `Authorization: Bearer`,
/// `x-api-key`, or either half of `Authorization: Basic` (Twilio SDKs).
/// Borrowed from the head unless it had to be decoded: a secret is not
/// copied around more than it must be.
pub fn presented_token(headers: &Headers) -> Option<Cow<'_, str>> {
    for (name, value) in headers.iter() {
        // Another header's bytes (a Latin-1 user agent) are not ours to judge.
        if !matches!(name, "x-api-key" | "authorization") {
            continue;
        }
        let Ok(v) = std::str::from_utf8(value) else { return None };
        let v = v.trim();
        match name {
            "x-api-key" if !v.is_empty() => return Some(Cow::Borrowed(v)),
            "authorization" => {
                let (scheme, rest) = v.split_once(' ')?;
                let rest = rest.trim();
                if scheme.eq_ignore_ascii_case("bearer") {
                    return Some(Cow::Borrowed(rest));
                }
                if scheme.eq_ignore_ascii_case("basic") {
                    let raw = base64::engine::general_purpose::STANDARD.decode(rest).ok()?;
                    let pair = String::from_utf8(raw).ok()?;
                    let (user, pass) = pair.split_once(':').unwrap_or((pair.as_str(), ""));
                    let token = if user.starts_with(crate::keys::token::TOKEN_PREFIX) { user } else { pass };
                    return Some(Cow::Owned(token.to_string()));
                }
            }
            _ => {}
        }
    }
    None
}

/// Headers never forwarded upstream.
const DROP_UPSTREAM: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "authorization",
    "x-api-key",
    "accept-encoding",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Headers never relayed back to the client (we frame the body ourselves).
const DROP_DOWNSTREAM: &[&str] =
    &["content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"];

/// Field names listed in every `Connection` field (hop-by-hop for this hop).
fn listed_in_connection(headers: &Headers) -> Vec<String> {
    headers
        .iter()
        .filter(|(n, _)| *n == "connection")
        .flat_map(|(_, v)| String::from_utf8_lossy(v).split(',').map(|t| t.trim().to_ascii_lowercase()).filter(|t| !t.is_empty()).collect::<Vec<_>>())
        .collect()
}

/// The vendor path as sent upstream (Twilio's account SID replaced by the
/// real one so agents never need it).
pub fn upstream_path(vendor: &Vendor, path: &str) -> String {
    if let (crate::pricing::VendorKind::Twilio, Some(sid)) = (vendor.kind, vendor.account_sid.as_deref()) {
        if let Some(rest) = path.strip_prefix("/2010-04-01/Accounts/") {
            let tail = rest.split_once('/').map_or("", |(_, t)| t);
            let sep = if tail.is_empty() && !rest.contains('/') { "" } else { "/" };
            return format!("/2010-04-01/Accounts/{sid}{sep}{tail}");
        }
    }
    path.to_string()
}

/// Serialises the request head sent upstream.
pub fn upstream_head(
    method: &str,
    vendor: &Vendor,
    route: &Route,
    client_headers: &Headers,
    extra: &[(&str, Vec<u8>)],
    body_len: usize,
    request_id: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(vendor.upstream.base_path.as_bytes());
    out.extend_from_slice(upstream_path(vendor, &route.path).as_bytes());
    if !route.query.is_empty() {
        out.push(b'?');
        out.extend_from_slice(route.query.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(vendor.upstream.authority().as_bytes());
    out.extend_from_slice(b"\r\n");
    let extra_drop = listed_in_connection(client_headers);
    for (name, value) in client_headers.iter() {
        if DROP_UPSTREAM.contains(&name) || name.starts_with("x-capgate-") || extra_drop.iter().any(|t| t == name) {
            continue;
        }
        push_header(&mut out, name, value);
    }
    vendor.push_auth_header(&mut out);
    for (name, value) in extra {
        push_header(&mut out, name, value);
    }
    push_header(&mut out, "x-capgate-request-id", request_id.as_bytes());
    if body_len > 0 || matches!(method, "POST" | "PUT" | "PATCH") {
        push_header(&mut out, "content-length", itoa::Buffer::new().format(body_len).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The upstream's headers that go back to the client.
pub fn downstream_headers(upstream: &Headers) -> Vec<(&str, &[u8])> {
    let extra_drop = listed_in_connection(upstream);
    upstream.iter().filter(|(n, _)| !DROP_DOWNSTREAM.contains(n) && !extra_drop.iter().any(|t| t == n)).collect()
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vendors::{AuthStyle, Secret, Upstream};

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().copied().collect()
    }

    fn vendor(kind: crate::pricing::VendorKind, auth: AuthStyle) -> Vendor {
        Vendor {
            name: "v".into(),
            kind,
            upstream: Upstream::parse("http://127.0.0.1:9000").unwrap(),
            auth,
            credential: Some(Secret::new("sk_real".into())),
            account_sid: Some("ACreal".into()),
        }
    }

    #[test]
    fn routes_and_refusals() {
        let known = |v: &str| v == "stripe";
        let r = route("/stripe/v1/charges?expand[]=x", known).unwrap();
        assert_eq!((r.vendor.as_deref(), r.path.as_str(), r.query.as_str()), (Some("stripe"), "/v1/charges", "expand[]=x"));
        let r = route("/v1/charges", known).unwrap();
        assert_eq!((r.vendor, r.path.as_str()), (None, "/v1/charges"));
        assert_eq!(route("/stripe/v1/payment_intents/../refunds", known).unwrap_err().status, 400);
        assert_eq!(route("http://evil/x", known).unwrap_err().status, 400);
    }

    #[test]
    fn tokens_from_each_sdk_style() {
        assert_eq!(presented_token(&h(&[("authorization", "Bearer vk_1")])).as_deref(), Some("vk_1"));
        assert_eq!(presented_token(&h(&[("x-api-key", "vk_2")])).as_deref(), Some("vk_2"));
        let basic = base64::engine::general_purpose::STANDARD.encode("ACfake:vk_3");
        assert_eq!(presented_token(&h(&[("authorization", &format!("Basic {basic}"))])).as_deref(), Some("vk_3"));
        let basic = base64::engine::general_purpose::STANDARD.encode("vk_4:");
        assert_eq!(presented_token(&h(&[("authorization", &format!("Basic {basic}"))])).as_deref(), Some("vk_4"));
        assert_eq!(presented_token(&h(&[("accept", "x")])), None);
        let latin1_agent: Headers = [("user-agent", &b"caf\xe9"[..]), ("authorization", b"Bearer vk_5")].into_iter().collect();
        assert_eq!(presented_token(&latin1_agent).as_deref(), Some("vk_5"), "another header's non-UTF-8 bytes do not hide the key");
        let bad_key: Headers = [("authorization", &b"Bearer vk_\xff"[..])].into_iter().collect();
        assert_eq!(presented_token(&bad_key), None);
    }

    #[test]
    fn upstream_head_swaps_credentials_and_drops_hop_by_hop() {
        let v = vendor(crate::pricing::VendorKind::Stripe, AuthStyle::Bearer);
        let r = route("/stripe/v1/charges", |_| true).unwrap();
        let head = upstream_head(
            "POST",
            &v,
            &r,
            &h(&[
                ("authorization", "Bearer vk_secret"),
                ("connection", "keep-alive, x-foo"),
                ("x-foo", "1"),
                // A second Connection field lists more hop-by-hop fields.
                ("Connection", "X-Bar"),
                ("x-bar", "2"),
                ("x-http-method-override", "DELETE"),
                ("idempotency-key", "abc"),
                ("content-type", "application/x-www-form-urlencoded"),
            ]),
            &[("idempotency-key", b"capgate-1".to_vec())],
            10,
            "req_1",
        );
        let s = String::from_utf8(head).unwrap();
        assert!(s.starts_with("POST /v1/charges HTTP/1.1\r\nhost: 127.0.0.1:9000\r\n"), "{s}");
        assert!(s.contains("authorization: Bearer sk_real\r\n"));
        assert!(!s.contains("vk_secret") && !s.contains("x-foo") && !s.contains("x-bar") && !s.contains("override"), "{s}");
        assert!(s.contains("idempotency-key: abc\r\n") && s.contains("content-length: 10\r\n"));
        assert!(s.contains("idempotency-key: capgate-1\r\n"));
    }

    #[test]
    fn twilio_sid_and_basic_auth() {
        let v = vendor(crate::pricing::VendorKind::Twilio, AuthStyle::Basic);
        assert_eq!(upstream_path(&v, "/2010-04-01/Accounts/ACfake/Messages.json"), "/2010-04-01/Accounts/ACreal/Messages.json");
        let mut line = Vec::new();
        v.push_auth_header(&mut line);
        let enc = base64::engine::general_purpose::STANDARD.encode("ACreal:sk_real");
        assert_eq!(line, format!("authorization: Basic {enc}\r\n").into_bytes());
    }
}
