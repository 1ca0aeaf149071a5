//! The behaviour every [`Store`] implementation must show. Each engine's
//! tests call [`run`] on a fresh, empty store.

use uuid::Uuid;

use super::*;

pub(super) fn tenant(id: &str) -> TenantRecord {
    TenantRecord {
        id: TenantId::parse(id).expect("slug"),
        name: id.into(),
        algorithm: latch_shared::Algorithm::EdDSA,
        created_at: 1,
        settings: TenantSettings::default(),
        introspection_secret_sha256: None,
    }
}

pub(super) fn key_record(kid: &str, created_at: i64) -> KeyRecord {
    KeyRecord {
        kid: kid.into(),
        algorithm: latch_shared::Algorithm::EdDSA,
        created_at,
        active_from: created_at,
        retired_at: None,
        public_jwk: None,
        sealed_private: vec![1, 2, 3],
    }
}

fn user(tenant: &str, email: &str) -> UserRecord {
    let tenant = TenantId::parse(tenant).expect("slug");
    UserRecord::new(tenant, email.into(), email.to_lowercase(), "$argon2id$...".into(), vec!["user".into()], 1)
}

fn session(user: &UserRecord) -> SessionRecord {
    SessionRecord { user_agent: Some("test".into()), ..SessionRecord::new(user.tenant.clone(), user.id, 10, 1000) }
}

fn client(tenant: &str, client_id: &str) -> ClientRecord {
    ClientRecord {
        tenant: TenantId::parse(tenant).expect("slug"),
        client_id: client_id.into(),
        client_type: ClientType::Public,
        secret_sha256: None,
        created_at: 1,
        updated_at: 1,
        settings: ClientSettings { name: client_id.into(), ..ClientSettings::default() },
    }
}

fn browser_session(expires_at: i64) -> BrowserSessionRecord {
    BrowserSessionRecord {
        user_id: Uuid::now_v7(),
        auth_time: 1,
        amr: vec!["pwd".into()],
        created_at: 1,
        expires_at,
        sessions: Vec::new(),
        generation: 0,
    }
}

/// Runs every check against `store`, which must start empty.
pub fn run(store: &dyn Store) {
    tenants_are_unique_and_deletion_takes_their_data(store);
    emails_are_unique_per_tenant_under_concurrency(store);
    concurrent_changes_to_one_user_all_hold(store);
    concurrent_key_rotations_leave_one_live_key(store);
    session_rotation_is_a_compare_and_swap(store);
    users_are_listed_by_email_in_pages(store);
    deleting_a_user_takes_their_sessions_and_frees_the_email(store);
    events_are_listed_newest_first_and_bounded(store);
    one_time_tokens_are_taken_once(store);
    expired_one_time_tokens_are_purged(store);
    meta_values_round_trip(store);
    clients_are_unique_per_tenant_and_changes_apply_to_the_stored_record(store);
    browser_sessions_change_in_place_and_expire(store);
    every_ended_session_is_logged_once_in_order(store);
    store.flush().expect("flush");
}

