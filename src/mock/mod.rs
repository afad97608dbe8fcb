//! A local mock vendor: the built-in `demo` payment API behind `capgate
//! serve`, the upstream of the bench harness, and the recording vendor the
//! tests assert against. It answers Stripe-, OpenAI-, Anthropic-, Twilio-
//! and Resend-shaped calls (including SSE streams), checks the credential
//! it expects, and records every request it receives.
//!
//! Test controls (request headers): `x-mock-status: 402` answers that
//! status with a Stripe-style error, `x-mock-delay-ms: 500` waits first,
//! `x-mock-close: 1` drops the connection without answering,
//! `x-mock-stray: 1` sends a second, unasked-for answer (a 402) right
//! behind the real one.

mod answers;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;


use crate::config::Driver;
use crate::http1::conn::simple_response;
use crate::http1::head::Headers;
use crate::http1::{Conn, Limits};

/// One request as the mock received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Method.
    pub method: String,
    /// Request target (path and query) as received.
    pub target: String,
    /// Headers (lower-case names).
    pub headers: Vec<(String, Vec<u8>)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Recorded {
    /// First value of a header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

/// A running mock vendor.
pub struct MockVendor {
    /// Bound address.
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Recorded>>>,
}

impl MockVendor {
    /// Starts the mock on `addr` (port 0 for any) with `workers` threads.
    /// When `credential` is set, requests must carry it as a Bearer token,
    /// `x-api-key`, or Basic password, or get a 401.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub fn start(addr: SocketAddr, credential: Option<String>) -> Result<MockVendor, String> {
        Self::start_with(addr, credential, 1, true)
    }

    /// Like [`MockVendor::start`], with a worker count and whether to
    /// record requests (the bench turns recording off).
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub fn start_with(addr: SocketAddr, credential: Option<String>, workers: usize, record: bool) -> Result<MockVendor, String> {
        Self::start_inner(addr, credential, workers, record, None)
    }

    /// A mock that speaks TLS with the given PEM certificate chain and key
    /// (tests of capgate's upstream TLS).
    ///
    /// # Errors
    /// When the address cannot be bound or the certificate is unusable.
    pub fn start_tls(addr: SocketAddr, credential: Option<String>, cert_pem: &str, key_pem: &str) -> Result<MockVendor, String> {
        use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
        let _ = rustls::crypto::ring::default_provider().install_default();
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<_, _>>().map_err(|e| format!("mock cert: {e}"))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| format!("mock key: {e}"))?;
        let cfg = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(certs, key).map_err(|e| format!("mock TLS: {e}"))?;
        Self::start_inner(addr, credential, 1, true, Some(Arc::new(cfg)))
    }

    fn start_inner(addr: SocketAddr, credential: Option<String>, workers: usize, record: bool, tls: Option<Arc<rustls::ServerConfig>>) -> Result<MockVendor, String> {
        let log = Arc::new(Mutex::new(Vec::new()));
        let listeners = crate::runtime::bind_reuseport(addr, workers)?;
        let bound = listeners.first().and_then(|l| l.local_addr().ok()).ok_or("mock: no listener")?;
        let cred = Arc::new(credential);
        for (i, l) in listeners.into_iter().enumerate() {
            let log = record.then(|| Arc::clone(&log));
            let cred = Arc::clone(&cred);
            let tls = tls.clone();
            crate::runtime::spawn_runtime_thread(format!("capgate-mock-{i}"), Driver::Epoll, move || async move {
                let Ok(listener) = monoio::net::TcpListener::from_std(l) else { return };
                let acceptor = tls.map(monoio_rustls::TlsAcceptor::from);
                loop {
                    if let Ok((s, _)) = listener.accept().await {
                        let _ = s.set_nodelay(true);
                        let (log, cred) = (log.clone(), Arc::clone(&cred));
                        match acceptor.clone() {
                            Some(a) => {
                                monoio::spawn(async move {
                                    if let Ok(tls) = a.accept(s).await {
                                        serve(Conn::new(tls), log, cred).await;
                                    }
                                });
                            }
                            None => {
                                monoio::spawn(serve(Conn::new(s), log, cred));
                            }
                        }
                    }
                }
            })?;
        }
        Ok(MockVendor { addr: bound, log })
    }

    /// Everything received so far.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Number of requests received so far.
    pub fn count(&self) -> usize {
        self.log.lock().map(|l| l.len()).unwrap_or(0)
    }
}

fn credential_ok(headers: &Headers, expected: &str) -> bool {
    crate::proxy::route::presented_token(headers).is_some_and(|t| t == expected)
        || headers.get("authorization").is_some_and(|v| {
            use base64::Engine;
            let s = String::from_utf8_lossy(v);
            s.strip_prefix("Basic ")
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
                .is_some_and(|raw| String::from_utf8_lossy(&raw).split_once(':').is_some_and(|(_, p)| p == expected))
        })
}

async fn serve<S: monoio::io::AsyncReadRent + monoio::io::AsyncWriteRent>(mut conn: Conn<S>, log: Option<Arc<Mutex<Vec<Recorded>>>>, cred: Arc<Option<String>>) {
    let limits = Limits { max_body_bytes: 8 << 20, ..Limits::default() };
    loop {
        let Ok(Some(head)) = conn.read_request_head(&limits, Duration::from_secs(120)).await else { return };
        let Ok(body) = conn.read_body(head.framing, limits.max_body_bytes, Duration::from_secs(30)).await else { return };
        if let Some(log) = &log {
            if let Ok(mut l) = log.lock() {
                l.push(Recorded { method: head.method.clone(), target: head.target.clone(), headers: head.headers.to_pairs(), body: body.to_vec() });
            }
        }
        let hdr = |n: &str| head.headers.get(n).map(|v| String::from_utf8_lossy(v).into_owned());
        if let Some(ms) = hdr("x-mock-delay-ms").and_then(|v| v.parse::<u64>().ok()) {
            monoio::time::sleep(Duration::from_millis(ms)).await;
        }
        if hdr("x-mock-close").is_some() {
            return;
        }
        let mut out = match (cred.as_deref(), hdr("x-mock-status").and_then(|s| s.parse::<u16>().ok())) {
            (Some(expected), _) if !credential_ok(&head.headers, expected) => {
                simple_response(401, "application/json", &[], br#"{"error":{"type":"invalid_request_error","message":"Invalid API Key provided"}}"#, head.keep_alive)
            }
            (_, Some(status)) => {
                let body = format!(r#"{{"error":{{"type":"card_error","code":"mock_{status}","message":"mock vendor answered {status}"}}}}"#);
                simple_response(status, "application/json", &[], body.as_bytes(), head.keep_alive)
            }
            _ => answers::answer(&head, &body),
        };
        if hdr("x-mock-stray").is_some() {
            out.extend_from_slice(b"HTTP/1.1 402 Payment Required\r\ncontent-length: 0\r\n\r\n");
        }
        if conn.write_all(out).await.is_err() || !head.keep_alive {
            return;
        }
    }
}
