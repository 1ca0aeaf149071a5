//! Signing-key rotation: published before it signs, old keys kept until their
//! tokens expire, through the operator API, the CLI and automatically.

use std::sync::Arc;

use latch_server::clock::ManualClock;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

const START: i64 = 1_900_000_000;

/// The key ids of a JWKS, sorted (keys created in the same second have no inherent order).
fn kids(jwks: &Value) -> Vec<String> {
    let mut kids: Vec<String> =
        jwks["keys"].as_array().expect("keys").iter().map(|k| k["kid"].as_str().expect("kid").to_owned()).collect();
    kids.sort();
    kids
}

fn sorted(mut kids: Vec<String>) -> Vec<String> {
    kids.sort();
    kids
}

async fn rotate(app: &TestApp, tenant: &str, delay: u32) -> Value {
    let response = app
        .operator_post(&format!("/admin/tenants/{tenant}/keys/rotate"), &json!({"publish_delay_seconds": delay}))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.expect("json")
}

#[tokio::test]
async fn a_rotated_key_is_published_before_it_signs_and_the_old_one_stays_until_its_tokens_expire() {
    let clock = Arc::new(ManualClock::new(START));
    let app = spawn_app_at(clock.clone()).await;
    let before = app.register("demo", "keys@example.com").await;
    let old_token = before.access.as_str().to_owned();
    let old_kid = kid_of(&old_token);
    let etag_before =
        app.http.get(app.url("/t/demo/.well-known/jwks.json")).send().await.expect("r").headers()["etag"].clone();

    let new_key = rotate(&app, "demo", 60).await;
    let new_kid = new_key["kid"].as_str().expect("kid").to_owned();
    assert_ne!(new_kid, old_kid);
    assert_eq!(kids(&app.jwks("demo").await), sorted(vec![old_kid.clone(), new_kid.clone()]), "published at once");
    let stale = app
        .http
        .get(app.url("/t/demo/.well-known/jwks.json"))
        .header("if-none-match", etag_before)
        .send()
        .await
        .expect("r");
    assert_eq!(stale.status(), StatusCode::OK, "the ETag changed with the key set");

    let during = app.login("demo", "keys@example.com", PASSWORD).await;
    assert_eq!(kid_of(&during.access), old_kid, "the new key does not sign before its time");

    clock.advance(60);
    let after = app.login("demo", "keys@example.com", PASSWORD).await;
    let new_token = after.access.as_str().to_owned();
    assert_eq!(kid_of(&new_token), new_kid);
    assert_eq!(
        app.get_with("/t/demo/users/me", &old_token).await.status(),
        StatusCode::OK,
        "old tokens keep verifying"
    );
    assert_eq!(app.get_with("/t/demo/users/me", &new_token).await.status(), StatusCode::OK);
    let keys = latch_shared::KeySet::from_jwks_json(&app.jwks("demo").await.to_string()).expect("jwks");
    let validation = latch_shared::Validation::new(app.url("/t/demo"), "demo").expect("options");
    for token in [&old_token, &new_token] {
        assert!(latch_shared::verify(token, &keys, &validation, clock_now(&clock)).is_ok(), "offline too");
    }

    // The old key retired at START + 60; its last token expires 900 s later (plus a 300 s margin).
    clock.advance(900 + 300 - 1);
    assert_eq!(kids(&app.jwks("demo").await), sorted(vec![old_kid.clone(), new_kid.clone()]));
    clock.advance(1);
    assert_eq!(kids(&app.jwks("demo").await), [new_kid], "dropped once nothing it signed can be valid");

    let listed: Value = app.get_with("/admin/tenants/demo/keys", OPERATOR_TOKEN).await.json().await.expect("json");
    let retired =
        listed["keys"].as_array().expect("keys").iter().find(|k| k["kid"] == old_kid.as_str()).expect("listed");
    assert!(retired["retired_at"].is_string());
    assert!(listed.to_string().find("sealed").is_none(), "no private material in the listing");
}

#[tokio::test]
async fn a_rotation_without_a_body_publishes_for_the_jwks_max_age_before_it_signs() {
    let clock = Arc::new(ManualClock::new(START));
    let app = spawn_app_at(clock.clone()).await;
    let user = app.register("demo", "later@example.com").await;
    let old_kid = kid_of(&user.access);
    let jwks_max_age =
        app.http.get(app.url("/t/demo/.well-known/jwks.json")).send().await.expect("r").headers()["cache-control"]
            .to_str()
            .expect("ascii")
            .to_owned();
    assert!(jwks_max_age.contains("max-age=300"), "{jwks_max_age}");
    // No body and no content type: before, 415.
    let rotated = app
        .http
        .post(app.url("/admin/tenants/demo/keys/rotate"))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(rotated.status(), StatusCode::CREATED);
    let new_kid = rotated.json::<Value>().await.expect("json")["kid"].as_str().expect("kid").to_owned();
    assert_eq!(kids(&app.jwks("demo").await).len(), 2, "published at once");
    clock.advance(299);
    let during = app.login("demo", "later@example.com", PASSWORD).await;
    assert_eq!(kid_of(&during.access), old_kid, "not signing before 300 s");
    clock.advance(1);
    let after = app.login("demo", "later@example.com", PASSWORD).await;
    assert_eq!(kid_of(&after.access), new_kid);

    let secret = app
        .http
        .post(app.url("/admin/tenants/demo/introspection-secret"))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(secret.status(), StatusCode::CREATED, "no body needed either");
    let missing = app.http.post(app.url("/t/demo/auth/login")).send().await.expect("request");
    assert_problem(missing, StatusCode::BAD_REQUEST, "invalid_request").await;
}

