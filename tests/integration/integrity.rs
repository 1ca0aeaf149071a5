//! No acknowledged change is undone: concurrent requests that change one
//! account all hold, and a damaged data directory is refused at start-up
//! instead of starting as new. Each race below undid an acknowledged change
//! before changes were applied inside the store's atomic step.

use std::path::Path;

use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

const NEW_PASSWORD: &str = "a new and better passphrase";
const ROUNDS: usize = 4;

/// A tenant that never locks accounts, so wrong passwords can run freely.
async fn no_lockout_tenant(app: &TestApp, id: &str) {
    app.create_tenant(json!({"id": id, "lockout_threshold": 0})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_holds_against_concurrent_wrong_password_logins() {
    let app = spawn_app().await;
    no_lockout_tenant(&app, "race").await;
    for round in 0..ROUNDS {
        let email = format!("change{round}@example.com");
        let user = app.register("race", &email).await;
        let body = json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD});
        let changed_yet = std::sync::atomic::AtomicBool::new(false);
        let change = async {
            let response = app.send(Method::POST, "/t/race/users/me/password", &user.access, Some(&body)).await;
            changed_yet.store(true, std::sync::atomic::Ordering::SeqCst);
            response
        };
        // Bursts of wrong passwords for as long as the change is in flight,
        // so some read the account before the change is stored and finish after.
        let wrong = async {
            let mut answers = Vec::new();
            while !changed_yet.load(std::sync::atomic::Ordering::SeqCst) {
                answers
                    .extend(join_all((0..4).map(|_| app.try_login("race", &email, "not the password at all"))).await);
            }
            answers
        };
        let (changed, wrong) = tokio::join!(change, wrong);
        assert_eq!(changed.status(), StatusCode::NO_CONTENT, "round {round}");
        assert!(wrong.iter().all(|r| r.status() == StatusCode::UNAUTHORIZED));
        let old = app.try_login("race", &email, PASSWORD).await;
        assert_eq!(old.status(), StatusCode::UNAUTHORIZED, "round {round}: the old password works again");
        assert_eq!(app.try_login("race", &email, NEW_PASSWORD).await.status(), StatusCode::OK, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_wrong_passwords_all_count_and_lock_the_account() {
    let app = spawn_app().await;
    app.create_tenant(json!({"id": "lock", "lockout_threshold": 5, "lockout_base_seconds": 600})).await;
    app.register("lock", "target@example.com").await;
    let wrong = join_all((0..40).map(|_| app.try_login("lock", "target@example.com", "guess guess guess"))).await;
    assert!(wrong.iter().all(|r| [StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS].contains(&r.status())));
    let right = app.try_login("lock", "target@example.com", PASSWORD).await;
    assert_problem(right, StatusCode::TOO_MANY_REQUESTS, "account_locked").await;
    let admin = app.admin_of_locked_tenant("lock").await;
    let users: Value =
        app.get_with("/t/lock/admin/users?email_prefix=target", &admin).await.json().await.expect("json");
    let events: Value = app.get_with("/t/lock/admin/events?limit=200", &admin).await.json().await.expect("json");
    let failed = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "login_failed" && e["subject"] == users["users"][0]["id"])
        .count();
    assert!(failed >= 5, "every counted failure is in the log ({failed})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_disable_and_a_demotion_hold_against_concurrent_profile_changes_and_failed_logins() {
    let app = spawn_app().await;
    let admin = app.admin_of("demo", "boss@example.com").await;
    for round in 0..ROUNDS {
        let email = format!("member{round}@example.com");
        let user = app.register("demo", &email).await;
        let id = user.user.id.as_str();
        let promote = json!({"roles": ["admin", "user"]});
        let path = format!("/t/demo/admin/users/{id}/roles");
        assert_eq!(app.send(Method::PUT, &path, &admin.access, Some(&promote)).await.status(), StatusCode::OK);

        let (user_only, disable_path) = (json!({"roles": ["user"]}), format!("/t/demo/admin/users/{id}/disable"));
        let demote = app.send(Method::PUT, &path, &admin.access, Some(&user_only));
        let disable = app.send(Method::POST, &disable_path, &admin.access, None);
        let names: Vec<Value> = (0..6).map(|n| json!({"name": format!("Name {n}")})).collect();
        let renames =
            join_all(names.iter().map(|name| app.send(Method::PATCH, "/t/demo/users/me", &user.access, Some(name))));
        let wrong = join_all((0..4).map(|_| app.try_login("demo", &email, "not the password at all")));
        let (demoted, disabled, _, _) = tokio::join!(demote, disable, renames, wrong);
        assert_eq!(demoted.status(), StatusCode::OK);
        assert_eq!(disabled.status(), StatusCode::OK);

        let stored: Value =
            app.get_with(&format!("/t/demo/admin/users/{id}"), &admin.access).await.json().await.expect("json");
        assert_eq!(stored["disabled"], true, "round {round}: the disable was undone: {stored}");
        assert_eq!(stored["roles"], json!(["user"]), "round {round}: the demotion was undone: {stored}");
        let login = app.try_login("demo", &email, PASSWORD).await;
        assert_problem(login, StatusCode::FORBIDDEN, "user_disabled").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_change_during_a_password_change_keeps_both() {
    let app = spawn_app().await;
    for round in 0..ROUNDS {
        let email = format!("both{round}@example.com");
        let user = app.register("demo", &email).await;
        let (body, name) =
            (json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}), json!({"name": "Ada"}));
        let change = app.send(Method::POST, "/t/demo/users/me/password", &user.access, Some(&body));
        let rename = app.send(Method::PATCH, "/t/demo/users/me", &user.access, Some(&name));
        let (changed, renamed) = tokio::join!(change, rename);
        assert_eq!(changed.status(), StatusCode::NO_CONTENT);
        assert_eq!(renamed.status(), StatusCode::OK);
        let login = app.try_login("demo", &email, NEW_PASSWORD).await;
        assert_eq!(login.status(), StatusCode::OK, "round {round}: the new password was lost");
        let tokens: Tokens = login.json().await.expect("tokens");
        assert_eq!(tokens.user.name.as_deref(), Some("Ada"), "round {round}: the name was lost");
        assert_eq!(app.try_login("demo", &email, PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    }
}

impl TestApp {
    /// An admin of `tenant` whose own account never meets the lockout test's guesses.
    async fn admin_of_locked_tenant(&self, tenant: &str) -> String {
        let admin = self.admin_of(tenant, "lock-admin@example.com").await;
        admin.access.as_str().to_owned()
    }
}

/// The ways a data directory gets damaged, each applied to a copy of one
/// that held 20 users.
const DAMAGES: &[&str] =
    &["db emptied", "db deleted", "db random", "db truncated to half", "db garbage middle", "conf garbled"];

fn damage(dir: &Path, how: &str) {
    let db = dir.join("db");
    let len = std::fs::metadata(&db).expect("db").len() as usize;
    let random = |n: usize| (0..n).map(|i| (i * 7919 % 251) as u8 ^ 0x5a).collect::<Vec<u8>>();
    match how {
        "db emptied" => std::fs::write(&db, b"").expect("write"),
        "db deleted" => std::fs::remove_file(&db).expect("remove"),
        "db random" => std::fs::write(&db, random(len)).expect("write"),
        "db truncated to half" => {
            let file = std::fs::OpenOptions::new().write(true).open(&db).expect("open");
            file.set_len(len as u64 / 2).expect("truncate");
        }
        "db garbage middle" => {
            use std::io::{Seek as _, SeekFrom, Write as _};
            let mut file = std::fs::OpenOptions::new().write(true).open(&db).expect("open");
            file.seek(SeekFrom::Start((len / 2) as u64)).expect("seek");
            file.write_all(&random(4096)).expect("write");
        }
        "conf garbled" => std::fs::write(dir.join("conf"), random(64)).expect("write"),
        other => panic!("unknown damage {other}"),
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_store_is_refused_with_a_message_that_names_restore() {
    if on_postgres() {
        return; // sled's files and disk
    }
    let mut app = spawn_app().await;
    for n in 0..20 {
        app.register("demo", &format!("user{n}@example.com")).await;
    }
    app.stop().await;
    let sound = app.data_dir();
    for how in DAMAGES {
        let copy = app.dir.path().join(format!("damaged-{}", how.replace(' ', "-")));
        copy_dir(&sound, &copy);
        damage(&copy, how);
        let settings = settings_for(&copy, &app.dir.path().join("latch-master.key"));
        let refused = latch_server::app::start(&settings, std::sync::Arc::new(latch_server::clock::SystemClock)).await;
        let err = match refused {
            Ok(server) => {
                server.shutdown().await.expect("shutdown");
                panic!("{how}: a damaged store started");
            }
            Err(err) => format!("{err:#}"),
        };
        assert!(err.contains("latch restore"), "{how}: {err}");
    }
    // The undamaged original still starts, with every user.
    app.restart().await;
    for n in 0..20 {
        assert_eq!(app.try_login("demo", &format!("user{n}@example.com"), PASSWORD).await.status(), StatusCode::OK);
    }
}

fn settings_for(data_dir: &Path, key: &Path) -> latch_server::config::Settings {
    let args = latch_server::config::ConfigArgs {
        common: latch_server::config::CommonArgs {
            data_dir: Some(data_dir.to_owned()),
            master_key_file: Some(key.to_owned()),
            ..latch_server::config::CommonArgs::default()
        },
        listen: Some("127.0.0.1:0".into()),
        ..latch_server::config::ConfigArgs::default()
    };
    latch_server::config::Settings::resolve(&args, &operator_environment()).expect("settings")
}

#[tokio::test]
async fn the_binary_exits_non_zero_on_a_damaged_store() {
    if on_postgres() {
        return; // sled's files and disk
    }
    let mut app = spawn_app().await;
    app.register("demo", "one@example.com").await;
    app.stop().await;
    damage(&app.data_dir(), "db truncated to half");
    let key = app.dir.path().join("latch-master.key");
    let data = app.data_dir();
    let args: [&std::ffi::OsStr; 7] = [
        "serve".as_ref(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--master-key-file".as_ref(),
        key.as_os_str(),
    ];
    let child = tokio::process::Command::new(latch_binary())
        .args(args)
        .env("LATCH_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("latch runs");
    // Bounded only so that a latch that wrongly serves the damaged store
    // fails this test instead of hanging it; a refusal comes at once.
    let output = tokio::time::timeout(std::time::Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("latch refused the start instead of serving")
        .expect("latch exits");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "exit status non-zero");
    assert!(stderr.contains("latch restore"), "{stderr}");
}

#[tokio::test]
async fn nothing_is_created_on_disk_when_a_start_up_check_fails() {
    if on_postgres() {
        return; // sled's files and disk
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, key) = (dir.path().join("data"), dir.path().join("master.key"));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    for listen in [format!("127.0.0.1:{port}"), "8080".into()] {
        let args = [
            "serve",
            "--listen",
            &listen,
            "--data-dir",
            &data.to_string_lossy(),
            "--master-key-file",
            &key.to_string_lossy(),
        ];
        let (ok, _, stderr) = run_latch(args, "").await;
        assert!(!ok, "{listen}: refused");
        let reason = if listen == "8080" { "did you mean 127.0.0.1:8080" } else { "cannot listen" };
        assert!(stderr.contains(reason), "{listen}: {stderr}");
        assert!(!data.exists() && !key.exists(), "{listen}: nothing created");
    }
    drop(taken);

    // An initialised data directory whose master key file is missing: refused, and no new key is made.
    let mut app = spawn_app().await;
    app.stop().await;
    let missing = dir.path().join("missing.key");
    let settings = settings_for(&app.data_dir(), &missing);
    let err = match latch_server::app::start(&settings, std::sync::Arc::new(latch_server::clock::SystemClock)).await {
        Ok(_) => panic!("started without its master key"),
        Err(err) => err.to_string(),
    };
    assert!(err.contains("does not exist"), "{err}");
    assert!(!missing.exists(), "no new key was created");
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct SmallDisk {
    at: std::path::PathBuf,
}

impl SmallDisk {
    /// `None` when this process may not mount (not root): then the test
    /// says so and stops, since only a real full disk shows what sled does.
    fn mount(at: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).expect("mkdir");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|status| status.success());
        mounted.then(|| SmallDisk { at: at.to_owned() })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

/// Writes zeros to `path` until the file system is full.
fn fill(path: &Path) {
    use std::io::Write as _;
    let mut file = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
}

/// Renames the tenant `full`: a small durable write without password hashing.
async fn rename(app: &TestApp, n: usize) -> StatusCode {
    let body = json!({"name": format!("renamed {n}")});
    app.send(Method::PATCH, "/admin/tenants/full", OPERATOR_TOKEN, Some(&body)).await.status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_then_recovers_without_a_restart_and_readyz_tells() {
    if on_postgres() {
        return; // sled's files and disk
    }
    let outside = tempfile::tempdir().expect("tempdir");
    let Some(disk) = SmallDisk::mount(&outside.path().join("small"), "8m") else {
        eprintln!("SKIPPED: mounting a tmpfs needs root; run the test command as root to check disk-full recovery");
        return;
    };
    let (data, key) = (disk.at.join("data"), outside.path().join("master.key"));
    let mut app = spawn_app_with(std::sync::Arc::new(latch_server::clock::SystemClock), move |settings| {
        settings.data_dir = data.clone();
        settings.master_key_file = key.clone();
    })
    .await;
    app.create_tenant(json!({"id": "full"})).await;
    app.register("full", "before@example.com").await;

    let filler = disk.at.join("filler");
    fill(&filler);
    // sled may still have room in a segment it holds; the first write that
    // needs more is refused, and none is acknowledged.
    let mut refused = false;
    for n in 0..2000 {
        let status = rename(&app, n).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            refused = true;
            break;
        }
        assert_eq!(status, StatusCode::OK, "a write either succeeds or is refused");
    }
    assert!(refused, "a full disk refused no write");
    let ready = app.http.get(app.url("/readyz")).send().await.expect("request");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE, "/readyz tells the store cannot write");
    assert!(ready.text().await.expect("body").contains("cannot write"));
    assert_eq!(rename(&app, 9999).await, StatusCode::SERVICE_UNAVAILABLE, "still full: still refused");

    std::fs::remove_file(&filler).expect("free the space");
    // Without a restart: readiness returns, then writes succeed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while app.http.get(app.url("/readyz")).send().await.expect("request").status() != StatusCode::OK {
        assert!(std::time::Instant::now() < deadline, "the store never recovered");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(rename(&app, 10_000).await, StatusCode::OK);
    app.register("full", "after@example.com").await;

    // Everything acknowledged before and after the full disk is on disk.
    app.restart().await;
    for email in ["before@example.com", "after@example.com"] {
        assert_eq!(app.try_login("full", email, PASSWORD).await.status(), StatusCode::OK, "{email}");
    }
    let tenant = app.send(Method::GET, "/admin/tenants/full", OPERATOR_TOKEN, None).await;
    let tenant: Value = tenant.json().await.expect("json");
    assert_eq!(tenant["name"], json!("renamed 10000"), "the write after recovery is durable");
    app.stop().await;
    drop(disk);
}
