//! Password reset by mail: a single-use, expiring token stored as a hash,
//! sent as a link; using it sets a new password and ends every session.
//!
//! A link belongs to the user's `reset_generation` when it was made; a
//! completed reset, a password change and a disable bump it, so the other
//! links out there stop working. Reset mails to one account are spaced by
//! [`super::verification::RESEND_INTERVAL_SECONDS`].

use std::sync::Arc;

use secrecy::ExposeSecret as _;

use super::events::{Event, EventKind};
use super::verification::RESEND_INTERVAL_SECONDS;
use super::{ClientInfo, Email, Error, Latch, Password, Result, TenantId, TenantRuntime};
use crate::crypto::{random_token, token_hash};
use crate::store::{Change, OneTimeRecord, UserRecord};

/// How long a reset link works.
pub const RESET_TTL_SECONDS: i64 = 3600;
/// How long an invitation link works.
pub const INVITATION_TTL_SECONDS: i64 = 7 * 24 * 3600;
const INVITATION_PURPOSE: &str = "invitation";
const RESET_PURPOSE: &str = "password_reset";
const RESET_TOKEN_PREFIX: &str = "latch_pr_";
const INVITATION_TOKEN_PREFIX: &str = "latch_inv_";

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
        let Some(user) = self.existing_user(tenant, email).await? else { return Ok(()) };
        let token = random_token(RESET_TOKEN_PREFIX);
        let hash = token_hash(token.expose_secret());
        let now = self.now();
        let mut record = OneTimeRecord::new(RESET_PURPOSE, user.id, now + RESET_TTL_SECONDS);
        // Decided on the fresh record, so concurrent requests send one mail.
        let (user, decided) = self
            .change_user_then(
                tenant,
                user.id,
                move |user| {
                    let recent = user.reset_sent_at.is_some_and(|at| now - at < RESEND_INTERVAL_SECONDS);
                    if user.disabled || recent {
                        return Change::Keep;
                    }
                    user.reset_sent_at = Some(now);
                    Change::Write
                },
                move |store, user| {
                    record.generation = user.reset_generation;
                    store.put_one_time(&user.tenant, &hash, &record)
                },
            )
            .await?;
        if decided == Change::Keep {
            tracing::info!(tenant = %tenant, ip = ?client.ip, "password reset mail skipped (disabled, or one sent within a minute)");
            return Ok(());
        }
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

    /// Mails `user` (just created by an admin, without a password) a link to
    /// choose their password, through the reset page and the reset
    /// endpoint. A mail that cannot be sent is logged, not an error: the
    /// user exists, and a password reset request mails them a link too.
    pub(super) async fn send_invitation(&self, runtime: &TenantRuntime, user: &UserRecord) -> Result<()> {
        let tenant = &runtime.tenant.id;
        let token = random_token(INVITATION_TOKEN_PREFIX);
        let record = OneTimeRecord {
            generation: user.reset_generation,
            ..OneTimeRecord::new(INVITATION_PURPOSE, user.id, self.now() + INVITATION_TTL_SECONDS)
        };
        let (owned, hash) = (tenant.clone(), token_hash(token.expose_secret()));
        self.store.write(move |store| store.put_one_time(&owned, &hash, &record)).await?;
        let page = &runtime.tenant.settings.reset_password_url;
        let link = self.mail_link(page, "/demo/reset-password", tenant, token.expose_secret());
        let body = format!(
            "You have been given an account at {name} for {email}.\n\n\
             Open this link within {days} days to choose your password:\n\n{link}\n\n\
             If you did not expect this, ignore this message.\n",
            name = runtime.tenant.name,
            email = user.email,
            days = INVITATION_TTL_SECONDS / 86_400,
        );
        let subject = format!("Your account at {}", runtime.tenant.name);
        if let Err(e) = self.mailer.send(&user.email, &subject, body).await {
            tracing::error!(tenant = %tenant, user = %user.id, error = %e, "invitation mail not sent");
        }
        Ok(())
    }

    /// Completes a reset: the token is used up, the new password (the
    /// tenant's policy applies) replaces the old one, every session ends and
    /// any lockout is lifted.
    pub async fn confirm_password_reset(&self, tenant: &TenantId, token: &str, new_password: &str) -> Result<()> {
        let runtime = self.runtime(tenant).await?;
        let (hash, owned, now) = (token_hash(token), tenant.clone(), self.now());
        // A reset link, or an invitation (which also shows the address is theirs).
        let taken = self
            .store
            .write(move |store| match store.take_one_time(&owned, &hash, RESET_PURPOSE, now)? {
                Some(record) => Ok(Some(record)),
                None => store.take_one_time(&owned, &hash, INVITATION_PURPOSE, now),
            })
            .await?;
        let Some(record) = taken else {
            return Err(Error::InvalidResetToken);
        };
        let invited = record.purpose == INVITATION_PURPOSE;
        let user = self.user(tenant, record.user_id).await.map_err(|_| Error::InvalidResetToken)?;
        if record.generation != user.reset_generation {
            // A later reset, a password change or a disable voided it.
            return Err(Error::InvalidResetToken);
        }
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
        let (id, generation) = (user.id, record.generation);
        let (_, decided) = self
            .change_user_then(
                tenant,
                id,
                move |user| {
                    // Voided while the new password was hashed.
                    if user.reset_generation != generation {
                        return Change::Keep;
                    }
                    user.set_password_hash(hash.clone());
                    if invited {
                        user.email_verified = true;
                    }
                    user.updated_at = now;
                    Change::Write
                },
                move |store, user| store.revoke_user_sessions(&user.tenant, user.id, None, now).map(drop),
            )
            .await?;
        if decided == Change::Keep {
            return Err(Error::InvalidResetToken);
        }
        self.record(tenant, Event::new(EventKind::PasswordReset).actor(id).subject(id)).await;
        Ok(())
    }

    /// Removes one-time records (reset and verification links, MFA
    /// challenges) that have expired; run every minute by the server.
    pub async fn purge_expired_one_time(&self) -> Result<u64> {
        let now = self.now();
        Ok(self.store.write(move |store| store.purge_one_time(now)).await?)
    }
}
