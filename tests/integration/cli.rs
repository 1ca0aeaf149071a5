//! The operator CLI, run as the built binary: tenants, users, backup and
//! restore, and what it refuses.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

fn data_dir_args(app: &TestApp) -> Vec<String> {
    app.store_args()
}

/// Runs `latch` with these arguments plus the store of `app`, and asserts it succeeded.
async fn latch_ok(app: &TestApp, args: &[&str], stdin: &str) -> String {
    let (ok, stdout, stderr) = run_latch(args.iter().map(|a| a.to_string()).chain(data_dir_args(app)), stdin).await;
    assert!(ok, "latch {args:?} failed: {stderr}");
    stdout
}

#[tokio::test]
async fn the_cli_manages_tenants_and_users_on_a_stopped_data_dir() {
    let mut app = spawn_app().await;
    app.stop().await;

    let created = latch_ok(&app, &["tenant", "create", "acme", "--algorithm", "ES256", "--name", "Acme"], "").await;
    assert!(created.contains("tenant acme (ES256), issuer http://") && created.contains("/t/acme"), "{created}");
    let update = ["tenant", "update", "acme", "--set", "access_token_ttl=600", "--set", "email_verification=optional"];
    let updated = latch_ok(&app, &update, "").await;
    let shown: Value = serde_json::from_str(&updated).expect("tenant JSON");
    assert_eq!(shown["settings"]["access_token_ttl"], 600);
    assert_eq!(shown["settings"]["email_verification"], "optional");
    let (ok, _, stderr) = run_latch(
        ["tenant", "update", "acme", "--set", "email_verification=sometimes"]
            .into_iter()
            .map(String::from)
            .chain(data_dir_args(&app)),
        "",
    )
    .await;
    assert!(!ok && stderr.contains("`email_verification`: expected off, optional or required"), "{stderr}");
    assert_eq!(shown["algorithm"], "ES256");
    let listed = latch_ok(&app, &["tenant", "list"], "").await;
    assert!(listed.lines().any(|l| l.starts_with("acme\tES256\tAcme")), "{listed}");
    assert!(listed.lines().any(|l| l.starts_with("demo\t")), "{listed}");

    let user = ["--tenant", "acme", "--email", "ops@acme.test"];
    latch_ok(&app, &[&["user", "create"][..], &user, &["--roles", "admin,user"]].concat(), "first password 1\n").await;
    latch_ok(&app, &[&["user", "create", "--tenant", "acme", "--email", "two@acme.test"][..]].concat(), PASSWORD).await;
    let users = latch_ok(&app, &["user", "list", "--tenant", "acme"], "").await;
    let lines: Vec<&str> = users.lines().collect();
    assert_eq!(lines.len(), 2, "{users}");
    assert!(lines[0].contains("ops@acme.test\tadmin,user\tactive"), "{users}");
    latch_ok(&app, &[&["user", "set-roles"][..], &user, &["--roles", "user"]].concat(), "").await;
    latch_ok(&app, &[&["user", "set-password"][..], &user].concat(), "second password 2\n").await;
    latch_ok(&app, &[&["user", "disable"][..], &user].concat(), "").await;

    app.restart().await;
    let login = app.try_login("acme", "ops@acme.test", "second password 2").await;
    assert_problem(login, StatusCode::FORBIDDEN, "user_disabled").await;
    app.stop().await;
    latch_ok(&app, &[&["user", "enable"][..], &user].concat(), "").await;

    app.restart().await;
    assert_eq!(app.try_login("acme", "ops@acme.test", "first password 1").await.status(), StatusCode::UNAUTHORIZED);
    let login = app.login("acme", "ops@acme.test", "second password 2").await;
    assert_eq!(login.user.roles, ["user"]);
    assert_eq!(login.expires_in, 600);
    let events = app.send(Method::GET, "/t/acme/admin/events?limit=200", OPERATOR_TOKEN, None).await;
    let events: Value = events.json().await.expect("json");
    let kinds: Vec<&str> =
        events["events"].as_array().expect("events").iter().map(|e| e["kind"].as_str().expect("kind")).collect();
    for kind in ["user_created", "roles_changed", "password_set", "user_disabled", "user_enabled"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    assert!(events["events"].as_array().expect("events").iter().any(|e| e["actor"] == "operator"));

    // While the server runs, the CLI refuses to touch the data directory and
    // says what to do (sled belongs to one process; PostgreSQL is shared).
    if !on_postgres() {
        let (ok, _, stderr) =
            run_latch(["tenant", "list"].map(String::from).into_iter().chain(data_dir_args(&app)), "").await;
        assert!(!ok);
        assert!(stderr.contains("the server is running"), "{stderr}");
    }
    app.stop().await;

    let (ok, _, stderr) =
        run_latch(["tenant", "delete", "acme"].map(String::from).into_iter().chain(data_dir_args(&app)), "").await;
    assert!(!ok && stderr.contains("--yes"), "{stderr}");
    latch_ok(&app, &["tenant", "delete", "acme", "--yes"], "").await;
    let listed = latch_ok(&app, &["tenant", "list"], "").await;
    assert!(!listed.contains("acme"), "{listed}");
    let (ok, _, stderr) = run_latch(
        ["user", "create", "--tenant", "demo", "--email", "weak@example.com"]
            .map(String::from)
            .into_iter()
            .chain(data_dir_args(&app)),
        "short\n",
    )
    .await;
    assert!(!ok && stderr.contains("at least 10"), "the tenant's password policy applies: {stderr}");
}

#[tokio::test]
async fn a_backup_taken_online_restores_elsewhere_with_every_login_and_old_token_working() {
    if on_postgres() {
        return; // restores into sled directories; PostgreSQL's: postgres::a_sled_store_moves_…
    }
    let mut app = spawn_app().await;
    app.create_tenant(json!({"id": "rsa", "algorithm": "RS256"})).await;
    let mut accounts = Vec::new();
    for (tenant, email) in [("demo", "a@example.com"), ("demo", "b@example.com"), ("rsa", "c@example.com")] {
        accounts.push((tenant, email, app.register(tenant, email).await));
    }
    let rotated = app.refresh("demo", &accounts[0].2.refresh).await;

    // Online, through the operator API: the CLI finds the data directory in
    // use and asks the server at the address the configuration file gives.
    let file = app.dir.path().join("latch.backup");
    let config = app.dir.path().join("latch.toml");
    std::fs::write(&config, format!("listen = \"{}\"\n", app.addr)).expect("write the config");
    let (ok, stdout, stderr) = run_latch(
        [
            "backup".into(),
            file.display().to_string(),
            "--config".into(),
            config.display().to_string(),
            "--data-dir".into(),
            app.data_dir().display().to_string(),
        ],
        "",
    )
    .await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("from the server"), "{stdout}");
    let api = app.http.get(app.url("/admin/backup")).bearer_auth(OPERATOR_TOKEN).send().await.expect("request");
    assert_eq!(api.status(), StatusCode::OK);
    assert_problem(
        app.http.get(app.url("/admin/backup")).bearer_auth("wrong-token-but-long").send().await.expect("request"),
        StatusCode::UNAUTHORIZED,
        "operator_token_required",
    )
    .await;

    // A write after the backup is not in it.
    app.register("demo", "late@example.com").await;

    let restored = tempfile::tempdir().expect("tempdir");
    let target = restored.path().join("data");
    let (ok, stdout, stderr) = run_latch(
        ["restore".into(), file.display().to_string(), "--data-dir".into(), target.display().to_string()],
        "",
    )
    .await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("restored"), "{stdout}");
    let (ok, _, stderr) = run_latch(
        ["restore".into(), file.display().to_string(), "--data-dir".into(), target.display().to_string()],
        "",
    )
    .await;
    assert!(!ok && stderr.contains("not empty"), "restore never overwrites: {stderr}");

    // The same master key and address: the restored store serves as the original did.
    std::fs::copy(app.dir.path().join("latch-master.key"), restored.path().join("latch-master.key")).expect("copy");
    app.restart_on(&target).await;
    for (tenant, email, tokens) in &accounts {
        assert_eq!(app.try_login(tenant, email, PASSWORD).await.status(), StatusCode::OK, "{email} logs in");
        let old = tokens.access.as_str();
        assert_eq!(app.get_with(&format!("/t/{tenant}/users/me"), old).await.status(), StatusCode::OK, "{email}");
    }
    let refreshed = app.try_refresh("demo", &rotated.refresh).await;
    assert_eq!(refreshed.status(), StatusCode::OK, "the rotated refresh token in the backup still works");
    let late = app.try_login("demo", "late@example.com", PASSWORD).await;
    assert_eq!(late.status(), StatusCode::UNAUTHORIZED, "written after the backup");
}

