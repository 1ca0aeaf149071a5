//! Importing users with the password hashes they already have: one JSON
//! object a line (NDJSON), checked in full before anything is written, then
//! written in batches, each durable before its results are given.
//!
//! A file with any bad line imports nothing: the caller reads every line
//! through [`Importer::check`] first and writes only when no line failed
//! (the API spools the body to a temporary file to read it twice, the CLI
//! reads its file twice). A rerun of the same file is idempotent: an email
//! already in the tenant is skipped, or updated with `existing = update`.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::authority::Actor;
use super::events::{Event, EventKind};
use super::hashes::{self, Scheme};
use super::runtime::TenantRuntime;
use super::types::{DisplayName, Email};
use super::{Latch, Result};
use crate::store::{Change, UserRecord};

/// Users written in one atomic, durable step.
pub const BATCH: usize = 500;
/// A line longer than this is refused (a user is a few hundred bytes).
pub const MAX_LINE_BYTES: usize = 16 * 1024;
/// Line errors kept for the answer; the rest are only counted.
pub const MAX_REPORTED_ERRORS: usize = 1000;

/// What an import does with an email the tenant already has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Existing {
    /// Leave the user as they are (the default: a rerun changes nothing).
    #[default]
    Skip,
    /// Replace their password hash, and the name, roles, verification and
    /// disabled state the line gives; their sessions end.
    Update,
}

/// One line as the file has it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    email: String,
    password_hash: String,
    #[serde(default)]
    id: Option<Uuid>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    roles: Option<Vec<String>>,
    #[serde(default)]
    email_verified: Option<bool>,
    #[serde(default)]
    created_at: Option<CreatedAt>,
    #[serde(default)]
    disabled: Option<bool>,
}

/// `created_at` as RFC 3339 text or Unix seconds.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum CreatedAt {
    Seconds(i64),
    Text(String),
}

/// A checked line, ready to write.
#[derive(Debug, Clone)]
pub struct ImportUser {
    /// Its line number (from 1).
    pub line: usize,
    email: Email,
    password_hash: String,
    id: Option<Uuid>,
    name: Option<String>,
    roles: Option<Vec<String>>,
    email_verified: Option<bool>,
    created_at: Option<i64>,
    disabled: Option<bool>,
}

/// A line that cannot be imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// Its line number (from 1).
    pub line: usize,
    /// Why, naming the field.
    pub reason: String,
}

/// What became of one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineResult {
    /// Its line number (from 1).
    pub line: usize,
    /// The user's id (given, existing or new).
    pub id: Option<Uuid>,
    /// What happened.
    pub outcome: Outcome,
}

/// What happened to a line's user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new user.
    Created,
    /// The tenant had the email; the user was updated.
    Updated,
    /// The tenant had the email; the user was left alone.
    Skipped,
    /// Not imported, with the reason (an id or email taken meanwhile).
    Failed(String),
}

impl Outcome {
    /// The name in the per-line results.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Skipped => "skipped",
            Outcome::Failed(_) => "failed",
        }
    }
}

/// Lines written, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// New users.
    pub created: u64,
    /// Updated users.
    pub updated: u64,
    /// Emails left alone.
    pub skipped: u64,
    /// Lines not imported.
    pub failed: u64,
}

/// One import into one tenant: checks lines, then writes them.
pub struct Importer {
    latch: Arc<Latch>,
    actor: Actor,
    runtime: Arc<TenantRuntime>,
    existing: Existing,
    /// Emails and ids seen so far (SHA-256, first 16 bytes: a million lines
    /// stay in tens of megabytes), so a file naming one twice is refused.
    emails: HashSet<[u8; 16]>,
    ids: HashSet<Uuid>,
    errors: Vec<LineError>,
    error_count: u64,
    lines: u64,
    totals: Totals,
}

impl Latch {
    /// Starts an import into the actor's tenant.
    pub async fn importer(self: &Arc<Self>, actor: &Actor, existing: Existing) -> Result<Importer> {
        let runtime = self.runtime(actor.tenant()).await?;
        Ok(Importer {
            latch: self.clone(),
            actor: actor.clone(),
            runtime,
            existing,
            emails: HashSet::new(),
            ids: HashSet::new(),
            errors: Vec::new(),
            error_count: 0,
            lines: 0,
            totals: Totals::default(),
        })
    }
}

