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
use crate::domain::{ClientCredentials, ClientToken, Error, Introspection, Latch, SecondFactor, TenantId, TokenPair};

/// OAuth 2.0 token, revocation and introspection endpoints.
pub struct OAuthApi;

/// A token request (RFC 6749 §4.1.3, §4.3.2, §6; RFC 7636 §4.5).
#[derive(Debug, Object, Deserialize)]
pub struct TokenRequest {
    /// `authorization_code`, `refresh_token`, `password` (legacy), or
    /// `urn:latch:params:oauth:grant-type:mfa-otp`.
    #[oai(validator(min_length = 1))]
    pub grant_type: String,
    /// The authorization code (authorization_code grant).
    #[oai(write_only)]
    #[oai(nullable)]
    pub code: Option<String>,
    /// The redirect URI of the authorization request (authorization_code grant).
    #[oai(nullable)]
    pub redirect_uri: Option<String>,
    /// The PKCE verifier (authorization_code grant).
    #[oai(write_only)]
    #[oai(nullable)]
    pub code_verifier: Option<String>,
    /// The user's email (password grant).
    #[oai(nullable)]
    pub username: Option<String>,
    /// The user's password (password grant).
    #[oai(write_only)]
    #[oai(nullable)]
    pub password: Option<String>,
    /// Space-separated scopes to request (a subset of what the user's roles allow).
    #[oai(nullable)]
    pub scope: Option<String>,
    /// The refresh token (refresh_token grant).
    #[oai(write_only)]
    #[oai(nullable)]
    pub refresh_token: Option<String>,
    /// The `mfa_token` of an `mfa_required` answer (MFA grant).
    #[oai(write_only)]
    #[oai(nullable)]
    pub mfa_token: Option<String>,
    /// A current TOTP code (MFA grant).
    #[oai(write_only)]
    #[oai(nullable)]
    pub otp: Option<String>,
    /// A recovery code instead of `otp` (MFA grant).
    #[oai(write_only)]
    #[oai(nullable)]
    pub recovery_code: Option<String>,
    /// The client (`client_secret_post`, or a public client); with Basic
    /// authentication (`client_secret_basic`) it may be left out.
    #[oai(nullable)]
    pub client_id: Option<String>,
    /// A confidential client's secret (`client_secret_post`).
    #[oai(write_only)]
    #[oai(nullable)]
    pub client_secret: Option<String>,
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
    /// The refresh token (rotated at each use); none for `client_credentials`.
    #[oai(skip_serializing_if_is_none)]
    pub refresh_token: Option<String>,
    /// Granted scopes.
    pub scope: String,
    /// With the `openid` scope, for a client: the ID token (OpenID Connect Core §3.1.3.3).
    #[oai(skip_serializing_if_is_none)]
    pub id_token: Option<String>,
}

/// An OAuth error (RFC 6749 §5.2).
#[derive(Debug, Object)]
pub struct OAuthError {
    /// `invalid_request`, `invalid_grant`, `unsupported_grant_type`, `invalid_scope`, `invalid_client`, `server_error`.
    pub error: String,
    /// What went wrong.
    #[oai(nullable)]
    pub error_description: Option<String>,
    /// With `mfa_required`: the challenge to complete with the MFA grant.
    #[oai(skip_serializing_if_is_none)]
    pub mfa_token: Option<String>,
}

/// The grant completing a password grant that answered `mfa_required`.
pub const MFA_GRANT: &str = "urn:latch:params:oauth:grant-type:mfa-otp";

/// The grants the token endpoint serves: discovery lists them and the
/// OpenAPI document states them as `grant_type`'s values (the field stays a
/// string, so another value gets RFC 6749's `unsupported_grant_type`).
pub const SUPPORTED_GRANTS: [&str; 5] =
    ["authorization_code", "refresh_token", "client_credentials", "password", MFA_GRANT];

const NO_STORE: &str = "no-store";
const NO_CACHE: &str = "no-cache";

