//! The compaction thread and the spend views it keeps. It tails the audit
//! log in write order from a stored cursor and folds each event into
//! per-day totals, keyed so that every label prefix is one contiguous range
//! (`flowise/` sums every `flowise/...` label with one range scan):
//!
//! ```text
//! day(4) ‖ dim ‖ label ‖ 0x00 ‖ value   →   spend, calls, call events, refused
//! dim: 'l' (value empty) | 'k' (value = key id) | 'v' (value = vendor)
//! ```
//!
//! Each pass writes the new totals and the advanced cursor in one batch, so
//! a crash can neither lose nor double-count an event. The same thread
//! applies retention: audit events past `retention_days` are dropped by
//! range once the views have folded them in; the daily totals stay.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use foldhash::HashMap;
use serde::Serialize;

use crate::audit::event::{decode, parse_storage_key, storage_key, with_spend_fields, AuditEvent, Decision, EventKind, SpendFields};
use crate::clock;
use crate::store::Store;

const CURSOR: &str = "views_cursor";

/// Accumulated figures for one view row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Net spend, micro-dollars (sum of every event's spend delta).
    pub spend_micros: i64,
    /// Calls counted against call limits.
    pub calls: i64,
    /// Call events (allowed and refused).
    pub events: u64,
    /// Refused calls.
    pub refused: u64,
}

impl Totals {
    fn add_event(&mut self, ev: &SpendFields<'_>) {
        self.spend_micros += ev.spend_delta;
        self.calls += i64::from(ev.calls_delta);
        if ev.kind == EventKind::Call as u8 {
            self.events += 1;
            if ev.decision == Decision::Refused as u8 {
                self.refused += 1;
            }
        }
    }

    fn add(&mut self, o: &Totals) {
        self.spend_micros += o.spend_micros;
        self.calls += o.calls;
        self.events += o.events;
        self.refused += o.refused;
    }

    fn encode(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out[..8].copy_from_slice(&self.spend_micros.to_be_bytes());
        out[8..16].copy_from_slice(&self.calls.to_be_bytes());
        out[16..24].copy_from_slice(&self.events.to_be_bytes());
        out[24..].copy_from_slice(&self.refused.to_be_bytes());
        out
    }

    fn decode(v: &[u8]) -> Option<Totals> {
        let f = |r: std::ops::Range<usize>| v.get(r).and_then(|b| <[u8; 8]>::try_from(b).ok());
        Some(Totals {
            spend_micros: i64::from_be_bytes(f(0..8)?),
            calls: i64::from_be_bytes(f(8..16)?),
            events: u64::from_be_bytes(f(16..24)?),
            refused: u64::from_be_bytes(f(24..32)?),
        })
    }
}

/// How `/v1/spend` groups rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// One row per label.
    Label,
    /// One row per key id.
    Key,
    /// One row per UTC day.
    Day,
    /// One row per vendor.
    Vendor,
}

impl GroupBy {
    /// Parses `label|key|day|vendor`.
    pub fn parse(s: &str) -> Option<GroupBy> {
        match s {
            "label" => Some(GroupBy::Label),
            "key" => Some(GroupBy::Key),
            "day" => Some(GroupBy::Day),
            "vendor" => Some(GroupBy::Vendor),
            _ => None,
        }
    }

    fn dim(self) -> u8 {
        match self {
            GroupBy::Label | GroupBy::Day => b'l',
            GroupBy::Key => b'k',
            GroupBy::Vendor => b'v',
        }
    }

    /// The group an event belongs to.
    fn group_of(self, ev: &AuditEvent) -> String {
        match self {
            GroupBy::Label => ev.label.to_string(),
            GroupBy::Key => ev.key_id.to_string(),
            GroupBy::Day => day_string(ev.spend_day),
            GroupBy::Vendor => ev.vendor.to_string(),
        }
    }
}

/// `YYYY-MM-DD` of a UTC day number.
pub fn day_string(day: u32) -> String {
    clock::rfc3339(u64::from(day) * clock::DAY_MS).get(..10).unwrap_or_default().to_string()
}

/// Writes a view row's key into `k` (cleared first).
fn row_key(k: &mut Vec<u8>, day: u32, dim: u8, label: &str, value: &str) {
    k.clear();
    k.extend_from_slice(&day.to_be_bytes());
    k.push(dim);
    k.extend_from_slice(label.as_bytes());
    k.push(0);
    k.extend_from_slice(value.as_bytes());
}

