//! Registration, login and the user's own profile.

use std::sync::Arc;

use uuid::Uuid;

use super::events::{Event, EventKind};
use super::mfa::Challenge;
use super::sessions::grant_scope;
use super::{
    ClientInfo, DisplayName, Email, Error, Latch, Password, Principal, Result, TenantId, TenantRuntime, TokenPair,
};
use crate::store::{Change, EmailVerification, StoreError, UserRecord};

/// `amr` of a password (RFC 8176).
pub const AMR_PASSWORD: &str = "pwd";
/// `amr` of a one-time code (RFC 8176).
pub const AMR_OTP: &str = "otp";

/// Who passed a login's checks, with what scope, when and how: what a
/// session (or an authorization code) is started from.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The user as stored after the checks.
    pub user: UserRecord,
    /// The scopes granted.
    pub scope: String,
    /// When they authenticated.
    pub auth_time: i64,
    /// How (RFC 8176 values: `pwd`, `otp`).
    pub amr: Vec<String>,
}

/// A registration request, unvalidated.
pub struct Registration {
    /// Email.
    pub email: String,
    /// Password.
    pub password: String,
    /// Optional display name.
    pub name: Option<String>,
}

/// What a registration produced.
pub enum Registered {
    /// The account exists and is logged in.
    LoggedIn(TokenPair),
    /// The account exists; it may log in once its email is verified.
    VerificationPending(UserRecord),
}

/// A new self-registered account.
pub enum NewAccount {
    /// It may sign in now (no session started yet).
    SignedIn(Box<Authenticated>),
    /// It may sign in once its email is verified.
    VerificationPending(Box<UserRecord>),
}

/// A password change by the user.
pub struct PasswordChange {
    /// The current password.
    pub current: String,
    /// The new password.
    pub new: String,
}

/// Changes to the caller's own profile.
pub struct Profile {
    /// New display name; `Some("")` clears it.
    pub name: Option<String>,
}

impl Latch {
    /// Creates a user and logs them in, unless the tenant requires a
    /// verified email first. A verification mail goes out when the tenant
    /// verifies emails.
    pub async fn register(
        self: &Arc<Self>,
        tenant: &TenantId,
        registration: Registration,
        client: ClientInfo,
    ) -> Result<Registered> {
        let runtime = self.runtime(tenant).await?;
        match self.create_account(&runtime, registration).await? {
            NewAccount::VerificationPending(user) => Ok(Registered::VerificationPending(*user)),
            NewAccount::SignedIn(authenticated) => {
                Ok(Registered::LoggedIn(self.start_session(&runtime, *authenticated, client, None).await?))
            }
        }
    }

    /// Self-registration's account: the tenant must take registrations; a
    /// verification mail goes out when the tenant verifies emails. `Created`
    /// (signed in by their password) unless the tenant requires a verified
    /// email first; no session is started.
    pub(crate) async fn create_account(
        self: &Arc<Self>,
        runtime: &TenantRuntime,
        registration: Registration,
    ) -> Result<NewAccount> {
        if runtime.tenant.settings.registration == crate::store::Registration::Closed {
            return Err(Error::RegistrationClosed);
        }
        let roles = runtime.tenant.settings.default_roles.clone();
        let email = Email::parse(&registration.email)?;
        let password = Password::parse(&registration.password, runtime.tenant.settings.password_min_length, &email)?;
        let hash = self.passwords.hash(password).await?;
        let user = self.add_user(runtime, &email, hash, registration.name, roles).await?;
        tracing::info!(tenant = %runtime.tenant.id, user = %user.id, "user registered");
        self.start_verification(runtime, &user);
        if runtime.tenant.settings.email_verification == EmailVerification::Required {
            return Ok(NewAccount::VerificationPending(Box::new(user)));
        }
        let scope = grant_scope(runtime, &user, None)?;
        let authenticated = Authenticated { user, scope, auth_time: self.now(), amr: vec![AMR_PASSWORD.to_owned()] };
        Ok(NewAccount::SignedIn(Box::new(authenticated)))
    }

