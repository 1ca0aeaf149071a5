//! Tenants, their signing keys, and the in-memory runtime each request uses
//! (issuer, trusted keys, current signer, JWKS document).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use latch_shared::sign::SigningKey;
use latch_shared::{Algorithm, Claims, Jwks, KeySet, Validation, VerifyingKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use secrecy::{ExposeSecret, SecretString};

use super::events::{Event, EventKind};
use super::{Error, Latch, Result, TenantId};
use crate::store::{Change, EmailVerification, KeyRecord, Registration, StoreError, TenantRecord, TenantSettings};

/// A tenant to create.
#[derive(Debug, Clone)]
pub struct NewTenant {
    /// The slug.
    pub id: TenantId,
    /// Signing algorithm (defaults to EdDSA).
    pub algorithm: Option<Algorithm>,
    /// Name and settings, applied over the defaults (the name defaults to the id).
    pub settings: TenantChanges,
}

/// Changes to a tenant: each `Some` replaces the current value.
#[derive(Debug, Clone, Default)]
pub struct TenantChanges {
    /// Display name.
    pub name: Option<String>,
    /// Access-token lifetime in seconds.
    pub access_token_ttl: Option<u32>,
    /// Refresh-token lifetime in seconds.
    pub refresh_token_ttl: Option<u32>,
    /// The `aud` of new access tokens.
    pub audience: Option<String>,
    /// Minimum password length.
    pub password_min_length: Option<u32>,
    /// Whether access tokens carry `email`.
    pub email_claim: Option<bool>,
    /// Refresh grace window in seconds.
    pub refresh_grace_seconds: Option<u32>,
    /// Automatic key rotation interval in days (0: never).
    pub key_rotation_days: Option<u32>,
    /// Browser origins allowed by CORS.
    pub cors_allowed_origins: Option<Vec<String>>,
    /// Roles and the scopes each grants (replaces the whole map; `admin` must stay).
    pub roles: Option<BTreeMap<String, Vec<String>>>,
    /// Roles new users get.
    pub default_roles: Option<Vec<String>>,
    /// Audit events kept.
    pub audit_retention: Option<u32>,
    /// Failed logins in a row that lock an account (0: never).
    pub lockout_threshold: Option<u32>,
    /// First lock length in seconds.
    pub lockout_base_seconds: Option<u32>,
    /// Longest lock in seconds.
    pub lockout_max_seconds: Option<u32>,
    /// Email verification of new accounts.
    pub email_verification: Option<EmailVerification>,
    /// The app's password-reset page (empty: latch's demo page).
    pub reset_password_url: Option<String>,
    /// The app's email-verification page (empty: latch's demo page).
    pub verify_email_url: Option<String>,
    /// Open or closed self-registration.
    pub registration: Option<Registration>,
}

impl TenantChanges {
    /// Applies the changes to `tenant` and validates the result; the one place
    /// both tenant creation (over the defaults) and updates go through.
    fn apply(self, tenant: &mut TenantRecord) -> Result<()> {
        if let Some(name) = self.name {
            tenant.name = super::DisplayName::parse(&name)?.into_inner();
        }
        let settings = &mut tenant.settings;
        let replace = |target: &mut u32, value: Option<u32>| {
            if let Some(value) = value {
                *target = value;
            }
        };
        replace(&mut settings.access_token_ttl, self.access_token_ttl);
        replace(&mut settings.refresh_token_ttl, self.refresh_token_ttl);
        replace(&mut settings.password_min_length, self.password_min_length);
        replace(&mut settings.refresh_grace_seconds, self.refresh_grace_seconds);
        replace(&mut settings.key_rotation_days, self.key_rotation_days);
        replace(&mut settings.audit_retention, self.audit_retention);
        replace(&mut settings.lockout_threshold, self.lockout_threshold);
        replace(&mut settings.lockout_base_seconds, self.lockout_base_seconds);
        replace(&mut settings.lockout_max_seconds, self.lockout_max_seconds);
        if let Some(roles) = self.roles {
            settings.roles = roles.into_iter().map(|(role, scopes)| (role, sorted(scopes))).collect();
        }
        if let Some(default_roles) = self.default_roles {
            settings.default_roles = sorted(default_roles);
        }
        if let Some(audience) = self.audience {
            settings.audience = audience;
        }
        if let Some(email_claim) = self.email_claim {
            settings.email_claim = email_claim;
        }
        if let Some(origins) = self.cors_allowed_origins {
            settings.cors_allowed_origins = origins;
        }
        if let Some(mode) = self.email_verification {
            settings.email_verification = mode;
        }
        if let Some(registration) = self.registration {
            settings.registration = registration;
        }
        if let Some(url) = self.reset_password_url {
            settings.reset_password_url = url;
        }
        if let Some(url) = self.verify_email_url {
            settings.verify_email_url = url;
        }
        validate_settings(&tenant.settings)
    }
}

/// Everything a request needs about one tenant, rebuilt when its keys or settings change.
#[derive(Debug)]
pub struct TenantRuntime {
    /// The stored tenant.
    pub tenant: TenantRecord,
    /// `{public_url}/t/{id}`.
    pub issuer: String,
    /// The `aud` written into and required of access tokens.
    pub audience: String,
    /// Keys trusted for verification (published ones, plus HS256 secrets).
    pub keys: KeySet,
    /// Rules the server applies to its own tokens.
    pub validation: Validation,
    /// The key that signs new tokens.
    pub signer: Arc<SigningKey>,
    /// The public JWKS document, serialized once.
    pub jwks: Jwks,
    /// Strong ETag of the JWKS document.
    pub jwks_etag: String,
    /// When a key becomes active or drops out of the JWKS, forcing a rebuild.
    valid_until: i64,
    /// Access tokens that passed every rule, by SHA-256, with their claims:
    /// a token presented again skips the signature check, and only its time
    /// rules are checked again. A rebuilt runtime (keys or settings changed)
    /// starts empty; when full it is cleared.
    verified: Mutex<HashMap<[u8; 32], Claims>>,
}

/// Verified access tokens remembered per tenant.
const VERIFIED_CACHE_ENTRIES: usize = 4096;

impl TenantRuntime {
    /// The claims of `token` if it passes every rule at `now`: from the cache
    /// of verified tokens (time rules checked again), or verified in full
    /// and remembered.
    pub fn verify(&self, token: &str, now: i64) -> std::result::Result<Claims, latch_shared::Error> {
        let key = crate::crypto::token_hash(token);
        let cached = self.verified.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&key).cloned();
        if let Some(claims) = cached {
            self.validation.check_time(claims.exp, Some(claims.nbf), now)?;
            return Ok(claims);
        }
        let claims = latch_shared::verify(token, &self.keys, &self.validation, now)?.claims()?;
        let mut verified = self.verified.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if verified.len() >= VERIFIED_CACHE_ENTRIES {
            verified.clear();
        }
        verified.insert(key, claims.clone());
        Ok(claims)
    }
}