impl Importer {
    /// Checks line `number` (from 1) of the first pass: its form, its
    /// fields, and that no earlier line had its email or id. Blank lines
    /// are skipped. Errors are kept (see [`Importer::errors`]).
    pub fn check(&mut self, number: usize, text: &[u8]) {
        if is_blank(text) {
            return;
        }
        self.lines += 1;
        let checked = parse(&self.runtime, number, text).and_then(|user| {
            let email = Sha256::digest(user.email.key().as_bytes());
            if !self.emails.insert(email[..16].try_into().unwrap_or_default()) {
                return Err("email: an earlier line has this email".to_owned());
            }
            if let Some(id) = user.id
                && !self.ids.insert(id)
            {
                return Err("id: an earlier line has this id".to_owned());
            }
            Ok(user)
        });
        if let Err(reason) = checked {
            self.error_count += 1;
            if self.errors.len() < MAX_REPORTED_ERRORS {
                self.errors.push(LineError { line: number, reason });
            }
        }
    }

    /// The errors of the first pass (the first [`MAX_REPORTED_ERRORS`]).
    pub fn errors(&self) -> &[LineError] {
        &self.errors
    }

    /// How many lines of the first pass failed.
    pub fn error_count(&self) -> u64 {
        self.error_count
    }

    /// Non-blank lines of the first pass.
    pub fn lines(&self) -> u64 {
        self.lines
    }
}

/// Checks one line's form and fields against the tenant's rules.
fn parse(runtime: &TenantRuntime, number: usize, text: &[u8]) -> std::result::Result<ImportUser, String> {
    if text.len() > MAX_LINE_BYTES {
        return Err(format!("longer than {MAX_LINE_BYTES} bytes"));
    }
    let line: Line = serde_json::from_slice(text).map_err(|e| format!("not a user object: {e}"))?;
    let email = Email::parse(&line.email).map_err(|e| format!("email: {e}"))?;
    hashes::check_imported(&line.password_hash)?;
    if line.id.is_some_and(|id| id.is_nil()) {
        return Err("id: the nil UUID is not a user id".into());
    }
    let name = line
        .name
        .as_deref()
        .map(DisplayName::parse)
        .transpose()
        .map_err(|e| format!("name: {e}"))?
        .map(DisplayName::into_inner);
    let roles = match line.roles {
        Some(mut roles) => {
            let defined = &runtime.tenant.settings.roles;
            if let Some(unknown) = roles.iter().find(|role| !defined.contains_key(*role)) {
                return Err(format!(
                    "roles: {:?} is not a role of this tenant",
                    unknown.chars().take(64).collect::<String>()
                ));
            }
            roles.sort_unstable();
            roles.dedup();
            Some(roles)
        }
        None => None,
    };
    let created_at = match line.created_at {
        None => None,
        Some(CreatedAt::Seconds(seconds)) if (0..=253_402_300_799).contains(&seconds) => Some(seconds),
        Some(CreatedAt::Seconds(_)) => return Err("created_at: Unix seconds out of range".into()),
        Some(CreatedAt::Text(text)) => Some(
            time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
                .map_err(|_| "created_at: neither RFC 3339 text nor Unix seconds".to_owned())?
                .unix_timestamp(),
        ),
    };
    Ok(ImportUser {
        line: number,
        email,
        password_hash: line.password_hash,
        id: line.id,
        name,
        roles,
        email_verified: line.email_verified,
        created_at,
        disabled: line.disabled,
    })
}

