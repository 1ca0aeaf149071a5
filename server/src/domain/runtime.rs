//! The in-memory runtime each request uses: a tenant's issuer, trusted keys,
//! current signer and JWKS document, and its cache of verified access tokens.
//! Rebuilt when the tenant's record or keys change, or a key's time comes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use latch_shared::sign::SigningKey;
use latch_shared::{Claims, Jwks, KeySet, Validation, VerifyingKey};
use sha2::{Digest, Sha256};

use super::{Error, Latch, Result, TenantId};
use crate::store::{KeyRecord, TenantRecord};

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

impl Latch {
    /// Drops a tenant's cached runtime after its record or keys changed.
    /// The epoch moves too, under the same lock: a runtime built from a read
    /// that began before the change must not be put back into the cache.
    pub(crate) fn forget_runtime(&self, id: &TenantId) {
        if let Ok(mut runtimes) = self.runtimes.write() {
            self.runtime_epoch.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            runtimes.remove(id);
        }
    }

    /// Drops every cached runtime (changes on another node may have been missed).
    pub(crate) fn forget_all_runtimes(&self) {
        if let Ok(mut runtimes) = self.runtimes.write() {
            self.runtime_epoch.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            runtimes.clear();
        }
    }

    /// Drops cached runtimes when another node sharing the store changes a
    /// tenant's record or keys (PostgreSQL: announced with NOTIFY as the
    /// change commits). Nothing to do on a store one process owns.
    pub async fn watch_other_nodes(self: &Arc<Self>) -> Result<()> {
        let latch = Arc::downgrade(self);
        let changed: crate::store::TenantChanged = Arc::new(move |tenant| {
            let Some(latch) = latch.upgrade() else { return };
            match tenant {
                Some(tenant) => latch.forget_runtime(tenant),
                None => latch.forget_all_runtimes(),
            }
        });
        let watch = self.store.run(move |store| store.watch_tenants(changed)).await?;
        *self.watch.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = watch;
        Ok(())
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
            let drops_out_at =
                record.retired_at.map(|retired| retired.saturating_add(ttl + super::keys::RETIRED_KEY_MARGIN));
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
        let audience = super::settings::effective_audience(&tenant.id, &tenant.settings);
        let validation =
            // Never empty: the issuer has the public URL, the audience falls back to the tenant id.
            Validation::new(issuer.clone(), audience.clone()).map_err(|e| Error::Internal(format!("validation: {e}")))?;
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
}
