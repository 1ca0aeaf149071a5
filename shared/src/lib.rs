//! latch's token rules, shared by the server and the WebAssembly verifier.
//!
//! This crate knows nothing of HTTP, storage, async runtimes or the clock:
//! every function that depends on time takes `now` (seconds since the Unix
//! epoch) as an argument. Verification is always compiled; signing and key
//! generation sit behind the `sign` feature so the wasm build carries
//! verification only.
//!
//! The rules (SPEC §3) are enforced here rather than delegated to a JWT
//! library, because common defaults do not check `crit`, `typ`, strict
//! Ed25519 or a required `aud`.

mod b64;
mod claims;
mod error;
mod json;
mod jwk;
mod revocations;
mod rsa_pkcs1;
#[cfg(feature = "sign")]
pub mod sign;
mod verify;

pub use claims::{Audience, Claims, Header};
pub use error::Error;
pub use jwk::{Algorithm, Jwk, Jwks, KeySet, VerifyingKey};
pub use revocations::{REVOCATION_FEED_TYPE, RevocationFeed, RevokedSession};
pub use verify::{
    Decoded, MAX_FEED_BYTES, MAX_LEEWAY_SECONDS, MAX_TOKEN_BYTES, Prepared, PreparedOwned, Validation, Verified,
    decode_unverified, finish_after_external_signature, prepare, verify, verify_revocation_feed,
};

/// The `typ` header value latch writes on access tokens (RFC 9068).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

#[cfg(test)]
mod tests;
