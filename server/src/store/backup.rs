//! The backup file: a header line, one JSON line per stored record, and a
//! trailer carrying the record count and a SHA-256 of everything before it,
//! so a truncated or edited file is refused before anything is restored.
//!
//! ```text
//! {"latch_backup":1,"store_format":"latch-store/1","created_at":1767225600}
//! {"tree":"users","key":"64656d6f00…","value":"7b22…"}
//! {"end":true,"records":1234,"sha256":"9f86d0…"}
//! ```

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{StoreError, StoreResult};

/// The version of this file layout.
pub const BACKUP_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Header {
    latch_backup: u32,
    store_format: String,
    created_at: i64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    tree: String,
    #[serde(with = "hex::serde")]
    key: Vec<u8>,
    #[serde(with = "hex::serde")]
    value: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Trailer {
    end: bool,
    records: u64,
    sha256: String,
}

/// One stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The relation (engine tree) it belongs to.
    pub tree: String,
    /// Its key.
    pub key: Vec<u8>,
    /// Its value.
    pub value: Vec<u8>,
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
    /// Starts a file for a store of `store_format`.
    pub fn start(out: &'a mut dyn Write, store_format: &str, created_at: i64) -> StoreResult<BackupWriter<'a>> {
        let mut writer = BackupWriter { out, digest: Sha256::new(), records: 0 };
        let header = Header { latch_backup: BACKUP_VERSION, store_format: store_format.to_owned(), created_at };
        writer.emit(&json_line(&header)?)?;
        Ok(writer)
    }

    fn emit(&mut self, line: &[u8]) -> StoreResult<()> {
        self.digest.update(line);
        self.out.write_all(line).map_err(io)
    }

    /// Adds a record.
    pub fn record(&mut self, tree: &str, key: &[u8], value: &[u8]) -> StoreResult<()> {
        let line = json_line(&Line { tree: tree.to_owned(), key: key.to_vec(), value: value.to_vec() })?;
        self.emit(&line)?;
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

fn refused(why: impl std::fmt::Display) -> StoreError {
    StoreError::Format(format!("not a usable latch backup: {why}"))
}

/// Reads and checks a whole backup file: the header must name `store_format`,
/// and the trailer must match the lines before it.
pub fn read(input: &mut dyn BufRead, store_format: &str) -> StoreResult<Vec<Record>> {
    let mut digest = Sha256::new();
    let mut lines = input.split(b'\n');
    let mut next = || lines.next().transpose().map_err(io);
    let header = next()?.ok_or_else(|| refused("the file is empty"))?;
    let parsed: Header =
        serde_json::from_slice(&header).map_err(|_| refused("the first line is not a backup header"))?;
    if parsed.latch_backup != BACKUP_VERSION {
        return Err(refused(format!("backup layout {} (this latch reads {BACKUP_VERSION})", parsed.latch_backup)));
    }
    if parsed.store_format != store_format {
        return Err(refused(format!(
            "it holds store format {:?}, this latch reads {store_format:?}",
            parsed.store_format
        )));
    }
    digest.update(&header);
    digest.update(b"\n");
    let mut records = Vec::new();
    while let Some(line) = next()? {
        if let Ok(trailer) = serde_json::from_slice::<Trailer>(&line) {
            let expected = hex::encode(std::mem::take(&mut digest).finalize());
            if !trailer.end || trailer.records != records.len() as u64 || trailer.sha256 != expected {
                return Err(refused("its checksum or record count does not match (damaged or edited)"));
            }
            if next()?.is_some_and(|rest| !rest.is_empty()) {
                return Err(refused("there is data after its end"));
            }
            return Ok(records);
        }
        let record: Line = serde_json::from_slice(&line)
            .map_err(|_| refused(format!("line {} is not a record", records.len() + 2)))?;
        digest.update(&line);
        digest.update(b"\n");
        records.push(Record { tree: record.tree, key: record.key, value: record.value });
    }
    Err(refused("it ends before its trailer (truncated)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut file = Vec::new();
        let mut writer = BackupWriter::start(&mut file, "latch-store/1", 7).expect("header");
        writer.record("users", b"demo\0a", b"{\"x\":1}").expect("record");
        writer.record("meta", b"format", b"latch-store/1").expect("record");
        assert_eq!(writer.finish().expect("trailer"), 2);
        file
    }

    #[test]
    fn a_written_backup_reads_back_record_for_record() {
        let records = read(&mut sample().as_slice(), "latch-store/1").expect("reads");
        assert_eq!(records.len(), 2);
        assert_eq!(records[0], Record { tree: "users".into(), key: b"demo\0a".to_vec(), value: b"{\"x\":1}".to_vec() });
    }

    #[test]
    fn truncated_edited_or_foreign_backups_are_refused() {
        let file = sample();
        let text = String::from_utf8(file.clone()).expect("utf-8");
        let without_trailer: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
        let edited = text.replace("7b2278223a317d", "7b2278223a327d");
        assert_ne!(edited, text, "the edit must change a value");
        for (case, bytes) in
            [("truncated", without_trailer.into_bytes()), ("edited", edited.into_bytes()), ("empty", Vec::new())]
        {
            let err = read(&mut bytes.as_slice(), "latch-store/1").expect_err(case);
            assert!(matches!(err, StoreError::Format(_)), "{case}: {err}");
        }
        let err = read(&mut file.as_slice(), "latch-store/2").expect_err("other format");
        assert!(err.to_string().contains("latch-store/1"), "{err}");
    }
}
