//! `GET /v1/audit`: audit events filtered by key, label prefix and time,
//! oldest first, with a cursor for the next page.

use std::collections::HashMap;

use serde_json::json;

use super::{AdminState, Reply};
use crate::audit::query::{run, AuditQuery};
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
    let after = match q.get("cursor") {
        Some(c) => {
            let parsed = c.split_once('-').and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
            Some(parsed.ok_or_else(|| Refusal::bad_request("invalid_parameter", "cursor: use the next_cursor value of the previous page"))?)
        }
        None => None,
    };
    let aq = AuditQuery {
        key_id: q.get("key_id").cloned(),
        label_prefix: q.get("label_prefix").cloned(),
        since_ms: time_param(q, "since")?,
        until_ms: time_param(q, "until")?,
        after,
        limit,
    };
    let (events, next) = run(&state.store, &aq).map_err(Refusal::internal)?;
    let data: Vec<_> = events.iter().map(|e| e.view()).collect();
    Ok(Reply::json(200, &json!({ "data": data, "count": data.len(), "next_cursor": next.map(|(t, s)| format!("{t}-{s}")) })))
}
