//! latch on PostgreSQL (`--store postgres://…`), run as the built binary on a
//! fresh database of the throwaway cluster the test command starts: the
//! same flows as on sled, a restart that keeps everything, and two nodes on
//! one database.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

/// A latch node on `database`, with its own data directory (mail outbox),
/// the shared master key file, and the public URL the nodes share (behind a
/// load balancer; it names the issuer, so it is the same on every node).
async fn node(
    dir: &std::path::Path,
    database: &TestDatabase,
    key: &std::path::Path,
) -> (tokio::process::Child, TestClient) {
    let args = [
        "--store".as_ref(),
        database.url.as_ref(),
        "--master-key-file".as_ref(),
        key.as_os_str(),
        "--public-url".as_ref(),
        "https://auth.latch.test".as_ref(),
    ];
    let mut child = serve_command(dir, &args).spawn().expect("latch starts");
    let node = TestClient::new(&banner_address(&mut child).await);
    node.wait_ready().await;
    (child, node)
}

#[tokio::test]
async fn latch_runs_on_postgres_and_two_nodes_share_one_database() {
    let database = tokio::task::spawn_blocking(TestDatabase::new).await.expect("a test database");
    let (dir_a, dir_b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let key = dir_a.path().join("shared-master.key");
    let (mut node_a, a) = node(dir_a.path(), &database, &key).await;
    // The second node starts on the same database and the same master key.
    let (_node_b, b) = node(dir_b.path(), &database, &key).await;

    // Registered on A, logs in on B; B's token works on A and A's on B.
    let on_a = a.register("demo", "pg@example.com").await;
    let on_b = b.login("demo", "pg@example.com", PASSWORD).await;
    assert_eq!(a.get_with("/t/demo/users/me", &on_b.access).await.status(), StatusCode::OK);
    assert_eq!(b.get_with("/t/demo/users/me", &on_a.access).await.status(), StatusCode::OK);

    // The same refresh token presented to A and B at the same moment: the row
    // lock orders the two rotations, and the second is inside the grace
    // window, so both answers carry the one successor.
    let (from_a, from_b) = tokio::join!(a.refresh("demo", &on_b.refresh), b.refresh("demo", &on_b.refresh));
    assert_eq!(from_a.refresh, from_b.refresh, "one successor across nodes");
    let rotated = from_a;

    // Logged out on A: B refuses the session's access token at once.
    let logout = a.http.post(a.url("/t/demo/auth/logout")).bearer_auth(&rotated.access).send().await.expect("r");
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert_problem(b.get_with("/t/demo/users/me", &rotated.access).await, StatusCode::UNAUTHORIZED, "session_ended")
        .await;

    // A tenant created on B is there for A.
    let created = b.send(reqwest::Method::POST, "/admin/tenants", OPERATOR_TOKEN, Some(&json!({"id": "acme"}))).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    a.register("acme", "first@acme.example").await;

    // kill -9 of A while it takes writes: every registration A acknowledged
    // is on B, and B serves all along.
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (writer, written) = (a.clone(), acknowledged.clone());
    let writes = tokio::spawn(async move {
        for n in 0.. {
            let email = format!("w{n:04}@acme.example");
            let body = json!({"email": email, "password": PASSWORD});
            match writer.http.post(writer.url("/t/acme/auth/register")).json(&body).send().await {
                Ok(answer) if answer.status() == StatusCode::CREATED => written.lock().expect("lock").push(email),
                Ok(answer) => panic!("a registration answered {}", answer.status()),
                // A is gone: a request in flight may or may not have committed.
                Err(_) => break,
            }
        }
    });
    let during = b.login("acme", "first@acme.example", PASSWORD).await;
    eventually("acknowledged writes on A", || async { acknowledged.lock().expect("lock").len() >= 8 }).await;
    node_a.kill().await.expect("kill -9");
    writes.await.expect("the writer stops when A is gone");
    assert_eq!(b.get_with("/t/acme/users/me", &during.access).await.status(), StatusCode::OK, "B serves");
    let acknowledged = acknowledged.lock().expect("lock").clone();
    let listed: serde_json::Value =
        b.get_with("/t/acme/admin/users?email_prefix=w&limit=200", OPERATOR_TOKEN).await.json().await.expect("json");
    let stored: Vec<&str> =
        listed["users"].as_array().expect("users").iter().map(|u| u["email"].as_str().expect("email")).collect();
    for email in &acknowledged {
        assert!(stored.contains(&email.as_str()), "{email} was acknowledged by A but is not in the database");
    }
    b.login("acme", acknowledged.last().expect("some"), PASSWORD).await;
    let (_node_a, a) = node(dir_a.path(), &database, &key).await;
    a.login("demo", "pg@example.com", PASSWORD).await;
}

#[tokio::test]
async fn a_database_url_with_a_password_in_the_config_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("latch.toml");
    std::fs::write(&config, "store = \"postgres://latch:hunter2@db.example/latch\"\n").expect("write");
    let (ok, _, stderr) = run_latch(["serve", "--config", &config.display().to_string()], "").await;
    assert!(!ok && stderr.contains("LATCH_STORE_PASSWORD") && !stderr.contains("hunter2"), "{stderr}");
    let (ok, _, stderr) = run_latch(["serve", "--store", "mysql://x"], "").await;
    assert!(!ok && stderr.contains("neither `sled` nor a postgres:// URL"), "{stderr}");
}

