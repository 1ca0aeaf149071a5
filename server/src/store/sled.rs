//! The sled engine: one tree per relation, keys prefixed by the tenant id and
//! a NUL byte (tenant slugs cannot contain NUL, so prefixes never overlap),
//! reverse-lookup trees updated in multi-tree transactions, except on the
//! login and refresh paths (see `rotate_session`).

use std::ops::Bound;
use std::path::Path;

use ::sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::backup::{self, BackupWriter, Entry};
use super::*;

/// The on-disk format this build reads and writes.
pub const FORMAT: &str = "latch-store/1";
/// The meta key holding the format version.
pub const FORMAT_KEY: &str = "format";
/// The meta key holding the number of the last flush (big-endian u64).
const COMMIT_SEQ_KEY: &str = "commit_seq";
/// The file beside sled's own that records a flush number known durable.
pub const WITNESS_FILE: &str = "latch.state";
/// The witness is rewritten at most this often (plus when the store closes):
/// it is a lower bound, so a late update never makes a sound store look damaged.
/// A file written and removed to learn whether the disk takes writes again
/// (see `writes_possible`); as large as a sled segment, which is what a
/// write to a full store needs.
const PROBE_FILE: &str = "latch.probe";
const PROBE_BYTES: usize = 512 * 1024;
const WITNESS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// What an operator does about a damaged store.
const RESTORE_HINT: &str = "restore the last backup into a new directory with \
    `latch restore FILE --data-dir NEW_DIR` and start latch there (docs/decisions.md, \"Integrity\")";

/// A key and value to write into a tree.
type TreeWrite<'a> = (&'a ::sled::Tree, Vec<u8>, Vec<u8>);

/// A latch store in a sled database.
pub struct SledStore {
    db: ::sled::Db,
    meta: ::sled::Tree,
    tenants: ::sled::Tree,
    keys: ::sled::Tree,
    users: ::sled::Tree,
    users_by_email: ::sled::Tree,
    sessions: ::sled::Tree,
    sessions_by_user: ::sled::Tree,
    refresh: ::sled::Tree,
    events: ::sled::Tree,
    event_counts: ::sled::Tree,
    one_time: ::sled::Tree,
    clients: ::sled::Tree,
    browser_sessions: ::sled::Tree,
    /// Revocation log entries: tenant, NUL, `seq` (big-endian) -> [`LoggedRevocation`].
    revocations: ::sled::Tree,
    /// Each tenant's revocation log position: tenant -> [`LogPosition`].
    revocation_log: ::sled::Tree,
    witness: Witness,
    /// Rotations of any tenant's keys, one at a time (see `rotate_keys`).
    key_rotation: std::sync::Mutex<()>,
}

/// The record, outside sled's files, that this directory holds an
/// initialised store and that flush number `n` was durable in it.
///
/// sled recovers what its files allow: a deleted, emptied, truncated or
/// garbled `db` opens as an empty or shorter store without complaint. Every
/// flush first increments a counter inside the store (`commit_seq`); after
/// the flush succeeds the counter is durable, and from time to time (and at
/// close) it is written here. On open, a store whose counter is below the
/// witness has lost committed writes, and a missing store under a witness was
/// lost whole: both are refused instead of starting as new.
struct Witness {
    path: std::path::PathBuf,
    /// The highest flush number known durable, and when the file last got one.
    state: std::sync::Mutex<(u64, Option<std::time::Instant>)>,
}

#[derive(Serialize, serde::Deserialize)]
struct WitnessFile {
    format: String,
    commit_seq: u64,
}

impl Witness {
    fn new(dir: &Path) -> Witness {
        Witness { path: dir.join(WITNESS_FILE), state: std::sync::Mutex::new((0, None)) }
    }

    /// The flush number on file; `None` if there is no witness (a new or
    /// pre-witness directory).
    fn read(&self) -> StoreResult<Option<u64>> {
        let text = match std::fs::read(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::Backend(format!("cannot read {}: {e}", self.path.display()))),
        };
        let file: WitnessFile = serde_json::from_slice(&text)
            .map_err(|_| StoreError::Damaged(format!("{} is garbled; {RESTORE_HINT}", self.path.display())))?;
        Ok(Some(file.commit_seq))
    }

    /// Notes that flush `seq` is durable; writes the file when `force` or
    /// when the last write is older than [`WITNESS_INTERVAL`].
    fn durable(&self, seq: u64, force: bool) -> StoreResult<()> {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.0 = state.0.max(seq);
        if !force && state.1.is_some_and(|at| at.elapsed() < WITNESS_INTERVAL) {
            return Ok(());
        }
        let file = WitnessFile { format: FORMAT.into(), commit_seq: state.0 };
        write_durably(&self.path, &encode(&file)?)
            .map_err(|e| StoreError::Unwritable(format!("cannot write {}: {e}", self.path.display())))?;
        state.1 = Some(std::time::Instant::now());
        Ok(())
    }
}

/// Replaces `path` with `bytes` so that a crash leaves the old or the new
/// content, never a mix: a temporary file, synced, renamed over, then the
/// directory synced.
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let temporary = path.with_extension("tmp");
    let mut file = crate::private::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// sled's I/O errors mean the disk did not take a write (sled keeps the
/// first one and returns it for every later write: see `store::commit`).
fn backend(e: ::sled::Error) -> StoreError {
    match e {
        ::sled::Error::Io(io) => StoreError::Unwritable(io.to_string()),
        other => StoreError::Backend(other.to_string()),
    }
}

fn encode<T: Serialize>(value: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Backend(e.to_string()))
}

fn decode<T: DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|_| StoreError::Corrupt(tree))
}

fn key(tenant: &TenantId, rest: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(tenant.as_str().len() + 1 + rest.len());
    key.extend_from_slice(tenant.as_str().as_bytes());
    key.push(0);
    key.extend_from_slice(rest);
    key
}

fn prefix(tenant: &TenantId) -> Vec<u8> {
    key(tenant, &[])
}

