//! The OpenID Connect provider over plain HTTP: clients, the authorization
//! code flow with PKCE through the hosted pages, single sign-on, consent, ID
//! tokens, userinfo, logout, and what each of them refuses. (The same flow
//! through a real relying party and Chromium is in `oidc_browser`.)

use std::collections::HashMap;
use std::sync::Arc;

use latch_server::clock::{Clock as _, ManualClock, SystemClock};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

const CALLBACK: &str = "https://app.example/callback";
const VERIFIER: &str = "a-pkce-code-verifier-of-at-least-forty-three-characters";

/// A browser: keeps cookies, never follows redirects.
pub struct Browser {
    base: String,
    http: reqwest::Client,
    cookies: std::sync::Mutex<HashMap<String, String>>,
}

impl Browser {
    pub fn new(app: &TestApp) -> Browser {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        Browser { base: app.base.clone(), http, cookies: Default::default() }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") { path.to_owned() } else { format!("{}{path}", self.base) }
    }

    fn cookie_header(&self) -> String {
        let cookies = self.cookies.lock().expect("lock");
        cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn keep(&self, response: &reqwest::Response) {
        let mut cookies = self.cookies.lock().expect("lock");
        for set in response.headers().get_all("set-cookie") {
            let set = set.to_str().expect("ascii");
            let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').expect("name=value");
            if attributes.contains("Max-Age=0") {
                cookies.remove(name);
            } else {
                cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    pub fn has_cookie(&self, name: &str) -> bool {
        self.cookies.lock().expect("lock").contains_key(name)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        let response =
            self.http.get(self.url(path)).header("cookie", self.cookie_header()).send().await.expect("request");
        self.keep(&response);
        response
    }

    pub async fn post(&self, path: &str, form: &[(String, String)]) -> reqwest::Response {
        let request = self.http.post(self.url(path)).header("cookie", self.cookie_header()).form(form);
        let response = request.send().await.expect("request");
        self.keep(&response);
        response
    }
}

/// The hidden fields of the page's (first) form with `step`, to post back.
fn form_fields(html: &str, step: &str) -> Vec<(String, String)> {
    let marker = format!("name=\"step\" value=\"{step}\"");
    let at = html.find(&marker).unwrap_or_else(|| panic!("no `{step}` form in {html}"));
    let start = html[..at].rfind("<form").expect("form start");
    let end = at + html[at..].find("</form>").expect("form end");
    let unescape = |v: &str| {
        v.replace("&quot;", "\"").replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    };
    html[start..end]
        .split("<input type=\"hidden\" ")
        .skip(1)
        .map(|input| {
            let name = input.split("name=\"").nth(1).and_then(|r| r.split('"').next()).expect("name");
            let value = input.split("value=\"").nth(1).and_then(|r| r.split('"').next()).expect("value");
            (name.to_owned(), unescape(value))
        })
        .collect()
}

/// The consent page's fields, with `decision` (`allow` or `deny`).
fn consent_form(html: &str, decision: &str) -> Vec<(String, String)> {
    let fields = form_fields(html, "consent").into_iter().filter(|(name, _)| name != "decision").collect();
    with(fields, &[("decision", decision)])
}

fn with(mut fields: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    fields.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    fields
}

/// Registers a client through the admin API (operator token); returns its body.
pub async fn client(app: &TestApp, tenant: &str, body: Value) -> Value {
    let response = app.send(Method::POST, &format!("/t/{tenant}/admin/clients"), OPERATOR_TOKEN, Some(&body)).await;
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn public_client(app: &TestApp, tenant: &str, id: &str, first_party: bool) -> Value {
    let body = json!({"client_id": id, "type": "public", "name": format!("App {id}"), "redirect_uris": [CALLBACK],
        "post_logout_redirect_uris": ["https://app.example/bye"], "first_party": first_party});
    client(app, tenant, body).await
}

fn authorize_path(tenant: &str, client_id: &str, extra: &str) -> String {
    let challenge = latch_server::domain::s256(VERIFIER);
    format!(
        "/t/{tenant}/oauth/authorize?response_type=code&client_id={client_id}&redirect_uri={}\
         &scope=openid%20profile%20email&state=st4te&nonce=n0nce&code_challenge={challenge}\
         &code_challenge_method=S256{extra}",
        urlencode(CALLBACK)
    )
}

fn urlencode(text: &str) -> String {
    url_form(&[("x", text)])[2..].to_owned()
}

fn url_form(pairs: &[(&str, &str)]) -> String {
    let mut serializer = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            serializer.push('&');
        }
        serializer.push_str(k);
        serializer.push('=');
        for byte in v.bytes() {
            match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => serializer.push(byte as char),
                other => serializer.push_str(&format!("%{other:02X}")),
            }
        }
    }
    serializer
}

/// The query parameters of a redirect's `Location`.
fn location_params(response: &reqwest::Response) -> (String, HashMap<String, String>) {
    let location = response.headers()["location"].to_str().expect("ascii").to_owned();
    let url = reqwest::Url::parse(&location).expect("absolute");
    let params = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    (format!("{}://{}{}", url.scheme(), url.host_str().unwrap_or(""), url.path()), params)
}

/// Signs in on the hosted page (the browser has the login page open at
/// `page`); returns the response to the login form.
async fn sign_in(browser: &Browser, tenant: &str, page: reqwest::Response, email: &str) -> reqwest::Response {
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    let fields = with(form_fields(&html, "login"), &[("email", email), ("password", PASSWORD)]);
    browser.post(&format!("/t/{tenant}/oauth/authorize"), &fields).await
}

/// Exchanges a code as the public client `client_id`.
async fn exchange(app: &TestApp, tenant: &str, client_id: &str, code: &str, verifier: &str) -> reqwest::Response {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", CALLBACK),
        ("code_verifier", verifier),
        ("client_id", client_id),
    ];
    app.post_form(&format!("/t/{tenant}/oauth/token"), &form).await
}

/// Everything up to the code, for a user who has not consented yet.
async fn code_for(app: &TestApp, browser: &Browser, tenant: &str, client_id: &str, email: &str) -> String {
    let page = browser.get(&authorize_path(tenant, client_id, "")).await;
    let answer = sign_in(browser, tenant, page, email).await;
    let answer = if answer.status() == StatusCode::OK {
        let html = answer.text().await.expect("html");
        assert!(html.contains("Allow access?"), "{html}");
        browser.post(&format!("/t/{tenant}/oauth/authorize"), &consent_form(&html, "allow")).await
    } else {
        answer
    };
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let (to, params) = location_params(&answer);
    assert_eq!(to, CALLBACK);
    assert_eq!(params["state"], "st4te");
    assert_eq!(params["iss"], app.url(&format!("/t/{tenant}")), "RFC 9207");
    params["code"].clone()
}

fn id_token_claims(app: &TestApp, jwks: &Value, id_token: &str, tenant: &str, audience: &str) -> Value {
    let keys = latch_shared::KeySet::from_jwks_json(&jwks.to_string()).expect("jwks");
    let validation =
        latch_shared::Validation::new(app.url(&format!("/t/{tenant}")), audience).expect("options").id_tokens();
    let verified = latch_shared::verify(id_token, &keys, &validation, SystemClock.now()).expect("a valid ID token");
    assert_eq!(verified.header.typ, "JWT");
    Value::Object(verified.payload)
}

#[tokio::test]
async fn the_code_flow_signs_in_on_the_hosted_page_and_issues_tokens_with_an_id_token() {
    let app = spawn_app().await;
    public_client(&app, "demo", "shop", false).await;
    let user = app.register("demo", "oidc@example.com").await;
    let browser = Browser::new(&app);

    let code = code_for(&app, &browser, "demo", "shop", "oidc@example.com").await;
    assert!(browser.has_cookie("latch_session"), "the browser is signed in");
    let tokens = exchange(&app, "demo", "shop", &code, VERIFIER).await;
    assert_eq!(tokens.status(), StatusCode::OK);
    let tokens: Value = tokens.json().await.expect("json");
    assert_eq!(tokens["scope"], "email openid profile");

    let claims =
        id_token_claims(&app, &app.jwks("demo").await, tokens["id_token"].as_str().expect("id_token"), "demo", "shop");
    assert_eq!(claims["sub"], user.user.id);
    assert_eq!(claims["aud"], "shop");
    assert_eq!(claims["nonce"], "n0nce");
    assert_eq!(claims["amr"], json!(["pwd"]));
    assert_eq!(claims["email"], "oidc@example.com");
    assert!(claims["auth_time"].as_i64().is_some() && claims["sid"].is_string());
    let access = tokens["access_token"].as_str().expect("access");
    assert_eq!(claims_of(access)["client_id"], "shop", "RFC 9068");
    assert_eq!(claims_of(access)["sid"], claims["sid"]);

    // The access token works on userinfo and on the API.
    let info = app.get_with("/t/demo/oauth/userinfo", access).await;
    assert_eq!(info.status(), StatusCode::OK);
    let info: Value = info.json().await.expect("json");
    assert_eq!(info, json!({"sub": user.user.id, "email": "oidc@example.com", "email_verified": false}));
    assert_eq!(app.get_with("/t/demo/users/me", access).await.status(), StatusCode::OK);

    // The refresh token is bound to the client.
    let refresh = tokens["refresh_token"].as_str().expect("refresh");
    assert_problem(app.try_refresh("demo", refresh).await, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    let as_client = [("grant_type", "refresh_token"), ("refresh_token", refresh), ("client_id", "shop")];
    let refreshed = app.post_form("/t/demo/oauth/token", &as_client).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let refreshed: Value = refreshed.json().await.expect("json");
    assert!(refreshed["id_token"].is_string(), "an ID token on refresh too");

    // The code works once; a second use ends the session the first one started.
    let again = exchange(&app, "demo", "shop", &code, VERIFIER).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert_eq!(again.json::<Value>().await.expect("json")["error"], "invalid_grant");
    let next = refreshed["refresh_token"].as_str().expect("refresh");
    let after_reuse = app
        .post_form(
            "/t/demo/oauth/token",
            &[("grant_type", "refresh_token"), ("refresh_token", next), ("client_id", "shop")],
        )
        .await;
    assert_eq!(after_reuse.status(), StatusCode::BAD_REQUEST, "the session ended");
}

#[tokio::test]
async fn a_second_client_signs_in_without_a_password_and_prompt_login_asks_again() {
    let app = spawn_app().await;
    public_client(&app, "demo", "first", true).await;
    public_client(&app, "demo", "second", true).await;
    app.register("demo", "sso@example.com").await;
    let browser = Browser::new(&app);
    code_for(&app, &browser, "demo", "first", "sso@example.com").await;

    let sso = browser.get(&authorize_path("demo", "second", "")).await;
    assert_eq!(sso.status(), StatusCode::FOUND, "single sign-on: no page");
    let (_, params) = location_params(&sso);
    let tokens = exchange(&app, "demo", "second", &params["code"], VERIFIER).await;
    assert_eq!(tokens.status(), StatusCode::OK);

    let again = browser.get(&authorize_path("demo", "second", "&prompt=login")).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert!(again.text().await.expect("html").contains("name=\"password\""), "prompt=login shows the sign-in form");
    let old = browser.get(&authorize_path("demo", "second", "&max_age=0")).await;
    assert_eq!(old.status(), StatusCode::OK, "max_age=0 asks again too");

    // prompt=none answers at once: a code while signed in, login_required when not.
    let silent = browser.get(&authorize_path("demo", "second", "&prompt=none")).await;
    assert!(location_params(&silent).1.contains_key("code"));
    let stranger = Browser::new(&app);
    let refused = stranger.get(&authorize_path("demo", "second", "&prompt=none")).await;
    assert_eq!(location_params(&refused).1["error"], "login_required");
}

#[tokio::test]
async fn requests_that_cannot_be_trusted_get_a_page_and_the_others_an_error_redirect() {
    let app = spawn_app().await;
    public_client(&app, "demo", "shop", false).await;
    let browser = Browser::new(&app);
    let challenge = latch_server::domain::s256(VERIFIER);

    for bad in [
        "/t/demo/oauth/authorize?response_type=code&client_id=nobody&redirect_uri=https%3A%2F%2Fapp.example%2Fcallback",
        "/t/demo/oauth/authorize?response_type=code&client_id=shop&redirect_uri=https%3A%2F%2Fevil.example%2Fcallback",
        "/t/demo/oauth/authorize?response_type=code&client_id=shop&redirect_uri=https%3A%2F%2Fapp.example%2Fcallback%2F",
    ] {
        let page = browser.get(bad).await;
        assert_eq!(page.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(page.headers().get("location").is_none(), "never a redirect: {bad}");
    }
    let base = format!(
        "/t/demo/oauth/authorize?response_type=code&client_id=shop&redirect_uri={}&state=s",
        urlencode(CALLBACK)
    );
    for (query, error) in [
        (String::new(), "invalid_request"),
        (format!("&code_challenge={challenge}&code_challenge_method=plain"), "invalid_request"),
        (format!("&code_challenge={VERIFIER}"), "invalid_request"),
        (format!("&code_challenge={challenge}&code_challenge_method=S256&scope=admin"), "invalid_scope"),
        (format!("&code_challenge={challenge}&code_challenge_method=S256&prompt=sometimes"), "invalid_request"),
    ] {
        let answer = browser.get(&format!("{base}{query}")).await;
        assert_eq!(answer.status(), StatusCode::FOUND, "{query}");
        let (to, params) = location_params(&answer);
        assert_eq!(
            (to.as_str(), params["error"].as_str(), params["state"].as_str()),
            (CALLBACK, error, "s"),
            "{query}"
        );
    }
    let token = browser
        .get(&format!(
            "/t/demo/oauth/authorize?response_type=token&client_id=shop&redirect_uri={}",
            urlencode(CALLBACK)
        ))
        .await;
    assert_eq!(location_params(&token).1["error"], "unsupported_response_type");
}

#[tokio::test]
async fn codes_are_bound_to_their_verifier_client_redirect_uri_tenant_and_minute() {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let app = spawn_app_at(clock.clone()).await;
    app.create_tenant(json!({"id": "other"})).await;
    for tenant in ["demo", "other"] {
        public_client(&app, tenant, "shop", true).await;
        app.register(tenant, "bound@example.com").await;
    }
    public_client(&app, "demo", "rival", true).await;
    let browser = Browser::new(&app);
    let invalid_grant = |response: reqwest::Response| async move {
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.json::<Value>().await.expect("json")["error"], "invalid_grant");
    };

    let code = code_for(&app, &browser, "demo", "shop", "bound@example.com").await;
    invalid_grant(exchange(&app, "demo", "shop", &code, &format!("{VERIFIER}-wrong")).await).await;
    let code = browser_code(&browser, "demo", "shop").await;
    invalid_grant(exchange(&app, "demo", "rival", &code, VERIFIER).await).await;
    let code = browser_code(&browser, "demo", "shop").await;
    invalid_grant(exchange(&app, "other", "shop", &code, VERIFIER).await).await;
    let code = browser_code(&browser, "demo", "shop").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "https://app.example/other"),
        ("code_verifier", VERIFIER),
        ("client_id", "shop"),
    ];
    invalid_grant(app.post_form("/t/demo/oauth/token", &form).await).await;
    let code = browser_code(&browser, "demo", "shop").await;
    invalid_grant(exchange(&app, "demo", "shop", &code, "").await).await;
    let code = browser_code(&browser, "demo", "shop").await;
    clock.advance(61);
    invalid_grant(exchange(&app, "demo", "shop", &code, VERIFIER).await).await;
    let code = browser_code(&browser, "demo", "shop").await;
    clock.advance(59);
    assert_eq!(exchange(&app, "demo", "shop", &code, VERIFIER).await.status(), StatusCode::OK, "59 s is still in time");
}

