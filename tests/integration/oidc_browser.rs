//! A real relying party (`openid-client` from npm) signs a user in through
//! the hosted page in Debian's Chromium (verifier-wasm/tests/server-oidc.mjs).

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn openid_client_signs_in_through_the_hosted_page_with_single_sign_on_and_logout() {
    let app = spawn_app().await;
    let user = app.register("demo", "rp-user@example.com").await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../verifier-wasm/tests/server-oidc.mjs");
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target dir").to_owned();
    let screenshot = target.join("e2e").join("sign-in.png");
    let _ = std::fs::remove_file(&screenshot);
    let seen = node_json(
        &script,
        [app.base.as_str(), OPERATOR_TOKEN, "rp-user@example.com", PASSWORD, &screenshot.display().to_string()],
    )
    .await;

    assert_eq!(seen["discovered"]["authorization"], json!(app.url("/t/demo/oauth/authorize")), "{seen}");
    assert_eq!(seen["discovered"]["pkce"], json!(["S256"]));
    assert_eq!(seen["unlabelled"], json!([]), "every input has a label: {seen}");
    assert_eq!(seen["fitsWidth"], json!(true), "usable at 390 px: {seen}");
    assert_eq!(seen["violations"], json!([]), "no CSP violation: {seen}");
    assert_eq!(seen["errors"], json!([]), "no script error: {seen}");
    assert_eq!(seen["idToken"]["sub"], json!(user.user.id), "{seen}");
    assert_eq!(seen["idToken"]["aud"], json!("rp-one"));
    assert_eq!(seen["idToken"]["nonceMatched"], json!(true));
    assert_eq!(seen["idToken"]["email"], json!("rp-user@example.com"));
    assert_eq!(seen["userinfo"], json!({"sub": user.user.id, "email": "rp-user@example.com"}));
    assert_eq!(seen["refreshed"], json!({"rotated": true, "idToken": true}));
    assert_eq!(seen["sso"], json!({"formShown": false, "sameUser": true}), "single sign-on: {seen}");
    assert_eq!(seen["promptLoginShowsForm"], json!(true));
    assert_eq!(seen["promptLoginCode"], json!(true));
    assert_eq!(seen["logoutState"], json!("see-you"));
    assert_eq!(seen["refreshAfterLogout"], json!("invalid_grant"), "logout ended the session: {seen}");
    assert_eq!(seen["signInAfterLogout"], json!(true), "signed out of the browser too");
    assert_eq!(seen["finalErrors"], json!([]));
    let png = std::fs::read(&screenshot).expect("the screenshot is saved");
    assert!(png.starts_with(b"\x89PNG"));
}
