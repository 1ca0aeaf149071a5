//! The one error type of the HTTP layer: every failure becomes an RFC 9457
//! `application/problem+json` body with a stable machine `code`.
//! 5xx bodies never carry internal detail; the log does.

use poem::http::{HeaderValue, StatusCode, header};
use poem::{IntoResponse, Response};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiResponse, Object};

use secrecy::ExposeSecret as _;

use crate::domain::{Error, PasswordRule};
use crate::store::StoreError;

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Object)]
pub struct Problem {
    /// A URI naming the problem type (`urn:latch:problem:{code}`).
    #[oai(rename = "type")]
    pub type_: String,
    /// A short summary of the problem type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong in this case.
    pub detail: String,
    /// Stable machine-readable code.
    pub code: String,
    /// For `invalid_token`: the verifier's own code (`expired`, `bad_signature`, ...).
    #[oai(skip_serializing_if_is_none)]
    pub token_error: Option<String>,
    /// For `mfa_required`: the challenge to send to `POST /t/{tenant}/auth/mfa` with a code.
    #[oai(skip_serializing_if_is_none)]
    pub mfa_token: Option<String>,
    /// For `import_refused`: the lines refused, with their number and why (the first 1,000).
    #[oai(skip_serializing_if_is_none)]
    pub errors: Option<Vec<ImportLineError>>,
    /// Sent as the `Retry-After` header (429), not in the body.
    #[oai(skip)]
    pub retry_after: Option<u64>,
}

impl Problem {
    /// A problem with the given status, code and texts.
    pub fn new(status: StatusCode, code: &str, title: &str, detail: impl Into<String>) -> Problem {
        Problem {
            type_: format!("urn:latch:problem:{code}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_owned(),
            token_error: None,
            mfa_token: None,
            errors: None,
            retry_after: None,
        }
    }

    /// The RFC 6750 §3 challenge of a 401: `error="invalid_token"` with a
    /// description when a bearer token was presented and refused, a bare
    /// `Bearer` when none was (or the 401 is about something else).
    fn bearer_challenge(&self) -> HeaderValue {
        match self.code.as_str() {
            "invalid_token" | "session_ended" => {
                // A quoted-string: no quotes, backslashes or controls in it.
                let description: String = self
                    .detail
                    .chars()
                    .filter(|c| *c != '"' && *c != '\\' && !c.is_control() && c.is_ascii())
                    .collect();
                HeaderValue::from_str(&format!("Bearer error=\"invalid_token\", error_description=\"{description}\""))
                    .unwrap_or_else(|_| HeaderValue::from_static("Bearer error=\"invalid_token\""))
            }
            _ => HeaderValue::from_static("Bearer"),
        }
    }

    /// The response carrying this problem.
    pub fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&poem_openapi::types::ToJSON::to_json(&self)).unwrap_or_default();
        let mut response = Response::builder().status(status).content_type("application/problem+json").body(body);
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, self.bearer_challenge());
        }
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}

/// A line of an import that cannot be imported.
#[derive(Debug, Clone, Object)]
pub struct ImportLineError {
    /// The line's number, from 1.
    pub line: u64,
    /// Why, naming the field.
    pub reason: String,
}

/// A failed API call.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ApiError(#[from] pub Error);

impl From<crate::ids::InvalidTenantId> for ApiError {
    fn from(invalid: crate::ids::InvalidTenantId) -> ApiError {
        ApiError(invalid.into())
    }
}