#[tokio::test]
async fn a_stopped_data_dir_backs_up_directly_and_damaged_backups_are_refused() {
    if on_postgres() {
        return; // sled's directories; the PostgreSQL round trip is postgres::a_sled_store_moves_…
    }
    let mut app = spawn_app().await;
    app.register("demo", "offline@example.com").await;
    app.stop().await;
    let file = app.dir.path().join("offline.backup");
    let (ok, stdout, stderr) = run_latch(
        ["backup".into(), file.display().to_string(), "--data-dir".into(), app.data_dir().display().to_string()],
        "",
    )
    .await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains(&app.data_dir().display().to_string()), "read directly: {stdout}");

    let text = std::fs::read_to_string(&file).expect("read");
    let truncated = app.dir.path().join("truncated.backup");
    std::fs::write(&truncated, text.lines().take(5).collect::<Vec<_>>().join("\n")).expect("write");
    let target = app.dir.path().join("never");
    let (ok, _, stderr) = run_latch(
        ["restore".into(), truncated.display().to_string(), "--data-dir".into(), target.display().to_string()],
        "",
    )
    .await;
    assert!(!ok && stderr.contains("truncated"), "{stderr}");
    assert!(!target.exists(), "nothing written for a damaged file");

    let good = app.dir.path().join("restored");
    let (ok, _, stderr) =
        run_latch(["restore".into(), file.display().to_string(), "--data-dir".into(), good.display().to_string()], "")
            .await;
    assert!(ok, "{stderr}");
    app.restart_on(&good).await;
    assert_eq!(app.try_login("demo", "offline@example.com", PASSWORD).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_data_dir_of_a_newer_format_stops_the_binary_with_a_clear_message_and_is_left_alone() {
    if on_postgres() {
        return; // sled's format marker; PostgreSQL's schema version: store::postgres tests
    }
    use latch_server::store::{MetaStore as _, Store as _};
    let mut app = spawn_app().await;
    app.stop().await;
    {
        let store = latch_server::store::sled::SledStore::open(&app.data_dir(), 8 << 20).expect("opens");
        store.put_meta(latch_server::store::sled::FORMAT_KEY, b"latch-store/2").expect("write");
        store.flush().expect("flush");
    }
    let output = tokio::process::Command::new(latch_binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(app.data_dir())
        .env("LATCH_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .output()
        .await
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("latch-store/2") && stderr.contains("latch-store/1"), "{stderr}");
    let store = latch_server::store::sled::SledStore::open(&app.data_dir(), 8 << 20).err().expect("still refused");
    assert!(store.to_string().contains("latch-store/2"), "the marker was not rewritten: {store}");
}

#[tokio::test]
async fn the_cli_registers_lists_changes_and_removes_oauth_clients() {
    let mut app = spawn_app().await;
    app.stop().await;
    let create = [
        "client",
        "create",
        "--tenant",
        "demo",
        "--client-id",
        "grafana",
        "--type",
        "confidential",
        "--name",
        "Grafana",
        "--redirect-uri",
        "https://grafana.example/login/generic_oauth",
        "--set",
        "post_logout_redirect_uris=https://grafana.example/login",
    ];
    let created = latch_ok(&app, &create, "").await;
    let secret_line = created.lines().find(|l| l.starts_with("client secret")).expect("the secret is printed");
    let secret = secret_line.rsplit(' ').next().expect("secret").to_owned();
    assert!(secret.starts_with("latch_cs_"), "{created}");
    let json_end = created.find(secret_line).expect("after the JSON");
    let shown: Value = serde_json::from_str(&created[..json_end]).expect("client JSON");
    assert_eq!(shown["client_type"], "confidential");
    assert!(shown.get("secret_sha256").is_none(), "the hash is not shown");

    let listed = latch_ok(&app, &["client", "list", "--tenant", "demo"], "").await;
    assert!(
        listed.lines().any(|l| l.starts_with("grafana\tconfidential\tGrafana\thttps://grafana.example/")),
        "{listed}"
    );
    assert!(listed.lines().any(|l| l.starts_with("latch-demo\tpublic")), "the demo's own clients: {listed}");
    let updated =
        latch_ok(&app, &["client", "update", "--tenant", "demo", "grafana", "--set", "first_party=true"], "").await;
    assert_eq!(serde_json::from_str::<Value>(&updated).expect("json")["first_party"], true);
    let (ok, _, stderr) = run_latch(
        ["client", "update", "--tenant", "demo", "grafana", "--set", "grant_types=implicit"]
            .into_iter()
            .map(String::from)
            .chain(data_dir_args(&app)),
        "",
    )
    .await;
    assert!(!ok && stderr.contains("invalid client setting `grant_types`"), "{stderr}");

    // The server then accepts the secret the CLI printed.
    app.restart().await;
    app.register("demo", "grafana-user@example.com").await;
    let form = [("grant_type", "refresh_token"), ("refresh_token", "latch_rt_unknown")];
    let token = app.http.post(app.url("/t/demo/oauth/token")).basic_auth("grafana", Some(&secret)).form(&form);
    let answer: Value = token.send().await.expect("request").json().await.expect("json");
    assert_eq!(answer["error"], "invalid_grant", "authenticated, then the grant refused: {answer}");
    app.stop().await;

    let refused = run_latch(
        ["client", "delete", "--tenant", "demo", "grafana"].into_iter().map(String::from).chain(data_dir_args(&app)),
        "",
    )
    .await;
    assert!(!refused.0 && refused.2.contains("--yes"), "{}", refused.2);
    latch_ok(&app, &["client", "delete", "--tenant", "demo", "grafana", "--yes"], "").await;
    let (ok, _, stderr) = run_latch(
        ["client", "show", "--tenant", "demo", "grafana"].into_iter().map(String::from).chain(data_dir_args(&app)),
        "",
    )
    .await;
    assert!(!ok && stderr.contains("no such client"), "{stderr}");
}
