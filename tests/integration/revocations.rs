//! The revocation feed: every way a session ends puts it in the tenant's
//! signed feed at once, while the server refuses its tokens; the feed is
//! cacheable (ETag, 304), incremental, and verifies only with its tenant's keys.

use latch_shared::{KeySet, RevocationFeed, Validation, verify_revocation_feed};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

/// The feed document, its headers, verified with the tenant's JWKS and issuer.
struct Fetched {
    feed: RevocationFeed,
    etag: String,
    cache_control: String,
}

async fn fetch_feed(app: &TestApp, tenant: &str, since: Option<&str>) -> Fetched {
    let path = match since {
        Some(cursor) => format!("/t/{tenant}/.well-known/revocations?since={cursor}"),
        None => format!("/t/{tenant}/.well-known/revocations"),
    };
    let response = app.http.get(app.url(&path)).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/jwt");
    let header = |name: &str| response.headers()[name].to_str().expect("ascii").to_owned();
    let (etag, cache_control) = (header("etag"), header("cache-control"));
    let document = response.text().await.expect("body");
    let payload = verify_revocation_feed(&document, &keys_of(app, tenant).await, &rules(app, tenant))
        .expect("the feed verifies with the tenant's keys");
    Fetched { feed: serde_json::from_str(&payload).expect("the feed's form"), etag, cache_control }
}

async fn keys_of(app: &TestApp, tenant: &str) -> KeySet {
    KeySet::from_jwks_json(&app.jwks(tenant).await.to_string()).expect("jwks")
}

fn rules(app: &TestApp, tenant: &str) -> Validation {
    Validation::new(app.url(&format!("/t/{tenant}")), tenant).expect("rules")
}

fn sid(tokens: &Tokens) -> String {
    claims_of(&tokens.access)["sid"].as_str().expect("sid").to_owned()
}

fn listed(feed: &RevocationFeed) -> Vec<String> {
    feed.revoked.iter().map(|entry| entry.0.clone()).collect()
}

