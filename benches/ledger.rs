//! Spend reservation: on the owning core (a plain map update) and across
//! cores (a mailbox message to the owner plus a oneshot reply).

mod common;

use std::cell::RefCell;
use std::hint::black_box;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use capgate::ledger::{mailbox, Adjust, Dedupe, Ledger, Ledgers, Reserve};
use criterion::{criterion_group, criterion_main, Criterion};

const DAY: u32 = 19_857;

fn reserve(key: &Arc<str>, dedupe: Option<Dedupe>) -> Reserve {
    Reserve { key: Arc::clone(key), day: DAY, cost: 30_000, cap: u64::MAX / 2, max_calls: None, dedupe }
}

/// Releases what `reserve` took, so the ledger state stays flat across iterations.
fn settle(key: &Arc<str>) -> Adjust {
    Adjust { key: Arc::clone(key), day: DAY, spend_delta: -30_000, calls_delta: -1, forget: None }
}

fn runtime() -> monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>> {
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().expect("monoio runtime")
}

fn owning_core(c: &mut Criterion) {
    let key: Arc<str> = Arc::from("key_5f0c3a9e1b7d2468");
    let mut g = c.benchmark_group("ledger/owning_core");
    g.bench_function("reserve_adjust", |b| {
        let mut ledger = Ledger::default();
        let (r, a) = (reserve(&key, None), settle(&key));
        b.iter(|| {
            let granted = ledger.reserve(black_box(&r));
            ledger.adjust(black_box(&a));
            black_box(granted)
        })
    });
    // With the duplicate guard on: every call has a new fingerprint, so the
    // per-key window stays full (256 entries) and is scanned each time.
    g.bench_function("reserve_adjust_dedupe_full_window", |b| {
        let mut ledger = Ledger::default();
        let a = settle(&key);
        let mut n: u64 = 0;
        b.iter(|| {
            n += 1;
            let mut fingerprint = [0u8; 16];
            fingerprint[..8].copy_from_slice(&n.to_le_bytes());
            let d = Dedupe { fingerprint, now_ms: 1_715_000_000_000 + n, window_ms: 600_000 };
            let granted = ledger.reserve(&reserve(&key, Some(d)));
            ledger.adjust(black_box(&a));
            black_box(granted)
        })
    });
    g.finish();
}

/// Both paths through `Ledgers` inside a monoio runtime: owner hash 0 stays
/// on core 0; owner hash 1 goes to core 1 (another thread, its own runtime,
/// serving its inbox) and its answer comes back through core 0's inbox.
fn through_ledgers(c: &mut Criterion) {
    let key: Arc<str> = Arc::from("key_5f0c3a9e1b7d2468");
    let (mailboxes, mut inboxes) = mailbox::pairs(2);
    let inbox1 = inboxes.pop().expect("two inboxes");
    let inbox0 = inboxes.pop().expect("two inboxes");
    let mailboxes: Arc<[mailbox::Mailbox]> = Arc::from(mailboxes);
    // Each core's `Ledgers` holds every mailbox, its own included, so an
    // inbox never sees its channel close: core 1 stops on an explicit signal.
    let (stop, stopped) = futures_channel::oneshot::channel::<()>();
    let mailboxes1 = Arc::clone(&mailboxes);
    let core1 = std::thread::Builder::new()
        .name("bench-core-1".into())
        .spawn(move || {
            let mut rt = runtime();
            rt.block_on(async move {
                let ledgers1 = Ledgers::new(1, Rc::new(RefCell::new(Ledger::default())), mailboxes1);
                monoio::spawn(inbox1.serve(ledgers1));
                let _ = stopped.await;
            });
        })
        .expect("spawn core 1");

    let local = Rc::new(RefCell::new(Ledger::default()));
    let ledgers = Ledgers::new(0, Rc::clone(&local), mailboxes);
    let mut rt = runtime();
    // Core 0's inbox task lives in its runtime across the block_on calls below.
    rt.block_on(async {
        monoio::spawn(inbox0.serve(ledgers.clone()));
    });

    let mut g = c.benchmark_group("ledger/via_ledgers");
    for (name, owner_hash) in [("owning_core", 0u64), ("cross_core", 1u64)] {
        g.bench_function(format!("{name}/reserve_adjust"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let granted = ledgers.reserve(owner_hash, reserve(&key, None)).await;
                        assert!(granted.is_ok());
                        ledgers.adjust(owner_hash, settle(&key));
                    }
                    start.elapsed()
                })
            })
        });
    }
    g.finish();

    // Core 1 ran the cross-core reserves: nothing was counted on core 0,
    // and every answer was taken.
    assert_eq!(local.borrow().spent(&key, DAY), 0);
    assert_eq!(ledgers.waiting().open_slots(), 0);
    let _ = stop.send(());
    core1.join().expect("core 1 stops");
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = owning_core, through_ledgers
}
criterion_main!(benches);
