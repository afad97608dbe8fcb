//! The reads the patched monoio (vendor/monoio/CAPGATE-PATCH.md) must keep
//! right on the epoll driver, which capgate serves on by default: a short read
//! on a stream clears its readable mark, and nothing may be lost for it.
//! Each test runs against real loopback sockets and fails by timing out if a
//! read waits for an edge that never comes.

use std::io::Write;
use std::net::{Shutdown, TcpListener};
use std::thread;
use std::time::Duration;

use monoio::io::AsyncReadRent;

const PATIENCE: Duration = Duration::from_secs(5);

fn run<F: std::future::Future>(f: F) -> F::Output {
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("epoll runtime")
        .block_on(f)
}

/// A listener whose one connection is handed to `peer` on its own thread.
fn peer(peer: impl FnOnce(std::net::TcpStream) + Send + 'static) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        peer(stream);
    });
    addr
}

async fn read_some<S: AsyncReadRent>(stream: &mut S) -> Vec<u8> {
    let (res, buf) = monoio::time::timeout(PATIENCE, stream.read(Vec::with_capacity(4096)))
        .await
        .expect("a read waited for an edge that never came");
    res.expect("read");
    buf
}

/// Writes `first`, then, once the reader has said it read it (and 50 ms
/// more, so that its next read is already waiting), `second`.
fn write_twice(w: &mut impl Write, first: &[u8], read_first: &std::sync::mpsc::Receiver<()>, second: &[u8]) {
    w.write_all(first).unwrap();
    read_first.recv_timeout(PATIENCE).unwrap();
    thread::sleep(Duration::from_millis(50));
    w.write_all(second).unwrap();
}

#[test]
fn a_read_after_a_short_read_waits_for_the_next_bytes() {
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let addr = peer(move |mut s| {
        // The second write comes only after the client's first read.
        write_twice(&mut s, b"hello", &wait, b"world");
    });
    run(async move {
        let mut stream = monoio::net::TcpStream::connect(addr).await.unwrap();
        assert_eq!(read_some(&mut stream).await, b"hello");
        go.send(()).unwrap();
        // The socket is empty now; this read must wait for the second write.
        assert_eq!(read_some(&mut stream).await, b"world");
        assert_eq!(read_some(&mut stream).await, b"", "then end of stream");
    });
}

#[test]
fn a_read_that_fills_the_buffer_leaves_the_rest_readable() {
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let (written, sent) = std::sync::mpsc::channel::<()>();
    let addr = peer(move |mut s| {
        s.write_all(&[7u8; 10_000]).unwrap();
        written.send(()).unwrap();
        // Silent and open: no new edge comes while the client reads the rest.
        let _ = wait.recv_timeout(Duration::from_secs(30));
    });
    run(async move {
        let mut stream = monoio::net::TcpStream::connect(addr).await.unwrap();
        // All 10,000 bytes are in the socket (a loopback write returns once
        // they are queued at the reader), and the driver sees their edge, first.
        sent.recv_timeout(Duration::from_secs(30)).expect("the peer wrote");
        monoio::time::sleep(Duration::from_millis(200)).await;
        let mut sizes = Vec::new();
        while sizes.iter().sum::<usize>() < 10_000 {
            let part = read_some(&mut stream).await;
            assert_eq!(part.capacity(), 4096);
            sizes.push(part.len());
        }
        assert_eq!(sizes, vec![4096, 4096, 1808], "two full reads, then the short one");
        done.send(()).unwrap();
    });
}

#[test]
fn an_end_of_stream_that_came_with_the_data_ends_the_next_read() {
    let (written, sent) = std::sync::mpsc::channel::<()>();
    let addr = peer(move |mut s| {
        s.write_all(b"last words").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        written.send(()).unwrap();
        thread::sleep(Duration::from_secs(10));
    });
    run(async move {
        let mut stream = monoio::net::TcpStream::connect(addr).await.unwrap();
        // Let the data and the FIN both arrive, and the driver see them in
        // one epoll pass, before the first read.
        sent.recv_timeout(Duration::from_secs(30)).expect("the peer wrote and shut down");
        monoio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(read_some(&mut stream).await, b"last words");
        // No new edge will come: the closed mark must still be set.
        assert_eq!(read_some(&mut stream).await, b"");
    });
}

