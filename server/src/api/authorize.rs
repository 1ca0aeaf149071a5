//! The authorization endpoint with the hosted sign-in pages (OpenID Connect
//! Core §3.1.2, RFC 6749 §4.1, RFC 7636, RFC 9207) and RP-initiated logout.
//!
//! Pages are server-rendered forms (`pages`), posted back to the same URL
//! with the authorization request's parameters in hidden fields, so no
//! server-side state is kept between steps but the browser session. Every
//! form carries a CSRF token that must equal the `latch_csrf` cookie
//! (double submit; the cookie is `SameSite=Strict` and `HttpOnly`). The
//! browser session cookie `latch_session` (`HttpOnly`, `SameSite=Lax`,
//! `Secure` over https, path `/t/{tenant}/`) gives single sign-on; only its
//! hash is stored.

use std::sync::Arc;

use poem::Request;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Form, Html, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi};
use secrecy::ExposeSecret as _;
use serde::Deserialize;

use super::pages::{self, escape};
use super::{ApiTags, client_info};
use crate::crypto::{hashes_equal, random_token, token_hash};
use crate::domain::{
    Authenticated, AuthorizationError, AuthorizationRequest, BROWSER_SESSION_SECONDS, BrowserSession, ClientInfo,
    Error, Latch, NewAccount, Registration, SecondFactor, TenantId, TenantRuntime,
};

/// The hosted sign-in.
pub struct AuthorizeApi;

const SESSION_COOKIE: &str = "latch_session";
const CSRF_COOKIE: &str = "latch_csrf";

/// What the hosted pages post: the authorization request again, the CSRF
/// token, which step it is, and that step's fields.
#[derive(Debug, Clone, Default, Object, Deserialize)]
pub struct AuthorizeForm {
    /// As in the authorization request.
    #[oai(nullable)]
    pub response_type: Option<String>,
    /// As in the authorization request.
    #[oai(nullable)]
    pub client_id: Option<String>,
    /// As in the authorization request.
    #[oai(nullable)]
    pub redirect_uri: Option<String>,
    /// As in the authorization request.
    #[oai(nullable)]
    pub scope: Option<String>,
    /// As in the authorization request.
    #[oai(nullable)]
    pub state: Option<String>,
    /// As in the authorization request.
    #[oai(nullable)]
    pub nonce: Option<String>,
    /// As in the authorization request.
    #[oai(nullable)]
    pub code_challenge: Option<String>,
    /// As in the authorization request.
    #[oai(nullable)]
    pub code_challenge_method: Option<String>,
    /// As in the authorization request.
    #[oai(nullable)]
    pub prompt: Option<String>,
    /// As in the authorization request.
    #[oai(nullable)]
    pub max_age: Option<String>,
    /// As in the authorization request.
    #[oai(nullable)]
    pub login_hint: Option<String>,
    /// The page's CSRF token (equal to the `latch_csrf` cookie).
    #[oai(write_only)]
    #[oai(nullable)]
    pub csrf: Option<String>,
    /// `login`, `otp`, `consent`, `register` or `forgot`.
    #[oai(nullable)]
    pub step: Option<String>,
    /// Login, registration, reset: the email.
    #[oai(nullable)]
    pub email: Option<String>,
    /// Login, registration: the password.
    #[oai(write_only)]
    #[oai(nullable)]
    pub password: Option<String>,
    /// Registration: the display name.
    #[oai(nullable)]
    pub name: Option<String>,
    /// Second factor: the challenge of the password step.
    #[oai(write_only)]
    #[oai(nullable)]
    pub mfa_token: Option<String>,
    /// Second factor: a TOTP code.
    #[oai(write_only)]
    #[oai(nullable)]
    pub otp: Option<String>,
    /// Second factor: a recovery code instead.
    #[oai(write_only)]
    #[oai(nullable)]
    pub recovery_code: Option<String>,
    /// Consent: `allow` or `deny`.
    #[oai(nullable)]
    pub decision: Option<String>,
}

impl AuthorizeForm {
    fn request(&self) -> AuthorizationRequest {
        AuthorizationRequest {
            response_type: self.response_type.clone(),
            client_id: self.client_id.clone(),
            redirect_uri: self.redirect_uri.clone(),
            scope: self.scope.clone(),
            state: self.state.clone(),
            nonce: self.nonce.clone(),
            code_challenge: self.code_challenge.clone(),
            code_challenge_method: self.code_challenge_method.clone(),
            prompt: self.prompt.clone(),
            max_age: self.max_age.clone(),
            login_hint: self.login_hint.clone(),
        }
    }
}

