//! Property: any interleaving of reservations, settlements, refusals,
//! compaction passes and restarts leaves the spend views equal to a full
//! scan of the log, and the per-key spend totals (used to recover caps)
//! equal the sum of each key's events, whether the writer checkpointed
//! them every batch or only once (so a restart replays the events since).
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use capgate::audit::{writer, AuditEvent, AuditSink, Decision, Durability, EventKind};
use capgate::store::Store;
use capgate::views::{self, GroupBy};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Reserve { key: usize, cost: u32 },
    Settle { delta: i32 },
    Refuse { key: usize },
    /// The vendor answers the oldest open reservation (releasing it when it
    /// refused the call): the call event the writer may fold its reserve into.
    /// `Settle` then adjusts the oldest answered call, as LLM usage does.
    Answer { vendor_refused: bool },
    Compact { max: usize },
    /// Waits for the writer to write what it holds (a batch boundary).
    Flush,
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..5usize, 1..5_000u32).prop_map(|(key, cost)| Op::Reserve { key, cost }),
        2 => (-2_000..2_000i32).prop_map(|delta| Op::Settle { delta }),
        2 => (0..5usize).prop_map(|key| Op::Refuse { key }),
        3 => any::<bool>().prop_map(|vendor_refused| Op::Answer { vendor_refused }),
        1 => (1..20usize).prop_map(|max| Op::Compact { max }),
        1 => Just(Op::Flush),
        1 => Just(Op::Restart),
    ]
}

const LABELS: [&str; 5] = ["flowise/a", "flowise/b", "flowise/b/x", "dify/c", ""];
const DAY: u32 = 20_400;

fn event(key: usize, kind: EventKind, delta: i64, calls: i32, refused: bool) -> AuditEvent {
    AuditEvent {
        ts_ms: u64::from(DAY) * capgate::clock::DAY_MS + 1000,
        key_id: format!("key_{key}").into(),
        label: LABELS[key].into(),
        vendor: if key % 2 == 0 { "stripe".into() } else { "openai".into() },
        kind: kind as u8,
        decision: if refused { Decision::Refused as u8 } else { Decision::Allowed as u8 },
        spend_delta: delta,
        calls_delta: calls,
        spend_day: DAY + (key as u32 % 2),
        ..AuditEvent::default()
    }
}

fn open(dir: &std::path::Path, checkpoint_every: Duration) -> (Arc<Store>, AuditSink, std::thread::JoinHandle<()>) {
    let store = Arc::new(Store::open(dir).unwrap());
    let writer::Started { sink, handle, .. } = writer::spawn_with_checkpoints(Arc::clone(&store), Durability::Interval(Duration::from_millis(2)), checkpoint_every).unwrap();
    (store, sink, handle)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn views_equal_scan_under_random_interleavings(ops in proptest::collection::vec(op(), 1..80), every_batch in any::<bool>()) {
        // A checkpoint every batch, or only each writer's first.
        let checkpoint_every = if every_batch { Duration::ZERO } else { Duration::from_secs(3600) };
        let dir = tempfile::tempdir().unwrap();
        let (mut store, mut sink, mut handle) = open(dir.path(), checkpoint_every);
        // A compactor that remembers few rows forgets often; one per process.
        let remembered = if every_batch { 3 } else { 1024 };
        let mut compactor = views::Compactor::new(remembered);
        let mut expected: HashMap<(u32, String), i64> = HashMap::new();
        let mut open_calls: std::collections::VecDeque<(usize, u32, String)> = Default::default();
        let mut answered: std::collections::VecDeque<(usize, u32, String)> = Default::default();
        for (n, op) in ops.into_iter().enumerate() {
            match op {
                Op::Reserve { key, cost } => {
                    let request_id = format!("req_{n}");
                    let e = AuditEvent { request_id: request_id.as_str().into(), ..event(key, EventKind::Reserve, i64::from(cost), 1, false) };
                    *expected.entry((e.spend_day, e.key_id.to_string())).or_default() += e.spend_delta;
                    open_calls.push_back((key, cost, request_id));
                    sink.append(e);
                }
                Op::Answer { vendor_refused } => {
                    if let Some((key, cost, request_id)) = open_calls.pop_front() {
                        let delta = if vendor_refused { -i64::from(cost) } else { 0 };
                        if !vendor_refused {
                            answered.push_back((key, cost, request_id.clone()));
                        }
                        let e = AuditEvent { request_id: request_id.into(), ..event(key, EventKind::Call, delta, 0, false) };
                        *expected.entry((e.spend_day, e.key_id.to_string())).or_default() += delta;
                        sink.append(e);
                    }
                }
                Op::Settle { delta } => {
                    // Settles the oldest answered call, never below zero, as the proxy does.
                    if let Some((key, cost, request_id)) = answered.pop_front() {
                        let delta = i64::from(delta).max(-i64::from(cost));
                        let e = AuditEvent { request_id: request_id.into(), ..event(key, EventKind::Settle, delta, 0, false) };
                        *expected.entry((e.spend_day, e.key_id.to_string())).or_default() += delta;
                        sink.append(e);
                    }
                }
                Op::Refuse { key } => sink.append(event(key, EventKind::Call, 0, 0, true)),
                Op::Compact { max } => {
                    compactor.catch_up(&store, max).unwrap();
                }
                Op::Flush => std::thread::sleep(Duration::from_millis(6)),
                Op::Restart => {
                    drop(sink);
                    handle.join().unwrap();
                    drop(store);
                    (store, sink, handle) = open(dir.path(), checkpoint_every);
                    compactor = views::Compactor::new(remembered);
                }
            }
        }
        drop(sink);
        handle.join().unwrap();
        while compactor.catch_up(&store, 7).unwrap() > 0 {}
        for g in [GroupBy::Label, GroupBy::Key, GroupBy::Day, GroupBy::Vendor] {
            for prefix in ["", "flowise/", "flowise/b", "dify/c", "zzz"] {
                prop_assert_eq!(views::query(&store, prefix, DAY, DAY + 1, g).unwrap(), views::scan(&store, prefix, DAY, DAY + 1, g).unwrap());
            }
        }
        for day in [DAY, DAY + 1] {
            let stored: HashMap<String, u64> = capgate::audit::spend::spend_for_day(&store, day).unwrap().into_iter().map(|(k, m, _)| (k, m)).collect();
            for ((d, key), want) in &expected {
                if *d == day {
                    prop_assert_eq!(stored.get(key).copied().unwrap_or(0) as i64, *want, "spend of {} on day {}", key, day);
                }
            }
        }
    }
}
