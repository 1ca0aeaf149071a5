//! The backup file, the same for every store: a header line, one JSON line
//! per record in its logical form (a user, a session, a refresh-token hash…,
//! never an engine's own keys or indexes), and a trailer carrying the record
//! count and a SHA-256 of everything before it, so a truncated or edited file
//! is refused.
//!
//! ```text
//! {"latch_backup":2,"created_at":1767225600}
//! {"kind":"tenant","record":{"id":"demo","name":"Demo",…}}
//! {"kind":"user","record":{"tenant":"demo","id":"0190…","email_key":"ada@example.com",…}}
//! {"kind":"refresh","tenant":"demo","hash":"9f86d0…","record":{"session_id":"0190…","generation":3}}
//! {"end":true,"records":1234,"sha256":"9f86d0…"}
//! ```
//!
//! Because the records are logical, a backup taken from sled restores into
//! PostgreSQL and the reverse (`latch restore FILE --store …`, `latch
//! migrate`). Layout 1, written by earlier versions, named sled's trees and
//! keys; it is still read, and turned into the same records
//! ([`legacy_entry`]), so an old backup restores into either store.
//!
//! The reader streams: it yields records as it reads them and checks the
//! trailer last, so a store loads a file in one atomic step (one transaction,
//! or a new directory removed on failure) and a bad file leaves nothing.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    BrowserSessionRecord, ClientRecord, EventRecord, KeyRecord, OneTimeRecord, RefreshRecord, SessionRecord,
    StoreError, StoreResult, TenantRecord, UserRecord,
};
use crate::ids::TenantId;

/// The version of this file layout.
pub const BACKUP_VERSION: u32 = 2;

/// Meta keys that describe one store's own files or schema, not the data:
/// never written to a backup, and skipped in one.
pub const ENGINE_META: [&str; 2] = [super::sled::FORMAT_KEY, "commit_seq"];

#[derive(Deserialize)]
struct Header {
    latch_backup: u32,
}

#[derive(Serialize)]
struct HeaderV2 {
    latch_backup: u32,
    created_at: i64,
}

/// A layout-1 line: one sled tree entry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine {
    tree: String,
    #[serde(with = "hex::serde")]
    key: Vec<u8>,
    #[serde(with = "hex::serde")]
    value: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Trailer {
    end: bool,
    records: u64,
    sha256: String,
}

/// One stored record, in the form every store reads and writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Entry {
    /// A server-wide value (operator token hash, master key check, …).
    Meta {
        /// Its name.
        key: String,
        /// Its bytes.
        #[serde(with = "hex::serde")]
        value: Vec<u8>,
    },
    /// A tenant.
    Tenant {
        /// The record.
        record: TenantRecord,
    },
    /// A signing key.
    Key {
        /// Its tenant.
        tenant: TenantId,
        /// The record (private half sealed with the master key).
        record: KeyRecord,
    },
    /// A user.
    User {
        /// The record.
        record: UserRecord,
    },
    /// A session.
    Session {
        /// The record.
        record: SessionRecord,
    },
    /// A refresh token's hash and what it points at.
    Refresh {
        /// Its tenant.
        tenant: TenantId,
        /// SHA-256 of the token.
        #[serde(with = "hex::serde")]
        hash: [u8; 32],
        /// The session and generation.
        record: RefreshRecord,
    },
    /// An audit event.
    Event {
        /// The record.
        record: EventRecord,
    },
    /// A single-use token's hash and record.
    OneTime {
        /// Its tenant.
        tenant: TenantId,
        /// SHA-256 of the token.
        #[serde(with = "hex::serde")]
        hash: [u8; 32],
        /// The record.
        record: OneTimeRecord,
    },
    /// An OAuth client.
    Client {
        /// The record.
        record: ClientRecord,
    },
    /// A hosted-login browser session under the hash of its cookie.
    BrowserSession {
        /// Its tenant.
        tenant: TenantId,
        /// SHA-256 of the cookie.
        #[serde(with = "hex::serde")]
        hash: [u8; 32],
        /// The record.
        record: BrowserSessionRecord,
    },
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("backup I/O: {e}"))
}

