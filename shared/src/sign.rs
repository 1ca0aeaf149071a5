//! Key generation and token signing (server side, feature `sign`).
//!
//! Signing goes through the `jsonwebtoken` crate; keys are generated here so
//! the public half can be published as a JWK and the private half stored
//! (encrypted by the server) as bytes.

use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use rand::{CryptoRng, RngCore};
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::{Algorithm, Error, Jwk, VerifyingKey, b64};

/// Bits of the RSA moduli latch generates.
const RSA_BITS: usize = 2048;
/// Bytes of the HMAC secrets latch generates.
const HMAC_BYTES: usize = 32;

/// A private signing key with its key id and its one algorithm.
pub struct SigningKey {
    kid: String,
    alg: Algorithm,
    private: Zeroizing<Vec<u8>>,
    encoding: jsonwebtoken::EncodingKey,
    public: Option<Jwk>,
    verifying: VerifyingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a new key for `alg` with a random key id.
    pub fn generate(alg: Algorithm, rng: &mut (impl RngCore + CryptoRng)) -> Result<SigningKey, Error> {
        let mut id = [0u8; 12];
        rng.fill_bytes(&mut id);
        let kid = b64::encode(&id);
        let private = match alg {
            Algorithm::EdDSA => {
                let key = ed25519_dalek::SigningKey::generate(rng);
                key.to_pkcs8_der().map_err(|_| Error::InvalidKey)?.as_bytes().to_vec()
            }
            Algorithm::ES256 => {
                let key = p256::SecretKey::random(rng);
                p256::pkcs8::EncodePrivateKey::to_pkcs8_der(&key).map_err(|_| Error::InvalidKey)?.as_bytes().to_vec()
            }
            Algorithm::RS256 => {
                let key = rsa::RsaPrivateKey::new(rng, RSA_BITS).map_err(|_| Error::InvalidKey)?;
                key.to_pkcs1_der().map_err(|_| Error::InvalidKey)?.as_bytes().to_vec()
            }
            Algorithm::HS256 => {
                let mut secret = vec![0u8; HMAC_BYTES];
                rng.fill_bytes(&mut secret);
                secret
            }
        };
        SigningKey::from_private_bytes(kid, alg, Zeroizing::new(private))
    }

    /// Rebuilds a key from the bytes [`SigningKey::private_bytes`] returned:
    /// PKCS#8 DER for EdDSA and ES256, PKCS#1 DER for RS256, the raw secret for HS256.
    pub fn from_private_bytes(kid: String, alg: Algorithm, private: Zeroizing<Vec<u8>>) -> Result<SigningKey, Error> {
        let (encoding, public) = match alg {
            Algorithm::EdDSA => {
                use ed25519_dalek::pkcs8::DecodePrivateKey as _;
                let key = ed25519_dalek::SigningKey::from_pkcs8_der(&private).map_err(|_| Error::InvalidKey)?;
                let jwk = Jwk {
                    kty: "OKP".into(),
                    crv: Some("Ed25519".into()),
                    x: Some(b64::encode(key.verifying_key().as_bytes())),
                    ..Jwk::default()
                };
                (jsonwebtoken::EncodingKey::from_ed_der(&private), Some(jwk))
            }
            Algorithm::ES256 => {
                use p256::pkcs8::DecodePrivateKey as _;
                let key = p256::SecretKey::from_pkcs8_der(&private).map_err(|_| Error::InvalidKey)?;
                let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&key.public_key(), false);
                let (Some(x), Some(y)) = (point.x(), point.y()) else { return Err(Error::InvalidKey) };
                let jwk = Jwk {
                    kty: "EC".into(),
                    crv: Some("P-256".into()),
                    x: Some(b64::encode(x)),
                    y: Some(b64::encode(y)),
                    ..Jwk::default()
                };
                (jsonwebtoken::EncodingKey::from_ec_der(&private), Some(jwk))
            }
            Algorithm::RS256 => {
                use rsa::pkcs1::DecodeRsaPrivateKey as _;
                let key = rsa::RsaPrivateKey::from_pkcs1_der(&private).map_err(|_| Error::InvalidKey)?;
                let jwk = Jwk {
                    kty: "RSA".into(),
                    n: Some(b64::encode(&key.n().to_bytes_be())),
                    e: Some(b64::encode(&key.e().to_bytes_be())),
                    ..Jwk::default()
                };
                (jsonwebtoken::EncodingKey::from_rsa_der(&private), Some(jwk))
            }
            Algorithm::HS256 => (jsonwebtoken::EncodingKey::from_secret(&private), None),
        };
        let public = public.map(|jwk| Jwk {
            kid: Some(kid.clone()),
            alg: Some(alg.as_str().into()),
            use_: Some("sig".into()),
            ..jwk
        });
        let verifying = match &public {
            Some(jwk) => VerifyingKey::from_jwk(jwk)?.ok_or(Error::InvalidKey)?,
            None => VerifyingKey::hmac(Some(kid.clone()), &private)?,
        };
        Ok(SigningKey { kid, alg, private, encoding, public, verifying })
    }

    /// The key id written into the header of every token this key signs.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The private key bytes, to be stored encrypted.
    pub fn private_bytes(&self) -> &[u8] {
        &self.private
    }

    /// The public JWK for the JWKS; `None` for HS256, whose secret is never published.
    pub fn public_jwk(&self) -> Option<&Jwk> {
        self.public.as_ref()
    }

    /// The key that verifies this key's signatures (for HS256, the same secret).
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying
    }

    /// Signs `claims` as an access token: header `{alg, kid, typ: "at+jwt"}`.
    pub fn sign(&self, claims: &impl Serialize) -> Result<String, Error> {
        self.sign_as(claims, crate::ACCESS_TOKEN_TYPE)
    }

    /// Signs `claims` with header `{alg, kid, typ}` (ID tokens are `JWT`).
    pub fn sign_as(&self, claims: &impl Serialize, typ: &str) -> Result<String, Error> {
        let alg = match self.alg {
            Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
            Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
            Algorithm::HS256 => jsonwebtoken::Algorithm::HS256,
        };
        let mut header = jsonwebtoken::Header::new(alg);
        header.typ = Some(typ.into());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|_| Error::InvalidKey)
    }
}
