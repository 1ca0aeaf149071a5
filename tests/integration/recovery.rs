//! Password reset by mail: the file outbox, an SMTP relay, single use, expiry.

use std::sync::Arc;
use std::time::Duration;

use latch_server::clock::{ManualClock, SystemClock};
use latch_server::mail::{SmtpSecurity, SmtpSettings};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

use crate::support::*;

const NEW_PASSWORD: &str = "a fresh passphrase 42";

async fn request_reset(app: &TestApp, email: &str) {
    let response = app.post_json("/t/demo/auth/password-reset", &json!({"email": email})).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED, "{email}");
}

async fn confirm(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    let body = json!({"token": token, "new_password": password});
    app.post_json("/t/demo/auth/password-reset/confirm", &body).await
}

#[tokio::test]
async fn a_reset_link_from_the_outbox_sets_a_new_password_once_and_ends_every_session() {
    let app = spawn_app().await;
    let tokens = app.register("demo", "forgetful@example.com").await;
    request_reset(&app, "Forgetful@Example.com").await;
    let mails = wait_for_mail(&app, 1).await;
    let mail = &mails[0];
    assert!(mail.contains("To: forgetful@example.com"), "{mail}");
    assert!(mail.contains(&format!("{}/demo/reset-password?tenant=demo&token=latch_pr_", app.base)), "{mail}");
    let token = token_in(mail);

    let common = confirm(&app, &token, "password123").await;
    assert_problem(common, StatusCode::BAD_REQUEST, "password_too_common").await;
    assert_eq!(confirm(&app, &token, NEW_PASSWORD).await.status(), StatusCode::NO_CONTENT, "the link survived");
    assert_problem(confirm(&app, &token, NEW_PASSWORD).await, StatusCode::BAD_REQUEST, "invalid_reset_token").await;

    let old_access = tokens.access.as_str();
    assert_eq!(app.get_with("/t/demo/users/me", old_access).await.status(), StatusCode::UNAUTHORIZED);
    let old_refresh = app.try_refresh("demo", &tokens.refresh).await;
    assert_eq!(old_refresh.status(), StatusCode::UNAUTHORIZED, "every session ended");
    assert_eq!(app.try_login("demo", "forgetful@example.com", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.try_login("demo", "forgetful@example.com", NEW_PASSWORD).await.status(), StatusCode::OK);

    let events = app.get_with("/t/demo/admin/events?limit=200", OPERATOR_TOKEN).await;
    let events: Value = events.json().await.expect("json");
    let kinds: Vec<&str> =
        events["events"].as_array().expect("events").iter().map(|e| e["kind"].as_str().expect("k")).collect();
    assert!(kinds.contains(&"password_reset_requested") && kinds.contains(&"password_reset"), "{kinds:?}");
    assert_problem(
        confirm(&app, "latch_pr_made-up", NEW_PASSWORD).await,
        StatusCode::BAD_REQUEST,
        "invalid_reset_token",
    )
    .await;
}

#[tokio::test]
async fn reset_requests_for_unknown_or_disabled_accounts_look_the_same_and_send_nothing() {
    let app = spawn_app().await;
    let disabled = app.register("demo", "disabled@example.com").await;
    let path = format!("/t/demo/admin/users/{}/disable", &disabled.user.id);
    assert_eq!(app.send(reqwest::Method::POST, &path, OPERATOR_TOKEN, None).await.status(), StatusCode::OK);
    app.register("demo", "known@example.com").await;

    let unknown = app.post_json("/t/demo/auth/password-reset", &json!({"email": "nobody@example.com"})).await;
    let known = app.post_json("/t/demo/auth/password-reset", &json!({"email": "known@example.com"})).await;
    let (unknown_status, known_status) = (unknown.status(), known.status());
    assert_eq!((unknown_status, known_status), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    assert_eq!(unknown.bytes().await.expect("body"), known.bytes().await.expect("body"), "same answer");
    request_reset(&app, "disabled@example.com").await;
    request_reset(&app, "known@example.com").await;

    app.latch().background_settled().await;
    let mails = outbox(&app);
    assert_eq!(mails.len(), 1, "only the known, enabled account's first request (the second is within a minute)");
    assert!(mails.iter().all(|m| m.contains("To: known@example.com")), "{mails:?}");
    let invalid = app.post_json("/t/demo/auth/password-reset", &json!({"email": "not an email"})).await;
    assert_problem(invalid, StatusCode::BAD_REQUEST, "invalid_email").await;
}

#[tokio::test]
async fn a_reset_link_stops_working_after_an_hour() {
    let clock = Arc::new(ManualClock::new(1_900_000_000));
    let app = spawn_app_at(clock.clone()).await;
    app.register("demo", "slow@example.com").await;
    request_reset(&app, "slow@example.com").await;
    let token = token_in(&wait_for_mail(&app, 1).await[0]);
    clock.advance(3601);
    assert_problem(confirm(&app, &token, NEW_PASSWORD).await, StatusCode::BAD_REQUEST, "invalid_reset_token").await;
    assert_eq!(
        app.try_login("demo", "slow@example.com", PASSWORD).await.status(),
        StatusCode::OK,
        "password unchanged"
    );
}

/// A minimal SMTP server on 127.0.0.1 that accepts one message and hands over its DATA.
async fn smtp_sink() -> (u16, tokio::sync::oneshot::Receiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (deliver, delivered) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.expect("accept");
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read).lines();
        write.write_all(b"220 sink ESMTP\r\n").await.expect("greet");
        let mut data = None::<String>;
        while let Some(line) = lines.next_line().await.expect("read") {
            if let Some(body) = data.as_mut() {
                if line == "." {
                    write.write_all(b"250 queued\r\n").await.expect("write");
                    let _ = deliver.send(std::mem::take(body));
                    break;
                }
                body.push_str(&line);
                body.push('\n');
                continue;
            }
            let verb = line.split(' ').next().unwrap_or_default().to_ascii_uppercase();
            let reply: &[u8] = match verb.as_str() {
                "EHLO" | "HELO" => b"250 sink\r\n",
                "DATA" => {
                    data = Some(String::new());
                    b"354 go ahead\r\n"
                }
                "QUIT" => b"221 bye\r\n",
                _ => b"250 ok\r\n",
            };
            write.write_all(reply).await.expect("write");
        }
    });
    (port, delivered)
}

