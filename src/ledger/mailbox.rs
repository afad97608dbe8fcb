//! Cross-core ledger messages: a crossbeam channel per core plus an atomic
//! waker, so a core's drain task sleeps until another core (or the admin
//! thread) sends it work.
//!
//! A reservation's answer comes back the same way: the owner sends it to
//! the asking core's inbox, whose drain task hands it to the waiting request
//! through [`Waiting`], a core-local table of open requests. A batch of
//! answers thus costs the asking core one cross-thread wake-up (of its drain
//! task), not one per request, and no per-request channel is allocated.

use std::cell::RefCell;
use std::future::poll_fn;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use atomic_waker::AtomicWaker;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use futures_channel::oneshot;

use super::{Adjust, Denied, Ledgers, Reserve, Reserved};

/// Work for a core: ledger operations for the keys it owns, and answers
/// to the reservations it asked of other cores.
pub enum LedgerMsg {
    /// Reserve; the answer goes to `reply`.
    Reserve(Reserve, ReplyTo),
    /// The answer to a reservation this core asked for.
    Answer {
        /// The asking request's slot in this core's [`Waiting`].
        slot: u32,
        /// The owner's verdict.
        result: Result<Reserved, Denied>,
    },
    /// Settle, release or un-count.
    Adjust(Adjust),
    /// Read today's spend.
    Query {
        /// Key id.
        key: Arc<str>,
        /// UTC day.
        day: u32,
        /// Answer.
        reply: oneshot::Sender<u64>,
    },
}

/// Where a reservation's answer goes: a core and its request's slot.
#[derive(Debug, Clone, Copy)]
pub struct ReplyTo {
    core: usize,
    slot: u32,
}

impl ReplyTo {
    /// Sends `result` to the asking core. An asking core that is gone has
    /// no request left to answer; a granted reservation then stays counted
    /// (never less than was spent).
    fn answer(self, ledgers: &Ledgers, result: Result<Reserved, Denied>) {
        if let Some(mailbox) = ledgers.mailboxes.get(self.core) {
            mailbox.send(LedgerMsg::Answer { slot: self.slot, result });
        }
    }
}

/// The sending side of a core's inbox. Cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct Mailbox {
    tx: Sender<LedgerMsg>,
    waker: Arc<AtomicWaker>,
    closed: Arc<AtomicBool>,
}

/// The receiving side, owned by the core.
pub struct Inbox {
    rx: Receiver<LedgerMsg>,
    waker: Arc<AtomicWaker>,
    /// Set once the core stops serving (its last drain refuses what is queued).
    closed: Arc<AtomicBool>,
}

/// One mailbox/inbox pair per core.
pub fn pairs(cores: usize) -> (Vec<Mailbox>, Vec<Inbox>) {
    (0..cores)
        .map(|_| {
            let (tx, rx) = crossbeam_channel::unbounded();
            let waker = Arc::new(AtomicWaker::new());
            let closed = Arc::new(AtomicBool::new(false));
            (Mailbox { tx, waker: Arc::clone(&waker), closed: Arc::clone(&closed) }, Inbox { rx, waker, closed })
        })
        .unzip()
}

impl Mailbox {
    /// Sends a message and wakes the owner. `false` when the owner is gone.
    pub fn send(&self, msg: LedgerMsg) -> bool {
        let sent = self.tx.send(msg).is_ok();
        if sent {
            self.waker.wake();
        }
        sent
    }

    /// After a successful [`send`](Self::send) of a reservation: whether
    /// the owner has begun closing. If not, its closing drain will find the
    /// message (the fences pair with [`Inbox::close`]'s), so an answer comes.
    pub fn closed_after_send(&self) -> bool {
        fence(Ordering::SeqCst);
        self.closed.load(Ordering::Relaxed)
    }
}

const BUDGET: usize = 256;

