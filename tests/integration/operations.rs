//! Running latch in production: request logs, the CLI's manners, `latch init`.

use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

/// `latch serve` on a free port with `args`, its stderr (the log) collected
/// line by line; returns the child, its base URL and the lines so far.
async fn serve_logging(
    dir: &std::path::Path,
    args: &[&str],
) -> (tokio::process::Child, String, Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncBufReadExt as _, BufReader};
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|arg| arg.as_ref()).collect();
    let mut child = serve_command(dir, &args)
        .env("LATCH_AUTH_RATE_LIMIT_PER_MINUTE", "0")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("latch starts");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
    let collected = lines.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = stderr.next_line().await {
            collected.lock().expect("lock").push(line);
        }
    });
    let base = banner_address(&mut child).await;
    (child, base, lines)
}

/// Waits (at most 30 s) until a log line satisfies `found`, and returns it.
async fn log_line(lines: &Arc<Mutex<Vec<String>>>, found: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(line) = lines.lock().expect("lock").iter().find(|line| found(line)) {
            return line.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no such log line in {:?}", lines.lock().expect("lock"));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn every_request_has_one_json_log_line_with_its_id_route_template_and_no_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_child, base, lines) = serve_logging(dir.path(), &["--log", "info", "--log-format", "json"]).await;
    let client = TestClient::new(&base);
    client.wait_ready().await;
    let password = PASSWORD;
    let tokens = client.register("demo", "logged@example.com").await;

    // A request id the client chose is echoed and logged.
    let me = client
        .http
        .get(client.url(&format!("/t/demo/users/{}?access_token={}", tokens.user.id, tokens.access)))
        .bearer_auth(&tokens.access)
        .header("x-request-id", "trace-42.a_b:c")
        .send()
        .await
        .expect("request");
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(me.headers()["x-request-id"], "trace-42.a_b:c");
    let line = log_line(&lines, |line| line.contains("trace-42.a_b:c") && line.contains("\"status\"")).await;
    let logged: Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(logged["request_id"], "trace-42.a_b:c");
    assert_eq!(logged["method"], "GET");
    assert_eq!(logged["route"], "/t/{tenant}/users/{user}", "the template, not the path: {line}");
    assert_eq!(logged["tenant"], "demo");
    assert_eq!(logged["status"], 200);
    assert_eq!(logged["client"], "127.0.0.1");
    assert!(logged["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{line}");

    // An unusable id is replaced by a generated one, which is echoed.
    let odd = client
        .http
        .get(client.url("/healthz"))
        .header("x-request-id", "has spaces and \"quotes\"")
        .send()
        .await
        .expect("request");
    let generated = odd.headers()["x-request-id"].to_str().expect("text").to_owned();
    assert!(generated.len() == 36 && generated.chars().all(|c| c.is_ascii_hexdigit() || c == '-'), "{generated}");
    log_line(&lines, |line| line.contains(&generated) && line.contains("/healthz")).await;

    // A failed login: logged with its status, without the password or email.
    let wrong = client.try_login("demo", "logged@example.com", "not the password at all").await;
    let id = wrong.headers()["x-request-id"].to_str().expect("text").to_owned();
    let line = log_line(&lines, |line| line.contains(&id) && line.contains("\"status\"")).await;
    assert!(line.contains("\"status\":401") && line.contains("/t/{tenant}/auth/login"), "{line}");

    let everything = lines.lock().expect("lock").join("\n");
    for secret in [password, "not the password at all", tokens.access.as_str(), tokens.refresh.as_str(), OPERATOR_TOKEN]
    {
        assert!(!everything.contains(secret), "a secret reached the log");
    }
    assert!(!everything.contains("access_token="), "a query string reached the log");
    assert!(!everything.contains('\u{1b}'), "colour codes in a log that is not a terminal");
}

#[tokio::test]
async fn text_logs_to_a_file_have_no_colour_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_child, base, lines) = serve_logging(dir.path(), &["--log", "info"]).await;
    let client = TestClient::new(&base);
    client.wait_ready().await;
    let line = log_line(&lines, |line| line.contains("/readyz")).await;
    assert!(line.contains("request") && !line.contains('\u{1b}'), "{line:?}");
}

#[tokio::test]
async fn an_invalid_log_filter_or_listen_address_refuses_the_start_and_says_why() {
    let (ok, _, stderr) = run_latch(["serve", "--log", "info,[[nonsense"], "").await;
    assert!(!ok && stderr.contains("is not a log filter"), "{stderr}");
    let (ok, _, stderr) = run_latch(["serve", "--listen", "8080"], "").await;
    assert!(!ok && stderr.contains("did you mean 127.0.0.1:8080"), "{stderr}");
}

