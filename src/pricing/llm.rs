//! Shared token pricing for LLM vendors: integer model prices, the model
//! table with prefix matching, token usage, and the reserve/settle formulas.
//!
//! Prices are micro-dollars per million tokens (so $0.15/M = 150_000 and
//! $0.005/M = 5_000 are exact); costs are rounded up to whole micro-dollars.
//!
//! Worst-case reserve = input bound × the highest input-side rate (plain,
//! cache write or cache read) + output bound × output rate. The input bound is
//! the request body's byte length (a token is at least one byte). That bound
//! covers the text in the body only: inputs the body merely references
//! (image/file URLs or ids, `previous_response_id`, server-side tool prompts)
//! can exceed it; settlement from usage still records the true cost.

use serde_json::Value;

use super::currency::config_micros;
use super::table::{LlmTable, ModelPriceUsd};
use super::{ParamValue, Params, PriceError};

/// Tokens per pricing unit.
const TOKENS_PER_UNIT: u128 = 1_000_000;

/// Which vendor's usage shapes apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LlmVendor {
    /// OpenAI (chat completions, responses, completions, embeddings).
    OpenAi,
    /// Anthropic messages.
    Anthropic,
}

/// Model prices in micro-dollars per million tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ModelPrice {
    /// Uncached input tokens.
    pub input: u64,
    /// Output tokens (including reasoning/thinking).
    pub output: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write: u64,
}

impl ModelPrice {
    /// Converts a config entry; cache rates default to the input rate.
    pub fn from_usd(entry: &str, usd: &ModelPriceUsd) -> Result<Self, String> {
        let field = |name: &str, value: f64| config_micros(&format!("{entry}.{name}"), value);
        let input = field("input", usd.input)?;
        Ok(ModelPrice {
            input,
            output: field("output", usd.output)?,
            cache_read: usd
                .cache_read
                .map_or(Ok(input), |v| field("cache_read", v))?,
            cache_write: usd
                .cache_write
                .map_or(Ok(input), |v| field("cache_write", v))?,
        })
    }

    /// Highest rate any input token can be billed at.
    fn worst_input(&self) -> u64 {
        self.input.max(self.cache_read).max(self.cache_write)
    }
}

/// Token counts of one answer. `input` excludes cached tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Usage {
    /// Uncached input tokens.
    pub input: u64,
    /// Output tokens.
    pub output: u64,
    /// Input tokens read from cache.
    pub cache_read: u64,
    /// Input tokens written to cache.
    pub cache_write: u64,
}

/// Cost of `usage` at `prices`, in micro-dollars, rounded up (saturating).
pub fn cost_from_usage(prices: &ModelPrice, usage: &Usage) -> u64 {
    let term = |tokens: u64, rate: u64| u128::from(tokens) * u128::from(rate);
    let scaled = term(usage.input, prices.input)
        .saturating_add(term(usage.output, prices.output))
        .saturating_add(term(usage.cache_read, prices.cache_read))
        .saturating_add(term(usage.cache_write, prices.cache_write));
    u64::try_from(scaled.div_ceil(TOKENS_PER_UNIT)).unwrap_or(u64::MAX)
}

/// Worst-case cost of `input_tokens` (at the highest input-side rate) plus `output_tokens`.
pub fn reserve_micros(prices: &ModelPrice, input_tokens: u64, output_tokens: u64) -> u64 {
    let worst = ModelPrice {
        input: prices.worst_input(),
        ..*prices
    };
    let usage = Usage {
        input: input_tokens,
        output: output_tokens,
        ..Usage::default()
    };
    cost_from_usage(&worst, &usage)
}

/// Compiled model table of one vendor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelTable {
    models: Vec<(String, ModelPrice)>,
    fallback: Option<ModelPrice>,
}

impl ModelTable {
    /// Converts the config table; errors name `vendor.models.<name>.<field>`.
    pub fn compile(vendor: &str, table: &LlmTable) -> Result<Self, String> {
        let mut models = Vec::with_capacity(table.models.len());
        for (name, usd) in &table.models {
            if name.is_empty() {
                return Err(format!("{vendor}.models has an empty model name"));
            }
            models.push((
                name.clone(),
                ModelPrice::from_usd(&format!("{vendor}.models.{name}"), usd)?,
            ));
        }
        let fallback = match &table.fallback {
            Some(usd) => Some(ModelPrice::from_usd(&format!("{vendor}.fallback"), usd)?),
            None => None,
        };
        Ok(ModelTable { models, fallback })
    }

    /// Price of `model`: exact key, else the longest key `k` with `model`
    /// starting with `k-` (dated/suffixed variants), else the fallback.
    pub fn lookup(&self, model: &str) -> Result<ModelPrice, PriceError> {
        let exact = self.models.iter().find(|(k, _)| k == model);
        let prefixed = || {
            self.models
                .iter()
                .filter(|(k, _)| is_dash_prefix(k, model))
                .max_by_key(|(k, _)| k.len())
        };
        exact
            .or_else(prefixed)
            .map(|(_, p)| *p)
            .or(self.fallback)
            .ok_or_else(|| PriceError::unpriced_model(model))
    }
}

/// `model` == `key` + "-" + something.
fn is_dash_prefix(key: &str, model: &str) -> bool {
    model
        .strip_prefix(key)
        .is_some_and(|rest| rest.len() > 1 && rest.starts_with('-'))
}