impl Importer {
    /// Writes a batch of prepared users in one atomic step of the store and
    /// waits until it is durable; what became of each line.
    pub async fn write(&mut self, batch: Vec<ImportUser>) -> Result<Vec<LineResult>> {
        let tenant = self.runtime.tenant.id.clone();
        let default_roles = self.runtime.tenant.settings.default_roles.clone();
        let (existing, now) = (self.existing, self.latch.now());
        let results = self
            .latch
            .store
            .write(move |store| {
                let mut results = Vec::with_capacity(batch.len());
                let mut new_users = Vec::new();
                for user in &batch {
                    let outcome = match store.find_user_by_email(&tenant, user.email.key())? {
                        Some(found) if user.id.is_some_and(|id| id != found.id) => (
                            Some(found.id),
                            Outcome::Failed(format!("id: this email belongs to the user {}", found.id)),
                        ),
                        Some(found) if existing == Existing::Skip => (Some(found.id), Outcome::Skipped),
                        Some(found) => {
                            // Decided on the record as it stands in the atomic step.
                            let mut ends_sessions = false;
                            let updated = store.update_user(&tenant, found.id, &mut |stored| {
                                ends_sessions =
                                    stored.password_hash != user.password_hash || user.disabled == Some(true);
                                stored.set_password_hash(user.password_hash.clone());
                                if let Some(name) = &user.name {
                                    stored.name = Some(name.clone());
                                }
                                if let Some(roles) = &user.roles {
                                    stored.roles = roles.clone();
                                }
                                if let Some(verified) = user.email_verified {
                                    stored.email_verified = verified;
                                }
                                if let Some(disabled) = user.disabled {
                                    stored.disabled = disabled;
                                }
                                stored.updated_at = now;
                                Change::Write
                            })?;
                            match updated {
                                Some(_) => {
                                    if ends_sessions {
                                        store.revoke_user_sessions(&tenant, found.id, None, now)?;
                                    }
                                    (Some(found.id), Outcome::Updated)
                                }
                                None => (Some(found.id), Outcome::Failed("the user was deleted meanwhile".into())),
                            }
                        }
                        None => {
                            let roles = user.roles.clone().unwrap_or_else(|| default_roles.clone());
                            let created_at = user.created_at.unwrap_or(now);
                            let mut record = UserRecord::new(
                                tenant.clone(),
                                user.email.as_str().to_owned(),
                                user.email.key().to_owned(),
                                user.password_hash.clone(),
                                roles,
                                created_at,
                            );
                            record.id = user.id.unwrap_or(record.id);
                            record.name = user.name.clone();
                            record.email_verified = user.email_verified.unwrap_or(false);
                            record.disabled = user.disabled.unwrap_or(false);
                            record.updated_at = now;
                            // Inserted together after the loop: one commit for the batch.
                            new_users.push((results.len(), record));
                            (None, Outcome::Created)
                        }
                    };
                    results.push(LineResult { line: user.line, id: outcome.0, outcome: outcome.1 });
                }
                let records: Vec<UserRecord> = new_users.iter().map(|(_, record)| record.clone()).collect();
                let inserted = store.insert_users(&records)?;
                for ((at, record), inserted) in new_users.into_iter().zip(inserted) {
                    results[at] = match inserted {
                        true => LineResult { line: results[at].line, id: Some(record.id), outcome: Outcome::Created },
                        false => LineResult {
                            line: results[at].line,
                            id: None,
                            outcome: Outcome::Failed("id or email: taken by another user meanwhile".into()),
                        },
                    };
                }
                Ok(results)
            })
            .await?;
        for result in &results {
            match result.outcome {
                Outcome::Created => self.totals.created += 1,
                Outcome::Updated => self.totals.updated += 1,
                Outcome::Skipped => self.totals.skipped += 1,
                Outcome::Failed(_) => self.totals.failed += 1,
            }
        }
        Ok(results)
    }

    /// Records the import in the audit log; the totals.
    pub async fn finish(self) -> Totals {
        let Totals { created, updated, skipped, failed } = self.totals;
        let detail = format!("created {created}, updated {updated}, skipped {skipped}, failed {failed}");
        let event = Event::new(EventKind::UsersImported).actor(self.actor.name()).detail(detail);
        self.latch.record(self.actor.tenant(), event).await;
        self.totals
    }
}

fn is_blank(text: &[u8]) -> bool {
    text.iter().all(u8::is_ascii_whitespace)
}

impl Latch {
    /// The tenant's users whose password hash is of another scheme than the
    /// argon2id latch writes (imported, not logged in since), by scheme.
    /// Reads every user of the tenant.
    pub async fn imported_hashes(&self, actor: &Actor) -> Result<Vec<(&'static str, u64)>> {
        let tenant = actor.tenant().clone();
        self.runtime(&tenant).await?;
        let counts = self
            .store
            .run(move |store| {
                let mut counts = std::collections::BTreeMap::<Scheme, u64>::new();
                let mut after: Option<String> = None;
                loop {
                    let page = store.list_users(&tenant, "", after.as_deref(), 1000)?;
                    for user in &page {
                        if let Some(scheme) = hashes::imported_scheme(&user.password_hash) {
                            *counts.entry(scheme).or_default() += 1;
                        }
                    }
                    match page.last() {
                        Some(last) if page.len() == 1000 => after = Some(last.email_key.clone()),
                        _ => return Ok(counts),
                    }
                }
            })
            .await?;
        Ok(counts.into_iter().map(|(scheme, count)| (scheme.as_str(), count)).collect())
    }
}

/// What a running import reports, in order: every line's result, then the
/// totals, or an error that stopped it (the lines reported before it are
/// written and durable; a rerun of the file picks up the rest).
#[derive(Debug)]
pub enum Progress {
    /// A line's result, once its batch is durable.
    Line(LineResult),
    /// Every line is done.
    Done(Totals),
    /// The import stopped (the store failed).
    Stopped(String),
}

