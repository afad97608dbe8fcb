//! The admin HTTP API (control plane, own thread): issue, list, inspect
//! and revoke vault keys ([`keys`]), query the audit log ([`audit`]), and
//! `/healthz`. Every route but `/healthz` needs `Authorization: Bearer
//! <admin token>`, checked against its hash in constant time.

pub mod audit;
pub mod keys;
pub mod spend;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use monoio::net::{TcpListener, TcpStream};
use serde_json::{json, Value};

use crate::audit::AuditSink;
use crate::error::Refusal;
use crate::http1::conn::simple_response;
use crate::http1::{Conn, Limits, RequestHead};
use crate::keys::registry::KeyRegistry;
use crate::keys::token;
use crate::ledger::Mailbox;
use crate::store::Store;
use crate::vendors::Vendors;

/// What the admin API works on.
pub struct AdminState {
    /// The database.
    pub store: Arc<Store>,
    /// The key registry the cores read.
    pub registry: Arc<KeyRegistry>,
    /// Configured vendors.
    pub vendors: Arc<Vendors>,
    /// Ledger mailboxes (to read today's spend from the owning core).
    pub mailboxes: Arc<[Mailbox]>,
    /// SHA-256 of the admin token.
    pub admin_hash: [u8; 32],
    /// Audit sink (health).
    pub audit: AuditSink,
    /// One mark per proxy worker, set when it stops (health).
    pub stopped_workers: Arc<[AtomicBool]>,
}

/// A streamed body: pieces produced lazily (an error ends the stream early,
/// which the client sees as a truncated chunked transfer).
pub type BodyStream = Box<dyn Iterator<Item = Result<Vec<u8>, String>>>;

/// An admin answer body.
pub enum Body {
    /// Sent with a Content-Length.
    Full(Vec<u8>),
    /// Sent chunked as it is produced, never held whole.
    Stream(BodyStream),
}

/// An admin answer.
pub struct Reply {
    /// Status.
    pub status: u16,
    /// Content type.
    pub content_type: &'static str,
    /// Body.
    pub body: Body,
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: u16, v: &Value) -> Reply {
        Reply { status, content_type: "application/json", body: Body::Full(serde_json::to_vec(v).unwrap_or_default()) }
    }

    fn refusal(r: &Refusal) -> Reply {
        Reply { status: r.status, content_type: "application/json", body: Body::Full(r.body("")) }
    }
}

const STREAM_PIECE: usize = 64 * 1024;

/// Writes a reply; returns whether the connection may continue.
async fn write_reply(conn: &mut Conn<TcpStream>, reply: Reply, keep: bool) -> bool {
    match reply.body {
        Body::Full(body) => conn.write_all(simple_response(reply.status, reply.content_type, &[], &body, keep)).await.is_ok() && keep,
        Body::Stream(pieces) => {
            let headers = [("content-type".to_string(), reply.content_type.as_bytes().to_vec())];
            let head = crate::http1::conn::encode_response_head(reply.status, crate::http1::conn::reason_phrase(reply.status), &headers, None, keep);
            if conn.write_all(head).await.is_err() {
                return false;
            }
            let mut buf = Vec::with_capacity(STREAM_PIECE + 1024);
            for piece in pieces {
                match piece {
                    Ok(p) => buf.extend_from_slice(&p),
                    Err(e) => {
                        tracing::error!(error = %e, "export stream failed");
                        return false;
                    }
                }
                if buf.len() >= STREAM_PIECE && !write_chunk(conn, &mut buf).await {
                    return false;
                }
            }
            write_chunk(conn, &mut buf).await && conn.write_all(b"0\r\n\r\n".to_vec()).await.is_ok() && keep
        }
    }
}

async fn write_chunk(conn: &mut Conn<TcpStream>, buf: &mut Vec<u8>) -> bool {
    if buf.is_empty() {
        return true;
    }
    let mut out = format!("{:x}\r\n", buf.len()).into_bytes();
    out.append(buf);
    out.extend_from_slice(b"\r\n");
    conn.write_all(out).await.is_ok()
}

