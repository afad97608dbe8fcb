//! Per-core spend ledgers. Each vault key's daily spend, daily call count
//! and recent-request fingerprints (the duplicate-charge guard) live on
//! exactly one core, chosen by a hash of its id; nothing else holds them, so
//! reserving is a plain map update with no lock or shared atomic. A request
//! handled on another core sends its reserve/adjust to the owner's
//! [`mailbox`] and awaits the answer, which comes back to its own core's
//! inbox.

pub mod mailbox;
mod recent;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use foldhash::HashMap;

use futures_channel::oneshot;

pub use mailbox::{Inbox, LedgerMsg, Mailbox, Waiting};

/// Most fingerprints remembered per key (oldest dropped first).
const MAX_RECENT: usize = 256;

/// One key's state on its owning core.
#[derive(Debug, Clone, Default)]
struct Entry {
    day: u32,
    spent: u64,
    calls: u32,
    /// Fingerprints of recent requests (the duplicate-charge guard).
    recent: recent::Recent,
}

/// The state of the keys one core owns.
#[derive(Debug, Default)]
pub struct Ledger {
    entries: HashMap<Arc<str>, Entry>,
}

/// What a request asks of its key's ledger before it is forwarded.
#[derive(Debug, Clone)]
pub struct Reserve {
    /// Key id.
    pub key: Arc<str>,
    /// UTC day.
    pub day: u32,
    /// Micro-dollars to reserve.
    pub cost: u64,
    /// Daily cap.
    pub cap: u64,
    /// Daily call limit, if any.
    pub max_calls: Option<u32>,
    /// Duplicate guard: the request's fingerprint, now, and the window.
    pub dedupe: Option<Dedupe>,
}

/// Duplicate-guard input.
#[derive(Debug, Clone, Copy)]
pub struct Dedupe {
    /// Fingerprint of (key, method, path, canonical parameters).
    pub fingerprint: [u8; 16],
    /// Now, Unix ms.
    pub now_ms: u64,
    /// How long a repeat counts as a duplicate.
    pub window_ms: u64,
}

impl Dedupe {
    /// Whether a fingerprint first seen at `seen_ms` is still in the
    /// window (`seen_ms + window_ms > now_ms`, without overflow).
    fn in_window(&self, seen_ms: u64) -> bool {
        self.now_ms.checked_sub(self.window_ms).is_none_or(|expired_up_to| seen_ms > expired_up_to)
    }
}

/// A granted reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserved {
    /// Counted now.
    Fresh {
        /// When the fingerprint was first seen (now, for a fresh one).
        first_ms: u64,
    },
    /// A repeat within the window of a request first seen at `first_ms`:
    /// nothing is counted (the vendor replays the first result).
    Replay {
        /// When the original was seen.
        first_ms: u64,
    },
}

/// Why a reservation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// The cost would pass the cap; `spent` so far today.
    OverCap {
        /// Micro-dollars already spent or reserved today.
        spent: u64,
    },
    /// The daily call limit is reached.
    TooManyCalls {
        /// Calls counted today.
        calls: u32,
    },
    /// The key's owning core is not taking reservations (it stopped), or
    /// the asking core has no free answer slot.
    OwnerUnavailable,
    /// The request's UTC day ended before it was reserved (the key's spend
    /// has moved on to the next day): nothing was counted.
    DayEnded,
}

/// A settlement, release or un-count.
#[derive(Debug, Clone)]
pub struct Adjust {
    /// Key id.
    pub key: Arc<str>,
    /// UTC day of the reservation.
    pub day: u32,
    /// Signed micro-dollars.
    pub spend_delta: i64,
    /// Signed calls.
    pub calls_delta: i32,
    /// Forget this fingerprint (the request never reached the vendor).
    pub forget: Option<[u8; 16]>,
}

impl Ledger {
    /// A ledger seeded with recovered spend and call counts for `day`.
    pub fn with_spend(day: u32, spend: impl IntoIterator<Item = (String, u64, u32)>) -> Ledger {
        let entries = spend
            .into_iter()
            .map(|(k, spent, calls)| (Arc::from(k.as_str()), Entry { day, spent, calls, recent: recent::Recent::default() }))
            .collect();
        Ledger { entries }
    }

