//! Pacing for the load generator's `--rate` runs, finer than monoio's 1 ms
//! timer: one std thread per generator thread sleeps (with 1 µs of timer
//! slack) until each paced connection's next slot and writes the
//! connection's number to a Unix socket pair; on the generator thread a
//! dispatcher task turns those numbers into tickets its connections wait on.
//! With the timer wheel, every send due within one millisecond left on the
//! same tick, so a paced run arrived in bursts of rate / 1,000.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::poll_fn;
use std::io::Write;
use std::num::NonZeroU64;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use monoio::io::AsyncReadRent;
use monoio::net::UnixStream;

/// When one paced connection sends: every `interval`, from `first`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Its first slot.
    pub first: Instant,
    /// Time between its slots.
    pub interval: Duration,
}

impl Pace {
    /// The pace of connection `conn` (0-based, over all generator threads)
    /// of `connections` sharing `rate` requests per second. Phases are
    /// spread evenly over one interval, so the connections interleave.
    pub fn of(conn: usize, connections: usize, rate: f64, epoch: Instant) -> Pace {
        let connections = connections.max(1);
        // At least 1 µs, so that no rate can make the pacer spin on one instant.
        let interval = Duration::from_secs_f64(connections as f64 / rate.max(1.0)).max(MIN_INTERVAL);
        Pace { first: epoch + interval.mul_f64(conn as f64 / connections as f64), interval }
    }
}

/// Slots closer together than this leave in one write (one wake-up).
const COALESCE: Duration = Duration::from_micros(20);
/// The shortest interval between one connection's slots.
const MIN_INTERVAL: Duration = Duration::from_micros(1);
/// Most tickets written at once (a pacer that fell behind catches up in
/// writes of this many, checking `stop` between them).
const MAX_WRITE: usize = 4096;

/// Starts the pacing thread for one generator thread's connections (`paces[i]`
/// is connection `i`'s); it stops once `stop` is set, or once the other end
/// is dropped. Returns the socket end to hand (as a monoio stream) to
/// [`Tickets::dispatch`].
///
/// # Errors
/// When there are more than 65,536 connections, or the socket pair or the
/// thread cannot be created.
pub fn start(paces: Vec<Pace>, stop: Arc<AtomicBool>) -> std::io::Result<(std::thread::JoinHandle<()>, StdUnixStream)> {
    if paces.len() > super::MAX_CONNECTIONS {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "a pacer numbers at most 65,536 connections"));
    }
    let (mut tx, rx) = StdUnixStream::pair()?;
    let handle = std::thread::Builder::new().name("bench-pacer".into()).spawn(move || {
        // Best effort: without it a sleep may end up to 50 µs late.
        let _ = rustix::thread::set_current_timer_slack(NonZeroU64::new(1_000));
        let mut due: BinaryHeap<Reverse<(Instant, u16)>> = paces.iter().enumerate().map(|(i, p)| Reverse((p.first, i as u16))).collect();
        let mut out: Vec<u8> = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let Some(Reverse((at, _))) = due.peek().copied() else { return };
            let now = Instant::now();
            if at > now + COALESCE {
                std::thread::sleep((at - now).min(Duration::from_millis(100)));
                continue;
            }
            while let Some(Reverse((at, i))) = due.peek().copied() {
                if at > now + COALESCE || out.len() >= 2 * MAX_WRITE {
                    break;
                }
                due.pop();
                out.extend_from_slice(&i.to_le_bytes());
                due.push(Reverse((at + paces[usize::from(i)].interval, i)));
            }
            if tx.write_all(&out).is_err() {
                return;
            }
            out.clear();
        }
    })?;
    Ok((handle, rx))
}

/// One connection's tickets on the generator thread.
#[derive(Default)]
struct Slot {
    tickets: Cell<u32>,
    waker: Cell<Option<Waker>>,
}

/// The generator thread's side: tickets per connection. Not `Send`.
pub struct Tickets {
    slots: Vec<Slot>,
    closed: Cell<bool>,
}

impl Tickets {
    /// Tickets for `n` connections.
    pub fn new(n: usize) -> Tickets {
        Tickets { slots: (0..n).map(|_| Slot::default()).collect(), closed: Cell::new(false) }
    }

    /// Reads the pacer's numbers and hands out tickets until the pacer
    /// stops; then wakes every waiter, whose [`Tickets::wait`] says so.
    pub async fn dispatch(self: Rc<Self>, mut from: UnixStream) {
        let mut buf = vec![0u8; 2 * MAX_WRITE];
        let mut odd: Option<u8> = None;
        loop {
            let (r, b) = from.read(buf).await;
            buf = b;
            let n = match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            for &byte in &buf[..n] {
                match odd.take() {
                    None => odd = Some(byte),
                    Some(lo) => self.give(usize::from(u16::from_le_bytes([lo, byte]))),
                }
            }
        }
        self.closed.set(true);
        for s in &self.slots {
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        }
    }

