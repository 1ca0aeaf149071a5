//! Password reset by mail: a single-use, expiring token stored as a hash,
//! sent as a link; using it sets a new password and ends every session.

use std::sync::Arc;

use secrecy::ExposeSecret as _;

use super::events::{Event, EventKind};
use super::{ClientInfo, Email, Error, Latch, Password, Result, TenantId};
use crate::crypto::{random_token, token_hash};
use crate::store::{Change, OneTimeRecord};

/// How long a reset link works.
pub const RESET_TTL_SECONDS: i64 = 3600;
const RESET_PURPOSE: &str = "password_reset";
const RESET_TOKEN_PREFIX: &str = "latch_pr_";

impl Latch {
    /// Starts a password reset. The answer never says whether the account
    /// exists: the lookup, the token and the mail happen after it, in the
    /// background, for existing enabled accounts only.
    pub async fn request_password_reset(
        self: &Arc<Self>,
        tenant: &TenantId,
        email: &str,
        client: ClientInfo,
    ) -> Result<()> {
        self.runtime(tenant).await?;
        let email = Email::parse(email)?;
        let (latch, owned) = (self.clone(), tenant.clone());
        self.in_background(
            tenant,
            "password reset",
            async move { latch.send_reset_link(&owned, &email, client).await },
        );
        Ok(())
    }

    async fn send_reset_link(&self, tenant: &TenantId, email: &Email, client: ClientInfo) -> Result<()> {
        let runtime = self.runtime(tenant).await?;
        let Some(user) = self.existing_user(tenant, email).await?.filter(|user| !user.disabled) else { return Ok(()) };
        let token = random_token(RESET_TOKEN_PREFIX);
        let hash = token_hash(token.expose_secret());
        let record = OneTimeRecord {
            purpose: RESET_PURPOSE.to_owned(),
            user_id: user.id,
            expires_at: self.now() + RESET_TTL_SECONDS,
            scope: None,
            attempts: 0,
        };
        let owned = tenant.clone();
        self.store.write(move |store| store.put_one_time(&owned, &hash, &record)).await?;
        let page = &runtime.tenant.settings.reset_password_url;
        let link = self.mail_link(page, "/demo/reset-password", tenant, token.expose_secret());
        let body = format!(
            "Someone asked to reset the password of your account at {name}.\n\n\
             Open this link within {minutes} minutes to choose a new password:\n\n{link}\n\n\
             If it was not you, ignore this message: your password stays as it is.\n",
            name = runtime.tenant.name,
            minutes = RESET_TTL_SECONDS / 60,
        );
        let subject = format!("Reset your {} password", runtime.tenant.name);
        self.mailer.send(&user.email, &subject, body).await.map_err(|e| Error::Internal(e.to_string()))?;
        self.record(tenant, Event::new(EventKind::PasswordResetRequested).subject(user.id).ip(client.ip)).await;
        Ok(())
    }

    /// Completes a reset: the token is used up, the new password (the
    /// tenant's policy applies) replaces the old one, every session ends and
    /// any lockout is lifted.
    pub async fn confirm_password_reset(&self, tenant: &TenantId, token: &str, new_password: &str) -> Result<()> {
        let runtime = self.runtime(tenant).await?;
        let (hash, owned, now) = (token_hash(token), tenant.clone(), self.now());
        let taken = self.store.write(move |store| store.take_one_time(&owned, &hash)).await?;
        let Some(record) = taken.filter(|r| r.purpose == RESET_PURPOSE && r.expires_at > now) else {
            return Err(Error::InvalidResetToken);
        };
        let user = self.user(tenant, record.user_id).await.map_err(|_| Error::InvalidResetToken)?;
        let email = Email::parse(&user.email)?;
        let password = match Password::parse(new_password, runtime.tenant.settings.password_min_length, &email) {
            Ok(password) => password,
            Err(e) => {
                // A password the policy refuses should not cost the user their link.
                let owned = tenant.clone();
                self.store.write(move |store| store.put_one_time(&owned, &hash, &record)).await?;
                return Err(e);
            }
        };
        let hash = self.passwords.hash(password).await?;
        let id = user.id;
        self.change_user_then(
            tenant,
            id,
            move |user| {
                user.password_hash = hash.clone();
                user.failed_logins = 0;
                user.locked_until = None;
                user.updated_at = now;
                Change::Write
            },
            move |store, user| store.revoke_user_sessions(&user.tenant, user.id, None, now).map(drop),
        )
        .await?;
        self.record(tenant, Event::new(EventKind::PasswordReset).actor(id).subject(id)).await;
        Ok(())
    }
}
