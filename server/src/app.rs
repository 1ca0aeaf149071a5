//! Start-up, the running server, and shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use poem::EndpointExt as _;
use secrecy::{ExposeSecret, SecretString};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::AuthRateLimit;
use crate::clock::Clock;
use crate::config::{Settings, StoreLocation};
use crate::crypto::{MasterKey, random_token, token_hash};
use crate::domain::{Latch, NewTenant, Operator, PasswordHasher, Services, TenantChanges, TenantId};
use crate::mail::Mailer;
use crate::serve::serve;
use crate::store::sled::SledStore;
use crate::store::{MetaStore, Reopen, Store, StoreHandle, StoreResult};

const OPERATOR_TOKEN_HASH: &str = "operator_token_sha256";
const MASTER_KEY_CHECK: &str = "master_key_check";
const INITIALIZED_AT: &str = "initialized_at";
const MASTER_KEY_CHECK_CONTEXT: &str = "latch/master-key-check/v1";
/// How often the server looks for tenants whose automatic key rotation is due.
const KEY_ROTATION_CHECK: Duration = Duration::from_secs(60);
/// How long in-flight requests may take to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What happened at start-up that the operator must be told once.
#[derive(Debug, Default)]
pub struct Startup {
    /// A newly generated operator token (first start without `LATCH_OPERATOR_TOKEN`).
    pub new_operator_token: Option<SecretString>,
    /// Whether the master key file was created.
    pub master_key_created: bool,
    /// Whether the `demo` tenant was created.
    pub demo_created: bool,
}

/// A server accepting connections.
pub struct RunningServer {
    /// The bound address.
    pub addr: SocketAddr,
    /// The public base URL.
    pub public_url: String,
    /// Where `/metrics` is served, when it is.
    pub metrics_addr: Option<SocketAddr>,
    /// What start-up did.
    pub startup: Startup,
    latch: Arc<Latch>,
    stop: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
    metrics: Option<JoinHandle<std::io::Result<()>>>,
    tls_watch: Option<JoinHandle<()>>,
    committer: JoinHandle<StoreResult<()>>,
    rotator: JoinHandle<()>,
}

/// The store and secrets, opened and checked, before anything listens.
struct Prepared {
    store: Arc<dyn Store>,
    /// Opens the store again after it failed (`StoreHandle::recovering`).
    reopen: Reopen,
    master: MasterKey,
    operator_token_hash: [u8; 32],
    first_start: bool,
    startup: Startup,
}

/// Checks everything that can refuse the start before anything is created on
/// disk: a master key that exists is read first, and a missing one is made
/// only for a brand-new data directory.
async fn prepare(settings: &Settings) -> anyhow::Result<Prepared> {
    let existing_key = MasterKey::load(&settings.master_key_file)?;
    let missing_key = |holder: String| {
        anyhow::anyhow!(
            "the master key file {} does not exist, but {holder} holds a store sealed with a master key; \
             set LATCH_MASTER_KEY_FILE (or --master-key-file) to that key's file",
            settings.master_key_file.display(),
        )
    };
    let (store, reopen): (Arc<dyn Store>, Reopen) = match &settings.store {
        StoreLocation::Sled => {
            if existing_key.is_none() && SledStore::holds_store(&settings.data_dir) {
                return Err(missing_key(settings.data_dir.display().to_string()));
            }
            let (data_dir, cache) = (settings.data_dir.clone(), settings.cache_mb << 20);
            let opening = data_dir.clone();
            let store = tokio::task::spawn_blocking(move || SledStore::open(&opening, cache)).await??;
            let reopen: Reopen = Arc::new(move || Ok(Arc::new(SledStore::open(&data_dir, cache)?) as Arc<dyn Store>));
            (Arc::new(store), reopen)
        }
        StoreLocation::Postgres(database) => {
            let connecting = database.clone();
            let (store, sealed) = tokio::task::spawn_blocking(move || {
                let store = connecting.connect()?;
                let sealed = store.get_meta(MASTER_KEY_CHECK)?.is_some();
                StoreResult::Ok((store, sealed))
            })
            .await??;
            if existing_key.is_none() && sealed {
                return Err(missing_key(format!("the database {}", database.shown())));
            }
            let database = database.clone();
            let reopen: Reopen = Arc::new(move || Ok(Arc::new(database.connect()?) as Arc<dyn Store>));
            (Arc::new(store), reopen)
        }
    };
    let (master, master_key_created) = match existing_key {
        Some(key) => (key, false),
        None => (MasterKey::create(&settings.master_key_file)?, true),
    };
    // Store calls block (PostgreSQL's client most of all): off the async workers.
    let (checking, owned_settings) = (store.clone(), settings.clone());
    let (master, first_start, operator_token_hash, startup) = tokio::task::spawn_blocking(move || {
        let mut startup = Startup { master_key_created, ..Startup::default() };
        let first_start = checking.get_meta(INITIALIZED_AT)?.is_none();
        check_master_key(checking.as_ref(), &master)?;
        let operator_token_hash = operator_token(checking.as_ref(), &owned_settings, &mut startup)?;
        anyhow::Ok((master, first_start, operator_token_hash, startup))
    })
    .await??;
    Ok(Prepared { store, reopen, master, operator_token_hash, first_start, startup })
}

