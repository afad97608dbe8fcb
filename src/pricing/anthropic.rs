//! Anthropic: worst-case reserve for `/v1/messages`, settled from usage.
//!
//! `model` and `max_tokens` are required (as by the API itself); `max_tokens`
//! bounds all output including extended thinking. Input bound = body bytes,
//! priced at the highest input-side rate (cache writes cost more than input).
//! Other calls (`count_tokens`, model listing, …) are not listed. Message
//! batches (`/v1/messages/batches`) are not listed either: price or block
//! them with an `extra` rule.

use super::llm::{is_streaming, model_param, reserve_micros, LlmVendor, ModelTable};
use super::route::{is_post, matches, segments};
use super::{Params, PriceError, PriceRequest, Quote, Settle};

/// Quote for an Anthropic call; `None` when the call is not listed.
pub(crate) fn quote(
    req: &PriceRequest<'_>,
    params: &Params,
    models: &ModelTable,
) -> Result<Option<Quote>, PriceError> {
    if !is_post(req) || !matches(&["v1", "messages"], &segments(req.path)) {
        return Ok(None);
    }
    let prices = models.lookup(&model_param(params)?)?;
    let output = max_tokens(params)?;
    let input = u64::try_from(req.body.len()).unwrap_or(u64::MAX);
    Ok(Some(Quote {
        reserve_micros: reserve_micros(&prices, input, output),
        settle: Settle::Usage {
            vendor: LlmVendor::Anthropic,
            prices,
            streaming: is_streaming(params),
        },
    }))
}

fn max_tokens(params: &Params) -> Result<u64, PriceError> {
    if params.get("max_tokens").is_none() {
        return Err(PriceError::MissingParam("max_tokens"));
    }
    params.u64("max_tokens").ok_or(PriceError::BadParam {
        name: "max_tokens",
        reason: "must be a non-negative integer",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::{ModelPrice, VendorKind};

    fn run(path: &str, body: &str) -> Result<Quote, PriceError> {
        crate::pricing::quote_json(VendorKind::Anthropic, path, body)
    }

    /// Default claude-sonnet-4: $3 in, $15 out, $0.30 cache read, $3.75 cache write per M.
    const SONNET_4: ModelPrice = ModelPrice {
        input: 3_000_000,
        output: 15_000_000,
        cache_read: 300_000,
        cache_write: 3_750_000,
    };

    #[test]
    fn reserve_is_worst_case() {
        let body = r#"{"model":"claude-sonnet-4-20250514","max_tokens":1024,"messages":[{"role":"user","content":"Hello, world"}]}"#;
        let q = run("/v1/messages", body).unwrap();
        let want =
            (body.len() as u64 * SONNET_4.cache_write + 1024 * SONNET_4.output).div_ceil(1_000_000);
        assert_eq!(q.reserve_micros, want);
        assert_eq!(
            q.settle,
            Settle::Usage {
                vendor: LlmVendor::Anthropic,
                prices: SONNET_4,
                streaming: false
            }
        );
    }

    #[test]
    fn streaming_flag_and_aliases() {
        let q = run(
            "/v1/messages",
            r#"{"model":"claude-3-5-haiku-latest","max_tokens":10,"stream":true,"messages":[]}"#,
        )
        .unwrap();
        let Settle::Usage {
            prices, streaming, ..
        } = q.settle
        else {
            panic!("usage settle")
        };
        assert!(streaming);
        assert_eq!(prices.input, 800_000);
        let q = run(
            "/v1/messages",
            r#"{"model":"claude-opus-4-1-20250805","max_tokens":1,"messages":[]}"#,
        )
        .unwrap();
        let Settle::Usage { prices, .. } = q.settle else {
            panic!("usage settle")
        };
        assert_eq!(prices.output, 75_000_000);
    }

    #[test]
    fn refusals() {
        assert_eq!(
            run(
                "/v1/messages",
                r#"{"model":"claude-sonnet-4","messages":[]}"#
            ),
            Err(PriceError::MissingParam("max_tokens"))
        );
        let bad = run(
            "/v1/messages",
            r#"{"model":"claude-sonnet-4","max_tokens":"lots","messages":[]}"#,
        );
        assert!(matches!(
            bad,
            Err(PriceError::BadParam {
                name: "max_tokens",
                ..
            })
        ));
        assert_eq!(
            run("/v1/messages", r#"{"model":"claude-2.1","max_tokens":5}"#),
            Err(PriceError::UnpricedModel("claude-2.1".into()))
        );
    }

    #[test]
    fn other_calls_free() {
        assert_eq!(
            run(
                "/v1/messages/count_tokens",
                r#"{"model":"claude-sonnet-4"}"#
            ),
            Ok(Quote::fixed(0))
        );
    }
}
