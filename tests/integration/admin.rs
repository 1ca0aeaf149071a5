//! The tenant admin API, roles and scopes, the owner-only rule, audit events.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

/// Every admin endpoint of a tenant, each about the user `user`.
fn admin_endpoints(tenant: &str, user: &str) -> Vec<(Method, String, Option<Value>)> {
    let base = format!("/t/{tenant}/admin");
    vec![
        (Method::GET, format!("{base}/users"), None),
        (Method::POST, format!("{base}/users"), Some(json!({"email": "new@example.com", "password": PASSWORD}))),
        (Method::GET, format!("{base}/users/{user}"), None),
        (Method::POST, format!("{base}/users/{user}/disable"), None),
        (Method::POST, format!("{base}/users/{user}/enable"), None),
        (Method::PUT, format!("{base}/users/{user}/roles"), Some(json!({"roles": ["admin"]}))),
        (Method::DELETE, format!("{base}/users/{user}/sessions"), None),
        (Method::DELETE, format!("{base}/users/{user}"), None),
        (Method::GET, format!("{base}/events"), None),
        (Method::GET, format!("{base}/users/import"), None),
    ]
}

async fn user_ids(app: &TestApp, tenant: &str) -> Vec<String> {
    let listed = app.send(Method::GET, &format!("/t/{tenant}/admin/users?limit=200"), OPERATOR_TOKEN, None).await;
    let listed: Value = listed.json().await.expect("json");
    listed["users"].as_array().expect("users").iter().map(|u| u["id"].as_str().expect("id").to_owned()).collect()
}

