//! Token usage read from vendor answers: the JSON usage shapes of OpenAI and
//! Anthropic, for whole JSON bodies and for single SSE event payloads.
//!
//! OpenAI: `usage.prompt_tokens` / `completion_tokens` with
//! `prompt_tokens_details.cached_tokens` (chat, completions, embeddings), or
//! `usage.input_tokens` / `output_tokens` with `input_tokens_details.cached_tokens`
//! (responses). Cached tokens are part of the prompt count and are split out.
//! Anthropic: `usage.input_tokens`, `output_tokens`,
//! `cache_creation_input_tokens`, `cache_read_input_tokens` (already disjoint).

use serde::Deserialize;

use super::{LlmVendor, Usage};

#[derive(Deserialize)]
struct OaUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<OaDetails>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    input_tokens_details: Option<OaDetails>,
}

#[derive(Deserialize)]
struct OaDetails {
    cached_tokens: Option<u64>,
}

impl OaUsage {
    fn to_usage(&self) -> Option<Usage> {
        let (prompt, output, details) = match (self.prompt_tokens, self.input_tokens) {
            (Some(p), _) => (p, self.completion_tokens, &self.prompt_tokens_details),
            (None, Some(i)) => (i, self.output_tokens, &self.input_tokens_details),
            (None, None) => return None,
        };
        let cached = details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0)
            .min(prompt);
        Some(Usage {
            input: prompt - cached,
            output: output.unwrap_or(0),
            cache_read: cached,
            cache_write: 0,
        })
    }
}

#[derive(Deserialize)]
struct AnUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

impl AnUsage {
    /// `base` with every field this object carries replaced; `None` if it carries none.
    fn overlay(&self, base: Usage) -> Option<Usage> {
        let fields = [
            self.input_tokens,
            self.output_tokens,
            self.cache_creation_input_tokens,
            self.cache_read_input_tokens,
        ];
        if fields.iter().all(Option::is_none) {
            return None;
        }
        Some(Usage {
            input: self.input_tokens.unwrap_or(base.input),
            output: self.output_tokens.unwrap_or(base.output),
            cache_read: self.cache_read_input_tokens.unwrap_or(base.cache_read),
            cache_write: self.cache_creation_input_tokens.unwrap_or(base.cache_write),
        })
    }
}

/// Top-level `usage` (plain answers, OpenAI chat chunks, Anthropic `message_delta`),
/// `response.usage` (OpenAI responses events), `message.usage` (Anthropic `message_start`).
#[derive(Deserialize)]
struct Envelope<U> {
    usage: Option<U>,
    response: Option<Inner<U>>,
    message: Option<Inner<U>>,
}

#[derive(Deserialize)]
struct Inner<U> {
    usage: Option<U>,
}

/// Usage of a complete (non-streaming) JSON answer.
pub fn usage_from_json(vendor: LlmVendor, body: &[u8]) -> Option<Usage> {
    apply_event(vendor, None, body)
}

/// Folds one JSON payload (a whole answer or one SSE `data`) into `current`:
/// OpenAI replaces with the latest usage; Anthropic overlays present fields
/// (`message_start` sets all, `message_delta` updates cumulative output).
pub(crate) fn apply_event(vendor: LlmVendor, current: Option<Usage>, data: &[u8]) -> Option<Usage> {
    if !contains(data, b"\"usage\"") {
        return current;
    }
    match vendor {
        LlmVendor::OpenAi => openai_event(data).or(current),
        LlmVendor::Anthropic => anthropic_event(data, current),
    }
}

fn openai_event(data: &[u8]) -> Option<Usage> {
    let env: Envelope<OaUsage> = serde_json::from_slice(data).ok()?;
    let inner = env.response.and_then(|r| r.usage);
    env.usage.or(inner).as_ref().and_then(OaUsage::to_usage)
}

fn anthropic_event(data: &[u8], current: Option<Usage>) -> Option<Usage> {
    let Ok(env) = serde_json::from_slice::<Envelope<AnUsage>>(data) else {
        return current;
    };
    let started = env.message.and_then(|m| m.usage);
    [started, env.usage]
        .iter()
        .flatten()
        .fold(current, |acc, u| u.overlay(acc.unwrap_or_default()).or(acc))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_chat_completion() {
        let body = br#"{
          "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
          "object": "chat.completion",
          "created": 1741570283,
          "model": "gpt-4o-2024-08-06",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!", "refusal": null, "annotations": []}, "logprobs": null, "finish_reason": "stop"}],
          "usage": {
            "prompt_tokens": 1117,
            "completion_tokens": 46,
            "total_tokens": 1163,
            "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
          },
          "service_tier": "default",
          "system_fingerprint": "fp_fc9f1d7035"
        }"#;
        assert_eq!(
            usage_from_json(LlmVendor::OpenAi, body),
            Some(Usage {
                input: 93,
                output: 46,
                cache_read: 1024,
                cache_write: 0
            })
        );
    }

    #[test]
    fn openai_responses() {
        let body = br#"{"id":"resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b","object":"response",
          "created_at":1741476542,"status":"completed","error":null,"model":"gpt-4.1-2025-04-14",
          "output":[{"type":"message","id":"msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3795b","status":"completed","role":"assistant","content":[{"type":"output_text","text":"In a peaceful grove...","annotations":[]}]}],
          "usage":{"input_tokens":36,"input_tokens_details":{"cached_tokens":0},"output_tokens":87,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":123}}"#;
        assert_eq!(
            usage_from_json(LlmVendor::OpenAi, body),
            Some(Usage {
                input: 36,
                output: 87,
                cache_read: 0,
                cache_write: 0
            })
        );
    }

    #[test]
    fn openai_embeddings() {
        let body = br#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.0023064255,-0.009327292]}],
          "model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}"#;
        assert_eq!(
            usage_from_json(LlmVendor::OpenAi, body),
            Some(Usage {
                input: 8,
                output: 0,
                cache_read: 0,
                cache_write: 0
            })
        );
    }

    #[test]
    fn anthropic_message() {
        let body = br#"{"id":"msg_013Zva2CMHLNnXjNJJKqJ2EF","type":"message","role":"assistant","model":"claude-sonnet-4-20250514",
          "content":[{"type":"text","text":"Hi! My name is Claude."}],"stop_reason":"end_turn","stop_sequence":null,
          "usage":{"input_tokens":2095,"cache_creation_input_tokens":2051,"cache_read_input_tokens":0,
                   "cache_creation":{"ephemeral_5m_input_tokens":2051,"ephemeral_1h_input_tokens":0},
                   "output_tokens":503,"service_tier":"standard"}}"#;
        assert_eq!(
            usage_from_json(LlmVendor::Anthropic, body),
            Some(Usage {
                input: 2095,
                output: 503,
                cache_read: 0,
                cache_write: 2051
            })
        );
    }

    #[test]
    fn missing_or_malformed_usage() {
        assert_eq!(
            usage_from_json(LlmVendor::OpenAi, br#"{"error":{"message":"x"}}"#),
            None
        );
        assert_eq!(
            usage_from_json(LlmVendor::OpenAi, br#"{"usage":null}"#),
            None
        );
        assert_eq!(
            usage_from_json(LlmVendor::OpenAi, br#"{"usage":{"total_tokens":3}}"#),
            None
        );
        assert_eq!(
            usage_from_json(LlmVendor::Anthropic, br#"{"usage":{}}"#),
            None
        );
        assert_eq!(
            usage_from_json(LlmVendor::Anthropic, b"not json \"usage\""),
            None
        );
    }
}
