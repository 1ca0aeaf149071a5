//! Headers on every response: security headers, and CORS for each tenant's
//! allowed browser origins (the public discovery documents for any origin).

use std::sync::Arc;

use poem::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};

use super::Problem;
use crate::domain::{Latch, TenantId};

/// The explorer's page carries its script and styles inline (poem-openapi's
/// Swagger UI), so it needs 'unsafe-inline'; it holds no user data.
const DOCS_CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; \
                        img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
                        form-action 'self'";
/// The demo: its own scripts and styles only (no inline code), the wasm
/// verifier compiled in the page, and calls to this server only.
const DEMO_CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
                        img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
                        form-action 'self'";
/// The hosted sign-in pages: forms and one stylesheet, no script at all.
/// (No `form-action`: Chromium applies it to the redirect a sign-in form
/// ends with, which goes to the client's own origin.)
const PAGES_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'";
/// Everything else is JSON.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

const CORS_METHODS: &str = "GET, POST, PUT, PATCH, DELETE";
const CORS_HEADERS: &str = "authorization, content-type, if-none-match";
const CORS_EXPOSED: &str = "www-authenticate, retry-after, etag";
const CORS_MAX_AGE: &str = "600";

/// Adds the security headers to every response, whatever produced it.
pub async fn security_headers<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let path = req.uri().path();
    let csp = if path.starts_with("/docs") {
        DOCS_CSP
    } else if path == "/demo" || path.starts_with("/demo/") {
        DEMO_CSP
    } else if is_hosted_page(path) {
        PAGES_CSP
    } else {
        API_CSP
    };
    let https = super::proxies::client_of(&req).https;
    let mut response = next.call(req).await.map(IntoResponse::into_response)?;
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if https {
        // Served over https (here, or by a trusted proxy): browsers keep to it for a year.
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    }
    Ok(response)
}

/// The authorization and logout endpoints answer with HTML pages.
pub(super) fn is_hosted_page(path: &str) -> bool {
    let mut segments = path.trim_start_matches('/').split('/');
    matches!(
        (segments.next(), segments.next(), segments.next(), segments.next(), segments.next()),
        (Some("t"), Some(_), Some("oauth"), Some("authorize" | "logout"), None)
    )
}

/// Which CORS rule a path falls under.
enum Cors {
    /// Not a tenant path: no CORS.
    None,
    /// A tenant's discovery document or JWKS: readable from any origin.
    Public,
    /// Any other tenant endpoint: only the tenant's allowed origins.
    Tenant(TenantId),
}

fn cors_rule(path: &str) -> Cors {
    let mut segments = path.trim_start_matches('/').split('/');
    match (segments.next(), segments.next().map(TenantId::parse), segments.next()) {
        (Some("t"), Some(Ok(_)), Some(".well-known")) | (Some(".well-known"), _, _) => Cors::Public,
        (Some("t"), Some(Ok(tenant)), Some(_)) => Cors::Tenant(tenant),
        _ => Cors::None,
    }
}

/// CORS per tenant: `cors_allowed_origins` may call the tenant's endpoints
/// from a browser (bearer tokens, no cookies: no credentials mode); preflights
/// are answered here.
pub async fn cors<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let origin = req.header(header::ORIGIN).map(str::to_owned);
    let rule = cors_rule(req.uri().path());
    let allowed = match (&origin, &rule) {
        (None, _) | (_, Cors::None) => None,
        (Some(_), Cors::Public) => Some(HeaderValue::from_static("*")),
        (Some(origin), Cors::Tenant(tenant)) => {
            let latch = req.data::<Arc<Latch>>().cloned();
            let permitted = match latch {
                Some(latch) => latch
                    .runtime(tenant)
                    .await
                    .is_ok_and(|runtime| runtime.tenant.settings.cors_allowed_origins.iter().any(|o| o == origin)),
                None => false,
            };
            permitted.then(|| HeaderValue::from_str(origin).ok()).flatten()
        }
    };
    let preflight = req.method() == Method::OPTIONS && req.header(header::ACCESS_CONTROL_REQUEST_METHOD).is_some();
    if preflight && !matches!(rule, Cors::None) {
        let Some(allowed) = allowed else {
            return Ok(Problem::new(
                StatusCode::FORBIDDEN,
                "cors_origin_not_allowed",
                "Origin not allowed",
                "this origin is not in the tenant's cors_allowed_origins",
            )
            .into_response());
        };
        let mut response = Response::builder().status(StatusCode::NO_CONTENT).finish();
        let headers = response.headers_mut();
        allow(headers, allowed);
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(CORS_METHODS));
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(CORS_HEADERS));
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(CORS_MAX_AGE));
        return Ok(response);
    }
    let mut response = match next.call(req).await {
        Ok(response) => response.into_response(),
        Err(err) => super::observe::error_response(err),
    };
    if !matches!(rule, Cors::None) {
        response.headers_mut().append(header::VARY, HeaderValue::from_static("origin"));
    }
    if let Some(allowed) = allowed {
        let headers = response.headers_mut();
        allow(headers, allowed);
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(CORS_EXPOSED));
    }
    Ok(response)
}

fn allow(headers: &mut HeaderMap, origin: HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
}
