//! Per-tenant discovery document and JWKS.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::{ApiResult, ApiTags, tenant_id};
use crate::domain::Latch;
use crate::store::Registration;

/// OIDC discovery and JWKS.
pub struct WellKnownApi;

/// A public JSON Web Key (RFC 7517).
#[derive(Debug, Object)]
pub struct JsonWebKey {
    /// Key type: `OKP`, `EC` or `RSA`.
    pub kty: String,
    /// Key id.
    #[oai(nullable)]
    pub kid: Option<String>,
    /// The key's one algorithm.
    #[oai(nullable)]
    pub alg: Option<String>,
    /// Always `sig`.
    #[oai(rename = "use")]
    #[oai(nullable)]
    pub use_: Option<String>,
    /// Curve (`Ed25519`, `P-256`).
    #[oai(skip_serializing_if_is_none)]
    pub crv: Option<String>,
    /// Public key / x coordinate.
    #[oai(skip_serializing_if_is_none)]
    pub x: Option<String>,
    /// y coordinate.
    #[oai(skip_serializing_if_is_none)]
    pub y: Option<String>,
    /// RSA modulus.
    #[oai(skip_serializing_if_is_none)]
    pub n: Option<String>,
    /// RSA exponent.
    #[oai(skip_serializing_if_is_none)]
    pub e: Option<String>,
}

/// A JSON Web Key Set.
#[derive(Debug, Object)]
pub struct JsonWebKeySet {
    /// The tenant's published keys.
    pub keys: Vec<JsonWebKey>,
}

