//! Verification per algorithm through latch-shared.
//! The full bench set (issuance, hashing, store, primitives side by side) grows with the benchmarks issue.

use criterion::{Criterion, criterion_group, criterion_main};
use latch_shared::sign::SigningKey;
use latch_shared::{Algorithm, KeySet, Validation, verify};
use serde_json::json;

fn verification(c: &mut Criterion) {
    let now = 1_800_000_000i64;
    let claims = json!({
        "iss": "https://auth.example/t/acme", "sub": "u", "aud": "acme", "exp": now + 900, "iat": now,
        "nbf": now, "jti": "j", "tid": "acme", "sid": "s", "roles": ["user"], "scope": "openid"
    });
    let validation = Validation::new("https://auth.example/t/acme", "acme").expect("valid options");
    let mut group = c.benchmark_group("verify");
    for alg in Algorithm::ALL {
        let key = SigningKey::generate(alg, &mut rand::thread_rng()).expect("key");
        let mut keys = KeySet::default();
        keys.push(key.verifying_key().clone());
        let token = key.sign(&claims).expect("token");
        group.bench_function(alg.as_str(), |b| b.iter(|| verify(&token, &keys, &validation, now).expect("valid")));
    }
    group.finish();
}

criterion_group!(benches, verification);
criterion_main!(benches);