/// Turns a transaction's outcome into a store result.
fn tx<T>(result: Result<T, TransactionError<StoreError>>) -> StoreResult<T> {
    result.map_err(|e| match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => backend(e),
    })
}

fn abort<T>(e: StoreError) -> Result<T, ConflictableTransactionError<StoreError>> {
    Err(ConflictableTransactionError::Abort(e))
}

fn tx_decode<T: DeserializeOwned>(
    tree: &'static str,
    bytes: &[u8],
) -> Result<T, ConflictableTransactionError<StoreError>> {
    decode(tree, bytes).map_err(ConflictableTransactionError::Abort)
}

fn tx_encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ConflictableTransactionError<StoreError>> {
    encode(value).map_err(ConflictableTransactionError::Abort)
}

fn seq_value(bytes: &[u8]) -> StoreResult<u64> {
    <[u8; 8]>::try_from(bytes).map(u64::from_be_bytes).map_err(|_| StoreError::Corrupt("meta"))
}

impl Drop for SledStore {
    /// Records the last durable flush, so the next open checks against it.
    fn drop(&mut self) {
        let (seq, written) = self.witness.state.lock().map_or((0, None), |state| *state);
        if written.is_none() {
            return;
        }
        if let Err(e) = self.witness.durable(seq, true) {
            tracing::error!(error = %e, "could not record the store's last flush");
        }
    }
}

/// Applies `change` to the record under `key` in a compare-and-swap loop:
/// read, decode, change, swap only if the stored bytes are still the ones
/// read; on a lost race the change runs again on the newer record. `None`
/// if there is no record.
fn update_in_place<T: Serialize + DeserializeOwned>(
    tree: &::sled::Tree,
    name: &'static str,
    key: &[u8],
    change: &mut dyn FnMut(&mut T) -> StoreResult<Change>,
) -> StoreResult<Option<T>> {
    loop {
        let Some(old) = tree.get(key).map_err(backend)? else { return Ok(None) };
        let mut record: T = decode(name, &old)?;
        if change(&mut record)? == Change::Keep {
            return Ok(Some(record));
        }
        let new = encode(&record)?;
        match tree.compare_and_swap(key, Some(old), Some(new)).map_err(backend)? {
            Ok(()) => return Ok(Some(record)),
            Err(_) => continue,
        }
    }
}