fn tenants_are_unique_and_deletion_takes_their_data(store: &dyn Store) {
    let a = tenant("conf-a");
    store.create_tenant(&a, &[key_record("k2", 2), key_record("k1", 1)]).expect("create");
    assert!(matches!(store.create_tenant(&a, &[]), Err(StoreError::Conflict)));
    assert_eq!(store.get_tenant(&a.id).expect("get"), Some(a.clone()));
    let kids: Vec<_> = store.list_keys(&a.id).expect("keys").into_iter().map(|k| k.kid).collect();
    assert_eq!(kids, ["k1", "k2"], "oldest first");
    assert!(store.list_keys(&a.id).expect("keys").iter().all(|k| k.retired_at.is_none()));

    let renamed = store
        .update_tenant(&a.id, &mut |t| {
            t.name = "Renamed".into();
            Change::Write
        })
        .expect("update")
        .expect("exists");
    assert_eq!(renamed.name, "Renamed");
    assert_eq!(store.get_tenant(&a.id).expect("get").map(|t| t.name), Some("Renamed".into()));
    let kept = store.update_tenant(&a.id, &mut |t| {
        t.name = "Not stored".into();
        Change::Keep
    });
    assert_eq!(kept.expect("keep").map(|t| t.name), Some("Not stored".into()), "the change's view is returned");
    assert_eq!(store.get_tenant(&a.id).expect("get").map(|t| t.name), Some("Renamed".into()), "Keep writes nothing");
    let missing = store.update_tenant(&TenantId::parse("conf-missing").expect("slug"), &mut |_| Change::Write);
    assert_eq!(missing.expect("no error"), None);

    // Rotation adds a key and retires every other live one at its start.
    let mut k3 = key_record("k3", 3);
    k3.active_from = 50;
    store.rotate_keys(&a.id, &k3).expect("rotate");
    let keys = store.list_keys(&a.id).expect("keys");
    let retired: Vec<_> = keys.iter().map(|k| (k.kid.as_str(), k.retired_at)).collect();
    assert_eq!(retired, [("k1", Some(50)), ("k2", Some(50)), ("k3", None)]);
    let mut k4 = key_record("k4", 4);
    k4.active_from = 60;
    store.rotate_keys(&a.id, &k4).expect("rotate");
    let retired: Vec<_> = store.list_keys(&a.id).expect("keys").into_iter().map(|k| k.retired_at).collect();
    assert_eq!(retired, [Some(50), Some(50), Some(60), None], "a retired key keeps its first retirement");

    // A tenant whose id is a prefix of another's keeps its data when the other goes.
    let ab = tenant("conf-a-b");
    store.create_tenant(&ab, &[key_record("k", 1)]).expect("create");
    let survivor = user("conf-a-b", "x@example.com");
    store.insert_user(&survivor).expect("insert");
    store.insert_user(&user("conf-a", "x@example.com")).expect("insert");
    let event = |tenant: &TenantRecord| EventRecord {
        tenant: tenant.id.clone(),
        id: Uuid::now_v7(),
        at: 1,
        kind: "login_failed".into(),
        actor: None,
        subject: None,
        ip: None,
        detail: None,
    };
    store.append_event(&event(&a), 10).expect("append");
    store.append_event(&event(&ab), 10).expect("append");
    let one_time = OneTimeRecord::new("password_reset", Uuid::now_v7(), 9);
    store.put_one_time(&a.id, &[3; 32], &one_time).expect("put");
    store.create_client(&client("conf-a", "app")).expect("client");
    store.create_client(&client("conf-a-b", "app")).expect("the neighbour's client");
    store.put_browser_session(&a.id, &[4; 32], &browser_session(99)).expect("browser session");
    assert!(store.delete_tenant(&a.id).expect("delete"));
    assert!(store.list_clients(&a.id).expect("clients").is_empty(), "its clients go too");
    assert_eq!(store.list_clients(&ab.id).expect("clients").len(), 1, "not the neighbour's");
    assert_eq!(store.get_browser_session(&a.id, &[4; 32]).expect("get"), None, "its browser sessions go too");
    assert!(store.list_events(&a.id, 10, None).expect("events").is_empty(), "its audit events go too");
    assert_eq!(store.list_events(&ab.id, 10, None).expect("events").len(), 1, "not the neighbour's");
    assert_eq!(
        store.take_one_time(&a.id, &[3; 32], "password_reset", 0).expect("take"),
        None,
        "its reset tokens go too"
    );
    assert!(!store.delete_tenant(&a.id).expect("delete again"));
    assert_eq!(store.get_tenant(&a.id).expect("get"), None);
    assert!(store.list_keys(&a.id).expect("keys").is_empty());
    assert!(store.find_user_by_email(&a.id, "x@example.com").expect("find").is_none());
    assert_eq!(store.find_user_by_email(&ab.id, "x@example.com").expect("find"), Some(survivor));
    assert_eq!(store.list_keys(&ab.id).expect("keys").len(), 1);
    let ids: Vec<_> = store.list_tenants().expect("list").into_iter().map(|t| t.id.to_string()).collect();
    assert_eq!(ids, ["conf-a-b"]);
}