    fn entry(&mut self, key: &Arc<str>, day: u32) -> &mut Entry {
        let e = self.entries.entry(Arc::clone(key)).or_default();
        if e.day < day {
            e.day = day;
            e.spent = 0;
            e.calls = 0;
        }
        e
    }

    /// Reserves all or nothing: the cost under the cap, one call under the
    /// call limit, unless the fingerprint marks a duplicate.
    ///
    /// # Errors
    /// [`Denied`] when it does not fit.
    pub fn reserve(&mut self, r: &Reserve) -> Result<Reserved, Denied> {
        let e = self.entry(&r.key, r.day);
        if let Some(d) = &r.dedupe {
            if let Some(first_ms) = e.recent.find(&d.fingerprint, d) {
                return Ok(Reserved::Replay { first_ms });
            }
        }
        if e.day > r.day {
            return Err(Denied::DayEnded);
        }
        if r.max_calls.is_some_and(|m| e.calls >= m) {
            return Err(Denied::TooManyCalls { calls: e.calls });
        }
        let total = match e.spent.checked_add(r.cost) {
            Some(t) if t <= r.cap => t,
            _ => return Err(Denied::OverCap { spent: e.spent }),
        };
        e.spent = total;
        e.calls = e.calls.saturating_add(1);
        let first_ms = match &r.dedupe {
            Some(d) => {
                e.recent.remember(&d.fingerprint, d, MAX_RECENT);
                d.now_ms
            }
            None => 0,
        };
        Ok(Reserved::Fresh { first_ms })
    }

    /// Applies a settlement or release. Spend deltas for a day that has
    /// already rolled over are dropped.
    pub fn adjust(&mut self, a: &Adjust) {
        let e = self.entry(&a.key, a.day);
        if let Some(f) = &a.forget {
            e.recent.forget(f);
        }
        if e.day == a.day {
            e.spent = e.spent.saturating_add_signed(a.spend_delta);
            e.calls = e.calls.saturating_add_signed(a.calls_delta);
        }
    }

    /// Spend on `day`.
    pub fn spent(&self, key: &str, day: u32) -> u64 {
        self.entries.get(key).filter(|e| e.day == day).map_or(0, |e| e.spent)
    }
}

/// Index of the core that owns a key.
pub fn owner_of(owner_hash: u64, cores: usize) -> usize {
    (owner_hash % cores.max(1) as u64) as usize
}

/// A core's view of all ledgers: its own, every core's mailbox, and the
/// reservations its requests wait on from other cores. The core must serve
/// its inbox ([`Inbox::serve`]) with a clone of it: answers arrive there.
#[derive(Clone)]
pub struct Ledgers {
    core: usize,
    local: Rc<RefCell<Ledger>>,
    mailboxes: Arc<[Mailbox]>,
    waiting: Rc<Waiting>,
}

impl Ledgers {
    /// The handle for `core`.
    pub fn new(core: usize, local: Rc<RefCell<Ledger>>, mailboxes: Arc<[Mailbox]>) -> Ledgers {
        Ledgers { core, local, mailboxes, waiting: Rc::default() }
    }

    /// The reservations this core's requests wait on.
    pub fn waiting(&self) -> &Waiting {
        &self.waiting
    }

    /// Reserves on the owning core.
    ///
    /// # Errors
    /// [`Denied`] when it does not fit (or the owner is gone).
    pub async fn reserve(&self, owner_hash: u64, r: Reserve) -> Result<Reserved, Denied> {
        let owner = owner_of(owner_hash, self.mailboxes.len());
        if owner == self.core {
            return self.local.borrow_mut().reserve(&r);
        }
        // Every way the answer can fail to come is refused: fail closed.
        let refused = Err(Denied::OwnerUnavailable);
        let Some(answer) = self.waiting.open() else { return refused };
        let mailbox = &self.mailboxes[owner];
        if !mailbox.send(LedgerMsg::Reserve(r, answer.reply_to(self.core))) {
            answer.cancel();
            return refused;
        }
        if mailbox.closed_after_send() {
            // The owner is stopping: its closing drain refuses what it
            // found queued, and the dropped wait leaves its slot to that.
            return refused;
        }
        answer.wait().await
    }

