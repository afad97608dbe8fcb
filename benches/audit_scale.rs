//! Audit log at scale (issue figures, not criterion): events/s appended
//! through the writer in each durability mode, startup recovery time with
//! 5 million events in the log, compaction throughput, and spend-view
//! query latency at 5 million events.
//!
//! Run: `cargo bench --bench audit_scale` (EVENTS=5000000 by default).

use std::sync::Arc;
use std::time::{Duration, Instant};

use capgate::audit::event::{encode, storage_key};
use capgate::audit::{writer, AuditEvent, Decision, Durability, EventKind};
use capgate::clock;
use capgate::store::{spend_key, spend_value, Store};
use capgate::views::{self, GroupBy};

fn event(i: u64, day: u32) -> AuditEvent {
    let key = i % 50_000;
    AuditEvent {
        ts_ms: u64::from(day) * clock::DAY_MS + i / 100,
        seq: i,
        request_id: format!("req_{i:016x}").into(),
        kind: if i % 2 == 0 { EventKind::Reserve as u8 } else { EventKind::Call as u8 },
        key_id: format!("key_{key:016x}").into(),
        label: format!("tenant-{}/session-{}", key % 100, key % 10_000).into(),
        vendor: "stripe".into(),
        method: "POST".into(),
        path: "/v1/payment_intents".into(),
        status: 200,
        decision: if i % 50 == 0 { Decision::Refused as u8 } else { Decision::Allowed as u8 },
        code: String::new(),
        reserved_micros: 1_000_000,
        settled_micros: 1_000_000,
        spend_delta: if i % 2 == 0 { 1_000_000 } else { 0 },
        spend_day: day,
        calls_delta: i32::from(i % 2 == 0),
        latency_us: 400,
        object_id: format!("pi_{i}"),
    }
}

fn appended_per_second(durability: Durability, producers: usize, per_producer: usize) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(dir.path()).expect("store"));
    let writer::Started { sink, handle, .. } = writer::spawn(Arc::clone(&store), durability).expect("writer");
    let day = clock::day_of(clock::now_ms());
    let t = Instant::now();
    std::thread::scope(|s| {
        for p in 0..producers {
            let sink = sink.clone();
            s.spawn(move || {
                for i in 0..per_producer {
                    // Each producer is one in-flight request: it waits for its
                    // event to be durable before sending the next, as the proxy does.
                    let mut rx = sink.append_acked(event((p * per_producer + i) as u64, day));
                    loop {
                        match rx.try_recv() {
                            Ok(Some(ok)) => {
                                assert!(ok);
                                break;
                            }
                            Ok(None) => std::thread::yield_now(),
                            Err(_) => panic!("writer gone"),
                        }
                    }
                }
            });
        }
    });
    let rate = (producers * per_producer) as f64 / t.elapsed().as_secs_f64();
    drop(sink);
    handle.join().expect("writer thread");
    rate
}

