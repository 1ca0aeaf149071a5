//! The caller's own account.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::models::User;
use super::{ApiResult, ApiTags, BearerToken, tenant_id};
use crate::domain::{Latch, Profile};

/// The caller's own profile.
pub struct UsersApi;

/// Profile changes.
#[derive(Debug, Object)]
pub struct UpdateProfileRequest {
    /// New display name; an empty string clears it.
    pub name: Option<String>,
}

#[OpenApi(tag = "ApiTags::Users")]
impl UsersApi {
    /// The caller's profile.
    #[oai(path = "/t/:tenant/users/me", method = "get", operation_id = "getMe")]
    async fn me(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        auth: BearerToken,
    ) -> ApiResult<Json<User>> {
        let principal = latch
            .authenticate(&tenant_id(&tenant)?, &auth.0.token)
            .await?;
        Ok(Json(principal.user.into()))
    }

    /// Update the caller's profile.
    #[oai(
        path = "/t/:tenant/users/me",
        method = "patch",
        operation_id = "updateMe"
    )]
    async fn update_me(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        auth: BearerToken,
        body: Json<UpdateProfileRequest>,
    ) -> ApiResult<Json<User>> {
        let principal = latch
            .authenticate(&tenant_id(&tenant)?, &auth.0.token)
            .await?;
        let user = latch
            .update_profile(&principal, Profile { name: body.0.name })
            .await?;
        Ok(Json(user.into()))
    }
}
