//! Per-day, per-key spend totals as the store keeps them: the writer
//! checkpoints the totals it changed into the `spend` keyspace about once a
//! second, together with a cursor (the storage key of the last event the
//! rows include) in the same fjall batch. Events are the truth; the rows
//! are a checkpoint of them. Reading a day's totals is the rows plus every
//! event logged after the cursor, so nothing written since the checkpoint
//! (or before a crash) is missed. A data dir written before checkpoints
//! has rows but no cursor: its rows were written with every batch, so they
//! are complete as they are.

use std::collections::{HashMap, HashSet};
use std::ops::Bound;

use super::event::with_spend_fields;
use crate::store::{Store, StoreResult};

/// `meta` key of the spend checkpoint's cursor.
pub const CURSOR: &str = "spend_cursor";

/// Spend in micro-dollars and call count, by key id.
pub type DayTotals = HashMap<String, (u64, u32)>;

/// Adds one event's deltas to a running total, as the writer does.
pub(super) fn apply(total: &mut (u64, u32), spend_delta: i64, calls_delta: i32) {
    total.0 = total.0.saturating_add_signed(spend_delta);
    total.1 = total.1.saturating_add_signed(calls_delta);
}

/// Whether an event moves any key's totals.
pub(super) fn counts(key_id: &str, spend_delta: i64, calls_delta: i32) -> bool {
    !key_id.is_empty() && (spend_delta != 0 || calls_delta != 0)
}

/// Totals read back from the store.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Every key's totals on each day asked for, and on each day an event
    /// after the checkpoint counts against.
    pub totals: HashMap<u32, DayTotals>,
    /// The keys, by day, that events after the checkpoint changed: the next
    /// checkpoint must write them, since it moves the cursor past those events.
    pub replayed: HashMap<u32, HashSet<String>>,
}

fn load_rows(store: &Store, totals: &mut HashMap<u32, DayTotals>, day: u32) -> StoreResult<()> {
    let day_totals = totals.entry(day).or_default();
    for (id, micros, calls) in store.spend_rows_for_day(day)? {
        day_totals.insert(id, (micros, calls));
    }
    Ok(())
}

/// Every key's totals on each of `days` (and on any day the events after
/// the checkpoint touch): the checkpointed rows plus those events.
///
/// # Errors
/// On I/O failure or a corrupt row or event.
pub fn recover(store: &Store, days: &[u32]) -> StoreResult<Recovered> {
    let mut out = Recovered::default();
    for &day in days {
        load_rows(store, &mut out.totals, day)?;
    }
    let Some(cursor) = store.meta_get(CURSOR)? else {
        return Ok(out);
    };
    let mut scratch = rkyv::util::AlignedVec::<16>::new();
    for g in store.audit.range::<Vec<u8>, _>((Bound::Excluded(cursor), Bound::Unbounded)) {
        let v = g.value().map_err(|e| format!("store: {e}"))?;
        let counted = with_spend_fields(&v, &mut scratch, |f| counts(f.key_id, f.spend_delta, f.calls_delta).then(|| (f.spend_day, f.key_id.to_string(), f.spend_delta, f.calls_delta))).ok_or("store: corrupt audit event")?;
        let Some((day, key_id, spend_delta, calls_delta)) = counted else { continue };
        if !out.totals.contains_key(&day) {
            load_rows(store, &mut out.totals, day)?;
        }
        apply(out.totals.entry(day).or_default().entry(key_id.clone()).or_default(), spend_delta, calls_delta);
        out.replayed.entry(day).or_default().insert(key_id);
    }
    Ok(out)
}

/// Every key's spend and call count on `day`, sorted by key id.
///
/// # Errors
/// On I/O failure or a corrupt row or event.
pub fn spend_for_day(store: &Store, day: u32) -> StoreResult<Vec<(String, u64, u32)>> {
    let mut rows: Vec<(String, u64, u32)> = recover(store, &[day])?.totals.remove(&day).unwrap_or_default().into_iter().map(|(id, (m, c))| (id, m, c)).collect();
    rows.sort_unstable();
    Ok(rows)
}
