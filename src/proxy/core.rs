//! Per-core proxy state: what every core shares read-only ([`Shared`]) and
//! what one core owns ([`CoreCtx`]: its ledger handle, upstream pool,
//! audit acknowledgements and request-id counter).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::audit::acks::CoreAcks;
use crate::audit::{AuditSink, Durability};
use crate::http1::Limits;
use crate::keys::registry::KeyRegistry;
use crate::ledger::Ledgers;
use crate::pricing::CompiledPrices;
use crate::vendors::Vendors;

use super::upstream::Pool;

/// State shared by all cores (read-only or internally synchronised).
pub struct Shared {
    /// Vault keys.
    pub registry: Arc<KeyRegistry>,
    /// Vendors and their resolved addresses.
    pub vendors: Arc<Vendors>,
    /// Audit event sink.
    pub audit: AuditSink,
    /// Audit durability (sync waits for the fsync before answering).
    pub durability: Durability,
    /// Compiled price tables.
    pub prices: Arc<CompiledPrices>,
    /// Request limits.
    pub limits: Limits,
    /// Upstream connect timeout.
    pub connect_timeout: Duration,
    /// Upstream answer timeout.
    pub response_timeout: Duration,
    /// Client idle timeout.
    pub idle_timeout: Duration,
    /// TLS client configuration for vendors.
    pub tls: Arc<rustls::ClientConfig>,
    /// Forward zero-cost calls while the audit log is unwritable.
    pub free_calls_when_audit_down: bool,
    /// Duplicate-charge guard window (0 = off).
    pub duplicate_window_ms: u64,
    /// Random per-process prefix for request ids.
    pub boot_id: u32,
}

/// One core's proxy context.
pub struct CoreCtx {
    /// Shared state.
    pub shared: Arc<Shared>,
    /// Spend ledgers (own + mailboxes).
    pub ledgers: Ledgers,
    /// Idle upstream connections.
    pub pool: RefCell<Pool>,
    /// Waiters for this core's audit events to be durable.
    pub acks: Rc<CoreAcks>,
    /// This core's empty string, for audit events' unset shared strings
    /// (see [`crate::audit::AuditEvent::blank`]).
    pub empty: Arc<str>,
    core: usize,
    counter: Cell<u64>,
}

impl CoreCtx {
    /// A context for `core`.
    pub fn new(core: usize, shared: Arc<Shared>, ledgers: Ledgers) -> CoreCtx {
        CoreCtx { shared, ledgers, pool: RefCell::new(Pool::default()), acks: Rc::new(CoreAcks::new()), empty: Arc::from(""), core, counter: Cell::new(0) }
    }

    /// A request id unique within this process run (and very likely across
    /// runs), shared by the request's audit events.
    pub fn next_request_id(&self) -> Arc<str> {
        let n = self.counter.get();
        self.counter.set(n + 1);
        let mut id = String::with_capacity(24);
        id.push_str("req_");
        push_hex(&mut id, u64::from(self.shared.boot_id), 8);
        push_hex(&mut id, (self.core & 0xff) as u64, 2);
        push_hex(&mut id, n, 10);
        Arc::from(id)
    }
}

/// Appends `v` in lowercase hex, zero-padded to at least `width` digits
/// (like `{:0width$x}`, without the formatting machinery: one per request).
fn push_hex(out: &mut String, v: u64, width: usize) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let len = ((64 - v.leading_zeros() as usize).div_ceil(4)).max(width).max(1);
    for i in (0..len).rev() {
        let nibble = if i < 16 { (v >> (i * 4)) & 0xf } else { 0 };
        out.push(DIGITS[nibble as usize] as char);
    }
}

#[cfg(test)]
mod tests {
    use super::push_hex;

    #[test]
    fn hex_matches_the_format_macro() {
        for (v, w) in [(0u64, 8), (0, 2), (0xab, 2), (0x1f, 8), (u64::from(u32::MAX), 8), (0x12_3456_7890, 10), (u64::MAX, 10), (1 << 40, 10)] {
            let mut s = String::new();
            push_hex(&mut s, v, w);
            assert_eq!(s, format!("{v:0w$x}"));
        }
    }
}
