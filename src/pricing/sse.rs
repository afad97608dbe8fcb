//! Streaming settlement: an incremental SSE reader that keeps the latest
//! token usage seen in an OpenAI or Anthropic event stream.
//!
//! Chunks may split anywhere (inside an event, a line, a UTF-8 character or a
//! `\r\n` pair); the result depends only on the concatenated bytes. Lines end
//! with `\n`, `\r\n` or `\r`; `data:` lines of one event are joined with `\n`
//! and the event is read at the blank line that ends it (`usage()` also reads
//! an event whose data lines are complete but whose blank line has not come).
//! `data: [DONE]` and non-`data` fields are ignored. Memory is bounded: a line
//! or an event's data longer than 1 MiB is skipped, never buffered whole.

use super::usage::apply_event;
use super::{LlmVendor, Usage};

/// Longest line or event data buffered, in bytes.
pub const MAX_SSE_BYTES: usize = 1 << 20;

/// Incremental usage reader for one streamed answer.
#[derive(Clone, Debug)]
pub struct SseUsageScanner {
    vendor: LlmVendor,
    /// Bytes of the current, unterminated line.
    line: Vec<u8>,
    /// The current line exceeded the limit; drop it up to its end.
    line_too_long: bool,
    /// The last byte seen was `\r` (a following `\n` belongs to it).
    after_cr: bool,
    /// Joined `data` of the current event.
    data: Vec<u8>,
    /// The current event's data exceeded the limit; drop the event.
    data_too_long: bool,
    /// Usage folded from all completed events.
    usage: Option<Usage>,
}

impl SseUsageScanner {
    /// A scanner for `vendor`'s stream format.
    pub fn new(vendor: LlmVendor) -> Self {
        SseUsageScanner {
            vendor,
            line: Vec::new(),
            line_too_long: false,
            after_cr: false,
            data: Vec::new(),
            data_too_long: false,
            usage: None,
        }
    }

