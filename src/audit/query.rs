//! Audit queries over the write-ordered event keyspace: filters (key id,
//! label prefix, vendor, decision, kind, time range on the event's own
//! time), oldest first, with a resumable cursor. The same lazy iterator
//! serves paged queries and streamed exports, so neither holds a range in
//! memory.

use super::event::{decode, parse_storage_key, storage_key, AuditEvent};
use crate::store::Store;

/// How much later than its own time an event may land in the log (a call
/// is logged when its answer arrives; the response timeout bounds that).
pub const LATE_SLACK_MS: u64 = 15 * 60 * 1000;

/// A query's filters.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only this key.
    pub key_id: Option<String>,
    /// Only labels starting with this.
    pub label_prefix: Option<String>,
    /// Only this vendor.
    pub vendor: Option<String>,
    /// Only this decision (0 allowed, 1 refused).
    pub decision: Option<u8>,
    /// Only this event kind.
    pub kind: Option<u8>,
    /// Event time from (inclusive), Unix ms.
    pub since_ms: Option<u64>,
    /// Event time until (exclusive), Unix ms.
    pub until_ms: Option<u64>,
    /// Resume after this storage key (a cursor).
    pub after: Option<[u8; 16]>,
    /// Most events returned by [`run`].
    pub limit: usize,
}

impl AuditQuery {
    fn keeps(&self, ev: &AuditEvent) -> bool {
        self.key_id.as_ref().is_none_or(|k| *ev.key_id == **k)
            && self.label_prefix.as_ref().is_none_or(|p| ev.label.starts_with(p.as_str()))
            && self.vendor.as_ref().is_none_or(|v| *ev.vendor == **v)
            && self.decision.is_none_or(|d| ev.decision == d)
            && self.kind.is_none_or(|k| ev.kind == k)
            && self.since_ms.is_none_or(|t| ev.ts_ms >= t)
            && self.until_ms.is_none_or(|t| ev.ts_ms < t)
    }

    /// Matching events with their storage keys, lazily, in log order.
    pub fn into_rows(self, store: &Store) -> impl Iterator<Item = Result<([u8; 16], AuditEvent), String>> + 'static {
        let start = match self.after {
            Some(k) => {
                let (ts, seq) = parse_storage_key(&k).unwrap_or((0, 0));
                storage_key(ts, seq.saturating_add(1))
            }
            None => storage_key(self.since_ms.unwrap_or(0), 0),
        };
        let end = storage_key(self.until_ms.map_or(u64::MAX, |t| t.saturating_add(LATE_SLACK_MS)), 0);
        store.audit.range(start..end).filter_map(move |g| {
            let (k, v) = match g.into_inner() {
                Ok(kv) => kv,
                Err(e) => return Some(Err(format!("store: {e}"))),
            };
            let key: [u8; 16] = k.as_ref().try_into().ok()?;
            let ev = decode(&v)?;
            self.keeps(&ev).then_some(Ok((key, ev)))
        })
    }
}

/// Encodes a cursor for clients.
pub fn cursor_string(key: &[u8; 16]) -> String {
    let (ts, seq) = parse_storage_key(key).unwrap_or((0, 0));
    format!("{ts}-{seq}")
}

/// Parses a client cursor.
pub fn parse_cursor(s: &str) -> Option<[u8; 16]> {
    let (a, b) = s.split_once('-')?;
    Some(storage_key(a.parse().ok()?, b.parse().ok()?))
}

/// Runs a query. Returns up to `limit` events and, when more remain, the
/// cursor to resume from.
///
/// # Errors
/// On storage I/O failure.
pub fn run(store: &Store, q: &AuditQuery) -> Result<(Vec<AuditEvent>, Option<String>), String> {
    let mut out = Vec::new();
    let mut last = None;
    for item in q.clone().into_rows(store) {
        let (key, ev) = item?;
        if out.len() == q.limit {
            return Ok((out, last.as_ref().map(cursor_string)));
        }
        last = Some(key);
        out.push(ev);
    }
    Ok((out, None))
}
