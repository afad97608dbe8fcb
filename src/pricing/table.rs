//! Price tables: the config shape (USD floats), the shipped defaults (the one
//! place default prices live), and compilation into integer [`CompiledPrices`].
//!
//! Config merge: every section is `#[serde(default)]`, so omitted sections and
//! fields keep the shipped values. Maps merge key by key over the shipped maps
//! (`currency.rates_usd`, `twilio.sms_usd`, `twilio.mms_usd`, `openai.models`,
//! `anthropic.models`): a key the operator gives replaces or adds that entry,
//! shipped keys not mentioned stay. Shipped entries cannot be removed (refuse a
//! model by key scope instead). `extra` is a list and replaces the (empty)
//! shipped list. Unknown fields are rejected.
//!
//! Shipped prices are list prices at the time of writing and FX rates are
//! static placeholders: operators should override them for real money.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use super::currency::{config_micros, CurrencyRates};
use super::llm::ModelTable;
use super::route::FixedRule;
use super::twilio::TwilioPrices;

/// USD per one major unit (placeholders; override with live rates).
const RATES_USD: &[(&str, f64)] = &[
    ("usd", 1.0),
    ("eur", 1.16),
    ("gbp", 1.34),
    ("cad", 0.73),
    ("aud", 0.66),
    ("jpy", 0.0068),
    ("chf", 1.25),
    ("inr", 0.0115),
    ("krw", 0.00072),
    ("bhd", 2.66),
    ("kwd", 3.27),
    ("sek", 0.106),
    ("nok", 0.099),
    ("dkk", 0.156),
    ("mxn", 0.054),
    ("brl", 0.185),
    ("sgd", 0.78),
    ("hkd", 0.129),
    ("nzd", 0.59),
];

/// Twilio outbound SMS, USD per segment by E.164 prefix (longest prefix wins).
/// Note `+1` also covers NANP Caribbean numbers, which cost more.
const TWILIO_SMS_USD: &[(&str, f64)] = &[
    ("+1", 0.0079),
    ("+44", 0.0524),
    ("+49", 0.0887),
    ("+33", 0.0798),
    ("+61", 0.0515),
    ("+91", 0.0832),
];

/// Twilio outbound MMS, USD per message by prefix.
const TWILIO_MMS_USD: &[(&str, f64)] = &[("+1", 0.0200)];

/// OpenAI USD per million tokens: (model, input, output, cached input).
const OPENAI_MODELS: &[(&str, f64, f64, f64)] = &[
    ("gpt-4o", 2.50, 10.00, 1.25),
    ("gpt-4o-mini", 0.15, 0.60, 0.075),
    ("gpt-4.1", 2.00, 8.00, 0.50),
    ("gpt-4.1-mini", 0.40, 1.60, 0.10),
    ("gpt-4.1-nano", 0.10, 0.40, 0.025),
    ("gpt-5", 1.25, 10.00, 0.125),
    ("gpt-5-mini", 0.25, 2.00, 0.025),
    ("gpt-5-nano", 0.05, 0.40, 0.005),
    ("o1", 15.00, 60.00, 7.50),
    ("o3", 2.00, 8.00, 0.50),
    ("o3-mini", 1.10, 4.40, 0.55),
    ("o4-mini", 1.10, 4.40, 0.275),
    ("gpt-3.5-turbo", 0.50, 1.50, 0.50),
    ("text-embedding-3-small", 0.02, 0.0, 0.02),
    ("text-embedding-3-large", 0.13, 0.0, 0.13),
];

/// Anthropic USD per million tokens: (model, input, output, cache read, 5-minute cache write).
const ANTHROPIC_MODELS: &[(&str, f64, f64, f64, f64)] = &[
    ("claude-opus-4", 15.00, 75.00, 1.50, 18.75),
    ("claude-opus-4-1", 15.00, 75.00, 1.50, 18.75),
    ("claude-opus-4-5", 5.00, 25.00, 0.50, 6.25),
    ("claude-sonnet-4", 3.00, 15.00, 0.30, 3.75),
    ("claude-sonnet-4-5", 3.00, 15.00, 0.30, 3.75),
    ("claude-haiku-4-5", 1.00, 5.00, 0.10, 1.25),
    ("claude-3-7-sonnet", 3.00, 15.00, 0.30, 3.75),
    ("claude-3-5-sonnet", 3.00, 15.00, 0.30, 3.75),
    ("claude-3-5-haiku", 0.80, 4.00, 0.08, 1.00),
    ("claude-3-opus", 15.00, 75.00, 1.50, 18.75),
    ("claude-3-haiku", 0.25, 1.25, 0.03, 0.30),
];

