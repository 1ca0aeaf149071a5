//! Refresh rotation: a generation counter per session, reuse detection, and
//! the grace window that keeps two tabs refreshing at once logged in.

use std::sync::Arc;

use latch_server::clock::ManualClock;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

const START: i64 = 1_900_000_000;

#[tokio::test]
async fn two_concurrent_refreshes_of_one_token_both_get_the_same_successor() {
    let app = spawn_app().await;
    let first = app.register("demo", "tabs@example.com").await;
    let token = first.refresh.as_str().to_owned();
    let mut tabs = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (http, url, token) = (app.http.clone(), app.url("/t/demo/auth/refresh"), token.clone());
        tabs.spawn(async move {
            let response = http.post(url).json(&json!({"refresh_token": token})).send().await.expect("request");
            tokens(response, StatusCode::OK, "a tab's refresh").await
        });
    }
    let results = tabs.join_all().await;
    let successors: std::collections::HashSet<&str> = results.iter().map(|r| r.refresh.as_str()).collect();
    assert_eq!(successors.len(), 1, "every tab got the same successor: {successors:?}");
    let successor = successors.into_iter().next().expect("one");
    assert_ne!(successor, token);
    let sids: std::collections::HashSet<String> =
        results.iter().map(|r| claims_of(&r.access)["sid"].to_string()).collect();
    assert_eq!(sids.len(), 1, "same session");
    assert_eq!(app.try_refresh("demo", successor).await.status(), StatusCode::OK, "the session lives on");
}

#[tokio::test]
async fn reuse_within_the_grace_window_returns_the_same_successor() {
    let clock = Arc::new(ManualClock::new(START));
    let app = spawn_app_at(clock.clone()).await;
    let first = app.register("demo", "grace@example.com").await;
    let old = first.refresh.as_str();
    let second = app.refresh("demo", old).await;
    clock.advance(9);
    let again = app.refresh("demo", old).await;
    assert_eq!(again.refresh, second.refresh, "idempotent inside the window");
    assert_eq!(app.try_refresh("demo", &second.refresh).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn reuse_after_the_grace_window_revokes_the_session_and_is_audited() {
    let clock = Arc::new(ManualClock::new(START));
    let app = spawn_app_at(clock.clone()).await;
    let first = app.register("demo", "late@example.com").await;
    let old = first.refresh.as_str();
    let second = app.refresh("demo", old).await;
    clock.advance(10);

    assert_problem(app.try_refresh("demo", old).await, StatusCode::UNAUTHORIZED, "refresh_token_reused").await;
    let successor = second.refresh.as_str();
    assert_problem(app.try_refresh("demo", successor).await, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    let access = second.access.as_str();
    assert_problem(app.get_with("/t/demo/users/me", access).await, StatusCode::UNAUTHORIZED, "session_ended").await;

    let events = app.events("demo").await;
    let reuse = events.iter().find(|e| e["kind"] == "refresh_reuse_detected").expect("audited");
    assert_eq!(reuse["subject"], first.user.id);
}

#[tokio::test]
async fn sequential_reuse_of_an_older_token_revokes_even_inside_the_window() {
    let clock = Arc::new(ManualClock::new(START));
    let app = spawn_app_at(clock.clone()).await;
    let first = app.register("demo", "sequence@example.com").await;
    let a = first.refresh.as_str();
    let b = app.refresh("demo", a).await;
    let c = app.refresh("demo", &b.refresh).await;
    // `a` is two generations old: only the direct predecessor gets the grace.
    assert_problem(app.try_refresh("demo", a).await, StatusCode::UNAUTHORIZED, "refresh_token_reused").await;
    let latest = c.refresh.as_str();
    assert_problem(app.try_refresh("demo", latest).await, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
}

#[tokio::test]
async fn a_tenant_with_no_grace_window_revokes_on_the_first_reuse() {
    let app = spawn_app().await;
    app.create_tenant(json!({"id": "strict", "refresh_grace_seconds": 0})).await;
    let first = app.register("strict", "strict@example.com").await;
    let old = first.refresh.as_str();
    let second = app.refresh("strict", old).await;
    assert_problem(app.try_refresh("strict", old).await, StatusCode::UNAUTHORIZED, "refresh_token_reused").await;
    let successor = second.refresh.as_str();
    assert_problem(app.try_refresh("strict", successor).await, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
}

#[tokio::test]
async fn refresh_tokens_expire_with_their_session() {
    let clock = Arc::new(ManualClock::new(START));
    let app = spawn_app_at(clock.clone()).await;
    app.create_tenant(json!({"id": "short", "refresh_token_ttl": 3600})).await;
    let first = app.register("short", "short@example.com").await;
    clock.advance(1800);
    let second = app.refresh("short", &first.refresh).await;
    clock.advance(3599);
    let third = app.refresh("short", &second.refresh).await;
    clock.advance(3600);
    let expired = app.try_refresh("short", &third.refresh).await;
    assert_problem(expired, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
}
