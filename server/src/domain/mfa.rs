//! TOTP (RFC 6238) as a second factor: enrollment confirmed by a first code,
//! ten single-use recovery codes, logins answered `mfa_required` with a
//! short-lived challenge that a code completes, each time step's code taken
//! at most once.

use rand::Rng as _;
use secrecy::{ExposeSecret as _, SecretString};
use totp_rs::{Algorithm, TOTP};
use uuid::Uuid;

use super::accounts::{AMR_OTP, AMR_PASSWORD, Authenticated};
use super::events::{Event, EventKind};
use super::{ClientInfo, Error, Latch, Principal, Result, TenantId, TenantRuntime, TokenPair};
use crate::crypto::{random_token, token_hash};
use crate::store::{Change, OneTimeRecord, TotpRecord, UserRecord};

/// Seconds a login's MFA challenge stays usable.
pub const CHALLENGE_TTL_SECONDS: i64 = 300;
/// Wrong codes a challenge takes before it is used up.
const CHALLENGE_ATTEMPTS: u32 = 5;
const CHALLENGE_PURPOSE: &str = "mfa";
const CHALLENGE_PREFIX: &str = "latch_mfa_";
/// Stored recovery codes with this prefix are keyed hashes; without, SHA-256.
const KEYED: &str = "k1:";
const RECOVERY_CODE_CONTEXT: &str = "latch/recovery-code/v1";
/// Recovery codes handed out at confirmation.
pub const RECOVERY_CODES: usize = 10;
/// 160-bit secrets, as RFC 4226 recommends.
const SECRET_BYTES: usize = 20;
const STEP_SECONDS: u64 = 30;
/// Codes of the step before and after the current one are accepted too.
const SKEW_STEPS: u8 = 1;

/// What an authenticator app needs to start producing codes.
pub struct TotpEnrollment {
    /// The shared secret, base32 (for typing in).
    pub secret: SecretString,
    /// `otpauth://totp/...` (for a QR code).
    pub otpauth_uri: SecretString,
}

/// The second factor presented to complete a challenge or to disable TOTP.
pub enum SecondFactor {
    /// A current six-digit code.
    Code(String),
    /// One of the recovery codes.
    RecoveryCode(String),
}

impl SecondFactor {
    /// Exactly one of a code and a recovery code, as a request gives them.
    pub fn one_of(code: Option<String>, recovery_code: Option<String>) -> Option<SecondFactor> {
        match (code, recovery_code) {
            (Some(code), None) => Some(SecondFactor::Code(code)),
            (None, Some(recovery)) => Some(SecondFactor::RecoveryCode(recovery)),
            _ => None,
        }
    }
}

impl Latch {
    fn totp(&self, user: &UserRecord, record: &TotpRecord) -> Result<TOTP> {
        let secret = self
            .master
            .open(&totp_context(&user.tenant, user.id), &record.sealed_secret)
            .ok_or(Error::KeyUnavailable)?;
        // `:` separates issuer and account in an otpauth label.
        let issuer = user.tenant.to_string().replace(':', " ");
        let account = user.email.replace(':', " ");
        TOTP::new(Algorithm::SHA1, 6, SKEW_STEPS, STEP_SECONDS, secret.to_vec(), Some(issuer), account)
            .map_err(|e| Error::Internal(format!("totp: {e}")))
    }

