//! The accept loop and the limits every connection lives under.
//!
//! poem's own `Server` gives a connection unlimited time to send its request
//! head, accepts every connection the kernel hands it, and retries a failing
//! `accept()` at once: out of file descriptors, that is a busy loop that
//! starves the workers while slow clients hold every descriptor. This loop
//! drives the same poem endpoint over hyper, with these rules:
//!
//! * At most `max_connections` connections are open. Beyond that the loop
//!   stops calling `accept()`, so new connections wait in the kernel's listen
//!   backlog (queued, neither refused nor answered) until one closes.
//! * A connection with no request in progress is closed `header_timeout`
//!   after the first byte of a request head that has not completed, and
//!   `idle_timeout` after its last answer (or its opening) if no byte came
//!   or went. A streamed answer (the user import's results) keeps its
//!   connection open while its bytes go out; one its client stops reading
//!   is closed `idle_timeout` after the last byte was written.
//!   A request in progress is never cut by these; its body has its own
//!   deadline, enforced where the body is read (`api::limit_body`).
//! * A failing `accept()` (EMFILE, ENFILE, ENOBUFS…) is retried after a delay
//!   that doubles from [`ACCEPT_BACKOFF_MIN`] to [`ACCEPT_BACKOFF_MAX`].
//! * With TLS, the handshake runs in the connection's own task (a slow
//!   client never holds up the accept loop) and must finish within
//!   `header_timeout`.
//! * At shutdown, accepting stops, each connection finishes the request it
//!   is serving and closes, and whatever is left after the grace period is
//!   dropped.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use poem::endpoint::BoxEndpoint;
use poem::http;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Endpoint as _, Request};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The first wait after a failed `accept()`.
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
/// The longest wait after repeated failed `accept()`s.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How long connections may take and how many may be open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections at most; more wait in the listen backlog.
    pub max_connections: usize,
    /// From the first byte of a request head to its end.
    pub header_timeout: Duration,
    /// Without a request and without a byte, before the connection is closed.
    pub idle_timeout: Duration,
    /// From a request's head to the end of its body.
    pub body_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
        }
    }
}

/// Where connections come from: the TCP listener, or in a test one whose
/// `accept()` fails.
pub(crate) trait Accept: Send + 'static {
    /// The connection's byte stream.
    type Io: AsyncRead + AsyncWrite + Send + Unpin + 'static;
    /// The next connection and its peer's address.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Io, SocketAddr)>> + Send;
}

impl Accept for TcpListener {
    type Io = TcpStream;

    async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
        TcpListener::accept(self).await
    }
}

/// The next connection; failures are logged and retried with a growing
/// delay, never in a tight loop.
async fn accept_with_backoff<A: Accept>(listener: &mut A) -> (A::Io, SocketAddr) {
    let mut delay = ACCEPT_BACKOFF_MIN;
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(error) => {
                // Connection-level errors (the peer reset before we took it)
                // say nothing about our resources; try the next one at once.
                if matches!(error.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset) {
                    continue;
                }
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "accept failed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(ACCEPT_BACKOFF_MAX);
            }
        }
    }
}

/// Serves `endpoint` on `listener` under `limits` (over TLS when `tls` is
/// given) until `shutdown` resolves; then lets connections finish their
/// requests for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    endpoint: BoxEndpoint<'static>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> io::Result<()> {
    let local = LocalAddr(listener.local_addr()?.into());
    serve_from(listener, tls, local, endpoint, limits, shutdown, grace).await;
    Ok(())
}

async fn serve_from<A: Accept>(
    mut listener: A,
    tls: Option<TlsAcceptor>,
    local: LocalAddr,
    endpoint: BoxEndpoint<'static>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let endpoint: Arc<BoxEndpoint<'static>> = Arc::new(endpoint);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let connections = TaskTracker::new();
    let finish = CancellationToken::new();
    let drop_now = CancellationToken::new();
    tokio::pin!(shutdown);
    loop {
        // A slot first: at the cap, nothing is accepted and the kernel queues.
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (io, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = accept_with_backoff(&mut listener) => accepted,
        };
        let connection = Connection {
            endpoint: endpoint.clone(),
            local: local.clone(),
            remote: RemoteAddr(peer.into()),
            scheme: if tls.is_some() { http::uri::Scheme::HTTPS } else { http::uri::Scheme::HTTP },
            limits,
            finish: finish.clone(),
            drop_now: drop_now.clone(),
            _slot: slot,
        };
        match &tls {
            None => connections.spawn(connection.serve(io)),
            Some(acceptor) => connections.spawn(connection.serve_tls(acceptor.clone(), io)),
        };
    }
    drop(listener);
    finish.cancel();
    connections.close();
    if tokio::time::timeout(grace, connections.wait()).await.is_err() {
        tracing::warn!(
            open = connections.len(),
            "connections still open after the shutdown grace period; closing them"
        );
        drop_now.cancel();
        connections.wait().await;
    }
}