impl SledStore {
    /// Opens (or creates) the store in `dir`, refusing directories that hold
    /// something else, a store of another format version, or a damaged
    /// store (see [`Witness`]). A store is created only in a new or empty
    /// directory.
    pub fn open(dir: &Path, cache_bytes: u64) -> StoreResult<SledStore> {
        let shown = dir.display();
        let witness = Witness::new(dir);
        let witnessed = witness.read()?;
        if let Some(seq) = witnessed {
            witness.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).0 = seq;
        }
        let damaged = |why: String| StoreError::Damaged(format!("the store in {shown} {why}; {RESTORE_HINT}"));
        if witnessed.is_some() {
            // Checked before sled opens the directory: sled would quietly
            // start a new, empty database in place of a missing one.
            for file in ["conf", "db"] {
                match std::fs::metadata(dir.join(file)) {
                    Ok(meta) if meta.len() > 0 => {}
                    Ok(_) => return Err(damaged(format!("is damaged: its file `{file}` is empty"))),
                    Err(_) => return Err(damaged(format!("is damaged: its file `{file}` is missing"))),
                }
            }
        } else if let Ok(mut entries) = std::fs::read_dir(dir)
            && entries.next().is_some()
            && !dir.join("conf").exists()
        {
            return Err(StoreError::Format(format!(
                "{shown} is not empty and is not a latch data directory; choose another --data-dir"
            )));
        }
        crate::private::dir(dir).map_err(|e| StoreError::Backend(format!("cannot create {shown}: {e}")))?;
        let db = ::sled::Config::new().path(dir).cache_capacity(cache_bytes).open().map_err(|e| match e {
            ::sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock") => {
                StoreError::Locked(shown.to_string())
            }
            other if witnessed.is_some() => damaged(format!("cannot be opened ({other})")),
            other => StoreError::Backend(format!("cannot open {shown}: {other}")),
        })?;
        let meta = db.open_tree("meta").map_err(backend)?;
        match meta.get(FORMAT_KEY).map_err(backend)? {
            Some(found) if found.as_ref() == FORMAT.as_bytes() => {}
            Some(found) => {
                return Err(StoreError::Format(format!(
                    "{shown} holds format {:?}, this latch reads {FORMAT:?}; use a matching latch version",
                    String::from_utf8_lossy(&found)
                )));
            }
            None if witnessed.is_some() => return Err(damaged("is empty, but it held a latch store".into())),
            None => {
                let foreign =
                    db.tree_names().iter().any(|name| {
                        name.as_ref() != b"meta" && db.open_tree(name).map(|t| !t.is_empty()).unwrap_or(true)
                    }) || !db.is_empty();
                if foreign {
                    return Err(StoreError::Format(format!("{shown} is a sled database but not a latch store")));
                }
                meta.insert(FORMAT_KEY, FORMAT.as_bytes()).map_err(backend)?;
            }
        }
        let stored = meta.get(COMMIT_SEQ_KEY).map_err(backend)?.map_or(Ok(0), |v| seq_value(&v))?;
        if let Some(witnessed) = witnessed
            && stored < witnessed
        {
            return Err(damaged(format!(
                "has lost committed writes: it ends at flush {stored}, but flush {witnessed} was durable"
            )));
        }
        // sled creates its files with the umask's modes; the directory is
        // owner-only already, and so are its files from here on.
        crate::private::contents(dir).map_err(|e| StoreError::Backend(format!("cannot restrict {shown}: {e}")))?;
        let tree = |name: &str| db.open_tree(name).map_err(backend);
        let store = SledStore {
            tenants: tree("tenants")?,
            keys: tree("keys")?,
            users: tree("users")?,
            users_by_email: tree("users_by_email")?,
            sessions: tree("sessions")?,
            sessions_by_user: tree("sessions_by_user")?,
            refresh: tree("refresh")?,
            events: tree("events")?,
            event_counts: tree("event_counts")?,
            one_time: tree("one_time")?,
            clients: tree("clients")?,
            browser_sessions: tree("browser_sessions")?,
            revocations: tree("revocations")?,
            revocation_log: tree("revocation_log")?,
            meta,
            db,
            witness,
            key_rotation: std::sync::Mutex::new(()),
        };
        // From here on the directory is witnessed: a new store (or one made
        // by a latch without witnesses) gets its file now.
        let seq = store.flush_numbered()?;
        store.witness.durable(seq, true)?;
        Ok(store)
    }

    /// Whether `dir` holds a latch store already (it may be damaged): what
    /// decides that a missing master key is an error rather than a first start.
    pub fn holds_store(dir: &Path) -> bool {
        dir.join(WITNESS_FILE).exists() || dir.join("conf").exists()
    }

    /// Numbers and runs a flush: the counter inside the store goes up first,
    /// so once the flush returns the store holds at least that number.
    /// Returns it.
    fn flush_numbered(&self) -> StoreResult<u64> {
        let next = self
            .meta
            .update_and_fetch(COMMIT_SEQ_KEY, |old| {
                let n = old.and_then(|b| <[u8; 8]>::try_from(b).ok()).map_or(0, u64::from_be_bytes);
                Some((n + 1).to_be_bytes().to_vec())
            })
            .map_err(backend)?
            .map_or(Ok(0), |v| seq_value(&v))?;
        self.db.flush().map_err(backend)?;
        Ok(next)
    }

    /// Restores a backup into `dir`, which must not exist or be empty. The
    /// file is checked as it is loaded; on any failure (a damaged file among
    /// them) the directory is removed again, so nothing half-restored stays.
    pub fn restore(dir: &Path, input: &mut dyn std::io::BufRead) -> StoreResult<u64> {
        let shown = dir.display();
        if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
            return Err(StoreError::Format(format!("{shown} is not empty; restore only into a new data directory")));
        }
        let mut reader = backup::BackupReader::new(input)?;
        let restored = (|| {
            let store = SledStore::open(dir, 8 << 20)?;
            let records = store.import(&mut reader)?;
            store.flush()?;
            Ok(records)
        })();
        if restored.is_err() {
            let _ = std::fs::remove_dir_all(dir);
        }
        restored
    }

    /// A record's engine keys: the tree entries that hold it and its index
    /// entries, as the trait's writes make them.
    fn entry_writes(&self, entry: &Entry) -> StoreResult<Vec<TreeWrite<'_>>> {
        Ok(match entry {
            Entry::Meta { key, value } => vec![(&self.meta, key.as_bytes().to_vec(), value.clone())],
            Entry::Tenant { record } => vec![(&self.tenants, record.id.as_str().as_bytes().to_vec(), encode(record)?)],
            Entry::Key { tenant, record } => vec![(&self.keys, key(tenant, record.kid.as_bytes()), encode(record)?)],
            Entry::User { record } => vec![
                (&self.users, key(&record.tenant, record.id.as_bytes()), encode(record)?),
                (&self.users_by_email, key(&record.tenant, record.email_key.as_bytes()), record.id.as_bytes().to_vec()),
            ],
            Entry::Session { record } => vec![
                (&self.sessions, key(&record.tenant, record.id.as_bytes()), encode(record)?),
                (
                    &self.sessions_by_user,
                    key(&record.tenant, &[record.user_id.as_bytes().as_slice(), record.id.as_bytes()].concat()),
                    Vec::new(),
                ),
            ],
            Entry::Refresh { tenant, hash, record } => vec![(&self.refresh, key(tenant, hash), encode(record)?)],
            Entry::Event { record } => vec![(&self.events, key(&record.tenant, record.id.as_bytes()), encode(record)?)],
            Entry::OneTime { tenant, hash, record } => vec![(&self.one_time, key(tenant, hash), encode(record)?)],
            Entry::Client { record } => {
                vec![(&self.clients, key(&record.tenant, record.client_id.as_bytes()), encode(record)?)]
            }
            Entry::BrowserSession { tenant, hash, record } => {
                vec![(&self.browser_sessions, key(tenant, hash), encode(record)?)]
            }
        })
    }

    /// The record a primary tree's entry holds; `None` for this engine's own meta.
    fn tree_entry(name: &'static str, k: &[u8], v: &[u8]) -> StoreResult<Option<Entry>> {
        backup::legacy_entry(name, k, v)
            .map(|entry| entry.filter(|entry| !backup::is_engine_meta(entry)))
            .map_err(|backup::NotARecord| StoreError::Corrupt(name))
    }

    fn named_trees(&self) -> [(&'static str, &::sled::Tree); 13] {
        [
            ("meta", &self.meta),
            ("tenants", &self.tenants),
            ("keys", &self.keys),
            ("users", &self.users),
            ("users_by_email", &self.users_by_email),
            ("sessions", &self.sessions),
            ("sessions_by_user", &self.sessions_by_user),
            ("refresh", &self.refresh),
            ("events", &self.events),
            ("event_counts", &self.event_counts),
            ("one_time", &self.one_time),
            ("clients", &self.clients),
            ("browser_sessions", &self.browser_sessions),
        ]
    }

    fn tenant_trees(&self) -> [&::sled::Tree; 11] {
        [
            &self.revocations,
            &self.keys,
            &self.users,
            &self.users_by_email,
            &self.sessions,
            &self.sessions_by_user,
            &self.refresh,
            &self.events,
            &self.one_time,
            &self.clients,
            &self.browser_sessions,
        ]
    }

    fn purge_tenant_data(&self, tenant: &TenantId) -> StoreResult<()> {
        let prefix = prefix(tenant);
        for tree in self.tenant_trees() {
            let mut batch = ::sled::Batch::default();
            for entry in tree.scan_prefix(&prefix).keys() {
                batch.remove(entry.map_err(backend)?);
            }
            tree.apply_batch(batch).map_err(backend)?;
        }
        self.event_counts.remove(tenant.as_str()).map_err(backend)?;
        self.revocation_log.remove(tenant.as_str()).map_err(backend)?;
        Ok(())
    }
}

