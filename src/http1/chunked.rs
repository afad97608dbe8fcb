//! Chunked transfer coding (RFC 9112 §7.1), read strictly. monoio-http's
//! decoder frames the chunk data; this module owns the grammar around it,
//! which that decoder does not handle: chunk extensions (`5;name=value`,
//! checked against the RFC's grammar and ignored, as it asks) and the
//! trailer section after the last chunk (checked and discarded). It also
//! bounds what a peer can make us hold: monoio-http buffers a whole chunk
//! before handing it out, so a chunk larger than the body may be, or than
//! [`MAX_RELAYED_CHUNK`] for a relayed answer, is refused as soon as its
//! size line is read. Everything a lenient parser might read differently
//! from the peer in front of us is refused: a size line without digits, a
//! bare CR or LF, control bytes, stray whitespace, oversized lines.

use bytes::{Buf, Bytes, BytesMut};
use monoio_codec::{Decoded, Decoder};
use monoio_http::h1::codec::decoder::ChunkedBodyDecoder;

/// Longest chunk-size line, extensions included, CRLF excluded.
pub const MAX_SIZE_LINE: usize = 4096;
/// Largest trailer section, every field line and the final CRLF included.
pub const MAX_TRAILERS: usize = 16 * 1024;
/// Largest single chunk of a relayed answer (whole chunks are buffered).
pub const MAX_RELAYED_CHUNK: u64 = 8 << 20;
/// Most hex digits in a chunk size (16 fill a `u64`).
const MAX_SIZE_DIGITS: usize = 16;

/// What one decoding step found.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk {
    /// A piece of the body (never empty).
    Data(Bytes),
    /// The body and its trailer section are complete.
    End,
    /// More bytes are needed.
    NeedMore,
}

/// Why a chunked body cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// The framing broke the chunked grammar (400 on a request); the
    /// connection can no longer be read in step with the peer.
    Malformed,
    /// A declared chunk would pass the body's limit, or the chunk limit (413
    /// on a request).
    TooLarge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At a chunk-size line, `scanned` bytes of it already searched for its end.
    Size { scanned: usize },
    /// Inside a chunk's data (monoio-http holds its length).
    Data,
    /// After the last chunk: `seen` bytes of trailer section consumed, and
    /// `scanned` bytes of the current line searched.
    Trailers { seen: usize, scanned: usize },
    /// The body ended.
    Done,
}

/// A chunked body decoder. Feed it the connection's buffer after the head;
/// it consumes exactly the body's bytes, so what follows stays buffered.
pub struct ChunkedBody {
    data: ChunkedBodyDecoder,
    state: State,
    /// Body bytes declared so far, and the most allowed.
    declared: u64,
    max_body: u64,
    max_chunk: u64,
}

impl ChunkedBody {
    /// A decoder for a request body of at most `max_body` bytes.
    pub fn for_request(max_body: usize) -> ChunkedBody {
        let max = u64::try_from(max_body).unwrap_or(u64::MAX);
        ChunkedBody::new(max, max)
    }

    /// A decoder for a relayed answer: any length, in chunks of at most
    /// [`MAX_RELAYED_CHUNK`].
    pub fn for_relay() -> ChunkedBody {
        ChunkedBody::new(u64::MAX, MAX_RELAYED_CHUNK)
    }

    fn new(max_body: u64, max_chunk: u64) -> ChunkedBody {
        ChunkedBody { data: ChunkedBodyDecoder::default(), state: State::Size { scanned: 0 }, declared: 0, max_body, max_chunk }
    }

