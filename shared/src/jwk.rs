//! JSON Web Keys (RFC 7517) and the key set a verifier trusts.
//!
//! Each usable key is bound to exactly one algorithm, derived from its key
//! type and curve. A token's header `alg` must name that algorithm; it never
//! selects how a key is used.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::rsa_pkcs1::RsaPublicKey;
use crate::{Error, b64};

/// The signature algorithms latch issues and verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    /// Ed25519 (RFC 8037), verified strictly.
    EdDSA,
    /// ECDSA over P-256 with SHA-256, signatures in IEEE P1363 form.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, moduli of at least 2048 bits.
    RS256,
    /// HMAC-SHA-256 with a shared secret; never published in a JWKS.
    HS256,
}

impl Algorithm {
    /// Every algorithm, in the order latch prefers them.
    pub const ALL: [Algorithm; 4] = [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256, Algorithm::HS256];

    /// The JOSE name (`"EdDSA"`, `"ES256"`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            Algorithm::EdDSA => "EdDSA",
            Algorithm::ES256 => "ES256",
            Algorithm::RS256 => "RS256",
            Algorithm::HS256 => "HS256",
        }
    }

    /// Parses a JOSE algorithm name; `none` and unsupported names give `None`.
    pub fn parse(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|alg| alg.as_str() == name)
    }

    /// True for algorithms whose keys are secret (HMAC).
    pub fn is_symmetric(&self) -> bool {
        matches!(self, Algorithm::HS256)
    }
}

/// A JSON Web Key, with the members latch reads or writes. Unknown members are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Jwk {
    /// Key type: `OKP`, `EC`, `RSA` or `oct`.
    pub kty: String,
    /// Key id, an opaque lookup name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Intended algorithm; if present it must agree with the key type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Public key use; keys marked for anything but `sig` are skipped.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// Curve for `OKP` and `EC` keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// Public x coordinate (EC) or public key (OKP), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// Public y coordinate (EC), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// RSA modulus, base64url big-endian.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent, base64url big-endian.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// Symmetric key bytes (`oct`), base64url. Never serialized into a published JWKS by latch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<String>,
}

/// A JSON Web Key Set (RFC 7517 §5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Jwks {
    /// The keys, in publication order.
    pub keys: Vec<Jwk>,
}

#[derive(Clone)]
enum Material {
    Ed25519(ed25519_dalek::VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
    Rsa(RsaPublicKey),
    Hmac(Zeroizing<Vec<u8>>),
}

/// One key a verifier trusts, bound to exactly one algorithm.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: Option<String>,
    alg: Algorithm,
    material: Material,
    public_jwk: Option<Jwk>,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material: for HS256 it is a secret.
        f.debug_struct("VerifyingKey").field("kid", &self.kid).field("alg", &self.alg).finish()
    }
}

/// Smallest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;
/// Smallest HMAC secret accepted, in bytes (RFC 7518 §3.2: at least the hash size).
const MIN_HMAC_BYTES: usize = 32;

