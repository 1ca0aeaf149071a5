//! The PostgreSQL engine: the same [`Store`] traits as sled, for several
//! latch nodes on one database (issue 17).
//!
//! Each record is a `jsonb` column beside the columns that key, index and
//! order it (the same serde form sled stores). Every change to an existing
//! record is one transaction that reads the row `FOR UPDATE`, applies the
//! caller's change to what it read, and writes it back: the row lock is the
//! atomic step sled gets from compare-and-swap, and it holds across nodes.
//! Commits are synchronous (`synchronous_commit = on` is set on every
//! connection), so a committed write is durable and [`Store::flush`] has
//! nothing left to do.
//!
//! The engine is blocking (`postgres`, with an `r2d2` pool), as the traits
//! are: the [`StoreHandle`](super::StoreHandle) runs store calls on
//! blocking threads.

use ::postgres::Row;
use ::postgres::error::SqlState;
use r2d2_postgres::PostgresConnectionManager;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use super::backup::{self, BackupWriter, Entry};
use super::group_read::{GroupReads, Queued};
use super::*;

/// The schema this binary writes; a database at a newer version is refused.
pub const SCHEMA_VERSION: i32 = 2;

/// The tables, created at the first start (under the migration lock).
const SCHEMA_V1: &str = r#"
CREATE TABLE latch_meta (key text COLLATE "C" PRIMARY KEY, value bytea NOT NULL);
CREATE TABLE latch_tenants (id text COLLATE "C" PRIMARY KEY, record jsonb NOT NULL);
CREATE TABLE latch_keys (
    tenant text COLLATE "C" NOT NULL, kid text COLLATE "C" NOT NULL,
    created_at bigint NOT NULL, record jsonb NOT NULL, PRIMARY KEY (tenant, kid));
CREATE TABLE latch_users (
    tenant text COLLATE "C" NOT NULL, id uuid NOT NULL, email_key text COLLATE "C" NOT NULL,
    record jsonb NOT NULL, PRIMARY KEY (tenant, id), UNIQUE (tenant, email_key));
CREATE TABLE latch_sessions (
    tenant text COLLATE "C" NOT NULL, id uuid NOT NULL, user_id uuid NOT NULL,
    created_at bigint NOT NULL, record jsonb NOT NULL, PRIMARY KEY (tenant, id));
CREATE INDEX latch_sessions_by_user ON latch_sessions (tenant, user_id);
CREATE TABLE latch_refresh (
    tenant text COLLATE "C" NOT NULL, hash bytea NOT NULL, session_id uuid NOT NULL,
    record jsonb NOT NULL, PRIMARY KEY (tenant, hash));
CREATE INDEX latch_refresh_by_session ON latch_refresh (tenant, session_id);
CREATE TABLE latch_events (
    tenant text COLLATE "C" NOT NULL, id uuid NOT NULL, record jsonb NOT NULL, PRIMARY KEY (tenant, id));
CREATE TABLE latch_one_time (
    tenant text COLLATE "C" NOT NULL, hash bytea NOT NULL, record jsonb NOT NULL,
    expires_at bigint GENERATED ALWAYS AS ((record->>'expires_at')::bigint) STORED,
    PRIMARY KEY (tenant, hash));
CREATE INDEX latch_one_time_expiry ON latch_one_time (expires_at);
CREATE TABLE latch_clients (
    tenant text COLLATE "C" NOT NULL, client_id text COLLATE "C" NOT NULL,
    record jsonb NOT NULL, PRIMARY KEY (tenant, client_id));
CREATE TABLE latch_browser_sessions (
    tenant text COLLATE "C" NOT NULL, hash bytea NOT NULL, record jsonb NOT NULL,
    expires_at bigint GENERATED ALWAYS AS ((record->>'expires_at')::bigint) STORED,
    PRIMARY KEY (tenant, hash));
CREATE INDEX latch_browser_sessions_expiry ON latch_browser_sessions (expires_at);
"#;

/// Version 2: the revocation log (a database at version 1 gets it at start).
const SCHEMA_V2: &str = r#"
CREATE TABLE latch_revocation_log (
    tenant text COLLATE "C" PRIMARY KEY, epoch bigint NOT NULL, last bigint NOT NULL);
CREATE TABLE latch_revocations (
    tenant text COLLATE "C" NOT NULL, seq bigint NOT NULL, session_id uuid NOT NULL,
    ended_at bigint NOT NULL, PRIMARY KEY (tenant, seq));
CREATE INDEX latch_revocations_ended ON latch_revocations (ended_at);
"#;

/// The tables that hold a tenant's data (by its `tenant` column).
const TENANT_DATA: [&str; 10] = [
    "latch_revocations",
    "latch_revocation_log",
    "latch_keys",
    "latch_users",
    "latch_sessions",
    "latch_refresh",
    "latch_events",
    "latch_one_time",
    "latch_clients",
    "latch_browser_sessions",
];

/// A key for `pg_advisory_lock`: migrations take turns across nodes.
const MIGRATION_LOCK: i64 = 0x6c61_7463_685f_6d69; // "latch_mi"
/// The advisory lock the node running the scheduled work holds.
const SCHEDULED_WORK_LOCK: i64 = 0x6c61_7463_685f_7363; // "latch_sc"

/// TLS to the database (`store::pgtls`).
type Connector = super::pgtls::Connector;

type Pooled = r2d2_postgres::r2d2::PooledConnection<Manager>;

type Params<'a> = &'a [&'a (dyn ::postgres::types::ToSql + Sync)];

/// The statements a connection has prepared, by query text.
type Statements = std::collections::HashMap<String, ::postgres::Statement>;

/// A client (a connection, or a transaction on it) with the statements its
/// connection has prepared: a query string seen before is sent as one round
/// trip (bind and execute) instead of two (prepare, then bind and execute).
/// The queries are this file's constants and a few built from fixed table
/// names, so the cache stays small.
pub(super) struct Prepared<C, S> {
    client: C,
    statements: S,
}

/// A pooled connection.
pub(super) type Conn = Prepared<::postgres::Client, Statements>;

/// A transaction on a [`Conn`], using and filling its statement cache.
/// Dropped without `commit`, it rolls back.
type Tx<'a> = Prepared<::postgres::Transaction<'a>, &'a mut Statements>;

impl<C: ::postgres::GenericClient, S: std::borrow::BorrowMut<Statements>> Prepared<C, S> {
    fn statement(&mut self, sql: &str) -> Result<::postgres::Statement, ::postgres::Error> {
        let statements = self.statements.borrow_mut();
        if let Some(statement) = statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64, ::postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.execute(&statement, params)
    }

    fn query(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, ::postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.query(&statement, params)
    }

    fn query_opt(&mut self, sql: &str, params: Params<'_>) -> Result<Option<Row>, ::postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.query_opt(&statement, params)
    }

    fn query_one(&mut self, sql: &str, params: Params<'_>) -> Result<Row, ::postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.query_one(&statement, params)
    }

    fn batch_execute(&mut self, sql: &str) -> Result<(), ::postgres::Error> {
        self.client.batch_execute(sql)
    }
}

impl Conn {
    fn transaction(&mut self) -> Result<Tx<'_>, ::postgres::Error> {
        Ok(Prepared { client: self.client.transaction()?, statements: &mut self.statements })
    }
}

impl Tx<'_> {
    fn commit(self) -> Result<(), ::postgres::Error> {
        self.client.commit()
    }
}

/// The pool's connections: [`Conn`]s made by r2d2_postgres's manager.
pub(super) struct Manager(PostgresConnectionManager<Connector>);

impl r2d2_postgres::r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = ::postgres::Error;

    fn connect(&self) -> Result<Conn, ::postgres::Error> {
        Ok(Prepared { client: self.0.connect()?, statements: Statements::new() })
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), ::postgres::Error> {
        self.0.is_valid(&mut conn.client)
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        self.0.has_broken(&mut conn.client)
    }
}

/// A connection holding the scheduled-work lock; unlocks when dropped (the
/// pool keeps the connection, so the session lock would outlive the guard).
struct ScheduledWorkLock(Option<Pooled>);

impl Drop for ScheduledWorkLock {
    fn drop(&mut self) {
        let Some(mut connection) = self.0.take() else { return };
        let mut unlock = move || {
            if connection.execute("SELECT pg_advisory_unlock($1)", &[&SCHEDULED_WORK_LOCK]).is_err() {
                // A broken connection: its session, and the lock, end with it.
                tracing::warn!("releasing the scheduled-work lock failed");
            }
        };
        // The blocking client must not run on an async worker (a task
        // aborted at shutdown drops its guard there): a thread of its own.
        if tokio::runtime::Handle::try_current().is_ok() {
            let _ = std::thread::spawn(unlock).join();
        } else {
            unlock();
        }
    }
}

type Pool = r2d2_postgres::r2d2::Pool<Manager>;

