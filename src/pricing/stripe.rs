//! Stripe (and the Stripe-shaped `demo` vendor): money-moving calls cost
//! their `amount` converted to USD.
//!
//! Priced (POST only):
//! - creates: `/v1/payment_intents`, `/v1/charges`, `/v1/payouts`, `/v1/transfers`
//!   (`amount` and `currency` required);
//! - refunds: `/v1/refunds` and the legacy `/v1/charges/{id}/refund(s)`;
//!   no `amount` (a full refund) → [`PriceError::AmountUnknown`]; an amount
//!   without `currency` (the charge's currency is not in the request) is
//!   priced in the most valuable configured currency;
//! - PaymentIntent amount changes: `/v1/payment_intents/{id}` and
//!   `/v1/payment_intents/{id}/increment_authorization` when they carry an
//!   `amount` (priced like a refund's amount; no amount → not listed).
//!
//! Everything else is not listed (0 unless an `extra` rule prices it). In
//! particular `/v1/payment_intents/{id}/confirm` and `/capture` cost 0: the
//! money was priced when the intent was created (or its amount changed).

use std::borrow::Cow;

use super::currency::CurrencyRates;
use super::params::parse_u64;
use super::route::{is_post, matches, segments};
use super::{ParamValue, Params, PriceError, PriceRequest, Quote};

/// Create endpoints whose `amount` + `currency` are the cost.
const CREATES: [&str; 4] = ["payment_intents", "charges", "payouts", "transfers"];

/// What a priced route does with its parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Create,
    Refund,
    AmountChange,
}

/// Quote for a Stripe/demo call; `None` when the call is not listed.
pub(crate) fn quote(
    req: &PriceRequest<'_>,
    params: &Params,
    rates: &CurrencyRates,
) -> Result<Option<Quote>, PriceError> {
    if !is_post(req) {
        return Ok(None);
    }
    let micros = match route(&segments(req.path)) {
        None => return Ok(None),
        Some(Route::Create) => create_cost(params, rates)?,
        Some(Route::Refund) => match amount(params)? {
            None => return Err(PriceError::AmountUnknown),
            Some(minor) => cost_in_given_or_worst_currency(params, rates, minor)?,
        },
        Some(Route::AmountChange) => match amount(params)? {
            None => return Ok(None),
            Some(minor) => cost_in_given_or_worst_currency(params, rates, minor)?,
        },
    };
    Ok(Some(Quote::fixed(micros)))
}

