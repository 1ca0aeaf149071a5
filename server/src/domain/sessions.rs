//! Sessions and tokens: issuing a token pair, refresh rotation with reuse
//! detection and a grace window, logout and session management, revocation
//! and introspection, and authenticating a bearer token on the server.

use std::sync::Arc;

use latch_shared::{Audience, Claims};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::accounts::Authenticated;
use super::events::{Event, EventKind};
use super::{Error, Latch, Result, TenantId, TenantRuntime};
use crate::crypto::{random_token, token_hash};
use crate::store::{ClientRecord, Grace, SessionRecord, StoreError, UserRecord};

/// Refresh tokens start with this, so secret scanners can recognise them.
const REFRESH_TOKEN_PREFIX: &str = "latch_rt_";
/// Longest user agent kept with a session.
const MAX_USER_AGENT: usize = 512;

/// Who is calling, as far as the server can tell.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// Client IP.
    pub ip: Option<String>,
    /// User-Agent header.
    pub user_agent: Option<String>,
}

/// An access token, a refresh token, and the user they belong to.
pub struct TokenPair {
    /// The signed access token.
    pub access_token: String,
    /// The opaque refresh token (shown once; stored only as a hash).
    pub refresh_token: SecretString,
    /// Access-token lifetime in seconds.
    pub expires_in: u32,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// The session.
    pub session_id: Uuid,
    /// The user.
    pub user: UserRecord,
    /// For an OAuth client's session with the `openid` scope: the ID token.
    pub id_token: Option<String>,
}

/// Tokens issued to an OAuth client: its audience and `client_id` go into
/// the access token, and with the `openid` scope an ID token comes along.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ForClient<'a> {
    /// The client.
    pub client: &'a ClientRecord,
    /// The authorization request's `nonce`, for the ID token (none on refresh).
    pub nonce: Option<&'a str>,
}

/// A caller authenticated by an access token whose session is still live.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The verified claims.
    pub claims: Claims,
    /// The user, as stored now.
    pub user: UserRecord,
    /// The session, as stored now.
    pub session: SessionRecord,
}

/// What introspection found out about a token (RFC 7662).
#[derive(Debug, Clone)]
pub enum Introspection {
    /// A live access token.
    Access {
        /// Who it stands for, with the user and session as stored now.
        principal: Box<Principal>,
        /// The session's scopes now (narrowed if the user's roles shrank).
        scope: String,
    },
    /// A live (current-generation) refresh token.
    Refresh {
        /// Its session.
        session: Box<SessionRecord>,
        /// Its user.
        user: Box<UserRecord>,
        /// The session's scopes.
        scope: String,
        /// The tenant's issuer.
        issuer: String,
    },
    /// A live `client_credentials` token: its verified claims.
    Client {
        /// The claims.
        payload: Box<serde_json::Map<String, serde_json::Value>>,
    },
    /// Anything else: expired, revoked, rotated, foreign, malformed.
    Inactive,
}

fn grace_context(session: &SessionRecord, generation: u64) -> String {
    format!("latch/refresh-successor/v1/{}/{}/{generation}", session.tenant, session.id)
}

/// The scopes `user` may hold in this tenant, sorted.
pub(super) fn allowed_scopes<'a>(runtime: &'a TenantRuntime, user: &UserRecord) -> Vec<&'a str> {
    let roles = &runtime.tenant.settings.roles;
    let mut scopes: Vec<&str> =
        user.roles.iter().filter_map(|role| roles.get(role)).flatten().map(String::as_str).collect();
    scopes.sort_unstable();
    scopes.dedup();
    scopes
}

/// The scopes to grant: all allowed ones, or the requested subset (`InvalidScope` beyond it).
pub(super) fn grant_scope(runtime: &TenantRuntime, user: &UserRecord, requested: Option<&str>) -> Result<String> {
    let allowed = allowed_scopes(runtime, user);
    let Some(requested) = requested.map(str::trim).filter(|r| !r.is_empty()) else { return Ok(allowed.join(" ")) };
    let mut wanted: Vec<&str> = requested.split(' ').filter(|s| !s.is_empty()).collect();
    if let Some(refused) = wanted.iter().find(|scope| !allowed.contains(scope)) {
        return Err(Error::InvalidScope((*refused).to_owned()));
    }
    wanted.sort_unstable();
    wanted.dedup();
    Ok(wanted.join(" "))
}

