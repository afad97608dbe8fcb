//! Routing helpers: method and path matching for vendor rules, and the
//! operator's `extra` fixed-price rules (whole-segment `*` wildcards).
//!
//! Path matching is deliberately generous, since matching more can only price
//! more: segments are percent-decoded, empty segments (`//`, trailing `/`)
//! and `.` are dropped, `..` pops, and literals compare ASCII case-insensitively.

use std::borrow::Cow;

use super::{PriceRequest, Quote, VendorKind};

/// True for `POST` (any case).
pub(crate) fn is_post(req: &PriceRequest<'_>) -> bool {
    req.method.eq_ignore_ascii_case("POST")
}

/// Normalized path segments (see module docs); on the stack for the
/// paths vendors price (priced once per call).
pub(crate) fn segments(path: &str) -> smallvec::SmallVec<[Cow<'_, str>; 8]> {
    let mut out: smallvec::SmallVec<[Cow<'_, str>; 8]> = smallvec::SmallVec::new();
    for raw in path.split('/') {
        let seg = percent_decode(raw);
        match &*seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            _ => out.push(seg),
        }
    }
    out
}

/// Whole-segment match; `*` in `pattern` matches any one segment.
pub(crate) fn matches<P: AsRef<str>, S: AsRef<str>>(pattern: &[P], segs: &[S]) -> bool {
    pattern.len() == segs.len()
        && pattern.iter().zip(segs).all(|(p, s)| {
            let p = p.as_ref();
            p == "*" || p.eq_ignore_ascii_case(s.as_ref())
        })
}

fn percent_decode(raw: &str) -> Cow<'_, str> {
    if !raw.contains('%') {
        return Cow::Borrowed(raw);
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes.get(i + 1..i + 3).and_then(hex_byte);
        match (b, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    let text = std::str::from_utf8(pair).ok()?;
    u8::from_str_radix(text, 16).ok()
}

/// Compiled operator rule: calls of `vendor` with `method` on `pattern` cost `micros`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedRule {
    /// Vendor the rule applies to.
    pub vendor: VendorKind,
    /// Uppercase method, or `*` for any.
    pub method: String,
    /// Path pattern segments (`*` = any one segment).
    pub pattern: Vec<String>,
    /// Price per call.
    pub micros: u64,
}

impl FixedRule {
    /// Builds a rule; errors name the entry index.
    pub fn new(
        index: usize,
        vendor: &str,
        method: &str,
        path: &str,
        micros: u64,
    ) -> Result<Self, String> {
        let vendor = VendorKind::from_name(vendor)
            .ok_or_else(|| format!("extra[{index}]: unknown vendor `{vendor}`"))?;
        if method.is_empty() || !path.starts_with('/') {
            return Err(format!(
                "extra[{index}]: needs a method and a path starting with `/`"
            ));
        }
        Ok(FixedRule {
            vendor,
            method: method.to_ascii_uppercase(),
            pattern: segments(path).into_iter().map(Cow::into_owned).collect(),
            micros,
        })
    }

    fn applies(&self, req: &PriceRequest<'_>, segs: &[Cow<'_, str>]) -> bool {
        self.vendor == req.vendor
            && (self.method == "*" || self.method.eq_ignore_ascii_case(req.method))
            && matches(&self.pattern, segs)
    }
}

/// Price of a call no vendor rule lists: the first matching rule, else 0.
pub(crate) fn extra_quote(req: &PriceRequest<'_>, rules: &[FixedRule]) -> Quote {
    let segs = segments(req.path);
    let micros = rules
        .iter()
        .find(|r| r.applies(req, &segs))
        .map_or(0, |r| r.micros);
    Quote::fixed(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(vendor: VendorKind, method: &'a str, path: &'a str) -> PriceRequest<'a> {
        PriceRequest {
            vendor,
            method,
            path,
            query: "",
            content_type: None,
            body: b"",
        }
    }

    #[test]
    fn segments_normalize() {
        assert_eq!(
            segments("/v1/payment_intents/").to_vec(),
            vec!["v1", "payment_intents"]
        );
        assert_eq!(
            segments("//v1/./x/../payment%5Fintents").to_vec(),
            vec!["v1", "payment_intents"]
        );
        assert_eq!(segments("/a%zz").to_vec(), vec!["a%zz"]);
        assert!(segments("/").is_empty());
    }

    #[test]
    fn wildcard_matches_one_segment() {
        let pat = ["v1", "*", "refund"];
        assert!(matches(&pat, &segments("/v1/ch_1/refund")));
        assert!(matches(&pat, &segments("/V1/ch_1/Refund")));
        assert!(!matches(&pat, &segments("/v1/ch_1/x/refund")));
        assert!(!matches(&pat, &segments("/v1/refund")));
    }

    #[test]
    fn first_matching_extra_rule_wins() {
        let rules = vec![
            FixedRule::new(0, "stripe", "post", "/v1/checkout/sessions", 7).unwrap(),
            FixedRule::new(1, "stripe", "*", "/v1/checkout/*", 9).unwrap(),
        ];
        let q = |m, p| extra_quote(&req(VendorKind::Stripe, m, p), &rules).reserve_micros;
        assert_eq!(q("POST", "/v1/checkout/sessions"), 7);
        assert_eq!(q("GET", "/v1/checkout/sessions"), 9);
        assert_eq!(q("GET", "/v1/customers"), 0);
        let demo = extra_quote(
            &req(VendorKind::Demo, "POST", "/v1/checkout/sessions"),
            &rules,
        );
        assert_eq!(demo.reserve_micros, 0);
    }

    #[test]
    fn bad_rules_refused() {
        assert!(FixedRule::new(3, "paypal", "POST", "/x", 1)
            .unwrap_err()
            .contains("extra[3]"));
        assert!(FixedRule::new(0, "stripe", "POST", "x", 1).is_err());
    }
}
