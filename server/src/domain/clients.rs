//! OAuth clients: registration by a tenant's admins, the rules a client's
//! settings follow, redirect-URI matching, and client authentication at the
//! token endpoint.

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use super::events::{Event, EventKind};
use super::patch::{Patch, Rule, Ruled};
use super::settings::is_scope_token;
use super::{Actor, DisplayName, Error, Latch, Result, TenantId};
use crate::crypto::{hashes_equal, random_token, token_hash};
use crate::store::{Change, ClientRecord, ClientSettings, ClientType, StoreError};

/// The grant types a client may be allowed.
pub const GRANT_TYPES: &[&str] = &["authorization_code", "refresh_token", "client_credentials", "password"];

/// Prefix of client secrets (so a leaked one is recognisable).
const SECRET_PREFIX: &str = "latch_cs_";
const MAX_URIS: usize = 20;

/// A client to register.
#[derive(Debug, Clone)]
pub struct NewClient {
    /// The id; generated when `None`.
    pub client_id: Option<String>,
    /// Public or confidential.
    pub client_type: ClientType,
    /// Settings over the defaults (a name is required).
    pub settings: ClientChanges,
}

/// Changes to a client's settings, by serde name.
pub type ClientChanges = Patch<ClientSettings>;

/// Changes from a JSON object of client settings; `null` leaves a field as
/// it is. Unknown keys are refused.
pub fn client_changes(object: Map<String, Value>) -> Result<ClientChanges> {
    let mut changes = ClientChanges::default();
    for (key, value) in object {
        changes.set(&key, value)?;
    }
    Ok(changes)
}

/// The names of a client's settings, as the API and the CLI spell them.
pub fn client_setting_names() -> Vec<String> {
    super::patch::field_names::<ClientSettings>()
}

impl Ruled for ClientSettings {
    const OF: &'static str = "client";
    const RULES: &'static [Rule<ClientSettings>] = CLIENT_RULES;

    fn normalize(&mut self) {
        for list in [&mut self.grant_types, &mut self.scopes] {
            list.sort_unstable();
            list.dedup();
        }
    }
}

const CLIENT_RULES: &[Rule<ClientSettings>] = &[
    Rule {
        setting: "name",
        expected: "1-200 characters without control characters",
        holds: |c| DisplayName::parse(&c.name).is_ok(),
        range: None,
    },
    Rule {
        setting: "redirect_uris",
        expected: "at most 20 absolute URIs without a fragment or `*`: https, http on a loopback host, \
                   or a private-use scheme with a dot (RFC 8252); at least one for authorization_code",
        holds: |c| {
            valid_uris(&c.redirect_uris)
                && (!c.redirect_uris.is_empty() || !c.grant_types.iter().any(|g| g == "authorization_code"))
        },
        range: None,
    },
    Rule {
        setting: "post_logout_redirect_uris",
        expected: "at most 20 absolute URIs, as for redirect_uris",
        holds: |c| valid_uris(&c.post_logout_redirect_uris),
        range: None,
    },
    Rule {
        setting: "grant_types",
        expected: "one or more of authorization_code, refresh_token, client_credentials, password",
        holds: |c| !c.grant_types.is_empty() && c.grant_types.iter().all(|g| GRANT_TYPES.contains(&g.as_str())),
        range: None,
    },
    Rule {
        setting: "scopes",
        expected: "at most 64 scope tokens",
        holds: |c| c.scopes.len() <= 64 && c.scopes.iter().all(|s| is_scope_token(s)),
        range: None,
    },
    Rule { setting: "first_party", expected: "true or false", holds: |_| true, range: None },
    Rule {
        setting: "audience",
        expected: "a string of at most 512 bytes without control characters (empty: only the tenant's)",
        holds: |c| c.audience.len() <= 512 && !c.audience.chars().any(char::is_control),
        range: None,
    },
];

fn valid_uris(uris: &[String]) -> bool {
    uris.len() <= MAX_URIS && uris.iter().all(|uri| is_redirect_uri(uri))
}

/// A URI a client may register for redirects: absolute, at most 2048 bytes,
/// no fragment, no wildcard; `https`, `http` only on a loopback host, or a
/// private-use scheme (`com.example.app:/callback`, RFC 8252 §7.1).
pub fn is_redirect_uri(uri: &str) -> bool {
    let Ok(parsed) = url::Url::parse(uri) else { return false };
    let scheme_ok = match parsed.scheme() {
        "https" => parsed.host().is_some(),
        "http" => is_loopback(&parsed),
        scheme => scheme.contains('.'),
    };
    uri.len() <= 2048 && parsed.fragment().is_none() && !uri.contains('*') && scheme_ok
}