/// A code through single sign-on (the browser is signed in and consented).
async fn browser_code(browser: &Browser, tenant: &str, client_id: &str) -> String {
    let answer = browser.get(&authorize_path(tenant, client_id, "")).await;
    assert_eq!(answer.status(), StatusCode::FOUND);
    location_params(&answer).1["code"].clone()
}

#[tokio::test]
async fn consent_is_asked_once_per_client_and_a_denial_goes_back_as_access_denied() {
    let app = spawn_app().await;
    public_client(&app, "demo", "third-party", false).await;
    app.register("demo", "consent@example.com").await;
    let browser = Browser::new(&app);
    let page = browser.get(&authorize_path("demo", "third-party", "")).await;
    let consent = sign_in(&browser, "demo", page, "consent@example.com").await;
    let html = consent.text().await.expect("html");
    assert!(html.contains("App third-party") && html.contains("<li>email</li>"), "{html}");
    let denied = browser.post("/t/demo/oauth/authorize", &consent_form(&html, "deny")).await;
    assert_eq!(location_params(&denied).1["error"], "access_denied");

    let again = browser.get(&authorize_path("demo", "third-party", "")).await;
    let html = again.text().await.expect("html");
    let allowed = browser.post("/t/demo/oauth/authorize", &consent_form(&html, "allow")).await;
    assert!(location_params(&allowed).1.contains_key("code"));
    let remembered = browser.get(&authorize_path("demo", "third-party", "")).await;
    assert_eq!(remembered.status(), StatusCode::FOUND, "consent remembered");
    let forced = browser.get(&authorize_path("demo", "third-party", "&prompt=consent")).await;
    assert!(forced.text().await.expect("html").contains("Allow access?"), "prompt=consent asks again");
}

