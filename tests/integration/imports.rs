//! Importing users with the password hashes they already have: a real
//! passlib export, bad files that import nothing, reruns, tenant isolation
//! and the CLI on a stopped store.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

/// passlib's test virtualenv (made by tests/passlib/setup.sh, which test.sh runs).
fn passlib_python() -> std::path::PathBuf {
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("passlib/.venv/bin/python");
    assert!(python.exists(), "run tests/passlib/setup.sh first (test.sh does)");
    python
}

/// `count` users hashed by passlib: the import file and each (email, password).
async fn passlib_export(count: usize) -> (String, Vec<(String, String)>) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("passlib/export.py");
    let output = tokio::process::Command::new(passlib_python())
        .arg(script)
        .arg(count.to_string())
        .output()
        .await
        .expect("python runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let passwords = String::from_utf8(output.stderr)
        .expect("utf-8")
        .lines()
        .map(|line| {
            let (email, password) = line.split_once('\t').expect("email TAB password");
            (email.to_owned(), password.to_owned())
        })
        .collect();
    (String::from_utf8(output.stdout).expect("utf-8"), passwords)
}

async fn import(app: &TestApp, tenant: &str, token: &str, query: &str, body: String) -> reqwest::Response {
    app.http
        .post(app.url(&format!("/t/{tenant}/admin/users/import{query}")))
        .bearer_auth(token)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("request")
}

/// The NDJSON answer of a successful import: its result lines and its last line.
async fn results(response: reqwest::Response) -> (Vec<Value>, Value) {
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let text = response.text().await.expect("body");
    let mut lines: Vec<Value> = text.lines().map(|line| serde_json::from_str(line).expect("a JSON line")).collect();
    let last = lines.pop().expect("a last line");
    (lines, last)
}

async fn imported_hashes(app: &TestApp, tenant: &str) -> Value {
    let response = app.get_with(&format!("/t/{tenant}/admin/users/import"), OPERATOR_TOKEN).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("json")
}

#[tokio::test]
async fn users_exported_by_passlib_log_in_with_their_passwords_and_their_hashes_become_argon2id() {
    let app = spawn_app().await;
    let (file, users) = passlib_export(6).await;
    assert!(file.contains("$2b$") && file.contains("$pbkdf2-sha256$"), "{file}");

    let (lines, last) = results(import(&app, "demo", OPERATOR_TOKEN, "", file).await).await;
    assert_eq!(lines.len(), 6, "{lines:?}");
    for (number, line) in lines.iter().enumerate() {
        assert_eq!(line["line"], number + 1);
        assert_eq!(line["result"], "created", "{line}");
    }
    assert_eq!(last, json!({"done": true, "created": 6, "updated": 0, "skipped": 0, "failed": 0}));
    let events = app.events("demo").await;
    let imported = events.iter().find(|e| e["kind"] == "users_imported").expect("audited");
    assert_eq!(imported["actor"], "operator");
    assert!(imported["detail"].as_str().expect("detail").contains("created 6"), "{imported}");

    let counts = imported_hashes(&app, "demo").await;
    assert_eq!(counts, json!({"by_scheme": {"bcrypt": 3, "pbkdf2-sha256": 3}, "total": 6}));

    // The fields of the file were kept.
    let (email, _) = &users[0];
    let listed = app.get_with(&format!("/t/demo/admin/users?email_prefix={email}"), OPERATOR_TOKEN).await;
    let listed: Value = listed.json().await.expect("json");
    let user = &listed["users"][0];
    assert_eq!((user["email"].as_str(), user["name"].as_str()), (Some(email.as_str()), Some("User 0")));
    assert_eq!(user["email_verified"], true);
    assert_eq!(user["created_at"], "2024-05-01T12:00:00Z");

    for (i, (email, password)) in users.iter().enumerate() {
        let wrong = app.try_login("demo", email, "not their password").await;
        assert_problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        app.login("demo", email, password).await;
        // One fewer imported hash each time: the login replaced it.
        assert_eq!(imported_hashes(&app, "demo").await["total"], 6 - i as u64 - 1, "after {email}");
    }
    // And the new argon2id hashes check out.
    for (email, password) in &users {
        app.login("demo", email, password).await;
    }
}

