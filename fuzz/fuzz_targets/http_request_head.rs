//! `parse_request_head` (and `parse_response_head`) on arbitrary bytes, then
//! monoio-http's `ChunkedBodyDecoder` over what follows a chunked head.
//!
//! Checks: never panics; `consumed` never exceeds the input or the head
//! limit; a head carrying both Content-Length and Transfer-Encoding (any
//! case, as httparse itself sees the fields) never parses; `Length(n)` only
//! with a content-length field whose value is `n`, `Chunked` only with a
//! transfer-encoding field and HTTP/1.1; the decoder never yields more bytes
//! than it was given.
#![no_main]

use bytes::BytesMut;
use capgate::http1::head::{parse_request_head, parse_response_head, Framing, Limits};
use libfuzzer_sys::fuzz_target;
use monoio_codec::{Decoded, Decoder};
use monoio_http::h1::codec::decoder::ChunkedBodyDecoder;

/// Header names as httparse reports them, independent of capgate's code.
fn raw_names(data: &[u8], max_headers: usize, request: bool) -> Vec<String> {
    let mut storage = vec![httparse::EMPTY_HEADER; max_headers];
    let names = |hs: &[httparse::Header<'_>]| hs.iter().map(|h| h.name.to_ascii_lowercase()).collect();
    if request {
        let mut req = httparse::Request::new(&mut storage);
        match req.parse(data) {
            Ok(httparse::Status::Complete(_)) => names(req.headers),
            _ => Vec::new(),
        }
    } else {
        let mut res = httparse::Response::new(&mut storage);
        match res.parse(data) {
            Ok(httparse::Status::Complete(_)) => names(res.headers),
            _ => Vec::new(),
        }
    }
}

fn check_request(data: &[u8], limits: &Limits) {
    let Ok(Some((head, consumed))) = parse_request_head(data, limits) else {
        if let Ok(None) = parse_request_head(data, limits) {
            assert!(data.len() < limits.max_head_bytes, "needs-more with a full window");
        }
        return;
    };
    assert!(consumed <= data.len(), "consumed {consumed} of {}", data.len());
    assert!(consumed <= limits.max_head_bytes, "head of {consumed} past the limit");
    assert!(head.headers.len() <= limits.max_headers);

    let window = &data[..consumed];
    let names = raw_names(window, limits.max_headers, true);
    let has = |n: &str| names.iter().any(|h| h == n);
    assert!(!(has("content-length") && has("transfer-encoding")), "CL + TE accepted: {:?}", String::from_utf8_lossy(window));

    let values = |n: &str| head.headers.iter().filter(|(h, _)| *h == n).map(|(_, v)| v.to_vec()).collect::<Vec<_>>();
    match head.framing {
        Framing::Length(n) => {
            let cls = values("content-length");
            assert!(!cls.is_empty(), "Length({n}) without content-length");
            for v in cls {
                assert_eq!(std::str::from_utf8(&v).ok().and_then(|s| s.parse::<u64>().ok()), Some(n));
            }
            assert!(n > 0);
        }
        Framing::Chunked => {
            assert_eq!(values("transfer-encoding").len(), 1);
            assert_eq!(head.minor_version, 1);
            decode_chunked(&data[consumed..]);
        }
        Framing::None => {
            assert!(!has("transfer-encoding"));
            for v in values("content-length") {
                assert_eq!(std::str::from_utf8(&v).ok().and_then(|s| s.parse::<u64>().ok()), Some(0));
            }
        }
        Framing::UntilClose => panic!("a request framed until close"),
    }
}

/// Drives the decoder the way `Conn::read_body` does, with all bytes present.
fn decode_chunked(rest: &[u8]) {
    let mut buf = BytesMut::from(rest);
    let mut dec = ChunkedBodyDecoder::default();
    let mut body = 0usize;
    for _ in 0..=rest.len() + 1 {
        let before = buf.len();
        match dec.decode(&mut buf) {
            Ok(Decoded::Some(Some(data))) => {
                assert!(!data.is_empty());
                body += data.len();
                assert!(buf.len() < before, "a chunk without progress");
            }
            Ok(Decoded::Some(None)) => break,
            Ok(_) | Err(_) => break,
        }
    }
    assert!(body <= rest.len(), "decoded {body} bytes from {}", rest.len());
}

fn check_response(data: &[u8], head_request: bool) {
    let Ok(Some((head, consumed))) = parse_response_head(data, head_request, 64 * 1024) else {
        return;
    };
    assert!(consumed <= data.len());
    let names = raw_names(&data[..consumed], 128, false);
    let has = |n: &str| names.iter().any(|h| h == n);
    match head.framing {
        Framing::Length(_) | Framing::Chunked => {
            assert!(!(has("content-length") && has("transfer-encoding")));
            assert!(!head_request);
        }
        Framing::UntilClose => {
            assert!(!has("content-length") && !has("transfer-encoding"));
            assert!(!head.keep_alive, "a close-delimited answer on a reused connection");
        }
        Framing::None => {}
    }
}

fuzz_target!(|data: &[u8]| {
    check_request(data, &Limits::default());
    check_request(data, &Limits { max_head_bytes: 256, max_headers: 8, max_body_bytes: 1024 });
    check_response(data, false);
    check_response(data, true);
});
