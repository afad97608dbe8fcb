//! Cross-core ledger messages: a crossbeam channel per core plus an atomic
//! waker, so a core's drain task sleeps until another core (or the admin
//! thread) sends it work. Replies travel on oneshot channels.

use std::cell::RefCell;
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;

use atomic_waker::AtomicWaker;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use futures_channel::oneshot;

use super::{Adjust, Denied, Ledger, Reserve, Reserved};

/// Work for a key's owning core.
pub enum LedgerMsg {
    /// Reserve; the answer goes back on the oneshot.
    Reserve(Reserve, oneshot::Sender<Result<Reserved, Denied>>),
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

/// The sending side of a core's inbox. Cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct Mailbox {
    tx: Sender<LedgerMsg>,
    waker: Arc<AtomicWaker>,
}

/// The receiving side, owned by the core.
pub struct Inbox {
    rx: Receiver<LedgerMsg>,
    waker: Arc<AtomicWaker>,
}

/// One mailbox/inbox pair per core.
pub fn pairs(cores: usize) -> (Vec<Mailbox>, Vec<Inbox>) {
    (0..cores)
        .map(|_| {
            let (tx, rx) = crossbeam_channel::unbounded();
            let waker = Arc::new(AtomicWaker::new());
            (Mailbox { tx, waker: Arc::clone(&waker) }, Inbox { rx, waker })
        })
        .unzip()
}

impl Mailbox {
    /// Sends a message and wakes the owner.
    pub fn send(&self, msg: LedgerMsg) {
        if self.tx.send(msg).is_ok() {
            self.waker.wake();
        }
    }
}

const BUDGET: usize = 256;

impl Inbox {
    /// Serves messages against `ledger` for as long as the core runs (a
    /// core's mailboxes live as long as the process, so this never ends).
    pub async fn serve(self, ledger: Rc<RefCell<Ledger>>) {
        poll_fn(|cx| {
            self.waker.register(cx.waker());
            for _ in 0..BUDGET {
                match self.rx.try_recv() {
                    Ok(msg) => handle(&mut ledger.borrow_mut(), msg),
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

fn handle(ledger: &mut Ledger, msg: LedgerMsg) {
    match msg {
        LedgerMsg::Reserve(r, reply) => {
            let _ = reply.send(ledger.reserve(&r));
        }
        LedgerMsg::Adjust(a) => ledger.adjust(&a),
        LedgerMsg::Query { key, day, reply } => {
            let _ = reply.send(ledger.spent(&key, day));
        }
    }
}