    /// Validates a new account against the tenant's rules, hashes its
    /// password and stores it; `EmailTaken` if the email is in use.
    /// Stores a new user with `password_hash` (empty for an invited user:
    /// no password matches it until they set one).
    pub(super) async fn add_user(
        &self,
        runtime: &TenantRuntime,
        email: &Email,
        password_hash: String,
        name: Option<String>,
        roles: Vec<String>,
    ) -> Result<UserRecord> {
        let name = name.as_deref().map(DisplayName::parse).transpose()?.map(DisplayName::into_inner);
        let mut user = UserRecord::new(
            runtime.tenant.id.clone(),
            email.as_str().to_owned(),
            email.key().to_owned(),
            password_hash,
            roles,
            self.now(),
        );
        user.name = name;
        let stored = user.clone();
        self.store.write(move |store| store.insert_user(&stored)).await.map_err(|e| match e {
            StoreError::Conflict => Error::EmailTaken,
            other => other.into(),
        })?;
        Ok(user)
    }

    /// Checks email and password and starts a session with the requested
    /// scopes (all the user's roles allow when `None`). Unknown email and
    /// wrong password cost the same and give the same error.
    pub async fn login(
        &self,
        tenant: &TenantId,
        email: &str,
        password: &str,
        scope: Option<&str>,
        client: ClientInfo,
    ) -> Result<TokenPair> {
        let runtime = self.runtime(tenant).await?;
        let authenticated = self.check_password(&runtime, email, password, scope, &client).await?;
        self.start_session(&runtime, authenticated, client, None).await
    }

    /// The password step of every login (the JSON endpoint, the password
    /// grant, the hosted login page): lockout, a disabled account, email
    /// verification, the second factor (answered `MfaRequired`), and the
    /// rehash of an outdated hash. Unknown email and wrong password cost the
    /// same and give the same error.
    pub(crate) async fn check_password(
        &self,
        runtime: &TenantRuntime,
        email: &str,
        password: &str,
        scope: Option<&str>,
        client: &ClientInfo,
    ) -> Result<Authenticated> {
        let tenant = &runtime.tenant.id;
        let password = Password::presented(password)?;
        let key = Email::parse(email).map(|e| e.key().to_owned()).unwrap_or_default();
        let account = account_key(tenant, &key);
        let owned = tenant.clone();
        let user = if key.is_empty() {
            None
        } else {
            self.store.run(move |store| store.find_user_by_email(&owned, &key)).await?
        };
        let rehash = Password::presented(password.expose())?;
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let verdict = self.passwords.verify_for(&account, password, stored).await?;
        let now = self.now();
        let Some(user) = user else {
            tracing::info!(tenant = %tenant, "login failed");
            self.record(tenant, Event::new(EventKind::LoginFailed).ip(client.ip.clone())).await;
            // A known email's failure waits for its count to be durable; so
            // does this one, for a flush, so the answer's timing does not
            // say whether the email exists (`benches/login_timing.py`).
            self.store.durable().await?;
            return Err(Error::InvalidCredentials);
        };
        // A locked account refuses even the right password until the lock
        // ends, except with a second factor: see `locked_challenge`.
        if let Some(until) = user.locked_until.filter(|until| *until > now) {
            if Self::needs_mfa(&user) {
                return Err(self.locked_challenge(runtime, &user, verdict.matches, scope).await);
            }
            let event = Event::new(EventKind::LoginFailed).subject(user.id).ip(client.ip.clone());
            self.record(tenant, event.detail("account locked")).await;
            return Err(Error::AccountLocked { retry_after: (until - now) as u64 });
        }
        if !verdict.matches {
            self.count_failed_login(runtime, &user, client).await?;
            return Err(Error::InvalidCredentials);
        }
        if user.disabled {
            return Err(Error::UserDisabled);
        }
        if runtime.tenant.settings.email_verification == EmailVerification::Required && !user.email_verified {
            return Err(Error::EmailNotVerified);
        }
        let scope = grant_scope(runtime, &user, scope)?;
        if Self::needs_mfa(&user) {
            return Err(self.mfa_challenge(&user, scope, Challenge::Normal).await);
        }
        let mut user = user;
        if user.failed_logins > 0 || user.locked_until.is_some() || verdict.outdated {
            let upgraded = if verdict.outdated { Some(self.passwords.hash(rehash).await?) } else { None };
            user = self.clear_failures(&user, upgraded).await?;
            if verdict.outdated {
                tracing::info!(tenant = %tenant, user = %user.id, "password hash upgraded to current parameters");
            }
        }
        Ok(Authenticated { user, scope, auth_time: now, amr: vec![AMR_PASSWORD.to_owned()] })
    }