#[tokio::test]
async fn the_hosted_forms_refuse_a_missing_csrf_token_and_explain_failed_sign_ins() {
    let app = spawn_app().await;
    public_client(&app, "demo", "shop", true).await;
    let admin = app.admin_of("demo", "boss@example.com").await;
    let user = app.register("demo", "gone@example.com").await;
    let browser = Browser::new(&app);
    let page = browser.get(&authorize_path("demo", "shop", "")).await;
    let csp = page.headers()["content-security-policy"].to_str().expect("ascii").to_owned();
    assert!(csp.contains("default-src 'none'") && !csp.contains("script-src"), "no script at all: {csp}");
    let html = page.text().await.expect("html");
    assert!(html.contains("<label for=\"email\">") && html.contains("<label for=\"password\">"));

    let without_csrf: Vec<(String, String)> =
        form_fields(&html, "login").into_iter().filter(|(k, _)| k != "csrf").collect();
    let refused = browser
        .post("/t/demo/oauth/authorize", &with(without_csrf, &[("email", "gone@example.com"), ("password", PASSWORD)]))
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let stranger = Browser::new(&app);
    let forged = stranger
        .post(
            "/t/demo/oauth/authorize",
            &with(form_fields(&html, "login"), &[("email", "gone@example.com"), ("password", PASSWORD)]),
        )
        .await;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST, "a CSRF token without its cookie");

    let wrong = browser
        .post(
            "/t/demo/oauth/authorize",
            &with(form_fields(&html, "login"), &[("email", "gone@example.com"), ("password", "not the password")]),
        )
        .await;
    assert!(wrong.text().await.expect("html").contains("The email or password is wrong."));
    let path = format!("/t/demo/admin/users/{}/disable", user.user.id);
    assert_eq!(app.send(Method::POST, &path, &admin.access, None).await.status(), StatusCode::OK);
    let disabled = browser
        .post(
            "/t/demo/oauth/authorize",
            &with(form_fields(&html, "login"), &[("email", "gone@example.com"), ("password", PASSWORD)]),
        )
        .await;
    assert!(disabled.text().await.expect("html").contains("This account is disabled."));
    assert!(!browser.has_cookie("latch_session"));
}