fn clock_now(clock: &ManualClock) -> i64 {
    use latch_server::clock::Clock as _;
    clock.now()
}

#[tokio::test]
async fn rotation_with_no_delay_signs_at_once_and_needs_the_operator() {
    let app = spawn_app().await;
    app.create_tenant(json!({"id": "ec", "algorithm": "ES256"})).await;
    let denied =
        app.http.post(app.url("/admin/tenants/ec/keys/rotate")).json(&json!({})).send().await.expect("request");
    assert_problem(denied, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let user = app.register("ec", "now@example.com").await;
    let new_key = rotate(&app, "ec", 0).await;
    assert_eq!(new_key["algorithm"], "ES256", "the tenant keeps its algorithm");
    let after = app.login("ec", "now@example.com", PASSWORD).await;
    assert_eq!(kid_of(&after.access), new_key["kid"].as_str().expect("kid"));
    assert_eq!(app.get_with("/t/ec/users/me", &user.access).await.status(), StatusCode::OK);
    let missing = app.operator_post("/admin/tenants/nowhere/keys/rotate", &json!({})).await;
    assert_problem(missing, StatusCode::NOT_FOUND, "tenant_not_found").await;
}

#[tokio::test]
async fn automatic_rotation_happens_when_the_interval_has_passed() {
    let clock = Arc::new(ManualClock::new(START));
    let app = spawn_app_at(clock.clone()).await;
    app.create_tenant(json!({"id": "auto", "key_rotation_days": 7})).await;
    let tenant = latch_server::domain::TenantId::parse("auto").expect("slug");

    clock.advance(7 * 86_400 - 1);
    assert!(app.latch().rotate_due_keys().await.expect("check").is_empty(), "not due yet");
    clock.advance(1);
    // Two checks at once, and the server's own minute tick may make a third
    // (it reads the same clock): one of them rotates, never two.
    let (first, second) = tokio::join!(app.latch().rotate_due_keys(), app.latch().rotate_due_keys());
    let rotated = [first.expect("check"), second.expect("check")].concat();
    assert!(rotated.len() <= 1 && rotated.iter().all(|t| *t == tenant), "{rotated:?}");
    assert!(app.latch().rotate_due_keys().await.expect("check").is_empty(), "the new key resets the interval");
    let jwks = app.jwks("auto").await;
    assert_eq!(kids(&jwks).len(), 2, "one new key, published before it signs");
    let events = app.events("auto").await;
    let rotations: Vec<_> = events.iter().filter(|e| e["kind"] == "key_rotated").collect();
    assert_eq!(rotations.len(), 1, "{events:?}");
    assert_eq!(rotations[0]["actor"], "system");
    assert!(
        app.latch().rotate_due_keys().await.expect("check").is_empty(),
        "tenants without the setting are left alone"
    );
}

#[tokio::test]
async fn the_cli_rotates_keys_on_a_stopped_data_directory_and_refuses_a_running_one() {
    let mut app = spawn_app().await;
    let user = app.register("demo", "cli@example.com").await;
    let old_kid = kid_of(&user.access);

    // sled belongs to one process; PostgreSQL is shared by design.
    if !on_postgres() {
        let running = tokio::process::Command::new(latch_binary())
            .args(["keys", "rotate", "--tenant", "demo", "--data-dir"])
            .arg(app.data_dir())
            .output()
            .await
            .expect("runs");
        assert!(!running.status.success());
        let stderr = String::from_utf8_lossy(&running.stderr);
        assert!(stderr.contains("operator API"), "{stderr}");
    }

    app.server.take().expect("running").shutdown().await.expect("shutdown");
    let rotated = tokio::process::Command::new(latch_binary())
        .args(["keys", "rotate", "--tenant", "demo", "--publish-delay", "0"])
        .args(app.store_args())
        .env("LATCH_LOG", "warn")
        .output()
        .await
        .expect("runs");
    assert!(rotated.status.success(), "{}", String::from_utf8_lossy(&rotated.stderr));
    let stdout = String::from_utf8_lossy(&rotated.stdout);
    assert!(stdout.contains("tenant demo: new EdDSA key"), "{stdout}");

    app.restart().await;
    let jwks = app.jwks("demo").await;
    assert_eq!(kids(&jwks).len(), 2);
    let after = app.login("demo", "cli@example.com", PASSWORD).await;
    assert_ne!(kid_of(&after.access), old_kid);
    assert_eq!(app.get_with("/t/demo/users/me", &user.access).await.status(), StatusCode::OK);
}
