//! The web demo at /demo, driven in Chromium against the built binary on a
//! port the kernel picks, with a fresh data directory (verifier-wasm/tests/server-demo.mjs).

use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn the_demo_verifies_in_the_browser_through_register_tamper_expiry_refresh_logout_admin_and_reset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, base) = spawn_binary(dir.path()).await;
    let client = TestClient::new(&base);
    client.wait_ready().await;
    client.create_tenant(json!({"id": "strict", "email_verification": "required"})).await;
    let admin_password = "an admin's long passphrase";
    let admin = json!({"email": "boss@example.com", "password": admin_password, "roles": ["admin"]});
    let created = client.operator_post("/t/demo/admin/users", &admin).await;
    assert!(created.status().is_success(), "{}", created.text().await.unwrap_or_default());

    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../verifier-wasm/tests/server-demo.mjs");
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target dir").to_owned();
    let screenshot = target.join("e2e").join("demo.png");
    let _ = std::fs::remove_file(&screenshot);
    let email = "e2e@example.com";
    let seen = node_json(
        &script,
        [
            &base,
            email,
            &screenshot.display().to_string(),
            "boss@example.com",
            admin_password,
            &dir.path().join("data").join("outbox").display().to_string(),
            "strict",
        ],
    )
    .await;
    let text = |key: &str| seen[key].as_str().unwrap_or_default().to_owned();

    assert_eq!(seen["issuer"], json!(format!("{base}/t/demo")), "{seen}");
    assert_eq!(seen["unlabelled"], json!([]), "every input has a label: {seen}");
    assert!(text("registered").contains("verified"), "{seen}");
    assert_eq!(seen["who"], json!(email));
    assert_eq!(seen["roles"], json!(["user"]));
    assert_eq!(seen["adminPanelVisible"], json!(false), "a plain user never sees the admin panel");
    assert!(text("countdown").starts_with("14:") || text("countdown").starts_with("15:"), "{seen}");
    assert_eq!(seen["claims"]["tid"], json!("demo"));
    assert_eq!(seen["fitsWidth"], json!(true), "no horizontal scrolling at phone width");

    assert_eq!(seen["tampered"], json!("bad_signature"));
    assert_eq!(seen["expired"], json!("expired"));

    assert!(text("rotation").contains("same session"), "{seen}");
    assert!(text("refreshedVerdict").contains("verified"), "{seen}");
    assert_eq!(seen["tokenChanged"], json!(true));
    assert_eq!(seen["refreshedSid"], seen["claims"]["sid"], "refresh keeps the session");
    let sessions = seen["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 1, "{seen}");
    assert!(sessions[0].as_str().unwrap_or_default().starts_with("This session"), "{seen}");

    assert!(text("afterLogout").contains("Logged out"), "{seen}");
    assert!(text("failedLogin").contains("Invalid credentials"), "the problem's title is shown: {seen}");

    assert_eq!(seen["adminRoles"], json!(["admin"]));
    assert_eq!(seen["adminPanelVisibleToAdmin"], json!(true));
    let listed: Vec<String> =
        seen["listedUsers"].as_array().expect("users").iter().map(|u| u.as_str().unwrap_or_default().into()).collect();
    assert!(listed.iter().any(|line| line.starts_with(email)), "{seen}");

    assert!(text("resetDone").contains("Password changed"), "{seen}");
    assert_eq!(seen["loginAfterReset"], json!(email), "the new password works: {seen}");
    assert_eq!(seen["hostedPageTitle"], json!("Sign in"), "{seen}");
    assert_eq!(seen["signedInWithLatch"], json!(email), "Sign in with latch: {seen}");
    assert!(text("signInNote").contains("authorization code with PKCE"), "{seen}");
    assert_eq!(seen["oidcClientId"], json!("latch-demo"), "{seen}");
    assert!(text("oidcRefresh").contains("same session"), "refresh through the token endpoint: {seen}");
    assert!(text("registeredUnverified").contains("open the link mailed"), "{seen}");
    assert!(text("verifiedPage").contains("verified"), "{seen}");
    assert_eq!(seen["loginAfterVerification"], json!("strict"), "{seen}");

    assert_eq!(seen["violations"], Value::Array(vec![]), "no CSP violation: {seen}");
    // The one error the browser reports is the wrong password the demo
    // tries on purpose (a 401 from the login endpoint); a missing resource,
    // such as /favicon.ico, would show here too.
    let errors: Vec<&str> = seen["errors"].as_array().expect("errors").iter().filter_map(Value::as_str).collect();
    let unexpected: Vec<&&str> =
        errors.iter().filter(|e| !(e.contains("status of 401") && e.ends_with("/t/demo/auth/login)"))).collect();
    assert!(unexpected.is_empty(), "no script or console error: {seen}");
    let png = std::fs::read(&screenshot).expect("the screenshot is saved");
    assert!(png.starts_with(b"\x89PNG"), "target/e2e/demo.png is a PNG");

    // The server after the reset: the old password is refused, and only the
    // sessions begun after it remain (the reset ended the others).
    let old = client.try_login("demo", email, "a long demo passphrase").await;
    assert_eq!(old.status(), reqwest::StatusCode::UNAUTHORIZED);
    let login = client.login("demo", email, "a brand new passphrase").await;
    let sessions: Value = client.get_with("/t/demo/users/me/sessions", &login.access).await.json().await.expect("json");
    assert_eq!(sessions["sessions"].as_array().map(Vec::len), Some(2), "the page's and this login's: {sessions}");
}

#[tokio::test]
async fn demo_files_are_served_with_their_types_and_a_csp_that_allows_only_this_server() {
    let app = spawn_app().await;
    let page = app.http.get(app.url("/demo")).send().await.expect("get");
    assert_eq!(page.status(), reqwest::StatusCode::OK, "/demo redirects to /demo/");
    assert_eq!(page.url().path(), "/demo/");
    let csp = page.headers()["content-security-policy"].to_str().expect("ascii").to_owned();
    assert!(csp.contains("script-src 'self' 'wasm-unsafe-eval'") && csp.contains("connect-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(page.text().await.expect("html").contains("<script type=\"module\" src=\"demo.js\">"));

    for (path, kind) in [
        ("/demo/demo.js", "text/javascript"),
        ("/demo/demo.css", "text/css"),
        ("/demo/reset-password", "text/html"),
        ("/demo/verifier/browser.js", "text/javascript"),
        ("/demo/verifier/latch_verifier_bg.wasm", "application/wasm"),
    ] {
        let response = app.http.get(app.url(path)).send().await.expect("get");
        assert_eq!(response.status(), reqwest::StatusCode::OK, "{path}");
        assert!(response.headers()["content-type"].to_str().expect("ascii").starts_with(kind), "{path}");
    }
    let missing = app.http.get(app.url("/demo/missing.js")).send().await.expect("get");
    assert_problem(missing, reqwest::StatusCode::NOT_FOUND, "not_found").await;
}