fn main() {
    let events: u64 = std::env::var("EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(5_000_000);
    println!("## audit_scale (events in log for recovery/views: {events})\n");
    println!("| measurement | figure |");
    println!("|---|---|");
    for producers in [1usize, 64] {
        let sync = appended_per_second(Durability::Sync, producers, if producers == 1 { 2_000 } else { 400 });
        let interval = appended_per_second(Durability::Interval(Duration::from_millis(50)), producers, if producers == 1 { 20_000 } else { 2_000 });
        println!("| append, {producers} waiting producer(s), durability=sync | {sync:.0} events/s |");
        println!("| append, {producers} waiting producer(s), durability=interval 50 ms | {interval:.0} events/s |");
        println!("| ratio interval/sync at {producers} producer(s) | {:.1}x |", interval / sync);
    }

    // Build a log of `events` events spread over 30 days, the way the writer stores them.
    // The writer checkpoints spend rows about once a second and recovery
    // replays the events after the checkpoint: put it ~1 s of full-rate
    // events before the end.
    let tail = events.min(25_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let today = clock::day_of(clock::now_ms());
    {
        let store = Store::open(dir.path()).expect("store");
        let t = Instant::now();
        let mut i = 0u64;
        let mut cursor = Vec::new();
        while i < events {
            let mut b = store.db.batch();
            for _ in 0..10_000 {
                if i >= events {
                    break;
                }
                let day = today - 29 + (i * 30 / events) as u32;
                let e = event(i, day);
                b.insert(&store.audit, storage_key(e.ts_ms, i).to_vec(), encode(&e));
                if i + tail == events {
                    cursor = storage_key(e.ts_ms, i).to_vec();
                }
                i += 1;
            }
            b.commit().expect("commit");
        }
        for k in 0..50_000u64 {
            store.spend.insert(spend_key(today, &format!("key_{k:016x}")), spend_value(1_000_000 * (k % 7), (k % 7) as u32).to_vec()).expect("spend");
        }
        store.meta.insert(capgate::audit::spend::CURSOR, cursor).expect("cursor");
        store.db.persist(fjall::PersistMode::SyncAll).expect("persist");
        println!("| bulk load of the log | {:.0} events/s |", events as f64 / t.elapsed().as_secs_f64());
    }

    // Startup: what `capgate serve` reads before it accepts traffic.
    let t = Instant::now();
    let store = Arc::new(Store::open(dir.path()).expect("reopen"));
    let keys = store.load_keys().expect("keys").len();
    let writer::Started { sink, handle, today: (_, spend) } = writer::spawn(Arc::clone(&store), Durability::Sync).expect("writer");
    let spend = spend.len();
    let startup = t.elapsed();
    // Before the writer handed its recovered spend back, startup read it a
    // second time: what that read costs, side by side.
    let again = Instant::now();
    let reread = capgate::audit::spend::spend_for_day(&store, today).expect("spend").len();
    assert_eq!(reread, spend, "the writer's figures are the store's");
    let reread_ms = again.elapsed().as_secs_f64() * 1e3;
    println!("| startup recovery with {events} events ({keys} keys, {spend} per-key spend rows today, the last {tail} events replayed) | {:.0} ms |", startup.as_secs_f64() * 1e3);
    println!("| reading today's spend again ({reread} rows; startup no longer does) | {reread_ms:.0} ms |");
    drop(sink);
    handle.join().expect("writer");

    // Compaction: fold the whole log into the views.
    let t = Instant::now();
    let mut folded = 0;
    loop {
        let n = views::catch_up(&store, 50_000).expect("catch up");
        if n == 0 {
            break;
        }
        folded += n;
    }
    println!("| compaction fold of {folded} events | {:.0} events/s |", folded as f64 / t.elapsed().as_secs_f64());

    for (what, prefix, from, group) in [
        ("one tenant, today, by label", "tenant-7/", today, GroupBy::Label),
        ("one tenant, 30 days, by day", "tenant-7/", today - 29, GroupBy::Day),
        ("one session, 30 days, by key", "tenant-7/session-1007", today - 29, GroupBy::Key),
        ("everything, today, by vendor", "", today, GroupBy::Vendor),
    ] {
        let mut samples = Vec::new();
        let mut rows = 0;
        for _ in 0..20 {
            let t = Instant::now();
            rows = views::query(&store, prefix, from, today, group).expect("query").len();
            samples.push(t.elapsed());
        }
        samples.sort();
        println!("| view query: {what} ({rows} rows), median of 20 | {:.2} ms |", samples[10].as_secs_f64() * 1e3);
    }
    let t = Instant::now();
    let scanned = views::scan(&store, "tenant-7/", today - 29, today, GroupBy::Day).expect("scan").len();
    println!("| the same 30-day tenant query by full log scan ({scanned} rows) | {:.0} ms |", t.elapsed().as_secs_f64() * 1e3);
}