#[tokio::test]
async fn every_way_a_session_ends_is_in_the_feed_while_the_server_refuses_its_token() {
    let app = spawn_app().await;
    let admin = app.admin_of("demo", "feed-admin@example.com").await;
    let discovery: Value = app
        .http
        .get(app.url("/t/demo/.well-known/openid-configuration"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(discovery["latch_revocation_feed_uri"], app.url("/t/demo/.well-known/revocations"));
    let start = fetch_feed(&app, "demo", None).await;
    assert!(start.feed.revoked.is_empty() && start.feed.since.is_none());
    assert_eq!(start.cache_control, "public, max-age=5");

    // Each case: live sessions, the action that ends some, and which of them it ends.
    let logout = app.register("demo", "logout@example.com").await;
    let ended_one = app.register("demo", "ended-one@example.com").await;
    let other_of_ended = app.login("demo", "ended-one@example.com", PASSWORD).await;
    let changer = app.register("demo", "changer@example.com").await;
    let changer_elsewhere = app.login("demo", "changer@example.com", PASSWORD).await;
    let disabled = app.register("demo", "disabled@example.com").await;
    let deleted = app.register("demo", "deleted@example.com").await;
    let deleted_twice = app.login("demo", "deleted@example.com", PASSWORD).await;
    let revoked_by_admin = app.register("demo", "revoked@example.com").await;
    let untouched = app.register("demo", "untouched@example.com").await;

    let ok = |response: reqwest::Response, what: &str| {
        assert!(response.status().is_success(), "{what}: {}", response.status());
    };
    ok(app.send(Method::POST, "/t/demo/auth/logout", &logout.access, None).await, "logout");
    let path = format!("/t/demo/users/me/sessions/{}", sid(&ended_one));
    ok(app.send(Method::DELETE, &path, &other_of_ended.access, None).await, "end one session");
    let change = json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"});
    ok(app.send(Method::POST, "/t/demo/users/me/password", &changer.access, Some(&change)).await, "password change");
    let path = format!("/t/demo/admin/users/{}/disable", disabled.user.id);
    ok(app.send(Method::POST, &path, &admin.access, None).await, "disable");
    let path = format!("/t/demo/admin/users/{}", deleted.user.id);
    ok(app.send(Method::DELETE, &path, &admin.access, None).await, "delete");
    let path = format!("/t/demo/admin/users/{}/sessions", revoked_by_admin.user.id);
    ok(app.send(Method::DELETE, &path, &admin.access, None).await, "end sessions");

    let refused = [&logout, &ended_one, &changer_elsewhere, &disabled, &deleted, &deleted_twice, &revoked_by_admin];
    let kept = [&other_of_ended, &changer, &untouched, &admin];
    let now = fetch_feed(&app, "demo", None).await;
    let in_feed = listed(&now.feed);
    for tokens in refused {
        assert!(in_feed.contains(&sid(tokens)), "{} is in the feed", tokens.user.email);
        let answer = app.get_with("/t/demo/users/me", &tokens.access).await;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "{} is refused by the server", tokens.user.email);
    }
    for tokens in kept {
        assert!(!in_feed.contains(&sid(tokens)), "{} is not in the feed", tokens.user.email);
        assert_eq!(app.get_with("/t/demo/users/me", &tokens.access).await.status(), StatusCode::OK);
    }
    assert_eq!(in_feed.len(), refused.len(), "one entry per ended session: {in_feed:?}");
    let ttl = claims_of(&logout.access)["exp"].as_i64().expect("exp")
        - claims_of(&logout.access)["iat"].as_i64().expect("iat");
    for entry in &now.feed.revoked {
        assert_eq!(entry.2, entry.1 + ttl + 300, "an entry lasts the token lifetime plus the largest leeway");
    }
    assert_eq!(now.feed.iss, app.url("/t/demo"));
}

#[tokio::test]
async fn the_feed_answers_304_to_its_etag_and_continues_from_a_cursor() {
    let app = spawn_app().await;
    let first = app.register("demo", "first@example.com").await;
    let second = app.register("demo", "second@example.com").await;
    app.send(Method::POST, "/t/demo/auth/logout", &first.access, None).await;
    let before = fetch_feed(&app, "demo", None).await;
    assert_eq!(listed(&before.feed), [sid(&first)]);

    let cached = app.http.get(app.url("/t/demo/.well-known/revocations")).header("if-none-match", &before.etag);
    let cached = cached.send().await.expect("request");
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(cached.headers()["etag"], before.etag.as_str());
    let nothing_new = fetch_feed(&app, "demo", Some(&before.feed.cursor)).await;
    assert!(nothing_new.feed.revoked.is_empty());
    assert_eq!(nothing_new.feed.since.as_deref(), Some(before.feed.cursor.as_str()));
    assert_eq!(nothing_new.feed.cursor, before.feed.cursor);

    app.send(Method::POST, "/t/demo/auth/logout", &second.access, None).await;
    let stale = app.http.get(app.url("/t/demo/.well-known/revocations")).header("if-none-match", &before.etag);
    assert_eq!(stale.send().await.expect("request").status(), StatusCode::OK, "a change changes the tag");
    let delta = fetch_feed(&app, "demo", Some(&before.feed.cursor)).await;
    assert_eq!(listed(&delta.feed), [sid(&second)], "only what ended after the cursor");
    assert_eq!(delta.feed.since.as_deref(), Some(before.feed.cursor.as_str()));
    assert_ne!(delta.feed.cursor, before.feed.cursor);

    // A cursor this log cannot continue (another epoch, or ahead of it) gets the whole feed.
    let (epoch, seq) = before.feed.cursor.split_once('.').expect("epoch.seq");
    let foreign = format!("{}.{seq}", epoch.parse::<u64>().expect("epoch") ^ 1);
    for cursor in [foreign, format!("{epoch}.999")] {
        let whole = fetch_feed(&app, "demo", Some(&cursor)).await;
        assert_eq!(whole.feed.since, None, "{cursor}");
        assert_eq!(listed(&whole.feed), [sid(&first), sid(&second)], "{cursor}");
    }
    // What is not `{digits}.{digits}` (at most 19 each) is refused by the documented pattern.
    for bad in ["x", "1", "1.2.3", "-1.0", "1.99999999999999999999", "%20"] {
        let response = app.http.get(app.url(&format!("/t/demo/.well-known/revocations?since={bad}"))).send().await;
        assert_eq!(response.expect("request").status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    let response = app.http.get(app.url("/t/nope/.well-known/revocations")).send().await.expect("request");
    assert_problem(response, StatusCode::NOT_FOUND, "tenant_not_found").await;
}

#[tokio::test]
async fn a_tenant_feed_lists_only_its_sessions_and_verifies_only_with_its_keys() {
    let app = spawn_app().await;
    app.create_tenant(json!({"id": "feed-b", "name": "B"})).await;
    let a = app.register("demo", "a@example.com").await;
    let b = app.register("feed-b", "b@example.com").await;
    app.send(Method::POST, "/t/demo/auth/logout", &a.access, None).await;
    app.send(Method::POST, "/t/feed-b/auth/logout", &b.access, None).await;
    assert_eq!(listed(&fetch_feed(&app, "demo", None).await.feed), [sid(&a)]);
    assert_eq!(listed(&fetch_feed(&app, "feed-b", None).await.feed), [sid(&b)]);

    // B's document offered as A's: another key, and another issuer even where a key matched.
    let b_document = app
        .http
        .get(app.url("/t/feed-b/.well-known/revocations"))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    let refused = verify_revocation_feed(&b_document, &keys_of(&app, "demo").await, &rules(&app, "demo"));
    assert!(matches!(refused, Err(latch_shared::Error::UnknownKid)), "{refused:?}");
    let refused = verify_revocation_feed(&b_document, &keys_of(&app, "feed-b").await, &rules(&app, "demo"));
    assert_eq!(refused.unwrap_err(), latch_shared::Error::WrongIssuer);
    // And a feed is never an access token.
    assert_problem(app.get_with("/t/feed-b/users/me", &b_document).await, StatusCode::UNAUTHORIZED, "invalid_token")
        .await;
}