/// The JWKS, cacheable.
#[derive(ApiResponse)]
pub enum JwksResponse {
    /// The key set.
    #[oai(status = 200)]
    Ok(Json<JsonWebKeySet>, #[oai(header = "Cache-Control")] String, #[oai(header = "ETag")] String),
    /// Unchanged since the ETag sent in `If-None-Match`.
    #[oai(status = 304)]
    NotModified(#[oai(header = "Cache-Control")] String, #[oai(header = "ETag")] String),
}

/// The revocation feed, cacheable for a few seconds.
#[derive(ApiResponse)]
pub enum RevocationFeedResponse {
    /// The feed: a compact JWS (`typ` `latch-revocations+jwt`) signed with
    /// the tenant's current key; its payload is `{iss, cursor, since?,
    /// revoked: [[sid, ended_at, exp], ...]}` (docs/revocation-feed.md).
    #[oai(status = 200, content_type = "application/jwt")]
    Ok(PlainText<String>, #[oai(header = "Cache-Control")] String, #[oai(header = "ETag")] String),
    /// Unchanged since the ETag sent in `If-None-Match`.
    #[oai(status = 304)]
    NotModified(#[oai(header = "Cache-Control")] String, #[oai(header = "ETag")] String),
}

/// Whether `If-None-Match` names `etag` (or `*`); weak tags compare by their opaque part.
fn none_match(if_none_match: Option<&str>, etag: &str) -> bool {
    if_none_match
        .is_some_and(|tags| tags.split(',').map(|t| t.trim().trim_start_matches("W/")).any(|t| t == etag || t == "*"))
}

/// OpenID Provider metadata (OpenID Connect Discovery 1.0), which is also
/// the tenant's OAuth authorization-server metadata (RFC 8414).
#[derive(Debug, Object)]
pub struct Discovery {
    /// The issuer; equal to the URL this document was fetched under, minus the well-known suffix.
    pub issuer: String,
    /// The authorization endpoint (code flow with PKCE, hosted sign-in).
    pub authorization_endpoint: String,
    /// RFC 6749 token endpoint (form-encoded).
    pub token_endpoint: String,
    /// OpenID Connect userinfo.
    pub userinfo_endpoint: String,
    /// RP-initiated logout.
    pub end_session_endpoint: String,
    /// Where the tenant's public keys are.
    pub jwks_uri: String,
    /// RFC 7009 revocation endpoint.
    pub revocation_endpoint: String,
    /// RFC 7662 introspection endpoint.
    pub introspection_endpoint: String,
    /// `code`.
    pub response_types_supported: Vec<String>,
    /// `query`.
    pub response_modes_supported: Vec<String>,
    /// `authorization_code`, `refresh_token`, `password` (legacy, for clients
    /// allowed it and latch's own first-party apps) and latch's MFA grant.
    pub grant_types_supported: Vec<String>,
    /// `S256` (PKCE is required; `plain` is refused).
    pub code_challenge_methods_supported: Vec<String>,
    /// `client_secret_basic`, `client_secret_post`, and `none` for public clients.
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// `none`: possession of the token is enough to revoke it.
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// `client_secret_basic` (the tenant's introspection secret as the password); a bearer secret works too.
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// Signing algorithms of this tenant's ID tokens.
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// Always `["public"]`.
    pub subject_types_supported: Vec<String>,
    /// Scopes defined by the tenant's roles.
    pub scopes_supported: Vec<String>,
    /// Claims in ID tokens, userinfo and access tokens.
    pub claims_supported: Vec<String>,
    /// `none`, `login`, `consent`.
    pub prompt_values_supported: Vec<String>,
    /// True: authorization answers carry `iss` (RFC 9207).
    pub authorization_response_iss_parameter_supported: bool,
    /// The API documentation.
    pub service_documentation: String,
    /// latch's own member: `open` when anyone may register at
    /// `{issuer}/auth/register`, `closed` when only administrators create
    /// (or invite) users. Not OIDC's `registration_endpoint`, which is for clients.
    pub latch_registration: String,
    /// latch's own member: the tenant's revocation feed, the sessions ended
    /// while their access tokens may still be valid, signed with the
    /// tenant's key, for offline verifiers (docs/revocation-feed.md).
    pub latch_revocation_feed_uri: String,
    /// latch's own member: where people register, present while registration is open.
    #[oai(nullable)]
    pub latch_registration_endpoint: Option<String>,
}

async fn discovery(latch: &Latch, tenant: &str) -> ApiResult<Discovery> {
    let runtime = latch.runtime(&tenant_id(tenant)?).await?;
    let mut scopes: Vec<String> = runtime.tenant.settings.roles.values().flatten().cloned().collect();
    scopes.sort();
    scopes.dedup();
    let claims = [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "nbf",
        "jti",
        "tid",
        "sid",
        "roles",
        "scope",
        "client_id",
        "auth_time",
        "nonce",
        "amr",
        "azp",
        "email",
        "email_verified",
        "name",
    ];
    let issuer = &runtime.issuer;
    let registration = runtime.tenant.settings.registration;
    let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    Ok(Discovery {
        authorization_endpoint: format!("{issuer}/oauth/authorize"),
        token_endpoint: format!("{issuer}/oauth/token"),
        userinfo_endpoint: format!("{issuer}/oauth/userinfo"),
        end_session_endpoint: format!("{issuer}/oauth/logout"),
        jwks_uri: format!("{issuer}/.well-known/jwks.json"),
        revocation_endpoint: format!("{issuer}/oauth/revoke"),
        introspection_endpoint: format!("{issuer}/oauth/introspect"),
        response_types_supported: strings(&["code"]),
        response_modes_supported: strings(&["query"]),
        grant_types_supported: strings(&super::oauth::SUPPORTED_GRANTS),
        code_challenge_methods_supported: strings(&["S256"]),
        token_endpoint_auth_methods_supported: strings(&["client_secret_basic", "client_secret_post", "none"]),
        revocation_endpoint_auth_methods_supported: strings(&["none"]),
        introspection_endpoint_auth_methods_supported: strings(&["client_secret_basic"]),
        issuer: runtime.issuer.clone(),
        id_token_signing_alg_values_supported: vec![runtime.signer.algorithm().as_str().into()],
        subject_types_supported: strings(&["public"]),
        scopes_supported: scopes,
        claims_supported: strings(&claims),
        prompt_values_supported: strings(&["none", "login", "consent"]),
        authorization_response_iss_parameter_supported: true,
        service_documentation: format!("{}/docs", latch.public_url()),
        latch_registration: match registration {
            Registration::Open => "open".into(),
            Registration::Closed => "closed".into(),
        },
        latch_registration_endpoint: (registration == Registration::Open).then(|| format!("{issuer}/auth/register")),
        latch_revocation_feed_uri: format!("{issuer}/.well-known/revocations"),
    })
}

/// How long clients may cache the JWKS. Short enough that a key published
/// before it signs is picked up in time.
const JWKS_CACHE_CONTROL: &str = "public, max-age=300, must-revalidate";

#[OpenApi(tag = "ApiTags::Discovery")]
impl WellKnownApi {
    /// OIDC discovery document of a tenant.
    #[oai(path = "/t/:tenant/.well-known/openid-configuration", method = "get", operation_id = "discovery")]
    async fn discovery(&self, latch: Data<&Arc<Latch>>, tenant: Path<String>) -> ApiResult<Json<Discovery>> {
        Ok(Json(discovery(&latch, &tenant).await?))
    }

    /// The same document at the RFC 8414 path.
    #[oai(
        path = "/.well-known/oauth-authorization-server/t/:tenant",
        method = "get",
        operation_id = "authorizationServerMetadata"
    )]
    async fn authorization_server(&self, latch: Data<&Arc<Latch>>, tenant: Path<String>) -> ApiResult<Json<Discovery>> {
        Ok(Json(discovery(&latch, &tenant).await?))
    }

    /// The tenant's public signing keys (RFC 7517). HMAC secrets never appear here.
    #[oai(path = "/t/:tenant/.well-known/jwks.json", method = "get", operation_id = "jwks")]
    async fn jwks(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        #[oai(name = "If-None-Match")] if_none_match: Header<Option<String>>,
    ) -> ApiResult<JwksResponse> {
        let runtime = latch.runtime(&tenant_id(&tenant)?).await?;
        let etag = runtime.jwks_etag.clone();
        if none_match(if_none_match.0.as_deref(), &etag) {
            return Ok(JwksResponse::NotModified(JWKS_CACHE_CONTROL.into(), etag));
        }
        let keys = runtime
            .jwks
            .keys
            .iter()
            .map(|jwk| JsonWebKey {
                kty: jwk.kty.clone(),
                kid: jwk.kid.clone(),
                alg: jwk.alg.clone(),
                use_: jwk.use_.clone(),
                crv: jwk.crv.clone(),
                x: jwk.x.clone(),
                y: jwk.y.clone(),
                n: jwk.n.clone(),
                e: jwk.e.clone(),
            })
            .collect();
        Ok(JwksResponse::Ok(Json(JsonWebKeySet { keys }), JWKS_CACHE_CONTROL.into(), etag))
    }

    /// The tenant's revocation feed: the sessions ended (logout, password
    /// change or reset, disable, deletion, an administrator's revocation,
    /// refresh-token reuse) while access tokens of theirs may still be
    /// valid, as a document signed with the tenant's key. With `since` (the
    /// `cursor` of an earlier document) only the sessions ended after it;
    /// a cursor this log cannot continue gets the whole feed, without `since`.
    #[oai(path = "/t/:tenant/.well-known/revocations", method = "get", operation_id = "revocationFeed")]
    async fn revocation_feed(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        /// The `cursor` of an earlier document: `{epoch}.{seq}`.
        #[oai(validator(pattern = r"^[0-9]{1,19}\.[0-9]{1,19}$"))]
        since: Query<Option<String>>,
        #[oai(name = "If-None-Match")] if_none_match: Header<Option<String>>,
    ) -> ApiResult<RevocationFeedResponse> {
        let feed = latch.revocation_feed(&tenant_id(&tenant)?, since.0.as_deref()).await?;
        let cache_control = format!("public, max-age={}", crate::domain::FEED_MAX_AGE_SECONDS);
        if none_match(if_none_match.0.as_deref(), &feed.etag) {
            return Ok(RevocationFeedResponse::NotModified(cache_control, feed.etag));
        }
        let etag = feed.etag.clone();
        let document = tokio::task::spawn_blocking(move || feed.sign())
            .await
            .map_err(|e| crate::domain::Error::Internal(format!("signing the feed: {e}")))??;
        Ok(RevocationFeedResponse::Ok(PlainText(document), cache_control, etag))
    }
}
