//! Pricing: turns one outbound vendor request into a micro-dollar reservation
//! (`quote`) and says how to settle it from the vendor's answer (`Settle`).
//!
//! Pure: no I/O, no clocks, no global state. Money is integer micro-dollars
//! (`u64`, 1 USD = 1_000_000); floats appear only in config and are converted
//! once by [`PriceTable::compile`].
//!
//! Flow for one request:
//! 1. [`Params::parse`] once from the query and body;
//! 2. [`quote`] with the [`CompiledPrices`] → [`Quote`] (reserve before forwarding);
//! 3. settle: [`Settle::Fixed`] settles at the reserve; [`Settle::Usage`] settles at
//!    [`cost_from_usage`] of [`usage_from_json`] (plain answers) or of
//!    [`SseUsageScanner`] (streams). When no usage can be read (truncated stream,
//!    vendor error), the caller decides; keeping the reserve is the safe choice.
//!
//! Calls that no vendor rule lists cost 0 unless an operator `extra` rule
//! (vendor, method, path pattern with whole-segment `*`) prices them.

pub mod anthropic;
pub mod currency;
pub mod error;
pub mod llm;
pub mod object_id;
pub mod openai;
pub mod params;
pub mod resend;
pub mod route;
pub mod sms;
pub mod sse;
pub mod stripe;
pub mod table;
pub mod twilio;
pub mod usage;

pub use currency::usd_to_micros;
pub use error::PriceError;
pub use llm::{cost_from_usage, LlmVendor, ModelPrice, Usage};
pub use object_id::object_id;
pub use openai::{add_include_usage, openai_stream_needs_usage_option};
pub use params::{ParamValue, Params};
pub use sse::SseUsageScanner;
pub use table::{CompiledPrices, PriceTable};
pub use usage::usage_from_json;

/// Vendors capgate knows how to price.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VendorKind {
    /// Stripe payments API.
    Stripe,
    /// Built-in fake payment vendor; priced exactly like Stripe.
    Demo,
    /// Twilio messaging and voice.
    Twilio,
    /// Resend email.
    Resend,
    /// OpenAI API.
    OpenAi,
    /// Anthropic API.
    Anthropic,
}

impl VendorKind {
    /// Every vendor, in declaration order.
    pub const ALL: [VendorKind; 6] = [
        VendorKind::Stripe,
        VendorKind::Demo,
        VendorKind::Twilio,
        VendorKind::Resend,
        VendorKind::OpenAi,
        VendorKind::Anthropic,
    ];

    /// Parses a config/URL vendor name (ASCII case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|v| v.name().eq_ignore_ascii_case(name))
    }

    /// Canonical lowercase name, as used in config and URLs.
    pub fn name(self) -> &'static str {
        match self {
            VendorKind::Stripe => "stripe",
            VendorKind::Demo => "demo",
            VendorKind::Twilio => "twilio",
            VendorKind::Resend => "resend",
            VendorKind::OpenAi => "openai",
            VendorKind::Anthropic => "anthropic",
        }
    }
}

/// One outbound request, as the proxy sees it before forwarding.
#[derive(Clone, Copy, Debug)]
pub struct PriceRequest<'a> {
    /// Target vendor.
    pub vendor: VendorKind,
    /// HTTP method, e.g. `"POST"`.
    pub method: &'a str,
    /// Canonical vendor path without the vendor prefix, e.g. `/v1/payment_intents`.
    pub path: &'a str,
    /// Raw query string without `?` (may be empty).
    pub query: &'a str,
    /// `Content-Type` header, if any.
    pub content_type: Option<&'a str>,
    /// Full request body.
    pub body: &'a [u8],
}

/// Price of one request: what to reserve now and how to settle later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quote {
    /// Micro-dollars to reserve against the key's cap before forwarding.
    pub reserve_micros: u64,
    /// How to compute the final cost.
    pub settle: Settle,
}