    /// Starts (or restarts) enrollment: a new secret, unconfirmed until
    /// [`Latch::confirm_totp`]. Needs the current password (an access token
    /// alone must not be able to put a second factor on the account);
    /// refused while a confirmed factor exists.
    pub async fn enroll_totp(
        &self,
        principal: &Principal,
        password: &str,
        client: &ClientInfo,
    ) -> Result<TotpEnrollment> {
        let user = &principal.user;
        let runtime = self.runtime(&user.tenant).await?;
        let (_, now) = self.check_current_password(&runtime, user, password, client).await?;
        let secret: [u8; SECRET_BYTES] = rand::thread_rng().r#gen();
        let record = TotpRecord {
            sealed_secret: self.master.seal(&totp_context(&user.tenant, user.id), &secret),
            confirmed: false,
            last_step: 0,
            recovery_codes: Vec::new(),
            created_at: now,
        };
        let totp = self.totp(user, &record)?;
        let enrollment = TotpEnrollment { secret: totp.get_secret_base32().into(), otpauth_uri: totp.get_url().into() };
        self.change_user_or(&user.tenant, user.id, Error::MfaAlreadyEnabled, move |user| {
            if user.totp.as_ref().is_some_and(|totp| totp.confirmed) {
                return Change::Keep;
            }
            user.totp = Some(record.clone());
            user.clear_failures();
            user.updated_at = now;
            Change::Write
        })
        .await?;
        Ok(enrollment)
    }

    /// Confirms enrollment with a first code; returns the recovery codes,
    /// shown this once (only their hashes are kept).
    pub async fn confirm_totp(
        &self,
        principal: &Principal,
        password: &str,
        code: &str,
        client: &ClientInfo,
    ) -> Result<Vec<SecretString>> {
        let user = &principal.user;
        let Some(pending) = user.totp.clone().filter(|totp| !totp.confirmed) else {
            return Err(Error::MfaNotPending);
        };
        let runtime = self.runtime(&user.tenant).await?;
        // Password and code together are one attempt.
        let (counted, _) = self.check_current_password(&runtime, user, password, client).await?;
        let Some(step) = self.accepted_step(user, &pending, code)? else {
            self.report_failure(&runtime, &counted, client).await;
            return Err(Error::InvalidMfaCode);
        };
        let codes: Vec<SecretString> = (0..RECOVERY_CODES).map(|_| recovery_code()).collect();
        let hashes: Vec<String> = codes
            .iter()
            .map(|code| format!("{KEYED}{}", hex::encode(self.recovery_code_hash(user, code.expose_secret()))))
            .collect();
        let now = self.now();
        self.change_user_or(&user.tenant, user.id, Error::MfaNotPending, move |user| {
            // Only the enrollment the code was checked against, still pending.
            let Some(totp) = user
                .totp
                .as_mut()
                .filter(|totp| !totp.confirmed && totp.sealed_secret == pending.sealed_secret && totp.last_step < step)
            else {
                return Change::Keep;
            };
            totp.last_step = step;
            totp.recovery_codes = hashes.clone();
            totp.confirmed = true;
            user.clear_failures();
            user.updated_at = now;
            Change::Write
        })
        .await?;
        let id = user.id;
        self.record(&user.tenant, Event::new(EventKind::MfaEnabled).actor(id).subject(id)).await;
        Ok(codes)
    }

    /// Turns TOTP off; needs the password and a code (or a recovery code).
    pub async fn disable_totp(
        &self,
        principal: &Principal,
        password: &str,
        factor: SecondFactor,
        client: &ClientInfo,
    ) -> Result<()> {
        let user = &principal.user;
        if !Self::needs_mfa(user) {
            return Err(Error::MfaNotEnabled);
        }
        let runtime = self.runtime(&user.tenant).await?;
        // Password and code together are one attempt.
        let (counted, now) = self.check_current_password(&runtime, user, password, client).await?;
        let Some(proof) = self.second_factor_proof(&counted, &factor)? else {
            self.report_failure(&runtime, &counted, client).await;
            return Err(Error::InvalidMfaCode);
        };
        self.change_user_or(&user.tenant, user.id, Error::InvalidMfaCode, move |user| {
            if !proof.use_up(user) {
                return Change::Keep;
            }
            user.totp = None;
            user.clear_failures();
            user.updated_at = now;
            Change::Write
        })
        .await?;
        let id = user.id;
        self.record(&user.tenant, Event::new(EventKind::MfaDisabled).actor(id).subject(id)).await;
        Ok(())
    }

