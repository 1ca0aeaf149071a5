//! Domain services: what latch does, independent of HTTP.
//!
//! [`Latch`] holds the store, the clock, the master key and the password
//! hasher; its methods are grouped by concern in the submodules (tenants and
//! keys, accounts, sessions and tokens).

mod accounts;
mod admin;
mod authority;
mod clients;
mod events;
pub mod hashes;
pub mod imports;
mod keys;
mod mfa;
mod oidc;
mod passwords;
mod patch;
mod recovery;
mod revocations;
mod runtime;
mod sessions;
mod settings;
mod tenants;
mod types;
mod verification;

pub use crate::ids::TenantId;
pub use accounts::Authenticated;
pub use accounts::{NewAccount, PasswordChange, Profile, Registered, Registration};
pub use admin::{NewUser, Page};
pub use authority::{Actor, Operator};
pub use clients::{
    ClientChanges, ClientCredentials, ClientToken, NewClient, client_changes, client_setting_names, is_redirect_uri,
    redirect_uri_matches,
};
pub use events::{Event, EventKind};
pub use keys::DEFAULT_PUBLISH_DELAY_SECONDS;
pub use mfa::{SecondFactor, TotpEnrollment};
pub use oidc::{
    Authorization, AuthorizationError, AuthorizationRequest, BROWSER_SESSION_SECONDS, BrowserSession, CODE_TTL_SECONDS,
    Userinfo, s256,
};
pub use passwords::{PasswordHasher, Verdict, default_params};
pub use patch::{InvalidSetting, Rule, Ruled};
pub use revocations::{FEED_MAX_AGE_SECONDS, Feed, feed_of};
pub use runtime::TenantRuntime;
pub use sessions::{ClientInfo, Introspection, Principal, TokenPair};
pub use settings::{ADMIN_ROLE, TenantChanges, effective_audience, setting_names};
pub use tenants::NewTenant;
pub use types::{DisplayName, Email, MAX_PASSWORD_BYTES, Password, PasswordRule};

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::clock::Clock;
use crate::crypto::MasterKey;
use crate::mail::Mailer;
use uuid::Uuid;

use crate::store::{Change, Store, StoreError, StoreHandle, StoreResult, UserRecord};

