//! A buffered HTTP/1.1 connection over any monoio stream: reads heads and
//! bodies within limits, writes answers, and relays a streamed body from one
//! connection to another piece by piece (SSE and chunked answers reach the
//! client as they arrive). Chunked bodies go through [`super::chunked`].

use std::io;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

use super::chunked::{self, Chunk, ChunkError, ChunkedBody};

use super::head::{parse_request_head, parse_response_head, Framing, HeadError, Limits, RequestHead, ResponseHead};

/// Why a request head or body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// The head was refused.
    Head(HeadError),
    /// The body is larger than allowed (413).
    TooLarge,
    /// Bad chunked encoding (400).
    Malformed,
    /// The peer closed or stalled mid-message.
    Incomplete,
    /// Socket error.
    Io(io::Error),
    /// No bytes within the allowed time.
    TimedOut,
}

impl From<io::Error> for BodyError {
    fn from(e: io::Error) -> Self {
        BodyError::Io(e)
    }
}

const READ_CHUNK: usize = 16 * 1024;

/// A stream plus its read buffer.
pub struct Conn<S> {
    io: S,
    buf: BytesMut,
}

impl<S: AsyncReadRent + AsyncWriteRent> Conn<S> {
    /// Wraps a connected stream.
    pub fn new(io: S) -> Self {
        Conn { io, buf: BytesMut::with_capacity(READ_CHUNK) }
    }