fn is_loopback(uri: &url::Url) -> bool {
    match uri.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    }
}

/// Whether `requested` is one of the client's registered URIs: exactly, or,
/// for a public (native) client, a loopback IP literal with any port
/// (RFC 8252 §7.3: the app listens on a port the OS picks).
pub fn redirect_uri_matches(client: &ClientRecord, registered: &[String], requested: &str) -> bool {
    if registered.iter().any(|uri| uri == requested) {
        return true;
    }
    if client.client_type != ClientType::Public {
        return false;
    }
    let Ok(mut wanted) = url::Url::parse(requested) else { return false };
    let loopback_ip = matches!(wanted.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_))) && is_loopback(&wanted);
    if wanted.scheme() != "http" || !loopback_ip || wanted.set_port(None).is_err() {
        return false;
    }
    registered
        .iter()
        .filter_map(|uri| url::Url::parse(uri).ok())
        .any(|mut uri| uri.set_port(None).is_ok() && uri == wanted)
}

/// A client id: 1-128 characters of `A-Z a-z 0-9 . _ ~ -` (it appears in URLs).
fn is_client_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b))
}

/// Checks what the settings cannot check alone: the grant types a client's type allows.
fn check_type(client: &ClientRecord) -> Result<()> {
    let confidential_only = client.client_type == ClientType::Public
        && client.settings.grant_types.iter().any(|g| g == "client_credentials");
    if confidential_only {
        return Err(super::InvalidSetting {
            of: "client",
            setting: "grant_types".into(),
            expected: "client_credentials only for confidential clients".into(),
        }
        .into());
    }
    Ok(())
}

/// An access token issued to a client for itself.
#[derive(Debug, Clone)]
pub struct ClientToken {
    /// The signed access token.
    pub access_token: String,
    /// Its lifetime in seconds.
    pub expires_in: u32,
    /// Its scopes.
    pub scope: String,
}

/// How a client presented itself at the token endpoint.
#[derive(Debug, Clone, Default)]
pub struct ClientCredentials {
    /// `client_id` from Basic auth or the form.
    pub client_id: Option<String>,
    /// The secret, from Basic auth (`client_secret_basic`) or the form (`client_secret_post`).
    pub client_secret: Option<String>,
}

impl Latch {
    /// Registers a client. A confidential client's secret is returned once
    /// and only its hash is kept.
    pub async fn create_client(&self, actor: &Actor, new: NewClient) -> Result<(ClientRecord, Option<SecretString>)> {
        let tenant = actor.tenant().clone();
        self.runtime(&tenant).await?;
        let client_id = match new.client_id {
            Some(id) if is_client_id(&id) => id,
            Some(_) => {
                return Err(super::InvalidSetting {
                    of: "client",
                    setting: "client_id".into(),
                    expected: "1-128 characters of A-Z, a-z, 0-9, '.', '_', '~' and '-'".into(),
                }
                .into());
            }
            None => hex::encode(&token_hash(random_token("").expose_secret())[..10]),
        };
        let secret = (new.client_type == ClientType::Confidential).then(|| random_token(SECRET_PREFIX));
        let now = self.now();
        let client = ClientRecord {
            tenant: tenant.clone(),
            client_id,
            client_type: new.client_type,
            secret_sha256: secret.as_ref().map(|s| hex::encode(token_hash(s.expose_secret()))),
            created_at: now,
            updated_at: now,
            settings: new.settings.apply(&ClientSettings::default())?,
        };
        check_type(&client)?;
        let stored = client.clone();
        self.store.write(move |store| store.create_client(&stored)).await.map_err(|e| match e {
            StoreError::Conflict => Error::ClientExists,
            other => other.into(),
        })?;
        let event = Event::new(EventKind::ClientCreated).actor(actor.name()).subject(&client.client_id);
        self.record(&tenant, event).await;
        Ok((client, secret))
    }

