//! `spawn_app()`: the server on 127.0.0.1:0 with a fresh data directory, and
//! [`TestClient`], a typed client that knows only a base URL, so the same calls
//! work against the in-process server (`TestApp` derefs to its client) and a
//! spawned `latch` binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use latch_server::app::RunningServer;
use latch_server::clock::{Clock, ManualClock, SystemClock};
use latch_server::config::{ConfigArgs, Settings};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

pub const OPERATOR_TOKEN: &str = "test-operator-token-0123456789";
pub const PASSWORD: &str = "correct horse battery";

/// The environment a test server resolves its settings from: the operator
/// token only (never the test process's own `LATCH_*` variables).
pub fn operator_environment() -> latch_server::config::Environment {
    [("LATCH_OPERATOR_TOKEN".to_owned(), OPERATOR_TOKEN.to_owned())].into()
}

/// A user as the API shows it.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    pub roles: Vec<String>,
    pub email_verified: bool,
    pub disabled: bool,
    pub mfa_enabled: bool,
    pub created_at: String,
}

/// What register, login and refresh answer.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tokens {
    #[serde(rename = "access_token")]
    pub access: String,
    #[serde(rename = "refresh_token")]
    pub refresh: String,
    pub token_type: String,
    pub expires_in: u64,
    pub scope: String,
    pub user: User,
}

/// What the OAuth token endpoint answers (RFC 6749 §5.1: exactly these members).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthTokens {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    pub refresh_token: String,
    pub scope: String,
}

/// A fresh database on the test cluster, dropped afterwards.
pub struct TestDatabase {
    admin: String,
    name: String,
    pub url: String,
}

impl TestDatabase {
    pub fn new() -> TestDatabase {
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

/// Whether the in-process test servers run on PostgreSQL
/// (`LATCH_TEST_STORE=postgres`; the test command runs the suite once on
/// each store). A test of something only sled has returns early there.
pub fn on_postgres() -> bool {
    std::env::var("LATCH_TEST_STORE").is_ok_and(|store| store == "postgres")
}

/// A client of one latch server at `base`.
#[derive(Clone)]
pub struct TestClient {
    pub base: String,
    pub http: reqwest::Client,
}

pub struct TestApp {
    client: TestClient,
    pub server: Option<RunningServer>,
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    clock: Arc<dyn Clock>,
    configure: Configure,
    /// The test's own database when on PostgreSQL; dropped with the app.
    database: Option<Arc<TestDatabase>>,
}

/// Changes a test makes to the server's settings (kept for restarts).
type Configure = Arc<dyn Fn(&mut Settings) + Send + Sync>;

/// Starts the server with the system clock. Every test's requests come from
/// 127.0.0.1, so the per-IP limit on auth endpoints is off in every test
/// server unless `configure` sets it ([`spawn_app_with_rate_limit`]).
pub async fn spawn_app() -> TestApp {
    spawn_app_with(Arc::new(SystemClock), |_| {}).await
}

/// Starts the server with a clock the test moves.
pub async fn spawn_app_at(clock: Arc<ManualClock>) -> TestApp {
    spawn_app_with(clock, |_| {}).await
}

/// Starts the server with this many auth requests per minute per IP, on a
/// clock that stands still (now): no bucket refills during the test, however
/// slowly a busy machine runs it.
pub async fn spawn_app_with_rate_limit(per_minute: u32) -> TestApp {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    spawn_app_with(clock, move |settings| settings.auth_rate_limit_per_minute = per_minute).await
}

/// Starts the server with `clock` and settings changed by `configure`.
pub async fn spawn_app_with(
    clock: Arc<dyn Clock>,
    configure: impl Fn(&mut Settings) + Send + Sync + 'static,
) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let configure: Configure = Arc::new(configure);
    let database = match on_postgres() {
        true => Some(Arc::new(tokio::task::spawn_blocking(TestDatabase::new).await.expect("a test database"))),
        false => None,
    };
    let store = database.as_ref().map(|d| d.url.as_str());
    let server = start(&dir.path().join("data"), store, "127.0.0.1:0", clock.clone(), &configure).await;
    let (addr, base) = (server.addr, server.public_url.clone());
    TestApp { client: TestClient::new(&base), server: Some(server), dir, addr, clock, configure, database }
}

async fn start(
    data_dir: &std::path::Path,
    store: Option<&str>,
    listen: &str,
    clock: Arc<dyn Clock>,
    configure: &Configure,
) -> RunningServer {
    let args = ConfigArgs {
        common: latch_server::config::CommonArgs {
            data_dir: Some(data_dir.to_owned()),
            store: store.map(str::to_owned),
            ..latch_server::config::CommonArgs::default()
        },
        listen: Some(listen.into()),
        ..ConfigArgs::default()
    };
    let mut settings = Settings::resolve(&args, &operator_environment()).expect("settings");
    settings.auth_rate_limit_per_minute = 0;
    configure(&mut settings);
    latch_server::app::start(&settings, clock).await.expect("server starts")
}

impl TestApp {
    /// The domain services of the running server (to reach what has no endpoint yet).
    pub fn latch(&self) -> &Arc<latch_server::domain::Latch> {
        self.server.as_ref().expect("running").latch()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Where the CLI finds this app's store: its data directory (the master
    /// key lives beside it) and, on PostgreSQL, the database.
    pub fn store_args(&self) -> Vec<String> {
        let mut args = vec!["--data-dir".to_owned(), self.data_dir().display().to_string()];
        if let Some(database) = &self.database {
            args.extend(["--store".to_owned(), database.url.clone()]);
        }
        args
    }

    /// The database URL when on PostgreSQL.
    pub fn store_url(&self) -> Option<String> {
        self.database.as_ref().map(|database| database.url.clone())
    }

    /// Stops the server if it runs (flushing the store) and starts it again
    /// on the same address and data directory.
    pub async fn restart(&mut self) {
        self.restart_on(&self.data_dir()).await;
    }

    /// Stops the server if it runs and starts one on `data_dir` at the same
    /// address (so the same issuers).
    pub async fn restart_on(&mut self, data_dir: &std::path::Path) {
        self.stop().await;
        let store = self.database.as_ref().map(|d| d.url.as_str());
        let server = start(data_dir, store, &self.addr.to_string(), self.clock.clone(), &self.configure).await;
        assert_eq!(server.public_url, self.client.base, "same address, same issuer");
        self.server = Some(server);
    }

    /// Stops the server if it runs, flushing the store and releasing the data directory.
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("clean shutdown");
        }
    }
}

