//! TOTP as a second factor: enrollment, login through `mfa_required` and
//! `/auth/mfa` (and the OAuth token endpoint), replay refusal, recovery codes,
//! lockout, disabling, audit events and tenant isolation.

use std::sync::Arc;

use latch_server::clock::{Clock as _, ManualClock};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use totp_rs::{Algorithm, Secret, TOTP};

use crate::support::*;

/// 2027-01-15; a multiple of 30, so at the start of a TOTP step.
const START: i64 = 1_800_000_000;

/// A user with TOTP confirmed; returns (their authenticator, recovery codes, access token).
async fn enrolled(app: &TestApp, clock: &ManualClock, tenant: &str, email: &str) -> (TOTP, Vec<String>, String) {
    let user = app.register(tenant, email).await;
    let token = user.access.as_str().to_owned();
    let path = format!("/t/{tenant}/users/me/mfa/totp");
    let password = json!({"password": PASSWORD});
    let enrollment: Value = app.send(Method::POST, &path, &token, Some(&password)).await.json().await.expect("json");
    let uri = enrollment["otpauth_uri"].as_str().expect("uri");
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    let bytes = Secret::Encoded(enrollment["secret"].as_str().expect("secret").into()).to_bytes().expect("base32");
    let totp = TOTP::new(Algorithm::SHA1, 6, 1, 30, bytes, None, email.into()).expect("totp");

    let wrong_code = json!({"password": PASSWORD, "code": "000000"});
    let wrong = app.send(Method::POST, &format!("{path}/confirm"), &token, Some(&wrong_code)).await;
    assert_problem(wrong, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    let me: Value = app.get_with(&format!("/t/{tenant}/users/me"), &token).await.json().await.expect("json");
    assert_eq!(me["mfa_enabled"], json!(false), "not on before a right code");

    let code = totp.generate(clock.now() as u64);
    let right = json!({"password": PASSWORD, "code": code});
    let confirmed = app.send(Method::POST, &format!("{path}/confirm"), &token, Some(&right)).await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    let codes: Vec<String> = confirmed.json::<Value>().await.expect("json")["recovery_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_owned())
        .collect();
    (totp, codes, token)
}

async fn app_at_start() -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(START));
    (spawn_app_at(clock.clone()).await, clock)
}

/// Logs in with the password; expects 403 `mfa_required` and returns its challenge.
async fn challenge(app: &TestApp, tenant: &str, email: &str) -> String {
    let login = app.try_login(tenant, email, PASSWORD).await;
    let problem = assert_problem(login, StatusCode::FORBIDDEN, "mfa_required").await;
    assert!(problem.get("access_token").is_none());
    problem["mfa_token"].as_str().expect("mfa_token").to_owned()
}

async fn complete(app: &TestApp, tenant: &str, body: Value) -> reqwest::Response {
    app.post_json(&format!("/t/{tenant}/auth/mfa"), &body).await
}

