//! Request- and response-head parsing (`http1::head`), the first thing every
//! proxied call pays for, and chunked-body decoding (`http1::chunked`):
//! capgate's strict decoder side by side with the monoio-http decoder it
//! wraps, on the same body.

mod common;

use std::hint::black_box;

use bytes::BytesMut;
use capgate::http1::chunked::{Chunk, ChunkedBody};
use capgate::http1::head::{parse_request_head, parse_response_head, Limits};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use monoio_codec::{Decoded, Decoder};
use monoio_http::h1::codec::decoder::ChunkedBodyDecoder;

/// What stripe-node 14.x sends for `paymentIntents.create` through capgate.
const STRIPE_POST: &[u8] = b"POST /stripe/v1/payment_intents HTTP/1.1\r\n\
Host: capgate:8080\r\n\
User-Agent: Stripe/v1 NodeBindings/14.25.0\r\n\
X-Stripe-Client-User-Agent: {\"bindings_version\":\"14.25.0\",\"lang\":\"node\",\"lang_version\":\"v20.11.1\",\"platform\":\"linux x64\",\"publisher\":\"stripe\",\"uname\":\"Linux 6.1.0-18-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 x86_64 GNU/Linux\",\"typescript\":false}\r\n\
X-Stripe-Client-Telemetry: {\"last_request_metrics\":{\"request_id\":\"req_8XQm5vB2yQ1oLk\",\"request_duration_ms\":412}}\r\n\
Authorization: Bearer vk_3f9a1c0e7b2d4f6a8c1e3b5d7f9a0c2e4b6d8f1a3c5e7b9d\r\n\
Stripe-Version: 2024-06-20\r\n\
Idempotency-Key: stripe-node-retry-2f7c4a9e-51b3-4e0d-9a6f-8c2d1e7b3a50\r\n\
Content-Type: application/x-www-form-urlencoded\r\n\
Content-Length: 60\r\n\
Accept: application/json\r\n\
Connection: keep-alive\r\n\
\r\n\
amount=3000&currency=usd&customer=cus_Q2x9kLmN4pRtYz&confirm";

/// A small SDK GET (retrieve a customer).
const SMALL_GET: &[u8] = b"GET /stripe/v1/customers/cus_Q2x9kLmN4pRtYz HTTP/1.1\r\n\
Host: capgate:8080\r\n\
Authorization: Bearer vk_3f9a1c0e7b2d4f6a8c1e3b5d7f9a0c2e4b6d8f1a3c5e7b9d\r\n\
Accept: */*\r\n\
\r\n";

/// A typical Stripe API answer head.
const STRIPE_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Server: nginx\r\n\
Date: Tue, 14 May 2024 09:21:07 GMT\r\n\
Content-Type: application/json\r\n\
Content-Length: 1843\r\n\
Connection: keep-alive\r\n\
Access-Control-Allow-Credentials: true\r\n\
Access-Control-Allow-Methods: GET,HEAD,PUT,PATCH,POST,DELETE\r\n\
Access-Control-Allow-Origin: *\r\n\
Access-Control-Expose-Headers: Request-Id, Stripe-Manage-Version, Stripe-Should-Retry, X-Stripe-External-Auth-Required, X-Stripe-Privileged-Session-Required\r\n\
Access-Control-Max-Age: 300\r\n\
Cache-Control: no-cache, no-store\r\n\
Content-Security-Policy: report-uri https://q.stripe.com/csp-report?p=v1%2Fpayment_intents; block-all-mixed-content; default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; img-src 'self'; script-src 'self' 'report-sample'; style-src 'self'\r\n\
Idempotency-Key: stripe-node-retry-2f7c4a9e-51b3-4e0d-9a6f-8c2d1e7b3a50\r\n\
Original-Request: req_8XQm5vB2yQ1oLk\r\n\
Request-Id: req_8XQm5vB2yQ1oLk\r\n\
Stripe-Should-Retry: false\r\n\
Stripe-Version: 2024-06-20\r\n\
Vary: Origin\r\n\
X-Stripe-Routing-Context-Priority-Tier: api-testmode\r\n\
Strict-Transport-Security: max-age=63072000; includeSubDomains; preload\r\n\
\r\n";

/// A streamed (chunked) LLM answer head.
const SSE_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Date: Tue, 14 May 2024 09:21:07 GMT\r\n\
Content-Type: text/event-stream; charset=utf-8\r\n\
Transfer-Encoding: chunked\r\n\
Connection: keep-alive\r\n\
openai-processing-ms: 212\r\n\
x-request-id: req_7b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e\r\n\
\r\n";