/// A value whose drop blocks: closing a `postgres` connection runs the
/// client's own runtime, which panics on an async worker (where the last
/// `Arc` of a server may well be dropped). There it is dropped on a thread
/// of its own.
struct DropOffAsync<T: Send + 'static>(Option<T>);

impl<T: Send + 'static> std::ops::Deref for DropOffAsync<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.0.as_ref().expect("present until dropped")
    }
}

impl<T: Send + 'static> Drop for DropOffAsync<T> {
    fn drop(&mut self) {
        let Some(value) = self.0.take() else { return };
        if tokio::runtime::Handle::try_current().is_ok() {
            let _ = std::thread::spawn(move || drop(value)).join();
        } else {
            drop(value);
        }
    }
}

/// The PostgreSQL store.
pub struct PostgresStore {
    /// Access-token checks' reads of a session and its user, grouped. First,
    /// so its readers (which hold pool handles) stop before the pool closes.
    session_reads: GroupReads<(TenantId, Uuid, Uuid), SessionAndUser>,
    pool: DropOffAsync<Pool>,
    /// Where and how it connects, for the connection that listens for changes.
    config: ::postgres::Config,
    tls: Connector,
}

type SessionAndUser = (Option<SessionRecord>, Option<UserRecord>);

/// Reads of a session and its user sent in one query at most, and the
/// threads running such queries (see `group_read`).
const SESSION_READ_GROUP: usize = 128;
const SESSION_READERS: usize = 2;

/// Sessions and users of access-token checks, in one query.
fn sessions_and_users(client: &mut Conn, keys: &[(TenantId, Uuid, Uuid)]) -> StoreResult<Vec<SessionAndUser>> {
    let tenants: Vec<&str> = keys.iter().map(|(tenant, _, _)| tenant.as_str()).collect();
    let sessions: Vec<Uuid> = keys.iter().map(|(_, session, _)| *session).collect();
    let users: Vec<Uuid> = keys.iter().map(|(_, _, user)| *user).collect();
    let rows = client
        .query(
            "SELECT s.record, u.record \
             FROM unnest($1::text[], $2::uuid[], $3::uuid[]) WITH ORDINALITY AS k(tenant, sid, uid, n) \
             LEFT JOIN latch_sessions s ON s.tenant = k.tenant AND s.id = k.sid \
             LEFT JOIN latch_users u ON u.tenant = k.tenant AND u.id = k.uid \
             ORDER BY k.n",
            &[&tenants, &sessions, &users],
        )
        .map_err(sql)?;
    rows.iter().map(|row| Ok((nullable("sessions", row, 0)?, nullable("users", row, 1)?))).collect()
}

/// The channel a change to a tenant's record or keys is announced on, in the
/// transaction that makes it (so it is delivered when, and only if, it
/// commits); the payload is the tenant id.
const TENANT_CHANNEL: &str = "latch_tenants";
/// How long the listener waits for a notification before it looks at its
/// stop flag again.
const LISTEN_TICK: std::time::Duration = std::time::Duration::from_millis(250);
/// How often an idle listening connection is checked to be alive.
const LISTEN_PING: std::time::Duration = std::time::Duration::from_secs(5);
/// While no connection listens, cached tenant data is dropped this often:
/// then the bound on how stale it may be.
pub const UNWATCHED_REFRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// Stops the listening thread when dropped (it notices within [`LISTEN_TICK`]).
struct Listener(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for Listener {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Release);
    }
}

/// The listening thread: announces every tenant change, and `None` whenever
/// changes may have been missed (at each (re)connection, and every
/// [`UNWATCHED_REFRESH`] while disconnected).
fn listen(
    config: ::postgres::Config,
    tls: Connector,
    changed: TenantChanged,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use ::postgres::fallible_iterator::FallibleIterator as _;
    let stopped = || stop.load(std::sync::atomic::Ordering::Acquire);
    let mut lost = false;
    while !stopped() {
        if let Ok(mut client) = config.connect(tls.clone())
            && client.batch_execute(&format!("LISTEN {TENANT_CHANNEL}")).is_ok()
        {
            if lost {
                tracing::info!("listening for tenant changes again");
                lost = false;
            }
            // What changed while nobody listened is unknown.
            changed(None);
            let mut pinged = std::time::Instant::now();
            while !stopped() {
                let next = client.notifications().timeout_iter(LISTEN_TICK).next();
                match next {
                    Ok(Some(notification)) => changed(TenantId::parse(notification.payload()).ok().as_ref()),
                    Ok(None) if pinged.elapsed() >= LISTEN_PING => {
                        if client.simple_query("SELECT 1").is_err() {
                            break;
                        }
                        pinged = std::time::Instant::now();
                    }
                    Ok(None) => {}
                    Err(_) => break,
                }
            }
        }
        if stopped() {
            break;
        }
        if !lost {
            tracing::warn!(
                "no PostgreSQL connection announces tenant changes: cached tenant data is refreshed every {}s until one does",
                UNWATCHED_REFRESH.as_secs()
            );
            lost = true;
        }
        changed(None);
        std::thread::sleep(UNWATCHED_REFRESH);
    }
}

/// Announces, inside `tx`, that a tenant's record or keys changed.
/// Appends the end of `session_id` to `tenant`'s revocation log, inside the
/// transaction that ends it. The log's row is locked until that transaction
/// commits, so revocations of one tenant take their `seq` in commit order:
/// a reader that sees entry n sees every entry before it.
fn log_revocation(tx: &mut Tx<'_>, tenant: &str, session_id: Uuid, ended_at: i64) -> StoreResult<()> {
    // Random and positive: a new log's epoch (kept by later revocations).
    let epoch = (Uuid::new_v4().as_u64_pair().0 >> 1).max(1) as i64;
    let seq: i64 = tx
        .query_one(
            "INSERT INTO latch_revocation_log (tenant, epoch, last) VALUES ($1, $2, 1) \
             ON CONFLICT (tenant) DO UPDATE SET last = latch_revocation_log.last + 1 RETURNING last",
            &[&tenant, &epoch],
        )
        .map_err(sql)?
        .get(0);
    tx.execute(
        "INSERT INTO latch_revocations (tenant, seq, session_id, ended_at) VALUES ($1, $2, $3, $4)",
        &[&tenant, &seq, &session_id, &ended_at],
    )
    .map_err(sql)?;
    Ok(())
}

fn announce(tx: &mut Tx<'_>, tenant: &str) -> StoreResult<()> {
    tx.execute("SELECT pg_notify($1, $2)", &[&TENANT_CHANNEL, &tenant]).map_err(sql)?;
    Ok(())
}

/// An error with its causes, for a start-up message.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text = format!("{text}: {inner}");
        cause = inner.source();
    }
    text
}

fn backend(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(error.to_string())
}

fn sql(error: ::postgres::Error) -> StoreError {
    if error.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        return StoreError::Conflict;
    }
    StoreError::Backend(error.to_string())
}

fn encode<T: Serialize>(value: &T) -> StoreResult<Value> {
    serde_json::to_value(value).map_err(backend)
}

fn decode<T: DeserializeOwned>(table: &'static str, row: &Row) -> StoreResult<T> {
    let value: Value = row.try_get("record").map_err(|_| StoreError::Corrupt(table))?;
    serde_json::from_value(value).map_err(|_| StoreError::Corrupt(table))
}

/// Column `index` of `row`, a record or NULL.
fn nullable<T: DeserializeOwned>(table: &'static str, row: &Row, index: usize) -> StoreResult<Option<T>> {
    let value: Option<Value> = row.try_get(index).map_err(|_| StoreError::Corrupt(table))?;
    value.map(|value| serde_json::from_value(value).map_err(|_| StoreError::Corrupt(table))).transpose()
}

fn decode_all<T: DeserializeOwned>(table: &'static str, rows: &[Row]) -> StoreResult<Vec<T>> {
    rows.iter().map(|row| decode(table, row)).collect()
}

/// The libpq password file: `PGPASSFILE`, else `~/.pgpass`.
pub fn password_file(pgpassfile: Option<&str>, home: Option<&str>) -> Option<std::path::PathBuf> {
    match (pgpassfile.filter(|f| !f.is_empty()), home.filter(|h| !h.is_empty())) {
        (Some(file), _) => Some(file.into()),
        (None, Some(home)) => Some(Path::new(home).join(".pgpass")),
        (None, None) => None,
    }
}