fn emails_are_unique_per_tenant_under_concurrency(store: &dyn Store) {
    let winners = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..16 {
            scope.spawn(|| match store.insert_user(&user("conf-u", "race@example.com")) {
                Ok(()) => {
                    winners.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                Err(StoreError::Conflict) => {}
                Err(e) => panic!("unexpected {e}"),
            });
        }
    });
    assert_eq!(winners.into_inner(), 1);
    let other_tenant = user("conf-v", "race@example.com");
    store.insert_user(&other_tenant).expect("same email, other tenant");

    let tenant = TenantId::parse("conf-v").expect("slug");
    let found = store.find_user_by_email(&tenant, "race@example.com").expect("find").expect("exists");
    assert_eq!(found.id, other_tenant.id);
    let named = store.update_user(&tenant, found.id, &mut |u| {
        u.name = Some("Ada".into());
        Change::Write
    });
    assert_eq!(named.expect("update").and_then(|u| u.name), Some("Ada".into()));
    assert_eq!(store.get_user(&tenant, found.id).expect("get").and_then(|u| u.name), Some("Ada".into()));
    let moved = store.update_user(&tenant, found.id, &mut |u| {
        u.email_key = "changed@example.com".into();
        Change::Write
    });
    assert!(matches!(moved, Err(StoreError::Conflict)), "the email key cannot change through update");
    assert_eq!(store.update_user(&tenant, Uuid::now_v7(), &mut |_| Change::Write).expect("no error"), None);

    // An id is unique too (imported users bring their own): a second user
    // with a taken id and a free email is refused and changes nothing.
    let mut twin = user("conf-v", "twin@example.com");
    twin.id = found.id;
    assert!(matches!(store.insert_user(&twin), Err(StoreError::Conflict)));
    assert_eq!(store.get_user(&tenant, found.id).expect("get").map(|u| u.email), Some("race@example.com".into()));
    assert_eq!(store.find_user_by_email(&tenant, "twin@example.com").expect("find"), None);

    // A batch: users whose email or id is taken (before, or by an earlier
    // user of the batch) are left out, the others are in.
    let fresh = user("conf-v", "fresh@example.com");
    let mut same_id = user("conf-v", "same-id@example.com");
    same_id.id = fresh.id;
    let batch = [
        user("conf-v", "race@example.com"),
        fresh.clone(),
        twin.clone(),
        same_id,
        user("conf-v", "fresh@example.com"),
        user("conf-v", "last@example.com"),
    ];
    assert_eq!(store.insert_users(&batch).expect("batch"), [false, true, false, false, false, true]);
    assert_eq!(store.get_user(&tenant, fresh.id).expect("get").map(|u| u.email), Some("fresh@example.com".into()));
    assert!(store.find_user_by_email(&tenant, "last@example.com").expect("find").is_some());
    assert_eq!(store.find_user_by_email(&tenant, "same-id@example.com").expect("find"), None);
}

/// Many threads apply independent changes to one user at once; every one of
/// them is in the stored record at the end (none undoes another).
fn concurrent_changes_to_one_user_all_hold(store: &dyn Store) {
    const ROUNDS: u32 = 50;
    let victim = user("conf-c", "many@example.com");
    store.insert_user(&victim).expect("insert");
    let (tenant, id) = (victim.tenant.clone(), victim.id);
    let change = |f: &(dyn Fn(&mut UserRecord) + Sync)| {
        store
            .update_user(&tenant, id, &mut |u| {
                f(u);
                Change::Write
            })
            .expect("update")
            .expect("exists");
    };
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for n in 0..ROUNDS {
                change(&|u| u.password_hash = format!("$argon2id$new-{n}"));
            }
        });
        scope.spawn(|| {
            for n in 0..ROUNDS {
                change(&|u| u.name = Some(format!("name-{n}")));
            }
        });
        scope.spawn(|| {
            for n in 0..ROUNDS {
                change(&|u| u.disabled = n % 2 == 0);
            }
        });
        scope.spawn(|| {
            for n in 0..ROUNDS {
                change(&|u| u.roles = vec![format!("role-{n}")]);
            }
        });
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..ROUNDS {
                    change(&|u| u.failed_logins += 1);
                }
            });
        }
        scope.spawn(|| {
            for n in 0..ROUNDS {
                change(&|u| {
                    u.totp = Some(TotpRecord {
                        sealed_secret: vec![1],
                        confirmed: true,
                        last_step: n as u64,
                        recovery_codes: Vec::new(),
                        created_at: 1,
                    })
                });
            }
        });
    });
    let last = ROUNDS - 1;
    let stored = store.get_user(&tenant, id).expect("get").expect("exists");
    assert_eq!(stored.password_hash, format!("$argon2id$new-{last}"));
    assert_eq!(stored.name, Some(format!("name-{last}")));
    assert!(!stored.disabled, "the last disable change was `false`");
    assert_eq!(stored.roles, [format!("role-{last}")]);
    assert_eq!(stored.failed_logins, 4 * ROUNDS, "every increment counted");
    assert_eq!(stored.totp.map(|t| t.last_step), Some(u64::from(last)));
}