#[test]
fn a_large_body_arrives_whole_through_full_and_short_reads() {
    let body: Vec<u8> = (0..(1 << 20)).map(|i: u32| (i % 251) as u8).collect();
    let sent = body.clone();
    let addr = peer(move |mut s| {
        for chunk in sent.chunks(1000) {
            s.write_all(chunk).unwrap();
        }
    });
    let got = run(async move {
        let mut stream = monoio::net::TcpStream::connect(addr).await.unwrap();
        let mut got = Vec::new();
        loop {
            let part = read_some(&mut stream).await;
            if part.is_empty() {
                break got;
            }
            got.extend_from_slice(&part);
        }
    });
    assert!(got == body, "{} of {} bytes, or out of order", got.len(), body.len());
}

#[test]
fn a_short_datagram_read_leaves_the_queued_datagrams_readable() {
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    run(async move {
        let socket = monoio::net::udp::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = socket.local_addr().unwrap();
        sender.send_to(b"a", to).unwrap();
        sender.send_to(b"bb", to).unwrap();
        monoio::time::sleep(Duration::from_millis(200)).await;
        for want in [&b"a"[..], b"bb"] {
            let (res, buf) = monoio::time::timeout(PATIENCE, socket.recv(vec![0u8; 1024]))
                .await
                .expect("a queued datagram was left unread");
            let n = res.unwrap();
            assert_eq!(&buf[..n], want);
        }
    });
}

#[test]
fn a_unix_stream_read_after_a_short_read_waits_for_the_next_bytes() {
    // The bench's pacer hands tickets over a Unix stream: the patch clears
    // its readable mark after a short read too.
    let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let writer = thread::spawn(move || {
        write_twice(&mut ours, b"first", &wait, b"second");
        // Dropping our end closes the stream.
    });
    run(async move {
        let mut stream = monoio::net::UnixStream::from_std(theirs).unwrap();
        assert_eq!(read_some(&mut stream).await, b"first");
        go.send(()).unwrap();
        assert_eq!(read_some(&mut stream).await, b"second", "the read after the short one waits for the next write");
        assert_eq!(read_some(&mut stream).await, b"", "then end of stream");
    });
    writer.join().unwrap();
}

#[test]
fn a_cancelable_read_waits_after_a_short_read_and_still_cancels() {
    use monoio::io::{CancelableAsyncReadRent, Canceller};
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let addr = peer(move |mut s| {
        write_twice(&mut s, b"one", &wait, b"two");
        thread::sleep(Duration::from_secs(10));
    });
    run(async move {
        let mut stream = monoio::net::TcpStream::connect(addr).await.unwrap();
        let canceller = Canceller::new();
        let (res, buf) = monoio::time::timeout(PATIENCE, stream.cancelable_read(Vec::with_capacity(4096), canceller.handle())).await.expect("the first bytes arrive");
        assert_eq!((res.unwrap(), &buf[..]), (3, &b"one"[..]));
        go.send(()).unwrap();
        // The socket is empty: this read must wait for the peer's second write.
        let (res, buf) = monoio::time::timeout(PATIENCE, stream.cancelable_read(Vec::with_capacity(4096), canceller.handle())).await.expect("a read waited for an edge that never came");
        assert_eq!((res.unwrap(), &buf[..]), (3, &b"two"[..]));
        // Nothing more comes: a read that waits is ended by its canceller, at once.
        let canceller = Canceller::new();
        let handle = canceller.handle();
        let read = stream.cancelable_read(Vec::with_capacity(4096), handle);
        let cancel = async move {
            monoio::time::sleep(Duration::from_millis(50)).await;
            canceller.cancel();
        };
        let ((res, _), ()) = monoio::time::timeout(PATIENCE, async { monoio::join!(read, cancel) }).await.expect("a canceled read ends");
        assert!(res.is_err(), "canceled, not read: {res:?}");
    });
}
