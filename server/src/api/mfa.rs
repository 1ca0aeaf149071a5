//! TOTP second factor: enrollment and removal by the user, and completing a
//! login that answered `mfa_required`.

use std::sync::Arc;

use poem::Request;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use secrecy::ExposeSecret as _;

use super::auth::{NO_STORE, TokenResponse};
use super::{ApiResult, ApiTags, NoContent, UserAuth, client_info, tenant_id};
use crate::domain::{Error, Latch, Principal, SecondFactor};

/// TOTP enrollment and MFA login completion.
pub struct MfaApi;

/// A new TOTP secret for an authenticator app.
#[derive(Debug, Object)]
pub struct TotpEnrollmentResponse {
    /// The shared secret, base32, for typing into an authenticator app.
    pub secret: String,
    /// The same as an `otpauth://totp/...` URI (show it as a QR code).
    pub otpauth_uri: String,
}

/// Starting TOTP enrollment: the account's password, so that an access
/// token alone cannot put a second factor on the account.
#[derive(Debug, Object)]
pub struct EnrollTotpRequest {
    /// The account's password.
    #[oai(write_only)]
    pub password: String,
}

/// Confirming TOTP enrollment: the password and a first code.
#[derive(Debug, Object)]
pub struct ConfirmTotpRequest {
    /// The account's password.
    #[oai(write_only)]
    pub password: String,
    /// The current six-digit code.
    #[oai(write_only)]
    pub code: String,
}

/// Recovery codes, shown this once.
#[derive(Debug, Object)]
pub struct RecoveryCodes {
    /// Ten single-use codes; each can replace a TOTP code once.
    pub recovery_codes: Vec<String>,
}

/// Turning TOTP off: the password and a second factor.
#[derive(Debug, Object)]
pub struct DisableTotpRequest {
    /// The account's password.
    #[oai(write_only)]
    pub password: String,
    /// A current TOTP code (or give `recovery_code`).
    #[oai(write_only)]
    #[oai(nullable)]
    pub code: Option<String>,
    /// A recovery code instead of `code`.
    #[oai(write_only)]
    #[oai(nullable)]
    pub recovery_code: Option<String>,
}

/// Completing a login that answered `mfa_required`.
#[derive(Debug, Object)]
pub struct MfaLoginRequest {
    /// The `mfa_token` from the `mfa_required` problem.
    #[oai(write_only)]
    pub mfa_token: String,
    /// A current TOTP code (or give `recovery_code`).
    #[oai(write_only)]
    #[oai(nullable)]
    pub code: Option<String>,
    /// A recovery code instead of `code`.
    #[oai(write_only)]
    #[oai(nullable)]
    pub recovery_code: Option<String>,
}

/// Exactly one of a code and a recovery code.
pub(super) fn second_factor(code: Option<String>, recovery_code: Option<String>) -> ApiResult<SecondFactor> {
    SecondFactor::one_of(code, recovery_code).ok_or_else(|| Error::InvalidMfaCode.into())
}

impl MfaApi {
    async fn principal(latch: &Latch, tenant: &str, auth: &UserAuth) -> ApiResult<Principal> {
        Ok(latch.authenticate(&tenant_id(tenant)?, auth.token()).await?)
    }
}

#[OpenApi]
impl MfaApi {
    /// Start TOTP enrollment (needs the password): a new secret, active once confirmed with a code.
    /// Starting again replaces an unconfirmed secret; refused (409) while TOTP is on.
    #[oai(path = "/t/:tenant/users/me/mfa/totp", method = "post", operation_id = "enrollTotp", tag = "ApiTags::Users")]
    async fn enroll(
        &self,
        latch: Data<&Arc<Latch>>,
        req: &Request,
        tenant: Path<String>,
        auth: UserAuth,
        body: Json<EnrollTotpRequest>,
    ) -> ApiResult<Json<TotpEnrollmentResponse>> {
        let principal = Self::principal(&latch, &tenant, &auth).await?;
        let enrollment = latch.enroll_totp(&principal, &body.password, &client_info(req)).await?;
        Ok(Json(TotpEnrollmentResponse {
            secret: enrollment.secret.expose_secret().to_owned(),
            otpauth_uri: enrollment.otpauth_uri.expose_secret().to_owned(),
        }))
    }

    /// Confirm TOTP enrollment with the password and a first code; answers the ten recovery codes, shown this once.
    #[oai(
        path = "/t/:tenant/users/me/mfa/totp/confirm",
        method = "post",
        operation_id = "confirmTotp",
        tag = "ApiTags::Users"
    )]
    async fn confirm(
        &self,
        latch: Data<&Arc<Latch>>,
        req: &Request,
        tenant: Path<String>,
        auth: UserAuth,
        body: Json<ConfirmTotpRequest>,
    ) -> ApiResult<Json<RecoveryCodes>> {
        let principal = Self::principal(&latch, &tenant, &auth).await?;
        let codes = latch.confirm_totp(&principal, &body.password, &body.code, &client_info(req)).await?;
        Ok(Json(RecoveryCodes { recovery_codes: codes.iter().map(|c| c.expose_secret().to_owned()).collect() }))
    }

    /// Turn TOTP off, with the password and a code or a recovery code.
    #[oai(
        path = "/t/:tenant/users/me/mfa/totp/disable",
        method = "post",
        operation_id = "disableTotp",
        tag = "ApiTags::Users"
    )]
    async fn disable(
        &self,
        latch: Data<&Arc<Latch>>,
        req: &Request,
        tenant: Path<String>,
        auth: UserAuth,
        body: Json<DisableTotpRequest>,
    ) -> ApiResult<NoContent> {
        let principal = Self::principal(&latch, &tenant, &auth).await?;
        let Json(body) = body;
        let factor = second_factor(body.code, body.recovery_code)?;
        latch.disable_totp(&principal, &body.password, factor, &client_info(req)).await?;
        Ok(NoContent::Done)
    }

    /// Complete a login that answered 403 `mfa_required`, with its `mfa_token`
    /// and a TOTP code or a recovery code. The challenge lasts five minutes and
    /// five wrong codes; wrong codes count toward the account's lockout.
    #[oai(path = "/t/:tenant/auth/mfa", method = "post", operation_id = "completeMfaLogin", tag = "ApiTags::Auth")]
    async fn complete(
        &self,
        latch: Data<&Arc<Latch>>,
        req: &Request,
        tenant: Path<String>,
        body: Json<MfaLoginRequest>,
    ) -> ApiResult<TokenResponse> {
        let tenant = tenant_id(&tenant)?;
        let Json(body) = body;
        let factor = second_factor(body.code, body.recovery_code)?;
        let pair = latch.complete_mfa(&tenant, &body.mfa_token, factor, client_info(req)).await?;
        crate::metrics::tokens_issued(tenant.as_str(), "mfa");
        Ok(TokenResponse::Ok(Json(pair.into()), NO_STORE.into()))
    }
}