    /// During a lock, an account with a second factor answers every password
    /// with an MFA challenge, so a lock set off by someone guessing does not
    /// keep the owner out: their right password and a valid code still get
    /// in (the codes count against the lock, [`Latch::take_code_attempt`]).
    /// A wrong password gets a decoy challenge that no code completes, so
    /// the answer does not say whether the password was right; the wrong
    /// password is not counted, as no attempt during a lock is.
    async fn locked_challenge(
        &self,
        runtime: &TenantRuntime,
        user: &UserRecord,
        password_matches: bool,
        scope: Option<&str>,
    ) -> Error {
        let verification_missing =
            runtime.tenant.settings.email_verification == EmailVerification::Required && !user.email_verified;
        let granted = grant_scope(runtime, user, scope).ok();
        match granted.filter(|_| password_matches && !user.disabled && !verification_missing) {
            Some(scope) => self.mfa_challenge(user, scope, Challenge::InLock).await,
            None => self.mfa_challenge(user, String::new(), Challenge::Decoy).await,
        }
    }

    /// After a successful check of `verified`'s password: resets the failure
    /// count and lifts an ended lock, and stores `upgraded` (the same
    /// password hashed with current parameters) when given. Applied to the
    /// stored user only while its password is still the one verified and no
    /// lock started meanwhile; otherwise the login is refused.
    pub(super) async fn clear_failures(&self, verified: &UserRecord, upgraded: Option<String>) -> Result<UserRecord> {
        let (checked_hash, now) = (verified.password_hash.clone(), self.now());
        let (user, decided) = self
            .change_user(&verified.tenant, verified.id, move |user| {
                if user.password_hash != checked_hash || user.locked_until.is_some_and(|until| until > now) {
                    return Change::Keep;
                }
                user.clear_failures();
                if let Some(upgraded) = &upgraded {
                    user.password_hash = upgraded.clone();
                }
                user.updated_at = now;
                Change::Write
            })
            .await?;
        match (decided, user.locked_until) {
            (Change::Write, _) => Ok(user),
            (Change::Keep, Some(until)) if until > now => {
                Err(Error::AccountLocked { retry_after: (until - now) as u64 })
            }
            // The password changed while this one was being checked.
            (Change::Keep, _) => Err(Error::InvalidCredentials),
        }
    }

    /// Counts a wrong password or code; at the tenant's threshold the account
    /// locks for `lockout_base_seconds`, doubling with each further failure
    /// up to `lockout_max_seconds`. The count is incremented on the stored
    /// record in the store's atomic step, so concurrent failures all count,
    /// and it survives restarts.
    pub(super) async fn count_failed_login(
        &self,
        runtime: &TenantRuntime,
        user: &UserRecord,
        client: &ClientInfo,
    ) -> Result<()> {
        let (rule, now) = (LockoutRule::of(runtime), self.now());
        let (user, _) = self
            .change_user(&user.tenant, user.id, move |user| {
                rule.count(user, now);
                Change::Write
            })
            .await?;
        self.report_failure_at(&rule, &user, client, now).await;
        Ok(())
    }