/// Rotations of one tenant's keys at once: every new key is kept, and exactly
/// one key is left unretired (never none, never two signers).
fn concurrent_key_rotations_leave_one_live_key(store: &dyn Store) {
    let t = tenant("conf-rot");
    store.create_tenant(&t, &[key_record("first", 1)]).expect("create");
    for round in 0..10 {
        std::thread::scope(|scope| {
            for n in 0..4 {
                let t = &t;
                scope.spawn(move || {
                    let key = key_record(&format!("r{round}-{n}"), 10 + round);
                    store.rotate_keys(&t.id, &key).expect("rotate");
                });
            }
        });
        let keys = store.list_keys(&t.id).expect("keys");
        assert_eq!(keys.len(), 1 + 4 * (round as usize + 1), "every rotation's key is kept");
        let live: Vec<_> = keys.iter().filter(|k| k.retired_at.is_none()).map(|k| k.kid.as_str()).collect();
        assert_eq!(live.len(), 1, "round {round}: one live key, not {live:?}");
    }
}

fn session_rotation_is_a_compare_and_swap(store: &dyn Store) {
    let owner = user("conf-s", "s@example.com");
    store.insert_user(&owner).expect("insert");
    let first = session(&owner);
    store.insert_session(&first, &[1; 32]).expect("insert");
    let tenant = owner.tenant.clone();
    assert_eq!(
        store.get_refresh(&tenant, &[1; 32]).expect("get"),
        Some(RefreshRecord { session_id: first.id, generation: 0 })
    );
    assert_eq!(
        store.get_refresh(&TenantId::parse("conf-t").expect("slug"), &[1; 32]).expect("get"),
        None,
        "tenant-scoped"
    );

    let next = store.rotate_session(&tenant, first.id, 0, &[2; 32], &mut |s| s.last_used_at = 20).expect("rotate");
    assert_eq!((next.generation, next.last_used_at), (1, 20));
    assert_eq!(store.get_session(&tenant, first.id).expect("get"), Some(next.clone()));
    assert!(
        matches!(store.rotate_session(&tenant, first.id, 0, &[3; 32], &mut |_| {}), Err(StoreError::Stale)),
        "lost race"
    );
    assert_eq!(store.get_refresh(&tenant, &[3; 32]).expect("get"), None, "the loser's hash is not kept");
    assert_eq!(store.get_refresh(&tenant, &[2; 32]).expect("get").map(|r| r.generation), Some(1));
    assert_eq!(
        store.get_refresh(&tenant, &[1; 32]).expect("get").map(|r| r.generation),
        Some(0),
        "old hash kept for reuse detection"
    );

    let revoked = store.revoke_session(&tenant, first.id, 30).expect("revoke").expect("exists");
    assert_eq!(revoked.revoked_at, Some(30));
    assert_eq!(store.revoke_session(&tenant, first.id, 40).expect("again").and_then(|s| s.revoked_at), Some(30));
    assert!(
        matches!(store.rotate_session(&tenant, first.id, 1, &[4; 32], &mut |_| {}), Err(StoreError::Stale)),
        "revoked sessions do not rotate"
    );
    assert!(matches!(
        store.rotate_session(&tenant, Uuid::now_v7(), 0, &[6; 32], &mut |_| {}),
        Err(StoreError::NotFound)
    ));

    // The combined reads are the separate ones.
    let stranger = Uuid::now_v7();
    for (sid, uid) in [(first.id, owner.id), (first.id, stranger), (stranger, owner.id), (stranger, stranger)] {
        let separate = (store.get_session(&tenant, sid).expect("get"), store.get_user(&tenant, uid).expect("get"));
        assert_eq!(store.get_session_and_user(&tenant, sid, uid).expect("combined"), separate);
    }
    let combined = store.get_refresh_session_user(&tenant, &[2; 32]).expect("combined").expect("found");
    assert_eq!(combined, (RefreshRecord { session_id: first.id, generation: 1 }, revoked.clone(), Some(owner.clone())));
    assert_eq!(store.get_refresh_session_user(&tenant, &[9; 32]).expect("combined"), None, "no such hash");
    let other = TenantId::parse("conf-t").expect("slug");
    assert_eq!(store.get_refresh_session_user(&other, &[2; 32]).expect("combined"), None, "tenant-scoped");

    let second = session(&owner);
    store.insert_session(&second, &[5; 32]).expect("insert");
    let listed: Vec<_> = store.list_sessions(&tenant, owner.id).expect("list").into_iter().map(|s| s.id).collect();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&first.id) && listed.contains(&second.id));
    assert!(store.revoke_session(&tenant, Uuid::now_v7(), 1).expect("revoke").is_none());
}