impl ApiError {
    /// The problem document for this error: one exhaustive match from domain errors to HTTP.
    pub fn problem(&self) -> Problem {
        use StatusCode as S;
        let detail = self.0.to_string();
        let (status, code, title) = match &self.0 {
            Error::InvalidTenantId => (S::BAD_REQUEST, "invalid_tenant_id", "Invalid tenant id"),
            Error::TenantNotFound => (S::NOT_FOUND, "tenant_not_found", "Tenant not found"),
            Error::TenantExists => (S::CONFLICT, "tenant_exists", "Tenant exists"),
            Error::InvalidSetting(_) => (S::BAD_REQUEST, "invalid_setting", "Invalid tenant setting"),
            Error::InvalidEmail => (S::BAD_REQUEST, "invalid_email", "Invalid email"),
            Error::WeakPassword(PasswordRule::TooShort { .. }) => {
                (S::BAD_REQUEST, "password_too_short", "Password too short")
            }
            Error::WeakPassword(PasswordRule::TooLong) => (S::BAD_REQUEST, "password_too_long", "Password too long"),
            Error::WeakPassword(PasswordRule::ContainsEmail) => {
                (S::BAD_REQUEST, "password_contains_email", "Password is the email")
            }
            Error::WeakPassword(PasswordRule::Common) => (S::BAD_REQUEST, "password_too_common", "Password too common"),
            Error::InvalidName => (S::BAD_REQUEST, "invalid_name", "Invalid name"),
            Error::EmailTaken => (S::CONFLICT, "email_taken", "Email already registered"),
            Error::RegistrationClosed => (S::FORBIDDEN, "registration_closed", "Registration closed"),
            Error::InvalidCredentials => (S::UNAUTHORIZED, "invalid_credentials", "Invalid credentials"),
            Error::UserDisabled => (S::FORBIDDEN, "user_disabled", "Account disabled"),
            Error::AccountLocked { .. } => (S::TOO_MANY_REQUESTS, "account_locked", "Account locked"),
            Error::RateLimited { .. } => (S::TOO_MANY_REQUESTS, "rate_limited", "Too many requests"),
            Error::InvalidToken(_) => (S::UNAUTHORIZED, "invalid_token", "Invalid access token"),
            Error::SessionEnded => (S::UNAUTHORIZED, "session_ended", "Session ended"),
            Error::InvalidRefreshToken => (S::UNAUTHORIZED, "invalid_refresh_token", "Invalid refresh token"),
            Error::RefreshTokenReused => (S::UNAUTHORIZED, "refresh_token_reused", "Refresh token reused"),
            Error::NotOperator => (S::UNAUTHORIZED, "operator_token_required", "Operator token required"),
            Error::NotIntrospector => (S::UNAUTHORIZED, "invalid_client", "Introspection credential required"),
            Error::InvalidScope(_) => (S::BAD_REQUEST, "invalid_scope", "Scope not allowed"),
            Error::SessionNotFound => (S::NOT_FOUND, "session_not_found", "Session not found"),
            Error::Forbidden(_) => (S::FORBIDDEN, "forbidden", "Forbidden"),
            Error::UserNotFound => (S::NOT_FOUND, "user_not_found", "User not found"),
            Error::UnknownRole(_) => (S::BAD_REQUEST, "unknown_role", "Unknown role"),
            Error::ImportRefused { .. } => (S::UNPROCESSABLE_ENTITY, "import_refused", "Import refused"),
            Error::ImportUnreadable(_) => (S::BAD_REQUEST, "invalid_request", "Invalid request"),
            Error::InvalidResetToken => (S::BAD_REQUEST, "invalid_reset_token", "Invalid reset token"),
            Error::InvalidCursor => (S::BAD_REQUEST, "invalid_cursor", "Invalid cursor"),
            Error::EmailNotVerified => (S::FORBIDDEN, "email_not_verified", "Email not verified"),
            Error::InvalidVerificationToken => {
                (S::BAD_REQUEST, "invalid_verification_token", "Invalid verification token")
            }
            Error::MfaRequired { .. } => (S::FORBIDDEN, "mfa_required", "Second factor required"),
            Error::InvalidMfaToken => (S::UNAUTHORIZED, "invalid_mfa_token", "Invalid MFA challenge"),
            Error::InvalidMfaCode => (S::UNAUTHORIZED, "invalid_mfa_code", "Invalid code"),
            Error::MfaAlreadyEnabled => (S::CONFLICT, "mfa_already_enabled", "TOTP already enabled"),
            Error::MfaNotPending => (S::CONFLICT, "mfa_not_pending", "No TOTP enrollment pending"),
            Error::MfaNotEnabled => (S::CONFLICT, "mfa_not_enabled", "TOTP not enabled"),
            Error::CurrentPasswordWrong => (S::FORBIDDEN, "current_password_wrong", "Current password wrong"),
            Error::ClientNotFound => (S::NOT_FOUND, "client_not_found", "Client not found"),
            Error::InvalidGrant(_) | Error::AuthorizationCodeReused => {
                (S::BAD_REQUEST, "invalid_grant", "Invalid grant")
            }
            Error::InsufficientScope(_) => (S::FORBIDDEN, "insufficient_scope", "Insufficient scope"),
            Error::UnauthorizedClient(_) => (S::BAD_REQUEST, "unauthorized_client", "Grant type not allowed"),
            Error::ClientExists => (S::CONFLICT, "client_exists", "Client exists"),
            Error::InvalidClient => (S::UNAUTHORIZED, "invalid_client", "Client authentication failed"),
            Error::PublicClientHasNoSecret => (S::CONFLICT, "public_client", "Public clients have no secret"),
            Error::KeyUnavailable | Error::Internal(_) => {
                tracing::error!(error = %self.0, "internal error");
                return Problem::new(
                    S::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                    "the server failed; see its log",
                );
            }
            Error::Store(StoreError::Backend(_) | StoreError::Format(_) | StoreError::Corrupt(_))
            | Error::Store(StoreError::Damaged(_) | StoreError::Locked(_) | StoreError::Unwritable(_))
            | Error::Store(StoreError::Conflict | StoreError::NotFound | StoreError::Stale) => {
                tracing::error!(error = %self.0, "store error");
                return Problem::new(
                    S::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "Store unavailable",
                    "the store failed; see the server log",
                );
            }
        };
        let mut problem = Problem::new(status, code, title, detail);
        match &self.0 {
            Error::InvalidToken(reason) => problem.token_error = Some(reason.code().to_owned()),
            Error::MfaRequired { mfa_token } => problem.mfa_token = Some(mfa_token.expose_secret().to_owned()),
            Error::ImportRefused { errors, .. } => {
                problem.errors = Some(
                    errors.iter().map(|e| ImportLineError { line: e.line as u64, reason: e.reason.clone() }).collect(),
                )
            }
            Error::AccountLocked { retry_after } | Error::RateLimited { retry_after } => {
                problem.retry_after = Some(*retry_after)
            }
            _ => {}
        }
        problem
    }
}

