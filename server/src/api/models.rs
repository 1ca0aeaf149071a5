//! Request and response bodies shared by several resources.

use poem_openapi::{Enum, Object};
use secrecy::ExposeSecret;

use crate::clock::rfc3339;
use crate::domain::TokenPair;
use crate::store::UserRecord;

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, Object)]
pub struct User {
    /// User id (the `sub` claim).
    pub id: String,
    /// Email as registered.
    pub email: String,
    /// Display name.
    #[oai(nullable)]
    pub name: Option<String>,
    /// Roles in the tenant.
    pub roles: Vec<String>,
    /// Whether the email was verified.
    pub email_verified: bool,
    /// Whether the account is disabled.
    pub disabled: bool,
    /// Whether logins need a TOTP code.
    pub mfa_enabled: bool,
    /// Creation time, RFC 3339.
    pub created_at: String,
}

impl From<UserRecord> for User {
    fn from(user: UserRecord) -> User {
        User {
            id: user.id.to_string(),
            email: user.email,
            name: user.name,
            roles: user.roles,
            email_verified: user.email_verified,
            disabled: user.disabled,
            mfa_enabled: user.totp.as_ref().is_some_and(|totp| totp.confirmed),
            created_at: rfc3339(user.created_at),
        }
    }
}

/// An access token, a refresh token and the user (register, login, refresh).
#[derive(Debug, Clone, Object)]
pub struct Tokens {
    /// The signed access token (JWS, `typ: at+jwt`).
    pub access_token: String,
    /// The opaque refresh token; each use rotates it.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u32,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// The user.
    pub user: User,
}

impl From<TokenPair> for Tokens {
    fn from(pair: TokenPair) -> Tokens {
        Tokens {
            access_token: pair.access_token,
            refresh_token: pair.refresh_token.expose_secret().to_owned(),
            token_type: "Bearer".into(),
            expires_in: pair.expires_in,
            scope: pair.scope,
            user: pair.user.into(),
        }
    }
}

/// A signing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum SigningAlgorithm {
    /// Ed25519 (default).
    #[oai(rename = "EdDSA")]
    EdDsa,
    /// ECDSA P-256.
    #[oai(rename = "ES256")]
    Es256,
    /// RSA PKCS#1 v1.5, 2048 bits.
    #[oai(rename = "RS256")]
    Rs256,
    /// HMAC-SHA-256: only tenants created before latch stopped offering it
    /// (its secret is never published, so nobody else can verify its tokens).
    #[oai(rename = "HS256")]
    Hs256,
}

/// The algorithms a new tenant can sign with: all public-key, so any JWT
/// library and `@latch/verifier` verify its tokens from the JWKS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum NewTenantAlgorithm {
    /// Ed25519 (the default).
    #[oai(rename = "EdDSA")]
    EdDsa,
    /// ECDSA P-256.
    #[oai(rename = "ES256")]
    Es256,
    /// RSA PKCS#1 v1.5, 2048 bits.
    #[oai(rename = "RS256")]
    Rs256,
}

impl From<NewTenantAlgorithm> for latch_shared::Algorithm {
    fn from(alg: NewTenantAlgorithm) -> latch_shared::Algorithm {
        match alg {
            NewTenantAlgorithm::EdDsa => latch_shared::Algorithm::EdDSA,
            NewTenantAlgorithm::Es256 => latch_shared::Algorithm::ES256,
            NewTenantAlgorithm::Rs256 => latch_shared::Algorithm::RS256,
        }
    }
}

impl From<SigningAlgorithm> for latch_shared::Algorithm {
    fn from(alg: SigningAlgorithm) -> latch_shared::Algorithm {
        match alg {
            SigningAlgorithm::EdDsa => latch_shared::Algorithm::EdDSA,
            SigningAlgorithm::Es256 => latch_shared::Algorithm::ES256,
            SigningAlgorithm::Rs256 => latch_shared::Algorithm::RS256,
            SigningAlgorithm::Hs256 => latch_shared::Algorithm::HS256,
        }
    }
}

impl From<latch_shared::Algorithm> for SigningAlgorithm {
    fn from(alg: latch_shared::Algorithm) -> SigningAlgorithm {
        match alg {
            latch_shared::Algorithm::EdDSA => SigningAlgorithm::EdDsa,
            latch_shared::Algorithm::ES256 => SigningAlgorithm::Es256,
            latch_shared::Algorithm::RS256 => SigningAlgorithm::Rs256,
            latch_shared::Algorithm::HS256 => SigningAlgorithm::Hs256,
        }
    }
}