fn users_are_listed_by_email_in_pages(store: &dyn Store) {
    for email in ["bob@example.com", "ann@example.com", "bea@example.com", "carl@example.com", "bo@example.com"] {
        store.insert_user(&user("conf-l", email)).expect("insert");
    }
    store.insert_user(&user("conf-l-2", "bob2@example.com")).expect("neighbour tenant");
    let tenant = TenantId::parse("conf-l").expect("slug");
    let emails = |users: Vec<UserRecord>| users.into_iter().map(|u| u.email).collect::<Vec<_>>();
    let first = store.list_users(&tenant, "", None, 2).expect("list");
    assert_eq!(emails(first.clone()), ["ann@example.com", "bea@example.com"], "ordered by email");
    let second = store.list_users(&tenant, "", Some(&first[1].email_key), 10).expect("list");
    assert_eq!(
        emails(second),
        ["bo@example.com", "bob@example.com", "carl@example.com"],
        "after the cursor, not the neighbour's"
    );
    let prefixed = store.list_users(&tenant, "bo", None, 10).expect("list");
    assert_eq!(emails(prefixed), ["bo@example.com", "bob@example.com"]);
    let prefixed_after = store.list_users(&tenant, "bo", Some("bo@example.com"), 10).expect("list");
    assert_eq!(emails(prefixed_after), ["bob@example.com"]);
    let before_prefix = store.list_users(&tenant, "c", Some("ann@example.com"), 10).expect("list");
    assert_eq!(emails(before_prefix), ["carl@example.com"], "a cursor before the prefix starts at the prefix");
    assert!(store.list_users(&tenant, "z", None, 10).expect("list").is_empty());
}

fn deleting_a_user_takes_their_sessions_and_frees_the_email(store: &dyn Store) {
    let gone = user("conf-d", "gone@example.com");
    let stays = user("conf-d", "stays@example.com");
    store.insert_user(&gone).expect("insert");
    store.insert_user(&stays).expect("insert");
    let (s1, s2, kept) = (session(&gone), session(&gone), session(&stays));
    store.insert_session(&s1, &[11; 32]).expect("insert");
    store.insert_session(&s2, &[12; 32]).expect("insert");
    store.insert_session(&kept, &[13; 32]).expect("insert");
    let tenant = gone.tenant.clone();

    store.revoke_session(&tenant, s2.id, 40).expect("revoke");
    let deleted = store.delete_user(&tenant, gone.id, 50).expect("delete").expect("existed");
    assert_eq!(deleted.id, gone.id);
    assert_eq!(store.get_user(&tenant, gone.id).expect("get"), None);
    assert_eq!(store.find_user_by_email(&tenant, "gone@example.com").expect("find"), None);
    assert!(store.list_sessions(&tenant, gone.id).expect("list").is_empty());
    assert_eq!(store.get_session(&tenant, s1.id).expect("get"), None);
    assert_eq!(store.get_refresh(&tenant, &[11; 32]).expect("get"), None);
    assert_eq!(store.get_refresh(&tenant, &[12; 32]).expect("get"), None);
    assert!(store.get_refresh(&tenant, &[13; 32]).expect("get").is_some(), "other users' tokens stay");
    assert_eq!(store.list_sessions(&tenant, stays.id).expect("list").len(), 1);
    // The live session's end is logged at the deletion; the one revoked before, at its revocation.
    let log = store.revocations(&tenant, 0, 0).expect("log");
    let logged: Vec<_> = log.entries.iter().map(|r| (r.session_id, r.ended_at)).collect();
    assert_eq!(logged, [(s2.id, 40), (s1.id, 50)]);
    assert_eq!(store.delete_user(&tenant, gone.id, 60).expect("again"), None);
    store.insert_user(&user("conf-d", "gone@example.com")).expect("the email is free again");
}