/// The password for `config` in a libpq password file, as libpq finds it:
/// lines `host:port:database:user:password`, `*` matching anything, `\:`
/// and `\\` escapes, `#` comments, the first matching line wins. A Unix
/// socket host matches `localhost` as well as its directory. Like libpq, a
/// file that others may read is not used; here that is an error, so a
/// password that goes unused does not turn into a puzzling login failure.
fn pgpass_lookup(file: &Path, config: &::postgres::Config) -> Result<Option<String>, String> {
    use std::os::unix::fs::PermissionsExt as _;
    let shown = file.display();
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read the password file {shown}: {e}")),
    };
    let mode = std::fs::metadata(file).map_err(|e| format!("{shown}: {e}"))?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "the password file {shown} may be read by others (mode {:o}): chmod 0600 it",
            mode & 0o777
        ));
    }
    let hosts: Vec<String> = match config.get_hosts().first() {
        Some(::postgres::config::Host::Tcp(host)) => vec![host.clone()],
        Some(::postgres::config::Host::Unix(dir)) => vec!["localhost".into(), dir.display().to_string()],
        None => vec!["localhost".into()],
    };
    let port = config.get_ports().first().copied().unwrap_or(5432).to_string();
    let user = config.get_user().unwrap_or_default();
    let database = config.get_dbname().unwrap_or(user);
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let fields = pgpass_fields(line);
        let [host_field, port_field, db_field, user_field, password] = fields.as_slice() else { continue };
        let matches = |field: &str, value: &str| field == "*" || field == value;
        if hosts.iter().any(|h| matches(host_field, h))
            && matches(port_field, &port)
            && matches(db_field, database)
            && matches(user_field, user)
        {
            return Ok(Some(password.clone()));
        }
    }
    Ok(None)
}

/// A password-file line split at unescaped colons, escapes removed.
fn pgpass_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields.last_mut().expect("one field").extend(chars.next()),
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

/// Where the PostgreSQL store is: a `postgres://` URL, its password from the
/// environment or a password file when the URL has none.
#[derive(Clone)]
pub struct Database {
    config: ::postgres::Config,
    /// TLS as the URL's `sslmode` asks (`store::pgtls`).
    tls: Connector,
    /// The URL without its password, for messages.
    shown: String,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Database").field(&self.shown).finish()
    }
}

impl PartialEq for Database {
    fn eq(&self, other: &Database) -> bool {
        self.shown == other.shown
    }
}

impl Database {
    /// Connections per node.
    pub const POOL_SIZE: u32 = 16;

    /// Reads a `postgres://` or `postgresql://` URL. When it carries no
    /// password, `password` (from `LATCH_STORE_PASSWORD`) is used, else the
    /// first matching line of the libpq password file `password_file`
    /// ([`password_file`]), if there is one.
    pub fn parse(url: &str, password: Option<&str>, password_file: Option<&Path>) -> Result<Database, String> {
        let (rest, check, root_file) = super::pgtls::split_url(url)?;
        let tls = super::pgtls::connector(check, root_file.as_deref())?;
        let mut config: ::postgres::Config = rest.parse().map_err(|e| format!("store URL: {e}"))?;
        if config.get_password().is_none() {
            if let Some(password) = password {
                config.password(password);
            } else if let Some(file) = password_file
                && let Some(password) = pgpass_lookup(file, &config)?
            {
                config.password(password);
            }
        }
        let shown = match url::Url::parse(url) {
            Ok(mut parsed) => {
                let _ = parsed.set_password(None);
                parsed.to_string()
            }
            Err(_) => "the configured database".to_owned(),
        };
        Ok(Database { config, tls, shown })
    }

    /// The URL without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Connects (see [`PostgresStore::open`]).
    pub fn connect(&self) -> StoreResult<PostgresStore> {
        PostgresStore::open(self.config.clone(), self.tls.clone(), Database::POOL_SIZE)
    }
}

impl PostgresStore {
    /// Connects to `url` (a `postgres://` URL with its libpq TLS
    /// parameters, or a libpq key-value string, with TLS as `prefer`).
    pub fn connect(url: &str, max_connections: u32) -> StoreResult<PostgresStore> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let database = Database::parse(url, None, None).map_err(StoreError::Format)?;
            return PostgresStore::open(database.config, database.tls, max_connections);
        }
        let config: ::postgres::Config = url.parse().map_err(|e| StoreError::Format(format!("store URL: {e}")))?;
        let tls = super::pgtls::connector(super::pgtls::Check::Nothing, None).map_err(StoreError::Format)?;
        PostgresStore::open(config, tls, max_connections)
    }

    /// Connects, checks the schema version and creates or upgrades the schema
    /// under an advisory lock, so nodes starting together do not race.
    pub fn open(mut config: ::postgres::Config, tls: Connector, max_connections: u32) -> StoreResult<PostgresStore> {
        // Every acknowledged write must be on disk, whatever the server's default.
        config.options("-c synchronous_commit=on");
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        // One connection first: its error says why (refused, TLS, password),
        // where the pool would only time out.
        let first = config.connect(tls.clone());
        drop(first.map_err(|e| StoreError::Backend(format!("cannot reach PostgreSQL: {}", chain(&e))))?);
        let manager = Manager(PostgresConnectionManager::new(config.clone(), tls.clone()));
        let pool = r2d2_postgres::r2d2::Pool::builder()
            .max_size(max_connections.max(1))
            .connection_timeout(std::time::Duration::from_secs(10))
            .build(manager)
            .map_err(|e| StoreError::Backend(format!("cannot reach PostgreSQL: {e}")))?;
        let readers_pool = pool.clone();
        let session_reads = GroupReads::start("latch-pg-read", SESSION_READERS, SESSION_READ_GROUP, move |keys| {
            let mut client =
                readers_pool.get().map_err(|e| StoreError::Backend(format!("no PostgreSQL connection: {e}")))?;
            sessions_and_users(&mut client, keys)
        })?;
        let store = PostgresStore { session_reads, pool: DropOffAsync(Some(pool)), config, tls };
        store.migrate()?;
        Ok(store)
    }

    fn client(&self) -> StoreResult<Pooled> {
        self.pool.get().map_err(|e| StoreError::Backend(format!("no PostgreSQL connection: {e}")))
    }

    /// Creates the schema, or checks the one found; refuses a newer one.
    fn migrate(&self) -> StoreResult<()> {
        let mut client = self.client()?;
        client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).map_err(sql)?;
        let result = (|| {
            let mut tx = client.transaction().map_err(sql)?;
            tx.batch_execute("CREATE TABLE IF NOT EXISTS latch_schema (version integer NOT NULL)").map_err(sql)?;
            let found: Option<i32> =
                tx.query_opt("SELECT version FROM latch_schema", &[]).map_err(sql)?.map(|row| row.get(0));
            match found {
                None => {
                    tx.batch_execute(SCHEMA_V1).map_err(sql)?;
                    tx.batch_execute(SCHEMA_V2).map_err(sql)?;
                    tx.execute("INSERT INTO latch_schema (version) VALUES ($1)", &[&SCHEMA_VERSION]).map_err(sql)?;
                    // What readiness looks for, as in a sled store.
                    let format = format!("latch-postgres/{SCHEMA_VERSION}");
                    tx.execute(
                        "INSERT INTO latch_meta (key, value) VALUES ($1, $2)",
                        &[&super::sled::FORMAT_KEY, &format.as_bytes()],
                    )
                    .map_err(sql)?;
                }
                Some(version) if version > SCHEMA_VERSION => {
                    return Err(StoreError::Format(format!(
                        "the database's latch schema is version {version}, newer than this binary's {SCHEMA_VERSION}: \
                         upgrade latch"
                    )));
                }
                Some(1) => {
                    tx.batch_execute(SCHEMA_V2).map_err(sql)?;
                    tx.execute("UPDATE latch_schema SET version = $1", &[&SCHEMA_VERSION]).map_err(sql)?;
                }
                Some(_) => {}
            }
            tx.commit().map_err(sql)
        })();
        client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).map_err(sql)?;
        result
    }

    /// Reads one record `FOR UPDATE`, applies `change`, writes it back when
    /// asked: the atomic step of every `update_*`.
    fn update<T: Serialize + DeserializeOwned>(
        &self,
        table: &'static str,
        filter: &str,
        params: &[&(dyn ::postgres::types::ToSql + Sync)],
        announced: Option<&str>,
        change: &mut dyn FnMut(&mut T) -> StoreResult<Change>,
    ) -> StoreResult<Option<T>> {
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(sql)?;
        let select = format!("SELECT record FROM {table} WHERE {filter} FOR UPDATE");
        let Some(row) = tx.query_opt(&select, params).map_err(sql)? else { return Ok(None) };
        let mut record: T = decode(table, &row)?;
        if change(&mut record)? == Change::Write {
            let record_param = encode(&record)?;
            let mut with_record: Vec<&(dyn ::postgres::types::ToSql + Sync)> = params.to_vec();
            with_record.push(&record_param);
            let update = format!("UPDATE {table} SET record = ${} WHERE {filter}", params.len() + 1);
            tx.execute(&update, &with_record).map_err(sql)?;
            if let Some(tenant) = announced {
                announce(&mut tx, tenant)?;
            }
        }
        tx.commit().map_err(sql)?;
        Ok(Some(record))
    }
}

