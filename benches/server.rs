//! The server's other hot paths: argon2id at the default parameters, and the
//! store operations behind login and refresh (a user lookup by email, and a
//! session rotation made durable by a flush, as each refresh is before its
//! response; under load, group commit shares one flush between many).

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Version};
use criterion::{Criterion, criterion_group, criterion_main};
use latch_server::domain::{TenantId, default_params};
use latch_server::store::sled::SledStore;
use latch_server::store::{SessionRecord, SessionStore as _, Store as _, UserRecord, UserStore as _};

const PASSWORD: &[u8] = b"correct horse battery staple";

fn hashing(c: &mut Criterion) {
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, default_params());
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let hash = argon2.hash_password(PASSWORD, &salt).expect("hash").to_string();
    let parsed = PasswordHash::new(&hash).expect("phc");
    let mut group = c.benchmark_group("argon2id-m19456-t2-p1");
    group.sample_size(20);
    group.bench_function("hash", |b| {
        b.iter(|| {
            let salt = SaltString::generate(&mut rand::rngs::OsRng);
            argon2.hash_password(PASSWORD, &salt).expect("hash").to_string()
        })
    });
    group.bench_function("verify", |b| b.iter(|| argon2.verify_password(PASSWORD, &parsed).expect("matches")));
    group.finish();
}

fn user(tenant: &TenantId, n: usize) -> UserRecord {
    let email = format!("user{n}@example.com");
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNo";
    UserRecord::new(tenant.clone(), email.clone(), email, hash.into(), vec!["user".into()], 1)
}

fn store(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SledStore::open(&dir.path().join("data"), 32 << 20).expect("store");
    let tenant = TenantId::parse("bench").expect("slug");
    for n in 0..10_000 {
        store.insert_user(&user(&tenant, n)).expect("insert");
    }
    let owner = store.find_user_by_email(&tenant, "user42@example.com").expect("find").expect("exists");
    let mut session = SessionRecord::new(tenant.clone(), owner.id, 1, i64::MAX);
    store.insert_session(&session, &[0; 32]).expect("session");
    store.flush().expect("flush");

    let mut group = c.benchmark_group("store");
    let mut n = 0usize;
    group.bench_function("user-by-email (10k users)", |b| {
        b.iter(|| {
            n = (n + 7919) % 10_000;
            store.find_user_by_email(&tenant, &format!("user{n}@example.com")).expect("find").expect("exists")
        })
    });
    group.bench_function("session-rotation+flush", |b| {
        b.iter(|| {
            let expected = session.generation;
            let mut hash = [0u8; 32];
            hash[..8].copy_from_slice(&(expected + 1).to_be_bytes());
            session = store
                .rotate_session(&tenant, session.id, expected, &hash, &mut |s| s.last_used_at += 1)
                .expect("rotate");
            store.flush().expect("durable");
        })
    });
    group.finish();
}

criterion_group!(benches, hashing, store);
criterion_main!(benches);