#[tokio::test]
async fn rp_initiated_logout_ends_the_browser_session_and_the_sessions_it_started() {
    let app = spawn_app().await;
    public_client(&app, "demo", "shop", true).await;
    app.register("demo", "bye@example.com").await;
    let browser = Browser::new(&app);
    let code = code_for(&app, &browser, "demo", "shop", "bye@example.com").await;
    let tokens: Value = exchange(&app, "demo", "shop", &code, VERIFIER).await.json().await.expect("json");
    let id_token = tokens["id_token"].as_str().expect("id_token");

    let unregistered = browser
        .get(&format!(
            "/t/demo/oauth/logout?id_token_hint={id_token}&post_logout_redirect_uri={}",
            urlencode("https://evil.example/")
        ))
        .await;
    assert_eq!(unregistered.status(), StatusCode::BAD_REQUEST);
    assert!(browser.has_cookie("latch_session"), "nothing ended");

    let logout = browser
        .get(&format!(
            "/t/demo/oauth/logout?id_token_hint={id_token}&post_logout_redirect_uri={}&state=later",
            urlencode("https://app.example/bye")
        ))
        .await;
    assert_eq!(logout.status(), StatusCode::FOUND);
    assert_eq!(logout.headers()["location"], "https://app.example/bye?state=later");
    assert!(!browser.has_cookie("latch_session"), "the cookie is cleared");
    let refresh = tokens["refresh_token"].as_str().expect("refresh");
    let refreshed = app
        .post_form(
            "/t/demo/oauth/token",
            &[("grant_type", "refresh_token"), ("refresh_token", refresh), ("client_id", "shop")],
        )
        .await;
    assert_eq!(refreshed.status(), StatusCode::BAD_REQUEST, "the session it started has ended");
    let next = browser.get(&authorize_path("demo", "shop", "")).await;
    assert_eq!(next.status(), StatusCode::OK, "signed out: the sign-in page again");

    // Without a hint the user confirms first, so a link alone signs nobody out.
    let confirm = browser.get("/t/demo/oauth/logout").await;
    assert!(confirm.text().await.expect("html").contains("Sign out?"));
}

