//! Brute-force defence: per-account lockout with a growing delay, and
//! per-IP rate limits on the auth and token endpoints.

use std::sync::Arc;

use latch_server::clock::ManualClock;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

const EMAIL: &str = "target@example.com";

fn retry_after(response: &Response) -> u64 {
    let header = response.headers().get("retry-after").expect("Retry-After header");
    header.to_str().expect("ascii").parse().expect("seconds")
}

async fn locked(app: &TestApp, password: &str) -> u64 {
    let response = app.login("demo", EMAIL, password).await;
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
        assert_eq!(app.login("demo", EMAIL, "wrong password!").await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.login("demo", EMAIL, PASSWORD).await.status(), StatusCode::OK);
    for _ in 0..2 {
        assert_eq!(app.login("demo", EMAIL, "wrong password!").await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.login("demo", EMAIL, PASSWORD).await.status(), StatusCode::OK, "2 < threshold after a reset");

    for _ in 0..3 {
        assert_eq!(app.login("demo", EMAIL, "wrong password!").await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(locked(&app, PASSWORD).await, 60, "the right password is refused while locked");
    let form = [("grant_type", "password"), ("username", EMAIL), ("password", PASSWORD)];
    let token = app.post_form("/t/demo/oauth/token", &form).await;
    assert_eq!(token.status(), StatusCode::BAD_REQUEST);
    assert_eq!(token.json::<Value>().await.expect("json")["error"], "invalid_grant");

    clock.advance(61);
    assert_eq!(app.login("demo", EMAIL, "wrong password!").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(locked(&app, PASSWORD).await, 120, "one more failure doubles the delay");

    app.restart().await;
    clock.advance(100);
    assert_eq!(locked(&app, PASSWORD).await, 20, "the lock survived the restart");
    clock.advance(21);
    assert_eq!(app.login("demo", EMAIL, PASSWORD).await.status(), StatusCode::OK);
    assert_eq!(app.login("demo", EMAIL, "wrong password!").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.login("demo", EMAIL, PASSWORD).await.status(), StatusCode::OK, "success reset the count");

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
        assert_eq!(app.login("demo", EMAIL, "wrong password!").await.status(), StatusCode::UNAUTHORIZED);
    }
    let limited = app.login("demo", EMAIL, PASSWORD).await;
    let seconds = retry_after(&limited);
    assert!((1..=60).contains(&seconds), "Retry-After {seconds}");
    assert_problem(limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    let form = [("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().expect("rt"))];
    let token = app.post_form("/t/demo/oauth/token", &form).await;
    assert_eq!(token.status(), StatusCode::TOO_MANY_REQUESTS, "the token endpoint shares the budget");
    let refresh = app.refresh("demo", tokens["refresh_token"].as_str().expect("rt")).await;
    assert_eq!(refresh.status(), StatusCode::TOO_MANY_REQUESTS);

    // Endpoints that take no password are not limited.
    for _ in 0..10 {
        let me = app.get_with("/t/demo/users/me", tokens["access_token"].as_str().expect("at")).await;
        assert_eq!(me.status(), StatusCode::OK);
    }
}