/// Query-string parameters (last value wins).
pub fn query_params(target: &str) -> HashMap<String, String> {
    target.split_once('?').map(|(_, q)| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

const LIMITS: Limits = Limits { max_head_bytes: 16 * 1024, max_headers: 64, max_body_bytes: 8 * 1024 * 1024 };

/// Serves the admin API on `listener` until the process exits.
pub async fn serve(listener: std::net::TcpListener, state: Arc<AdminState>) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "admin listener failed");
            return;
        }
    };
    loop {
        if let Ok((s, _)) = listener.accept().await {
            monoio::spawn(serve_conn(s, Arc::clone(&state)));
        }
    }
}

async fn serve_conn(stream: TcpStream, state: Arc<AdminState>) {
    let mut conn = Conn::new(stream);
    let idle = Duration::from_secs(60);
    loop {
        let head = match conn.read_request_head(&LIMITS, idle).await {
            Ok(Some(h)) => h,
            Ok(None) | Err(crate::http1::BodyError::Io(_) | crate::http1::BodyError::TimedOut | crate::http1::BodyError::Incomplete) => return,
            Err(crate::http1::BodyError::Head(e)) => {
                let r = Refusal::new(e.status(), "malformed_request", crate::error::Source::Client, e.message());
                let _ = conn.write_all(simple_response(r.status, "application/json", &[], &r.body(""), false)).await;
                return;
            }
            Err(_) => return,
        };
        let reply = match conn.read_body(head.framing, LIMITS.max_body_bytes, idle).await {
            Ok(body) => dispatch(&state, &head, &body).await,
            Err(crate::http1::BodyError::TooLarge) => Reply::refusal(&Refusal::new(413, "payload_too_large", crate::error::Source::Client, "admin request body too large")),
            Err(_) => return,
        };
        let keep = head.keep_alive && reply.status != 413;
        if !write_reply(&mut conn, reply, keep).await {
            return;
        }
    }
}

fn authorised(state: &AdminState, head: &RequestHead) -> bool {
    let presented = head.headers.get("authorization")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.split_once(' ').filter(|(s, _)| s.eq_ignore_ascii_case("bearer")).map(|(_, t)| t.trim().to_string()));
    presented.is_some_and(|t| token::hashes_equal(&token::hash(&t), &state.admin_hash))
}

async fn dispatch(state: &AdminState, head: &RequestHead, body: &[u8]) -> Reply {
    let path = head.target.split('?').next().unwrap_or("");
    if path == "/healthz" {
        let audit_ok = state.audit.healthy();
        let stopped = state.stopped_workers.iter().filter(|s| s.load(Ordering::Relaxed)).count();
        let ok = audit_ok && stopped == 0;
        return Reply::json(
            if ok { 200 } else { 503 },
            &json!({
                "status": if ok { "ok" } else { "degraded" },
                "audit": if audit_ok { "ok" } else { "unwritable" },
                "workers": {"running": state.stopped_workers.len() - stopped, "stopped": stopped},
                "keys": state.registry.len(),
            }),
        );
    }
    if !authorised(state, head) {
        return Reply::refusal(&Refusal::new(401, "unauthorized", crate::error::Source::Policy, "admin routes need Authorization: Bearer <admin token>"));
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let result = match (head.method.as_str(), segments.as_slice()) {
        ("POST", ["v1", "keys"] | ["vault", "keys"]) => keys::create(state, body),
        ("POST", ["v1", "keys", "batch"]) => keys::create_batch(state, body),
        ("GET", ["v1", "keys"] | ["vault", "keys"]) => keys::list(state, &query_params(&head.target)),
        ("GET", ["v1", "keys", id] | ["vault", "keys", id]) => keys::get(state, id).await,
        ("DELETE", ["v1", "keys", id] | ["vault", "keys", id]) => keys::revoke(state, id),
        ("GET", ["v1", "audit"]) => audit::query(state, &query_params(&head.target)),
        ("GET", ["v1", "audit", "export"]) => audit::export(state, &query_params(&head.target)),
        ("GET", ["v1", "spend"]) => spend::query(state, &query_params(&head.target)),
        (_, ["v1", "keys", ..] | ["vault", "keys", ..] | ["v1", "audit", ..] | ["v1", "spend"]) => Err(Refusal::new(405, "method_not_allowed", crate::error::Source::Client, format!("{} is not supported on {path}", head.method))),
        _ => Err(Refusal::new(404, "not_found", crate::error::Source::Client, format!("no admin route {path}"))),
    };
    result.unwrap_or_else(|r| Reply::refusal(&r))
}
