//! Storage: small traits combined into one [`Store`], records, and the
//! [`StoreHandle`] that runs blocking store calls off the async workers and
//! makes acknowledged writes durable with group commit.
//!
//! The traits never name an HTTP type. `sled` is the embedded engine;
//! PostgreSQL (`store::postgres`, for several nodes on one database)
//! implements the same traits and passes the same conformance suite
//! (`store::conformance`).

pub mod backup;
mod commit;
#[cfg(test)]
mod conformance;
pub mod group_read;
mod pgtls;
pub mod postgres;
mod records;
pub mod sled;

pub use commit::{Reopen, StoreHandle};
pub use records::*;

use uuid::Uuid;

use crate::ids::TenantId;

/// A store failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule would be broken (tenant id, email per tenant).
    #[error("the record already exists")]
    Conflict,
    /// The record to update does not exist.
    #[error("no such record")]
    NotFound,
    /// A compare-and-swap lost to a concurrent change; re-read and decide again.
    #[error("the record changed concurrently")]
    Stale,
    /// The data directory is not a latch store, or is of another format version.
    #[error("{0}")]
    Format(String),
    /// The data directory was initialised but its store is missing, empty,
    /// truncated or garbled: it must be restored, never started as new.
    #[error("{0}")]
    Damaged(String),
    /// Another process holds the store.
    #[error("{0} is in use by another latch process")]
    Locked(String),
    /// The engine could not write (disk full, I/O error); the store is
    /// reopened once the disk takes writes again (`store::commit`).
    #[error("the store cannot write: {0}")]
    Unwritable(String),
    /// A record could not be decoded.
    #[error("corrupt record in {0}")]
    Corrupt(&'static str),
    /// The engine failed (I/O, lock).
    #[error("storage engine: {0}")]
    Backend(String),
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// What a change decided after looking at the freshly read record.
///
/// Every change to an existing record is a function the store applies to the
/// record as it stands inside its atomic step (a compare-and-swap loop), so
/// two independent changes compose instead of the last one undoing the
/// other. The function may run more than once when it loses a race; it must
/// decide from the record it is given, not from a copy read earlier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Store the changed record.
    Write,
    /// Leave the stored record as it is (the change does not apply to it).
    Keep,
}

/// Tenants.
pub trait TenantStore {
    /// Creates a tenant with its first keys; `Conflict` if the id is taken.
    fn create_tenant(&self, tenant: &TenantRecord, keys: &[KeyRecord]) -> StoreResult<()>;
    /// One tenant.
    fn get_tenant(&self, id: &TenantId) -> StoreResult<Option<TenantRecord>>;
    /// Every tenant, ordered by id.
    fn list_tenants(&self) -> StoreResult<Vec<TenantRecord>>;
    /// Applies `change` to the stored tenant atomically (see [`Change`]);
    /// the tenant as it stands afterwards, `None` if there is none.
    fn update_tenant(
        &self,
        id: &TenantId,
        change: &mut dyn FnMut(&mut TenantRecord) -> Change,
    ) -> StoreResult<Option<TenantRecord>>;
    /// Deletes a tenant and everything under it; false if it did not exist.
    fn delete_tenant(&self, id: &TenantId) -> StoreResult<bool>;
}

/// Signing keys, private halves encrypted by the caller.
pub trait KeyStore {
    /// Adds `key` and retires every other key that is not retired yet at
    /// `key.active_from`, in one atomic step: two rotations at once leave one
    /// signer, never none.
    fn rotate_keys(&self, tenant: &TenantId, key: &KeyRecord) -> StoreResult<()>;
    /// A tenant's keys, oldest first.
    fn list_keys(&self, tenant: &TenantId) -> StoreResult<Vec<KeyRecord>>;
}

