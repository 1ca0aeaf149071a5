//! The tenant admin API under `/t/{tenant}/admin`: users, roles, sessions and
//! audit events. Callers need the `admin` role in that tenant (checked on
//! the stored user, not the token's claim) or the operator token.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::models::User;
use super::ndjson::{NdjsonBody, NdjsonStream};
use super::{ApiResult, ApiTags, NoContent, UserAuth, tenant_id};
use crate::clock::rfc3339;
use crate::domain::{Actor, Error, Latch, NewUser};
use crate::store::EventRecord;

/// Tenant administration.
pub struct AdminApi;

/// Default page size of users and events.
const DEFAULT_PAGE: u32 = 50;

/// A page of users, ordered by email.
#[derive(Debug, Object)]
pub struct UserList {
    /// The users.
    pub users: Vec<User>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

/// A user to create; unknown fields are refused.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// Email, unique in the tenant (case-insensitive).
    pub email: String,
    /// Password (the tenant's policy applies). Left out, the user is invited:
    /// a link to choose a password is mailed (valid 7 days).
    #[oai(write_only)]
    #[oai(nullable)]
    pub password: Option<String>,
    /// Display name.
    #[oai(nullable)]
    pub name: Option<String>,
    /// Roles (default: the tenant's default roles); each must be defined by the tenant.
    #[oai(nullable)]
    pub roles: Option<Vec<String>>,
}

/// A user's new roles; unknown fields are refused.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct SetRolesRequest {
    /// The complete set of roles; each must be defined by the tenant.
    pub roles: Vec<String>,
}

/// An audit event.
#[derive(Debug, Object)]
pub struct AuditEvent {
    /// Event id (pass as `cursor` for older events).
    pub id: String,
    /// When, RFC 3339.
    pub at: String,
    /// What: `login_succeeded`, `login_failed`, `lockout`, `refresh_reuse_detected`,
    /// `password_changed`, `password_set`, `password_reset_requested`, `password_reset`,
    /// `session_ended`, `sessions_ended`, `user_created`, `user_disabled`, `user_enabled`,
    /// `user_deleted`, `roles_changed`, `key_rotated`.
    pub kind: String,
    /// Who did it: a user id, `operator`, or `system`.
    #[oai(nullable)]
    pub actor: Option<String>,
    /// Whom or what it concerns: a user, session or key id.
    #[oai(nullable)]
    pub subject: Option<String>,
    /// Client IP, where there was a client.
    #[oai(nullable)]
    pub ip: Option<String>,
    /// Extra detail.
    #[oai(nullable)]
    pub detail: Option<String>,
}

impl From<EventRecord> for AuditEvent {
    fn from(event: EventRecord) -> AuditEvent {
        AuditEvent {
            id: event.id.to_string(),
            at: rfc3339(event.at),
            kind: event.kind,
            actor: event.actor,
            subject: event.subject,
            ip: event.ip,
            detail: event.detail,
        }
    }
}

