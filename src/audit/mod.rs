//! The audit log: the versioned rkyv event schema ([`event`]), the
//! group-commit writer thread that also keeps the per-day spend totals
//! ([`writer`]) and checkpoints them ([`spend`]), batched per-core durability acknowledgements ([`acks`]),
//! and time-range queries ([`query`]).

pub mod acks;
pub mod event;
pub mod export;
pub mod query;
pub mod spend;
pub mod writer;

pub use event::{AuditEvent, Decision, EventKind};
pub use writer::{AuditSink, Durability};
