//! Per-IP rate limits on the endpoints that take a password, a second
//! factor or a refresh token (`/t/{T}/auth/...`, `/t/{T}/oauth/token`, and
//! the caller's own `/t/{T}/users/me/password` and `/t/{T}/users/me/mfa/...`),
//! answered 429 with `Retry-After` before the request reaches a handler or
//! the hashing pool.

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
            | (Some("t"), Some(_), Some("oauth"), Some("token"), _)
            | (Some("t"), Some(_), Some("users"), Some("me"), Some("password" | "mfa"))
    )
}

fn is_token_endpoint(req: &Request) -> bool {
    let mut segments = req.uri().path().trim_start_matches('/').split('/');
    matches!(
        (segments.next(), segments.next(), segments.next(), segments.next()),
        (Some("t"), Some(_), Some("oauth"), Some("token"))
    )
}

/// The middleware: limited requests over their client's budget get 429.
pub async fn limit_auth<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    if is_limited(&req)
        && let Some(limits) = req.data::<AuthRateLimit>()
        && let Some(addr) = req.remote_addr().as_socket_addr()
        && let Err(retry_after) = limits.check(client_key(addr.ip()))
    {
        tracing::info!(ip = %addr.ip(), path = req.uri().path(), "rate limited");
        let error = Error::RateLimited { retry_after };
        // The token endpoint answers in its own (RFC 6749 §5.2) format.
        if is_token_endpoint(&req) {
            return Ok(super::oauth::TokenResponse::from(super::oauth::OAuthFailure::from(error)).into_response());
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
        let limits = AuthRateLimit::per_minute(2);
        assert!(limits.check(key("2001:db8::1")).is_ok() && limits.check(key("2001:db8::2")).is_ok());
        assert!(limits.check(key("2001:db8::3")).is_err(), "the third address of the /64 is over the budget");
        assert!(limits.check(key("2001:db8:0:1::1")).is_ok(), "the next /64 has its own");
    }
}