    /// Decodes the next piece from the front of `buf`.
    ///
    /// # Errors
    /// [`ChunkError`] when the bytes break the grammar or a limit.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Chunk, ChunkError> {
        loop {
            match self.state {
                State::Done => return Ok(Chunk::End),
                State::Size { scanned } => {
                    let end = match line_end(buf, scanned, MAX_SIZE_LINE)? {
                        Line::End(end) => end,
                        Line::Partial(scanned) => {
                            self.state = State::Size { scanned };
                            return Ok(Chunk::NeedMore);
                        }
                    };
                    let (digits, size) = size_line(&buf[..end])?;
                    if size == 0 {
                        buf.advance(end + 2);
                        self.state = State::Trailers { seen: 0, scanned: 0 };
                        continue;
                    }
                    self.declared = self.declared.saturating_add(size);
                    if size > self.max_chunk || self.declared > self.max_body {
                        return Err(ChunkError::TooLarge);
                    }
                    // Hand monoio-http the bare size line: move the digits up
                    // against the CRLF and drop what was before them.
                    let skip = end - digits;
                    buf.copy_within(..digits, skip);
                    buf.advance(skip);
                    self.state = State::Data;
                    // Its size-line parse always succeeds on "HEX\r\n".
                    return self.data_step(buf);
                }
                State::Data => return self.data_step(buf),
                State::Trailers { seen, scanned } => {
                    let end = match line_end(buf, scanned, MAX_TRAILERS - seen)? {
                        Line::End(end) => end,
                        Line::Partial(scanned) => {
                            self.state = State::Trailers { seen, scanned };
                            return Ok(Chunk::NeedMore);
                        }
                    };
                    if end > 0 {
                        field_line(&buf[..end])?;
                    }
                    let seen = seen + end + 2;
                    if seen > MAX_TRAILERS {
                        return Err(ChunkError::Malformed);
                    }
                    buf.advance(end + 2);
                    self.state = if end == 0 { State::Done } else { State::Trailers { seen, scanned: 0 } };
                }
            }
        }
    }

    /// One step of monoio-http's decoder inside a chunk's data.
    fn data_step(&mut self, buf: &mut BytesMut) -> Result<Chunk, ChunkError> {
        match self.data.decode(buf) {
            Ok(Decoded::Some(Some(data))) => {
                self.state = State::Size { scanned: 0 };
                Ok(Chunk::Data(data))
            }
            // A last chunk never reaches it (handled above).
            Ok(Decoded::Some(None)) | Err(_) => Err(ChunkError::Malformed),
            Ok(_) => Ok(Chunk::NeedMore),
        }
    }
}

/// How far the line at the front of a buffer goes.
enum Line {
    /// Its CRLF is buffered; the index of its CR.
    End(usize),
    /// Not yet: this many bytes were searched (the next search starts there).
    Partial(usize),
}

/// Finds the end of the line at the front of `buf`, searching from
/// `scanned` (bytes already searched without finding it). A bare LF, or
/// more than `max` bytes without one, is [`ChunkError::Malformed`]; a bare
/// CR inside the line is caught by the callers' byte checks.
fn line_end(buf: &[u8], scanned: usize, max: usize) -> Result<Line, ChunkError> {
    let window = &buf[..buf.len().min(max + 2)];
    match window.get(scanned..).and_then(|w| w.iter().position(|&b| b == b'\n')) {
        Some(at) => match scanned + at {
            0 => Err(ChunkError::Malformed),
            lf if window[lf - 1] == b'\r' => Ok(Line::End(lf - 1)),
            _ => Err(ChunkError::Malformed),
        },
        None if buf.len() >= max + 2 => Err(ChunkError::Malformed),
        None => Ok(Line::Partial(window.len())),
    }
}

/// Checks a chunk-size line (CRLF excluded): `1*HEXDIG *( BWS ";" BWS
/// ext-name [ BWS "=" BWS ext-value ] )` with tokens and quoted strings as
/// RFC 9110 §5.6 defines them, and no whitespace at the end. Returns how
/// many hex digits it starts with, and the size they spell.
fn size_line(line: &[u8]) -> Result<(usize, u64), ChunkError> {
    let (mut digits, mut size) = (0, 0u64);
    for &b in line {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => break,
        };
        if digits == MAX_SIZE_DIGITS {
            return Err(ChunkError::Malformed);
        }
        size = size << 4 | u64::from(d);
        digits += 1;
    }
    if digits == 0 {
        return Err(ChunkError::Malformed);
    }
    let mut rest = &line[digits..];
    while !rest.is_empty() {
        rest = skip_ws(rest);
        rest = rest.strip_prefix(b";").ok_or(ChunkError::Malformed)?;
        rest = skip_token(skip_ws(rest))?;
        let after = skip_ws(rest);
        if let Some(value) = after.strip_prefix(b"=") {
            let value = skip_ws(value);
            rest = if value.first() == Some(&b'"') { skip_quoted(value)? } else { skip_token(value)? };
        }
    }
    Ok((digits, size))
}