fn route(segs: &[Cow<'_, str>]) -> Option<Route> {
    if CREATES.iter().any(|c| matches(&["v1", c], segs)) {
        Some(Route::Create)
    } else if matches(&["v1", "refunds"], segs)
        || matches(&["v1", "charges", "*", "refund"], segs)
        || matches(&["v1", "charges", "*", "refunds"], segs)
    {
        Some(Route::Refund)
    } else if matches(&["v1", "payment_intents", "*"], segs)
        || matches(
            &["v1", "payment_intents", "*", "increment_authorization"],
            segs,
        )
    {
        Some(Route::AmountChange)
    } else {
        None
    }
}

fn create_cost(params: &Params, rates: &CurrencyRates) -> Result<u64, PriceError> {
    let minor = amount(params)?.ok_or(PriceError::MissingParam("amount"))?;
    let code = currency(params)?.ok_or(PriceError::MissingParam("currency"))?;
    rates.cost_micros(&code, minor)
}

fn cost_in_given_or_worst_currency(
    params: &Params,
    rates: &CurrencyRates,
    minor: u64,
) -> Result<u64, PriceError> {
    match currency(params)? {
        Some(code) => rates.cost_micros(&code, minor),
        None => rates.max_cost_micros(minor),
    }
}

/// `amount` in minor units: absent → `None`; not one non-negative integer → error.
fn amount(params: &Params) -> Result<Option<u64>, PriceError> {
    let bad = PriceError::BadParam {
        name: "amount",
        reason: "must be one non-negative integer in minor units",
    };
    match params.get("amount") {
        None => Ok(None),
        Some(ParamValue::Str(s)) => parse_u64(&s).map(Some).ok_or(bad),
        Some(ParamValue::Num(n)) => n.as_u64().map(Some).ok_or(bad),
        Some(ParamValue::Bool(_) | ParamValue::Array(_)) => Err(bad),
    }
}

/// The request's `currency` as sent (trimmed; [`CurrencyRates`] ignores
/// its case): absent → `None`; empty or not one string → error.
fn currency<'p>(params: &'p Params) -> Result<Option<Cow<'p, str>>, PriceError> {
    match params.get("currency") {
        None => Ok(None),
        Some(ParamValue::Str(Cow::Borrowed(s))) if !s.trim().is_empty() => Ok(Some(Cow::Borrowed(s.trim()))),
        Some(ParamValue::Str(s)) if !s.trim().is_empty() => Ok(Some(Cow::Owned(s.trim().to_owned()))),
        Some(ParamValue::Str(_)) => Err(PriceError::MissingParam("currency")),
        Some(_) => Err(PriceError::BadParam {
            name: "currency",
            reason: "must be one ISO currency code",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::{quote as price, PriceTable, VendorKind};

    fn run(vendor: VendorKind, path: &str, body: &str) -> Result<Quote, PriceError> {
        let mut table = PriceTable::default();
        table.currency.rates_usd.insert("jpy".into(), 0.01);
        table.currency.rates_usd.insert("kwd".into(), 3.25);
        let prices = table.compile().unwrap();
        let req = PriceRequest {
            vendor,
            method: "POST",
            path,
            query: "",
            content_type: Some("application/x-www-form-urlencoded"),
            body: body.as_bytes(),
        };
        let params = Params::parse(req.query, req.content_type, req.body)?;
        price(&req, &params, &prices)
    }

    fn stripe(path: &str, body: &str) -> Result<Quote, PriceError> {
        run(VendorKind::Stripe, path, body)
    }

    #[test]
    fn creates_cost_their_amount() {
        for path in [
            "/v1/payment_intents",
            "/v1/charges",
            "/v1/payouts",
            "/v1/transfers",
        ] {
            assert_eq!(
                stripe(path, "amount=1999&currency=usd"),
                Ok(Quote::fixed(19_990_000))
            );
        }
        assert_eq!(
            stripe("/v1/charges", "amount=1000&currency=JPY"),
            Ok(Quote::fixed(10_000_000))
        );
        assert_eq!(
            stripe("/v1/charges", "amount=1000&currency=kwd"),
            Ok(Quote::fixed(3_250_000))
        );
    }

    #[test]
    fn demo_prices_like_stripe() {
        assert_eq!(
            run(
                VendorKind::Demo,
                "/v1/payment_intents",
                "amount=500&currency=usd"
            ),
            Ok(Quote::fixed(5_000_000))
        );
    }

    #[test]
    fn create_requires_amount_and_currency() {
        assert_eq!(
            stripe("/v1/payment_intents", "currency=usd"),
            Err(PriceError::MissingParam("amount"))
        );
        assert_eq!(
            stripe("/v1/payment_intents", "amount=1"),
            Err(PriceError::MissingParam("currency"))
        );
        assert_eq!(
            stripe("/v1/payment_intents", "amount=1&currency=zzz"),
            Err(PriceError::UnpricedCurrency("zzz".into()))
        );
    }

    #[test]
    fn bad_amounts_refused() {
        for body in [
            "amount=-5",
            "amount=1.5",
            "amount=",
            "amount=1&amount=9999",
            "amount[]=1",
        ] {
            let r = stripe("/v1/charges", &format!("{body}&currency=usd"));
            assert!(
                matches!(r, Err(PriceError::BadParam { name: "amount", .. })),
                "{body}: {r:?}"
            );
        }
    }

    #[test]
    fn refunds() {
        assert_eq!(
            stripe("/v1/refunds", "charge=ch_1"),
            Err(PriceError::AmountUnknown)
        );
        assert_eq!(
            stripe("/v1/charges/ch_1/refund", ""),
            Err(PriceError::AmountUnknown)
        );
        assert_eq!(
            stripe("/v1/refunds", "charge=ch_1&amount=500&currency=usd"),
            Ok(Quote::fixed(5_000_000))
        );
        // No currency: priced in the most valuable configured currency (conservative).
        let worst = stripe("/v1/refunds", "payment_intent=pi_1&amount=100").unwrap();
        assert!(worst.reserve_micros >= 1_000_000, "{worst:?}");
    }

    #[test]
    fn only_create_paths_are_priced() {
        assert_eq!(
            stripe(
                "/v1/payment_intents/pi_1/confirm",
                "payment_method=pm_card_visa"
            ),
            Ok(Quote::fixed(0))
        );
        assert_eq!(
            stripe("/v1/payment_intents/pi_1/capture", "amount_to_capture=100"),
            Ok(Quote::fixed(0))
        );
        assert_eq!(
            stripe("/v1/payment_intents/pi_1", "description=x"),
            Ok(Quote::fixed(0))
        );
        assert_eq!(stripe("/v1/customers", "email=a@b.c"), Ok(Quote::fixed(0)));
    }

    #[test]
    fn amount_change_on_existing_intent_is_priced() {
        assert_eq!(
            stripe("/v1/payment_intents/pi_1", "amount=2000&currency=usd"),
            Ok(Quote::fixed(20_000_000))
        );
        assert_eq!(
            stripe(
                "/v1/payment_intents/pi_1/increment_authorization",
                "amount=100&currency=usd"
            ),
            Ok(Quote::fixed(1_000_000))
        );
    }

    #[test]
    fn get_is_not_priced() {
        let prices = PriceTable::default().compile().unwrap();
        let req = PriceRequest {
            vendor: VendorKind::Stripe,
            method: "GET",
            path: "/v1/charges",
            query: "limit=3",
            content_type: None,
            body: b"",
        };
        let params = Params::parse(req.query, None, b"").unwrap();
        assert_eq!(price(&req, &params, &prices), Ok(Quote::fixed(0)));
    }
}