/// A page of audit events, newest first.
#[derive(Debug, Object)]
pub struct EventList {
    /// The events.
    pub events: Vec<AuditEvent>,
    /// Pass as `cursor` to get older events; absent on the last page.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

/// What an import does with an email the tenant already has.
#[derive(Debug, Clone, Copy, poem_openapi::Enum)]
#[oai(rename_all = "lowercase")]
pub enum ExistingMode {
    /// Leave the user as they are (a rerun of a file changes nothing).
    Skip,
    /// Replace their password hash (their sessions end) and the name,
    /// roles, `email_verified` and `disabled` the line gives.
    Update,
}

/// The results of an import.
#[derive(ApiResponse)]
pub enum ImportResults {
    /// Every line checked out. One JSON object a line, in the file's order,
    /// each sent once its batch is durable: `{"line", "id", "result"}` with
    /// `result` `created`, `updated`, `skipped` or `failed` (then with a
    /// `reason`: an id or email taken meanwhile); last
    /// `{"done": true, "created", "updated", "skipped", "failed"}`, or
    /// `{"stopped": reason}` if the store failed (the lines before are
    /// imported; rerun the file).
    #[oai(status = 200)]
    Results(NdjsonStream),
}

/// Users whose password hash was imported and is not yet latch's argon2id.
#[derive(Debug, Object)]
pub struct ImportedHashes {
    /// Users per scheme (`bcrypt`, `pbkdf2-sha256`, `scrypt`, `argon2i`, `argon2id` of another version); each leaves its count at their next login.
    pub by_scheme: std::collections::BTreeMap<String, u64>,
    /// All of them.
    pub total: u64,
}

/// User created.
#[derive(ApiResponse)]
pub enum UserCreated {
    /// The new user.
    #[oai(status = 201)]
    Created(Json<User>),
}

impl AdminApi {
    /// The caller's authority over the tenant in the path.
    async fn admin(latch: &Latch, tenant: &str, auth: &UserAuth) -> ApiResult<Actor> {
        Ok(latch.tenant_admin(&tenant_id(tenant)?, auth.token()).await?)
    }
}

/// A user id from the path; anything else is a user that does not exist.
fn user_id(raw: &str) -> ApiResult<Uuid> {
    Ok(Uuid::parse_str(raw).map_err(|_| Error::UserNotFound)?)
}

fn page_size(limit: Option<u32>) -> usize {
    limit.unwrap_or(DEFAULT_PAGE) as usize
}

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminApi {
    /// List the tenant's users ordered by email, optionally only those whose
    /// email starts with `email_prefix` (case-insensitive).
    #[oai(path = "/t/:tenant/admin/users", method = "get", operation_id = "adminListUsers")]
    async fn list_users(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        auth: UserAuth,
        /// Page size (1-200, default 50).
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Only emails starting with this.
        email_prefix: Query<Option<String>>,
    ) -> ApiResult<Json<UserList>> {
        let actor = Self::admin(&latch, &tenant, &auth).await?;
        let page = latch.list_users(&actor, email_prefix.as_deref(), cursor.as_deref(), page_size(limit.0)).await?;
        Ok(Json(UserList { users: page.items.into_iter().map(Into::into).collect(), next_cursor: page.next_cursor }))
    }

    /// Create a user (not logged in).
    #[oai(path = "/t/:tenant/admin/users", method = "post", operation_id = "adminCreateUser")]
    async fn create_user(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        auth: UserAuth,
        body: Json<CreateUserRequest>,
    ) -> ApiResult<UserCreated> {
        let actor = Self::admin(&latch, &tenant, &auth).await?;
        let Json(body) = body;
        let new = NewUser { email: body.email, password: body.password, name: body.name, roles: body.roles };
        let user = latch.create_user(&actor, new).await?;
        Ok(UserCreated::Created(Json(user.into())))
    }

    /// One user.
    #[oai(path = "/t/:tenant/admin/users/:user", method = "get", operation_id = "adminGetUser")]
    async fn get_user(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        user: Path<String>,
        auth: UserAuth,
    ) -> ApiResult<Json<User>> {
        let actor = Self::admin(&latch, &tenant, &auth).await?;
        Ok(Json(latch.admin_user(&actor, user_id(&user)?).await?.into()))
    }

    /// Delete a user: their sessions end and the email is free again.
    #[oai(path = "/t/:tenant/admin/users/:user", method = "delete", operation_id = "adminDeleteUser")]
    async fn delete_user(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        user: Path<String>,
        auth: UserAuth,
    ) -> ApiResult<NoContent> {
        let actor = Self::admin(&latch, &tenant, &auth).await?;
        latch.delete_user(&actor, user_id(&user)?).await?;
        Ok(NoContent::Done)
    }

    /// Disable a user: login answers 403, their sessions end and their tokens stop working on the server at once.
    #[oai(path = "/t/:tenant/admin/users/:user/disable", method = "post", operation_id = "adminDisableUser")]
    async fn disable_user(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        user: Path<String>,
        auth: UserAuth,
    ) -> ApiResult<Json<User>> {
        let actor = Self::admin(&latch, &tenant, &auth).await?;
        Ok(Json(latch.set_disabled(&actor, user_id(&user)?, true).await?.into()))
    }

    /// Remove a user's second factor (TOTP and its recovery codes), for an
    /// owner who lost both; they log in with the password and can enroll again.
    #[oai(path = "/t/:tenant/admin/users/:user/mfa/reset", method = "post", operation_id = "adminResetMfa")]
    async fn reset_mfa(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        user: Path<String>,
        auth: UserAuth,
    ) -> ApiResult<Json<User>> {
        let actor = Self::admin(&latch, &tenant, &auth).await?;
        Ok(Json(latch.reset_mfa(&actor, user_id(&user)?).await?.into()))
    }

    /// Enable a disabled user.
    #[oai(path = "/t/:tenant/admin/users/:user/enable", method = "post", operation_id = "adminEnableUser")]
    async fn enable_user(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        user: Path<String>,
        auth: UserAuth,
    ) -> ApiResult<Json<User>> {
        let actor = Self::admin(&latch, &tenant, &auth).await?;
        Ok(Json(latch.set_disabled(&actor, user_id(&user)?, false).await?.into()))
    }

    /// Replace a user's roles. Live sessions' scopes narrow to what the new roles allow.
    #[oai(path = "/t/:tenant/admin/users/:user/roles", method = "put", operation_id = "adminSetRoles")]
    async fn set_roles(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        user: Path<String>,
        auth: UserAuth,
        body: Json<SetRolesRequest>,
    ) -> ApiResult<Json<User>> {
        let actor = Self::admin(&latch, &tenant, &auth).await?;
        Ok(Json(latch.set_roles(&actor, user_id(&user)?, body.0.roles).await?.into()))
    }

    /// End every session of a user.
    #[oai(path = "/t/:tenant/admin/users/:user/sessions", method = "delete", operation_id = "adminEndUserSessions")]
    async fn end_sessions(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        user: Path<String>,
        auth: UserAuth,
    ) -> ApiResult<NoContent> {
        let actor = Self::admin(&latch, &tenant, &auth).await?;
        latch.end_user_sessions(&actor, user_id(&user)?).await?;
        Ok(NoContent::Done)
    }

    /// Import users with the password hashes they already have: an
    /// `application/x-ndjson` body, one user a line (`email`,
    /// `password_hash`; optional `id`, `name`, `roles`, `email_verified`,
    /// `created_at`, `disabled`). Hashes: bcrypt (`$2a$`/`$2b$`/`$2y$`),
    /// PBKDF2-SHA256 (passlib's `$pbkdf2-sha256$` or PHC), scrypt, argon2id
    /// and argon2i (PHC); each user's first login verifies theirs and
    /// replaces it with argon2id. Every line is checked before anything is
    /// written: with any bad line nothing is imported (422, each listed
    /// with its number and reason). Audited as `users_imported`.
    #[oai(path = "/t/:tenant/admin/users/import", method = "post", operation_id = "adminImportUsers")]
    async fn import_users(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        auth: UserAuth,
        /// An email the tenant already has: `skip` (default) or `update`.
        existing: Query<Option<ExistingMode>>,
        body: NdjsonBody,
    ) -> ApiResult<ImportResults> {
        use crate::domain::imports::Existing;
        let actor = Self::admin(&latch, &tenant, &auth).await?;
        let existing = match existing.0 {
            None | Some(ExistingMode::Skip) => Existing::Skip,
            Some(ExistingMode::Update) => Existing::Update,
        };
        let importer = latch.importer(&actor, existing).await?;
        let file = super::import::spool(body.0).await?;
        let (importer, file) = importer.check_file(file).await?;
        if importer.error_count() > 0 {
            let (errors, count, lines) = (importer.errors().to_vec(), importer.error_count(), importer.lines());
            return Err(Error::ImportRefused { errors, count, lines }.into());
        }
        Ok(ImportResults::Results(NdjsonStream(super::import::results(importer.write_file(file)))))
    }

    /// How many users still have an imported password hash, by scheme (reads every user of the tenant).
    #[oai(path = "/t/:tenant/admin/users/import", method = "get", operation_id = "adminImportedHashes")]
    async fn imported_hashes(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        auth: UserAuth,
    ) -> ApiResult<Json<ImportedHashes>> {
        let actor = Self::admin(&latch, &tenant, &auth).await?;
        let counts = latch.imported_hashes(&actor).await?;
        let total = counts.iter().map(|(_, n)| n).sum();
        Ok(Json(ImportedHashes {
            by_scheme: counts.into_iter().map(|(scheme, n)| (scheme.to_owned(), n)).collect(),
            total,
        }))
    }

    /// The tenant's audit events, newest first.
    #[oai(path = "/t/:tenant/admin/events", method = "get", operation_id = "adminListEvents")]
    async fn events(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        auth: UserAuth,
        /// Page size (1-200, default 50).
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<EventList>> {
        let actor = Self::admin(&latch, &tenant, &auth).await?;
        let page = latch.event_page(&actor, cursor.as_deref(), page_size(limit.0)).await?;
        Ok(Json(EventList { events: page.items.into_iter().map(Into::into).collect(), next_cursor: page.next_cursor }))
    }
}
