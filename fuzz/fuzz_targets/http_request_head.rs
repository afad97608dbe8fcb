//! `parse_request_head` (and `parse_response_head`) on arbitrary bytes, then
//! capgate's chunked decoder (`http1::chunked`) over what follows a chunked head.
//!
//! Checks: never panics; `consumed` never exceeds the input or the head
//! limit; a head carrying both Content-Length and Transfer-Encoding (any
//! case, as httparse itself sees the fields) never parses; `Length(n)` only
//! with a content-length field whose value is `n`, `Chunked` only with a
//! transfer-encoding field and HTTP/1.1; the decoder never yields more bytes
//! than it was given, and reaches the same verdict (body, end, refusal or
//! needs more) whether the bytes come at once or a few at a time.
#![no_main]

use bytes::BytesMut;
use capgate::http1::head::{parse_request_head, parse_response_head, Framing, Limits};
use libfuzzer_sys::fuzz_target;
use capgate::http1::chunked::{Chunk, ChunkError, ChunkedBody};

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

/// What decoding a chunked body (of at most 64 KiB) came to: its bytes,
/// and whether it ended (with the bytes left after it), was refused and
/// why, or needs more.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Ended(Vec<u8>, Vec<u8>),
    Refused(ChunkError),
    NeedsMore(Vec<u8>),
}

/// Feeds `rest` to the decoder `step` bytes at a time (all at once for
/// `usize::MAX`), the way `Conn::read_body` does as reads arrive.
fn decode(rest: &[u8], step: usize) -> Verdict {
    let mut buf = BytesMut::new();
    let mut dec = ChunkedBody::for_request(64 * 1024);
    let mut body = Vec::new();
    let mut fed = 0;
    loop {
        let before = buf.len();
        match dec.decode(&mut buf) {
            Ok(Chunk::Data(data)) => {
                assert!(!data.is_empty());
                assert!(buf.len() < before, "a chunk without progress");
                body.extend_from_slice(&data);
            }
            Ok(Chunk::End) => {
                buf.extend_from_slice(&rest[fed..]);
                return Verdict::Ended(body, buf.to_vec());
            }
            Err(e) => return Verdict::Refused(e),
            Ok(Chunk::NeedMore) => {
                if fed == rest.len() {
                    return Verdict::NeedsMore(body);
                }
                let next = fed + step.min(rest.len() - fed);
                buf.extend_from_slice(&rest[fed..next]);
                fed = next;
            }
        }
        assert!(body.len() <= rest.len(), "decoded {} bytes from {}", body.len(), rest.len());
    }
}

fn decode_chunked(rest: &[u8]) {
    let whole = decode(rest, usize::MAX);
    if let Verdict::Ended(body, after) = &whole {
        assert!(body.len() + after.len() <= rest.len());
        assert!(rest.ends_with(after), "the bytes after the body are left as they came");
    }
    for step in [1, 3] {
        assert_eq!(whole, decode(rest, step), "all at once, then {step} at a time");
    }
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