/// All pricing config; `Default` is the shipped table.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PriceTable {
    /// FX rates for Stripe/demo amounts.
    pub currency: CurrencyTable,
    /// Twilio message and call prices.
    pub twilio: TwilioTable,
    /// Resend email prices.
    pub resend: ResendTable,
    /// OpenAI model prices.
    #[serde(deserialize_with = "openai_over_shipped")]
    pub openai: LlmTable,
    /// Anthropic model prices.
    #[serde(deserialize_with = "anthropic_over_shipped")]
    pub anthropic: LlmTable,
    /// Output bound for OpenAI calls that set no token limit.
    pub default_max_output_tokens: u64,
    /// Operator prices for calls no vendor rule lists (first match wins).
    pub extra: Vec<FixedPrice>,
}

/// FX table.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CurrencyTable {
    /// USD per one major unit, by lowercase ISO code (merged over shipped).
    #[serde(deserialize_with = "rates_over_shipped")]
    pub rates_usd: BTreeMap<String, f64>,
}

/// Twilio prices in USD.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TwilioTable {
    /// Per SMS segment by `+prefix` (merged over shipped).
    #[serde(deserialize_with = "sms_over_shipped")]
    pub sms_usd: BTreeMap<String, f64>,
    /// Per SMS segment when no prefix matches; must be > 0.
    pub fallback_sms_usd: f64,
    /// Per MMS message by `+prefix` (merged over shipped).
    #[serde(deserialize_with = "mms_over_shipped")]
    pub mms_usd: BTreeMap<String, f64>,
    /// Per MMS message when no prefix matches; must be > 0.
    pub fallback_mms_usd: f64,
    /// Reserve per outbound call.
    pub call_usd: f64,
}

/// Resend prices in USD.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ResendTable {
    /// Per recipient (to + cc + bcc). Placeholder: plans bill per email.
    pub per_recipient_usd: f64,
}

/// One vendor's model prices in USD per million tokens.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LlmTable {
    /// By model name; dated/suffixed names match their `name-` prefix.
    pub models: BTreeMap<String, ModelPriceUsd>,
    /// Price for models not in the table; `None` refuses them.
    pub fallback: Option<ModelPriceUsd>,
}

/// One model's USD prices per million tokens.
#[derive(Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelPriceUsd {
    /// Uncached input.
    pub input: f64,
    /// Output.
    pub output: f64,
    /// Cached input read (OpenAI "cached input"); defaults to `input`.
    #[serde(default, alias = "cached_input")]
    pub cache_read: Option<f64>,
    /// Cache write; defaults to `input`.
    #[serde(default)]
    pub cache_write: Option<f64>,
}

/// Operator rule: a fixed USD price for a call no vendor rule lists.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FixedPrice {
    /// Vendor name (`stripe`, `twilio`, …).
    pub vendor: String,
    /// HTTP method, or `*`.
    pub method: String,
    /// Path pattern; `*` matches one whole segment.
    pub path: String,
    /// Price per call.
    pub usd: f64,
}

/// Integer prices ready for [`quote`](super::quote).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledPrices {
    /// FX in micro-USD per major unit.
    pub currency: CurrencyRates,
    /// Twilio prices.
    pub twilio: TwilioPrices,
    /// Resend price per recipient.
    pub resend_per_recipient_micros: u64,
    /// OpenAI models.
    pub openai: ModelTable,
    /// Anthropic models.
    pub anthropic: ModelTable,
    /// Output bound when an OpenAI request sets none.
    pub default_max_output_tokens: u64,
    /// Operator fixed prices.
    pub extra: Vec<FixedRule>,
}

impl Default for PriceTable {
    fn default() -> Self {
        PriceTable {
            currency: CurrencyTable::default(),
            twilio: TwilioTable::default(),
            resend: ResendTable::default(),
            openai: LlmTable {
                models: openai_models(),
                fallback: None,
            },
            anthropic: LlmTable {
                models: anthropic_models(),
                fallback: None,
            },
            default_max_output_tokens: 4096,
            extra: Vec::new(),
        }
    }
}

