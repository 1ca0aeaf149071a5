//! What the store keeps. Records are JSON-encoded, so added fields with
//! defaults read old records unchanged.

use std::collections::BTreeMap;

use latch_shared::Algorithm;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::TenantId;

/// A tenant and its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantRecord {
    /// The slug.
    pub id: TenantId,
    /// Display name.
    pub name: String,
    /// The algorithm new keys use.
    pub algorithm: Algorithm,
    /// Creation time.
    pub created_at: i64,
    /// Settings.
    pub settings: TenantSettings,
    /// SHA-256 of the tenant's introspection secret, hex; none until the operator creates one.
    #[serde(default)]
    pub introspection_secret_sha256: Option<String>,
}

/// Per-tenant settings, with the defaults a new tenant gets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TenantSettings {
    /// Access-token lifetime in seconds.
    pub access_token_ttl: u32,
    /// Refresh-token lifetime in seconds, renewed at each rotation.
    pub refresh_token_ttl: u32,
    /// The `aud` claim of access tokens; empty means the tenant id.
    pub audience: String,
    /// Minimum password length in characters.
    pub password_min_length: u32,
    /// Roles a new user gets.
    pub default_roles: Vec<String>,
    /// Roles defined in the tenant, each with the scopes it grants.
    pub roles: BTreeMap<String, Vec<String>>,
    /// Whether access tokens carry the `email` claim.
    pub email_claim: bool,
    /// Browser origins allowed by CORS.
    pub cors_allowed_origins: Vec<String>,
    /// Seconds during which a just-rotated refresh token may be presented again.
    pub refresh_grace_seconds: u32,
    /// Rotate the signing key automatically after this many days (0: never).
    pub key_rotation_days: u32,
    /// Audit events kept for the tenant; the oldest are dropped beyond it.
    pub audit_retention: u32,
    /// Failed logins in a row that lock an account (0: never).
    pub lockout_threshold: u32,
    /// The first lock's length in seconds; each further failure doubles it.
    pub lockout_base_seconds: u32,
    /// The longest lock in seconds.
    pub lockout_max_seconds: u32,
    /// Whether new accounts are mailed a verification link, and whether
    /// unverified accounts may log in.
    pub email_verification: EmailVerification,
    /// The app's page that password-reset links open (`tenant` and `token`
    /// are appended as query parameters); empty: latch's `/demo/reset-password`.
    pub reset_password_url: String,
    /// The app's page that verification links open; empty: latch's `/demo/verify-email`.
    pub verify_email_url: String,
    /// Whether anyone may register, or only the admin API and CLI create users.
    pub registration: Registration,
}

/// Who creates accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    /// Anyone may register.
    #[default]
    Open,
    /// Self-registration is refused; admins create or invite users.
    Closed,
}

/// Email verification for new accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailVerification {
    /// No verification mail.
    #[default]
    Off,
    /// A verification mail on registration; unverified accounts log in.
    Optional,
    /// A verification mail on registration; unverified accounts may not log in.
    Required,
}

impl Default for TenantSettings {
    fn default() -> TenantSettings {
        let scopes = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        TenantSettings {
            access_token_ttl: 900,
            refresh_token_ttl: 30 * 24 * 3600,
            audience: String::new(),
            password_min_length: 10,
            default_roles: vec!["user".into()],
            roles: BTreeMap::from([
                ("user".into(), scopes(&["openid", "profile", "email"])),
                ("admin".into(), scopes(&["openid", "profile", "email", "admin"])),
            ]),
            email_claim: false,
            cors_allowed_origins: Vec::new(),
            refresh_grace_seconds: 10,
            key_rotation_days: 0,
            audit_retention: 10_000,
            lockout_threshold: 5,
            lockout_base_seconds: 30,
            lockout_max_seconds: 3600,
            email_verification: EmailVerification::Off,
            reset_password_url: String::new(),
            verify_email_url: String::new(),
            registration: Registration::Open,
        }
    }
}

impl OneTimeRecord {
    /// A record for `purpose`, of `user_id`, working until `expires_at`,
    /// with nothing else set.
    pub fn new(purpose: &str, user_id: Uuid, expires_at: i64) -> OneTimeRecord {
        OneTimeRecord {
            purpose: purpose.to_owned(),
            user_id,
            expires_at,
            scope: None,
            attempts: 0,
            generation: 0,
            decoy: false,
            in_lock: false,
            authorization: None,
            session_id: None,
        }
    }
}

