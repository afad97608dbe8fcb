//! The audit path: rkyv encode/decode of one event, and a group commit of 256
//! events into fjall with and without an fsync per batch.

mod common;

use std::hint::black_box;

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

criterion_group! {
    name = benches;
    config = common::config();
    targets = codec, fjall_batches
}
criterion_main!(benches);