fn events_are_listed_newest_first_and_bounded(store: &dyn Store) {
    let tenant = TenantId::parse("conf-e").expect("slug");
    let neighbour = TenantId::parse("conf-e-2").expect("slug");
    let event = |tenant: &TenantId, at: i64| EventRecord {
        tenant: tenant.clone(),
        id: Uuid::now_v7(),
        at,
        kind: "login_succeeded".into(),
        actor: None,
        subject: None,
        ip: None,
        detail: None,
    };
    let mut ids = Vec::new();
    for at in 0..5 {
        let e = event(&tenant, at);
        ids.push(e.id);
        store.append_event(&e, 3).expect("append");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    store.append_event(&event(&neighbour, 9), 3).expect("append");
    let listed: Vec<i64> = store.list_events(&tenant, 10, None).expect("list").into_iter().map(|e| e.at).collect();
    assert_eq!(listed, [4, 3, 2], "newest first, the oldest dropped beyond the retention");
    let page: Vec<i64> =
        store.list_events(&tenant, 10, Some(ids[3])).expect("list").into_iter().map(|e| e.at).collect();
    assert_eq!(page, [2], "strictly older than the cursor");
    assert_eq!(store.list_events(&neighbour, 10, None).expect("list").len(), 1);
}

fn one_time_tokens_are_taken_once(store: &dyn Store) {
    let tenant = TenantId::parse("conf-o").expect("slug");
    let record = OneTimeRecord {
        scope: Some("openid".into()),
        attempts: 2,
        generation: 3,
        authorization: Some(AuthorizationGrant {
            client_id: "app".into(),
            redirect_uri: "https://app.example/cb".into(),
            code_challenge: "challenge".into(),
            nonce: Some("n".into()),
            scope: "openid".into(),
            auth_time: 5,
            amr: vec!["pwd".into()],
            browser_session: None,
        }),
        ..OneTimeRecord::new("password_reset", Uuid::now_v7(), 99)
    };
    store.put_one_time(&tenant, &[7; 32], &record).expect("put");
    let other = TenantId::parse("conf-o-2").expect("slug");
    assert_eq!(store.take_one_time(&other, &[7; 32], "password_reset", 0).expect("take"), None, "tenant-scoped");
    assert_eq!(store.take_one_time(&tenant, &[7; 32], "verify_email", 0).expect("take"), None, "another purpose");
    let winners = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                if let Some(taken) = store.take_one_time(&tenant, &[7; 32], "password_reset", 0).expect("take") {
                    assert_eq!(taken, record, "the record as stored: not used up by the wrong purpose");
                    winners.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    });
    assert_eq!(winners.into_inner(), 1, "taken exactly once under concurrency");

    store.put_one_time(&tenant, &[8; 32], &record).expect("put");
    assert_eq!(store.take_one_time(&tenant, &[8; 32], "password_reset", 99).expect("take"), None, "expired");
    assert_eq!(store.take_one_time(&tenant, &[8; 32], "password_reset", 0).expect("take"), None, "and removed");
}

fn expired_one_time_tokens_are_purged(store: &dyn Store) {
    let (a, b) = (TenantId::parse("conf-p").expect("slug"), TenantId::parse("conf-p-2").expect("slug"));
    let record = |expires_at| OneTimeRecord::new("mfa", Uuid::now_v7(), expires_at);
    store.put_one_time(&a, &[1; 32], &record(100)).expect("put");
    store.put_one_time(&b, &[2; 32], &record(100)).expect("put");
    store.put_one_time(&a, &[3; 32], &record(200)).expect("put");
    assert!(store.purge_one_time(100).expect("purge") >= 2, "both tenants' expired records");
    assert_eq!(store.purge_one_time(100).expect("purge"), 0, "nothing left to purge");
    assert!(store.take_one_time(&a, &[3; 32], "mfa", 150).expect("take").is_some(), "the live one stays");
}