#[tokio::test]
async fn a_method_a_route_does_not_answer_gets_405_with_allow() {
    let app = spawn_app().await;
    let response = app.http.delete(app.url("/t/demo/auth/login")).send().await.expect("request");
    let allow = response.headers().get("allow").map(|v| v.to_str().expect("text").to_owned());
    assert_problem(response, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    assert_eq!(allow.as_deref(), Some("POST"));
    let response = app.http.put(app.url("/t/demo/users/me")).send().await.expect("request");
    let allow = response.headers()["allow"].to_str().expect("text").to_owned();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    for method in ["GET", "HEAD", "PATCH"] {
        assert!(allow.split(", ").any(|m| m == method), "{allow}");
    }
}

#[tokio::test]
async fn cli_commands_print_results_without_log_lines_unless_verbose() {
    let mut app = spawn_app().await;
    app.stop().await;
    let store = app.store_args();
    let (ok, stdout, stderr) =
        run_latch(["tenant", "list"].into_iter().map(String::from).chain(store.clone()), "").await;
    assert!(ok && stdout.contains("demo"), "{stderr}");
    assert_eq!(stderr, "", "no log lines");
    let verbose = ["tenant", "list", "-v", "--log", "info"].into_iter().map(String::from).chain(store);
    let (ok, _, stderr) = run_latch(verbose, "").await;
    assert!(ok && stderr.contains("mail configured"), "-v shows the log: {stderr}");
}

#[tokio::test]
async fn server_flags_are_only_under_serve_and_choices_are_listed() {
    let (_, tenant_help, _) = run_latch(["tenant", "create", "--help"], "").await;
    assert!(tenant_help.contains("--data-dir"), "{tenant_help}");
    for server_flag in ["--listen", "--smtp-host", "--trusted-proxy", "--max-connections"] {
        assert!(!tenant_help.contains(server_flag), "{server_flag} in `tenant create --help`");
    }
    let (_, serve_help, _) = run_latch(["serve", "--help"], "").await;
    for flag in ["--listen", "--smtp-host", "--tls-cert", "--metrics-listen", "--data-dir"] {
        assert!(serve_help.contains(flag), "{flag} missing from `serve --help`");
    }
    for refused in ["PS256", "HS256"] {
        let (ok, _, stderr) = run_latch(["tenant", "create", "acme", "--algorithm", refused], "").await;
        assert!(!ok && stderr.contains("[possible values: EdDSA, ES256, RS256]"), "{stderr}");
    }
    let (ok, _, stderr) = run_latch(["tenant", "list", "--listen", "127.0.0.1:1"], "").await;
    assert!(!ok && stderr.contains("--listen"), "a server flag is refused outside serve: {stderr}");
}

#[tokio::test]
async fn latch_init_sets_up_a_data_directory_with_its_first_tenant_and_prints_the_token_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data").display().to_string();
    let run = |args: Vec<String>| async move {
        let output = tokio::process::Command::new(latch_binary())
            .args(args)
            .env_remove("LATCH_OPERATOR_TOKEN")
            .output()
            .await
            .expect("latch runs");
        let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
        (output.status.success(), text(output.stdout), text(output.stderr))
    };
    let init = |tenant: &str| {
        ["init", tenant, "--name", "Acme Inc", "--algorithm", "ES256", "--data-dir", &data].map(String::from).to_vec()
    };
    let (ok, stdout, stderr) = run(init("acme")).await;
    assert!(ok, "{stderr}");
    assert_eq!(stderr, "", "no log lines");
    let token = stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("operator token : "))
        .expect("the operator token is printed")
        .to_owned();
    assert!(token.starts_with("latch_op_"), "{stdout}");
    assert!(stdout.contains("acme (ES256)"), "{stdout}");
    assert!(dir.path().join("latch-master.key").exists(), "the master key beside the data");

    // Run again: refused, nothing changed, no new token.
    let (ok, stdout, stderr) = run(init("other")).await;
    assert!(!ok && stderr.contains("already holds a latch store") && !stdout.contains("latch_op_"), "{stderr}");

    // The server starts on it: the printed token is the operator's, the
    // tenant exists with its name and algorithm, and no demo tenant was made.
    let mut child = tokio::process::Command::new(latch_binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", &data])
        .env_remove("LATCH_OPERATOR_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("latch starts");
    let base = banner_address(&mut child).await;
    let client = TestClient::new(&base);
    client.wait_ready().await;
    let tenants: Value = client
        .http
        .get(client.url("/admin/tenants"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let list = tenants["tenants"].as_array().expect("tenants");
    let ids: Vec<&str> = list.iter().filter_map(|t| t["id"].as_str()).collect();
    assert_eq!(ids, ["acme"], "{tenants}");
    assert_eq!(list[0]["algorithm"], "ES256");
    assert_eq!(list[0]["name"], json!("Acme Inc"));
}
