//! Operator API: tenants. Guarded by the operator token.

use std::collections::BTreeMap;
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::models::{NewTenantAlgorithm, SigningAlgorithm};
use super::{ApiResult, ApiTags, NoContent, OperatorToken, tenant_id};
use crate::clock::rfc3339;
use crate::domain::{
    DEFAULT_PUBLISH_DELAY_SECONDS, Error, Latch, NewTenant, TenantChanges, TenantId, effective_audience,
};
use crate::store::TenantRecord;

/// Tenant management for the operator.
pub struct TenantsApi;

/// Declares a tenant request body: its own leading fields, then every tenant
/// setting as an optional field. One list for creation and updates, so they
/// cannot drift apart (poem-openapi cannot flatten into a body that refuses
/// unknown fields). The settings reach the domain through their serde names
/// (`changes`), the same path the CLI's `--set` takes; a test checks that
/// every stored setting is listed here.
macro_rules! tenant_request {
    ($(#[$attr:meta])* $name:ident { $($(#[$field_attr:meta])* $field:ident: $ty:ty,)* }) => {
        $(#[$attr])*
        #[derive(Debug, Object, serde::Serialize)]
        #[oai(deny_unknown_fields)]
        pub struct $name {
            $($(#[$field_attr])* #[serde(skip)] pub $field: $ty,)*
            /// Display name (on creation, defaults to the id).
            #[oai(nullable)]
            pub name: Option<String>,
            /// Access-token lifetime in seconds (60-86400, default 900); changes apply to new tokens.
            #[oai(nullable)]
            pub access_token_ttl: Option<u32>,
            /// Refresh-token lifetime in seconds (300-31622400, default 30 days), renewed at each rotation.
            #[oai(nullable)]
            pub refresh_token_ttl: Option<u32>,
            /// The `aud` of access tokens (default: the tenant id). After a change the server
            /// refuses tokens with the old audience.
            #[oai(nullable)]
            pub audience: Option<String>,
            /// Minimum password length (8-256, default 10), for new passwords.
            #[oai(nullable)]
            pub password_min_length: Option<u32>,
            /// Put the user's email into access tokens (default false).
            #[oai(nullable)]
            pub email_claim: Option<bool>,
            /// Seconds a just-rotated refresh token may be presented again (0-300, default 10).
            #[oai(nullable)]
            pub refresh_grace_seconds: Option<u32>,
            /// Rotate the signing key automatically every N days (default 0: never).
            #[oai(nullable)]
            pub key_rotation_days: Option<u32>,
            /// Browser origins (`https://app.example`, `http://localhost:5173`) allowed by CORS (default none).
            #[oai(nullable)]
            pub cors_allowed_origins: Option<Vec<String>>,
            /// Roles and the scopes each grants, the whole map (default `user`: openid profile
            /// email; `admin`: the same plus `admin`). `admin` must be defined.
            #[oai(nullable)]
            pub roles: Option<BTreeMap<String, Vec<String>>>,
            /// Roles new users get (default `["user"]`); each must be defined.
            #[oai(nullable)]
            pub default_roles: Option<Vec<String>>,
            /// Audit events kept (10-1000000, default 10000); the oldest are dropped beyond it.
            #[oai(nullable)]
            pub audit_retention: Option<u32>,
            /// Failed logins in a row that lock an account (0-100, default 5; 0: never).
            #[oai(nullable)]
            pub lockout_threshold: Option<u32>,
            /// First lock length in seconds (1-86400, default 30); each further failure doubles it.
            #[oai(nullable)]
            pub lockout_base_seconds: Option<u32>,
            /// Longest lock in seconds (up to 604800, default 3600).
            #[oai(nullable)]
            pub lockout_max_seconds: Option<u32>,
            /// Email verification of new accounts (default `off`).
            #[oai(nullable)]
            pub email_verification: Option<EmailVerificationMode>,
            /// The app's page that password-reset links open, an http(s) URL; `tenant` and
            /// `token` are added to its query (default empty: latch's `/demo/reset-password`).
            #[oai(nullable)]
            pub reset_password_url: Option<String>,
            /// The app's page that email-verification links open, likewise
            /// (default empty: latch's `/demo/verify-email`).
            #[oai(nullable)]
            pub verify_email_url: Option<String>,
            /// `open` (default): anyone may register; `closed`: registration answers
            /// 403 `registration_closed` and users come from the admin API or CLI.
            #[oai(nullable)]
            pub registration: Option<RegistrationMode>,
        }

        impl $name {
            /// The name and settings as domain changes, through their serde names.
            fn changes(&self) -> ApiResult<TenantChanges> {
                let object = match serde_json::to_value(self) {
                    Ok(serde_json::Value::Object(object)) => object,
                    _ => return Err(Error::Internal("a tenant request does not serialize".into()).into()),
                };
                Ok(TenantChanges::from_json(object)?)
            }
        }
    };
}

tenant_request! {
    /// A tenant to create. Settings left out take their defaults; unknown fields are refused.
    CreateTenantRequest {
        /// Slug: 1-63 characters of a-z, 0-9 and '-'.
        id: String,
        /// Signing algorithm (default EdDSA). HS256 is not offered: its
        /// secret could not be published, so no one could verify the tokens.
        algorithm: Option<NewTenantAlgorithm>,
    }
}

tenant_request! {
    /// Changes to a tenant; fields left out keep their value, unknown fields are refused.
    UpdateTenantRequest {}
}

// Spelled as the stored setting serializes: requests and views convert through serde.
/// Email verification of new accounts.
#[derive(Debug, Clone, Copy, poem_openapi::Enum, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum EmailVerificationMode {
    /// No verification mail.
    Off,
    /// A verification mail on registration; unverified accounts log in.
    Optional,
    /// A verification mail on registration; registration answers 202 without
    /// tokens and unverified accounts may not log in (403 `email_not_verified`).
    Required,
}

// Spelled as the stored setting serializes: requests and views convert through serde.
/// Who creates accounts.
#[derive(Debug, Clone, Copy, poem_openapi::Enum, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum RegistrationMode {
    /// Anyone may register.
    Open,
    /// Registration answers 403 `registration_closed`; admins create or invite users.
    Closed,
}

// Read from the stored settings through their serde names (`view`).
/// A tenant's settings.
#[derive(Debug, Object, serde::Deserialize)]
pub struct TenantSettingsView {
    /// Access-token lifetime in seconds.
    pub access_token_ttl: u32,
    /// Refresh-token lifetime in seconds.
    pub refresh_token_ttl: u32,
    /// The `aud` of access tokens.
    pub audience: String,
    /// Minimum password length.
    pub password_min_length: u32,
    /// Roles new users get.
    pub default_roles: Vec<String>,
    /// Roles and the scopes each grants.
    pub roles: BTreeMap<String, Vec<String>>,
    /// Audit events kept.
    pub audit_retention: u32,
    /// Failed logins in a row that lock an account (0: never).
    pub lockout_threshold: u32,
    /// First lock length in seconds.
    pub lockout_base_seconds: u32,
    /// Longest lock in seconds.
    pub lockout_max_seconds: u32,
    /// Whether access tokens carry `email`.
    pub email_claim: bool,
    /// Browser origins allowed by CORS.
    pub cors_allowed_origins: Vec<String>,
    /// Refresh grace window in seconds.
    pub refresh_grace_seconds: u32,
    /// Automatic key rotation interval in days (0: never).
    pub key_rotation_days: u32,
    /// Email verification of new accounts.
    pub email_verification: EmailVerificationMode,
    /// The app's password-reset page (empty: latch's demo page).
    pub reset_password_url: String,
    /// The app's email-verification page (empty: latch's demo page).
    pub verify_email_url: String,
    /// Open or closed self-registration.
    pub registration: RegistrationMode,
}

/// A tenant.
#[derive(Debug, Object)]
pub struct Tenant {
    /// Slug.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Signing algorithm.
    pub algorithm: SigningAlgorithm,
    /// `{public_url}/t/{id}`.
    pub issuer: String,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// Settings.
    pub settings: TenantSettingsView,
}

/// All tenants.
#[derive(Debug, Object)]
pub struct TenantList {
    /// Tenants, by id.
    pub tenants: Vec<Tenant>,
}

/// Key rotation options; unknown fields are refused.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct RotateKeyRequest {
    /// Seconds the new key is published in the JWKS before it signs (default
    /// 300, the JWKS max-age, so cached JWKS hold it before any token it
    /// signs; 0 signs at once, for verifiers that do not cache the JWKS).
    #[oai(nullable)]
    pub publish_delay_seconds: Option<u32>,
}

/// A signing key (public facts only).
#[derive(Debug, Object)]
pub struct SigningKeyInfo {
    /// Key id.
    pub kid: String,
    /// Algorithm.
    pub algorithm: SigningAlgorithm,
    /// Created, RFC 3339.
    pub created_at: String,
    /// Signs from, RFC 3339.
    pub active_from: String,
    /// Stopped signing at, RFC 3339.
    #[oai(nullable)]
    pub retired_at: Option<String>,
}

/// A tenant's keys.
#[derive(Debug, Object)]
pub struct SigningKeyList {
    /// Oldest first; retired keys stay until their tokens have expired.
    pub keys: Vec<SigningKeyInfo>,
}

/// A new introspection secret, shown once.
#[derive(Debug, Object)]
pub struct IntrospectionSecret {
    /// Send it as a bearer token, or as the Basic password, to `/t/{tenant}/oauth/introspect`.
    pub secret: String,
}

/// Key rotated.
#[derive(ApiResponse)]
pub enum Rotated {
    /// The new key.
    #[oai(status = 201)]
    Created(Json<SigningKeyInfo>),
}

/// Secret created.
#[derive(ApiResponse)]
pub enum SecretCreated {
    /// The secret.
    #[oai(status = 201)]
    Created(Json<IntrospectionSecret>),
}

fn key_info(key: crate::store::KeyRecord) -> SigningKeyInfo {
    SigningKeyInfo {
        kid: key.kid,
        algorithm: key.algorithm.into(),
        created_at: rfc3339(key.created_at),
        active_from: rfc3339(key.active_from),
        retired_at: key.retired_at.map(rfc3339),
    }
}

/// A backup file.
#[derive(ApiResponse)]
pub enum BackupFile {
    /// A consistent snapshot of the whole store, one JSON record per line
    /// with a checksummed trailer; restore it with `latch restore FILE --data-dir DIR`
    /// (and the same master key file).
    #[oai(status = 200, content_type = "application/x-ndjson")]
    Snapshot(
        Binary<Vec<u8>>,
        /// `attachment; filename="latch-backup-{time}.ndjson"`.
        #[oai(header = "Content-Disposition")]
        String,
        /// How many records the file holds.
        #[oai(header = "X-Latch-Backup-Records")]
        u64,
    ),
}

/// Tenant created.
#[derive(ApiResponse)]
pub enum Created {
    /// The new tenant.
    #[oai(status = 201)]
    Created(Json<Tenant>),
}

fn view(latch: &Latch, tenant: TenantRecord) -> ApiResult<Tenant> {
    let unreadable = |e: serde_json::Error| Error::Internal(format!("tenant settings do not fit the view: {e}"));
    let mut settings: TenantSettingsView =
        serde_json::to_value(&tenant.settings).and_then(serde_json::from_value).map_err(unreadable)?;
    settings.audience = effective_audience(&tenant.id, &tenant.settings);
    Ok(Tenant {
        issuer: latch.issuer(&tenant.id),
        id: tenant.id.to_string(),
        name: tenant.name,
        algorithm: tenant.algorithm.into(),
        created_at: rfc3339(tenant.created_at),
        settings,
    })
}

#[OpenApi(tag = "ApiTags::Tenants")]
impl TenantsApi {
    /// Create a tenant with its own issuer and signing key.
    #[oai(path = "/admin/tenants", method = "post", operation_id = "createTenant")]
    async fn create(
        &self,
        latch: Data<&Arc<Latch>>,
        auth: OperatorToken,
        body: Json<CreateTenantRequest>,
    ) -> ApiResult<Created> {
        let operator = latch.operator(&auth.0.token)?;
        let new = NewTenant {
            id: TenantId::parse(&body.id)?,
            algorithm: body.algorithm.map(Into::into),
            settings: body.changes()?,
        };
        let tenant = latch.create_tenant(&operator, new).await?;
        Ok(Created::Created(Json(view(&latch, tenant)?)))
    }

    /// List tenants.
    #[oai(path = "/admin/tenants", method = "get", operation_id = "listTenants")]
    async fn list(&self, latch: Data<&Arc<Latch>>, auth: OperatorToken) -> ApiResult<Json<TenantList>> {
        let operator = latch.operator(&auth.0.token)?;
        let tenants =
            latch.list_tenants(&operator).await?.into_iter().map(|t| view(&latch, t)).collect::<ApiResult<_>>()?;
        Ok(Json(TenantList { tenants }))
    }

    /// One tenant.
    #[oai(path = "/admin/tenants/:tenant", method = "get", operation_id = "getTenant")]
    async fn get(
        &self,
        latch: Data<&Arc<Latch>>,
        auth: OperatorToken,
        tenant: Path<String>,
    ) -> ApiResult<Json<Tenant>> {
        let operator = latch.operator(&auth.0.token)?;
        let tenant = latch.tenant(&operator, &tenant_id(&tenant)?).await?;
        Ok(Json(view(&latch, tenant)?))
    }

    /// Change a tenant's name or settings.
    #[oai(path = "/admin/tenants/:tenant", method = "patch", operation_id = "updateTenant")]
    async fn update(
        &self,
        latch: Data<&Arc<Latch>>,
        auth: OperatorToken,
        tenant: Path<String>,
        body: Json<UpdateTenantRequest>,
    ) -> ApiResult<Json<Tenant>> {
        let operator = latch.operator(&auth.0.token)?;
        let tenant = latch.update_tenant(&operator, &tenant_id(&tenant)?, body.changes()?).await?;
        Ok(Json(view(&latch, tenant)?))
    }

    /// Rotate the tenant's signing key.
    ///
    /// The body is optional: without one the new key is published 300 s
    /// before it signs.
    #[oai(path = "/admin/tenants/:tenant/keys/rotate", method = "post", operation_id = "rotateTenantKey")]
    async fn rotate_key(
        &self,
        latch: Data<&Arc<Latch>>,
        auth: OperatorToken,
        tenant: Path<String>,
        body: Json<RotateKeyRequest>,
    ) -> ApiResult<Rotated> {
        let operator = latch.operator(&auth.0.token)?;
        let delay = body.0.publish_delay_seconds.unwrap_or(DEFAULT_PUBLISH_DELAY_SECONDS);
        let key = latch.rotate_signing_key(&operator, &tenant_id(&tenant)?, delay).await?;
        Ok(Rotated::Created(Json(key_info(key))))
    }

    /// The tenant's signing keys (public facts only).
    #[oai(path = "/admin/tenants/:tenant/keys", method = "get", operation_id = "listTenantKeys")]
    async fn keys(
        &self,
        latch: Data<&Arc<Latch>>,
        auth: OperatorToken,
        tenant: Path<String>,
    ) -> ApiResult<Json<SigningKeyList>> {
        let operator = latch.operator(&auth.0.token)?;
        let keys = latch.keys(&operator, &tenant_id(&tenant)?).await?.into_iter().map(key_info).collect();
        Ok(Json(SigningKeyList { keys }))
    }

    /// Create or replace the tenant's introspection secret (shown once).
    #[oai(
        path = "/admin/tenants/:tenant/introspection-secret",
        method = "post",
        operation_id = "createIntrospectionSecret"
    )]
    async fn introspection_secret(
        &self,
        latch: Data<&Arc<Latch>>,
        auth: OperatorToken,
        tenant: Path<String>,
    ) -> ApiResult<SecretCreated> {
        use secrecy::ExposeSecret as _;
        let operator = latch.operator(&auth.0.token)?;
        let secret = latch.new_introspection_secret(&operator, &tenant_id(&tenant)?).await?;
        Ok(SecretCreated::Created(Json(IntrospectionSecret { secret: secret.expose_secret().to_owned() })))
    }

    /// Download a consistent backup of the whole store, taken online (store
    /// calls wait while the records are copied).
    #[oai(path = "/admin/backup", method = "get", operation_id = "backup")]
    async fn backup(&self, latch: Data<&Arc<Latch>>, auth: OperatorToken) -> ApiResult<BackupFile> {
        let operator = latch.operator(&auth.0.token)?;
        let (file, records) = latch.backup(&operator).await?;
        let name = format!("attachment; filename=\"latch-backup-{}.ndjson\"", latch.now());
        Ok(BackupFile::Snapshot(Binary(file), name, records))
    }

    /// Delete a tenant with all its users, sessions and keys.
    #[oai(path = "/admin/tenants/:tenant", method = "delete", operation_id = "deleteTenant")]
    async fn delete(
        &self,
        latch: Data<&Arc<Latch>>,
        auth: OperatorToken,
        tenant: Path<String>,
    ) -> ApiResult<NoContent> {
        let operator = latch.operator(&auth.0.token)?;
        latch.delete_tenant(&operator, &tenant_id(&tenant)?).await?;
        Ok(NoContent::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::properties;
    use super::*;
    use crate::domain::setting_names;

    /// A setting added to the stored record but not to the request bodies or
    /// the view would be settable nowhere, or invisible.
    #[test]
    fn every_stored_setting_is_in_the_request_and_view_schemas() {
        super::super::tests::assert_schemas_list(
            &setting_names(),
            &[
                ("CreateTenantRequest", properties::<CreateTenantRequest>()),
                ("UpdateTenantRequest", properties::<UpdateTenantRequest>()),
                ("TenantSettingsView", properties::<TenantSettingsView>()),
            ],
        );
    }

    /// The request's fields reach the domain by name: each one set in a body
    /// appears in the changes the domain applies.
    #[test]
    fn a_request_body_becomes_changes_through_serde_names() {
        let body: UpdateTenantRequest = poem_openapi::types::ParseFromJSON::parse_from_json(Some(serde_json::json!({
            "name": "Acme",
            "access_token_ttl": 600,
            "registration": "closed",
            "email_verification": "optional",
        })))
        .expect("valid body");
        let mut tenant = TenantRecord {
            id: TenantId::parse("acme").expect("valid id"),
            name: "acme".into(),
            algorithm: latch_shared::Algorithm::EdDSA,
            created_at: 0,
            settings: crate::store::TenantSettings::default(),
            introspection_secret_sha256: None,
        };
        body.changes().expect("changes").apply_for_test(&mut tenant).expect("valid");
        assert_eq!(tenant.name, "Acme");
        assert_eq!(tenant.settings.access_token_ttl, 600);
        assert_eq!(tenant.settings.registration, crate::store::Registration::Closed);
        assert_eq!(tenant.settings.email_verification, crate::store::EmailVerification::Optional);
    }
}
