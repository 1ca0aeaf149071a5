//! A tenant's revocation feed: the sessions ended while access tokens of
//! theirs may still be valid, signed with the tenant's key so any cache can
//! serve it (docs/revocation-feed.md). The server writes it; verifiers check
//! it with [`crate::verify_revocation_feed`] and refuse a token whose `sid`
//! it lists.

use serde::{Deserialize, Serialize};

/// The `typ` header of a revocation feed: no access or ID token has it, and
/// no verifier takes a feed for a token.
pub const REVOCATION_FEED_TYPE: &str = "latch-revocations+jwt";

/// The payload of a revocation feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationFeed {
    /// The tenant's issuer, as in its tokens.
    pub iss: String,
    /// Where the next incremental request starts: `?since={cursor}` (opaque).
    pub cursor: String,
    /// Present on an incremental document: the cursor it continues, and the
    /// entries are the sessions ended after it. Absent: the entries are every
    /// session whose tokens may still be valid, and replace what a verifier held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// The ended sessions, oldest first.
    pub revoked: Vec<RevokedSession>,
}

/// One ended session, as a JSON array `[sid, ended_at, exp]`: the `sid`
/// claim of its tokens, when it ended, and when the entry may be dropped
/// because every access token of the session has expired, even with a
/// verifier's largest leeway (seconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedSession(pub String, pub i64, pub i64);
