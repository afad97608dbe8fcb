//! Pricing before forwarding (`Params::parse` + `quote`) for every vendor, and
//! settlement from streamed LLM answers (`SseUsageScanner`).

mod common;

use std::hint::black_box;

use capgate::pricing::{quote, usage_from_json, CompiledPrices, LlmVendor, Params, PriceRequest, PriceTable, SseUsageScanner, VendorKind};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

struct Case {
    name: &'static str,
    vendor: VendorKind,
    path: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    /// Expected reserve in micro-dollars (checked once before timing).
    reserve: u64,
}

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

fn cases() -> Vec<Case> {
    let openai_chat = br#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a billing assistant for ACME. Answer briefly and never invent amounts."},{"role":"user","content":"How much did customer cus_Q2x9kLmN4pRtYz spend in April? Summarise the three largest charges."}],"temperature":0.2,"max_tokens":512,"stream":true,"stream_options":{"include_usage":true}}"#.to_vec();
    let anthropic = br#"{"model":"claude-sonnet-4-20250514","max_tokens":1024,"system":"You are a careful research agent. Cite sources.","messages":[{"role":"user","content":"Compare the refund policies of our three payment providers and flag anything that would let an agent refund more than the original charge."}],"stream":true}"#.to_vec();
    let resend = br#"{"from":"Acme Billing <billing@acme.dev>","to":["ana@example.com","bo@example.com"],"cc":"carla@example.com","subject":"Your April invoice","html":"<p>Hi, your invoice for <strong>April</strong> is attached.</p>","reply_to":"support@acme.dev","tags":[{"name":"category","value":"invoice"}]}"#.to_vec();
    let ucs2_body: String = form_body(&[
        ("To", "+447700900123"),
        ("From", "+15005550006"),
        ("Body", "Ваш код подтверждения: 482913. Он действует 10 минут. Не сообщайте его никому 🙏"),
    ]);
    vec![
        Case {
            name: "stripe_form",
            vendor: VendorKind::Stripe,
            path: "/v1/payment_intents",
            content_type: FORM,
            body: b"amount=3000&currency=usd&customer=cus_Q2x9kLmN4pRtYz&payment_method_types%5B%5D=card&metadata%5Border_id%5D=81723&description=Flowise+session+42".to_vec(),
            reserve: 30_000_000,
        },
        Case {
            name: "stripe_json",
            vendor: VendorKind::Stripe,
            path: "/v1/payment_intents",
            content_type: JSON,
            body: br#"{"amount":3000,"currency":"eur","customer":"cus_Q2x9kLmN4pRtYz","payment_method_types":["card"],"metadata":{"order_id":"81723"},"description":"Flask tool call"}"#.to_vec(),
            reserve: 34_800_000,
        },
        Case {
            name: "twilio_sms_gsm",
            vendor: VendorKind::Twilio,
            path: "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json",
            content_type: FORM,
            body: form_body(&[
                ("To", "+15558675310"),
                ("From", "+15005550006"),
                ("Body", "Your ACME verification code is 482913. It expires in 10 minutes. If you did not request it, ignore this message."),
            ])
            .into_bytes(),
            reserve: 7_900,
        },
        Case {
            name: "twilio_sms_ucs2",
            vendor: VendorKind::Twilio,
            path: "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json",
            content_type: FORM,
            body: ucs2_body.into_bytes(),
            reserve: 2 * 52_400,
        },
        Case { name: "resend_3_recipients", vendor: VendorKind::Resend, path: "/emails", content_type: JSON, body: resend, reserve: 3 * 900 },
        Case { name: "openai_chat", vendor: VendorKind::OpenAi, path: "/v1/chat/completions", content_type: JSON, body: openai_chat, reserve: 0 },
        Case { name: "anthropic_messages", vendor: VendorKind::Anthropic, path: "/v1/messages", content_type: JSON, body: anthropic, reserve: 0 },
    ]
}

