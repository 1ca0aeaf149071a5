//! TOTP (RFC 6238) as a second factor: enrollment confirmed by a first code,
//! ten single-use recovery codes, logins answered `mfa_required` with a
//! short-lived challenge that a code completes, each time step's code taken
//! at most once.

use rand::Rng as _;
use secrecy::{ExposeSecret as _, SecretString};
use totp_rs::{Algorithm, TOTP};
use uuid::Uuid;

use super::events::{Event, EventKind};
use super::{ClientInfo, Error, Latch, Password, Principal, Result, TenantId, TokenPair};
use crate::crypto::{random_token, token_hash};
use crate::store::{OneTimeRecord, TotpRecord, UserRecord};

/// Seconds a login's MFA challenge stays usable.
pub const CHALLENGE_TTL_SECONDS: i64 = 300;
/// Wrong codes a challenge takes before it is used up.
const CHALLENGE_ATTEMPTS: u32 = 5;
const CHALLENGE_PURPOSE: &str = "mfa";
const CHALLENGE_PREFIX: &str = "latch_mfa_";
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
    /// [`Latch::confirm_totp`]. Refused while a confirmed factor exists.
    pub async fn enroll_totp(&self, principal: &Principal) -> Result<TotpEnrollment> {
        let mut user = principal.user.clone();
        if user.totp.as_ref().is_some_and(|totp| totp.confirmed) {
            return Err(Error::MfaAlreadyEnabled);
        }
        let secret: [u8; SECRET_BYTES] = rand::thread_rng().r#gen();
        let record = TotpRecord {
            sealed_secret: self.master.seal(&totp_context(&user.tenant, user.id), &secret),
            confirmed: false,
            last_step: 0,
            recovery_codes: Vec::new(),
            created_at: self.now(),
        };
        let totp = self.totp(&user, &record)?;
        let enrollment = TotpEnrollment { secret: totp.get_secret_base32().into(), otpauth_uri: totp.get_url().into() };
        user.totp = Some(record);
        user.updated_at = self.now();
        self.store.write(move |store| store.update_user(&user)).await?;
        Ok(enrollment)
    }

    /// Confirms enrollment with a first code; returns the recovery codes,
    /// shown this once (only their hashes are kept).
    pub async fn confirm_totp(&self, principal: &Principal, code: &str) -> Result<Vec<SecretString>> {
        let mut user = principal.user.clone();
        let Some(mut record) = user.totp.clone().filter(|totp| !totp.confirmed) else {
            return Err(Error::MfaNotPending);
        };
        record.last_step = self.accepted_step(&user, &record, code)?.ok_or(Error::InvalidMfaCode)?;
        let codes: Vec<SecretString> = (0..RECOVERY_CODES).map(|_| recovery_code()).collect();
        record.recovery_codes =
            codes.iter().map(|code| hex::encode(token_hash(&normalize(code.expose_secret())))).collect();
        record.confirmed = true;
        user.totp = Some(record);
        user.updated_at = self.now();
        let id = user.id;
        self.store.write(move |store| store.update_user(&user)).await?;
        self.record(&principal.user.tenant, Event::new(EventKind::MfaEnabled).actor(id).subject(id)).await;
        Ok(codes)
    }

    /// Turns TOTP off; needs the password and a code (or a recovery code).
    pub async fn disable_totp(&self, principal: &Principal, password: &str, factor: SecondFactor) -> Result<()> {
        let mut user = principal.user.clone();
        if !user.totp.as_ref().is_some_and(|totp| totp.confirmed) {
            return Err(Error::MfaNotEnabled);
        }
        let presented = Password::presented(password).map_err(|_| Error::CurrentPasswordWrong)?;
        if !self.passwords.verify(presented, Some(user.password_hash.clone())).await?.matches {
            return Err(Error::CurrentPasswordWrong);
        }
        if !self.take_second_factor(&mut user, &factor)? {
            return Err(Error::InvalidMfaCode);
        }
        user.totp = None;
        user.updated_at = self.now();
        let id = user.id;
        self.store.write(move |store| store.update_user(&user)).await?;
        self.record(&principal.user.tenant, Event::new(EventKind::MfaDisabled).actor(id).subject(id)).await;
        Ok(())
    }

    /// Whether the user must pass a second factor to log in.
    pub(super) fn needs_mfa(user: &UserRecord) -> bool {
        user.totp.as_ref().is_some_and(|totp| totp.confirmed)
    }

    /// After a right password for a user with TOTP: a challenge to complete
    /// with [`Latch::complete_mfa`], as the error the login answers.
    pub(super) async fn mfa_challenge(&self, user: &UserRecord, scope: String) -> Error {
        let token = random_token(CHALLENGE_PREFIX);
        let record = OneTimeRecord {
            purpose: CHALLENGE_PURPOSE.to_owned(),
            user_id: user.id,
            expires_at: self.now() + CHALLENGE_TTL_SECONDS,
            scope: Some(scope),
            attempts: 0,
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
        let (hash, owned, now) = (token_hash(mfa_token), tenant.clone(), self.now());
        let taken = self.store.write(move |store| store.take_one_time(&owned, &hash)).await?;
        let Some(mut challenge) = taken.filter(|r| r.purpose == CHALLENGE_PURPOSE && r.expires_at > now) else {
            return Err(Error::InvalidMfaToken);
        };
        let mut user = self.user(tenant, challenge.user_id).await.map_err(|_| Error::InvalidMfaToken)?;
        if user.disabled {
            return Err(Error::UserDisabled);
        }
        if let Some(until) = user.locked_until.filter(|until| *until > now) {
            return Err(Error::AccountLocked { retry_after: (until - now) as u64 });
        }
        if !self.take_second_factor(&mut user, &factor)? {
            challenge.attempts += 1;
            if challenge.attempts < CHALLENGE_ATTEMPTS {
                let owned = tenant.clone();
                self.store.write(move |store| store.put_one_time(&owned, &hash, &challenge)).await?;
            }
            let event = Event::new(EventKind::MfaFailed).subject(user.id).ip(client.ip.clone());
            self.record(tenant, event).await;
            self.count_failed_login(&runtime, user, &client).await?;
            return Err(Error::InvalidMfaCode);
        }
        if matches!(factor, SecondFactor::RecoveryCode(_)) {
            let left = user.totp.as_ref().map_or(0, |totp| totp.recovery_codes.len());
            let event = Event::new(EventKind::RecoveryCodeUsed).subject(user.id).ip(client.ip.clone());
            self.record(tenant, event.detail(format!("{left} recovery codes left"))).await;
        }
        user.failed_logins = 0;
        user.locked_until = None;
        user.updated_at = now;
        let stored = user.clone();
        self.store.write(move |store| store.update_user(&stored)).await?;
        let scope = challenge.scope.unwrap_or_default();
        self.start_session(&runtime, user, scope, client).await
    }

    /// Checks a second factor against the user's confirmed TOTP and uses it
    /// up (the code's step, or the recovery code) in `user`; the caller stores
    /// the user. False if it does not match or was used already.
    fn take_second_factor(&self, user: &mut UserRecord, factor: &SecondFactor) -> Result<bool> {
        let Some(record) = user.totp.clone().filter(|totp| totp.confirmed) else { return Ok(false) };
        let accepted = match factor {
            SecondFactor::Code(code) => match self.accepted_step(user, &record, code)? {
                Some(step) => {
                    let record = user.totp.as_mut().expect("checked above");
                    record.last_step = step;
                    true
                }
                None => false,
            },
            SecondFactor::RecoveryCode(code) => {
                let presented = token_hash(&normalize(code));
                let record = user.totp.as_mut().expect("checked above");
                let position = record.recovery_codes.iter().position(|stored| {
                    hex::decode(stored)
                        .ok()
                        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                        .is_some_and(|stored| crate::crypto::hashes_equal(&stored, &presented))
                });
                position.map(|index| record.recovery_codes.remove(index)).is_some()
            }
        };
        Ok(accepted)
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