/// A signing key. The private half is sealed with the master key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Key id.
    pub kid: String,
    /// Its one algorithm.
    pub algorithm: Algorithm,
    /// Creation time.
    pub created_at: i64,
    /// From when it may sign (it is published in JWKS before that).
    pub active_from: i64,
    /// When it stopped signing; it stays published until its tokens have expired.
    pub retired_at: Option<i64>,
    /// The public JWK (none for HS256).
    pub public_jwk: Option<latch_shared::Jwk>,
    /// nonce ‖ XChaCha20-Poly1305 ciphertext of the private key bytes.
    #[serde(with = "hex_bytes")]
    pub sealed_private: Vec<u8>,
}

/// A user of a tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    /// Tenant.
    pub tenant: TenantId,
    /// User id (UUID v7).
    pub id: Uuid,
    /// Email as given.
    pub email: String,
    /// Case-folded email, unique per tenant.
    pub email_key: String,
    /// Display name.
    pub name: Option<String>,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Whether the user may log in.
    pub disabled: bool,
    /// Whether the email was verified.
    pub email_verified: bool,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
    /// Failed logins since the last successful one.
    #[serde(default)]
    pub failed_logins: u32,
    /// Logins are refused until then, whatever the password.
    #[serde(default)]
    pub locked_until: Option<i64>,
    /// TOTP second factor, once enrollment has started.
    #[serde(default)]
    pub totp: Option<TotpRecord>,
    /// When the last verification mail was sent (resends are spaced).
    #[serde(default)]
    pub verification_sent_at: Option<i64>,
    /// When the last reset mail was sent (reset mails are spaced).
    #[serde(default)]
    pub reset_sent_at: Option<i64>,
    /// Bumped by a completed reset, a password change and a disable: reset
    /// links made before stop working.
    #[serde(default)]
    pub reset_generation: u32,
    /// Second-factor codes checked during the current lock (a right password
    /// and a valid code still get the owner in while locked, up to the
    /// lockout threshold per lock).
    #[serde(default)]
    pub locked_code_attempts: u32,
    /// The scopes the user consented to per client (client id to scopes),
    /// so the consent page is shown once per client and scope set.
    #[serde(default)]
    pub consents: BTreeMap<String, Vec<String>>,
}

impl UserRecord {
    /// A right password or code: the failure count, any lock and the code
    /// attempts taken during it are cleared.
    pub fn clear_failures(&mut self) {
        self.failed_logins = 0;
        self.locked_until = None;
        self.locked_code_attempts = 0;
    }

    /// Makes every reset link sent so far, and every browser sign-in
    /// (single sign-on) made so far, stop working.
    pub fn void_reset_links(&mut self) {
        self.reset_generation = self.reset_generation.wrapping_add(1);
    }

    /// A new password (the owner's change, a completed reset or invitation,
    /// an admin's): failures and any lock are cleared, and reset links sent
    /// before stop working.
    pub fn set_password_hash(&mut self, hash: String) {
        self.password_hash = hash;
        self.clear_failures();
        self.void_reset_links();
    }

    /// A new, enabled, unverified user with no second factor and a fresh
    /// UUID v7, created at `now`.
    pub fn new(
        tenant: TenantId,
        email: String,
        email_key: String,
        password_hash: String,
        roles: Vec<String>,
        now: i64,
    ) -> UserRecord {
        UserRecord {
            tenant,
            id: Uuid::now_v7(),
            email,
            email_key,
            name: None,
            password_hash,
            roles,
            disabled: false,
            email_verified: false,
            created_at: now,
            updated_at: now,
            failed_logins: 0,
            locked_until: None,
            totp: None,
            verification_sent_at: None,
            reset_sent_at: None,
            reset_generation: 0,
            locked_code_attempts: 0,
            consents: BTreeMap::new(),
        }
    }
}

/// A user's TOTP (RFC 6238) factor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TotpRecord {
    /// nonce ‖ XChaCha20-Poly1305 ciphertext of the shared secret.
    #[serde(with = "hex_bytes")]
    pub sealed_secret: Vec<u8>,
    /// False until the user proved the authenticator works with a first code.
    pub confirmed: bool,
    /// The last time step whose code was accepted: a code is never taken twice.
    pub last_step: u64,
    /// SHA-256 (hex) of each unused recovery code.
    pub recovery_codes: Vec<String>,
    /// Enrollment time.
    pub created_at: i64,
}