/// The required `model` parameter.
pub(crate) fn model_param(params: &Params) -> Result<String, PriceError> {
    match params.get("model") {
        Some(ParamValue::Str(s)) if !s.is_empty() => Ok(s.into_owned()),
        None | Some(ParamValue::Str(_)) => Err(PriceError::MissingParam("model")),
        Some(_) => Err(PriceError::BadParam {
            name: "model",
            reason: "must be a model name",
        }),
    }
}

/// Optional non-negative integer parameter; present but invalid → `BadParam`.
pub(crate) fn count_param(params: &Params, name: &'static str) -> Result<Option<u64>, PriceError> {
    if params.get(name).is_none() {
        return Ok(None);
    }
    params.u64(name).map(Some).ok_or(PriceError::BadParam {
        name,
        reason: "must be a non-negative integer",
    })
}

/// Largest of the present token-limit parameters `names`.
pub(crate) fn max_count_param(
    params: &Params,
    names: &[&'static str],
) -> Result<Option<u64>, PriceError> {
    let mut largest = None;
    for name in names {
        if let Some(v) = count_param(params, name)? {
            largest = Some(largest.map_or(v, |l: u64| l.max(v)));
        }
    }
    Ok(largest)
}

/// `body.stream == true`.
pub(crate) fn is_streaming(params: &Params) -> bool {
    params.bool("stream") == Some(true)
}

/// Looks up a nested JSON value by object keys.
pub(crate) fn json_path<'a>(root: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().try_fold(root, |v, k| v.get(*k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(input: u64, output: u64, cache_read: u64, cache_write: u64) -> ModelPrice {
        ModelPrice {
            input,
            output,
            cache_read,
            cache_write,
        }
    }

    fn table(models: &[(&str, ModelPrice)], fallback: Option<ModelPrice>) -> ModelTable {
        ModelTable {
            models: models.iter().map(|(k, p)| (k.to_string(), *p)).collect(),
            fallback,
        }
    }

    #[test]
    fn cost_rounds_up_once() {
        // gpt-4o-mini: $0.15 in, $0.60 out, $0.075 cached per M.
        let p = price(150_000, 600_000, 75_000, 150_000);
        let u = Usage {
            input: 1000,
            output: 500,
            cache_read: 2000,
            cache_write: 0,
        };
        // 1000*0.15 + 500*0.6 + 2000*0.075 = 150 + 300 + 150 = 600 micros.
        assert_eq!(cost_from_usage(&p, &u), 600);
        let one = Usage {
            input: 1,
            ..Usage::default()
        };
        assert_eq!(cost_from_usage(&p, &one), 1);
        assert_eq!(cost_from_usage(&p, &Usage::default()), 0);
    }

    #[test]
    fn cost_saturates() {
        let p = price(u64::MAX, u64::MAX, u64::MAX, u64::MAX);
        let u = Usage {
            input: u64::MAX,
            output: u64::MAX,
            cache_read: u64::MAX,
            cache_write: u64::MAX,
        };
        assert_eq!(cost_from_usage(&p, &u), u64::MAX);
    }

    #[test]
    fn reserve_uses_worst_input_rate() {
        let p = price(3_000_000, 15_000_000, 300_000, 3_750_000);
        // 1000 bytes × $3.75/M + 100 × $15/M = 3750 + 1500.
        assert_eq!(reserve_micros(&p, 1000, 100), 5_250);
    }

    #[test]
    fn lookup_exact_prefix_fallback() {
        let big = price(2_500_000, 10_000_000, 1_250_000, 2_500_000);
        let mini = price(150_000, 600_000, 75_000, 150_000);
        let t = table(&[("gpt-4o", big), ("gpt-4o-mini", mini)], None);
        assert_eq!(t.lookup("gpt-4o"), Ok(big));
        assert_eq!(t.lookup("gpt-4o-2024-08-06"), Ok(big));
        assert_eq!(t.lookup("gpt-4o-mini-2024-07-18"), Ok(mini));
        assert_eq!(t.lookup("gpt-4o-mini-x"), Ok(mini));
        assert_eq!(
            t.lookup("gpt-4omni"),
            Err(PriceError::UnpricedModel("gpt-4omni".into()))
        );
        assert_eq!(
            t.lookup("gpt-4o-"),
            Err(PriceError::UnpricedModel("gpt-4o-".into()))
        );
        assert_eq!(
            t.lookup("gpt-5"),
            Err(PriceError::UnpricedModel("gpt-5".into()))
        );
        let with_fallback = table(&[("gpt-4o", big)], Some(mini));
        assert_eq!(with_fallback.lookup("gpt-5"), Ok(mini));
    }

    #[test]
    fn model_price_from_usd() {
        let usd = ModelPriceUsd {
            input: 0.15,
            output: 0.6,
            cache_read: Some(0.075),
            cache_write: None,
        };
        assert_eq!(
            ModelPrice::from_usd("m", &usd),
            Ok(price(150_000, 600_000, 75_000, 150_000))
        );
        let bad = ModelPriceUsd {
            input: -1.0,
            output: 0.6,
            cache_read: None,
            cache_write: None,
        };
        assert!(ModelPrice::from_usd("openai.models.x", &bad)
            .unwrap_err()
            .contains("openai.models.x.input"));
    }
}