/// Why an OAuth endpoint refuses a request: the status and RFC 6749 §5.2
/// body. Every domain failure becomes one of these in `From<Error>`, the one
/// mapping the token, revocation and introspection endpoints share.
#[derive(Debug)]
pub enum OAuthFailure {
    /// 400: `invalid_request`, `invalid_grant`, `invalid_scope`, `unsupported_grant_type`.
    BadRequest(Json<OAuthError>),
    /// 401: `invalid_client`.
    InvalidClient(Json<OAuthError>),
    /// 403: `mfa_required`, with the challenge in the body.
    MfaRequired(Json<OAuthError>),
    /// 404: no such tenant.
    TenantNotFound(Json<OAuthError>),
    /// 429: too many attempts from this client; retry after the seconds given.
    RateLimited(Json<OAuthError>, u64),
    /// 503: the server failed (the log has the detail).
    Unavailable(Json<OAuthError>),
}

impl OAuthFailure {
    /// A 400 with the given code.
    pub fn bad(error: &str, description: impl Into<String>) -> OAuthFailure {
        OAuthFailure::BadRequest(oauth_error(error, description))
    }

    /// A 400 `invalid_request` for a parameter the request lacks.
    fn missing(description: &str) -> OAuthFailure {
        OAuthFailure::bad("invalid_request", description)
    }
}

impl From<Error> for OAuthFailure {
    /// One exhaustive match, like `ApiError::problem`: a new domain error
    /// does not compile until it has its OAuth answer.
    fn from(error: Error) -> OAuthFailure {
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
            | Error::EmailNotVerified
            | Error::InvalidGrant(_)
            | Error::AuthorizationCodeReused => OAuthFailure::bad("invalid_grant", description),
            Error::UnauthorizedClient(_) => OAuthFailure::bad("unauthorized_client", description),
            Error::MfaRequired { mfa_token } => {
                use secrecy::ExposeSecret as _;
                let mut body = oauth_error("mfa_required", description);
                body.mfa_token = Some(mfa_token.expose_secret().to_owned());
                OAuthFailure::MfaRequired(body)
            }
            Error::InvalidScope(_) => OAuthFailure::bad("invalid_scope", description),
            Error::NotIntrospector | Error::NotOperator | Error::InvalidClient => {
                OAuthFailure::InvalidClient(oauth_error("invalid_client", description))
            }
            Error::TenantNotFound => OAuthFailure::TenantNotFound(oauth_error("invalid_request", description)),
            Error::RateLimited { retry_after } => {
                OAuthFailure::RateLimited(oauth_error("rate_limited", description), retry_after)
            }
            // Input these endpoints take, or failures of operations they do
            // not call: all a malformed request as far as OAuth is concerned.
            Error::InvalidTenantId
            | Error::InvalidEmail
            | Error::InvalidToken(_)
            | Error::InvalidSetting(_)
            | Error::InvalidName
            | Error::WeakPassword(_)
            | Error::TenantExists
            | Error::EmailTaken
            | Error::RegistrationClosed
            | Error::Forbidden(_)
            | Error::UserNotFound
            | Error::UnknownRole(_)
            | Error::ImportRefused { .. }
            | Error::ImportUnreadable(_)
            | Error::SessionNotFound
            | Error::InvalidResetToken
            | Error::InvalidVerificationToken
            | Error::InvalidCursor
            | Error::MfaAlreadyEnabled
            | Error::MfaNotPending
            | Error::MfaNotEnabled
            | Error::CurrentPasswordWrong
            | Error::ClientExists
            | Error::PublicClientHasNoSecret
            | Error::InsufficientScope(_) => OAuthFailure::bad("invalid_request", description),
            // A client that the request names but the tenant does not have.
            Error::ClientNotFound => OAuthFailure::InvalidClient(oauth_error("invalid_client", description)),
            Error::KeyUnavailable | Error::Internal(_) | Error::Store(_) => {
                tracing::error!(error = %description, "OAuth endpoint failed");
                OAuthFailure::Unavailable(oauth_error("server_error", "the server failed; see its log"))
            }
        }
    }
}

impl From<crate::ids::InvalidTenantId> for OAuthFailure {
    fn from(invalid: crate::ids::InvalidTenantId) -> OAuthFailure {
        Error::from(invalid).into()
    }
}

