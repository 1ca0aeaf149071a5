//! Tokens: verification per algorithm through latch-shared, next to the bare
//! signature check it wraps (so the cost of parsing and claim rules shows),
//! and issuance per algorithm.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use latch_shared::sign::SigningKey;
use latch_shared::{Algorithm, KeySet, Validation, verify};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const NOW: i64 = 1_800_000_000;

fn claims() -> Value {
    json!({
        "iss": "https://auth.example/t/acme", "sub": "0190c5e4-7a8b-7c3d-9e0f-123456789abc", "aud": "acme",
        "exp": NOW + 900, "iat": NOW, "nbf": NOW, "jti": "5f0c4c1e-0c9b-4a53-9f57-1f1d5b0e8c21", "tid": "acme",
        "sid": "0190c5e4-7a8b-7c3d-9e0f-cba987654321", "roles": ["user"], "scope": "openid profile email"
    })
}

fn b64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).expect("base64url")
}

/// The signature check alone, on the token's signing input, with the key in
/// its parsed form (what latch-shared holds in a KeySet).
fn bare_check(key: &SigningKey, token: &str) -> Box<dyn Fn() -> bool> {
    let (input, signature) = token.rsplit_once('.').expect("three parts");
    let (input, signature) = (input.as_bytes().to_vec(), b64(signature));
    let jwk = key.public_jwk().map(|jwk| serde_json::to_value(jwk).expect("jwk"));
    let member = |name: &str| b64(jwk.as_ref().expect("public key")[name].as_str().expect("member"));
    match key.algorithm() {
        Algorithm::EdDSA => {
            let public: [u8; 32] = member("x").try_into().expect("32 bytes");
            let public = ed25519_dalek::VerifyingKey::from_bytes(&public).expect("point");
            let signature = ed25519_dalek::Signature::from_slice(&signature).expect("64 bytes");
            Box::new(move || public.verify_strict(&input, &signature).is_ok())
        }
        Algorithm::ES256 => {
            use p256::ecdsa::signature::Verifier as _;
            let point = p256::EncodedPoint::from_affine_coordinates(
                member("x").as_slice().into(),
                member("y").as_slice().into(),
                false,
            );
            let public = p256::ecdsa::VerifyingKey::from_encoded_point(&point).expect("point");
            let signature = p256::ecdsa::Signature::from_slice(&signature).expect("64 bytes");
            Box::new(move || public.verify(&input, &signature).is_ok())
        }
        Algorithm::RS256 => {
            let n = rsa::BigUint::from_bytes_be(&member("n"));
            let e = rsa::BigUint::from_bytes_be(&member("e"));
            let public = rsa::RsaPublicKey::new(n, e).expect("rsa key");
            Box::new(move || {
                let digest = Sha256::digest(&input);
                public.verify(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest, &signature).is_ok()
            })
        }
        Algorithm::HS256 => {
            use hmac::Mac as _;
            let secret = key.private_bytes().to_vec();
            Box::new(move || {
                let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&secret).expect("any length");
                mac.update(&input);
                mac.verify_slice(&signature).is_ok()
            })
        }
    }
}

fn verification(c: &mut Criterion) {
    let claims = claims();
    let validation = Validation::new("https://auth.example/t/acme", "acme").expect("valid options");
    let mut group = c.benchmark_group("verify");
    for alg in Algorithm::ALL {
        let key = SigningKey::generate(alg, &mut rand::thread_rng()).expect("key");
        let mut keys = KeySet::default();
        keys.push(key.verifying_key().clone());
        let token = key.sign(&claims).expect("token");
        let bare = bare_check(&key, &token);
        assert!(bare(), "{}: the bare check accepts the token", alg.as_str());
        group.bench_function(format!("{}/latch-shared", alg.as_str()), |b| {
            b.iter(|| verify(&token, &keys, &validation, NOW).expect("valid"))
        });
        group.bench_function(format!("{}/signature-only", alg.as_str()), |b| b.iter(|| assert!(bare())));
    }
    group.finish();
}

fn issuance(c: &mut Criterion) {
    let claims = claims();
    let mut group = c.benchmark_group("sign");
    for alg in Algorithm::ALL {
        let key = SigningKey::generate(alg, &mut rand::thread_rng()).expect("key");
        group.bench_function(alg.as_str(), |b| b.iter(|| key.sign(&claims).expect("token")));
    }
    group.finish();
}

criterion_group!(benches, verification, issuance);
criterion_main!(benches);