fn request_heads(c: &mut Criterion) {
    let limits = Limits::default();
    let mut g = c.benchmark_group("http_head/request");
    for (name, input) in [("stripe_sdk_post", STRIPE_POST), ("small_get", SMALL_GET)] {
        g.throughput(Throughput::Bytes(input.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let parsed = parse_request_head(black_box(input), &limits);
                black_box(parsed.ok().flatten().map(|(h, n)| (h.framing, n)))
            })
        });
    }
    g.finish();
}

fn response_heads(c: &mut Criterion) {
    let mut g = c.benchmark_group("http_head/response");
    for (name, input) in [("stripe_json", STRIPE_RESPONSE), ("sse_chunked", SSE_RESPONSE)] {
        g.throughput(Throughput::Bytes(input.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let parsed = parse_response_head(black_box(input), false, 64 * 1024);
                black_box(parsed.ok().flatten().map(|(h, n)| (h.framing, n)))
            })
        });
    }
    g.finish();
}

/// A streamed LLM answer's body: 32 SSE events of about 120 bytes, one
/// chunk each, with `ext` after every size.
fn sse_body(ext: &str) -> Vec<u8> {
    let mut wire = Vec::new();
    for i in 0..32 {
        let event = format!("data: {{\"id\":\"chatcmpl-9x\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"delta\":{{\"content\":\"tok{i}\"}}}}]}}\n\n");
        wire.extend_from_slice(format!("{:x}{ext}\r\n{event}\r\n", event.len()).as_bytes());
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    wire
}

/// Bytes of body decoded from `wire` by capgate's decoder.
fn capgate_decode(mut buf: BytesMut) -> usize {
    let mut dec = ChunkedBody::for_relay();
    let mut n = 0;
    while let Ok(Chunk::Data(d)) = dec.decode(&mut buf) {
        n += d.len();
    }
    n
}

/// Bytes of body decoded from `wire` by monoio-http's decoder alone.
fn monoio_decode(mut buf: BytesMut) -> usize {
    let mut dec = ChunkedBodyDecoder::default();
    let mut n = 0;
    while let Ok(Decoded::Some(Some(d))) = dec.decode(&mut buf) {
        n += d.len();
    }
    n
}

fn chunked_bodies(c: &mut Criterion) {
    let plain = sse_body("");
    let with_ext = sse_body(";ts=1716000000");
    let body = capgate_decode(BytesMut::from(&plain[..]));
    assert_eq!(body, monoio_decode(BytesMut::from(&plain[..])), "both decoders read the same body");
    assert_eq!(body, capgate_decode(BytesMut::from(&with_ext[..])));
    let mut g = c.benchmark_group("http_chunked/sse_32_events");
    g.throughput(Throughput::Bytes(body as u64));
    g.bench_function("monoio_http", |b| b.iter_batched(|| BytesMut::from(&plain[..]), |buf| black_box(monoio_decode(buf)), BatchSize::SmallInput));
    g.bench_function("capgate", |b| b.iter_batched(|| BytesMut::from(&plain[..]), |buf| black_box(capgate_decode(buf)), BatchSize::SmallInput));
    g.bench_function("capgate_with_extensions", |b| b.iter_batched(|| BytesMut::from(&with_ext[..]), |buf| black_box(capgate_decode(buf)), BatchSize::SmallInput));
    g.finish();
}

/// Fails loudly (before timing) if a fixture stops parsing the way it should.
fn check_fixtures() {
    use capgate::http1::Framing;
    let limits = Limits::default();
    let framing = |input: &[u8]| parse_request_head(input, &limits).ok().flatten().map(|(h, _)| h.framing);
    assert_eq!(framing(STRIPE_POST), Some(Framing::Length(60)));
    assert_eq!(framing(SMALL_GET), Some(Framing::None));
    let resp = |input: &[u8]| parse_response_head(input, false, 64 * 1024).ok().flatten().map(|(h, _)| h.framing);
    assert_eq!(resp(STRIPE_RESPONSE), Some(Framing::Length(1843)));
    assert_eq!(resp(SSE_RESPONSE), Some(Framing::Chunked));
}

fn all(c: &mut Criterion) {
    check_fixtures();
    request_heads(c);
    response_heads(c);
    chunked_bodies(c);
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = all
}
criterion_main!(benches);
