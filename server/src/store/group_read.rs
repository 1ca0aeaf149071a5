//! Group reads: point reads that concurrent requests ask for at the same
//! time are answered by one query, as group commit shares one flush among
//! the writes waiting for it.
//!
//! Every access-token check on PostgreSQL reads its session and user; on
//! their own, 64 concurrent checks are 64 round trips, each with the
//! database's per-statement cost and a hand-off to a blocking thread. Here a
//! check queues its read without leaving its async worker and awaits the
//! answer; a few reader threads each take everything queued (up to a cap),
//! run it as one query and send every caller its own answer.
//!
//! Invariants:
//! - A read is answered only by a query that started after it was queued
//!   (a reader takes the queue when it starts its query), so it sees every
//!   change committed before it was asked for: a logout on any node is seen
//!   at once, as with a read of its own.
//! - Each caller gets the answer to its own key (a channel each, not a
//!   position in a shared list); a failed query fails each read it carried,
//!   with the same error; a query that answers a different number of keys
//!   fails them all rather than mismatch.
//! - At most `readers` queries run at a time, so a burst holds that many
//!   pooled connections, not all of them.
//! - A read queued while every reader is idle starts at once: no waiting
//!   for company.

use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::oneshot;

use super::{StoreError, StoreResult};

/// The answer to a queued read, to await.
pub type Queued<V> = oneshot::Receiver<StoreResult<V>>;

/// Reads of keys `K` answered with values `V` by reader threads, grouped.
/// Dropping it stops the readers and waits for them (their current query
/// ends first), so what they hold (pooled connections) is gone with it.
pub struct GroupReads<K, V> {
    shared: Arc<Shared<K, V>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

struct Shared<K, V> {
    queue: Mutex<Waiting<K, V>>,
    ready: Condvar,
}

struct Waiting<K, V> {
    reads: Vec<(K, oneshot::Sender<StoreResult<V>>)>,
    closed: bool,
}

impl<K: Send + 'static, V: Send + 'static> GroupReads<K, V> {
    /// Starts `readers` threads named `name`, each running `run` on groups
    /// of at most `max_batch` queued keys; `run` answers every key of its
    /// slice, in order.
    pub fn start(
        name: &str,
        readers: usize,
        max_batch: usize,
        run: impl Fn(&[K]) -> StoreResult<Vec<V>> + Send + Sync + 'static,
    ) -> StoreResult<GroupReads<K, V>> {
        let shared =
            Arc::new(Shared { queue: Mutex::new(Waiting { reads: Vec::new(), closed: false }), ready: Condvar::new() });
        let run = Arc::new(run);
        let mut reads = GroupReads { shared: shared.clone(), readers: Vec::new() };
        for index in 0..readers.max(1) {
            let (shared, run) = (shared.clone(), run.clone());
            let reader = std::thread::Builder::new()
                .name(format!("{name}-{index}"))
                .spawn(move || shared.serve(max_batch.max(1), &*run))
                .map_err(|e| StoreError::Backend(format!("cannot start a reader thread: {e}")))?;
            reads.readers.push(reader);
        }
        Ok(reads)
    }

    /// Queues a read of `key`; its answer arrives on the receiver.
    pub fn read(&self, key: K) -> Queued<V> {
        let (answer, answered) = oneshot::channel();
        let mut queue = self.shared.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        queue.reads.push((key, answer));
        drop(queue);
        self.shared.ready.notify_one();
        answered
    }
}

impl<K, V> Shared<K, V> {
    fn serve(&self, max_batch: usize, run: &dyn Fn(&[K]) -> StoreResult<Vec<V>>) {
        loop {
            let batch: Vec<(K, oneshot::Sender<StoreResult<V>>)> = {
                let mut queue = self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                while queue.reads.is_empty() && !queue.closed {
                    queue = self.ready.wait(queue).unwrap_or_else(|poisoned| poisoned.into_inner());
                }
                if queue.closed {
                    // Reads still queued get an error when their senders drop.
                    return;
                }
                let take = queue.reads.len().min(max_batch);
                let batch = queue.reads.drain(..take).collect();
                if !queue.reads.is_empty() {
                    // More than one group's worth: another reader may start.
                    self.ready.notify_one();
                }
                batch
            };
            let (keys, answers): (Vec<K>, Vec<_>) = batch.into_iter().unzip();
            let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&keys)))
                .unwrap_or_else(|_| Err(StoreError::Backend("a group read panicked".into())));
            match answered {
                Ok(values) if values.len() == answers.len() => {
                    for (answer, value) in answers.into_iter().zip(values) {
                        // A caller that gave up (its request was cancelled) is not waiting.
                        let _ = answer.send(Ok(value));
                    }
                }
                Ok(_) => {
                    for answer in answers {
                        let _ = answer.send(Err(StoreError::Backend("a group read lost answers".into())));
                    }
                }
                Err(error) => {
                    for answer in answers {
                        let _ = answer.send(Err(error.clone()));
                    }
                }
            }
        }
    }
}