impl TenantStore for PostgresStore {
    fn create_tenant(&self, tenant: &TenantRecord, keys: &[KeyRecord]) -> StoreResult<()> {
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(sql)?;
        tx.execute("INSERT INTO latch_tenants (id, record) VALUES ($1, $2)", &[&tenant.id.as_str(), &encode(tenant)?])
            .map_err(sql)?;
        for key in keys {
            tx.execute(
                "INSERT INTO latch_keys (tenant, kid, created_at, record) VALUES ($1, $2, $3, $4)",
                &[&tenant.id.as_str(), &key.kid, &key.created_at, &encode(key)?],
            )
            .map_err(sql)?;
        }
        tx.commit().map_err(sql)
    }

    fn get_tenant(&self, id: &TenantId) -> StoreResult<Option<TenantRecord>> {
        let row = self.client()?.query_opt("SELECT record FROM latch_tenants WHERE id = $1", &[&id.as_str()]);
        row.map_err(sql)?.map(|row| decode("tenants", &row)).transpose()
    }

    fn list_tenants(&self) -> StoreResult<Vec<TenantRecord>> {
        let rows = self.client()?.query("SELECT record FROM latch_tenants ORDER BY id", &[]).map_err(sql)?;
        decode_all("tenants", &rows)
    }

    fn update_tenant(
        &self,
        id: &TenantId,
        change: &mut dyn FnMut(&mut TenantRecord) -> Change,
    ) -> StoreResult<Option<TenantRecord>> {
        self.update("latch_tenants", "id = $1", &[&id.as_str()], Some(id.as_str()), &mut |tenant: &mut TenantRecord| {
            let before = tenant.id.clone();
            let decided = change(tenant);
            // The id is the row's key; a change cannot move it.
            tenant.id = before;
            Ok(decided)
        })
    }

    fn delete_tenant(&self, id: &TenantId) -> StoreResult<bool> {
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(sql)?;
        for table in TENANT_DATA {
            tx.execute(&format!("DELETE FROM {table} WHERE tenant = $1"), &[&id.as_str()]).map_err(sql)?;
        }
        let removed = tx.execute("DELETE FROM latch_tenants WHERE id = $1", &[&id.as_str()]).map_err(sql)?;
        announce(&mut tx, id.as_str())?;
        tx.commit().map_err(sql)?;
        Ok(removed > 0)
    }
}

impl KeyStore for PostgresStore {
    fn rotate_keys(&self, tenant: &TenantId, new: &KeyRecord) -> StoreResult<()> {
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(sql)?;
        // Rotations of one tenant take turns (on every node): a key another
        // rotation adds meanwhile is then seen and retired, never left live.
        tx.execute("SELECT pg_advisory_xact_lock(hashtext('latch-keys:' || $1))", &[&tenant.as_str()]).map_err(sql)?;
        let rows = tx.query("SELECT record FROM latch_keys WHERE tenant = $1", &[&tenant.as_str()]).map_err(sql)?;
        for old in decode_all::<KeyRecord>("keys", &rows)? {
            if old.kid != new.kid && old.retired_at.is_none() {
                let retired = KeyRecord { retired_at: Some(new.active_from), ..old };
                tx.execute(
                    "UPDATE latch_keys SET record = $3 WHERE tenant = $1 AND kid = $2",
                    &[&tenant.as_str(), &retired.kid, &encode(&retired)?],
                )
                .map_err(sql)?;
            }
        }
        tx.execute(
            "INSERT INTO latch_keys (tenant, kid, created_at, record) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant, kid) DO UPDATE SET created_at = excluded.created_at, record = excluded.record",
            &[&tenant.as_str(), &new.kid, &new.created_at, &encode(new)?],
        )
        .map_err(sql)?;
        announce(&mut tx, tenant.as_str())?;
        tx.commit().map_err(sql)
    }

    fn list_keys(&self, tenant: &TenantId) -> StoreResult<Vec<KeyRecord>> {
        let rows = self
            .client()?
            .query("SELECT record FROM latch_keys WHERE tenant = $1 ORDER BY created_at, kid", &[&tenant.as_str()])
            .map_err(sql)?;
        decode_all("keys", &rows)
    }
}

impl UserStore for PostgresStore {
    fn insert_user(&self, user: &UserRecord) -> StoreResult<()> {
        self.client()?
            .execute(
                "INSERT INTO latch_users (tenant, id, email_key, record) VALUES ($1, $2, $3, $4)",
                &[&user.tenant.as_str(), &user.id, &user.email_key, &encode(user)?],
            )
            .map_err(sql)?;
        Ok(())
    }

    fn insert_users(&self, users: &[UserRecord]) -> StoreResult<Vec<bool>> {
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(sql)?;
        let mut inserted = Vec::with_capacity(users.len());
        for user in users {
            // Either unique key (the id, the email) taken: that user is left out.
            let added = tx
                .execute(
                    "INSERT INTO latch_users (tenant, id, email_key, record) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT DO NOTHING",
                    &[&user.tenant.as_str(), &user.id, &user.email_key, &encode(user)?],
                )
                .map_err(sql)?;
            inserted.push(added == 1);
        }
        tx.commit().map_err(sql)?;
        Ok(inserted)
    }

    fn get_user(&self, tenant: &TenantId, id: Uuid) -> StoreResult<Option<UserRecord>> {
        let row = self
            .client()?
            .query_opt("SELECT record FROM latch_users WHERE tenant = $1 AND id = $2", &[&tenant.as_str(), &id]);
        row.map_err(sql)?.map(|row| decode("users", &row)).transpose()
    }

    fn find_user_by_email(&self, tenant: &TenantId, email_key: &str) -> StoreResult<Option<UserRecord>> {
        let row = self.client()?.query_opt(
            "SELECT record FROM latch_users WHERE tenant = $1 AND email_key = $2",
            &[&tenant.as_str(), &email_key],
        );
        row.map_err(sql)?.map(|row| decode("users", &row)).transpose()
    }

    fn update_user(
        &self,
        tenant: &TenantId,
        id: Uuid,
        change: &mut dyn FnMut(&mut UserRecord) -> Change,
    ) -> StoreResult<Option<UserRecord>> {
        self.update(
            "latch_users",
            "tenant = $1 AND id = $2",
            &[&tenant.as_str(), &id],
            None,
            &mut |user: &mut UserRecord| {
                let email_key = user.email_key.clone();
                let decided = change(user);
                // The email is the row's unique key; moving it is not an update.
                if decided == Change::Write && user.email_key != email_key {
                    return Err(StoreError::Conflict);
                }
                Ok(decided)
            },
        )
    }

    fn list_users(
        &self,
        tenant: &TenantId,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<UserRecord>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .client()?
            .query(
                "SELECT record FROM latch_users WHERE tenant = $1 AND starts_with(email_key, $2) \
                 AND ($3::text IS NULL OR email_key > $3) ORDER BY email_key LIMIT $4",
                &[&tenant.as_str(), &prefix, &after, &limit],
            )
            .map_err(sql)?;
        decode_all("users", &rows)
    }

    fn delete_user(&self, tenant: &TenantId, id: Uuid, now: i64) -> StoreResult<Option<UserRecord>> {
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(sql)?;
        let removed = tx
            .query_opt(
                "DELETE FROM latch_users WHERE tenant = $1 AND id = $2 RETURNING record",
                &[&tenant.as_str(), &id],
            )
            .map_err(sql)?;
        let Some(row) = removed else { return Ok(None) };
        let user: UserRecord = decode("users", &row)?;
        tx.execute(
            "DELETE FROM latch_refresh WHERE tenant = $1 AND session_id IN \
             (SELECT id FROM latch_sessions WHERE tenant = $1 AND user_id = $2)",
            &[&tenant.as_str(), &id],
        )
        .map_err(sql)?;
        let ended = tx
            .query(
                "DELETE FROM latch_sessions WHERE tenant = $1 AND user_id = $2 RETURNING record",
                &[&tenant.as_str(), &id],
            )
            .map_err(sql)?;
        // A live session's tokens are refused from here on: the feed says so.
        for session in decode_all::<SessionRecord>("sessions", &ended)? {
            if session.revoked_at.is_none() {
                log_revocation(&mut tx, tenant.as_str(), session.id, now)?;
            }
        }
        tx.commit().map_err(sql)?;
        Ok(Some(user))
    }
}