fn meta_values_round_trip(store: &dyn Store) {
    assert_eq!(store.get_meta("conformance").expect("get"), None);
    store.put_meta("conformance", b"value").expect("put");
    assert_eq!(store.get_meta("conformance").expect("get").as_deref(), Some(&b"value"[..]));
    // Nodes starting together: one value is kept, and every caller learns it.
    let kept: Vec<_> = std::thread::scope(|scope| {
        let tries: Vec<_> = (0..8u8)
            .map(|n| scope.spawn(move || (n, store.put_meta_if_absent("first", &[n]).expect("put if absent"))))
            .collect();
        tries.into_iter().map(|t| t.join().expect("thread")).collect()
    });
    let winners: Vec<u8> = kept.iter().filter(|(_, held)| held.is_none()).map(|(n, _)| *n).collect();
    assert_eq!(winners.len(), 1, "exactly one call stores the value: {kept:?}");
    let stored = store.get_meta("first").expect("get").expect("stored");
    assert_eq!(stored, vec![winners[0]]);
    assert!(kept.iter().all(|(_, held)| held.as_ref().is_none_or(|held| *held == stored)), "{kept:?}");
}

fn clients_are_unique_per_tenant_and_changes_apply_to_the_stored_record(store: &dyn Store) {
    let tenant = TenantId::parse("conf-c").expect("slug");
    store.create_client(&client("conf-c", "web")).expect("create");
    assert!(matches!(store.create_client(&client("conf-c", "web")), Err(StoreError::Conflict)));
    store.create_client(&client("conf-c2", "web")).expect("the same id in another tenant");
    store.create_client(&client("conf-c", "cli")).expect("create");
    let ids: Vec<_> = store.list_clients(&tenant).expect("list").into_iter().map(|c| c.client_id).collect();
    assert_eq!(ids, ["cli", "web"], "by id, only this tenant's");

    // Concurrent changes all hold.
    let shared = &tenant;
    std::thread::scope(|scope| {
        for n in 0..8 {
            scope.spawn(move || {
                store
                    .update_client(shared, "web", &mut |c| {
                        c.settings.redirect_uris.push(format!("https://app.example/cb{n}"));
                        c.client_id = "moved".into();
                        Change::Write
                    })
                    .expect("update")
                    .expect("exists");
            });
        }
    });
    let web = store.get_client(&tenant, "web").expect("get").expect("still under its id");
    assert_eq!(web.settings.redirect_uris.len(), 8, "{:?}", web.settings.redirect_uris);
    assert_eq!(web.client_id, "web", "a change cannot move the record");
    assert_eq!(store.get_client(&tenant, "moved").expect("get"), None);
    assert_eq!(store.update_client(&tenant, "nobody", &mut |_| Change::Write).expect("no error"), None);
    assert!(store.delete_client(&tenant, "web").expect("delete"));
    assert!(!store.delete_client(&tenant, "web").expect("delete"), "gone");
    assert_eq!(store.get_client(&tenant, "web").expect("get"), None);
}

fn browser_sessions_change_in_place_and_expire(store: &dyn Store) {
    let tenant = TenantId::parse("conf-b").expect("slug");
    store.put_browser_session(&tenant, &[1; 32], &browser_session(100)).expect("put");
    store.put_browser_session(&tenant, &[2; 32], &browser_session(200)).expect("put");
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                store
                    .update_browser_session(&tenant, &[1; 32], &mut |b| {
                        b.sessions.push(Uuid::now_v7());
                        Change::Write
                    })
                    .expect("update")
                    .expect("exists");
            });
        }
    });
    let first = store.get_browser_session(&tenant, &[1; 32]).expect("get").expect("exists");
    assert_eq!(first.sessions.len(), 8, "every concurrent addition holds");
    assert_eq!(store.purge_browser_sessions(150).expect("purge"), 1);
    assert_eq!(store.get_browser_session(&tenant, &[1; 32]).expect("get"), None, "expired at 100");
    let second = store.delete_browser_session(&tenant, &[2; 32]).expect("delete").expect("existed");
    assert_eq!(second.expires_at, 200);
    assert_eq!(store.get_browser_session(&tenant, &[2; 32]).expect("get"), None);
    // A change that extends the expiry is what the purge goes by.
    store.put_browser_session(&tenant, &[3; 32], &browser_session(100)).expect("put");
    let extended = store.update_browser_session(&tenant, &[3; 32], &mut |b| {
        b.expires_at = 300;
        Change::Write
    });
    assert_eq!(extended.expect("update").expect("exists").expires_at, 300);
    assert_eq!(store.purge_browser_sessions(150).expect("purge"), 0, "extended to 300");
    assert!(store.get_browser_session(&tenant, &[3; 32]).expect("get").is_some());
}