impl Latch {
    /// Starts a session for who passed a login's checks, for `oauth_client`
    /// (`None`: latch's own JSON login and legacy grants), and issues its
    /// first token pair.
    pub(super) async fn start_session(
        &self,
        runtime: &TenantRuntime,
        authenticated: Authenticated,
        client: ClientInfo,
        for_client: Option<ForClient<'_>>,
    ) -> Result<TokenPair> {
        let Authenticated { user, scope, auth_time, amr } = authenticated;
        let now = self.now();
        let refresh_token = random_token(REFRESH_TOKEN_PREFIX);
        let session = SessionRecord {
            user_agent: client.user_agent.map(|ua| ua.chars().take(MAX_USER_AGENT).collect()),
            ip: client.ip.clone(),
            scope: Some(scope.clone()),
            client_id: for_client.map(|f| f.client.client_id.clone()),
            auth_time: Some(auth_time),
            amr,
            ..SessionRecord::new(
                user.tenant.clone(),
                user.id,
                now,
                now + runtime.tenant.settings.refresh_token_ttl as i64,
            )
        };
        let hash = token_hash(refresh_token.expose_secret());
        let (stored, checked_hash) = (session.clone(), user.password_hash.clone());
        let refused = self
            .store
            .write(move |store| {
                store.insert_session(&stored, &hash)?;
                // A password change or a disable that lands while this login
                // is being checked ends the sessions its scan finds; one
                // inserted after that scan would survive it. So look at the
                // user again after inserting: either the scan saw this
                // session, or this read sees the change and ends it here.
                let refused = match store.get_user(&stored.tenant, stored.user_id)? {
                    Some(user) if user.disabled => Some(Error::UserDisabled),
                    Some(user) if user.password_hash == checked_hash => None,
                    _ => Some(Error::InvalidCredentials),
                };
                if refused.is_some() {
                    store.revoke_session(&stored.tenant, stored.id, now)?;
                }
                Ok(refused)
            })
            .await?;
        if let Some(refused) = refused {
            return Err(refused);
        }
        self.record(
            &user.tenant,
            Event::new(EventKind::LoginSucceeded).actor(user.id).subject(session.id).ip(client.ip),
        )
        .await;
        self.token_pair(runtime, user, &session, scope, refresh_token, now, for_client)
    }

    #[allow(clippy::too_many_arguments)] // the parts of one answer, each from its own source
    fn token_pair(
        &self,
        runtime: &TenantRuntime,
        user: UserRecord,
        session: &SessionRecord,
        scope: String,
        refresh_token: SecretString,
        now: i64,
        for_client: Option<ForClient<'_>>,
    ) -> Result<TokenPair> {
        let settings = &runtime.tenant.settings;
        // A client's own audience comes beside the tenant's, which the
        // server's checks (userinfo, `/users/me`) require.
        let extra_audience = for_client
            .map(|f| f.client.settings.audience.as_str())
            .filter(|aud| !aud.is_empty() && *aud != runtime.audience);
        let aud = match extra_audience {
            Some(extra) => Audience::Many(vec![runtime.audience.clone(), extra.to_owned()]),
            None => Audience::One(runtime.audience.clone()),
        };
        let claims = Claims {
            iss: runtime.issuer.clone(),
            sub: user.id.to_string(),
            aud,
            exp: now + settings.access_token_ttl as i64,
            iat: now,
            nbf: now,
            jti: Uuid::new_v4().to_string(),
            tid: user.tenant.to_string(),
            sid: session.id.to_string(),
            roles: user.roles.clone(),
            scope: scope.clone(),
            email: settings.email_claim.then(|| user.email.clone()),
            email_verified: settings.email_claim.then_some(user.email_verified),
            client_id: session.client_id.clone(),
        };
        let access_token = runtime.signer.sign(&claims).map_err(|e| Error::Internal(format!("signing failed: {e}")))?;
        let id_token = match for_client {
            Some(for_client) if scope.split(' ').any(|s| s == "openid") => {
                Some(self.id_token(runtime, &user, session, &scope, for_client, now)?)
            }
            _ => None,
        };
        Ok(TokenPair {
            access_token,
            refresh_token,
            expires_in: settings.access_token_ttl,
            scope,
            session_id: session.id,
            user,
            id_token,
        })
    }

