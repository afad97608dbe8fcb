//! Currency: minor-unit exponents, USD conversion of config numbers, and the
//! compiled FX table that turns a vendor amount (minor units) into micro-USD.
//!
//! Conversion always rounds UP (conservative): a cap is never under-charged.

use std::collections::BTreeMap;

use super::PriceError;

/// Micro-dollars per dollar.
pub const MICROS_PER_USD: u64 = 1_000_000;

/// Largest USD amount accepted from config.
const MAX_CONFIG_USD: f64 = 1e12;

/// Currencies with no minor unit (Stripe's zero-decimal list).
pub const ZERO_DECIMAL: [&str; 16] = [
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];

/// Currencies with three decimal places.
pub const THREE_DECIMAL: [&str; 5] = ["bhd", "jod", "kwd", "omr", "tnd"];

/// Decimal places of a (lowercase) currency's minor unit: 0, 3, else 2.
pub fn minor_exponent(code: &str) -> u32 {
    if ZERO_DECIMAL.contains(&code) {
        0
    } else if THREE_DECIMAL.contains(&code) {
        3
    } else {
        2
    }
}

/// Converts a config USD amount to micro-dollars (nearest); `None` when not
/// finite, negative, or above 1e12 USD.
pub fn usd_to_micros(usd: f64) -> Option<u64> {
    if !usd.is_finite() || !(0.0..=MAX_CONFIG_USD).contains(&usd) {
        return None;
    }
    // In range [0, 1e18] after scaling, so the cast is exact enough and cannot wrap.
    Some((usd * MICROS_PER_USD as f64).round() as u64)
}

/// [`usd_to_micros`] with an error naming the config entry.
pub(crate) fn config_micros(entry: &str, usd: f64) -> Result<u64, String> {
    usd_to_micros(usd)
        .ok_or_else(|| format!("`{entry}` = {usd} must be a finite USD amount between 0 and 1e12"))
}

/// Like [`config_micros`] but also refuses values that round to zero.
pub(crate) fn config_micros_nonzero(entry: &str, usd: f64) -> Result<u64, String> {
    match config_micros(entry, usd)? {
        0 => Err(format!("`{entry}` = {usd} must be greater than zero")),
        micros => Ok(micros),
    }
}

/// Compiled FX table: integer micro-USD per one major unit of each currency.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CurrencyRates {
    micros_per_major: BTreeMap<String, u64>,
}

impl CurrencyRates {
    /// Compiles `code → USD per major unit`; codes are lowercased, rates must be > 0.
    pub fn from_usd(rates_usd: &BTreeMap<String, f64>) -> Result<Self, String> {
        let mut micros_per_major = BTreeMap::new();
        for (code, usd) in rates_usd {
            let code = code.to_ascii_lowercase();
            if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_lowercase()) {
                return Err(format!("currency `{code}` is not a 3-letter code"));
            }
            let micros = config_micros_nonzero(&format!("currency.rates_usd.{code}"), *usd)?;
            if micros_per_major.insert(code.clone(), micros).is_some() {
                return Err(format!("currency `{code}` is listed twice"));
            }
        }
        Ok(CurrencyRates { micros_per_major })
    }

    /// Cost in micro-USD of `amount_minor` minor units of `currency` (any case).
    pub fn cost_micros(&self, currency: &str, amount_minor: u64) -> Result<u64, PriceError> {
        // Lower-cased only when it is not already (one request each).
        let code: std::borrow::Cow<'_, str> = if currency.bytes().any(|b| b.is_ascii_uppercase()) { currency.to_ascii_lowercase().into() } else { currency.into() };
        let rate = self
            .micros_per_major
            .get(&*code)
            .ok_or_else(|| PriceError::unpriced_currency(&code))?;
        convert(amount_minor, *rate, minor_exponent(&code)).ok_or(too_large())
    }

    /// Upper bound of the cost of `amount_minor` in any configured currency
    /// (for amounts whose currency the request does not say).
    pub fn max_cost_micros(&self, amount_minor: u64) -> Result<u64, PriceError> {
        let mut worst = 0;
        for (code, rate) in &self.micros_per_major {
            let cost = convert(amount_minor, *rate, minor_exponent(code)).ok_or(too_large())?;
            worst = worst.max(cost);
        }
        Ok(worst)
    }
}

/// ceil(amount × rate / 10^exp) in u128; `None` if it does not fit u64.
fn convert(amount_minor: u64, micros_per_major: u64, exponent: u32) -> Option<u64> {
    let scaled = u128::from(amount_minor) * u128::from(micros_per_major);
    let cost = scaled.div_ceil(10u128.pow(exponent));
    u64::try_from(cost).ok()
}

