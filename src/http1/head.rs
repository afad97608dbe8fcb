//! Pure HTTP/1.1 head parsing (request and response) over byte buffers, with
//! the framing decision made here once. No I/O: fuzzed and benchmarked as is.

/// Size limits applied while reading a request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request head (request line + headers) in bytes.
    pub max_head_bytes: usize,
    /// Most header fields in one head (at most [`HEADER_SLOTS`]).
    pub max_headers: usize,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
}

/// Header slots parsed on the stack: the ceiling of [`Limits::max_headers`]
/// and the most fields an upstream answer may carry.
pub const HEADER_SLOTS: usize = 128;

impl Default for Limits {
    fn default() -> Self {
        Limits { max_head_bytes: 16 * 1024, max_headers: 64, max_body_bytes: 1024 * 1024 }
    }
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the peer closes (responses only).
    UntilClose,
}

/// Why a head was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// The head exceeds `max_head_bytes` (431).
    TooLarge,
    /// More than `max_headers` fields (431).
    TooManyHeaders,
    /// Not valid HTTP/1.x syntax.
    Malformed(&'static str),
    /// Ambiguous or unsupported body framing.
    BadFraming(&'static str),
}

impl HeadError {
    /// HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            HeadError::TooLarge | HeadError::TooManyHeaders => 431,
            HeadError::Malformed(_) | HeadError::BadFraming(_) => 400,
        }
    }

    /// Human-readable reason.
    pub fn message(&self) -> String {
        match self {
            HeadError::TooLarge => "request head too large".into(),
            HeadError::TooManyHeaders => "too many header fields".into(),
            HeadError::Malformed(m) => format!("malformed HTTP request: {m}"),
            HeadError::BadFraming(m) => format!("ambiguous message framing: {m}"),
        }
    }
}

/// A parsed request head. Header names are lower-cased.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// Request method, as sent (methods are case-sensitive).
    pub method: String,
    /// Raw request target (origin-form path and query).
    pub target: String,
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Header fields, names lower-cased, in order.
    pub headers: Headers,
    /// Body framing.
    pub framing: Framing,
    /// Whether the client wants the connection kept open.
    pub keep_alive: bool,
    /// `Expect: 100-continue` was sent.
    pub expect_continue: bool,
}

/// A parsed response head.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    /// Status code.
    pub status: u16,
    /// Reason phrase as sent.
    pub reason: String,
    /// Header fields, names lower-cased.
    pub headers: Headers,
    /// Body framing.
    pub framing: Framing,
    /// Whether the upstream connection may be reused.
    pub keep_alive: bool,
}

/// The header fields of one head, names lower-cased, in order: every
/// name and value in one buffer, so a parsed head costs two allocations
/// however many fields it has (it was two per field).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    /// Names and values, back to back.
    bytes: Vec<u8>,
    /// Per field: where its name starts, where its value starts (the name's
    /// end), and where its value ends, in `bytes`.
    fields: Vec<(u32, u32, u32)>,
}

impl Headers {
    /// Room for `fields` fields of `bytes` bytes in all.
    pub fn with_capacity(fields: usize, bytes: usize) -> Headers {
        Headers { bytes: Vec::with_capacity(bytes), fields: Vec::with_capacity(fields) }
    }

    /// Adds a field; `name` is stored lower-cased.
    pub fn push(&mut self, name: &str, value: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes[start..].make_ascii_lowercase();
        let mid = self.bytes.len();
        self.bytes.extend_from_slice(value);
        // Heads are capped far below 4 GiB (`Limits`, 64 KiB upstream), so offsets fit.
        debug_assert!(u32::try_from(self.bytes.len()).is_ok(), "header block past 4 GiB");
        self.fields.push((start as u32, mid as u32, self.bytes.len() as u32));
    }

    /// The first value of field `name` (given lower-case).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        let name = name.as_bytes();
        self.fields
            .iter()
            .find(|&&(start, mid, _)| &self.bytes[start as usize..mid as usize] == name)
            .map(|&(_, mid, end)| &self.bytes[mid as usize..end as usize])
    }

    /// Every field, in order: lower-cased name, value.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.fields.iter().map(|&(start, mid, end)| {
            let name = &self.bytes[start as usize..mid as usize];
            // Names were pushed from `&str`, lower-cased byte by byte (ASCII
            // only changes), so they are UTF-8.
            (std::str::from_utf8(name).unwrap_or(""), &self.bytes[mid as usize..end as usize])
        })
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Owned copies of every field (for recording, in tests and the mock).
    pub fn to_pairs(&self) -> Vec<(String, Vec<u8>)> {
        self.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect()
    }
}