/// One login: the family of refresh tokens rotated from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Tenant.
    pub tenant: TenantId,
    /// Session id (the `sid` claim).
    pub id: Uuid,
    /// User.
    pub user_id: Uuid,
    /// Creation time.
    pub created_at: i64,
    /// Last refresh.
    pub last_used_at: i64,
    /// When the current refresh token expires.
    pub expires_at: i64,
    /// Rotation counter: the current refresh token's generation.
    pub generation: u64,
    /// User agent at login.
    pub user_agent: Option<String>,
    /// Client IP at login.
    pub ip: Option<String>,
    /// When the session was ended, if it was.
    pub revoked_at: Option<i64>,
    /// The last rotation, kept for the tenant's grace window so a concurrent
    /// refresh with the just-rotated token gets the same successor.
    #[serde(default)]
    pub grace: Option<Grace>,
    /// The scopes granted at login (narrowed later if roles change).
    #[serde(default)]
    pub scope: Option<String>,
    /// The OAuth client the session was started for; its refresh tokens
    /// work only for that client. `None`: latch's own JSON login.
    #[serde(default)]
    pub client_id: Option<String>,
    /// When the user last authenticated (ID tokens' `auth_time`).
    #[serde(default)]
    pub auth_time: Option<i64>,
    /// How they authenticated (`pwd`, `otp`), for ID tokens' `amr`.
    #[serde(default)]
    pub amr: Vec<String>,
}

/// The successor issued by the last rotation, sealed with the master key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grace {
    /// The generation that was rotated away.
    pub from_generation: u64,
    /// When it was rotated.
    pub rotated_at: i64,
    /// The successor refresh token, sealed (nonce ‖ ciphertext).
    #[serde(with = "hex_bytes")]
    pub sealed_successor: Vec<u8>,
}

impl SessionRecord {
    /// A new session (UUID v7) of `user_id`, started at `now`, its first
    /// refresh token expiring at `expires_at`; nothing else set.
    pub fn new(tenant: TenantId, user_id: Uuid, now: i64, expires_at: i64) -> SessionRecord {
        SessionRecord {
            tenant,
            id: Uuid::now_v7(),
            user_id,
            created_at: now,
            last_used_at: now,
            expires_at,
            generation: 0,
            user_agent: None,
            ip: None,
            revoked_at: None,
            grace: None,
            scope: None,
            client_id: None,
            auth_time: None,
            amr: Vec::new(),
        }
    }

    /// True if the session can still be used at `now`.
    pub fn is_active(&self, now: i64) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// Something that happened in a tenant, for its admins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Tenant.
    pub tenant: TenantId,
    /// Event id (UUID v7: ordered by time).
    pub id: Uuid,
    /// When.
    pub at: i64,
    /// What (`login_succeeded`, `refresh_reuse_detected`, ...).
    pub kind: String,
    /// Who did it: a user id, `operator`, or `system`.
    pub actor: Option<String>,
    /// Whom or what it concerns (a user id, a key id).
    pub subject: Option<String>,
    /// Client IP, where there was a client.
    pub ip: Option<String>,
    /// Extra detail.
    #[serde(default)]
    pub detail: Option<String>,
}

/// A session ended, as the tenant's revocation feed lists it. Written by
/// the store in the same atomic step that ends the session (a revocation,
/// or the deletion of its user), so the feed and the server's own check of
/// access tokens cannot disagree about which sessions ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// Its place in the tenant's log: one more than the entry before.
    pub seq: u64,
    /// The session (the `sid` claim).
    pub session_id: Uuid,
    /// When it ended.
    pub ended_at: i64,
}

/// A tenant's revocations after a point in its log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RevocationLog {
    /// Chosen at random when the tenant's log begins: a cursor of another
    /// log (a restored or migrated store, a tenant deleted and made again)
    /// names another epoch and gets the whole feed. 0: no log yet.
    pub epoch: u64,
    /// The last entry's `seq` (0: none yet).
    pub last: u64,
    /// The entries asked for, in `seq` order.
    pub entries: Vec<Revocation>,
}