/// Rotates `tenant`'s key through `node` with the new key signing at once; its kid.
async fn rotate_now(node: &TestClient, tenant: &str) -> String {
    let path = format!("/admin/tenants/{tenant}/keys/rotate");
    let rotated = node.operator_post(&path, &json!({"publish_delay_seconds": 0})).await;
    assert_eq!(rotated.status(), StatusCode::CREATED);
    rotated.json::<serde_json::Value>().await.expect("json")["kid"].as_str().expect("kid").to_owned()
}

/// Asks `check` again until it holds: what another node caches follows a
/// change when the change's notification arrives (milliseconds), so the
/// deadline only keeps a broken build from hanging.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "{what} never reached the other node");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_change_on_one_node_reaches_what_the_other_node_caches() {
    let database = tokio::task::spawn_blocking(TestDatabase::new).await.expect("a test database");
    let (dir_a, dir_b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let key = dir_a.path().join("shared-master.key");
    let (_node_a, a) = node(dir_a.path(), &database, &key).await;
    let (_node_b, b) = node(dir_b.path(), &database, &key).await;
    // B has the tenant's keys and settings in memory.
    let on_a = a.register("demo", "cached@example.com").await;
    let before = b.login("demo", "cached@example.com", PASSWORD).await;

    // A key rotated on A is published by B and signs B's tokens.
    let new_kid = rotate_now(&a, "demo").await;
    assert_ne!(kid_of(&before.access), new_kid);
    eventually("the rotated key", || async {
        let jwks = b.jwks("demo").await;
        jwks["keys"].as_array().expect("keys").iter().any(|k| k["kid"] == new_kid.as_str())
    })
    .await;
    let after = b.login("demo", "cached@example.com", PASSWORD).await;
    assert_eq!(kid_of(&after.access), new_kid, "B signs with the key A made");
    assert_eq!(a.get_with("/t/demo/users/me", &after.access).await.status(), StatusCode::OK);

    // A setting changed on A: B's next tokens follow it.
    let ttl = json!({"access_token_ttl": 120});
    let patched = a.send(reqwest::Method::PATCH, "/admin/tenants/demo", OPERATOR_TOKEN, Some(&ttl)).await;
    assert_eq!(patched.status(), StatusCode::OK);
    eventually("the new access-token lifetime", || async {
        let claims = claims_of(&b.login("demo", "cached@example.com", PASSWORD).await.access);
        claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat") == 120
    })
    .await;

    // Server-side checks read the database: a user disabled on A is refused by B at once.
    let me: serde_json::Value = a.get_with("/t/demo/users/me", &on_a.access).await.json().await.expect("json");
    let user = me["id"].as_str().expect("id");
    let disable = format!("/t/demo/admin/users/{user}/disable");
    let disabled = a.send(reqwest::Method::POST, &disable, OPERATOR_TOKEN, None).await;
    assert!(disabled.status().is_success());
    // (disabling ends the user's sessions)
    assert_problem(b.get_with("/t/demo/users/me", &after.access).await, StatusCode::UNAUTHORIZED, "session_ended")
        .await;
    assert_problem(b.try_login("demo", "cached@example.com", PASSWORD).await, StatusCode::FORBIDDEN, "user_disabled")
        .await;

    // A tenant deleted on A is gone on B.
    let deleted = a.send(reqwest::Method::DELETE, "/admin/tenants/demo", OPERATOR_TOKEN, None).await;
    assert!(deleted.status().is_success());
    eventually("the deletion", || async {
        b.http.get(b.url("/t/demo/.well-known/jwks.json")).send().await.expect("r").status() == StatusCode::NOT_FOUND
    })
    .await;
}

/// Stops a `latch serve` child the way an operator does (SIGTERM), so it
/// flushes and lets go of its data directory.
async fn stop(child: &mut tokio::process::Child) {
    let pid = child.id().expect("running").to_string();
    let sent = tokio::process::Command::new("kill").args(["-TERM", &pid]).status().await.expect("kill runs");
    assert!(sent.success());
    assert!(child.wait().await.expect("exits").success(), "a clean shutdown");
}

