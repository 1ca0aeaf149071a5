//! The server's other hot paths: argon2id at the default parameters, the
//! store operations behind login and refresh (a user lookup by email, and a
//! session rotation made durable by a flush, as each refresh is before its
//! response; under load, group commit shares one flush between many), and a
//! revocation feed of 10,000 entries (read, tagged, signed; its size printed).

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Version};
use criterion::{Criterion, criterion_group, criterion_main};
use std::io::Write as _;
use std::sync::Arc;

use latch_server::domain::{Feed, TenantId, default_params, feed_of};
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

fn revocation_feed(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SledStore::open(&dir.path().join("data"), 32 << 20).expect("store");
    let tenant = TenantId::parse("bench").expect("slug");
    let owner = user(&tenant, 0);
    store.insert_user(&owner).expect("insert");
    let now = 1_764_518_400;
    for n in 0..10_000u32 {
        let session = SessionRecord::new(tenant.clone(), owner.id, now, i64::MAX);
        let mut hash = [0u8; 32];
        hash[..4].copy_from_slice(&n.to_be_bytes());
        store.insert_session(&session, &hash).expect("session");
        store.revoke_session(&tenant, session.id, now + i64::from(n % 600)).expect("revoke");
    }
    store.flush().expect("flush");
    let retention = 900 + 300;
    let issuer = "https://auth.example.com/t/bench";

    let mut group = c.benchmark_group("revocation-feed-10k");
    group.sample_size(20);
    group.bench_function("read", |b| b.iter(|| store.revocations(&tenant, 0, now - retention).expect("read")));
    let log = store.revocations(&tenant, 0, now - retention).expect("read");
    assert_eq!(log.entries.len(), 10_000);
    for alg in [latch_shared::Algorithm::EdDSA, latch_shared::Algorithm::ES256, latch_shared::Algorithm::RS256] {
        let signer = Arc::new(latch_shared::sign::SigningKey::generate(alg, &mut rand::rngs::OsRng).expect("key"));
        let feed = Feed::new(feed_of(issuer, &log, None, retention), signer.clone()).expect("feed");
        let document = feed.sign().expect("signs");
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gzip.write_all(document.as_bytes()).expect("gzip");
        let gzipped = gzip.finish().expect("gzip").len();
        println!("revocation feed, 10,000 entries, {}: {} bytes, {gzipped} gzipped", alg.as_str(), document.len());
        group.bench_function(format!("tag {}", alg.as_str()), |b| {
            b.iter(|| Feed::new(feed_of(issuer, &log, None, retention), signer.clone()).expect("feed"))
        });
        group.bench_function(format!("sign {}", alg.as_str()), |b| b.iter(|| feed.sign().expect("signs")));
    }
    group.finish();
}

criterion_group!(benches, hashing, store, revocation_feed);
criterion_main!(benches);
