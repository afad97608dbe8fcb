//! Pricing refusals: the `PriceError` enum, its stable codes and messages.
//!
//! Every variant is a 400-class refusal; the caller maps the HTTP status.

use std::fmt;

/// Longest caller-supplied text echoed back in an error message.
const MAX_ECHO_CHARS: usize = 64;

/// Why a request could not be priced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PriceError {
    /// The currency has no configured exchange rate (lowercased code).
    UnpricedCurrency(String),
    /// The model has no configured price and no fallback is set.
    UnpricedModel(String),
    /// A parameter needed for pricing is absent.
    MissingParam(&'static str),
    /// A parameter is present but unusable for pricing.
    BadParam {
        /// Parameter name.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The body could not be parsed (invalid JSON, wrong top-level shape).
    BadBody,
    /// A Stripe/demo refund whose value is unknown (no `amount`: full refund).
    /// Only refunds produce this; a caller may allow it per key (reserve 0).
    AmountUnknown,
}

impl PriceError {
    /// Refusal for an unknown currency; the echoed code is clipped.
    pub fn unpriced_currency(code: &str) -> Self {
        PriceError::UnpricedCurrency(clip(code))
    }

    /// Refusal for an unknown model; the echoed name is clipped.
    pub fn unpriced_model(model: &str) -> Self {
        PriceError::UnpricedModel(clip(model))
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            PriceError::UnpricedCurrency(_) => "unpriced_currency",
            PriceError::UnpricedModel(_) => "unpriced_model",
            PriceError::MissingParam(_) => "missing_parameter",
            PriceError::BadParam { .. } => "invalid_parameter",
            PriceError::BadBody => "invalid_body",
            PriceError::AmountUnknown => "amount_unknown",
        }
    }
}

impl fmt::Display for PriceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PriceError::UnpricedCurrency(c) => {
                write!(
                    f,
                    "parameter `currency`: no exchange rate configured for `{c}`"
                )
            }
            PriceError::UnpricedModel(m) => {
                write!(f, "parameter `model`: no price configured for `{m}`")
            }
            PriceError::MissingParam(name) => {
                write!(f, "parameter `{name}` is required to price this call")
            }
            PriceError::BadParam { name, reason } => write!(f, "parameter `{name}`: {reason}"),
            PriceError::BadBody => f.write_str("request body could not be parsed for pricing"),
            PriceError::AmountUnknown => {
                f.write_str("parameter `amount`: refund without an amount cannot be priced")
            }
        }
    }
}

impl std::error::Error for PriceError {}

/// Truncates caller text to `MAX_ECHO_CHARS` characters.
fn clip(text: &str) -> String {
    text.chars().take(MAX_ECHO_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_messages_name_the_parameter() {
        let e = PriceError::MissingParam("amount");
        assert_eq!(e.code(), "missing_parameter");
        assert!(e.to_string().contains("amount"));
        let e = PriceError::BadParam {
            name: "max_tokens",
            reason: "must be a non-negative integer",
        };
        assert_eq!(e.code(), "invalid_parameter");
        assert!(e.to_string().contains("max_tokens"));
        assert_eq!(PriceError::AmountUnknown.code(), "amount_unknown");
        assert_eq!(PriceError::BadBody.code(), "invalid_body");
        assert_eq!(PriceError::unpriced_model("x").code(), "unpriced_model");
        assert_eq!(
            PriceError::unpriced_currency("x").code(),
            "unpriced_currency"
        );
    }

    #[test]
    fn echoed_text_is_clipped() {
        let long = "m".repeat(500);
        assert_eq!(
            PriceError::unpriced_model(&long),
            PriceError::UnpricedModel("m".repeat(MAX_ECHO_CHARS))
        );
    }
}
