//! A user's own account: profile, sessions, password. `/users/me/...` is the
//! caller; `/users/{id}/...` applies the owner-only rule (the user or an admin).

use std::sync::Arc;

use poem::Request;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

use super::models::User;
use super::{ApiResult, ApiTags, NoContent, UserAuth, client_info, tenant_id};
use crate::clock::rfc3339;
use crate::domain::{Error, Latch, PasswordChange, Principal, Profile};

/// The caller's own account.
pub struct UsersApi;

/// Profile changes.
#[derive(Debug, Object)]
pub struct UpdateProfileRequest {
    /// New display name; an empty string clears it.
    #[oai(nullable)]
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
    #[oai(nullable)]
    pub user_agent: Option<String>,
    /// Client IP at login.
    #[oai(nullable)]
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

/// Whose resources a call is about: `/users/me/...` or `/users/{id}/...`.
enum Whose<'a> {
    Me,
    Id(&'a str),
}

impl UsersApi {
    async fn principal(latch: &Latch, tenant: &str, auth: &UserAuth) -> ApiResult<Principal> {
        Ok(latch.authenticate(&tenant_id(tenant)?, auth.token()).await?)
    }

    /// The caller and the id of the user the call is about. A malformed id
    /// is a user that does not exist (404, or 403 for non-admins).
    async fn resolve(latch: &Latch, tenant: &str, auth: &UserAuth, whose: Whose<'_>) -> ApiResult<(Principal, Uuid)> {
        let principal = Self::principal(latch, tenant, auth).await?;
        let target = match whose {
            Whose::Me => principal.user.id,
            Whose::Id(raw) => Uuid::parse_str(raw).unwrap_or(Uuid::nil()),
        };
        Ok((principal, target))
    }

    async fn get_user(latch: &Latch, tenant: &str, auth: &UserAuth, whose: Whose<'_>) -> ApiResult<Json<User>> {
        let (principal, target) = Self::resolve(latch, tenant, auth, whose).await?;
        Ok(Json(latch.user_for(&principal, target).await?.into()))
    }

    async fn patch_user(
        latch: &Latch,
        tenant: &str,
        auth: &UserAuth,
        whose: Whose<'_>,
        body: UpdateProfileRequest,
    ) -> ApiResult<Json<User>> {
        let (principal, target) = Self::resolve(latch, tenant, auth, whose).await?;
        let user = latch.update_profile(&principal, target, Profile { name: body.name }).await?;
        Ok(Json(user.into()))
    }

    async fn list_sessions(
        latch: &Latch,
        tenant: &str,
        auth: &UserAuth,
        whose: Whose<'_>,
    ) -> ApiResult<Json<SessionList>> {
        let (principal, target) = Self::resolve(latch, tenant, auth, whose).await?;
        let sessions = latch
            .sessions(&principal, target)
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

    async fn delete_session(
        latch: &Latch,
        tenant: &str,
        auth: &UserAuth,
        whose: Whose<'_>,
        sid: &str,
    ) -> ApiResult<NoContent> {
        let (principal, target) = Self::resolve(latch, tenant, auth, whose).await?;
        let sid = Uuid::parse_str(sid).map_err(|_| Error::SessionNotFound)?;
        latch.end_session(&principal, target, sid).await?;
        Ok(NoContent::Done)
    }
}

#[OpenApi(tag = "ApiTags::Users")]
impl UsersApi {
    /// The caller's profile.
    #[oai(path = "/t/:tenant/users/me", method = "get", operation_id = "getMe")]
    async fn me(&self, latch: Data<&Arc<Latch>>, tenant: Path<String>, auth: UserAuth) -> ApiResult<Json<User>> {
        Self::get_user(&latch, &tenant, &auth, Whose::Me).await
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
        Self::patch_user(&latch, &tenant, &auth, Whose::Me, body.0).await
    }

    /// Change the caller's password; every other session of theirs ends.
    #[oai(path = "/t/:tenant/users/me/password", method = "post", operation_id = "changePassword")]
    async fn change_password(
        &self,
        latch: Data<&Arc<Latch>>,
        req: &Request,
        tenant: Path<String>,
        auth: UserAuth,
        body: Json<ChangePasswordRequest>,
    ) -> ApiResult<NoContent> {
        let principal = Self::principal(&latch, &tenant, &auth).await?;
        let Json(body) = body;
        latch
            .change_password(
                &principal,
                PasswordChange { current: body.current_password, new: body.new_password },
                &client_info(req),
            )
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
        Self::list_sessions(&latch, &tenant, &auth, Whose::Me).await
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
        Self::delete_session(&latch, &tenant, &auth, Whose::Me, &sid).await
    }

    /// A user's profile: the user themselves or an admin of the tenant (403 for anyone else).
    #[oai(path = "/t/:tenant/users/:user", method = "get", operation_id = "getUser")]
    async fn user(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        user: Path<String>,
        auth: UserAuth,
    ) -> ApiResult<Json<User>> {
        Self::get_user(&latch, &tenant, &auth, Whose::Id(&user)).await
    }

    /// Update a user's profile: the user themselves or an admin of the tenant.
    #[oai(path = "/t/:tenant/users/:user", method = "patch", operation_id = "updateUser")]
    async fn update_user(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        user: Path<String>,
        auth: UserAuth,
        body: Json<UpdateProfileRequest>,
    ) -> ApiResult<Json<User>> {
        Self::patch_user(&latch, &tenant, &auth, Whose::Id(&user), body.0).await
    }

    /// A user's live sessions: the user themselves or an admin of the tenant.
    #[oai(path = "/t/:tenant/users/:user/sessions", method = "get", operation_id = "listUserSessions")]
    async fn user_sessions(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        user: Path<String>,
        auth: UserAuth,
    ) -> ApiResult<Json<SessionList>> {
        Self::list_sessions(&latch, &tenant, &auth, Whose::Id(&user)).await
    }

    /// End one of a user's sessions: the user themselves or an admin of the tenant.
    #[oai(path = "/t/:tenant/users/:user/sessions/:sid", method = "delete", operation_id = "endUserSession")]
    async fn end_user_session(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        user: Path<String>,
        sid: Path<String>,
        auth: UserAuth,
    ) -> ApiResult<NoContent> {
        Self::delete_session(&latch, &tenant, &auth, Whose::Id(&user), &sid).await
    }
}