/// A revocation log entry as the `revocations` tree holds it (its `seq` is the key).
#[derive(Serialize, serde::Deserialize)]
struct LoggedRevocation {
    session_id: Uuid,
    ended_at: i64,
}

/// Where a tenant's revocation log stands.
#[derive(Serialize, serde::Deserialize, Clone, Copy, Default)]
struct LogPosition {
    epoch: u64,
    last: u64,
}

/// Appends the end of `session_id` to `tenant`'s revocation log, inside the
/// transaction that ends it. The position is read and written in the same
/// transaction, so two revocations never take one `seq`, and one that sees
/// entry n also sees every entry before it.
fn log_revocation(
    revocations: &::sled::transaction::TransactionalTree,
    log: &::sled::transaction::TransactionalTree,
    tenant: &TenantId,
    session_id: Uuid,
    ended_at: i64,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    let mut position: LogPosition = match log.get(tenant.as_str())? {
        Some(bytes) => tx_decode("revocation_log", &bytes)?,
        None => LogPosition { epoch: new_epoch(), last: 0 },
    };
    position.last += 1;
    log.insert(tenant.as_str(), tx_encode(&position)?)?;
    let entry = tx_encode(&LoggedRevocation { session_id, ended_at })?;
    revocations.insert(key(tenant, &position.last.to_be_bytes()), entry)?;
    Ok(())
}

/// A random epoch for a new revocation log: non-zero and below 2^63, as in
/// PostgreSQL (where it is a `bigint`), so a cursor's numbers have at most 19 digits.
fn new_epoch() -> u64 {
    (Uuid::new_v4().as_u64_pair().0 >> 1).max(1)
}

impl TenantStore for SledStore {
    fn create_tenant(&self, tenant: &TenantRecord, keys: &[KeyRecord]) -> StoreResult<()> {
        if self.tenants.contains_key(tenant.id.as_str()).map_err(backend)? {
            return Err(StoreError::Conflict);
        }
        // Leftovers of an interrupted delete of the same id must not resurface.
        self.purge_tenant_data(&tenant.id)?;
        let record = encode(tenant)?;
        let keys = keys
            .iter()
            .map(|k| Ok((key(&tenant.id, k.kid.as_bytes()), encode(k)?)))
            .collect::<StoreResult<Vec<_>>>()?;
        tx((&self.tenants, &self.keys).transaction(|(tenants, key_tree)| {
            if tenants.get(tenant.id.as_str())?.is_some() {
                return abort(StoreError::Conflict);
            }
            tenants.insert(tenant.id.as_str(), record.as_slice())?;
            for (k, v) in &keys {
                key_tree.insert(k.as_slice(), v.as_slice())?;
            }
            Ok(())
        }))
    }

    fn get_tenant(&self, id: &TenantId) -> StoreResult<Option<TenantRecord>> {
        self.tenants.get(id.as_str()).map_err(backend)?.map(|v| decode("tenants", &v)).transpose()
    }

    fn list_tenants(&self) -> StoreResult<Vec<TenantRecord>> {
        self.tenants.iter().values().map(|v| decode("tenants", &v.map_err(backend)?)).collect()
    }

    fn update_tenant(
        &self,
        id: &TenantId,
        change: &mut dyn FnMut(&mut TenantRecord) -> Change,
    ) -> StoreResult<Option<TenantRecord>> {
        update_in_place(&self.tenants, "tenants", id.as_str().as_bytes(), &mut |tenant: &mut TenantRecord| {
            let before = tenant.id.clone();
            let decided = change(tenant);
            // The id is the record's key; a change cannot move it.
            tenant.id = before;
            Ok(decided)
        })
    }

    fn delete_tenant(&self, id: &TenantId) -> StoreResult<bool> {
        let existed = self.tenants.remove(id.as_str()).map_err(backend)?.is_some();
        self.purge_tenant_data(id)?;
        Ok(existed)
    }
}

impl KeyStore for SledStore {
    fn rotate_keys(&self, tenant: &TenantId, new: &KeyRecord) -> StoreResult<()> {
        let prefix = prefix(tenant);
        let new_key = key(tenant, new.kid.as_bytes());
        let encoded = encode(new)?;
        // Rare (an operator's or the scheduler's rotation). sled transactions
        // cannot scan, so a key another rotation adds after the scan below
        // would be missed and stay live beside this one: rotations take
        // turns, and the transaction makes the retirements and the new key
        // land together (a crash keeps all or none of them).
        let _turn = self.key_rotation.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let existing: Vec<::sled::IVec> =
            self.keys.scan_prefix(&prefix).keys().collect::<Result<_, _>>().map_err(backend)?;
        tx(self.keys.transaction(|keys| {
            for k in &existing {
                let Some(bytes) = keys.get(k)? else { continue };
                let mut old: KeyRecord = tx_decode("keys", &bytes)?;
                if old.kid != new.kid && old.retired_at.is_none() {
                    old.retired_at = Some(new.active_from);
                    keys.insert(k, tx_encode(&old)?)?;
                }
            }
            keys.insert(new_key.as_slice(), encoded.as_slice())?;
            Ok(())
        }))
    }

    fn list_keys(&self, tenant: &TenantId) -> StoreResult<Vec<KeyRecord>> {
        let mut keys: Vec<KeyRecord> = self
            .keys
            .scan_prefix(prefix(tenant))
            .values()
            .map(|v| decode("keys", &v.map_err(backend)?))
            .collect::<StoreResult<_>>()?;
        keys.sort_by_key(|k| (k.created_at, k.kid.clone()));
        Ok(keys)
    }
}

