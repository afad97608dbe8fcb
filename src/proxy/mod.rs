//! The data plane: one instance per worker core, sharing nothing mutable
//! with other cores except the read-mostly key registry.
//!
//! Phase chart of one request (each phase's module in brackets):
//!
//! ```text
//! accept ─► read head + body within limits        [server, http1]
//!        ─► route: canonical path, vendor          [route, policy::path]
//!        ─► authenticate the vault key             [keys::registry]
//!        ─► authorise: vendor, allowed_endpoints   [policy::allowlist]
//!        ─► price the call before it leaves        [pricing]
//!        ─► reserve on the key's owning core       [ledger]
//!        ─► swap in the real credential, forward   [route, upstream]
//!        ─► record the audit event (fsync in sync) [audit]
//!        ─► stream the answer back, tapping usage  [handler, http1::conn]
//!        ─► settle the real cost                   [ledger, audit]
//! ```
//!
//! Any phase may refuse with a [`crate::error::Refusal`]; refusals are
//! answered with JSON, never forwarded, and audited like every other call.

pub mod core;
pub mod handler;
pub mod route;
pub mod server;
pub mod upstream;

pub use self::core::{CoreCtx, Shared};
