//! OpenAI: worst-case reserve for token-billed endpoints, settled from usage,
//! plus the helpers that make streamed chat answers report usage.
//!
//! Priced (POST): `/v1/chat/completions`, `/v1/responses`, `/v1/completions`,
//! `/v1/embeddings`. `model` is required. Output bound = the largest of
//! `max_completion_tokens` / `max_tokens` / `max_output_tokens` (else the
//! configured default; 0 for embeddings), multiplied by the number of
//! choices (`n`, `best_of`), since each choice is billed.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::llm::{
    count_param, is_streaming, json_path, max_count_param, model_param, reserve_micros, LlmVendor,
    ModelTable,
};
use super::route::{is_post, matches, segments};
use super::{Params, PriceError, PriceRequest, Quote, Settle};

/// Token-limit parameter names across OpenAI endpoints.
const OUTPUT_LIMITS: [&str; 3] = ["max_completion_tokens", "max_tokens", "max_output_tokens"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Chat,
    Responses,
    Completions,
    Embeddings,
}

/// Quote for an OpenAI call; `None` when the call is not listed.
pub(crate) fn quote(
    req: &PriceRequest<'_>,
    params: &Params,
    models: &ModelTable,
    default_max_output: u64,
) -> Result<Option<Quote>, PriceError> {
    if !is_post(req) {
        return Ok(None);
    }
    let Some(endpoint) = endpoint(&segments(req.path)) else {
        return Ok(None);
    };
    let prices = models.lookup(&model_param(params)?)?;
    let output = output_bound(endpoint, params, default_max_output)?;
    let input = u64::try_from(req.body.len()).unwrap_or(u64::MAX);
    Ok(Some(Quote {
        reserve_micros: reserve_micros(&prices, input, output),
        settle: Settle::Usage {
            vendor: LlmVendor::OpenAi,
            prices,
            streaming: endpoint != Endpoint::Embeddings && is_streaming(params),
        },
    }))
}

