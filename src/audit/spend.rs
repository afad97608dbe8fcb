//! Per-day, per-key spend totals as the store keeps them: the writer
//! checkpoints the totals it changed into the `spend` keyspace about once a
//! second, together with a cursor (the storage key of the last event the
//! rows include) in the same fjall batch. Events are the truth; the rows
//! are a checkpoint of them. Reading a day's totals is the rows plus every
//! event logged after the cursor, so nothing written since the checkpoint
//! (or before a crash) is missed. A data dir written before checkpoints
//! has rows but no cursor: its rows were written with every batch, so they
//! are complete as they are. (The reverse does not hold: a capgate from
//! before checkpoints ignores the cursor, so going back to one after this
//! version ran over-counts the events logged after the last checkpoint.)

use foldhash::{HashMap, HashSet};
use std::ops::Bound;

use fjall::{Readable, Snapshot};

use super::event::with_spend_fields;
use crate::store::{err, parse_spend_row, Store, StoreResult};

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

fn load_rows(store: &Store, snap: &Snapshot, totals: &mut HashMap<u32, DayTotals>, day: u32) -> StoreResult<()> {
    let day_totals = totals.entry(day).or_default();
    for g in snap.prefix(&store.spend, day.to_be_bytes()) {
        let (id, micros, calls) = parse_spend_row(g.into_inner().map_err(err)?)?;
        day_totals.insert(id, (micros, calls));
    }
    Ok(())
}

/// Every key's totals on each of `days`: the checkpointed rows plus the
/// events after the checkpoint. Rows, cursor and events are read from one
/// snapshot, so a checkpoint committing meanwhile cannot skew them.
///
/// # Errors
/// On I/O failure or a corrupt row or event.
pub fn recover(store: &Store, days: &[u32]) -> StoreResult<Recovered> {
    recover_days(store, days, false)
}

/// [`recover`], plus every other day the events after the checkpoint touch:
/// a starting writer needs them all, since its first checkpoint moves the
/// cursor past those events.
///
/// # Errors
/// As [`recover`].
pub fn recover_for_writer(store: &Store, days: &[u32]) -> StoreResult<Recovered> {
    recover_days(store, days, true)
}

fn recover_days(store: &Store, days: &[u32], every_touched_day: bool) -> StoreResult<Recovered> {
    let snap = store.db.snapshot();
    let mut out = Recovered::default();
    for &day in days {
        load_rows(store, &snap, &mut out.totals, day)?;
    }
    let Some(cursor) = snap.get(&store.meta, CURSOR).map_err(err)? else {
        return Ok(out);
    };
    let mut scratch = rkyv::util::AlignedVec::<16>::new();
    for g in snap.range::<&[u8], _>(&store.audit, (Bound::Excluded(&*cursor), Bound::Unbounded)) {
        let (_, v) = g.into_inner().map_err(err)?;
        let counted = with_spend_fields(&v, &mut scratch, |f| counts(f.key_id, f.spend_delta, f.calls_delta).then(|| (f.spend_day, f.key_id.to_string(), f.spend_delta, f.calls_delta))).ok_or("store: corrupt audit event")?;
        let Some((day, key_id, spend_delta, calls_delta)) = counted else { continue };
        if !out.totals.contains_key(&day) {
            if !every_touched_day {
                continue;
            }
            load_rows(store, &snap, &mut out.totals, day)?;
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
    Ok(recover(store, &[day])?.totals.get(&day).map(rows_of).unwrap_or_default())
}

/// A day's totals as `(key id, micro-dollars, calls)` rows, by key id.
pub fn rows_of(day: &DayTotals) -> Vec<(String, u64, u32)> {
    let mut rows: Vec<(String, u64, u32)> = day.iter().map(|(id, &(m, c))| (id.clone(), m, c)).collect();
    rows.sort_unstable();
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::{encode, storage_key};
    use crate::audit::{AuditEvent, EventKind};
    use crate::store::{spend_key, spend_value};

    #[test]
    fn only_a_starting_writer_reads_the_other_days_the_tail_touches() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (yesterday, today) = (20_000u32, 20_001u32);
        store.spend.insert(spend_key(yesterday, "key_a"), spend_value(100, 1).to_vec()).unwrap();
        store.meta.insert(CURSOR, storage_key(1, 0).to_vec()).unwrap();
        let late = AuditEvent { ts_ms: 2, seq: 1, key_id: "key_a".into(), spend_day: yesterday, kind: EventKind::Settle as u8, spend_delta: 5, ..AuditEvent::default() };
        store.audit.insert(storage_key(2, 1), encode(&late)).unwrap();
        let r = recover(&store, &[today]).unwrap();
        assert_eq!(r.totals.keys().collect::<Vec<_>>(), vec![&today], "a one-day read leaves other days alone");
        let w = recover_for_writer(&store, &[today]).unwrap();
        assert_eq!(w.totals[&yesterday]["key_a"], (105, 1));
        assert!(w.replayed[&yesterday].contains("key_a"));
    }
}