/// Declares an OAuth endpoint's responses: its success variant, then the
/// failures of [`OAuthFailure`], each a variant with its status, and the
/// conversion from a failure. Parse failures of the form are `invalid_request`.
macro_rules! oauth_response {
    ($(#[$attr:meta])* $name:ident { $(#[$ok_attr:meta])* $ok:ident $(($($(#[$field_attr:meta])* $ok_field:ty),* $(,)?))?, }) => {
        $(#[$attr])*
        #[derive(ApiResponse)]
        #[oai(bad_request_handler = "bad_request")]
        pub enum $name {
            $(#[$ok_attr])*
            #[oai(status = 200)]
            $ok $(($($(#[$field_attr])* $ok_field),*))?,
            /// The request or grant is invalid: `invalid_request`, `invalid_grant`,
            /// `invalid_scope` or `unsupported_grant_type`.
            #[oai(status = 400)]
            BadRequest(Json<OAuthError>, #[oai(header = "Cache-Control")] String),
            /// Missing or wrong client credential: `invalid_client`.
            #[oai(status = 401)]
            Unauthorized(Json<OAuthError>, #[oai(header = "WWW-Authenticate")] String),
            /// Token endpoint: the password was right and the account has TOTP:
            /// `error` is `mfa_required`; send `mfa_token` and a code with the MFA grant.
            #[oai(status = 403)]
            MfaRequired(Json<OAuthError>, #[oai(header = "Cache-Control")] String),
            /// No such tenant.
            #[oai(status = 404)]
            NotFound(Json<OAuthError>),
            /// Too many attempts from this client: `rate_limited`.
            #[oai(status = 429)]
            TooManyRequests(Json<OAuthError>, #[oai(header = "Retry-After")] u64),
            /// The server failed: `server_error`.
            #[oai(status = 503)]
            Unavailable(Json<OAuthError>),
        }

        impl From<OAuthFailure> for $name {
            fn from(failure: OAuthFailure) -> $name {
                match failure {
                    OAuthFailure::BadRequest(body) => $name::BadRequest(body, NO_STORE.into()),
                    OAuthFailure::InvalidClient(body) => $name::Unauthorized(body, BASIC_CHALLENGE.into()),
                    OAuthFailure::MfaRequired(body) => $name::MfaRequired(body, NO_STORE.into()),
                    OAuthFailure::TenantNotFound(body) => $name::NotFound(body),
                    OAuthFailure::RateLimited(body, retry_after) => $name::TooManyRequests(body, retry_after.max(1)),
                    OAuthFailure::Unavailable(body) => $name::Unavailable(body),
                }
            }
        }
    };
}

/// A form that does not parse: `invalid_request`, for every OAuth endpoint.
fn bad_request<R: From<OAuthFailure>>(err: poem::Error) -> R {
    OAuthFailure::bad("invalid_request", err.to_string()).into()
}

/// How a client authenticates to the OAuth endpoints that want it.
const BASIC_CHALLENGE: &str = "Basic realm=\"latch\"";

oauth_response! {
    /// Token endpoint responses.
    TokenResponse {
        /// Tokens issued.
        Ok(Json<TokenSuccess>, #[oai(header = "Cache-Control")] String, #[oai(header = "Pragma")] String),
    }
}

fn oauth_error(error: &str, description: impl Into<String>) -> Json<OAuthError> {
    Json(OAuthError { error: error.to_owned(), error_description: Some(description.into()), mfa_token: None })
}

impl From<TokenPair> for TokenResponse {
    fn from(pair: TokenPair) -> TokenResponse {
        use secrecy::ExposeSecret as _;
        let body = TokenSuccess {
            access_token: pair.access_token,
            token_type: "Bearer".into(),
            expires_in: pair.expires_in,
            refresh_token: Some(pair.refresh_token.expose_secret().to_owned()),
            scope: pair.scope,
            id_token: pair.id_token,
        };
        TokenResponse::Ok(Json(body), NO_STORE.into(), NO_CACHE.into())
    }
}

impl From<ClientToken> for TokenResponse {
    fn from(token: ClientToken) -> TokenResponse {
        let body = TokenSuccess {
            access_token: token.access_token,
            token_type: "Bearer".into(),
            expires_in: token.expires_in,
            refresh_token: None,
            scope: token.scope,
            id_token: None,
        };
        TokenResponse::Ok(Json(body), NO_STORE.into(), NO_CACHE.into())
    }
}

/// A revocation request (RFC 7009 §2.1).
#[derive(Debug, Object, Deserialize)]
pub struct RevokeRequest {
    /// The token to revoke: a refresh or an access token.
    #[oai(write_only, validator(min_length = 1))]
    pub token: String,
    /// `refresh_token` or `access_token`.
    #[oai(nullable)]
    pub token_type_hint: Option<String>,
}

oauth_response! {
    /// Revocation responses.
    RevokeResponse {
        /// Revoked, or the token was unknown (RFC 7009 answers 200 either way).
        Ok,
    }
}

/// An introspection request (RFC 7662 §2.1).
#[derive(Debug, Object, Deserialize)]
pub struct IntrospectRequest {
    /// The token to inspect.
    #[oai(write_only, validator(min_length = 1))]
    pub token: String,
    /// `access_token` or `refresh_token` (optional; both are tried).
    #[oai(nullable)]
    pub token_type_hint: Option<String>,
}

/// Introspection result (RFC 7662 §2.2); only `active` when inactive.
#[derive(Debug, Object, Default)]
pub struct IntrospectionResult {
    /// Whether the token is live.
    pub active: bool,
    /// `Bearer` (RFC 7662 §2.2: the token type of RFC 6749 §7.1).
    #[oai(skip_serializing_if_is_none)]
    pub token_type: Option<String>,
    /// What the token is: `access_token` or `refresh_token` (as Ory Hydra's `token_use`).
    #[oai(skip_serializing_if_is_none)]
    pub token_use: Option<String>,
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
    /// The client the token was issued to.
    #[oai(skip_serializing_if_is_none)]
    pub client_id: Option<String>,
}

/// A confidential client's id and secret as HTTP Basic credentials (`client_secret_basic`).
#[derive(SecurityScheme)]
#[oai(ty = "basic")]
pub struct ClientBasic(Basic);

/// How a client authenticates at the token endpoint: Basic, or its
/// `client_id` (and `client_secret`) in the form.
#[derive(SecurityScheme)]
pub enum ClientAuth {
    /// `client_secret_basic`.
    Basic(ClientBasic),
    /// `client_secret_post`, a public client's `client_id`, or no client (legacy grants).
    #[oai(fallback)]
    Form,
}

impl ClientAuth {
    /// The client's credentials from Basic or the form; both at once is refused (RFC 6749 §2.3).
    fn credentials(&self, body: &TokenRequest) -> Result<ClientCredentials, OAuthFailure> {
        match self {
            ClientAuth::Basic(basic) => {
                if body.client_secret.is_some() {
                    return Err(OAuthFailure::bad("invalid_request", "use one client authentication method"));
                }
                // RFC 6749 §2.3.1: both parts are form-encoded before Basic.
                // An empty pair is what Swagger UI's password flow sends for "no client".
                let decode = |text: &str| {
                    url::form_urlencoded::parse(format!("x={text}").as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())
                        .filter(|v| !v.is_empty())
                };
                let (id, secret) = (decode(&basic.0.username), decode(&basic.0.password));
                if body.client_id.as_deref().is_some_and(|form| Some(form) != id.as_deref()) {
                    return Err(Error::InvalidClient.into());
                }
                Ok(ClientCredentials { client_id: id, client_secret: secret })
            }
            ClientAuth::Form => {
                // Empty fields are what some forms send for "none" (the explorer's password flow).
                let given = |field: &Option<String>| field.clone().filter(|v| !v.is_empty());
                Ok(ClientCredentials { client_id: given(&body.client_id), client_secret: given(&body.client_secret) })
            }
        }
    }
}

/// The claims about the signed-in user that the access token's scope allows
/// (OpenID Connect Core §5.3).
#[derive(Debug, Object)]
pub struct UserInfo {
    /// The user id.
    pub sub: String,
    /// With the `email` scope.
    #[oai(skip_serializing_if_is_none)]
    pub email: Option<String>,
    /// With the `email` scope.
    #[oai(skip_serializing_if_is_none)]
    pub email_verified: Option<bool>,
    /// With the `profile` scope, when set.
    #[oai(skip_serializing_if_is_none)]
    pub name: Option<String>,
}

/// Userinfo answers; errors per RFC 6750 §3 (`WWW-Authenticate: Bearer error=...`).
#[derive(ApiResponse)]
pub enum UserinfoResponse {
    /// The claims.
    #[oai(status = 200)]
    Ok(Json<UserInfo>, #[oai(header = "Cache-Control")] String),
    /// No token, or an invalid one: `invalid_token`.
    #[oai(status = 401)]
    Unauthorized(Json<OAuthError>, #[oai(header = "WWW-Authenticate")] String),
    /// The token lacks the `openid` scope: `insufficient_scope`.
    #[oai(status = 403)]
    Forbidden(Json<OAuthError>, #[oai(header = "WWW-Authenticate")] String),
    /// No such tenant.
    #[oai(status = 404)]
    NotFound(Json<OAuthError>),
    /// The server failed.
    #[oai(status = 503)]
    Unavailable(Json<OAuthError>),
}

/// An access token for userinfo.
#[derive(SecurityScheme)]
#[oai(ty = "bearer")]
pub struct UserinfoBearer(Bearer);

/// Userinfo's caller: a bearer access token, or none (401).
#[derive(SecurityScheme)]
pub enum UserinfoAuth {
    /// Bearer.
    Bearer(UserinfoBearer),
    /// No token: answered 401.
    #[oai(fallback)]
    Missing,
}

impl UserinfoResponse {
    fn from_error(error: Error) -> UserinfoResponse {
        let description = error.to_string();
        match error {
            Error::InsufficientScope(scope) => UserinfoResponse::Forbidden(
                oauth_error("insufficient_scope", description),
                format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\""),
            ),
            Error::TenantNotFound => UserinfoResponse::NotFound(oauth_error("invalid_request", description)),
            Error::Store(_) | Error::Internal(_) | Error::KeyUnavailable => {
                tracing::error!(error = %description, "userinfo failed");
                UserinfoResponse::Unavailable(oauth_error("server_error", "the server failed; see its log"))
            }
            // Every other failure of a bearer token: RFC 6750 §3.1 `invalid_token`.
            _ => UserinfoResponse::Unauthorized(
                oauth_error("invalid_token", description),
                "Bearer error=\"invalid_token\"".into(),
            ),
        }
    }
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

oauth_response! {
    /// Introspection responses.
    IntrospectResponse {
        /// The result.
        Ok(Json<Box<IntrospectionResult>>, #[oai(header = "Cache-Control")] String),
    }
}

impl IntrospectionAuth {
    /// The credential presented, if any.
    fn credential(&self) -> Option<&str> {
        match self {
            IntrospectionAuth::Bearer(bearer) => Some(bearer.0.token.as_str()),
            IntrospectionAuth::Basic(basic) => Some(basic.0.password.as_str()),
            IntrospectionAuth::Missing => None,
        }
    }
}

impl From<Introspection> for IntrospectionResult {
    fn from(introspection: Introspection) -> IntrospectionResult {
        match introspection {
            Introspection::Access { principal, scope } => {
                let principal = *principal;
                let claims = principal.claims;
                let aud = match claims.aud {
                    latch_shared::Audience::One(aud) => aud,
                    latch_shared::Audience::Many(auds) => auds.join(" "),
                };
                IntrospectionResult {
                    active: true,
                    token_type: Some("Bearer".into()),
                    token_use: Some("access_token".into()),
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
                    client_id: claims.client_id,
                }
            }
            Introspection::Refresh { session, user, scope, issuer } => IntrospectionResult {
                active: true,
                token_type: Some("Bearer".into()),
                token_use: Some("refresh_token".into()),
                scope: Some(scope),
                username: Some(user.email),
                sub: Some(user.id.to_string()),
                iss: Some(issuer),
                exp: Some(session.expires_at),
                iat: Some(session.last_used_at),
                tid: Some(session.tenant.to_string()),
                sid: Some(session.id.to_string()),
                roles: Some(user.roles),
                client_id: session.client_id.clone(),
                ..IntrospectionResult::default()
            },
            Introspection::Client { payload } => {
                let text = |name: &str| payload.get(name).and_then(|v| v.as_str()).map(str::to_owned);
                let number = |name: &str| payload.get(name).and_then(|v| v.as_i64());
                let aud = match payload.get("aud") {
                    Some(serde_json::Value::Array(auds)) => {
                        Some(auds.iter().filter_map(|a| a.as_str()).collect::<Vec<_>>().join(" "))
                    }
                    other => other.and_then(|a| a.as_str()).map(str::to_owned),
                };
                IntrospectionResult {
                    active: true,
                    token_type: Some("Bearer".into()),
                    token_use: Some("access_token".into()),
                    scope: text("scope"),
                    sub: text("sub"),
                    iss: text("iss"),
                    aud,
                    exp: number("exp"),
                    iat: number("iat"),
                    nbf: number("nbf"),
                    jti: text("jti"),
                    tid: text("tid"),
                    client_id: text("client_id"),
                    ..IntrospectionResult::default()
                }
            }
            Introspection::Inactive => IntrospectionResult::default(),
        }
    }
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
        auth: ClientAuth,
        body: Form<TokenRequest>,
    ) -> TokenResponse {
        let Form(body) = body;
        let info = client_info(req);
        let result = async {
            let tenant = TenantId::parse(&tenant)?;
            let credentials = auth.credentials(&body)?;
            let client = latch.authenticate_client(&tenant, &credentials).await?;
            let grant = Some(body.grant_type.as_str()).filter(|g| !g.is_empty());
            let grant = grant.ok_or_else(|| OAuthFailure::missing("grant_type is required"))?;
            // A named client may use only the grants it is allowed; without
            // one, latch's legacy first-party password, MFA and refresh grants.
            if let Some(client) = &client
                && !client
                    .settings
                    .grant_types
                    .iter()
                    .any(|allowed| allowed == grant || (grant == MFA_GRANT && allowed == "password"))
            {
                return Err(Error::UnauthorizedClient(grant.to_owned()).into());
            }
            if grant == "client_credentials" {
                // RFC 6749 §4.4: only an authenticated (confidential) client.
                let client = client.as_ref().ok_or(Error::InvalidClient)?;
                let issued = latch.client_token(client, body.scope.as_deref()).await?;
                crate::metrics::tokens_issued(tenant.as_str(), "client_credentials");
                return Ok(TokenResponse::from(issued));
            }
            let (pair, label) = match grant {
                "authorization_code" => {
                    // RFC 6749 §4.1.3: the client authenticates, or names itself if public.
                    let client = client.as_ref().ok_or(Error::InvalidClient)?;
                    let code = body
                        .code
                        .as_deref()
                        .ok_or_else(|| OAuthFailure::missing("the authorization_code grant needs code"))?;
                    let pair = latch
                        .exchange_code(client, code, body.redirect_uri.as_deref(), body.code_verifier.as_deref(), info)
                        .await?;
                    (pair, "authorization_code")
                }
                "password" => {
                    let (Some(username), Some(password)) = (body.username, body.password) else {
                        return Err(OAuthFailure::missing("the password grant needs username and password"));
                    };
                    (latch.login(&tenant, &username, &password, body.scope.as_deref(), info).await?, "password")
                }
                "refresh_token" => {
                    let Some(refresh_token) = body.refresh_token else {
                        return Err(OAuthFailure::missing("the refresh_token grant needs refresh_token"));
                    };
                    if body.scope.is_some() {
                        return Err(OAuthFailure::bad("invalid_scope", "a refresh keeps the scopes granted at login"));
                    }
                    (latch.refresh(&tenant, &refresh_token, &info, client.as_ref()).await?, "refresh_token")
                }
                MFA_GRANT => {
                    let Some(mfa_token) = body.mfa_token else {
                        return Err(OAuthFailure::missing("the MFA grant needs mfa_token and otp or recovery_code"));
                    };
                    let Some(factor) = SecondFactor::one_of(body.otp, body.recovery_code) else {
                        return Err(OAuthFailure::missing("give exactly one of otp and recovery_code"));
                    };
                    (latch.complete_mfa(&tenant, &mfa_token, factor, info).await?, "mfa")
                }
                other => {
                    let description = format!("grant_type `{other}` is not supported");
                    return Err(OAuthFailure::bad("unsupported_grant_type", description));
                }
            };
            crate::metrics::tokens_issued(tenant.as_str(), label);
            Ok(TokenResponse::from(pair))
        };
        result.await.unwrap_or_else(TokenResponse::from)
    }

    /// Revoke a refresh or access token (its whole session). Unknown tokens are not an error.
    #[oai(path = "/t/:tenant/oauth/revoke", method = "post", operation_id = "oauthRevoke")]
    async fn revoke(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        body: Form<RevokeRequest>,
    ) -> RevokeResponse {
        let result = async {
            let tenant = TenantId::parse(&tenant)?;
            // (poem-openapi does not apply `min_length` to form fields.)
            let token = Some(body.0.token).filter(|t| !t.is_empty());
            let token = token.ok_or_else(|| OAuthFailure::missing("token is required"))?;
            Ok::<_, OAuthFailure>(latch.revoke_token(&tenant, &token, body.0.token_type_hint.as_deref()).await?)
        };
        match result.await {
            Ok(()) => RevokeResponse::Ok,
            Err(failure) => failure.into(),
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
        let result = async {
            let tenant = TenantId::parse(&tenant)?;
            latch.check_introspector(&tenant, auth.credential()).await?;
            let token = Some(body.0.token).filter(|t| !t.is_empty());
            let token = token.ok_or_else(|| OAuthFailure::missing("token is required"))?;
            Ok::<_, OAuthFailure>(IntrospectionResult::from(latch.introspect(&tenant, &token).await?))
        };
        match result.await {
            Ok(result) => IntrospectResponse::Ok(Json(Box::new(result)), NO_STORE.into()),
            Err(failure) => failure.into(),
        }
    }

    /// Userinfo (OpenID Connect Core §5.3): the claims the access token's
    /// scope allows about its user. The token must carry `openid`.
    #[oai(path = "/t/:tenant/oauth/userinfo", method = "get", operation_id = "oauthUserinfo")]
    async fn userinfo(&self, latch: Data<&Arc<Latch>>, tenant: Path<String>, auth: UserinfoAuth) -> UserinfoResponse {
        Self::userinfo_of(&latch, &tenant, auth).await
    }

    /// Userinfo by POST, as GET.
    #[oai(path = "/t/:tenant/oauth/userinfo", method = "post", operation_id = "oauthUserinfoPost")]
    async fn userinfo_post(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        auth: UserinfoAuth,
    ) -> UserinfoResponse {
        Self::userinfo_of(&latch, &tenant, auth).await
    }
}

impl OAuthApi {
    async fn userinfo_of(latch: &Latch, tenant: &str, auth: UserinfoAuth) -> UserinfoResponse {
        let UserinfoAuth::Bearer(bearer) = auth else {
            let body = oauth_error("invalid_token", "userinfo needs an `Authorization: Bearer` access token");
            return UserinfoResponse::Unauthorized(body, "Bearer".into());
        };
        let result = async {
            let tenant = TenantId::parse(tenant)?;
            let principal = latch.authenticate(&tenant, &bearer.0.token).await?;
            latch.userinfo(&principal)
        };
        match result.await {
            Ok(info) => UserinfoResponse::Ok(
                Json(UserInfo {
                    sub: info.sub,
                    email: info.email,
                    email_verified: info.email_verified,
                    name: info.name,
                }),
                NO_STORE.into(),
            ),
            Err(error) => UserinfoResponse::from_error(error),
        }
    }
}