impl UserStore for SledStore {
    fn insert_user(&self, user: &UserRecord) -> StoreResult<()> {
        let record = encode(user)?;
        let user_key = key(&user.tenant, user.id.as_bytes());
        let email_key = key(&user.tenant, user.email_key.as_bytes());
        tx((&self.users, &self.users_by_email).transaction(|(users, by_email)| {
            // An id is taken too (imports bring their own ids).
            if by_email.get(email_key.as_slice())?.is_some() || users.get(user_key.as_slice())?.is_some() {
                return abort(StoreError::Conflict);
            }
            by_email.insert(email_key.as_slice(), user.id.as_bytes())?;
            users.insert(user_key.as_slice(), record.as_slice())?;
            Ok(())
        }))
    }

    fn get_user(&self, tenant: &TenantId, id: Uuid) -> StoreResult<Option<UserRecord>> {
        self.users.get(key(tenant, id.as_bytes())).map_err(backend)?.map(|v| decode("users", &v)).transpose()
    }

    fn find_user_by_email(&self, tenant: &TenantId, email_key: &str) -> StoreResult<Option<UserRecord>> {
        let Some(id) = self.users_by_email.get(key(tenant, email_key.as_bytes())).map_err(backend)? else {
            return Ok(None);
        };
        let id = Uuid::from_slice(&id).map_err(|_| StoreError::Corrupt("users_by_email"))?;
        self.get_user(tenant, id)
    }

    fn list_users(
        &self,
        tenant: &TenantId,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<UserRecord>> {
        let prefix_key = key(tenant, prefix.as_bytes());
        let start = match after.map(|after| key(tenant, after.as_bytes())) {
            Some(after) if after >= prefix_key => Bound::Excluded(after),
            _ => Bound::Included(prefix_key.clone()),
        };
        let mut users = Vec::with_capacity(limit.min(1000));
        for entry in self.users_by_email.range((start, Bound::Unbounded)) {
            let (email_key, id) = entry.map_err(backend)?;
            if users.len() >= limit || !email_key.starts_with(&prefix_key) {
                break;
            }
            let id = Uuid::from_slice(&id).map_err(|_| StoreError::Corrupt("users_by_email"))?;
            users.push(self.get_user(tenant, id)?.ok_or(StoreError::Corrupt("users_by_email"))?);
        }
        Ok(users)
    }

    fn delete_user(&self, tenant: &TenantId, id: Uuid, now: i64) -> StoreResult<Option<UserRecord>> {
        let user_key = key(tenant, id.as_bytes());
        let by_user: Vec<::sled::IVec> =
            self.sessions_by_user.scan_prefix(&user_key).keys().collect::<Result<_, _>>().map_err(backend)?;
        let session_ids: Vec<&[u8]> = by_user.iter().filter_map(|k| k.get(k.len().saturating_sub(16)..)).collect();
        // Refresh tokens are keyed by hash; find the user's by their session.
        // One issued after this scan points at a deleted session and is refused.
        let mut refresh_keys = Vec::new();
        for entry in self.refresh.scan_prefix(prefix(tenant)) {
            let (k, v) = entry.map_err(backend)?;
            let refresh: RefreshRecord = decode("refresh", &v)?;
            if session_ids.contains(&refresh.session_id.as_bytes().as_slice()) {
                refresh_keys.push(k);
            }
        }
        let trees = (
            &self.users,
            &self.users_by_email,
            &self.sessions,
            &self.sessions_by_user,
            &self.refresh,
            &self.revocations,
            &self.revocation_log,
        );
        tx(trees.transaction(|(users, by_email, sessions, sessions_by_user, refreshes, revocations, log)| {
            let Some(stored) = users.remove(user_key.as_slice())? else { return Ok(None) };
            let user: UserRecord = tx_decode("users", &stored)?;
            by_email.remove(key(tenant, user.email_key.as_bytes()))?;
            for (entry, sid) in by_user.iter().zip(&session_ids) {
                sessions_by_user.remove(entry)?;
                // A live session's tokens are refused from here on: the feed says so.
                if let Some(removed) = sessions.remove(key(tenant, sid))?
                    && tx_decode::<SessionRecord>("sessions", &removed)?.revoked_at.is_none()
                {
                    let session_id = Uuid::from_slice(sid)
                        .map_err(|_| ConflictableTransactionError::Abort(StoreError::Corrupt("sessions_by_user")))?;
                    log_revocation(revocations, log, tenant, session_id, now)?;
                }
            }
            for k in &refresh_keys {
                refreshes.remove(k)?;
            }
            Ok(Some(user))
        }))
    }

    fn update_user(
        &self,
        tenant: &TenantId,
        id: Uuid,
        change: &mut dyn FnMut(&mut UserRecord) -> Change,
    ) -> StoreResult<Option<UserRecord>> {
        update_in_place(&self.users, "users", &key(tenant, id.as_bytes()), &mut |user: &mut UserRecord| {
            let email_key = user.email_key.clone();
            let decided = change(user);
            // The email index points at this record; moving it is not an update.
            if decided == Change::Write && user.email_key != email_key {
                return Err(StoreError::Conflict);
            }
            Ok(decided)
        })
    }
}

impl SessionStore for SledStore {
    fn insert_session(&self, session: &SessionRecord, refresh_hash: &[u8; 32]) -> StoreResult<()> {
        let record = encode(session)?;
        let refresh = encode(&RefreshRecord { session_id: session.id, generation: session.generation })?;
        let session_key = key(&session.tenant, session.id.as_bytes());
        let by_user_key =
            key(&session.tenant, &[session.user_id.as_bytes().as_slice(), session.id.as_bytes()].concat());
        let refresh_key = key(&session.tenant, refresh_hash);
        // Plain inserts of new keys, in an order where every prefix is
        // harmless (sled recovers a prefix of its log, and the caller
        // acknowledges nothing before the flush): an index entry or a refresh
        // record pointing at a session that does not exist is skipped or
        // refused. No transaction: see `rotate_session`.
        self.sessions_by_user.insert(by_user_key.as_slice(), &[]).map_err(backend)?;
        self.refresh.insert(refresh_key.as_slice(), refresh.as_slice()).map_err(backend)?;
        self.sessions.insert(session_key.as_slice(), record.as_slice()).map_err(backend)?;
        Ok(())
    }