impl SessionStore for PostgresStore {
    fn insert_session(&self, session: &SessionRecord, refresh_hash: &[u8; 32]) -> StoreResult<()> {
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(sql)?;
        let tenant = session.tenant.as_str();
        tx.execute(
            "INSERT INTO latch_sessions (tenant, id, user_id, created_at, record) VALUES ($1, $2, $3, $4, $5)",
            &[&tenant, &session.id, &session.user_id, &session.created_at, &encode(session)?],
        )
        .map_err(sql)?;
        let refresh = RefreshRecord { session_id: session.id, generation: session.generation };
        tx.execute(
            "INSERT INTO latch_refresh (tenant, hash, session_id, record) VALUES ($1, $2, $3, $4)",
            &[&tenant, &refresh_hash.as_slice(), &session.id, &encode(&refresh)?],
        )
        .map_err(sql)?;
        tx.commit().map_err(sql)
    }

    fn get_session(&self, tenant: &TenantId, id: Uuid) -> StoreResult<Option<SessionRecord>> {
        let row = self
            .client()?
            .query_opt("SELECT record FROM latch_sessions WHERE tenant = $1 AND id = $2", &[&tenant.as_str(), &id]);
        row.map_err(sql)?.map(|row| decode("sessions", &row)).transpose()
    }

    fn get_refresh(&self, tenant: &TenantId, hash: &[u8; 32]) -> StoreResult<Option<RefreshRecord>> {
        let row = self.client()?.query_opt(
            "SELECT record FROM latch_refresh WHERE tenant = $1 AND hash = $2",
            &[&tenant.as_str(), &hash.as_slice()],
        );
        row.map_err(sql)?.map(|row| decode("refresh", &row)).transpose()
    }

    fn rotate_session(
        &self,
        tenant: &TenantId,
        id: Uuid,
        expected_generation: u64,
        new_refresh_hash: &[u8; 32],
        change: &mut dyn FnMut(&mut SessionRecord),
    ) -> StoreResult<SessionRecord> {
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(sql)?;
        let row = tx
            .query_opt(
                "SELECT record FROM latch_sessions WHERE tenant = $1 AND id = $2 FOR UPDATE",
                &[&tenant.as_str(), &id],
            )
            .map_err(sql)?
            .ok_or(StoreError::NotFound)?;
        let mut session: SessionRecord = decode("sessions", &row)?;
        // The row lock orders rotations: the second sees the first's generation.
        if session.generation != expected_generation || session.revoked_at.is_some() {
            return Err(StoreError::Stale);
        }
        change(&mut session);
        session.generation = expected_generation + 1;
        let refresh = RefreshRecord { session_id: id, generation: session.generation };
        tx.execute(
            "UPDATE latch_sessions SET record = $3 WHERE tenant = $1 AND id = $2",
            &[&tenant.as_str(), &id, &encode(&session)?],
        )
        .map_err(sql)?;
        tx.execute(
            "INSERT INTO latch_refresh (tenant, hash, session_id, record) VALUES ($1, $2, $3, $4)",
            &[&tenant.as_str(), &new_refresh_hash.as_slice(), &id, &encode(&refresh)?],
        )
        .map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(session)
    }

    fn get_session_and_user(
        &self,
        tenant: &TenantId,
        session: Uuid,
        user: Uuid,
    ) -> StoreResult<(Option<SessionRecord>, Option<UserRecord>)> {
        let mut client = self.client()?;
        Ok(sessions_and_users(&mut client, &[(tenant.clone(), session, user)])?.pop().unwrap_or((None, None)))
    }

    fn queue_session_and_user(
        &self,
        tenant: &TenantId,
        session: Uuid,
        user: Uuid,
    ) -> Option<Queued<(Option<SessionRecord>, Option<UserRecord>)>> {
        // Concurrent checks share one query, answered on the reader threads
        // (group_read's invariants: each read by a query begun after it was asked).
        Some(self.session_reads.read((tenant.clone(), session, user)))
    }

    fn get_refresh_session_user(
        &self,
        tenant: &TenantId,
        hash: &[u8; 32],
    ) -> StoreResult<Option<(RefreshRecord, SessionRecord, Option<UserRecord>)>> {
        let row = self
            .client()?
            .query_opt(
                "SELECT r.record, s.record, u.record FROM latch_refresh r \
                 JOIN latch_sessions s ON s.tenant = r.tenant AND s.id = r.session_id \
                 LEFT JOIN latch_users u ON u.tenant = s.tenant AND u.id = s.user_id \
                 WHERE r.tenant = $1 AND r.hash = $2",
                &[&tenant.as_str(), &hash.as_slice()],
            )
            .map_err(sql)?;
        let Some(row) = row else { return Ok(None) };
        let refresh = nullable("refresh", &row, 0)?.ok_or(StoreError::Corrupt("refresh"))?;
        let session = nullable("sessions", &row, 1)?.ok_or(StoreError::Corrupt("sessions"))?;
        Ok(Some((refresh, session, nullable("users", &row, 2)?)))
    }

    fn revoke_session(&self, tenant: &TenantId, id: Uuid, now: i64) -> StoreResult<Option<SessionRecord>> {
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(sql)?;
        let Some(row) = tx
            .query_opt(
                "SELECT record FROM latch_sessions WHERE tenant = $1 AND id = $2 FOR UPDATE",
                &[&tenant.as_str(), &id],
            )
            .map_err(sql)?
        else {
            return Ok(None);
        };
        let mut session: SessionRecord = decode("sessions", &row)?;
        if session.revoked_at.is_none() {
            session.revoked_at = Some(now);
            tx.execute(
                "UPDATE latch_sessions SET record = $3 WHERE tenant = $1 AND id = $2",
                &[&tenant.as_str(), &id, &encode(&session)?],
            )
            .map_err(sql)?;
            log_revocation(&mut tx, tenant.as_str(), id, now)?;
            tx.commit().map_err(sql)?;
        }
        Ok(Some(session))
    }

    fn revocations(&self, tenant: &TenantId, after: u64, ended_since: i64) -> StoreResult<RevocationLog> {
        let mut client = self.client()?;
        // The position first: entries up to it committed before it was
        // visible (the log's row lock), so the second read sees them all.
        let Some(position) = client
            .query_opt("SELECT epoch, last FROM latch_revocation_log WHERE tenant = $1", &[&tenant.as_str()])
            .map_err(sql)?
        else {
            return Ok(RevocationLog::default());
        };
        let (epoch, last): (i64, i64) = (position.get(0), position.get(1));
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let rows = client
            .query(
                "SELECT seq, session_id, ended_at FROM latch_revocations \
                 WHERE tenant = $1 AND seq > $2 AND seq <= $3 AND ended_at >= $4 ORDER BY seq",
                &[&tenant.as_str(), &after, &last, &ended_since],
            )
            .map_err(sql)?;
        let entries = rows
            .iter()
            .map(|row| Revocation { seq: row.get::<_, i64>(0) as u64, session_id: row.get(1), ended_at: row.get(2) })
            .collect();
        Ok(RevocationLog { epoch: epoch as u64, last: last as u64, entries })
    }

    fn purge_revocations(&self, ended_before: i64) -> StoreResult<u64> {
        self.client()?.execute("DELETE FROM latch_revocations WHERE ended_at < $1", &[&ended_before]).map_err(sql)
    }

    fn list_sessions(&self, tenant: &TenantId, user: Uuid) -> StoreResult<Vec<SessionRecord>> {
        let rows = self
            .client()?
            .query(
                "SELECT record FROM latch_sessions WHERE tenant = $1 AND user_id = $2 ORDER BY created_at, id",
                &[&tenant.as_str(), &user],
            )
            .map_err(sql)?;
        decode_all("sessions", &rows)
    }
}

impl EventStore for PostgresStore {
    fn append_event(&self, event: &EventRecord, retain: usize) -> StoreResult<()> {
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(sql)?;
        let tenant = event.tenant.as_str();
        tx.execute(
            "INSERT INTO latch_events (tenant, id, record) VALUES ($1, $2, $3)",
            &[&tenant, &event.id, &encode(event)?],
        )
        .map_err(sql)?;
        // Ids are UUIDv7: by id is by time. Beyond `retain`, the oldest go.
        let retain = i64::try_from(retain).unwrap_or(i64::MAX);
        tx.execute(
            "DELETE FROM latch_events WHERE tenant = $1 AND id IN \
             (SELECT id FROM latch_events WHERE tenant = $1 ORDER BY id DESC OFFSET $2)",
            &[&tenant, &retain],
        )
        .map_err(sql)?;
        tx.commit().map_err(sql)
    }

    fn list_events(&self, tenant: &TenantId, limit: usize, before: Option<Uuid>) -> StoreResult<Vec<EventRecord>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .client()?
            .query(
                "SELECT record FROM latch_events WHERE tenant = $1 AND ($2::uuid IS NULL OR id < $2) \
                 ORDER BY id DESC LIMIT $3",
                &[&tenant.as_str(), &before, &limit],
            )
            .map_err(sql)?;
        decode_all("events", &rows)
    }
}

