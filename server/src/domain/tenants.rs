//! Tenants, their signing keys, and the in-memory runtime each request uses
//! (issuer, trusted keys, current signer, JWKS document).

use std::sync::Arc;

use latch_shared::sign::SigningKey;
use latch_shared::{Algorithm, Jwks, KeySet, Validation, VerifyingKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{Error, Latch, Result, TenantId};
use crate::store::{KeyRecord, StoreError, TenantRecord, TenantSettings};

/// A tenant to create.
#[derive(Debug, Clone)]
pub struct NewTenant {
    /// The slug.
    pub id: TenantId,
    /// Display name (defaults to the id).
    pub name: Option<String>,
    /// Signing algorithm (defaults to EdDSA).
    pub algorithm: Option<Algorithm>,
    /// Settings (defaults where absent).
    pub settings: TenantSettings,
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
}

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
    if settings
        .default_roles
        .iter()
        .any(|role| !settings.roles.contains_key(role))
    {
        return Err(Error::InvalidSetting("default_roles"));
    }
    Ok(())
}

impl Latch {
    /// Creates a tenant with a fresh signing key of its algorithm.
    pub async fn create_tenant(&self, new: NewTenant) -> Result<TenantRecord> {
        validate_settings(&new.settings)?;
        let now = self.now();
        let algorithm = new.algorithm.unwrap_or(Algorithm::EdDSA);
        let name = match new.name {
            Some(name) => super::DisplayName::parse(&name)?.into_inner(),
            None => new.id.to_string(),
        };
        let tenant = TenantRecord {
            id: new.id,
            name,
            algorithm,
            created_at: now,
            settings: new.settings,
        };
        let key = self.new_key(&tenant.id, algorithm, now).await?;
        let record = tenant.clone();
        self.store
            .write(move |store| store.create_tenant(&record, &[key]))
            .await
            .map_err(|e| {
                if matches!(e, StoreError::Conflict) {
                    Error::TenantExists
                } else {
                    e.into()
                }
            })?;
        tracing::info!(tenant = %tenant.id, algorithm = algorithm.as_str(), "tenant created");
        Ok(tenant)
    }

    /// Generates a key (RSA generation is slow, so off the async workers) and seals its private half.
    async fn new_key(
        &self,
        tenant: &TenantId,
        algorithm: Algorithm,
        now: i64,
    ) -> Result<KeyRecord> {
        let key = tokio::task::spawn_blocking(move || {
            SigningKey::generate(algorithm, &mut rand::rngs::OsRng)
        })
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
            sealed_private: self.master.seal(
                &key_context(tenant, key.kid(), algorithm),
                key.private_bytes(),
            ),
        })
    }

    /// One tenant.
    pub async fn tenant(&self, id: &TenantId) -> Result<TenantRecord> {
        Ok(self.runtime(id).await?.tenant.clone())
    }

    /// Every tenant.
    pub async fn list_tenants(&self) -> Result<Vec<TenantRecord>> {
        Ok(self.store.read(|store| store.list_tenants()).await?)
    }

    /// Deletes a tenant with all its users, sessions and keys.
    pub async fn delete_tenant(&self, id: &TenantId) -> Result<()> {
        let owned = id.clone();
        let existed = self
            .store
            .write(move |store| store.delete_tenant(&owned))
            .await?;
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

    fn forget_runtime(&self, id: &TenantId) {
        if let Ok(mut runtimes) = self.runtimes.write() {
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
        let owned = id.clone();
        let (tenant, keys) = self
            .store
            .read(move |store| Ok((store.get_tenant(&owned)?, store.list_keys(&owned)?)))
            .await?;
        let tenant = tenant.ok_or(Error::TenantNotFound)?;
        let runtime = Arc::new(self.build_runtime(tenant, keys, now)?);
        if let Ok(mut runtimes) = self.runtimes.write() {
            runtimes.insert(id.clone(), runtime.clone());
        }
        Ok(runtime)
    }

    fn build_runtime(
        &self,
        tenant: TenantRecord,
        records: Vec<KeyRecord>,
        now: i64,
    ) -> Result<TenantRuntime> {
        let ttl = tenant.settings.access_token_ttl as i64;
        let mut valid_until = i64::MAX;
        let mut signer: Option<(i64, KeyRecord)> = None;
        let mut jwks = Jwks::default();
        let mut keys = KeySet::default();
        for record in records {
            let drops_out_at = record
                .retired_at
                .map(|retired| retired + ttl + RETIRED_KEY_MARGIN);
            if drops_out_at.is_some_and(|at| at <= now) {
                continue;
            }
            if let Some(at) = drops_out_at {
                valid_until = valid_until.min(at);
            }
            if record.active_from > now {
                valid_until = valid_until.min(record.active_from);
            } else if record.retired_at.is_none()
                && signer
                    .as_ref()
                    .is_none_or(|(from, _)| record.active_from >= *from)
            {
                signer = Some((record.active_from, record.clone()));
            }
            match &record.public_jwk {
                Some(jwk) => {
                    keys.push(
                        VerifyingKey::from_jwk(jwk)
                            .ok()
                            .flatten()
                            .ok_or(Error::KeyUnavailable)?,
                    );
                    jwks.keys.push(jwk.clone());
                }
                None => {
                    let secret = self.open_private(&tenant.id, &record)?;
                    keys.push(
                        VerifyingKey::hmac(Some(record.kid.clone()), &secret)
                            .map_err(|_| Error::KeyUnavailable)?,
                    );
                }
            }
        }
        let (_, record) = signer.ok_or(Error::KeyUnavailable)?;
        let private = self.open_private(&tenant.id, &record)?;
        let signer = SigningKey::from_private_bytes(record.kid.clone(), record.algorithm, private)
            .map_err(|_| Error::KeyUnavailable)?;
        let issuer = self.issuer(&tenant.id);
        let audience = if tenant.settings.audience.is_empty() {
            tenant.id.to_string()
        } else {
            tenant.settings.audience.clone()
        };
        let validation = Validation::new(issuer.clone(), audience.clone())
            .map_err(|_| Error::InvalidSetting("audience"))?;
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
        })
    }

    fn open_private(&self, tenant: &TenantId, record: &KeyRecord) -> Result<Zeroizing<Vec<u8>>> {
        self.master.open(&key_context(tenant, &record.kid, record.algorithm), &record.sealed_private).ok_or_else(|| {
            tracing::error!(tenant = %tenant, kid = %record.kid, "signing key does not decrypt with this master key");
            Error::KeyUnavailable
        })
    }
}