    /// Whether the user must pass a second factor to log in.
    pub(super) fn needs_mfa(user: &UserRecord) -> bool {
        user.totp.as_ref().is_some_and(|totp| totp.confirmed)
    }

    /// After a right password for a user with TOTP: a challenge to complete
    /// with [`Latch::complete_mfa`], as the error the login answers.
    /// A decoy challenge (see `Latch::locked_challenge`) is stored like any
    /// other, so nothing tells it apart, but no code completes it.
    pub(super) async fn mfa_challenge(&self, user: &UserRecord, scope: String, kind: Challenge) -> Error {
        let token = random_token(CHALLENGE_PREFIX);
        let record = OneTimeRecord {
            scope: Some(scope),
            decoy: kind == Challenge::Decoy,
            in_lock: kind == Challenge::InLock,
            ..OneTimeRecord::new(CHALLENGE_PURPOSE, user.id, self.now() + CHALLENGE_TTL_SECONDS)
        };
        let (tenant, hash) = (user.tenant.clone(), token_hash(token.expose_secret()));
        match self.store.write(move |store| store.put_one_time(&tenant, &hash, &record)).await {
            Ok(()) => Error::MfaRequired { mfa_token: token },
            Err(e) => e.into(),
        }
    }

    /// Completes a login's MFA challenge with a code or a recovery code.
    /// A wrong code counts as a failed login (lockout applies) and costs the
    /// challenge one of its attempts.
    pub async fn complete_mfa(
        &self,
        tenant: &TenantId,
        mfa_token: &str,
        factor: SecondFactor,
        client: ClientInfo,
    ) -> Result<TokenPair> {
        let runtime = self.runtime(tenant).await?;
        let authenticated = self.check_second_factor(&runtime, mfa_token, factor, &client).await?;
        self.start_session(&runtime, authenticated, client, None).await
    }

    /// The second-factor step of every login with TOTP: the challenge of the
    /// password step and a code (or a recovery code).
    pub(crate) async fn check_second_factor(
        &self,
        runtime: &TenantRuntime,
        mfa_token: &str,
        factor: SecondFactor,
        client: &ClientInfo,
    ) -> Result<Authenticated> {
        let tenant = &runtime.tenant.id;
        let (hash, owned, now) = (token_hash(mfa_token), tenant.clone(), self.now());
        let taken = self.store.write(move |store| store.take_one_time(&owned, &hash, CHALLENGE_PURPOSE, now)).await?;
        let Some(mut challenge) = taken else {
            return Err(Error::InvalidMfaToken);
        };
        let user = self.user(tenant, challenge.user_id).await.map_err(|_| Error::InvalidMfaToken)?;
        if user.disabled {
            return Err(Error::UserDisabled);
        }
        if challenge.decoy {
            // A wrong password's challenge during a lock: every code is
            // wrong, nothing is counted (the password was not either), and
            // the answer costs the same writes as a genuine wrong code.
            challenge.attempts += 1;
            if challenge.attempts < CHALLENGE_ATTEMPTS {
                self.keep_challenge(tenant, hash, challenge).await?;
            }
            self.store.durable().await?;
            return Err(Error::InvalidMfaCode);
        }
        // Counted before the code is checked (during a lock, up to the
        // threshold), so no more codes than the lockout threshold are
        // checked per lock, however many challenges and requests run at once.
        let user = match self.take_code_attempt(runtime, &user, challenge.in_lock).await {
            Ok((counted, _)) => counted,
            Err(locked) => {
                self.keep_challenge(tenant, hash, challenge).await?;
                return Err(locked);
            }
        };
        let used = match self.second_factor_proof(&user, &factor)? {
            Some(proof) => {
                let (used, decided) = self
                    .change_user(tenant, user.id, move |user| {
                        if !proof.use_up(user) {
                            return Change::Keep;
                        }
                        user.clear_failures();
                        user.updated_at = now;
                        Change::Write
                    })
                    .await?;
                (decided == Change::Write).then_some(used)
            }
            None => None,
        };
        let Some(user) = used else {
            challenge.attempts += 1;
            if challenge.attempts < CHALLENGE_ATTEMPTS {
                self.keep_challenge(tenant, hash, challenge).await?;
            }
            let event = Event::new(EventKind::MfaFailed).subject(user.id).ip(client.ip.clone());
            self.record(tenant, event).await;
            self.report_failure(runtime, &user, client).await;
            return Err(Error::InvalidMfaCode);
        };
        if matches!(factor, SecondFactor::RecoveryCode(_)) {
            let left = user.totp.as_ref().map_or(0, |totp| totp.recovery_codes.len());
            let event = Event::new(EventKind::RecoveryCodeUsed).subject(user.id).ip(client.ip.clone());
            self.record(tenant, event.detail(format!("{left} recovery codes left"))).await;
        }
        let scope = challenge.scope.unwrap_or_default();
        Ok(Authenticated { user, scope, auth_time: now, amr: vec![AMR_PASSWORD.to_owned(), AMR_OTP.to_owned()] })
    }

