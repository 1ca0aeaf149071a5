//! Prometheus metrics, served at `/metrics` on `--metrics-listen` (off by
//! default).
//!
//! The code records through the `metrics` facade everywhere; until
//! [`install`] puts the Prometheus recorder in place (only when a metrics
//! address is configured) every call is a no-op, so the hot paths pay
//! nothing when metrics are off. Labels are bounded: route *templates*, not
//! paths; tenants, which the operator creates; fixed sets of grants, limits
//! and results. Nothing user-controlled becomes a label.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use poem::http::StatusCode;

/// Buckets for every latency histogram, in seconds: from half a millisecond
/// (a cached token check) to ten seconds (a hash behind a long queue).
const SECONDS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Buckets for the group commit's batch size (writes made durable by one flush).
const BATCH: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// The process's recorder: a recorder is global, so it is installed once.
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Whether a recorder is installed (callers skip preparing labels otherwise).
pub fn enabled() -> bool {
    HANDLE.get().is_some()
}

/// Installs the Prometheus recorder (once per process) and returns its handle.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets(SECONDS)?
        .set_buckets_for_metric(Matcher::Full("latch_store_commit_batch_size".into()), BATCH)?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)?;
    describe();
    metrics_process::Collector::default().describe();
    Ok(HANDLE.get_or_init(|| handle).clone())
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!("latch_http_requests_total", "HTTP requests answered, by method, route template and status");
    describe_histogram!("latch_http_request_duration_seconds", Unit::Seconds, "HTTP request latency by route template");
    describe_counter!("latch_logins_total", "Password logins by tenant and result (ok, failed)");
    describe_counter!("latch_lockouts_total", "Accounts locked after repeated failed logins, by tenant");
    describe_counter!("latch_refresh_reuse_detected_total", "Retired refresh tokens presented again, by tenant");
    describe_counter!("latch_audit_events_total", "Audit events recorded, by tenant and event");
    describe_counter!("latch_rate_limited_total", "Requests refused by the per-IP rate limit");
    describe_counter!("latch_tokens_issued_total", "Token responses issued, by tenant and grant");
    describe_gauge!("latch_password_hash_queue_depth", "Password hashes waiting for a hashing thread");
    describe_histogram!(
        "latch_password_hash_wait_seconds",
        Unit::Seconds,
        "Time a password hash waited for a hashing thread"
    );
    describe_histogram!("latch_store_flush_seconds", Unit::Seconds, "Duration of one group-commit flush");
    describe_histogram!("latch_store_commit_batch_size", "Writes made durable by one group-commit flush");
    describe_gauge!("latch_store_size_bytes", Unit::Bytes, "Size of the data directory on disk");
    describe_gauge!("latch_open_connections", "Open client connections");
}

/// One answered request.
pub fn http_request(method: &str, route: &str, status: StatusCode, latency: Duration) {
    let (method, route, status) = (method.to_owned(), route.to_owned(), status.as_u16().to_string());
    counter!("latch_http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    histogram!("latch_http_request_duration_seconds", "route" => route).record(latency);
}

/// An audit event: logins, lockouts and refresh reuse also have counters of their own.
pub fn audit_event(tenant: &str, event: &'static str) {
    let tenant = tenant.to_owned();
    match event {
        "login_succeeded" => counter!("latch_logins_total", "tenant" => tenant.clone(), "result" => "ok").increment(1),
        "login_failed" => counter!("latch_logins_total", "tenant" => tenant.clone(), "result" => "failed").increment(1),
        "lockout" => counter!("latch_lockouts_total", "tenant" => tenant.clone()).increment(1),
        "refresh_reuse_detected" => {
            counter!("latch_refresh_reuse_detected_total", "tenant" => tenant.clone()).increment(1)
        }
        _ => {}
    }
    counter!("latch_audit_events_total", "tenant" => tenant, "event" => event).increment(1);
}

/// A request refused by the per-IP rate limit.
pub fn rate_limited() {
    counter!("latch_rate_limited_total").increment(1);
}

/// A token response issued for `grant`.
pub fn tokens_issued(tenant: &str, grant: &'static str) {
    counter!("latch_tokens_issued_total", "tenant" => tenant.to_owned(), "grant" => grant).increment(1);
}

/// A password hash began waiting (`+1`) or stopped waiting (`-1`) for a thread.
pub fn hash_queue(change: f64) {
    gauge!("latch_password_hash_queue_depth").increment(change);
}

/// How long a password hash waited for a thread.
pub fn hash_wait(waited: Duration) {
    histogram!("latch_password_hash_wait_seconds").record(waited);
}

/// One group-commit flush and the writes it made durable.
pub fn store_flush(took: Duration, batch: usize) {
    histogram!("latch_store_flush_seconds").record(took);
    histogram!("latch_store_commit_batch_size").record(batch as f64);
}

/// A client connection opened; the count drops when the guard does.
pub fn connection_opened() -> OpenConnection {
    gauge!("latch_open_connections").increment(1.0);
    OpenConnection(())
}

/// Counts one open connection while it lives.
pub struct OpenConnection(());

impl Drop for OpenConnection {
    fn drop(&mut self) {
        gauge!("latch_open_connections").decrement(1.0);
    }
}

/// Bytes under `dir`, counting files only (sled's data, its blobs, the outbox).
fn directory_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => directory_size(&entry.path()),
            Ok(kind) if kind.is_file() => entry.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// The `/metrics` endpoint: the values sampled at scrape time (process,
/// store size) are refreshed, then everything is rendered in the text format.
pub fn endpoint(handle: PrometheusHandle, data_dir: PathBuf) -> impl poem::Endpoint<Output = poem::Response> {
    use poem::EndpointExt as _;
    let collector = std::sync::Arc::new(metrics_process::Collector::default());
    let render = poem::endpoint::make(move |_req| {
        let (handle, data_dir, collector) = (handle.clone(), data_dir.clone(), collector.clone());
        async move {
            let text = tokio::task::spawn_blocking(move || {
                collector.collect();
                gauge!("latch_store_size_bytes").set(directory_size(&data_dir) as f64);
                handle.run_upkeep();
                handle.render()
            })
            .await
            .unwrap_or_default();
            poem::Response::builder().content_type("text/plain; version=0.0.4; charset=utf-8").body(text)
        }
    });
    poem::Route::new().at("/metrics", poem::get(render)).map_to_response()
}