    fn get_session(&self, tenant: &TenantId, id: Uuid) -> StoreResult<Option<SessionRecord>> {
        self.sessions.get(key(tenant, id.as_bytes())).map_err(backend)?.map(|v| decode("sessions", &v)).transpose()
    }

    fn get_refresh(&self, tenant: &TenantId, hash: &[u8; 32]) -> StoreResult<Option<RefreshRecord>> {
        self.refresh.get(key(tenant, hash)).map_err(backend)?.map(|v| decode("refresh", &v)).transpose()
    }

    fn rotate_session(
        &self,
        tenant: &TenantId,
        id: Uuid,
        expected_generation: u64,
        new_refresh_hash: &[u8; 32],
        change: &mut dyn FnMut(&mut SessionRecord),
    ) -> StoreResult<SessionRecord> {
        let session_key = key(tenant, id.as_bytes());
        let refresh_key = key(tenant, new_refresh_hash);
        let refresh = encode(&RefreshRecord { session_id: id, generation: expected_generation + 1 })?;
        // A compare-and-swap on the session instead of a sled transaction:
        // once a process has used one, every transaction takes sled's global
        // lock exclusively and waits out any flush in progress, which
        // serialized rotations behind the group commit (about 1,000/s however
        // many clients). The new refresh record goes in first: until the swap
        // it names a token nobody holds, and a crash keeps a log prefix, so a
        // session that names the new generation always has its record.
        let Some(current) = self.sessions.get(session_key.as_slice()).map_err(backend)? else {
            return Err(StoreError::NotFound);
        };
        let mut session: SessionRecord = decode("sessions", &current)?;
        if session.generation != expected_generation || session.revoked_at.is_some() {
            return Err(StoreError::Stale);
        }
        change(&mut session);
        session.generation = expected_generation + 1;
        let record = encode(&session)?;
        self.refresh.insert(refresh_key.as_slice(), refresh.as_slice()).map_err(backend)?;
        let swapped = self
            .sessions
            .compare_and_swap(session_key.as_slice(), Some(current), Some(record.as_slice()))
            .map_err(backend)?;
        if swapped.is_err() {
            // Changed in between: by a rotation or a revocation (both make
            // this one stale) or by a change of another field, so the caller
            // decides again on the fresh record either way.
            self.refresh.remove(refresh_key.as_slice()).map_err(backend)?;
            return Err(StoreError::Stale);
        }
        Ok(session)
    }

    fn revoke_session(&self, tenant: &TenantId, id: Uuid, now: i64) -> StoreResult<Option<SessionRecord>> {
        let session_key = key(tenant, id.as_bytes());
        let trees = (&self.sessions, &self.revocations, &self.revocation_log);
        tx(trees.transaction(|(sessions, revocations, log)| {
            let Some(current) = sessions.get(session_key.as_slice())? else {
                return Ok(None);
            };
            let mut session: SessionRecord = tx_decode("sessions", &current)?;
            if session.revoked_at.is_none() {
                session.revoked_at = Some(now);
                sessions.insert(session_key.as_slice(), tx_encode(&session)?)?;
                log_revocation(revocations, log, tenant, id, now)?;
            }
            Ok(Some(session))
        }))
    }

    fn revocations(&self, tenant: &TenantId, after: u64, ended_since: i64) -> StoreResult<RevocationLog> {
        // The position first: every entry up to it is already written (same
        // transaction), and later ones are left for the next read.
        let position: LogPosition = match self.revocation_log.get(tenant.as_str()).map_err(backend)? {
            Some(bytes) => decode("revocation_log", &bytes)?,
            None => return Ok(RevocationLog::default()),
        };
        let start = key(tenant, &(after.saturating_add(1)).to_be_bytes());
        let end = key(tenant, &position.last.to_be_bytes());
        let mut entries = Vec::new();
        if after < position.last {
            for item in self.revocations.range(start..=end) {
                let (k, v) = item.map_err(backend)?;
                let seq = k.get(k.len().saturating_sub(8)..).map(seq_value).transpose()?.unwrap_or_default();
                let logged: LoggedRevocation = decode("revocations", &v)?;
                if logged.ended_at >= ended_since {
                    entries.push(Revocation { seq, session_id: logged.session_id, ended_at: logged.ended_at });
                }
            }
        }
        Ok(RevocationLog { epoch: position.epoch, last: position.last, entries })
    }

    fn purge_revocations(&self, ended_before: i64) -> StoreResult<u64> {
        let mut batch = ::sled::Batch::default();
        let mut purged = 0;
        for item in self.revocations.iter() {
            let (k, v) = item.map_err(backend)?;
            if decode::<LoggedRevocation>("revocations", &v)?.ended_at < ended_before {
                batch.remove(k);
                purged += 1;
            }
        }
        self.revocations.apply_batch(batch).map_err(backend)?;
        Ok(purged)
    }

    fn list_sessions(&self, tenant: &TenantId, user: Uuid) -> StoreResult<Vec<SessionRecord>> {
        let mut sessions = Vec::new();
        for entry in self.sessions_by_user.scan_prefix(key(tenant, user.as_bytes())).keys() {
            let entry = entry.map_err(backend)?;
            let sid = entry.get(entry.len().saturating_sub(16)..).ok_or(StoreError::Corrupt("sessions_by_user"))?;
            let sid = Uuid::from_slice(sid).map_err(|_| StoreError::Corrupt("sessions_by_user"))?;
            if let Some(session) = self.get_session(tenant, sid)? {
                sessions.push(session);
            }
        }
        sessions.sort_by_key(|s| (s.created_at, s.id));
        Ok(sessions)
    }
}

impl EventStore for SledStore {
    fn append_event(&self, event: &EventRecord, retain: usize) -> StoreResult<()> {
        let prefix = prefix(&event.tenant);
        self.events.insert(key(&event.tenant, event.id.as_bytes()), encode(event)?).map_err(backend)?;
        let count = self
            .event_counts
            .update_and_fetch(event.tenant.as_str(), |old| {
                let n = old.and_then(|b| <[u8; 8]>::try_from(b).ok()).map_or(0, u64::from_be_bytes);
                Some((n + 1).to_be_bytes().to_vec())
            })
            .map_err(backend)?
            .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map_or(0, u64::from_be_bytes);
        // One removal per append keeps the tenant's log at `retain` in steady state.
        if count > retain as u64
            && let Some(oldest) = self.events.scan_prefix(&prefix).keys().next()
        {
            self.events.remove(oldest.map_err(backend)?).map_err(backend)?;
            self.event_counts
                .update_and_fetch(event.tenant.as_str(), |old| {
                    let n = old.and_then(|b| <[u8; 8]>::try_from(b).ok()).map_or(1, u64::from_be_bytes);
                    Some(n.saturating_sub(1).to_be_bytes().to_vec())
                })
                .map_err(backend)?;
        }
        Ok(())
    }

