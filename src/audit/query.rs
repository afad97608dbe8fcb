//! Audit queries over the time-ordered event keyspace: filter by key id,
//! label prefix and time range, oldest first, with a resumable cursor.

use super::event::{decode, storage_key, AuditEvent};
use crate::store::Store;

/// A query's filters.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only this key.
    pub key_id: Option<String>,
    /// Only labels starting with this.
    pub label_prefix: Option<String>,
    /// From this time (inclusive), Unix ms.
    pub since_ms: Option<u64>,
    /// Until this time (exclusive), Unix ms.
    pub until_ms: Option<u64>,
    /// Resume after this `(ts_ms, seq)`.
    pub after: Option<(u64, u64)>,
    /// Most events returned.
    pub limit: usize,
}

impl AuditQuery {
    fn keeps(&self, ev: &AuditEvent) -> bool {
        self.key_id.as_ref().is_none_or(|k| &ev.key_id == k)
            && self.label_prefix.as_ref().is_none_or(|p| ev.label.starts_with(p.as_str()))
    }
}

/// Runs a query. Returns matching events and, when the limit cut the
/// answer short, the cursor to resume from.
///
/// # Errors
/// On storage I/O failure.
pub fn run(store: &Store, q: &AuditQuery) -> Result<(Vec<AuditEvent>, Option<(u64, u64)>), String> {
    let start = match q.after {
        Some((ts, seq)) => storage_key(ts, seq.saturating_add(1)),
        None => storage_key(q.since_ms.unwrap_or(0), 0),
    };
    let end = storage_key(q.until_ms.unwrap_or(u64::MAX), 0);
    let mut out = Vec::new();
    for g in store.audit.range(start..end) {
        let (_, v) = g.into_inner().map_err(|e| format!("store: {e}"))?;
        let Some(ev) = decode(&v) else { continue };
        if !q.keeps(&ev) {
            continue;
        }
        if out.len() == q.limit {
            let cursor = out.last().map(|e: &AuditEvent| (e.ts_ms, e.seq));
            return Ok((out, cursor));
        }
        out.push(ev);
    }
    Ok((out, None))
}