    /// Bytes already read but not yet consumed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    async fn fill(&mut self) -> io::Result<usize> {
        let mut buf = std::mem::take(&mut self.buf);
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        // monoio reads into a buffer from its start: read into the spare
        // capacity only, so bytes already buffered are kept.
        let (len, cap) = (buf.len(), buf.capacity());
        let (res, slice) = self.io.read(buf.slice_mut(len..cap)).await;
        self.buf = slice.into_inner();
        res
    }

    async fn fill_within(&mut self, timeout: Duration) -> Result<usize, BodyError> {
        match monoio::time::timeout(timeout, self.fill()).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(BodyError::TimedOut),
        }
    }

    /// Reads the next request head. `Ok(None)` when the client closed
    /// cleanly between requests.
    ///
    /// # Errors
    /// [`BodyError`] on malformed heads, limits, timeouts or I/O errors.
    pub async fn read_request_head(&mut self, limits: &Limits, idle: Duration) -> Result<Option<RequestHead>, BodyError> {
        loop {
            if !self.buf.is_empty() {
                if let Some((head, n)) = parse_request_head(&self.buf, limits).map_err(BodyError::Head)? {
                    self.buf.advance(n);
                    return Ok(Some(head));
                }
            }
            if self.fill_within(idle).await? == 0 {
                return if self.buf.is_empty() { Ok(None) } else { Err(BodyError::Incomplete) };
            }
        }
    }

    /// Reads an upstream response head.
    ///
    /// # Errors
    /// [`BodyError`] on malformed heads, timeouts or I/O errors.
    pub async fn read_response_head(&mut self, head_request: bool, timeout: Duration) -> Result<ResponseHead, BodyError> {
        loop {
            if !self.buf.is_empty() {
                if let Some((head, n)) = parse_response_head(&self.buf, head_request, 64 * 1024).map_err(BodyError::Head)? {
                    self.buf.advance(n);
                    if (100..200).contains(&head.status) && head.status != 101 {
                        continue; // interim answer (100 Continue): wait for the real one
                    }
                    return Ok(head);
                }
            }
            if self.fill_within(timeout).await? == 0 {
                return Err(BodyError::Incomplete);
            }
        }
    }

    /// Reads a whole request body of at most `max` bytes.
    ///
    /// # Errors
    /// [`BodyError::TooLarge`] past `max`; others on bad framing or I/O.
    pub async fn read_body(&mut self, framing: Framing, max: usize, timeout: Duration) -> Result<Bytes, BodyError> {
        match framing {
            Framing::None => Ok(Bytes::new()),
            Framing::Length(n) => {
                let n = usize::try_from(n).map_err(|_| BodyError::TooLarge)?;
                if n > max {
                    return Err(BodyError::TooLarge);
                }
                while self.buf.len() < n {
                    if self.fill_within(timeout).await? == 0 {
                        return Err(BodyError::Incomplete);
                    }
                }
                Ok(self.buf.split_to(n).freeze())
            }
            Framing::Chunked => {
                let mut dec = ChunkedBody::for_request(max);
                let mut out = BytesMut::new();
                loop {
                    match dec.decode(&mut self.buf) {
                        // The decoder refuses chunks declared past `max`.
                        Ok(Chunk::Data(data)) => out.extend_from_slice(&data),
                        Ok(Chunk::End) => return Ok(out.freeze()),
                        Ok(Chunk::NeedMore) => {
                            // Room for the rest of the allowed body plus one
                            // chunk's framing or the trailer section.
                            if self.buf.len() > max.saturating_sub(out.len()) + chunked::MAX_TRAILERS + chunked::MAX_SIZE_LINE {
                                return Err(BodyError::TooLarge);
                            }
                            if self.fill_within(timeout).await? == 0 {
                                return Err(BodyError::Incomplete);
                            }
                        }
                        Err(ChunkError::TooLarge) => return Err(BodyError::TooLarge),
                        Err(ChunkError::Malformed) => return Err(BodyError::Malformed),
                    }
                }
            }
            Framing::UntilClose => Err(BodyError::Malformed),
        }
    }

    /// Reads and discards what the peer still sends (up to 8 MiB or 2 s, stopping after 250 ms of silence)
    /// so a refusal written before the request was fully read reaches the
    /// client instead of being lost to a connection reset.
    pub async fn linger(&mut self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        let mut drained = 0usize;
        while drained < 8 << 20 {
            let left = deadline.saturating_duration_since(std::time::Instant::now()).min(Duration::from_millis(250));
            match self.fill_within(left).await {
                Ok(n) if n > 0 => {
                    drained += self.buf.len();
                    self.buf.clear();
                }
                _ => return,
            }
        }
    }

    /// Writes all of `data`.
    ///
    /// # Errors
    /// Socket errors.
    pub async fn write_all(&mut self, data: Vec<u8>) -> io::Result<()> {
        self.write_all_returning(data).await.0
    }

    /// Writes all of `data` and hands the buffer back, to send it again.
    pub async fn write_all_returning(&mut self, data: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        let (res, buf) = self.io.write_all(data).await;
        (res.map(|_| ()), buf)
    }

    /// Relays a response body from `self` (upstream) to `down` (client),
    /// piece by piece, calling `tap` on every decoded piece. `head` (the
    /// encoded response head) rides on the first body write, so a small
    /// answer that is already buffered leaves in one send; before waiting
    /// on the upstream for more bytes, a head still pending is flushed on
    /// its own so a slow stream's client sees the head at once. When
    /// `rechunk` is set the client gets chunked encoding; otherwise the body
    /// is passed through with its own length.
    ///
    /// # Errors
    /// [`RelayError`] says which side failed.
    pub async fn relay_body<D, F>(
        &mut self,
        head: Vec<u8>,
        framing: Framing,
        down: &mut Conn<D>,
        rechunk: bool,
        idle: Duration,
        mut tap: F,
    ) -> Result<(), RelayError>
    where
        D: AsyncReadRent + AsyncWriteRent,
        F: FnMut(&[u8]),
    {
        let mut out = Outgoing { pending: head, chunked: rechunk };
        match framing {
            Framing::None => out.flush(down).await,
            Framing::Length(n) => {
                let mut left = n;
                while left > 0 {
                    if self.buf.is_empty() {
                        out.flush(down).await?;
                        if self.fill_within(idle).await.map_err(|_| RelayError::Upstream)? == 0 {
                            return Err(RelayError::Upstream);
                        }
                    }
                    let take = (self.buf.len() as u64).min(left) as usize;
                    let piece = self.buf.split_to(take);
                    left -= take as u64;
                    tap(&piece);
                    out.piece(&piece);
                    if left > 0 {
                        out.flush(down).await?;
                    }
                }
                out.finish(down).await
            }
            Framing::Chunked => {
                let mut dec = ChunkedBody::for_relay();
                loop {
                    match dec.decode(&mut self.buf) {
                        Ok(Chunk::Data(data)) => {
                            tap(&data);
                            out.piece(&data);
                        }
                        Ok(Chunk::End) => return out.finish(down).await,
                        Ok(Chunk::NeedMore) => {
                            out.flush(down).await?;
                            if self.fill_within(idle).await.map_err(|_| RelayError::Upstream)? == 0 {
                                return Err(RelayError::Upstream);
                            }
                        }
                        Err(_) => return Err(RelayError::Upstream),
                    }
                }
            }
            Framing::UntilClose => loop {
                if self.buf.is_empty() {
                    out.flush(down).await?;
                    if self.fill_within(idle).await.map_err(|_| RelayError::Upstream)? == 0 {
                        return out.finish(down).await;
                    }
                }
                let piece = self.buf.split();
                tap(&piece);
                out.piece(&piece);
            },
        }
    }

    /// Bytes already read past the last head (the start of a body), for
    /// best-effort peeking without consuming.
    pub fn peek_buffered(&self) -> &[u8] {
        &self.buf
    }
}