impl VerifyingKey {
    /// Builds a key from a JWK. `Ok(None)` means the key is of a type or use
    /// latch does not verify with (for example `use: enc`, or P-384), and is skipped.
    pub fn from_jwk(jwk: &Jwk) -> Result<Option<VerifyingKey>, Error> {
        if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
            return Ok(None);
        }
        let alg = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
            ("OKP", Some("Ed25519")) => Algorithm::EdDSA,
            ("EC", Some("P-256")) => Algorithm::ES256,
            ("RSA", _) => Algorithm::RS256,
            ("oct", _) => Algorithm::HS256,
            _ => return Ok(None),
        };
        match jwk.alg.as_deref() {
            None => {}
            Some(named) if named == alg.as_str() => {}
            // An RSA key meant for PS256, say: not a key for us.
            Some(_) => return Ok(None),
        }
        let material = match alg {
            Algorithm::EdDSA => {
                let x: [u8; 32] = decode_member(&jwk.x)?.try_into().map_err(|_| Error::InvalidKey)?;
                Material::Ed25519(ed25519_dalek::VerifyingKey::from_bytes(&x).map_err(|_| Error::InvalidKey)?)
            }
            Algorithm::ES256 => {
                let x = decode_member(&jwk.x)?;
                let y = decode_member(&jwk.y)?;
                if x.len() != 32 || y.len() != 32 {
                    return Err(Error::InvalidKey);
                }
                let mut sec1 = Vec::with_capacity(65);
                sec1.push(0x04);
                sec1.extend_from_slice(&x);
                sec1.extend_from_slice(&y);
                Material::P256(p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).map_err(|_| Error::InvalidKey)?)
            }
            Algorithm::RS256 => {
                let key = RsaPublicKey::new(&decode_member(&jwk.n)?, &decode_member(&jwk.e)?)?;
                if key.bits() < MIN_RSA_BITS {
                    return Err(Error::InvalidKey);
                }
                Material::Rsa(key)
            }
            Algorithm::HS256 => Material::Hmac(Zeroizing::new(decode_member(&jwk.k)?)),
        };
        let public_jwk = (!alg.is_symmetric()).then(|| Jwk {
            kty: jwk.kty.clone(),
            kid: jwk.kid.clone(),
            alg: Some(alg.as_str().into()),
            use_: Some("sig".into()),
            crv: jwk.crv.clone(),
            x: jwk.x.clone(),
            y: jwk.y.clone(),
            n: jwk.n.clone(),
            e: jwk.e.clone(),
            k: None,
        });
        let key = VerifyingKey { kid: jwk.kid.clone(), alg, material, public_jwk };
        key.check_strength()?;
        Ok(Some(key))
    }

    /// An HS256 key from raw secret bytes (at least 32).
    pub fn hmac(kid: Option<String>, secret: &[u8]) -> Result<VerifyingKey, Error> {
        let key = VerifyingKey {
            kid,
            alg: Algorithm::HS256,
            material: Material::Hmac(Zeroizing::new(secret.to_vec())),
            public_jwk: None,
        };
        key.check_strength()?;
        Ok(key)
    }

    fn check_strength(&self) -> Result<(), Error> {
        match &self.material {
            Material::Hmac(secret) if secret.len() < MIN_HMAC_BYTES => Err(Error::InvalidKey),
            _ => Ok(()),
        }
    }

    /// The key id, if the key has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The public members of an asymmetric key, as a JWK (for handing the
    /// signature check to another implementation such as WebCrypto); `None` for HMAC.
    pub fn public_jwk(&self) -> Option<&Jwk> {
        self.public_jwk.as_ref()
    }

    /// The rules on a signature's form that hold whichever implementation then
    /// checks the signature itself (this crate, WebCrypto or OpenSSL).
    ///
    /// For Ed25519: 64 bytes; S below the group order; R and the key canonically
    /// encoded and not of small order. With these, the cofactorless equation
    /// of `verify_strict` and OpenSSL's byte comparison of R accept exactly the
    /// same signatures. Other algorithms' encodings are checked by their primitive.
    pub fn check_signature_encoding(&self, signature: &[u8]) -> Result<(), Error> {
        match &self.material {
            Material::Ed25519(key) => ed25519_encoding(key, signature),
            _ => Ok(()),
        }
    }

    /// Checks `signature` over `message` with this key's algorithm.
    pub(crate) fn verify_signature(&self, message: &[u8], signature: &[u8]) -> Result<(), Error> {
        self.check_signature_encoding(signature)?;
        match &self.material {
            Material::Ed25519(key) => {
                let signature = ed25519_dalek::Signature::from_slice(signature).map_err(|_| Error::BadSignature)?;
                key.verify_strict(message, &signature).map_err(|_| Error::BadSignature)
            }
            Material::P256(key) => {
                use p256::ecdsa::signature::Verifier;
                // from_slice rejects r or s of zero and anything but 64 bytes.
                let signature = p256::ecdsa::Signature::from_slice(signature).map_err(|_| Error::BadSignature)?;
                key.verify(message, &signature).map_err(|_| Error::BadSignature)
            }
            Material::Rsa(key) => key.verify_pkcs1v15_sha256(message, signature),
            Material::Hmac(secret) => {
                use hmac::Mac;
                let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).map_err(|_| Error::InvalidKey)?;
                mac.update(message);
                // verify_slice compares in constant time.
                mac.verify_slice(signature).map_err(|_| Error::BadSignature)
            }
        }
    }
}

/// See [`VerifyingKey::check_signature_encoding`].
fn ed25519_encoding(key: &ed25519_dalek::VerifyingKey, signature: &[u8]) -> Result<(), Error> {
    let Ok(signature) = <&[u8; 64]>::try_from(signature) else { return Err(Error::BadSignature) };
    let (r, s) = signature.split_at(32);
    let (r, s): (&[u8; 32], [u8; 32]) = (r.try_into().expect("32 bytes"), s.try_into().expect("32 bytes"));
    let canonical_s = bool::from(curve25519_dalek::Scalar::from_canonical_bytes(s).is_some());
    let a = key.as_bytes();
    if canonical_s && is_canonical_point(r) && !is_small_order(r) && is_canonical_point(a) && !is_small_order(a) {
        Ok(())
    } else {
        Err(Error::BadSignature)
    }
}

