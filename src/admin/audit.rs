//! `GET /v1/audit`: audit events filtered by key, label prefix, vendor,
//! decision, kind and time, oldest first, with a cursor for the next page;
//! `GET /v1/audit/export` streams the same selection as NDJSON or CSV.

use std::collections::HashMap;

use serde_json::json;

use super::{AdminState, Body, Reply};
use crate::audit::export::{export_stream, ExportFormat};
use crate::audit::query::{parse_cursor, run, AuditQuery};
use crate::audit::{Decision, EventKind};
use crate::clock;
use crate::error::Refusal;

const MAX_LIMIT: usize = 1000;

fn time_param(q: &HashMap<String, String>, name: &str) -> Result<Option<u64>, Refusal> {
    q.get(name)
        .map(|s| clock::parse_time(s).ok_or_else(|| Refusal::bad_request("invalid_parameter", format!("{name}: expected RFC 3339 time or Unix milliseconds, got {s:?}"))))
        .transpose()
}

/// Runs an audit query from URL parameters.
///
/// # Errors
/// 400 for bad parameters; 500 on store failure.
pub fn query(state: &AdminState, q: &HashMap<String, String>) -> Result<Reply, Refusal> {
    let limit = match q.get("limit") {
        Some(s) => s.parse::<usize>().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| Refusal::bad_request("invalid_parameter", format!("limit: expected 1..={MAX_LIMIT}")))?,
        None => 100,
    };
    let aq = filters(q, limit)?;
    let (events, next) = run(&state.store, &aq).map_err(Refusal::internal)?;
    let data: Vec<_> = events.iter().map(|e| e.view()).collect();
    Ok(Reply::json(200, &json!({ "data": data, "count": data.len(), "next_cursor": next })))
}

/// `GET /v1/audit/export?format=ndjson|csv&…`: every matching event,
/// streamed in log order without holding the range in memory.
///
/// # Errors
/// 400 for bad parameters.
pub fn export(state: &AdminState, q: &HashMap<String, String>) -> Result<Reply, Refusal> {
    let format = match q.get("format").map(String::as_str).unwrap_or("ndjson") {
        "ndjson" => ExportFormat::Ndjson,
        "csv" => ExportFormat::Csv,
        other => return Err(Refusal::bad_request("invalid_parameter", format!("format: expected ndjson or csv, got {other:?}"))),
    };
    let aq = filters(q, usize::MAX)?;
    let content_type = match format {
        ExportFormat::Ndjson => "application/x-ndjson",
        ExportFormat::Csv => "text/csv",
    };
    Ok(Reply { status: 200, content_type, body: Body::Stream(export_stream(&state.store, aq, format)) })
}

/// The filters shared by `/v1/audit` and `/v1/audit/export`.
///
/// # Errors
/// 400 naming the bad parameter.
pub fn filters(q: &HashMap<String, String>, limit: usize) -> Result<AuditQuery, Refusal> {
    let bad = |name: &str, want: &str| Refusal::bad_request("invalid_parameter", format!("{name}: {want}"));
    let after = q.get("cursor").map(|c| parse_cursor(c).ok_or_else(|| bad("cursor", "use the next_cursor value of the previous page"))).transpose()?;
    let decision = match q.get("decision").map(String::as_str) {
        None => None,
        Some("allowed") => Some(Decision::Allowed as u8),
        Some("refused") => Some(Decision::Refused as u8),
        Some(_) => return Err(bad("decision", "expected allowed or refused")),
    };
    let kind = match q.get("kind").map(String::as_str) {
        None => None,
        Some("call") => Some(EventKind::Call as u8),
        Some("settle") => Some(EventKind::Settle as u8),
        Some("reserve") => Some(EventKind::Reserve as u8),
        Some(_) => return Err(bad("kind", "expected call, settle or reserve")),
    };
    Ok(AuditQuery {
        key_id: q.get("key_id").cloned(),
        label_prefix: q.get("label_prefix").cloned(),
        vendor: q.get("vendor").cloned(),
        decision,
        kind,
        since_ms: time_param(q, "since")?,
        until_ms: time_param(q, "until")?,
        after,
        limit,
    })
}
