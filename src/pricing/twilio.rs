//! Twilio: SMS/MMS/WhatsApp messages priced per segment by destination
//! prefix, calls priced at a flat per-call reserve.
//!
//! - POST `/2010-04-01/Accounts/{sid}/Messages.json`: `segments(Body)` × SMS price
//!   of the longest matching `To` prefix (else the fallback), plus one MMS price
//!   when any `MediaUrl` is present. An empty body with media is 0 SMS segments;
//!   an empty body without media (e.g. a `ContentSid` template) counts 1.
//!   `whatsapp:` destinations use the same tables.
//! - POST `/2010-04-01/Accounts/{sid}/Calls.json`: the per-call reserve.
//!
//! `To` is required for both. A `To` without a leading `+` matches no prefix
//! and pays the fallback (note: an unencoded `+` in a form body decodes to a space).

use std::borrow::Cow;

use super::currency::{config_micros, config_micros_nonzero};
use super::route::{is_post, matches, segments as path_segments};
use super::sms::segments;
use super::table::TwilioTable;
use super::{ParamValue, Params, PriceError, PriceRequest, Quote};

/// Prices keyed by E.164 prefix, longest match first, with a fallback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixPrices {
    /// `(prefix, micros)`, longest prefix first.
    entries: Vec<(String, u64)>,
    /// Price when no prefix matches.
    fallback: u64,
}

impl PrefixPrices {
    fn compile(
        name: &str,
        table: &std::collections::BTreeMap<String, f64>,
        fallback: u64,
    ) -> Result<Self, String> {
        let mut entries = Vec::with_capacity(table.len());
        for (prefix, usd) in table {
            let digits = prefix.strip_prefix('+').unwrap_or("");
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "twilio.{name}: `{prefix}` is not a `+digits` prefix"
                ));
            }
            entries.push((
                prefix.clone(),
                config_micros(&format!("twilio.{name}.{prefix}"), *usd)?,
            ));
        }
        entries.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        Ok(PrefixPrices { entries, fallback })
    }

    /// Price for a normalized destination number.
    pub fn price(&self, to: &str) -> u64 {
        self.entries
            .iter()
            .find(|(prefix, _)| to.starts_with(prefix.as_str()))
            .map_or(self.fallback, |(_, micros)| *micros)
    }
}

/// Compiled Twilio prices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TwilioPrices {
    /// Per SMS segment.
    pub sms: PrefixPrices,
    /// Per MMS message.
    pub mms: PrefixPrices,
    /// Per outbound call.
    pub call_micros: u64,
}

impl TwilioPrices {
    /// Converts the config table (fallbacks must be > 0).
    pub fn compile(t: &TwilioTable) -> Result<Self, String> {
        let sms_fallback = config_micros_nonzero("twilio.fallback_sms_usd", t.fallback_sms_usd)?;
        let mms_fallback = config_micros_nonzero("twilio.fallback_mms_usd", t.fallback_mms_usd)?;
        Ok(TwilioPrices {
            sms: PrefixPrices::compile("sms_usd", &t.sms_usd, sms_fallback)?,
            mms: PrefixPrices::compile("mms_usd", &t.mms_usd, mms_fallback)?,
            call_micros: config_micros("twilio.call_usd", t.call_usd)?,
        })
    }
}

enum Route {
    Message,
    Call,
}

/// Quote for a Twilio call; `None` when the call is not listed.
pub(crate) fn quote(
    req: &PriceRequest<'_>,
    params: &Params,
    prices: &TwilioPrices,
) -> Result<Option<Quote>, PriceError> {
    if !is_post(req) {
        return Ok(None);
    }
    match route(&path_segments(req.path)) {
        None => Ok(None),
        Some(Route::Message) => message_cost(params, prices).map(|m| Some(Quote::fixed(m))),
        Some(Route::Call) => {
            destination(params)?;
            Ok(Some(Quote::fixed(prices.call_micros)))
        }
    }
}

fn route(segs: &[Cow<'_, str>]) -> Option<Route> {
    if !matches(&["2010-04-01", "Accounts", "*", "*"], segs) {
        return None;
    }
    let last = segs.last()?.to_ascii_lowercase();
    let resource = last
        .strip_suffix(".json")
        .or_else(|| last.strip_suffix(".xml"))
        .unwrap_or(&last);
    match resource {
        "messages" => Some(Route::Message),
        "calls" => Some(Route::Call),
        _ => None,
    }
}

fn message_cost(params: &Params, prices: &TwilioPrices) -> Result<u64, PriceError> {
    let to = destination(params)?;
    let has_media = params
        .str_values("MediaUrl")
        .iter()
        .any(|u| !u.trim().is_empty());
    let sms_segments = match (segments(&body(params)?), has_media) {
        (0, true) => 0,
        (0, false) => 1,
        (n, _) => n,
    };
    let sms = sms_segments.saturating_mul(prices.sms.price(&to));
    let mms = if has_media { prices.mms.price(&to) } else { 0 };
    Ok(sms.saturating_add(mms))
}

/// Normalized `To`: `whatsapp:` stripped, spaces and punctuation removed.
fn destination(params: &Params) -> Result<String, PriceError> {
    let raw = match params.get("To") {
        Some(ParamValue::Str(s)) => s,
        None => return Err(PriceError::MissingParam("To")),
        Some(_) => {
            return Err(PriceError::BadParam {
                name: "To",
                reason: "must be one phone number",
            })
        }
    };
    let trimmed = raw.trim();
    let number = strip_prefix_ci(trimmed, "whatsapp:").unwrap_or(trimmed);
    let normalized: String = number
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
        .collect();
    if normalized.is_empty() {
        return Err(PriceError::MissingParam("To"));
    }
    Ok(normalized)
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        text.get(prefix.len()..)
    } else {
        None
    }
}