impl poem::error::ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.problem().status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn as_response(&self) -> Response {
        self.problem().into_response()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.problem().into_response()
    }
}

impl ApiResponse for ApiError {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "An RFC 9457 problem with a stable `code`",
                status: None,
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: "application/problem+json",
                    schema: Problem::schema_ref(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        Problem::register(registry);
    }
}

/// Result of an API handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// Maps any error that reached the edge of the app (a handler's `ApiError`,
/// or poem's own: unparsable body, wrong content type, unknown route) to a problem response.
pub fn error_response(err: poem::Error) -> Response {
    if let Some(api) = err.downcast_ref::<ApiError>() {
        return api.problem().into_response();
    }
    let status = err.status();
    let (code, title) = match status {
        StatusCode::BAD_REQUEST => ("invalid_request", "Invalid request"),
        StatusCode::UNAUTHORIZED => ("unauthorized", "Authentication required"),
        StatusCode::FORBIDDEN => ("forbidden", "Forbidden"),
        StatusCode::NOT_FOUND => ("not_found", "Not found"),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "Method not allowed"),
        StatusCode::REQUEST_TIMEOUT => ("request_timeout", "Request timeout"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "Payload too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", "Unsupported media type"),
        s if s.is_client_error() => ("invalid_request", "Invalid request"),
        _ => {
            tracing::error!(error = %err, %status, "request failed");
            return Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "the server failed; see its log",
            )
            .into_response();
        }
    };
    let detail = if status == StatusCode::UNAUTHORIZED {
        "this endpoint needs an `Authorization: Bearer` token".to_owned()
    } else {
        err.to_string()
    };
    Problem::new(status, code, title, detail).into_response()
}