fn skip_ws(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    &s[n..]
}

/// The rest after a token, which must be there.
fn skip_token(s: &[u8]) -> Result<&[u8], ChunkError> {
    match s.iter().take_while(|&&b| tchar(b)).count() {
        0 => Err(ChunkError::Malformed),
        n => Ok(&s[n..]),
    }
}

/// The rest after a quoted string starting at `s[0] == '"'`.
fn skip_quoted(s: &[u8]) -> Result<&[u8], ChunkError> {
    let mut i = 1;
    while let Some(&b) = s.get(i) {
        match b {
            b'"' => return Ok(&s[i + 1..]),
            b'\\' if s.get(i + 1).is_some_and(|&q| field_byte(q)) => i += 2,
            b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff => i += 1,
            _ => return Err(ChunkError::Malformed),
        }
    }
    Err(ChunkError::Malformed)
}

/// Checks a trailer field line: `token ":" value`, the value made of
/// visible characters, spaces and tabs.
fn field_line(line: &[u8]) -> Result<(), ChunkError> {
    let name = line.iter().take_while(|&&b| tchar(b)).count();
    if name == 0 || line.get(name) != Some(&b':') || !line[name + 1..].iter().all(|&b| field_byte(b)) {
        return Err(ChunkError::Malformed);
    }
    Ok(())
}

/// A byte allowed in a field value: VCHAR, SP, HTAB, obs-text.
fn field_byte(b: u8) -> bool {
    matches!(b, b'\t' | b' '..=b'~' | 0x80..=0xff)
}