/// How long a rotated key is published before it signs, unless a manual
/// rotation asks otherwise: the JWKS `max-age`, so a verifier's cached JWKS
/// already holds the new key when the first token it signed arrives.
pub const DEFAULT_PUBLISH_DELAY_SECONDS: u32 = 300;

/// Margin after a retired key's last token expires before it leaves the JWKS.
const RETIRED_KEY_MARGIN: i64 = latch_shared::MAX_LEEWAY_SECONDS as i64;

fn key_context(tenant: &TenantId, kid: &str, alg: Algorithm) -> String {
    format!("latch/signing-key/v1/{tenant}/{kid}/{}", alg.as_str())
}

fn validate_settings(settings: &TenantSettings) -> Result<()> {
    if !(60..=86_400).contains(&settings.access_token_ttl) {
        return Err(Error::InvalidSetting("access_token_ttl"));
    }
    if !(300..=366 * 86_400).contains(&settings.refresh_token_ttl) {
        return Err(Error::InvalidSetting("refresh_token_ttl"));
    }
    if !(8..=256).contains(&settings.password_min_length) {
        return Err(Error::InvalidSetting("password_min_length"));
    }
    if settings.audience.len() > 512 || settings.audience.chars().any(char::is_control) {
        return Err(Error::InvalidSetting("audience"));
    }
    if settings.refresh_grace_seconds > 300 {
        return Err(Error::InvalidSetting("refresh_grace_seconds"));
    }
    let scopes = settings.roles.values().flatten();
    if settings.roles.len() > MAX_ROLES
        || !settings.roles.contains_key(ADMIN_ROLE)
        || !settings.roles.keys().all(|role| is_role_name(role))
        || settings.roles.values().any(|scopes| scopes.len() > MAX_SCOPES_PER_ROLE)
    {
        return Err(Error::InvalidSetting("roles"));
    }
    if !scopes.into_iter().all(|scope| is_scope_token(scope)) {
        return Err(Error::InvalidSetting("roles"));
    }
    if settings.default_roles.iter().any(|role| !settings.roles.contains_key(role)) {
        return Err(Error::InvalidSetting("default_roles"));
    }
    if !(10..=1_000_000).contains(&settings.audit_retention) {
        return Err(Error::InvalidSetting("audit_retention"));
    }
    if settings.lockout_threshold > 100 {
        return Err(Error::InvalidSetting("lockout_threshold"));
    }
    if !(1..=86_400).contains(&settings.lockout_base_seconds) {
        return Err(Error::InvalidSetting("lockout_base_seconds"));
    }
    if !(settings.lockout_base_seconds..=7 * 86_400).contains(&settings.lockout_max_seconds) {
        return Err(Error::InvalidSetting("lockout_max_seconds"));
    }
    if settings.cors_allowed_origins.len() > 100 || !settings.cors_allowed_origins.iter().all(|o| is_origin(o)) {
        return Err(Error::InvalidSetting("cors_allowed_origins"));
    }
    if !is_page_url(&settings.reset_password_url) {
        return Err(Error::InvalidSetting("reset_password_url"));
    }
    if !is_page_url(&settings.verify_email_url) {
        return Err(Error::InvalidSetting("verify_email_url"));
    }
    Ok(())
}