/// Adds an event to the deltas of its three rows (label, key, vendor).
/// `row` is scratch space: a row already in `deltas` costs no allocation.
fn fold_event(deltas: &mut HashMap<Vec<u8>, Totals>, row: &mut Vec<u8>, ev: &SpendFields<'_>) {
    for (dim, value) in [(b'l', ""), (b'k', ev.key_id), (b'v', ev.vendor)] {
        row_key(row, ev.spend_day, dim, ev.label, value);
        match deltas.get_mut(row.as_slice()) {
            Some(t) => t.add_event(ev),
            None => deltas.entry(row.clone()).or_default().add_event(ev),
        }
    }
}

/// The log position the views include (storage key of the last folded event).
///
/// # Errors
/// On storage failure.
pub fn cursor(store: &Store) -> Result<Option<[u8; 16]>, String> {
    Ok(store.meta_get(CURSOR)?.and_then(|v| <[u8; 16]>::try_from(v.as_slice()).ok()))
}

/// Folds up to `max_events` new log events into the views, reading every
/// row it changes from the store. Returns how many. Not while the
/// compaction thread runs: it is the views' only writer (see [`Compactor`]).
///
/// # Errors
/// On storage failure (nothing is half-applied).
pub fn catch_up(store: &Store, max_events: usize) -> Result<usize, String> {
    Compactor::new(0).catch_up(store, max_events)
}

/// Folds the log into the views pass after pass, remembering the totals of
/// up to `max_rows` rows it wrote (all forgotten when full), so a busy row
/// costs no store read per pass. What it remembers is what the store holds:
/// the compaction thread is the views' only writer, and a pass that fails
/// to commit forgets everything.
pub struct Compactor {
    known: HashMap<Vec<u8>, Totals>,
    max_rows: usize,
    /// Test fault: the next pass fails where its commit would.
    fail_next_commit: bool,
}

/// Rows the compaction thread remembers: about 5 MB with typical labels (a
/// row key of ~60 bytes, its totals and the map's slot), 12 MB at most with
/// 256-byte labels.
const REMEMBERED_ROWS: usize = 32_768;

impl Compactor {
    /// A compactor remembering at most `max_rows` rows (0: none).
    pub fn new(max_rows: usize) -> Compactor {
        Compactor { known: HashMap::default(), max_rows, fail_next_commit: false }
    }

    /// Folds up to `max_events` new log events into the views. Returns how many.
    ///
    /// # Errors
    /// On storage failure (nothing is half-applied).
    pub fn catch_up(&mut self, store: &Store, max_events: usize) -> Result<usize, String> {
        let start = match cursor(store)? {
            Some(k) => {
                let (ts, seq) = parse_storage_key(&k).unwrap_or((0, 0));
                storage_key(ts, seq.saturating_add(1))
            }
            None => storage_key(0, 0),
        };
        let mut deltas: HashMap<Vec<u8>, Totals> = HashMap::default();
        let mut last = None;
        let mut n = 0;
        let mut scratch = rkyv::util::AlignedVec::<16>::new();
        let mut row = Vec::new();
        for g in store.audit.range(start..).take(max_events) {
            let (k, v) = g.into_inner().map_err(|e| format!("store: {e}"))?;
            n += 1;
            last = Some(k);
            with_spend_fields(&v, &mut scratch, |ev| fold_event(&mut deltas, &mut row, &ev));
        }
        let Some(last) = last else { return Ok(0) };
        let mut batch = store.db.batch();
        let mut written = Vec::with_capacity(deltas.len());
        for (row, delta) in deltas {
            let mut total = match self.known.get(&row) {
                Some(t) => *t,
                None => store.views.get(&row).map_err(|e| format!("store: {e}"))?.and_then(|v| Totals::decode(&v)).unwrap_or_default(),
            };
            total.add(&delta);
            batch.insert(&store.views, row.as_slice(), total.encode().as_slice());
            written.push((row, total));
        }
        batch.insert(&store.meta, CURSOR, last.to_vec());
        let committed = if std::mem::take(&mut self.fail_next_commit) { Err("injected fault".to_string()) } else { batch.commit().map_err(|e| e.to_string()) };
        if let Err(e) = committed {
            self.known.clear();
            return Err(format!("store: {e}"));
        }
        // Forget everything only when the rows new to the memory do not fit.
        let new_rows = written.iter().filter(|(row, _)| !self.known.contains_key(row)).count();
        if self.known.len() + new_rows > self.max_rows {
            self.known.clear();
        }
        for (row, total) in written {
            if self.known.len() < self.max_rows {
                self.known.insert(row, total);
            }
        }
        Ok(n)
    }
}

