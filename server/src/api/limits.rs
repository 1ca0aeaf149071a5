//! Per-IP rate limits on the endpoints that take a password, a second
//! factor or a refresh token (`/t/{T}/auth/...`, `/t/{T}/oauth/token`, and
//! the caller's own `/t/{T}/users/me/password` and `/t/{T}/users/me/mfa/...`),
//! answered 429 with `Retry-After` before the request reaches a handler or
//! the hashing pool.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::Clock as _;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use poem::http::Method;
use poem::{Endpoint, IntoResponse, Request, Response};

use super::ApiError;
use crate::domain::Error;

/// latch's clock as the limiter's, in whole seconds: buckets refill by the
/// injected clock, so a test on a `ManualClock` decides when they do (and a
/// slow, busy machine cannot refill one in the middle of a test).
#[derive(Clone)]
struct LimitClock(Arc<dyn crate::clock::Clock>);

impl governor::clock::Clock for LimitClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(std::time::Duration::from_secs(self.0.now().max(0) as u64))
    }
}

type Limiter = RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, LimitClock, NoOpMiddleware<Nanos>>;

/// The per-IP limit: a bucket of `per_minute` requests refilled over a minute.
#[derive(Clone)]
pub struct AuthRateLimit {
    limiter: Option<Arc<Limiter>>,
}

impl AuthRateLimit {
    /// `per_minute` requests per client IP, refilled by `clock`; 0 turns the limit off.
    pub fn per_minute(per_minute: u32, clock: Arc<dyn crate::clock::Clock>) -> AuthRateLimit {
        let limiter = NonZeroU32::new(per_minute).map(|n| {
            let quota = Quota::per_minute(n).allow_burst(n);
            Arc::new(RateLimiter::new(quota, DefaultKeyedStateStore::default(), LimitClock(clock)))
        });
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
        limiter.check_key(&ip).map_err(|not_until| not_until.wait_time_from(limiter.clock().now()).as_secs() + 1)
    }
}

/// The key a client's budget is kept under: its IPv4 address, or the /64
/// prefix of its IPv6 address (one end site usually holds a whole /64, so
/// keying on the full address would give each host 2^64 budgets).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

/// Whether a request is one the limit applies to.
fn is_limited(req: &Request) -> bool {
    if req.method() != Method::POST {
        return false;
    }
    let mut segments = req.uri().path().trim_start_matches('/').split('/');
    matches!(
        (segments.next(), segments.next(), segments.next(), segments.next(), segments.next()),
        (Some("t"), Some(_), Some("auth"), Some(_), _)
            | (Some("t"), Some(_), Some("oauth"), Some("token" | "authorize"), _)
            | (Some("t"), Some(_), Some("users"), Some("me"), Some("password" | "mfa"))
    )
}

/// The OAuth endpoint a tenant path names (`token`, `authorize`), if any.
fn endpoint(req: &Request) -> Option<&str> {
    let mut segments = req.uri().path().trim_start_matches('/').split('/');
    match (segments.next(), segments.next(), segments.next(), segments.next()) {
        (Some("t"), Some(_), Some("oauth"), Some(endpoint)) => Some(endpoint),
        _ => None,
    }
}

/// The middleware: limited requests over their client's budget get 429.
pub async fn limit_auth<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    if is_limited(&req)
        && let Some(limits) = req.data::<AuthRateLimit>()
        && let Some(ip) = super::proxies::client_of(&req).ip
        && let Err(retry_after) = limits.check(client_key(ip))
    {
        tracing::info!(%ip, path = req.uri().path(), "rate limited");
        crate::metrics::rate_limited();
        let error = Error::RateLimited { retry_after };
        // The token endpoint answers in its own (RFC 6749 §5.2) format, the
        // hosted sign-in page with a page.
        match endpoint(&req) {
            Some("token") => {
                return Ok(super::oauth::TokenResponse::from(super::oauth::OAuthFailure::from(error)).into_response());
            }
            Some("authorize") => return Ok(super::authorize::rate_limited_page(retry_after)),
            _ => {}
        }
        return Ok(ApiError(error).into_response());
    }
    next.call(req).await.map(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_share_a_budget_per_64_and_mapped_ipv4_is_ipv4() {
        let key = |raw: &str| client_key(raw.parse().expect("address"));
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:ffff:ffff:ffff:ffff"), "one /64");
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"), "another /64");
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"), "IPv4 keys on the whole address");
        let limits = AuthRateLimit::per_minute(2, Arc::new(crate::clock::ManualClock::new(0)));
        assert!(limits.check(key("2001:db8::1")).is_ok() && limits.check(key("2001:db8::2")).is_ok());
        assert!(limits.check(key("2001:db8::3")).is_err(), "the third address of the /64 is over the budget");
        assert!(limits.check(key("2001:db8:0:1::1")).is_ok(), "the next /64 has its own");
    }
}