/// The domain services over a prepared store; on first start, the demo tenant.
async fn assemble(
    prepared: Prepared,
    settings: &Settings,
    clock: Arc<dyn Clock>,
    public_url: String,
) -> anyhow::Result<(Arc<Latch>, JoinHandle<StoreResult<()>>, Startup)> {
    let Prepared { store, reopen, master, operator_token_hash, first_start, mut startup } = prepared;
    let (store, committer) = StoreHandle::recovering(store, reopen);
    let hasher = PasswordHasher::new(settings.hash_concurrency, crate::domain::default_params());
    let mailer = match &settings.smtp {
        Some(smtp) => Mailer::smtp(smtp, &settings.mail_from)?,
        None => Mailer::outbox(settings.data_dir.join("outbox"), &settings.mail_from)?,
    };
    tracing::info!(mail = %mailer.describe(), "mail configured");
    let services = Services {
        store: store.clone(),
        clock: clock.clone(),
        master,
        passwords: hasher,
        mailer,
        token_cache_entries: settings.token_cache_entries,
    };
    let latch = Arc::new(Latch::new(services, public_url, operator_token_hash));
    latch.watch_other_nodes().await?;
    if first_start {
        if settings.demo_tenant {
            let demo =
                NewTenant { id: TenantId::parse("demo")?, algorithm: None, settings: TenantChanges::name("Demo") };
            startup.demo_created = latch.ensure_tenant(&Operator::local(), demo).await?;
        }
        let now = clock.now().to_string();
        store.write(move |s| s.put_meta(INITIALIZED_AT, now.as_bytes())).await?;
    }
    Ok((latch, committer, startup))
}

/// A data directory opened for a command, without serving HTTP.
pub struct Opened {
    latch: Arc<Latch>,
    committer: JoinHandle<StoreResult<()>>,
}

impl Opened {
    /// The domain services.
    pub fn latch(&self) -> &Arc<Latch> {
        &self.latch
    }

    /// Waits for background work, flushes and closes the store.
    pub async fn close(self) -> anyhow::Result<()> {
        close_store(self.latch, self.committer).await
    }
}

