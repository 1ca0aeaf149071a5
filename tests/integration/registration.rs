//! Closed registration: a tenant whose users only administrators create,
//! with invitation links that let the invitee choose a password; discovery
//! tells which kind of tenant it is.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

async fn discovery(app: &TestApp, tenant: &str) -> Value {
    let path = format!("/t/{tenant}/.well-known/openid-configuration");
    app.http.get(app.url(&path)).send().await.expect("request").json().await.expect("json")
}

#[tokio::test]
async fn a_closed_tenant_refuses_registration_and_discovery_says_so() {
    let app = spawn_app().await;
    app.create_tenant(json!({"id": "staff", "registration": "closed"})).await;
    let refused =
        app.post_json("/t/staff/auth/register", &json!({"email": "walk-in@example.com", "password": PASSWORD})).await;
    assert_problem(refused, StatusCode::FORBIDDEN, "registration_closed").await;
    let closed = discovery(&app, "staff").await;
    assert_eq!(closed["latch_registration"], json!("closed"));
    assert!(closed.get("latch_registration_endpoint").is_none_or(Value::is_null), "{closed}");
    let open = discovery(&app, "demo").await;
    assert_eq!(open["latch_registration"], json!("open"));
    assert_eq!(open["latch_registration_endpoint"], json!(app.url("/t/demo/auth/register")));
    let shown: Value = app.get_with("/admin/tenants/staff", OPERATOR_TOKEN).await.json().await.expect("json");
    assert_eq!(shown["settings"]["registration"], json!("closed"), "{shown}");

    // Opened again, it registers.
    let open_again = json!({"registration": "open"});
    let opened = app.send(reqwest::Method::PATCH, "/admin/tenants/staff", OPERATOR_TOKEN, Some(&open_again)).await;
    assert_eq!(opened.status(), StatusCode::OK);
    app.register("staff", "walk-in@example.com").await;
}

#[tokio::test]
async fn an_invited_user_chooses_a_password_through_the_mailed_link_once() {
    let app = spawn_app().await;
    app.create_tenant(json!({"id": "staff", "registration": "closed"})).await;
    let invited = app
        .send(
            reqwest::Method::POST,
            "/t/staff/admin/users",
            OPERATOR_TOKEN,
            Some(&json!({"email": "new-hire@example.com", "roles": ["user"]})),
        )
        .await;
    assert_eq!(invited.status(), StatusCode::CREATED);
    let user: Value = invited.json().await.expect("json");
    assert_eq!(user["email_verified"], json!(false));
    let mails = wait_for_mail(&app, 1).await;
    assert!(mails[0].contains("To: new-hire@example.com"), "{}", mails[0]);
    assert!(mails[0].contains("/demo/reset-password?tenant=staff&token=latch_inv_"), "{}", mails[0]);
    let token = token_in(&mails[0]);

    // No password works before the invitee chooses one.
    assert_eq!(app.try_login("staff", "new-hire@example.com", "").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.try_login("staff", "new-hire@example.com", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    // Another tenant's endpoint does not take it.
    let elsewhere = json!({"token": token, "new_password": PASSWORD});
    let elsewhere = app.post_json("/t/demo/auth/password-reset/confirm", &elsewhere).await;
    assert_problem(elsewhere, StatusCode::BAD_REQUEST, "invalid_reset_token").await;

    let chosen = json!({"token": token, "new_password": PASSWORD});
    let accepted = app.post_json("/t/staff/auth/password-reset/confirm", &chosen).await;
    assert_eq!(accepted.status(), StatusCode::NO_CONTENT);
    let again = app.post_json("/t/staff/auth/password-reset/confirm", &chosen).await;
    assert_problem(again, StatusCode::BAD_REQUEST, "invalid_reset_token").await;
    let login = app.try_login("staff", "new-hire@example.com", PASSWORD).await;
    assert_eq!(login.status(), StatusCode::OK);
    let login: Tokens = login.json().await.expect("tokens");
    assert_eq!(login.user.email_verified, json!(true), "the link proved the address");

    let events: Value = app.get_with("/t/staff/admin/events", OPERATOR_TOKEN).await.json().await.expect("json");
    let created = events["events"].as_array().expect("events").iter().find(|e| e["kind"] == "user_created").cloned();
    assert_eq!(created.expect("audited")["detail"], json!("invited"));
}

#[tokio::test]
async fn the_cli_closes_registration_and_invites_on_a_stopped_data_directory() {
    let mut app = spawn_app().await;
    app.create_tenant(json!({"id": "cli-staff"})).await;
    app.stop().await;
    let run = |args: &[&str]| {
        let mut command = std::process::Command::new(latch_binary());
        command.args(args).args(app.store_args()).env("LATCH_LOG", "warn");
        command.output().expect("runs")
    };
    let closed = run(&["tenant", "update", "cli-staff", "--set", "registration=closed"]);
    assert!(closed.status.success(), "{}", String::from_utf8_lossy(&closed.stderr));
    let invited = run(&["user", "invite", "--tenant", "cli-staff", "--email", "cli-hire@example.com"]);
    assert!(invited.status.success(), "{}", String::from_utf8_lossy(&invited.stderr));
    assert!(String::from_utf8_lossy(&invited.stdout).contains("invited"));
    app.restart().await;
    let mails = outbox(&app);
    assert!(mails.iter().any(|mail| mail.contains("cli-hire@example.com") && mail.contains("latch_inv_")), "{mails:?}");
    let refused =
        app.post_json("/t/cli-staff/auth/register", &json!({"email": "x@example.com", "password": PASSWORD})).await;
    assert_problem(refused, StatusCode::FORBIDDEN, "registration_closed").await;
}
