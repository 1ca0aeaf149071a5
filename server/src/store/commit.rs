//! Running store calls off the async workers (point reads on them), group
//! commit, and consistent online backups.
//!
//! A write is acknowledged only after a flush that started after the write
//! finished. Concurrent writers share flushes: the committer takes every
//! waiter queued while the previous flush ran and serves them all with one.
//!
//! Every store call holds a shared gate; a backup holds it exclusively while
//! it copies the records, so no multi-record change is half in a backup.

use std::sync::{Arc, RwLock};

use tokio::sync::{mpsc, oneshot};

use super::{Store, StoreError, StoreResult};

type Waiter = oneshot::Sender<StoreResult<()>>;

/// A cheap-to-clone handle on the store for async code.
#[derive(Clone)]
pub struct StoreHandle {
    store: Arc<dyn Store>,
    flushes: mpsc::UnboundedSender<Waiter>,
    gate: Arc<RwLock<()>>,
}

impl StoreHandle {
    /// Wraps a store and starts its committer task, whose handle is returned so
    /// shutdown can wait until the store is released. The task ends once every
    /// handle is gone, with the result of the last flush.
    pub fn new(store: Arc<dyn Store>) -> (StoreHandle, tokio::task::JoinHandle<StoreResult<()>>) {
        Self::with_flush_gate(store, None)
    }

    /// [`StoreHandle::new`] whose committer takes a permit from `flush_gate`
    /// before each flush, so tests can hold flushes back.
    #[cfg(test)]
    pub fn gated(
        store: Arc<dyn Store>,
        flush_gate: Arc<tokio::sync::Semaphore>,
    ) -> (StoreHandle, tokio::task::JoinHandle<StoreResult<()>>) {
        Self::with_flush_gate(store, Some(flush_gate))
    }

    fn with_flush_gate(
        store: Arc<dyn Store>,
        flush_gate: Option<Arc<tokio::sync::Semaphore>>,
    ) -> (StoreHandle, tokio::task::JoinHandle<StoreResult<()>>) {
        let (flushes, queue) = mpsc::unbounded_channel();
        let committer = tokio::spawn(commit_loop(store.clone(), queue, flush_gate));
        (StoreHandle { store, flushes, gate: Arc::new(RwLock::new(())) }, committer)
    }

    /// Runs a read, or a write that needs no acknowledgement (audit events,
    /// last-used times), on the blocking pool; it becomes durable with the next flush.
    pub async fn run<R, F>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&dyn Store) -> StoreResult<R> + Send + 'static,
    {
        let (store, gate) = (self.store.clone(), self.gate.clone());
        tokio::task::spawn_blocking(move || {
            let _shared = gate.read().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(store.as_ref())
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }

    /// Runs a few point reads (records by key) on the calling async worker:
    /// sled serves them from memory in microseconds, less than a hop to the
    /// blocking pool costs. While a backup holds the gate it goes through
    /// [`StoreHandle::run`] instead, so no worker ever waits on the gate.
    pub async fn read<R, F>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&dyn Store) -> StoreResult<R> + Send + 'static,
    {
        let shared = self.gate.try_read();
        match shared {
            Ok(_shared) => f(self.store.as_ref()),
            Err(_) => {
                drop(shared);
                self.run(f).await
            }
        }
    }

    /// A consistent backup of the whole store (the backup file format), taken
    /// while store calls wait. Returns the file's bytes and its record count.
    pub async fn snapshot(&self) -> StoreResult<(Vec<u8>, u64)> {
        let (store, gate) = (self.store.clone(), self.gate.clone());
        tokio::task::spawn_blocking(move || {
            let _exclusive = gate.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            let mut file = Vec::new();
            let records = store.export(&mut file)?;
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
    store: Arc<dyn Store>,
    mut queue: mpsc::UnboundedReceiver<Waiter>,
    flush_gate: Option<Arc<tokio::sync::Semaphore>>,
) -> StoreResult<()> {
    while let Some(first) = queue.recv().await {
        if let Some(gate) = &flush_gate
            && let Ok(permit) = gate.acquire().await
        {
            permit.forget();
        }
        let mut waiters = vec![first];
        while let Ok(next) = queue.try_recv() {
            waiters.push(next);
        }
        let flushing = store.clone();
        let result = tokio::task::spawn_blocking(move || flushing.flush())
            .await
            .unwrap_or_else(|e| Err(StoreError::Backend(format!("flush task failed: {e}"))));
        if let Err(e) = &result {
            tracing::error!(error = %e, "store flush failed; writes are not acknowledged");
        }
        for waiter in waiters {
            let _ = waiter.send(result.clone());
        }
    }
    // Every handle is gone, but a store call whose caller went away (a
    // cancelled request) may still run on the blocking pool with its own
    // reference. Wait for those, so that the last flush covers their writes
    // and dropping this reference closes the store and releases its lock.
    let deadline = tokio::time::Instant::now() + RELEASE_DEADLINE;
    while Arc::strong_count(&store) > 1 {
        if tokio::time::Instant::now() >= deadline {
            return Err(StoreError::Backend("store calls still running at shutdown".into()));
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let result = tokio::task::spawn_blocking(move || {
        let flushed = store.flush();
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

/// How long shutdown waits for store calls of cancelled requests to finish.
const RELEASE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::backup;
    use crate::store::sled::{FORMAT, SledStore};

    /// The value of a meta key in a backup file.
    fn meta_in(file: &[u8], key: &str) -> Option<Vec<u8>> {
        let records = backup::read(&mut &file[..], FORMAT).expect("a valid backup");
        records.into_iter().find(|r| r.tree == "meta" && r.key == key.as_bytes()).map(|r| r.value)
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
