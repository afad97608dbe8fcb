//! The audit writer thread. Cores hand events to an [`AuditSink`] (a
//! crossbeam channel); one thread drains it in batches, assigns sequence
//! numbers, writes events in one fjall batch (about once a second with a
//! checkpoint of the spend totals they changed, see [`super::spend`]), and
//! group-commits: in `Sync` mode the batch is fsynced before any
//! waiting caller is acknowledged (proxy cores once per batch, through
//! [`super::acks`]). It holds events nobody waits on until the next fsync,
//! so an interval is one batch, and a call answered by then costs one
//! record, not two (see `Pending`). Write
//! failures flip the sink unhealthy so the proxy fails closed on
//! spend-carrying calls.

use foldhash::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use fjall::PersistMode;
use futures_channel::oneshot;

use super::acks::AckBoard;
use super::event::{storage_key, AuditEvent, Encoder, EventKind};
#[cfg(test)]
use super::event::encode;
use super::spend::{self, DayTotals};
use crate::clock;
use crate::store::{spend_key, spend_value, Store};

/// When an appended event counts as durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync each batch before acknowledging (zero loss for acknowledged calls).
    Sync,
    /// fsync at most this often; a crash loses at most this window. Events
    /// are written at the fsync, so a storage failure also shows (the sink
    /// turns unhealthy) up to one interval late.
    Interval(Duration),
}

struct Msg {
    event: AuditEvent,
    ack: Option<Ack>,
}

/// Who waits for an event to be durable.
enum Ack {
    /// One waiter, told on its own channel.
    Oneshot(oneshot::Sender<bool>),
    /// A proxy core, told once per batch for all of its tickets.
    Core(CoreTicket),
}

/// One event a proxy core waits on. A ticket dropped unanswered (the
/// writer thread died, or the channel closed) reports failure, so the core
/// fails closed instead of waiting forever.
struct CoreTicket {
    board: Arc<AckBoard>,
    ticket: u64,
    answered: bool,
}

impl Drop for CoreTicket {
    fn drop(&mut self) {
        if !self.answered {
            self.board.publish(self.ticket, false);
        }
    }
}

/// Where cores send events. Cheap to clone.
#[derive(Clone)]
pub struct AuditSink {
    tx: Sender<Msg>,
    healthy: Arc<AtomicBool>,
    /// An interval-mode writer's thread, woken when somebody waits on an
    /// event (it otherwise looks only every [`POLL`]).
    writer: Option<std::thread::Thread>,
}

impl AuditSink {
    /// Queues an event without waiting.
    pub fn append(&self, event: AuditEvent) {
        if self.tx.send(Msg { event, ack: None }).is_err() {
            self.healthy.store(false, Ordering::Relaxed);
        }
    }

    /// Queues an event; the receiver yields `true` once it is durable
    /// (per the configured [`Durability`]) and `false` if it could not be written.
    pub fn append_acked(&self, event: AuditEvent) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        if let Err(e) = self.tx.send(Msg { event, ack: Some(Ack::Oneshot(tx)) }) {
            self.healthy.store(false, Ordering::Relaxed);
            if let Some(Ack::Oneshot(ack)) = e.into_inner().ack {
                let _ = ack.send(false);
            }
        }
        self.wake_writer();
        rx
    }

    /// Queues an event for a core's [`super::acks::CoreAcks`]: the writer
    /// publishes `ticket`'s outcome on `board` with the rest of its batch.
    pub(super) fn append_for_core(&self, event: AuditEvent, board: Arc<AckBoard>, ticket: u64) {
        // On a closed channel the ticket is dropped unanswered: it reports failure.
        if self.tx.send(Msg { event, ack: Some(Ack::Core(CoreTicket { board, ticket, answered: false })) }).is_err() {
            self.healthy.store(false, Ordering::Relaxed);
        }
        self.wake_writer();
    }

    fn wake_writer(&self) {
        if let Some(w) = &self.writer {
            w.unpark();
        }
    }

    /// A sink whose writer is gone (its channel is closed), for tests of
    /// the fail-closed paths.
    #[cfg(test)]
    pub(crate) fn closed_for_tests() -> AuditSink {
        let (tx, _) = crossbeam_channel::unbounded();
        AuditSink { tx, healthy: Arc::new(AtomicBool::new(true)), writer: None }
    }

    /// Whether the last write succeeded.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}

