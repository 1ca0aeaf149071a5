//! Running store calls off the async workers (point reads on them), group
//! commit, consistent online backups, and recovery from a store that cannot
//! write.
//!
//! A write is acknowledged only after a flush that started after the write
//! finished. Concurrent writers share flushes: the committer takes every
//! waiter queued while the previous flush ran and serves them all with one.
//!
//! The store lives behind a gate that every store call holds shared; a
//! backup holds it exclusively while it copies the records, so no
//! multi-record change is half in a backup, and so does a reopen.
//!
//! An engine that fails to write (disk full, I/O error) may stay failed:
//! sled keeps its first I/O error and returns it for every later write, so
//! after space returns it would answer 503 until a restart. Once a call
//! reports [`StoreError::Unwritable`], the handle is marked unwritable
//! (`/readyz` answers 503) and the committer, every [`RECOVERY_INTERVAL`],
//! checks that the directory takes writes again, then reopens the store
//! from disk and flushes it once; only when that flush succeeds are writes
//! counted as working again. A reopen loses nothing acknowledged: every
//! acknowledged write was flushed before its answer, and a write whose
//! flush failed was answered 503 (it may or may not survive the reopen).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};

use super::{Store, StoreError, StoreResult};

type Waiter = oneshot::Sender<StoreResult<()>>;

/// Opens the store again from disk, for recovery after a write failure.
pub type Reopen = Arc<dyn Fn() -> StoreResult<Arc<dyn Store>> + Send + Sync>;

/// How often an unwritable store is checked for recovery.
pub const RECOVERY_INTERVAL: Duration = Duration::from_secs(1);

/// A cheap-to-clone handle on the store for async code.
#[derive(Clone)]
pub struct StoreHandle {
    shared: Arc<Shared>,
    flushes: mpsc::UnboundedSender<Waiter>,
}

struct Shared {
    /// The store behind the gate. `None` once closed, or while a reopen has
    /// not succeeded yet. Store calls take it after they hold the gate, so
    /// whoever holds it exclusively knows no call is using the store.
    store: RwLock<Option<Arc<dyn Store>>>,
    /// A call reported that the store cannot write; cleared by a reopen
    /// whose flush succeeded.
    unwritable: AtomicBool,
    /// Wakes the committer when `unwritable` is set.
    failed: Notify,
}

impl Shared {
    fn shared(&self) -> std::sync::RwLockReadGuard<'_, Option<Arc<dyn Store>>> {
        self.store.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn exclusive(&self) -> std::sync::RwLockWriteGuard<'_, Option<Arc<dyn Store>>> {
        self.store.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Marks the store unwritable when `result` says so.
    fn note<R>(&self, result: &StoreResult<R>) {
        if let Err(StoreError::Unwritable(reason)) = result
            && !self.unwritable.swap(true, Ordering::AcqRel)
        {
            tracing::error!(%reason, "the store cannot write; writes answer 503 until it recovers");
            self.failed.notify_one();
        }
    }
}

fn closed() -> StoreError {
    StoreError::Backend("the store is closed or being reopened".into())
}

impl StoreHandle {
    /// Wraps a store and starts its committer task, whose handle is returned so
    /// shutdown can wait until the store is released. The task ends once every
    /// handle is gone, with the result of the last flush.
    pub fn new(store: Arc<dyn Store>) -> (StoreHandle, tokio::task::JoinHandle<StoreResult<()>>) {
        Self::start(store, None, None)
    }

    /// [`StoreHandle::new`] that reopens the store with `reopen` when it
    /// cannot write (see the module notes). The handle must own the only
    /// reference to `store`, so that dropping it releases the engine's lock.
    pub fn recovering(
        store: Arc<dyn Store>,
        reopen: Reopen,
    ) -> (StoreHandle, tokio::task::JoinHandle<StoreResult<()>>) {
        Self::start(store, Some(reopen), None)
    }

    /// [`StoreHandle::new`] whose committer takes a permit from `flush_gate`
    /// before each flush, so tests can hold flushes back.
    #[cfg(test)]
    pub fn gated(
        store: Arc<dyn Store>,
        flush_gate: Arc<tokio::sync::Semaphore>,
    ) -> (StoreHandle, tokio::task::JoinHandle<StoreResult<()>>) {
        Self::start(store, None, Some(flush_gate))
    }