#[tokio::test]
async fn a_sled_store_moves_to_postgres_with_latch_migrate_and_back_with_backup_and_restore() {
    let database = tokio::task::spawn_blocking(TestDatabase::new).await.expect("a test database");
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("master.key");
    let same_issuer =
        ["--master-key-file".as_ref(), key.as_os_str(), "--public-url".as_ref(), "https://auth.latch.test".as_ref()];

    // A populated sled store: users, sessions (one ended), a client, a second key.
    let sled_dir = dir.path().join("on-sled");
    let mut on_sled = serve_command(&sled_dir, &same_issuer).spawn().expect("starts");
    let sled = TestClient::new(&banner_address(&mut on_sled).await);
    sled.wait_ready().await;
    let kept = sled.register("demo", "moved@example.com").await;
    let ended = sled.login("demo", "moved@example.com", PASSWORD).await;
    let logout = sled.http.post(sled.url("/t/demo/auth/logout")).bearer_auth(&ended.access).send().await.expect("r");
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let client = json!({"client_id": "moved-app", "name": "Moved", "type": "public", "redirect_uris": ["https://app.example/cb"]});
    let created = sled.send(reqwest::Method::POST, "/t/demo/admin/clients", OPERATOR_TOKEN, Some(&client)).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let kid = rotate_now(&sled, "demo").await;
    stop(&mut on_sled).await;

    // One step into PostgreSQL; a second run finds the database in use and changes nothing.
    let sled_data = sled_dir.join("data").display().to_string();
    let (ok, out, err) = run_latch(["migrate", "--from", &sled_data, "--to", &database.url], "").await;
    assert!(ok && out.contains("migrated"), "{out}{err}");
    let (ok, _, err) = run_latch(["migrate", "--from", &sled_data, "--to", &database.url], "").await;
    assert!(!ok && err.contains("already holds"), "{err}");

    // latch on PostgreSQL serves what sled held: the session, its refresh
    // token, the ended session, the client and the keys.
    let (mut on_postgres, postgres) = node(&dir.path().join("on-postgres"), &database, &key).await;
    assert_eq!(postgres.get_with("/t/demo/users/me", &kept.access).await.status(), StatusCode::OK);
    assert_problem(
        postgres.get_with("/t/demo/users/me", &ended.access).await,
        StatusCode::UNAUTHORIZED,
        "session_ended",
    )
    .await;
    let rotated = postgres.refresh("demo", &kept.refresh).await;
    assert_eq!(kid_of(&rotated.access), kid, "signed with the key made on sled");
    let shown = postgres.get_with("/t/demo/admin/clients/moved-app", OPERATOR_TOKEN).await;
    assert_eq!(shown.status(), StatusCode::OK);

    // A backup of the PostgreSQL store, taken while it serves, restores into sled.
    let file = dir.path().join("from-postgres.ndjson").display().to_string();
    let (ok, out, err) = run_latch(["backup", &file, "--store", &database.url], "").await;
    assert!(ok && out.contains("written"), "{out}{err}");
    stop(&mut on_postgres).await;
    let back_dir = dir.path().join("back-on-sled");
    let back_data = back_dir.join("data").display().to_string();
    let (ok, out, err) = run_latch(["restore", &file, "--data-dir", &back_data], "").await;
    assert!(ok && out.contains("restored"), "{out}{err}");
    let mut back = serve_command(&back_dir, &same_issuer).spawn().expect("starts");
    let sled = TestClient::new(&banner_address(&mut back).await);
    sled.wait_ready().await;
    sled.refresh("demo", &rotated.refresh).await;
    sled.login("demo", "moved@example.com", PASSWORD).await;
}

/// A CA for the TLS test: its PEM certificate and the issuer that signs.
fn certificate_authority() -> (String, rcgen::CertifiedIssuer<'static, rcgen::KeyPair>) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let issuer = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().expect("key")).expect("CA");
    (issuer.pem(), issuer)
}