/// What a refresh-token hash points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshRecord {
    /// Session.
    pub session_id: Uuid,
    /// The generation this token was issued for.
    pub generation: u64,
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A single-use token (password reset, email verification), kept under its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OneTimeRecord {
    /// What it is for (`password_reset`, `verify_email`, `mfa`).
    pub purpose: String,
    /// Whose it is.
    pub user_id: Uuid,
    /// When it stops working.
    pub expires_at: i64,
    /// For an MFA challenge: the scope the login asked for.
    #[serde(default)]
    pub scope: Option<String>,
    /// For an MFA challenge: wrong codes presented so far.
    #[serde(default)]
    pub attempts: u32,
    /// For a reset link: the user's `reset_generation` when it was made; the
    /// link works only while the user's is still the same.
    #[serde(default)]
    pub generation: u32,
    /// For an MFA challenge: handed out for a wrong password during a lock,
    /// so it looks like any other but no code completes it.
    #[serde(default)]
    pub decoy: bool,
    /// For an MFA challenge: handed out for the right password during a
    /// lock; its codes are checked during the lock (up to the threshold).
    #[serde(default)]
    pub in_lock: bool,
    /// For an authorization code: what the authorization request bound it to.
    #[serde(default)]
    pub authorization: Option<AuthorizationGrant>,
    /// For a used authorization code: the session its first use started,
    /// which a second use ends.
    #[serde(default)]
    pub session_id: Option<Uuid>,
}

/// What an authorization code stands for (RFC 6749 §4.1, RFC 7636, OIDC Core §3.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationGrant {
    /// The client it was issued to.
    pub client_id: String,
    /// The redirect URI of the request, exactly; the token request must repeat it.
    pub redirect_uri: String,
    /// The PKCE `code_challenge` (S256).
    pub code_challenge: String,
    /// The request's `nonce`, for the ID token.
    pub nonce: Option<String>,
    /// The scopes granted.
    pub scope: String,
    /// When the user authenticated.
    pub auth_time: i64,
    /// How (`pwd`, `otp`).
    pub amr: Vec<String>,
    /// SHA-256 (hex) of the browser session that authenticated, so its
    /// logout ends the session this code starts.
    pub browser_session: Option<String>,
}

/// An OAuth client registered in a tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientRecord {
    /// Tenant.
    pub tenant: TenantId,
    /// The client id, unique in the tenant.
    pub client_id: String,
    /// Public (PKCE, no secret) or confidential (a secret).
    pub client_type: ClientType,
    /// SHA-256 (hex) of a confidential client's secret.
    pub secret_sha256: Option<String>,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
    /// What an admin sets.
    #[serde(flatten)]
    pub settings: ClientSettings,
}

/// A client's settings, with the defaults a new client gets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientSettings {
    /// Display name (shown on the consent page).
    pub name: String,
    /// Where authorization answers may be sent, matched exactly.
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may send the browser afterwards.
    pub post_logout_redirect_uris: Vec<String>,
    /// `authorization_code`, `refresh_token`, `client_credentials`, `password`.
    pub grant_types: Vec<String>,
    /// The scopes the client may ask for.
    pub scopes: Vec<String>,
    /// Skips the consent page (the tenant's own apps).
    pub first_party: bool,
    /// The `aud` its access tokens carry beside the tenant's (empty: only the tenant's).
    pub audience: String,
}

impl Default for ClientSettings {
    fn default() -> ClientSettings {
        ClientSettings {
            name: String::new(),
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            scopes: vec!["openid".into(), "profile".into(), "email".into()],
            first_party: false,
            audience: String::new(),
        }
    }
}

/// How a client authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientType {
    /// A browser or native app: no secret, PKCE proves the code's requester.
    Public,
    /// A server-side app: a secret, sent with `client_secret_basic` or `client_secret_post`.
    Confidential,
}

/// A browser's sign-in at a tenant's hosted login (single sign-on), kept
/// under the SHA-256 of its cookie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrowserSessionRecord {
    /// Who signed in.
    pub user_id: Uuid,
    /// When they last authenticated.
    pub auth_time: i64,
    /// How (`pwd`, `otp`).
    pub amr: Vec<String>,
    /// Creation time.
    pub created_at: i64,
    /// When it ends, whatever happens.
    pub expires_at: i64,
    /// Sessions started through it (ended with it at logout), newest last.
    pub sessions: Vec<Uuid>,
    /// The user's `reset_generation` at sign-in: a password change, a reset
    /// or a disable since then ends the browser session too.
    #[serde(default)]
    pub generation: u32,
}
