//! Pure request policy: canonical paths, endpoint allowlists and parameter globs.
//! No I/O; every function here is safe on arbitrary input and is fuzzed.

pub mod allowlist;
pub mod glob;
pub mod path;

pub use allowlist::{Allowlist, EndpointRule, PatternError};
pub use glob::{any_match, glob_match};
pub use path::{canonicalize, split_vendor, PathError};
