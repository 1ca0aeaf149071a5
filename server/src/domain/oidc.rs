//! OpenID Connect: authorization requests, the browser session of the hosted
//! login (single sign-on), consent, authorization codes with PKCE, ID
//! tokens, userinfo and RP-initiated logout.
//!
//! The HTTP side (pages, cookies, redirects) is `api::authorize`; this
//! module decides. Every password and second-factor check goes through the
//! same `check_password` / `check_second_factor` as latch's other logins,
//! so lockout, rate limits and the second factor hold here too.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::accounts::Authenticated;
use super::clients::redirect_uri_matches;
use super::sessions::{ForClient, allowed_scopes};
use super::{ClientInfo, Error, Latch, Principal, Result, TenantId, TenantRuntime, TokenPair};
use crate::crypto::{random_token, token_hash};
use crate::store::{
    AuthorizationGrant, BrowserSessionRecord, Change, ClientRecord, OneTimeRecord, SessionRecord, UserRecord,
};

/// An authorization code works this long.
pub const CODE_TTL_SECONDS: i64 = 60;
/// A browser session (single sign-on) lasts this long, whatever happens.
pub const BROWSER_SESSION_SECONDS: i64 = 12 * 3600;
const CODE_PURPOSE: &str = "authorization_code";
const USED_CODE_PURPOSE: &str = "used_authorization_code";
const CODE_PREFIX: &str = "latch_ac_";
const BROWSER_SESSION_PREFIX: &str = "latch_bs_";
/// The sessions a browser session remembers for its logout.
const MAX_BROWSER_SESSIONS: usize = 64;

/// The parameters of an authorization request, as they arrived.
#[derive(Debug, Clone, Default)]
pub struct AuthorizationRequest {
    /// Must be `code`.
    pub response_type: Option<String>,
    /// The client.
    pub client_id: Option<String>,
    /// One of the client's redirect URIs.
    pub redirect_uri: Option<String>,
    /// Space-separated scopes.
    pub scope: Option<String>,
    /// Opaque to latch, returned with the answer.
    pub state: Option<String>,
    /// Goes into the ID token.
    pub nonce: Option<String>,
    /// PKCE (RFC 7636).
    pub code_challenge: Option<String>,
    /// Must be `S256`.
    pub code_challenge_method: Option<String>,
    /// `none`, `login`, `consent` (space-separated).
    pub prompt: Option<String>,
    /// Seconds since the last authentication beyond which it is asked again.
    pub max_age: Option<String>,
    /// The email to put into the login form.
    pub login_hint: Option<String>,
}

/// Why an authorization request fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizationError {
    /// The client or the redirect URI cannot be trusted: shown to the user
    /// on a page, never redirected (RFC 6749 §4.1.2.1).
    Page(String),
    /// Everything else: sent back to the client's redirect URI.
    Redirect {
        /// Where.
        redirect_uri: String,
        /// The OAuth error code.
        error: &'static str,
        /// What went wrong.
        description: String,
        /// The request's `state`.
        state: Option<String>,
    },
}

/// A checked authorization request.
#[derive(Debug, Clone)]
pub struct Authorization {
    /// The client.
    pub client: ClientRecord,
    /// Where the answer goes.
    pub redirect_uri: String,
    /// The scopes asked for (the client's, when the request named none).
    pub scope: Vec<String>,
    /// Returned with the answer.
    pub state: Option<String>,
    /// For the ID token.
    pub nonce: Option<String>,
    /// The PKCE challenge (S256).
    pub code_challenge: String,
    /// `prompt=none`: never show a page.
    pub prompt_none: bool,
    /// `prompt=login`: authenticate again.
    pub prompt_login: bool,
    /// `prompt=consent`: ask again.
    pub prompt_consent: bool,
    /// Authenticate again if the last authentication is older.
    pub max_age: Option<i64>,
    /// For the login form.
    pub login_hint: Option<String>,
}