/// What can go wrong in a domain operation. The API maps each variant to one
/// status and one stable code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The tenant id is not a slug.
    #[error("tenant ids are 1-63 characters of a-z, 0-9 and '-'")]
    InvalidTenantId,
    /// No such tenant.
    #[error("no such tenant")]
    TenantNotFound,
    /// The tenant id is taken.
    #[error("a tenant with this id already exists")]
    TenantExists,
    /// A tenant setting is unknown, of the wrong type or out of range.
    #[error(transparent)]
    InvalidSetting(#[from] InvalidSetting),
    /// The email address is malformed.
    #[error("the email address is not valid")]
    InvalidEmail,
    /// The password breaks the tenant's policy.
    #[error("{0}")]
    WeakPassword(PasswordRule),
    /// The display name is empty, too long or has control characters.
    #[error("the name must be 1-200 characters without control characters")]
    InvalidName,
    /// The email is taken in this tenant.
    #[error("an account with this email already exists")]
    EmailTaken,
    /// The tenant does not let people register themselves.
    #[error("this tenant does not take registrations; an administrator creates or invites users")]
    RegistrationClosed,
    /// Unknown email or wrong password (deliberately indistinguishable).
    #[error("the email or password is wrong")]
    InvalidCredentials,
    /// The user is disabled.
    #[error("the account is disabled")]
    UserDisabled,
    /// Too many failed logins: the account is locked for a while.
    #[error("too many failed logins; the account is locked for {retry_after} more seconds")]
    AccountLocked {
        /// Seconds until the lock ends.
        retry_after: u64,
    },
    /// Too many requests from this client.
    #[error("too many requests; retry in {retry_after} seconds")]
    RateLimited {
        /// Seconds until a request is allowed again.
        retry_after: u64,
    },
    /// The access token failed verification.
    #[error("the access token is invalid: {0}")]
    InvalidToken(latch_shared::Error),
    /// The token's session was ended (logout, revocation) or its user is gone.
    #[error("the session has ended")]
    SessionEnded,
    /// The refresh token is unknown, expired or its session ended.
    #[error("the refresh token is invalid or expired")]
    InvalidRefreshToken,
    /// A rotated refresh token was presented again; the whole session was revoked.
    #[error("the refresh token was already used; the session has been revoked")]
    RefreshTokenReused,
    /// The operator token is missing or wrong.
    #[error("the operator token is missing or wrong")]
    NotOperator,
    /// The introspection credential is missing or wrong.
    #[error("introspection needs the tenant's introspection secret or the operator token")]
    NotIntrospector,
    /// A requested scope is beyond what the user's roles allow.
    #[error("the scope `{0}` is not granted to this user")]
    InvalidScope(String),
    /// No such session among the caller's.
    #[error("no such session")]
    SessionNotFound,
    /// The caller may not do this (not an admin of the tenant, or not the owner).
    #[error("{0}")]
    Forbidden(&'static str),
    /// No such user in this tenant.
    #[error("no such user")]
    UserNotFound,
    /// A role that the tenant does not define.
    #[error("the tenant defines no role `{0}`")]
    UnknownRole(String),
    /// An import body that could not be read whole, or is too large.
    #[error("{0}")]
    ImportUnreadable(String),
    /// An import with bad lines: nothing was imported.
    #[error("{count} of the {lines} lines cannot be imported, so none was; each is listed with its reason")]
    ImportRefused {
        /// The first [`imports::MAX_REPORTED_ERRORS`] bad lines.
        errors: Vec<imports::LineError>,
        /// Bad lines in all.
        count: u64,
        /// Non-blank lines in all.
        lines: u64,
    },
    /// A password-reset token that is unknown, used or expired.
    #[error("the reset link is invalid, used or expired; ask for a new one")]
    InvalidResetToken,
    /// A pagination cursor that this server did not hand out.
    #[error("the cursor is not one this endpoint returned")]
    InvalidCursor,
    /// The password was right; a second factor must complete the login.
    #[error("a second factor is required: complete the login with a TOTP code")]
    MfaRequired {
        /// The challenge to present with the code.
        mfa_token: secrecy::SecretString,
    },
    /// An MFA challenge that is unknown, used up or expired.
    #[error("the MFA challenge is invalid, used up or expired; log in again")]
    InvalidMfaToken,
    /// The account's email is not verified and the tenant requires it.
    #[error("the email address is not verified yet; open the link mailed to it, or ask for a new one")]
    EmailNotVerified,
    /// An email-verification token that is unknown, used or expired.
    #[error("the verification link is invalid, used or expired; ask for a new one")]
    InvalidVerificationToken,
    /// A TOTP or recovery code that is wrong or was used already.
    #[error("the code is wrong or was already used")]
    InvalidMfaCode,
    /// TOTP is already on for this account.
    #[error("TOTP is already enabled; disable it first")]
    MfaAlreadyEnabled,
    /// No TOTP enrollment waits for confirmation.
    #[error("no TOTP enrollment to confirm; start one first")]
    MfaNotPending,
    /// TOTP is not on for this account.
    #[error("TOTP is not enabled for this account")]
    MfaNotEnabled,
    /// An authorization code or a refresh token that cannot be used: unknown,
    /// used, expired, or bound to another client or redirect URI.
    #[error("{0}")]
    InvalidGrant(&'static str),
    /// An authorization code presented a second time: the session its first
    /// use started has been ended.
    #[error("the authorization code was already used; the session it started has been ended")]
    AuthorizationCodeReused,
    /// The access token lacks a scope this endpoint needs.
    #[error("the access token lacks the `{0}` scope")]
    InsufficientScope(&'static str),
    /// The client may not use this grant type.
    #[error("this client may not use the grant type `{0}`")]
    UnauthorizedClient(String),
    /// No such OAuth client in this tenant.
    #[error("no such client")]
    ClientNotFound,
    /// The client id is taken in this tenant.
    #[error("a client with this id already exists")]
    ClientExists,
    /// A token request's client authentication failed: unknown client, or a
    /// missing or wrong secret.
    #[error("client authentication failed")]
    InvalidClient,
    /// A public client has no secret to replace.
    #[error("public clients have no secret")]
    PublicClientHasNoSecret,
    /// The current password given to change it is wrong.
    #[error("the current password is wrong")]
    CurrentPasswordWrong,
    /// A stored signing key cannot be decrypted with this master key.
    #[error("a signing key cannot be decrypted with this master key")]
    KeyUnavailable,
    /// Hashing or another internal step failed (the log has the detail).
    #[error("internal failure: {0}")]
    Internal(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<crate::ids::InvalidTenantId> for Error {
    fn from(_: crate::ids::InvalidTenantId) -> Error {
        Error::InvalidTenantId
    }
}

/// Result of a domain operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the domain services are built on.
pub struct Services {
    /// The store.
    pub store: StoreHandle,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The master key sealing signing keys and grace successors.
    pub master: MasterKey,
    /// The bounded password hasher.
    pub passwords: PasswordHasher,
    /// Outgoing mail.
    pub mailer: Mailer,
    /// Verified access tokens remembered (all tenants together; 0: none).
    pub token_cache_entries: usize,
}

/// The domain services.
pub struct Latch {
    store: StoreHandle,
    clock: Arc<dyn Clock>,
    master: MasterKey,
    passwords: PasswordHasher,
    mailer: Mailer,
    public_url: String,
    runtimes: RwLock<HashMap<TenantId, Arc<TenantRuntime>>>,
    /// Moved by every `forget_runtime` (see there).
    runtime_epoch: std::sync::atomic::AtomicU64,
    operator_token_hash: [u8; 32],
    /// Work that runs after its request was answered (mail).
    background: tokio_util::task::TaskTracker,
    /// Other nodes' tenant changes, while the store announces them (see `watch_other_nodes`).
    watch: std::sync::Mutex<Option<crate::store::Watch>>,
    /// Held while due key rotations are checked and made, so two checks at
    /// once (the minute's upkeep and an operator's call) cannot both find a
    /// key due and rotate it twice. Nodes sharing a store take turns through
    /// the store's scheduled-work lock.
    rotation_check: tokio::sync::Mutex<()>,
    /// Access tokens verified, for every tenant's runtime.
    verified: Arc<runtime::VerifiedTokens>,
}

impl Latch {
    /// Assembles the services. `public_url` has no trailing slash.
    pub fn new(services: Services, public_url: String, operator_token_hash: [u8; 32]) -> Latch {
        let Services { store, clock, master, passwords, mailer, token_cache_entries } = services;
        Latch {
            store,
            clock,
            master,
            passwords,
            mailer,
            public_url: public_url.trim_end_matches('/').to_owned(),
            runtimes: RwLock::new(HashMap::new()),
            runtime_epoch: std::sync::atomic::AtomicU64::new(0),
            operator_token_hash,
            background: tokio_util::task::TaskTracker::new(),
            watch: std::sync::Mutex::new(None),
            rotation_check: tokio::sync::Mutex::new(()),
            verified: Arc::new(runtime::VerifiedTokens::new(token_cache_entries)),
        }
    }

    /// The public base URL.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The issuer of a tenant: `{public_url}/t/{tenant}`.
    pub fn issuer(&self, tenant: &TenantId) -> String {
        format!("{}/t/{}", self.public_url, tenant)
    }

    /// The current time.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Whether latch can serve every request: the store answers reads and
    /// takes writes. `Err` says what is wrong (for `/readyz`).
    pub async fn ready(&self) -> Result<(), &'static str> {
        if !self.store.writable() {
            return Err("the store cannot write (disk full or I/O error); see the server log");
        }
        match self.store.read(|store| store.get_meta(crate::store::sled::FORMAT_KEY)).await {
            Ok(Some(_)) => Ok(()),
            _ => Err("the store does not answer"),
        }
    }

    /// The right to run the scheduled work now (one node at a time on a
    /// shared store); `None` while another node holds it. Pass the guard to
    /// [`Latch::scheduled_work_done`].
    pub async fn scheduled_work(&self) -> Result<Option<crate::store::ScheduledWork>> {
        Ok(self.store.run(|store| store.scheduled_work()).await?)
    }

    /// Gives the scheduled work up for another node (the release may block).
    pub async fn scheduled_work_done(&self, held: crate::store::ScheduledWork) {
        let _ = tokio::task::spawn_blocking(move || drop(held)).await;
    }

    /// Waits until the work started in the background so far has finished
    /// (tests await this instead of sleeping; shutdown before closing the store).
    pub async fn background_settled(&self) {
        self.background.close();
        self.background.wait().await;
        self.background.reopen();
    }

    /// Applies `change` to the stored user inside the store's atomic step and
    /// waits until it is durable. Returns the user as it stands afterwards
    /// and what the change decided on that fresh record; `UserNotFound` if
    /// there is none. The one way domain code changes a user: a copy read
    /// before an `.await` is never written back.
    pub(crate) async fn change_user(
        &self,
        tenant: &TenantId,
        id: Uuid,
        change: impl FnMut(&mut UserRecord) -> Change + Send + 'static,
    ) -> Result<(UserRecord, Change)> {
        self.change_user_then(tenant, id, change, |_, _| Ok(())).await
    }

    /// [`Latch::change_user`] for a change that may not apply to the fresh
    /// record: `refused` when it answers [`Change::Keep`], else the changed user.
    pub(crate) async fn change_user_or(
        &self,
        tenant: &TenantId,
        id: Uuid,
        refused: Error,
        change: impl FnMut(&mut UserRecord) -> Change + Send + 'static,
    ) -> Result<UserRecord> {
        match self.change_user(tenant, id, change).await? {
            (user, Change::Write) => Ok(user),
            (_, Change::Keep) => Err(refused),
        }
    }

    /// [`Latch::change_user`], then (in the same store call, only when the
    /// change was written) `then` with the changed user, e.g. to end sessions.
    pub(crate) async fn change_user_then(
        &self,
        tenant: &TenantId,
        id: Uuid,
        mut change: impl FnMut(&mut UserRecord) -> Change + Send + 'static,
        then: impl FnOnce(&dyn Store, &UserRecord) -> StoreResult<()> + Send + 'static,
    ) -> Result<(UserRecord, Change)> {
        let owned = tenant.clone();
        let (user, decided) = self
            .store
            .write(move |store| {
                let mut decided = Change::Keep;
                let user = store.update_user(&owned, id, &mut |user| {
                    decided = change(user);
                    decided
                })?;
                if let Some(user) = &user
                    && decided == Change::Write
                {
                    then(store, user)?;
                }
                Ok((user, decided))
            })
            .await?;
        Ok((user.ok_or(Error::UserNotFound)?, decided))
    }

    /// A consistent backup of the whole store: the file's bytes and its record count.
    pub async fn backup(&self, _: &Operator) -> Result<(Vec<u8>, u64)> {
        let (file, records) = self.store.snapshot().await?;
        tracing::info!(records, bytes = file.len(), "backup taken");
        Ok((file, records))
    }
}
