//! Audit events: what happened in a tenant, for its admins.

use uuid::Uuid;

use super::{Latch, TenantId};
use crate::store::EventRecord;

/// The kinds of audit events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A login succeeded.
    LoginSucceeded,
    /// A login failed (unknown email, wrong password, or a locked account).
    LoginFailed,
    /// Repeated failed logins locked an account.
    Lockout,
    /// A rotated refresh token was presented again; its session was revoked.
    RefreshReuseDetected,
    /// A user changed their password.
    PasswordChanged,
    /// A session was ended (logout, revocation, from the session list).
    SessionEnded,
    /// The tenant's signing key was rotated.
    KeyRotated,
    /// An admin or the operator created a user.
    UserCreated,
    /// An admin or the operator set a user's password.
    PasswordSet,
    /// An admin or the operator imported users (with their password hashes).
    UsersImported,
    /// A password-reset mail was sent.
    PasswordResetRequested,
    /// A password was reset through a reset link.
    PasswordReset,
    /// A user was disabled (their sessions ended).
    UserDisabled,
    /// A user was enabled again.
    UserEnabled,
    /// A user was deleted.
    UserDeleted,
    /// A user's roles changed.
    RolesChanged,
    /// An admin ended every session of a user.
    SessionsEnded,
    /// A user turned TOTP on (enrollment confirmed).
    MfaEnabled,
    /// A user turned TOTP off.
    MfaDisabled,
    /// An administrator removed a user's second factor.
    MfaReset,
    /// A wrong or reused second factor was presented at login.
    MfaFailed,
    /// A recovery code completed a login.
    RecoveryCodeUsed,
    /// A user verified their email address.
    EmailVerified,
    /// An OAuth client was registered.
    ClientCreated,
    /// An OAuth client's settings changed.
    ClientUpdated,
    /// An OAuth client's secret was replaced.
    ClientSecretRotated,
    /// An OAuth client was removed.
    ClientDeleted,
}

impl EventKind {
    /// The stable name stored and shown.
    pub fn as_str(&self) -> &'static str {
        match self {
            EventKind::LoginSucceeded => "login_succeeded",
            EventKind::LoginFailed => "login_failed",
            EventKind::Lockout => "lockout",
            EventKind::RefreshReuseDetected => "refresh_reuse_detected",
            EventKind::PasswordChanged => "password_changed",
            EventKind::SessionEnded => "session_ended",
            EventKind::KeyRotated => "key_rotated",
            EventKind::UserCreated => "user_created",
            EventKind::PasswordSet => "password_set",
            EventKind::UsersImported => "users_imported",
            EventKind::PasswordResetRequested => "password_reset_requested",
            EventKind::PasswordReset => "password_reset",
            EventKind::UserDisabled => "user_disabled",
            EventKind::UserEnabled => "user_enabled",
            EventKind::UserDeleted => "user_deleted",
            EventKind::RolesChanged => "roles_changed",
            EventKind::SessionsEnded => "sessions_ended",
            EventKind::MfaEnabled => "mfa_enabled",
            EventKind::MfaDisabled => "mfa_disabled",
            EventKind::MfaReset => "mfa_reset",
            EventKind::MfaFailed => "mfa_failed",
            EventKind::RecoveryCodeUsed => "recovery_code_used",
            EventKind::EmailVerified => "email_verified",
            EventKind::ClientCreated => "client_created",
            EventKind::ClientUpdated => "client_updated",
            EventKind::ClientSecretRotated => "client_secret_rotated",
            EventKind::ClientDeleted => "client_deleted",
        }
    }
}

/// An event to record.
#[derive(Debug, Clone)]
pub struct Event {
    /// What.
    pub kind: EventKind,
    /// Who did it: a user id, `operator` or `system`.
    pub actor: Option<String>,
    /// Whom or what it concerns.
    pub subject: Option<String>,
    /// Client IP.
    pub ip: Option<String>,
    /// Extra detail.
    pub detail: Option<String>,
}

impl Event {
    /// An event with no actor, subject or detail yet.
    pub fn new(kind: EventKind) -> Event {
        Event { kind, actor: None, subject: None, ip: None, detail: None }
    }

    /// Sets the actor.
    pub fn actor(mut self, actor: impl ToString) -> Event {
        self.actor = Some(actor.to_string());
        self
    }

    /// Sets the subject.
    pub fn subject(mut self, subject: impl ToString) -> Event {
        self.subject = Some(subject.to_string());
        self
    }

    /// Sets the client IP.
    pub fn ip(mut self, ip: Option<String>) -> Event {
        self.ip = ip;
        self
    }

    /// Sets the detail.
    pub fn detail(mut self, detail: impl ToString) -> Event {
        self.detail = Some(detail.to_string());
        self
    }
}

impl Latch {
    /// Records an event. It rides along with the next flush: an event is
    /// never worth failing or slowing the request that caused it.
    pub(crate) async fn record(&self, tenant: &TenantId, event: Event) {
        crate::metrics::audit_event(tenant.as_str(), event.kind.as_str());
        let record = EventRecord {
            tenant: tenant.clone(),
            id: Uuid::now_v7(),
            at: self.now(),
            kind: event.kind.as_str().to_owned(),
            actor: event.actor,
            subject: event.subject,
            ip: event.ip,
            detail: event.detail,
        };
        let retain = match self.runtime(tenant).await {
            Ok(runtime) => runtime.tenant.settings.audit_retention as usize,
            Err(_) => return,
        };
        if let Err(e) = self.store.run(move |store| store.append_event(&record, retain)).await {
            tracing::error!(tenant = %tenant, error = %e, "audit event not recorded");
        }
    }

    /// Up to `limit` of a tenant's events older than the event `before`, newest first.
    pub(crate) async fn events(
        &self,
        tenant: &TenantId,
        limit: usize,
        before: Option<Uuid>,
    ) -> super::Result<Vec<EventRecord>> {
        self.runtime(tenant).await?;
        let owned = tenant.clone();
        Ok(self.store.run(move |store| store.list_events(&owned, limit, before)).await?)
    }
}