#[tokio::test(flavor = "current_thread")]
async fn a_totp_code_completes_the_login_once_per_step() {
    let (app, clock) = app_at_start().await;
    let (totp, codes, token) = enrolled(&app, &clock, "demo", "mfa@example.com").await;
    assert_eq!(codes.len(), 10);
    let me: Value = app.get_with("/t/demo/users/me", &token).await.json().await.expect("json");
    assert_eq!(me["mfa_enabled"], json!(true));

    let mfa_token = challenge(&app, "demo", "mfa@example.com").await;
    // The confirmation used this step's code: it cannot log in.
    let code = totp.generate(clock.now() as u64);
    let replay = complete(&app, "demo", json!({"mfa_token": mfa_token, "code": code})).await;
    assert_problem(replay, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;

    clock.advance(30);
    let code = totp.generate(clock.now() as u64);
    let done = complete(&app, "demo", json!({"mfa_token": mfa_token, "code": code})).await;
    assert_eq!(done.status(), StatusCode::OK);
    let tokens: Tokens = done.json().await.expect("tokens");
    assert_eq!(app.get_with("/t/demo/users/me", &tokens.access).await.status(), 200);

    // The challenge is used up, and the same code does not open a second login.
    let again = complete(&app, "demo", json!({"mfa_token": mfa_token, "code": code})).await;
    assert_problem(again, StatusCode::UNAUTHORIZED, "invalid_mfa_token").await;
    let second = challenge(&app, "demo", "mfa@example.com").await;
    let replay = complete(&app, "demo", json!({"mfa_token": second, "code": code})).await;
    assert_problem(replay, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    // The next step's code (within the skew of one step) works.
    let next = totp.generate(clock.now() as u64 + 30);
    assert_eq!(complete(&app, "demo", json!({"mfa_token": second, "code": next})).await.status(), StatusCode::OK);

    // Challenges expire after five minutes.
    let late = challenge(&app, "demo", "mfa@example.com").await;
    clock.advance(301);
    let code = totp.generate(clock.now() as u64);
    let expired = complete(&app, "demo", json!({"mfa_token": late, "code": code})).await;
    assert_problem(expired, StatusCode::UNAUTHORIZED, "invalid_mfa_token").await;

    let admin = app.admin_of("demo", "auditor@example.com").await;
    let events: Value = app.get_with("/t/demo/admin/events", &admin.access).await.json().await.expect("j");
    let kinds: Vec<&str> =
        events["events"].as_array().expect("events").iter().filter_map(|e| e["kind"].as_str()).collect();
    assert!(kinds.contains(&"mfa_enabled") && kinds.contains(&"mfa_failed"), "{kinds:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn wrong_codes_count_toward_lockout_and_use_up_the_challenge() {
    let (app, clock) = app_at_start().await;
    let (totp, _, _) = enrolled(&app, &clock, "demo", "guess@example.com").await;
    clock.advance(30);
    let mfa_token = challenge(&app, "demo", "guess@example.com").await;
    for _ in 0..4 {
        let wrong = complete(&app, "demo", json!({"mfa_token": mfa_token, "code": "123456"})).await;
        assert_problem(wrong, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    }
    // The fifth wrong code reaches the tenant's lockout threshold (5).
    let fifth = complete(&app, "demo", json!({"mfa_token": mfa_token, "code": "654321"})).await;
    assert_problem(fifth, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    let code = totp.generate(clock.now() as u64);
    let used_up = complete(&app, "demo", json!({"mfa_token": mfa_token, "code": code})).await;
    assert_problem(used_up, StatusCode::UNAUTHORIZED, "invalid_mfa_token").await;
    let refresh_login = app.post_form(
        "/t/demo/oauth/token",
        &[("grant_type", "password"), ("username", "guess@example.com"), ("password", "still wrong!")],
    );
    assert_eq!(refresh_login.await.status(), StatusCode::FORBIDDEN, "locked: every password gets a challenge");
}

#[tokio::test(flavor = "current_thread")]
async fn a_lock_set_off_by_someone_else_does_not_keep_an_owner_with_a_second_factor_out() {
    let (app, clock) = app_at_start().await;
    let (totp, _, _) = enrolled(&app, &clock, "demo", "victim@example.com").await;
    clock.advance(30);
    // An attacker without the password locks the account.
    for _ in 0..5 {
        let wrong = app.try_login("demo", "victim@example.com", "guessing badly").await;
        assert_problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    // During the lock every password gets a challenge, so the answer says
    // nothing about the password; a wrong password's challenge never completes.
    let decoy = app.try_login("demo", "victim@example.com", "guessing again").await;
    let decoy = assert_problem(decoy, StatusCode::FORBIDDEN, "mfa_required").await;
    let code = totp.generate(clock.now() as u64);
    let refused = complete(&app, "demo", json!({"mfa_token": decoy["mfa_token"], "code": code})).await;
    assert_problem(refused, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    // The owner's right password and a valid code get in, and lift the lock.
    let owner = challenge(&app, "demo", "victim@example.com").await;
    let tokens = complete(&app, "demo", json!({"mfa_token": owner, "code": code})).await;
    assert_eq!(tokens.status(), StatusCode::OK, "before, 429 account_locked until the lock ended");
    clock.advance(30);
    let next = challenge(&app, "demo", "victim@example.com").await;
    let again = complete(&app, "demo", json!({"mfa_token": next, "code": totp.generate(clock.now() as u64)})).await;
    assert_eq!(again.status(), StatusCode::OK, "unlocked");
}

#[tokio::test(flavor = "current_thread")]
async fn codes_during_a_lock_are_bounded_by_the_threshold_per_lock() {
    let (app, clock) = app_at_start().await;
    let (totp, _, _) = enrolled(&app, &clock, "demo", "known-pw@example.com").await;
    clock.advance(30);
    for _ in 0..5 {
        app.try_login("demo", "known-pw@example.com", "guessing badly").await;
    }
    // Someone who has the password but not the second factor, during the lock.
    let mut answers = Vec::new();
    for _ in 0..7 {
        let mfa_token = challenge(&app, "demo", "known-pw@example.com").await;
        let wrong = complete(&app, "demo", json!({"mfa_token": mfa_token, "code": "000000"})).await;
        answers.push(wrong.json::<Value>().await.expect("problem")["code"].as_str().expect("code").to_owned());
    }
    assert_eq!(answers.iter().filter(|code| *code == "invalid_mfa_code").count(), 5, "{answers:?}");
    assert_eq!(answers.iter().filter(|code| *code == "account_locked").count(), 2, "{answers:?}");
    // The budget is used up: even the right code waits for the lock to end.
    let mfa_token = challenge(&app, "demo", "known-pw@example.com").await;
    let right =
        complete(&app, "demo", json!({"mfa_token": mfa_token, "code": totp.generate(clock.now() as u64)})).await;
    assert_problem(right, StatusCode::TOO_MANY_REQUESTS, "account_locked").await;
}

#[tokio::test(flavor = "current_thread")]
async fn recovery_codes_work_once_each_and_disabling_needs_password_and_code() {
    let (app, clock) = app_at_start().await;
    let (totp, codes, token) = enrolled(&app, &clock, "demo", "lost@example.com").await;

    let mfa_token = challenge(&app, "demo", "lost@example.com").await;
    let used = complete(&app, "demo", json!({"mfa_token": mfa_token, "recovery_code": codes[0].to_uppercase()})).await;
    assert_eq!(used.status(), StatusCode::OK, "recovery codes ignore case");
    let mfa_token = challenge(&app, "demo", "lost@example.com").await;
    let reused = complete(&app, "demo", json!({"mfa_token": mfa_token, "recovery_code": codes[0]})).await;
    assert_problem(reused, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    let both = complete(&app, "demo", json!({"mfa_token": mfa_token, "recovery_code": codes[1], "code": "1"})).await;
    assert_problem(both, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;

    let password = json!({"password": PASSWORD});
    let again = app.send(Method::POST, "/t/demo/users/me/mfa/totp", &token, Some(&password)).await;
    assert_problem(again, StatusCode::CONFLICT, "mfa_already_enabled").await;

    clock.advance(30);
    let code = totp.generate(clock.now() as u64);
    let disable = "/t/demo/users/me/mfa/totp/disable";
    let no_password =
        app.send(Method::POST, disable, &token, Some(&json!({"password": "wrong wrong wrong", "code": code}))).await;
    assert_problem(no_password, StatusCode::FORBIDDEN, "current_password_wrong").await;
    let no_code = app.send(Method::POST, disable, &token, Some(&json!({"password": PASSWORD, "code": "000000"}))).await;
    assert_problem(no_code, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    let off = app.send(Method::POST, disable, &token, Some(&json!({"password": PASSWORD, "code": code}))).await;
    assert_eq!(off.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.try_login("demo", "lost@example.com", PASSWORD).await.status(),
        StatusCode::OK,
        "no second factor now"
    );
    let twice = app.send(Method::POST, disable, &token, Some(&json!({"password": PASSWORD, "code": code}))).await;
    assert_problem(twice, StatusCode::CONFLICT, "mfa_not_enabled").await;
    let body = json!({"password": PASSWORD, "code": code});
    let confirm = app.send(Method::POST, "/t/demo/users/me/mfa/totp/confirm", &token, Some(&body)).await;
    assert_problem(confirm, StatusCode::CONFLICT, "mfa_not_pending").await;
}

#[tokio::test(flavor = "current_thread")]
async fn the_oauth_token_endpoint_answers_mfa_required_and_takes_the_mfa_grant() {
    let (app, clock) = app_at_start().await;
    let (totp, _, _) = enrolled(&app, &clock, "demo", "oauth-mfa@example.com").await;
    let password = [("grant_type", "password"), ("username", "oauth-mfa@example.com"), ("password", PASSWORD)];
    let answer = app.post_form("/t/demo/oauth/token", &password).await;
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    assert_eq!(answer.headers()["cache-control"], "no-store");
    let body: Value = answer.json().await.expect("json");
    assert_eq!(body["error"], json!("mfa_required"));
    let mfa_token = body["mfa_token"].as_str().expect("mfa_token");

    let grant = "urn:latch:params:oauth:grant-type:mfa-otp";
    let wrong =
        app.post_form("/t/demo/oauth/token", &[("grant_type", grant), ("mfa_token", mfa_token), ("otp", "1")]).await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    assert_eq!(wrong.json::<Value>().await.expect("json")["error"], json!("invalid_grant"));
    clock.advance(30);
    let code = totp.generate(clock.now() as u64);
    let done =
        app.post_form("/t/demo/oauth/token", &[("grant_type", grant), ("mfa_token", mfa_token), ("otp", &code)]).await;
    assert_eq!(done.status(), StatusCode::OK);
    let tokens: OAuthTokens = done.json().await.expect("OAuth tokens");
    assert_eq!(tokens.token_type, "Bearer");
    assert!(tokens.refresh_token.starts_with("latch_rt_"));
}

#[tokio::test(flavor = "current_thread")]
async fn challenges_and_enrollment_stay_inside_their_tenant() {
    let (app, clock) = app_at_start().await;
    app.create_tenant(json!({"id": "other"})).await;
    let (totp, _, token) = enrolled(&app, &clock, "demo", "iso@example.com").await;
    app.register("other", "iso@example.com").await;

    let mfa_token = challenge(&app, "demo", "iso@example.com").await;
    clock.advance(30);
    let code = totp.generate(clock.now() as u64);
    let elsewhere = complete(&app, "other", json!({"mfa_token": mfa_token, "code": code})).await;
    assert_problem(elsewhere, StatusCode::UNAUTHORIZED, "invalid_mfa_token").await;
    // The other tenant's account of the same email has no second factor.
    assert_eq!(app.try_login("other", "iso@example.com", PASSWORD).await.status(), StatusCode::OK);
    // A demo token cannot enroll or disable at the other tenant.
    let password = json!({"password": PASSWORD});
    let enroll = app.send(Method::POST, "/t/other/users/me/mfa/totp", &token, Some(&password)).await;
    assert_eq!(enroll.status(), StatusCode::UNAUTHORIZED);
    let disable = app
        .send(
            Method::POST,
            "/t/other/users/me/mfa/totp/disable",
            &token,
            Some(&json!({"password": PASSWORD, "code": code})),
        )
        .await;
    assert_eq!(disable.status(), StatusCode::UNAUTHORIZED);
    // The challenge was not spent by the attempt elsewhere.
    assert_eq!(complete(&app, "demo", json!({"mfa_token": mfa_token, "code": code})).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_wrong_codes_across_challenges_are_checked_no_more_than_the_threshold() {
    let (app, clock) = app_at_start().await;
    enrolled(&app, &clock, "demo", "many@example.com").await;
    clock.advance(30);
    let mut challenges = Vec::new();
    for _ in 0..10 {
        challenges.push(challenge(&app, "demo", "many@example.com").await);
    }
    // One wrong code per challenge, all at once: before, all ten were checked
    // although the account locks at five.
    let answers = futures_util::future::join_all(
        challenges.iter().map(|mfa_token| complete(&app, "demo", json!({"mfa_token": mfa_token, "code": "000000"}))),
    )
    .await;
    let mut codes = Vec::new();
    for answer in answers {
        let problem: Value = answer.json().await.expect("problem");
        codes.push(problem["code"].as_str().expect("code").to_owned());
    }
    let checked = codes.iter().filter(|code| *code == "invalid_mfa_code").count();
    let refused = codes.iter().filter(|code| *code == "account_locked").count();
    assert_eq!((checked, refused), (5, 5), "{codes:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn turning_totp_off_counts_wrong_passwords_and_codes_toward_the_lockout() {
    let (app, clock) = app_at_start().await;
    let (totp, _, token) = enrolled(&app, &clock, "demo", "off@example.com").await;
    clock.advance(30);
    let path = "/t/demo/users/me/mfa/totp/disable";
    for n in 0..5 {
        let body = if n % 2 == 0 {
            json!({"password": "wrong guess!", "code": totp.generate(clock.now() as u64)})
        } else {
            json!({"password": PASSWORD, "code": "000000"})
        };
        let wrong = app.send(Method::POST, path, &token, Some(&body)).await;
        let expected = if n % 2 == 0 { "current_password_wrong" } else { "invalid_mfa_code" };
        assert_problem(wrong, if n % 2 == 0 { StatusCode::FORBIDDEN } else { StatusCode::UNAUTHORIZED }, expected)
            .await;
    }
    let right = json!({"password": PASSWORD, "code": totp.generate(clock.now() as u64)});
    let refused = app.send(Method::POST, path, &token, Some(&right)).await;
    assert_problem(refused, StatusCode::TOO_MANY_REQUESTS, "account_locked").await;
    let me: Value = app.get_with("/t/demo/users/me", &token).await.json().await.expect("json");
    assert_eq!(me["mfa_enabled"], json!(true), "still on");
}

#[tokio::test(flavor = "current_thread")]
async fn enrolling_and_confirming_totp_need_the_password() {
    let (app, clock) = app_at_start().await;
    let user = app.register("demo", "stolen@example.com").await;
    let token = user.access.as_str();
    let path = "/t/demo/users/me/mfa/totp";
    // Before, an access token alone could switch TOTP on and lock the owner out.
    let bare = app.send(Method::POST, path, token, None).await;
    assert_problem(bare, StatusCode::BAD_REQUEST, "invalid_request").await;
    let wrong = app.send(Method::POST, path, token, Some(&json!({"password": "not the password"}))).await;
    assert_problem(wrong, StatusCode::FORBIDDEN, "current_password_wrong").await;
    let enrollment: Value =
        app.send(Method::POST, path, token, Some(&json!({"password": PASSWORD}))).await.json().await.expect("json");
    let bytes = Secret::Encoded(enrollment["secret"].as_str().expect("secret").into()).to_bytes().expect("base32");
    let totp = TOTP::new(Algorithm::SHA1, 6, 1, 30, bytes, None, "stolen@example.com".into()).expect("totp");
    let code = totp.generate(clock.now() as u64);
    let confirm = format!("{path}/confirm");
    let body = json!({"password": "not the password", "code": code});
    let wrong = app.send(Method::POST, &confirm, token, Some(&body)).await;
    assert_problem(wrong, StatusCode::FORBIDDEN, "current_password_wrong").await;
    let me: Value = app.get_with("/t/demo/users/me", token).await.json().await.expect("json");
    assert_eq!(me["mfa_enabled"], json!(false), "a right code without the password turns nothing on");
    let right = app.send(Method::POST, &confirm, token, Some(&json!({"password": PASSWORD, "code": code}))).await;
    assert_eq!(right.status(), StatusCode::OK);
}

#[tokio::test(flavor = "current_thread")]
async fn an_admin_resets_a_lost_second_factor_audited_and_only_in_their_tenant() {
    let (app, clock) = app_at_start().await;
    enrolled(&app, &clock, "demo", "lost-phone@example.com").await;
    challenge(&app, "demo", "lost-phone@example.com").await;
    let listed: Value = app.get_with("/t/demo/admin/users", OPERATOR_TOKEN).await.json().await.expect("json");
    let id = listed["users"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["email"] == "lost-phone@example.com")
        .expect("listed")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("/t/demo/admin/users/{id}/mfa/reset");

    let plain = app.register("demo", "plain-user@example.com").await;
    let forbidden = app.send(Method::POST, &path, &plain.access, None).await;
    assert_problem(forbidden, StatusCode::FORBIDDEN, "forbidden").await;
    let elsewhere = app.send(Method::POST, &format!("/t/other/admin/users/{id}/mfa/reset"), OPERATOR_TOKEN, None).await;
    assert_eq!(elsewhere.status(), StatusCode::NOT_FOUND, "the id is not a user of another tenant");

    let reset = app.send(Method::POST, &path, OPERATOR_TOKEN, None).await;
    assert_eq!(reset.status(), StatusCode::OK);
    assert_eq!(reset.json::<Value>().await.expect("json")["mfa_enabled"], json!(false));
    assert_eq!(
        app.try_login("demo", "lost-phone@example.com", PASSWORD).await.status(),
        StatusCode::OK,
        "password only"
    );
    let events: Value = app.get_with("/t/demo/admin/events", OPERATOR_TOKEN).await.json().await.expect("json");
    let reset_event = events["events"].as_array().expect("events").iter().find(|e| e["kind"] == "mfa_reset").cloned();
    let reset_event = reset_event.expect("audited");
    assert_eq!((reset_event["actor"].clone(), reset_event["subject"].clone()), (json!("operator"), json!(id)));
}

#[tokio::test(flavor = "current_thread")]
async fn the_cli_resets_a_second_factor_on_a_stopped_data_directory() {
    // The CLI runs on the system clock: the keys must not be from the future.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs() as i64;
    let clock = Arc::new(ManualClock::new(now - now % 30));
    let mut app = spawn_app_at(clock.clone()).await;
    enrolled(&app, &clock, "demo", "cli-phone@example.com").await;
    app.stop().await;
    let reset = tokio::process::Command::new(latch_binary())
        .args(["user", "reset-mfa", "--tenant", "demo", "--email", "cli-phone@example.com"])
        .args(app.store_args())
        .env("LATCH_LOG", "warn")
        .output()
        .await
        .expect("runs");
    assert!(reset.status.success(), "{}", String::from_utf8_lossy(&reset.stderr));
    app.restart().await;
    assert_eq!(
        app.try_login("demo", "cli-phone@example.com", PASSWORD).await.status(),
        StatusCode::OK,
        "password only"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn recovery_codes_are_stored_as_keyed_hashes() {
    let (app, clock) = app_at_start().await;
    let (_, codes, _) = enrolled(&app, &clock, "demo", "keyed@example.com").await;
    let backup = app.get_with("/admin/backup", OPERATOR_TOKEN).await.bytes().await.expect("backup");
    let records: Vec<Value> =
        backup.split(|&b| b == b'\n').filter_map(|line| serde_json::from_slice(line).ok()).collect();
    let stored: Vec<&Value> =
        records.iter().filter(|line| line["kind"] == "user").map(|line| &line["record"]).collect();
    let user = stored.iter().find(|user| user["email"] == "keyed@example.com").expect("the user in the backup");
    let hashes: Vec<&str> = user["totp"]["recovery_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|hash| hash.as_str().expect("hash"))
        .collect();
    assert_eq!(hashes.len(), codes.len());
    for code in &codes {
        let normalized: String = code.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        let bare = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(normalized.as_bytes()));
        assert!(!hashes.iter().any(|hash| hash.contains(&bare)), "no bare SHA-256 of a recovery code is stored");
    }
    assert!(hashes.iter().all(|hash| hash.starts_with("k1:") && hash.len() == 3 + 64), "{hashes:?}");
}