#[tokio::test]
async fn admins_list_users_by_email_in_pages_and_search_by_prefix() {
    let app = spawn_app().await;
    let admin = app.admin_of("demo", "admin@example.com").await;
    for email in ["Carol@Example.com", "bob@example.com", "bea@example.com", "dan@example.com"] {
        app.register("demo", email).await;
    }
    let mut seen = Vec::new();
    let mut path = "/t/demo/admin/users?limit=2".to_owned();
    loop {
        let page: Value = app.get_with(&path, &admin.access).await.json().await.expect("json");
        let users = page["users"].as_array().expect("users");
        assert!(users.len() <= 2, "{page}");
        seen.extend(users.iter().map(|u| u["email"].as_str().expect("email").to_owned()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/t/demo/admin/users?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["admin@example.com", "bea@example.com", "bob@example.com", "Carol@Example.com", "dan@example.com"],
        "every user once, ordered by email"
    );
    let found: Value =
        app.get_with("/t/demo/admin/users?email_prefix=B", &admin.access).await.json().await.expect("json");
    let emails: Vec<_> = found["users"].as_array().expect("users").iter().map(|u| u["email"].clone()).collect();
    assert_eq!(emails, [json!("bea@example.com"), json!("bob@example.com")]);
    assert!(found["users"][0].get("password_hash").is_none(), "no hash in the listing");
    let common = json!({"email": "created@example.com", "password": "iloveyou12"});
    let common = app.send(Method::POST, "/t/demo/admin/users", &admin.access, Some(&common)).await;
    assert_problem(common, StatusCode::BAD_REQUEST, "password_too_common").await;
    let bad = app.get_with("/t/demo/admin/users?cursor=%%%", &admin.access).await;
    assert_problem(bad, StatusCode::BAD_REQUEST, "invalid_cursor").await;

    let one = app.get_with(&format!("/t/demo/admin/users/{}", &admin.user.id), &admin.access).await;
    let one: Value = one.json().await.expect("json");
    assert_eq!(one["email"], "admin@example.com");
    assert_eq!(one["roles"], json!(["admin", "user"]));
    let missing = app.get_with("/t/demo/admin/users/00000000-0000-7000-8000-000000000000", &admin.access).await;
    assert_problem(missing, StatusCode::NOT_FOUND, "user_not_found").await;
}

#[tokio::test]
async fn users_without_the_admin_role_get_403_on_every_admin_endpoint_and_change_nothing() {
    let app = spawn_app().await;
    let plain = app.register("demo", "plain@example.com").await;
    let victim = app.register("demo", "victim@example.com").await;
    for (method, path, body) in admin_endpoints("demo", &victim.user.id) {
        let response = app.send(method.clone(), &path, &plain.access, body.as_ref()).await;
        assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    }
    let anonymous = app.http.get(app.url("/t/demo/admin/users")).send().await.expect("request");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let login = app.try_login("demo", "victim@example.com", PASSWORD).await;
    assert_eq!(login.status(), StatusCode::OK, "the victim was neither disabled nor deleted");
    assert_eq!(user_ids(&app, "demo").await.len(), 2, "no user was created");
}

#[tokio::test]
async fn admins_of_one_tenant_reach_nothing_of_another() {
    let app = spawn_app().await;
    app.create_tenant(json!({"id": "other"})).await;
    let admin = app.admin_of("demo", "admin@example.com").await;
    let theirs = app.register("other", "theirs@example.com").await;

    // Their tenant's admin API refuses our admin: authenticated, but not there.
    for (method, path, body) in admin_endpoints("other", &theirs.user.id) {
        let response = app.send(method.clone(), &path, &admin.access, body.as_ref()).await;
        assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    }
    // A forged token naming their tenant is still just an invalid token.
    let forged = admin.access.as_str().replacen('e', "f", 1);
    let response = app.get_with("/t/other/admin/users", &forged).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // Their user ids mean nothing in our tenant's admin API.
    for (method, path, body) in admin_endpoints("demo", &theirs.user.id) {
        if path.ends_with("/admin/users") || path.ends_with("/admin/events") || path.ends_with("/users/import") {
            continue;
        }
        let response = app.send(method.clone(), &path, &admin.access, body.as_ref()).await;
        assert_problem(response, StatusCode::NOT_FOUND, "user_not_found").await;
    }
    // Our listings and events show none of theirs.
    let listed: Value = app.get_with("/t/demo/admin/users", &admin.access).await.json().await.expect("json");
    assert!(!listed.to_string().contains("theirs@example.com"), "{listed}");
    let events: Value = app.get_with("/t/demo/admin/events?limit=200", &admin.access).await.json().await.expect("json");
    assert!(!events.to_string().contains(&theirs.user.id), "{events}");
    // Their user is untouched.
    let login = app.try_login("other", "theirs@example.com", PASSWORD).await;
    let login: Tokens = login.json().await.expect("tokens");
    assert_eq!(login.user.roles, ["user"]);
    assert_eq!(user_ids(&app, "other").await, [theirs.user.id.as_str()]);
}

#[tokio::test]
async fn a_disabled_user_cannot_log_in_and_their_tokens_stop_at_once_until_enabled() {
    let app = spawn_app().await;
    let admin = app.admin_of("demo", "admin@example.com").await;
    let user = app.register("demo", "user@example.com").await;

    let disable = format!("/t/demo/admin/users/{}/disable", &user.user.id);
    let disabled: Value = app.send(Method::POST, &disable, &admin.access, None).await.json().await.expect("json");
    assert_eq!(disabled["disabled"], true);
    assert_problem(app.get_with("/t/demo/users/me", &user.access).await, StatusCode::UNAUTHORIZED, "session_ended")
        .await;
    let refresh = app.try_refresh("demo", &user.refresh).await;
    assert_eq!(refresh.status(), StatusCode::UNAUTHORIZED, "refresh tokens stop too");
    let login = app.try_login("demo", "user@example.com", PASSWORD).await;
    assert_problem(login, StatusCode::FORBIDDEN, "user_disabled").await;

    let enable = format!("/t/demo/admin/users/{}/enable", &user.user.id);
    assert_eq!(app.send(Method::POST, &enable, &admin.access, None).await.status(), StatusCode::OK);
    let login = app.try_login("demo", "user@example.com", PASSWORD).await;
    assert_eq!(login.status(), StatusCode::OK);
    assert_problem(app.get_with("/t/demo/users/me", &user.access).await, StatusCode::UNAUTHORIZED, "session_ended")
        .await;
}

#[tokio::test]
async fn roles_set_by_an_admin_reach_new_tokens_and_the_admin_check_at_once() {
    let app = spawn_app().await;
    let admin = app.admin_of("demo", "admin@example.com").await;
    let user = app.register("demo", "user@example.com").await;
    let roles_path = format!("/t/demo/admin/users/{}/roles", &user.user.id);

    let unknown = app.send(Method::PUT, &roles_path, &admin.access, Some(&json!({"roles": ["root"]}))).await;
    assert_problem(unknown, StatusCode::BAD_REQUEST, "unknown_role").await;
    let promoted = app.send(Method::PUT, &roles_path, &admin.access, Some(&json!({"roles": ["user", "admin"]}))).await;
    let promoted: Value = promoted.json().await.expect("json");
    assert_eq!(promoted["roles"], json!(["admin", "user"]));
    // The old token (roles: [user]) now passes the admin check: the stored roles decide.
    assert_eq!(app.get_with("/t/demo/admin/users", &user.access).await.status(), StatusCode::OK);
    let login = app.login("demo", "user@example.com", PASSWORD).await;
    assert_eq!(claims_of(&login.access)["roles"], json!(["admin", "user"]));
    assert!(login.scope.split(' ').any(|s| s == "admin"));

    let demoted = app.send(Method::PUT, &roles_path, &admin.access, Some(&json!({"roles": ["user"]}))).await;
    assert_eq!(demoted.status(), StatusCode::OK);
    let stale_admin_token = app.get_with("/t/demo/admin/users", &login.access).await;
    assert_problem(stale_admin_token, StatusCode::FORBIDDEN, "forbidden").await;
    let refreshed = app.refresh("demo", &login.refresh).await;
    assert_eq!(claims_of(&refreshed.access)["roles"], json!(["user"]));
    assert!(!refreshed.scope.contains("admin"), "scope narrowed: {refreshed:?}");
}

#[tokio::test]
async fn tenant_roles_define_the_scopes_a_login_may_request() {
    let app = spawn_app().await;
    let roles = json!({
        "user": ["openid", "profile"],
        "admin": ["openid", "profile", "admin"],
        "editor": ["openid", "articles:write"],
    });
    let patch = app
        .http
        .patch(app.url("/admin/tenants/demo"))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&json!({"roles": roles, "default_roles": ["user", "editor"]}));
    let tenant: Value = patch.send().await.expect("request").json().await.expect("json");
    assert_eq!(tenant["settings"]["roles"]["editor"], json!(["articles:write", "openid"]));
    assert_eq!(tenant["settings"]["default_roles"], json!(["editor", "user"]));

    let registered = app.register("demo", "writer@example.com").await;
    assert_eq!(registered.scope, "articles:write openid profile");
    let form = |scope: &'static str| {
        [("grant_type", "password"), ("username", "writer@example.com"), ("password", PASSWORD), ("scope", scope)]
    };
    let narrow: OAuthTokens =
        app.post_form("/t/demo/oauth/token", &form("articles:write")).await.json().await.expect("j");
    assert_eq!(narrow.scope, "articles:write");
    assert_eq!(claims_of(&narrow.access_token)["scope"], "articles:write");
    let beyond = app.post_form("/t/demo/oauth/token", &form("openid admin")).await;
    let beyond_body: Value = beyond.json().await.expect("json");
    assert_eq!(beyond_body["error"], "invalid_scope");

    for bad in [
        json!({"roles": {"user": ["openid"]}}),
        json!({"roles": {"admin": ["bad scope"], "user": []}}),
        json!({"roles": {"Admin!": [], "admin": []}}),
        json!({"default_roles": ["ghost"]}),
    ] {
        let response =
            app.http.patch(app.url("/admin/tenants/demo")).bearer_auth(OPERATOR_TOKEN).json(&bad).send().await;
        assert_problem(response.expect("request"), StatusCode::BAD_REQUEST, "invalid_setting").await;
    }
}