    fn start(
        store: Arc<dyn Store>,
        reopen: Option<Reopen>,
        flush_gate: Option<Arc<tokio::sync::Semaphore>>,
    ) -> (StoreHandle, tokio::task::JoinHandle<StoreResult<()>>) {
        let (flushes, queue) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            store: RwLock::new(Some(store)),
            unwritable: AtomicBool::new(false),
            failed: Notify::new(),
        });
        let committer = tokio::spawn(commit_loop(shared.clone(), queue, reopen, flush_gate));
        (StoreHandle { shared, flushes }, committer)
    }

    /// Whether the store takes writes (false from a failed write until a
    /// reopen succeeds).
    pub fn writable(&self) -> bool {
        !self.shared.unwritable.load(Ordering::Acquire)
    }

    /// Runs a read, or a write that needs no acknowledgement (audit events,
    /// last-used times), on the blocking pool; it becomes durable with the next flush.
    pub async fn run<R, F>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&dyn Store) -> StoreResult<R> + Send + 'static,
    {
        let shared = self.shared.clone();
        let result = tokio::task::spawn_blocking(move || {
            let store = shared.shared();
            f(store.as_deref().ok_or_else(closed)?)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))
        .and_then(|result| result);
        self.shared.note(&result);
        result
    }

    /// A read the store queues for its own threads (`f` only queues it, on
    /// the async worker), awaited; `None` if the store does not queue that
    /// read or is being reopened, and the caller reads the usual way.
    pub async fn queued<R, F>(&self, f: F) -> Option<StoreResult<R>>
    where
        F: FnOnce(&dyn Store) -> Option<super::group_read::Queued<R>>,
    {
        let queued = {
            // The guard must not live across the `.await` below.
            let store = self.shared.store.try_read().ok()?;
            f(store.as_deref()?)?
        };
        let result = queued.await.unwrap_or_else(|_| Err(StoreError::Backend("the store's readers stopped".into())));
        self.shared.note(&result);
        Some(result)
    }

    /// Runs a few point reads (records by key) on the calling async worker
    /// when the engine serves them from memory (sled: microseconds, less than
    /// a hop to the blocking pool costs). An engine that goes over the network
    /// (PostgreSQL), or a store whose gate a backup or a reopen holds, goes
    /// through [`StoreHandle::run`] instead, so no worker ever blocks.
    pub async fn read<R, F>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&dyn Store) -> StoreResult<R> + Send + 'static,
    {
        {
            // The guard must not live across the `.await` below.
            if let Ok(store) = self.shared.store.try_read()
                && let Some(store) = store.as_deref().filter(|store| store.reads_from_memory())
            {
                let result = f(store);
                self.shared.note(&result);
                return result;
            }
        }
        self.run(f).await
    }

    /// A consistent backup of the whole store (the backup file format), taken
    /// while store calls wait. Returns the file's bytes and its record count.
    pub async fn snapshot(&self) -> StoreResult<(Vec<u8>, u64)> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            let store = shared.exclusive();
            let mut file = Vec::new();
            let records = store.as_deref().ok_or_else(closed)?.export(&mut file)?;
            Ok((file, records))
        })
        .await
        .map_err(|e| StoreError::Backend(format!("backup task failed: {e}")))?
    }

    /// Runs a write on the blocking pool and returns once it is durable.
    pub async fn write<R, F>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&dyn Store) -> StoreResult<R> + Send + 'static,
    {
        let result = self.run(f).await?;
        self.durable().await?;
        Ok(result)
    }

    /// Waits for a flush that covers every write finished before this call.
    pub async fn durable(&self) -> StoreResult<()> {
        let (done, wait) = oneshot::channel();
        self.flushes.send(done).map_err(|_| StoreError::Backend("the store is shutting down".into()))?;
        wait.await.map_err(|_| StoreError::Backend("the store is shutting down".into()))?
    }
}