    fn list_events(&self, tenant: &TenantId, limit: usize, before: Option<Uuid>) -> StoreResult<Vec<EventRecord>> {
        let start = prefix(tenant);
        let end = match before {
            Some(id) => key(tenant, id.as_bytes()),
            None => {
                let mut end = start.clone();
                // One past the NUL separator: every key of this tenant sorts before it.
                if let Some(last) = end.last_mut() {
                    *last = 1;
                }
                end
            }
        };
        self.events
            .range(start..end)
            .values()
            .rev()
            .take(limit)
            .map(|v| decode("events", &v.map_err(backend)?))
            .collect()
    }
}

impl OneTimeTokenStore for SledStore {
    fn put_one_time(&self, tenant: &TenantId, hash: &[u8; 32], record: &OneTimeRecord) -> StoreResult<()> {
        self.one_time.insert(key(tenant, hash), encode(record)?).map_err(backend)?;
        Ok(())
    }

    fn take_one_time(
        &self,
        tenant: &TenantId,
        hash: &[u8; 32],
        purpose: &str,
        now: i64,
    ) -> StoreResult<Option<OneTimeRecord>> {
        let key = key(tenant, hash);
        loop {
            let Some(stored) = self.one_time.get(&key).map_err(backend)? else { return Ok(None) };
            let record: OneTimeRecord = decode("one_time", &stored)?;
            // Presented where it does not belong: refused, and not used up.
            if record.purpose != purpose {
                return Ok(None);
            }
            match self.one_time.compare_and_swap(&key, Some(stored), None::<&[u8]>).map_err(backend)? {
                Ok(()) => return Ok((record.expires_at > now).then_some(record)),
                Err(_) => continue,
            }
        }
    }

    fn purge_one_time(&self, now: i64) -> StoreResult<u64> {
        let mut purged = 0;
        for entry in self.one_time.iter() {
            let (key, stored) = entry.map_err(backend)?;
            let expired = decode::<OneTimeRecord>("one_time", &stored).map_or(true, |r| r.expires_at <= now);
            // Only if unchanged since read: a record taken meanwhile is gone anyway.
            if expired && self.one_time.compare_and_swap(&key, Some(stored), None::<&[u8]>).map_err(backend)?.is_ok() {
                purged += 1;
            }
        }
        Ok(purged)
    }
}

impl ClientStore for SledStore {
    fn create_client(&self, client: &ClientRecord) -> StoreResult<()> {
        let key = key(&client.tenant, client.client_id.as_bytes());
        match self.clients.compare_and_swap(key, None::<&[u8]>, Some(encode(client)?)).map_err(backend)? {
            Ok(()) => Ok(()),
            Err(_) => Err(StoreError::Conflict),
        }
    }

    fn get_client(&self, tenant: &TenantId, client_id: &str) -> StoreResult<Option<ClientRecord>> {
        self.clients.get(key(tenant, client_id.as_bytes())).map_err(backend)?.map(|v| decode("clients", &v)).transpose()
    }

    fn list_clients(&self, tenant: &TenantId) -> StoreResult<Vec<ClientRecord>> {
        self.clients.scan_prefix(prefix(tenant)).values().map(|v| decode("clients", &v.map_err(backend)?)).collect()
    }

    fn update_client(
        &self,
        tenant: &TenantId,
        client_id: &str,
        change: &mut dyn FnMut(&mut ClientRecord) -> Change,
    ) -> StoreResult<Option<ClientRecord>> {
        update_in_place(
            &self.clients,
            "clients",
            &key(tenant, client_id.as_bytes()),
            &mut |client: &mut ClientRecord| {
                let (tenant, id) = (client.tenant.clone(), client.client_id.clone());
                let decided = change(client);
                // Tenant and id are the record's key; a change cannot move them.
                (client.tenant, client.client_id) = (tenant, id);
                Ok(decided)
            },
        )
    }

    fn delete_client(&self, tenant: &TenantId, client_id: &str) -> StoreResult<bool> {
        Ok(self.clients.remove(key(tenant, client_id.as_bytes())).map_err(backend)?.is_some())
    }
}

impl BrowserSessionStore for SledStore {
    fn put_browser_session(
        &self,
        tenant: &TenantId,
        hash: &[u8; 32],
        record: &BrowserSessionRecord,
    ) -> StoreResult<()> {
        self.browser_sessions.insert(key(tenant, hash), encode(record)?).map_err(backend)?;
        Ok(())
    }

    fn get_browser_session(&self, tenant: &TenantId, hash: &[u8; 32]) -> StoreResult<Option<BrowserSessionRecord>> {
        self.browser_sessions
            .get(key(tenant, hash))
            .map_err(backend)?
            .map(|v| decode("browser_sessions", &v))
            .transpose()
    }

    fn update_browser_session(
        &self,
        tenant: &TenantId,
        hash: &[u8; 32],
        change: &mut dyn FnMut(&mut BrowserSessionRecord) -> Change,
    ) -> StoreResult<Option<BrowserSessionRecord>> {
        update_in_place(&self.browser_sessions, "browser_sessions", &key(tenant, hash), &mut |record| {
            Ok(change(record))
        })
    }

