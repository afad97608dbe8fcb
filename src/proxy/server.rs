//! The per-core accept loop and per-connection request loop: read a head
//! within limits, refuse malformed input with a 4xx (never forwarded), hand
//! good requests to [`super::handler`], and keep the connection while both
//! sides allow it.

use std::rc::Rc;

use monoio::net::{TcpListener, TcpStream};

use super::core::CoreCtx;
use super::handler;
use crate::audit::{AuditEvent, Decision};
use crate::clock;
use crate::error::Refusal;
use crate::http1::conn::simple_response;
use crate::http1::{BodyError, Conn};

/// Accepts connections forever, one task per connection.
pub async fn accept_loop(listener: TcpListener, ctx: Rc<CoreCtx>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                monoio::spawn(serve_conn(stream, Rc::clone(&ctx)));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                monoio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

async fn serve_conn(stream: TcpStream, ctx: Rc<CoreCtx>) {
    let mut conn = Conn::new(stream);
    loop {
        let head = match conn.read_request_head(&ctx.shared.limits, ctx.shared.idle_timeout).await {
            Ok(Some(h)) => h,
            Ok(None) => return,
            Err(BodyError::Head(e)) => {
                let r = Refusal::new(e.status(), if e.status() == 431 { "header_too_large" } else { "malformed_request" }, crate::error::Source::Client, e.message());
                let request_id = ctx.next_request_id();
                let now = clock::now_ms();
                ctx.shared.audit.append(AuditEvent {
                    ts_ms: now,
                    request_id: request_id.clone(),
                    status: r.status,
                    decision: Decision::Refused as u8,
                    code: r.code.to_string(),
                    spend_day: clock::day_of(now),
                    ..AuditEvent::blank(&ctx.empty)
                });
                let _ = conn.write_all(simple_response(r.status, "application/json", &[], &r.body(&request_id), false)).await;
                return;
            }
            Err(_) => return,
        };
        if !handler::handle(&ctx, head, &mut conn).await {
            return;
        }
    }
}
