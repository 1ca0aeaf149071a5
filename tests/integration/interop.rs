//! latch tokens verify with other JWT libraries, from the tenant's JWKS found
//! through its discovery document: the Rust `jsonwebtoken` crate and Node's `jose`.

use std::path::PathBuf;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

async fn discovery(app: &TestApp, tenant: &str) -> Value {
    let response =
        app.http.get(app.url(&format!("/t/{tenant}/.well-known/openid-configuration"))).send().await.expect("r");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("json")
}

#[tokio::test]
async fn the_discovery_document_names_the_issuer_and_jwks_of_its_tenant() {
    let app = spawn_app().await;
    let doc = discovery(&app, "demo").await;
    assert_eq!(doc["issuer"], app.url("/t/demo"), "issuer equals the URL the document was fetched under");
    assert_eq!(doc["jwks_uri"], app.url("/t/demo/.well-known/jwks.json"));
    assert_eq!(doc["id_token_signing_alg_values_supported"], json!(["EdDSA"]));
}

#[tokio::test]
async fn the_jwks_is_cacheable_and_answers_304_to_its_etag() {
    let app = spawn_app().await;
    let url = app.url("/t/demo/.well-known/jwks.json");
    let first = app.http.get(&url).send().await.expect("request");
    assert!(first.headers()["cache-control"].to_str().expect("ascii").contains("max-age="));
    let etag = first.headers()["etag"].to_str().expect("ascii").to_owned();
    let again = app.http.get(&url).header("if-none-match", &etag).send().await.expect("request");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let stale = app.http.get(&url).header("if-none-match", "\"something-else\"").send().await.expect("request");
    assert_eq!(stale.status(), StatusCode::OK);
}

#[tokio::test]
async fn new_tenants_cannot_choose_hs256_whose_tokens_nobody_else_could_verify() {
    let app = spawn_app().await;
    let refused = app
        .http
        .post(app.url("/admin/tenants"))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&json!({"id": "hmac", "algorithm": "HS256"}))
        .send()
        .await
        .expect("request");
    assert_problem(refused, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert_eq!(app.get_with("/t/hmac/.well-known/jwks.json", "").await.status(), StatusCode::NOT_FOUND);
}

/// Verifies like an outside Rust service would: discovery → JWKS → jsonwebtoken.
async fn verify_with_jsonwebtoken(
    app: &TestApp,
    tenant: &str,
    token: &str,
) -> Result<Value, jsonwebtoken::errors::Error> {
    let doc = discovery(app, tenant).await;
    let jwks: jsonwebtoken::jwk::JwkSet =
        app.http.get(doc["jwks_uri"].as_str().expect("uri")).send().await.expect("r").json().await.expect("jwks");
    let header = jsonwebtoken::decode_header(token)?;
    let jwk = jwks.find(header.kid.as_deref().expect("kid")).expect("kid published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk)?;
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_issuer(&[doc["issuer"].as_str().expect("issuer")]);
    validation.set_audience(&[tenant]);
    jsonwebtoken::decode::<Value>(token, &key, &validation).map(|data| data.claims)
}

fn tamper(token: &str) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: Value = serde_json::from_slice(&b64.decode(&parts[1]).expect("b64")).expect("json");
    claims["roles"] = json!(["admin"]);
    parts[1] = b64.encode(claims.to_string());
    parts.join(".")
}

#[tokio::test]
async fn access_tokens_of_every_asymmetric_algorithm_verify_with_the_jsonwebtoken_crate() {
    let app = spawn_app().await;
    app.create_tenant(json!({"id": "ec", "algorithm": "ES256"})).await;
    app.create_tenant(json!({"id": "rsa", "algorithm": "RS256"})).await;
    for tenant in ["demo", "ec", "rsa"] {
        let tokens = app.register(tenant, "interop@example.com").await;
        let token = tokens.access.as_str();
        let claims = verify_with_jsonwebtoken(&app, tenant, token).await.unwrap_or_else(|e| panic!("{tenant}: {e}"));
        assert_eq!(claims["sub"], tokens.user.id, "{tenant}");
        assert_eq!(claims["tid"], tenant);
        assert_eq!(claims["roles"], json!(["user"]));
        for claim in ["iss", "aud", "exp", "iat", "nbf", "jti", "sid", "scope"] {
            assert!(claims.get(claim).is_some(), "{tenant}: missing {claim}");
        }
        assert!(verify_with_jsonwebtoken(&app, tenant, &tamper(token)).await.is_err(), "{tenant}: tampered token");
    }
}

/// A folder with `jose` installed from npm (once per target directory).
async fn jose_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("node-jose");
    if !dir.join("node_modules/jose/package.json").exists() {
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("package.json"), r#"{"private":true,"type":"module"}"#).expect("write");
        let status = tokio::process::Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "jose@5"])
            .current_dir(&dir)
            .status()
            .await
            .expect("npm runs");
        assert!(status.success(), "npm install jose failed");
    }
    std::fs::write(dir.join("verify.mjs"), include_str!("verify_with_jose.mjs")).expect("write script");
    dir
}

async fn verify_with_jose(dir: &std::path::Path, discovery_url: &str, token: &str, audience: &str) -> Value {
    node_json(&dir.join("verify.mjs"), [discovery_url, token, audience]).await
}

#[tokio::test]
async fn access_tokens_verify_with_nodes_jose_from_the_discovery_document() {
    let app = spawn_app().await;
    let dir = jose_dir().await;
    app.create_tenant(json!({"id": "ec", "algorithm": "ES256"})).await;
    app.create_tenant(json!({"id": "rsa", "algorithm": "RS256"})).await;
    for tenant in ["demo", "ec", "rsa"] {
        let tokens = app.register(tenant, "jose@example.com").await;
        let token = tokens.access.as_str();
        let discovery_url = app.url(&format!("/t/{tenant}/.well-known/openid-configuration"));
        let verified = verify_with_jose(&dir, &discovery_url, token, tenant).await;
        assert_eq!(verified["ok"], true, "{tenant}: {verified}");
        assert_eq!(verified["payload"]["sub"], tokens.user.id);
        assert_eq!(verified["header"]["typ"], "at+jwt");
        let tampered = verify_with_jose(&dir, &discovery_url, &tamper(token), tenant).await;
        assert_eq!(tampered["ok"], false, "{tenant}: {tampered}");
        assert_eq!(tampered["code"], "ERR_JWS_SIGNATURE_VERIFICATION_FAILED");
        let foreign_audience = verify_with_jose(&dir, &discovery_url, token, "someone-else").await;
        assert_eq!(foreign_audience["code"], "ERR_JWT_CLAIM_VALIDATION_FAILED", "{foreign_audience}");
    }
}
