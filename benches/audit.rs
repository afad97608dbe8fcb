//! The audit path: rkyv encode/decode of one event, a group commit of 256
//! events into fjall with and without an fsync per batch, and a sync-mode
//! sized commit (16 events + fsync) into a new journal and into one
//! reopened after a restart (the fjall patch zeroes ahead in both).

mod common;

use std::hint::black_box;
use std::time::Instant;

use capgate::audit::event::{decode, encode, storage_key, AuditEvent, Decision, EventKind};
use capgate::store::Store;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const BATCH: u64 = 256;
/// Sequence numbers wrap after this many events, so the data set stays a few
/// MiB however many iterations criterion runs (later batches overwrite keys).
const KEY_SPACE: u64 = 64 * 1024;

fn typical_event() -> AuditEvent {
    AuditEvent {
        ts_ms: 1_715_678_467_123,
        seq: 81_723,
        request_id: "req_01HXW3K9V7Q2M5N8P4R6T0Y1Z3".into(),
        kind: EventKind::Call as u8,
        key_id: "key_5f0c3a9e1b7d2468".into(),
        label: "flowise/session-9f86d081884c7d65".into(),
        vendor: "stripe".into(),
        method: "POST".into(),
        path: "/v1/payment_intents".into(),
        status: 200,
        decision: Decision::Allowed as u8,
        code: String::new(),
        reserved_micros: 30_000_000,
        settled_micros: 30_000_000,
        spend_delta: 30_000_000,
        spend_day: 19_857,
        calls_delta: 1,
        latency_us: 412_318,
        object_id: "pi_3PJ1x2LkdIwHu7ix0aBc1234".into(),
    }
}

fn codec(c: &mut Criterion) {
    let ev = typical_event();
    let bytes = encode(&ev);
    assert_eq!(decode(&bytes).as_ref(), Some(&ev));
    let mut g = c.benchmark_group("audit/rkyv");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("encode", |b| b.iter(|| black_box(encode(black_box(&ev)))));
    g.bench_function("decode", |b| b.iter(|| black_box(decode(black_box(&bytes)))));
    g.finish();
}

fn fjall_batches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store opens");
    let template = typical_event();
    let mut seq: u64 = 0;
    let mut g = c.benchmark_group("audit/fjall_batch_256");
    g.throughput(Throughput::Elements(BATCH));
    for (name, sync) in [("no_fsync", false), ("fsync_syncdata", true)] {
        g.bench_function(name, |b| {
            b.iter_batched(
                // Events are encoded outside the timing (see audit/rkyv/encode).
                || {
                    (0..BATCH)
                        .map(|_| {
                            seq = (seq + 1) % KEY_SPACE;
                            let ev = AuditEvent { seq, ..template.clone() };
                            (storage_key(ev.ts_ms, ev.seq), encode(&ev))
                        })
                        .collect::<Vec<_>>()
                },
                |events| {
                    let mut batch = store.db.batch();
                    for (key, value) in events {
                        batch.insert(&store.audit, key.to_vec(), value);
                    }
                    batch.commit().expect("batch commits");
                    if sync {
                        store.db.persist(fjall::PersistMode::SyncData).expect("fsync");
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

/// Events in one sync-mode group commit under load (a few KB).
const SYNC_GROUP: u64 = 16;

/// One group commit of `SYNC_GROUP` events starting at `seq`, fsynced.
fn synced_group(store: &Store, template: &AuditEvent, seq: &mut u64) {
    let mut batch = store.db.batch();
    for _ in 0..SYNC_GROUP {
        *seq += 1;
        let ev = AuditEvent { seq: *seq, ..template.clone() };
        batch.insert(&store.audit, storage_key(ev.ts_ms, ev.seq).to_vec(), encode(&ev));
    }
    batch.commit().expect("batch commits");
    store.db.persist(fjall::PersistMode::SyncData).expect("fsync");
}

/// Each sample gets its own store (outside the timing), so no sample's
/// journal reaches fjall's rotation: a new one, or one written, closed and
/// reopened (recovery truncates it to its data, as after a restart).
fn synced_commits(c: &mut Criterion) {
    let template = typical_event();
    let mut g = c.benchmark_group("audit/synced_commit_16");
    g.throughput(Throughput::Elements(SYNC_GROUP));
    for (name, reopen) in [("new_journal", false), ("reopened_journal", true)] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let dir = tempfile::tempdir().expect("tempdir");
                let mut seq = 0;
                let mut store = Store::open(dir.path()).expect("store opens");
                for _ in 0..8 {
                    synced_group(&store, &template, &mut seq);
                }
                if reopen {
                    drop(store);
                    store = Store::open(dir.path()).expect("store reopens");
                }
                let started = Instant::now();
                for _ in 0..iters {
                    synced_group(&store, &template, &mut seq);
                }
                started.elapsed()
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = codec, fjall_batches, synced_commits
}
criterion_main!(benches);