    fn delete_browser_session(&self, tenant: &TenantId, hash: &[u8; 32]) -> StoreResult<Option<BrowserSessionRecord>> {
        self.browser_sessions
            .remove(key(tenant, hash))
            .map_err(backend)?
            .map(|v| decode("browser_sessions", &v))
            .transpose()
    }

    fn purge_browser_sessions(&self, now: i64) -> StoreResult<u64> {
        let mut purged = 0;
        for entry in self.browser_sessions.iter() {
            let (key, stored) = entry.map_err(backend)?;
            let expired =
                decode::<BrowserSessionRecord>("browser_sessions", &stored).map_or(true, |r| r.expires_at <= now);
            if expired
                && self.browser_sessions.compare_and_swap(&key, Some(stored), None::<&[u8]>).map_err(backend)?.is_ok()
            {
                purged += 1;
            }
        }
        Ok(purged)
    }
}

impl MetaStore for SledStore {
    fn get_meta(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.meta.get(key).map_err(backend)?.map(|v| v.to_vec()))
    }

    fn put_meta_if_absent(&self, key: &str, value: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        match self.meta.compare_and_swap(key, None::<&[u8]>, Some(value)).map_err(backend)? {
            Ok(()) => Ok(None),
            Err(held) => Ok(held.current.map(|v| v.to_vec())),
        }
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> StoreResult<()> {
        self.meta.insert(key, value).map_err(backend)?;
        Ok(())
    }
}

impl Store for SledStore {
    fn reads_from_memory(&self) -> bool {
        // sled keeps its working set in its page cache; a point read is a
        // lookup in memory (a page fault at worst).
        true
    }

    fn flush(&self) -> StoreResult<()> {
        let seq = self.flush_numbered()?;
        self.witness.durable(seq, false)
    }

    fn writes_possible(&self) -> StoreResult<()> {
        use std::io::Write as _;
        let probe = self.witness.path.with_file_name(PROBE_FILE);
        let written = std::fs::File::create(&probe).and_then(|mut file| {
            file.write_all(&vec![0; PROBE_BYTES])?;
            file.sync_all()
        });
        let removed = std::fs::remove_file(&probe);
        written.and(removed).map_err(|e| StoreError::Unwritable(format!("{}: {e}", probe.display())))
    }

    fn export(&self, out: &mut dyn std::io::Write) -> StoreResult<u64> {
        let mut writer = BackupWriter::start(out, backup::created_now())?;
        for (name, tree) in self.named_trees() {
            for item in tree.iter() {
                let (k, v) = item.map_err(backend)?;
                // Indexes and counters are rebuilt from the records.
                if let Some(entry) = SledStore::tree_entry(name, &k, &v)? {
                    writer.entry(&entry)?;
                }
            }
        }
        writer.finish()
    }

    fn import(&self, entries: &mut dyn Iterator<Item = StoreResult<Entry>>) -> StoreResult<u64> {
        let data_meta = |k: &[u8]| !backup::ENGINE_META.iter().any(|engine| engine.as_bytes() == k);
        if !self.tenants.is_empty() || self.meta.iter().keys().any(|k| k.is_ok_and(|k| data_meta(&k))) {
            return Err(StoreError::Format("the store already holds data; restore only into a new one".into()));
        }
        let mut records = 0;
        let mut event_counts: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
        for entry in entries {
            let entry = entry?;
            if backup::is_engine_meta(&entry) {
                continue;
            }
            records += 1;
            if let Entry::Event { record } = &entry {
                *event_counts.entry(record.tenant.as_str().to_owned()).or_default() += 1;
            }
            for (tree, k, v) in self.entry_writes(&entry)? {
                tree.insert(k, v).map_err(backend)?;
            }
        }
        for (tenant, count) in event_counts {
            self.event_counts.insert(tenant.as_bytes(), &count.to_be_bytes()).map_err(backend)?;
        }
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sled_store_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(&dir.path().join("data"), 8 << 20).expect("opens");
        conformance::run(&store);
    }

    #[test]
    fn an_exported_store_restores_into_a_new_directory_record_for_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(&dir.path().join("data"), 8 << 20).expect("opens");
        conformance::run(&store);
        let mut file = Vec::new();
        let exported = store.export(&mut file).expect("export");
        assert!(exported > 20, "the conformance data is in the file ({exported} records)");

        let target = dir.path().join("restored");
        assert_eq!(SledStore::restore(&target, &mut file.as_slice()).expect("restore"), exported);
        let restored = SledStore::open(&target, 8 << 20).expect("opens");
        for ((name, original), (_, copy)) in store.named_trees().into_iter().zip(restored.named_trees()) {
            let data = |tree: &::sled::Tree| -> Vec<_> {
                let records = tree.iter().collect::<Result<Vec<_>, _>>().expect("read");
                records.into_iter().filter(|(k, _)| k != COMMIT_SEQ_KEY.as_bytes()).collect()
            };
            let (left, right) = (data(original), data(copy));
            assert_eq!(left, right, "tree {name}");
        }
        drop(restored);
        let err = SledStore::restore(&target, &mut file.as_slice()).expect_err("not empty");
        assert!(err.to_string().contains("not empty"), "{err}");
    }

    #[test]
    fn a_directory_with_other_files_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("notes.txt"), "mine").expect("write");
        let err = SledStore::open(dir.path(), 8 << 20).err().expect("refused");
        assert!(matches!(err, StoreError::Format(_)), "{err}");
        assert_eq!(std::fs::read_to_string(dir.path().join("notes.txt")).expect("kept"), "mine");
    }

    #[test]
    fn a_store_of_another_format_version_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data");
        {
            let store = SledStore::open(&path, 8 << 20).expect("opens");
            store.meta.insert(FORMAT_KEY, &b"latch-store/99"[..]).expect("write");
            store.flush().expect("flush");
        }
        let err = SledStore::open(&path, 8 << 20).err().expect("refused");
        assert!(err.to_string().contains("latch-store/99"), "{err}");
    }
}
