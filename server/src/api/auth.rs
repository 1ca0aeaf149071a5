//! Registration, login, refresh and logout.

use std::sync::Arc;

use poem::Request;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::models::{Tokens, User};
use super::{ApiResult, ApiTags, NoContent, UserAuth, client_info, tenant_id};
use crate::domain::{Latch, Registered, Registration};

/// Register, log in, refresh, log out.
pub struct AuthApi;

/// Registration.
#[derive(Debug, Object)]
pub struct RegisterRequest {
    /// Email, unique per tenant (case-insensitive).
    pub email: String,
    /// Password, checked against the tenant's policy.
    #[oai(write_only)]
    pub password: String,
    /// Display name.
    #[oai(nullable)]
    pub name: Option<String>,
}

/// Login with email and password.
#[derive(Debug, Object)]
pub struct LoginRequest {
    /// Email.
    pub email: String,
    /// Password.
    #[oai(write_only)]
    pub password: String,
    /// Space-separated scopes to request (default: all the user's roles allow).
    #[oai(nullable)]
    pub scope: Option<String>,
}

/// A refresh token to exchange.
#[derive(Debug, Object)]
pub struct RefreshRequest {
    /// The refresh token from the last token response.
    #[oai(write_only)]
    pub refresh_token: String,
}

/// A token response; never cached.
/// A password-reset request.
#[derive(Debug, Object)]
pub struct PasswordResetRequest {
    /// The account's email.
    pub email: String,
}

/// A password-reset completion.
#[derive(Debug, Object)]
pub struct PasswordResetConfirmation {
    /// The token from the reset link.
    #[oai(write_only)]
    pub token: String,
    /// The new password (the tenant's policy applies).
    #[oai(write_only)]
    pub new_password: String,
}

/// The token from an email-verification link.
#[derive(Debug, Object)]
pub struct VerifyEmailRequest {
    /// The token from the link.
    #[oai(write_only)]
    pub token: String,
}

/// A request for a new verification mail.
#[derive(Debug, Object)]
pub struct ResendVerificationRequest {
    /// The account's email.
    pub email: String,
}

/// A registration that waits for its email to be verified.
#[derive(Debug, Object)]
pub struct VerificationPending {
    /// The new account.
    pub user: User,
    /// What to do next.
    pub detail: String,
}

/// What registration answers.
#[derive(ApiResponse)]
pub enum RegisterResponse {
    /// Account created and logged in.
    #[oai(status = 201)]
    Created(Json<Tokens>, #[oai(header = "Cache-Control")] String),
    /// Account created; the tenant requires a verified email before the
    /// first login, and a verification link was mailed.
    #[oai(status = 202)]
    VerificationPending(Json<VerificationPending>),
}

/// Accepted for processing.
#[derive(ApiResponse)]
pub enum Accepted {
    /// Accepted. If the account exists and is enabled, a mail is on its way.
    #[oai(status = 202)]
    Accepted,
}

#[derive(ApiResponse)]
pub(super) enum TokenResponse {
    /// Tokens issued.
    #[oai(status = 200)]
    Ok(Json<Tokens>, #[oai(header = "Cache-Control")] String),
}

pub(super) const NO_STORE: &str = "no-store";

#[OpenApi(tag = "ApiTags::Auth")]
impl AuthApi {
    /// Create an account and log in (or, when the tenant requires verified
    /// emails, 202 without tokens until the mailed link is opened).
    ///
    /// A tenant whose `registration` is `closed` answers 403
    /// `registration_closed`: its users are created or invited by an
    /// administrator (`POST /t/{tenant}/admin/users` without a password mails
    /// an invitation). Discovery says which: `latch_registration`.
    #[oai(path = "/t/:tenant/auth/register", method = "post", operation_id = "register")]
    async fn register(
        &self,
        latch: Data<&Arc<Latch>>,
        req: &Request,
        tenant: Path<String>,
        body: Json<RegisterRequest>,
    ) -> ApiResult<RegisterResponse> {
        let tenant = tenant_id(&tenant)?;
        let Json(body) = body;
        let registration = Registration { email: body.email, password: body.password, name: body.name };
        Ok(match latch.register(&tenant, registration, client_info(req)).await? {
            Registered::LoggedIn(pair) => {
                crate::metrics::tokens_issued(tenant.as_str(), "register");
                RegisterResponse::Created(Json(pair.into()), NO_STORE.into())
            }
            Registered::VerificationPending(user) => RegisterResponse::VerificationPending(Json(VerificationPending {
                user: user.into(),
                detail: "open the link mailed to this address, then log in".into(),
            })),
        })
    }

