//! Register, login, profile, refresh rotation, logout.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn register_login_me_refresh_logout_and_then_refresh_fails() {
    let app = spawn_app().await;

    let registered = app.register("demo", "Ada@Example.com").await;
    assert_eq!(registered.token_type, "Bearer");
    assert_eq!(registered.expires_in, 900);
    assert_eq!(registered.user.email, "Ada@Example.com");
    assert_eq!(registered.user.roles, ["user"]);

    let login = app.try_login("demo", "ada@example.com", PASSWORD).await;
    assert_eq!(login.status(), StatusCode::OK);
    assert_eq!(login.headers()["cache-control"], "no-store");
    let tokens: Tokens = login.json().await.expect("tokens");
    assert_eq!(tokens.user.id, registered.user.id);
    let access = tokens.access.as_str();

    let me = app.get_with("/t/demo/users/me", access).await;
    assert_eq!(me.status(), StatusCode::OK);
    let me: Value = me.json().await.expect("json");
    assert_eq!(me["id"], registered.user.id);
    assert!(me.get("password_hash").is_none());

    let refreshed = app.try_refresh("demo", &tokens.refresh).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let refreshed: Tokens = refreshed.json().await.expect("tokens");
    assert_ne!(refreshed.refresh, tokens.refresh, "rotation issues a new refresh token");
    let new_access = refreshed.access.as_str();
    assert_eq!(app.get_with("/t/demo/users/me", new_access).await.status(), StatusCode::OK);

    let logout = app.http.post(app.url("/t/demo/auth/logout")).bearer_auth(new_access).send().await.expect("request");
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);

    let after = app.try_refresh("demo", &refreshed.refresh).await;
    assert_problem(after, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    let me_after = app.get_with("/t/demo/users/me", new_access).await;
    assert_problem(me_after, StatusCode::UNAUTHORIZED, "session_ended").await;
    let other_session = app.get_with("/t/demo/users/me", &registered.access).await;
    assert_eq!(other_session.status(), StatusCode::OK, "logout ends only its own session");
}

#[tokio::test]
async fn duplicate_email_is_a_conflict_whatever_its_case() {
    let app = spawn_app().await;
    app.register("demo", "grace@example.com").await;
    let again =
        app.post_json("/t/demo/auth/register", &json!({"email": "GRACE@example.COM", "password": PASSWORD})).await;
    assert_problem(again, StatusCode::CONFLICT, "email_taken").await;
}

#[tokio::test]
async fn a_hundred_parallel_registrations_of_one_email_give_exactly_one_account() {
    let app = spawn_app().await;
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let (http, url) = (app.http.clone(), app.url("/t/demo/auth/register"));
        attempts.spawn(async move {
            let body = json!({"email": "race@example.com", "password": PASSWORD});
            http.post(url).json(&body).send().await.expect("request").status()
        });
    }
    let statuses = attempts.join_all().await;
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CREATED).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count(), 99, "{statuses:?}");
}

#[tokio::test]
async fn wrong_password_and_unknown_email_give_the_same_401_body() {
    let app = spawn_app().await;
    app.register("demo", "known@example.com").await;
    let wrong = app.try_login("demo", "known@example.com", "not the password at all").await;
    let unknown = app.try_login("demo", "nobody@example.com", PASSWORD).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let wrong: Value = wrong.json().await.expect("json");
    let unknown: Value = unknown.json().await.expect("json");
    assert_eq!(wrong, unknown);
    assert_eq!(wrong["code"], "invalid_credentials");
}

#[tokio::test]
async fn passwords_that_break_the_policy_are_refused_with_the_rule_named() {
    let app = spawn_app().await;
    for (password, code) in [
        ("short", "password_too_short"),
        (&*"x".repeat(1025), "password_too_long"),
        ("policy.victim@example.com", "password_contains_email"),
        ("Password123", "password_too_common"),
        ("1q2w3e4r5t", "password_too_common"),
    ] {
        let response = app
            .post_json("/t/demo/auth/register", &json!({"email": "policy.victim@example.com", "password": password}))
            .await;
        assert_problem(response, StatusCode::BAD_REQUEST, code).await;
    }
    let response =
        app.post_json("/t/demo/auth/register", &json!({"email": "not-an-email", "password": PASSWORD})).await;
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid_email").await;
}

#[tokio::test]
async fn the_profile_name_can_be_changed_and_cleared() {
    let app = spawn_app().await;
    let tokens = app.register("demo", "profile@example.com").await;
    let access = tokens.access.as_str();
    let patch = |body: Value| app.http.patch(app.url("/t/demo/users/me")).bearer_auth(access).json(&body).send();
    let renamed: Value = patch(json!({"name": "Ada Lovelace"})).await.expect("request").json().await.expect("json");
    assert_eq!(renamed["name"], "Ada Lovelace");
    let me: Value = app.get_with("/t/demo/users/me", access).await.json().await.expect("json");
    assert_eq!(me["name"], "Ada Lovelace");
    let cleared: Value = patch(json!({"name": ""})).await.expect("request").json().await.expect("json");
    assert_eq!(cleared["name"], Value::Null);
    assert_problem(
        patch(json!({"name": "bad\u{7}name"})).await.expect("request"),
        StatusCode::BAD_REQUEST,
        "invalid_name",
    )
    .await;
}

#[tokio::test]
async fn an_expired_access_token_is_rejected_with_its_reason() {
    let clock = std::sync::Arc::new(latch_server::clock::ManualClock::new(1_900_000_000));
    let app = spawn_app_at(clock.clone()).await;
    let tokens = app.register("demo", "clock@example.com").await;
    let access = tokens.access.as_str();
    clock.advance(900 + 29);
    assert_eq!(app.get_with("/t/demo/users/me", access).await.status(), StatusCode::OK, "within the leeway");
    clock.advance(1);
    let body =
        assert_problem(app.get_with("/t/demo/users/me", access).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    assert_eq!(body["token_error"], "expired");
}

#[tokio::test]
async fn a_refused_bearer_token_gets_an_rfc_6750_challenge() {
    let app = spawn_app().await;
    let user = app.register("demo", "challenge@example.com").await;
    let missing = app.http.get(app.url("/t/demo/users/me")).send().await.expect("request");
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(missing.headers()["www-authenticate"], "Bearer", "no token: no error attribute");
    let garbage = app.get_with("/t/demo/users/me", "not-a-token").await;
    let challenge = garbage.headers()["www-authenticate"].to_str().expect("ascii").to_owned();
    assert!(challenge.starts_with("Bearer error=\"invalid_token\", error_description=\""), "{challenge}");
    assert_problem(garbage, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let logout = app.http.post(app.url("/t/demo/auth/logout")).bearer_auth(&user.access).send().await.expect("request");
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let ended = app.get_with("/t/demo/users/me", &user.access).await;
    assert!(ended.headers()["www-authenticate"].to_str().expect("ascii").contains("error=\"invalid_token\""));
}