    fn give(&self, i: usize) {
        if let Some(s) = self.slots.get(i) {
            s.tickets.set(s.tickets.get() + 1);
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        }
    }

    /// Waits for connection `i`'s next ticket: `false` once the pacer has
    /// stopped.
    pub async fn wait(&self, i: usize) -> bool {
        poll_fn(|cx| {
            let Some(s) = self.slots.get(i) else { return Poll::Ready(false) };
            if s.tickets.get() > 0 {
                s.tickets.set(s.tickets.get() - 1);
                return Poll::Ready(true);
            }
            if self.closed.get() {
                return Poll::Ready(false);
            }
            s.waker.set(Some(cx.waker().clone()));
            Poll::Pending
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paced_connections_are_spread_evenly_over_one_interval() {
        let epoch = Instant::now();
        // 4 connections sharing 1,000 req/s: each sends every 4 ms, 1 ms apart.
        let paces: Vec<Pace> = (0..4).map(|c| Pace::of(c, 4, 1000.0, epoch)).collect();
        for (c, p) in paces.iter().enumerate() {
            assert_eq!(p.interval, Duration::from_millis(4));
            assert_eq!(p.first - epoch, Duration::from_millis(c as u64), "connection {c}");
        }
        // A zero rate or no connections still gives a finite pace.
        assert_eq!(Pace::of(0, 0, 0.0, epoch).interval, Duration::from_secs(1));
    }

    #[test]
    fn a_pacer_refuses_more_connections_than_it_can_number() {
        let now = Instant::now();
        let paces = vec![Pace::of(0, 1, 1.0, now); 65_537];
        let e = start(paces, Arc::new(AtomicBool::new(true))).expect_err("65,537 connections do not fit 16 bits");
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        let (pacer, _end) = start(vec![Pace::of(0, 1, 1.0, now); 65_536], Arc::new(AtomicBool::new(true))).expect("65,536 do");
        pacer.join().unwrap();
    }

    #[test]
    fn no_rate_makes_the_pacer_spin_on_one_instant() {
        let p = Pace::of(0, 1, 1e12, Instant::now());
        assert_eq!(p.interval, MIN_INTERVAL);
        // A pacer at that rate still stops when told, having written its tickets.
        let stop = Arc::new(AtomicBool::new(false));
        let (pacer, mut end) = start(vec![p], Arc::clone(&stop)).unwrap();
        let mut got = [0u8; 64];
        let n = std::io::Read::read(&mut end, &mut got).unwrap();
        assert!(n >= 2, "tickets are written, not only queued");
        stop.store(true, Ordering::Relaxed);
        drop(end);
        pacer.join().unwrap();
    }

    #[test]
    fn tickets_arrive_on_each_connections_slots_and_stop_with_the_pacer() {
        let stop = Arc::new(AtomicBool::new(false));
        let epoch = Instant::now() + Duration::from_millis(5);
        // Two connections, 2,000 req/s between them: each every 1 ms, 0.5 ms apart.
        let paces: Vec<Pace> = (0..2).map(|c| Pace::of(c, 2, 2000.0, epoch)).collect();
        let (pacer, end) = start(paces.clone(), Arc::clone(&stop)).unwrap();
        let stopper = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                let at = Instant::now();
                stop.store(true, Ordering::Relaxed);
                at
            })
        };
        let when = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().unwrap().block_on(async move {
            let tickets = Rc::new(Tickets::new(2));
            end.set_nonblocking(true).unwrap();
            monoio::spawn(Rc::clone(&tickets).dispatch(UnixStream::from_std(end).unwrap()));
            let mut when: Vec<(Instant, usize)> = Vec::new();
            // Take connection 0's and 1's tickets in turn, as their slots alternate.
            'outer: loop {
                for c in 0..2 {
                    if !tickets.wait(c).await {
                        break 'outer;
                    }
                    when.push((Instant::now(), c));
                }
            }
            when
        });
        let stopped_at = stopper.join().unwrap();
        pacer.join().unwrap();
        // Each connection's k-th ticket arrives no earlier than its k-th slot
        // (less the coalescing window): a loaded machine can only delay one.
        let mut counts = [0u32; 2];
        for (at, c) in &when {
            let slot = paces[*c].first + paces[*c].interval * counts[*c];
            assert!(*at + COALESCE >= slot, "connection {c}'s ticket {} came {:?} before its slot", counts[*c], slot - *at);
            counts[*c] += 1;
        }
        // Tickets stop with the pacer: slots after the stop get none. The
        // pacer looks ahead by the coalescing window, and may have read the
        // clock a little after the stop, between its check of `stop` and its
        // pass: 25 slots (25 ms) of slack for a preemption there.
        let due = |c: usize| stopped_at.saturating_duration_since(paces[c].first).as_micros() / paces[c].interval.as_micros() + 25;
        for (c, &n) in counts.iter().enumerate() {
            assert!(n >= 1 && u128::from(n) <= due(c), "connection {c}: {n} tickets, {} slots due by the stop", due(c));
        }
    }
}
