//! RFC 6749 token endpoint, RFC 7009 revocation, RFC 7662 introspection, and discovery.

use std::sync::Arc;

use latch_server::clock::ManualClock;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

async fn oauth_error(response: reqwest::Response, status: StatusCode, error: &str) -> Value {
    assert_eq!(response.status(), status, "expected {error}");
    let content_type = response.headers()["content-type"].to_str().expect("ascii").to_owned();
    assert!(content_type.starts_with("application/json"), "{content_type}");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"], error, "{body}");
    body
}

#[tokio::test]
async fn the_password_grant_answers_per_rfc_6749() {
    let app = spawn_app().await;
    app.register("demo", "oauth@example.com").await;
    let form = [("grant_type", "password"), ("username", "oauth@example.com"), ("password", PASSWORD)];
    let response = app.post_form("/t/demo/oauth/token", &form).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
    // Exactly the RFC 6749 §5.1 members (OAuthTokens refuses any other).
    let body: OAuthTokens = response.json().await.expect("json");
    assert_eq!(body.token_type, "Bearer");
    assert_eq!(body.expires_in, 900);
    assert_eq!(body.scope, "email openid profile");
    assert!(body.refresh_token.starts_with("latch_rt_"));
    assert_eq!(app.get_with("/t/demo/users/me", &body.access_token).await.status(), StatusCode::OK);

    let refreshed = app
        .post_form("/t/demo/oauth/token", &[("grant_type", "refresh_token"), ("refresh_token", &body.refresh_token)])
        .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let refreshed: OAuthTokens = refreshed.json().await.expect("json");
    assert_ne!(refreshed.refresh_token, body.refresh_token);
}

#[tokio::test]
async fn requested_scopes_are_limited_to_what_the_roles_allow() {
    let app = spawn_app().await;
    app.register("demo", "scoped@example.com").await;
    let narrow = [
        ("grant_type", "password"),
        ("username", "scoped@example.com"),
        ("password", PASSWORD),
        ("scope", "profile openid"),
    ];
    let response = app.post_form("/t/demo/oauth/token", &narrow).await;
    let body: OAuthTokens = response.json().await.expect("json");
    assert_eq!(body.scope, "openid profile");
    assert_eq!(claims_of(&body.access_token)["scope"], "openid profile");
    let refreshed: Value = app
        .post_form("/t/demo/oauth/token", &[("grant_type", "refresh_token"), ("refresh_token", &body.refresh_token)])
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(refreshed["scope"], "openid profile", "a refresh keeps the narrowed scope");

    let wide = [
        ("grant_type", "password"),
        ("username", "scoped@example.com"),
        ("password", PASSWORD),
        ("scope", "openid admin"),
    ];
    oauth_error(app.post_form("/t/demo/oauth/token", &wide).await, StatusCode::BAD_REQUEST, "invalid_scope").await;
    let json_login = app
        .post_json(
            "/t/demo/auth/login",
            &json!({"email": "scoped@example.com", "password": PASSWORD, "scope": "admin"}),
        )
        .await;
    assert_problem(json_login, StatusCode::BAD_REQUEST, "invalid_scope").await;
}