/// Bytes on their way to the client during a relay: the head and any body
/// pieces not yet written, coalesced into one send.
struct Outgoing {
    pending: Vec<u8>,
    chunked: bool,
}

impl Outgoing {
    fn piece(&mut self, piece: &[u8]) {
        if piece.is_empty() {
            return;
        }
        if self.chunked {
            self.pending.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            self.pending.extend_from_slice(piece);
            self.pending.extend_from_slice(b"\r\n");
        } else {
            self.pending.extend_from_slice(piece);
        }
    }

    async fn flush<D: AsyncReadRent + AsyncWriteRent>(&mut self, down: &mut Conn<D>) -> Result<(), RelayError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.pending);
        down.write_all(out).await.map_err(|_| RelayError::Client)
    }

    async fn finish<D: AsyncReadRent + AsyncWriteRent>(&mut self, down: &mut Conn<D>) -> Result<(), RelayError> {
        if self.chunked {
            self.pending.extend_from_slice(b"0\r\n\r\n");
        }
        self.flush(down).await
    }
}

/// Which side of a relay failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayError {
    /// The upstream broke off or sent bad framing.
    Upstream,
    /// The client went away.
    Client,
}

/// Serialises a response head. `headers` must not include framing headers;
/// `framing` adds `content-length` or `transfer-encoding`.
pub fn encode_response_head<N: AsRef<str>, V: AsRef<[u8]>>(status: u16, reason: &str, headers: &[(N, V)], body_len: Option<usize>, keep_alive: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    let mut num = itoa::Buffer::new();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(num.format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (n, v) in headers {
        out.extend_from_slice(n.as_ref().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_ref());
        out.extend_from_slice(b"\r\n");
    }
    match body_len {
        Some(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(num.format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        None => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// A complete small response (head and body) as bytes.
pub fn simple_response(status: u16, content_type: &str, extra: &[(String, Vec<u8>)], body: &[u8], keep_alive: bool) -> Vec<u8> {
    let mut headers = Vec::with_capacity(extra.len() + 1);
    headers.push(("content-type".to_string(), content_type.as_bytes().to_vec()));
    headers.extend_from_slice(extra);
    let mut out = encode_response_head(status, reason_phrase(status), &headers, Some(body.len()), keep_alive);
    out.extend_from_slice(body);
    out
}

/// Canonical reason phrase for the statuses capgate emits itself.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;

    use super::*;

    /// Reads one answer head from `up_addr` and relays its body, rechunked,
    /// to `client_addr`: the body pieces the tap saw, and the bytes still
    /// buffered on the upstream connection afterwards.
    fn relay_once(up_addr: std::net::SocketAddr, client_addr: std::net::SocketAddr) -> (Vec<u8>, usize) {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().unwrap().block_on(async move {
            let mut up = Conn::new(monoio::net::TcpStream::connect(up_addr).await.unwrap());
            let mut down = Conn::new(monoio::net::TcpStream::connect(client_addr).await.unwrap());
            let head = up.read_response_head(false, Duration::from_secs(5)).await.unwrap();
            let mut seen = Vec::new();
            let out = encode_response_head(head.status, &head.reason, &[] as &[(&str, &[u8])], None, true);
            up.relay_body(out, head.framing, &mut down, true, Duration::from_secs(5), |p| seen.extend_from_slice(p)).await.unwrap();
            (seen, up.buffered())
        })
    }

    /// A streamed answer whose next piece is late: the client must get the
    /// head and the first piece before the relay waits on the upstream.
    #[test]
    fn relay_flushes_what_it_holds_before_waiting_on_the_upstream() {
        let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpListener::bind("127.0.0.1:0").unwrap();
        let (up_addr, client_addr) = (upstream.local_addr().unwrap(), client.local_addr().unwrap());
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let up = std::thread::spawn(move || {
            let (mut s, _) = upstream.accept().unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n6\r\nhello\n\r\n").unwrap();
            go_rx.recv_timeout(Duration::from_secs(10)).ok();
            s.write_all(b"4\r\nbye\n\r\n0\r\n\r\n").unwrap();
        });
        let down = std::thread::spawn(move || {
            let (mut s, _) = client.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.windows(6).any(|w| w == b"hello\n") {
                let n = s.read(&mut buf).expect("the head and first piece arrive while the upstream still holds the rest");
                assert!(n > 0);
                got.extend_from_slice(&buf[..n]);
            }
            go_tx.send(()).unwrap();
            while !got.ends_with(b"0\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0);
                got.extend_from_slice(&buf[..n]);
            }
            String::from_utf8(got).unwrap()
        });
        let (relayed, _) = relay_once(up_addr, client_addr);
        assert_eq!(relayed, b"hello\nbye\n");
        let text = down.join().unwrap();
        up.join().unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n6\r\nhello\n\r\n4\r\nbye\n\r\n0\r\n\r\n"), "{text}");
    }

    /// A vendor's chunked answer with extensions and a trailer section
    /// reaches the client whole, rechunked without either, and the upstream
    /// connection is left at the answer's end (ready for the pool).
    #[test]
    fn relay_drops_chunk_extensions_and_trailers() {
        let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpListener::bind("127.0.0.1:0").unwrap();
        let (up_addr, client_addr) = (upstream.local_addr().unwrap(), client.local_addr().unwrap());
        let up = std::thread::spawn(move || {
            let (mut s, _) = upstream.accept().unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-usage\r\n\r\n5;id=1\r\nhello\r\n1 ; q=\"a;b\"\r\n!\r\n0\r\nx-usage: 42\r\n\r\n").unwrap();
            // Held open until the relay is done: the end is read from the framing.
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).unwrap();
        });
        let down = std::thread::spawn(move || {
            let (mut s, _) = client.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.ends_with(b"0\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
                got.extend_from_slice(&buf[..n]);
            }
            String::from_utf8(got).unwrap()
        });
        let (seen, left) = relay_once(up_addr, client_addr);
        assert_eq!(seen, b"hello!");
        assert_eq!(left, 0, "the trailer section was consumed");
        let text = down.join().unwrap();
        up.join().unwrap();
        assert!(text.ends_with("\r\n\r\n5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n"), "{text}");
        assert!(!text.contains("x-usage") && !text.contains("id=1"), "{text}");
    }
}