/// A token character (RFC 9110 §5.6.2).
fn tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The body and the bytes after it, or the refusal; `None` while the
    /// body is still incomplete.
    type Outcome = Option<Result<(Vec<u8>, Vec<u8>), ChunkError>>;

    /// Decodes `wire` given all at once: the body, and the bytes left after
    /// it. `None` when the body is incomplete.
    fn whole(wire: &[u8]) -> Outcome {
        let mut buf = BytesMut::from(wire);
        let mut dec = ChunkedBody::for_request(1 << 20);
        let mut body = Vec::new();
        loop {
            match dec.decode(&mut buf) {
                Err(e) => return Some(Err(e)),
                Ok(Chunk::Data(d)) => body.extend_from_slice(&d),
                Ok(Chunk::End) => return Some(Ok((body, buf.to_vec()))),
                Ok(Chunk::NeedMore) => return None,
            }
        }
    }

    fn ok(body: &[u8], rest: &[u8]) -> Outcome {
        Some(Ok((body.to_vec(), rest.to_vec())))
    }

    /// Decodes `wire` fed `step` bytes at a time, as a slow peer sends it.
    /// `None` while the body is still incomplete after every byte.
    fn trickled(wire: &[u8], step: usize) -> Outcome {
        let mut buf = BytesMut::new();
        let mut dec = ChunkedBody::for_request(1 << 20);
        let mut body = Vec::new();
        let mut fed = 0;
        loop {
            match dec.decode(&mut buf) {
                Err(e) => return Some(Err(e)),
                Ok(Chunk::Data(d)) => {
                    assert!(!d.is_empty());
                    body.extend_from_slice(&d);
                }
                Ok(Chunk::End) => {
                    buf.extend_from_slice(&wire[fed..]);
                    return Some(Ok((body, buf.to_vec())));
                }
                Ok(Chunk::NeedMore) => {
                    if fed == wire.len() {
                        return None;
                    }
                    let next = (fed + step).min(wire.len());
                    buf.extend_from_slice(&wire[fed..next]);
                    fed = next;
                }
            }
        }
    }

    #[test]
    fn plain_chunks_decode_and_leave_the_next_request_buffered() {
        assert_eq!(whole(b"5\r\nhello\r\nA\r\n, world!!!\r\n0\r\n\r\nGET / HTTP/1.1\r\n"), ok(b"hello, world!!!", b"GET / HTTP/1.1\r\n"));
    }

    #[test]
    fn extensions_and_trailers_are_read_and_dropped() {
        let wire = b"5;name=value\r\nhello\r\n6 ; a=\"q; x\";b\r\n world\r\n000;last\r\nDigest: sha-256=abc\r\nX-Count:  2\r\n\r\nNEXT";
        assert_eq!(whole(wire), ok(b"hello world", b"NEXT"));
        assert_eq!(trickled(wire, 1), ok(b"hello world", b"NEXT"));
    }

    #[test]
    fn grammar_breaks_are_refused() {
        for wire in [
            &b"\r\nhello\r\n0\r\n\r\n"[..],        // no size digits (a lenient parser reads a last chunk)
            b";ext\r\nhello\r\n0\r\n\r\n",          // extension without a size
            b"5 \r\nhello\r\n0\r\n\r\n",            // whitespace not followed by an extension
            b"5;a\nb\r\nhello\r\n0\r\n\r\n",        // bare LF inside an extension
            b"5;a\rb\r\nhello\r\n0\r\n\r\n",        // bare CR inside an extension
            b"5;a\x00\r\nhello\r\n0\r\n\r\n",       // control byte in an extension
            b"5\nhello\r\n0\r\n\r\n",               // size line ended by a bare LF
            b"-5\r\nhello\r\n0\r\n\r\n",            // sign
            b"0x5\r\nhello\r\n0\r\n\r\n",           // prefix
            b"5\r\nhelloXY0\r\n\r\n",               // data not followed by CRLF
            b"00000000000000005\r\nhello\r\n0\r\n\r\n", // 17 digits
            b"5\r\nhello\r\n0\r\nno-colon\r\n\r\n", // trailer without a colon
            b"5\r\nhello\r\n0\r\n: empty-name\r\n\r\n",
            b"5\r\nhello\r\n0\r\nBad Name: x\r\n\r\n",
            b"5\r\nhello\r\n0\r\nX: a\nb\r\n\r\n",  // bare LF in a trailer
            b"5\r\nhello\r\n0\r\n\n",               // trailer section ended by a bare LF
        ] {
            assert_eq!(whole(wire), Some(Err(ChunkError::Malformed)), "{:?}", String::from_utf8_lossy(wire));
            assert_eq!(trickled(wire, 1), Some(Err(ChunkError::Malformed)), "byte by byte: {:?}", String::from_utf8_lossy(wire));
        }
    }

    #[test]
    fn oversized_lines_are_refused_before_they_are_complete() {
        let mut long_ext = b"5;".to_vec();
        long_ext.resize(MAX_SIZE_LINE + 10, b'a');
        assert_eq!(trickled(&long_ext, 64), Some(Err(ChunkError::Malformed)), "an extension that never ends is cut off");
        let mut at_limit = b"5;".to_vec();
        at_limit.resize(MAX_SIZE_LINE, b'a');
        at_limit.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
        assert_eq!(whole(&at_limit), ok(b"hello", b""), "a line of exactly the limit is fine");
        let mut trailers = b"0\r\n".to_vec();
        while trailers.len() < MAX_TRAILERS + 100 {
            trailers.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        trailers.extend_from_slice(b"\r\n");
        assert_eq!(whole(&trailers), Some(Err(ChunkError::Malformed)));
        assert_eq!(trickled(&trailers, 7), Some(Err(ChunkError::Malformed)));
    }

    #[test]
    fn extensions_follow_the_grammar() {
        for ext in [";a", " ;a", ";a=b", "; a = b", ";a=\"x;y\"", ";a=\"q\\\"d\"", ";a;b=c;d=\"\"", "\t;a"] {
            let wire = format!("5{ext}\r\nhello\r\n0\r\n\r\n");
            assert_eq!(whole(wire.as_bytes()), ok(b"hello", b""), "{ext:?}");
        }
        for ext in [";", ";;", ";=b", ";a=", ";a= ", ";a ", ";a=b c", ";a=\"x", ";a=\"x\"y", ";a=\"\x01\"", ";a b", " ", ";a=b;"] {
            let wire = format!("5{ext}\r\nhello\r\n0\r\n\r\n");
            assert_eq!(whole(wire.as_bytes()), Some(Err(ChunkError::Malformed)), "{ext:?}");
        }
    }

    #[test]
    fn a_declared_chunk_past_a_limit_is_refused_before_its_data_comes() {
        let step = |dec: &mut ChunkedBody, wire: &[u8]| dec.decode(&mut BytesMut::from(wire));
        // The whole body may be 100 bytes: one chunk of 101 is too large at once.
        assert_eq!(step(&mut ChunkedBody::for_request(100), b"65\r\n"), Err(ChunkError::TooLarge));
        assert_eq!(step(&mut ChunkedBody::for_request(101), b"65\r\n"), Ok(Chunk::NeedMore));
        // So are two chunks that add up past it.
        let mut dec = ChunkedBody::for_request(100);
        let mut buf = BytesMut::from(&b"3c\r\n"[..]);
        buf.extend_from_slice(&[b'a'; 60]);
        buf.extend_from_slice(b"\r\n29\r\n");
        assert!(matches!(dec.decode(&mut buf), Ok(Chunk::Data(d)) if d.len() == 60));
        assert_eq!(dec.decode(&mut buf), Err(ChunkError::TooLarge));
        // A relayed answer may be any length, in chunks the limit allows.
        assert_eq!(step(&mut ChunkedBody::for_relay(), format!("{MAX_RELAYED_CHUNK:x}\r\n").as_bytes()), Ok(Chunk::NeedMore));
        assert_eq!(step(&mut ChunkedBody::for_relay(), format!("{:x}\r\n", MAX_RELAYED_CHUNK + 1).as_bytes()), Err(ChunkError::TooLarge));
        assert_eq!(step(&mut ChunkedBody::for_relay(), b"ffffffffffffffff\r\n"), Err(ChunkError::TooLarge));
    }

    #[test]
    fn an_incomplete_body_waits_for_more() {
        for wire in [&b"5\r\nhel"[..], b"5;ext=", b"5\r\nhello\r\n0\r\n", b"5\r\nhello\r\n0\r\nX: y\r\n"] {
            assert_eq!(whole(wire), None, "{:?}", String::from_utf8_lossy(wire));
            assert_eq!(trickled(wire, 1), None, "{:?}", String::from_utf8_lossy(wire));
        }
    }

    fn token() -> impl Strategy<Value = String> {
        "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,8}"
    }

    /// A chunk's extensions: `;name`, `;name=token` or `;name="quoted"`, with optional spaces.
    fn extensions() -> impl Strategy<Value = String> {
        proptest::collection::vec((token(), prop_oneof![Just(String::new()), token().prop_map(|t| format!("={t}")), "[ -~&&[^\"\\\\]]{0,8}".prop_map(|q| format!("=\"{q}\""))], "[ \t]{0,2}"), 0..3)
            .prop_map(|exts| exts.into_iter().map(|(n, v, ws)| format!("{ws};{n}{v}")).collect())
    }

    proptest! {
        /// Any body, split into any chunks with any extensions and
        /// trailers, decodes to itself, whole or trickled at any step, and
        /// leaves the bytes after it untouched.
        #[test]
        fn encoded_bodies_decode_to_themselves(
            pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 0..6),
            exts in proptest::collection::vec(extensions(), 7),
            upper in any::<bool>(),
            trailers in proptest::collection::vec((token(), "[ -~]{0,16}"), 0..3),
            step in 1usize..9,
        ) {
            let mut wire = Vec::new();
            for (i, p) in pieces.iter().enumerate() {
                let size = if upper { format!("{:X}", p.len()) } else { format!("{:x}", p.len()) };
                wire.extend_from_slice(format!("{size}{}\r\n", exts[i]).as_bytes());
                wire.extend_from_slice(p);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(format!("0{}\r\n", exts[6]).as_bytes());
            for (name, value) in &trailers {
                wire.extend_from_slice(format!("{name}:{value}\r\n").as_bytes());
            }
            wire.extend_from_slice(b"\r\nAFTER");
            let body: Vec<u8> = pieces.concat();
            prop_assert_eq!(whole(&wire), ok(&body, b"AFTER"));
            prop_assert_eq!(trickled(&wire, step), ok(&body, b"AFTER"));
        }

        /// Arbitrary bytes never panic, and reach the same verdict whole
        /// as trickled: the decoder's answer does not depend on how the
        /// network split the bytes.
        #[test]
        fn any_bytes_get_the_same_verdict_however_they_arrive(wire in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b';'), Just(b'0'), Just(b'5'), Just(b':'), any::<u8>()], 0..64), step in 1usize..9) {
            prop_assert_eq!(whole(&wire), trickled(&wire, step));
        }
    }
}
