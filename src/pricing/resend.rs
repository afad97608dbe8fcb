//! Resend: emails priced per recipient (`to` + `cc` + `bcc`).
//!
//! - POST `/emails`: recipients × per-recipient price.
//! - POST `/emails/batch`: a JSON array of email objects, summed.
//!
//! Each field may be a string or an array of strings. A string holding a
//! comma-separated list counts every part that contains `@` (at least 1 per
//! non-empty value), so address lists cannot slip through as one recipient.
//! Zero recipients in an email → `MissingParam("to")`.

use serde_json::Value;

use super::params::json_strings;
use super::route::{is_post, matches, segments};
use super::{Params, PriceError, PriceRequest, Quote};

/// Fields whose addresses are billed.
const RECIPIENT_FIELDS: [&str; 3] = ["to", "cc", "bcc"];

/// Quote for a Resend call; `None` when the call is not listed.
pub(crate) fn quote(
    req: &PriceRequest<'_>,
    params: &Params,
    per_recipient_micros: u64,
) -> Result<Option<Quote>, PriceError> {
    if !is_post(req) {
        return Ok(None);
    }
    let segs = segments(req.path);
    let recipients = if matches(&["emails"], &segs) {
        single(params)?
    } else if matches(&["emails", "batch"], &segs) {
        batch(params)?
    } else {
        return Ok(None);
    };
    Ok(Some(Quote::fixed(
        recipients.saturating_mul(per_recipient_micros),
    )))
}

fn single(params: &Params) -> Result<u64, PriceError> {
    let values = RECIPIENT_FIELDS.iter().flat_map(|f| params.str_values(f));
    nonzero(count(values))
}

fn batch(params: &Params) -> Result<u64, PriceError> {
    let Some(Value::Array(emails)) = params.raw_json() else {
        return Err(PriceError::BadBody);
    };
    let mut total: u64 = 0;
    for email in emails {
        let Value::Object(fields) = email else {
            return Err(PriceError::BadBody);
        };
        let values = RECIPIENT_FIELDS
            .iter()
            .filter_map(|f| fields.get(*f))
            .flat_map(json_strings);
        total = total.saturating_add(nonzero(count(values))?);
    }
    nonzero(total)
}

fn nonzero(recipients: u64) -> Result<u64, PriceError> {
    match recipients {
        0 => Err(PriceError::MissingParam("to")),
        n => Ok(n),
    }
}

fn count(values: impl Iterator<Item = String>) -> u64 {
    values.map(|v| addresses_in(&v)).sum()
}

/// Addresses in one value: comma-separated parts with `@`, at least 1 if non-empty.
fn addresses_in(value: &str) -> u64 {
    if value.trim().is_empty() {
        return 0;
    }
    let with_at = value.split(',').filter(|part| part.contains('@')).count() as u64;
    with_at.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::VendorKind;

    fn run(path: &str, body: &str) -> Result<u64, PriceError> {
        crate::pricing::quote_json(VendorKind::Resend, path, body).map(|q| q.reserve_micros)
    }

    #[test]
    fn counts_to_cc_bcc() {
        let body = r#"{"from":"Acme <onboarding@resend.dev>","to":["a@x.io","b@x.io"],
            "cc":"c@x.io","bcc":["d@x.io"],"subject":"hi","html":"<p>hi</p>"}"#;
        assert_eq!(run("/emails", body), Ok(4 * 900));
        let one = r#"{"from":"a@resend.dev","to":"delivered@resend.dev","subject":"s","text":"t"}"#;
        assert_eq!(run("/emails", one), Ok(900));
    }

    #[test]
    fn comma_lists_count_each_address() {
        let body = r#"{"from":"a@r.dev","to":"a@x.io, \"Doe, J\" <j@x.io>","subject":"s"}"#;
        assert_eq!(run("/emails", body), Ok(2 * 900));
    }

    #[test]
    fn zero_recipients_refused() {
        assert_eq!(
            run("/emails", r#"{"from":"a@r.dev","subject":"s"}"#),
            Err(PriceError::MissingParam("to"))
        );
        assert_eq!(
            run("/emails", r#"{"to":[],"subject":"s"}"#),
            Err(PriceError::MissingParam("to"))
        );
    }

    #[test]
    fn batch_sums_emails() {
        let body = r#"[
            {"from":"a@r.dev","to":["foo@gmail.com"],"subject":"hello world","html":"<h1>it works!</h1>"},
            {"from":"a@r.dev","to":["bar@outlook.com","baz@x.io"],"cc":"c@x.io","subject":"world hello"}
        ]"#;
        assert_eq!(run("/emails/batch", body), Ok(4 * 900));
        assert_eq!(
            run("/emails/batch", r#"[{"to":"a@x.io"},{"subject":"no one"}]"#),
            Err(PriceError::MissingParam("to"))
        );
        assert_eq!(
            run("/emails/batch", r#"{"to":"a@x.io"}"#),
            Err(PriceError::BadBody)
        );
        assert_eq!(
            run("/emails/batch", "[]"),
            Err(PriceError::MissingParam("to"))
        );
    }

    #[test]
    fn other_calls_free() {
        assert_eq!(run("/domains", r#"{"name":"x.io"}"#), Ok(0));
    }
}
