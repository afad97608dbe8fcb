//! Durability acknowledgements for one proxy core, batched. In `sync` mode a
//! core waits for its reserve and call events to be fsynced. A oneshot per
//! event would cost the writer one cross-thread wake-up (an eventfd write)
//! per event; here each core numbers its waiting events (tickets, in send
//! order), the writer publishes "everything up to ticket N is durable (or
//! failed)" once per core per batch, and a task on the core wakes the local
//! waiters with no further syscalls.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;

use atomic_waker::AtomicWaker;
use crossbeam_channel::{Receiver, Sender};
use futures_channel::oneshot;

use super::writer::AuditSink;
use super::AuditEvent;

/// The writer's side of one core's acknowledgements. `Send + Sync`.
pub struct AckBoard {
    tx: Sender<(u64, bool)>,
    waker: AtomicWaker,
}

impl AckBoard {
    /// Every ticket up to `upto` was written (`ok`) or failed.
    pub(super) fn publish(&self, upto: u64, ok: bool) {
        if self.tx.send((upto, ok)).is_ok() {
            self.waker.wake();
        }
    }
}

/// The core's side: hands out tickets and wakes waiters. Not `Send`.
pub struct CoreAcks {
    board: Arc<AckBoard>,
    rx: Receiver<(u64, bool)>,
    next_ticket: Cell<u64>,
    waiting: RefCell<VecDeque<(u64, oneshot::Sender<bool>)>>,
}

impl Default for CoreAcks {
    fn default() -> Self {
        Self::new()
    }
}

impl CoreAcks {
    /// A fresh set for one core; run [`CoreAcks::dispatch`] on that core.
    pub fn new() -> CoreAcks {
        let (tx, rx) = crossbeam_channel::unbounded();
        CoreAcks { board: Arc::new(AckBoard { tx, waker: AtomicWaker::new() }), rx, next_ticket: Cell::new(0), waiting: RefCell::new(VecDeque::new()) }
    }

    /// Appends `event` and resolves once it is durable (`true`) or could
    /// not be written (`false`).
    pub async fn append_durable(&self, sink: &AuditSink, event: AuditEvent) -> bool {
        let ticket = self.next_ticket.get();
        self.next_ticket.set(ticket + 1);
        let (tx, rx) = oneshot::channel();
        self.waiting.borrow_mut().push_back((ticket, tx));
        sink.append_for_core(event, Arc::clone(&self.board), ticket);
        rx.await.unwrap_or(false)
    }

    /// Wakes waiters as the writer publishes, for as long as the core runs.
    pub async fn dispatch(&self) {
        poll_fn(|cx| {
            self.board.waker.register(cx.waker());
            while let Ok((upto, ok)) = self.rx.try_recv() {
                let mut waiting = self.waiting.borrow_mut();
                while waiting.front().is_some_and(|(t, _)| *t <= upto) {
                    if let Some((_, tx)) = waiting.pop_front() {
                        let _ = tx.send(ok);
                    }
                }
            }
            Poll::<()>::Pending
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;
    use std::time::Duration;

    use super::*;
    use crate::audit::writer::{spawn_in_temp_dir, Durability};

    #[test]
    fn waiters_on_a_core_resolve_once_their_events_are_written() {
        let (_dir, store, sink, handle) = spawn_in_temp_dir(Durability::Sync);
        let answers = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().unwrap().block_on(async {
            let acks = Rc::new(CoreAcks::new());
            let a = Rc::clone(&acks);
            monoio::spawn(async move { a.dispatch().await });
            let mut tasks = Vec::new();
            for i in 0..50u64 {
                let (acks, sink) = (Rc::clone(&acks), sink.clone());
                tasks.push(monoio::spawn(async move {
                    let ev = AuditEvent { request_id: format!("req_{i}").into(), ..AuditEvent::default() };
                    acks.append_durable(&sink, ev).await
                }));
            }
            let mut out = Vec::new();
            for t in tasks {
                out.push(monoio::time::timeout(Duration::from_secs(10), t).await.expect("every waiter is answered"));
            }
            out
        });
        assert_eq!(answers, vec![true; 50]);
        assert_eq!(store.audit.iter().count(), 50, "every acknowledged event is in the log");
        drop(sink);
        handle.join().unwrap();
    }

    #[test]
    fn a_waiter_fails_closed_when_the_writer_is_gone() {
        let (_dir, _store, sink, handle) = spawn_in_temp_dir(Durability::Sync);
        // A second sink on a channel nobody reads stands in for a dead writer.
        let dead = AuditSink::closed_for_tests();
        let answers = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().unwrap().block_on(async {
            let acks = Rc::new(CoreAcks::new());
            let a = Rc::clone(&acks);
            monoio::spawn(async move { a.dispatch().await });
            let ok = acks.append_durable(&sink, AuditEvent::default()).await;
            let lost = monoio::time::timeout(Duration::from_secs(5), acks.append_durable(&dead, AuditEvent::default())).await.expect("answered, not left waiting");
            (ok, lost)
        });
        assert_eq!(answers, (true, false));
        drop(sink);
        handle.join().unwrap();
    }
}
