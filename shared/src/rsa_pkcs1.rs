//! RSASSA-PKCS1-v1_5 signature verification with SHA-256 (RFC 8017 §8.2.2).
//!
//! Written on `num-bigint` instead of the `rsa` crate to keep the wasm
//! verifier small. Verification is a public operation; it follows the RFC's
//! recommended form: compute the expected encoded message and compare it
//! whole, never parse the decrypted block (which is where signature
//! forgeries against lax parsers come from).

use num_bigint::BigUint;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::Error;

/// DER prefix of DigestInfo for SHA-256 (RFC 8017 §9.2, note 1).
const SHA256_DIGEST_INFO: [u8; 19] =
    [0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20];

/// An RSA public key (modulus and exponent).
#[derive(Clone)]
pub(crate) struct RsaPublicKey {
    n: BigUint,
    e: BigUint,
    size: usize,
}

impl RsaPublicKey {
    /// Builds a key from big-endian modulus and exponent bytes.
    pub(crate) fn new(n: &[u8], e: &[u8]) -> Result<RsaPublicKey, Error> {
        // Leading zero octets are not allowed in JWK integers (RFC 7518 §6.3.1).
        if n.first().is_none_or(|b| *b == 0) || e.first().is_none_or(|b| *b == 0) || e.len() > 4 {
            return Err(Error::InvalidKey);
        }
        let n_int = BigUint::from_bytes_be(n);
        let e_int = BigUint::from_bytes_be(e);
        let even = |x: &BigUint| !x.bit(0);
        if even(&n_int) || even(&e_int) || e_int < BigUint::from(3u32) {
            return Err(Error::InvalidKey);
        }
        Ok(RsaPublicKey { n: n_int, e: e_int, size: n.len() })
    }

    /// Modulus size in bits.
    pub(crate) fn bits(&self) -> usize {
        self.n.bits() as usize
    }

    /// Verifies an RS256 signature over `message`.
    pub(crate) fn verify_pkcs1v15_sha256(&self, message: &[u8], signature: &[u8]) -> Result<(), Error> {
        if signature.len() != self.size {
            return Err(Error::BadSignature);
        }
        let s = BigUint::from_bytes_be(signature);
        if s >= self.n {
            return Err(Error::BadSignature);
        }
        let m = s.modpow(&self.e, &self.n).to_bytes_be();
        let mut encoded = vec![0u8; self.size];
        let start = self.size.checked_sub(m.len()).ok_or(Error::BadSignature)?;
        encoded[start..].copy_from_slice(&m);

        let expected = expected_encoding(self.size, &Sha256::digest(message)).ok_or(Error::BadSignature)?;
        if bool::from(encoded.ct_eq(&expected)) { Ok(()) } else { Err(Error::BadSignature) }
    }
}

/// EMSA-PKCS1-v1_5 encoding: 0x00 0x01 FF..FF 0x00 DigestInfo hash.
fn expected_encoding(size: usize, hash: &[u8]) -> Option<Vec<u8>> {
    let t_len = SHA256_DIGEST_INFO.len() + hash.len();
    let padding = size.checked_sub(t_len + 3).filter(|p| *p >= 8)?;
    let mut em = Vec::with_capacity(size);
    em.extend_from_slice(&[0x00, 0x01]);
    em.resize(2 + padding, 0xff);
    em.push(0x00);
    em.extend_from_slice(&SHA256_DIGEST_INFO);
    em.extend_from_slice(hash);
    Some(em)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn keys_with_even_or_tiny_parts_are_refused() {
        assert!(RsaPublicKey::new(&[0xc5], &[0x01, 0x00, 0x01]).is_ok());
        assert!(RsaPublicKey::new(&[0xc4], &[0x01, 0x00, 0x01]).is_err(), "even modulus");
        assert!(RsaPublicKey::new(&[0xc5], &[0x01]).is_err(), "e = 1");
        assert!(RsaPublicKey::new(&[0x00, 0xc5], &[0x03]).is_err(), "leading zero");
        assert!(RsaPublicKey::new(&[0xc5], &[0x01, 0x00, 0x00, 0x00, 0x01]).is_err(), "e over 32 bits");
    }

    #[test]
    fn the_encoding_has_the_rfc_layout() {
        let em = expected_encoding(256, &[7u8; 32]).expect("room for padding");
        assert_eq!(em.len(), 256);
        assert_eq!(&em[..2], &[0, 1]);
        assert!(em[2..256 - 52].iter().all(|b| *b == 0xff));
        assert_eq!(em[256 - 52], 0);
        assert_eq!(&em[256 - 51..256 - 32], &SHA256_DIGEST_INFO);
        assert!(expected_encoding(40, &[0u8; 32]).is_none(), "modulus too small for the digest");
    }
}