/// Whether an Edwards point encoding's y is below p = 2^255 - 19 (its sign bit aside).
fn is_canonical_point(encoding: &[u8; 32]) -> bool {
    let top = encoding[31] & 0x7f;
    !(top == 0x7f && encoding[1..31].iter().all(|&byte| byte == 0xff) && encoding[0] >= 0xed)
}

/// The y coordinates (sign bit cleared) of the eight points of small order:
/// 1, 0, p - 1 and the two of order 8. Checked against curve25519-dalek's
/// `EIGHT_TORSION` by a test; a table keeps point compression out of the wasm.
pub(crate) const SMALL_ORDER_Y: [[u8; 32]; 5] = [
    [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    [0; 32],
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
    ],
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f, 0x2a, 0x20,
        0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a,
    ],
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0, 0xd5, 0xdf,
        0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05,
    ],
];

/// Whether a canonical encoding names a point of small order, whichever its
/// sign bit (the points with x = 0 have no negative form).
fn is_small_order(encoding: &[u8; 32]) -> bool {
    let mut y = *encoding;
    y[31] &= 0x7f;
    SMALL_ORDER_Y.contains(&y)
}

fn decode_member(member: &Option<String>) -> Result<Vec<u8>, Error> {
    b64::decode(member.as_deref().ok_or(Error::InvalidKey)?).map_err(|_| Error::InvalidKey)
}

/// The keys a verifier trusts: only these, never keys named by the token itself.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
}

impl KeySet {
    /// Builds a key set from a JWKS, skipping keys of types latch does not verify with.
    /// A malformed key of a supported type is an error rather than a silent gap.
    pub fn from_jwks(jwks: &Jwks) -> Result<KeySet, Error> {
        let mut keys = Vec::with_capacity(jwks.keys.len());
        for jwk in &jwks.keys {
            if let Some(key) = VerifyingKey::from_jwk(jwk)? {
                keys.push(key);
            }
        }
        Ok(KeySet { keys })
    }

    /// Parses a JWKS document (duplicate member names rejected) and builds the key set.
    pub fn from_jwks_json(json: &str) -> Result<KeySet, Error> {
        use serde_json::Value;
        let object = crate::json::parse_object_text(json).map_err(|_| Error::InvalidKey)?;
        let Some(Value::Array(entries)) = object.get("keys") else { return Err(Error::InvalidKey) };
        // Read by hand rather than through serde's derive: it keeps the wasm build small.
        let mut keys = Jwks::default();
        for entry in entries {
            let Value::Object(members) = entry else { return Err(Error::InvalidKey) };
            let text = |name: &str| match members.get(name) {
                None => Ok(None),
                Some(Value::String(value)) => Ok(Some(value.clone())),
                Some(_) => Err(Error::InvalidKey),
            };
            keys.keys.push(Jwk {
                kty: text("kty")?.ok_or(Error::InvalidKey)?,
                kid: text("kid")?,
                alg: text("alg")?,
                use_: text("use")?,
                crv: text("crv")?,
                x: text("x")?,
                y: text("y")?,
                n: text("n")?,
                e: text("e")?,
                k: text("k")?,
            });
        }
        KeySet::from_jwks(&keys)
    }

    /// Adds a key (for example the HS256 secret, which no JWKS carries).
    pub fn push(&mut self, key: VerifyingKey) {
        self.keys.push(key);
    }

    /// The keys, in order.
    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// The key a token's `kid` names. A token without `kid` is accepted only
    /// when the set holds exactly one key, as `jose`'s local JWKS does.
    /// Returns its position in [`KeySet::keys`] too.
    pub(crate) fn find(&self, kid: Option<&str>) -> Result<(usize, &VerifyingKey), Error> {
        match kid {
            Some(kid) => {
                self.keys.iter().enumerate().find(|(_, key)| key.kid.as_deref() == Some(kid)).ok_or(Error::UnknownKid)
            }
            None if self.keys.len() == 1 => Ok((0, &self.keys[0])),
            None => Err(Error::UnknownKid),
        }
    }
}