    /// Takes one attempt at a secret of `user` (a second factor, a current
    /// password) before it is checked: refused while the account is locked,
    /// otherwise counted as a failure at once. Concurrent attempts so see
    /// each other's counts, and no more than the threshold are ever checked
    /// before the lock, whatever the order they run in. A right answer then
    /// clears the count; a wrong one only needs [`Latch::report_failure`].
    pub(super) async fn take_attempt(&self, runtime: &TenantRuntime, user: &UserRecord) -> Result<(UserRecord, i64)> {
        self.take_code_attempt(runtime, user, false).await
    }

    /// Checks the current password that a change to the account's security
    /// takes (a password change, TOTP on or off): one attempt, taken before
    /// the check (refused while locked), within the account's hashing share.
    /// A wrong password is reported and answered `CurrentPasswordWrong`; a
    /// right one returns the counted user and the time, and the caller's
    /// change clears the count.
    pub(super) async fn check_current_password(
        &self,
        runtime: &TenantRuntime,
        user: &UserRecord,
        password: &str,
        client: &ClientInfo,
    ) -> Result<(UserRecord, i64)> {
        let presented = Password::presented(password).map_err(|_| Error::CurrentPasswordWrong)?;
        let (counted, now) = self.take_attempt(runtime, user).await?;
        let account = account_key(&user.tenant, Email::parse(&user.email)?.key());
        let verdict = self.passwords.verify_for(&account, presented, Some(counted.password_hash.clone())).await?;
        if !verdict.matches {
            self.report_failure(runtime, &counted, client).await;
            return Err(Error::CurrentPasswordWrong);
        }
        Ok((counted, now))
    }

    /// [`Latch::take_attempt`] for a second-factor code that completes a
    /// login. A challenge handed out during the lock (`in_lock`, for a right
    /// password) is still taken during it, up to the lockout threshold per
    /// lock, so the owner's right password and code get in (see
    /// `locked_challenge`); each one counts and lengthens the lock like any
    /// failure until a right one clears it. Challenges from before the lock
    /// are refused like every other attempt.
    pub(super) async fn take_code_attempt(
        &self,
        runtime: &TenantRuntime,
        user: &UserRecord,
        in_lock: bool,
    ) -> Result<(UserRecord, i64)> {
        let (rule, now) = (LockoutRule::of(runtime), self.now());
        let (user, decided) = self
            .change_user(&user.tenant, user.id, move |user| {
                if user.locked_until.is_some_and(|until| until > now) {
                    if !in_lock || user.locked_code_attempts >= rule.threshold {
                        return Change::Keep;
                    }
                    user.locked_code_attempts += 1;
                }
                rule.count(user, now);
                Change::Write
            })
            .await?;
        match (decided, user.locked_until) {
            (Change::Keep, Some(until)) => Err(Error::AccountLocked { retry_after: (until - now).max(1) as u64 }),
            _ => Ok((user, now)),
        }
    }

    /// Logs and records a counted failure, and the lock if it started one.
    pub(super) async fn report_failure(&self, runtime: &TenantRuntime, user: &UserRecord, client: &ClientInfo) {
        self.report_failure_at(&LockoutRule::of(runtime), user, client, self.now()).await;
    }

    async fn report_failure_at(&self, rule: &LockoutRule, user: &UserRecord, client: &ClientInfo, now: i64) {
        tracing::info!(tenant = %user.tenant, user = %user.id, failures = user.failed_logins, "login failed");
        let tenant = &user.tenant;
        self.record(tenant, Event::new(EventKind::LoginFailed).subject(user.id).ip(client.ip.clone())).await;
        if let Some(until) = user.locked_until.filter(|_| rule.threshold > 0 && user.failed_logins >= rule.threshold) {
            tracing::warn!(tenant = %tenant, user = %user.id, until, "account locked after repeated failed logins");
            let event = Event::new(EventKind::Lockout).subject(user.id).ip(client.ip.clone());
            self.record(
                tenant,
                event.detail(format!("{} failed logins; locked for {}s", user.failed_logins, until - now)),
            )
            .await;
        }
    }