fn json_line<T: Serialize>(value: &T) -> StoreResult<Vec<u8>> {
    let mut line = serde_json::to_vec(value).map_err(|e| StoreError::Backend(e.to_string()))?;
    line.push(b'\n');
    Ok(line)
}

/// Writes a backup file record by record.
pub struct BackupWriter<'a> {
    out: &'a mut dyn Write,
    digest: Sha256,
    records: u64,
}

impl<'a> BackupWriter<'a> {
    /// Starts a file.
    pub fn start(out: &'a mut dyn Write, created_at: i64) -> StoreResult<BackupWriter<'a>> {
        let mut writer = BackupWriter { out, digest: Sha256::new(), records: 0 };
        writer.emit(&json_line(&HeaderV2 { latch_backup: BACKUP_VERSION, created_at })?)?;
        Ok(writer)
    }

    fn emit(&mut self, line: &[u8]) -> StoreResult<()> {
        self.digest.update(line);
        self.out.write_all(line).map_err(io)
    }

    /// Adds a record. Engine meta ([`ENGINE_META`]) is left out.
    pub fn entry(&mut self, entry: &Entry) -> StoreResult<()> {
        if is_engine_meta(entry) {
            return Ok(());
        }
        self.emit(&json_line(entry)?)?;
        self.records += 1;
        Ok(())
    }

    /// Writes the trailer; returns the number of records.
    pub fn finish(self) -> StoreResult<u64> {
        let trailer = Trailer { end: true, records: self.records, sha256: hex::encode(self.digest.finalize()) };
        self.out.write_all(&json_line(&trailer)?).map_err(io)?;
        self.out.flush().map_err(io)?;
        Ok(self.records)
    }
}

/// Seconds since the epoch, for a backup's header.
pub fn created_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn refused(why: impl std::fmt::Display) -> StoreError {
    StoreError::Format(format!("not a usable latch backup: {why}"))
}

/// Reads a backup file as records, checking as it goes; the last item is an
/// error if the trailer is missing or does not match what came before it.
/// A store must load what it yields in one atomic step and give up at the
/// first error.
pub struct BackupReader<'a> {
    lines: std::io::Split<&'a mut dyn BufRead>,
    digest: Sha256,
    layout: u32,
    /// Lines read (the header is line 1), for messages.
    line: u64,
    /// Records yielded (layout 1: lines read, whether or not they made a record).
    records: u64,
    done: bool,
}

impl<'a> BackupReader<'a> {
    /// Reads and checks the header.
    pub fn new(input: &'a mut dyn BufRead) -> StoreResult<BackupReader<'a>> {
        let mut lines = input.split(b'\n');
        let header = lines.next().transpose().map_err(io)?.ok_or_else(|| refused("the file is empty"))?;
        let parsed: Header =
            serde_json::from_slice(&header).map_err(|_| refused("the first line is not a backup header"))?;
        if !(1..=BACKUP_VERSION).contains(&parsed.latch_backup) {
            return Err(refused(format!(
                "backup layout {} (this latch reads 1 to {BACKUP_VERSION}): upgrade latch",
                parsed.latch_backup
            )));
        }
        let mut digest = Sha256::new();
        digest.update(&header);
        digest.update(b"\n");
        Ok(BackupReader { lines, digest, layout: parsed.latch_backup, line: 1, records: 0, done: false })
    }

    fn next_entry(&mut self) -> StoreResult<Option<Entry>> {
        loop {
            let Some(line) = self.lines.next().transpose().map_err(io)? else {
                return Err(refused("it ends before its trailer (truncated)"));
            };
            self.line += 1;
            if let Ok(trailer) = serde_json::from_slice::<Trailer>(&line) {
                let expected = hex::encode(std::mem::take(&mut self.digest).finalize());
                if !trailer.end || trailer.records != self.records || trailer.sha256 != expected {
                    return Err(refused("its checksum or record count does not match (damaged or edited)"));
                }
                if self.lines.next().transpose().map_err(io)?.is_some_and(|rest| !rest.is_empty()) {
                    return Err(refused("there is data after its end"));
                }
                return Ok(None);
            }
            self.digest.update(&line);
            self.digest.update(b"\n");
            self.records += 1;
            let not_a_record = || refused(format!("line {} is not a record", self.line));
            if self.layout >= 2 {
                return serde_json::from_slice(&line).map(Some).map_err(|_| not_a_record());
            }
            let raw: RawLine = serde_json::from_slice(&line).map_err(|_| not_a_record())?;
            if let Some(entry) = legacy_entry(&raw.tree, &raw.key, &raw.value).map_err(|_| not_a_record())? {
                return Ok(Some(entry));
            }
        }
    }
}

impl Iterator for BackupReader<'_> {
    type Item = StoreResult<Entry>;

