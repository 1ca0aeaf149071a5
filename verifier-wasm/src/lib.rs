//! WebAssembly bindings over `latch-shared`'s verifier, for the npm package
//! `@latch/verifier`. Wrappers only: every rule lives in `latch-shared`.
//! The package's JavaScript (`js/`) wraps these in the public API.

use latch_shared as shared;
use wasm_bindgen::prelude::*;

/// A verification failure as JavaScript sees it: the shared crate's stable
/// `code` and its message. The JS layer turns it into a `VerifyError`.
#[wasm_bindgen]
pub struct Failure {
    code: &'static str,
    message: String,
}

#[wasm_bindgen]
impl Failure {
    /// The stable code (`expired`, `bad_signature`, ...).
    #[wasm_bindgen(getter)]
    pub fn code(&self) -> String {
        self.code.to_owned()
    }

    /// A human-readable message.
    #[wasm_bindgen(getter)]
    pub fn message(&self) -> String {
        self.message.clone()
    }
}

/// The one conversion from the shared error to what JavaScript receives.
fn failure(error: shared::Error) -> JsValue {
    Failure { code: error.code(), message: error.to_string() }.into()
}

/// Seconds since the epoch from a JS number (`Date.now() / 1000`), floored.
fn seconds(now: f64) -> Result<i64, JsValue> {
    if now.is_finite() { Ok(now.floor() as i64) } else { Err(failure(shared::Error::InvalidOptions)) }
}

/// A key set and validation rules, built once and used for many tokens.
#[wasm_bindgen(js_name = WasmVerifier)]
pub struct WasmVerifier {
    keys: shared::KeySet,
    validation: shared::Validation,
}

#[wasm_bindgen(js_class = WasmVerifier)]
impl WasmVerifier {
    /// `jwks` is a JWKS document as JSON text; `audiences` are accepted
    /// audiences; `algorithms` restricts the algorithms (all when empty).
    #[wasm_bindgen(constructor)]
    pub fn new(
        jwks: &str,
        issuer: &str,
        audiences: Vec<String>,
        leeway_seconds: Option<u32>,
        algorithms: Vec<String>,
    ) -> Result<WasmVerifier, JsValue> {
        let keys = shared::KeySet::from_jwks_json(jwks).map_err(failure)?;
        let mut validation = shared::Validation::with_audiences(issuer, audiences).map_err(failure)?;
        if let Some(leeway) = leeway_seconds {
            validation = validation.leeway(leeway.into()).map_err(failure)?;
        }
        if !algorithms.is_empty() {
            let parsed = algorithms
                .iter()
                .map(|name| shared::Algorithm::parse(name).ok_or(shared::Error::InvalidOptions))
                .collect::<Result<Vec<_>, _>>()
                .map_err(failure)?;
            validation = validation.algorithms(&parsed).map_err(failure)?;
        }
        Ok(WasmVerifier { keys, validation })
    }

    /// Verifies a token at `now` (seconds); returns the payload as JSON text.
    pub fn verify(&self, token: &str, now: f64) -> Result<String, JsValue> {
        let verified = shared::verify(token, &self.keys, &self.validation, seconds(now)?).map_err(failure)?;
        Ok(verified.payload_json)
    }

    /// Verifies a revocation feed of this verifier's issuer with its keys
    /// (signature in wasm); returns the payload as JSON text.
    #[wasm_bindgen(js_name = verifyRevocationFeed)]
    pub fn verify_revocation_feed(&self, document: &str) -> Result<String, JsValue> {
        shared::verify_revocation_feed(document, &self.keys, &self.validation).map_err(failure)
    }

    /// The rules up to the signature; returns what a check outside wasm
    /// (WebCrypto, `node:crypto`) needs, and finishes after it.
    pub fn prepare(&self, token: &str) -> Result<PreparedCheck, JsValue> {
        let prepared = shared::prepare(token, &self.keys, &self.validation).map_err(failure)?;
        Ok(PreparedCheck { prepared: prepared.into_owned() })
    }

    /// The public JWK members `[kty, crv, x, y, n, e]` of the key at `index`
    /// (a [`PreparedCheck::key_index`]), each a string or undefined (no JSON
    /// serializer in the wasm); empty for HMAC keys.
    pub fn jwk(&self, index: u32) -> Vec<JsValue> {
        let Some(jwk) = self.keys.keys().get(index as usize).and_then(|key| key.public_jwk()) else {
            return Vec::new();
        };
        [Some(&jwk.kty), jwk.crv.as_ref(), jwk.x.as_ref(), jwk.y.as_ref(), jwk.n.as_ref(), jwk.e.as_ref()]
            .into_iter()
            .map(|member| member.map_or(JsValue::UNDEFINED, |text| JsValue::from_str(text)))
            .collect()
    }
}

/// A token prepared for a signature check outside wasm.
#[wasm_bindgen]
pub struct PreparedCheck {
    prepared: shared::PreparedOwned,
}

#[wasm_bindgen]
impl PreparedCheck {
    /// The key's position in the verifier's key set (for caching imported keys).
    #[wasm_bindgen(getter, js_name = keyIndex)]
    pub fn key_index(&self) -> u32 {
        self.prepared.key_index() as u32
    }

    /// The signed bytes.
    #[wasm_bindgen(getter, js_name = signingInput)]
    pub fn signing_input(&self) -> Vec<u8> {
        self.prepared.signing_input().to_vec()
    }

    /// The signature bytes.
    #[wasm_bindgen(getter)]
    pub fn signature(&self) -> Vec<u8> {
        self.prepared.signature().to_vec()
    }

    /// After the check of [`Self::signing_input`] and [`Self::signature`]
    /// outside wasm, whose result is `signature_valid`: the claims rules
    /// with `verifier`'s key set and rules (the ones that prepared it);
    /// returns the payload as JSON text. Consumes the check.
    pub fn finish(self, verifier: &WasmVerifier, now: f64, signature_valid: bool) -> Result<String, JsValue> {
        let verified = self
            .prepared
            .finish(&verifier.keys, &verifier.validation, seconds(now)?, signature_valid)
            .map_err(failure)?;
        Ok(verified.payload_json)
    }
}

/// Decodes header and payload without verifying anything; returns their
/// JSON texts, header first.
#[wasm_bindgen(js_name = decodeUnverified)]
pub fn decode_unverified(token: &str) -> Result<Vec<String>, JsValue> {
    let decoded = shared::decode_unverified(token).map_err(failure)?;
    Ok(vec![decoded.header_json, decoded.payload_json])
}