/// Empty, or an http(s) URL of at most 2048 bytes without spaces, controls
/// or a fragment (mail links append `tenant` and `token` to its query).
fn is_page_url(url: &str) -> bool {
    url.is_empty()
        || ((url.starts_with("https://") || url.starts_with("http://"))
            && url.len() <= 2048
            && !url.contains('#')
            && !url.chars().any(|c| c.is_whitespace() || c.is_control()))
}

/// The role that grants the tenant admin API; every tenant keeps it.
pub const ADMIN_ROLE: &str = "admin";
const MAX_ROLES: usize = 64;
const MAX_SCOPES_PER_ROLE: usize = 64;

/// A role name: 1-64 characters of a-z, 0-9, '-', '_', ':' and '.'.
pub fn is_role_name(role: &str) -> bool {
    (1..=64).contains(&role.len())
        && role.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_:.".contains(&b))
}

/// An RFC 6749 §3.3 scope token (printable ASCII but space, `"` and `\`), at most 128 bytes.
fn is_scope_token(scope: &str) -> bool {
    (1..=128).contains(&scope.len())
        && scope.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

fn sorted(mut values: Vec<String>) -> Vec<String> {
    values.sort_unstable();
    values.dedup();
    values
}

/// A browser origin: `http(s)://host[:port]`, nothing after it.
fn is_origin(origin: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else { return false };
    let host = rest.rsplit_once(':').map_or(rest, |(host, port)| if port.parse::<u16>().is_ok() { host } else { "" });
    matches!(scheme, "http" | "https")
        && !host.is_empty()
        && host.len() <= 253
        && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '[' || c == ']' || c == ':')
}