async fn commit_loop(
    shared: Arc<Shared>,
    mut queue: mpsc::UnboundedReceiver<Waiter>,
    reopen: Option<Reopen>,
    flush_gate: Option<Arc<tokio::sync::Semaphore>>,
) -> StoreResult<()> {
    loop {
        let recovering = reopen.as_ref().filter(|_| shared.unwritable.load(Ordering::Acquire));
        let first = tokio::select! {
            waiter = queue.recv() => match waiter {
                Some(waiter) => waiter,
                None => break,
            },
            // Only wakes the loop, which then sees `unwritable`.
            _ = shared.failed.notified(), if recovering.is_none() => continue,
            _ = tokio::time::sleep(RECOVERY_INTERVAL), if recovering.is_some() => {
                if let Some(reopen) = recovering {
                    recover(&shared, reopen.clone()).await;
                }
                continue;
            }
        };
        if let Some(gate) = &flush_gate
            && let Ok(permit) = gate.acquire().await
        {
            permit.forget();
        }
        let mut waiters = vec![first];
        while let Ok(next) = queue.try_recv() {
            waiters.push(next);
        }
        let flushing = shared.clone();
        let started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || flushing.shared().as_deref().ok_or_else(closed)?.flush())
            .await
            .unwrap_or_else(|e| Err(StoreError::Backend(format!("flush task failed: {e}"))));
        crate::metrics::store_flush(started.elapsed(), waiters.len());
        shared.note(&result);
        if let Err(e) = &result {
            tracing::error!(error = %e, "store flush failed; writes are not acknowledged");
        }
        for waiter in waiters {
            let _ = waiter.send(result.clone());
        }
    }
    // Every handle is gone. A store call whose caller went away (a cancelled
    // request) may still run on the blocking pool; taking the gate
    // exclusively waits for it, so the last flush covers its write, and
    // dropping the store then closes it and releases its lock.
    let result = tokio::task::spawn_blocking(move || {
        let Some(store) = shared.exclusive().take() else { return Ok(()) };
        let flushed = store.flush();
        if Arc::strong_count(&store) > 1 {
            return Err(StoreError::Backend("the store is still referenced at shutdown".into()));
        }
        drop(store);
        flushed
    })
    .await
    .unwrap_or_else(|e| Err(StoreError::Backend(format!("final flush task failed: {e}"))));
    if let Err(e) = &result {
        tracing::error!(error = %e, "final flush failed");
    }
    result
}

/// One recovery attempt: when the directory takes writes again, the failed
/// engine is dropped (it holds the directory's lock), the store reopened
/// from disk and flushed once. Writes count as working only if that flush
/// succeeds; reads resume as soon as the reopen does.
async fn recover(shared: &Arc<Shared>, reopen: Reopen) {
    let attempt = shared.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        if let Some(store) = attempt.shared().as_deref() {
            store.writes_possible()?;
        }
        let mut slot = attempt.exclusive();
        drop(slot.take());
        let store = reopen()?;
        let flushed = store.flush();
        *slot = Some(store);
        flushed
    })
    .await
    .unwrap_or_else(|e| Err(StoreError::Backend(format!("recovery task failed: {e}"))));
    match outcome {
        Ok(()) => {
            shared.unwritable.store(false, Ordering::Release);
            tracing::warn!("the store was reopened and takes writes again");
        }
        Err(e) => tracing::debug!(error = %e, "the store cannot write yet"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::backup::{BackupReader, Entry};
    use crate::store::sled::SledStore;

    /// The value of a meta key in a backup file.
    fn meta_in(file: &[u8], wanted: &str) -> Option<Vec<u8>> {
        let records = BackupReader::new(&mut &file[..]).expect("a backup").collect::<StoreResult<Vec<_>>>();
        records.expect("a valid backup").into_iter().find_map(|entry| match entry {
            Entry::Meta { key, value } if key == wanted => Some(value),
            _ => None,
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_snapshot_never_holds_half_of_a_store_call() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(&dir.path().join("data"), 8 << 20).expect("store");
        let (handle, _committer) = StoreHandle::new(Arc::new(store));
        let writer = handle.clone();
        let writes = tokio::spawn(async move {
            for n in 0u32..40 {
                // Two writes in one store call, with a gap a snapshot could fall into.
                writer
                    .run(move |store| {
                        store.put_meta("pair-a", &n.to_be_bytes())?;
                        std::thread::sleep(Duration::from_millis(2));
                        store.put_meta("pair-b", &n.to_be_bytes())
                    })
                    .await
                    .expect("write");
            }
        });
        let mut seen = 0;
        while !writes.is_finished() {
            let (file, _) = handle.snapshot().await.expect("snapshot");
            assert_eq!(meta_in(&file, "pair-a"), meta_in(&file, "pair-b"), "both writes of a call, or neither");
            seen += 1;
        }
        writes.await.expect("writer");
        assert!(seen > 5, "the snapshots ran while the writes did ({seen})");
    }
}
