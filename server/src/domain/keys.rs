//! Signing keys: generation, sealing under the master key, rotation (manual
//! and scheduled), and opening a key's private half.

use latch_shared::Algorithm;
use latch_shared::sign::SigningKey;
use zeroize::Zeroizing;

use super::events::{Event, EventKind};
use super::{Error, Latch, Operator, Result, TenantId};
use crate::store::KeyRecord;

/// How long a rotated key is published before it signs, unless a manual
/// rotation asks otherwise: the JWKS `max-age`, so a verifier's cached JWKS
/// already holds the new key when the first token it signed arrives.
pub const DEFAULT_PUBLISH_DELAY_SECONDS: u32 = 300;

/// Margin after a retired key's last token expires before it leaves the JWKS.
pub(super) const RETIRED_KEY_MARGIN: i64 = latch_shared::MAX_LEEWAY_SECONDS as i64;

fn key_context(tenant: &TenantId, kid: &str, alg: Algorithm) -> String {
    format!("latch/signing-key/v1/{tenant}/{kid}/{}", alg.as_str())
}

impl Latch {
    /// Generates a key (RSA generation is slow, so off the async workers) and seals its private half.
    pub(super) async fn new_key(&self, tenant: &TenantId, algorithm: Algorithm, now: i64) -> Result<KeyRecord> {
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

    /// Rotates a tenant's signing key: a new key is published at once and
    /// signs from `now + publish_delay`; the keys it replaces stop signing
    /// then and stay published until every token they signed has expired.
    pub async fn rotate_signing_key(
        &self,
        operator: &Operator,
        tenant: &TenantId,
        publish_delay: u32,
    ) -> Result<KeyRecord> {
        let record = self.runtime(tenant).await?.tenant.clone();
        let now = self.now();
        let mut key = self.new_key(tenant, record.algorithm, now).await?;
        key.active_from = now + publish_delay as i64;
        let (owned, new_key) = (tenant.clone(), key.clone());
        self.store.write(move |store| store.rotate_keys(&owned, &new_key)).await?;
        self.forget_runtime(tenant);
        tracing::info!(tenant = %tenant, kid = %key.kid, active_from = key.active_from, "signing key rotated");
        let event = Event::new(EventKind::KeyRotated).actor(operator.name()).subject(&key.kid);
        self.record(tenant, event.detail(format!("signs from {}", crate::clock::rfc3339(key.active_from)))).await;
        Ok(key)
    }

    /// Rotates the key of every tenant whose `key_rotation_days` have passed
    /// since its newest key was created. Returns the tenants rotated.
    pub async fn rotate_due_keys(&self) -> Result<Vec<TenantId>> {
        let _one_check_at_a_time = self.rotation_check.lock().await;
        let now = self.now();
        let mut rotated = Vec::new();
        for tenant in self.all_tenants().await? {
            let days = tenant.settings.key_rotation_days as i64;
            if days == 0 {
                continue;
            }
            let owned = tenant.id.clone();
            let newest =
                self.store.run(move |store| store.list_keys(&owned)).await?.into_iter().map(|k| k.created_at).max();
            if newest.is_some_and(|created| created + days * 86_400 <= now) {
                self.rotate_signing_key(&Operator::system(), &tenant.id, DEFAULT_PUBLISH_DELAY_SECONDS).await?;
                rotated.push(tenant.id);
            }
        }
        Ok(rotated)
    }

    /// A tenant's keys (including retired ones still published), oldest first.
    pub async fn keys(&self, _: &Operator, tenant: &TenantId) -> Result<Vec<KeyRecord>> {
        self.runtime(tenant).await?;
        let owned = tenant.clone();
        Ok(self.store.run(move |store| store.list_keys(&owned)).await?)
    }

    pub(super) fn open_private(&self, tenant: &TenantId, record: &KeyRecord) -> Result<Zeroizing<Vec<u8>>> {
        self.master.open(&key_context(tenant, &record.kid, record.algorithm), &record.sealed_private).ok_or_else(|| {
            tracing::error!(tenant = %tenant, kid = %record.kid, "signing key does not decrypt with this master key");
            Error::KeyUnavailable
        })
    }
}
