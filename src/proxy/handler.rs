//! One proxied request, phase by phase (see the chart in [`super`]): decide
//! (route, authenticate, authorise, price, parameter rules), reserve,
//! forward, record, relay, settle. Every outcome, allowed or refused,
//! produces one audit event.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use monoio::net::TcpStream;
use sha2::{Digest, Sha256};

use super::core::CoreCtx;
use super::route::{self, Route};
use super::upstream::{self, Failure, UpConn};
use crate::audit::{AuditEvent, Decision, Durability, EventKind};
use crate::clock;
use crate::error::{BodyShape, Refusal, Source};
use crate::http1::conn::{encode_response_head, simple_response};
use crate::http1::head::Headers;
use crate::http1::{BodyError, Conn, Framing, RequestHead};
use crate::keys::VaultKey;
use crate::ledger::{Adjust, Dedupe, Denied, Reserve, Reserved};
use crate::pricing::{self, Params, PriceError, PriceRequest, Quote, Settle, SseUsageScanner, VendorKind};
use crate::vendors::Vendor;

/// What a request that passed every check will do.
struct Plan {
    key: Arc<VaultKey>,
    vendor: Arc<Vendor>,
    route: Route,
    quote: Quote,
    body: Bytes,
    /// Fingerprint for the duplicate-charge guard, when it applies.
    fingerprint: Option<[u8; 16]>,
}

/// Most bytes of a JSON answer kept to read its `usage` (which OpenAI puts
/// at the end) when settling; a longer answer keeps its reservation.
const USAGE_CAPTURE: usize = 4 * 1024 * 1024;

/// Most bytes of a raw request target kept in an audit event (when the
/// route cannot canonicalise it).
const MAX_LOGGED_TARGET: usize = 512;

