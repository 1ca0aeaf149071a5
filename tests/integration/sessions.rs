//! Listing and ending sessions, password change, and the offline trade-off.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

async fn login_as(app: &TestApp, email: &str, user_agent: &str) -> Tokens {
    let response = app
        .http
        .post(app.url("/t/demo/auth/login"))
        .header("user-agent", user_agent)
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("request");
    tokens(response, StatusCode::OK, user_agent).await
}

async fn sessions(app: &TestApp, access: &str) -> Vec<Value> {
    let response = app.get_with("/t/demo/users/me/sessions", access).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    body["sessions"].as_array().expect("array").clone()
}

#[tokio::test]
async fn sessions_are_listed_with_their_client_and_the_current_one_flagged() {
    let app = spawn_app().await;
    app.register("demo", "many@example.com").await;
    let laptop = login_as(&app, "many@example.com", "laptop-browser/1.0").await;
    let phone = login_as(&app, "many@example.com", "phone-app/2.0").await;
    let listed = sessions(&app, &phone.access).await;
    assert_eq!(listed.len(), 3, "registration, laptop and phone");
    let current: Vec<&Value> = listed.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["user_agent"], "phone-app/2.0");
    assert_eq!(current[0]["id"], claims_of(&phone.access)["sid"]);
    assert!(listed.iter().any(|s| s["user_agent"] == "laptop-browser/1.0"));
    assert!(listed.iter().all(|s| s["ip"] == "127.0.0.1"));
    for field in ["created_at", "last_used_at", "expires_at"] {
        assert!(current[0][field].as_str().is_some_and(|t| t.ends_with('Z')), "{field}");
    }
    drop(laptop);
}

#[tokio::test]
async fn ending_a_session_stops_it_on_the_server_at_once_while_offline_verification_waits_for_exp() {
    let app = spawn_app().await;
    app.register("demo", "ending@example.com").await;
    let laptop = login_as(&app, "ending@example.com", "laptop").await;
    let phone = login_as(&app, "ending@example.com", "phone").await;
    let laptop_access = laptop.access.as_str();
    let laptop_sid = claims_of(laptop_access)["sid"].as_str().expect("sid").to_owned();

    let phone_access = phone.access.as_str();
    let end = app.http.delete(app.url(&format!("/t/demo/users/me/sessions/{laptop_sid}"))).bearer_auth(phone_access);
    assert_eq!(end.send().await.expect("request").status(), StatusCode::NO_CONTENT);

    assert_problem(app.get_with("/t/demo/users/me", laptop_access).await, StatusCode::UNAUTHORIZED, "session_ended")
        .await;
    let refresh = app.try_refresh("demo", &laptop.refresh).await;
    assert_problem(refresh, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    assert_eq!(app.get_with("/t/demo/users/me", phone_access).await.status(), StatusCode::OK);
    assert!(sessions(&app, phone_access).await.iter().all(|s| s["id"] != laptop_sid.as_str()));

    // An offline verifier (the same rules, from the JWKS) still accepts the token until exp.
    let jwks = app.jwks("demo").await.to_string();
    let keys = latch_shared::KeySet::from_jwks_json(&jwks).expect("jwks");
    let validation = latch_shared::Validation::new(app.url("/t/demo"), "demo").expect("options");
    let now = claims_of(laptop_access)["iat"].as_i64().expect("iat");
    assert!(latch_shared::verify(laptop_access, &keys, &validation, now).is_ok());
}

#[tokio::test]
async fn nobody_ends_a_session_that_is_not_theirs() {
    let app = spawn_app().await;
    let victim = app.register("demo", "victim@example.com").await;
    let attacker = app.register("demo", "attacker@example.com").await;
    let victim_sid = claims_of(&victim.access)["sid"].as_str().expect("sid").to_owned();
    let attempt = app
        .http
        .delete(app.url(&format!("/t/demo/users/me/sessions/{victim_sid}")))
        .bearer_auth(&attacker.access)
        .send()
        .await
        .expect("request");
    assert_problem(attempt, StatusCode::NOT_FOUND, "session_not_found").await;
    assert_eq!(app.get_with("/t/demo/users/me", &victim.access).await.status(), StatusCode::OK);
    let garbage = app.http.delete(app.url("/t/demo/users/me/sessions/not-a-uuid")).bearer_auth(&attacker.access);
    assert_problem(garbage.send().await.expect("request"), StatusCode::NOT_FOUND, "session_not_found").await;
}

#[tokio::test]
async fn changing_the_password_ends_every_other_session() {
    let app = spawn_app().await;
    app.register("demo", "rotate@example.com").await;
    let other = login_as(&app, "rotate@example.com", "other").await;
    let current = login_as(&app, "rotate@example.com", "current").await;
    let access = current.access.as_str();
    let change =
        |body: Value| app.http.post(app.url("/t/demo/users/me/password")).bearer_auth(access).json(&body).send();

    let wrong = change(json!({"current_password": "not it at all", "new_password": "a brand new passphrase"}))
        .await
        .expect("r");
    assert_problem(wrong, StatusCode::FORBIDDEN, "current_password_wrong").await;
    let weak = change(json!({"current_password": PASSWORD, "new_password": "short"})).await.expect("r");
    assert_problem(weak, StatusCode::BAD_REQUEST, "password_too_short").await;
    let common = change(json!({"current_password": PASSWORD, "new_password": "Qwertyuiop"})).await.expect("r");
    assert_problem(common, StatusCode::BAD_REQUEST, "password_too_common").await;
    let ok = change(json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"})).await.expect("r");
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);

    assert_eq!(app.get_with("/t/demo/users/me", access).await.status(), StatusCode::OK, "this session stays");
    let other_access = other.access.as_str();
    assert_problem(app.get_with("/t/demo/users/me", other_access).await, StatusCode::UNAUTHORIZED, "session_ended")
        .await;
    assert_eq!(sessions(&app, access).await.len(), 1);
    assert_problem(
        app.try_login("demo", "rotate@example.com", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_eq!(app.try_login("demo", "rotate@example.com", "a brand new passphrase").await.status(), StatusCode::OK);
}
