//! Security headers on every response, and CORS per tenant.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::*;

const APP: &str = "https://app.example";

#[tokio::test]
async fn every_response_carries_the_security_headers_and_a_csp() {
    let app = spawn_app().await;
    let responses = [
        ("/healthz", app.http.get(app.url("/healthz")).send().await),
        ("/nowhere", app.http.get(app.url("/nowhere")).send().await),
        ("/t/demo/users/me", app.http.get(app.url("/t/demo/users/me")).send().await),
        ("/t/demo/.well-known/jwks.json", app.http.get(app.url("/t/demo/.well-known/jwks.json")).send().await),
        ("/openapi.json", app.http.get(app.url("/openapi.json")).send().await),
        ("/docs/", app.http.get(app.url("/docs/")).send().await),
    ];
    for (path, response) in responses {
        let response = response.expect("request");
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"), "{path}");
        assert_eq!(header("referrer-policy").as_deref(), Some("no-referrer"), "{path}");
        assert_eq!(header("x-frame-options").as_deref(), Some("DENY"), "{path}");
        let csp = header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        if path.starts_with("/docs") {
            assert!(csp.contains("script-src 'self' 'unsafe-inline'"), "{path}: {csp}");
        } else {
            assert!(csp.starts_with("default-src 'none'"), "{path}: {csp}");
        }
    }

    let body = json!({"email": "h@example.com", "password": PASSWORD});
    let register = app.post_json("/t/demo/auth/register", &body).await;
    assert_eq!(register.headers().get("cache-control").expect("cache-control"), "no-store", "token response");
}

#[tokio::test]
async fn cors_lets_only_the_tenants_own_origins_call_it_and_anyone_read_its_jwks() {
    let app = spawn_app().await;
    app.create_tenant(json!({"id": "other"})).await;
    let patch = app.http.patch(app.url("/admin/tenants/demo")).bearer_auth(OPERATOR_TOKEN);
    let patched = patch.json(&json!({"cors_allowed_origins": [APP]})).send().await.expect("request");
    assert_eq!(patched.status(), StatusCode::OK);
    let tokens = app.register("demo", "cors@example.com").await;
    let access = tokens.access.as_str();

    let preflight = |tenant: &str, origin: &str| {
        app.http
            .request(Method::OPTIONS, app.url(&format!("/t/{tenant}/users/me")))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let ok = preflight("demo", APP).await.expect("request");
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    assert_eq!(ok.headers()["access-control-allow-origin"], APP);
    assert!(ok.headers()["access-control-allow-headers"].to_str().expect("ascii").contains("authorization"));
    assert!(ok.headers()["access-control-allow-methods"].to_str().expect("ascii").contains("PATCH"));
    let foreign = preflight("demo", "https://evil.example").await.expect("request");
    assert_problem(foreign, StatusCode::FORBIDDEN, "cors_origin_not_allowed").await;
    let other_tenant = preflight("other", APP).await.expect("request");
    assert_eq!(other_tenant.status(), StatusCode::FORBIDDEN, "another tenant's origins are not this one's");

    let me =
        |origin: &str| app.http.get(app.url("/t/demo/users/me")).bearer_auth(access).header("origin", origin).send();
    let allowed = me(APP).await.expect("request");
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(allowed.headers()["access-control-allow-origin"], APP);
    assert!(allowed.headers()["vary"].to_str().expect("ascii").to_lowercase().contains("origin"));
    let refused = me("https://evil.example").await.expect("request");
    assert!(refused.headers().get("access-control-allow-origin").is_none());
    let error = app.http.get(app.url("/t/demo/users/me")).header("origin", APP).send().await.expect("request");
    assert_eq!(error.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error.headers()["access-control-allow-origin"], APP, "errors are readable by the app too");

    for tenant in ["demo", "other"] {
        let jwks = app
            .http
            .get(app.url(&format!("/t/{tenant}/.well-known/jwks.json")))
            .header("origin", "https://any.example");
        let jwks = jwks.send().await.expect("request");
        assert_eq!(jwks.headers()["access-control-allow-origin"], "*", "{tenant}: public keys are public");
    }
    let no_origin = app.http.get(app.url("/t/demo/users/me")).bearer_auth(access).send().await.expect("request");
    assert!(no_origin.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn browsers_find_an_icon_instead_of_a_404() {
    let app = spawn_app().await;
    let icon = app.http.get(app.url("/favicon.ico")).send().await.expect("request");
    assert_eq!(icon.status(), StatusCode::OK);
    assert_eq!(icon.headers()["content-type"], "image/x-icon");
    let bytes = icon.bytes().await.expect("body");
    assert_eq!(&bytes[..4], &[0, 0, 1, 0], "an ICO file");
}
