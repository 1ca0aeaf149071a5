//! Group reads: point reads that concurrent requests ask for at the same
//! time are answered by one query, as group commit shares one flush among
//! the writes waiting for it.
//!
//! Every access-token check on PostgreSQL reads its session and user; on
//! their own, 64 concurrent checks are 64 round trips, each with the
//! database's per-statement cost. Here the first caller to arrive while no
//! query is running leads: it takes every read queued so far (its own
//! included) and runs them as one query; callers arriving meanwhile queue
//! and wait, and when the query ends one of them leads the next.
//!
//! Invariants:
//! - A read is answered only by a query that started after it was queued,
//!   so it sees every change committed before it was asked for: a logout on
//!   any node is seen at once, as with a read of its own.
//! - Each caller gets the answer to its own key (tickets, not positions in
//!   a shared list); a failed query fails each read it carried, with the
//!   same error.
//! - At most `leaders` group queries run at a time, so a burst takes that
//!   many pooled connections, not all of them.
//! - A lone caller leads at once: no waiting for company.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};

use super::{StoreError, StoreResult};

/// Reads of keys `K` answered with values `V`, grouped.
pub struct GroupRead<K, V> {
    state: Mutex<State<K, V>>,
    turn: Condvar,
    max_batch: usize,
    leaders: usize,
}

struct State<K, V> {
    queue: Vec<(u64, K)>,
    answers: HashMap<u64, StoreResult<V>>,
    leading: usize,
    next_ticket: u64,
}

impl<K, V> GroupRead<K, V> {
    /// Groups of at most `max_batch` reads, at most `leaders` groups at once.
    pub fn new(max_batch: usize, leaders: usize) -> GroupRead<K, V> {
        GroupRead {
            state: Mutex::new(State { queue: Vec::new(), answers: HashMap::new(), leading: 0, next_ticket: 0 }),
            turn: Condvar::new(),
            max_batch: max_batch.max(1),
            leaders: leaders.max(1),
        }
    }

    /// The value for `key`, read by `run` together with the keys of
    /// concurrent callers: `run` answers every key of its slice, in order.
    pub fn read(&self, key: K, run: impl Fn(&[K]) -> StoreResult<Vec<V>>) -> StoreResult<V> {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.queue.push((ticket, key));
        loop {
            if let Some(answer) = state.answers.remove(&ticket) {
                return answer;
            }
            if state.leading >= self.leaders || state.queue.iter().all(|(queued, _)| *queued != ticket) {
                // Every leader is busy, or one took our read and will answer it.
                state = self.turn.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            }
            // Lead: take what is queued (our own read is there, unanswered).
            state.leading += 1;
            let take = state.queue.len().min(self.max_batch);
            let batch: Vec<(u64, K)> = state.queue.drain(..take).collect();
            drop(state);
            let (tickets, keys): (Vec<u64>, Vec<K>) = batch.into_iter().unzip();
            let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&keys)))
                .unwrap_or_else(|_| Err(StoreError::Backend("a group read panicked".into())));
            state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            match answered {
                Ok(values) if values.len() == tickets.len() => {
                    for (ticket, value) in tickets.into_iter().zip(values) {
                        state.answers.insert(ticket, Ok(value));
                    }
                }
                Ok(_) => {
                    for ticket in tickets {
                        state.answers.insert(ticket, Err(StoreError::Backend("a group read lost answers".into())));
                    }
                }
                Err(error) => {
                    for ticket in tickets {
                        state.answers.insert(ticket, Err(error.clone()));
                    }
                }
            }
            state.leading -= 1;
            self.turn.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn concurrent_callers_share_queries_and_each_gets_its_own_answer() {
        let group = Arc::new(GroupRead::<u64, u64>::new(16, 2));
        let largest = Arc::new(AtomicUsize::new(0));
        std::thread::scope(|scope| {
            for thread in 0..32u64 {
                let (group, largest) = (group.clone(), largest.clone());
                scope.spawn(move || {
                    for i in 0..200u64 {
                        let key = thread * 1_000 + i;
                        let answer = group.read(key, |keys| {
                            largest.fetch_max(keys.len(), Ordering::SeqCst);
                            // A query takes a while, so others queue meanwhile.
                            std::thread::yield_now();
                            Ok(keys.iter().map(|k| k * 2).collect())
                        });
                        assert_eq!(answer.expect("answered"), key * 2);
                    }
                });
            }
        });
        let largest = largest.load(Ordering::SeqCst);
        assert!(largest <= 16, "a group of {largest}, more than the cap");
    }

    #[test]
    fn a_read_is_never_answered_by_a_query_that_began_before_it_was_asked() {
        // The query records the "database" version it saw; the version moves
        // right before each read is asked, as a commit just before a request.
        let group = Arc::new(GroupRead::<u64, u64>::new(64, 2));
        let version = Arc::new(AtomicUsize::new(0));
        std::thread::scope(|scope| {
            for _ in 0..16 {
                let (group, version) = (group.clone(), version.clone());
                scope.spawn(move || {
                    for _ in 0..300 {
                        let asked_after = version.fetch_add(1, Ordering::SeqCst) as u64 + 1;
                        let seen = group
                            .read(asked_after, |keys| {
                                let now = version.load(Ordering::SeqCst) as u64;
                                std::thread::yield_now();
                                Ok(keys.iter().map(|_| now).collect())
                            })
                            .expect("answered");
                        assert!(seen >= asked_after, "saw version {seen}, asked after {asked_after}");
                    }
                });
            }
        });
    }

    #[test]
    fn a_failed_query_fails_every_read_it_carried_and_the_next_ones_go_on() {
        let group = GroupRead::<u64, u64>::new(8, 1);
        let failed = group.read(1, |_| Err(StoreError::Backend("down".into())));
        assert!(matches!(failed, Err(StoreError::Backend(message)) if message == "down"));
        assert_eq!(group.read(2, |keys| Ok(keys.to_vec())).expect("answered"), 2);
        let short = group.read(3, |_| Ok(Vec::new()));
        assert!(short.is_err(), "a query that answers fewer keys fails, never mismatches");
        let panicked = group.read(4, |_| panic!("bug"));
        assert!(panicked.is_err());
        assert_eq!(group.read(5, |keys| Ok(keys.to_vec())).expect("a panic leaves the group usable"), 5);
    }
}
