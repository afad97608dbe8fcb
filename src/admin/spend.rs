//! `GET /v1/spend?label_prefix=&from=&to=&group_by=label|key|day|vendor`:
//! spend answered from the compaction thread's views (never by scanning
//! the log), with the log position the views include.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::{AdminState, Reply};
use crate::audit::query::cursor_string;
use crate::clock;
use crate::error::{usd, Refusal};
use crate::views::{self, GroupBy};

/// Most days one query may span.
const MAX_DAYS: u32 = 400;

fn day_param(q: &HashMap<String, String>, name: &str, default: u32) -> Result<u32, Refusal> {
    match q.get(name) {
        None => Ok(default),
        Some(s) => {
            let ms = if s.len() == 10 { clock::parse_time(&format!("{s}T00:00:00Z")) } else { clock::parse_time(s) };
            ms.map(clock::day_of).ok_or_else(|| Refusal::bad_request("invalid_parameter", format!("{name}: expected a date like 2026-11-23, an RFC 3339 time or Unix ms")))
        }
    }
}

/// Runs a spend query.
///
/// # Errors
/// 400 for bad parameters; 500 on storage failure.
pub fn query(state: &AdminState, q: &HashMap<String, String>) -> Result<Reply, Refusal> {
    let today = clock::day_of(clock::now_ms());
    let from = day_param(q, "from", today)?;
    let to = day_param(q, "to", today)?;
    if to < from || to - from >= MAX_DAYS {
        return Err(Refusal::bad_request("invalid_parameter", format!("from..to must be a range of 1 to {MAX_DAYS} days")));
    }
    let group_by = match q.get("group_by") {
        None => GroupBy::Label,
        Some(g) => GroupBy::parse(g).ok_or_else(|| Refusal::bad_request("invalid_parameter", "group_by: expected label, key, day or vendor"))?,
    };
    let prefix = q.get("label_prefix").map(String::as_str).unwrap_or("");
    let rows = views::query(&state.store, prefix, from, to, group_by).map_err(Refusal::internal)?;
    let as_of = views::cursor(&state.store).map_err(Refusal::internal)?;
    let mut total = views::Totals::default();
    let data: Vec<Value> = rows
        .iter()
        .map(|(group, t)| {
            total.spend_micros += t.spend_micros;
            total.calls += t.calls;
            total.events += t.events;
            total.refused += t.refused;
            json!({"group": group, "spend_usd": usd(t.spend_micros.max(0) as u64), "spend_micros": t.spend_micros, "calls": t.calls, "events": t.events, "refused": t.refused})
        })
        .collect();
    Ok(Reply::json(
        200,
        &json!({
            "group_by": q.get("group_by").map(String::as_str).unwrap_or("label"),
            "label_prefix": prefix,
            "from": views::day_string(from),
            "to": views::day_string(to),
            "data": data,
            "total": {"spend_usd": usd(total.spend_micros.max(0) as u64), "spend_micros": total.spend_micros, "calls": total.calls, "events": total.events, "refused": total.refused},
            "as_of_cursor": as_of.as_ref().map(cursor_string),
        }),
    ))
}