const MAX_BATCH: usize = 4096;
/// Nice value of an interval-mode writer (a sync-mode writer keeps the
/// proxy's priority: answers wait on it).
const INTERVAL_WRITER_NICE: i32 = 5;
/// Most events an interval-mode writer holds before writing them (without
/// an fsync) ahead of its interval.
const MAX_PENDING: usize = 16_384;
/// How often an interval-mode writer looks for new events.
const POLL: Duration = Duration::from_millis(1);
/// How often the spend totals are checkpointed. Between checkpoints a batch
/// writes only its events (a spend row is a random insert into fjall's
/// memtable, the writer's dearest write); recovery adds the events since.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// A started writer.
pub struct Started {
    /// Where cores send events.
    pub sink: AuditSink,
    /// The writer thread; it exits (after a final fsync) once every sink
    /// clone is dropped.
    pub handle: std::thread::JoinHandle<()>,
    /// The day the writer started on, and every key's spend and calls that
    /// day as it recovered them from the store (by key id): what the
    /// ledgers start from, so the store is read once.
    pub today: (u32, Vec<(String, u64, u32)>),
}

/// Starts the writer thread.
///
/// # Errors
/// When the thread cannot be spawned or the store cannot be read.
pub fn spawn(store: Arc<Store>, durability: Durability) -> Result<Started, String> {
    spawn_with_checkpoints(store, durability, CHECKPOINT_EVERY)
}

/// [`spawn`], checkpointing the spend totals every `every` instead of every
/// second (the first batch always checkpoints). Tests use it to make
/// recovery replay, or not replay, the events since the checkpoint.
///
/// # Errors
/// As [`spawn`].
pub fn spawn_with_checkpoints(store: Arc<Store>, durability: Durability, every: Duration) -> Result<Started, String> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let healthy = Arc::new(AtomicBool::new(true));
    let mut writer = Writer::new(store, durability)?;
    // Rows straight from the recovered totals: no copy of the whole day's map.
    let today = (writer.started_day, writer.totals.get(&writer.started_day).map(spend::rows_of).unwrap_or_default());
    writer.checkpoint_every = every;
    let h = Arc::clone(&healthy);
    let handle = std::thread::Builder::new()
        .name("capgate-audit".into())
        .spawn(move || {
            if let Durability::Interval(_) = durability {
                // Nobody waits on it: let proxy workers sharing its core go first.
                crate::runtime::lower_thread_priority(INTERVAL_WRITER_NICE);
            }
            writer.run(&rx, &h)
        })
        .map_err(|e| format!("cannot start audit writer: {e}"))?;
    // A sync-mode writer blocks on the channel itself: nothing to wake.
    let writer = matches!(durability, Durability::Interval(_)).then(|| handle.thread().clone());
    Ok(Started { sink: AuditSink { tx, healthy, writer }, handle, today })
}

struct Writer {
    store: Arc<Store>,
    durability: Durability,
    next_seq: u64,
    /// Log-order timestamp of the last stored event: storage keys never go
    /// backwards, so a tailing reader (the view compactor) never misses one.
    last_key_ts: u64,
    /// Test fault: fail every batch once this many events were written
    /// (`CAPGATE_FAULT_AUDIT_FAIL_AFTER`).
    fail_after: Option<u64>,
    /// Spend and call totals for the days seen recently, by day, then key id.
    totals: HashMap<u32, DayTotals>,
    /// Key ids whose totals changed since the last checkpoint, by day.
    unsaved: HashMap<u32, HashSet<String>>,
    /// When the last checkpoint committed; `None` before the first, so a
    /// fresh data dir gets its cursor with the first batch.
    last_checkpoint: Option<Instant>,
    checkpoint_every: Duration,
    /// The day the writer started on (its recovered totals include it).
    started_day: u32,
    last_sync: Instant,
    dirty: bool,
    /// Events held until the next fsync (see [`Pending`]).
    pending: Pending,
    encoder: Encoder,
}

