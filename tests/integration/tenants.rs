//! Operator API and tenant isolation.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn the_operator_api_needs_the_operator_token() {
    let app = spawn_app().await;
    let anonymous = app.http.get(app.url("/admin/tenants")).send().await.expect("request");
    assert_problem(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let wrong = app.get_with("/admin/tenants", "not-the-operator-token").await;
    assert_problem(wrong, StatusCode::UNAUTHORIZED, "operator_token_required").await;
    let user = app.register("demo", "user@example.com").await;
    let as_user = app.get_with("/admin/tenants", &user.access).await;
    assert_problem(as_user, StatusCode::UNAUTHORIZED, "operator_token_required").await;
    let create = app.http.post(app.url("/admin/tenants")).bearer_auth("wrong").json(&json!({"id": "x"})).send();
    assert_problem(create.await.expect("request"), StatusCode::UNAUTHORIZED, "operator_token_required").await;
}

#[tokio::test]
async fn tenants_are_created_listed_read_and_deleted() {
    let app = spawn_app().await;
    let created = app.create_tenant(json!({"id": "acme", "name": "Acme Corp", "algorithm": "ES256"})).await;
    assert_eq!(created["id"], "acme");
    assert_eq!(created["algorithm"], "ES256");
    assert_eq!(created["issuer"], app.url("/t/acme"));
    assert_eq!(created["settings"]["access_token_ttl"], 900);

    let duplicate = app.http.post(app.url("/admin/tenants")).bearer_auth(OPERATOR_TOKEN).json(&json!({"id": "acme"}));
    assert_problem(duplicate.send().await.expect("request"), StatusCode::CONFLICT, "tenant_exists").await;

    let list: Value = app.get_with("/admin/tenants", OPERATOR_TOKEN).await.json().await.expect("json");
    let ids: Vec<&str> = list["tenants"].as_array().expect("array").iter().filter_map(|t| t["id"].as_str()).collect();
    assert_eq!(ids, ["acme", "demo"]);
    let one: Value = app.get_with("/admin/tenants/acme", OPERATOR_TOKEN).await.json().await.expect("json");
    assert_eq!(one["name"], "Acme Corp");

    let user = app.register("acme", "someone@example.com").await;
    let delete =
        app.http.delete(app.url("/admin/tenants/acme")).bearer_auth(OPERATOR_TOKEN).send().await.expect("request");
    assert_eq!(delete.status(), StatusCode::NO_CONTENT);
    assert_problem(
        app.get_with("/admin/tenants/acme", OPERATOR_TOKEN).await,
        StatusCode::NOT_FOUND,
        "tenant_not_found",
    )
    .await;
    let token = user.access.as_str();
    assert_problem(app.get_with("/t/acme/users/me", token).await, StatusCode::NOT_FOUND, "tenant_not_found").await;
    assert_problem(
        app.try_login("acme", "someone@example.com", PASSWORD).await,
        StatusCode::NOT_FOUND,
        "tenant_not_found",
    )
    .await;

    app.create_tenant(json!({"id": "acme"})).await;
    let fresh = app.try_login("acme", "someone@example.com", PASSWORD).await;
    assert_problem(fresh, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
}

#[tokio::test]
async fn invalid_tenant_settings_are_refused() {
    let app = spawn_app().await;
    for body in [
        json!({"id": "Bad_Id"}),
        json!({"id": "ok", "access_token_ttl": 5}),
        json!({"id": "ok", "password_min_length": 2}),
        json!({"id": "ok", "algorithm": "none"}),
    ] {
        let response = app.http.post(app.url("/admin/tenants")).bearer_auth(OPERATOR_TOKEN).json(&body).send();
        let response = response.await.expect("request");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
    }
}

#[tokio::test]
async fn the_same_email_in_two_tenants_is_two_unrelated_users() {
    let app = spawn_app().await;
    app.create_tenant(json!({"id": "blue"})).await;
    let in_demo = app.register("demo", "twin@example.com").await;
    let in_blue = app.register("blue", "twin@example.com").await;
    assert_ne!(in_demo.user.id, in_blue.user.id);
    let change = app.http.patch(app.url("/t/blue/users/me")).bearer_auth(&in_blue.access);
    change.json(&json!({"name": "Blue Twin"})).send().await.expect("request");
    let demo_me: Value = app.get_with("/t/demo/users/me", &in_demo.access).await.json().await.expect("json");
    assert_eq!(demo_me["name"], Value::Null, "a change in one tenant leaves the other user alone");
    // Each password belongs to its own tenant.
    let reset = app
        .http
        .post(app.url("/t/blue/auth/login"))
        .json(&json!({"email": "twin@example.com", "password": "another password!"}));
    assert_eq!(reset.send().await.expect("request").status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_token_of_tenant_a_is_rejected_by_every_endpoint_of_tenant_b() {
    let app = spawn_app().await;
    app.create_tenant(json!({"id": "tenant-a"})).await;
    app.create_tenant(json!({"id": "tenant-b"})).await;
    let a = app.register("tenant-a", "crossing@example.com").await;
    app.register("tenant-b", "crossing@example.com").await;
    let access = a.access.as_str();
    let refresh = a.refresh.as_str();
    // In use at its own tenant first: the cache of verified tokens, which
    // every tenant shares, now holds it.
    assert_eq!(app.get_with("/t/tenant-a/users/me", access).await.status(), StatusCode::OK);

    let me = app.get_with("/t/tenant-b/users/me", access).await;
    let body = assert_problem(me, StatusCode::UNAUTHORIZED, "invalid_token").await;
    assert!(["wrong_issuer", "unknown_kid"].contains(&body["token_error"].as_str().unwrap_or("")), "{body}");
    let patch = app.http.patch(app.url("/t/tenant-b/users/me")).bearer_auth(access).json(&json!({"name": "x"}));
    assert_problem(patch.send().await.expect("request"), StatusCode::UNAUTHORIZED, "invalid_token").await;
    let logout = app.http.post(app.url("/t/tenant-b/auth/logout")).bearer_auth(access).send().await.expect("request");
    assert_problem(logout, StatusCode::UNAUTHORIZED, "invalid_token").await;
    assert_problem(app.try_refresh("tenant-b", refresh).await, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    let sessions = app.get_with("/t/tenant-b/users/me/sessions", access).await;
    assert_problem(sessions, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let sid = claims_of(access)["sid"].as_str().expect("sid").to_owned();
    let end = app.http.delete(app.url(&format!("/t/tenant-b/users/me/sessions/{sid}"))).bearer_auth(access);
    assert_problem(end.send().await.expect("request"), StatusCode::UNAUTHORIZED, "invalid_token").await;
    let password = app
        .http
        .post(app.url("/t/tenant-b/users/me/password"))
        .bearer_auth(access)
        .json(&json!({"current_password": PASSWORD, "new_password": "another long passphrase"}));
    assert_problem(password.send().await.expect("request"), StatusCode::UNAUTHORIZED, "invalid_token").await;
    let grant = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
    let token = app.post_form("/t/tenant-b/oauth/token", &grant).await;
    assert_eq!(token.status(), StatusCode::BAD_REQUEST, "another tenant's refresh token is an invalid_grant");
    let admin = app.get_with("/admin/tenants", access).await;
    assert_problem(admin, StatusCode::UNAUTHORIZED, "operator_token_required").await;

    // The token still works where it belongs, and its refresh token was not consumed by tenant B.
    assert_eq!(app.get_with("/t/tenant-a/users/me", access).await.status(), StatusCode::OK);
    assert_eq!(app.try_refresh("tenant-a", refresh).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_token_forged_with_the_same_kid_by_another_tenant_is_rejected() {
    // Both tenants sign with their own EdDSA keys; a token of B re-labelled with A's kid fails the signature.
    let app = spawn_app().await;
    app.create_tenant(json!({"id": "left"})).await;
    app.create_tenant(json!({"id": "right"})).await;
    let left_jwks: Value =
        app.http.get(app.url("/t/left/.well-known/jwks.json")).send().await.expect("r").json().await.expect("j");
    let right = app.register("right", "forger@example.com").await;
    let token = right.access.as_str();
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut header: Value = serde_json::from_slice(&b64.decode(&parts[0]).expect("b64")).expect("json");
    header["kid"] = left_jwks["keys"][0]["kid"].clone();
    parts[0] = b64.encode(header.to_string());
    let mut payload: Value = serde_json::from_slice(&b64.decode(&parts[1]).expect("b64")).expect("json");
    payload["iss"] = json!(app.url("/t/left"));
    payload["aud"] = json!("left");
    payload["tid"] = json!("left");
    parts[1] = b64.encode(payload.to_string());
    let body = assert_problem(
        app.get_with("/t/left/users/me", &parts.join(".")).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    assert_eq!(body["token_error"], "bad_signature");
}

async fn patch_tenant(app: &TestApp, tenant: &str, body: Value, token: &str) -> reqwest::Response {
    app.http
        .patch(app.url(&format!("/admin/tenants/{tenant}")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn the_operator_changes_tenant_settings_and_new_tokens_follow() {
    let app = spawn_app().await;
    app.create_tenant(json!({"id": "tunable"})).await;
    let before = app.register("tunable", "tune@example.com").await;
    let old_access = before.access.as_str().to_owned();

    let changed = patch_tenant(
        &app,
        "tunable",
        json!({"name": "Tuned", "access_token_ttl": 300, "email_claim": true, "cors_allowed_origins": ["https://app.example"]}),
        OPERATOR_TOKEN,
    )
    .await;
    assert_eq!(changed.status(), StatusCode::OK);
    let changed: Value = changed.json().await.expect("json");
    assert_eq!(changed["name"], "Tuned");
    assert_eq!(changed["settings"]["access_token_ttl"], 300);
    assert_eq!(changed["settings"]["cors_allowed_origins"], json!(["https://app.example"]));
    assert_eq!(changed["settings"]["refresh_token_ttl"], 30 * 24 * 3600, "fields left out keep their value");

    let after = app.login("tunable", "tune@example.com", PASSWORD).await;
    assert_eq!(after.expires_in, 300);
    let claims = claims_of(&after.access);
    assert_eq!(claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"), 300);
    assert_eq!(claims["email"], "tune@example.com");
    assert_eq!(
        app.get_with("/t/tunable/users/me", &old_access).await.status(),
        StatusCode::OK,
        "old tokens stay valid"
    );

    let moved = patch_tenant(&app, "tunable", json!({"audience": "https://api.example"}), OPERATOR_TOKEN).await;
    assert_eq!(moved.status(), StatusCode::OK);
    let body = assert_problem(
        app.get_with("/t/tunable/users/me", &old_access).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    assert_eq!(body["token_error"], "wrong_audience", "a new audience retires tokens issued for the old one");
    let fresh = app.login("tunable", "tune@example.com", PASSWORD).await;
    assert_eq!(claims_of(&fresh.access)["aud"], "https://api.example");
}

#[tokio::test]
async fn tenant_updates_are_validated_and_need_the_operator() {
    let app = spawn_app().await;
    let user = app.register("demo", "not-operator@example.com").await;
    let as_user = patch_tenant(&app, "demo", json!({"name": "x"}), &user.access).await;
    assert_problem(as_user, StatusCode::UNAUTHORIZED, "operator_token_required").await;
    for body in [
        json!({"access_token_ttl": 10}),
        json!({"refresh_grace_seconds": 301}),
        json!({"cors_allowed_origins": ["https://app.example/path"]}),
        json!({"cors_allowed_origins": ["*"]}),
    ] {
        assert_problem(
            patch_tenant(&app, "demo", body, OPERATOR_TOKEN).await,
            StatusCode::BAD_REQUEST,
            "invalid_setting",
        )
        .await;
    }
    let typo = patch_tenant(&app, "demo", json!({"acess_token_ttl": 60}), OPERATOR_TOKEN).await;
    assert_problem(typo, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert_problem(
        patch_tenant(&app, "nowhere", json!({"name": "x"}), OPERATOR_TOKEN).await,
        StatusCode::NOT_FOUND,
        "tenant_not_found",
    )
    .await;
    let unchanged: Value = app.get_with("/admin/tenants/demo", OPERATOR_TOKEN).await.json().await.expect("json");
    assert_eq!(unchanged["settings"]["access_token_ttl"], 900, "a refused update changes nothing");
    assert_eq!(unchanged["name"], "Demo");
}
