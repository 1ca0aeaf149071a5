//! Prometheus metrics on `--metrics-listen`: the exposition passes
//! `promtool check metrics`, and a real Prometheus scrapes latch and answers
//! a query with latch's counters.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::support::*;

/// `latch serve` with metrics on a free port; returns the child, the API's
/// base URL and the metrics URL, both read from the banner.
async fn serve_with_metrics(dir: &Path) -> (tokio::process::Child, String, String) {
    let mut child =
        serve_command(dir, &["--metrics-listen".as_ref(), "127.0.0.1:0".as_ref()]).spawn().expect("latch starts");
    const METRICS: &str = "metrics        : ";
    let banner = banner_until(&mut child, |line| line.trim().starts_with(METRICS)).await;
    let base = format!("http://{}", listening_address(&banner[0]));
    let metrics = banner.last().and_then(|line| line.trim().strip_prefix(METRICS)).expect("the metrics URL");
    (child, base, metrics.to_owned())
}

/// The value of the sample `name{labels}` in a text exposition (labels in
/// any order), if present.
fn sample(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    exposition.lines().filter(|line| !line.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
        let wanted = metric == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        if wanted { value.parse().ok() } else { None }
    })
}

fn tool(name: &str) -> std::path::PathBuf {
    let path = std::path::PathBuf::from("/usr/bin").join(name);
    assert!(path.exists(), "{name} is missing: the test command (./test.sh) installs Debian's prometheus");
    path
}

#[tokio::test]
async fn metrics_count_logins_tokens_and_requests_and_pass_promtool() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_child, base, metrics_url) = serve_with_metrics(dir.path()).await;
    let client = TestClient::new(&base);
    client.wait_ready().await;
    client.register("demo", "metered@example.com").await;
    client.login("demo", "metered@example.com", PASSWORD).await;
    assert_eq!(client.try_login("demo", "metered@example.com", "a wrong password").await.status(), 401);

    // Not on the API's address: metrics are for the operator's network only.
    assert_eq!(client.http.get(client.url("/metrics")).send().await.expect("request").status(), StatusCode::NOT_FOUND);
    let exposition = client.http.get(&metrics_url).send().await.expect("scrape").text().await.expect("text");

    // A registration signs the new user in: two successful logins.
    assert_eq!(sample(&exposition, "latch_logins_total", &[("tenant", "demo"), ("result", "ok")]), Some(2.0));
    assert_eq!(sample(&exposition, "latch_logins_total", &[("tenant", "demo"), ("result", "failed")]), Some(1.0));
    for grant in ["register", "password"] {
        let issued = sample(&exposition, "latch_tokens_issued_total", &[("tenant", "demo"), ("grant", grant)]);
        assert_eq!(issued, Some(1.0), "{grant}");
    }
    let login_route = [("route", "/t/{tenant}/auth/login"), ("method", "POST")];
    let ok = sample(&exposition, "latch_http_requests_total", &[login_route[0], login_route[1], ("status", "200")]);
    let refused =
        sample(&exposition, "latch_http_requests_total", &[login_route[0], login_route[1], ("status", "401")]);
    assert_eq!((ok, refused), (Some(1.0), Some(1.0)), "requests by route template and status");
    let latency = sample(&exposition, "latch_http_request_duration_seconds_count", &[login_route[0]]);
    assert_eq!(latency, Some(2.0), "a latency histogram per route");
    assert!(sample(&exposition, "latch_store_commit_batch_size_count", &[]).is_some_and(|n| n >= 1.0));
    assert!(sample(&exposition, "latch_store_flush_seconds_bucket", &[("le", "+Inf")]).is_some_and(|n| n >= 1.0));
    assert!(sample(&exposition, "latch_password_hash_wait_seconds_count", &[]).is_some_and(|n| n >= 3.0));
    assert!(sample(&exposition, "latch_store_size_bytes", &[]).is_some_and(|bytes| bytes > 0.0));
    assert!(sample(&exposition, "process_resident_memory_bytes", &[]).is_some_and(|bytes| bytes > 0.0));
    for name in ["latch_open_connections", "latch_password_hash_queue_depth"] {
        assert!(sample(&exposition, name, &[]).is_some(), "{name}");
    }
    assert!(!exposition.contains("metered@example.com"), "no user data in labels");

    let mut check = tokio::process::Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs");
    {
        use tokio::io::AsyncWriteExt as _;
        let mut input = check.stdin.take().expect("stdin");
        input.write_all(exposition.as_bytes()).await.expect("write");
    }
    let checked = check.wait_with_output().await.expect("promtool exits");
    let report = format!("{}{}", String::from_utf8_lossy(&checked.stdout), String::from_utf8_lossy(&checked.stderr));
    assert!(checked.status.success() && report.trim().is_empty(), "promtool check metrics: {report}");
}

#[tokio::test]
async fn prometheus_scrapes_latch_and_answers_with_its_counter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_child, base, metrics_url) = serve_with_metrics(dir.path()).await;
    let client = TestClient::new(&base);
    client.wait_ready().await;
    client.register("demo", "scraped@example.com").await;
    client.login("demo", "scraped@example.com", PASSWORD).await;

    let target = metrics_url.trim_start_matches("http://").trim_end_matches("/metrics");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: latch\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .expect("write the config");
    let mut prometheus = tokio::process::Command::new(tool("prometheus"))
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
        .arg("--web.listen-address=127.0.0.1:0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("prometheus starts");
    // Prometheus logs the address it bound: `msg="Listening on" address=127.0.0.1:PORT`.
    let mut log = BufReader::new(prometheus.stderr.take().expect("stderr")).lines();
    let address = loop {
        let line = log.next_line().await.expect("read").expect("prometheus logs where it listens");
        if line.contains("msg=\"Listening on\"") {
            break line.rsplit("address=").next().expect("address").trim().to_owned();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });

    // Scrapes every second; wait (at most 60 s) until the query sees the login.
    let query = format!("http://{address}/api/v1/query");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer: Option<Value> = match client
            .http
            .get(&query)
            .query(&[("query", "latch_logins_total{tenant=\"demo\",result=\"ok\",job=\"latch\"}")])
            .send()
            .await
        {
            Ok(response) => response.json().await.ok(),
            Err(_) => None,
        };
        let value = answer.as_ref().and_then(|a| a["data"]["result"][0]["value"][1].as_str().map(str::to_owned));
        // The registration's sign-in and the login.
        if value.as_deref() == Some("2") {
            break;
        }
        assert!(Instant::now() < deadline, "Prometheus never saw the login: {answer:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let up: Value = client
        .http
        .get(&query)
        .query(&[("query", "up{job=\"latch\"}")])
        .send()
        .await
        .expect("query")
        .json()
        .await
        .expect("json");
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
}