/// One accepted connection.
struct Connection {
    endpoint: Arc<BoxEndpoint<'static>>,
    local: LocalAddr,
    remote: RemoteAddr,
    /// `https` on a TLS listener.
    scheme: http::uri::Scheme,
    limits: ConnectionLimits,
    /// Shutdown began: finish the request in progress, take no more.
    finish: CancellationToken,
    /// The grace period is over.
    drop_now: CancellationToken,
    /// Returned to the accept loop when the connection ends.
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    /// The TLS handshake, within the header timeout, then the connection.
    async fn serve_tls(self, acceptor: TlsAcceptor, io: impl AsyncRead + AsyncWrite + Send + Unpin + 'static) {
        let handshake = tokio::select! {
            handshake = tokio::time::timeout(self.limits.header_timeout, acceptor.accept(io)) => handshake,
            _ = self.finish.cancelled() => return,
        };
        match handshake {
            Ok(Ok(stream)) => self.serve(stream).await,
            Ok(Err(error)) => tracing::debug!(remote = %self.remote.0, %error, "TLS handshake failed"),
            Err(_) => tracing::debug!(remote = %self.remote.0, "TLS handshake timed out"),
        }
    }

    async fn serve<Io: AsyncRead + AsyncWrite + Send + Unpin + 'static>(self, io: Io) {
        let Connection { endpoint, local, remote, scheme, limits, finish, drop_now, _slot } = self;
        let _open = crate::metrics::connection_opened();
        let activity = Arc::new(Activity::new());
        let service = hyper::service::service_fn({
            let activity = activity.clone();
            let remote = remote.clone();
            move |request: http::Request<Incoming>| {
                let request_in_progress = activity.request_started();
                let request = Request::from((request, local.clone(), remote.clone(), scheme.clone()));
                let endpoint = endpoint.clone();
                async move {
                    let response = endpoint.get_response(request).await;
                    drop(request_in_progress);
                    Ok::<_, Infallible>(http::Response::<BoxBody<_, _>>::from(response))
                }
            }
        });
        let io = TokioIo::new(Watched { io, activity: activity.clone() });
        let builder = auto::Builder::new(TokioExecutor::new());
        let connection = builder.serve_connection(io, service);
        tokio::pin!(connection);
        let mut finishing = false;
        loop {
            // Recomputed on every turn: a head beginning wakes the watch; a
            // request ending only moves the deadline later, so it needs no wake.
            let deadline = activity.deadline(&limits);
            let wake = deadline.unwrap_or_else(|| Instant::now() + limits.header_timeout.min(limits.idle_timeout));
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = activity.head_began.notified() => {}
                _ = finish.cancelled(), if !finishing => {
                    finishing = true;
                    connection.as_mut().graceful_shutdown();
                }
                _ = drop_now.cancelled() => return,
                _ = tokio::time::sleep_until(wake) => {
                    if activity.deadline(&limits).is_some_and(|at| at <= Instant::now()) {
                        // No request in progress: dropping the connection
                        // closes the socket and loses nothing.
                        tracing::debug!(remote = %remote.0, "closing a stalled or idle connection");
                        return;
                    }
                }
            }
        }
    }
}

/// What the deadlines of one connection depend on. Times are milliseconds
/// since `opened`, so they fit in atomics the byte stream and the request
/// handlers update without a lock.
struct Activity {
    opened: Instant,
    /// Requests whose response is not ready yet.
    in_progress: AtomicUsize,
    /// When the connection last became idle (opened, answered its last
    /// request's head, or wrote a byte of an answer's body since).
    idle_since: AtomicU64,
    /// When the first byte arrived while idle; [`NOT_YET`] if none has.
    head_started: AtomicU64,
    /// Told when `head_started` is set (once per request, not per read).
    head_began: Notify,
}

const NOT_YET: u64 = u64::MAX;