impl Writer {
    fn new(store: Arc<Store>, durability: Durability) -> Result<Writer, String> {
        let (last_key_ts, next_seq) = match store.audit.last_key_value() {
            Some(g) => {
                let k = g.key().map_err(|e| format!("store: {e}"))?;
                let (ts, seq) = super::event::parse_storage_key(&k).ok_or("store: bad audit key")?;
                (ts, seq + 1)
            }
            None => (0, 0),
        };
        let fail_after = std::env::var("CAPGATE_FAULT_AUDIT_FAIL_AFTER").ok().and_then(|v| v.parse().ok());
        let today = clock::day_of(clock::now_ms());
        // Totals replayed from events after the checkpoint are unsaved: the
        // first batch's checkpoint writes them before moving the cursor.
        let spend::Recovered { totals, replayed } = spend::recover_for_writer(&store, &[today.saturating_sub(1), today])?;
        Ok(Writer {
            store,
            durability,
            next_seq,
            last_key_ts,
            fail_after,
            totals,
            unsaved: replayed,
            last_checkpoint: None,
            checkpoint_every: CHECKPOINT_EVERY,
            started_day: today,
            last_sync: Instant::now(),
            dirty: false,
            pending: Pending::default(),
            encoder: Encoder::default(),
        })
    }