    fn next(&mut self) -> Option<StoreResult<Entry>> {
        if self.done {
            return None;
        }
        let next = self.next_entry().transpose();
        if !matches!(next, Some(Ok(_))) {
            self.done = true;
        }
        next
    }
}

/// A layout-1 line that holds no record latch knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotARecord;

/// A layout-1 line (a sled tree entry) as a record; `None` for sled's own
/// indexes and counters, which every store rebuilds from the records.
/// Layout-1 keys were `tenant ‖ NUL ‖ rest`.
pub fn legacy_entry(tree: &str, key: &[u8], value: &[u8]) -> Result<Option<Entry>, NotARecord> {
    fn json<T: serde::de::DeserializeOwned>(value: &[u8]) -> Result<T, NotARecord> {
        serde_json::from_slice(value).map_err(|_| NotARecord)
    }
    let split = || -> Result<(TenantId, &[u8]), NotARecord> {
        let nul = key.iter().position(|&b| b == 0).ok_or(NotARecord)?;
        let tenant = std::str::from_utf8(&key[..nul]).map_err(|_| NotARecord)?;
        Ok((TenantId::parse(tenant).map_err(|_| NotARecord)?, &key[nul + 1..]))
    };
    let hash = |rest: &[u8]| <[u8; 32]>::try_from(rest).map_err(|_| NotARecord);
    Ok(Some(match tree {
        "meta" => Entry::Meta { key: String::from_utf8(key.to_vec()).map_err(|_| NotARecord)?, value: value.to_vec() },
        "tenants" => Entry::Tenant { record: json(value)? },
        "keys" => Entry::Key { tenant: split()?.0, record: json(value)? },
        "users" => Entry::User { record: json(value)? },
        "sessions" => Entry::Session { record: json(value)? },
        "refresh" => {
            let (tenant, rest) = split()?;
            Entry::Refresh { tenant, hash: hash(rest)?, record: json(value)? }
        }
        "events" => Entry::Event { record: json(value)? },
        "one_time" => {
            let (tenant, rest) = split()?;
            Entry::OneTime { tenant, hash: hash(rest)?, record: json(value)? }
        }
        "clients" => Entry::Client { record: json(value)? },
        "browser_sessions" => {
            let (tenant, rest) = split()?;
            Entry::BrowserSession { tenant, hash: hash(rest)?, record: json(value)? }
        }
        "users_by_email" | "sessions_by_user" | "event_counts" => return Ok(None),
        _ => return Err(NotARecord),
    }))
}

