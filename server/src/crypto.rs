//! Secrets at rest and opaque tokens.
//!
//! - The master key (32 random bytes in a 0600 file outside the data
//!   directory) encrypts every private signing key with XChaCha20-Poly1305,
//!   bound by associated data to its tenant and key id.
//! - Opaque tokens (refresh tokens, the operator token) carry 256 random bits
//!   and are stored only as SHA-256 hashes, compared in constant time.

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore as _;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

const NONCE_BYTES: usize = 24;

/// The server's master key.
pub struct MasterKey(SecretBox<[u8; 32]>);

/// Why the master key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    /// The file could not be read or created.
    #[error("master key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file does not hold 64 hex digits.
    #[error("master key file {0} does not hold a 32-byte key in hex")]
    Format(String),
}

impl MasterKey {
    /// Reads the key file, or creates it (mode 0600) with a fresh random key.
    /// Returns the key and whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(MasterKey, bool), MasterKeyError> {
        match MasterKey::load(path)? {
            Some(key) => Ok((key, false)),
            None => Ok((MasterKey::create(path)?, true)),
        }
    }

    /// Reads the key file; `None` if there is none.
    pub fn load(path: &Path) -> Result<Option<MasterKey>, MasterKeyError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim()).map_err(|_| MasterKeyError::Format(path.display().to_string()))?;
                let key: [u8; 32] = bytes.try_into().map_err(|_| MasterKeyError::Format(path.display().to_string()))?;
                Ok(Some(MasterKey(SecretBox::new(Box::new(key)))))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(MasterKeyError::Io { path: path.display().to_string(), source }),
        }
    }

    /// Creates the key file (mode 0600, never over an existing file) with a fresh random key.
    pub fn create(path: &Path) -> Result<MasterKey, MasterKeyError> {
        let io = |source| MasterKeyError::Io { path: path.display().to_string(), source };
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(io)?;
        file.write_all(format!("{}\n", hex::encode(key)).as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(MasterKey(SecretBox::new(Box::new(key))))
    }

    /// A key from raw bytes (tests).
    pub fn from_bytes(key: [u8; 32]) -> MasterKey {
        MasterKey(SecretBox::new(Box::new(key)))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.0.expose_secret().into())
    }

    /// Encrypts `plaintext`, bound to `context`; the output is nonce ‖ ciphertext.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut out = nonce.to_vec();
        // Encryption with a valid key and nonce cannot fail for in-memory inputs.
        if let Ok(ciphertext) =
            self.cipher().encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad: context.as_bytes() })
        {
            out.extend_from_slice(&ciphertext);
        }
        out
    }

    /// HMAC-SHA256 of `message` under a key derived from the master key for
    /// `context` (itself HMAC-SHA256 of the context under the master key).
    /// For short secrets kept in the store (recovery codes): without the
    /// master key, a copy of the store does not let anyone test guesses.
    pub fn keyed_hash(&self, context: &str, message: &[u8]) -> [u8; 32] {
        use hmac::{Hmac, Mac as _};
        let derive = |key: &[u8], data: &[u8]| -> [u8; 32] {
            // HMAC takes keys of any length; this cannot fail.
            let mut mac = <Hmac<Sha256> as hmac::Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
            mac.update(data);
            mac.finalize().into_bytes().into()
        };
        let key = zeroize::Zeroizing::new(derive(self.0.expose_secret(), context.as_bytes()));
        derive(key.as_ref(), message)
    }

    /// Decrypts what [`MasterKey::seal`] produced for the same `context`.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        if sealed.len() < NONCE_BYTES {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        self.cipher()
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: context.as_bytes() })
            .ok()
            .map(zeroize::Zeroizing::new)
    }
}

/// A new opaque token: `prefix` followed by 256 random bits in base64url.
pub fn random_token(prefix: &str) -> SecretString {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    SecretString::from(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// The SHA-256 of an opaque token, which is all the store keeps of it.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Compares two hashes in constant time.
pub fn hashes_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_only_with_the_same_key_and_context() {
        let key = MasterKey::from_bytes([1; 32]);
        let sealed = key.seal("tenant-a/kid", b"private");
        assert_eq!(key.open("tenant-a/kid", &sealed).as_deref().map(Vec::as_slice), Some(&b"private"[..]));
        assert!(key.open("tenant-b/kid", &sealed).is_none(), "context binds the ciphertext");
        assert!(MasterKey::from_bytes([2; 32]).open("tenant-a/kid", &sealed).is_none(), "another key");
        assert!(!sealed.windows(7).any(|w| w == b"private"), "plaintext does not appear");
    }

    #[test]
    fn the_key_file_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("master.key");
        let (first, created) = MasterKey::load_or_create(&path).expect("creates");
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("exists").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (second, created) = MasterKey::load_or_create(&path).expect("reads");
        assert!(!created);
        assert!(second.open("c", &first.seal("c", b"x")).is_some(), "same key after reload");
    }

    #[test]
    fn tokens_are_distinct_and_hashes_compare() {
        let a = random_token("p_");
        let b = random_token("p_");
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert!(a.expose_secret().len() >= 2 + 43);
        assert!(hashes_equal(&token_hash(a.expose_secret()), &token_hash(a.expose_secret())));
        assert!(!hashes_equal(&token_hash(a.expose_secret()), &token_hash(b.expose_secret())));
    }
}