#[tokio::test]
async fn deleting_a_user_ends_their_sessions_and_frees_the_email() {
    let app = spawn_app().await;
    let admin = app.admin_of("demo", "admin@example.com").await;
    let user = app.register("demo", "leaving@example.com").await;
    let path = format!("/t/demo/admin/users/{}", &user.user.id);

    assert_eq!(app.send(Method::DELETE, &path, &admin.access, None).await.status(), StatusCode::NO_CONTENT);
    assert_problem(app.get_with(&path, &admin.access).await, StatusCode::NOT_FOUND, "user_not_found").await;
    assert_eq!(app.get_with("/t/demo/users/me", &user.access).await.status(), StatusCode::UNAUTHORIZED);
    let refresh = app.try_refresh("demo", &user.refresh).await;
    assert_problem(refresh, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    assert_problem(
        app.try_login("demo", "leaving@example.com", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let again = app.register("demo", "Leaving@example.com").await;
    assert_ne!(&again.user.id, &user.user.id, "a new account, not the old one");
    let twice = app.send(Method::DELETE, &path, &admin.access, None).await;
    assert_problem(twice, StatusCode::NOT_FOUND, "user_not_found").await;
}

#[tokio::test]
async fn ending_all_sessions_of_a_user_stops_every_refresh_token() {
    let app = spawn_app().await;
    let admin = app.admin_of("demo", "admin@example.com").await;
    let first = app.register("demo", "many@example.com").await;
    let second = app.login("demo", "many@example.com", PASSWORD).await;

    let path = format!("/t/demo/admin/users/{}/sessions", &first.user.id);
    assert_eq!(app.send(Method::DELETE, &path, &admin.access, None).await.status(), StatusCode::NO_CONTENT);
    for tokens in [&first, &second] {
        let refresh = app.try_refresh("demo", &tokens.refresh).await;
        assert_problem(refresh, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
        assert_eq!(app.get_with("/t/demo/users/me", &tokens.access).await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.get_with("/t/demo/users/me", &admin.access).await.status(), StatusCode::OK, "not the admin's");
    assert_eq!(app.try_login("demo", "many@example.com", PASSWORD).await.status(), StatusCode::OK, "not disabled");
}

#[tokio::test]
async fn users_reach_their_own_resources_by_id_others_get_403_and_admins_reach_all() {
    let app = spawn_app().await;
    let admin = app.admin_of("demo", "admin@example.com").await;
    let owner = app.register("demo", "owner@example.com").await;
    let other = app.register("demo", "other@example.com").await;
    let sid = claims_of(&owner.access)["sid"].as_str().expect("sid").to_owned();
    let base = format!("/t/demo/users/{}", &owner.user.id);
    let endpoints = [
        (Method::GET, base.clone(), None),
        (Method::PATCH, base.clone(), Some(json!({"name": "Changed"}))),
        (Method::GET, format!("{base}/sessions"), None),
        (Method::DELETE, format!("{base}/sessions/{sid}"), None),
    ];
    for (method, path, body) in &endpoints {
        let response = app.send(method.clone(), path, &other.access, body.as_ref()).await;
        assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    }
    let ghost = app.get_with("/t/demo/users/00000000-0000-7000-8000-000000000000", &other.access).await;
    assert_problem(ghost, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(app.get_with("/t/demo/users/me", &owner.access).await.status(), StatusCode::OK, "session intact");

    let mine: Value = app.get_with(&base, &owner.access).await.json().await.expect("json");
    assert_eq!(mine["email"], "owner@example.com");
    let sessions: Value = app.get_with(&format!("{base}/sessions"), &admin.access).await.json().await.expect("json");
    assert_eq!(sessions["sessions"][0]["id"], sid.as_str());
    assert_eq!(sessions["sessions"][0]["current"], false, "not the admin's own session");
    let renamed = app.send(Method::PATCH, &base, &admin.access, Some(&json!({"name": "By Admin"}))).await;
    assert_eq!(renamed.json::<Value>().await.expect("json")["name"], "By Admin");
    let ended = app.send(Method::DELETE, &format!("{base}/sessions/{sid}"), &admin.access, None).await;
    assert_eq!(ended.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get_with("/t/demo/users/me", &owner.access).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn audit_events_are_listed_newest_first_in_pages_within_the_tenant_retention() {
    let app = spawn_app().await;
    let admin = app.admin_of("demo", "admin@example.com").await;
    let user = app.register("demo", "user@example.com").await;
    assert_eq!(app.try_login("demo", "user@example.com", "wrong password!").await.status(), StatusCode::UNAUTHORIZED);
    let path = format!("/t/demo/admin/users/{}/disable", &user.user.id);
    assert_eq!(app.send(Method::POST, &path, &admin.access, None).await.status(), StatusCode::OK);

    let events: Value = app.get_with("/t/demo/admin/events?limit=3", &admin.access).await.json().await.expect("json");
    let kinds: Vec<&str> =
        events["events"].as_array().expect("events").iter().map(|e| e["kind"].as_str().expect("k")).collect();
    assert_eq!(kinds, ["user_disabled", "login_failed", "login_succeeded"], "newest first");
    assert_eq!(events["events"][0]["actor"], admin.user.id);
    assert_eq!(events["events"][0]["subject"], user.user.id);
    assert_eq!(events["events"][1]["ip"], "127.0.0.1");
    let cursor = events["next_cursor"].as_str().expect("more pages");
    let older: Value = app
        .get_with(&format!("/t/demo/admin/events?limit=200&cursor={cursor}"), &admin.access)
        .await
        .json()
        .await
        .expect("j");
    let older_kinds: Vec<&str> =
        older["events"].as_array().expect("events").iter().map(|e| e["kind"].as_str().expect("k")).collect();
    assert_eq!(older_kinds.first(), Some(&"login_succeeded"), "the user's registration login: {older_kinds:?}");
    assert!(older_kinds.contains(&"roles_changed"), "{older_kinds:?}");
    assert!(older["next_cursor"].is_null());

    let patch = app.http.patch(app.url("/admin/tenants/demo")).bearer_auth(OPERATOR_TOKEN);
    let patched = patch.json(&json!({"audit_retention": 10})).send().await.expect("request");
    assert_eq!(patched.status(), StatusCode::OK);
    for _ in 0..12 {
        app.try_login("demo", "nobody@example.com", PASSWORD).await;
    }
    let all: Value = app.get_with("/t/demo/admin/events?limit=200", &admin.access).await.json().await.expect("json");
    let all = all["events"].as_array().expect("events");
    assert_eq!(all.len(), 10, "the tenant keeps its retention");
    assert!(all.iter().all(|e| e["kind"] == "login_failed"));
}