/// Opens the data directory for a CLI command (the server must not be running on it).
pub async fn open(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Opened> {
    let public_url = settings.public_url.clone().unwrap_or_else(|| format!("http://{}", settings.listen));
    let (latch, committer, _) = assemble(prepare(settings).await?, settings, clock, public_url).await?;
    Ok(Opened { latch, committer })
}

/// `latch init`: creates a new data directory (refusing one that holds a
/// store), its master key and operator token, and `first` as its first
/// tenant; the `demo` tenant is not created, at init or at the first start.
pub async fn init(
    settings: &Settings,
    clock: Arc<dyn Clock>,
    first: NewTenant,
) -> anyhow::Result<(Startup, crate::store::TenantRecord, String)> {
    if settings.store == StoreLocation::Sled && SledStore::holds_store(&settings.data_dir) {
        anyhow::bail!(
            "{} already holds a latch store; `latch init` only sets up a new one",
            settings.data_dir.display()
        );
    }
    let settings = Settings { demo_tenant: false, ..settings.clone() };
    let public_url = settings.public_url.clone().unwrap_or_else(|| format!("http://{}", settings.listen));
    let prepared = prepare(&settings).await?;
    if !prepared.first_start {
        anyhow::bail!("the database already holds a latch store; `latch init` only sets up a new one");
    }
    let (latch, committer, startup) = assemble(prepared, &settings, clock, public_url).await?;
    let created = latch.create_tenant(&Operator::local(), first).await;
    let issuer = created.as_ref().map(|tenant| latch.issuer(&tenant.id)).unwrap_or_default();
    close_store(latch, committer).await?;
    Ok((startup, created?, issuer))
}

/// Opens the store, prepares secrets and the demo tenant, binds and starts serving.
pub async fn start(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<RunningServer> {
    // Bound first: an address in use or a bad `--listen` refuses the start
    // before the data directory or a key file is created.
    let listener = tokio::net::TcpListener::bind(settings.listen.as_str())
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let metrics_listener = match &settings.metrics_listen {
        Some(address) => Some(
            tokio::net::TcpListener::bind(address.as_str())
                .await
                .with_context(|| format!("cannot listen for metrics on {address}"))?,
        ),
        None => None,
    };
    // A certificate that does not load refuses the start, before any data is made.
    let tls =
        settings.tls.as_ref().map(|files| crate::tls::acceptor(files).map(|tls| (files.clone(), tls))).transpose()?;
    let prepared = prepare(settings).await?;
    let addr = listener.local_addr().context("the listener has no socket address")?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let public_url = settings.public_url.clone().unwrap_or_else(|| format!("{scheme}://{addr}"));
    let (latch, committer, startup) = assemble(prepared, settings, clock.clone(), public_url.clone()).await?;

    if settings.demo_tenant {
        latch.sync_demo_clients().await?;
    }
    let limits = AuthRateLimit::per_minute(settings.auth_rate_limit_per_minute, clock);
    let rotator = tokio::spawn(periodic_upkeep(latch.clone(), limits.clone()));
    let stop = CancellationToken::new();
    let trusted = crate::api::TrustedProxies::new(settings.trusted_proxies.clone());
    let app = crate::api::app(latch.clone(), limits, trusted, settings.connections.body_timeout).boxed();
    let (acceptor, tls_watch) = match tls {
        Some((files, (acceptor, resolver))) => (Some(acceptor), Some(tokio::spawn(crate::tls::watch(files, resolver)))),
        None => (None, None),
    };
    let stopped = stop.clone().cancelled_owned();
    let server = tokio::spawn(serve(listener, acceptor, app, settings.connections, stopped, SHUTDOWN_GRACE));
    let (metrics, metrics_addr) = match metrics_listener {
        Some(listener) => {
            let metrics_addr = listener.local_addr().context("the metrics listener has no socket address")?;
            let endpoint = crate::metrics::endpoint(crate::metrics::install()?, settings.data_dir.clone()).boxed();
            let stopped = stop.clone().cancelled_owned();
            let task = tokio::spawn(serve(listener, None, endpoint, settings.connections, stopped, SHUTDOWN_GRACE));
            tracing::info!(addr = %metrics_addr, "metrics at /metrics");
            (Some(task), Some(metrics_addr))
        }
        None => (None, None),
    };
    tracing::info!(%addr, %public_url, "latch is serving");
    Ok(RunningServer {
        addr,
        public_url,
        metrics_addr,
        startup,
        latch,
        stop,
        server,
        metrics,
        tls_watch,
        committer,
        rotator,
    })
}

/// Every minute: forgets rate-limit state of idle clients (each node its
/// own) and, on the one node that holds the scheduled work (all of them take
/// turns on a shared PostgreSQL store), rotates the keys of tenants whose
/// automatic rotation is due, and removes expired one-time records and
/// revocation-log entries no token can need.
async fn periodic_upkeep(latch: Arc<Latch>, limits: AuthRateLimit) {
    let mut tick = tokio::time::interval(KEY_ROTATION_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        limits.forget_idle();
        let held = match latch.scheduled_work().await {
            Ok(Some(held)) => held,
            Ok(None) => continue,
            Err(e) => {
                tracing::error!(error = %e, "cannot take the scheduled work");
                continue;
            }
        };
        match latch.rotate_due_keys().await {
            Ok(rotated) if !rotated.is_empty() => tracing::info!(tenants = ?rotated, "automatic key rotation"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "automatic key rotation failed"),
        }
        match latch.purge_expired_one_time().await {
            Ok(purged) if purged > 0 => tracing::debug!(purged, "expired one-time records removed"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "removing expired one-time records failed"),
        }
        match latch.purge_old_revocations().await {
            Ok(purged) if purged > 0 => tracing::debug!(purged, "old revocation feed entries removed"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "removing old revocation feed entries failed"),
        }
        latch.scheduled_work_done(held).await;
    }
}

/// The master key must be the one this data directory was created with.
fn check_master_key(store: &dyn Store, master: &MasterKey) -> anyhow::Result<()> {
    match store.get_meta(MASTER_KEY_CHECK)? {
        Some(sealed) => {
            if master.open(MASTER_KEY_CHECK_CONTEXT, &sealed).is_none() {
                anyhow::bail!(
                    "the master key file does not match this data directory (its signing keys cannot be decrypted)"
                );
            }
        }
        None => {
            // Nodes first starting together: one seal is kept, and every
            // other node checks its key against that one.
            if let Some(sealed) =
                store.put_meta_if_absent(MASTER_KEY_CHECK, &master.seal(MASTER_KEY_CHECK_CONTEXT, b"latch"))?
                && master.open(MASTER_KEY_CHECK_CONTEXT, &sealed).is_none()
            {
                anyhow::bail!("the master key file does not match the one another node set up this store with");
            }
            store.flush()?;
        }
    }
    Ok(())
}

/// The hash of the operator token: `LATCH_OPERATOR_TOKEN` when set, else one
/// generated at first start (shown once, only its hash kept).
fn operator_token(store: &dyn Store, settings: &Settings, startup: &mut Startup) -> anyhow::Result<[u8; 32]> {
    if let Some(token) = settings.operator_token() {
        return Ok(token_hash(token));
    }
    if let Some(stored) = store.get_meta(OPERATOR_TOKEN_HASH)? {
        return <[u8; 32]>::try_from(stored.as_slice())
            .map_err(|_| anyhow::anyhow!("stored operator token hash is corrupt"));
    }
    let token = random_token("latch_op_");
    let hash = token_hash(token.expose_secret());
    // Nodes first starting together: one token is kept and shown, by the
    // node that stored it; the others use it without showing one.
    if let Some(stored) = store.put_meta_if_absent(OPERATOR_TOKEN_HASH, &hash)? {
        return <[u8; 32]>::try_from(stored.as_slice())
            .map_err(|_| anyhow::anyhow!("stored operator token hash is corrupt"));
    }
    store.flush()?;
    startup.new_operator_token = Some(token);
    Ok(hash)
}

impl RunningServer {
    /// The domain services (tests and in-process tools).
    pub fn latch(&self) -> &Arc<Latch> {
        &self.latch
    }

    /// Stops accepting, lets in-flight requests finish, flushes and closes the store.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let RunningServer { stop, server, metrics, tls_watch, committer, rotator, latch, .. } = self;
        stop.cancel();
        server.await.context("server task")??;
        if let Some(metrics) = metrics {
            metrics.await.context("metrics task")??;
        }
        if let Some(watch) = tls_watch {
            watch.abort();
        }
        rotator.abort();
        let _ = rotator.await;
        close_store(latch, committer).await?;
        tracing::info!("latch stopped; store flushed and closed");
        Ok(())
    }

    /// Serves until SIGINT or SIGTERM, then shuts down gracefully.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        shutdown_signal().await;
        tracing::info!("shutdown signal received");
        self.shutdown().await
    }
}

/// Waits for the work answered requests left in the background (mail), then
/// for the committer's last flush; when this returns the store is closed and
/// its lock released, or the error says why not.
async fn close_store(latch: Arc<Latch>, committer: JoinHandle<StoreResult<()>>) -> anyhow::Result<()> {
    latch.background_settled().await;
    drop(latch);
    committer.await.context("store committer")?.context("the store's last flush failed")?;
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