/// Users.
pub trait UserStore {
    /// Inserts a user; `Conflict` if the email key or the id is taken in that tenant (atomic).
    fn insert_user(&self, user: &UserRecord) -> StoreResult<()>;
    /// Inserts each of `users` whose email key and id are free in its
    /// tenant (earlier users of the slice included); whether each was. Each
    /// insert is atomic as [`UserStore::insert_user`]; an engine with
    /// transactions makes the whole slice one (PostgreSQL: one commit for a
    /// batch of an import, not one per user).
    fn insert_users(&self, users: &[UserRecord]) -> StoreResult<Vec<bool>> {
        users
            .iter()
            .map(|user| match self.insert_user(user) {
                Ok(()) => Ok(true),
                Err(StoreError::Conflict) => Ok(false),
                Err(other) => Err(other),
            })
            .collect()
    }
    /// A user by id.
    fn get_user(&self, tenant: &TenantId, id: Uuid) -> StoreResult<Option<UserRecord>>;
    /// A user by case-folded email.
    fn find_user_by_email(&self, tenant: &TenantId, email_key: &str) -> StoreResult<Option<UserRecord>>;
    /// Applies `change` to the stored user atomically (see [`Change`]); the
    /// user as it stands afterwards, `None` if there is none. The email key
    /// cannot change this way (`Conflict`).
    fn update_user(
        &self,
        tenant: &TenantId,
        id: Uuid,
        change: &mut dyn FnMut(&mut UserRecord) -> Change,
    ) -> StoreResult<Option<UserRecord>>;
    /// Up to `limit` users ordered by email key, only those whose email key
    /// starts with `prefix`, after the email key `after` when given.
    fn list_users(
        &self,
        tenant: &TenantId,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<UserRecord>>;
    /// Deletes a user with their sessions and refresh tokens, freeing the
    /// email, and adds their live sessions to the tenant's revocation log as
    /// ended at `now` (atomic); the user as stored, or `None` if there was none.
    fn delete_user(&self, tenant: &TenantId, id: Uuid, now: i64) -> StoreResult<Option<UserRecord>>;
}

/// Sessions and their refresh tokens (stored as hashes), read with their users.
pub trait SessionStore: UserStore {
    /// Inserts a new session and the hash of its first refresh token.
    fn insert_session(&self, session: &SessionRecord, refresh_hash: &[u8; 32]) -> StoreResult<()>;
    /// A session by id.
    fn get_session(&self, tenant: &TenantId, id: Uuid) -> StoreResult<Option<SessionRecord>>;
    /// What a refresh-token hash points at.
    fn get_refresh(&self, tenant: &TenantId, hash: &[u8; 32]) -> StoreResult<Option<RefreshRecord>>;
    /// If the stored session's generation is still `expected_generation` and
    /// it is not revoked, atomically moves it to the next generation, applies
    /// `change` to it (last use, expiry, grace) and records
    /// `new_refresh_hash` for the new generation; the session as stored.
    /// `Stale` otherwise, `NotFound` if there is no such session.
    fn rotate_session(
        &self,
        tenant: &TenantId,
        id: Uuid,
        expected_generation: u64,
        new_refresh_hash: &[u8; 32],
        change: &mut dyn FnMut(&mut SessionRecord),
    ) -> StoreResult<SessionRecord>;
    /// Marks a session revoked at `now` (idempotent) and, the first time,
    /// adds it to the tenant's revocation log in the same atomic step;
    /// returns the session as stored.
    fn revoke_session(&self, tenant: &TenantId, id: Uuid, now: i64) -> StoreResult<Option<SessionRecord>>;
    /// A user's sessions, oldest first.
    fn list_sessions(&self, tenant: &TenantId, user: Uuid) -> StoreResult<Vec<SessionRecord>>;
    /// A session and a user, as an access token's check reads them: the
    /// same as the two reads, in one round trip where the engine has trips.
    fn get_session_and_user(
        &self,
        tenant: &TenantId,
        session: Uuid,
        user: Uuid,
    ) -> StoreResult<(Option<SessionRecord>, Option<UserRecord>)> {
        Ok((self.get_session(tenant, session)?, self.get_user(tenant, user)?))
    }
    /// The same read as [`SessionStore::get_session_and_user`], queued for
    /// the store's own threads and answered on the returned channel, so an
    /// async caller need not block a thread on it; `None` where the store
    /// does not queue reads (the caller reads the usual way).
    fn queue_session_and_user(
        &self,
        _tenant: &TenantId,
        _session: Uuid,
        _user: Uuid,
    ) -> Option<group_read::Queued<(Option<SessionRecord>, Option<UserRecord>)>> {
        None
    }
    /// What a refresh-token hash points at, its session and that session's
    /// user, as a refresh reads them; `None` without the hash or the session.
    fn get_refresh_session_user(
        &self,
        tenant: &TenantId,
        hash: &[u8; 32],
    ) -> StoreResult<Option<(RefreshRecord, SessionRecord, Option<UserRecord>)>> {
        let Some(refresh) = self.get_refresh(tenant, hash)? else { return Ok(None) };
        let Some(session) = self.get_session(tenant, refresh.session_id)? else { return Ok(None) };
        let user = self.get_user(tenant, session.user_id)?;
        Ok(Some((refresh, session, user)))
    }
    /// The revocation log of `tenant` after entry `after`, without entries
    /// that ended before `ended_since` (every token of theirs has expired).
    fn revocations(&self, tenant: &TenantId, after: u64, ended_since: i64) -> StoreResult<RevocationLog>;
    /// Removes the revocation entries, of every tenant, that ended before
    /// `ended_before`; how many went.
    fn purge_revocations(&self, ended_before: i64) -> StoreResult<u64>;
    /// Revokes every live session of a user except `keep`; returns how many were revoked.
    fn revoke_user_sessions(&self, tenant: &TenantId, user: Uuid, keep: Option<Uuid>, now: i64) -> StoreResult<usize> {
        let mut revoked = 0;
        for session in self.list_sessions(tenant, user)? {
            if Some(session.id) != keep && session.revoked_at.is_none() {
                self.revoke_session(tenant, session.id, now)?;
                revoked += 1;
            }
        }
        Ok(revoked)
    }
}

/// Audit events, newest first, bounded per tenant.
pub trait EventStore {
    /// Appends an event and drops the oldest beyond `retain` for its tenant.
    fn append_event(&self, event: &EventRecord, retain: usize) -> StoreResult<()>;
    /// Up to `limit` events older than `before` (all when `None`), newest first.
    fn list_events(&self, tenant: &TenantId, limit: usize, before: Option<Uuid>) -> StoreResult<Vec<EventRecord>>;
}

/// Single-use tokens, stored as hashes.
pub trait OneTimeTokenStore {
    /// Stores a token's record under its hash.
    fn put_one_time(&self, tenant: &TenantId, hash: &[u8; 32], record: &OneTimeRecord) -> StoreResult<()>;
    /// Removes and returns a token's record if it is for `purpose` and has
    /// not expired at `now` (atomic: a token is taken once). A record for
    /// another purpose stays where it is; an expired one is removed.
    fn take_one_time(
        &self,
        tenant: &TenantId,
        hash: &[u8; 32],
        purpose: &str,
        now: i64,
    ) -> StoreResult<Option<OneTimeRecord>>;
    /// Removes every record of every tenant expired at `now`; how many.
    fn purge_one_time(&self, now: i64) -> StoreResult<u64>;
}

/// OAuth clients, per tenant.
pub trait ClientStore {
    /// Adds a client; `Conflict` if its id is taken in the tenant.
    fn create_client(&self, client: &ClientRecord) -> StoreResult<()>;
    /// One client.
    fn get_client(&self, tenant: &TenantId, client_id: &str) -> StoreResult<Option<ClientRecord>>;
    /// A tenant's clients, by id.
    fn list_clients(&self, tenant: &TenantId) -> StoreResult<Vec<ClientRecord>>;
    /// Applies `change` to the stored client in the store's atomic step.
    fn update_client(
        &self,
        tenant: &TenantId,
        client_id: &str,
        change: &mut dyn FnMut(&mut ClientRecord) -> Change,
    ) -> StoreResult<Option<ClientRecord>>;
    /// Removes a client; false if there was none.
    fn delete_client(&self, tenant: &TenantId, client_id: &str) -> StoreResult<bool>;
}

/// Browser sessions of the hosted login, under the hash of their cookie.
pub trait BrowserSessionStore {
    /// Stores a new browser session.
    fn put_browser_session(&self, tenant: &TenantId, hash: &[u8; 32], record: &BrowserSessionRecord)
    -> StoreResult<()>;
    /// One browser session, expired or not.
    fn get_browser_session(&self, tenant: &TenantId, hash: &[u8; 32]) -> StoreResult<Option<BrowserSessionRecord>>;
    /// Applies `change` to the stored browser session in the store's atomic step.
    fn update_browser_session(
        &self,
        tenant: &TenantId,
        hash: &[u8; 32],
        change: &mut dyn FnMut(&mut BrowserSessionRecord) -> Change,
    ) -> StoreResult<Option<BrowserSessionRecord>>;
    /// Removes a browser session, returning it.
    fn delete_browser_session(&self, tenant: &TenantId, hash: &[u8; 32]) -> StoreResult<Option<BrowserSessionRecord>>;
    /// Removes the expired ones; returns how many.
    fn purge_browser_sessions(&self, now: i64) -> StoreResult<u64>;
}

/// Small server-wide values (format version, operator token hash, master key check).
pub trait MetaStore {
    /// A value.
    fn get_meta(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Sets a value.
    fn put_meta(&self, key: &str, value: &[u8]) -> StoreResult<()>;
    /// Sets a value unless the key has one (atomic, across nodes): `None`
    /// when this call stored it, else the value that was already there.
    fn put_meta_if_absent(&self, key: &str, value: &[u8]) -> StoreResult<Option<Vec<u8>>>;
}

/// Held while this process runs the scheduled work ([`Store::scheduled_work`]).
pub struct ScheduledWork(pub Box<dyn Send>);

/// What [`Store::watch_tenants`] calls: with a tenant whose record or keys
/// changed (on any node), or with `None` when changes may have been missed
/// and everything cached must be dropped.
pub type TenantChanged = std::sync::Arc<dyn Fn(Option<&TenantId>) + Send + Sync>;

/// Watches for changes while held ([`Store::watch_tenants`]); stops when dropped.
pub struct Watch(pub Box<dyn Send + Sync>);

/// Everything latch stores.
pub trait Store:
    TenantStore
    + KeyStore
    + UserStore
    + SessionStore
    + EventStore
    + OneTimeTokenStore
    + ClientStore
    + BrowserSessionStore
    + MetaStore
    + Send
    + Sync
    + 'static
{
    /// Makes every write so far durable.
    fn flush(&self) -> StoreResult<()>;
    /// Whether point reads are served from memory without blocking, so an
    /// async worker may make them itself (`StoreHandle::read`).
    fn reads_from_memory(&self) -> bool {
        false
    }
    /// The right to run scheduled work (automatic key rotation, purges) now:
    /// a guard while this process holds it, `None` while another node sharing
    /// the store does. One process owns a sled store, so there it is always
    /// granted. Drop the guard on a blocking thread.
    fn scheduled_work(&self) -> StoreResult<Option<ScheduledWork>> {
        Ok(Some(ScheduledWork(Box::new(()))))
    }
    /// Calls `changed` whenever a tenant's record or keys change on another
    /// node sharing the store, so cached tenant data is dropped; `None` when
    /// one process owns the store (sled), where the node's own invalidation
    /// is all there is.
    fn watch_tenants(&self, changed: TenantChanged) -> StoreResult<Option<Watch>> {
        let _ = changed;
        Ok(None)
    }
    /// Whether the storage takes writes now, checked without touching the
    /// store itself (before a failed store is reopened).
    fn writes_possible(&self) -> StoreResult<()>;
    /// Writes every record to `out` in the backup format (`store::backup`),
    /// as of one moment: sled's caller keeps writes out while it runs
    /// (`StoreHandle::snapshot`); PostgreSQL reads one snapshot, which other
    /// nodes' writes do not disturb. Returns the number of records.
    fn export(&self, out: &mut dyn std::io::Write) -> StoreResult<u64>;
    /// Loads a backup's records into this store, which must hold no data yet
    /// (`Format` otherwise). It stops at the first error, and then nothing
    /// stays: PostgreSQL loads in one transaction; sled loads only into a new
    /// directory, which `SledStore::restore` removes on failure. Returns the
    /// number of records loaded.
    fn import(&self, entries: &mut dyn Iterator<Item = StoreResult<backup::Entry>>) -> StoreResult<u64>;
}