fn body(params: &Params) -> Result<String, PriceError> {
    match params.get("Body") {
        None => Ok(String::new()),
        Some(ParamValue::Str(s)) => Ok(s.into_owned()),
        Some(_) => Err(PriceError::BadParam {
            name: "Body",
            reason: "must be one text value",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::{quote as price, PriceTable, VendorKind};

    const MESSAGES: &str = "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json";

    fn run(path: &str, form: &[(&str, &str)]) -> Result<u64, PriceError> {
        let prices = PriceTable::default().compile().unwrap();
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let req = PriceRequest {
            vendor: VendorKind::Twilio,
            method: "POST",
            path,
            query: "",
            content_type: Some("application/x-www-form-urlencoded"),
            body: body.as_bytes(),
        };
        let params = Params::parse(req.query, req.content_type, req.body)?;
        price(&req, &params, &prices).map(|q| {
            assert_eq!(q.settle, crate::pricing::Settle::Fixed);
            q.reserve_micros
        })
    }

    fn sms(to: &str, text: &str) -> Result<u64, PriceError> {
        run(
            MESSAGES,
            &[("To", to), ("From", "+15005550006"), ("Body", text)],
        )
    }

    #[test]
    fn us_sms_per_segment() {
        assert_eq!(sms("+14155550100", "hello"), Ok(7_900));
        assert_eq!(sms("+14155550100", &"a".repeat(161)), Ok(15_800));
        assert_eq!(sms("+14155550100", &"😀".repeat(36)), Ok(15_800));
    }

    #[test]
    fn longest_prefix_and_fallback() {
        assert_eq!(sms("+447700900123", "hi"), Ok(52_400));
        assert_eq!(sms("+4915112345678", "hi"), Ok(88_700));
        assert_eq!(sms("+919812345678", "hi"), Ok(83_200));
        assert_eq!(sms("+8613800138000", "hi"), Ok(150_000));
        assert_eq!(sms("14155550100", "hi"), Ok(150_000));
    }

    #[test]
    fn whatsapp_uses_same_table() {
        assert_eq!(sms("whatsapp:+14155550100", "hi"), Ok(7_900));
    }

    #[test]
    fn mms_adds_per_message_price() {
        let media = |to| {
            run(
                MESSAGES,
                &[
                    ("To", to),
                    ("MediaUrl", "https://x/a.png"),
                    ("MediaUrl", "https://x/b.png"),
                ],
            )
        };
        assert_eq!(media("+14155550100"), Ok(20_000));
        assert_eq!(media("+447700900123"), Ok(200_000));
        let with_text = run(
            MESSAGES,
            &[
                ("To", "+14155550100"),
                ("Body", "hi"),
                ("MediaUrl", "https://x/a.png"),
            ],
        );
        assert_eq!(with_text, Ok(27_900));
    }

    #[test]
    fn empty_body_without_media_counts_one_segment() {
        assert_eq!(
            run(MESSAGES, &[("To", "+14155550100"), ("ContentSid", "HX1")]),
            Ok(7_900)
        );
    }

    #[test]
    fn missing_or_multiple_to() {
        assert_eq!(sms("", "hi"), Err(PriceError::MissingParam("To")));
        assert_eq!(
            run(MESSAGES, &[("Body", "hi")]),
            Err(PriceError::MissingParam("To"))
        );
        let two = run(MESSAGES, &[("To", "+1415"), ("To", "+44"), ("Body", "hi")]);
        assert!(matches!(two, Err(PriceError::BadParam { name: "To", .. })));
    }

    #[test]
    fn calls_flat_reserve() {
        let calls = "/2010-04-01/Accounts/AC1/Calls.json";
        assert_eq!(
            run(calls, &[("To", "+14155550100"), ("Url", "https://x")]),
            Ok(500_000)
        );
        assert_eq!(
            run(calls, &[("Url", "https://x")]),
            Err(PriceError::MissingParam("To"))
        );
    }

    #[test]
    fn other_paths_not_listed() {
        assert_eq!(
            run(
                "/2010-04-01/Accounts/AC1/Messages/SM1.json",
                &[("Body", "x")]
            ),
            Ok(0)
        );
        assert_eq!(
            run(
                "/2010-04-01/Accounts/AC1/Messages",
                &[("To", "+1415"), ("Body", "x")]
            ),
            Ok(7_900)
        );
    }
}
