//! Registration, login and the user's own profile.

use uuid::Uuid;

use super::{
    ClientInfo, DisplayName, Email, Error, Latch, Password, Principal, Result, TenantId, TokenPair,
};
use crate::store::{StoreError, UserRecord};

/// A registration request, unvalidated.
pub struct Registration {
    /// Email.
    pub email: String,
    /// Password.
    pub password: String,
    /// Optional display name.
    pub name: Option<String>,
}

/// Changes to the caller's own profile.
pub struct Profile {
    /// New display name; `Some("")` clears it.
    pub name: Option<String>,
}

impl Latch {
    /// Creates a user and logs them in.
    pub async fn register(
        &self,
        tenant: &TenantId,
        registration: Registration,
        client: ClientInfo,
    ) -> Result<TokenPair> {
        let runtime = self.runtime(tenant).await?;
        let settings = &runtime.tenant.settings;
        let email = Email::parse(&registration.email)?;
        let password =
            Password::parse(&registration.password, settings.password_min_length, &email)?;
        let name = registration
            .name
            .as_deref()
            .map(DisplayName::parse)
            .transpose()?
            .map(DisplayName::into_inner);
        let password_hash = self.passwords.hash(password).await?;
        let now = self.now();
        let user = UserRecord {
            tenant: tenant.clone(),
            id: Uuid::now_v7(),
            email: email.as_str().to_owned(),
            email_key: email.key().to_owned(),
            name,
            password_hash,
            roles: settings.default_roles.clone(),
            disabled: false,
            email_verified: false,
            created_at: now,
            updated_at: now,
        };
        let stored = user.clone();
        self.store
            .write(move |store| store.insert_user(&stored))
            .await
            .map_err(|e| match e {
                StoreError::Conflict => Error::EmailTaken,
                other => other.into(),
            })?;
        tracing::info!(tenant = %tenant, user = %user.id, "user registered");
        self.start_session(&runtime, user, client).await
    }

    /// Checks email and password and starts a session. Unknown email and wrong
    /// password cost the same and give the same error.
    pub async fn login(
        &self,
        tenant: &TenantId,
        email: &str,
        password: &str,
        client: ClientInfo,
    ) -> Result<TokenPair> {
        let runtime = self.runtime(tenant).await?;
        let password = Password::presented(password)?;
        let key = Email::parse(email)
            .map(|e| e.key().to_owned())
            .unwrap_or_default();
        let owned = tenant.clone();
        let user = if key.is_empty() {
            None
        } else {
            self.store
                .read(move |store| store.find_user_by_email(&owned, &key))
                .await?
        };
        let rehash = Password::presented(password.expose())?;
        let verdict = self
            .passwords
            .verify(password, user.as_ref().map(|u| u.password_hash.clone()))
            .await?;
        let Some(mut user) = user.filter(|_| verdict.matches) else {
            tracing::info!(tenant = %tenant, "login failed");
            return Err(Error::InvalidCredentials);
        };
        if user.disabled {
            return Err(Error::UserDisabled);
        }
        if verdict.outdated {
            user.password_hash = self.passwords.hash(rehash).await?;
            user.updated_at = self.now();
            let stored = user.clone();
            self.store
                .write(move |store| store.update_user(&stored))
                .await?;
            tracing::info!(tenant = %tenant, user = %user.id, "password hash upgraded to current parameters");
        }
        self.start_session(&runtime, user, client).await
    }

    /// Updates the caller's own profile.
    pub async fn update_profile(
        &self,
        principal: &Principal,
        profile: Profile,
    ) -> Result<UserRecord> {
        let mut user = principal.user.clone();
        if let Some(name) = profile.name {
            user.name = if name.trim().is_empty() {
                None
            } else {
                Some(DisplayName::parse(&name)?.into_inner())
            };
        }
        user.updated_at = self.now();
        let stored = user.clone();
        self.store
            .write(move |store| store.update_user(&stored))
            .await?;
        Ok(user)
    }
}
