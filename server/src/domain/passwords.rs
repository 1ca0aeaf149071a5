//! argon2id hashing on a pool of its own threads.
//!
//! The pool has one thread per CPU at the lowest normal priority (niceness
//! 19, below the async workers), and each hash or verify holds one permit of
//! a semaphore of the same size: a login storm queues here and uses the CPU the token checks
//! leave idle, instead of taking it from them. Fixed threads also keep
//! argon2's 19 MiB working memory to one reused allocation per thread
//! (short-lived blocking threads each kept their own, and peak RSS grew with
//! their count).
//!
//! Each account has a share of the pool: at most [`PER_ACCOUNT`] checks of
//! its password in the pool's queue or running at once; more wait in the
//! account's own queue, behind which no other account waits. Without it, one
//! user sending wrong current passwords as fast as the connection allows
//! filled the pool's queue, and every other account's login waited behind it
//! (median 50 ms → 800 ms). They wait rather than being refused: a refusal
//! would let anyone turn an account's logins away by sending two wrong
//! passwords at a time.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use std::cell::RefCell;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{OnceCell, Semaphore, oneshot};

use super::{Error, Password, Result};

type Job = Box<dyn FnOnce() + Send>;

/// Password checks of one account queued or running at once.
pub const PER_ACCOUNT: usize = 2;

/// Starts `threads` hashing threads taking jobs from one queue; they end when
/// every sender is dropped.
fn start_pool(threads: usize) -> Sender<Job> {
    let (sender, receiver) = channel::<Job>();
    let receiver: Arc<Mutex<Receiver<Job>>> = Arc::new(Mutex::new(receiver));
    for index in 0..threads {
        let receiver = receiver.clone();
        let spawned = std::thread::Builder::new().name(format!("latch-argon2-{index}")).spawn(move || {
            lower_priority();
            loop {
                let next = receiver.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).recv();
                let Ok(job) = next else { return };
                // A panicking job drops its result sender (the caller sees an
                // error); the thread stays in the pool.
                let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "a hashing thread could not start");
        }
    }
    sender
}

thread_local! {
    /// argon2's working memory (19 MiB at the defaults), kept by each hashing
    /// thread and overwritten by its next hash. Allocating it per hash made
    /// glibc keep every freed copy: resident memory grew by 19 MiB a login.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// The PHC hash of `password` with `salt`, as argon2's own `hash_password`
/// computes it, in this thread's reused memory.
fn hash_in_place<'a>(
    argon2: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: Salt<'a>,
) -> argon2::password_hash::Result<PasswordHash<'a>> {
    let mut salt_buffer = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_buffer)?;
    let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        if memory.len() < params.block_count() {
            memory.resize(params.block_count(), Block::default());
        }
        Output::init_with(output_len, |out| {
            Ok(argon2.hash_password_into_with_memory(password, salt_bytes, out, &mut memory[..])?)
        })
    })?;
    Ok(PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params)?,
        salt: Some(salt),
        hash: Some(output),
    })
}

/// Puts the calling hashing thread at the lowest normal priority (niceness
/// 19): a waking async worker gets the CPU before it, and when the workers
/// are idle hashing gets every cycle. Measured on two cores
/// (BENCHMARKS.md): niceness 10 let a login storm quadruple the p99 of token
/// checks; `SCHED_IDLE` kept that p99 flat but cut login throughput to 72 %
/// of what hashing allows, since anything else that runs preempts it.
fn lower_priority() {
    use thread_priority::{ThreadPriority, set_current_thread_priority};
    if let Err(e) = set_current_thread_priority(ThreadPriority::Min) {
        tracing::warn!(error = ?e, "hashing threads keep the default priority");
    }
}

/// OWASP's argon2id parameters: m = 19456 KiB, t = 2, p = 1.
pub fn default_params() -> Params {
    // Constant, valid parameters.
    Params::new(19_456, 2, 1, None).unwrap_or_default()
}

/// The outcome of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The password matches.
    pub matches: bool,
    /// The stored hash uses other parameters and should be replaced.
    pub outdated: bool,
}

/// Hashes and verifies passwords with bounded concurrency.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    pool: Arc<Mutex<Sender<Job>>>,
    params: Params,
    dummy: Arc<OnceCell<String>>,
    /// Each account's share of the pool (tenant and normalised email → its
    /// permits); an entry lives while a check of the account holds or awaits one.
    shares: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

/// One check's place in its account's share; given back when dropped.
struct Share {
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    shares: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
    account: String,
}

impl Drop for Share {
    fn drop(&mut self) {
        drop(self.permit.take());
        let mut shares = self.shares.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Only the map holds it: no check of the account holds or awaits a permit.
        if shares.get(&self.account).is_some_and(|semaphore| Arc::strong_count(semaphore) == 1) {
            shares.remove(&self.account);
        }
    }
}

