//! Brute-force defence: per-account lockout with a growing delay, and
//! per-IP rate limits on every endpoint that takes a password, a second
//! factor or a refresh token.

use std::sync::Arc;

use latch_server::clock::ManualClock;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

const EMAIL: &str = "target@example.com";

fn retry_after(response: &Response) -> u64 {
    let header = response.headers().get("retry-after").expect("Retry-After header");
    header.to_str().expect("ascii").parse().expect("seconds")
}

async fn locked(app: &TestApp, password: &str) -> u64 {
    let response = app.try_login("demo", EMAIL, password).await;
    let seconds = retry_after(&response);
    assert_problem(response, StatusCode::TOO_MANY_REQUESTS, "account_locked").await;
    seconds
}

#[tokio::test]
async fn repeated_failed_logins_lock_the_account_with_a_growing_delay_that_survives_restart() {
    let clock = Arc::new(ManualClock::new(1_900_000_000));
    let mut app = spawn_app_at(clock.clone()).await;
    let settings = json!({"lockout_threshold": 3, "lockout_base_seconds": 60, "lockout_max_seconds": 600});
    let patched = app.http.patch(app.url("/admin/tenants/demo")).bearer_auth(OPERATOR_TOKEN).json(&settings);
    assert_eq!(patched.send().await.expect("request").status(), StatusCode::OK);
    app.register("demo", EMAIL).await;

    // Two failures, then a success: the count starts again.
    for _ in 0..2 {
        assert_eq!(app.try_login("demo", EMAIL, "wrong password!").await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.try_login("demo", EMAIL, PASSWORD).await.status(), StatusCode::OK);
    for _ in 0..2 {
        assert_eq!(app.try_login("demo", EMAIL, "wrong password!").await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.try_login("demo", EMAIL, PASSWORD).await.status(), StatusCode::OK, "2 < threshold after a reset");

    for _ in 0..3 {
        assert_eq!(app.try_login("demo", EMAIL, "wrong password!").await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(locked(&app, PASSWORD).await, 60, "the right password is refused while locked");
    let form = [("grant_type", "password"), ("username", EMAIL), ("password", PASSWORD)];
    let token = app.post_form("/t/demo/oauth/token", &form).await;
    assert_eq!(token.status(), StatusCode::BAD_REQUEST);
    assert_eq!(token.json::<Value>().await.expect("json")["error"], "invalid_grant");

    clock.advance(61);
    assert_eq!(app.try_login("demo", EMAIL, "wrong password!").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(locked(&app, PASSWORD).await, 120, "one more failure doubles the delay");

    app.restart().await;
    clock.advance(100);
    assert_eq!(locked(&app, PASSWORD).await, 20, "the lock survived the restart");
    clock.advance(21);
    assert_eq!(app.try_login("demo", EMAIL, PASSWORD).await.status(), StatusCode::OK);
    assert_eq!(app.try_login("demo", EMAIL, "wrong password!").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.try_login("demo", EMAIL, PASSWORD).await.status(), StatusCode::OK, "success reset the count");

    let events = app.get_with("/t/demo/admin/events?limit=200", OPERATOR_TOKEN).await;
    let events: Value = events.json().await.expect("json");
    let lockouts = events["events"].as_array().expect("events").iter().filter(|e| e["kind"] == "lockout").count();
    assert_eq!(lockouts, 2);
}

#[tokio::test]
async fn auth_endpoints_answer_429_with_retry_after_beyond_the_per_ip_limit() {
    let app = spawn_app_with_rate_limit(5).await;
    let tokens = app.register("demo", EMAIL).await;
    for _ in 0..4 {
        assert_eq!(app.try_login("demo", EMAIL, "wrong password!").await.status(), StatusCode::UNAUTHORIZED);
    }
    let limited = app.try_login("demo", EMAIL, PASSWORD).await;
    let seconds = retry_after(&limited);
    assert!((1..=60).contains(&seconds), "Retry-After {seconds}");
    assert_problem(limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    let form = [("grant_type", "refresh_token"), ("refresh_token", &tokens.refresh)];
    let token = app.post_form("/t/demo/oauth/token", &form).await;
    assert_eq!(token.status(), StatusCode::TOO_MANY_REQUESTS, "the token endpoint shares the budget");
    assert!(retry_after(&token) >= 1);
    assert!(token.headers()["content-type"].to_str().expect("ascii").starts_with("application/json"));
    let body: serde_json::Value = token.json().await.expect("an OAuth error body");
    assert_eq!(body["error"], "rate_limited", "OAuth endpoints answer in the RFC 6749 format: {body}");
    let refresh = app.try_refresh("demo", &tokens.refresh).await;
    assert_eq!(refresh.status(), StatusCode::TOO_MANY_REQUESTS);

    // Endpoints that take no password are not limited.
    for _ in 0..10 {
        let me = app.get_with("/t/demo/users/me", &tokens.access).await;
        assert_eq!(me.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn wrong_current_passwords_count_toward_the_lockout_and_then_even_the_right_one_is_refused() {
    let app = spawn_app().await;
    let tokens = app.register("demo", EMAIL).await;
    let token = tokens.access.as_str();
    let change = |current: &str| json!({"current_password": current, "new_password": "a brand new passphrase"});
    // Before, 40 wrong guesses were all answered 403 and the 41st, right, one 204.
    for _ in 0..5 {
        let wrong = app.send(Method::POST, "/t/demo/users/me/password", token, Some(&change("wrong guess!"))).await;
        assert_problem(wrong, StatusCode::FORBIDDEN, "current_password_wrong").await;
    }
    let right = app.send(Method::POST, "/t/demo/users/me/password", token, Some(&change(PASSWORD))).await;
    assert!(retry_after(&right) >= 1);
    assert_problem(right, StatusCode::TOO_MANY_REQUESTS, "account_locked").await;
    // The same count as logins: the account is locked there too.
    locked(&app, PASSWORD).await;
}

#[tokio::test]
async fn a_right_current_password_clears_the_failures_it_follows() {
    let app = spawn_app().await;
    let tokens = app.register("demo", EMAIL).await;
    let token = tokens.access.as_str();
    for _ in 0..4 {
        assert_eq!(app.try_login("demo", EMAIL, "wrong password!").await.status(), StatusCode::UNAUTHORIZED);
    }
    let body = json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"});
    let changed = app.send(Method::POST, "/t/demo/users/me/password", token, Some(&body)).await;
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    // Four failures, then a success: a fifth failure does not lock.
    assert_eq!(app.try_login("demo", EMAIL, "wrong password!").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.try_login("demo", EMAIL, "a brand new passphrase").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_callers_password_and_second_factor_endpoints_share_the_per_ip_limit() {
    let app = spawn_app_with_rate_limit(4).await;
    let tokens = app.register("demo", EMAIL).await; // 1 of 4
    let token = tokens.access.as_str();
    let body = json!({"current_password": "wrong guess!", "new_password": "a brand new passphrase"});
    for _ in 0..2 {
        let wrong = app.send(Method::POST, "/t/demo/users/me/password", token, Some(&body)).await;
        assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    }
    let code = json!({"code": "123456"});
    let confirm = app.send(Method::POST, "/t/demo/users/me/mfa/totp/confirm", token, Some(&code)).await;
    assert_ne!(confirm.status(), StatusCode::TOO_MANY_REQUESTS, "4 of 4");
    let limited = app.send(Method::POST, "/t/demo/users/me/password", token, Some(&body)).await;
    assert_problem(limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    let disable = json!({"password": PASSWORD, "code": "123456"});
    let limited = app.send(Method::POST, "/t/demo/users/me/mfa/totp/disable", token, Some(&disable)).await;
    assert_problem(limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // The caller's other endpoints take no secret and are not limited.
    assert_eq!(app.get_with("/t/demo/users/me", token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_password_set_by_the_operator_lifts_the_lock_like_a_reset() {
    let mut app = spawn_app().await;
    app.register("demo", EMAIL).await;
    for _ in 0..5 {
        assert_eq!(app.try_login("demo", EMAIL, "wrong password!").await.status(), StatusCode::UNAUTHORIZED);
    }
    locked(&app, PASSWORD).await;
    app.stop().await;
    let mut set = tokio::process::Command::new(latch_binary())
        .args(["user", "set-password", "--tenant", "demo", "--email", EMAIL])
        .args(app.store_args())
        .env("LATCH_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("runs");
    {
        use tokio::io::AsyncWriteExt as _;
        let mut stdin = set.stdin.take().expect("stdin");
        stdin.write_all(b"an operator's new passphrase\n").await.expect("write");
    }
    assert!(set.wait().await.expect("exit").success());
    app.restart().await;
    let login = app.try_login("demo", EMAIL, "an operator's new passphrase").await;
    assert_eq!(login.status(), StatusCode::OK, "the new password works at once, not after the lock");
}