impl Quote {
    /// A quote whose final cost equals its reserve.
    pub fn fixed(reserve_micros: u64) -> Self {
        Quote {
            reserve_micros,
            settle: Settle::Fixed,
        }
    }
}

/// How the final cost of a call is determined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settle {
    /// Final cost == reserve (Stripe amount, Twilio segments, Resend recipients).
    Fixed,
    /// Final cost from the response's token usage at these prices.
    Usage {
        /// Which usage shape to read.
        vendor: LlmVendor,
        /// Prices of the resolved model.
        prices: ModelPrice,
        /// The answer is an SSE stream (use [`SseUsageScanner`]).
        streaming: bool,
    },
}

/// Prices one request. `Ok` with a zero reserve means "free"; `Err` is a
/// 400-class refusal (see [`PriceError::code`]).
pub fn quote(
    req: &PriceRequest<'_>,
    params: &Params,
    prices: &CompiledPrices,
) -> Result<Quote, PriceError> {
    let listed = match req.vendor {
        VendorKind::Stripe | VendorKind::Demo => stripe::quote(req, params, &prices.currency)?,
        VendorKind::Twilio => twilio::quote(req, params, &prices.twilio)?,
        VendorKind::Resend => resend::quote(req, params, prices.resend_per_recipient_micros)?,
        VendorKind::OpenAi => openai::quote(
            req,
            params,
            &prices.openai,
            prices.default_max_output_tokens,
        )?,
        VendorKind::Anthropic => anthropic::quote(req, params, &prices.anthropic)?,
    };
    Ok(listed.unwrap_or_else(|| route::extra_quote(req, &prices.extra)))
}

/// Test helper: prices a JSON POST with the shipped tables.
#[cfg(test)]
pub(crate) fn quote_json(vendor: VendorKind, path: &str, body: &str) -> Result<Quote, PriceError> {
    let prices = PriceTable::default().compile().map_err(|_| PriceError::BadBody)?;
    let req = PriceRequest { vendor, method: "POST", path, query: "", content_type: Some("application/json"), body: body.as_bytes() };
    let params = Params::parse(req.query, req.content_type, req.body)?;
    quote(&req, &params, &prices)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_names_round_trip() {
        for v in VendorKind::ALL {
            assert_eq!(VendorKind::from_name(v.name()), Some(v));
        }
        assert_eq!(VendorKind::from_name("OpenAI"), Some(VendorKind::OpenAi));
        assert_eq!(VendorKind::from_name("paypal"), None);
    }

    #[test]
    fn unlisted_call_is_free_without_override() {
        let prices = PriceTable::default().compile().unwrap();
        let req = PriceRequest {
            vendor: VendorKind::Stripe,
            method: "GET",
            path: "/v1/customers",
            query: "",
            content_type: None,
            body: b"",
        };
        let params = Params::parse(req.query, req.content_type, req.body).unwrap();
        assert_eq!(quote(&req, &params, &prices).unwrap(), Quote::fixed(0));
    }

    #[test]
    fn extra_rule_prices_unlisted_calls_only() {
        let mut table = PriceTable::default();
        for path in ["/v1/checkout/sessions", "/v1/charges"] {
            table.extra.push(table::FixedPrice {
                vendor: "stripe".into(),
                method: "POST".into(),
                path: path.into(),
                usd: 25.0,
            });
        }
        let prices = table.compile().unwrap();
        let run = |path, body: &'static [u8]| {
            let req = PriceRequest {
                vendor: VendorKind::Stripe,
                method: "POST",
                path,
                query: "",
                content_type: Some("application/x-www-form-urlencoded"),
                body,
            };
            let params = Params::parse(req.query, req.content_type, req.body).unwrap();
            quote(&req, &params, &prices).unwrap().reserve_micros
        };
        assert_eq!(run("/v1/checkout/sessions", b"mode=payment"), 25_000_000);
        assert_eq!(run("/v1/charges", b"amount=100&currency=usd"), 1_000_000);
        assert_eq!(run("/v1/customers", b"email=a"), 0);
    }
}
