//! Behind a reverse proxy: forwarding headers count only from trusted proxies.

use std::sync::Arc;

use latch_server::clock::{Clock as _, ManualClock, SystemClock};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

/// A server with `per_minute` auth requests per client, behind `trusted` proxies.
async fn app_behind(trusted: &[&str], per_minute: u32) -> TestApp {
    let trusted: Vec<ipnet::IpNet> = trusted.iter().map(|t| t.parse().expect("cidr")).collect();
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    spawn_app_with(clock, move |settings| {
        settings.trusted_proxies = trusted.clone();
        settings.auth_rate_limit_per_minute = per_minute;
    })
    .await
}

async fn login_from(app: &TestApp, forwarded_for: &str, password: &str) -> reqwest::Response {
    let body = json!({"email": "proxied@example.com", "password": password});
    let request = app.http.post(app.url("/t/demo/auth/login")).header("x-forwarded-for", forwarded_for).json(&body);
    request.send().await.expect("request")
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let app = app_behind(&[], 3).await;
    let user = app.register("demo", "proxied@example.com").await;
    for n in 1..=2 {
        let answer = login_from(&app, &format!("203.0.113.{n}"), PASSWORD).await;
        assert_eq!(answer.status(), StatusCode::OK, "login {n}");
    }
    let limited = login_from(&app, "203.0.113.99", PASSWORD).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS, "one bucket, whatever the header says");
    let sessions: Value = app.get_with("/t/demo/users/me/sessions", &user.access).await.json().await.expect("json");
    let ips: Vec<&str> =
        sessions["sessions"].as_array().expect("list").iter().filter_map(|s| s["ip"].as_str()).collect();
    assert!(ips.iter().all(|ip| *ip == "127.0.0.1"), "{ips:?}");
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_bucket_and_address() {
    let app = app_behind(&["127.0.0.1/32"], 2).await;
    let user = app.register("demo", "proxied@example.com").await;
    assert_eq!(login_from(&app, "203.0.113.1", PASSWORD).await.status(), StatusCode::OK);
    assert_eq!(login_from(&app, "203.0.113.1", PASSWORD).await.status(), StatusCode::OK);
    assert_eq!(login_from(&app, "203.0.113.1", PASSWORD).await.status(), StatusCode::TOO_MANY_REQUESTS);
    // A forged entry on the left does not make a new client: the rightmost untrusted hop counts.
    let forged = login_from(&app, "198.51.100.7, 203.0.113.1", PASSWORD).await;
    assert_eq!(forged.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(login_from(&app, "203.0.113.2", PASSWORD).await.status(), StatusCode::OK, "another client");

    let sessions: Value = app.get_with("/t/demo/users/me/sessions", &user.access).await.json().await.expect("json");
    let ips: Vec<&str> =
        sessions["sessions"].as_array().expect("list").iter().filter_map(|s| s["ip"].as_str()).collect();
    assert!(ips.contains(&"203.0.113.1") && ips.contains(&"203.0.113.2"), "{ips:?}");
    let wrong = login_from(&app, "203.0.113.3", "not the password").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let events = app.events("demo").await;
    assert!(events.iter().any(|e| e["kind"] == "login_failed" && e["ip"] == "203.0.113.3"), "{events:?}");
}

#[tokio::test]
async fn cookies_are_secure_when_a_trusted_proxy_says_https() {
    let challenge = latch_server::domain::s256("a-pkce-code-verifier-of-at-least-forty-three-characters");
    let cookie_via = |app: &TestApp, proto: &'static str| {
        let redirect = app.url("/demo/");
        let url = reqwest::Url::parse_with_params(
            &app.url("/t/demo/oauth/authorize"),
            &[
                ("response_type", "code"),
                ("client_id", "latch-demo"),
                ("redirect_uri", redirect.as_str()),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
            ],
        )
        .expect("url");
        let request = app.http.get(url).header("x-forwarded-proto", proto).header("x-forwarded-for", "203.0.113.4");
        async move {
            let page = request.send().await.expect("request");
            assert_eq!(page.status(), StatusCode::OK);
            page.headers()["set-cookie"].to_str().expect("ascii").to_owned()
        }
    };
    let behind = app_behind(&["127.0.0.1/32"], 0).await;
    assert!(cookie_via(&behind, "https").await.ends_with("; Secure"));
    assert!(!cookie_via(&behind, "http").await.contains("Secure"));
    let exposed = app_behind(&[], 0).await;
    assert!(!cookie_via(&exposed, "https").await.contains("Secure"), "an untrusted peer's header changes nothing");
}
