//! OAuth 2.0 endpoints: token (RFC 6749 password and refresh_token grants),
//! revocation (RFC 7009) and introspection (RFC 7662). Requests are
//! form-encoded; errors use RFC 6749 §5.2 bodies, not problem+json.

use std::sync::Arc;

use poem::Request;
use poem::web::Data;
use poem_openapi::auth::{Basic, Bearer};
use poem_openapi::param::Path;
use poem_openapi::payload::{Form, Json};
use poem_openapi::{ApiResponse, Object, OpenApi, SecurityScheme};
use serde::Deserialize;

use super::{ApiTags, client_info};
use crate::domain::{Error, Introspection, Latch, SecondFactor, TenantId, TokenPair};

/// OAuth 2.0 token, revocation and introspection endpoints.
pub struct OAuthApi;

/// A token request (RFC 6749 §4.3.2, §6).
#[derive(Debug, Object, Deserialize)]
pub struct TokenRequest {
    /// `password`, `refresh_token`, or `urn:latch:params:oauth:grant-type:mfa-otp`.
    pub grant_type: Option<String>,
    /// The user's email (password grant).
    pub username: Option<String>,
    /// The user's password (password grant).
    #[oai(write_only)]
    pub password: Option<String>,
    /// Space-separated scopes to request (a subset of what the user's roles allow).
    pub scope: Option<String>,
    /// The refresh token (refresh_token grant).
    #[oai(write_only)]
    pub refresh_token: Option<String>,
    /// The `mfa_token` of an `mfa_required` answer (MFA grant).
    #[oai(write_only)]
    pub mfa_token: Option<String>,
    /// A current TOTP code (MFA grant).
    #[oai(write_only)]
    pub otp: Option<String>,
    /// A recovery code instead of `otp` (MFA grant).
    #[oai(write_only)]
    pub recovery_code: Option<String>,
    /// Ignored: latch's clients are public.
    pub client_id: Option<String>,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Object)]
pub struct TokenSuccess {
    /// The access token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u32,
    /// The refresh token (rotated at each use).
    pub refresh_token: String,
    /// Granted scopes.
    pub scope: String,
}

/// An OAuth error (RFC 6749 §5.2).
#[derive(Debug, Object)]
pub struct OAuthError {
    /// `invalid_request`, `invalid_grant`, `unsupported_grant_type`, `invalid_scope`, `invalid_client`, `server_error`.
    pub error: String,
    /// What went wrong.
    pub error_description: Option<String>,
    /// With `mfa_required`: the challenge to complete with the MFA grant.
    #[oai(skip_serializing_if_is_none)]
    pub mfa_token: Option<String>,
}

/// The grant completing a password grant that answered `mfa_required`.
pub const MFA_GRANT: &str = "urn:latch:params:oauth:grant-type:mfa-otp";

const NO_STORE: &str = "no-store";
const NO_CACHE: &str = "no-cache";

