//! Upstream connections: connect (TCP, then TLS via rustls for https
//! vendors) within a timeout, a small per-core idle pool, and one
//! request/response-head exchange that reports whether the request may
//! have reached the vendor (which decides whether a reservation is kept).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;
use monoio_rustls::{ClientTlsStream, TlsConnector};
use rustls::pki_types::ServerName;

use crate::http1::{BodyError, Conn, ResponseHead};
use crate::vendors::Vendor;

/// A connection to a vendor.
pub enum UpConn {
    /// Plain TCP (loopback upstreams).
    Plain(Conn<TcpStream>),
    /// TLS over TCP.
    Tls(Box<Conn<ClientTlsStream<TcpStream>>>),
}

impl UpConn {
    /// Bytes read from the vendor but not yet consumed.
    pub fn buffered(&self) -> usize {
        match self {
            UpConn::Plain(c) => c.buffered(),
            UpConn::Tls(c) => c.buffered(),
        }
    }
}

/// How an exchange failed.
#[derive(Debug)]
pub enum Failure {
    /// The request certainly did not reach the vendor.
    NotSent(String),
    /// The request may have reached the vendor.
    MaybeSent(String),
    /// No answer within the response timeout (request was sent).
    TimedOut,
}

const MAX_IDLE_PER_VENDOR: usize = 256;
const IDLE_FOR: Duration = Duration::from_secs(30);

/// Idle keep-alive connections, per vendor.
#[derive(Default)]
pub struct Pool {
    idle: HashMap<String, Vec<(UpConn, Instant)>>,
}

impl Pool {
    /// An idle connection to `vendor` that has not sat too long.
    pub fn take(&mut self, vendor: &str) -> Option<UpConn> {
        let list = self.idle.get_mut(vendor)?;
        while let Some((conn, since)) = list.pop() {
            if since.elapsed() < IDLE_FOR {
                return Some(conn);
            }
        }
        None
    }

    /// Returns a reusable connection.
    pub fn put(&mut self, vendor: &str, conn: UpConn) {
        // Looked up by `&str` first: the entry API would copy the name every time.
        if !self.idle.contains_key(vendor) {
            self.idle.insert(vendor.to_string(), Vec::new());
        }
        let Some(list) = self.idle.get_mut(vendor) else { return };
        if list.len() < MAX_IDLE_PER_VENDOR {
            list.push((conn, Instant::now()));
        }
    }
}

/// Opens a new connection to a vendor.
///
/// # Errors
/// A message when no address is known, the connect or TLS handshake fails,
/// or the timeout passes.
pub async fn connect(vendor: &Vendor, addrs: &[SocketAddr], tls: &Arc<rustls::ClientConfig>, timeout: Duration) -> Result<UpConn, String> {
    let mut last = format!("no address known for {}", vendor.upstream.host);
    let mut tcp = None;
    for addr in addrs {
        match monoio::time::timeout(timeout, TcpStream::connect_addr(*addr)).await {
            Ok(Ok(s)) => {
                tcp = Some(s);
                break;
            }
            Ok(Err(e)) => last = format!("connect to {} ({addr}) failed: {e}", vendor.upstream.authority()),
            Err(_) => last = format!("connect to {} ({addr}) timed out", vendor.upstream.authority()),
        }
    }
    let tcp = tcp.ok_or(last)?;
    let _ = tcp.set_nodelay(true);
    if !vendor.upstream.tls {
        return Ok(UpConn::Plain(Conn::new(tcp)));
    }
    let name = ServerName::try_from(vendor.upstream.host.clone()).map_err(|e| format!("bad TLS server name: {e}"))?;
    let connector = TlsConnector::from(Arc::clone(tls));
    match monoio::time::timeout(timeout, connector.connect(name, tcp)).await {
        Ok(Ok(s)) => Ok(UpConn::Tls(Box::new(Conn::new(s)))),
        Ok(Err(e)) => Err(format!("TLS handshake with {} failed: {e}", vendor.upstream.authority())),
        Err(_) => Err(format!("TLS handshake with {} timed out", vendor.upstream.authority())),
    }
}

/// Sends a request (head + body) and reads the response head. Hands the
/// request buffer back, so a failed exchange can be retried without a copy.
/// A [`Failure`] says whether the vendor may have seen the request.
pub async fn exchange<S>(up: &mut Conn<S>, request: Vec<u8>, head_request: bool, timeout: Duration) -> (Result<ResponseHead, Failure>, Vec<u8>)
where
    S: monoio::io::AsyncReadRent + monoio::io::AsyncWriteRent,
{
    let (written, request) = up.write_all_returning(request).await;
    if let Err(e) = written {
        return (Err(Failure::NotSent(format!("write to upstream failed: {e}"))), request);
    }
    let head = match up.read_response_head(head_request, timeout).await {
        Ok(h) => Ok(h),
        Err(BodyError::TimedOut) => Err(Failure::TimedOut),
        Err(BodyError::Incomplete) if up.buffered() == 0 => Err(Failure::MaybeSent("upstream closed the connection before answering".into())),
        Err(e) => Err(Failure::MaybeSent(format!("bad upstream answer: {e:?}"))),
    };
    (head, request)
}
