//! Bad input gets a 4xx problem+json, never a 5xx, and changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn malformed_json_is_a_400_problem() {
    let app = spawn_app().await;
    for body in [
        "{not json",
        "",
        "[]",
        r#"{"email": {"nested": 1}, "password": "x"}"#,
        &format!("{}{}", "[".repeat(500), "]".repeat(500)),
    ] {
        let response = app
            .http
            .post(app.url("/t/demo/auth/login"))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("request");
        assert_problem(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
}

#[tokio::test]
async fn malformed_bodies_on_the_account_and_operator_endpoints_are_400_problems() {
    let app = spawn_app().await;
    let user = app.register("demo", "bodies@example.com").await;
    let access = user.access.as_str();
    let cases: [(&str, &str, &[&str]); 3] = [
        ("/t/demo/users/me/password", access, &["{", r#"{"current_password": []}"#, r#"{"current_password": "x"}"#]),
        (
            "/admin/tenants/demo/keys/rotate",
            OPERATOR_TOKEN,
            &["{", r#"{"publish_delay_seconds": -5}"#, r#"{"publish_delay": 5}"#],
        ),
        ("/admin/tenants", OPERATOR_TOKEN, &["[]", r#"{"id": {}}"#, r#"{"id": "typo", "refresh_grace_second": 1}"#]),
    ];
    for (path, token, bodies) in cases {
        for body in bodies {
            let response = app
                .http
                .post(app.url(path))
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .expect("request");
            let status = response.status();
            assert!(status.is_client_error(), "{path} {body}: {status}");
            assert_problem(response, status, "invalid_request").await;
        }
    }
}

#[tokio::test]
async fn invalid_utf8_is_a_400_problem() {
    let app = spawn_app().await;
    let body = b"{\"email\": \"a\xff@example.com\", \"password\": \"correct horse battery\"}".to_vec();
    let response = app
        .http
        .post(app.url("/t/demo/auth/register"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request");
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn a_wrong_or_missing_content_type_is_a_415_problem() {
    let app = spawn_app().await;
    let body = json!({"email": "a@example.com", "password": PASSWORD}).to_string();
    let plain = app.http.post(app.url("/t/demo/auth/register")).header("content-type", "text/plain").body(body.clone());
    assert_problem(plain.send().await.expect("request"), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
        .await;
    let missing = app.http.post(app.url("/t/demo/auth/register")).body(body);
    assert_problem(
        missing.send().await.expect("request"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_or_without_a_content_length() {
    let app = spawn_app().await;
    let huge = format!(r#"{{"email":"big@example.com","password":"{}"}}"#, "x".repeat(200 * 1024));
    let declared =
        app.http.post(app.url("/t/demo/auth/register")).header("content-type", "application/json").body(huge.clone());
    assert_problem(declared.send().await.expect("request"), StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;

    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = huge.into_bytes().chunks(8192).map(|c| Ok(c.to_vec())).collect();
    let stream = reqwest::Body::wrap_stream(futures_stream(chunks));
    let chunked =
        app.http.post(app.url("/t/demo/auth/register")).header("content-type", "application/json").body(stream);
    assert_problem(chunked.send().await.expect("request"), StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;

    let login = app.try_login("demo", "big@example.com", PASSWORD).await;
    assert_problem(login, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
}

/// A stream over ready items, without pulling in a futures crate.
fn futures_stream<T: Send + 'static>(items: Vec<T>) -> impl futures_core::Stream<Item = T> + Send + 'static {
    struct Ready<T>(std::vec::IntoIter<T>);
    impl<T> futures_core::Stream for Ready<T> {
        type Item = T;
        fn poll_next(mut self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<Option<T>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    impl<T> Unpin for Ready<T> {}
    Ready(items.into_iter())
}

#[tokio::test]
async fn invalid_and_unknown_tenants_are_4xx_on_every_tenant_endpoint() {
    let app = spawn_app().await;
    let body = json!({"email": "a@example.com", "password": PASSWORD, "refresh_token": "x"});
    for tenant in ["Not_A_Slug", "x".repeat(64).as_str(), "%C3%A4"] {
        for path in ["auth/register", "auth/login", "auth/refresh"] {
            let response = app.post_json(&format!("/t/{tenant}/{path}"), &body).await;
            assert_problem(response, StatusCode::BAD_REQUEST, "invalid_tenant_id").await;
        }
        for path in [".well-known/jwks.json", ".well-known/openid-configuration", "users/me"] {
            let response = app.get_with(&format!("/t/{tenant}/{path}"), "token").await;
            assert_problem(response, StatusCode::BAD_REQUEST, "invalid_tenant_id").await;
        }
    }
    for path in ["auth/register", "auth/login"] {
        let response = app.post_json(&format!("/t/nowhere/{path}"), &body).await;
        assert_problem(response, StatusCode::NOT_FOUND, "tenant_not_found").await;
    }
    let response = app.http.get(app.url("/t/nowhere/.well-known/jwks.json")).send().await.expect("request");
    assert_problem(response, StatusCode::NOT_FOUND, "tenant_not_found").await;
}

#[tokio::test]
async fn odd_authorization_headers_are_401_problems() {
    let app = spawn_app().await;
    let values: Vec<reqwest::header::HeaderValue> = vec![
        reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe").expect("obs-text is a valid header value"),
        reqwest::header::HeaderValue::from_static("Bearer"),
        reqwest::header::HeaderValue::from_static("Basic dXNlcjpwYXNz"),
        reqwest::header::HeaderValue::from_static("Bearer a.b.c"),
        reqwest::header::HeaderValue::from_str(&format!("Bearer {}", "A".repeat(9000))).expect("ascii"),
    ];
    for value in values {
        let response =
            app.http.get(app.url("/t/demo/users/me")).header("authorization", value.clone()).send().await.expect("r");
        let status = response.status();
        assert!(status == StatusCode::UNAUTHORIZED, "{value:?} gave {status}");
        let problem: serde_json::Value = response.json().await.expect("problem json");
        assert!(problem["code"].is_string());
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems_too() {
    let app = spawn_app().await;
    let missing = app.http.get(app.url("/no/such/route")).send().await.expect("request");
    assert_problem(missing, StatusCode::NOT_FOUND, "not_found").await;
    let wrong_method = app.http.delete(app.url("/t/demo/auth/login")).send().await.expect("request");
    assert_problem(wrong_method, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
}

#[tokio::test]
async fn health_endpoints_answer() {
    let app = spawn_app().await;
    let health = app.http.get(app.url("/healthz")).send().await.expect("request");
    assert_eq!(health.status(), StatusCode::OK);
    let ready = app.http.get(app.url("/readyz")).send().await.expect("request");
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(ready.text().await.expect("text"), "ready");
}

#[tokio::test]
async fn a_number_where_the_document_declares_a_string_is_refused_not_coerced() {
    let app = spawn_app().await;
    let created = app.send(Method::POST, "/admin/tenants", OPERATOR_TOKEN, Some(&json!({"id": 0}))).await;
    let problem = assert_problem(created, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert!(problem["detail"].as_str().is_some_and(|d| d.contains("`id` must be a JSON string")), "{problem}");
    assert_eq!(app.get_with("/admin/tenants/0", OPERATOR_TOKEN).await.status(), StatusCode::NOT_FOUND, "no tenant 0");
    let login = app.post_json("/t/demo/auth/login", &json!({"email": 12345, "password": true})).await;
    assert_problem(login, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn the_document_states_the_tenant_id_pattern_and_the_settings_ranges() {
    let app = spawn_app().await;
    let spec: Value = app.http.get(app.url("/openapi.json")).send().await.expect("r").json().await.expect("json");
    let login = &spec["paths"]["/t/{tenant}/auth/login"]["post"]["parameters"][0];
    assert_eq!(login["name"], "tenant");
    assert_eq!(login["schema"]["pattern"], "^[a-z0-9-]{1,63}$");
    assert_eq!(spec["components"]["schemas"]["CreateTenantRequest"]["properties"]["id"]["maxLength"], 63);
    let ttl = &spec["components"]["schemas"]["UpdateTenantRequest"]["properties"]["access_token_ttl"];
    assert_eq!((&ttl["minimum"], &ttl["maximum"]), (&json!(60), &json!(86_400)), "{ttl}");
    // Bodies that refuse unknown members say so, and do refuse them; user-facing ones stay open.
    let schemas = &spec["components"]["schemas"];
    assert_eq!(schemas["UpdateTenantRequest"]["additionalProperties"], false);
    assert!(schemas["RegisterRequest"]["additionalProperties"].is_null());
    let misspelt = json!({"acess_token_ttl": 600});
    let answer = app.send(Method::PATCH, "/admin/tenants/demo", OPERATOR_TOKEN, Some(&misspelt)).await;
    assert_problem(answer, StatusCode::BAD_REQUEST, "invalid_request").await;
    // The stated range is the enforced one, at both ends.
    for (ttl, status) in [
        (59, StatusCode::BAD_REQUEST),
        (60, StatusCode::OK),
        (86_400, StatusCode::OK),
        (86_401, StatusCode::BAD_REQUEST),
    ] {
        let body = json!({"access_token_ttl": ttl});
        let answer = app.send(Method::PATCH, "/admin/tenants/demo", OPERATOR_TOKEN, Some(&body)).await;
        assert_eq!(answer.status(), status, "access_token_ttl {ttl}");
    }
}

#[tokio::test]
async fn the_hosted_pages_answer_unreadable_forms_with_a_page_and_empty_posts_are_read_as_their_declared_type() {
    let app = spawn_app().await;
    // A form with a field twice cannot be parsed: a page, not a problem document.
    let response = app
        .http
        .post(app.url("/t/demo/oauth/logout"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("state=a&state=b")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers()["content-type"].to_str().expect("text").starts_with("text/html"));
    let page = response.text().await.expect("html");
    assert!(page.contains("could not be read") && page.contains("duplicate field"), "{page}");

    // An empty POST without a content type is an empty form here (not a 415).
    let response = app.http.post(app.url("/t/demo/oauth/logout")).send().await.expect("request");
    assert_ne!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let token = app.http.post(app.url("/t/demo/oauth/token")).send().await.expect("request");
    assert_eq!(token.status(), StatusCode::BAD_REQUEST);
    let body: Value = token.json().await.expect("json");
    assert_eq!(body["error"], "invalid_request", "{body}");

    // An empty token is refused in the OAuth format, as a missing one is.
    for endpoint in ["revoke", "introspect"] {
        let response = app
            .http
            .post(app.url(&format!("/t/demo/oauth/{endpoint}")))
            .bearer_auth(OPERATOR_TOKEN)
            .form(&[("token", "")])
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{endpoint}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"], "invalid_request", "{endpoint}: {body}");
    }
}
