//! What latch writes is readable by its own user only, whatever the umask:
//! the data directory 0700, the store's files and the outbox's mail (which
//! carries live reset links) 0600, backups 0600.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

/// Every file under `dir` with its mode, directories included.
fn modes(dir: &Path) -> Vec<(String, u32)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        found.push((path.display().to_string(), mode(&path)));
        if path.is_dir() {
            found.extend(modes(&path));
        }
    }
    found
}

#[tokio::test]
async fn the_data_directory_its_files_mail_and_backups_are_private_even_with_umask_000() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (mut child, base) = spawn_binary_with_umask(dir.path(), "000").await;
    let http = reqwest::Client::new();
    wait_ready(&http, &base).await;
    let registered = http
        .post(format!("{base}/t/demo/auth/register"))
        .json(&json!({"email": "private@example.com", "password": PASSWORD}))
        .send()
        .await
        .expect("register");
    assert_eq!(registered.status(), StatusCode::CREATED);
    let reset = http
        .post(format!("{base}/t/demo/auth/password-reset"))
        .json(&json!({"email": "private@example.com"}))
        .send()
        .await
        .expect("reset");
    assert_eq!(reset.status(), StatusCode::ACCEPTED);
    let outbox = data.join("outbox");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !modes(&outbox).iter().any(|(path, _)| path.ends_with(".eml")) {
        assert!(std::time::Instant::now() < deadline, "no mail in the outbox");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    child.start_kill().expect("kill");
    child.wait().await.expect("reaped");

    assert_eq!(mode(&data), 0o700, "the data directory");
    let all = modes(&data);
    assert!(all.iter().any(|(path, _)| path.ends_with(".eml")), "{all:?}");
    assert!(all.iter().any(|(path, _)| path.ends_with("/db")), "{all:?}");
    for (path, mode) in &all {
        let expected = if Path::new(path).is_dir() { 0o700 } else { 0o600 };
        assert_eq!(*mode, expected, "{path} is {mode:o}");
    }

    let backup = dir.path().join("latch.backup");
    let made = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"umask 000; exec "$0" backup "$1" --data-dir "$2""#)
        .arg(latch_binary())
        .arg(&backup)
        .arg(&data)
        .output()
        .expect("backup runs");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    assert_eq!(mode(&backup), 0o600, "the backup");
}
