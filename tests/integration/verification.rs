//! Email verification: the tenant's mode (off, optional, required), the
//! single-use link, resends spaced a minute apart, expiry, the app's own
//! link pages, and tenant isolation.

use std::sync::Arc;

use latch_server::clock::ManualClock;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

async fn tenant(app: &TestApp, body: Value) {
    app.create_tenant(body).await;
}

async fn register_raw(app: &TestApp, tenant: &str, email: &str) -> reqwest::Response {
    app.post_json(&format!("/t/{tenant}/auth/register"), &json!({"email": email, "password": PASSWORD})).await
}

async fn verify(app: &TestApp, tenant: &str, token: &str) -> reqwest::Response {
    app.post_json(&format!("/t/{tenant}/auth/verify-email"), &json!({"token": token})).await
}

async fn resend(app: &TestApp, tenant: &str, email: &str) {
    let response = app.post_json(&format!("/t/{tenant}/auth/verify-email/resend"), &json!({"email": email})).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED, "{email}");
}

async fn verified(app: &TestApp, tenant: &str, access_token: &str) -> Value {
    app.get_with(&format!("/t/{tenant}/users/me"), access_token).await.json::<Value>().await.expect("json")
        ["email_verified"]
        .clone()
}

#[tokio::test]
async fn optional_verification_mails_a_link_that_verifies_once_and_only_in_its_tenant() {
    let app = spawn_app().await;
    tenant(&app, json!({"id": "opt", "email_verification": "optional"})).await;
    let user = app.register("opt", "ver@example.com").await;
    let access = user.access.as_str();
    let mails = wait_for_mail(&app, 1).await;
    assert!(mails[0].contains("/demo/verify-email?tenant=opt&token=latch_ev_"), "{}", mails[0]);
    assert!(mails[0].contains("ver@example.com"));
    assert_eq!(verified(&app, "opt", access).await, json!(false));

    let token = token_in(&mails[0]);
    assert_problem(verify(&app, "demo", &token).await, StatusCode::BAD_REQUEST, "invalid_verification_token").await;
    assert_eq!(verify(&app, "opt", &token).await.status(), StatusCode::NO_CONTENT, "not spent elsewhere");
    assert_eq!(verified(&app, "opt", access).await, json!(true));
    assert_problem(verify(&app, "opt", &token).await, StatusCode::BAD_REQUEST, "invalid_verification_token").await;

    let admin = app.admin_of("opt", "admin@example.com").await;
    let events: Value = app.get_with("/t/opt/admin/events", &admin.access).await.json().await.expect("j");
    assert!(events["events"].as_array().expect("events").iter().any(|e| e["kind"] == "email_verified"), "{events}");
}

#[tokio::test]
async fn required_verification_withholds_tokens_until_the_link_is_opened() {
    let app = spawn_app().await;
    tenant(&app, json!({"id": "req", "email_verification": "required"})).await;
    let pending = register_raw(&app, "req", "strict@example.com").await;
    assert_eq!(pending.status(), StatusCode::ACCEPTED);
    let body: Value = pending.json().await.expect("json");
    assert!(body.get("access_token").is_none(), "{body}");
    assert_eq!(body["user"]["email_verified"], json!(false));

    let login = app.try_login("req", "strict@example.com", PASSWORD).await;
    assert_problem(login, StatusCode::FORBIDDEN, "email_not_verified").await;
    let wrong = app.try_login("req", "strict@example.com", "not the password").await;
    assert_problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let grant = [("grant_type", "password"), ("username", "strict@example.com"), ("password", PASSWORD)];
    let oauth = app.post_form("/t/req/oauth/token", &grant).await;
    assert_eq!(oauth.status(), StatusCode::BAD_REQUEST);
    assert_eq!(oauth.json::<Value>().await.expect("json")["error"], json!("invalid_grant"));

    let mails = wait_for_mail(&app, 1).await;
    assert_eq!(verify(&app, "req", &token_in(&mails[0])).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.try_login("req", "strict@example.com", PASSWORD).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn resends_are_spaced_a_minute_apart_and_skip_verified_unknown_and_off_accounts() {
    let clock = Arc::new(ManualClock::new(1_800_000_000));
    let app = spawn_app_at(clock.clone()).await;
    tenant(&app, json!({"id": "opt", "email_verification": "optional"})).await;
    app.register("opt", "again@example.com").await;
    wait_for_mail(&app, 1).await;

    resend(&app, "opt", "again@example.com").await; // too soon
    resend(&app, "opt", "nobody@example.com").await; // no such account: the same answer
    clock.advance(61);
    resend(&app, "opt", "again@example.com").await;
    let mails = wait_for_mail(&app, 2).await;
    app.latch().background_settled().await;
    assert_eq!(outbox(&app).len(), 2, "one registration mail and one resend");
    // Both links work until one is used; after that the account needs none.
    assert_eq!(verify(&app, "opt", &token_in(&mails[1])).await.status(), StatusCode::NO_CONTENT);
    clock.advance(61);
    resend(&app, "opt", "again@example.com").await;

    // The demo tenant verifies nothing (the default is off).
    app.register("demo", "quiet@example.com").await;
    resend(&app, "demo", "quiet@example.com").await;
    app.latch().background_settled().await;
    assert_eq!(outbox(&app).len(), 2, "no mail for a verified account or a tenant without verification");
}

#[tokio::test]
async fn a_verification_link_stops_working_after_a_day() {
    let clock = Arc::new(ManualClock::new(1_800_000_000));
    let app = spawn_app_at(clock.clone()).await;
    tenant(&app, json!({"id": "opt", "email_verification": "optional"})).await;
    app.register("opt", "late@example.com").await;
    let mails = wait_for_mail(&app, 1).await;
    clock.advance(24 * 3600 + 1);
    let late = verify(&app, "opt", &token_in(&mails[0])).await;
    assert_problem(late, StatusCode::BAD_REQUEST, "invalid_verification_token").await;
}

#[tokio::test]
async fn mailed_links_open_the_tenants_own_pages_when_set() {
    let app = spawn_app().await;
    tenant(
        &app,
        json!({
            "id": "app",
            "email_verification": "optional",
            "reset_password_url": "https://app.example/reset?from=mail",
            "verify_email_url": "https://app.example/verify",
        }),
    )
    .await;
    app.register("app", "own@example.com").await;
    let mails = wait_for_mail(&app, 1).await;
    assert!(mails[0].contains("https://app.example/verify?tenant=app&token=latch_ev_"), "{}", mails[0]);
    let reset = app.post_json("/t/app/auth/password-reset", &json!({"email": "own@example.com"})).await;
    assert_eq!(reset.status(), StatusCode::ACCEPTED);
    let mails = wait_for_mail(&app, 2).await;
    let reset_mail = mails.iter().find(|m| m.contains("latch_pr_")).expect("the reset mail");
    assert!(reset_mail.contains("https://app.example/reset?from=mail&tenant=app&token=latch_pr_"), "{reset_mail}");

    for bad in ["javascript:alert(1)", "https://app.example/#/verify", "https://app.example/a b"] {
        let response = app
            .http
            .patch(app.url("/admin/tenants/app"))
            .bearer_auth(OPERATOR_TOKEN)
            .json(&json!({"verify_email_url": bad}))
            .send()
            .await
            .expect("request");
        assert_problem(response, StatusCode::BAD_REQUEST, "invalid_setting").await;
    }
}