/// Answers a spend query from the views: rows for labels starting with
/// `label_prefix` on days `from..=to`, grouped.
///
/// # Errors
/// On storage failure.
pub fn query(store: &Store, label_prefix: &str, from_day: u32, to_day: u32, group_by: GroupBy) -> Result<BTreeMap<String, Totals>, String> {
    let mut out: BTreeMap<String, Totals> = BTreeMap::new();
    for day in from_day..=to_day {
        let mut prefix = Vec::with_capacity(5 + label_prefix.len());
        prefix.extend_from_slice(&day.to_be_bytes());
        prefix.push(group_by.dim());
        prefix.extend_from_slice(label_prefix.as_bytes());
        for g in store.views.prefix(&prefix) {
            let (k, v) = g.into_inner().map_err(|e| format!("store: {e}"))?;
            let Some(t) = Totals::decode(&v) else { continue };
            let rest = k.get(5..).unwrap_or_default();
            let nul = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
            let label = String::from_utf8_lossy(rest.get(..nul).unwrap_or_default());
            let value = String::from_utf8_lossy(rest.get(nul + 1..).unwrap_or_default());
            let group = match group_by {
                GroupBy::Label => label.into_owned(),
                GroupBy::Day => day_string(day),
                GroupBy::Key | GroupBy::Vendor => value.into_owned(),
            };
            out.entry(group).or_default().add(&t);
        }
    }
    Ok(out)
}

/// The same answer computed by scanning the whole audit log (slow; for
/// verification and tests).
///
/// # Errors
/// On storage failure.
pub fn scan(store: &Store, label_prefix: &str, from_day: u32, to_day: u32, group_by: GroupBy) -> Result<BTreeMap<String, Totals>, String> {
    let mut out: BTreeMap<String, Totals> = BTreeMap::new();
    for g in store.audit.iter() {
        let (_, v) = g.into_inner().map_err(|e| format!("store: {e}"))?;
        let Some(ev) = decode(&v) else { continue };
        if ev.label.starts_with(label_prefix) && (from_day..=to_day).contains(&ev.spend_day) {
            out.entry(group_by.group_of(&ev)).or_default().add_event(&ev.spend_fields());
        }
    }
    Ok(out)
}

/// Drops audit events whose log time is before `cutoff_ms`, but never past
/// the views' cursor or the spend checkpoint's (recovery replays the events
/// after it). Returns how many were dropped.
///
/// # Errors
/// On storage failure.
pub fn apply_retention(store: &Store, cutoff_ms: u64) -> Result<usize, String> {
    let Some(cur) = cursor(store)? else { return Ok(0) };
    let after = |k: &[u8]| {
        let (ts, seq) = parse_storage_key(k).unwrap_or((0, 0));
        storage_key(ts, seq.saturating_add(1))
    };
    let mut end = std::cmp::min(storage_key(cutoff_ms, 0), after(&cur));
    if let Some(spend_cursor) = store.meta_get(crate::audit::spend::CURSOR)? {
        end = end.min(after(&spend_cursor));
    }
    let mut dropped = 0;
    loop {
        let keys: Vec<_> = store.audit.range(..end).take(10_000).filter_map(|g| g.key().ok()).collect();
        if keys.is_empty() {
            break;
        }
        let mut b = store.db.batch();
        for k in &keys {
            b.remove(&store.audit, k.clone());
        }
        b.commit().map_err(|e| format!("store: {e}"))?;
        dropped += keys.len();
    }
    // Per-key spend is only needed for today's recovery.
    let keep_from = clock::day_of(clock::now_ms()).saturating_sub(2);
    let old: Vec<_> = store.spend.range(..keep_from.to_be_bytes().to_vec()).filter_map(|g| g.key().ok()).collect();
    if !old.is_empty() {
        let mut b = store.db.batch();
        for k in old {
            b.remove(&store.spend, k);
        }
        b.commit().map_err(|e| format!("store: {e}"))?;
    }
    Ok(dropped)
}