impl std::ops::Deref for TestApp {
    type Target = TestClient;

    fn deref(&self) -> &TestClient {
        &self.client
    }
}

impl TestClient {
    /// A client of the server at `base` (`http://127.0.0.1:port`).
    pub fn new(base: &str) -> TestClient {
        TestClient { base: base.trim_end_matches('/').to_owned(), http: reqwest::Client::new() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Any request, with a bearer token and an optional JSON body.
    pub async fn send(&self, method: reqwest::Method, path: &str, token: &str, body: Option<&Value>) -> Response {
        let request = self.http.request(method, self.url(path)).bearer_auth(token);
        let request = match body {
            Some(body) => request.json(body),
            None => request,
        };
        request.send().await.expect("request")
    }

    /// Registers a user, makes them an admin of the tenant with the operator
    /// token, and logs them in again; returns their tokens (roles admin, user).
    pub async fn admin_of(&self, tenant: &str, email: &str) -> Tokens {
        let registered = self.register(tenant, email).await;
        let path = format!("/t/{tenant}/admin/users/{}/roles", registered.user.id);
        let roles = json!({"roles": ["admin", "user"]});
        let promoted = self.send(reqwest::Method::PUT, &path, OPERATOR_TOKEN, Some(&roles)).await;
        assert_eq!(promoted.status(), StatusCode::OK, "operator promotes {email}");
        self.login(tenant, email, PASSWORD).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.http.post(self.url(path)).json(body).send().await.expect("request")
    }

    pub async fn get_with(&self, path: &str, token: &str) -> Response {
        self.http.get(self.url(path)).bearer_auth(token).send().await.expect("request")
    }

    /// Registers `email` with [`PASSWORD`]; the answer must be 201 with tokens.
    pub async fn register(&self, tenant: &str, email: &str) -> Tokens {
        let response =
            self.post_json(&format!("/t/{tenant}/auth/register"), &json!({"email": email, "password": PASSWORD})).await;
        tokens(response, StatusCode::CREATED, &format!("register {email} in {tenant}")).await
    }

    /// Logs in; the answer must be 200 with tokens.
    pub async fn login(&self, tenant: &str, email: &str, password: &str) -> Tokens {
        tokens(self.try_login(tenant, email, password).await, StatusCode::OK, &format!("login {email}")).await
    }

    /// A login attempt, whatever it answers.
    pub async fn try_login(&self, tenant: &str, email: &str, password: &str) -> Response {
        self.post_json(&format!("/t/{tenant}/auth/login"), &json!({"email": email, "password": password})).await
    }

    /// Refreshes; the answer must be 200 with tokens.
    pub async fn refresh(&self, tenant: &str, refresh_token: &str) -> Tokens {
        tokens(self.try_refresh(tenant, refresh_token).await, StatusCode::OK, "refresh").await
    }

    /// A refresh attempt, whatever it answers.
    pub async fn try_refresh(&self, tenant: &str, refresh_token: &str) -> Response {
        self.post_json(&format!("/t/{tenant}/auth/refresh"), &json!({"refresh_token": refresh_token})).await
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Response {
        self.http.post(self.url(path)).form(form).send().await.expect("request")
    }

    pub async fn operator_post(&self, path: &str, body: &Value) -> Response {
        self.http.post(self.url(path)).bearer_auth(OPERATOR_TOKEN).json(body).send().await.expect("request")
    }

    /// The tenant's newest audit events (up to 200), through the admin API.
    pub async fn events(&self, tenant: &str) -> Vec<Value> {
        let response = self.get_with(&format!("/t/{tenant}/admin/events?limit=200"), OPERATOR_TOKEN).await;
        assert_eq!(response.status(), StatusCode::OK, "events of {tenant}");
        let page: Value = response.json().await.expect("json");
        page["events"].as_array().expect("events").clone()
    }

    pub async fn jwks(&self, tenant: &str) -> Value {
        let response = self.http.get(self.url(&format!("/t/{tenant}/.well-known/jwks.json"))).send().await.expect("r");
        response.json().await.expect("json")
    }

    /// Waits until `/readyz` answers 200 (at most 30 s).
    pub async fn wait_ready(&self) {
        use std::time::{Duration, Instant};
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = self.http.get(self.url("/readyz")).send().await
                && response.status() == StatusCode::OK
            {
                return;
            }
            assert!(Instant::now() < deadline, "server at {} not ready in time", self.base);
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn create_tenant(&self, body: Value) -> Value {
        let response = self
            .http
            .post(self.url("/admin/tenants"))
            .bearer_auth(OPERATOR_TOKEN)
            .json(&body)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::CREATED, "create tenant {body}");
        response.json().await.expect("json")
    }
}

/// The tokens in `response`, which must have `status`.
pub async fn tokens(response: Response, status: StatusCode, what: &str) -> Tokens {
    let actual = response.status();
    let body = response.text().await.expect("body");
    assert_eq!(actual, status, "{what}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{what}: not tokens ({e}): {body}"))
}

/// The `latch` binary built by the test command (`cargo build -p latch-server` runs first);
/// `LATCH_BIN` overrides it.
pub fn latch_binary() -> PathBuf {
    if let Ok(path) = std::env::var("LATCH_BIN") {
        return path.into();
    }
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target dir").to_owned();
    let binary = target.join("debug").join("latch");
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build -p latch-server` first (the test command does)",
        binary.display()
    );
    binary
}

/// Runs the `latch` binary with `args` (and `stdin` piped in), the test's
/// operator token in its environment; returns (success, stdout, stderr).
pub async fn run_latch<I, S>(args: I, stdin: &str) -> (bool, String, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    use tokio::io::AsyncWriteExt as _;
    let mut child = tokio::process::Command::new(latch_binary())
        .args(args)
        .env("LATCH_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .env("LATCH_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("latch runs");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).await.expect("write stdin");
    drop(input);
    let output = child.wait_with_output().await.expect("latch exits");
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    (output.status.success(), text(output.stdout), text(output.stderr))
}

/// Runs a Node script that prints one JSON line, and returns that line.
pub async fn node_json<I, S>(script: &std::path::Path, args: I) -> Value
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let output = tokio::process::Command::new("node").arg(script).args(args).output().await.expect("node runs");
    assert!(output.status.success(), "node failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("the script prints JSON")
}

/// The `kid` in a token's header.
pub fn kid_of(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().expect("header");
    let header: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).expect("b64"))
            .expect("json");
    header["kid"].as_str().expect("kid").to_owned()
}

/// A token's claims, decoded without verification.
pub fn claims_of(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("b64"))
        .expect("json")
}

/// Asserts an RFC 9457 problem with this status and code; returns the body.
pub async fn assert_problem(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status, "status for expected {code}");
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(content_type.starts_with("application/problem+json"), "content type {content_type}");
    let body: Value = response.json().await.expect("problem json");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status.as_u16(), "{body}");
    for member in ["type", "title", "detail"] {
        assert!(body[member].is_string(), "problem lacks {member}: {body}");
    }
    body
}

/// Starts the built `latch` binary on a port the kernel picks, with its data
/// in `dir/data` and the test's operator token; killed when dropped. Returns
/// the child and its base URL.
pub async fn spawn_binary(dir: &std::path::Path) -> (tokio::process::Child, String) {
    spawn_serving(tokio::process::Command::new(latch_binary()), dir).await
}

/// [`spawn_binary`] with the process's file-creation mask set to `umask`.
pub async fn spawn_binary_with_umask(dir: &std::path::Path, umask: &str) -> (tokio::process::Child, String) {
    let mut shell = tokio::process::Command::new("sh");
    shell.arg("-c").arg(format!(r#"umask {umask}; exec "$0" "$@""#)).arg(latch_binary());
    spawn_serving(shell, dir).await
}

/// Runs `command` (the binary, or something that execs it) with `serve`'s arguments.
async fn spawn_serving(command: tokio::process::Command, dir: &std::path::Path) -> (tokio::process::Child, String) {
    let mut child = serving(command, dir, &[]).spawn().expect("latch binary starts");
    let base = banner_address(&mut child).await;
    (child, base)
}

/// `command` set up as `latch serve` on a port the kernel picks, with its
/// data in `dir/data`, the test's operator token and `args`: the banner on a
/// piped stdout, the log dropped (callers may pipe it), killed when dropped.
fn serving(
    mut command: tokio::process::Command,
    dir: &std::path::Path,
    args: &[&std::ffi::OsStr],
) -> tokio::process::Command {
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .args(args)
        .env("LATCH_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .env("LATCH_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    command
}

/// The built binary as `latch serve` with `args` (see [`serving`]), not started yet.
pub fn serve_command(dir: &std::path::Path, args: &[&std::ffi::OsStr]) -> tokio::process::Command {
    serving(tokio::process::Command::new(latch_binary()), dir, args)
}

/// The banner of a `latch serve` child started with piped stdout, read up to
/// the line `last` accepts; the rest is drained in the background, so it
/// never meets a closed pipe.
pub async fn banner_until(child: &mut tokio::process::Child, last: impl Fn(&str) -> bool) -> Vec<String> {
    use tokio::io::{AsyncBufReadExt as _, BufReader};
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let mut banner = Vec::new();
    loop {
        let line = lines.next_line().await.expect("read the banner").expect("the banner ends early");
        let done = last(&line);
        banner.push(line);
        if done {
            break;
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    banner
}

/// The base URL a `latch serve` child started with piped stdout listens on.
/// The kernel picks the port; the banner's first line names the bound address.
pub async fn banner_address(child: &mut tokio::process::Child) -> String {
    let first = banner_until(child, |_| true).await.remove(0);
    format!("http://{}", listening_address(&first))
}

/// The address in the banner's first line (`latch 0.1.0 listening on ADDR`).
pub fn listening_address(first: &str) -> String {
    let addr = first.rsplit(' ').next().expect("an address").to_owned();
    assert!(addr.parse::<SocketAddr>().is_ok(), "banner line: {first}");
    addr
}

/// Waits until `base/readyz` answers 200 (at most 30 s).
pub async fn wait_ready(http: &reqwest::Client, base: &str) {
    TestClient { base: base.to_owned(), http: http.clone() }.wait_ready().await;
}

/// The `.eml` files in the app's outbox.
pub fn outbox(app: &TestApp) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(app.data_dir().join("outbox")) else { return Vec::new() };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .map(|e| std::fs::read_to_string(e.path()).expect("readable mail"))
        .collect()
}

/// Waits until the outbox holds `count` mails.
pub async fn wait_for_mail(app: &TestApp, count: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let mails = outbox(app);
        if mails.len() >= count {
            return mails;
        }
        assert!(std::time::Instant::now() < deadline, "{count} mail(s) expected in the outbox, found {}", mails.len());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The token of the link in a mail.
pub fn token_in(mail: &str) -> String {
    let start = mail.find("token=").expect("a link with a token") + "token=".len();
    mail[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect()
}