impl Authorization {
    /// An error answer for this request's redirect URI.
    pub fn error(&self, error: &'static str, description: impl Into<String>) -> AuthorizationError {
        AuthorizationError::Redirect {
            redirect_uri: self.redirect_uri.clone(),
            error,
            description: description.into(),
            state: self.state.clone(),
        }
    }

    /// Whether a sign-in at `auth_time` is still good enough at `now`
    /// (`max_age=0` is `prompt=login`, OpenID Connect Core §3.1.2.1).
    pub fn authentication_is_fresh(&self, auth_time: i64, now: i64) -> bool {
        !self.prompt_login && self.max_age.is_none_or(|max_age| max_age > 0 && now - auth_time <= max_age)
    }
}

/// A PKCE verifier (RFC 7636 §4.1): 43-128 unreserved characters.
fn is_code_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len()) && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// `BASE64URL(SHA256(verifier))`, the S256 challenge of a verifier.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// What a user signed in through the hosted login has (from the browser
/// session cookie).
#[derive(Debug, Clone)]
pub struct BrowserSession {
    /// SHA-256 of the cookie.
    pub hash: [u8; 32],
    /// The stored record.
    pub record: BrowserSessionRecord,
    /// The user as stored now.
    pub user: UserRecord,
}

/// The userinfo claims a scope allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Userinfo {
    /// The user id.
    pub sub: String,
    /// With `email`.
    pub email: Option<String>,
    /// With `email`.
    pub email_verified: Option<bool>,
    /// With `profile`, when the user has one.
    pub name: Option<String>,
}

/// The claims of an ID token (OpenID Connect Core §2, §5.1).
#[derive(Debug, Serialize)]
struct IdTokenClaims<'a> {
    iss: &'a str,
    sub: String,
    aud: &'a str,
    azp: &'a str,
    exp: i64,
    iat: i64,
    auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    amr: &'a [String],
    sid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

/// The user's claims that `scope` allows, for ID tokens and userinfo:
/// `email` and `email_verified` with `email`, `name` with `profile`.
fn profile_claims<'a>(user: &'a UserRecord, scope: &str) -> (Option<&'a str>, Option<bool>, Option<&'a str>) {
    let has = |wanted: &str| scope.split(' ').any(|s| s == wanted);
    let email = has("email").then_some(user.email.as_str());
    let verified = has("email").then_some(user.email_verified);
    let name = if has("profile") { user.name.as_deref() } else { None };
    (email, verified, name)
}