impl Latch {
    /// Creates a tenant with a fresh signing key of its algorithm.
    pub async fn create_tenant(&self, new: NewTenant) -> Result<TenantRecord> {
        let now = self.now();
        let algorithm = new.algorithm.unwrap_or(Algorithm::EdDSA);
        let mut tenant = TenantRecord {
            name: new.id.to_string(),
            id: new.id,
            algorithm,
            created_at: now,
            settings: TenantSettings::default(),
            introspection_secret_sha256: None,
        };
        new.settings.apply(&mut tenant)?;
        let key = self.new_key(&tenant.id, algorithm, now).await?;
        let record = tenant.clone();
        self.store
            .write(move |store| store.create_tenant(&record, &[key]))
            .await
            .map_err(|e| if matches!(e, StoreError::Conflict) { Error::TenantExists } else { e.into() })?;
        tracing::info!(tenant = %tenant.id, algorithm = algorithm.as_str(), "tenant created");
        Ok(tenant)
    }

    /// Generates a key (RSA generation is slow, so off the async workers) and seals its private half.
    async fn new_key(&self, tenant: &TenantId, algorithm: Algorithm, now: i64) -> Result<KeyRecord> {
        let key = tokio::task::spawn_blocking(move || SigningKey::generate(algorithm, &mut rand::rngs::OsRng))
            .await
            .map_err(|e| Error::Internal(format!("key generation task failed: {e}")))?
            .map_err(|e| Error::Internal(format!("key generation failed: {e}")))?;
        Ok(KeyRecord {
            kid: key.kid().to_owned(),
            algorithm,
            created_at: now,
            active_from: now,
            retired_at: None,
            public_jwk: key.public_jwk().cloned(),
            sealed_private: self.master.seal(&key_context(tenant, key.kid(), algorithm), key.private_bytes()),
        })
    }

    /// One tenant.
    pub async fn tenant(&self, id: &TenantId) -> Result<TenantRecord> {
        Ok(self.runtime(id).await?.tenant.clone())
    }

    /// Every tenant.
    pub async fn list_tenants(&self) -> Result<Vec<TenantRecord>> {
        Ok(self.store.run(|store| store.list_tenants()).await?)
    }

    /// Changes a tenant's name or settings; new tokens follow at once.
    pub async fn update_tenant(&self, id: &TenantId, changes: TenantChanges) -> Result<TenantRecord> {
        self.runtime(id).await?;
        let owned = id.clone();
        let (tenant, refused) = self
            .store
            .write(move |store| {
                let mut refused = None;
                let tenant = store.update_tenant(&owned, &mut |stored| {
                    // Validated against the stored settings as they are now,
                    // so two updates of different settings both hold.
                    let mut changed = stored.clone();
                    match changes.clone().apply(&mut changed) {
                        Ok(()) => {
                            *stored = changed;
                            refused = None;
                            Change::Write
                        }
                        Err(e) => {
                            refused = Some(e);
                            Change::Keep
                        }
                    }
                })?;
                Ok((tenant, refused))
            })
            .await?;
        if let Some(refused) = refused {
            return Err(refused);
        }
        let tenant = tenant.ok_or(Error::TenantNotFound)?;
        self.forget_runtime(id);
        tracing::info!(tenant = %id, "tenant updated");
        Ok(tenant)
    }

    /// Deletes a tenant with all its users, sessions and keys.
    pub async fn delete_tenant(&self, id: &TenantId) -> Result<()> {
        let owned = id.clone();
        let existed = self.store.write(move |store| store.delete_tenant(&owned)).await?;
        self.forget_runtime(id);
        if existed {
            tracing::info!(tenant = %id, "tenant deleted");
            Ok(())
        } else {
            Err(Error::TenantNotFound)
        }
    }