impl OneTimeTokenStore for PostgresStore {
    fn put_one_time(&self, tenant: &TenantId, hash: &[u8; 32], record: &OneTimeRecord) -> StoreResult<()> {
        self.client()?
            .execute(
                "INSERT INTO latch_one_time (tenant, hash, record) VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant, hash) DO UPDATE SET record = excluded.record",
                &[&tenant.as_str(), &hash.as_slice(), &encode(record)?],
            )
            .map_err(sql)?;
        Ok(())
    }

    fn take_one_time(
        &self,
        tenant: &TenantId,
        hash: &[u8; 32],
        purpose: &str,
        now: i64,
    ) -> StoreResult<Option<OneTimeRecord>> {
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(sql)?;
        let key: [&(dyn ::postgres::types::ToSql + Sync); 2] = [&tenant.as_str(), &hash.as_slice()];
        let Some(row) = tx
            .query_opt("SELECT record FROM latch_one_time WHERE tenant = $1 AND hash = $2 FOR UPDATE", &key)
            .map_err(sql)?
        else {
            return Ok(None);
        };
        let record: OneTimeRecord = decode("one_time", &row)?;
        // Presented where it does not belong: refused, and not used up.
        if record.purpose != purpose {
            return Ok(None);
        }
        tx.execute("DELETE FROM latch_one_time WHERE tenant = $1 AND hash = $2", &key).map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok((record.expires_at > now).then_some(record))
    }

    fn purge_one_time(&self, now: i64) -> StoreResult<u64> {
        self.client()?.execute("DELETE FROM latch_one_time WHERE expires_at <= $1", &[&now]).map_err(sql)
    }
}

impl ClientStore for PostgresStore {
    fn create_client(&self, client: &ClientRecord) -> StoreResult<()> {
        self.client()?
            .execute(
                "INSERT INTO latch_clients (tenant, client_id, record) VALUES ($1, $2, $3)",
                &[&client.tenant.as_str(), &client.client_id, &encode(client)?],
            )
            .map_err(sql)?;
        Ok(())
    }

    fn get_client(&self, tenant: &TenantId, client_id: &str) -> StoreResult<Option<ClientRecord>> {
        let row = self.client()?.query_opt(
            "SELECT record FROM latch_clients WHERE tenant = $1 AND client_id = $2",
            &[&tenant.as_str(), &client_id],
        );
        row.map_err(sql)?.map(|row| decode("clients", &row)).transpose()
    }

    fn list_clients(&self, tenant: &TenantId) -> StoreResult<Vec<ClientRecord>> {
        let rows = self
            .client()?
            .query("SELECT record FROM latch_clients WHERE tenant = $1 ORDER BY client_id", &[&tenant.as_str()])
            .map_err(sql)?;
        decode_all("clients", &rows)
    }

    fn update_client(
        &self,
        tenant: &TenantId,
        client_id: &str,
        change: &mut dyn FnMut(&mut ClientRecord) -> Change,
    ) -> StoreResult<Option<ClientRecord>> {
        let key: [&(dyn ::postgres::types::ToSql + Sync); 2] = [&tenant.as_str(), &client_id];
        self.update("latch_clients", "tenant = $1 AND client_id = $2", &key, None, &mut |client: &mut ClientRecord| {
            let (tenant, id) = (client.tenant.clone(), client.client_id.clone());
            let decided = change(client);
            // Tenant and id are the row's key; a change cannot move them.
            (client.tenant, client.client_id) = (tenant, id);
            Ok(decided)
        })
    }

    fn delete_client(&self, tenant: &TenantId, client_id: &str) -> StoreResult<bool> {
        let removed = self
            .client()?
            .execute("DELETE FROM latch_clients WHERE tenant = $1 AND client_id = $2", &[&tenant.as_str(), &client_id])
            .map_err(sql)?;
        Ok(removed > 0)
    }
}

impl BrowserSessionStore for PostgresStore {
    fn put_browser_session(
        &self,
        tenant: &TenantId,
        hash: &[u8; 32],
        record: &BrowserSessionRecord,
    ) -> StoreResult<()> {
        self.client()?
            .execute(
                "INSERT INTO latch_browser_sessions (tenant, hash, record) VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant, hash) DO UPDATE SET record = excluded.record",
                &[&tenant.as_str(), &hash.as_slice(), &encode(record)?],
            )
            .map_err(sql)?;
        Ok(())
    }

    fn get_browser_session(&self, tenant: &TenantId, hash: &[u8; 32]) -> StoreResult<Option<BrowserSessionRecord>> {
        let row = self.client()?.query_opt(
            "SELECT record FROM latch_browser_sessions WHERE tenant = $1 AND hash = $2",
            &[&tenant.as_str(), &hash.as_slice()],
        );
        row.map_err(sql)?.map(|row| decode("browser_sessions", &row)).transpose()
    }

    fn update_browser_session(
        &self,
        tenant: &TenantId,
        hash: &[u8; 32],
        change: &mut dyn FnMut(&mut BrowserSessionRecord) -> Change,
    ) -> StoreResult<Option<BrowserSessionRecord>> {
        let key: [&(dyn ::postgres::types::ToSql + Sync); 2] = [&tenant.as_str(), &hash.as_slice()];
        self.update("latch_browser_sessions", "tenant = $1 AND hash = $2", &key, None, &mut |record| Ok(change(record)))
    }

    fn delete_browser_session(&self, tenant: &TenantId, hash: &[u8; 32]) -> StoreResult<Option<BrowserSessionRecord>> {
        let row = self.client()?.query_opt(
            "DELETE FROM latch_browser_sessions WHERE tenant = $1 AND hash = $2 RETURNING record",
            &[&tenant.as_str(), &hash.as_slice()],
        );
        row.map_err(sql)?.map(|row| decode("browser_sessions", &row)).transpose()
    }

    fn purge_browser_sessions(&self, now: i64) -> StoreResult<u64> {
        self.client()?.execute("DELETE FROM latch_browser_sessions WHERE expires_at <= $1", &[&now]).map_err(sql)
    }
}

impl MetaStore for PostgresStore {
    fn get_meta(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let row = self.client()?.query_opt("SELECT value FROM latch_meta WHERE key = $1", &[&key]).map_err(sql)?;
        Ok(row.map(|row| row.get(0)))
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> StoreResult<()> {
        self.client()?
            .execute(
                "INSERT INTO latch_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&key, &value],
            )
            .map_err(sql)?;
        Ok(())
    }

    fn put_meta_if_absent(&self, key: &str, value: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        let mut client = self.client()?;
        // A conflicting insert waits for the other transaction, so a row
        // found here is committed.
        let inserted = client
            .execute(
                "INSERT INTO latch_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key, &value],
            )
            .map_err(sql)?;
        if inserted == 1 {
            return Ok(None);
        }
        let row = client.query_one("SELECT value FROM latch_meta WHERE key = $1", &[&key]).map_err(sql)?;
        Ok(Some(row.get(0)))
    }
}

impl Store for PostgresStore {
    fn scheduled_work(&self) -> StoreResult<Option<ScheduledWork>> {
        let mut client = self.client()?;
        let taken: bool =
            client.query_one("SELECT pg_try_advisory_lock($1)", &[&SCHEDULED_WORK_LOCK]).map_err(sql)?.get(0);
        Ok(taken.then(|| ScheduledWork(Box::new(ScheduledWorkLock(Some(client))))))
    }

    fn watch_tenants(&self, changed: TenantChanged) -> StoreResult<Option<Watch>> {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (config, tls, flag) = (self.config.clone(), self.tls.clone(), stop.clone());
        std::thread::Builder::new()
            .name("latch-listen".into())
            .spawn(move || listen(config, tls, changed, flag))
            .map_err(backend)?;
        Ok(Some(Watch(Box::new(Listener(stop)))))
    }

    fn flush(&self) -> StoreResult<()> {
        // Every write committed synchronously: nothing is waiting.
        Ok(())
    }

    fn writes_possible(&self) -> StoreResult<()> {
        self.client()?.client.simple_query("SELECT 1").map(|_| ()).map_err(sql)
    }

