//! Validated newtypes: once parsed, a value is known to be well-formed.

use std::collections::HashSet;
use std::fmt;
use std::io::Read as _;
use std::sync::LazyLock;

use secrecy::{ExposeSecret, SecretString};

use super::Error;

/// An email address as given (trimmed), with its case-folded form for uniqueness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    address: String,
    key: String,
}

impl Email {
    /// Parses an address: exactly one `@` separating a local part (≤ 64 bytes) and a
    /// domain, at most 254 bytes, no whitespace or control characters.
    pub fn parse(raw: &str) -> Result<Email, Error> {
        let address = raw.trim();
        let Some((local, domain)) = address.rsplit_once('@') else {
            return Err(Error::InvalidEmail);
        };
        let valid = address.len() <= 254
            && !local.is_empty()
            && local.len() <= 64
            && !domain.is_empty()
            && !local.contains('@')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !address.chars().any(|c| c.is_whitespace() || c.is_control());
        if !valid {
            return Err(Error::InvalidEmail);
        }
        Ok(Email { address: address.to_owned(), key: address.to_lowercase() })
    }

    /// The address as the user wrote it.
    pub fn as_str(&self) -> &str {
        &self.address
    }

    /// The case-folded address, unique per tenant.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The case-folded local part.
    pub fn local_part_key(&self) -> &str {
        self.key.rsplit_once('@').map_or(&self.key, |(local, _)| local)
    }
}

/// The longest password accepted, in bytes (SPEC §4).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Which password rule was broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordRule {
    /// Shorter than the tenant's minimum length (in characters).
    TooShort {
        /// The minimum.
        min: u32,
    },
    /// Longer than [`MAX_PASSWORD_BYTES`].
    TooLong,
    /// Equal to the account's email or its local part.
    ContainsEmail,
    /// Among the most common passwords (case-insensitive).
    Common,
}

impl fmt::Display for PasswordRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordRule::TooShort { min } => {
                write!(f, "the password must have at least {min} characters")
            }
            PasswordRule::TooLong => {
                write!(f, "the password must be at most {MAX_PASSWORD_BYTES} bytes")
            }
            PasswordRule::ContainsEmail => {
                write!(f, "the password must not be the account's email address")
            }
            PasswordRule::Common => {
                write!(f, "the password is one of the most common passwords; choose another")
            }
        }
    }
}

/// The common-password list shipped in the binary (see `server/data/README.md`).
const COMMON_PASSWORDS_GZ: &[u8] = include_bytes!("../../data/common-passwords.txt.gz");

fn common_passwords() -> &'static HashSet<String> {
    static LIST: LazyLock<HashSet<String>> = LazyLock::new(|| {
        let mut text = String::new();
        let decoded = flate2::read::GzDecoder::new(COMMON_PASSWORDS_GZ).read_to_string(&mut text);
        if let Err(e) = decoded {
            // The list is compiled in and checked by a test; this cannot happen in a tested build.
            tracing::error!(error = %e, "the common-password list does not decompress");
        }
        text.lines().map(str::to_lowercase).collect()
    });
    &LIST
}

/// Whether a (case-folded) password is on the list. Loaded on first use.
fn is_common(folded: &str) -> bool {
    common_passwords().contains(folded)
}

/// A password that passed the tenant's policy. Never logged or printed.
pub struct Password(SecretString);

impl Password {
    /// Checks `raw` against the policy for an account with `email`.
    pub fn parse(raw: &str, min_length: u32, email: &Email) -> Result<Password, Error> {
        if raw.len() > MAX_PASSWORD_BYTES {
            return Err(Error::WeakPassword(PasswordRule::TooLong));
        }
        if raw.chars().count() < min_length as usize {
            return Err(Error::WeakPassword(PasswordRule::TooShort { min: min_length }));
        }
        let folded = raw.to_lowercase();
        if folded == email.key() || folded == email.local_part_key() {
            return Err(Error::WeakPassword(PasswordRule::ContainsEmail));
        }
        if is_common(&folded) {
            return Err(Error::WeakPassword(PasswordRule::Common));
        }
        Ok(Password(SecretString::from(raw)))
    }

    /// A password as presented at login: only the length cap applies.
    pub fn presented(raw: &str) -> Result<Password, Error> {
        if raw.len() > MAX_PASSWORD_BYTES {
            return Err(Error::InvalidCredentials);
        }
        Ok(Password(SecretString::from(raw)))
    }

    /// The secret, for hashing.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// A display name: 1–200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// Parses a display name (trimmed).
    pub fn parse(raw: &str) -> Result<DisplayName, Error> {
        let name = raw.trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(Error::InvalidName);
        }
        Ok(DisplayName(name.to_owned()))
    }

    /// The name.
    pub fn into_inner(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_fold_case_for_uniqueness() {
        let email = Email::parse("  Ada.Lovelace@Example.COM ").expect("valid");
        assert_eq!(email.as_str(), "Ada.Lovelace@Example.COM");
        assert_eq!(email.key(), "ada.lovelace@example.com");
        assert_eq!(email.local_part_key(), "ada.lovelace");
        for bad in ["", "plain", "@x.org", "a@", "a b@x.org", "a@x@y", "a@.org", "a@x.", "a\u{0}@x.org"] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_shipped_common_password_list_holds_at_least_ten_thousand() {
        assert!(common_passwords().len() >= 10_000, "{}", common_passwords().len());
        assert!(is_common("123456") && is_common("password") && !is_common("correct horse battery"));
    }

    #[test]
    fn password_policy_names_the_rule_broken() {
        let email = Email::parse("ada@example.com").expect("valid");
        let rule = |raw: &str| match Password::parse(raw, 10, &email) {
            Err(Error::WeakPassword(rule)) => Some(rule),
            _ => None,
        };
        assert_eq!(rule("short"), Some(PasswordRule::TooShort { min: 10 }));
        assert_eq!(rule(&"x".repeat(1025)), Some(PasswordRule::TooLong));
        assert_eq!(rule("ADA@example.com"), Some(PasswordRule::ContainsEmail));
        assert_eq!(rule("correct horse battery"), None);
        assert_eq!(rule("1234567890"), Some(PasswordRule::Common));
        assert_eq!(rule("Password123"), Some(PasswordRule::Common), "case-insensitive");
        assert_eq!(rule("qwertyuiop"), Some(PasswordRule::Common));
        assert_eq!(rule("éééééééééé"), None, "length counts characters, not bytes");
    }
}