/// `s` cut to at most `max` bytes, on a character boundary.
fn truncated(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The refusal body shape this client's SDK understands, from the headers
/// the official SDKs send.
fn shape_for(head: &RequestHead) -> BodyShape {
    let has = |n: &str| head.headers.get(n).is_some();
    let ua = head.headers.get("user-agent").unwrap_or(b"");
    if has("x-stripe-client-user-agent") || ua.starts_with(b"Stripe/") {
        BodyShape::Stripe
    } else if has("x-stainless-lang") {
        BodyShape::Nested
    } else {
        BodyShape::Flat
    }
}

/// Handles one request whose head has been read. Returns whether the
/// client connection may carry another request.
pub async fn handle(ctx: &CoreCtx, head: RequestHead, client: &mut Conn<TcpStream>) -> bool {
    let shared = &ctx.shared;
    let now = clock::now_ms();
    let shape = shape_for(&head);
    let mut ev = AuditEvent {
        ts_ms: now,
        request_id: ctx.next_request_id(),
        method: head.method.as_str().into(),
        spend_day: clock::day_of(now),
        // The path is set once routed (canonical), or on refusal (the raw target).
        ..AuditEvent::blank(&ctx.empty)
    };
    if head.expect_continue && head.framing != Framing::None && client.write_all(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec()).await.is_err() {
        return false;
    }
    let body = match client.read_body(head.framing, shared.limits.max_body_bytes, shared.idle_timeout).await {
        Ok(b) => b,
        Err(e) => {
            let refusal = match e {
                BodyError::TooLarge => Refusal::new(413, "payload_too_large", Source::Client, format!("request body exceeds {} bytes", shared.limits.max_body_bytes)),
                BodyError::Malformed => Refusal::bad_request("invalid_body_framing", "malformed chunked request body"),
                _ => return false,
            };
            ev.path = truncated(&head.target, MAX_LOGGED_TARGET).into();
            refuse(ctx, client, &mut ev, &refusal, shape, false).await;
            client.linger().await;
            return false;
        }
    };
    let plan = match decide(ctx, &head, body, now, &mut ev) {
        Ok(p) => p,
        Err(r) => {
            if ev.path.is_empty() {
                ev.path = truncated(&head.target, MAX_LOGGED_TARGET).into();
            }
            return refuse(ctx, client, &mut ev, &r, shape, head.keep_alive).await;
        }
    };
    forward(ctx, &head, plan, client, ev, shape).await
}

/// Route, authenticate, authorise, price and apply the key's parameter
/// rules: everything decided before any shared state changes.
fn decide(ctx: &CoreCtx, head: &RequestHead, body: Bytes, now: u64, ev: &mut AuditEvent) -> Result<Plan, Refusal> {
    let shared = &ctx.shared;
    let route = route::route(&head.target, |v| shared.vendors.get(v).is_some())?;
    ev.vendor = route.vendor.clone().unwrap_or_else(|| Arc::clone(&ctx.empty));
    ev.path = route.path.as_str().into();
    let token = route::presented_token(&head.headers).ok_or_else(Refusal::invalid_key)?;
    let key = shared.registry.find(&token).ok_or_else(Refusal::invalid_key)?;
    ev.key_id = key.id.clone();
    ev.label = key.label.clone();
    key.check_live(now)?;
    let vendor_name = route.vendor.as_deref().unwrap_or(&key.vendor);
    if *key.vendor != *vendor_name {
        return Err(Refusal::vendor_not_allowed(&key.vendor, vendor_name));
    }
    ev.vendor = key.vendor.clone();
    let vendor = shared
        .vendors
        .get(&key.vendor)
        .cloned()
        .ok_or_else(|| Refusal::new(503, "vendor_not_configured", Source::Internal, format!("vendor '{}' is no longer configured", key.vendor)))?;
    if !key.allowed.allows(&head.method, &route.path) {
        return Err(Refusal::endpoint_not_allowed(&head.method, &route.path));
    }
    if vendor.credential.is_none() {
        return Err(Refusal::new(503, "vendor_not_configured", Source::Internal, format!("no credential is configured for vendor '{}'", vendor.name)));
    }
    let content_type = head.headers.get("content-type").and_then(|v| std::str::from_utf8(v).ok());
    let params = Params::parse(&route.query, content_type, &body).map_err(|e| Refusal::bad_request(e.code(), e.to_string()))?;
    crate::policy::constraints::check(&key.rules.constraints, !body.is_empty(), |name| params.str_values(name)).map_err(Refusal::param_not_allowed)?;
    let req = PriceRequest { vendor: vendor.kind, method: &head.method, path: &route.path, query: &route.query, content_type, body: &body };
    let quote = match pricing::quote(&req, &params, &shared.prices) {
        Ok(q) => q,
        Err(PriceError::AmountUnknown) if key.rules.allow_full_refunds => Quote::fixed(key.rules.max_per_call_micros.unwrap_or(0)),
        Err(e) => return Err(Refusal::bad_request(e.code(), e.to_string())),
    };
    if let Some(max) = key.rules.max_per_call_micros {
        if quote.reserve_micros > max {
            return Err(Refusal::per_call_limit_exceeded(quote.reserve_micros, max));
        }
    }
    let fingerprint = duplicate_guarded(vendor.kind, &head.method, &route.path, &head.headers, shared.duplicate_window_ms)
        .then(|| fingerprint(&key.id, &head.method, &route.path, &params));
    let needs_usage_option = matches!(quote.settle, Settle::Usage { streaming: true, .. })
        && matches!(route.path.as_str(), "/v1/chat/completions" | "/v1/completions")
        && pricing::openai_stream_needs_usage_option(&params);
    drop(params); // it borrows the body
    let mut body = body;
    if needs_usage_option {
        if let Some(b) = pricing::add_include_usage(&body) {
            body = Bytes::from(b);
        }
    }
    ev.reserved_micros = quote.reserve_micros;
    Ok(Plan { key, vendor, route, quote, body, fingerprint })
}

/// Whether the duplicate-charge guard applies: a money-moving POST to
/// Stripe (or demo) or a Resend send, without the client's own key.
fn duplicate_guarded(kind: VendorKind, method: &str, path: &str, headers: &Headers, window_ms: u64) -> bool {
    let applies = match kind {
        VendorKind::Stripe | VendorKind::Demo => method == "POST",
        VendorKind::Resend => method == "POST" && matches!(path, "/emails" | "/emails/batch"),
        _ => false,
    };
    applies && window_ms > 0 && headers.get("idempotency-key").is_none()
}

/// Fingerprint of (key, method, path, canonical parameters): the request
/// as already parsed for pricing ([`Params::write_canonical`]), so the body
/// is not parsed a second time.
fn fingerprint(key_id: &str, method: &str, path: &str, params: &Params<'_>) -> [u8; 16] {
    let mut h = Sha256::new();
    for part in [key_id.as_bytes(), method.as_bytes(), path.as_bytes()] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    // Writing into a hash cannot fail.
    let _ = params.write_canonical(&mut h);
    let d = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

/// A reservation held on the key's owning core for one call.
struct Held {
    /// Micro-dollars reserved (0 for a replayed duplicate).
    cost: u64,
    /// Whether the ledger counted the call (and a reserve event says so).
    counted: bool,
    /// Headers added upstream (the derived idempotency key).
    extra_headers: Vec<(&'static str, Vec<u8>)>,
}

impl Held {
    /// Gives the reservation back: the call never reached the vendor.
    /// The call event then undoes its reserve event.
    fn never_sent(&self, ctx: &CoreCtx, key: &VaultKey, fingerprint: Option<[u8; 16]>, ev: &mut AuditEvent) {
        let undo = Adjust { key: Arc::clone(&key.id), day: ev.spend_day, spend_delta: -(self.cost as i64), calls_delta: -i32::from(self.counted), forget: fingerprint };
        ctx.ledgers.adjust(key.owner_hash, undo);
        ev.settled_micros = 0;
        ev.spend_delta = if self.counted { -(self.cost as i64) } else { 0 };
        ev.calls_delta = -i32::from(self.counted);
    }
}

/// Reserves on the owning core and, for a counted call, makes the
/// reservation durable before anything leaves: a crash after this point
/// keeps the spend counted (conservative), never frees it.
async fn reserve(ctx: &CoreCtx, key: &VaultKey, cost: u64, fingerprint: Option<[u8; 16]>, ev: &mut AuditEvent) -> Result<Held, Refusal> {
    let shared = &ctx.shared;
    let mut held = Held { cost, counted: false, extra_headers: Vec::new() };
    if cost == 0 && key.rules.max_calls.is_none() && fingerprint.is_none() {
        return Ok(held);
    }
    let day = ev.spend_day;
    let dedupe = fingerprint.map(|f| Dedupe { fingerprint: f, now_ms: ev.ts_ms, window_ms: shared.duplicate_window_ms });
    let r = Reserve { key: Arc::clone(&key.id), day, cost, cap: key.cap_micros, max_calls: key.rules.max_calls, dedupe };
    let first_ms = match ctx.ledgers.reserve(key.owner_hash, r).await {
        Ok(Reserved::Fresh { first_ms }) => {
            held.counted = true;
            first_ms
        }
        Ok(Reserved::Replay { first_ms }) => {
            // The vendor replays the first result for the same key; it is charged once.
            held.cost = 0;
            ev.reserved_micros = 0;
            first_ms
        }
        Err(Denied::OverCap { spent }) => return Err(Refusal::cap_exceeded(key.cap_micros, spent, cost, clock::secs_until_next_day(clock::now_ms()))),
        Err(Denied::TooManyCalls { .. }) => return Err(Refusal::call_cap_exceeded(key.rules.max_calls.unwrap_or(0), clock::secs_until_next_day(clock::now_ms()))),
        Err(Denied::OwnerUnavailable) => return Err(Refusal::ledger_unavailable()),
        Err(Denied::DayEnded) => return Err(Refusal::day_rolled_over()),
    };
    if let Some(f) = fingerprint {
        let mut value = Vec::with_capacity(8 + 2 * f.len() + 20);
        value.extend_from_slice(b"capgate-");
        let mut hexed = [0u8; 32];
        if hex::encode_to_slice(f, &mut hexed).is_ok() {
            value.extend_from_slice(&hexed);
        }
        value.push(b'-');
        value.extend_from_slice(itoa::Buffer::new().format(first_ms).as_bytes());
        held.extra_headers.push(("idempotency-key", value));
    }
    if held.counted {
        let record = AuditEvent { kind: EventKind::Reserve as u8, decision: Decision::Allowed as u8, spend_delta: cost as i64, calls_delta: 1, ..ev.clone() };
        let written = if shared.durability == Durability::Sync && cost > 0 {
            ctx.acks.append_durable(&shared.audit, record).await
        } else {
            shared.audit.append(record);
            true
        };
        if !written {
            // If the reserve event landed after all, the log over-counts this
            // key (conservative) rather than risk a negative adjustment.
            ctx.ledgers.adjust(key.owner_hash, Adjust { key: Arc::clone(&key.id), day, spend_delta: -(cost as i64), calls_delta: -1, forget: fingerprint });
            return Err(Refusal::audit_unavailable());
        }
    }
    Ok(held)
}

/// Connects (or reuses a pooled connection), sends the request and reads
/// the answer's head. A pooled connection that fails before the vendor can
/// have acted, or an idempotent request, is retried once on a fresh one.
async fn send(ctx: &CoreCtx, vendor: &Vendor, request: Vec<u8>, head_request: bool, safe_to_retry: bool) -> Result<(UpConn, crate::http1::ResponseHead), Failure> {
    let shared = &ctx.shared;
    let addrs = shared.vendors.addrs(&vendor.name).ok_or_else(|| Failure::NotSent(format!("the address of {} could not be resolved", vendor.upstream.host)))?;
    let pooled = ctx.pool.borrow_mut().take(&vendor.name);
    let reused = pooled.is_some();
    let mut conn = match pooled {
        Some(c) => c,
        None => upstream::connect(vendor, &addrs, &shared.tls, shared.connect_timeout).await.map_err(Failure::NotSent)?,
    };
    let (result, request) = exchange_on(&mut conn, request, head_request, shared.response_timeout).await;
    let retry = match &result {
        Err(Failure::NotSent(_)) => reused,
        Err(Failure::MaybeSent(_)) => reused && safe_to_retry,
        _ => false,
    };
    if !retry {
        return result.map(|h| (conn, h));
    }
    let mut conn = upstream::connect(vendor, &addrs, &shared.tls, shared.connect_timeout).await.map_err(Failure::NotSent)?;
    let head = exchange_on(&mut conn, request, head_request, shared.response_timeout).await.0?;
    Ok((conn, head))
}

/// Reserve, forward, record, relay, settle.
async fn forward(ctx: &CoreCtx, head: &RequestHead, plan: Plan, client: &mut Conn<TcpStream>, mut ev: AuditEvent, shape: BodyShape) -> bool {
    let shared = &ctx.shared;
    let Plan { key, vendor, route, quote, body, fingerprint } = plan;
    if !shared.audit.healthy() && (quote.reserve_micros > 0 || !shared.free_calls_when_audit_down) {
        return refuse(ctx, client, &mut ev, &Refusal::audit_unavailable(), shape, head.keep_alive).await;
    }
    let held = match reserve(ctx, &key, quote.reserve_micros, fingerprint, &mut ev).await {
        Ok(h) => h,
        Err(r) => return refuse(ctx, client, &mut ev, &r, shape, head.keep_alive).await,
    };
    // From here the call event carries adjustments relative to the reserve
    // event: 0 when the reservation stands, -cost when it is released.
    let cost = held.cost;
    ev.calls_delta = 0;
    let mut request = route::upstream_head(&head.method, &vendor, &route, &head.headers, &held.extra_headers, body.len(), &ev.request_id);
    request.extend_from_slice(&body);
    let safe_to_retry = matches!(head.method.as_str(), "GET" | "HEAD" | "OPTIONS") || head.headers.get("idempotency-key").is_some() || !held.extra_headers.is_empty();
    let started = Instant::now();
    let sent = send(ctx, &vendor, request, head.method == "HEAD", safe_to_retry).await;
    ev.latency_us = started.elapsed().as_micros() as u64;
    let (conn, resp) = match sent {
        Ok(x) => x,
        Err(Failure::NotSent(msg)) => {
            held.never_sent(ctx, &key, fingerprint, &mut ev);
            return refuse(ctx, client, &mut ev, &Refusal::upstream_unavailable(msg), shape, head.keep_alive).await;
        }
        Err(failure) => {
            // The vendor may have acted on it: keep the reservation.
            ev.settled_micros = cost;
            let r = match failure {
                Failure::TimedOut => Refusal::new(504, "upstream_timeout", Source::Upstream, "the vendor did not answer in time; the call may have been processed, so its cost stays counted"),
                Failure::MaybeSent(m) | Failure::NotSent(m) => Refusal::new(502, "upstream_error", Source::Upstream, format!("{m}; the call may have been processed, so its cost stays counted")),
            };
            return refuse(ctx, client, &mut ev, &r, shape, head.keep_alive).await;
        }
    };
    ev.status = resp.status;
    ev.decision = Decision::Allowed as u8;
    if resp.status >= 400 {
        // The vendor refused: nothing was spent (the call still counts).
        ctx.ledgers.adjust(key.owner_hash, Adjust { key: Arc::clone(&key.id), day: ev.spend_day, spend_delta: -(cost as i64), calls_delta: 0, forget: None });
        ev.settled_micros = 0;
        ev.spend_delta = -(cost as i64);
    } else {
        ev.settled_micros = cost;
    }
    ev.object_id = peek_object_id(&conn);
    let settle_later = match quote.settle {
        Settle::Usage { vendor, prices, streaming } if resp.status < 400 && cost > 0 => Some((vendor, prices, streaming)),
        _ => None,
    };
    // The settle event starts from the call event; only LLM calls need it.
    let settle_base = settle_later.map(|_| ev.clone());
    let request_id = ev.request_id.clone();
    if shared.durability == Durability::Sync {
        if !ctx.acks.append_durable(&shared.audit, ev).await {
            tracing::error!(request_id = %request_id, "audit event for a forwarded call was not written");
        }
    } else {
        shared.audit.append(ev);
    }
    let settle = AnswerSettle { key: &key, cost, settle_later: settle_later.zip(settle_base), started };
    answer(ctx, head, &vendor, conn, resp, client, &request_id, settle).await
}

/// What settling an answer needs.
struct AnswerSettle<'a> {
    key: &'a VaultKey,
    cost: u64,
    /// The LLM pricing to settle with, and the call event the settle event starts from.
    settle_later: Option<((crate::pricing::LlmVendor, crate::pricing::ModelPrice, bool), AuditEvent)>,
    started: Instant,
}

/// Streams the vendor's answer to the client, tapping it for token usage,
/// then settles the real cost and returns the connection to the pool.
#[allow(clippy::too_many_arguments)]
async fn answer(ctx: &CoreCtx, head: &RequestHead, vendor: &Vendor, mut conn: UpConn, resp: crate::http1::ResponseHead, client: &mut Conn<TcpStream>, request_id: &str, s: AnswerSettle<'_>) -> bool {
    let shared = &ctx.shared;
    let keep_alive = head.keep_alive && head.minor_version == 1;
    let mut headers = route::downstream_headers(&resp.headers);
    headers.push(("x-capgate-request-id", request_id.as_bytes()));
    let (body_len, rechunk) = match resp.framing {
        Framing::None => (Some(0), false),
        Framing::Length(n) => (Some(n as usize), false),
        Framing::Chunked | Framing::UntilClose => (None, head.minor_version == 1),
    };
    let keep_alive = keep_alive && (body_len.is_some() || rechunk);
    let response_head = encode_response_head(resp.status, &resp.reason, &headers, body_len, keep_alive);
    let pricing = s.settle_later.as_ref().map(|(p, _)| *p);
    let mut scanner = pricing.filter(|x| x.2).map(|(v, _, _)| SseUsageScanner::new(v));
    let mut captured: Vec<u8> = Vec::new();
    let mut capture = pricing.is_some_and(|x| !x.2);
    let tap = |piece: &[u8]| {
        if let Some(sc) = scanner.as_mut() {
            sc.feed(piece);
        } else if capture && captured.len() + piece.len() <= USAGE_CAPTURE {
            captured.extend_from_slice(piece);
        } else if capture {
            capture = false; // too long to hold: keep the reservation
            captured = Vec::new();
        }
    };
    let relayed = relay_on(&mut conn, response_head, resp.framing, client, rechunk, shared.response_timeout, tap).await;
    if let Some(((llm, prices, streaming), ev)) = s.settle_later {
        let usage = if streaming { scanner.as_ref().and_then(SseUsageScanner::usage) } else { pricing::usage_from_json(llm, &captured) };
        if let Some(usage) = usage {
            let actual = pricing::cost_from_usage(&prices, &usage);
            let delta = actual as i64 - s.cost as i64;
            ctx.ledgers.adjust(s.key.owner_hash, Adjust { key: Arc::clone(&s.key.id), day: ev.spend_day, spend_delta: delta, calls_delta: 0, forget: None });
            shared.audit.append(AuditEvent {
                ts_ms: clock::now_ms(),
                kind: EventKind::Settle as u8,
                reserved_micros: s.cost,
                settled_micros: actual,
                spend_delta: delta,
                calls_delta: 0,
                latency_us: s.started.elapsed().as_micros() as u64,
                ..ev
            });
        }
    }
    // Bytes the vendor sent past its answer's end would be read as the next
    // answer: such a connection is not reused.
    if relayed.is_ok() && resp.keep_alive && conn.buffered() == 0 {
        ctx.pool.borrow_mut().put(&vendor.name, conn);
    }
    relayed.is_ok() && keep_alive
}

async fn exchange_on(conn: &mut UpConn, request: Vec<u8>, head_request: bool, timeout: std::time::Duration) -> (Result<crate::http1::ResponseHead, Failure>, Vec<u8>) {
    match conn {
        UpConn::Plain(c) => upstream::exchange(c, request, head_request, timeout).await,
        UpConn::Tls(c) => upstream::exchange(c.as_mut(), request, head_request, timeout).await,
    }
}

async fn relay_on<F: FnMut(&[u8])>(conn: &mut UpConn, head: Vec<u8>, framing: Framing, client: &mut Conn<TcpStream>, rechunk: bool, idle: std::time::Duration, tap: F) -> Result<(), crate::http1::conn::RelayError> {
    match conn {
        UpConn::Plain(c) => c.relay_body(head, framing, client, rechunk, idle, tap).await,
        UpConn::Tls(c) => c.relay_body(head, framing, client, rechunk, idle, tap).await,
    }
}

fn peek_object_id(conn: &UpConn) -> String {
    let bytes = match conn {
        UpConn::Plain(c) => c.peek_buffered(),
        UpConn::Tls(c) => c.peek_buffered(),
    };
    pricing::object_id(&bytes[..bytes.len().min(4096)]).unwrap_or_default()
}

/// Answers a refusal (never forwarded) and audits it. Returns whether the
/// connection may continue.
async fn refuse(ctx: &CoreCtx, client: &mut Conn<TcpStream>, ev: &mut AuditEvent, r: &Refusal, shape: BodyShape, keep_alive: bool) -> bool {
    ev.status = r.status;
    ev.decision = Decision::Refused as u8;
    ev.code = r.code.to_string();
    let retry: &[u8] = if r.safe_to_retry() { b"true" } else { b"false" };
    let mut headers = vec![
        ("x-capgate-request-id".to_string(), ev.request_id.as_bytes().to_vec()),
        ("x-should-retry".to_string(), retry.to_vec()),
        ("stripe-should-retry".to_string(), retry.to_vec()),
    ];
    if let Some(secs) = r.retry_after {
        headers.push(("retry-after".to_string(), secs.to_string().into_bytes()));
    }
    ctx.shared.audit.append(ev.clone());
    // Resend's SDK is recognised by route: it sends no telltale header.
    let resend_route = ctx.shared.vendors.get(&ev.vendor).is_some_and(|v| v.kind == VendorKind::Resend);
    let shape = if shape == BodyShape::Flat && resend_route { BodyShape::Resend } else { shape };
    if shape == BodyShape::Stripe {
        headers.push(("request-id".to_string(), ev.request_id.as_bytes().to_vec()));
    }
    let body = r.shaped_body(shape, &ev.request_id);
    client.write_all(simple_response(r.status, "application/json", &headers, &body, keep_alive)).await.is_ok() && keep_alive
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logged_target_is_cut_on_a_character_boundary() {
        assert_eq!(truncated("/v1/ab", 512), "/v1/ab");
        assert_eq!(truncated("/v1/ab", 4), "/v1/");
        // "é" is two bytes: a cut inside it backs off to before it.
        assert_eq!(truncated("/é", 2), "/");
        assert_eq!(truncated("/é", 3), "/é");
    }

    fn fp(key: &str, query: &str, content_type: Option<&str>, body: &[u8]) -> [u8; 16] {
        let params = Params::parse(query, content_type, body).expect("parses");
        fingerprint(key, "POST", "/v1/charges", &params)
    }

    #[test]
    fn fingerprints_ignore_form_order_and_json_key_order() {
        let form = Some("application/x-www-form-urlencoded");
        let a = fp("key_1", "", form, b"amount=100&currency=usd");
        assert_eq!(a, fp("key_1", "", form, b"currency=usd&amount=100"));
        assert_eq!(a, fp("key_1", "", None, b"currency=usd&amount=100"), "the same form without a content type");
        assert_eq!(a, fp("key_1", "", form, b"amount=1%30%30&currency=usd"), "percent-encoding decoded");
        assert_ne!(a, fp("key_1", "", form, b"amount=101&currency=usd"));
        assert_ne!(a, fp("key_2", "", form, b"amount=100&currency=usd"));
        assert_ne!(a, fp("key_1", "expand=x", form, b"amount=100&currency=usd"), "the query counts");
        assert_ne!(a, fp("key_1", "", form, b"amount=100&currency=usd&description=x"));
        assert_ne!(a, fp("key_1", "", form, b"amount=100&currency=usd&description="), "an empty field counts");
        assert_ne!(fp("k", "", form, b"a=bc"), fp("k", "", form, b"ab=c"), "names and values are length-prefixed");
        assert_ne!(fp("k", "", form, b"to[]=a&to[]=b"), fp("k", "", form, b"to[]=b&to[]=a"), "array order counts");
        assert_eq!(fp("k", "", form, b"to[]=a&x=1&to[]=b"), fp("k", "", form, b"x=1&to[]=a&to[]=b"), "other fields may move around an array");
        assert_eq!(fp("k", "", form, b"to[0]=a&to[1]=b"), fp("k", "", form, b"to[1]=b&to[0]=a"), "indexed elements by index");
        // Spellings that parse to the same fields but that a vendor may read differently.
        assert_ne!(fp("k", "", form, b"a=1&a=2"), fp("k", "", form, b"a[]=1&a[]=2"), "a repeated key is not an array");
        assert_ne!(fp("k", "", form, b"to[0]=a&to[1]=b"), fp("k", "", form, b"to[1]=a&to[0]=b"), "indexes count");
        assert_ne!(fp("k", "", form, b"a[]=1"), fp("k", "", form, b"a[0]=1"), "array spellings are kept");
        assert_ne!(fp("k", "amount=1", form, b"amount=2"), fp("k", "amount=3", form, b"amount=2"), "a name in both query and body");
        assert_ne!(fp("k", "a=1", form, b"b=2"), fp("k", "", form, b"a=1&b=2"), "query and body are apart");
        let json = Some("application/json");
        assert_eq!(fp("k", "", json, br#"{"a":1,"b":2}"#), fp("k", "", json, br#"{"b":2, "a":1}"#));
        assert_ne!(fp("k", "", json, br#"{"a":1,"b":2}"#), fp("k", "", json, br#"{"a":1,"b":3}"#));
        assert_ne!(fp("k", "", json, br#"{"a":"1"}"#), fp("k", "", form, b"a=1"), "JSON and form bodies differ");
        let text = Some("text/plain");
        assert_ne!(fp("k", "", text, b"one"), fp("k", "", text, b"two"), "an opaque body counts byte for byte");
        assert_ne!(fp("k", "", text, b"one"), fp("k", "", None, b""));
    }
}