/// The authorization request's parameters as hidden form fields and as a query.
fn request_fields(request: &AuthorizationRequest) -> Vec<(&'static str, String)> {
    let fields = [
        ("response_type", &request.response_type),
        ("client_id", &request.client_id),
        ("redirect_uri", &request.redirect_uri),
        ("scope", &request.scope),
        ("state", &request.state),
        ("nonce", &request.nonce),
        ("code_challenge", &request.code_challenge),
        ("code_challenge_method", &request.code_challenge_method),
        ("prompt", &request.prompt),
        ("max_age", &request.max_age),
        ("login_hint", &request.login_hint),
    ];
    fields.into_iter().filter_map(|(name, value)| value.clone().map(|value| (name, value))).collect()
}

fn query(fields: &[(&str, String)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in fields {
        query.append_pair(name, value);
    }
    query.finish()
}

/// `uri` with `params` added to its query.
fn with_params(uri: &str, params: &[(&str, String)]) -> String {
    let separator = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{separator}{}", query(params))
}

/// Authorization answers.
#[derive(ApiResponse)]
pub enum AuthorizeResponse {
    /// To the client's redirect URI with `code` (or `error`), `state` and `iss`.
    #[oai(status = 302)]
    Found(#[oai(header = "Location")] String, #[oai(header = "Set-Cookie")] Option<String>),
    /// After a form: to the client's redirect URI, as for 302.
    #[oai(status = 303)]
    SeeOther(#[oai(header = "Location")] String, #[oai(header = "Set-Cookie")] Option<String>),
    /// A sign-in, second-factor, consent, registration or reset page.
    #[oai(status = 200)]
    Page(Html<String>, #[oai(header = "Set-Cookie")] Option<String>, #[oai(header = "Cache-Control")] String),
    /// The request cannot be answered to the client (unknown client or
    /// redirect URI), or a form is stale: an error page, never a redirect.
    #[oai(status = 400)]
    BadRequest(Html<String>),
    /// No such tenant.
    #[oai(status = 404)]
    NotFound(Html<String>),
    /// The server failed.
    #[oai(status = 503)]
    Unavailable(Html<String>),
}

/// The stylesheet.
#[derive(ApiResponse)]
pub enum Stylesheet {
    /// The CSS.
    #[oai(status = 200, content_type = "text/css; charset=utf-8")]
    Css(PlainText<&'static str>, #[oai(header = "Cache-Control")] String),
}

/// What a step leads to.
enum Outcome {
    /// The client's redirect URI, with the answer in its query.
    Redirect(String),
    /// A page.
    Page(String),
}

/// A cookie's `Set-Cookie` value.
fn cookie(name: &str, value: &str, path: &str, max_age: Option<i64>, same_site: &str, secure: bool) -> String {
    let max_age = max_age.map(|seconds| format!("; Max-Age={seconds}")).unwrap_or_default();
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path={path}; HttpOnly; SameSite={same_site}{max_age}{secure}")
}

/// A cookie sent with the request.
fn cookie_value<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(poem::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

fn error_page(title: &str, text: &str) -> String {
    pages::page(title, "latch", &format!("<p>{}</p>", escape(text)))
}

/// Everything a step needs about the request it answers.
struct Step<'a> {
    latch: &'a Latch,
    runtime: Arc<TenantRuntime>,
    request: AuthorizationRequest,
    authorization: crate::domain::Authorization,
    csrf: String,
    /// `Set-Cookie` for a new CSRF cookie, when the request had none.
    new_csrf: Option<String>,
    secure: bool,
    info: ClientInfo,
}

impl Step<'_> {
    fn tenant(&self) -> &TenantId {
        &self.runtime.tenant.id
    }

    fn action(&self) -> String {
        format!("/t/{}/oauth/authorize", self.tenant())
    }

    fn hidden(&self, step: &str, extra: &[(&'static str, String)]) -> String {
        let mut fields = request_fields(&self.request);
        fields.push(("csrf", self.csrf.clone()));
        fields.push(("step", step.to_owned()));
        fields.extend(extra.iter().cloned());
        pages::hidden(&fields)
    }

    /// A link back to this request showing another screen.
    fn screen_link(&self, screen: &str) -> String {
        let mut fields = request_fields(&self.request);
        fields.push(("screen", screen.to_owned()));
        format!("{}?{}", self.action(), query(&fields))
    }

    fn page(&self, title: &str, body: &str) -> String {
        pages::page(title, &self.runtime.tenant.name, body)
    }

    fn login_page(&self, message: Option<&str>, note: Option<&str>, email: Option<&str>) -> String {
        let client = &self.authorization.client.settings.name;
        let email = email.or(self.authorization.login_hint.as_deref());
        let content = format!(
            "<p>Sign in to continue to {}.</p>\n{}\n{}\n{}\n{}",
            escape(client),
            pages::message("message", message),
            pages::message("note", note),
            pages::input("email", "Email", "email", "username", email, "required"),
            pages::input("password", "Password", "password", "current-password", None, "required"),
        );
        let mut links = vec![(self.screen_link("forgot"), "Forgot your password?")];
        if self.runtime.tenant.settings.registration == crate::store::Registration::Open {
            links.push((self.screen_link("register"), "Create an account"));
        }
        let body = format!(
            "{}\n{}",
            pages::form(&self.action(), &self.hidden("login", &[]), &content, "Sign in"),
            pages::links(&links)
        );
        self.page("Sign in", &body)
    }

    fn otp_page(&self, mfa_token: &str, message: Option<&str>) -> String {
        let content = format!(
            "<p>Enter the code from your authenticator app, or one of your recovery codes.</p>\n{}\n{}\n{}",
            pages::message("message", message),
            pages::input("otp", "Code", "text", "one-time-code", None, "inputmode=\"numeric\" pattern=\"[0-9]{6}\""),
            pages::input("recovery_code", "Or a recovery code", "text", "off", None, ""),
        );
        let hidden = self.hidden("otp", &[("mfa_token", mfa_token.to_owned())]);
        self.page("Second factor", &pages::form(&self.action(), &hidden, &content, "Continue"))
    }

    fn consent_page(&self, scope: &str) -> String {
        let client = &self.authorization.client.settings.name;
        let items: Vec<String> =
            scope.split(' ').filter(|s| !s.is_empty()).map(|s| format!("<li>{}</li>", escape(s))).collect();
        let content = format!(
            "<p>{} asks for access to your account with these scopes:</p>\n<ul class=\"scopes\">{}</ul>",
            escape(client),
            items.join("")
        );
        let deny = format!(
            "<form method=\"post\" action=\"{}\">\n{}\n<button type=\"submit\" class=\"secondary\">Deny</button>\n</form>",
            escape(&self.action()),
            self.hidden("consent", &[("decision", "deny".into())])
        );
        let allow =
            pages::form(&self.action(), &self.hidden("consent", &[("decision", "allow".into())]), &content, "Allow");
        self.page("Allow access?", &format!("{allow}\n{deny}"))
    }

    fn register_page(&self, message: Option<&str>) -> String {
        let min = self.runtime.tenant.settings.password_min_length;
        let content = format!(
            "{}\n{}\n{}\n{}",
            pages::message("message", message),
            pages::input("email", "Email", "email", "username", None, "required"),
            pages::input(
                "password",
                &format!("Password (at least {min} characters)"),
                "password",
                "new-password",
                None,
                "required"
            ),
            pages::input("name", "Name (optional)", "text", "name", None, ""),
        );
        let links = pages::links(&[(self.screen_link("login"), "I have an account")]);
        let form = pages::form(&self.action(), &self.hidden("register", &[]), &content, "Create account");
        self.page("Create an account", &format!("{form}\n{links}"))
    }

    fn forgot_page(&self, message: Option<&str>) -> String {
        let content = format!(
            "<p>We mail a link to choose a new password to this address, if it has an account.</p>\n{}\n{}",
            pages::message("message", message),
            pages::input("email", "Email", "email", "username", None, "required"),
        );
        let links = pages::links(&[(self.screen_link("login"), "Back to sign in")]);
        let form = pages::form(&self.action(), &self.hidden("forgot", &[]), &content, "Send the link");
        self.page("Reset your password", &format!("{form}\n{links}"))
    }

    /// The answer for the client: `params` plus `iss` (RFC 9207) and `state`.
    fn answer(&self, mut params: Vec<(&'static str, String)>) -> String {
        if let Some(state) = &self.authorization.state {
            params.push(("state", state.clone()));
        }
        params.push(("iss", self.runtime.issuer.clone()));
        with_params(&self.authorization.redirect_uri, &params)
    }

    fn error(&self, error: &str, description: &str) -> Outcome {
        Outcome::Redirect(self.answer(vec![("error", error.to_owned()), ("error_description", description.to_owned())]))
    }

    /// A signed-in user: consent if needed, then a code.
    async fn signed_in(&self, browser: &BrowserSession, consented: bool) -> Result<Outcome, Error> {
        let scope = self.latch.granted_scope(&self.runtime, &browser.user, &self.authorization);
        if !consented && self.latch.needs_consent(&browser.user, &self.authorization, &scope) {
            if self.authorization.prompt_none {
                return Ok(self.error("consent_required", "the user has not consented to this client"));
            }
            return Ok(Outcome::Page(self.consent_page(&scope)));
        }
        let code = self.latch.issue_code(&self.authorization, browser, scope).await?;
        Ok(Outcome::Redirect(self.answer(vec![("code", code.expose_secret().to_owned())])))
    }

    /// What a failed password step shows.
    fn login_failure(&self, error: Error, email: Option<&str>) -> Result<Outcome, Error> {
        let text = match &error {
            Error::InvalidCredentials | Error::InvalidEmail => "The email or password is wrong.".to_owned(),
            Error::AccountLocked { retry_after } => {
                format!("Too many failed sign-ins: the account is locked. Try again in {retry_after} seconds.")
            }
            Error::UserDisabled => "This account is disabled.".to_owned(),
            Error::EmailNotVerified => "Verify your email address first: open the link we mailed you.".to_owned(),
            Error::InvalidMfaToken => "The sign-in took too long. Start again.".to_owned(),
            _ => return Err(error),
        };
        Ok(Outcome::Page(self.login_page(Some(&text), None, email)))
    }
}

impl AuthorizeApi {
    /// Checks the tenant and the request; `Err` is the answer already.
    async fn step<'a>(
        latch: &'a Latch,
        req: &Request,
        tenant: &str,
        request: AuthorizationRequest,
    ) -> Result<Step<'a>, AuthorizeResponse> {
        let runtime = tenant_runtime(latch, tenant).await?;
        let tenant = runtime.tenant.id.clone();
        let authorization = match latch.check_authorization(&tenant, request.clone()).await {
            Ok(authorization) => authorization,
            Err(AuthorizationError::Page(text)) => {
                return Err(AuthorizeResponse::BadRequest(Html(error_page("Cannot sign in", &text))));
            }
            Err(AuthorizationError::Redirect { redirect_uri, error, description, state }) => {
                let mut params = vec![("error", error.to_owned()), ("error_description", description)];
                if let Some(state) = state {
                    params.push(("state", state));
                }
                params.push(("iss", runtime.issuer.clone()));
                return Err(AuthorizeResponse::Found(with_params(&redirect_uri, &params), None));
            }
        };
        let secure = latch.public_url().starts_with("https://") || super::proxies::client_of(req).https;
        let (csrf, new_csrf) = csrf_token(req, &tenant, secure);
        Ok(Step { latch, runtime, request, authorization, csrf, new_csrf, secure, info: client_info(req) })
    }

    /// The signed-in browser session the request carries, if any.
    async fn browser(latch: &Latch, req: &Request, tenant: &TenantId) -> Result<Option<BrowserSession>, Error> {
        match cookie_value(req, SESSION_COOKIE) {
            Some(cookie) => latch.browser_session(tenant, cookie).await,
            None => Ok(None),
        }
    }

    /// Signs the browser in after a password (and second-factor) step.
    async fn sign_in(step: &Step<'_>, req: &Request, authenticated: Authenticated) -> Result<(Outcome, String), Error> {
        let previous = cookie_value(req, SESSION_COOKIE);
        let cookie_value = step.latch.start_browser_session(step.tenant(), &authenticated, previous).await?;
        let browser = step
            .latch
            .browser_session(step.tenant(), cookie_value.expose_secret())
            .await?
            .ok_or(Error::InvalidCredentials)?;
        let path = format!("/t/{}/", step.tenant());
        let set = cookie(
            SESSION_COOKIE,
            cookie_value.expose_secret(),
            &path,
            Some(BROWSER_SESSION_SECONDS),
            "Lax",
            step.secure,
        );
        Ok((step.signed_in(&browser, false).await?, set))
    }
}

/// The hosted page's answer beyond the per-IP limit (the limiter answers before the handler).
pub fn rate_limited_page(retry_after: u64) -> poem::Response {
    use poem::IntoResponse as _;
    let text = format!("Too many sign-in attempts from your network. Try again in {retry_after} seconds.");
    let mut response = Html(error_page("Too many attempts", &text)).into_response();
    response.set_status(poem::http::StatusCode::TOO_MANY_REQUESTS);
    response.headers_mut().insert(poem::http::header::RETRY_AFTER, poem::http::HeaderValue::from(retry_after.max(1)));
    response
}

/// A request the hosted pages could not read (a malformed form, before any
/// handler ran), answered as a page with the same status: a browser shows
/// it, where a problem document would be a wall of JSON.
pub fn unreadable_request_page(status: poem::http::StatusCode, detail: &str) -> poem::Response {
    use poem::IntoResponse as _;
    let text = format!("This sign-in request could not be read: {detail}. Go back to the application and try again.");
    let mut response = Html(error_page("Request not understood", &text)).into_response();
    response.set_status(status);
    response
}

/// RP-initiated logout's parameters (and the confirmation form's).
#[derive(Debug, Clone, Default, Object, Deserialize)]
pub struct LogoutForm {
    /// An ID token this tenant issued to the client.
    #[oai(write_only)]
    #[oai(nullable)]
    pub id_token_hint: Option<String>,
    /// Where to send the browser afterwards (registered for the client).
    #[oai(nullable)]
    pub post_logout_redirect_uri: Option<String>,
    /// Returned with that redirect.
    #[oai(nullable)]
    pub state: Option<String>,
    /// The client, when there is no `id_token_hint`.
    #[oai(nullable)]
    pub client_id: Option<String>,
    /// The confirmation form's CSRF token.
    #[oai(write_only)]
    #[oai(nullable)]
    pub csrf: Option<String>,
}

impl AuthorizeApi {
    async fn end_session(
        latch: &Latch,
        req: &Request,
        tenant: &str,
        form: LogoutForm,
        posted: bool,
    ) -> AuthorizeResponse {
        let bad = |text: &str| AuthorizeResponse::BadRequest(Html(error_page("Cannot sign out", text)));
        let runtime = match tenant_runtime(latch, tenant).await {
            Ok(runtime) => runtime,
            Err(answer) => return answer,
        };
        let tenant = runtime.tenant.id.clone();
        let hinted = match form.id_token_hint.as_deref().filter(|h| !h.is_empty()) {
            Some(hint) => match latch.id_token_client(&tenant, hint).await {
                Ok((client_id, _)) => Some(client_id),
                Err(_) => return bad("The id_token_hint is not an ID token of this sign-in service."),
            },
            None => None,
        };
        let named = form.client_id.clone().filter(|c| !c.is_empty());
        if hinted.is_some() && named.is_some() && hinted != named {
            return bad("client_id and id_token_hint name different applications.");
        }
        let client_id = hinted.clone().or(named);
        let redirect = match form.post_logout_redirect_uri.as_deref().filter(|u| !u.is_empty()) {
            None => None,
            Some(uri) => {
                let registered = match &client_id {
                    Some(id) => latch.find_client(&tenant, id).await.ok(),
                    None => None,
                };
                match registered {
                    Some(client) if client.settings.post_logout_redirect_uris.iter().any(|u| u == uri) => {
                        let mut params = Vec::new();
                        if let Some(state) = form.state.clone().filter(|s| !s.is_empty()) {
                            params.push(("state", state));
                        }
                        Some(if params.is_empty() { uri.to_owned() } else { with_params(uri, &params) })
                    }
                    _ => return bad("The application asked to send you to an address it has not registered."),
                }
            }
        };
        let secure = latch.public_url().starts_with("https://") || super::proxies::client_of(req).https;
        let csrf_cookie = cookie_value(req, CSRF_COOKIE).filter(|value| value.len() >= 32);
        let confirmed = if posted {
            let presented = form.csrf.as_deref().unwrap_or_default();
            match csrf_cookie {
                Some(expected) if hashes_equal(&token_hash(presented), &token_hash(expected)) => true,
                _ => return bad("This form has expired or was not sent by this site."),
            }
        } else {
            hinted.is_some()
        };
        if !confirmed {
            // No proof the application asked: the user confirms, so another
            // site cannot sign them out with a link.
            let (csrf, set) = csrf_token(req, &tenant, secure);
            let mut fields: Vec<(&str, String)> = vec![("csrf", csrf)];
            for (name, value) in [
                ("post_logout_redirect_uri", &form.post_logout_redirect_uri),
                ("state", &form.state),
                ("client_id", &form.client_id),
            ] {
                if let Some(value) = value {
                    fields.push((name, value.clone()));
                }
            }
            let action = format!("/t/{tenant}/oauth/logout");
            let body = pages::form(
                &action,
                &pages::hidden(&fields),
                "<p>Sign out of every application that uses this sign-in?</p>",
                "Sign out",
            );
            let html = pages::page("Sign out?", &runtime.tenant.name, &body);
            return AuthorizeResponse::Page(Html(html), set, "no-store".into());
        }
        if let Some(value) = cookie_value(req, SESSION_COOKIE)
            && let Err(e) = latch.end_browser_session(&tenant, token_hash(value)).await
        {
            return unavailable(&e);
        }
        let cleared = Some(cookie(SESSION_COOKIE, "", &format!("/t/{tenant}/"), Some(0), "Lax", secure));
        match redirect {
            Some(location) if posted => AuthorizeResponse::SeeOther(location, cleared),
            Some(location) => AuthorizeResponse::Found(location, cleared),
            None => {
                let body = "<p>You are signed out. You can close this page.</p>";
                AuthorizeResponse::Page(
                    Html(pages::page("Signed out", &runtime.tenant.name, body)),
                    cleared,
                    "no-store".into(),
                )
            }
        }
    }
}

/// The tenant a hosted page is for, with its runtime; `Err` is the page to answer instead.
async fn tenant_runtime(latch: &Latch, tenant: &str) -> Result<Arc<TenantRuntime>, AuthorizeResponse> {
    let not_found = || AuthorizeResponse::NotFound(Html(error_page("Not found", "There is no such sign-in service.")));
    let tenant = TenantId::parse(tenant).map_err(|_| not_found())?;
    match latch.runtime(&tenant).await {
        Ok(runtime) => Ok(runtime),
        Err(Error::TenantNotFound) => Err(not_found()),
        Err(e) => Err(unavailable(&e)),
    }
}

/// The CSRF token of the browser's `latch_csrf` cookie, or a new one with
/// the `Set-Cookie` that gives it.
fn csrf_token(req: &Request, tenant: &TenantId, secure: bool) -> (String, Option<String>) {
    match cookie_value(req, CSRF_COOKIE).filter(|value| value.len() >= 32) {
        Some(existing) => (existing.to_owned(), None),
        None => {
            let fresh = random_token("").expose_secret().to_owned();
            let set = cookie(CSRF_COOKIE, &fresh, &format!("/t/{tenant}/oauth/"), None, "Strict", secure);
            (fresh, Some(set))
        }
    }
}

fn unavailable(error: &Error) -> AuthorizeResponse {
    tracing::error!(error = %error, "authorization failed");
    AuthorizeResponse::Unavailable(Html(error_page("Try again later", "The sign-in service cannot answer now.")))
}

/// A page or redirect, with the cookie to set (a new session's, else a new CSRF token's).
fn respond(outcome: Outcome, set_cookie: Option<String>, after_form: bool) -> AuthorizeResponse {
    match outcome {
        Outcome::Redirect(location) if after_form => AuthorizeResponse::SeeOther(location, set_cookie),
        Outcome::Redirect(location) => AuthorizeResponse::Found(location, set_cookie),
        Outcome::Page(html) => AuthorizeResponse::Page(Html(html), set_cookie, "no-store".into()),
    }
}

#[OpenApi(tag = "ApiTags::OAuth")]
impl AuthorizeApi {
    /// Authorization endpoint (OpenID Connect Core §3.1.2): `response_type=code`
    /// with PKCE `S256`. Answers with the sign-in page, or — for a browser
    /// already signed in here (single sign-on) — with a redirect carrying the code.
    #[oai(path = "/t/:tenant/oauth/authorize", method = "get", operation_id = "oauthAuthorize")]
    #[allow(clippy::too_many_arguments)] // one per standard parameter, for the explorer
    async fn authorize(
        &self,
        latch: Data<&Arc<Latch>>,
        req: &Request,
        tenant: Path<String>,
        /// `code`.
        response_type: Query<Option<String>>,
        /// A registered client.
        client_id: Query<Option<String>>,
        /// One of the client's redirect URIs, exactly.
        redirect_uri: Query<Option<String>>,
        /// Space-separated scopes (default: the client's).
        scope: Query<Option<String>>,
        /// Returned as it is.
        state: Query<Option<String>>,
        /// Put into the ID token.
        nonce: Query<Option<String>>,
        /// `BASE64URL(SHA256(code_verifier))`.
        code_challenge: Query<Option<String>>,
        /// `S256` (plain is refused).
        code_challenge_method: Query<Option<String>>,
        /// `none`, `login`, `consent`.
        prompt: Query<Option<String>>,
        /// Seconds: an older sign-in is asked again.
        max_age: Query<Option<String>>,
        /// The email to fill in.
        login_hint: Query<Option<String>>,
        /// `register` or `forgot`: another screen of the same request.
        screen: Query<Option<String>>,
    ) -> AuthorizeResponse {
        let request = AuthorizationRequest {
            response_type: response_type.0,
            client_id: client_id.0,
            redirect_uri: redirect_uri.0,
            scope: scope.0,
            state: state.0,
            nonce: nonce.0,
            code_challenge: code_challenge.0,
            code_challenge_method: code_challenge_method.0,
            prompt: prompt.0,
            max_age: max_age.0,
            login_hint: login_hint.0,
        };
        let step = match Self::step(&latch, req, &tenant, request).await {
            Ok(step) => step,
            Err(answer) => return answer,
        };
        match screen.0.as_deref() {
            Some("register") => return respond(Outcome::Page(step.register_page(None)), step.new_csrf, false),
            Some("forgot") => return respond(Outcome::Page(step.forgot_page(None)), step.new_csrf, false),
            _ => {}
        }
        let browser = match Self::browser(&latch, req, step.tenant()).await {
            Ok(browser) => browser,
            Err(e) => return unavailable(&e),
        };
        let now = latch.now();
        let fresh = browser.filter(|b| step.authorization.authentication_is_fresh(b.record.auth_time, now));
        let outcome = match fresh {
            Some(browser) => step.signed_in(&browser, false).await,
            None if step.authorization.prompt_none => Ok(step.error("login_required", "the user is not signed in")),
            None => Ok(Outcome::Page(step.login_page(None, None, None))),
        };
        match outcome {
            Ok(outcome) => respond(outcome, step.new_csrf, false),
            Err(e) => unavailable(&e),
        }
    }

    /// The hosted pages' forms: sign-in, second factor, consent, registration, reset.
    #[oai(path = "/t/:tenant/oauth/authorize", method = "post", operation_id = "oauthAuthorizeForm")]
    async fn authorize_form(
        &self,
        latch: Data<&Arc<Latch>>,
        req: &Request,
        tenant: Path<String>,
        body: Form<AuthorizeForm>,
    ) -> AuthorizeResponse {
        let Form(form) = body;
        let step = match Self::step(&latch, req, &tenant, form.request()).await {
            Ok(step) => step,
            Err(answer) => return answer,
        };
        let presented = form.csrf.as_deref().unwrap_or_default();
        if step.new_csrf.is_some() || !hashes_equal(&token_hash(presented), &token_hash(&step.csrf)) {
            let text =
                "This form has expired or was not sent by this site. Go back to the application and sign in again.";
            return AuthorizeResponse::BadRequest(Html(error_page("Form expired", text)));
        }
        let email = form.email.as_deref();
        let outcome: Result<(Outcome, Option<String>), Error> = match form.step.as_deref() {
            Some("login") => {
                let password = form.password.as_deref().unwrap_or_default();
                match latch.check_password(&step.runtime, email.unwrap_or_default(), password, None, &step.info).await {
                    Ok(authenticated) => Self::sign_in(&step, req, authenticated).await.map(|(o, c)| (o, Some(c))),
                    Err(Error::MfaRequired { mfa_token }) => {
                        Ok((Outcome::Page(step.otp_page(mfa_token.expose_secret(), None)), None))
                    }
                    Err(e) => step.login_failure(e, email).map(|o| (o, None)),
                }
            }
            Some("otp") => {
                let mfa_token = form.mfa_token.clone().unwrap_or_default();
                let otp = form.otp.clone().filter(|c| !c.trim().is_empty());
                let recovery = form.recovery_code.clone().filter(|c| !c.trim().is_empty());
                match SecondFactor::one_of(otp, recovery) {
                    None => {
                        Ok((Outcome::Page(step.otp_page(&mfa_token, Some("Enter a code, or a recovery code."))), None))
                    }
                    Some(factor) => {
                        match latch.check_second_factor(&step.runtime, &mfa_token, factor, &step.info).await {
                            Ok(authenticated) => {
                                Self::sign_in(&step, req, authenticated).await.map(|(o, c)| (o, Some(c)))
                            }
                            Err(Error::InvalidMfaCode) => Ok((
                                Outcome::Page(
                                    step.otp_page(&mfa_token, Some("The code is wrong or was already used.")),
                                ),
                                None,
                            )),
                            Err(e) => step.login_failure(e, None).map(|o| (o, None)),
                        }
                    }
                }
            }
            Some("consent") => match Self::browser(&latch, req, step.tenant()).await {
                Ok(Some(browser)) if form.decision.as_deref() == Some("allow") => {
                    let scope = latch.granted_scope(&step.runtime, &browser.user, &step.authorization);
                    match latch.grant_consent(&browser.user, &step.authorization.client.client_id, &scope).await {
                        Ok(user) => {
                            let browser = BrowserSession { user, ..browser };
                            step.signed_in(&browser, true).await.map(|o| (o, None))
                        }
                        Err(e) => Err(e),
                    }
                }
                Ok(Some(_)) => Ok((step.error("access_denied", "the user denied access"), None)),
                Ok(None) => Ok((Outcome::Page(step.login_page(Some("Sign in again to continue."), None, None)), None)),
                Err(e) => Err(e),
            },
            Some("register") => {
                let registration = Registration {
                    email: email.unwrap_or_default().to_owned(),
                    password: form.password.clone().unwrap_or_default(),
                    name: form.name.clone().filter(|n| !n.trim().is_empty()),
                };
                match latch.0.create_account(&step.runtime, registration).await {
                    Ok(NewAccount::SignedIn(authenticated)) => {
                        Self::sign_in(&step, req, *authenticated).await.map(|(o, c)| (o, Some(c)))
                    }
                    Ok(NewAccount::VerificationPending(_)) => {
                        let note = "Account created. Open the link we mailed you, then sign in.";
                        Ok((Outcome::Page(step.login_page(None, Some(note), email)), None))
                    }
                    Err(e) => {
                        let text = match &e {
                            Error::Store(_) | Error::Internal(_) | Error::KeyUnavailable => return unavailable(&e),
                            other => other.to_string(),
                        };
                        Ok((Outcome::Page(step.register_page(Some(&text))), None))
                    }
                }
            }
            Some("forgot") => {
                match latch.0.request_password_reset(step.tenant(), email.unwrap_or_default(), step.info.clone()).await
                {
                    Ok(()) => {
                        let note = "If this address has an account, a link to choose a new password is on its way.";
                        Ok((Outcome::Page(step.login_page(None, Some(note), email)), None))
                    }
                    Err(Error::InvalidEmail) => {
                        Ok((Outcome::Page(step.forgot_page(Some("That is not an email address."))), None))
                    }
                    Err(e) => Err(e),
                }
            }
            _ => Ok((Outcome::Page(step.login_page(None, None, None)), None)),
        };
        match outcome {
            Ok((outcome, set_cookie)) => respond(outcome, set_cookie, true),
            Err(e) => unavailable(&e),
        }
    }

    /// RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): ends the
    /// browser's sign-in and the sessions begun through it. With a valid
    /// `id_token_hint` it happens at once; otherwise the user confirms
    /// first. `post_logout_redirect_uri` must be registered for the client.
    #[oai(path = "/t/:tenant/oauth/logout", method = "get", operation_id = "oauthLogout")]
    #[allow(clippy::too_many_arguments)] // one per standard parameter, for the explorer
    async fn logout(
        &self,
        latch: Data<&Arc<Latch>>,
        req: &Request,
        tenant: Path<String>,
        /// An ID token this tenant issued to the client.
        id_token_hint: Query<Option<String>>,
        /// Where to send the browser afterwards (registered for the client).
        post_logout_redirect_uri: Query<Option<String>>,
        /// Returned with that redirect.
        state: Query<Option<String>>,
        /// The client, when there is no `id_token_hint`.
        client_id: Query<Option<String>>,
    ) -> AuthorizeResponse {
        let form = LogoutForm {
            id_token_hint: id_token_hint.0,
            post_logout_redirect_uri: post_logout_redirect_uri.0,
            state: state.0,
            client_id: client_id.0,
            csrf: None,
        };
        Self::end_session(&latch, req, &tenant, form, false).await
    }

    /// The logout confirmation's form.
    #[oai(path = "/t/:tenant/oauth/logout", method = "post", operation_id = "oauthLogoutForm")]
    async fn logout_form(
        &self,
        latch: Data<&Arc<Latch>>,
        req: &Request,
        tenant: Path<String>,
        body: Form<LogoutForm>,
    ) -> AuthorizeResponse {
        Self::end_session(&latch, req, &tenant, body.0, true).await
    }

    /// The hosted pages' stylesheet.
    #[oai(path = "/assets/latch.css", method = "get", hidden)]
    async fn stylesheet(&self) -> Stylesheet {
        Stylesheet::Css(PlainText(pages::STYLESHEET), "public, max-age=3600".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_keep_the_redirect_uris_own_query() {
        assert_eq!(with_params("https://a.example/cb", &[("code", "x y".into())]), "https://a.example/cb?code=x+y");
        assert_eq!(with_params("https://a.example/cb?t=1", &[("code", "c".into())]), "https://a.example/cb?t=1&code=c");
    }

    #[test]
    fn cookies_are_http_only_and_secure_over_https() {
        let set = cookie(SESSION_COOKIE, "v", "/t/acme/", Some(60), "Lax", true);
        assert_eq!(set, "latch_session=v; Path=/t/acme/; HttpOnly; SameSite=Lax; Max-Age=60; Secure");
        assert!(!cookie(CSRF_COOKIE, "v", "/", None, "Strict", false).contains("Secure"));
    }
}
