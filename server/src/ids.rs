//! Identifiers every layer uses, at the bottom of the layering: the store
//! keys records by them and the domain validates with them, so neither has
//! to import the other for them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A string that is not a tenant id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("tenant ids are 1-63 characters of a-z, 0-9 and '-'")]
pub struct InvalidTenantId;

/// A tenant id: a slug of 1–63 characters from `[a-z0-9-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    /// The rule of [`TenantId::parse`] as a regular expression, for the
    /// OpenAPI document.
    pub const PATTERN: &'static str = "^[a-z0-9-]{1,63}$";
    /// The longest tenant id.
    pub const MAX_LEN: usize = 63;

    /// Parses a tenant id.
    pub fn parse(raw: &str) -> Result<TenantId, InvalidTenantId> {
        let valid = (1..=TenantId::MAX_LEN).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if valid { Ok(TenantId(raw.to_owned())) } else { Err(InvalidTenantId) }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantId {
    type Error = InvalidTenantId;
    fn try_from(raw: String) -> Result<TenantId, InvalidTenantId> {
        TenantId::parse(&raw)
    }
}

impl From<TenantId> for String {
    fn from(id: TenantId) -> String {
        id.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_slugs() {
        for ok in ["a", "demo", "acme-1", &"a".repeat(63)] {
            assert!(TenantId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Acme", "a_b", "a b", "ä", "a/b", &"a".repeat(64)] {
            assert_eq!(TenantId::parse(bad), Err(InvalidTenantId), "{bad}");
        }
        let json: Result<TenantId, _> = serde_json::from_str("\"Not A Slug\"");
        assert!(json.is_err(), "deserialising checks it too");
    }
}