#[tokio::test]
async fn a_user_with_totp_passes_the_second_factor_page() {
    let clock = Arc::new(ManualClock::new(1_800_000_000));
    let app = spawn_app_at(clock.clone()).await;
    public_client(&app, "demo", "shop", true).await;
    let user = app.register("demo", "totp@example.com").await;
    let path = "/t/demo/users/me/mfa/totp";
    let enrollment: Value = app
        .send(Method::POST, path, &user.access, Some(&json!({"password": PASSWORD})))
        .await
        .json()
        .await
        .expect("json");
    let secret =
        totp_rs::Secret::Encoded(enrollment["secret"].as_str().expect("secret").into()).to_bytes().expect("b32");
    let totp = totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, secret, None, "x".into()).expect("totp");
    let code = totp.generate(clock.now() as u64);
    let confirm = json!({"password": PASSWORD, "code": code});
    assert_eq!(
        app.send(Method::POST, &format!("{path}/confirm"), &user.access, Some(&confirm)).await.status(),
        StatusCode::OK
    );
    clock.advance(30);

    let browser = Browser::new(&app);
    let page = browser.get(&authorize_path("demo", "shop", "")).await;
    let second = sign_in(&browser, "demo", page, "totp@example.com").await;
    let html = second.text().await.expect("html");
    assert!(html.contains("Second factor"), "{html}");
    let wrong = browser.post("/t/demo/oauth/authorize", &with(form_fields(&html, "otp"), &[("otp", "000000")])).await;
    let html = wrong.text().await.expect("html");
    assert!(html.contains("The code is wrong"), "{html}");
    let code = totp.generate(clock.now() as u64);
    let done = browser.post("/t/demo/oauth/authorize", &with(form_fields(&html, "otp"), &[("otp", &code)])).await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    let tokens: Value =
        exchange(&app, "demo", "shop", &location_params(&done).1["code"], VERIFIER).await.json().await.expect("json");
    let claims =
        id_token_claims(&app, &app.jwks("demo").await, tokens["id_token"].as_str().expect("id"), "demo", "shop");
    assert_eq!(claims["amr"], json!(["pwd", "otp"]));
}