/// Reads `file` from its start, a line at a time (the newline removed), with
/// line numbers from 1; stops at the first read error.
fn each_line(file: &mut std::fs::File, mut visit: impl FnMut(usize, &[u8]) -> bool) -> std::io::Result<()> {
    use std::io::{BufRead as _, Seek as _};
    file.rewind()?;
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
    let mut line = Vec::new();
    for number in 1.. {
        line.clear();
        // One byte past the limit is enough to know a line is too long.
        let read = (&mut reader).take(MAX_LINE_BYTES as u64 + 1).read_until(b'\n', &mut line)?;
        if read == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') && read > MAX_LINE_BYTES {
            // Skip the rest of an overlong line.
            let mut rest = Vec::new();
            reader.read_until(b'\n', &mut rest)?;
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if !visit(number, text) {
            return Ok(());
        }
    }
    Ok(())
}

use std::io::Read as _;

impl Importer {
    /// The first pass over `file`: checks every line (off the async workers).
    pub async fn check_file(mut self, mut file: std::fs::File) -> Result<(Importer, std::fs::File)> {
        tokio::task::spawn_blocking(move || {
            each_line(&mut file, |number, text| {
                self.check(number, text);
                true
            })
            .map_err(|e| super::Error::Internal(format!("reading the import: {e}")))?;
            Ok((self, file))
        })
        .await
        .map_err(|e| super::Error::Internal(format!("the import's check failed: {e}")))?
    }

    /// The second pass over `file`, every line of which passed
    /// [`Importer::check`]: writes the users in batches of [`BATCH`], each
    /// durable before its lines are reported; the totals last. Stops early
    /// when the receiver is dropped (what was written stays, and is audited).
    pub fn write_file(mut self, mut file: std::fs::File) -> tokio::sync::mpsc::Receiver<Progress> {
        let (to_writer, mut batches) = tokio::sync::mpsc::channel::<Vec<std::result::Result<ImportUser, LineError>>>(2);
        let (report, progress) = tokio::sync::mpsc::channel(4 * BATCH);
        let reader = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
        let read_error = reader.clone();
        let preparer = self.prepare_only();
        tokio::task::spawn_blocking(move || {
            let mut batch = Vec::with_capacity(BATCH);
            let read = each_line(&mut file, |number, text| {
                match preparer.prepare(number, text) {
                    Ok(None) => {}
                    Ok(Some(user)) => batch.push(Ok(user)),
                    Err(error) => batch.push(Err(error)),
                }
                if batch.len() < BATCH {
                    return true;
                }
                to_writer.blocking_send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))).is_ok()
            });
            if let Err(e) = read {
                *read_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("reading the import: {e}"));
            } else if !batch.is_empty() {
                let _ = to_writer.blocking_send(batch);
            }
        });
        tokio::spawn(async move {
            while let Some(batch) = batches.recv().await {
                let mut ready = Vec::with_capacity(batch.len());
                let mut refused = Vec::new();
                for line in batch {
                    match line {
                        Ok(user) => ready.push(user),
                        Err(LineError { line, reason }) => {
                            refused.push(LineResult { line, id: None, outcome: Outcome::Failed(reason) })
                        }
                    }
                }
                self.totals.failed += refused.len() as u64;
                let mut results = match self.write(ready).await {
                    Ok(results) => results,
                    Err(e) => {
                        let _ = report.send(Progress::Stopped(e.to_string())).await;
                        self.finish().await;
                        return;
                    }
                };
                results.extend(refused);
                results.sort_by_key(|result| result.line);
                for result in results {
                    if report.send(Progress::Line(result)).await.is_err() {
                        self.finish().await;
                        return;
                    }
                }
            }
            let stopped = reader.lock().unwrap_or_else(|p| p.into_inner()).take();
            let totals = self.finish().await;
            let last = match stopped {
                Some(error) => Progress::Stopped(error),
                None => Progress::Done(totals),
            };
            let _ = report.send(last).await;
        });
        progress
    }

    /// What the second pass's reader needs to prepare lines.
    fn prepare_only(&self) -> Preparer {
        Preparer { runtime: self.runtime.clone() }
    }
}

/// Prepares lines of the second pass on the reading thread.
struct Preparer {
    runtime: Arc<TenantRuntime>,
}

impl Preparer {
    /// A line of the second pass, ready to write; `None` for a blank line.
    /// A line that passed [`Importer::check`] fails here only if the
    /// tenant's roles changed in between.
    fn prepare(&self, number: usize, text: &[u8]) -> std::result::Result<Option<ImportUser>, LineError> {
        if is_blank(text) {
            return Ok(None);
        }
        parse(&self.runtime, number, text).map(Some).map_err(|reason| LineError { line: number, reason })
    }
}
