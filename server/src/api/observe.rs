//! What every request leaves behind: its request id (echoed as
//! `X-Request-Id`), one log line at `info`, and the HTTP metrics.
//!
//! The line names the route *template* as the OpenAPI document spells it
//! (`/t/{tenant}/users/{user}`), never the raw path or query, which can
//! carry tokens, codes and emails; the tenant is the one path segment the
//! template names `{tenant}`. Headers and bodies are
//! never logged.

use std::time::Instant;

use poem::PathPattern;
use poem::http::{HeaderValue, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response};
use tracing::Instrument as _;

use super::contract::{allowed_methods, route_of};
use super::proxies::TrustedProxies;

/// The header carrying the request id, both ways.
pub const REQUEST_ID: &str = "x-request-id";
/// The longest request id taken from a client.
const MAX_REQUEST_ID: usize = 128;
/// The route of a request no route matched.
const UNMATCHED: &str = "unmatched";

/// A client's `X-Request-Id` if it is one we can log and echo safely:
/// 1 to 128 characters of letters, digits and `-_.:`.
fn valid_request_id(value: &HeaderValue) -> Option<&str> {
    let text = value.to_str().ok()?;
    let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
    (!text.is_empty() && text.len() <= MAX_REQUEST_ID && text.chars().all(safe)).then_some(text)
}

/// The tenant of a request: the path segment where the route says
/// `{tenant}`, when it is a valid tenant id.
fn tenant_of<'a>(route: &str, path: &'a str) -> Option<&'a str> {
    let at = route.split('/').position(|segment| segment == "{tenant}")?;
    let segment = path.split('/').nth(at)?;
    crate::domain::TenantId::parse(segment).is_ok().then_some(segment)
}

/// Identifies the client (through the trusted proxies), gives the request an
/// id, serves it inside a span carrying that id, and logs and counts it.
pub async fn observe<E: Endpoint>(next: E, mut req: Request, trusted: TrustedProxies) -> poem::Result<Response> {
    let started = Instant::now();
    let peer = req.remote_addr().as_socket_addr().map(|addr| addr.ip());
    let mut client = trusted.client(peer, req.headers());
    client.https |= *req.scheme() == poem::http::uri::Scheme::HTTPS;
    req.extensions_mut().insert(client);
    let id = match req.headers().get(REQUEST_ID).and_then(valid_request_id) {
        Some(id) => id.to_owned(),
        // A v4 UUID from the thread's generator: no system call per request.
        None => uuid::Builder::from_random_bytes(rand::random()).into_uuid().to_string(),
    };
    // The line and the metrics cost a lookup and a few allocations; with
    // `info` filtered out and metrics off, neither is paid.
    let logged = tracing::enabled!(tracing::Level::INFO);
    let method = req.method().clone();
    let path = if logged { req.uri().path().to_owned() } else { String::new() };
    let hosted_page = super::headers::is_hosted_page(req.uri().path());
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = next.call(req).instrument(span).await.map(IntoResponse::into_response)?;
    if hosted_page {
        response = as_page(response).await;
    }
    if logged || crate::metrics::enabled() {
        let route = response.data::<PathPattern>().map_or_else(|| UNMATCHED.to_owned(), |p| route_of(&p.0));
        let route = route.as_str();
        let status = response.status();
        let latency = started.elapsed();
        if logged {
            let tenant = tenant_of(route, &path);
            let client = client.ip.map(|ip| ip.to_string());
            tracing::info!(
                request_id = %id,
                method = %method,
                route,
                tenant,
                status = status.as_u16(),
                latency_ms = latency.as_secs_f64() * 1000.0,
                client,
                "request"
            );
        }
        crate::metrics::http_request(method.as_str(), route, status, latency);
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(response)
}

/// A hosted page's answer: a client error that came back as a problem
/// document (the request could not be parsed, before the page's handler)
/// becomes a page with the same status.
async fn as_page(response: Response) -> Response {
    let problem = response.status().is_client_error()
        && response.headers().get(poem::http::header::CONTENT_TYPE).is_some_and(|t| t == "application/problem+json");
    if !problem {
        return response;
    }
    let status = response.status();
    let template = response.data::<PathPattern>().cloned();
    let allow = response.headers().get(poem::http::header::ALLOW).cloned();
    let body = response.into_body().into_bytes().await.unwrap_or_default();
    let detail = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|problem| problem["detail"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut page = super::authorize::unreadable_request_page(status, &detail);
    if let Some(template) = template {
        page.set_data(template);
    }
    if let Some(allow) = allow {
        page.headers_mut().insert(poem::http::header::ALLOW, allow);
    }
    page
}

/// An error that reached the edge of the app, as a response: the problem
/// document, with `Allow` on a 405, keeping the route template for the log.
pub(super) fn error_response(err: poem::Error) -> Response {
    let template = err.data::<PathPattern>().cloned();
    let mut response = super::error::error_response(err);
    if let Some(template) = template {
        if response.status() == StatusCode::METHOD_NOT_ALLOWED
            && let Ok(allow) = HeaderValue::from_str(&allowed_methods(&template.0))
        {
            response.headers_mut().insert(poem::http::header::ALLOW, allow);
        }
        response.set_data(template);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_safe_request_ids_are_taken_from_the_client() {
        let id = |text: &str| HeaderValue::from_str(text).ok().and_then(|v| valid_request_id(&v).map(str::to_owned));
        assert_eq!(id("3f6c-aa_b.9:z").as_deref(), Some("3f6c-aa_b.9:z"));
        assert_eq!(id(""), None);
        assert_eq!(id("has space"), None);
        assert_eq!(id("line\u{7f}break"), None);
        assert_eq!(id("quote\"d"), None);
        assert_eq!(id(&"a".repeat(MAX_REQUEST_ID)).map(|s| s.len()), Some(MAX_REQUEST_ID));
        assert_eq!(id(&"a".repeat(MAX_REQUEST_ID + 1)), None);
    }

    #[test]
    fn the_tenant_is_the_segment_the_template_names() {
        assert_eq!(tenant_of("/t/{tenant}/users/me", "/t/acme/users/me"), Some("acme"));
        assert_eq!(tenant_of("/admin/tenants/{tenant}", "/admin/tenants/beta"), Some("beta"));
        assert_eq!(tenant_of("/t/{tenant}/users/me", "/t/NOT%20A%20SLUG/users/me"), None);
        assert_eq!(tenant_of("/healthz", "/healthz"), None);
    }
}
