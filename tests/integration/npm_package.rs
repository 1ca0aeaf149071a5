//! The npm package (`verifier-wasm/pkg`, built by `verifier-wasm/build.sh`)
//! verifies tokens issued by a running latch, through the discovery document,
//! and stops once their key has left the JWKS.

use std::path::PathBuf;
use std::sync::Arc;

use latch_server::clock::ManualClock;
use serde_json::{Value, json};

use crate::support::*;

const START: i64 = 1_900_000_000;

fn package_dir() -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../verifier-wasm/pkg");
    assert!(
        dir.join("node.js").exists(),
        "{} is missing: run verifier-wasm/build.sh (the test command does)",
        dir.display()
    );
    dir.canonicalize().expect("package dir")
}

async fn verify_with_package(app: &TestApp, token: &str, now: i64) -> Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("integration/verify_with_package.mjs");
    let package = package_dir().to_string_lossy().into_owned();
    node_json(&script, [package.as_str(), &app.url("/t/demo"), "demo", token, &now.to_string()]).await
}

#[tokio::test]
async fn server_tokens_verify_with_the_npm_package_until_their_key_leaves_the_jwks() {
    let clock = Arc::new(ManualClock::new(START));
    let app = spawn_app_at(clock.clone()).await;
    let first = app.register("demo", "package@example.com").await;
    let old = first.access.as_str();
    let verified = verify_with_package(&app, old, START).await;
    assert_eq!(verified, json!({"ok": true, "sub": first.user.id, "sid": claims_of(old)["sid"]}));

    let rotate = app.operator_post("/admin/tenants/demo/keys/rotate", &json!({"publish_delay_seconds": 0})).await;
    assert_eq!(rotate.status(), reqwest::StatusCode::CREATED);
    let second = app.login("demo", "package@example.com", PASSWORD).await;
    let new = second.access.as_str();
    assert_ne!(kid_of(new), kid_of(old));
    assert_eq!(verify_with_package(&app, new, START).await["ok"], true);
    assert_eq!(verify_with_package(&app, old, START).await["ok"], true, "the retired key is still published");

    // Once every token of the old key has expired, the key leaves the JWKS; judged at
    // the old token's own time, it now fails for want of its key, not for its age.
    clock.advance(900 + 300);
    let after = verify_with_package(&app, old, START).await;
    assert_eq!(after["code"], "unknown_kid", "{after}");
    assert_eq!(verify_with_package(&app, new, START).await["ok"], true);
    // Flip one character in the middle of the signature (the last one also carries padding bits).
    let cut = new.len() - 20;
    let flipped = if &new[cut..cut + 1] == "A" { "B" } else { "A" };
    let tampered = format!("{}{flipped}{}", &new[..cut], &new[cut + 1..]);
    assert_eq!(verify_with_package(&app, &tampered, START).await["code"], "bad_signature");
}

/// The quoted strings of `text` between `start` and the next `;`.
fn quoted_between(text: &str, start: &str) -> std::collections::BTreeSet<String> {
    let from = text.find(start).unwrap_or_else(|| panic!("no `{start}`")) + start.len();
    let union = &text[from..from + text[from..].find(';').expect("the union ends")];
    union.split('"').skip(1).step_by(2).map(str::to_owned).collect()
}

/// The package's TypeScript error-code union is exactly what its errors can
/// carry: the codes `latch-shared` produces, plus those only the JavaScript
/// remote verifier raises (`jwks_unavailable`, and from the revocation feed
/// `session_revoked` and `revocation_unavailable`); and every code `core.js`
/// throws is in the union.
#[test]
fn the_typescript_error_codes_are_the_codes_the_package_can_throw() {
    let js = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../verifier-wasm/js");
    let types = std::fs::read_to_string(js.join("index.d.ts")).expect("index.d.ts");
    let declared = quoted_between(&types, "export type VerifyErrorCode =");
    let mut expected: std::collections::BTreeSet<String> =
        latch_shared::Error::CODES.iter().map(|code| (*code).to_owned()).collect();
    expected.extend(["jwks_unavailable", "session_revoked", "revocation_unavailable"].map(str::to_owned));
    assert_eq!(declared, expected);

    let core = std::fs::read_to_string(js.join("core.js")).expect("core.js");
    let thrown: Vec<&str> =
        core.split("new VerifyError(\"").skip(1).map(|rest| &rest[..rest.find('"').expect("code ends")]).collect();
    assert!(thrown.len() >= 5, "{thrown:?}");
    for code in thrown {
        assert!(declared.contains(code), "core.js throws `{code}`, which index.d.ts does not declare");
    }
}