impl Activity {
    fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            in_progress: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(NOT_YET),
            head_began: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(NOT_YET - 1)
    }

    fn at(&self, millis: u64) -> Instant {
        self.opened + Duration::from_millis(millis)
    }

    /// Bytes arrived: if no request is in progress, they start a head.
    fn read(&self) {
        if self.in_progress.load(Ordering::Acquire) == 0 && self.head_started.load(Ordering::Relaxed) == NOT_YET {
            let started = self.head_started.compare_exchange(NOT_YET, self.now(), Ordering::AcqRel, Ordering::Relaxed);
            if started.is_ok() {
                // The deadline moved closer: wake the connection's watch.
                self.head_began.notify_one();
            }
        }
    }

    /// Bytes went out: a body streamed after its head keeps the connection
    /// from being idle while it flows.
    fn wrote(&self) {
        if self.in_progress.load(Ordering::Acquire) == 0 {
            self.idle_since.fetch_max(self.now(), Ordering::AcqRel);
        }
    }

    /// A complete head was handed to the endpoint; idle again when the guard drops.
    fn request_started(self: &Arc<Self>) -> RequestInProgress {
        self.in_progress.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(NOT_YET, Ordering::Release);
        RequestInProgress(self.clone())
    }

    /// When the connection is to be closed, or `None` while a request is in progress.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<Instant> {
        if self.in_progress.load(Ordering::Acquire) > 0 {
            return None;
        }
        match self.head_started.load(Ordering::Acquire) {
            NOT_YET => Some(self.at(self.idle_since.load(Ordering::Acquire)) + limits.idle_timeout),
            started => Some(self.at(started) + limits.header_timeout),
        }
    }
}

struct RequestInProgress(Arc<Activity>);

impl Drop for RequestInProgress {
    fn drop(&mut self) {
        let activity = &self.0;
        // Stamp first, then count down: a deadline computed in between sees
        // the request still in progress, never an old idle time.
        activity.idle_since.store(activity.now(), Ordering::Release);
        activity.in_progress.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connection's byte stream, telling [`Activity`] when bytes arrive.
struct Watched<Io> {
    io: Io,
    activity: Arc<Activity>,
}

impl<Io: AsyncRead + Unpin> AsyncRead for Watched<Io> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Watched<Io> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.wrote();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.wrote();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails `failures` times, then never answers; records when it was asked.
    struct Failing {
        failures: usize,
        asked: Arc<std::sync::Mutex<Vec<Instant>>>,
    }

    impl Accept for Failing {
        type Io = TcpStream;

        async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
            self.asked.lock().expect("lock").push(Instant::now());
            if self.failures == 0 {
                return std::future::pending().await;
            }
            self.failures -= 1;
            Err(io::Error::from_raw_os_error(24)) // EMFILE: too many open files
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_accept_is_retried_after_a_growing_delay_not_in_a_loop() {
        let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut failing = Failing { failures: 12, asked: asked.clone() };
        // Time is paused: it moves only when every task waits, so a loop that
        // retried without waiting would never let this timeout fire.
        let accepted = tokio::time::timeout(Duration::from_secs(60), accept_with_backoff(&mut failing)).await;
        assert!(accepted.is_err(), "nothing to accept");
        let asked = asked.lock().expect("lock").clone();
        assert_eq!(asked.len(), 13, "twelve failures, then a wait for a connection");
        let gaps: Vec<Duration> = asked.windows(2).map(|pair| pair[1] - pair[0]).collect();
        assert_eq!(gaps[0], ACCEPT_BACKOFF_MIN);
        assert!(gaps.windows(2).all(|pair| pair[1] >= pair[0]), "the delay never shrinks: {gaps:?}");
        assert_eq!(*gaps.last().expect("gaps"), ACCEPT_BACKOFF_MAX, "and stops growing at the maximum");
    }

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            max_connections: 1,
            header_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(7),
            body_timeout: Duration::from_secs(3),
        }
    }

    #[test]
    fn deadlines_follow_the_request_in_progress() {
        let limits = limits();
        let activity = Arc::new(Activity::new());
        let opened = activity.opened;
        assert_eq!(activity.deadline(&limits), Some(opened + limits.idle_timeout), "idle from the opening");
        activity.read();
        let head = activity.deadline(&limits).expect("a deadline");
        assert!(head <= Instant::now() + limits.header_timeout, "a started head has the header timeout");
        let request = activity.request_started();
        activity.read(); // the body
        assert_eq!(activity.deadline(&limits), None, "never cut a request in progress");
        drop(request);
        let idle = activity.deadline(&limits).expect("a deadline");
        assert!(idle > Instant::now() + limits.header_timeout, "idle again after the answer: {idle:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_streaming_after_its_head_keeps_the_connection_while_bytes_go_out() {
        let limits = limits();
        let activity = Arc::new(Activity::new());
        drop(activity.request_started()); // the head is answered; the body streams
        let after_head = activity.deadline(&limits).expect("a deadline");
        for _ in 0..5 {
            tokio::time::advance(Duration::from_secs(5)).await;
            activity.wrote();
            let deadline = activity.deadline(&limits).expect("a deadline");
            assert!(deadline > Instant::now(), "cut while the body flows ({deadline:?})");
        }
        assert!(activity.deadline(&limits).expect("a deadline") >= after_head + Duration::from_secs(25));
        // The client stops reading: nothing goes out, and the idle time runs.
        tokio::time::advance(limits.idle_timeout).await;
        assert!(activity.deadline(&limits).expect("a deadline") <= Instant::now());
    }
}