    fn run(&mut self, rx: &Receiver<Msg>, healthy: &AtomicBool) {
        let mut open = true;
        // Both buffers keep their capacity from batch to batch: an event is a
        // few hundred bytes, and regrowing them each time cost the writer
        // more than fjall's inserts (reallocation copies and fresh pages).
        let mut incoming: Vec<Msg> = Vec::with_capacity(MAX_BATCH);
        let mut batch: Vec<Msg> = Vec::with_capacity(MAX_BATCH);
        while open {
            match self.durability {
                // Waiters are acknowledged per batch: block until work comes.
                Durability::Sync => match rx.recv() {
                    Ok(m) => incoming.push(m),
                    Err(_) => break,
                },
                // Nobody waits: poll every millisecond instead of being woken
                // per event, so appending costs the cores no wake-up syscall.
                Durability::Interval(_) => match rx.try_recv() {
                    Ok(m) => incoming.push(m),
                    Err(TryRecvError::Empty) => {}
                    Err(TryRecvError::Disconnected) => open = false,
                },
            }
            let idle = incoming.is_empty();
            while !idle && incoming.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(m) => incoming.push(m),
                    Err(_) => break,
                }
            }
            self.pending.take(&mut incoming, &mut batch);
            let sync_now = match self.durability {
                // Every batch is fsynced: events are held only within it.
                Durability::Sync => true,
                Durability::Interval(every) => !open || self.last_sync.elapsed() >= every,
            };
            if sync_now || self.pending.len() >= MAX_PENDING {
                self.pending.release_all(&mut batch);
            }
            let mut ok = true;
            if !batch.is_empty() {
                ok = self.write_batch(&mut batch);
                healthy.store(ok, Ordering::Relaxed);
            }
            if sync_now {
                ok = ok && self.sync(healthy);
            }
            acknowledge(&mut batch, ok);
            if idle && open {
                // Woken early by an event somebody waits on.
                std::thread::park_timeout(POLL);
            }
        }
        self.sync(healthy);
    }

    fn write_batch(&mut self, batch: &mut [Msg]) -> bool {
        // Test fault: the batch is built, then fails where a commit would.
        let injected_fault = self.fail_after.is_some_and(|n| self.next_seq >= n);
        // Sized up front: grown from empty, the batch's item list was
        // reallocated a dozen times per interval batch, each copy landing on
        // fresh pages. A checkpoint adds a row per unsaved key and the cursor.
        let checkpoint = self.last_checkpoint.is_none_or(|t| t.elapsed() >= self.checkpoint_every);
        let rows = if checkpoint { self.unsaved.values().map(HashSet::len).sum::<usize>() + batch.len() + 1 } else { 0 };
        let mut b = fjall::OwnedWriteBatch::with_capacity(self.store.db.clone(), batch.len() + rows).durability(Some(PersistMode::Buffer));
        for m in batch.iter_mut() {
            m.event.seq = self.next_seq;
            self.next_seq += 1;
            self.last_key_ts = self.last_key_ts.max(m.event.ts_ms);
            b.insert(&self.store.audit, &storage_key(self.last_key_ts, m.event.seq)[..], self.encoder.encode(&m.event));
        }
        // A day the writer holds no totals for (an old day, or one it
        // dropped) is read back from the store first: rows plus events since.
        for m in batch.iter() {
            let day = m.event.spend_day;
            if spend::counts(&m.event.key_id, m.event.spend_delta, m.event.calls_delta) && !self.totals.contains_key(&day) {
                match spend::recover(&self.store, &[day]) {
                    Ok(mut r) => {
                        self.totals.insert(day, r.totals.remove(&day).unwrap_or_default());
                    }
                    Err(e) => {
                        tracing::error!(error = %e, events = batch.len(), "audit batch could not be written (spend totals unreadable); these events are lost, and spend-carrying calls are refused");
                        return false;
                    }
                }
            }
        }
        // The new totals are kept aside until the batch commits, so a failed
        // batch leaves the running totals as the store has them.
        let mut updated: HashMap<(u32, &str), (u64, u32)> = HashMap::with_capacity_and_hasher(batch.len(), Default::default());
        for m in batch.iter() {
            let ev = &m.event;
            if !spend::counts(&ev.key_id, ev.spend_delta, ev.calls_delta) {
                continue;
            }
            let total = updated.entry((ev.spend_day, &*ev.key_id)).or_insert_with(|| self.totals.get(&ev.spend_day).and_then(|d| d.get(&*ev.key_id)).copied().unwrap_or_default());
            spend::apply(total, ev.spend_delta, ev.calls_delta);
        }
        // A checkpoint writes one row per (day, key) changed since the last
        // one, however many events changed it, and the cursor: the storage
        // key of this batch's last event, which the rows now include.
        if checkpoint {
            for (day, key_id) in self.unsaved.iter().flat_map(|(d, ids)| ids.iter().map(move |id| (d, id))) {
                if !updated.contains_key(&(*day, key_id.as_str())) {
                    let (micros, calls) = self.totals.get(day).and_then(|d| d.get(key_id)).copied().unwrap_or_default();
                    b.insert(&self.store.spend, spend_key(*day, key_id), spend_value(micros, calls).to_vec());
                }
            }
            for (&(day, key_id), &(micros, calls)) in &updated {
                b.insert(&self.store.spend, spend_key(day, key_id), spend_value(micros, calls).to_vec());
            }
            b.insert(&self.store.meta, spend::CURSOR, storage_key(self.last_key_ts, self.next_seq.saturating_sub(1)).to_vec());
        }
        let committed = if injected_fault { Err("injected fault (CAPGATE_FAULT_AUDIT_FAIL_AFTER)".to_string()) } else { b.commit().map_err(|e| e.to_string()) };
        match committed {
            Ok(()) => {
                for ((day, key_id), total) in updated {
                    let totals = self.totals.entry(day).or_default();
                    match totals.get_mut(key_id) {
                        Some(t) => *t = total,
                        None => {
                            totals.insert(key_id.to_string(), total);
                        }
                    }
                    if !checkpoint {
                        let ids = self.unsaved.entry(day).or_default();
                        if !ids.contains(key_id) {
                            ids.insert(key_id.to_string());
                        }
                    }
                }
                if checkpoint {
                    self.unsaved.clear();
                    self.last_checkpoint = Some(Instant::now());
                    // Every total is in the store now: old days can go.
                    let today = clock::day_of(clock::now_ms());
                    self.totals.retain(|d, _| *d + 1 >= today);
                }
                self.dirty = true;
                true
            }
            Err(e) => {
                tracing::error!(error = %e, events = batch.len(), "audit batch could not be written; these events are lost, and spend-carrying calls are refused");
                false
            }
        }
    }

    /// fsyncs what was written since the last sync.
    fn sync(&mut self, healthy: &AtomicBool) -> bool {
        if !self.dirty {
            return true;
        }
        match self.store.db.persist(PersistMode::SyncData) {
            Ok(()) => {
                self.dirty = false;
                self.last_sync = Instant::now();
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "audit fsync failed; refusing spend-carrying calls");
                healthy.store(false, Ordering::Relaxed);
                false
            }
        }
    }
}