fn form_body(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        for b in v.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(char::from(b));
            } else if b == b' ' {
                out.push('+');
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

fn price(case: &Case, prices: &CompiledPrices) -> u64 {
    let req = PriceRequest { vendor: case.vendor, method: "POST", path: case.path, query: "", content_type: Some(case.content_type), body: &case.body };
    let params = Params::parse(req.query, req.content_type, req.body).expect("params parse");
    quote(&req, &params, prices).expect("priced").reserve_micros
}

fn quote_bench(c: &mut Criterion) {
    let prices = PriceTable::default().compile().expect("shipped table compiles");
    let mut g = c.benchmark_group("pricing/parse_and_quote");
    for case in cases() {
        let got = price(&case, &prices);
        // LLM reserves depend on body length; only the fixed-price ones are pinned.
        if case.reserve != 0 {
            assert_eq!(got, case.reserve, "{}", case.name);
        } else {
            assert!(got > 0, "{}", case.name);
        }
        g.bench_function(case.name, |b| b.iter(|| black_box(price(black_box(&case), &prices))));
    }
    g.finish();
}

const OPENAI_CHUNK: &str = "data: {\"id\":\"chatcmpl-BQx0sM5mPDeZ1bEdrUOb1AoZ9cjkq\",\"object\":\"chat.completion.chunk\",\"created\":1745852766,\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_0392822090\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" token\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n";
const OPENAI_USAGE: &str = "data: {\"id\":\"chatcmpl-BQx0sM5mPDeZ1bEdrUOb1AoZ9cjkq\",\"object\":\"chat.completion.chunk\",\"created\":1745852766,\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_0392822090\",\"choices\":[],\"usage\":{\"prompt_tokens\":1290,\"completion_tokens\":400,\"total_tokens\":1690,\"prompt_tokens_details\":{\"cached_tokens\":1152,\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}\n\ndata: [DONE]\n\n";

const ANTHROPIC_START: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-20250514\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"cache_creation_input_tokens\":1024,\"cache_read_input_tokens\":2048,\"output_tokens\":2,\"service_tier\":\"standard\"}}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n";
const ANTHROPIC_DELTA: &str = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" token\"}}\n\n";
const ANTHROPIC_END: &str = "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":400}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

/// A 400-token answer: one event per token, then the usage.
fn openai_stream() -> Vec<u8> {
    let mut s = OPENAI_CHUNK.repeat(400);
    s.push_str(OPENAI_USAGE);
    s.into_bytes()
}

fn anthropic_stream() -> Vec<u8> {
    let mut s = String::from(ANTHROPIC_START);
    s.push_str(&ANTHROPIC_DELTA.repeat(400));
    s.push_str(ANTHROPIC_END);
    s.into_bytes()
}

/// Feeds the stream in network-sized pieces, as the relay does.
fn scan(vendor: LlmVendor, stream: &[u8], piece: usize) -> Option<capgate::pricing::Usage> {
    let mut s = SseUsageScanner::new(vendor);
    for chunk in stream.chunks(piece) {
        s.feed(chunk);
    }
    s.usage()
}

fn sse_bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("pricing/sse_usage");
    for (name, vendor, stream, output) in [
        ("openai_400_events", LlmVendor::OpenAi, openai_stream(), 400),
        ("anthropic_400_events", LlmVendor::Anthropic, anthropic_stream(), 400),
    ] {
        let usage = scan(vendor, &stream, 1400).expect("usage found");
        assert_eq!(usage.output, output, "{name}");
        assert_eq!(scan(vendor, &stream, stream.len()), Some(usage));
        g.throughput(Throughput::Bytes(stream.len() as u64));
        g.bench_function(format!("{name}/1400B_pieces"), |b| b.iter(|| black_box(scan(vendor, black_box(&stream), 1400))));
    }
    g.finish();
}

fn json_usage_bench(c: &mut Criterion) {
    let body = br#"{"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion","created":1741570283,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"The three largest April charges were $420.00, $310.50 and $199.99.","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":1117,"completion_tokens":46,"total_tokens":1163,"prompt_tokens_details":{"cached_tokens":1024,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_fc9f1d7035"}"#;
    assert!(usage_from_json(LlmVendor::OpenAi, body).is_some());
    let mut g = c.benchmark_group("pricing/json_usage");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("openai_chat_answer", |b| b.iter(|| black_box(usage_from_json(LlmVendor::OpenAi, black_box(body)))));
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = quote_bench, sse_bench, json_usage_bench
}
criterion_main!(benches);