fn endpoint(segs: &[Cow<'_, str>]) -> Option<Endpoint> {
    if matches(&["v1", "chat", "completions"], segs) {
        Some(Endpoint::Chat)
    } else if matches(&["v1", "responses"], segs) {
        Some(Endpoint::Responses)
    } else if matches(&["v1", "completions"], segs) {
        Some(Endpoint::Completions)
    } else if matches(&["v1", "embeddings"], segs) {
        Some(Endpoint::Embeddings)
    } else {
        None
    }
}

fn output_bound(endpoint: Endpoint, params: &Params, default_max: u64) -> Result<u64, PriceError> {
    if endpoint == Endpoint::Embeddings {
        return Ok(0);
    }
    let per_choice = max_count_param(params, &OUTPUT_LIMITS)?.unwrap_or(default_max);
    let choices = match endpoint {
        Endpoint::Chat => count_param(params, "n")?.unwrap_or(1),
        Endpoint::Completions => max_count_param(params, &["n", "best_of"])?.unwrap_or(1),
        Endpoint::Responses | Endpoint::Embeddings => 1,
    };
    Ok(per_choice.saturating_mul(choices.max(1)))
}

/// True when the request streams (`stream: true`) but did not ask for the
/// final usage chunk (`stream_options.include_usage: true`). Applies to
/// `/v1/chat/completions` and `/v1/completions`; `/v1/responses` streams always
/// end with usage in `response.completed`, so callers skip it there.
pub fn openai_stream_needs_usage_option(params: &Params) -> bool {
    let include_usage = params
        .raw_json()
        .and_then(|root| json_path(root, &["stream_options", "include_usage"]))
        .and_then(Value::as_bool)
        == Some(true);
    is_streaming(params) && !include_usage
}

/// The JSON object `body` with `"stream_options": {"include_usage": true}`
/// merged in (other `stream_options` keys kept); `None` if not a JSON object.
pub fn add_include_usage(body: &[u8]) -> Option<Vec<u8>> {
    let mut root: Value = serde_json::from_slice(body).ok()?;
    let object = root.as_object_mut()?;
    let options = object
        .entry("stream_options")
        .or_insert_with(|| Value::Object(Map::new()));
    if !options.is_object() {
        *options = Value::Object(Map::new());
    }
    if let Value::Object(map) = options {
        map.insert("include_usage".to_owned(), Value::Bool(true));
    }
    serde_json::to_vec(&root).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::{ModelPrice, VendorKind};

    fn run(path: &str, body: &str) -> Result<Quote, PriceError> {
        crate::pricing::quote_json(VendorKind::OpenAi, path, body)
    }

    /// Default gpt-4o: $2.50 in (cached $1.25), $10 out per M.
    const GPT_4O: ModelPrice = ModelPrice {
        input: 2_500_000,
        output: 10_000_000,
        cache_read: 1_250_000,
        cache_write: 2_500_000,
    };

    fn expected(bytes: usize, output: u64, p: ModelPrice) -> u64 {
        (bytes as u64 * p.input + output * p.output).div_ceil(1_000_000)
    }

    #[test]
    fn chat_reserve_formula() {
        let body = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Hello!"}],"max_completion_tokens":500}"#;
        let q = run("/v1/chat/completions", body).unwrap();
        assert_eq!(q.reserve_micros, expected(body.len(), 500, GPT_4O));
        assert_eq!(
            q.settle,
            Settle::Usage {
                vendor: LlmVendor::OpenAi,
                prices: GPT_4O,
                streaming: false
            }
        );
    }

    #[test]
    fn default_output_bound_and_choices() {
        let body = r#"{"model":"gpt-4o","messages":[]}"#;
        let q = run("/v1/chat/completions", body).unwrap();
        assert_eq!(q.reserve_micros, expected(body.len(), 4096, GPT_4O));
        let body = r#"{"model":"gpt-4o","messages":[],"max_tokens":100,"n":3}"#;
        let q = run("/v1/chat/completions", body).unwrap();
        assert_eq!(q.reserve_micros, expected(body.len(), 300, GPT_4O));
        let body =
            r#"{"model":"gpt-4o","messages":[],"max_tokens":100,"max_completion_tokens":900}"#;
        let q = run("/v1/chat/completions", body).unwrap();
        assert_eq!(q.reserve_micros, expected(body.len(), 900, GPT_4O));
    }

    #[test]
    fn responses_and_embeddings() {
        let body = r#"{"model":"gpt-4o-2024-08-06","input":"Tell me a joke","max_output_tokens":200,"stream":true}"#;
        let q = run("/v1/responses", body).unwrap();
        assert_eq!(q.reserve_micros, expected(body.len(), 200, GPT_4O));
        assert!(matches!(
            q.settle,
            Settle::Usage {
                streaming: true,
                ..
            }
        ));
        let body = r#"{"model":"text-embedding-3-small","input":"The food was delicious"}"#;
        let q = run("/v1/embeddings", body).unwrap();
        // $0.02/M × bytes, no output.
        assert_eq!(
            q.reserve_micros,
            (body.len() as u64 * 20_000).div_ceil(1_000_000)
        );
    }

    #[test]
    fn dated_model_prefix_match() {
        let q = run(
            "/v1/chat/completions",
            r#"{"model":"gpt-4o-mini-2024-07-18","messages":[]}"#,
        )
        .unwrap();
        let Settle::Usage { prices, .. } = q.settle else {
            panic!("usage settle")
        };
        assert_eq!(prices.input, 150_000);
    }

    #[test]
    fn refusals() {
        assert_eq!(
            run(
                "/v1/chat/completions",
                r#"{"model":"my-model","messages":[]}"#
            ),
            Err(PriceError::UnpricedModel("my-model".into()))
        );
        assert_eq!(
            run("/v1/chat/completions", r#"{"messages":[]}"#),
            Err(PriceError::MissingParam("model"))
        );
        let bad = run(
            "/v1/chat/completions",
            r#"{"model":"gpt-4o","max_tokens":-1}"#,
        );
        assert!(matches!(
            bad,
            Err(PriceError::BadParam {
                name: "max_tokens",
                ..
            })
        ));
        let bad = run("/v1/chat/completions", r#"{"model":"gpt-4o","n":"x"}"#);
        assert!(matches!(bad, Err(PriceError::BadParam { name: "n", .. })));
        assert_eq!(run("/v1/chat/completions", "{"), Err(PriceError::BadBody));
    }

    #[test]
    fn null_limit_means_default() {
        let body = r#"{"model":"gpt-4o","input":"x","max_output_tokens":null}"#;
        let q = run("/v1/responses", body).unwrap();
        assert_eq!(q.reserve_micros, expected(body.len(), 4096, GPT_4O));
    }

    #[test]
    fn unlisted_calls_free() {
        assert_eq!(
            run("/v1/files", r#"{"purpose":"batch"}"#),
            Ok(Quote::fixed(0))
        );
        assert_eq!(
            run("/v1/responses/resp_1/cancel", "{}"),
            Ok(Quote::fixed(0))
        );
    }

    fn parsed(body: &str) -> Params<'_> {
        Params::parse("", Some("application/json"), body.as_bytes()).unwrap()
    }

    #[test]
    fn stream_usage_option_detection() {
        assert!(openai_stream_needs_usage_option(&parsed(
            r#"{"stream":true}"#
        )));
        assert!(openai_stream_needs_usage_option(&parsed(
            r#"{"stream":true,"stream_options":{"include_usage":false}}"#
        )));
        assert!(!openai_stream_needs_usage_option(&parsed(
            r#"{"stream":true,"stream_options":{"include_usage":true}}"#
        )));
        assert!(!openai_stream_needs_usage_option(&parsed(
            r#"{"stream":false}"#
        )));
        assert!(!openai_stream_needs_usage_option(&parsed(
            r#"{"model":"x"}"#
        )));
    }

    #[test]
    fn include_usage_is_merged() {
        let out = add_include_usage(br#"{"model":"gpt-4o","stream":true}"#).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], Value::Bool(true));
        assert_eq!(v["model"], "gpt-4o");
        let out =
            add_include_usage(br#"{"stream_options":{"include_obfuscation":false}}"#).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["stream_options"]["include_obfuscation"],
            Value::Bool(false)
        );
        assert_eq!(v["stream_options"]["include_usage"], Value::Bool(true));
        let out = add_include_usage(br#"{"stream":true,"stream_options":null}"#).unwrap();
        assert!(!openai_stream_needs_usage_option(&parsed(
            std::str::from_utf8(&out).unwrap()
        )));
        assert_eq!(add_include_usage(b"[1]"), None);
        assert_eq!(add_include_usage(b"nope"), None);
    }
}
