//! HTTP/1.1 framing shared by the proxy, the admin API and the mock vendor:
//! strict head parsing with size limits ([`head`]), strict chunked
//! transfer coding over monoio-http's chunk decoder ([`chunked`]), and a
//! buffered connection that reads bodies and writes or relays answers
//! without buffering whole responses ([`conn`]).
//!
//! Framing rules are deliberately strict (fail closed): a request that carries
//! both `Content-Length` and `Transfer-Encoding`, two different lengths, or any
//! transfer coding other than a lone `chunked` is refused, so no request that
//! could be read two ways is ever forwarded.

pub mod chunked;
pub mod conn;
pub mod head;

pub use conn::{BodyError, Conn};
pub use head::{Framing, HeadError, Limits, RequestHead, ResponseHead};
