//! The in-memory runtime each request uses: a tenant's issuer, trusted keys,
//! current signer and JWKS document; and the cache of verified access tokens.
//! Rebuilt when the tenant's record or keys change, or a key's time comes.

use std::sync::Arc;

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
    /// This build of the runtime, as the verified-token cache knows it: a
    /// token verified by an older build (keys or settings since changed) is
    /// verified again.
    build: u64,
    /// The cache of tokens verified (shared by every tenant).
    verified: Arc<VerifiedTokens>,
}

impl TenantRuntime {
    /// The claims of `token` if it passes every rule at `now`: from the cache
    /// of verified tokens (time rules checked again), or verified in full
    /// and remembered.
    pub fn verify(&self, token: &str, now: i64) -> std::result::Result<Claims, latch_shared::Error> {
        let key = crate::crypto::token_hash(token);
        if let Some(seen) = self.verified.get(&key)
            && seen.build == self.build
        {
            self.validation.check_time(seen.exp, Some(seen.nbf), now)?;
            // The same bytes passed every rule under this build: its claims
            // are read again rather than kept, so an entry is a few dozen bytes.
            return Claims::from_payload(&latch_shared::decode_unverified(token)?.payload);
        }
        let claims = latch_shared::verify(token, &self.keys, &self.validation, now)?.claims()?;
        self.verified.insert(key, Seen { build: self.build, exp: claims.exp, nbf: claims.nbf });
        Ok(claims)
    }
}

/// Access tokens that passed every rule, by SHA-256, shared by every
/// tenant's runtime: a token presented again skips the signature check and
/// only its time rules are checked again. Bounded in entries and evicting by
/// recency and use (quick_cache's CLOCK-Pro: a token seen once leaves before
/// one that keeps being presented); lookups on different shards never wait
/// for each other.
pub struct VerifiedTokens {
    /// `None` when the size is 0: every token is verified in full.
    cache: Option<quick_cache::sync::Cache<[u8; 32], Seen>>,
    /// Numbers runtime builds (see `TenantRuntime::build`).
    builds: std::sync::atomic::AtomicU64,
}

/// What the cache keeps of a verified token: the runtime build that
/// verified it and its time claims.
#[derive(Debug, Clone, Copy)]
struct Seen {
    build: u64,
    exp: i64,
    nbf: i64,
}

impl VerifiedTokens {
    /// A cache of at most `entries` tokens (0: none).
    pub fn new(entries: usize) -> VerifiedTokens {
        VerifiedTokens {
            cache: (entries > 0).then(|| quick_cache::sync::Cache::new(entries)),
            builds: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Tokens held now.
    pub fn len(&self) -> usize {
        self.cache.as_ref().map_or(0, |cache| cache.len())
    }

    fn get(&self, key: &[u8; 32]) -> Option<Seen> {
        self.cache.as_ref()?.get(key)
    }

    fn insert(&self, key: [u8; 32], seen: Seen) {
        if let Some(cache) = &self.cache {
            cache.insert(key, seen);
        }
    }

    fn next_build(&self) -> u64 {
        self.builds.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
    }
}

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedTokens").field("len", &self.len()).finish()
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
            build: self.verified.next_build(),
            verified: self.verified.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> [u8; 32] {
        Sha256::digest(n.to_be_bytes()).into()
    }

    fn seen(build: u64) -> Seen {
        Seen { build, exp: 2_000_000_000, nbf: 0 }
    }

    #[test]
    fn a_full_cache_keeps_the_tokens_in_use_and_lets_one_off_tokens_go_first() {
        let cache = VerifiedTokens::new(1_000);
        cache.insert(key(0), seen(1));
        for n in 1..=5_000 {
            // Token 0 is presented all along; the others once each (and once
            // more at once, as a client's next request would).
            assert!(cache.get(&key(0)).is_some(), "the token in use was dropped after {n} others");
            cache.insert(key(n), seen(1));
            assert!(cache.get(&key(n)).is_some(), "a token just verified is not there for its next request");
            assert!(cache.len() <= 1_000, "{} entries held", cache.len());
            // Full is full, never emptied.
            assert!(n < 1_000 || cache.len() >= 900, "{} entries held after {n}", cache.len());
        }
    }

    #[test]
    fn size_zero_remembers_nothing() {
        let cache = VerifiedTokens::new(0);
        cache.insert(key(1), seen(1));
        assert!(cache.get(&key(1)).is_none());
        assert_eq!(cache.len(), 0);
    }
}