fn every_ended_session_is_logged_once_in_order(store: &dyn Store) {
    let ann = user("conf-r", "ann@example.com");
    let other = user("conf-r-2", "ann@example.com");
    store.insert_user(&ann).expect("insert");
    store.insert_user(&other).expect("insert");
    let tenant = ann.tenant.clone();
    assert_eq!(store.revocations(&tenant, 0, 0).expect("log"), RevocationLog::default(), "no log before an end");
    let sessions: Vec<SessionRecord> = (0..40u8)
        .map(|i| {
            let session = session(&ann);
            store.insert_session(&session, &[100 + i; 32]).expect("insert");
            session
        })
        .collect();
    let foreign = session(&other);
    store.insert_session(&foreign, &[99; 32]).expect("insert");
    store.revoke_session(&other.tenant, foreign.id, 5).expect("revoke");

    // Forty revocations at once, each session twice: one entry per session,
    // numbered 1..=40 without a gap, whatever the interleaving.
    std::thread::scope(|scope| {
        for (i, session) in sessions.iter().enumerate() {
            for _ in 0..2 {
                let tenant = tenant.clone();
                scope.spawn(move || store.revoke_session(&tenant, session.id, 100 + i as i64).expect("revoke"));
            }
        }
    });
    let log = store.revocations(&tenant, 0, 0).expect("log");
    assert_ne!(log.epoch, 0);
    assert_eq!(log.last, 40);
    assert_eq!(log.entries.iter().map(|r| r.seq).collect::<Vec<_>>(), (1..=40).collect::<Vec<_>>());
    let mut ended: Vec<Uuid> = log.entries.iter().map(|r| r.session_id).collect();
    ended.sort();
    let mut expected: Vec<Uuid> = sessions.iter().map(|s| s.id).collect();
    expected.sort();
    assert_eq!(ended, expected, "every revoked session once, no other tenant's");
    for entry in &log.entries {
        let stored = store.get_session(&tenant, entry.session_id).expect("get").expect("kept");
        assert_eq!(stored.revoked_at, Some(entry.ended_at), "the log's time is the session's own");
    }

    // After a cursor: only later entries, with the same epoch and position.
    let later = store.revocations(&tenant, 35, 0).expect("log");
    assert_eq!((later.epoch, later.last), (log.epoch, 40));
    assert_eq!(later.entries.iter().map(|r| r.seq).collect::<Vec<_>>(), [36, 37, 38, 39, 40]);
    assert!(store.revocations(&tenant, 40, 0).expect("log").entries.is_empty());
    assert!(store.revocations(&tenant, 1000, 0).expect("log").entries.is_empty());
    // Entries that ended too long ago are left out, then purged.
    let recent = store.revocations(&tenant, 0, 120).expect("log");
    assert!(recent.entries.iter().all(|r| r.ended_at >= 120));
    assert_eq!(recent.entries.len(), 20);
    assert!(store.purge_revocations(120).expect("purge") >= 21, "twenty here and the other tenant's");
    assert_eq!(store.revocations(&tenant, 0, 0).expect("log").entries.len(), 20);
    assert!(store.revocations(&other.tenant, 0, 0).expect("log").entries.is_empty());
    // A new revocation continues the log after a purge.
    let next = session(&ann);
    store.insert_session(&next, &[98; 32]).expect("insert");
    store.revoke_session(&tenant, next.id, 200).expect("revoke");
    let after = store.revocations(&tenant, 40, 0).expect("log");
    assert_eq!((after.epoch, after.last, after.entries.len()), (log.epoch, 41, 1));

    // Deleting the tenant ends its log: a tenant made again starts another epoch.
    store.delete_tenant(&tenant).expect("delete");
    assert_eq!(store.revocations(&tenant, 0, 0).expect("log"), RevocationLog::default());
}