#[tokio::test]
async fn confidential_clients_authenticate_and_unknown_credentials_are_refused() {
    let app = spawn_app().await;
    let created = client(
        &app,
        "demo",
        json!({"client_id": "backend", "type": "confidential", "name": "Backend",
        "redirect_uris": [CALLBACK], "grant_types": ["authorization_code", "refresh_token", "password"]}),
    )
    .await;
    let secret = created["client_secret"].as_str().expect("shown once");
    assert!(secret.starts_with("latch_cs_"));
    let shown: Value = app.get_with("/t/demo/admin/clients/backend", OPERATOR_TOKEN).await.json().await.expect("json");
    assert!(shown.get("client_secret").is_none(), "never again");
    app.register("demo", "conf@example.com").await;
    let password = [("grant_type", "password"), ("username", "conf@example.com"), ("password", PASSWORD)];
    let token = |user: &'static str, pass: String| {
        let http = app.http.clone();
        let url = app.url("/t/demo/oauth/token");
        async move { http.post(url).basic_auth(user, Some(pass)).form(&password).send().await.expect("request") }
    };
    assert_eq!(token("backend", secret.to_owned()).await.status(), StatusCode::OK);
    let wrong = token("backend", "latch_cs_wrong".into()).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.json::<Value>().await.expect("json")["error"], "invalid_client");
    let invented = token("invented", "whatever".into()).await;
    assert_eq!(invented.status(), StatusCode::UNAUTHORIZED, "invented credentials are refused");
    let without_secret =
        app.post_form("/t/demo/oauth/token", &[password[0], password[1], password[2], ("client_id", "backend")]).await;
    assert_eq!(without_secret.status(), StatusCode::UNAUTHORIZED);
    let post = [password[0], password[1], password[2], ("client_id", "backend"), ("client_secret", secret)];
    assert_eq!(app.post_form("/t/demo/oauth/token", &post).await.status(), StatusCode::OK, "client_secret_post");

    // A public client may not use a grant it is not allowed.
    public_client(&app, "demo", "spa", true).await;
    let spa =
        app.post_form("/t/demo/oauth/token", &[password[0], password[1], password[2], ("client_id", "spa")]).await;
    assert_eq!(spa.status(), StatusCode::BAD_REQUEST);
    assert_eq!(spa.json::<Value>().await.expect("json")["error"], "unauthorized_client");

    // A new secret replaces the old one at once.
    let rotated = app.send(Method::POST, "/t/demo/admin/clients/backend/secret", OPERATOR_TOKEN, None).await;
    assert_eq!(rotated.status(), StatusCode::CREATED);
    let new_secret = rotated.json::<Value>().await.expect("json")["client_secret"].as_str().expect("secret").to_owned();
    assert_eq!(token("backend", secret.to_owned()).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(token("backend", new_secret).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn clients_are_managed_by_the_tenants_admins_audited_and_isolated_per_tenant() {
    let app = spawn_app().await;
    app.create_tenant(json!({"id": "other"})).await;
    let admin = app.admin_of("demo", "clients@example.com").await;
    let outsider = app.admin_of("other", "outsider@example.com").await;
    let body =
        json!({"type": "public", "name": "Mobile", "redirect_uris": ["com.example.app:/cb", "http://127.0.0.1/cb"]});
    let created = app.send(Method::POST, "/t/demo/admin/clients", &admin.access, Some(&body)).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.expect("json");
    let id = created["client_id"].as_str().expect("generated").to_owned();
    assert_eq!(created["grant_types"], json!(["authorization_code", "refresh_token"]));
    assert!(created.get("client_secret").is_none(), "public clients have none");

    let path = format!("/t/demo/admin/clients/{id}");
    for (method, body) in
        [(Method::GET, None), (Method::PATCH, Some(json!({"name": "Stolen"}))), (Method::DELETE, None)]
    {
        let foreign = app.send(method.clone(), &path, &outsider.access, body.as_ref()).await;
        assert_problem(foreign, StatusCode::FORBIDDEN, "forbidden").await;
    }
    let listed = app.send(Method::GET, "/t/other/admin/clients", &outsider.access, None).await;
    assert_eq!(
        listed.json::<Value>().await.expect("json")["clients"],
        json!([]),
        "other tenants' clients are not listed"
    );

    let bad =
        app.send(Method::PATCH, &path, &admin.access, Some(&json!({"redirect_uris": ["https://*.example/cb"]}))).await;
    assert_problem(bad, StatusCode::BAD_REQUEST, "invalid_setting").await;
    let unknown = app.send(Method::PATCH, &path, &admin.access, Some(&json!({"redirect_urls": []}))).await;
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST, "unknown fields are refused");
    let renamed =
        app.send(Method::PATCH, &path, &admin.access, Some(&json!({"name": "Mobile app", "first_party": true}))).await;
    let renamed: Value = renamed.json().await.expect("json");
    assert_eq!((renamed["name"].clone(), renamed["first_party"].clone()), (json!("Mobile app"), json!(true)));
    let taken = json!({"client_id": id, "type": "public", "name": "Again", "redirect_uris": [CALLBACK]});
    assert_problem(
        app.send(Method::POST, "/t/demo/admin/clients", &admin.access, Some(&taken)).await,
        StatusCode::CONFLICT,
        "client_exists",
    )
    .await;
    assert_eq!(app.send(Method::DELETE, &path, &admin.access, None).await.status(), StatusCode::NO_CONTENT);
    assert_problem(app.send(Method::GET, &path, &admin.access, None).await, StatusCode::NOT_FOUND, "client_not_found")
        .await;

    let kinds: Vec<String> =
        app.events("demo").await.iter().map(|e| e["kind"].as_str().unwrap_or("").to_owned()).collect();
    for kind in ["client_created", "client_updated", "client_deleted"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
}

#[tokio::test]
async fn userinfo_answers_bearer_errors_per_rfc_6750() {
    let app = spawn_app().await;
    let user = app.register("demo", "info@example.com").await;
    let none = app.http.get(app.url("/t/demo/oauth/userinfo")).send().await.expect("request");
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    let bad = app.get_with("/t/demo/oauth/userinfo", "not-a-token").await;
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(bad.headers()["www-authenticate"], "Bearer error=\"invalid_token\"");
    let narrow = app
        .post_form(
            "/t/demo/oauth/token",
            &[
                ("grant_type", "password"),
                ("username", "info@example.com"),
                ("password", PASSWORD),
                ("scope", "profile"),
            ],
        )
        .await;
    let narrow: OAuthTokens = narrow.json().await.expect("json");
    let forbidden = app.get_with("/t/demo/oauth/userinfo", &narrow.access_token).await;
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN, "no openid scope");
    assert!(forbidden.headers()["www-authenticate"].to_str().expect("ascii").contains("insufficient_scope"));
    let posted =
        app.http.post(app.url("/t/demo/oauth/userinfo")).bearer_auth(&user.access).send().await.expect("request");
    assert_eq!(posted.json::<Value>().await.expect("json")["sub"], user.user.id);
}

#[tokio::test]
async fn client_credentials_give_a_confidential_client_a_token_for_itself() {
    let app = spawn_app().await;
    let created = client(
        &app,
        "demo",
        json!({"client_id": "worker", "type": "confidential", "name": "Worker",
        "grant_types": ["client_credentials"], "scopes": ["orders:read", "orders:write"]}),
    )
    .await;
    let secret = created["client_secret"].as_str().expect("secret").to_owned();
    let grant = |scope: Option<&'static str>, secret: String| {
        let (http, url) = (app.http.clone(), app.url("/t/demo/oauth/token"));
        async move {
            let mut form = vec![("grant_type", "client_credentials")];
            form.extend(scope.map(|s| ("scope", s)));
            http.post(url).basic_auth("worker", Some(secret)).form(&form).send().await.expect("request")
        }
    };
    let issued = grant(None, secret.clone()).await;
    assert_eq!(issued.status(), StatusCode::OK);
    let body: Value = issued.json().await.expect("json");
    assert!(body.get("refresh_token").is_none() && body.get("id_token").is_none(), "{body}");
    assert_eq!(body["scope"], "orders:read orders:write");
    let access = body["access_token"].as_str().expect("token");
    let claims = claims_of(access);
    assert_eq!((claims["sub"].clone(), claims["client_id"].clone()), (json!("worker"), json!("worker")));
    assert!(claims.get("sid").is_none(), "no session behind it");
    assert_eq!(app.get_with("/t/demo/users/me", access).await.status(), StatusCode::UNAUTHORIZED, "not a user");

    let narrow: Value = grant(Some("orders:read"), secret.clone()).await.json().await.expect("json");
    assert_eq!(narrow["scope"], "orders:read");
    let beyond = grant(Some("admin"), secret.clone()).await;
    assert_eq!(beyond.json::<Value>().await.expect("json")["error"], "invalid_scope");
    assert_eq!(grant(None, "latch_cs_wrong".into()).await.status(), StatusCode::UNAUTHORIZED);

    // Introspection knows it while its client exists.
    let introspect = |token: String| {
        let (http, url) = (app.http.clone(), app.url("/t/demo/oauth/introspect"));
        async move {
            let response = http.post(url).bearer_auth(OPERATOR_TOKEN).form(&[("token", token)]).send().await;
            response.expect("request").json::<Value>().await.expect("json")
        }
    };
    let active = introspect(access.to_owned()).await;
    assert_eq!((active["active"].clone(), active["client_id"].clone()), (json!(true), json!("worker")), "{active}");
    assert_eq!(
        app.send(Method::DELETE, "/t/demo/admin/clients/worker", OPERATOR_TOKEN, None).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(introspect(access.to_owned()).await, json!({"active": false}));

    // Public clients and clients not allowed the grant are refused.
    public_client(&app, "demo", "spa", true).await;
    let public =
        app.post_form("/t/demo/oauth/token", &[("grant_type", "client_credentials"), ("client_id", "spa")]).await;
    assert_eq!(public.json::<Value>().await.expect("json")["error"], "unauthorized_client");
    let anonymous = app.post_form("/t/demo/oauth/token", &[("grant_type", "client_credentials")]).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_explorer_signs_in_to_the_demo_tenant_with_the_code_flow_and_pkce() {
    let app = spawn_app().await;
    let spec: Value = app.http.get(app.url("/openapi.json")).send().await.expect("r").json().await.expect("json");
    let flow = &spec["components"]["securitySchemes"]["DemoOAuth"]["flows"]["authorizationCode"];
    assert_eq!(flow["authorizationUrl"], "/t/demo/oauth/authorize", "{flow}");
    assert_eq!(flow["tokenUrl"], "/t/demo/oauth/token");
    assert!(flow["scopes"].get("openid").is_some(), "{flow}");

    let page = app.http.get(app.url("/docs")).send().await.expect("r").text().await.expect("html");
    assert!(
        page.contains(r#"initOAuth({ clientId: "latch-explorer", usePkceWithAuthorizationCodeGrant: true"#),
        "the explorer uses PKCE with its client"
    );
    let receiver = app.http.get(app.url("/docs/oauth-receiver.html")).send().await.expect("r");
    assert_eq!(receiver.status(), StatusCode::OK);

    // The client the explorer names is registered for its receiver page.
    let explorer: Value =
        app.get_with("/t/demo/admin/clients/latch-explorer", OPERATOR_TOKEN).await.json().await.expect("json");
    assert_eq!(explorer["redirect_uris"], json!([app.url("/docs/oauth-receiver.html")]));
    assert_eq!((explorer["type"].clone(), explorer["first_party"].clone()), (json!("public"), json!(true)));
    let challenge = latch_server::domain::s256(VERIFIER);
    let authorize = format!(
        "/t/demo/oauth/authorize?response_type=code&client_id=latch-explorer&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256&state=x",
        urlencode(&app.url("/docs/oauth-receiver.html"))
    );
    let sign_in = Browser::new(&app).get(&authorize).await;
    assert_eq!(sign_in.status(), StatusCode::OK, "the sign-in page, not an error");
}

#[tokio::test]
async fn the_hosted_form_shares_the_rate_limit_and_shows_lockouts_and_clients_stay_in_their_tenant() {
    let app = spawn_app_with_rate_limit(4).await;
    app.create_tenant(json!({"id": "other", "lockout_threshold": 2})).await;
    public_client(&app, "other", "shop", true).await;
    app.register("other", "locked@example.com").await;
    public_client(&app, "demo", "demo-only", true).await;
    let browser = Browser::new(&app);

    let foreign = browser.get(&authorize_path("other", "demo-only", "")).await;
    assert_eq!(foreign.status(), StatusCode::BAD_REQUEST, "a client of another tenant is unknown here");

    let page = browser.get(&authorize_path("other", "shop", "")).await;
    let html = page.text().await.expect("html");
    let browser = &browser;
    let attempt = |password: &'static str| {
        let fields = with(form_fields(&html, "login"), &[("email", "locked@example.com"), ("password", password)]);
        async move { browser.post("/t/other/oauth/authorize", &fields).await }
    };
    assert!(attempt("wrong password 1").await.text().await.expect("html").contains("The email or password is wrong."));
    let locked = attempt("wrong password 2").await.text().await.expect("html");
    assert!(locked.contains("The email or password is wrong."), "the failure that locks: {locked}");
    let refused = attempt(PASSWORD).await.text().await.expect("html");
    assert!(refused.contains("the account is locked. Try again in"), "{refused}");
    let limited = attempt(PASSWORD).await;
    assert_eq!(
        limited.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the register call and three posts used the budget of 4"
    );
    assert!(limited.headers().contains_key("retry-after"));
    assert!(limited.text().await.expect("html").contains("Too many sign-in attempts"));
}

#[tokio::test]
async fn a_password_change_ends_single_sign_on_in_every_browser() {
    let app = spawn_app().await;
    public_client(&app, "demo", "shop", true).await;
    let user = app.register("demo", "sso-change@example.com").await;
    let browser = Browser::new(&app);
    code_for(&app, &browser, "demo", "shop", "sso-change@example.com").await;
    assert_eq!(browser.get(&authorize_path("demo", "shop", "")).await.status(), StatusCode::FOUND, "signed in");
    let change = json!({"current_password": PASSWORD, "new_password": "a changed passphrase"});
    let changed = app.send(Method::POST, "/t/demo/users/me/password", &user.access, Some(&change)).await;
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    let after = browser.get(&authorize_path("demo", "shop", "")).await;
    assert_eq!(after.status(), StatusCode::OK, "the sign-in page: the old sign-in no longer counts");
}