    /// Feeds the next chunk of the response body.
    pub fn feed(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        if rest.is_empty() {
            return;
        }
        if std::mem::replace(&mut self.after_cr, false) && rest.first() == Some(&b'\n') {
            rest = rest.get(1..).unwrap_or_default();
        }
        while let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (head, tail) = rest.split_at(pos);
            self.extend_line(head);
            self.end_line();
            let is_cr = tail.first() == Some(&b'\r');
            rest = tail.get(1..).unwrap_or_default();
            if is_cr {
                match rest.first() {
                    Some(b'\n') => rest = rest.get(1..).unwrap_or_default(),
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        self.extend_line(rest);
    }

    /// Latest usage seen so far (`None` until the stream reported any).
    pub fn usage(&self) -> Option<Usage> {
        if self.data.is_empty() || self.data_too_long {
            self.usage
        } else {
            self.fold(self.usage, &self.data)
        }
    }

    fn extend_line(&mut self, bytes: &[u8]) {
        if self.line_too_long {
            return;
        }
        if self.line.len() + bytes.len() > MAX_SSE_BYTES {
            self.line_too_long = true;
            self.line = Vec::new();
        } else {
            self.line.extend_from_slice(bytes);
        }
    }

    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        if std::mem::replace(&mut self.line_too_long, false) {
            return;
        }
        if line.is_empty() {
            self.end_event();
        } else if let Some(value) = line.strip_prefix(b"data:") {
            self.push_data(value.strip_prefix(b" ").unwrap_or(value));
        }
    }

    fn push_data(&mut self, value: &[u8]) {
        if self.data_too_long {
            return;
        }
        let separator = usize::from(!self.data.is_empty());
        if self.data.len() + separator + value.len() > MAX_SSE_BYTES {
            self.data_too_long = true;
            self.data = Vec::new();
            return;
        }
        if separator == 1 {
            self.data.push(b'\n');
        }
        self.data.extend_from_slice(value);
    }

    fn end_event(&mut self) {
        let data = std::mem::take(&mut self.data);
        if !std::mem::replace(&mut self.data_too_long, false) {
            self.usage = self.fold(self.usage, &data);
        }
    }

    fn fold(&self, current: Option<Usage>, data: &[u8]) -> Option<Usage> {
        if data.is_empty() || data == b"[DONE]" {
            return current;
        }
        apply_event(self.vendor, current, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// OpenAI chat completion stream with `stream_options.include_usage`.
    const OPENAI_CHAT: &str = concat!(
        "data: {\"id\":\"chatcmpl-BQx0sM5mPDeZ1bEdrUOb1AoZ9cjkq\",\"object\":\"chat.completion.chunk\",\"created\":1745852766,\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_0392822090\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-BQx0sM5mPDeZ1bEdrUOb1AoZ9cjkq\",\"object\":\"chat.completion.chunk\",\"created\":1745852766,\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_0392822090\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-BQx0sM5mPDeZ1bEdrUOb1AoZ9cjkq\",\"object\":\"chat.completion.chunk\",\"created\":1745852766,\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_0392822090\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"! How can I help with \\\"usage\\\" today? 😀\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-BQx0sM5mPDeZ1bEdrUOb1AoZ9cjkq\",\"object\":\"chat.completion.chunk\",\"created\":1745852766,\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_0392822090\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-BQx0sM5mPDeZ1bEdrUOb1AoZ9cjkq\",\"object\":\"chat.completion.chunk\",\"created\":1745852766,\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_0392822090\",\"choices\":[],\"usage\":{\"prompt_tokens\":1290,\"completion_tokens\":12,\"total_tokens\":1302,\"prompt_tokens_details\":{\"cached_tokens\":1152,\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}\n\n",
        "data: [DONE]\n\n",
    );

    const OPENAI_CHAT_USAGE: Usage = Usage {
        input: 138,
        output: 12,
        cache_read: 1152,
        cache_write: 0,
    };

    /// OpenAI Responses API stream (abridged `response` objects).
    const OPENAI_RESPONSES: &str = concat!(
        "event: response.created\n",
        "data: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_67c9fdcecf488190bdd9a0409de3a1ec07b8b0ad4e5eb654\",\"object\":\"response\",\"created_at\":1741290958,\"status\":\"in_progress\",\"error\":null,\"model\":\"gpt-4.1-2025-04-14\",\"output\":[],\"usage\":null}}\n\n",
        "event: response.output_text.delta\n",
        "data: {\"type\":\"response.output_text.delta\",\"sequence_number\":4,\"item_id\":\"msg_67c9fdcf37fc8190ba82116e33fb28c507b8b0ad4e5eb654\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hi\"}\n\n",
        "event: response.completed\n",
        "data: {\"type\":\"response.completed\",\"sequence_number\":9,\"response\":{\"id\":\"resp_67c9fdcecf488190bdd9a0409de3a1ec07b8b0ad4e5eb654\",\"object\":\"response\",\"created_at\":1741290958,\"status\":\"completed\",\"error\":null,\"model\":\"gpt-4.1-2025-04-14\",\"output\":[{\"id\":\"msg_67c9fdcf37fc8190ba82116e33fb28c507b8b0ad4e5eb654\",\"type\":\"message\",\"status\":\"completed\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"Hi there! How can I assist you today?\",\"annotations\":[]}]}],\"usage\":{\"input_tokens\":37,\"input_tokens_details\":{\"cached_tokens\":0},\"output_tokens\":11,\"output_tokens_details\":{\"reasoning_tokens\":0},\"total_tokens\":48}}}\n\n",
    );

    /// Anthropic Messages stream with thinking-free text and several `message_delta`s.
    const ANTHROPIC: &str = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-20250514\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"cache_creation_input_tokens\":1024,\"cache_read_input_tokens\":2048,\"cache_creation\":{\"ephemeral_5m_input_tokens\":1024,\"ephemeral_1h_input_tokens\":0},\"output_tokens\":2,\"service_tier\":\"standard\"}}}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: ping\n",
        "data: {\"type\": \"ping\"}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":null,\"stop_sequence\":null},\"usage\":{\"output_tokens\":7}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"! \\\"usage\\\" ✓\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n",
        "event: message_stop\n",
        "data: {\"type\":\"message_stop\"}\n\n",
    );

    const ANTHROPIC_USAGE: Usage = Usage {
        input: 472,
        output: 15,
        cache_read: 2048,
        cache_write: 1024,
    };

    fn scan_pieces<'a>(
        vendor: LlmVendor,
        pieces: impl IntoIterator<Item = &'a [u8]>,
    ) -> Option<Usage> {
        let mut s = SseUsageScanner::new(vendor);
        for p in pieces {
            s.feed(p);
        }
        s.usage()
    }

    fn whole(vendor: LlmVendor, stream: &[u8]) -> Option<Usage> {
        scan_pieces(vendor, [stream])
    }

    fn bytewise(vendor: LlmVendor, stream: &[u8]) -> Option<Usage> {
        scan_pieces(vendor, stream.chunks(1))
    }

    fn split_at_points(vendor: LlmVendor, stream: &[u8], points: &[usize]) -> Option<Usage> {
        let mut cuts: Vec<usize> = points.iter().map(|p| p % (stream.len() + 1)).collect();
        cuts.push(0);
        cuts.push(stream.len());
        cuts.sort_unstable();
        let pieces = cuts.windows(2).map(|w| &stream[w[0]..w[1]]);
        scan_pieces(vendor, pieces)
    }

    fn crlf(stream: &str) -> Vec<u8> {
        stream.replace('\n', "\r\n").into_bytes()
    }

    #[test]
    fn openai_chat_whole_and_bytewise() {
        let s = OPENAI_CHAT.as_bytes();
        assert_eq!(whole(LlmVendor::OpenAi, s), Some(OPENAI_CHAT_USAGE));
        assert_eq!(bytewise(LlmVendor::OpenAi, s), Some(OPENAI_CHAT_USAGE));
        let c = crlf(OPENAI_CHAT);
        assert_eq!(whole(LlmVendor::OpenAi, &c), Some(OPENAI_CHAT_USAGE));
        assert_eq!(bytewise(LlmVendor::OpenAi, &c), Some(OPENAI_CHAT_USAGE));
    }

    #[test]
    fn openai_responses_stream() {
        let s = OPENAI_RESPONSES.as_bytes();
        let want = Some(Usage {
            input: 37,
            output: 11,
            cache_read: 0,
            cache_write: 0,
        });
        assert_eq!(whole(LlmVendor::OpenAi, s), want);
        assert_eq!(bytewise(LlmVendor::OpenAi, s), want);
    }

    #[test]
    fn anthropic_whole_and_bytewise() {
        let s = ANTHROPIC.as_bytes();
        assert_eq!(whole(LlmVendor::Anthropic, s), Some(ANTHROPIC_USAGE));
        assert_eq!(bytewise(LlmVendor::Anthropic, s), Some(ANTHROPIC_USAGE));
        let c = crlf(ANTHROPIC);
        assert_eq!(whole(LlmVendor::Anthropic, &c), Some(ANTHROPIC_USAGE));
        assert_eq!(bytewise(LlmVendor::Anthropic, &c), Some(ANTHROPIC_USAGE));
        let cr = ANTHROPIC.replace('\n', "\r").into_bytes();
        assert_eq!(bytewise(LlmVendor::Anthropic, &cr), Some(ANTHROPIC_USAGE));
    }

    #[test]
    fn anthropic_partial_stream_keeps_latest() {
        let cut = ANTHROPIC.find("event: content_block_stop").unwrap();
        let partial = &ANTHROPIC.as_bytes()[..cut];
        let want = Some(Usage {
            output: 7,
            ..ANTHROPIC_USAGE
        });
        assert_eq!(whole(LlmVendor::Anthropic, partial), want);
    }

    #[test]
    fn no_usage_without_final_chunk() {
        let cut = OPENAI_CHAT.rfind("data: {").unwrap();
        assert_eq!(
            whole(LlmVendor::OpenAi, &OPENAI_CHAT.as_bytes()[..cut]),
            None
        );
    }

    #[test]
    fn final_event_without_blank_line_still_counts() {
        let s = OPENAI_CHAT
            .trim_end_matches("data: [DONE]\n\n")
            .trim_end_matches('\n');
        let mut scanner = SseUsageScanner::new(LlmVendor::OpenAi);
        scanner.feed(s.as_bytes());
        assert_eq!(scanner.usage(), None, "line not terminated yet");
        scanner.feed(b"\n");
        assert_eq!(scanner.usage(), Some(OPENAI_CHAT_USAGE));
    }

    #[test]
    fn multiline_data_is_joined() {
        let s = b"data: {\"usage\":\ndata: {\"prompt_tokens\":3,\"completion_tokens\":4}}\n\n";
        assert_eq!(
            whole(LlmVendor::OpenAi, s),
            Some(Usage {
                input: 3,
                output: 4,
                ..Usage::default()
            })
        );
    }

    #[test]
    fn oversized_lines_are_skipped_not_buffered() {
        let mut s = SseUsageScanner::new(LlmVendor::OpenAi);
        let junk = vec![b'x'; 64 * 1024];
        s.feed(b"data: ");
        for _ in 0..40 {
            s.feed(&junk);
        }
        assert!(s.line.capacity() <= MAX_SSE_BYTES + junk.len());
        s.feed(b"\n\n");
        s.feed(OPENAI_CHAT.as_bytes());
        assert_eq!(s.usage(), Some(OPENAI_CHAT_USAGE));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn openai_random_splits(points in proptest::collection::vec(any::<usize>(), 0..40)) {
            let c = crlf(OPENAI_CHAT);
            prop_assert_eq!(split_at_points(LlmVendor::OpenAi, OPENAI_CHAT.as_bytes(), &points), Some(OPENAI_CHAT_USAGE));
            prop_assert_eq!(split_at_points(LlmVendor::OpenAi, &c, &points), Some(OPENAI_CHAT_USAGE));
        }

        #[test]
        fn anthropic_random_splits(points in proptest::collection::vec(any::<usize>(), 0..40)) {
            let c = crlf(ANTHROPIC);
            prop_assert_eq!(split_at_points(LlmVendor::Anthropic, ANTHROPIC.as_bytes(), &points), Some(ANTHROPIC_USAGE));
            prop_assert_eq!(split_at_points(LlmVendor::Anthropic, &c, &points), Some(ANTHROPIC_USAGE));
        }

        #[test]
        fn responses_random_splits(points in proptest::collection::vec(any::<usize>(), 0..40)) {
            let want = Some(Usage { input: 37, output: 11, cache_read: 0, cache_write: 0 });
            prop_assert_eq!(split_at_points(LlmVendor::OpenAi, OPENAI_RESPONSES.as_bytes(), &points), want);
        }
    }
}