    /// The tenant's clients, by id.
    pub async fn clients(&self, actor: &Actor) -> Result<Vec<ClientRecord>> {
        let tenant = actor.tenant().clone();
        self.runtime(&tenant).await?;
        Ok(self.store.run(move |store| store.list_clients(&tenant)).await?)
    }

    /// One client of the actor's tenant.
    pub async fn client(&self, actor: &Actor, client_id: &str) -> Result<ClientRecord> {
        self.find_client(actor.tenant(), client_id).await
    }

    /// A client by id, for the OAuth endpoints.
    pub(crate) async fn find_client(&self, tenant: &TenantId, client_id: &str) -> Result<ClientRecord> {
        let (tenant, id) = (tenant.clone(), client_id.to_owned());
        self.store.run(move |store| store.get_client(&tenant, &id)).await?.ok_or(Error::ClientNotFound)
    }

    /// Changes a client's settings, applied to the stored client.
    pub async fn update_client(&self, actor: &Actor, client_id: &str, changes: ClientChanges) -> Result<ClientRecord> {
        let (tenant, id, now) = (actor.tenant().clone(), client_id.to_owned(), self.now());
        let (client, refused) = self
            .store
            .write(move |store| {
                let mut refused = None;
                let client = store.update_client(&tenant, &id, &mut |stored| {
                    super::patch::checked(stored, &mut refused, |stored| {
                        let settings = changes.apply(&stored.settings)?;
                        let changed = ClientRecord { settings, updated_at: now, ..stored.clone() };
                        check_type(&changed).map(|()| changed)
                    })
                })?;
                Ok((client, refused))
            })
            .await?;
        if let Some(refused) = refused {
            return Err(refused);
        }
        let client = client.ok_or(Error::ClientNotFound)?;
        let event = Event::new(EventKind::ClientUpdated).actor(actor.name()).subject(client_id);
        self.record(actor.tenant(), event).await;
        Ok(client)
    }

    /// Replaces a confidential client's secret; the old one stops working at once.
    pub async fn new_client_secret(&self, actor: &Actor, client_id: &str) -> Result<SecretString> {
        let secret = random_token(SECRET_PREFIX);
        let hash = hex::encode(token_hash(secret.expose_secret()));
        let (tenant, id, now) = (actor.tenant().clone(), client_id.to_owned(), self.now());
        let client = self
            .store
            .write(move |store| {
                store.update_client(&tenant, &id, &mut |client| {
                    if client.client_type != ClientType::Confidential {
                        return Change::Keep;
                    }
                    client.secret_sha256 = Some(hash.clone());
                    client.updated_at = now;
                    Change::Write
                })
            })
            .await?
            .ok_or(Error::ClientNotFound)?;
        if client.client_type != ClientType::Confidential {
            return Err(Error::PublicClientHasNoSecret);
        }
        let event = Event::new(EventKind::ClientSecretRotated).actor(actor.name()).subject(client_id);
        self.record(actor.tenant(), event).await;
        Ok(secret)
    }

    /// Removes a client; its sessions' refresh tokens stop working.
    pub async fn delete_client(&self, actor: &Actor, client_id: &str) -> Result<()> {
        let (tenant, id) = (actor.tenant().clone(), client_id.to_owned());
        if !self.store.write(move |store| store.delete_client(&tenant, &id)).await? {
            return Err(Error::ClientNotFound);
        }
        let event = Event::new(EventKind::ClientDeleted).actor(actor.name()).subject(client_id);
        self.record(actor.tenant(), event).await;
        Ok(())
    }