    /// Changes the caller's password (the current one is required) and ends
    /// every other session of theirs.
    pub async fn change_password(
        &self,
        principal: &Principal,
        change: PasswordChange,
        client: &ClientInfo,
    ) -> Result<()> {
        let tenant = &principal.user.tenant;
        let runtime = self.runtime(tenant).await?;
        let email = Email::parse(&principal.user.email)?;
        let new = Password::parse(&change.new, runtime.tenant.settings.password_min_length, &email)?;
        let (counted, now) = self.check_current_password(&runtime, &principal.user, &change.current, client).await?;
        let checked = counted.password_hash.clone();
        let hash = self.passwords.hash(new).await?;
        let keep = principal.session.id;
        let (_, decided) = self
            .change_user_then(
                tenant,
                principal.user.id,
                move |user| {
                    // Changed by someone else meanwhile: the current password given is no longer current.
                    if user.password_hash != checked {
                        return Change::Keep;
                    }
                    user.set_password_hash(hash.clone());
                    user.updated_at = now;
                    Change::Write
                },
                move |store, user| store.revoke_user_sessions(&user.tenant, user.id, Some(keep), now).map(drop),
            )
            .await?;
        if decided == Change::Keep {
            return Err(Error::CurrentPasswordWrong);
        }
        self.record(tenant, Event::new(EventKind::PasswordChanged).actor(principal.user.id).subject(principal.user.id))
            .await;
        Ok(())
    }

    /// Updates the profile of `owner` (the owner-only rule applies).
    pub async fn update_profile(&self, principal: &Principal, owner: Uuid, profile: Profile) -> Result<UserRecord> {
        let user = self.user_for(principal, owner).await?;
        let name = match profile.name {
            None => None,
            Some(name) if name.trim().is_empty() => Some(None),
            Some(name) => Some(Some(DisplayName::parse(&name)?.into_inner())),
        };
        let now = self.now();
        let (user, _) = self
            .change_user(&user.tenant, user.id, move |user| {
                if let Some(name) = &name {
                    user.name = name.clone();
                }
                user.updated_at = now;
                Change::Write
            })
            .await?;
        Ok(user)
    }
}

/// The tenant's lockout settings, applied to a stored account.
#[derive(Debug, Clone, Copy)]
pub(super) struct LockoutRule {
    threshold: u32,
    base: u64,
    max: u64,
}

impl LockoutRule {
    fn of(runtime: &TenantRuntime) -> LockoutRule {
        let settings = &runtime.tenant.settings;
        LockoutRule {
            threshold: settings.lockout_threshold,
            base: settings.lockout_base_seconds as u64,
            max: settings.lockout_max_seconds as u64,
        }
    }

    /// One more failure on the stored record; at the threshold and beyond,
    /// a lock of `base` seconds doubling per failure, at most `max`.
    fn count(&self, user: &mut UserRecord, now: i64) {
        let was_locked = user.locked_until.is_some_and(|until| until > now);
        user.failed_logins = user.failed_logins.saturating_add(1);
        let beyond = user.failed_logins.checked_sub(self.threshold).filter(|_| self.threshold > 0);
        if let Some(beyond) = beyond {
            let delay = self.base.saturating_mul(1u64 << beyond.min(32)).min(self.max);
            user.locked_until = Some(now + delay as i64);
            if !was_locked {
                // A new lock: the owner's code attempts during it start afresh.
                user.locked_code_attempts = 0;
            }
        }
    }
}

/// Names an account across endpoints for its share of the hashing pool:
/// the tenant and the normalised email (also for emails no account has).
pub(super) fn account_key(tenant: &TenantId, email_key: &str) -> String {
    format!("{tenant}\0{email_key}")
}