/// Tells every waiter of a written (or failed) batch: oneshot waiters one by
/// one, cores once each with their highest ticket (a core's events arrive
/// in the order it sent them).
fn acknowledge(batch: &mut Vec<Msg>, ok: bool) {
    let mut cores: Vec<(Arc<AckBoard>, u64)> = Vec::new();
    for m in batch.drain(..) {
        match m.ack {
            None => {}
            Some(Ack::Oneshot(tx)) => {
                let _ = tx.send(ok);
            }
            Some(Ack::Core(mut t)) => {
                t.answered = true;
                match cores.iter_mut().find(|(b, _)| Arc::ptr_eq(b, &t.board)) {
                    Some((_, upto)) => *upto = (*upto).max(t.ticket),
                    None => cores.push((Arc::clone(&t.board), t.ticket)),
                }
            }
        }
    }
    for (board, upto) in cores {
        board.publish(upto, ok);
    }
}

/// Events the writer holds back until its next fsync (or until an event
/// somebody waits on comes, which must be written at once): in interval
/// mode the whole interval goes into one fjall batch, and a call answered
/// by then is written as one record (its reserve folded into its call
/// event) instead of two. In sync mode, where every batch is fsynced, only
/// the batch is held. Holding costs no durability: nothing is durable before
/// the fsync, and everything held is written just before it, in the order it
/// came. Each request's own events keep their order (reserve, then call,
/// then settle), so no key's running total dips lower than it would unfolded.
#[derive(Default)]
struct Pending {
    slots: Vec<Option<Msg>>,
    /// Held reserve events, by request id.
    reserves: HashMap<Arc<str>, usize>,
}

impl Pending {
    fn len(&self) -> usize {
        self.slots.len()
    }

    /// Holds the events nobody waits on (emptying `incoming`) and folds held
    /// reserves into their call events; appends to `now` what is to be
    /// written now: when an event somebody waits on comes, everything held
    /// before it, then that event.
    fn take(&mut self, incoming: &mut Vec<Msg>, now: &mut Vec<Msg>) {
        let reserve = EventKind::Reserve as u8;
        let call = EventKind::Call as u8;
        for mut m in incoming.drain(..) {
            if m.event.kind == call {
                if let Some(&i) = self.reserves.get(&m.event.request_id) {
                    if let Some(r) = self.slots[i].take_if(|r| same_call(&r.event, &m.event)) {
                        self.reserves.remove(&m.event.request_id);
                        m.event.spend_delta += r.event.spend_delta;
                        m.event.calls_delta += r.event.calls_delta;
                    }
                }
            }
            if m.ack.is_some() {
                self.release_all(now);
                now.push(m);
                continue;
            }
            if m.event.kind == reserve && !m.event.request_id.is_empty() && !self.reserves.contains_key(&m.event.request_id) {
                self.reserves.insert(m.event.request_id.clone(), self.slots.len());
            }
            self.slots.push(Some(m));
        }
    }

    /// Appends every held event to `out`, in the order they came.
    fn release_all(&mut self, out: &mut Vec<Msg>) {
        self.reserves.clear();
        out.extend(self.slots.drain(..).flatten());
    }
}