/// Meta entries that belong to the engine, which a store skips on import.
pub fn is_engine_meta(entry: &Entry) -> bool {
    matches!(entry, Entry::Meta { key, .. } if ENGINE_META.contains(&key.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn tenant() -> TenantId {
        TenantId::parse("demo").expect("tenant id")
    }

    /// Fixed records, so two calls give equal values.
    fn entries() -> Vec<Entry> {
        let session_id = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);
        vec![
            Entry::Meta { key: "operator_token_sha256".into(), value: vec![1, 2, 3] },
            Entry::Refresh { tenant: tenant(), hash: [7; 32], record: RefreshRecord { session_id, generation: 3 } },
            Entry::Event {
                record: EventRecord {
                    tenant: tenant(),
                    id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002),
                    at: 1_767_225_600,
                    kind: "login_succeeded".into(),
                    actor: Some(session_id.to_string()),
                    subject: None,
                    ip: Some("127.0.0.1".into()),
                    detail: None,
                },
            },
        ]
    }

    fn sample() -> Vec<u8> {
        let mut file = Vec::new();
        let mut writer = BackupWriter::start(&mut file, 7).expect("header");
        for entry in entries() {
            writer.entry(&entry).expect("record");
        }
        // The engine's own meta is not data: left out.
        writer.entry(&Entry::Meta { key: "format".into(), value: b"latch-store/1".to_vec() }).expect("skipped");
        assert_eq!(writer.finish().expect("trailer"), 3);
        file
    }

    fn read_all(bytes: &[u8]) -> StoreResult<Vec<Entry>> {
        let mut input = bytes;
        BackupReader::new(&mut input)?.collect()
    }

    #[test]
    fn a_written_backup_reads_back_record_for_record() {
        assert_eq!(read_all(&sample()).expect("reads"), entries());
    }

    #[test]
    fn truncated_edited_or_foreign_backups_are_refused() {
        let file = sample();
        let text = String::from_utf8(file.clone()).expect("utf-8");
        let without_trailer: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
        let edited = text.replace("\"generation\":3", "\"generation\":4");
        assert_ne!(edited, text, "the edit must change a record");
        let newer = text.replacen("\"latch_backup\":2", "\"latch_backup\":3", 1);
        for (case, bytes) in [
            ("truncated", without_trailer.into_bytes()),
            ("edited", edited.into_bytes()),
            ("empty", Vec::new()),
            ("newer layout", newer.into_bytes()),
        ] {
            let err = read_all(&bytes).expect_err(case);
            assert!(matches!(err, StoreError::Format(_)), "{case}: {err}");
        }
        // The reader yields what it has read before it finds the damage:
        // a store must load it atomically and give up at the error.
        let edited = String::from_utf8(file).expect("utf-8").replace("\"generation\":3", "\"generation\":4");
        let mut input = edited.as_bytes();
        let items: Vec<_> = BackupReader::new(&mut input).expect("header").collect();
        assert_eq!(items.len(), 4, "three records, then the error");
        assert!(items[..3].iter().all(Result::is_ok) && items[3].is_err());
    }

    /// A layout-1 file (sled's trees and keys, as earlier versions wrote it).
    fn layout_one(lines: &[(&str, Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        let mut body = b"{\"latch_backup\":1,\"store_format\":\"latch-store/1\",\"created_at\":7}\n".to_vec();
        for (tree, key, value) in lines {
            let line = serde_json::json!({"tree": tree, "key": hex::encode(key), "value": hex::encode(value)});
            body.extend_from_slice(line.to_string().as_bytes());
            body.push(b'\n');
        }
        let trailer = Trailer { end: true, records: lines.len() as u64, sha256: hex::encode(Sha256::digest(&body)) };
        body.extend_from_slice(&json_line(&trailer).expect("trailer"));
        body
    }

    #[test]
    fn a_layout_one_backup_reads_as_the_same_records() {
        let [meta, refresh, event] = <[Entry; 3]>::try_from(entries()).expect("three");
        let Entry::Refresh { record: refresh, .. } = refresh else { unreachable!() };
        let Entry::Event { record: event } = event else { unreachable!() };
        let key = |rest: &[u8]| [b"demo\0".as_slice(), rest].concat();
        let file = layout_one(&[
            ("meta", b"format".to_vec(), b"latch-store/1".to_vec()),
            ("meta", b"operator_token_sha256".to_vec(), vec![1, 2, 3]),
            ("refresh", key(&[7; 32]), serde_json::to_vec(&refresh).expect("json")),
            ("users_by_email", key(b"ada@example.com"), vec![0; 16]),
            ("events", key(event.id.as_bytes()), serde_json::to_vec(&event).expect("json")),
        ]);
        let read = read_all(&file).expect("reads");
        let expected = vec![
            Entry::Meta { key: "format".into(), value: b"latch-store/1".to_vec() },
            meta,
            Entry::Refresh { tenant: tenant(), hash: [7; 32], record: refresh },
            Entry::Event { record: event },
        ];
        assert_eq!(read, expected, "indexes dropped, keys split into tenant and hash");
        assert!(is_engine_meta(&read[0]), "the engine's format is skipped on import");
        let unknown = layout_one(&[("mystery", b"x".to_vec(), b"y".to_vec())]);
        assert!(read_all(&unknown).expect_err("unknown tree").to_string().contains("line 2"));
    }
}