    fn export(&self, out: &mut dyn std::io::Write) -> StoreResult<u64> {
        use ::postgres::fallible_iterator::FallibleIterator as _;
        let mut client = self.client()?;
        // One snapshot: other nodes go on writing, and the file is as of one moment.
        let mut tx = client
            .client
            .build_transaction()
            .isolation_level(::postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(sql)?;
        let mut writer = BackupWriter::start(out, backup::created_now())?;
        for (table, query) in EXPORT {
            let mut rows = tx.query_raw(query, std::iter::empty::<i32>()).map_err(sql)?;
            while let Some(row) = rows.next().map_err(sql)? {
                writer.entry(&exported(table, &row)?)?;
            }
        }
        tx.commit().map_err(sql)?;
        writer.finish()
    }

    fn import(&self, entries: &mut dyn Iterator<Item = StoreResult<Entry>>) -> StoreResult<u64> {
        let mut client = self.client()?;
        // One transaction: a file that turns out damaged at its end leaves nothing.
        let mut tx = client.transaction().map_err(sql)?;
        let holds_data: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM latch_tenants) OR EXISTS (SELECT 1 FROM latch_meta WHERE key <> $1)",
                &[&super::sled::FORMAT_KEY],
            )
            .map_err(sql)?
            .get(0);
        if holds_data {
            return Err(StoreError::Format(
                "the database already holds latch data; restore only into an empty one".into(),
            ));
        }
        let mut records = 0;
        for entry in entries {
            let entry = entry?;
            if backup::is_engine_meta(&entry) {
                continue;
            }
            records += 1;
            match &entry {
                Entry::Meta { key, value } => {
                    tx.execute("INSERT INTO latch_meta (key, value) VALUES ($1, $2)", &[key, value])
                }
                Entry::Tenant { record } => tx.execute(
                    "INSERT INTO latch_tenants (id, record) VALUES ($1, $2)",
                    &[&record.id.as_str(), &encode(record)?],
                ),
                Entry::Key { tenant, record } => tx.execute(
                    "INSERT INTO latch_keys (tenant, kid, created_at, record) VALUES ($1, $2, $3, $4)",
                    &[&tenant.as_str(), &record.kid, &record.created_at, &encode(record)?],
                ),
                Entry::User { record } => tx.execute(
                    "INSERT INTO latch_users (tenant, id, email_key, record) VALUES ($1, $2, $3, $4)",
                    &[&record.tenant.as_str(), &record.id, &record.email_key, &encode(record)?],
                ),
                Entry::Session { record } => tx.execute(
                    "INSERT INTO latch_sessions (tenant, id, user_id, created_at, record) VALUES ($1, $2, $3, $4, $5)",
                    &[&record.tenant.as_str(), &record.id, &record.user_id, &record.created_at, &encode(record)?],
                ),
                Entry::Refresh { tenant, hash, record } => tx.execute(
                    "INSERT INTO latch_refresh (tenant, hash, session_id, record) VALUES ($1, $2, $3, $4)",
                    &[&tenant.as_str(), &hash.as_slice(), &record.session_id, &encode(record)?],
                ),
                Entry::Event { record } => tx.execute(
                    "INSERT INTO latch_events (tenant, id, record) VALUES ($1, $2, $3)",
                    &[&record.tenant.as_str(), &record.id, &encode(record)?],
                ),
                Entry::OneTime { tenant, hash, record } => tx.execute(
                    "INSERT INTO latch_one_time (tenant, hash, record) VALUES ($1, $2, $3)",
                    &[&tenant.as_str(), &hash.as_slice(), &encode(record)?],
                ),
                Entry::Client { record } => tx.execute(
                    "INSERT INTO latch_clients (tenant, client_id, record) VALUES ($1, $2, $3)",
                    &[&record.tenant.as_str(), &record.client_id, &encode(record)?],
                ),
                Entry::BrowserSession { tenant, hash, record } => tx.execute(
                    "INSERT INTO latch_browser_sessions (tenant, hash, record) VALUES ($1, $2, $3)",
                    &[&tenant.as_str(), &hash.as_slice(), &encode(record)?],
                ),
            }
            .map_err(sql)?;
        }
        tx.commit().map_err(sql)?;
        Ok(records)
    }
}

/// What a backup reads, table by table, in key order.
const EXPORT: [(&str, &str); 10] = [
    ("meta", "SELECT key, value FROM latch_meta ORDER BY key"),
    ("tenants", "SELECT record FROM latch_tenants ORDER BY id"),
    ("keys", "SELECT tenant, record FROM latch_keys ORDER BY tenant, kid"),
    ("users", "SELECT record FROM latch_users ORDER BY tenant, id"),
    ("sessions", "SELECT record FROM latch_sessions ORDER BY tenant, id"),
    ("refresh", "SELECT tenant, hash, record FROM latch_refresh ORDER BY tenant, hash"),
    ("events", "SELECT record FROM latch_events ORDER BY tenant, id"),
    ("one_time", "SELECT tenant, hash, record FROM latch_one_time ORDER BY tenant, hash"),
    ("clients", "SELECT record FROM latch_clients ORDER BY tenant, client_id"),
    ("browser_sessions", "SELECT tenant, hash, record FROM latch_browser_sessions ORDER BY tenant, hash"),
];