/// Whether a reserve event and a call event are the same request's.
fn same_call(reserve: &AuditEvent, call: &AuditEvent) -> bool {
    !reserve.request_id.is_empty() && reserve.request_id == call.request_id && reserve.key_id == call.key_id && reserve.spend_day == call.spend_day
}

/// A writer over a fresh store in a temp dir, for tests: the dir (keep it
/// alive), the store, the sink and the writer thread.
#[cfg(test)]
pub(crate) fn spawn_in_temp_dir(durability: Durability) -> (tempfile::TempDir, Arc<Store>, AuditSink, std::thread::JoinHandle<()>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let Started { sink, handle, .. } = spawn(Arc::clone(&store), durability).unwrap();
    (dir, store, sink, handle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::decode;

    fn event(request_id: &str, kind: EventKind, spend: i64, calls: i32) -> AuditEvent {
        let now = clock::now_ms();
        AuditEvent { ts_ms: now, spend_day: clock::day_of(now), request_id: request_id.into(), key_id: "key_1".into(), kind: kind as u8, spend_delta: spend, calls_delta: calls, ..AuditEvent::default() }
    }

    fn stored(store: &Store) -> Vec<AuditEvent> {
        store.audit.iter().map(|g| decode(&g.value().unwrap()).unwrap()).collect()
    }

    #[test]
    fn a_reserve_and_its_call_in_one_batch_become_one_record_with_the_same_totals() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let mut w = Writer::new(Arc::clone(&store), Durability::Interval(Duration::from_millis(50))).unwrap();
        let mut batch: Vec<Msg> = [
            event("req_a", EventKind::Reserve, 500, 1),
            event("req_b", EventKind::Reserve, 700, 1),
            event("req_a", EventKind::Call, 0, 0),
            // req_b's vendor refused: the call event releases the reservation.
            event("req_b", EventKind::Call, -700, 0),
            // req_c's reserve went in an earlier batch: nothing to fold.
            event("req_c", EventKind::Call, 0, 0),
        ]
        .into_iter()
        .map(|event| Msg { event, ack: None })
        .collect();
        let mut out = Vec::new();
        w.pending.take(&mut batch, &mut out);
        w.pending.release_all(&mut out);
        let mut batch = out;
        assert!(w.write_batch(&mut batch));
        let events = stored(&store);
        let ids: Vec<(&str, u8, i64, i32)> = events.iter().map(|e| (&*e.request_id, e.kind, e.spend_delta, e.calls_delta)).collect();
        let call = EventKind::Call as u8;
        assert_eq!(ids, vec![("req_a", call, 500, 1), ("req_b", call, 0, 1), ("req_c", call, 0, 0)]);
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![0, 1, 2], "folded events take no sequence number");
        let day = clock::day_of(clock::now_ms());
        assert_eq!(spend::spend_for_day(&store, day).unwrap(), vec![("key_1".to_string(), 500, 2)]);
    }

    #[test]
    fn a_reserve_without_its_call_in_the_batch_is_written_as_is() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let mut w = Writer::new(Arc::clone(&store), Durability::Sync).unwrap();
        // Two sync-mode batches, each taken, released and written as `run` does.
        for event in [event("req_a", EventKind::Reserve, 500, 1), event("req_a", EventKind::Call, 0, 0)] {
            let (mut incoming, mut batch) = (vec![Msg { event, ack: None }], Vec::new());
            w.pending.take(&mut incoming, &mut batch);
            w.pending.release_all(&mut batch);
            assert!(w.write_batch(&mut batch));
        }
        let kinds: Vec<u8> = stored(&store).iter().map(|e| e.kind).collect();
        assert_eq!(kinds, vec![EventKind::Reserve as u8, EventKind::Call as u8]);
    }

    #[test]
    fn a_batch_that_fails_leaves_the_running_totals_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let mut w = Writer::new(Arc::clone(&store), Durability::Sync).unwrap();
        let mut ok = vec![Msg { event: event("req_a", EventKind::Reserve, 500, 1), ack: None }];
        assert!(w.write_batch(&mut ok));
        w.fail_after = Some(0); // every later batch fails
        let mut lost = vec![Msg { event: event("req_b", EventKind::Reserve, 700, 1), ack: None }];
        assert!(!w.write_batch(&mut lost));
        w.fail_after = None;
        let mut next = vec![Msg { event: event("req_c", EventKind::Reserve, 100, 1), ack: None }];
        assert!(w.write_batch(&mut next));
        let day = clock::day_of(clock::now_ms());
        assert_eq!(spend::spend_for_day(&store, day).unwrap(), vec![("key_1".to_string(), 600, 2)], "the lost batch's 700 is not counted");
    }

    #[test]
    fn spend_between_checkpoints_is_read_back_from_the_events_and_kept_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let day = clock::day_of(clock::now_ms());
        let mut w = Writer::new(Arc::clone(&store), Durability::Sync).unwrap();
        // Checkpoints come when the test says, however slow the machine.
        w.checkpoint_every = Duration::from_secs(3600);
        // The first batch checkpoints; the second, a moment later, does not.
        assert!(w.write_batch(&mut [Msg { event: event("req_a", EventKind::Reserve, 500, 1), ack: None }]));
        assert!(w.write_batch(&mut [Msg { event: event("req_b", EventKind::Reserve, 700, 1), ack: None }]));
        assert_eq!(store.spend_rows_for_day(day).unwrap(), vec![("key_1".to_string(), 500, 1)], "no row is written between checkpoints");
        assert_eq!(spend::spend_for_day(&store, day).unwrap(), vec![("key_1".to_string(), 1200, 2)], "the events after the cursor are added");
        drop(w);
        // A restarted writer starts from rows plus events. Its first batch
        // checkpoints, moving the cursor past the replayed events, so it
        // writes their key's total though the batch itself is another key's.
        let key_2 = |request_id: &str, spend: i64| AuditEvent { key_id: "key_2".into(), ..event(request_id, EventKind::Reserve, spend, 1) };
        let mut w = Writer::new(Arc::clone(&store), Durability::Sync).unwrap();
        w.checkpoint_every = Duration::from_secs(3600);
        assert_eq!(w.totals[&day]["key_1"], (1200, 2));
        assert!(w.write_batch(&mut [Msg { event: key_2("req_c", 40), ack: None }]));
        let both = vec![("key_1".to_string(), 1200, 2), ("key_2".to_string(), 40, 1)];
        assert_eq!(store.spend_rows_for_day(day).unwrap(), both);
        assert_eq!(spend::spend_for_day(&store, day).unwrap(), both, "events the checkpoint includes are not counted twice");
        // Between checkpoints a changed key waits for the next one, which
        // writes it even when that batch does not touch it.
        assert!(w.write_batch(&mut [Msg { event: event("req_d", EventKind::Reserve, 1, 1), ack: None }]));
        w.last_checkpoint = None; // the next checkpoint is due
        assert!(w.write_batch(&mut [Msg { event: key_2("req_e", 2), ack: None }]));
        assert_eq!(store.spend_rows_for_day(day).unwrap(), vec![("key_1".to_string(), 1201, 3), ("key_2".to_string(), 42, 2)]);
    }

    #[test]
    fn rows_without_a_cursor_are_read_as_complete() {
        // A data dir from before checkpoints: rows written with every batch.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let day = clock::day_of(clock::now_ms());
        store.audit.insert(storage_key(1, 0), encode(&event("req_a", EventKind::Reserve, 500, 1))).unwrap();
        store.spend.insert(spend_key(day, "key_1"), spend_value(500, 1).to_vec()).unwrap();
        assert_eq!(spend::spend_for_day(&store, day).unwrap(), vec![("key_1".to_string(), 500, 1)]);
    }

    #[test]
    fn a_restarted_writer_hands_back_the_spend_it_recovered() {
        let (dir, store, sink, handle) = spawn_in_temp_dir(Durability::Sync);
        let mut other = event("req_b", EventKind::Reserve, 250, 1);
        other.key_id = "key_2".into();
        for e in [event("req_a", EventKind::Reserve, 500, 1), event("req_a", EventKind::Call, -100, 0), other] {
            sink.append(e);
        }
        drop(sink);
        handle.join().unwrap();
        let Started { sink, handle, today } = spawn(Arc::clone(&store), Durability::Sync).unwrap();
        let day = clock::day_of(clock::now_ms());
        assert_eq!(today, (day, vec![("key_1".to_string(), 400, 1), ("key_2".to_string(), 250, 1)]));
        assert_eq!(today.1, spend::spend_for_day(&store, day).unwrap(), "the same as reading the store again");
        drop(sink);
        handle.join().unwrap();
        drop(dir);
    }

    #[test]
    fn an_interval_writer_folds_a_reserve_into_a_call_that_comes_in_a_later_batch() {
        let (_dir, store, sink, handle) = spawn_in_temp_dir(Durability::Interval(Duration::from_secs(5)));
        sink.append(event("req_a", EventKind::Reserve, 500, 1));
        std::thread::sleep(Duration::from_millis(30)); // the writer polls it alone
        sink.append(event("req_b", EventKind::Reserve, 700, 1));
        sink.append(event("req_a", EventKind::Call, 0, 0));
        std::thread::sleep(Duration::from_millis(30));
        assert!(stored(&store).is_empty(), "everything is held until the interval's fsync");
        drop(sink);
        handle.join().unwrap();
        let events: Vec<(String, u8, i64, i32)> = stored(&store).into_iter().map(|e| (e.request_id.to_string(), e.kind, e.spend_delta, e.calls_delta)).collect();
        // In the order they came; req_a's reserve rides in its call event.
        assert_eq!(events, vec![("req_b".into(), EventKind::Reserve as u8, 700, 1), ("req_a".into(), EventKind::Call as u8, 500, 1)]);
        let day = clock::day_of(clock::now_ms());
        assert_eq!(spend::spend_for_day(&store, day).unwrap(), vec![("key_1".to_string(), 1200, 2)]);
    }

    #[test]
    fn an_interval_writer_writes_held_events_at_its_next_fsync() {
        let (_dir, store, sink, handle) = spawn_in_temp_dir(Durability::Interval(Duration::from_millis(100)));
        sink.append(event("req_a", EventKind::Reserve, 500, 1));
        let deadline = Instant::now() + Duration::from_secs(5);
        while stored(&store).is_empty() {
            assert!(Instant::now() < deadline, "a held reserve was never written");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(stored(&store)[0].kind, EventKind::Reserve as u8);
        drop(sink);
        handle.join().unwrap();
    }

    #[test]
    fn an_interval_writer_writes_an_event_someone_waits_on_at_once() {
        let (_dir, store, sink, handle) = spawn_in_temp_dir(Durability::Interval(Duration::from_secs(30)));
        sink.append(event("req_a", EventKind::Call, 0, 0));
        let rx = sink.append_acked(event("req_b", EventKind::Call, 0, 0));
        let (tx, done) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(futures_executor_block_on(rx)));
        let acked = done.recv_timeout(Duration::from_secs(5)).expect("acknowledged long before the 30 s interval");
        assert_eq!(acked, Ok(true));
        let ids: Vec<String> = stored(&store).into_iter().map(|e| e.request_id.to_string()).collect();
        assert_eq!(ids, vec!["req_a", "req_b"], "the waited-on event is written at once, after what was held before it");
        drop(sink);
        handle.join().unwrap();
    }

    /// Blocks on a oneshot receiver without an async runtime.
    fn futures_executor_block_on(mut rx: oneshot::Receiver<bool>) -> Result<bool, oneshot::Canceled> {
        loop {
            match rx.try_recv() {
                Ok(Some(v)) => return Ok(v),
                Ok(None) => std::thread::sleep(Duration::from_millis(1)),
                Err(e) => return Err(e),
            }
        }
    }
}