#[tokio::test]
async fn with_an_smtp_relay_configured_the_reset_mail_goes_through_it() {
    let (port, delivered) = smtp_sink().await;
    let app = spawn_app_with(Arc::new(SystemClock), move |settings| {
        settings.smtp = Some(SmtpSettings {
            host: "127.0.0.1".into(),
            port,
            security: SmtpSecurity::None,
            username: None,
            password: None,
        });
        settings.mail_from = "Acme Auth <auth@acme.example>".into();
    })
    .await;
    app.register("demo", "relay@example.com").await;
    request_reset(&app, "relay@example.com").await;
    let mail = tokio::time::timeout(Duration::from_secs(20), delivered).await.expect("in time").expect("a message");
    assert!(mail.contains("To: relay@example.com"), "{mail}");
    assert!(
        mail.contains("From: \"Acme Auth\" <auth@acme.example>")
            || mail.contains("From: Acme Auth <auth@acme.example>"),
        "{mail}"
    );
    let token = token_in(&mail);
    assert_eq!(confirm(&app, &token, NEW_PASSWORD).await.status(), StatusCode::NO_CONTENT);
    assert!(outbox(&app).is_empty(), "nothing went to the file outbox");
}

/// The reset links in the outbox, oldest first (each mail has a distinct token).
async fn reset_links(app: &TestApp) -> Vec<String> {
    app.latch().background_settled().await;
    outbox(app).iter().filter(|mail| mail.contains("latch_pr_")).map(|mail| token_in(mail)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_mails_to_one_account_are_spaced_a_minute_apart_however_many_are_asked_for() {
    let clock = Arc::new(ManualClock::new(1_900_000_000));
    let app = spawn_app_at(clock.clone()).await;
    app.register("demo", "flooded@example.com").await;
    // Before, 25 requests sent 25 mails.
    futures_util::future::join_all((0..25).map(|_| request_reset(&app, "flooded@example.com"))).await;
    assert_eq!(reset_links(&app).await.len(), 1, "one mail for the burst");
    clock.advance(59);
    request_reset(&app, "flooded@example.com").await;
    assert_eq!(reset_links(&app).await.len(), 1, "still within the minute");
    clock.advance(1);
    request_reset(&app, "flooded@example.com").await;
    assert_eq!(reset_links(&app).await.len(), 2, "a minute later, another");
}

#[tokio::test]
async fn a_completed_reset_a_password_change_and_a_disable_void_the_other_reset_links() {
    let clock = Arc::new(ManualClock::new(1_900_000_000));
    let app = spawn_app_at(clock.clone()).await;
    let registered = app.register("demo", "many-links@example.com").await;
    let id = registered.user.id.as_str().to_owned();
    let next_link = {
        let (app, clock) = (&app, clock.clone());
        move || {
            let clock = clock.clone();
            async move {
                clock.advance(60);
                request_reset(app, "many-links@example.com").await;
                reset_links(app).await.last().expect("a link").clone()
            }
        }
    };

    let (first, second) = (next_link().await, next_link().await);
    assert_eq!(confirm(&app, &second, NEW_PASSWORD).await.status(), StatusCode::NO_CONTENT);
    assert_problem(confirm(&app, &first, "another passphrase 1").await, StatusCode::BAD_REQUEST, "invalid_reset_token")
        .await;

    let third = next_link().await;
    let tokens = app.login("demo", "many-links@example.com", NEW_PASSWORD).await;
    let change = json!({"current_password": NEW_PASSWORD, "new_password": "changed by the owner 2"});
    let changed = app.send(reqwest::Method::POST, "/t/demo/users/me/password", &tokens.access, Some(&change)).await;
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    assert_problem(confirm(&app, &third, "another passphrase 3").await, StatusCode::BAD_REQUEST, "invalid_reset_token")
        .await;

    let fourth = next_link().await;
    for action in ["disable", "enable"] {
        let path = format!("/t/demo/admin/users/{id}/{action}");
        assert_eq!(app.send(reqwest::Method::POST, &path, OPERATOR_TOKEN, None).await.status(), StatusCode::OK);
    }
    assert_problem(
        confirm(&app, &fourth, "another passphrase 4").await,
        StatusCode::BAD_REQUEST,
        "invalid_reset_token",
    )
    .await;
    assert_eq!(
        app.try_login("demo", "many-links@example.com", "changed by the owner 2").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_link_presented_for_the_wrong_purpose_is_refused_and_not_used_up() {
    let app = spawn_app().await;
    app.create_tenant(json!({"id": "both", "email_verification": "optional"})).await;
    app.register("both", "both@example.com").await;
    let verification = token_in(&wait_for_mail(&app, 1).await[0]);
    let reset = app.post_json("/t/both/auth/password-reset", &json!({"email": "both@example.com"})).await;
    assert_eq!(reset.status(), StatusCode::ACCEPTED);
    let mails = wait_for_mail(&app, 2).await;
    let reset = token_in(mails.iter().find(|mail| mail.contains("latch_pr_")).expect("a reset mail"));

    let body = json!({"token": verification, "new_password": NEW_PASSWORD});
    let wrong = app.post_json("/t/both/auth/password-reset/confirm", &body).await;
    assert_problem(wrong, StatusCode::BAD_REQUEST, "invalid_reset_token").await;
    let wrong = app.post_json("/t/both/auth/verify-email", &json!({"token": reset})).await;
    assert_problem(wrong, StatusCode::BAD_REQUEST, "invalid_verification_token").await;

    // Before, the wrong endpoint used them up.
    let verified = app.post_json("/t/both/auth/verify-email", &json!({"token": verification})).await;
    assert_eq!(verified.status(), StatusCode::NO_CONTENT);
    let body = json!({"token": reset, "new_password": NEW_PASSWORD});
    assert_eq!(app.post_json("/t/both/auth/password-reset/confirm", &body).await.status(), StatusCode::NO_CONTENT);
}