/// Token endpoint responses.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "token_bad_request")]
pub enum TokenResponse {
    /// Tokens issued.
    #[oai(status = 200)]
    Ok(Json<TokenSuccess>, #[oai(header = "Cache-Control")] String, #[oai(header = "Pragma")] String),
    /// The request or grant is invalid.
    #[oai(status = 400)]
    BadRequest(Json<OAuthError>, #[oai(header = "Cache-Control")] String),
    /// The password was right and the account has TOTP: `error` is
    /// `mfa_required`; send `mfa_token` and a code with the MFA grant.
    #[oai(status = 403)]
    MfaRequired(Json<OAuthError>, #[oai(header = "Cache-Control")] String),
    /// No such tenant.
    #[oai(status = 404)]
    NotFound(Json<OAuthError>),
    /// The server failed.
    #[oai(status = 503)]
    Unavailable(Json<OAuthError>),
}

fn oauth_error(error: &str, description: impl Into<String>) -> Json<OAuthError> {
    Json(OAuthError { error: error.to_owned(), error_description: Some(description.into()), mfa_token: None })
}

fn token_bad_request(err: poem::Error) -> TokenResponse {
    TokenResponse::BadRequest(oauth_error("invalid_request", err.to_string()), NO_STORE.into())
}

impl TokenResponse {
    fn from_pair(pair: TokenPair) -> TokenResponse {
        use secrecy::ExposeSecret as _;
        let body = TokenSuccess {
            access_token: pair.access_token,
            token_type: "Bearer".into(),
            expires_in: pair.expires_in,
            refresh_token: pair.refresh_token.expose_secret().to_owned(),
            scope: pair.scope,
        };
        TokenResponse::Ok(Json(body), NO_STORE.into(), NO_CACHE.into())
    }

    fn bad(error: &str, description: impl Into<String>) -> TokenResponse {
        TokenResponse::BadRequest(oauth_error(error, description), NO_STORE.into())
    }

    /// RFC 6749 §5.2: each domain failure as an OAuth error.
    fn from_error(error: Error) -> TokenResponse {
        let description = error.to_string();
        match error {
            Error::InvalidCredentials
            | Error::UserDisabled
            | Error::AccountLocked { .. }
            | Error::InvalidRefreshToken
            | Error::RefreshTokenReused
            | Error::SessionEnded
            | Error::InvalidMfaToken
            | Error::InvalidMfaCode
            | Error::EmailNotVerified => TokenResponse::bad("invalid_grant", description),
            Error::MfaRequired { mfa_token } => {
                use secrecy::ExposeSecret as _;
                let mut body = oauth_error("mfa_required", description);
                body.mfa_token = Some(mfa_token.expose_secret().to_owned());
                TokenResponse::MfaRequired(body, NO_STORE.into())
            }
            Error::InvalidScope(_) => TokenResponse::bad("invalid_scope", description),
            Error::InvalidTenantId | Error::InvalidEmail => TokenResponse::bad("invalid_request", description),
            Error::TenantNotFound => TokenResponse::NotFound(oauth_error("invalid_request", description)),
            other => {
                tracing::error!(error = %other, "token endpoint failed");
                TokenResponse::Unavailable(oauth_error("server_error", "the server failed; see its log"))
            }
        }
    }
}

/// A revocation request (RFC 7009 §2.1).
#[derive(Debug, Object, Deserialize)]
pub struct RevokeRequest {
    /// The token to revoke: a refresh or an access token.
    #[oai(write_only)]
    pub token: Option<String>,
    /// `refresh_token` or `access_token`.
    pub token_type_hint: Option<String>,
}

/// Revocation responses.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "revoke_bad_request")]
pub enum RevokeResponse {
    /// Revoked, or the token was unknown (RFC 7009 answers 200 either way).
    #[oai(status = 200)]
    Ok,
    /// The request is invalid.
    #[oai(status = 400)]
    BadRequest(Json<OAuthError>),
    /// No such tenant.
    #[oai(status = 404)]
    NotFound(Json<OAuthError>),
    /// The server failed.
    #[oai(status = 503)]
    Unavailable(Json<OAuthError>),
}

fn revoke_bad_request(err: poem::Error) -> RevokeResponse {
    RevokeResponse::BadRequest(oauth_error("invalid_request", err.to_string()))
}

/// An introspection request (RFC 7662 §2.1).
#[derive(Debug, Object, Deserialize)]
pub struct IntrospectRequest {
    /// The token to inspect.
    #[oai(write_only)]
    pub token: Option<String>,
    /// `access_token` or `refresh_token` (optional; both are tried).
    pub token_type_hint: Option<String>,
}

/// Introspection result (RFC 7662 §2.2); only `active` when inactive.
#[derive(Debug, Object, Default)]
pub struct IntrospectionResult {
    /// Whether the token is live.
    pub active: bool,
    /// `access_token` or `refresh_token`.
    #[oai(skip_serializing_if_is_none)]
    pub token_type: Option<String>,
    /// Scopes.
    #[oai(skip_serializing_if_is_none)]
    pub scope: Option<String>,
    /// The user's email.
    #[oai(skip_serializing_if_is_none)]
    pub username: Option<String>,
    /// The user id.
    #[oai(skip_serializing_if_is_none)]
    pub sub: Option<String>,
    /// Issuer.
    #[oai(skip_serializing_if_is_none)]
    pub iss: Option<String>,
    /// Audience (access tokens).
    #[oai(skip_serializing_if_is_none)]
    pub aud: Option<String>,
    /// Expiry.
    #[oai(skip_serializing_if_is_none)]
    pub exp: Option<i64>,
    /// Issued at.
    #[oai(skip_serializing_if_is_none)]
    pub iat: Option<i64>,
    /// Not before.
    #[oai(skip_serializing_if_is_none)]
    pub nbf: Option<i64>,
    /// Token id (access tokens).
    #[oai(skip_serializing_if_is_none)]
    pub jti: Option<String>,
    /// Tenant id.
    #[oai(skip_serializing_if_is_none)]
    pub tid: Option<String>,
    /// Session id.
    #[oai(skip_serializing_if_is_none)]
    pub sid: Option<String>,
    /// Roles.
    #[oai(skip_serializing_if_is_none)]
    pub roles: Option<Vec<String>>,
}

/// The tenant's introspection secret (or the operator token) as a bearer token.
#[derive(SecurityScheme)]
#[oai(ty = "bearer")]
pub struct IntrospectionBearer(Bearer);

/// The tenant's introspection secret as the Basic password (any username).
#[derive(SecurityScheme)]
#[oai(ty = "basic")]
pub struct IntrospectionBasic(Basic);

/// How an introspection caller authenticates.
#[derive(SecurityScheme)]
pub enum IntrospectionAuth {
    /// Bearer.
    Bearer(IntrospectionBearer),
    /// Basic.
    Basic(IntrospectionBasic),
    /// No credential: answered 401 `invalid_client`.
    #[oai(fallback)]
    Missing,
}

/// Introspection responses.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "introspect_bad_request")]
pub enum IntrospectResponse {
    /// The result.
    #[oai(status = 200)]
    Ok(Json<Box<IntrospectionResult>>, #[oai(header = "Cache-Control")] String),
    /// The request is invalid.
    #[oai(status = 400)]
    BadRequest(Json<OAuthError>),
    /// Missing or wrong credential.
    #[oai(status = 401)]
    Unauthorized(Json<OAuthError>, #[oai(header = "WWW-Authenticate")] String),
    /// No such tenant.
    #[oai(status = 404)]
    NotFound(Json<OAuthError>),
    /// The server failed.
    #[oai(status = 503)]
    Unavailable(Json<OAuthError>),
}

fn introspect_bad_request(err: poem::Error) -> IntrospectResponse {
    IntrospectResponse::BadRequest(oauth_error("invalid_request", err.to_string()))
}

fn parse_tenant(raw: &str) -> Result<TenantId, Json<OAuthError>> {
    TenantId::parse(raw).map_err(|e| oauth_error("invalid_request", e.to_string()))
}

#[OpenApi(tag = "ApiTags::OAuth")]
impl OAuthApi {
    /// Token endpoint: `grant_type=password` (username = email), `refresh_token`,
    /// or `urn:latch:params:oauth:grant-type:mfa-otp` (`mfa_token` from a 403
    /// `mfa_required` answer, with `otp` or `recovery_code`).
    #[oai(path = "/t/:tenant/oauth/token", method = "post", operation_id = "oauthToken")]
    async fn token(
        &self,
        latch: Data<&Arc<Latch>>,
        req: &Request,
        tenant: Path<String>,
        body: Form<TokenRequest>,
    ) -> TokenResponse {
        let tenant = match parse_tenant(&tenant) {
            Ok(tenant) => tenant,
            Err(error) => return TokenResponse::BadRequest(error, NO_STORE.into()),
        };
        let Form(body) = body;
        let client = client_info(req);
        let result = match body.grant_type.as_deref() {
            Some("password") => {
                let (Some(username), Some(password)) = (body.username, body.password) else {
                    return TokenResponse::bad("invalid_request", "the password grant needs username and password");
                };
                latch.login(&tenant, &username, &password, body.scope.as_deref(), client).await
            }
            Some("refresh_token") => {
                let Some(refresh_token) = body.refresh_token else {
                    return TokenResponse::bad("invalid_request", "the refresh_token grant needs refresh_token");
                };
                if body.scope.is_some() {
                    return TokenResponse::bad("invalid_scope", "a refresh keeps the scopes granted at login");
                }
                latch.refresh(&tenant, &refresh_token, &client).await
            }
            Some(MFA_GRANT) => {
                let Some(mfa_token) = body.mfa_token else {
                    return TokenResponse::bad(
                        "invalid_request",
                        "the MFA grant needs mfa_token and otp or recovery_code",
                    );
                };
                let Some(factor) = SecondFactor::one_of(body.otp, body.recovery_code) else {
                    return TokenResponse::bad("invalid_request", "give exactly one of otp and recovery_code");
                };
                latch.complete_mfa(&tenant, &mfa_token, factor, client).await
            }
            Some(other) => {
                return TokenResponse::bad("unsupported_grant_type", format!("grant_type `{other}` is not supported"));
            }
            None => return TokenResponse::bad("invalid_request", "grant_type is required"),
        };
        match result {
            Ok(pair) => TokenResponse::from_pair(pair),
            Err(error) => TokenResponse::from_error(error),
        }
    }

    /// Revoke a refresh or access token (its whole session). Unknown tokens are not an error.
    #[oai(path = "/t/:tenant/oauth/revoke", method = "post", operation_id = "oauthRevoke")]
    async fn revoke(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        body: Form<RevokeRequest>,
    ) -> RevokeResponse {
        let tenant = match parse_tenant(&tenant) {
            Ok(tenant) => tenant,
            Err(error) => return RevokeResponse::BadRequest(error),
        };
        let Some(token) = body.0.token.filter(|t| !t.is_empty()) else {
            return RevokeResponse::BadRequest(oauth_error("invalid_request", "token is required"));
        };
        match latch.revoke_token(&tenant, &token, body.0.token_type_hint.as_deref()).await {
            Ok(()) => RevokeResponse::Ok,
            Err(Error::TenantNotFound) => RevokeResponse::NotFound(oauth_error("invalid_request", "no such tenant")),
            Err(error) => {
                tracing::error!(error = %error, "revocation failed");
                RevokeResponse::Unavailable(oauth_error("server_error", "the server failed; see its log"))
            }
        }
    }

    /// Introspect a token. Callers authenticate with the tenant's introspection
    /// secret (bearer, or as the Basic password) or the operator token.
    #[oai(path = "/t/:tenant/oauth/introspect", method = "post", operation_id = "oauthIntrospect")]
    async fn introspect(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        auth: IntrospectionAuth,
        body: Form<IntrospectRequest>,
    ) -> IntrospectResponse {
        let tenant = match parse_tenant(&tenant) {
            Ok(tenant) => tenant,
            Err(error) => return IntrospectResponse::BadRequest(error),
        };
        let credential = match &auth {
            IntrospectionAuth::Bearer(bearer) => Some(bearer.0.token.as_str()),
            IntrospectionAuth::Basic(basic) => Some(basic.0.password.as_str()),
            IntrospectionAuth::Missing => None,
        };
        let checked = match credential {
            Some(credential) => latch.check_introspector(&tenant, credential).await,
            None => Err(Error::NotIntrospector),
        };
        match checked {
            Ok(()) => {}
            Err(Error::TenantNotFound) => {
                return IntrospectResponse::NotFound(oauth_error("invalid_request", "no such tenant"));
            }
            Err(_) => {
                let challenge = format!("Basic realm=\"latch/{tenant}\"");
                return IntrospectResponse::Unauthorized(
                    oauth_error("invalid_client", Error::NotIntrospector.to_string()),
                    challenge,
                );
            }
        }
        let Some(token) = body.0.token.filter(|t| !t.is_empty()) else {
            return IntrospectResponse::BadRequest(oauth_error("invalid_request", "token is required"));
        };
        let result = match latch.introspect(&tenant, &token).await {
            Ok(Introspection::Access { principal, scope }) => {
                let principal = *principal;
                let claims = principal.claims;
                let aud = match claims.aud {
                    latch_shared::Audience::One(aud) => aud,
                    latch_shared::Audience::Many(auds) => auds.join(" "),
                };
                IntrospectionResult {
                    active: true,
                    token_type: Some("access_token".into()),
                    // The user's roles and the session's scope as they stand
                    // now, not as the token froze them at issue.
                    scope: Some(scope),
                    username: Some(principal.user.email),
                    sub: Some(claims.sub),
                    iss: Some(claims.iss),
                    aud: Some(aud),
                    exp: Some(claims.exp),
                    iat: Some(claims.iat),
                    nbf: Some(claims.nbf),
                    jti: Some(claims.jti),
                    tid: Some(claims.tid),
                    sid: Some(claims.sid),
                    roles: Some(principal.user.roles),
                }
            }
            Ok(Introspection::Refresh { session, user, scope }) => IntrospectionResult {
                active: true,
                token_type: Some("refresh_token".into()),
                scope: Some(scope),
                username: Some(user.email),
                sub: Some(user.id.to_string()),
                iss: Some(latch.issuer(&tenant)),
                exp: Some(session.expires_at),
                iat: Some(session.last_used_at),
                tid: Some(tenant.to_string()),
                sid: Some(session.id.to_string()),
                roles: Some(user.roles),
                ..IntrospectionResult::default()
            },
            Ok(Introspection::Inactive) => IntrospectionResult::default(),
            Err(error) => {
                tracing::error!(error = %error, "introspection failed");
                return IntrospectResponse::Unavailable(oauth_error("server_error", "the server failed; see its log"));
            }
        };
        IntrospectResponse::Ok(Json(Box::new(result)), NO_STORE.into())
    }
}
