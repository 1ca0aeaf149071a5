//! Tenants: creation, changes, deletion, and the introspection credential.
//! Settings rules are in `settings`, keys in `keys`, the per-request runtime in `runtime`.

use latch_shared::Algorithm;
use secrecy::{ExposeSecret, SecretString};

use super::{Error, Latch, Operator, Result, TenantChanges, TenantId};
use crate::store::{Change, StoreError, TenantRecord, TenantSettings};

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

impl Latch {
    /// Creates a tenant with a fresh signing key of its algorithm.
    pub async fn create_tenant(&self, _: &Operator, new: NewTenant) -> Result<TenantRecord> {
        let now = self.now();
        let algorithm = new.algorithm.unwrap_or(Algorithm::EdDSA);
        if algorithm == Algorithm::HS256 {
            // Tenants made before keep signing HS256; a new one cannot, since
            // nobody but latch could verify its tokens.
            return Err(Error::InvalidSetting(super::patch::InvalidSetting {
                of: "tenant",
                setting: "algorithm".into(),
                expected: "EdDSA, ES256 or RS256 (HS256 is not offered: its secret cannot be published for verifiers)"
                    .into(),
            }));
        }
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

    /// One tenant.
    pub async fn tenant(&self, _: &Operator, id: &TenantId) -> Result<TenantRecord> {
        Ok(self.runtime(id).await?.tenant.clone())
    }

    /// Every tenant.
    pub async fn list_tenants(&self, _: &Operator) -> Result<Vec<TenantRecord>> {
        self.all_tenants().await
    }

    pub(super) async fn all_tenants(&self) -> Result<Vec<TenantRecord>> {
        Ok(self.store.run(|store| store.list_tenants()).await?)
    }

    /// Changes a tenant's name or settings; new tokens follow at once.
    pub async fn update_tenant(&self, _: &Operator, id: &TenantId, changes: TenantChanges) -> Result<TenantRecord> {
        self.runtime(id).await?;
        let owned = id.clone();
        let (tenant, refused) = self
            .store
            .write(move |store| {
                let mut refused = None;
                let tenant = store.update_tenant(&owned, &mut |stored| {
                    super::patch::checked(stored, &mut refused, |stored| {
                        let mut changed = stored.clone();
                        changes.apply(&mut changed).map(|()| changed)
                    })
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
    pub async fn delete_tenant(&self, _: &Operator, id: &TenantId) -> Result<()> {
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
    pub async fn ensure_tenant(&self, operator: &Operator, new: NewTenant) -> Result<bool> {
        match self.create_tenant(operator, new).await {
            Ok(_) => Ok(true),
            Err(Error::TenantExists) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates (or replaces) the tenant's introspection secret; shown once, stored as a hash.
    pub async fn new_introspection_secret(&self, _: &Operator, tenant: &TenantId) -> Result<SecretString> {
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
    pub async fn check_introspector(&self, tenant: &TenantId, presented: Option<&str>) -> Result<()> {
        let Some(presented) = presented else {
            // The tenant is looked up first, so an unknown tenant answers 404 either way.
            self.runtime(tenant).await?;
            return Err(Error::NotIntrospector);
        };
        if self.operator(presented).is_ok() {
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
}