impl PasswordHasher {
    /// A hasher running at most `concurrency` hashes at once, on as many threads.
    pub fn new(concurrency: usize, params: Params) -> PasswordHasher {
        let concurrency = concurrency.max(1);
        PasswordHasher {
            permits: Arc::new(Semaphore::new(concurrency)),
            pool: Arc::new(Mutex::new(start_pool(concurrency))),
            params,
            dummy: Arc::new(OnceCell::new()),
            shares: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A place in `account`'s share of the pool, once one is free.
    async fn share(&self, account: &str) -> Result<Share> {
        let semaphore = {
            let mut shares = self.shares.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            shares.entry(account.to_owned()).or_insert_with(|| Arc::new(Semaphore::new(PER_ACCOUNT))).clone()
        };
        // The share is created before the wait, so a cancelled wait still
        // cleans the entry up when it drops.
        let mut share = Share { permit: None, shares: self.shares.clone(), account: account.to_owned() };
        let permit = semaphore.acquire_owned().await;
        share.permit = Some(permit.map_err(|_| Error::Internal("the password hasher is closed".into()))?);
        Ok(share)
    }

    /// [`PasswordHasher::verify`] within `account`'s share of the pool
    /// (`account` names it across endpoints: tenant and normalised email).
    pub async fn verify_for(&self, account: &str, password: Password, stored: Option<String>) -> Result<Verdict> {
        let _share = self.share(account).await?;
        self.verify(password, stored).await
    }

    fn argon2(params: Params) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }

    async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let queued_at = std::time::Instant::now();
        crate::metrics::hash_queue(1.0);
        let permit = self.permits.acquire().await;
        crate::metrics::hash_queue(-1.0);
        crate::metrics::hash_wait(queued_at.elapsed());
        let _permit = permit.map_err(|_| Error::Internal("the password hasher is closed".into()))?;
        let (done, result) = oneshot::channel();
        let queued = self.pool.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).send(Box::new(move || {
            let _ = done.send(job());
        }));
        queued.map_err(|_| Error::Internal("the hashing threads are gone".into()))?;
        result.await.map_err(|_| Error::Internal("a hash job failed".into()))
    }

    /// Hashes a password into a PHC string.
    pub async fn hash(&self, password: Password) -> Result<String> {
        let params = self.params.clone();
        self.run(move || {
            let salt = SaltString::generate(&mut OsRng);
            hash_in_place(&Self::argon2(params.clone()), &params, password.expose().as_bytes(), salt.as_salt())
                .map(|h| h.to_string())
        })
        .await?
        .map_err(|e| Error::Internal(format!("argon2: {e}")))
    }

    /// Verifies a password against a stored hash. With `None` (unknown user)
    /// a dummy hash is verified instead, so both cases cost the same.
    pub async fn verify(&self, password: Password, stored: Option<String>) -> Result<Verdict> {
        let known = stored.is_some();
        let phc = match stored {
            Some(phc) => phc,
            None => self.dummy_hash().await?,
        };
        let params = self.params.clone();
        let verdict = self
            .run(move || {
                let Some(hash) = PasswordHash::new(&phc).ok().filter(super::hashes::is_latch_argon2id) else {
                    // An imported hash (bcrypt, PBKDF2, scrypt, argon2i, or
                    // argon2id of another version): checked with its own
                    // scheme, and always replaced after a match.
                    let matches = super::hashes::verify_imported(password.expose().as_bytes(), &phc);
                    return Verdict { matches, outdated: true };
                };
                let current = hash.algorithm.as_str() == "argon2id"
                    && Params::try_from(&hash).is_ok_and(|used| {
                        (used.m_cost(), used.t_cost(), used.p_cost())
                            == (params.m_cost(), params.t_cost(), params.p_cost())
                    });
                let used = Params::try_from(&hash);
                let matches = match (used, hash.salt, &hash.hash) {
                    (Ok(used), Some(salt), Some(expected)) => {
                        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, used.clone());
                        // Output's equality is constant-time.
                        hash_in_place(&argon2, &used, password.expose().as_bytes(), salt)
                            .is_ok_and(|computed| computed.hash.as_ref() == Some(expected))
                    }
                    _ => false,
                };
                Verdict { matches, outdated: !current }
            })
            .await?;
        Ok(Verdict { matches: verdict.matches && known, ..verdict })
    }

    async fn dummy_hash(&self) -> Result<String> {
        self.dummy
            .get_or_try_init(|| async {
                let random = crate::crypto::random_token("");
                self.hash(Password::presented(secrecy::ExposeSecret::expose_secret(&random))?).await
            })
            .await
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Params {
        Params::new(64, 1, 1, None).expect("valid")
    }

    fn pw(raw: &str) -> Password {
        Password::presented(raw).expect("short enough")
    }

    #[tokio::test]
    async fn hashes_verify_and_report_outdated_parameters() {
        let hasher = PasswordHasher::new(2, cheap());
        let phc = hasher.hash(pw("correct horse")).await.expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert_eq!(
            hasher.verify(pw("correct horse"), Some(phc.clone())).await.expect("verify"),
            Verdict { matches: true, outdated: false }
        );
        assert!(!hasher.verify(pw("wrong horse"), Some(phc.clone())).await.expect("verify").matches);

        let stronger = PasswordHasher::new(2, Params::new(128, 1, 1, None).expect("valid"));
        assert_eq!(
            stronger.verify(pw("correct horse"), Some(phc)).await.expect("verify"),
            Verdict { matches: true, outdated: true }
        );
    }

    #[tokio::test]
    async fn unknown_users_never_match_even_with_the_dummy_password() {
        let hasher = PasswordHasher::new(1, cheap());
        assert!(!hasher.verify(pw("anything"), None).await.expect("verify").matches);
        let dummy = hasher.dummy_hash().await.expect("dummy");
        assert!(dummy.starts_with("$argon2id$"), "the dummy is a real hash, so it costs a real verify");
    }

    #[tokio::test]
    async fn hashes_match_argon2s_own_in_both_directions() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let hasher = PasswordHasher::new(1, cheap());
        let ours = hasher.hash(pw("correct horse")).await.expect("hash");
        let reference = Argon2::new(Algorithm::Argon2id, Version::V0x13, cheap());
        reference
            .verify_password(b"correct horse", &PasswordHash::new(&ours).expect("PHC"))
            .expect("argon2 accepts ours");
        assert!(reference.verify_password(b"wrong horse", &PasswordHash::new(&ours).expect("PHC")).is_err());
        let salt = SaltString::generate(&mut OsRng);
        let theirs = reference.hash_password(b"correct horse", &salt).expect("hash").to_string();
        assert!(hasher.verify(pw("correct horse"), Some(theirs.clone())).await.expect("verify").matches);
        assert!(!hasher.verify(pw("correct horsf"), Some(theirs)).await.expect("verify").matches);
        // argon2i is an imported scheme: it matches, and is to be replaced.
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, cheap());
        let other = argon2i.hash_password(b"correct horse", &salt).expect("hash").to_string();
        assert_eq!(
            hasher.verify(pw("correct horse"), Some(other.clone())).await.expect("verify"),
            Verdict { matches: true, outdated: true }
        );
        assert!(!hasher.verify(pw("correct horsf"), Some(other)).await.expect("verify").matches);
        let bcrypt = bcrypt::hash("correct horse", 4).expect("bcrypt");
        assert_eq!(
            hasher.verify(pw("correct horse"), Some(bcrypt.clone())).await.expect("verify"),
            Verdict { matches: true, outdated: true }
        );
        assert!(!hasher.verify(pw("correct horsf"), Some(bcrypt)).await.expect("verify").matches);
    }

    /// Fields of `/proc/thread-self/stat` after the command name, from field 3 on.
    #[cfg(target_os = "linux")]
    fn own_stat() -> Vec<i64> {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("stat");
        // The command name (field 2) may hold spaces: count after its ')'.
        stat[stat.rfind(')').expect("comm") + 2..].split(' ').map(|f| f.trim().parse().unwrap_or(-1)).collect()
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_at_niceness_19() {
        const NICENESS: usize = 19 - 3;
        let hasher = PasswordHasher::new(2, cheap());
        let hashing = hasher.run(own_stat).await.expect("ran");
        assert_eq!(hashing[NICENESS], 19);
        assert!(own_stat()[NICENESS] < 19, "the caller's thread keeps its priority");
    }

    #[tokio::test]
    async fn an_account_beyond_its_share_waits_in_its_own_queue_and_others_go_past() {
        use futures_util::FutureExt as _;
        let hasher = PasswordHasher::new(1, cheap());
        let held: Vec<Share> = [hasher.share("t\0a").now_or_never(), hasher.share("t\0a").now_or_never()]
            .into_iter()
            .map(|share| share.expect("free at once").expect("share"))
            .collect();
        let mut third = Box::pin(hasher.share("t\0a"));
        assert!((&mut third).now_or_never().is_none(), "the account's third check waits");
        let other = hasher.share("t\0b").now_or_never();
        assert!(other.is_some_and(|share| share.is_ok()), "another account does not wait behind it");
        drop(held);
        let third = third.now_or_never().expect("a place freed").expect("share");
        drop(third);
        assert!(hasher.shares.lock().expect("lock").is_empty(), "nothing kept once no check runs");
        let phc = hasher.hash(pw("correct horse")).await.expect("hash");
        assert!(hasher.verify_for("t\0a", pw("correct horse"), Some(phc)).await.expect("verify").matches);
    }

    #[test]
    fn the_defaults_are_owasps() {
        let params = default_params();
        assert_eq!((params.m_cost(), params.t_cost(), params.p_cost()), (19_456, 2, 1));
    }
}
