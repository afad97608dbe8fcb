//! Pure request policy: canonical paths, endpoint allowlists, parameter globs
//! and per-key parameter constraints.
//! No I/O; every function here is safe on arbitrary input and is fuzzed.

pub mod allowlist;
pub mod constraints;
pub mod glob;
pub mod path;

pub use allowlist::{Allowlist, EndpointRule, PatternError};
pub use glob::{any_match, glob_match};
pub use path::{canonicalize, split_vendor, PathError};