#[tokio::test]
async fn token_endpoint_errors_are_rfc_6749_bodies() {
    let app = spawn_app().await;
    app.register("demo", "errors@example.com").await;
    let bad_password =
        [("grant_type", "password"), ("username", "errors@example.com"), ("password", "wrong password!")];
    oauth_error(app.post_form("/t/demo/oauth/token", &bad_password).await, StatusCode::BAD_REQUEST, "invalid_grant")
        .await;
    let unknown_user = [("grant_type", "password"), ("username", "nobody@example.com"), ("password", PASSWORD)];
    oauth_error(app.post_form("/t/demo/oauth/token", &unknown_user).await, StatusCode::BAD_REQUEST, "invalid_grant")
        .await;
    let bad_refresh = [("grant_type", "refresh_token"), ("refresh_token", "latch_rt_nope")];
    oauth_error(app.post_form("/t/demo/oauth/token", &bad_refresh).await, StatusCode::BAD_REQUEST, "invalid_grant")
        .await;
    let code = [("grant_type", "authorization_code"), ("code", "x")];
    oauth_error(app.post_form("/t/demo/oauth/token", &code).await, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let implicit = [("grant_type", "implicit")];
    oauth_error(
        app.post_form("/t/demo/oauth/token", &implicit).await,
        StatusCode::BAD_REQUEST,
        "unsupported_grant_type",
    )
    .await;
    oauth_error(
        app.post_form("/t/demo/oauth/token", &[("username", "x")]).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    let missing = [("grant_type", "password"), ("username", "errors@example.com")];
    oauth_error(app.post_form("/t/demo/oauth/token", &missing).await, StatusCode::BAD_REQUEST, "invalid_request").await;
    let as_json = app.post_json("/t/demo/oauth/token", &json!({"grant_type": "password"})).await;
    oauth_error(as_json, StatusCode::BAD_REQUEST, "invalid_request").await;
    let garbage = app
        .http
        .post(app.url("/t/demo/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![0xff, 0xfe, b'=', 0x80]);
    oauth_error(garbage.send().await.expect("request"), StatusCode::BAD_REQUEST, "invalid_request").await;
    let nowhere = app.post_form("/t/nowhere/oauth/token", &bad_password).await;
    oauth_error(nowhere, StatusCode::NOT_FOUND, "invalid_request").await;
    let bad_slug = app.post_form("/t/Bad_Slug/oauth/token", &bad_password).await;
    oauth_error(bad_slug, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn the_explorers_password_flow_logs_in_through_the_token_url_it_declares() {
    let app = spawn_app().await;
    app.register("demo", "explorer@example.com").await;
    let spec: Value = app.http.get(app.url("/openapi.json")).send().await.expect("r").json().await.expect("json");
    let scheme = &spec["components"]["securitySchemes"]["DemoOAuth"];
    assert_eq!(scheme["type"], "oauth2");
    let token_url = scheme["flows"]["password"]["tokenUrl"].as_str().expect("tokenUrl");
    let me = &spec["paths"]["/t/{tenant}/users/me"]["get"]["security"];
    assert!(me.to_string().contains("DemoOAuth"), "{me}");

    // What Swagger UI sends for the password flow: a form, and an empty Basic client credential.
    let response = app
        .http
        .post(app.url(token_url))
        .basic_auth("", Some(""))
        .form(&[
            ("grant_type", "password"),
            ("username", "explorer@example.com"),
            ("password", PASSWORD),
            ("scope", ""),
        ])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let body: OAuthTokens = response.json().await.expect("json");
    let me = app.get_with("/t/demo/users/me", &body.access_token).await;
    assert_eq!(me.status(), StatusCode::OK);
}

#[tokio::test]
async fn revoking_a_refresh_or_access_token_ends_its_session_and_unknown_tokens_are_fine() {
    let app = spawn_app().await;
    let first = app.register("demo", "revoke@example.com").await;
    let second = app.login("demo", "revoke@example.com", PASSWORD).await;

    let revoke = app.post_form("/t/demo/oauth/revoke", &[("token", &first.refresh)]).await;
    assert_eq!(revoke.status(), StatusCode::OK);
    let refresh = app.try_refresh("demo", &first.refresh).await;
    assert_problem(refresh, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    let me = app.get_with("/t/demo/users/me", &first.access).await;
    assert_problem(me, StatusCode::UNAUTHORIZED, "session_ended").await;

    let access = second.access.as_str();
    let revoke = app.post_form("/t/demo/oauth/revoke", &[("token", access), ("token_type_hint", "access_token")]).await;
    assert_eq!(revoke.status(), StatusCode::OK);
    assert_problem(app.get_with("/t/demo/users/me", access).await, StatusCode::UNAUTHORIZED, "session_ended").await;

    for unknown in ["latch_rt_unknown", "a.b.c", "whatever"] {
        assert_eq!(app.post_form("/t/demo/oauth/revoke", &[("token", unknown)]).await.status(), StatusCode::OK);
    }
    oauth_error(app.post_form("/t/demo/oauth/revoke", &[]).await, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn a_token_of_another_tenant_cannot_be_revoked_through_this_one() {
    let app = spawn_app().await;
    app.create_tenant(json!({"id": "other"})).await;
    let victim = app.register("other", "victim@example.com").await;
    for token in [&victim.refresh, victim.access.as_str()] {
        assert_eq!(app.post_form("/t/demo/oauth/revoke", &[("token", token)]).await.status(), StatusCode::OK);
    }
    assert_eq!(app.get_with("/t/other/users/me", &victim.access).await.status(), StatusCode::OK);
    assert_eq!(app.try_refresh("other", &victim.refresh).await.status(), StatusCode::OK);
}

async fn introspection_secret(app: &TestApp, tenant: &str) -> String {
    let response = app.operator_post(&format!("/admin/tenants/{tenant}/introspection-secret"), &json!({})).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.expect("json");
    body["secret"].as_str().expect("secret").to_owned()
}

async fn introspect(app: &TestApp, tenant: &str, secret: &str, token: &str) -> Value {
    let response = app
        .http
        .post(app.url(&format!("/t/{tenant}/oauth/introspect")))
        .bearer_auth(secret)
        .form(&[("token", token)])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.expect("json")
}

#[tokio::test]
async fn introspection_needs_a_tenant_scoped_credential() {
    let app = spawn_app().await;
    app.create_tenant(json!({"id": "other"})).await;
    let user = app.register("demo", "inspect@example.com").await;
    let token = user.access.as_str();
    let anonymous = app.post_form("/t/demo/oauth/introspect", &[("token", token)]).await;
    assert!(anonymous.headers().contains_key("www-authenticate"));
    oauth_error(anonymous, StatusCode::UNAUTHORIZED, "invalid_client").await;

    let other_secret = introspection_secret(&app, "other").await;
    let foreign =
        app.http.post(app.url("/t/demo/oauth/introspect")).bearer_auth(&other_secret).form(&[("token", token)]);
    oauth_error(foreign.send().await.expect("request"), StatusCode::UNAUTHORIZED, "invalid_client").await;

    let secret = introspection_secret(&app, "demo").await;
    let basic = app
        .http
        .post(app.url("/t/demo/oauth/introspect"))
        .basic_auth("resource-server", Some(&secret))
        .form(&[("token", token)]);
    let basic: Value = basic.send().await.expect("request").json().await.expect("json");
    assert_eq!(basic["active"], true);
    assert_eq!(introspect(&app, "demo", OPERATOR_TOKEN, token).await["active"], true, "the operator may introspect");

    let replaced = introspection_secret(&app, "demo").await;
    let stale = app.http.post(app.url("/t/demo/oauth/introspect")).bearer_auth(&secret).form(&[("token", token)]);
    oauth_error(stale.send().await.expect("request"), StatusCode::UNAUTHORIZED, "invalid_client").await;
    assert_eq!(introspect(&app, "demo", &replaced, token).await["active"], true);
}

#[tokio::test]
async fn introspection_reports_live_tokens_and_nothing_about_dead_ones() {
    let clock = Arc::new(ManualClock::new(1_900_000_000));
    let app = spawn_app_at(clock.clone()).await;
    app.create_tenant(json!({"id": "other"})).await;
    let secret = introspection_secret(&app, "demo").await;
    let user = app.register("demo", "live@example.com").await;
    let access = user.access.as_str();
    let refresh = user.refresh.as_str();

    let active = introspect(&app, "demo", &secret, access).await;
    assert_eq!(active["active"], true);
    assert_eq!((&active["token_type"], &active["token_use"]), (&json!("Bearer"), &json!("access_token")));
    assert_eq!(active["sub"], user.user.id);
    assert_eq!(active["username"], "live@example.com");
    assert_eq!(active["scope"], "email openid profile");
    assert_eq!(active["iss"], app.url("/t/demo"));
    assert_eq!(active["aud"], "demo");
    assert_eq!(active["exp"], 1_900_000_000i64 + 900);
    let refresh_info = introspect(&app, "demo", &secret, refresh).await;
    assert_eq!(refresh_info["active"], true);
    assert_eq!((&refresh_info["token_type"], &refresh_info["token_use"]), (&json!("Bearer"), &json!("refresh_token")));
    assert_eq!(refresh_info["sid"], active["sid"]);

    let foreign = app.register("other", "live@example.com").await;
    let inactive = |v: &Value| *v == json!({"active": false});
    assert!(inactive(&introspect(&app, "demo", &secret, &foreign.access).await), "foreign tenant");
    assert!(inactive(&introspect(&app, "demo", &secret, "not.a.token").await), "malformed");
    assert!(inactive(&introspect(&app, "demo", &secret, "latch_rt_unknown").await), "unknown refresh token");

    let rotated = app.refresh("demo", refresh).await;
    assert!(inactive(&introspect(&app, "demo", &secret, refresh).await), "rotated refresh token");
    clock.advance(900 + 30);
    assert!(inactive(&introspect(&app, "demo", &secret, access).await), "expired");
    let fresh = rotated.refresh.as_str();
    assert_eq!(introspect(&app, "demo", &secret, fresh).await["active"], true);
    app.post_form("/t/demo/oauth/revoke", &[("token", fresh)]).await;
    assert!(inactive(&introspect(&app, "demo", &secret, fresh).await), "revoked");
}

#[tokio::test]
async fn the_discovery_document_is_valid_authorization_server_metadata() {
    let app = spawn_app().await;
    app.create_tenant(json!({"id": "rsa", "algorithm": "RS256"})).await;
    for (tenant, alg) in [("demo", "EdDSA"), ("rsa", "RS256")] {
        let url = app.url(&format!("/t/{tenant}/.well-known/openid-configuration"));
        let doc: Value = app.http.get(&url).send().await.expect("r").json().await.expect("json");
        let issuer = doc["issuer"].as_str().expect("issuer");
        assert_eq!(format!("{issuer}/.well-known/openid-configuration"), url, "issuer is the URL it was fetched under");
        assert!(!issuer.ends_with('/'));
        assert_eq!(doc["response_types_supported"], json!(["code"]));
        assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(doc["subject_types_supported"], json!(["public"]));
        assert_eq!(doc["id_token_signing_alg_values_supported"], json!([alg]));
        let grants = doc["grant_types_supported"].as_array().expect("grant types");
        for grant in ["authorization_code", "refresh_token", "password", "urn:latch:params:oauth:grant-type:mfa-otp"] {
            assert!(grants.contains(&json!(grant)), "{grant} in {grants:?}");
        }
        assert_eq!(
            doc["token_endpoint_auth_methods_supported"],
            json!(["client_secret_basic", "client_secret_post", "none"])
        );
        assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
        assert!(doc["introspection_endpoint_auth_methods_supported"].is_array());
        let jwks = app.http.get(doc["jwks_uri"].as_str().expect("jwks_uri")).send().await.expect("request");
        assert_eq!(jwks.status(), StatusCode::OK);
        // RFC 8414 §3: the same metadata at the well-known path before the issuer's path.
        let rfc8414 = app.url(&format!("/.well-known/oauth-authorization-server/t/{tenant}"));
        let same: Value = app.http.get(&rfc8414).send().await.expect("r").json().await.expect("json");
        assert_eq!(same, doc);
        for endpoint in ["authorization_endpoint", "userinfo_endpoint", "end_session_endpoint"] {
            let at = doc[endpoint].as_str().unwrap_or_else(|| panic!("{endpoint} listed"));
            assert!(at.starts_with(issuer), "{endpoint} lives under the issuer");
            let status = app.http.get(at).send().await.expect("request").status();
            assert!(
                status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
                "{endpoint}: {status}"
            );
        }
        for endpoint in ["token_endpoint", "revocation_endpoint", "introspection_endpoint"] {
            let at = doc[endpoint].as_str().unwrap_or_else(|| panic!("{endpoint} listed"));
            assert!(at.starts_with(issuer), "{endpoint} lives under the issuer");
            let status = app.http.post(at).form(&[("x", "y")]).send().await.expect("request").status();
            assert!(
                status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
                "{endpoint} answers: {status}"
            );
        }
    }
}

#[tokio::test]
async fn introspection_reports_the_current_roles_and_scope_not_the_ones_frozen_in_the_token() {
    let app = spawn_app().await;
    let admin = app.admin_of("demo", "demoted@example.com").await;
    let token = admin.access.as_str();
    let frozen = claims_of(token);
    assert_eq!(frozen["roles"], json!(["admin", "user"]));
    let secret = introspection_secret(&app, "demo").await;
    let before = introspect(&app, "demo", &secret, token).await;
    assert_eq!(before["roles"], json!(["admin", "user"]));

    let id = admin.user.id.as_str();
    let roles = json!({"roles": ["user"]});
    let path = format!("/t/demo/admin/users/{id}/roles");
    let demoted = app.send(reqwest::Method::PUT, &path, OPERATOR_TOKEN, Some(&roles)).await;
    assert_eq!(demoted.status(), StatusCode::OK);
    let user_scope = claims_of(&app.register("demo", "plain@example.com").await.access)["scope"].clone();
    assert_ne!(frozen["scope"], user_scope, "an admin's scope is wider than a user's");

    // Before, introspection still said roles ["admin", "user"] and the admin scope.
    let after = introspect(&app, "demo", &secret, token).await;
    assert_eq!(after["active"], json!(true));
    assert_eq!(after["roles"], json!(["user"]));
    assert_eq!(after["scope"], user_scope);
}

#[tokio::test]
async fn a_token_that_carries_the_email_says_whether_it_was_verified() {
    let app = spawn_app().await;
    app.create_tenant(json!({"id": "mail", "email_claim": true, "email_verification": "optional"})).await;
    let registered = app.register("mail", "claims@example.com").await;
    let claims = claims_of(&registered.access);
    assert_eq!(
        (claims["email"].clone(), claims["email_verified"].clone()),
        (json!("claims@example.com"), json!(false))
    );
    let link = token_in(&wait_for_mail(&app, 1).await[0]);
    let verified = app.post_json("/t/mail/auth/verify-email", &json!({"token": link})).await;
    assert_eq!(verified.status(), StatusCode::NO_CONTENT);
    let login = app.login("mail", "claims@example.com", PASSWORD).await;
    assert_eq!(claims_of(&login.access)["email_verified"], json!(true));
    // Without the email claim, neither.
    let plain = claims_of(&app.register("demo", "noclaim@example.com").await.access);
    assert!(plain.get("email").is_none() && plain.get("email_verified").is_none(), "{plain}");
}