impl<N: AsRef<str>, V: AsRef<[u8]>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Headers {
        let mut h = Headers::default();
        for (n, v) in iter {
            h.push(n.as_ref(), v.as_ref());
        }
        h
    }
}

fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Decides body framing from the header fields (RFC 9112 §6), refusing
/// anything ambiguous.
fn framing_of(headers: &Headers) -> Result<Framing, HeadError> {
    let mut te: Option<&[u8]> = None;
    let mut length: Option<u64> = None;
    for (name, value) in headers.iter() {
        match name {
            "transfer-encoding" => {
                if te.is_some() {
                    return Err(HeadError::BadFraming("repeated Transfer-Encoding"));
                }
                te = Some(value);
            }
            "content-length" => {
                let s = std::str::from_utf8(value).map_err(|_| HeadError::BadFraming("bad Content-Length"))?;
                if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 15 {
                    return Err(HeadError::BadFraming("bad Content-Length"));
                }
                let n: u64 = s.parse().map_err(|_| HeadError::BadFraming("bad Content-Length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(HeadError::BadFraming("conflicting Content-Length values"));
                }
                length = Some(n);
            }
            _ => {}
        }
    }
    match (te, length) {
        (Some(_), Some(_)) => Err(HeadError::BadFraming("both Transfer-Encoding and Content-Length")),
        (Some(v), None) if v.trim_ascii().eq_ignore_ascii_case(b"chunked") => Ok(Framing::Chunked),
        (Some(_), None) => Err(HeadError::BadFraming("unsupported Transfer-Encoding")),
        (None, Some(0)) | (None, None) => Ok(Framing::None),
        (None, Some(n)) => Ok(Framing::Length(n)),
    }
}

fn collect_headers(raw: &[httparse::Header<'_>]) -> Result<Headers, HeadError> {
    let bytes = raw.iter().map(|h| h.name.len() + h.value.len()).sum();
    let mut headers = Headers::with_capacity(raw.len(), bytes);
    for h in raw {
        if h.value.iter().any(|b| *b == 0 || (*b < 0x20 && *b != b'\t')) {
            return Err(HeadError::Malformed("control character in header value"));
        }
        headers.push(h.name, h.value);
    }
    Ok(headers)
}

/// Parses a request head from the start of `buf`. `Ok(None)` means more
/// bytes are needed; `Ok(Some((head, consumed)))` gives the head length.
///
/// # Errors
/// [`HeadError`] for malformed, oversized or ambiguously framed requests.
pub fn parse_request_head(buf: &[u8], limits: &Limits) -> Result<Option<(RequestHead, usize)>, HeadError> {
    let mut storage = [httparse::EMPTY_HEADER; HEADER_SLOTS];
    let mut req = httparse::Request::new(&mut storage[..limits.max_headers.min(HEADER_SLOTS)]);
    let window = buf.get(..limits.max_head_bytes).unwrap_or(buf);
    let status = match req.parse(window) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(_) => return Err(HeadError::Malformed("invalid request head")),
    };
    let consumed = match status {
        httparse::Status::Partial => {
            if buf.len() >= limits.max_head_bytes {
                return Err(HeadError::TooLarge);
            }
            return Ok(None);
        }
        httparse::Status::Complete(n) => n,
    };
    let method = req.method.ok_or(HeadError::Malformed("no method"))?.to_string();
    let target = req.path.ok_or(HeadError::Malformed("no target"))?.to_string();
    let minor_version = req.version.ok_or(HeadError::Malformed("no version"))?;
    let headers = collect_headers(req.headers)?;
    let framing = framing_of(&headers)?;
    if framing == Framing::Chunked && minor_version == 0 {
        return Err(HeadError::BadFraming("chunked body in HTTP/1.0"));
    }
    let connection = headers.get("connection").unwrap_or(b"");
    let keep_alive = if minor_version == 0 {
        has_token(connection, "keep-alive")
    } else {
        !has_token(connection, "close")
    };
    let expect_continue = headers.get("expect").is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"));
    Ok(Some((RequestHead { method, target, minor_version, headers, framing, keep_alive, expect_continue }, consumed)))
}

/// Parses an upstream response head. `head_request` and the status decide
/// whether a body follows regardless of headers.
///
/// # Errors
/// [`HeadError`] for malformed or ambiguously framed responses.
pub fn parse_response_head(buf: &[u8], head_request: bool, max_head_bytes: usize) -> Result<Option<(ResponseHead, usize)>, HeadError> {
    let mut storage = [httparse::EMPTY_HEADER; HEADER_SLOTS];
    let mut res = httparse::Response::new(&mut storage);
    let status = match res.parse(buf) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(_) => return Err(HeadError::Malformed("invalid response head")),
    };
    let consumed = match status {
        httparse::Status::Partial => {
            if buf.len() > max_head_bytes {
                return Err(HeadError::TooLarge);
            }
            return Ok(None);
        }
        httparse::Status::Complete(n) => n,
    };
    let code = res.code.ok_or(HeadError::Malformed("no status"))?;
    let minor = res.version.unwrap_or(1);
    let headers = collect_headers(res.headers)?;
    let no_body = head_request || (100..200).contains(&code) || code == 204 || code == 304;
    let framing = if no_body {
        Framing::None
    } else {
        let has_framing = headers.iter().any(|(n, _)| n == "content-length" || n == "transfer-encoding");
        match framing_of(&headers)? {
            Framing::None if !has_framing => Framing::UntilClose,
            f => f,
        }
    };
    let connection = headers.get("connection").unwrap_or(b"");
    let keep_alive = framing != Framing::UntilClose
        && if minor == 0 { has_token(connection, "keep-alive") } else { !has_token(connection, "close") };
    Ok(Some((ResponseHead { status: code, reason: res.reason.unwrap_or("").to_string(), headers, framing, keep_alive }, consumed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str) -> Result<Option<(RequestHead, usize)>, HeadError> {
        parse_request_head(s.as_bytes(), &Limits::default())
    }

    #[test]
    fn simple_post() {
        let (h, n) = req("POST /stripe/v1/charges?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello").unwrap().unwrap();
        assert_eq!(h.method, "POST");
        assert_eq!(h.target, "/stripe/v1/charges?x=1");
        assert_eq!(h.framing, Framing::Length(5));
        assert!(h.keep_alive);
        assert_eq!(n, "POST /stripe/v1/charges?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n".len());
    }

    #[test]
    fn header_fields_keep_order_and_duplicates_with_lower_cased_names() {
        let (h, _) = req("GET / HTTP/1.1\r\nHost: a\r\nX-Dup: 1\r\nAuthorization: Bearer vk\r\nx-dup: 2\r\nEmpty:\r\n\r\n").unwrap().unwrap();
        let fields: Vec<(&str, &[u8])> = h.headers.iter().collect();
        assert_eq!(fields, [("host", &b"a"[..]), ("x-dup", b"1"), ("authorization", b"Bearer vk"), ("x-dup", b"2"), ("empty", b"")]);
        assert_eq!(h.headers.get("x-dup"), Some(&b"1"[..]), "the first of repeated fields");
        assert_eq!(h.headers.get("authorization"), Some(&b"Bearer vk"[..]));
        assert_eq!(h.headers.get("Authorization"), None, "names are looked up lower-case");
        assert_eq!(h.headers.get("missing"), None);
        assert_eq!(h.headers.len(), 5);
        assert_eq!(h.headers.to_pairs()[3], ("x-dup".to_string(), b"2".to_vec()));
        let built: Headers = [("Content-Type", "text/plain")].into_iter().collect();
        assert_eq!(built.iter().collect::<Vec<_>>(), [("content-type", &b"text/plain"[..])]);
    }

    #[test]
    fn partial_needs_more() {
        assert!(req("GET / HTTP/1.1\r\nHost: a\r\n").unwrap().is_none());
    }

    #[test]
    fn conflicting_framing_refused() {
        for bad in [
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 1,2\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(matches!(req(bad), Err(HeadError::BadFraming(_))), "{bad:?}");
        }
        let (h, _) = req("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n").unwrap().unwrap();
        assert_eq!(h.framing, Framing::Length(5));
    }

    #[test]
    fn limits_enforced() {
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(20_000));
        assert_eq!(req(&big).unwrap_err(), HeadError::TooLarge);
        let many: String = (0..70).map(|i| format!("X{i}: y\r\n")).collect();
        assert_eq!(req(&format!("GET / HTTP/1.1\r\n{many}\r\n")).unwrap_err(), HeadError::TooManyHeaders);
        assert!(matches!(req("GARBAGE\r\n\r\n"), Err(HeadError::Malformed(_))));
    }

    #[test]
    fn response_framing() {
        let (r, _) = parse_response_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, 65536).unwrap().unwrap();
        assert_eq!(r.framing, Framing::Chunked);
        let (r, _) = parse_response_head(b"HTTP/1.1 200 OK\r\n\r\n", false, 65536).unwrap().unwrap();
        assert_eq!(r.framing, Framing::UntilClose);
        assert!(!r.keep_alive);
        let (r, _) = parse_response_head(b"HTTP/1.1 204 No Content\r\n\r\n", false, 65536).unwrap().unwrap();
        assert_eq!(r.framing, Framing::None);
        let (r, _) = parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true, 65536).unwrap().unwrap();
        assert_eq!(r.framing, Framing::None);
    }
}
