//! The revocation feed: each tenant publishes the sessions that ended while
//! access tokens of theirs may still be valid, signed with the tenant's key,
//! so offline verifiers (`@latch/verifier`) refuse those tokens too
//! (docs/revocation-feed.md).
//!
//! The store writes a session's entry in the same atomic step that ends it
//! (`revoke_session`, `delete_user`), and every way a session ends goes
//! through one of the two: the feed lists exactly the sessions whose tokens
//! the server's own check refuses, by construction.

use std::sync::Arc;

use latch_shared::sign::SigningKey;
use latch_shared::{MAX_LEEWAY_SECONDS, REVOCATION_FEED_TYPE, RevocationFeed, RevokedSession};
use sha2::{Digest, Sha256};

use super::{Error, Latch, Result, TenantId};
use crate::store::RevocationLog;

/// How long a cache (a CDN, a browser, the verifier) may use a feed
/// document: a revocation reaches verifiers that poll this often within
/// these many seconds.
pub const FEED_MAX_AGE_SECONDS: u32 = 5;

/// Entries are purged this long after the session ended: the longest an
/// access token can live plus the largest verifier leeway. The feed itself
/// lists an entry only for the tenant's current lifetime plus that leeway.
pub const LONGEST_RETENTION_SECONDS: i64 = 86_400 + MAX_LEEWAY_SECONDS as i64;

/// A feed and its entity tag; signed only when asked for (a 304 needs no signature).
#[derive(Debug, Clone)]
pub struct Feed {
    /// Strong ETag of what the document says (its payload and signing key).
    pub etag: String,
    feed: RevocationFeed,
    signer: Arc<SigningKey>,
}

impl Feed {
    /// `feed` to be signed by `signer`, with its tag.
    pub fn new(feed: RevocationFeed, signer: Arc<SigningKey>) -> Result<Feed> {
        let payload = serde_json::to_vec(&feed).map_err(|e| Error::Internal(e.to_string()))?;
        // ECDSA signatures differ each time: the tag names what is said and by which key.
        let mut digest = Sha256::new();
        digest.update(signer.kid().as_bytes());
        digest.update([0]);
        digest.update(&payload);
        let etag = format!("\"{}\"", hex::encode(&digest.finalize()[..16]));
        Ok(Feed { etag, feed, signer })
    }

    /// What the document says.
    pub fn payload(&self) -> &RevocationFeed {
        &self.feed
    }

    /// The document: a compact JWS, `typ` [`REVOCATION_FEED_TYPE`], signed by
    /// the tenant's current key (a few milliseconds for 10,000 entries:
    /// callers on an async worker run it on a blocking thread).
    pub fn sign(&self) -> Result<String> {
        self.signer
            .sign_as(&self.feed, REVOCATION_FEED_TYPE)
            .map_err(|e| Error::Internal(format!("signing failed: {e}")))
    }
}

/// The feed's entries for a log read at `now`'s retention: each lasts
/// `retention` seconds after its session ended.
pub fn feed_of(issuer: &str, log: &RevocationLog, since: Option<String>, retention: i64) -> RevocationFeed {
    RevocationFeed {
        iss: issuer.to_owned(),
        cursor: Cursor { epoch: log.epoch, seq: log.last }.to_string(),
        since,
        revoked: log
            .entries
            .iter()
            .map(|entry| RevokedSession(entry.session_id.to_string(), entry.ended_at, entry.ended_at + retention))
            .collect(),
    }
}

/// A position in a tenant's revocation log, as `?since=` carries it:
/// `{epoch}.{seq}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    epoch: u64,
    seq: u64,
}

impl Cursor {
    fn parse(text: &str) -> Option<Cursor> {
        let (epoch, seq) = text.split_once('.')?;
        // At most 19 digits each: every such number fits (epochs and
        // sequence numbers stay below 2^63), so every cursor of this form is valid.
        let digits = |s: &str| !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(epoch) || !digits(seq) {
            return None;
        }
        Some(Cursor { epoch: epoch.parse().ok()?, seq: seq.parse().ok()? })
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.epoch, self.seq)
    }
}

impl Latch {
    /// The tenant's revocation feed: every live entry, or with `since` (a
    /// cursor of an earlier document) only the sessions ended after it. A
    /// cursor of another log (a restored store, a tenant made again) or
    /// ahead of this one gets the whole feed, which says so by having no
    /// `since`.
    pub async fn revocation_feed(&self, tenant: &TenantId, since: Option<&str>) -> Result<Feed> {
        let asked = since.map(|text| Cursor::parse(text).ok_or(Error::InvalidCursor)).transpose()?;
        let runtime = self.runtime(tenant).await?;
        let now = self.now();
        let retention = runtime.tenant.settings.access_token_ttl as i64 + MAX_LEEWAY_SECONDS as i64;
        let read = |after: u64| {
            let owned = tenant.clone();
            self.store.read(move |store| store.revocations(&owned, after, now - retention))
        };
        let mut log = read(asked.map_or(0, |cursor| cursor.seq)).await?;
        let continues = asked.filter(|cursor| cursor.epoch == log.epoch && cursor.seq <= log.last);
        if asked.is_some() && continues.is_none() {
            log = read(0).await?;
        }
        let feed = feed_of(&runtime.issuer, &log, continues.map(|cursor| cursor.to_string()), retention);
        Feed::new(feed, runtime.signer.clone())
    }

    /// Removes revocation entries no token can need any more; run every minute by the server.
    pub async fn purge_old_revocations(&self) -> Result<u64> {
        let before = self.now() - LONGEST_RETENTION_SECONDS;
        Ok(self.store.write(move |store| store.purge_revocations(before)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::Cursor;

    #[test]
    fn cursors_are_two_numbers_and_nothing_else() {
        assert_eq!(Cursor::parse("12.34"), Some(Cursor { epoch: 12, seq: 34 }));
        let largest = Cursor { epoch: i64::MAX as u64, seq: 9_999_999_999_999_999_999 };
        assert_eq!(Cursor::parse(&largest.to_string()), Some(largest));
        let bad = [
            "",
            ".",
            "1.",
            ".1",
            "1.2.3",
            "-1.2",
            "1.+2",
            "a.1",
            "1 .2",
            "18446744073709551615.1",
            "1.12345678901234567890",
        ];
        for text in bad {
            assert_eq!(Cursor::parse(text), None, "{text:?}");
        }
    }
}