impl Inbox {
    /// Serves messages for the core `ledgers` belongs to, for as long as
    /// the core runs (`ledgers` holds this core's own mailbox, so the
    /// channel never closes under it).
    ///
    /// The inbox closes however the serving ends: the core's runtime
    /// dropping the task (even one never polled, as when a core stops
    /// before its first turn), or a panic unwinding it. So no reservation
    /// queued for this core is left unanswered.
    pub fn serve(self, ledgers: Ledgers) -> impl std::future::Future<Output = ()> {
        /// Owns the inbox while it serves; closes it when dropped.
        struct Serving(Inbox, Ledgers);
        impl Drop for Serving {
            fn drop(&mut self) {
                self.0.close(&self.1);
            }
        }
        // Built now, not on the first poll: an unpolled task still closes.
        let serving = Serving(self, ledgers);
        async move {
            let Serving(inbox, ledgers) = &serving;
            poll_fn(|cx| {
                inbox.waker.register(cx.waker());
                for _ in 0..BUDGET {
                    match inbox.rx.try_recv() {
                        Ok(msg) => handle(ledgers, msg),
                        Err(TryRecvError::Empty) => return Poll::Pending,
                        Err(TryRecvError::Disconnected) => return Poll::Ready(()),
                    }
                }
                cx.waker().wake_by_ref(); // yield to other tasks, then continue
                Poll::Pending
            })
            .await;
        }
    }

    /// Stops serving: marks the inbox closed, then refuses every reservation
    /// still queued, so no request waits on an answer that will not come.
    /// Reservations sent after this see the mark and are refused by their
    /// sender; other queued work (settlements, queries) is dropped.
    pub fn close(&self, ledgers: &Ledgers) {
        self.closed.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        while let Ok(msg) = self.rx.try_recv() {
            if let LedgerMsg::Reserve(_, reply) = msg {
                reply.answer(ledgers, Err(Denied::OwnerUnavailable));
            }
        }
    }
}

fn handle(ledgers: &Ledgers, msg: LedgerMsg) {
    match msg {
        LedgerMsg::Reserve(r, reply) => {
            let result = ledgers.local.borrow_mut().reserve(&r);
            reply.answer(ledgers, result);
        }
        LedgerMsg::Answer { slot, result } => ledgers.waiting.answer(slot, result),
        LedgerMsg::Adjust(a) => ledgers.local.borrow_mut().adjust(&a),
        LedgerMsg::Query { key, day, reply } => {
            let _ = reply.send(ledgers.local.borrow().spent(&key, day));
        }
    }
}

/// The reservations one core's requests are waiting on, by slot. Core-local
/// (`!Send`): only that core's requests and drain task touch it.
#[derive(Default)]
pub struct Waiting {
    slots: RefCell<Slots>,
}

#[derive(Default)]
struct Slots {
    slots: Vec<Slot>,
    free: Vec<u32>,
}

#[derive(Default)]
enum Slot {
    #[default]
    Free,
    /// Asked; the waker of the request once it has been polled.
    Asked(Option<Waker>),
    /// Answered, not yet taken.
    Answered(Result<Reserved, Denied>),
    /// The request went away before its answer came.
    Abandoned,
}

impl Slots {
    fn release(&mut self, slot: u32) {
        self.slots[slot as usize] = Slot::Free;
        self.free.push(slot);
    }
}

impl Waiting {
    /// Opens a slot for a reservation about to be sent; [`Answer`] waits
    /// on it. `None` when 2³² requests are waiting already.
    pub(super) fn open(&self) -> Option<Answer<'_>> {
        let mut s = self.slots.borrow_mut();
        let slot = match s.free.pop() {
            Some(i) => i,
            None => {
                let next = u32::try_from(s.slots.len()).ok()?;
                s.slots.push(Slot::Free);
                next
            }
        };
        s.slots[slot as usize] = Slot::Asked(None);
        Some(Answer { waiting: self, slot, done: false })
    }

    /// Records the owner's answer and wakes the request waiting on it.
    fn answer(&self, slot: u32, result: Result<Reserved, Denied>) {
        let waker = {
            let mut s = self.slots.borrow_mut();
            let Some(entry) = s.slots.get_mut(slot as usize) else { return };
            match std::mem::take(entry) {
                Slot::Asked(waker) => {
                    *entry = Slot::Answered(result);
                    waker
                }
                // Nobody will take it (the reservation stays counted).
                Slot::Abandoned => {
                    s.release(slot);
                    None
                }
                // Not asked: no such request. Cannot happen while each core
                // serves its inbox with the `Ledgers` its requests use.
                other => {
                    debug_assert!(false, "an answer for slot {slot}, which no request is waiting on");
                    *entry = other;
                    None
                }
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// How many slots are open (asked and not yet taken or released).
    pub fn open_slots(&self) -> usize {
        let s = self.slots.borrow();
        s.slots.len() - s.free.len()
    }
}

/// A request's wait for its reservation's answer.
pub(super) struct Answer<'a> {
    waiting: &'a Waiting,
    slot: u32,
    done: bool,
}

impl Answer<'_> {
    /// The slot to name in the request.
    pub(super) fn reply_to(&self, core: usize) -> ReplyTo {
        ReplyTo { core, slot: self.slot }
    }

    /// Gives up (the message could not be sent): the slot is free again.
    pub(super) fn cancel(mut self) {
        self.done = true;
        self.waiting.slots.borrow_mut().release(self.slot);
    }

    fn poll_answer(&mut self, cx: &mut Context<'_>) -> Poll<Result<Reserved, Denied>> {
        let mut s = self.waiting.slots.borrow_mut();
        let entry = &mut s.slots[self.slot as usize];
        match std::mem::take(entry) {
            Slot::Answered(result) => {
                s.release(self.slot);
                self.done = true;
                Poll::Ready(result)
            }
            Slot::Asked(_) => {
                *entry = Slot::Asked(Some(cx.waker().clone()));
                Poll::Pending
            }
            other => {
                *entry = other;
                Poll::Pending
            }
        }
    }

    /// Waits for the answer.
    pub(super) async fn wait(mut self) -> Result<Reserved, Denied> {
        poll_fn(|cx| self.poll_answer(cx)).await
    }
}