impl Latch {
    /// Checks an authorization request against the tenant's clients.
    pub async fn check_authorization(
        &self,
        tenant: &TenantId,
        request: AuthorizationRequest,
    ) -> std::result::Result<Authorization, AuthorizationError> {
        let page = |text: &str| AuthorizationError::Page(text.to_owned());
        let Some(client_id) = request.client_id.as_deref().filter(|id| !id.is_empty()) else {
            return Err(page("The request names no client (client_id)."));
        };
        let client = match self.find_client(tenant, client_id).await {
            Ok(client) => client,
            Err(Error::ClientNotFound | Error::TenantNotFound) => {
                return Err(page("The application that sent you here is not registered with this sign-in service."));
            }
            Err(e) => return Err(page(&format!("The sign-in service cannot answer now ({e})."))),
        };
        let redirect_uri = match request.redirect_uri.as_deref() {
            Some(uri) if redirect_uri_matches(&client, &client.settings.redirect_uris, uri) => uri.to_owned(),
            Some(_) => return Err(page("The application asked to send you to an address it has not registered.")),
            None if client.settings.redirect_uris.len() == 1 => client.settings.redirect_uris[0].clone(),
            None => return Err(page("The request names no redirect_uri, and the application has several.")),
        };
        let mut checked = Authorization {
            redirect_uri,
            scope: Vec::new(),
            state: request.state.filter(|s| !s.is_empty()),
            nonce: request.nonce.filter(|n| !n.is_empty()),
            code_challenge: String::new(),
            prompt_none: false,
            prompt_login: false,
            prompt_consent: false,
            max_age: None,
            login_hint: request.login_hint.filter(|h| !h.is_empty()),
            client,
        };
        if request.response_type.as_deref() != Some("code") {
            return Err(checked.error("unsupported_response_type", "response_type must be `code`"));
        }
        if !checked.client.settings.grant_types.iter().any(|g| g == "authorization_code") {
            return Err(checked.error("unauthorized_client", "this client may not use the authorization code flow"));
        }
        match (request.code_challenge.as_deref(), request.code_challenge_method.as_deref()) {
            (Some(challenge), Some("S256")) if challenge.len() == 43 && URL_SAFE_NO_PAD.decode(challenge).is_ok() => {
                checked.code_challenge = challenge.to_owned();
            }
            (Some(_), Some("S256")) => {
                return Err(checked.error("invalid_request", "code_challenge is not an S256 challenge"));
            }
            (Some(_), _) => {
                return Err(checked.error("invalid_request", "code_challenge_method must be S256 (plain is refused)"));
            }
            (None, _) => {
                return Err(checked.error("invalid_request", "PKCE is required: send code_challenge with S256"));
            }
        }
        let requested = request.scope.unwrap_or_default();
        let mut scope: Vec<String> = requested.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect();
        if scope.is_empty() {
            scope = checked.client.settings.scopes.clone();
        }
        if let Some(refused) = scope.iter().find(|s| !checked.client.settings.scopes.contains(s)) {
            return Err(checked.error("invalid_scope", format!("the client may not ask for `{refused}`")));
        }
        scope.sort_unstable();
        scope.dedup();
        checked.scope = scope;
        for prompt in request.prompt.as_deref().unwrap_or_default().split(' ').filter(|p| !p.is_empty()) {
            match prompt {
                "none" => checked.prompt_none = true,
                "login" => checked.prompt_login = true,
                "consent" => checked.prompt_consent = true,
                other => return Err(checked.error("invalid_request", format!("prompt `{other}` is not supported"))),
            }
        }
        if checked.prompt_none && (checked.prompt_login || checked.prompt_consent) {
            return Err(checked.error("invalid_request", "prompt=none cannot be combined with other values"));
        }
        if let Some(max_age) = request.max_age.filter(|m| !m.is_empty()) {
            let Ok(max_age) = max_age.parse::<u32>() else {
                return Err(checked.error("invalid_request", "max_age must be a number of seconds"));
            };
            checked.max_age = Some(max_age.into());
        }
        Ok(checked)
    }

    /// The scopes to grant `user` for `authorization`: those asked for that
    /// the user's roles allow.
    pub fn granted_scope(&self, runtime: &TenantRuntime, user: &UserRecord, authorization: &Authorization) -> String {
        let allowed = allowed_scopes(runtime, user);
        let granted: Vec<&str> =
            authorization.scope.iter().map(String::as_str).filter(|s| allowed.contains(s)).collect();
        granted.join(" ")
    }

    /// Whether `user` must still consent to `scope` for the client.
    pub fn needs_consent(&self, user: &UserRecord, authorization: &Authorization, scope: &str) -> bool {
        if authorization.client.settings.first_party && !authorization.prompt_consent {
            return false;
        }
        let granted = user.consents.get(&authorization.client.client_id);
        authorization.prompt_consent
            || scope.split(' ').filter(|s| !s.is_empty()).any(|s| granted.is_none_or(|g| !g.iter().any(|x| x == s)))
    }

    /// Remembers that the user consented to `scope` for the client.
    pub async fn grant_consent(&self, user: &UserRecord, client_id: &str, scope: &str) -> Result<UserRecord> {
        let (client_id, scope, now) = (client_id.to_owned(), scope.to_owned(), self.now());
        let (user, _) = self
            .change_user(&user.tenant, user.id, move |user| {
                let granted = user.consents.entry(client_id.clone()).or_default();
                granted.extend(scope.split(' ').filter(|s| !s.is_empty()).map(str::to_owned));
                granted.sort_unstable();
                granted.dedup();
                user.updated_at = now;
                Change::Write
            })
            .await?;
        Ok(user)
    }

