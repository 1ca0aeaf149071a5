//! argon2id hashing on a bounded blocking pool.
//!
//! Each hash or verify holds one permit of a semaphore sized to the CPU count
//! and runs on tokio's blocking threads, so a login storm queues here instead
//! of occupying the async workers that serve token checks.

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::{OnceCell, Semaphore};

use super::{Error, Password, Result};

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
    params: Params,
    dummy: Arc<OnceCell<String>>,
}

impl PasswordHasher {
    /// A hasher running at most `concurrency` hashes at once.
    pub fn new(concurrency: usize, params: Params) -> PasswordHasher {
        PasswordHasher {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            params,
            dummy: Arc::new(OnceCell::new()),
        }
    }

    fn argon2(params: Params) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }

    async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let _permit =
            self.permits.acquire().await.map_err(|_| Error::Internal("the password hasher is closed".into()))?;
        tokio::task::spawn_blocking(job).await.map_err(|e| Error::Internal(format!("hash task failed: {e}")))
    }

    /// Hashes a password into a PHC string.
    pub async fn hash(&self, password: Password) -> Result<String> {
        let params = self.params.clone();
        self.run(move || {
            let salt = SaltString::generate(&mut OsRng);
            Self::argon2(params).hash_password(password.expose().as_bytes(), &salt).map(|h| h.to_string())
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
                let Ok(hash) = PasswordHash::new(&phc) else {
                    return Verdict { matches: false, outdated: true };
                };
                let matches = Self::argon2(params.clone()).verify_password(password.expose().as_bytes(), &hash).is_ok();
                let current = hash.algorithm.as_str() == "argon2id"
                    && Params::try_from(&hash).is_ok_and(|used| {
                        (used.m_cost(), used.t_cost(), used.p_cost())
                            == (params.m_cost(), params.t_cost(), params.p_cost())
                    });
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

    #[test]
    fn the_defaults_are_owasps() {
        let params = default_params();
        assert_eq!((params.m_cost(), params.t_cost(), params.p_cost()), (19_456, 2, 1));
    }
}