impl Default for CurrencyTable {
    fn default() -> Self {
        CurrencyTable {
            rates_usd: to_map(RATES_USD),
        }
    }
}

impl Default for TwilioTable {
    fn default() -> Self {
        TwilioTable {
            sms_usd: to_map(TWILIO_SMS_USD),
            fallback_sms_usd: 0.15,
            mms_usd: to_map(TWILIO_MMS_USD),
            fallback_mms_usd: 0.20,
            call_usd: 0.50,
        }
    }
}

impl Default for ResendTable {
    fn default() -> Self {
        ResendTable {
            per_recipient_usd: 0.0009,
        }
    }
}

impl PriceTable {
    /// Converts every float once and validates; errors name the entry.
    pub fn compile(&self) -> Result<CompiledPrices, String> {
        if self.default_max_output_tokens == 0 {
            return Err("`default_max_output_tokens` must be at least 1".to_owned());
        }
        Ok(CompiledPrices {
            currency: CurrencyRates::from_usd(&self.currency.rates_usd)?,
            twilio: TwilioPrices::compile(&self.twilio)?,
            resend_per_recipient_micros: config_micros(
                "resend.per_recipient_usd",
                self.resend.per_recipient_usd,
            )?,
            openai: ModelTable::compile("openai", &self.openai)?,
            anthropic: ModelTable::compile("anthropic", &self.anthropic)?,
            default_max_output_tokens: self.default_max_output_tokens,
            extra: self.compile_extra()?,
        })
    }

    fn compile_extra(&self) -> Result<Vec<FixedRule>, String> {
        let rule = |(i, f): (usize, &FixedPrice)| {
            let micros = config_micros(&format!("extra[{i}].usd"), f.usd)?;
            FixedRule::new(i, &f.vendor, &f.method, &f.path, micros)
        };
        self.extra.iter().enumerate().map(rule).collect()
    }
}

fn to_map(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

fn openai_models() -> BTreeMap<String, ModelPriceUsd> {
    let entry = |&(name, input, output, cached): &(&str, f64, f64, f64)| {
        let price = ModelPriceUsd {
            input,
            output,
            cache_read: Some(cached),
            cache_write: None,
        };
        (name.to_owned(), price)
    };
    OPENAI_MODELS.iter().map(entry).collect()
}

fn anthropic_models() -> BTreeMap<String, ModelPriceUsd> {
    let entry = |&(name, input, output, read, write): &(&str, f64, f64, f64, f64)| {
        let price = ModelPriceUsd {
            input,
            output,
            cache_read: Some(read),
            cache_write: Some(write),
        };
        (name.to_owned(), price)
    };
    ANTHROPIC_MODELS.iter().map(entry).collect()
}

/// The operator's map laid over `shipped`.
fn merged<'de, D, V>(
    d: D,
    mut shipped: BTreeMap<String, V>,
) -> Result<BTreeMap<String, V>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    shipped.extend(BTreeMap::<String, V>::deserialize(d)?);
    Ok(shipped)
}

fn rates_over_shipped<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
    let user = BTreeMap::<String, f64>::deserialize(d)?;
    let mut rates = to_map(RATES_USD);
    rates.extend(user.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)));
    Ok(rates)
}

fn sms_over_shipped<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
    merged(d, to_map(TWILIO_SMS_USD))
}

fn mms_over_shipped<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
    merged(d, to_map(TWILIO_MMS_USD))
}

fn openai_over_shipped<'de, D: Deserializer<'de>>(d: D) -> Result<LlmTable, D::Error> {
    let mut table = LlmTable::deserialize(d)?;
    table.models = merged_models(openai_models(), table.models);
    Ok(table)
}

fn anthropic_over_shipped<'de, D: Deserializer<'de>>(d: D) -> Result<LlmTable, D::Error> {
    let mut table = LlmTable::deserialize(d)?;
    table.models = merged_models(anthropic_models(), table.models);
    Ok(table)
}