    /// Starts a browser session for who just signed in at the hosted login;
    /// returns the cookie value (only its hash is stored). A sign-in again in
    /// a browser that has one (`prompt=login`, `max_age`) replaces it with a
    /// new cookie, so a cookie planted before sign-in is worth nothing; the
    /// sessions the old one started move over if it is the same user, or end
    /// if another user signs in, so a logout still ends them all.
    pub async fn start_browser_session(
        &self,
        tenant: &TenantId,
        authenticated: &Authenticated,
        previous: Option<&str>,
    ) -> Result<SecretString> {
        let cookie = random_token(BROWSER_SESSION_PREFIX);
        let now = self.now();
        let mut record = BrowserSessionRecord {
            user_id: authenticated.user.id,
            auth_time: authenticated.auth_time,
            amr: authenticated.amr.clone(),
            created_at: now,
            expires_at: now + BROWSER_SESSION_SECONDS,
            sessions: Vec::new(),
            generation: authenticated.user.reset_generation,
        };
        let (tenant, hash) = (tenant.clone(), token_hash(cookie.expose_secret()));
        let previous = previous.map(token_hash);
        self.store
            .write(move |store| {
                let old = match previous {
                    Some(old) => store.delete_browser_session(&tenant, &old)?,
                    None => None,
                };
                if let Some(old) = old {
                    if old.user_id == record.user_id {
                        record.sessions = old.sessions;
                    } else {
                        for session in old.sessions {
                            store.revoke_session(&tenant, session, now)?;
                        }
                    }
                }
                store.put_browser_session(&tenant, &hash, &record)
            })
            .await?;
        Ok(cookie)
    }

    /// The browser session a cookie stands for, if it is live, its user may
    /// still sign in, and their password has not changed (nor been reset,
    /// nor the account disabled) since.
    pub async fn browser_session(&self, tenant: &TenantId, cookie: &str) -> Result<Option<BrowserSession>> {
        let (owned, hash, now) = (tenant.clone(), token_hash(cookie), self.now());
        let found = self
            .store
            .read(move |store| {
                let Some(record) = store.get_browser_session(&owned, &hash)? else { return Ok(None) };
                Ok(store.get_user(&owned, record.user_id)?.map(|user| (record, user)))
            })
            .await?;
        Ok(found
            .filter(|(record, user)| {
                record.expires_at > now && !user.disabled && user.reset_generation == record.generation
            })
            .map(|(record, user)| BrowserSession { hash, record, user }))
    }

