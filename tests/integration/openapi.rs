//! The committed `openapi.json` is what the server serves, and the explorer can authorize.

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::*;

fn committed_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("openapi.json")
}

#[tokio::test]
async fn the_served_openapi_document_matches_the_committed_one() {
    let app = spawn_app().await;
    let served: Value =
        app.http.get(app.url("/openapi.json")).send().await.expect("request").json().await.expect("json");
    if std::env::var_os("LATCH_UPDATE_OPENAPI").is_some() {
        let pretty = serde_json::to_string_pretty(&served).expect("serialize");
        std::fs::write(committed_path(), pretty + "\n").expect("write openapi.json");
    }
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(committed_path()).expect("openapi.json is committed"))
            .expect("committed openapi.json is JSON");
    assert!(
        served == committed,
        "openapi.json is stale: run `LATCH_UPDATE_OPENAPI=1 cargo test -p latch-tests openapi` and commit the result"
    );
}

#[tokio::test]
async fn the_explorer_is_served_and_protected_operations_declare_bearer_auth() {
    let app = spawn_app().await;
    let docs = app.http.get(app.url("/docs")).send().await.expect("request");
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.expect("html").contains("swagger"), "the explorer page");

    let spec: Value = app.http.get(app.url("/openapi.json")).send().await.expect("r").json().await.expect("json");
    let schemes = &spec["components"]["securitySchemes"];
    assert_eq!(schemes["BearerToken"]["scheme"], "bearer");
    assert_eq!(schemes["OperatorToken"]["scheme"], "bearer");
    let me = &spec["paths"]["/t/{tenant}/users/me"]["get"];
    assert!(me["security"].to_string().contains("BearerToken"), "{me}");
    let create = &spec["paths"]["/admin/tenants"]["post"];
    assert!(create["security"].to_string().contains("OperatorToken"), "{create}");
}

#[tokio::test]
async fn the_explorer_renders_in_chromium_under_its_content_security_policy() {
    let app = spawn_app().await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../verifier-wasm/tests/server-explorer.mjs");
    let page = node_json(&script, [&app.base]).await;
    assert!(page["title"].as_str().unwrap_or_default().starts_with("latch"), "{page}");
    assert!(page["operations"].as_u64().unwrap_or(0) > 30, "every operation listed: {page}");
    assert_eq!(page["violations"], serde_json::json!([]), "no CSP violation: {page}");
    assert_eq!(page["errors"], serde_json::json!([]), "no script error: {page}");
}

/// Every `null` in `body` is a property its schema (`name` in `spec`) declares nullable.
fn assert_nulls_declared(spec: &Value, name: &str, body: &Value) {
    let schema = &spec["components"]["schemas"][name];
    assert!(schema.is_object(), "no schema {name}");
    for (property, value) in body.as_object().expect("an object") {
        if value.is_null() {
            let declared = &schema["properties"][property];
            let nullable = declared["nullable"] == true;
            assert!(nullable, "{name}.{property} is null in an answer but not declared nullable: {declared}");
        }
    }
}

#[tokio::test]
async fn nulls_in_answers_are_declared_nullable_in_the_document() {
    let app = spawn_app().await;
    let spec: Value = app.http.get(app.url("/openapi.json")).send().await.expect("r").json().await.expect("json");
    let tokens = app.register("demo", "nullable@example.com").await;
    let me: Value = app.get_with("/t/demo/users/me", &tokens.access).await.json().await.expect("json");
    assert!(me["name"].is_null(), "a user without a name: {me}");
    assert_nulls_declared(&spec, "User", &me);

    let rotated = app.send(reqwest::Method::POST, "/admin/tenants/demo/keys/rotate", OPERATOR_TOKEN, None).await;
    assert_eq!(rotated.status(), StatusCode::CREATED);
    let keys: Value = app.get_with("/admin/tenants/demo/keys", OPERATOR_TOKEN).await.json().await.expect("json");
    let current = keys["keys"].as_array().expect("keys").iter().find(|key| key["retired_at"].is_null()).cloned();
    let current = current.unwrap_or_else(|| panic!("a key not retired: {keys}"));
    assert_nulls_declared(&spec, "SigningKeyInfo", &current);
}