fn merged_models(
    mut shipped: BTreeMap<String, ModelPriceUsd>,
    user: BTreeMap<String, ModelPriceUsd>,
) -> BTreeMap<String, ModelPriceUsd> {
    shipped.extend(user);
    shipped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::ModelPrice;

    fn from_json(text: &str) -> PriceTable {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn shipped_table_compiles() {
        let c = PriceTable::default().compile().unwrap();
        assert_eq!(c.resend_per_recipient_micros, 900);
        assert_eq!(c.twilio.call_micros, 500_000);
        assert_eq!(c.default_max_output_tokens, 4096);
        assert_eq!(c.currency.cost_micros("usd", 100), Ok(1_000_000));
        assert!(c.openai.lookup("text-embedding-3-large").is_ok());
        assert!(c.anthropic.lookup("claude-haiku-4-5-20251001").is_ok());
    }

    #[test]
    fn empty_config_is_shipped_table() {
        assert_eq!(from_json("{}"), PriceTable::default());
    }

    #[test]
    fn maps_merge_over_shipped() {
        let t = from_json(
            r#"{"currency":{"rates_usd":{"EUR":1.5,"pln":0.27}},
                "twilio":{"sms_usd":{"+44":0.06}},
                "openai":{"models":{"gpt-4o":{"input":3,"output":12,"cached_input":1.5},
                                    "my-ft":{"input":1,"output":2}}}}"#,
        );
        assert_eq!(t.currency.rates_usd.get("eur"), Some(&1.5));
        assert_eq!(t.currency.rates_usd.get("pln"), Some(&0.27));
        assert_eq!(t.currency.rates_usd.get("jpy"), Some(&0.0068));
        assert_eq!(t.twilio.sms_usd.get("+44"), Some(&0.06));
        assert_eq!(t.twilio.sms_usd.get("+1"), Some(&0.0079));
        assert_eq!(t.twilio.fallback_sms_usd, 0.15);
        assert_eq!(t.anthropic, PriceTable::default().anthropic);
        let c = t.compile().unwrap();
        assert_eq!(
            c.openai.lookup("gpt-4o-2024-11-20"),
            Ok(ModelPrice {
                input: 3_000_000,
                output: 12_000_000,
                cache_read: 1_500_000,
                cache_write: 3_000_000
            })
        );
        assert!(c.openai.lookup("my-ft").is_ok());
        assert!(c.openai.lookup("gpt-4.1").is_ok());
    }

    #[test]
    fn fallback_and_extra_from_config() {
        let t = from_json(
            r#"{"openai":{"fallback":{"input":10,"output":40}},
                "extra":[{"vendor":"stripe","method":"POST","path":"/v1/checkout/sessions","usd":50}]}"#,
        );
        let c = t.compile().unwrap();
        assert_eq!(
            c.openai.lookup("unknown-model").map(|p| p.output),
            Ok(40_000_000)
        );
        assert_eq!(c.extra.len(), 1);
        assert_eq!(c.extra[0].micros, 50_000_000);
    }

    #[test]
    fn unknown_fields_rejected() {
        assert!(serde_json::from_str::<PriceTable>(r#"{"twilio":{"fallback":1}}"#).is_err());
        assert!(serde_json::from_str::<PriceTable>(
            r#"{"openai":{"models":{"x":{"input":1,"output":1,"oops":1}}}}"#
        )
        .is_err());
    }

    #[test]
    fn invalid_numbers_name_the_entry() {
        let err = |json: &str| from_json(json).compile().unwrap_err();
        assert!(
            err(r#"{"openai":{"models":{"gpt-4o":{"input":-1,"output":1}}}}"#)
                .contains("openai.models.gpt-4o.input")
        );
        assert!(
            err(r#"{"anthropic":{"models":{"c":{"input":1,"output":1e20}}}}"#)
                .contains("anthropic.models.c.output")
        );
        assert!(err(r#"{"twilio":{"fallback_sms_usd":0}}"#).contains("twilio.fallback_sms_usd"));
        assert!(err(r#"{"twilio":{"sms_usd":{"44":0.1}}}"#).contains("44"));
        assert!(err(r#"{"currency":{"rates_usd":{"eur":0}}}"#).contains("eur"));
        assert!(
            err(r#"{"resend":{"per_recipient_usd":-0.1}}"#).contains("resend.per_recipient_usd")
        );
        assert!(
            err(r#"{"extra":[{"vendor":"x","method":"GET","path":"/a","usd":1}]}"#)
                .contains("extra[0]")
        );
        assert!(
            err(r#"{"extra":[{"vendor":"stripe","method":"GET","path":"/a","usd":-1}]}"#)
                .contains("extra[0].usd")
        );
        assert!(err(r#"{"default_max_output_tokens":0}"#).contains("default_max_output_tokens"));
    }
}