/// Nice value of the compaction thread: it only has to keep up on average.
const BACKGROUND_NICE: i32 = 10;

/// Starts the compaction thread.
///
/// # Errors
/// When the thread cannot be spawned.
pub fn spawn(store: Arc<Store>, retention_days: u32) -> Result<std::thread::JoinHandle<()>, String> {
    std::thread::Builder::new()
        .name("capgate-views".into())
        .spawn(move || {
            crate::runtime::lower_thread_priority(BACKGROUND_NICE);
            let mut last_retention: Option<Instant> = None;
            let mut compactor = Compactor::new(REMEMBERED_ROWS);
            loop {
                // Folding less often aggregates more events per view row per
                // pass (fewer reads and writes); views lag by at most ~0.5 s.
                match compactor.catch_up(&store, 200_000) {
                    Ok(n) if n < 200_000 => std::thread::sleep(Duration::from_millis(500)),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "spend views could not be updated");
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
                if last_retention.is_none_or(|t| t.elapsed() > Duration::from_secs(3600)) {
                    let cutoff = clock::now_ms().saturating_sub(u64::from(retention_days) * clock::DAY_MS);
                    match apply_retention(&store, cutoff) {
                        Ok(n) if n > 0 => tracing::info!(dropped = n, retention_days, "old audit events dropped"),
                        Ok(_) => {}
                        Err(e) => tracing::error!(error = %e, "retention failed"),
                    }
                    last_retention = Some(Instant::now());
                }
            }
        })
        .map_err(|e| format!("cannot start compaction thread: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(ts: u64, label: &str, key: &str, delta: i64, kind: EventKind, refused: bool) -> AuditEvent {
        AuditEvent {
            ts_ms: ts,
            label: label.into(),
            key_id: key.into(),
            vendor: "stripe".into(),
            spend_delta: delta,
            spend_day: clock::day_of(ts),
            kind: kind as u8,
            decision: if refused { Decision::Refused as u8 } else { Decision::Allowed as u8 },
            ..AuditEvent::default()
        }
    }

    fn put(store: &Store, seq: u64, e: &AuditEvent) {
        store.audit.insert(storage_key(e.ts_ms, seq).to_vec(), crate::audit::event::encode(e)).unwrap();
    }

    #[test]
    fn views_agree_with_scan_and_roll_up_prefixes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let t = 20_000 * clock::DAY_MS;
        put(&store, 0, &ev(t, "flowise/a", "key_1", 500, EventKind::Reserve, false));
        put(&store, 1, &ev(t + 1, "flowise/a", "key_1", 0, EventKind::Call, false));
        put(&store, 2, &ev(t + 2, "flowise/b", "key_2", 0, EventKind::Call, true));
        assert_eq!(catch_up(&store, 2).unwrap(), 2, "partial pass");
        put(&store, 3, &ev(t + clock::DAY_MS, "dify/x", "key_3", 70, EventKind::Reserve, false));
        assert_eq!(catch_up(&store, 100).unwrap(), 2);
        assert_eq!(catch_up(&store, 100).unwrap(), 0);
        let d = clock::day_of(t);
        for g in [GroupBy::Label, GroupBy::Key, GroupBy::Day, GroupBy::Vendor] {
            for p in ["", "flowise/", "flowise/a", "dify"] {
                assert_eq!(query(&store, p, d, d + 1, g).unwrap(), scan(&store, p, d, d + 1, g).unwrap(), "{g:?} {p}");
            }
        }
        let by_day = query(&store, "flowise/", d, d + 1, GroupBy::Day).unwrap();
        let total = by_day.values().next().unwrap();
        assert_eq!((total.spend_micros, total.events, total.refused), (500, 2, 1));
    }

    #[test]
    fn a_pass_that_fails_to_commit_forgets_its_rows_and_the_next_folds_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let t = 20_000 * clock::DAY_MS;
        let d = clock::day_of(t);
        let mut c = Compactor::new(100);
        put(&store, 0, &ev(t, "a/1", "k1", 100, EventKind::Reserve, false));
        assert_eq!(c.catch_up(&store, 100).unwrap(), 1);
        assert_eq!(c.known.len(), 3);
        let before = query(&store, "", d, d, GroupBy::Label).unwrap();
        let cursor_before = cursor(&store).unwrap();

        put(&store, 1, &ev(t + 1, "a/1", "k1", 50, EventKind::Reserve, false));
        put(&store, 2, &ev(t + 2, "b/1", "k2", 7, EventKind::Call, true));
        c.fail_next_commit = true;
        assert!(c.catch_up(&store, 100).is_err());
        assert!(c.known.is_empty(), "a failed pass forgets every remembered row");
        assert_eq!(query(&store, "", d, d, GroupBy::Label).unwrap(), before, "nothing of the failed pass is in the views");
        assert_eq!(cursor(&store).unwrap(), cursor_before, "the cursor stays where the last good pass left it");

        assert_eq!(c.catch_up(&store, 100).unwrap(), 2, "the failed events are folded on the next pass");
        assert_eq!(c.catch_up(&store, 100).unwrap(), 0);
        for g in [GroupBy::Label, GroupBy::Key, GroupBy::Vendor, GroupBy::Day] {
            assert_eq!(query(&store, "", d, d, g).unwrap(), scan(&store, "", d, d, g).unwrap(), "{g:?}");
        }
        let rows = query(&store, "", d, d, GroupBy::Label).unwrap();
        assert_eq!(rows["a/1"].spend_micros, 150, "counted once (a pass folded twice would give 200)");
        assert_eq!((rows["b/1"].events, rows["b/1"].refused), (1, 1));
    }

    #[test]
    fn a_compactor_keeps_within_its_rows_and_its_views_exact() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let t = 20_000 * clock::DAY_MS;
        // An event touches 3 rows of its label (label, key, vendor).
        let mut c = Compactor::new(6);
        // (label, key, rows remembered after the pass)
        let passes = [
            ("a/1", "k1", 3),
            ("a/2", "k2", 6),
            ("a/1", "k1", 6), // all known: nothing is forgotten
            ("b/1", "k3", 3), // three new rows do not fit: forget all, keep the new
            ("a/2", "k2", 6),
        ];
        for (seq, (label, key, remembered)) in passes.into_iter().enumerate() {
            put(&store, seq as u64, &ev(t + seq as u64, label, key, 100, EventKind::Reserve, false));
            assert_eq!(c.catch_up(&store, 100).unwrap(), 1);
            assert_eq!(c.known.len(), remembered, "pass {seq}");
        }
        let d = clock::day_of(t);
        for g in [GroupBy::Label, GroupBy::Key, GroupBy::Vendor] {
            assert_eq!(query(&store, "", d, d, g).unwrap(), scan(&store, "", d, d, g).unwrap(), "{g:?}");
        }
        assert_eq!(query(&store, "a/2", d, d, GroupBy::Label).unwrap()["a/2"].spend_micros, 200);
    }

    #[test]
    fn retention_drops_old_events_only_after_folding_and_keeps_totals() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let t = 20_000 * clock::DAY_MS;
        put(&store, 0, &ev(t, "a", "k", 10, EventKind::Reserve, false));
        put(&store, 1, &ev(t + 10 * clock::DAY_MS, "a", "k", 20, EventKind::Reserve, false));
        assert_eq!(apply_retention(&store, t + clock::DAY_MS).unwrap(), 0, "nothing folded yet");
        catch_up(&store, 100).unwrap();
        assert_eq!(apply_retention(&store, t + clock::DAY_MS).unwrap(), 1);
        assert_eq!(store.audit.iter().count(), 1);
        let d = clock::day_of(t);
        assert_eq!(query(&store, "", d, d + 10, GroupBy::Label).unwrap()["a"].spend_micros, 30, "views keep daily totals");
    }

    #[test]
    fn retention_keeps_the_events_the_spend_checkpoint_has_not_included() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let t = 20_000 * clock::DAY_MS;
        for seq in 0..3 {
            put(&store, seq, &ev(t + seq, "a", "k", 10, EventKind::Reserve, false));
        }
        catch_up(&store, 100).unwrap();
        // The spend rows include only the first event: recovery replays the rest.
        store.meta.insert(crate::audit::spend::CURSOR, storage_key(t, 0).to_vec()).unwrap();
        assert_eq!(apply_retention(&store, t + 10 * clock::DAY_MS).unwrap(), 1, "only the checkpointed event goes");
        assert_eq!(store.audit.iter().count(), 2);
    }
}