/// A row of one of the [`EXPORT`] queries as a backup record.
fn exported(table: &'static str, row: &Row) -> StoreResult<Entry> {
    let corrupt = |_| StoreError::Corrupt(table);
    let tenant = || -> StoreResult<TenantId> {
        let tenant: &str = row.try_get("tenant").map_err(corrupt)?;
        TenantId::parse(tenant).map_err(|_| StoreError::Corrupt(table))
    };
    let hash = || -> StoreResult<[u8; 32]> {
        let hash: &[u8] = row.try_get("hash").map_err(corrupt)?;
        <[u8; 32]>::try_from(hash).map_err(|_| StoreError::Corrupt(table))
    };
    Ok(match table {
        "meta" => {
            Entry::Meta { key: row.try_get("key").map_err(corrupt)?, value: row.try_get("value").map_err(corrupt)? }
        }
        "tenants" => Entry::Tenant { record: decode(table, row)? },
        "keys" => Entry::Key { tenant: tenant()?, record: decode(table, row)? },
        "users" => Entry::User { record: decode(table, row)? },
        "sessions" => Entry::Session { record: decode(table, row)? },
        "refresh" => Entry::Refresh { tenant: tenant()?, hash: hash()?, record: decode(table, row)? },
        "events" => Entry::Event { record: decode(table, row)? },
        "one_time" => Entry::OneTime { tenant: tenant()?, hash: hash()?, record: decode(table, row)? },
        "clients" => Entry::Client { record: decode(table, row)? },
        _ => Entry::BrowserSession { tenant: tenant()?, hash: hash()?, record: decode(table, row)? },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh database for one test, on the server `LATCH_TEST_POSTGRES`
    /// names (libpq key-value form; the test command starts one); dropped
    /// afterwards.
    pub(crate) struct TestDatabase {
        admin: String,
        name: String,
        pub url: String,
    }

    impl TestDatabase {
        pub(crate) fn new() -> TestDatabase {
            let admin = std::env::var("LATCH_TEST_POSTGRES")
                .expect("LATCH_TEST_POSTGRES names a PostgreSQL server: run ./test.sh, which starts one");
            let name = format!("latch_test_{}", Uuid::new_v4().simple());
            let mut client =
                ::postgres::Client::connect(&admin, ::postgres::NoTls).expect("connect to the test server");
            client.batch_execute(&format!("CREATE DATABASE {name}")).expect("create the test database");
            // In the key-value form a later key wins: the same server, this database.
            let url = format!("{admin} dbname={name}");
            TestDatabase { admin, name, url }
        }
    }

    impl Drop for TestDatabase {
        fn drop(&mut self) {
            if let Ok(mut client) = ::postgres::Client::connect(&self.admin, ::postgres::NoTls) {
                let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
            }
        }
    }

    #[test]
    fn the_postgres_store_passes_the_conformance_suite() {
        let database = TestDatabase::new();
        let store = PostgresStore::connect(&database.url, 8).expect("connects and creates the schema");
        conformance::run(&store);
    }

    #[test]
    fn the_schema_is_made_once_and_a_newer_one_is_refused() {
        let database = TestDatabase::new();
        // Nodes starting together: the advisory lock makes one create the schema.
        let starts: Vec<_> = (0..4)
            .map(|_| {
                let url = database.url.clone();
                std::thread::spawn(move || PostgresStore::connect(&url, 2).map(|_| ()))
            })
            .collect();
        for start in starts {
            start.join().expect("thread").expect("every node starts");
        }
        let mut client = ::postgres::Client::connect(&database.url, ::postgres::NoTls).expect("connect");
        let versions: i64 = client.query_one("SELECT count(*) FROM latch_schema", &[]).expect("count").get(0);
        assert_eq!(versions, 1, "one schema row");
        client.execute("UPDATE latch_schema SET version = $1", &[&(SCHEMA_VERSION + 1)]).expect("bump");
        let refused = PostgresStore::connect(&database.url, 2).err().expect("a newer schema is refused");
        assert!(refused.to_string().contains("newer than this binary"), "{refused}");
    }

    #[test]
    fn a_version_1_database_gets_the_revocation_log_at_start_and_keeps_its_data() {
        let database = TestDatabase::new();
        let tenant = conformance::tenant("v1");
        {
            let store = PostgresStore::connect(&database.url, 2).expect("version 2");
            store.create_tenant(&tenant, &[]).expect("tenant");
        }
        // What a version-1 latch left: no log tables, version 1.
        let mut client = ::postgres::Client::connect(&database.url, ::postgres::NoTls).expect("connect");
        client
            .batch_execute("DROP TABLE latch_revocations, latch_revocation_log; UPDATE latch_schema SET version = 1")
            .expect("downgrade");
        let store = PostgresStore::connect(&database.url, 2).expect("upgrades");
        let version: i32 = client.query_one("SELECT version FROM latch_schema", &[]).expect("version").get(0);
        assert_eq!(version, SCHEMA_VERSION);
        assert!(store.get_tenant(&tenant.id).expect("read").is_some(), "the data stays");
        assert_eq!(store.revocations(&tenant.id, 0, 0).expect("the log is there"), RevocationLog::default());
    }

    #[test]
    fn one_node_at_a_time_runs_the_scheduled_work() {
        let database = TestDatabase::new();
        let (a, b) = (
            PostgresStore::connect(&database.url, 2).expect("node a"),
            PostgresStore::connect(&database.url, 2).expect("node b"),
        );
        let held = a.scheduled_work().expect("asks").expect("the first node gets it");
        assert!(b.scheduled_work().expect("asks").is_none(), "not while a holds it");
        assert!(b.scheduled_work().expect("asks").is_none(), "nor when asked again");
        drop(held);
        let taken = b.scheduled_work().expect("asks").expect("b gets it once a lets go");
        assert!(a.scheduled_work().expect("asks").is_none(), "and then a waits");
        drop(taken);
    }

    /// Every record of `store`, as a backup file and as sorted records.
    fn exported(store: &dyn Store) -> (Vec<u8>, Vec<String>) {
        let mut file = Vec::new();
        let count = store.export(&mut file).expect("export");
        let mut input = file.as_slice();
        let entries: Vec<Entry> =
            backup::BackupReader::new(&mut input).expect("header").collect::<StoreResult<_>>().expect("reads");
        assert_eq!(entries.len() as u64, count);
        let mut lines: Vec<String> = entries.iter().map(|e| serde_json::to_string(e).expect("json")).collect();
        lines.sort();
        (file, lines)
    }

    #[test]
    fn a_backup_moves_a_store_from_sled_to_postgres_and_back_record_for_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sled = super::super::sled::SledStore::open(&dir.path().join("a"), 8 << 20).expect("sled");
        conformance::run(&sled);
        // The suite takes or purges its single-use tokens: one still waiting.
        let waiting = OneTimeRecord::new("verify_email", Uuid::now_v7(), i64::MAX);
        sled.put_one_time(&TenantId::parse("acme").expect("slug"), &[9; 32], &waiting).expect("put");
        let (file, from_sled) = exported(&sled);
        let kinds: std::collections::BTreeSet<String> = from_sled
            .iter()
            .map(|line| serde_json::from_str::<Value>(line).expect("json")["kind"].as_str().expect("kind").to_owned())
            .collect();
        assert_eq!(kinds.len(), 10, "every kind of record is in the data set: {kinds:?}");

        let database = TestDatabase::new();
        let postgres = PostgresStore::connect(&database.url, 4).expect("connects");
        let loaded = postgres.import(&mut backup::BackupReader::new(&mut file.as_slice()).expect("header"));
        assert_eq!(loaded.expect("import") as usize, from_sled.len());
        let (file, from_postgres) = exported(&postgres);
        assert_eq!(from_postgres, from_sled, "PostgreSQL holds what sled held");

        let back = dir.path().join("b");
        super::super::sled::SledStore::restore(&back, &mut file.as_slice()).expect("restore into sled");
        let sled_again = super::super::sled::SledStore::open(&back, 8 << 20).expect("opens");
        assert_eq!(exported(&sled_again).1, from_sled, "and sled again, record for record");

        // Only into an empty database.
        let again = postgres.import(&mut backup::BackupReader::new(&mut file.as_slice()).expect("header"));
        assert!(again.expect_err("not empty").to_string().contains("already holds"));
        // A file damaged at its end leaves nothing behind.
        let fresh = TestDatabase::new();
        let empty = PostgresStore::connect(&fresh.url, 2).expect("connects");
        let text = String::from_utf8(file).expect("utf-8");
        let truncated: String = text.lines().take(20).map(|l| format!("{l}\n")).collect();
        let failed = empty.import(&mut backup::BackupReader::new(&mut truncated.as_bytes()).expect("header"));
        assert!(failed.expect_err("truncated").to_string().contains("truncated"));
        assert!(empty.list_tenants().expect("list").is_empty(), "rolled back");
        assert_eq!(empty.get_meta("conformance").expect("get"), None);
    }

    #[test]
    fn tenant_changes_on_one_node_are_announced_to_the_others() {
        let database = TestDatabase::new();
        let (a, b) = (
            PostgresStore::connect(&database.url, 2).expect("node a"),
            PostgresStore::connect(&database.url, 2).expect("node b"),
        );
        let (sender, heard) = std::sync::mpsc::channel::<Option<String>>();
        let sender = std::sync::Mutex::new(sender);
        let changed: TenantChanged = std::sync::Arc::new(move |tenant: Option<&TenantId>| {
            let _ = sender.lock().expect("lock").send(tenant.map(|t| t.as_str().to_owned()));
        });
        let watch = b.watch_tenants(changed).expect("watch").expect("PostgreSQL announces changes");
        let wait = std::time::Duration::from_secs(30);
        // On (re)connecting, whatever changed before is unknown: drop all.
        assert_eq!(heard.recv_timeout(wait).expect("first"), None);

        let id = TenantId::parse("announced").expect("slug");
        a.create_tenant(&conformance::tenant("announced"), &[conformance::key_record("k1", 1)]).expect("create");
        a.update_tenant(&id, &mut |t| {
            t.name = "Renamed".into();
            Change::Write
        })
        .expect("update");
        a.rotate_keys(&id, &conformance::key_record("k2", 2)).expect("rotate");
        // A change that writes nothing announces nothing.
        a.update_tenant(&id, &mut |_| Change::Keep).expect("keep");
        a.delete_tenant(&id).expect("delete");
        for what in ["update", "rotation", "deletion"] {
            assert_eq!(heard.recv_timeout(wait).expect(what).as_deref(), Some("announced"), "{what}");
        }
        drop(watch);
        // Stopped: the thread ends and drops its sender.
        while let Ok(extra) = heard.recv_timeout(wait) {
            assert_eq!(extra, None, "nothing but the reconnect markers after the three changes");
        }
    }

    #[test]
    fn the_password_file_is_read_as_libpq_reads_it() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("pgpass");
        let lines = "# host:port:database:user:password\n\
                     db.example:5432:other:latch:wrong\n\
                     db.example:*:latch:latch:pa\\:ss\\\\word\n\
                     localhost:5432:sock:latch:through-the-socket\n\
                     *:*:*:*:anything-else\n";
        std::fs::write(&file, lines).expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let password = |url: &str, env: Option<&str>| {
            let database = Database::parse(url, env, Some(&file)).expect("parses");
            database.config.get_password().map(|p| String::from_utf8(p.to_vec()).expect("utf-8"))
        };
        assert_eq!(password("postgres://latch@db.example/latch", None).as_deref(), Some("pa:ss\\word"));
        assert_eq!(password("postgres://latch@db.example/else", None).as_deref(), Some("anything-else"));
        assert_eq!(
            password("postgresql://latch@%2Frun%2Fpostgresql/sock", None).as_deref(),
            Some("through-the-socket")
        );
        // The URL's password first, then LATCH_STORE_PASSWORD, then the file.
        assert_eq!(password("postgres://latch:in-url@db.example/latch", Some("env")).as_deref(), Some("in-url"));
        assert_eq!(password("postgres://latch@db.example/latch", Some("env")).as_deref(), Some("env"));
        // A missing file gives no password; one others may read is refused.
        let missing = Database::parse("postgres://latch@db.example/latch", None, Some(&dir.path().join("none")));
        assert_eq!(missing.expect("parses").config.get_password(), None);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let refused = Database::parse("postgres://latch@db.example/latch", None, Some(&file)).expect_err("0644");
        assert!(refused.contains("chmod 0600") && !refused.contains("pa:ss"), "{refused}");
        assert_eq!(
            password_file(None, Some("/home/ada")).as_deref(),
            Some(Path::new("/home/ada/.pgpass")),
            "~/.pgpass unless PGPASSFILE names another"
        );
        assert_eq!(
            password_file(Some("/etc/latch/pgpass"), Some("/home/ada")).as_deref(),
            Some(Path::new("/etc/latch/pgpass"))
        );
    }

    #[test]
    fn an_unreachable_database_is_a_clear_error() {
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        let error =
            PostgresStore::connect("postgres://latch@127.0.0.1:1/latch?connect_timeout=2", 1).err().expect("refused");
        assert!(error.to_string().contains("cannot reach PostgreSQL"), "{error}");
    }
}