impl Drop for Answer<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut s = self.waiting.slots.borrow_mut();
        match std::mem::take(&mut s.slots[self.slot as usize]) {
            // Answered but never taken: the reservation stays counted.
            Slot::Answered(_) => s.release(self.slot),
            // The answer is still on its way: free the slot when it comes.
            _ => s.slots[self.slot as usize] = Slot::Abandoned,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::sync::Arc;

    use super::*;
    use crate::ledger::Ledger;

    fn runtime() -> monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>> {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().expect("monoio runtime")
    }

    /// Core 0's and core 1's inboxes, and both mailboxes.
    fn two_cores() -> (Inbox, Inbox, Arc<[Mailbox]>) {
        let (mailboxes, mut inboxes) = pairs(2);
        let inbox1 = inboxes.pop().expect("two");
        let inbox0 = inboxes.pop().expect("two");
        (inbox0, inbox1, Arc::from(mailboxes))
    }

    fn reserve(key: &Arc<str>, cost: u64, cap: u64) -> Reserve {
        Reserve { key: Arc::clone(key), day: 20_000, cost, cap, max_calls: None, dedupe: None }
    }

    #[test]
    fn a_dropped_request_frees_its_slot_once_the_answer_comes() {
        let w = Waiting::default();
        let asked = w.open().unwrap();
        let slot = asked.slot;
        drop(asked);
        assert_eq!(w.open_slots(), 1, "held until the answer comes, so the slot is not reused under it");
        let other = w.open().unwrap();
        assert_ne!(other.slot, slot);
        w.answer(slot, Ok(Reserved::Fresh { first_ms: 0 }));
        assert_eq!(w.open_slots(), 1, "only the live request's slot is left");
        // Answered but never taken: freed when the request goes.
        w.answer(other.slot, Err(Denied::OverCap { spent: 1 }));
        drop(other);
        assert_eq!(w.open_slots(), 0);
        let reused = w.open().unwrap();
        assert!(reused.slot < 2, "freed slots are reused");
    }

    #[test]
    fn a_reservation_fails_closed_when_the_owner_is_gone() {
        let (mailboxes, mut inboxes) = pairs(2);
        drop(inboxes.pop()); // core 1's inbox
        let ledgers = Ledgers::new(0, Rc::new(RefCell::new(Ledger::default())), Arc::from(mailboxes));
        let key: Arc<str> = Arc::from("k");
        let got = runtime().block_on(ledgers.reserve(1, reserve(&key, 1, 100)));
        assert_eq!(got, Err(Denied::OwnerUnavailable));
        assert_eq!(ledgers.waiting().open_slots(), 0);
    }

    #[test]
    fn a_core_that_stops_refuses_what_is_queued_and_what_comes_after() {
        // Both cores' ledgers on one thread: core 1 never serves its inbox
        // (a core that stopped with the request queued), then closes it.
        let (inbox0, inbox1, mailboxes) = two_cores();
        let ledgers0 = Ledgers::new(0, Rc::new(RefCell::new(Ledger::default())), Arc::clone(&mailboxes));
        let ledgers1 = Ledgers::new(1, Rc::new(RefCell::new(Ledger::default())), mailboxes);
        let key: Arc<str> = Arc::from("k");
        let (queued, after) = runtime().block_on(async {
            monoio::spawn(inbox0.serve(ledgers0.clone()));
            let (l, k) = (ledgers0.clone(), Arc::clone(&key));
            let waiting = monoio::spawn(async move { l.reserve(1, reserve(&k, 1, 100)).await });
            monoio::time::sleep(std::time::Duration::from_millis(20)).await;
            assert_eq!(ledgers0.waiting().open_slots(), 1, "sent and waiting");
            inbox1.close(&ledgers1);
            let queued = waiting.await;
            let after = ledgers0.reserve(1, reserve(&key, 1, 100)).await;
            (queued, after)
        });
        assert_eq!(queued, Err(Denied::OwnerUnavailable), "the queued reservation is refused");
        assert_eq!(after, Err(Denied::OwnerUnavailable), "one sent after the close is refused by its sender");
        assert_eq!(ledgers1.local.borrow().spent(&key, 20_000), 0, "nothing was counted");
        assert!(ledgers0.waiting().open_slots() <= 1, "at most the late sender's slot, left to an answer that may still come");
    }

    #[test]
    fn a_core_that_stops_before_its_inbox_is_first_polled_still_refuses_what_is_queued() {
        // Core 1 stops before its runtime ever polled its inbox task (a
        // listener it could not adopt): the reservation queued for it in
        // that instant is answered, not left waiting.
        let (inbox0, inbox1, mailboxes) = two_cores();
        let ledgers0 = Ledgers::new(0, Rc::new(RefCell::new(Ledger::default())), Arc::clone(&mailboxes));
        let ledgers1 = Ledgers::new(1, Rc::new(RefCell::new(Ledger::default())), mailboxes);
        let key: Arc<str> = Arc::from("k");
        let queued = runtime().block_on(async {
            monoio::spawn(inbox0.serve(ledgers0.clone()));
            let (l, k) = (ledgers0.clone(), Arc::clone(&key));
            let waiting = monoio::spawn(async move { l.reserve(1, reserve(&k, 1, 100)).await });
            monoio::time::sleep(std::time::Duration::from_millis(20)).await;
            assert_eq!(ledgers0.waiting().open_slots(), 1, "sent and waiting");
            drop(inbox1.serve(ledgers1.clone())); // created, never polled
            monoio::time::timeout(std::time::Duration::from_secs(5), waiting).await.ok()
        });
        assert_eq!(queued, Some(Err(Denied::OwnerUnavailable)), "the queued reservation is refused, promptly");
        assert_eq!(ledgers1.local.borrow().spent(&key, 20_000), 0, "nothing was counted");
    }

    #[test]
    fn cross_core_answers_come_back_through_the_asking_cores_inbox() {
        let (inbox0, inbox1, mailboxes) = two_cores();
        let (stop, stopped) = oneshot::channel::<()>();
        let m1 = Arc::clone(&mailboxes);
        let core1 = std::thread::spawn(move || {
            runtime().block_on(async move {
                monoio::spawn(inbox1.serve(Ledgers::new(1, Rc::new(RefCell::new(Ledger::default())), m1)));
                let _ = stopped.await;
            });
        });
        let local = Rc::new(RefCell::new(Ledger::default()));
        let ledgers = Ledgers::new(0, Rc::clone(&local), Arc::clone(&mailboxes));
        let key: Arc<str> = Arc::from("key_on_core_1");
        let (granted, denied, spent) = runtime().block_on(async {
            monoio::spawn(inbox0.serve(ledgers.clone()));
            // 40 requests at once, each $1 against a $25 cap: 25 fit.
            let tasks: Vec<_> = (0..40)
                .map(|_| {
                    let (l, k) = (ledgers.clone(), Arc::clone(&key));
                    monoio::spawn(async move { l.reserve(1, reserve(&k, 1_000_000, 25_000_000)).await })
                })
                .collect();
            let (mut granted, mut denied) = (0, 0);
            for t in tasks {
                match t.await {
                    Ok(Reserved::Fresh { .. }) => granted += 1,
                    Err(Denied::OverCap { spent }) => {
                        assert_eq!(spent, 25_000_000);
                        denied += 1;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            let spent = crate::ledger::query_spent(&mailboxes, &key, 1, 20_000).await;
            (granted, denied, spent)
        });
        assert_eq!((granted, denied), (25, 15));
        assert_eq!(spent, Some(25_000_000), "counted on the owner");
        assert_eq!(local.borrow().spent(&key, 20_000), 0, "nothing counted on the asking core");
        assert_eq!(ledgers.waiting().open_slots(), 0, "every slot given back");
        let _ = stop.send(());
        core1.join().expect("core 1 stops");
    }
}
