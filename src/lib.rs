//! capgate: a self-hosted egress proxy that gives AI agents capped, scoped,
//! revocable vault keys instead of real vendor secrets.
//!
//! The crate reads as a request's path. Data plane (per-core, never blocks):
//! [`runtime`] (workers, listeners) → [`http1`] (framing, limits) → [`proxy`]
//! (route, authenticate, policy, price, reserve, forward, settle, audit) using
//! the pure [`policy`] and [`pricing`] modules and the per-core [`ledger`].
//! Control plane (own threads): [`admin`] (keys and audit HTTP API),
//! [`audit`] (event schema, group-commit writer, queries), [`views`]
//! (compaction thread: spend views, retention) over [`store`]. Tooling:
//! [`mock`] (the demo/test vendor) and [`bench`] (the load harness).
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod admin;
pub mod audit;
pub mod bench;
pub mod clock;
pub mod config;
pub mod error;
pub mod http1;
pub mod keys;
pub mod ledger;
pub mod mock;
pub mod policy;
pub mod pricing;
pub mod proxy;
pub mod runtime;
pub mod store;
pub mod vendors;
pub mod views;
