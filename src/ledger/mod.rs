//! Per-core spend ledgers. Each vault key's daily spend lives on exactly one
//! core (chosen by a hash of its id); nothing else holds it, so reserving is
//! a plain map update with no lock or shared atomic. A request handled on
//! another core sends its reserve/adjust to the owner's [`mailbox`] and
//! awaits the answer.

pub mod mailbox;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use futures_channel::oneshot;

pub use mailbox::{Inbox, LedgerMsg, Mailbox};

/// A key's spend on one UTC day.
#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    day: u32,
    spent: u64,
}

/// The spend of the keys one core owns.
#[derive(Debug, Default)]
pub struct Ledger {
    entries: HashMap<Arc<str>, Entry>,
}

/// A reservation was refused: spend so far today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverCap {
    /// Micro-dollars already spent (or reserved) today.
    pub spent: u64,
}

impl Ledger {
    /// A ledger seeded with recovered spend for `day`.
    pub fn with_spend(day: u32, spend: impl IntoIterator<Item = (String, u64)>) -> Ledger {
        let entries = spend.into_iter().map(|(k, spent)| (Arc::from(k.as_str()), Entry { day, spent })).collect();
        Ledger { entries }
    }

    fn entry(&mut self, key: &Arc<str>, day: u32) -> &mut Entry {
        let e = self.entries.entry(Arc::clone(key)).or_default();
        if e.day < day {
            *e = Entry { day, spent: 0 };
        }
        e
    }

    /// Reserves `cost` against `cap` for `day`: all or nothing.
    ///
    /// # Errors
    /// [`OverCap`] when `spent + cost` would pass the cap.
    pub fn reserve(&mut self, key: &Arc<str>, day: u32, cost: u64, cap: u64) -> Result<u64, OverCap> {
        let e = self.entry(key, day);
        if e.day > day {
            return Err(OverCap { spent: e.spent });
        }
        match e.spent.checked_add(cost) {
            Some(total) if total <= cap => {
                e.spent = total;
                Ok(total)
            }
            _ => Err(OverCap { spent: e.spent }),
        }
    }

    /// Applies a settlement or release (`delta` may be negative). Deltas
    /// for a day that has already rolled over are dropped.
    pub fn adjust(&mut self, key: &Arc<str>, day: u32, delta: i64) {
        let e = self.entry(key, day);
        if e.day == day {
            e.spent = e.spent.saturating_add_signed(delta);
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

/// A core's view of all ledgers: its own, and every core's mailbox.
#[derive(Clone)]
pub struct Ledgers {
    core: usize,
    local: Rc<RefCell<Ledger>>,
    mailboxes: Arc<[Mailbox]>,
}

impl Ledgers {
    /// The handle for `core`.
    pub fn new(core: usize, local: Rc<RefCell<Ledger>>, mailboxes: Arc<[Mailbox]>) -> Ledgers {
        Ledgers { core, local, mailboxes }
    }

    /// Reserves on the owning core.
    ///
    /// # Errors
    /// [`OverCap`] when it does not fit (or the owner is gone).
    pub async fn reserve(&self, key: &Arc<str>, owner_hash: u64, day: u32, cost: u64, cap: u64) -> Result<u64, OverCap> {
        let owner = owner_of(owner_hash, self.mailboxes.len());
        if owner == self.core {
            return self.local.borrow_mut().reserve(key, day, cost, cap);
        }
        let (tx, rx) = oneshot::channel();
        self.mailboxes[owner].send(LedgerMsg::Reserve { key: Arc::clone(key), day, cost, cap, reply: tx });
        rx.await.unwrap_or(Err(OverCap { spent: 0 }))
    }

    /// Adjusts on the owning core (fire and forget).
    pub fn adjust(&self, key: &Arc<str>, owner_hash: u64, day: u32, delta: i64) {
        if delta == 0 {
            return;
        }
        let owner = owner_of(owner_hash, self.mailboxes.len());
        if owner == self.core {
            self.local.borrow_mut().adjust(key, day, delta);
        } else {
            self.mailboxes[owner].send(LedgerMsg::Adjust { key: Arc::clone(key), day, delta });
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

    #[test]
    fn reserve_is_all_or_nothing_and_resets_daily() {
        let k: Arc<str> = Arc::from("key_a");
        let mut l = Ledger::default();
        assert_eq!(l.reserve(&k, 10, 60, 100), Ok(60));
        assert_eq!(l.reserve(&k, 10, 50, 100), Err(OverCap { spent: 60 }));
        assert_eq!(l.reserve(&k, 10, 40, 100), Ok(100));
        l.adjust(&k, 10, -40);
        assert_eq!(l.spent("key_a", 10), 60);
        l.adjust(&k, 9, -60); // stale day: ignored
        assert_eq!(l.spent("key_a", 10), 60);
        assert_eq!(l.reserve(&k, 11, 100, 100), Ok(100));
        assert_eq!(l.spent("key_a", 10), 0);
    }

    #[test]
    fn recovered_spend_counts() {
        let k: Arc<str> = Arc::from("key_b");
        let mut l = Ledger::with_spend(3, [("key_b".to_string(), 90)]);
        assert_eq!(l.reserve(&k, 3, 20, 100), Err(OverCap { spent: 90 }));
        assert_eq!(l.reserve(&k, 3, 10, 100), Ok(100));
    }
}