    /// Log in with email and password.
    #[oai(path = "/t/:tenant/auth/login", method = "post", operation_id = "login")]
    async fn login(
        &self,
        latch: Data<&Arc<Latch>>,
        req: &Request,
        tenant: Path<String>,
        body: Json<LoginRequest>,
    ) -> ApiResult<TokenResponse> {
        let tenant = tenant_id(&tenant)?;
        let pair = latch.login(&tenant, &body.email, &body.password, body.scope.as_deref(), client_info(req)).await?;
        crate::metrics::tokens_issued(tenant.as_str(), "password");
        Ok(TokenResponse::Ok(Json(pair.into()), NO_STORE.into()))
    }

    /// Exchange a refresh token for a new pair (the old refresh token is retired).
    #[oai(path = "/t/:tenant/auth/refresh", method = "post", operation_id = "refresh")]
    async fn refresh(
        &self,
        latch: Data<&Arc<Latch>>,
        req: &Request,
        tenant: Path<String>,
        body: Json<RefreshRequest>,
    ) -> ApiResult<TokenResponse> {
        let tenant = tenant_id(&tenant)?;
        let pair = latch.refresh(&tenant, &body.refresh_token, &client_info(req), None).await?;
        crate::metrics::tokens_issued(tenant.as_str(), "refresh_token");
        Ok(TokenResponse::Ok(Json(pair.into()), NO_STORE.into()))
    }

    /// End the current session and its refresh tokens.
    #[oai(path = "/t/:tenant/auth/logout", method = "post", operation_id = "logout")]
    async fn logout(&self, latch: Data<&Arc<Latch>>, tenant: Path<String>, auth: UserAuth) -> ApiResult<NoContent> {
        let tenant = tenant_id(&tenant)?;
        let principal = latch.authenticate(&tenant, auth.token()).await?;
        latch.logout(&principal).await?;
        Ok(NoContent::Done)
    }

    /// Ask for a password-reset link by mail. Always 202, whether or not the
    /// account exists; the link works once, for an hour.
    #[oai(path = "/t/:tenant/auth/password-reset", method = "post", operation_id = "requestPasswordReset")]
    async fn request_password_reset(
        &self,
        latch: Data<&Arc<Latch>>,
        req: &Request,
        tenant: Path<String>,
        body: Json<PasswordResetRequest>,
    ) -> ApiResult<Accepted> {
        latch.request_password_reset(&tenant_id(&tenant)?, &body.email, client_info(req)).await?;
        Ok(Accepted::Accepted)
    }

    /// Set a new password with the token from a reset link; every session of the account ends.
    #[oai(path = "/t/:tenant/auth/password-reset/confirm", method = "post", operation_id = "confirmPasswordReset")]
    async fn confirm_password_reset(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        body: Json<PasswordResetConfirmation>,
    ) -> ApiResult<NoContent> {
        latch.confirm_password_reset(&tenant_id(&tenant)?, &body.token, &body.new_password).await?;
        Ok(NoContent::Done)
    }

    /// Verify the account's email with the token from a verification link (single use, 24 hours).
    #[oai(path = "/t/:tenant/auth/verify-email", method = "post", operation_id = "verifyEmail")]
    async fn verify_email(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        body: Json<VerifyEmailRequest>,
    ) -> ApiResult<NoContent> {
        latch.verify_email(&tenant_id(&tenant)?, &body.token).await?;
        Ok(NoContent::Done)
    }

    /// Mail a new verification link. Always 202; a mail goes only to an
    /// existing, enabled, unverified account, at most once a minute.
    #[oai(path = "/t/:tenant/auth/verify-email/resend", method = "post", operation_id = "resendVerification")]
    async fn resend_verification(
        &self,
        latch: Data<&Arc<Latch>>,
        req: &Request,
        tenant: Path<String>,
        body: Json<ResendVerificationRequest>,
    ) -> ApiResult<Accepted> {
        latch.resend_verification(&tenant_id(&tenant)?, &body.email, client_info(req)).await?;
        Ok(Accepted::Accepted)
    }
}