    /// Creates the tenant if it does not exist yet; true if it was created.
    pub async fn ensure_tenant(&self, new: NewTenant) -> Result<bool> {
        match self.create_tenant(new).await {
            Ok(_) => Ok(true),
            Err(Error::TenantExists) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Drops a tenant's cached runtime after its record or keys changed.
    /// The epoch moves too, under the same lock: a runtime built from a read
    /// that began before the change must not be put back into the cache.
    pub(crate) fn forget_runtime(&self, id: &TenantId) {
        if let Ok(mut runtimes) = self.runtimes.write() {
            self.runtime_epoch.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            runtimes.remove(id);
        }
    }

    /// The tenant's runtime, from the cache unless a key has since become active or expired.
    pub async fn runtime(&self, id: &TenantId) -> Result<Arc<TenantRuntime>> {
        let now = self.now();
        if let Some(runtime) = self.runtimes.read().ok().and_then(|r| r.get(id).cloned())
            && now < runtime.valid_until
        {
            return Ok(runtime);
        }
        let epoch = self.runtime_epoch.load(std::sync::atomic::Ordering::Acquire);
        let owned = id.clone();
        let (tenant, keys) =
            self.store.run(move |store| Ok((store.get_tenant(&owned)?, store.list_keys(&owned)?))).await?;
        let tenant = tenant.ok_or(Error::TenantNotFound)?;
        let runtime = Arc::new(self.build_runtime(tenant, keys, now)?);
        if let Ok(mut runtimes) = self.runtimes.write()
            // A tenant changed since the read began: this runtime may predate
            // the change, so it serves this request but is not cached.
            && self.runtime_epoch.load(std::sync::atomic::Ordering::Acquire) == epoch
        {
            runtimes.insert(id.clone(), runtime.clone());
        }
        Ok(runtime)
    }

    fn build_runtime(&self, tenant: TenantRecord, records: Vec<KeyRecord>, now: i64) -> Result<TenantRuntime> {
        let ttl = tenant.settings.access_token_ttl as i64;
        let mut valid_until = i64::MAX;
        let mut signer: Option<KeyRecord> = None;
        let mut jwks = Jwks::default();
        let mut keys = KeySet::default();
        for record in records {
            // A retired key stays trusted and published until the last token it signed has expired.
            let drops_out_at = record.retired_at.map(|retired| retired.saturating_add(ttl + RETIRED_KEY_MARGIN));
            if drops_out_at.is_some_and(|at| at <= now) {
                continue;
            }
            for change in [Some(record.active_from), record.retired_at, drops_out_at].into_iter().flatten() {
                if change > now {
                    valid_until = valid_until.min(change);
                }
            }
            let signs_now = record.active_from <= now && record.retired_at.is_none_or(|retired| retired > now);
            if signs_now && signer.as_ref().is_none_or(|current| record.active_from >= current.active_from) {
                signer = Some(record.clone());
            }
            match &record.public_jwk {
                Some(jwk) => {
                    keys.push(VerifyingKey::from_jwk(jwk).ok().flatten().ok_or(Error::KeyUnavailable)?);
                    jwks.keys.push(jwk.clone());
                }
                None => {
                    let secret = self.open_private(&tenant.id, &record)?;
                    keys.push(
                        VerifyingKey::hmac(Some(record.kid.clone()), &secret).map_err(|_| Error::KeyUnavailable)?,
                    );
                }
            }
        }
        let record = signer.ok_or(Error::KeyUnavailable)?;
        let private = self.open_private(&tenant.id, &record)?;
        let signer = SigningKey::from_private_bytes(record.kid.clone(), record.algorithm, private)
            .map_err(|_| Error::KeyUnavailable)?;
        let issuer = self.issuer(&tenant.id);
        let audience =
            if tenant.settings.audience.is_empty() { tenant.id.to_string() } else { tenant.settings.audience.clone() };
        let validation =
            Validation::new(issuer.clone(), audience.clone()).map_err(|_| Error::InvalidSetting("audience"))?;
        let body = serde_json::to_vec(&jwks).map_err(|e| Error::Internal(e.to_string()))?;
        let jwks_etag = format!("\"{}\"", hex::encode(&Sha256::digest(&body)[..16]));
        Ok(TenantRuntime {
            tenant,
            issuer,
            audience,
            keys,
            validation,
            signer: Arc::new(signer),
            jwks,
            jwks_etag,
            valid_until,
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// Rotates a tenant's signing key: a new key is published at once and
    /// signs from `now + publish_delay`; the keys it replaces stop signing
    /// then and stay published until every token they signed has expired.
    pub async fn rotate_signing_key(&self, tenant: &TenantId, publish_delay: u32, actor: &str) -> Result<KeyRecord> {
        let record = self.runtime(tenant).await?.tenant.clone();
        let now = self.now();
        let mut key = self.new_key(tenant, record.algorithm, now).await?;
        key.active_from = now + publish_delay as i64;
        let (owned, new_key) = (tenant.clone(), key.clone());
        self.store.write(move |store| store.rotate_keys(&owned, &new_key)).await?;
        self.forget_runtime(tenant);
        tracing::info!(tenant = %tenant, kid = %key.kid, active_from = key.active_from, "signing key rotated");
        let event = Event::new(EventKind::KeyRotated).actor(actor).subject(&key.kid);
        self.record(tenant, event.detail(format!("signs from {}", crate::clock::rfc3339(key.active_from)))).await;
        Ok(key)
    }

    /// Rotates the key of every tenant whose `key_rotation_days` have passed
    /// since its newest key was created. Returns the tenants rotated.
    pub async fn rotate_due_keys(&self) -> Result<Vec<TenantId>> {
        let now = self.now();
        let mut rotated = Vec::new();
        for tenant in self.list_tenants().await? {
            let days = tenant.settings.key_rotation_days as i64;
            if days == 0 {
                continue;
            }
            let owned = tenant.id.clone();
            let newest =
                self.store.run(move |store| store.list_keys(&owned)).await?.into_iter().map(|k| k.created_at).max();
            if newest.is_some_and(|created| created + days * 86_400 <= now) {
                self.rotate_signing_key(&tenant.id, DEFAULT_PUBLISH_DELAY_SECONDS, "system").await?;
                rotated.push(tenant.id);
            }
        }
        Ok(rotated)
    }

    /// A tenant's keys (including retired ones still published), oldest first.
    pub async fn keys(&self, tenant: &TenantId) -> Result<Vec<KeyRecord>> {
        self.runtime(tenant).await?;
        let owned = tenant.clone();
        Ok(self.store.run(move |store| store.list_keys(&owned)).await?)
    }

    /// Creates (or replaces) the tenant's introspection secret; shown once, stored as a hash.
    pub async fn new_introspection_secret(&self, tenant: &TenantId) -> Result<SecretString> {
        self.runtime(tenant).await?;
        let secret = crate::crypto::random_token("latch_is_");
        let hash = hex::encode(crate::crypto::token_hash(secret.expose_secret()));
        let owned = tenant.clone();
        self.store
            .write(move |store| {
                store.update_tenant(&owned, &mut |record| {
                    record.introspection_secret_sha256 = Some(hash.clone());
                    Change::Write
                })
            })
            .await?
            .ok_or(Error::TenantNotFound)?;
        self.forget_runtime(tenant);
        Ok(secret)
    }

    /// Accepts the tenant's introspection secret or the operator token.
    pub async fn check_introspector(&self, tenant: &TenantId, presented: &str) -> Result<()> {
        if self.check_operator(presented).is_ok() {
            return Ok(());
        }
        let runtime = self.runtime(tenant).await?;
        let expected = runtime
            .tenant
            .introspection_secret_sha256
            .as_deref()
            .and_then(|h| <[u8; 32]>::try_from(hex::decode(h).ok()?).ok());
        match expected {
            Some(expected) if crate::crypto::hashes_equal(&crate::crypto::token_hash(presented), &expected) => Ok(()),
            _ => Err(Error::NotIntrospector),
        }
    }

    fn open_private(&self, tenant: &TenantId, record: &KeyRecord) -> Result<Zeroizing<Vec<u8>>> {
        self.master.open(&key_context(tenant, &record.kid, record.algorithm), &record.sealed_private).ok_or_else(|| {
            tracing::error!(tenant = %tenant, kid = %record.kid, "signing key does not decrypt with this master key");
            Error::KeyUnavailable
        })
    }
}

#[cfg(test)]
mod tests {
    use super::is_origin;

    #[test]
    fn cors_origins_are_scheme_host_and_optional_port_only() {
        for ok in ["https://app.example", "http://localhost:5173", "https://[::1]:8443", "https://a-b.example.org"] {
            assert!(is_origin(ok), "{ok}");
        }
        for bad in
            ["app.example", "ftp://x", "https://", "https://app.example/", "https://a.example/path", "https://a:b", "*"]
        {
            assert!(!is_origin(bad), "{bad}");
        }
    }
}