fn too_large() -> PriceError {
    PriceError::BadParam {
        name: "amount",
        reason: "too large to price",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(pairs: &[(&str, f64)]) -> CurrencyRates {
        let map = pairs.iter().map(|(c, r)| (c.to_string(), *r)).collect();
        CurrencyRates::from_usd(&map).unwrap()
    }

    #[test]
    fn exponents() {
        assert_eq!(minor_exponent("jpy"), 0);
        assert_eq!(minor_exponent("krw"), 0);
        assert_eq!(minor_exponent("kwd"), 3);
        assert_eq!(minor_exponent("usd"), 2);
        assert_eq!(minor_exponent("eur"), 2);
    }

    #[test]
    fn usd_cents_exact() {
        let r = rates(&[("usd", 1.0)]);
        assert_eq!(r.cost_micros("usd", 1999), Ok(19_990_000));
        assert_eq!(r.cost_micros("USD", 1), Ok(10_000));
    }

    #[test]
    fn jpy_has_no_minor_unit() {
        let r = rates(&[("jpy", 0.01)]);
        // 1000 JPY = 1000 yen = $10.
        assert_eq!(r.cost_micros("jpy", 1000), Ok(10_000_000));
    }

    #[test]
    fn kwd_has_three_decimals() {
        let r = rates(&[("kwd", 3.25)]);
        // 1000 minor = 1.000 KWD = $3.25.
        assert_eq!(r.cost_micros("kwd", 1000), Ok(3_250_000));
    }

    #[test]
    fn rounds_up() {
        let r = rates(&[("eur", 1.085)]);
        // 1 cent = 0.01085 USD = 10_850 micros exactly.
        assert_eq!(r.cost_micros("eur", 1), Ok(10_850));
        let r = rates(&[("jpy", 0.0067)]);
        assert_eq!(r.cost_micros("jpy", 1), Ok(6_700));
        let r = rates(&[("kwd", 3.257)]);
        // 1 fils = 3_257_000 / 1000 = 3257 micros; at 3.2571 USD: ceil(3257.1) = 3258.
        assert_eq!(r.cost_micros("kwd", 1), Ok(3_257));
        let r = rates(&[("kwd", 3.2571)]);
        assert_eq!(r.cost_micros("kwd", 1), Ok(3_258));
    }

    #[test]
    fn unknown_currency_refused() {
        let r = rates(&[("usd", 1.0)]);
        assert_eq!(
            r.cost_micros("xyz", 100),
            Err(PriceError::UnpricedCurrency("xyz".into()))
        );
    }

    #[test]
    fn overflow_is_bad_param() {
        let r = rates(&[("usd", 1e9)]);
        assert!(matches!(
            r.cost_micros("usd", u64::MAX),
            Err(PriceError::BadParam { name: "amount", .. })
        ));
    }

    #[test]
    fn max_cost_takes_most_valuable_minor_unit() {
        let r = rates(&[("usd", 1.0), ("jpy", 0.0067), ("gbp", 1.33), ("kwd", 3.26)]);
        assert_eq!(r.max_cost_micros(100), Ok(1_330_000));
    }

    #[test]
    fn config_conversion() {
        assert_eq!(usd_to_micros(0.0079), Some(7_900));
        assert_eq!(usd_to_micros(0.15), Some(150_000));
        assert_eq!(usd_to_micros(0.0), Some(0));
        assert_eq!(usd_to_micros(1e12), Some(1_000_000_000_000_000_000));
        assert_eq!(usd_to_micros(-0.01), None);
        assert_eq!(usd_to_micros(f64::NAN), None);
        assert_eq!(usd_to_micros(f64::INFINITY), None);
        assert_eq!(usd_to_micros(1e13), None);
    }

    #[test]
    fn bad_rates_refused() {
        let bad = |pairs: &[(&str, f64)]| {
            let map = pairs.iter().map(|(c, r)| (c.to_string(), *r)).collect();
            CurrencyRates::from_usd(&map).unwrap_err()
        };
        assert!(bad(&[("eur", 0.0)]).contains("eur"));
        assert!(bad(&[("eur", -1.0)]).contains("eur"));
        assert!(bad(&[("euro", 1.0)]).contains("euro"));
        assert!(bad(&[("EUR", 1.0), ("eur", 1.1)]).contains("twice"));
    }
}