#[tokio::test]
async fn latch_reaches_postgres_over_tls_as_the_urls_sslmode_asks() {
    use std::os::unix::fs::PermissionsExt as _;
    let database = tokio::task::spawn_blocking(TestDatabase::new).await.expect("a test database");
    let tcp = std::env::var("LATCH_TEST_POSTGRES_TCP").expect("LATCH_TEST_POSTGRES_TCP (./test.sh)");
    let owner = std::env::var("LATCH_TEST_POSTGRES_OWNER").expect("LATCH_TEST_POSTGRES_OWNER (./test.sh)");

    // The server's certificate names db.internal only: latch reaches it at
    // 127.0.0.1, so verify-ca (chain only) accepts it and verify-full does not.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let (ca_pem, ca) = certificate_authority();
    let (other_ca_pem, _) = certificate_authority();
    let server_key = rcgen::KeyPair::generate().expect("key");
    let server = rcgen::CertificateParams::new(vec!["db.internal".to_owned()])
        .expect("params")
        .signed_by(&server_key, &ca)
        .expect("signed");
    let path = |name: &str| dir.path().join(name);
    for (name, pem) in [("ca.pem", ca_pem), ("other-ca.pem", other_ca_pem), ("server.crt", server.pem())] {
        std::fs::write(path(name), pem).expect("write");
        std::fs::set_permissions(path(name), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    // PostgreSQL takes a key only its own user can read.
    std::fs::write(path("server.key"), server_key.serialize_pem()).expect("write");
    std::fs::set_permissions(path("server.key"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let chowned = std::process::Command::new("chown").arg(&owner).arg(path("server.key")).status().expect("chown");
    assert!(chowned.success());

    // TLS on, for TCP connections (the other tests use the Unix socket).
    let admin = std::env::var("LATCH_TEST_POSTGRES").expect("LATCH_TEST_POSTGRES");
    let (cert, key) = (path("server.crt").display().to_string(), path("server.key").display().to_string());
    let switched = tokio::task::spawn_blocking(move || {
        let mut client = postgres::Client::connect(&admin, postgres::NoTls).expect("connect");
        for statement in [
            format!("ALTER SYSTEM SET ssl_cert_file = '{cert}'"),
            format!("ALTER SYSTEM SET ssl_key_file = '{key}'"),
            "ALTER SYSTEM SET ssl = on".to_owned(),
            "SELECT pg_reload_conf()".to_owned(),
        ] {
            client.batch_execute(&statement).expect(&statement);
        }
    });
    switched.await.expect("TLS on");

    let name = database.url.rsplit('/').next().expect("database name").to_owned();
    let url = |query: &str| format!("postgres://latch@{tcp}/{name}?{query}");
    let backup = dir.path().join("probe.backup").display().to_string();
    let reaches = |query: String| {
        let (url, backup) = (url(&query), backup.clone());
        async move { run_latch(["backup", &backup, "--store", &url], "").await }
    };
    // The reload reaches new connections when the server has read it.
    eventually("TLS on the test server", || async {
        reaches(format!("sslmode=verify-ca&sslrootcert={}", path("ca.pem").display())).await.0
    })
    .await;
    let (ok, _, err) = reaches(format!("sslmode=verify-full&sslrootcert={}", path("ca.pem").display())).await;
    assert!(
        !ok && err.contains("cannot reach PostgreSQL") && err.contains("not valid for name"),
        "verify-full checks the name: {err}"
    );
    let (ok, _, err) = reaches(format!("sslmode=verify-ca&sslrootcert={}", path("other-ca.pem").display())).await;
    assert!(!ok && err.contains("invalid peer certificate"), "a CA latch was not told to trust: {err}");
    let (ok, _, err) = reaches("sslmode=verify-full".to_owned()).await;
    assert!(!ok, "not a public CA, so not among the Mozilla roots: {err}");
    let (ok, _, err) = reaches("sslmode=require".to_owned()).await;
    assert!(ok, "require encrypts without checking, as libpq: {err}");

    // A node on verify-ca: its pool and its listening connection are encrypted.
    let store = url(&format!("sslmode=verify-ca&sslrootcert={}", path("ca.pem").display()));
    let key = path("master.key");
    let args = ["--store".as_ref(), store.as_ref(), "--master-key-file".as_ref(), key.as_os_str()];
    let mut child = serve_command(&dir.path().join("node"), &args).spawn().expect("starts");
    let node = TestClient::new(&banner_address(&mut child).await);
    node.wait_ready().await;
    node.register("demo", "tls@example.com").await;
    let admin = std::env::var("LATCH_TEST_POSTGRES").expect("LATCH_TEST_POSTGRES");
    let plain = tokio::task::spawn_blocking(move || {
        let mut client = postgres::Client::connect(&admin, postgres::NoTls).expect("connect");
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) FROM pg_stat_activity a \
                 JOIN pg_stat_ssl s USING (pid) WHERE a.datname = $1 AND a.client_addr IS NOT NULL",
                &[&name],
            )
            .expect("query");
        let counts: (i64, i64) = (row.get(0), row.get(1));
        for statement in
            ["ALTER SYSTEM RESET ssl", "ALTER SYSTEM RESET ssl_cert_file", "ALTER SYSTEM RESET ssl_key_file"]
        {
            client.batch_execute(statement).expect(statement);
        }
        client.batch_execute("SELECT pg_reload_conf()").expect("reload");
        counts
    });
    let (encrypted, unencrypted) = plain.await.expect("counts");
    assert!(encrypted >= 2 && unencrypted == 0, "{encrypted} TLS and {unencrypted} plain connections from the node");
}
