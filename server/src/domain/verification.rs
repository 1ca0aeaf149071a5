//! Email verification: a single-use link mailed on registration (and on
//! request, at most once a minute per account); the tenant decides whether
//! unverified accounts may log in.

use std::sync::Arc;

use secrecy::ExposeSecret as _;

use super::events::{Event, EventKind};
use super::{ClientInfo, Email, Error, Latch, Result, TenantId, TenantRuntime};
use crate::crypto::{random_token, token_hash};
use crate::store::{Change, EmailVerification, OneTimeRecord, UserRecord};

/// How long a verification link works.
pub const VERIFY_TTL_SECONDS: i64 = 24 * 3600;
/// The shortest gap between two verification mails to one account.
pub const RESEND_INTERVAL_SECONDS: i64 = 60;
const VERIFY_PURPOSE: &str = "verify_email";
const VERIFY_TOKEN_PREFIX: &str = "latch_ev_";

impl Latch {
    /// Runs mail work after the answer has gone out; a failure is logged
    /// (the client was answered already). The task is tracked, so shutdown
    /// waits for it and tests can wait until it is done.
    pub(super) fn in_background(
        &self,
        tenant: &TenantId,
        what: &'static str,
        work: impl std::future::Future<Output = Result<()>> + Send + 'static,
    ) {
        let tenant = tenant.clone();
        self.background.spawn(async move {
            if let Err(e) = work.await {
                tracing::error!(tenant = %tenant, error = %e, "{what} mail not sent");
            }
        });
    }

    /// The account with this email, if there is one (for mail requests that
    /// must answer the same whether or not it exists).
    pub(super) async fn existing_user(&self, tenant: &TenantId, email: &Email) -> Result<Option<UserRecord>> {
        match self.user_by_email(tenant, email.as_str()).await {
            Ok(user) => Ok(Some(user)),
            Err(Error::UserNotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The link a mail carries: the tenant's own page, or latch's demo page
    /// at `default_path`, with `tenant` and `token` added to its query.
    pub(super) fn mail_link(&self, page: &str, default_path: &str, tenant: &TenantId, token: &str) -> String {
        let base = if page.is_empty() { format!("{}{default_path}", self.public_url) } else { page.to_owned() };
        let separator = if base.contains('?') { '&' } else { '?' };
        format!("{base}{separator}tenant={tenant}&token={token}")
    }

    /// After registration: mails the verification link in the background
    /// when the tenant verifies emails.
    pub(super) fn start_verification(self: &Arc<Self>, runtime: &TenantRuntime, user: &UserRecord) {
        if runtime.tenant.settings.email_verification == EmailVerification::Off {
            return;
        }
        let (latch, tenant, id) = (self.clone(), user.tenant.clone(), user.id);
        self.in_background(&user.tenant, "verification", async move {
            let runtime = latch.runtime(&tenant).await?;
            let user = latch.user(&tenant, id).await?;
            latch.send_verification(&runtime, user, None).await
        });
    }

    /// Mails a verification link to `user`. With `spaced_from` (a resend
    /// asked for then), only if the account is still enabled and unverified
    /// and its last mail is at least [`RESEND_INTERVAL_SECONDS`] older,
    /// decided on the fresh record, so concurrent resends send one mail.
    async fn send_verification(
        &self,
        runtime: &TenantRuntime,
        user: UserRecord,
        spaced_from: Option<i64>,
    ) -> Result<()> {
        let tenant = &runtime.tenant.id;
        let token = random_token(VERIFY_TOKEN_PREFIX);
        let hash = token_hash(token.expose_secret());
        let now = self.now();
        let record = OneTimeRecord::new(VERIFY_PURPOSE, user.id, now + VERIFY_TTL_SECONDS);
        let (user, decided) = self
            .change_user_then(
                tenant,
                user.id,
                move |user| {
                    if let Some(asked_at) = spaced_from {
                        let recent =
                            user.verification_sent_at.is_some_and(|at| asked_at - at < RESEND_INTERVAL_SECONDS);
                        if user.disabled || user.email_verified || recent {
                            return Change::Keep;
                        }
                    }
                    user.verification_sent_at = Some(now);
                    Change::Write
                },
                move |store, user| store.put_one_time(&user.tenant, &hash, &record),
            )
            .await?;
        if decided == Change::Keep {
            tracing::info!(tenant = %tenant, "verification resend skipped");
            return Ok(());
        }
        let settings = &runtime.tenant.settings;
        let link = self.mail_link(&settings.verify_email_url, "/demo/verify-email", tenant, token.expose_secret());
        let body = format!(
            "Please confirm that {email} is your address for your account at {name}.\n\n\
             Open this link within {hours} hours:\n\n{link}\n\n\
             If you did not create this account, ignore this message.\n",
            email = user.email,
            name = runtime.tenant.name,
            hours = VERIFY_TTL_SECONDS / 3600,
        );
        let subject = format!("Confirm your email for {}", runtime.tenant.name);
        self.mailer.send(&user.email, &subject, body).await.map_err(|e| Error::Internal(e.to_string()))
    }

    /// Marks the link's account verified; the link is used up.
    pub async fn verify_email(&self, tenant: &TenantId, token: &str) -> Result<()> {
        self.runtime(tenant).await?;
        let (hash, owned, now) = (token_hash(token), tenant.clone(), self.now());
        let taken = self.store.write(move |store| store.take_one_time(&owned, &hash, VERIFY_PURPOSE, now)).await?;
        let Some(record) = taken else {
            return Err(Error::InvalidVerificationToken);
        };
        let id = record.user_id;
        self.change_user(tenant, id, move |user| {
            user.email_verified = true;
            user.updated_at = now;
            Change::Write
        })
        .await
        .map_err(|e| match e {
            Error::UserNotFound => Error::InvalidVerificationToken,
            other => other,
        })?;
        self.record(tenant, Event::new(EventKind::EmailVerified).actor(id).subject(id)).await;
        Ok(())
    }

    /// Mails a new verification link. The answer never says whether the
    /// account exists: the lookup and mail happen afterwards, in the
    /// background, for existing, enabled, unverified accounts whose last
    /// mail is at least a minute old, in a tenant that verifies emails.
    pub async fn resend_verification(
        self: &Arc<Self>,
        tenant: &TenantId,
        email: &str,
        client: ClientInfo,
    ) -> Result<()> {
        self.runtime(tenant).await?;
        let email = Email::parse(email)?;
        // The spacing counts from this request, however late the task runs.
        let (latch, owned, asked_at) = (self.clone(), tenant.clone(), self.now());
        self.in_background(tenant, "verification", async move {
            let runtime = latch.runtime(&owned).await?;
            if runtime.tenant.settings.email_verification == EmailVerification::Off {
                return Ok(());
            }
            let Some(user) = latch.existing_user(&owned, &email).await? else { return Ok(()) };
            tracing::debug!(tenant = %owned, ip = ?client.ip, "verification resend asked");
            latch.send_verification(&runtime, user, Some(asked_at)).await
        });
        Ok(())
    }
}