    /// Ends a browser session and every session started through it.
    pub async fn end_browser_session(&self, tenant: &TenantId, hash: [u8; 32]) -> Result<()> {
        let (owned, now) = (tenant.clone(), self.now());
        self.store
            .write(move |store| {
                if let Some(record) = store.delete_browser_session(&owned, &hash)? {
                    for session in record.sessions {
                        store.revoke_session(&owned, session, now)?;
                    }
                }
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// Issues an authorization code for `authorization`, signed in through
    /// `browser` (its session) at `auth_time` with `amr`.
    pub async fn issue_code(
        &self,
        authorization: &Authorization,
        browser: &BrowserSession,
        scope: String,
    ) -> Result<SecretString> {
        let code = random_token(CODE_PREFIX);
        let grant = AuthorizationGrant {
            client_id: authorization.client.client_id.clone(),
            redirect_uri: authorization.redirect_uri.clone(),
            code_challenge: authorization.code_challenge.clone(),
            nonce: authorization.nonce.clone(),
            scope,
            auth_time: browser.record.auth_time,
            amr: browser.record.amr.clone(),
            browser_session: Some(hex::encode(browser.hash)),
        };
        let record = OneTimeRecord {
            authorization: Some(grant),
            ..OneTimeRecord::new(CODE_PURPOSE, browser.user.id, self.now() + CODE_TTL_SECONDS)
        };
        let (tenant, hash) = (authorization.client.tenant.clone(), token_hash(code.expose_secret()));
        self.store.write(move |store| store.put_one_time(&tenant, &hash, &record)).await?;
        Ok(code)
    }

    /// Exchanges an authorization code at the token endpoint (RFC 6749
    /// §4.1.3, RFC 7636 §4.6). The code is taken once; a second use finds
    /// its trace and ends the session the first use started.
    pub async fn exchange_code(
        &self,
        client: &ClientRecord,
        code: &str,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
        info: ClientInfo,
    ) -> Result<TokenPair> {
        let runtime = self.runtime(&client.tenant).await?;
        let (tenant, hash, now) = (client.tenant.clone(), token_hash(code), self.now());
        let taken = self
            .store
            .write(move |store| {
                let Some(record) = store.take_one_time(&tenant, &hash, CODE_PURPOSE, now)? else {
                    // Used before: end what its first use started.
                    if let Some(used) = store.take_one_time(&tenant, &hash, USED_CODE_PURPOSE, now)?
                        && let Some(session) = used.session_id
                    {
                        store.revoke_session(&tenant, session, now)?;
                        return Ok(Err(Error::AuthorizationCodeReused));
                    }
                    return Ok(Err(Error::InvalidGrant("the code is unknown, used or expired")));
                };
                // Its trace, until it would have expired anyway (and a while after).
                let trace = OneTimeRecord::new(USED_CODE_PURPOSE, record.user_id, record.expires_at + 3600);
                store.put_one_time(&tenant, &hash, &trace)?;
                Ok(Ok(record))
            })
            .await??;
        let Some(grant) = taken.authorization.clone() else {
            return Err(Error::InvalidGrant("the code is unknown, used or expired"));
        };
        if grant.client_id != client.client_id {
            return Err(Error::InvalidGrant("the code was issued to another client"));
        }
        if redirect_uri != Some(grant.redirect_uri.as_str()) {
            return Err(Error::InvalidGrant("redirect_uri differs from the authorization request's"));
        }
        let verifier = code_verifier
            .filter(|v| is_code_verifier(v))
            .ok_or(Error::InvalidGrant("code_verifier is missing or malformed"))?;
        if !crate::crypto::hashes_equal(&token_hash(&s256(verifier)), &token_hash(&grant.code_challenge)) {
            return Err(Error::InvalidGrant("code_verifier does not match the code_challenge"));
        }
        let user =
            self.user(&client.tenant, taken.user_id).await.map_err(|_| Error::InvalidGrant("the user is gone"))?;
        if user.disabled {
            return Err(Error::UserDisabled);
        }
        let scope = {
            let allowed = allowed_scopes(&runtime, &user);
            grant.scope.split(' ').filter(|s| allowed.contains(s)).collect::<Vec<_>>().join(" ")
        };
        let authenticated = Authenticated { user, scope, auth_time: grant.auth_time, amr: grant.amr.clone() };
        let for_client = ForClient { client, nonce: grant.nonce.as_deref() };
        let pair = self.start_session(&runtime, authenticated, info, Some(for_client)).await?;
        let (tenant, session) = (client.tenant.clone(), pair.session_id);
        let browser = grant
            .browser_session
            .as_deref()
            .and_then(|h| hex::decode(h).ok())
            .and_then(|h| <[u8; 32]>::try_from(h).ok());
        self.store
            .write(move |store| {
                let trace = OneTimeRecord {
                    session_id: Some(session),
                    ..OneTimeRecord::new(USED_CODE_PURPOSE, taken.user_id, taken.expires_at + 3600)
                };
                store.put_one_time(&tenant, &hash, &trace)?;
                if let Some(browser) = browser {
                    store.update_browser_session(&tenant, &browser, &mut |record| {
                        record.sessions.push(session);
                        let excess = record.sessions.len().saturating_sub(MAX_BROWSER_SESSIONS);
                        record.sessions.drain(..excess);
                        Change::Write
                    })?;
                }
                Ok(())
            })
            .await?;
        Ok(pair)
    }

    /// Signs the ID token of a client's session.
    pub(super) fn id_token(
        &self,
        runtime: &TenantRuntime,
        user: &UserRecord,
        session: &SessionRecord,
        scope: &str,
        for_client: ForClient<'_>,
        now: i64,
    ) -> Result<String> {
        let (email, email_verified, name) = profile_claims(user, scope);
        let client_id = for_client.client.client_id.as_str();
        let claims = IdTokenClaims {
            iss: &runtime.issuer,
            sub: user.id.to_string(),
            aud: client_id,
            azp: client_id,
            exp: now + runtime.tenant.settings.access_token_ttl as i64,
            iat: now,
            auth_time: session.auth_time.unwrap_or(session.created_at),
            nonce: for_client.nonce,
            amr: &session.amr,
            sid: session.id.to_string(),
            email,
            email_verified,
            name,
        };
        runtime.signer.sign_as(&claims, "JWT").map_err(|e| Error::Internal(format!("signing failed: {e}")))
    }

    /// The userinfo claims (OpenID Connect Core §5.3) of an access token's
    /// caller, as the token's scope allows; the token must carry `openid`.
    pub fn userinfo(&self, principal: &Principal) -> Result<Userinfo> {
        let scope = &principal.claims.scope;
        if !scope.split(' ').any(|s| s == "openid") {
            return Err(Error::InsufficientScope("openid"));
        }
        let (email, email_verified, name) = profile_claims(&principal.user, scope);
        Ok(Userinfo {
            sub: principal.user.id.to_string(),
            email: email.map(str::to_owned),
            email_verified,
            name: name.map(str::to_owned),
        })
    }

    /// The client of an ID token this server issued (for RP-initiated
    /// logout's `id_token_hint`): its signature and issuer are checked,
    /// its expiry is not (the hint may be old).
    pub async fn id_token_client(&self, tenant: &TenantId, id_token: &str) -> Result<(String, Uuid)> {
        let runtime = self.runtime(tenant).await?;
        let decoded = latch_shared::decode_unverified(id_token).map_err(Error::InvalidToken)?;
        let aud = decoded.payload.get("aud").and_then(|a| a.as_str()).map(str::to_owned);
        let sub = decoded.payload.get("sub").and_then(|s| s.as_str()).and_then(|s| Uuid::parse_str(s).ok());
        let (Some(aud), Some(sub)) = (aud, sub) else {
            return Err(Error::InvalidToken(latch_shared::Error::MissingClaim("aud")));
        };
        // Every rule but expiry: a hint may be an old ID token (RP-Initiated
        // Logout 1.0 §2), so it is checked as of a moment it was valid; a
        // forged `exp` fails the signature anyway.
        let exp = decoded.payload.get("exp").and_then(|e| e.as_i64()).unwrap_or(0);
        let validation = latch_shared::Validation::new(runtime.issuer.clone(), aud.clone())
            .map_err(|e| Error::Internal(e.to_string()))?
            .id_tokens();
        let at = self.now().min(exp.saturating_sub(1));
        latch_shared::verify(id_token, &runtime.keys, &validation, at).map_err(Error::InvalidToken)?;
        Ok((aud, sub))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_rfc_7636_appendix_b() {
        assert_eq!(s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn code_verifiers_are_43_to_128_unreserved_characters() {
        assert!(is_code_verifier(&"a".repeat(43)));
        assert!(is_code_verifier(&"A-._~9".repeat(20)));
        assert!(!is_code_verifier(&"a".repeat(42)));
        assert!(!is_code_verifier(&"a".repeat(129)));
        assert!(!is_code_verifier(&format!("{}+", "a".repeat(43))));
    }
}