    /// Puts a challenge taken for an attempt back, for the next attempt.
    async fn keep_challenge(&self, tenant: &TenantId, hash: [u8; 32], challenge: OneTimeRecord) -> Result<()> {
        let owned = tenant.clone();
        self.store.write(move |store| store.put_one_time(&owned, &hash, &challenge)).await?;
        Ok(())
    }

    /// Checks a second factor against the user's confirmed TOTP: what using
    /// it up takes, or `None` if it does not match. Nothing is used up here;
    /// [`Proof::use_up`] does that on the stored record.
    fn second_factor_proof(&self, user: &UserRecord, factor: &SecondFactor) -> Result<Option<Proof>> {
        let Some(record) = user.totp.as_ref().filter(|totp| totp.confirmed) else { return Ok(None) };
        Ok(match factor {
            SecondFactor::Code(code) => self
                .accepted_step(user, record, code)?
                .map(|step| Proof::Step { sealed_secret: record.sealed_secret.clone(), step }),
            SecondFactor::RecoveryCode(code) => Some(Proof::RecoveryCode {
                keyed: self.recovery_code_hash(user, code),
                legacy: token_hash(&normalize(code)),
            }),
        })
    }

    /// A recovery code as stored: HMAC-SHA256 under a key derived from the
    /// master key, bound to the user. (Codes have about 49 bits; a bare
    /// SHA-256 in a stolen copy of the store could be searched offline.)
    fn recovery_code_hash(&self, user: &UserRecord, code: &str) -> [u8; 32] {
        let message = format!("{}\0{}\0{}", user.tenant, user.id, normalize(code));
        self.master.keyed_hash(RECOVERY_CODE_CONTEXT, message.as_bytes())
    }

    /// The time step a code belongs to (current, previous or next), if it is
    /// right and newer than the last step accepted.
    fn accepted_step(&self, user: &UserRecord, record: &TotpRecord, code: &str) -> Result<Option<u64>> {
        let code = code.trim();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(None);
        }
        let totp = self.totp(user, record)?;
        let now = u64::try_from(self.now()).unwrap_or(0) / STEP_SECONDS;
        let steps = now.saturating_sub(SKEW_STEPS.into())..=now + u64::from(SKEW_STEPS);
        // Every candidate is computed and compared in constant time, so the
        // answer's timing does not say which step matched.
        let mut matched = None;
        for step in steps {
            let expected = totp.generate(step * STEP_SECONDS);
            if constant_time_eq(expected.as_bytes(), code.as_bytes()) && step > record.last_step {
                matched = Some(step);
            }
        }
        Ok(matched)
    }
}

