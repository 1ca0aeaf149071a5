//! latch on PostgreSQL (`--store postgres://…`), run as the built binary on a
//! fresh database of the throwaway cluster the test command starts: the
//! same flows as on sled, a restart that keeps everything, and two nodes on
//! one database.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

/// A fresh database on the test cluster, dropped afterwards.
struct TestDatabase {
    admin: String,
    name: String,
    url: String,
}

impl TestDatabase {
    fn new() -> TestDatabase {
        let admin = std::env::var("LATCH_TEST_POSTGRES")
            .expect("LATCH_TEST_POSTGRES names a PostgreSQL server: run ./test.sh, which starts one");
        let server_url = std::env::var("LATCH_TEST_POSTGRES_URL").expect("LATCH_TEST_POSTGRES_URL (./test.sh)");
        let name = format!("latch_it_{}", uuid::Uuid::new_v4().simple());
        let mut client = postgres::Client::connect(&admin, postgres::NoTls).expect("connect to the test server");
        client.batch_execute(&format!("CREATE DATABASE {name}")).expect("create the database");
        let (server, _) = server_url.rsplit_once('/').expect("a URL with a database");
        TestDatabase { admin, url: format!("{server}/{name}"), name }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // The blocking client runs a runtime of its own: off the test's.
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            if let Ok(mut client) = postgres::Client::connect(&admin, postgres::NoTls) {
                let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        });
        let _ = dropped.join();
    }
}

/// A latch node on `database`, with its own data directory (mail outbox),
/// the shared master key file, and the public URL the nodes share (behind a
/// load balancer; it names the issuer, so it is the same on every node).
async fn node(
    dir: &std::path::Path,
    database: &TestDatabase,
    key: &std::path::Path,
) -> (tokio::process::Child, String) {
    let args = [
        "--store".as_ref(),
        database.url.as_ref(),
        "--master-key-file".as_ref(),
        key.as_os_str(),
        "--public-url".as_ref(),
        "https://auth.latch.test".as_ref(),
    ];
    let mut child = serve_command(dir, &args).spawn().expect("latch starts");
    let base = banner_address(&mut child).await;
    (child, base)
}

#[tokio::test]
async fn latch_runs_on_postgres_and_two_nodes_share_one_database() {
    let database = tokio::task::spawn_blocking(TestDatabase::new).await.expect("a test database");
    let (dir_a, dir_b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let key = dir_a.path().join("shared-master.key");
    let (mut node_a, base_a) = node(dir_a.path(), &database, &key).await;
    let a = TestClient::new(&base_a);
    a.wait_ready().await;
    // The second node starts on the same database and the same master key.
    let (_node_b, base_b) = node(dir_b.path(), &database, &key).await;
    let b = TestClient::new(&base_b);
    b.wait_ready().await;

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

    // kill -9 of A: what it acknowledged is on B, and B keeps serving.
    node_a.kill().await.expect("kill");
    b.login("acme", "first@acme.example", PASSWORD).await;
    let (_node_a, base_a) = node(dir_a.path(), &database, &key).await;
    let a = TestClient::new(&base_a);
    a.wait_ready().await;
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