    /// Adjusts on the owning core (fire and forget).
    pub fn adjust(&self, owner_hash: u64, a: Adjust) {
        if a.spend_delta == 0 && a.calls_delta == 0 && a.forget.is_none() {
            return;
        }
        let owner = owner_of(owner_hash, self.mailboxes.len());
        if owner == self.core {
            self.local.borrow_mut().adjust(&a);
        } else {
            self.mailboxes[owner].send(LedgerMsg::Adjust(a));
        }
    }
}

/// Asks the owning core for a key's spend (used by the admin API).
pub async fn query_spent(mailboxes: &[Mailbox], key: &str, owner_hash: u64, day: u32) -> Option<u64> {
    let owner = owner_of(owner_hash, mailboxes.len());
    let (tx, rx) = oneshot::channel();
    mailboxes.get(owner)?.send(LedgerMsg::Query { key: Arc::from(key), day, reply: tx });
    rx.await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(key: &Arc<str>, day: u32, cost: u64, cap: u64) -> Reserve {
        Reserve { key: Arc::clone(key), day, cost, cap, max_calls: None, dedupe: None }
    }

    fn adj(key: &Arc<str>, day: u32, spend_delta: i64) -> Adjust {
        Adjust { key: Arc::clone(key), day, spend_delta, calls_delta: 0, forget: None }
    }

    #[test]
    fn the_window_holds_exactly_at_every_edge() {
        let edges = [0, 1, 2, 999, 1_000, 1_001, u64::MAX / 2, u64::MAX - 1, u64::MAX];
        for now_ms in edges {
            for window_ms in edges {
                let d = Dedupe { fingerprint: [0; 16], now_ms, window_ms };
                for seen in edges.iter().copied().chain([now_ms.wrapping_sub(window_ms), now_ms.wrapping_sub(window_ms).wrapping_add(1)]) {
                    let exact = u128::from(seen) + u128::from(window_ms) > u128::from(now_ms);
                    assert_eq!(d.in_window(seen), exact, "now {now_ms} window {window_ms} seen {seen}");
                }
            }
        }
    }

    #[test]
    fn reserve_is_all_or_nothing_and_resets_daily() {
        let k: Arc<str> = Arc::from("key_a");
        let mut l = Ledger::default();
        assert!(l.reserve(&res(&k, 10, 60, 100)).is_ok());
        assert_eq!(l.reserve(&res(&k, 10, 50, 100)), Err(Denied::OverCap { spent: 60 }));
        assert!(l.reserve(&res(&k, 10, 40, 100)).is_ok());
        l.adjust(&adj(&k, 10, -40));
        assert_eq!(l.spent("key_a", 10), 60);
        l.adjust(&adj(&k, 9, -60)); // stale day: ignored
        assert_eq!(l.spent("key_a", 10), 60);
        assert!(l.reserve(&res(&k, 11, 100, 100)).is_ok());
        assert_eq!(l.spent("key_a", 10), 0);
        // A request stamped before midnight, reserved after the key moved on.
        assert_eq!(l.reserve(&res(&k, 10, 1, 1_000)), Err(Denied::DayEnded));
        assert_eq!(l.spent("key_a", 11), 100, "nothing counted");
    }

    #[test]
    fn recovered_spend_and_calls_count() {
        let k: Arc<str> = Arc::from("key_b");
        let mut l = Ledger::with_spend(3, [("key_b".to_string(), 90, 4)]);
        assert_eq!(l.reserve(&res(&k, 3, 20, 100)), Err(Denied::OverCap { spent: 90 }));
        let mut r = res(&k, 3, 0, 100);
        r.max_calls = Some(5);
        assert!(l.reserve(&r).is_ok());
        assert_eq!(l.reserve(&r), Err(Denied::TooManyCalls { calls: 5 }));
    }

    #[test]
    fn duplicates_within_the_window_are_replays() {
        let k: Arc<str> = Arc::from("key_c");
        let mut l = Ledger::default();
        let mut r = res(&k, 1, 30, 100);
        r.dedupe = Some(Dedupe { fingerprint: [7; 16], now_ms: 1_000, window_ms: 600_000 });
        assert_eq!(l.reserve(&r), Ok(Reserved::Fresh { first_ms: 1_000 }));
        r.dedupe = Some(Dedupe { fingerprint: [7; 16], now_ms: 500_000, window_ms: 600_000 });
        assert_eq!(l.reserve(&r), Ok(Reserved::Replay { first_ms: 1_000 }));
        assert_eq!(l.spent("key_c", 1), 30, "a replay is charged once");
        r.dedupe = Some(Dedupe { fingerprint: [7; 16], now_ms: 700_000, window_ms: 600_000 });
        assert_eq!(l.reserve(&r), Ok(Reserved::Fresh { first_ms: 700_000 }), "after the window it is a new call");
        l.adjust(&Adjust { key: Arc::clone(&k), day: 1, spend_delta: -30, calls_delta: -1, forget: Some([7; 16]) });
        r.dedupe = Some(Dedupe { fingerprint: [7; 16], now_ms: 700_001, window_ms: 600_000 });
        assert!(matches!(l.reserve(&r), Ok(Reserved::Fresh { .. })), "a call that never left is forgotten");
    }

    #[test]
    fn the_window_holds_behind_a_newer_fingerprint_and_the_oldest_go_first() {
        let k: Arc<str> = Arc::from("key_d");
        let mut l = Ledger::default();
        let at = |l: &mut Ledger, f: u8, now_ms: u64| {
            let mut r = res(&k, 1, 1, u64::MAX);
            r.dedupe = Some(Dedupe { fingerprint: [f; 16], now_ms, window_ms: 1_000 });
            l.reserve(&r)
        };
        // Another core's clock ran ahead: fingerprint 1 came first with a later time.
        assert!(matches!(at(&mut l, 1, 5_000), Ok(Reserved::Fresh { .. })));
        assert!(matches!(at(&mut l, 2, 4_000), Ok(Reserved::Fresh { .. })));
        // At 5,500, fingerprint 2 (seen at 4,000) is out of the window though 1 is not.
        assert!(matches!(at(&mut l, 2, 5_500), Ok(Reserved::Fresh { first_ms: 5_500 })));
        assert_eq!(at(&mut l, 1, 5_600), Ok(Reserved::Replay { first_ms: 5_000 }));
        // Past MAX_RECENT fingerprints, the oldest is forgotten first.
        for f in 0..MAX_RECENT as u64 {
            let mut r = res(&k, 1, 1, u64::MAX);
            let mut fp = [0xAA; 16];
            fp[..8].copy_from_slice(&f.to_be_bytes());
            r.dedupe = Some(Dedupe { fingerprint: fp, now_ms: 5_700, window_ms: 1_000 });
            assert!(matches!(l.reserve(&r), Ok(Reserved::Fresh { .. })));
        }
        assert!(matches!(at(&mut l, 1, 5_800), Ok(Reserved::Fresh { .. })), "evicted by newer ones");
    }

    #[test]
    fn a_full_window_drops_expired_entries_before_a_live_one() {
        let k: Arc<str> = Arc::from("key_e");
        let mut l = Ledger::default();
        let at = |l: &mut Ledger, fp: [u8; 16], now_ms: u64| {
            let mut r = res(&k, 1, 1, u64::MAX);
            r.dedupe = Some(Dedupe { fingerprint: fp, now_ms, window_ms: 1_000 });
            l.reserve(&r)
        };
        // A live fingerprint first, then a full window of ones that started
        // earlier (slow uploads) and expire before it.
        assert!(matches!(at(&mut l, [1; 16], 10_000), Ok(Reserved::Fresh { .. })));
        for f in 0..MAX_RECENT as u64 - 1 {
            let mut fp = [0xBB; 16];
            fp[..8].copy_from_slice(&f.to_be_bytes());
            assert!(matches!(at(&mut l, fp, 9_100), Ok(Reserved::Fresh { .. })));
        }
        // At 10,200 the 9,100 ones are expired; a newcomer must not push out the live one.
        assert!(matches!(at(&mut l, [2; 16], 10_200), Ok(Reserved::Fresh { .. })));
        assert_eq!(at(&mut l, [1; 16], 10_300), Ok(Reserved::Replay { first_ms: 10_000 }), "the live fingerprint is kept");
    }
}