    /// The `demo` tenant's own clients, first-party and public, pointed at
    /// this server: `latch-demo` for the web demo (`/demo/`) and
    /// `latch-explorer` for the API explorer (`/docs/oauth-receiver.html`).
    /// Created when missing, their redirect URIs updated when the public URL
    /// changed; nothing happens without a `demo` tenant.
    pub async fn sync_demo_clients(&self) -> Result<()> {
        let tenant = TenantId::parse("demo")?;
        match self.runtime(&tenant).await {
            Err(Error::TenantNotFound) => return Ok(()),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        let actor = Actor::operator(super::Operator::system(), tenant.clone());
        let base = self.public_url().to_owned();
        for (client_id, name, redirect, logout) in [
            ("latch-demo", "latch web demo", format!("{base}/demo/"), vec![format!("{base}/demo/")]),
            ("latch-explorer", "latch API explorer", format!("{base}/docs/oauth-receiver.html"), Vec::new()),
        ] {
            let mut changes = ClientChanges::default();
            changes.set("redirect_uris", vec![redirect.clone()].into())?;
            changes.set("post_logout_redirect_uris", logout.clone().into())?;
            match self.find_client(&tenant, client_id).await {
                Ok(client) if client.settings.redirect_uris == [redirect] => {}
                Ok(_) => {
                    self.update_client(&actor, client_id, changes).await?;
                }
                Err(Error::ClientNotFound) => {
                    changes.set("name", name.into())?;
                    changes.set("first_party", true.into())?;
                    let new = NewClient {
                        client_id: Some(client_id.into()),
                        client_type: ClientType::Public,
                        settings: changes,
                    };
                    self.create_client(&actor, new).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// An access token for a confidential client itself (the
    /// `client_credentials` grant, RFC 6749 §4.4): `sub` and `client_id` are
    /// the client, the scopes those it asked for among its own (all of them,
    /// but `openid`, by default); no refresh token, no session, so it works
    /// until it expires and cannot be revoked early.
    pub(crate) async fn client_token(&self, client: &ClientRecord, scope: Option<&str>) -> Result<ClientToken> {
        if client.client_type != ClientType::Confidential {
            return Err(Error::UnauthorizedClient("client_credentials".into()));
        }
        let runtime = self.runtime(&client.tenant).await?;
        let allowed = &client.settings.scopes;
        let scope: Vec<&str> = match scope.map(str::trim).filter(|s| !s.is_empty()) {
            Some(requested) => {
                let wanted: Vec<&str> = requested.split(' ').filter(|s| !s.is_empty()).collect();
                if let Some(refused) = wanted.iter().find(|s| !allowed.iter().any(|a| a == *s)) {
                    return Err(Error::InvalidScope((*refused).to_owned()));
                }
                wanted
            }
            None => allowed.iter().map(String::as_str).filter(|s| *s != "openid").collect(),
        };
        let mut scope = scope;
        scope.sort_unstable();
        scope.dedup();
        let scope = scope.join(" ");
        let now = self.now();
        let ttl = runtime.tenant.settings.access_token_ttl;
        let aud = match client.settings.audience.as_str() {
            "" => serde_json::json!(runtime.audience),
            extra if extra == runtime.audience => serde_json::json!(runtime.audience),
            extra => serde_json::json!([runtime.audience, extra]),
        };
        let claims = serde_json::json!({
            "iss": runtime.issuer,
            "sub": client.client_id,
            "aud": aud,
            "exp": now + ttl as i64,
            "iat": now,
            "nbf": now,
            "jti": uuid::Uuid::new_v4().to_string(),
            "tid": client.tenant.to_string(),
            "client_id": client.client_id,
            "scope": scope,
        });
        let access_token = runtime.signer.sign(&claims).map_err(|e| Error::Internal(format!("signing failed: {e}")))?;
        Ok(ClientToken { access_token, expires_in: ttl, scope })
    }

    /// The client a token request comes from: a confidential client must
    /// present its secret (compared in constant time on its hash), a public
    /// client only its id. `None` when the request names no client (latch's
    /// legacy first-party password and refresh grants). Unknown clients and
    /// wrong or missing secrets are `InvalidClient`.
    pub(crate) async fn authenticate_client(
        &self,
        tenant: &TenantId,
        credentials: &ClientCredentials,
    ) -> Result<Option<ClientRecord>> {
        let Some(client_id) = credentials.client_id.as_deref() else {
            return if credentials.client_secret.is_some() { Err(Error::InvalidClient) } else { Ok(None) };
        };
        self.runtime(tenant).await?;
        let client = match self.find_client(tenant, client_id).await {
            Ok(client) => client,
            Err(Error::ClientNotFound) => return Err(Error::InvalidClient),
            Err(e) => return Err(e),
        };
        match (&client.secret_sha256, &credentials.client_secret) {
            (None, None) => Ok(Some(client)),
            (Some(expected), Some(presented)) => {
                let expected = hex::decode(expected).ok().and_then(|h| <[u8; 32]>::try_from(h).ok());
                match expected {
                    Some(expected) if hashes_equal(&token_hash(presented), &expected) => Ok(Some(client)),
                    _ => Err(Error::InvalidClient),
                }
            }
            // A confidential client without its secret, or a public one with a secret.
            _ => Err(Error::InvalidClient),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn public_client(redirect_uris: &[&str]) -> ClientRecord {
        ClientRecord {
            tenant: TenantId::parse("acme").expect("slug"),
            client_id: "app".into(),
            client_type: ClientType::Public,
            secret_sha256: None,
            created_at: 0,
            updated_at: 0,
            settings: ClientSettings {
                name: "App".into(),
                redirect_uris: redirect_uris.iter().map(|u| (*u).to_owned()).collect(),
                ..ClientSettings::default()
            },
        }
    }

    #[test]
    fn redirect_uris_are_https_loopback_http_or_private_use_schemes() {
        for ok in [
            "https://app.example/callback",
            "https://app.example/cb?x=1",
            "http://127.0.0.1:8080/cb",
            "http://[::1]/cb",
            "http://localhost:3000/cb",
            "com.example.app:/oauth2redirect",
        ] {
            assert!(is_redirect_uri(ok), "{ok}");
        }
        for bad in [
            "http://app.example/cb",
            "https://app.example/cb#frag",
            "https://*.example/cb",
            "/relative",
            "javascript:alert(1)",
            "myapp:/cb",
            "",
        ] {
            assert!(!is_redirect_uri(bad), "{bad}");
        }
    }

    #[test]
    fn redirect_uris_match_exactly_except_loopback_ports_of_public_clients() {
        let client = public_client(&["https://app.example/cb", "http://127.0.0.1/cb"]);
        let uris = &client.settings.redirect_uris;
        assert!(redirect_uri_matches(&client, uris, "https://app.example/cb"));
        assert!(!redirect_uri_matches(&client, uris, "https://app.example/cb/"));
        assert!(!redirect_uri_matches(&client, uris, "https://app.example/cb?x=1"));
        assert!(!redirect_uri_matches(&client, uris, "https://APP.example/cb2"));
        assert!(redirect_uri_matches(&client, uris, "http://127.0.0.1:51234/cb"), "any port on loopback");
        assert!(!redirect_uri_matches(&client, uris, "http://127.0.0.1:51234/other"));
        assert!(!redirect_uri_matches(&client, uris, "http://localhost:51234/cb"), "an IP literal only");
        let confidential = ClientRecord { client_type: ClientType::Confidential, ..client.clone() };
        assert!(!redirect_uri_matches(&confidential, uris, "http://127.0.0.1:51234/cb"), "public clients only");
    }

    #[test]
    fn client_settings_follow_their_rules() {
        let apply = |value: Value| {
            let Value::Object(object) = value else { unreachable!() };
            client_changes(object).and_then(|c| Ok(c.apply(&ClientSettings::default())?))
        };
        assert!(apply(json!({"name": "App", "redirect_uris": ["https://a.example/cb"]})).is_ok());
        let setting_of = |value: Value| match apply(value) {
            Err(Error::InvalidSetting(invalid)) => invalid.setting,
            other => panic!("accepted: {other:?}"),
        };
        assert_eq!(setting_of(json!({"name": "", "redirect_uris": ["https://a.example/cb"]})), "name");
        assert_eq!(setting_of(json!({"name": "App"})), "redirect_uris", "authorization_code needs a redirect URI");
        assert_eq!(setting_of(json!({"name": "App", "redirect_uris": ["http://a.example/cb"]})), "redirect_uris");
        let no_code = json!({"name": "M2M", "grant_types": ["client_credentials"]});
        assert!(apply(no_code).is_ok(), "no redirect URI without authorization_code");
        let cb = json!(["https://a.example/cb"]);
        assert_eq!(setting_of(json!({"name": "App", "redirect_uris": cb, "grant_types": ["implicit"]})), "grant_types");
        assert_eq!(setting_of(json!({"name": "App", "redirect_uris": cb, "grant_types": []})), "grant_types");
        assert_eq!(setting_of(json!({"name": "App", "redirect_uris": cb, "scopes": ["a b"]})), "scopes");
        assert_eq!(setting_of(json!({"nmae": "App"})), "nmae");
    }

    #[test]
    fn every_client_setting_has_exactly_one_rule() {
        let mut ruled: Vec<&str> = CLIENT_RULES.iter().map(|rule| rule.setting).collect();
        ruled.sort_unstable();
        let mut names = client_setting_names();
        names.sort_unstable();
        assert_eq!(names, ruled);
    }
}