#[tokio::test]
async fn a_file_with_a_bad_line_imports_nothing_and_names_each_line_and_why() {
    let app = spawn_app().await;
    let good = bcrypt_line("good@example.com");
    let file = [
        good.clone(),
        json!({"email": "plain@example.com", "password_hash": "hunter2"}).to_string(),
        String::new(),
        bcrypt_line("GOOD@example.com"),
        json!({"email": "role@example.com", "password_hash": bcrypt_hash(), "roles": ["wizard"]}).to_string(),
        "{not json".to_owned(),
        json!({"email": "extra@example.com", "password_hash": bcrypt_hash(), "admin": true}).to_string(),
        json!({"email": "cost@example.com", "password_hash": bcrypt_hash().replacen("$04$", "$31$", 1)}).to_string(),
    ]
    .join("\n");
    let refused = import(&app, "demo", OPERATOR_TOKEN, "", file).await;
    let problem = assert_problem(refused, StatusCode::UNPROCESSABLE_ENTITY, "import_refused").await;
    let errors: Vec<(u64, String)> = problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| (e["line"].as_u64().expect("line"), e["reason"].as_str().expect("reason").to_owned()))
        .collect();
    let lines: Vec<u64> = errors.iter().map(|(line, _)| *line).collect();
    assert_eq!(lines, [2, 4, 5, 6, 7, 8], "{errors:?}");
    for (line, expected) in [
        (2, "password_hash"),
        (4, "an earlier line has this email"),
        (5, "wizard"),
        (6, "not a user object"),
        (7, "admin"),
        (8, "cost 31"),
    ] {
        let reason = &errors.iter().find(|(l, _)| *l == line).expect("listed").1;
        assert!(reason.contains(expected), "line {line}: {reason}");
        assert!(!reason.contains("$2b$04$") && !reason.contains("$31$"), "a hash is never echoed: {reason}");
    }
    assert!(problem["detail"].as_str().expect("detail").contains("6 of the 7 lines"), "{problem}");
    let listed = app.get_with("/t/demo/admin/users?email_prefix=good", OPERATOR_TOKEN).await;
    let listed: Value = listed.json().await.expect("json");
    assert_eq!(listed["users"], json!([]), "the good line was not imported either");
    assert!(app.events("demo").await.iter().all(|e| e["kind"] != "users_imported"));

    let wrong_type = app
        .http
        .post(app.url("/t/demo/admin/users/import"))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&json!({"email": "a@example.com"}))
        .send()
        .await
        .expect("request");
    assert_eq!(wrong_type.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

/// A bcrypt hash of [`PASSWORD`], cost 4.
fn bcrypt_hash() -> String {
    bcrypt::hash(PASSWORD, 4).expect("bcrypt")
}

fn bcrypt_line(email: &str) -> String {
    json!({"email": email, "password_hash": bcrypt_hash()}).to_string()
}

#[tokio::test]
async fn a_rerun_skips_what_is_there_or_updates_it_as_asked() {
    let app = spawn_app().await;
    let id = uuid::Uuid::new_v4();
    let first = [
        json!({"email": "kept@example.com", "password_hash": bcrypt_hash(), "id": id}).to_string(),
        bcrypt_line("second@example.com"),
    ]
    .join("\n")
        + "\n";
    let (lines, _) = results(import(&app, "demo", OPERATOR_TOKEN, "", first.clone()).await).await;
    assert_eq!(lines[0]["id"], id.to_string(), "the file's id is kept");
    let session = app.login("demo", "kept@example.com", PASSWORD).await;
    assert_eq!(session.user.id, id.to_string());

    let (lines, last) = results(import(&app, "demo", OPERATOR_TOKEN, "", first).await).await;
    assert!(lines.iter().all(|line| line["result"] == "skipped"), "{lines:?}");
    assert_eq!(last["skipped"], 2);
    app.login("demo", "kept@example.com", PASSWORD).await;

    // update: the new hash replaces the one the login upgraded, and the
    // user's sessions end.
    let new_hash = bcrypt::hash("another long passphrase", 4).expect("bcrypt");
    let update = json!({"email": "kept@example.com", "password_hash": new_hash, "name": "Kept"}).to_string();
    let (lines, last) = results(import(&app, "demo", OPERATOR_TOKEN, "?existing=update", update).await).await;
    assert_eq!(
        (lines[0]["result"].as_str(), lines[0]["id"].as_str()),
        (Some("updated"), Some(id.to_string().as_str()))
    );
    assert_eq!(last["updated"], 1);
    assert_problem(
        app.try_login("demo", "kept@example.com", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let me = app.get_with("/t/demo/users/me", &session.access).await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED, "the session ended with the new hash");
    let again = app.login("demo", "kept@example.com", "another long passphrase").await;
    assert_eq!(again.user.name.as_deref(), Some("Kept"));

    // An id already taken by another email is a failed line, not an overwrite.
    let clash = json!({"email": "clash@example.com", "password_hash": bcrypt_hash(), "id": id}).to_string();
    let (lines, last) = results(import(&app, "demo", OPERATOR_TOKEN, "", clash).await).await;
    assert_eq!(lines[0]["result"], "failed", "{lines:?}");
    assert_eq!(last["failed"], 1);
    app.login("demo", "kept@example.com", "another long passphrase").await;
}

#[tokio::test]
async fn only_an_admin_of_the_tenant_or_the_operator_imports() {
    let app = spawn_app().await;
    app.create_tenant(json!({"id": "other"})).await;
    let admin = app.admin_of("other", "boss@example.com").await;
    let user = app.register("demo", "plain@example.com").await;
    for (token, status) in [
        ("", StatusCode::UNAUTHORIZED),
        (user.access.as_str(), StatusCode::FORBIDDEN),
        // An admin of another tenant: authenticated, but not here.
        (admin.access.as_str(), StatusCode::FORBIDDEN),
    ] {
        let refused = import(&app, "demo", token, "", bcrypt_line("sneaky@example.com")).await;
        assert_eq!(refused.status(), status, "token {token:.10}");
        let counts = app.get_with("/t/demo/admin/users/import", token).await;
        assert_eq!(counts.status(), status);
    }
    let (_, last) = results(import(&app, "other", &admin.access, "", bcrypt_line("mine@example.com")).await).await;
    assert_eq!(last["created"], 1);
    app.login("other", "mine@example.com", PASSWORD).await;
    assert_problem(
        app.try_login("demo", "mine@example.com", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_problem(
        app.try_login("demo", "sneaky@example.com", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
}

#[tokio::test]
async fn the_cli_imports_a_file_into_a_stopped_store_and_refuses_a_bad_one() {
    let mut app = spawn_app().await;
    app.server.take().expect("running").shutdown().await.expect("shutdown");
    let dir = tempfile::tempdir().expect("tempdir");
    let (good, bad) = (dir.path().join("users.ndjson"), dir.path().join("bad.ndjson"));
    std::fs::write(&good, [bcrypt_line("cli-a@example.com"), bcrypt_line("cli-b@example.com")].join("\n"))
        .expect("write");
    std::fs::write(&bad, [bcrypt_line("cli-c@example.com"), "{}".to_owned()].join("\n")).expect("write");
    let run = |file: std::path::PathBuf| {
        let args = app.store_args();
        async move {
            tokio::process::Command::new(latch_binary())
                .args(["user", "import", "--tenant", "demo"])
                .arg(file)
                .args(args)
                .env("LATCH_LOG", "warn")
                .output()
                .await
                .expect("runs")
        }
    };
    let refused = run(bad).await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("line 2: not a user object") && stderr.contains("so none was"), "{stderr}");
    let imported = run(good.clone()).await;
    assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));
    let stdout = String::from_utf8_lossy(&imported.stdout);
    assert!(stdout.contains("2 created, 0 updated, 0 skipped, 0 failed"), "{stdout}");
    let rerun = run(good).await;
    assert!(String::from_utf8_lossy(&rerun.stdout).contains("0 created, 0 updated, 2 skipped"));

    app.restart().await;
    app.login("demo", "cli-a@example.com", PASSWORD).await;
    app.login("demo", "cli-b@example.com", PASSWORD).await;
    assert_problem(
        app.try_login("demo", "cli-c@example.com", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
}
