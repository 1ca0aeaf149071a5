//! Per-IP rate limits on the endpoints that take a password or a refresh
//! token (`/t/{T}/auth/...` and `/t/{T}/oauth/token`), answered 429 with
//! `Retry-After` before the request reaches a handler or the hashing pool.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use poem::http::Method;
use poem::{Endpoint, IntoResponse, Request, Response};

use super::ApiError;
use crate::domain::Error;

/// The per-IP limit: a bucket of `per_minute` requests refilled over a minute.
#[derive(Clone)]
pub struct AuthRateLimit {
    limiter: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
}

impl AuthRateLimit {
    /// `per_minute` requests per client IP; 0 turns the limit off.
    pub fn per_minute(per_minute: u32) -> AuthRateLimit {
        let limiter = NonZeroU32::new(per_minute)
            .map(|n| Arc::new(DefaultKeyedRateLimiter::keyed(Quota::per_minute(n).allow_burst(n))));
        AuthRateLimit { limiter }
    }

    /// Forgets clients whose buckets are full again (call now and then, so the
    /// map does not grow with every address ever seen).
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Seconds to wait if `ip` is over its limit.
    fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        limiter
            .check_key(&ip)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()).as_secs() + 1)
    }
}

/// Whether a request is one the limit applies to.
fn is_limited(req: &Request) -> bool {
    if req.method() != Method::POST {
        return false;
    }
    let mut segments = req.uri().path().trim_start_matches('/').split('/');
    matches!(
        (segments.next(), segments.next(), segments.next(), segments.next()),
        (Some("t"), Some(_), Some("auth"), Some(_)) | (Some("t"), Some(_), Some("oauth"), Some("token"))
    )
}

/// The middleware: limited requests over their client's budget get 429.
pub async fn limit_auth<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    if is_limited(&req)
        && let Some(limits) = req.data::<AuthRateLimit>()
        && let Some(addr) = req.remote_addr().as_socket_addr()
        && let Err(retry_after) = limits.check(addr.ip())
    {
        tracing::info!(ip = %addr.ip(), path = req.uri().path(), "rate limited");
        return Ok(ApiError(Error::RateLimited { retry_after }).into_response());
    }
    next.call(req).await.map(IntoResponse::into_response)
}