    /// The scope a session's tokens carry now: what was granted at login,
    /// narrowed to what the user's roles still allow.
    fn session_scope(&self, runtime: &TenantRuntime, user: &UserRecord, session: &SessionRecord) -> String {
        let allowed = allowed_scopes(runtime, user);
        match &session.scope {
            None => allowed.join(" "),
            Some(granted) => granted.split(' ').filter(|s| allowed.contains(s)).collect::<Vec<_>>().join(" "),
        }
    }

    /// Exchanges a refresh token for a new pair. The presented token is
    /// retired. Presenting it again within the tenant's grace window returns
    /// the same successor (two tabs refreshing at once); later, or for any
    /// older token, it revokes the whole session.
    ///
    /// A session started for an OAuth client refreshes only for that client,
    /// and one started by latch's own login only without a client.
    pub async fn refresh(
        &self,
        tenant: &TenantId,
        presented: &str,
        client: &ClientInfo,
        oauth_client: Option<&ClientRecord>,
    ) -> Result<TokenPair> {
        let runtime = self.runtime(tenant).await?;
        let for_client = oauth_client.map(|client| ForClient { client, nonce: None });
        let hash = token_hash(presented);
        loop {
            let now = self.now();
            let owned = tenant.clone();
            let found = self.store.read(move |store| store.get_refresh_session_user(&owned, &hash)).await?;
            let Some((refresh, session, Some(user))) = found else { return Err(Error::InvalidRefreshToken) };
            if !session.is_active(now) || session.client_id.as_deref() != oauth_client.map(|c| c.client_id.as_str()) {
                return Err(Error::InvalidRefreshToken);
            }
            if user.disabled {
                return Err(Error::UserDisabled);
            }
            let scope = self.session_scope(&runtime, &user, &session);
            if refresh.generation != session.generation {
                // An older generation: the grace window's successor, or reuse.
                let successor = self.grace_successor(&runtime, &session, refresh.generation, now)?;
                let Some(successor) = successor else {
                    self.revoke_for_reuse(&session, client).await?;
                    return Err(Error::RefreshTokenReused);
                };
                // The rotation that made this successor may not be flushed
                // yet (its own request is still waiting for it): hand it out
                // only once it is durable, or a crash could bring back the
                // old token and lose the one answered here.
                self.store.durable().await?;
                return self.token_pair(&runtime, user, &session, scope, successor, now, for_client);
            }
            match self.rotate_to_next_generation(&runtime, &session, now).await {
                Ok((next, next_token)) => {
                    return self.token_pair(&runtime, user, &next, scope, next_token, now, for_client);
                }
                // Another request rotated or revoked it first: decide again on fresh state.
                Err(Error::Store(StoreError::Stale | StoreError::NotFound)) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The token that replaced generation `presented` of `session`, if it was
    /// the generation just before the current one and the grace window is
    /// still open; `None` means the presented token is a reuse.
    fn grace_successor(
        &self,
        runtime: &TenantRuntime,
        session: &SessionRecord,
        presented: u64,
        now: i64,
    ) -> Result<Option<SecretString>> {
        let window = runtime.tenant.settings.refresh_grace_seconds as i64;
        let Some(grace) = &session.grace else { return Ok(None) };
        if grace.from_generation != presented || grace.from_generation + 1 != session.generation {
            return Ok(None);
        }
        if now - grace.rotated_at >= window {
            return Ok(None);
        }
        let successor = self
            .master
            .open(&grace_context(session, session.generation), &grace.sealed_successor)
            .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
            .ok_or(Error::KeyUnavailable)?;
        Ok(Some(SecretString::from(successor)))
    }

    /// Moves `session` to its next generation with a new refresh token, if it
    /// is still at the generation read: the store's compare-and-swap answers
    /// `Stale` (or `NotFound`) when another request rotated or revoked it first.
    /// The new token is sealed into the session as the grace successor.
    async fn rotate_to_next_generation(
        &self,
        runtime: &TenantRuntime,
        session: &SessionRecord,
        now: i64,
    ) -> Result<(SessionRecord, SecretString)> {
        let next_token = random_token(REFRESH_TOKEN_PREFIX);
        let next_hash = token_hash(next_token.expose_secret());
        let next_generation = session.generation + 1;
        let sealed_successor =
            self.master.seal(&grace_context(session, next_generation), next_token.expose_secret().as_bytes());
        let expires_at = now + runtime.tenant.settings.refresh_token_ttl as i64;
        let (tenant, id, expected) = (session.tenant.clone(), session.id, session.generation);
        let next = self
            .store
            .write(move |store| {
                store.rotate_session(&tenant, id, expected, &next_hash, &mut |session| {
                    session.last_used_at = now;
                    session.expires_at = expires_at;
                    session.grace = Some(Grace {
                        from_generation: expected,
                        rotated_at: now,
                        sealed_successor: sealed_successor.clone(),
                    });
                })
            })
            .await?;
        Ok((next, next_token))
    }

    async fn revoke_for_reuse(&self, session: &SessionRecord, client: &ClientInfo) -> Result<()> {
        let (tenant, id, now) = (session.tenant.clone(), session.id, self.now());
        self.store.write(move |store| store.revoke_session(&tenant, id, now)).await?;
        tracing::warn!(tenant = %session.tenant, session = %session.id, user = %session.user_id, "refresh token reuse detected; session revoked");
        let event = Event::new(EventKind::RefreshReuseDetected).subject(session.user_id).ip(client.ip.clone());
        self.record(&session.tenant, event.detail(format!("session {}", session.id))).await;
        Ok(())
    }

    /// Verifies an access token with the tenant's rules (the same code as the
    /// wasm verifier), then checks on the server that its session is live and
    /// its user enabled.
    pub async fn authenticate(&self, tenant: &TenantId, token: &str) -> Result<Principal> {
        let runtime: Arc<TenantRuntime> = self.runtime(tenant).await?;
        let now = self.now();
        let claims = runtime.verify(token, now).map_err(Error::InvalidToken)?;
        let (Ok(user_id), Ok(session_id)) = (Uuid::parse_str(&claims.sub), Uuid::parse_str(&claims.sid)) else {
            return Err(Error::InvalidToken(latch_shared::Error::InvalidClaim("sub")));
        };
        if claims.tid != tenant.as_str() {
            return Err(Error::InvalidToken(latch_shared::Error::WrongIssuer));
        }
        let queued = self.store.queued(|store| store.queue_session_and_user(tenant, session_id, user_id)).await;
        let (session, user) = match queued {
            Some(read) => read?,
            None => {
                let owned = tenant.clone();
                self.store.read(move |store| store.get_session_and_user(&owned, session_id, user_id)).await?
            }
        };
        let (Some(session), Some(user)) = (session, user) else { return Err(Error::SessionEnded) };
        if session.user_id != user.id || session.revoked_at.is_some() {
            return Err(Error::SessionEnded);
        }
        if user.disabled {
            return Err(Error::UserDisabled);
        }
        Ok(Principal { claims, user, session })
    }

    /// Ends the caller's session; its refresh tokens stop working at once.
    pub async fn logout(&self, principal: &Principal) -> Result<()> {
        self.end_session(principal, principal.user.id, principal.session.id).await
    }

    /// The live sessions of `owner`, oldest first (the owner-only rule applies).
    pub async fn sessions(&self, principal: &Principal, owner: Uuid) -> Result<Vec<SessionRecord>> {
        let owner = self.user_for(principal, owner).await?;
        let (tenant, now) = (owner.tenant.clone(), self.now());
        let sessions = self.store.run(move |store| store.list_sessions(&tenant, owner.id)).await?;
        Ok(sessions.into_iter().filter(|s| s.is_active(now)).collect())
    }

    /// Ends one session of `owner` (the owner-only rule applies;
    /// `SessionNotFound` for a session that is not theirs).
    pub async fn end_session(&self, principal: &Principal, owner: Uuid, session_id: Uuid) -> Result<()> {
        let owner = self.user_for(principal, owner).await?.id;
        let (tenant, now) = (principal.user.tenant.clone(), self.now());
        let ended = self
            .store
            .write(move |store| match store.get_session(&tenant, session_id)? {
                Some(session) if session.user_id == owner => Ok(store.revoke_session(&tenant, session_id, now)?),
                _ => Ok(None),
            })
            .await?;
        if ended.is_none() {
            return Err(Error::SessionNotFound);
        }
        let event = Event::new(EventKind::SessionEnded).actor(principal.user.id).subject(session_id);
        self.record(&principal.user.tenant, event.detail(format!("user {owner}"))).await;
        Ok(())
    }

    /// RFC 7009: revokes the session of a refresh or access token. Unknown,
    /// expired and foreign tokens are ignored (the caller learns nothing).
    pub async fn revoke_token(&self, tenant: &TenantId, token: &str, hint: Option<&str>) -> Result<()> {
        let runtime = self.runtime(tenant).await?;
        let session = if hint == Some("access_token") {
            self.session_of_access_token(&runtime, token)
        } else {
            let hash = token_hash(token);
            let owned = tenant.clone();
            let by_refresh = self.store.run(move |store| store.get_refresh(&owned, &hash)).await?.map(|r| r.session_id);
            by_refresh.or_else(|| self.session_of_access_token(&runtime, token))
        };
        if let Some(id) = session {
            let (owned, now) = (tenant.clone(), self.now());
            if let Some(session) = self.store.write(move |store| store.revoke_session(&owned, id, now)).await? {
                let event =
                    Event::new(EventKind::SessionEnded).subject(session.id).detail("revoked through /oauth/revoke");
                self.record(tenant, event.actor(session.user_id)).await;
            }
        }
        Ok(())
    }

    fn session_of_access_token(&self, runtime: &TenantRuntime, token: &str) -> Option<Uuid> {
        let verified = latch_shared::verify(token, &runtime.keys, &runtime.validation, self.now()).ok()?;
        Uuid::parse_str(&verified.claims().ok()?.sid).ok()
    }

    /// RFC 7662: whether a token is live, and what it carries.
    pub async fn introspect(&self, tenant: &TenantId, token: &str) -> Result<Introspection> {
        match self.authenticate(tenant, token).await {
            Ok(principal) => {
                let runtime = self.runtime(tenant).await?;
                let scope = self.session_scope(&runtime, &principal.user, &principal.session);
                return Ok(Introspection::Access { principal: Box::new(principal), scope });
            }
            Err(Error::Store(e)) => return Err(e.into()),
            Err(_) => {}
        }
        let runtime = self.runtime(tenant).await?;
        let (hash, owned, now) = (token_hash(token), tenant.clone(), self.now());
        let found = self
            .store
            .run(move |store| {
                let Some(refresh) = store.get_refresh(&owned, &hash)? else { return Ok(None) };
                let Some(session) = store.get_session(&owned, refresh.session_id)? else { return Ok(None) };
                Ok(store.get_user(&owned, session.user_id)?.map(|user| (refresh, session, user)))
            })
            .await?;
        match found {
            Some((refresh, session, user))
                if refresh.generation == session.generation && session.is_active(now) && !user.disabled =>
            {
                let scope = self.session_scope(&runtime, &user, &session);
                let issuer = runtime.issuer.clone();
                Ok(Introspection::Refresh { session: Box::new(session), user: Box::new(user), scope, issuer })
            }
            _ => self.introspect_client_token(&runtime, token, now).await,
        }
    }

    /// A `client_credentials` token: valid by every rule, `sub` its
    /// `client_id`, and that client still registered.
    async fn introspect_client_token(&self, runtime: &TenantRuntime, token: &str, now: i64) -> Result<Introspection> {
        let Ok(verified) = latch_shared::verify(token, &runtime.keys, &runtime.validation, now) else {
            return Ok(Introspection::Inactive);
        };
        let text = |name: &str| verified.payload.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        let (Some(client_id), Some(sub)) = (text("client_id"), text("sub")) else { return Ok(Introspection::Inactive) };
        if client_id != sub || verified.payload.contains_key("sid") {
            return Ok(Introspection::Inactive);
        }
        match self.find_client(&runtime.tenant.id, &client_id).await {
            Ok(_) => Ok(Introspection::Client { payload: Box::new(verified.payload) }),
            Err(Error::ClientNotFound) => Ok(Introspection::Inactive),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use secrecy::ExposeSecret as _;
    use tokio::sync::Semaphore;

    use super::*;
    use crate::clock::ManualClock;
    use crate::crypto::MasterKey;
    use crate::domain::{NewTenant, PasswordHasher, Registered, Registration, Services, TenantChanges};
    use crate::mail::Mailer;
    use crate::store::StoreHandle;
    use crate::store::sled::SledStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_grace_window_hands_out_a_successor_only_once_its_rotation_is_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(&dir.path().join("data"), 8 << 20).expect("store");
        let gate = Arc::new(Semaphore::new(Semaphore::MAX_PERMITS / 2));
        let (store, _committer) = StoreHandle::gated(Arc::new(store), gate.clone());
        let services = Services {
            store,
            clock: Arc::new(ManualClock::new(1_800_000_000)),
            master: MasterKey::from_bytes([7; 32]),
            passwords: PasswordHasher::new(1, crate::domain::default_params()),
            mailer: Mailer::outbox(dir.path().join("outbox"), "latch <latch@localhost>").expect("mailer"),
            token_cache_entries: 16,
        };
        let latch = Arc::new(Latch::new(services, "http://latch.test".into(), [0; 32]));
        let tenant = TenantId::parse("grace").expect("slug");
        let new = NewTenant { id: tenant.clone(), algorithm: None, settings: TenantChanges::default() };
        latch.create_tenant(&crate::domain::Operator::local(), new).await.expect("tenant");
        let registration =
            Registration { email: "tabs@example.com".into(), password: "correct horse battery".into(), name: None };
        let Registered::LoggedIn(first) =
            latch.register(&tenant, registration, ClientInfo::default()).await.expect("register")
        else {
            panic!("logged in");
        };
        let presented = first.refresh_token.expose_secret().to_owned();

        // Flushes are held back from here on.
        gate.forget_permits(gate.available_permits());
        let rotating = tokio::spawn({
            let (latch, tenant, presented) = (latch.clone(), tenant.clone(), presented.clone());
            async move { latch.refresh(&tenant, &presented, &ClientInfo::default(), None).await }
        });
        // Wait (bounded) until the first refresh has rotated the session in the store; it
        // cannot answer before a flush, which the gate holds back.
        let sid = first.session_id;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let owned = tenant.clone();
            let session = latch.store.read(move |s| s.get_session(&owned, sid)).await.expect("read");
            if session.expect("session").generation > 0 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the first refresh never rotated");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // The second tab presents the same token inside the grace window.
        let mut second = tokio::spawn({
            let (latch, tenant) = (latch.clone(), tenant.clone());
            async move { latch.refresh(&tenant, &presented, &ClientInfo::default(), None).await }
        });
        // It must not answer while the rotation it would hand out is not
        // durable. (A wrong implementation answers at once; a right one cannot
        // answer at all until the gate opens, however long this waits.)
        assert!(
            tokio::time::timeout(Duration::from_millis(300), &mut second).await.is_err(),
            "the grace path answered before the rotation was flushed"
        );
        assert!(!rotating.is_finished(), "neither did the rotation itself");

        gate.add_permits(Semaphore::MAX_PERMITS / 2);
        let rotated = rotating.await.expect("task").expect("refresh");
        let graced = second.await.expect("task").expect("grace refresh");
        assert_eq!(graced.refresh_token.expose_secret(), rotated.refresh_token.expose_secret(), "the same successor");
    }
}
