//! What survives a restart, and what a `kill -9` right after a 2xx keeps.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn a_restart_keeps_users_sessions_and_keys_and_old_tokens_still_verify() {
    let mut app = spawn_app().await;
    app.create_tenant(json!({"id": "rsa", "algorithm": "RS256"})).await;
    let demo = app.register("demo", "persist@example.com").await;
    let rsa = app.register("rsa", "persist@example.com").await;
    let jwks_before = app.jwks("rsa").await;

    app.restart().await;

    for (tenant, tokens) in [("demo", &demo), ("rsa", &rsa)] {
        let access = tokens.access.as_str();
        let me = app.get_with(&format!("/t/{tenant}/users/me"), access).await;
        assert_eq!(me.status(), StatusCode::OK, "{tenant}: pre-restart access token");
        let refreshed = app.try_refresh(tenant, &tokens.refresh).await;
        assert_eq!(refreshed.status(), StatusCode::OK, "{tenant}: pre-restart refresh token");
        assert_eq!(app.try_login(tenant, "persist@example.com", PASSWORD).await.status(), StatusCode::OK);
    }
    let jwks_after = app.jwks("rsa").await;
    assert_eq!(jwks_before, jwks_after, "keys are not regenerated");
    let dup =
        app.post_json("/t/demo/auth/register", &json!({"email": "persist@example.com", "password": PASSWORD})).await;
    assert_problem(dup, StatusCode::CONFLICT, "email_taken").await;
}

#[tokio::test]
async fn the_master_key_lives_beside_the_data_and_another_one_stops_the_server_at_start() {
    let mut app = spawn_app().await;
    app.server.take().expect("running").shutdown().await.expect("shutdown");

    // Replace the master key: the store must refuse to start rather than sign with garbage.
    let key_file = app.dir.path().join("latch-master.key");
    assert!(key_file.exists(), "the master key lives beside, not inside, the data directory");
    std::fs::write(&key_file, format!("{}\n", "ab".repeat(32))).expect("write");
    let args = latch_server::config::ConfigArgs {
        listen: Some("127.0.0.1:0".into()),
        common: latch_server::config::CommonArgs {
            data_dir: Some(app.data_dir()),
            store: app.store_url(),
            ..Default::default()
        },
        ..Default::default()
    };
    let settings = latch_server::config::Settings::resolve(&args, &operator_environment()).expect("settings");
    let refused = latch_server::app::start(&settings, std::sync::Arc::new(latch_server::clock::SystemClock)).await;
    let message = refused.err().expect("refused").to_string();
    assert!(message.contains("master key"), "{message}");
}

#[tokio::test]
async fn writes_acknowledged_with_a_2xx_survive_kill_minus_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, base) = spawn_binary(dir.path()).await;
    let client = TestClient::new(&base);
    client.wait_ready().await;

    // A tenant with a long grace window: presenting the rotated token after the restart returns
    // the same successor only if the rotation was stored before its 2xx.
    client.create_tenant(json!({"id": "durable", "refresh_grace_seconds": 300})).await;
    let tokens = client.register("durable", "durable@example.com").await;
    let rotated = client.refresh("durable", &tokens.refresh).await;
    // SIGKILL at once: no graceful shutdown, no final flush.
    child.start_kill().expect("kill");
    child.wait().await.expect("reaped");

    // Restarted on another free port: refresh tokens are opaque, so the issuer
    // URL changing with the port does not matter to what is checked here.
    let (mut child, base) = spawn_binary(dir.path()).await;
    let client = TestClient::new(&base);
    client.wait_ready().await;
    client.login("durable", "durable@example.com", PASSWORD).await; // the tenant and the registration survived
    let again = client.refresh("durable", &tokens.refresh).await;
    assert_eq!(again.refresh, rotated.refresh, "the rotation survived");
    child.start_kill().expect("kill");
    child.wait().await.expect("reaped");
}

#[tokio::test]
async fn the_binary_refuses_a_directory_that_is_not_a_latch_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("data")).expect("mkdir");
    std::fs::write(dir.path().join("data").join("precious.txt"), "keep me").expect("write");
    let output = tokio::process::Command::new(latch_binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("LATCH_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .output()
        .await
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a latch data directory"), "{stderr}");
    assert_eq!(std::fs::read_to_string(dir.path().join("data").join("precious.txt")).expect("kept"), "keep me");
}
