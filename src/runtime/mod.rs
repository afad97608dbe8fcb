//! Thread-per-core runtime: SO_REUSEPORT listeners (one per worker, so the
//! kernel spreads connections), worker threads each running their own
//! monoio runtime with the configured driver, and helpers to run control
//! threads (admin API, demo vendor) on a runtime of their own.

pub mod serve;

use std::future::Future;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::Driver;

/// Binds `count` listeners on the same address with SO_REUSEPORT. Port 0
/// picks a free port once and binds the rest to it.
///
/// # Errors
/// Bind or listen failures, with the address.
pub fn bind_reuseport(addr: SocketAddr, count: usize) -> Result<Vec<TcpListener>, String> {
    let mut out = Vec::with_capacity(count);
    let mut target = addr;
    for _ in 0..count.max(1) {
        let s = Socket::new(Domain::for_address(target), Type::STREAM, Some(Protocol::TCP)).map_err(|e| format!("socket: {e}"))?;
        s.set_reuse_address(true).map_err(|e| format!("SO_REUSEADDR: {e}"))?;
        s.set_reuse_port(true).map_err(|e| format!("SO_REUSEPORT: {e}"))?;
        s.set_nonblocking(true).map_err(|e| format!("nonblocking: {e}"))?;
        s.bind(&target.into()).map_err(|e| format!("cannot listen on {target}: {e}"))?;
        s.listen(4096).map_err(|e| format!("listen on {target}: {e}"))?;
        let l: TcpListener = s.into();
        target = l.local_addr().map_err(|e| format!("local_addr: {e}"))?;
        out.push(l);
    }
    Ok(out)
}

/// Runs `make()`'s future to completion on a new monoio runtime of the
/// chosen driver, on the current thread.
///
/// # Errors
/// When the runtime cannot be built (e.g. io_uring forced but blocked).
pub fn block_on<F, Fut>(driver: Driver, make: F) -> Result<Fut::Output, String>
where
    F: FnOnce() -> Fut,
    Fut: Future,
{
    match driver {
        Driver::Auto => monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .enable_timer()
            .build()
            .map(|mut rt| rt.block_on(make()))
            .map_err(|e| format!("runtime: {e}")),
        Driver::IoUring => monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .enable_timer()
            .with_entries(1024)
            .build()
            .map(|mut rt| rt.block_on(make()))
            .map_err(|e| format!("io_uring runtime: {e}")),
        Driver::Epoll => monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .map(|mut rt| rt.block_on(make()))
            .map_err(|e| format!("epoll runtime: {e}")),
    }
}

/// Spawns a named thread that runs a monoio runtime.
///
/// # Errors
/// When the thread cannot be spawned.
pub fn spawn_runtime_thread<F, Fut>(name: String, driver: Driver, make: F) -> Result<std::thread::JoinHandle<()>, String>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let thread_name = name.clone();
    std::thread::Builder::new()
        .name(thread_name)
        .spawn(move || {
            if let Err(e) = block_on(driver, make) {
                tracing::error!(thread = %name, error = %e, "runtime failed to start");
            }
        })
        .map_err(|e| format!("cannot spawn thread: {e}"))
}

/// Lowers the calling thread's scheduling priority to `nice` (Linux nice
/// values are per thread). Background threads (the view compactor, an
/// interval-mode audit writer) call this so that, sharing a core with a
/// proxy worker, they run in its gaps instead of pre-empting it mid-request.
/// Best effort: a failure is logged and ignored.
pub fn lower_thread_priority(nice: i32) {
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), nice) {
        tracing::debug!(error = %e, nice, "could not lower a background thread's priority");
    }
}
