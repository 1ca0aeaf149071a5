//! The caller's own account: profile, sessions, password.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::models::User;
use super::{ApiResult, ApiTags, NoContent, UserAuth, tenant_id};
use crate::clock::rfc3339;
use crate::domain::{Error, Latch, PasswordChange, Principal, Profile};

/// The caller's own account.
pub struct UsersApi;

/// Profile changes.
#[derive(Debug, Object)]
pub struct UpdateProfileRequest {
    /// New display name; an empty string clears it.
    pub name: Option<String>,
}

/// A password change.
#[derive(Debug, Object)]
pub struct ChangePasswordRequest {
    /// The current password.
    #[oai(write_only)]
    pub current_password: String,
    /// The new password (the tenant's policy applies).
    #[oai(write_only)]
    pub new_password: String,
}

/// One login session.
#[derive(Debug, Object)]
pub struct Session {
    /// Session id (the `sid` claim).
    pub id: String,
    /// When it started, RFC 3339.
    pub created_at: String,
    /// When its refresh token was last used, RFC 3339.
    pub last_used_at: String,
    /// When its refresh token expires, RFC 3339.
    pub expires_at: String,
    /// User-Agent at login.
    pub user_agent: Option<String>,
    /// Client IP at login.
    pub ip: Option<String>,
    /// Whether the calling token belongs to this session.
    pub current: bool,
}

/// The caller's live sessions.
#[derive(Debug, Object)]
pub struct SessionList {
    /// Oldest first.
    pub sessions: Vec<Session>,
}

impl UsersApi {
    async fn principal(latch: &Latch, tenant: &str, auth: &UserAuth) -> ApiResult<Principal> {
        Ok(latch.authenticate(&tenant_id(tenant)?, auth.token()).await?)
    }
}

#[OpenApi(tag = "ApiTags::Users")]
impl UsersApi {
    /// The caller's profile.
    #[oai(path = "/t/:tenant/users/me", method = "get", operation_id = "getMe")]
    async fn me(&self, latch: Data<&Arc<Latch>>, tenant: Path<String>, auth: UserAuth) -> ApiResult<Json<User>> {
        let principal = Self::principal(&latch, &tenant, &auth).await?;
        Ok(Json(principal.user.into()))
    }

    /// Update the caller's profile.
    #[oai(path = "/t/:tenant/users/me", method = "patch", operation_id = "updateMe")]
    async fn update_me(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        auth: UserAuth,
        body: Json<UpdateProfileRequest>,
    ) -> ApiResult<Json<User>> {
        let principal = Self::principal(&latch, &tenant, &auth).await?;
        let user = latch.update_profile(&principal, Profile { name: body.0.name }).await?;
        Ok(Json(user.into()))
    }

    /// Change the caller's password; every other session of theirs ends.
    #[oai(path = "/t/:tenant/users/me/password", method = "post", operation_id = "changePassword")]
    async fn change_password(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        auth: UserAuth,
        body: Json<ChangePasswordRequest>,
    ) -> ApiResult<NoContent> {
        let principal = Self::principal(&latch, &tenant, &auth).await?;
        let Json(body) = body;
        latch
            .change_password(&principal, PasswordChange { current: body.current_password, new: body.new_password })
            .await?;
        Ok(NoContent::Done)
    }

    /// The caller's live sessions.
    #[oai(path = "/t/:tenant/users/me/sessions", method = "get", operation_id = "listMySessions")]
    async fn sessions(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        auth: UserAuth,
    ) -> ApiResult<Json<SessionList>> {
        let principal = Self::principal(&latch, &tenant, &auth).await?;
        let sessions = latch
            .sessions(&principal)
            .await?
            .into_iter()
            .map(|s| Session {
                id: s.id.to_string(),
                created_at: rfc3339(s.created_at),
                last_used_at: rfc3339(s.last_used_at),
                expires_at: rfc3339(s.expires_at),
                current: s.id == principal.session.id,
                user_agent: s.user_agent,
                ip: s.ip,
            })
            .collect();
        Ok(Json(SessionList { sessions }))
    }

    /// End one of the caller's sessions (its refresh tokens stop working at once).
    #[oai(path = "/t/:tenant/users/me/sessions/:sid", method = "delete", operation_id = "endMySession")]
    async fn end_session(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        sid: Path<String>,
        auth: UserAuth,
    ) -> ApiResult<NoContent> {
        let principal = Self::principal(&latch, &tenant, &auth).await?;
        let sid = uuid::Uuid::parse_str(&sid).map_err(|_| Error::SessionNotFound)?;
        latch.end_session(&principal, sid).await?;
        Ok(NoContent::Done)
    }
}