/// What a login's MFA challenge is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Challenge {
    /// For a right password of an account that is not locked.
    Normal,
    /// For a right password during a lock: its codes are checked during the
    /// lock, up to the lockout threshold.
    InLock,
    /// For a wrong password during a lock: no code completes it.
    Decoy,
}

/// A second factor that matched, to be used up on the stored record.
enum Proof {
    /// A right code for this time step of this secret.
    Step {
        /// The secret the code was checked against.
        sealed_secret: Vec<u8>,
        /// Its time step.
        step: u64,
    },
    /// A presented recovery code, as the keyed hash stored since and as
    /// the bare SHA-256 stored before (codes handed out then still work).
    RecoveryCode {
        /// See [`Latch::recovery_code_hash`].
        keyed: [u8; 32],
        /// SHA-256 of the normalised code.
        legacy: [u8; 32],
    },
}

impl Proof {
    /// Uses the factor up on `user` (the stored record, in the store's
    /// atomic step): the code's step becomes the last one accepted, or the
    /// recovery code is removed. False when the record no longer allows it:
    /// TOTP changed or off, the step (or a later one) already used, the
    /// recovery code not among the unused ones. So two requests with one
    /// code cannot both pass.
    fn use_up(&self, user: &mut UserRecord) -> bool {
        let Some(totp) = user.totp.as_mut().filter(|totp| totp.confirmed) else { return false };
        match self {
            Proof::Step { sealed_secret, step } => {
                if totp.sealed_secret != *sealed_secret || totp.last_step >= *step {
                    return false;
                }
                totp.last_step = *step;
                true
            }
            Proof::RecoveryCode { keyed, legacy } => {
                let position = totp.recovery_codes.iter().position(|stored| {
                    let (presented, stored) = match stored.strip_prefix(KEYED) {
                        Some(keyed_hex) => (keyed, keyed_hex),
                        None => (legacy, stored.as_str()),
                    };
                    hex::decode(stored)
                        .ok()
                        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                        .is_some_and(|stored| crate::crypto::hashes_equal(&stored, presented))
                });
                position.map(|index| totp.recovery_codes.remove(index)).is_some()
            }
        }
    }
}

fn totp_context(tenant: &TenantId, user: Uuid) -> String {
    format!("latch totp secret {tenant} {user}")
}

/// A recovery code: ten characters of an unambiguous alphabet, `xxxxx-xxxxx`.
fn recovery_code() -> SecretString {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    let mut code: String = (0..10).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
    code.insert(5, '-');
    code.into()
}

/// Recovery codes are compared without case, spaces or dashes.
fn normalize(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_stored_before_keyed_hashes_still_work_once() {
        let tenant = TenantId::parse("legacy").expect("slug");
        let mut user =
            UserRecord::new(tenant, "old@example.com".into(), "old@example.com".into(), String::new(), vec![], 0);
        let (old, new) = ("abcde-fghjk", "mnpqr-stuvw");
        user.totp = Some(TotpRecord {
            sealed_secret: vec![1],
            confirmed: true,
            last_step: 0,
            recovery_codes: vec![
                hex::encode(token_hash(&normalize(old))),
                format!("{KEYED}{}", hex::encode([9u8; 32])),
            ],
            created_at: 0,
        });
        let legacy = Proof::RecoveryCode { keyed: [0; 32], legacy: token_hash(&normalize("ABCDE FGHJK")) };
        assert!(legacy.use_up(&mut user), "a code stored as SHA-256 before keyed hashes");
        assert!(!legacy.use_up(&mut user), "once");
        let keyed = Proof::RecoveryCode { keyed: [9; 32], legacy: token_hash(&normalize(new)) };
        assert!(keyed.use_up(&mut user), "a keyed hash matches only its keyed form");
        assert_eq!(user.totp.expect("totp").recovery_codes, Vec::<String>::new());
    }
}