impl<K, V> Drop for GroupReads<K, V> {
    fn drop(&mut self) {
        self.shared.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).closed = true;
        self.shared.ready.notify_all();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn answer<V>(queued: Queued<V>) -> StoreResult<V> {
        queued.blocking_recv().unwrap_or_else(|_| Err(StoreError::Backend("no answer".into())))
    }

    #[test]
    fn concurrent_callers_share_queries_and_each_gets_its_own_answer() {
        let largest = Arc::new(AtomicUsize::new(0));
        let seen = largest.clone();
        let reads = GroupReads::<u64, u64>::start("test-reader", 2, 16, move |keys| {
            seen.fetch_max(keys.len(), Ordering::SeqCst);
            std::thread::yield_now();
            Ok(keys.iter().map(|k| k * 2).collect())
        })
        .expect("readers");
        std::thread::scope(|scope| {
            for thread in 0..32u64 {
                let reads = &reads;
                scope.spawn(move || {
                    for i in 0..200u64 {
                        let key = thread * 1_000 + i;
                        assert_eq!(answer(reads.read(key)).expect("answered"), key * 2);
                    }
                });
            }
        });
        assert!(largest.load(Ordering::SeqCst) <= 16, "a group larger than the cap");
    }

    #[test]
    fn a_read_is_never_answered_by_a_query_that_began_before_it_was_asked() {
        // The query reports the "database" version it saw; the version moves
        // right before each read is asked, as a commit just before a request.
        let version = Arc::new(AtomicUsize::new(0));
        let database = version.clone();
        let reads = GroupReads::<u64, u64>::start("test-reader", 2, 64, move |keys| {
            let now = database.load(Ordering::SeqCst) as u64;
            std::thread::yield_now();
            Ok(keys.iter().map(|_| now).collect())
        })
        .expect("readers");
        std::thread::scope(|scope| {
            for _ in 0..16 {
                let (reads, version) = (&reads, &version);
                scope.spawn(move || {
                    for _ in 0..300 {
                        let asked_after = version.fetch_add(1, Ordering::SeqCst) as u64 + 1;
                        let seen = answer(reads.read(asked_after)).expect("answered");
                        assert!(seen >= asked_after, "saw version {seen}, asked after {asked_after}");
                    }
                });
            }
        });
    }

    #[test]
    fn a_failed_query_fails_every_read_it_carried_and_the_next_ones_go_on() {
        let reads = GroupReads::<u64, u64>::start("test-reader", 1, 8, |keys| match keys[0] {
            1 => Err(StoreError::Backend("down".into())),
            3 => Ok(Vec::new()),
            4 => panic!("bug"),
            _ => Ok(keys.to_vec()),
        })
        .expect("readers");
        assert!(matches!(answer(reads.read(1)), Err(StoreError::Backend(message)) if message == "down"));
        assert_eq!(answer(reads.read(2)).expect("answered"), 2);
        assert!(answer(reads.read(3)).is_err(), "a query that answers fewer keys fails, never mismatches");
        assert!(answer(reads.read(4)).is_err());
        assert_eq!(answer(reads.read(5)).expect("a panic leaves the readers serving"), 5);
    }
}
