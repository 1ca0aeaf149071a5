//! Sessions and tokens: issuing a token pair, refresh rotation with reuse
//! detection, logout, and authenticating a bearer token on the server.

use std::sync::Arc;

use latch_shared::{Audience, Claims};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::{Error, Latch, Result, TenantId, TenantRuntime};
use crate::crypto::{random_token, token_hash};
use crate::store::{SessionRecord, StoreError, UserRecord};

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
    /// Granted scopes.
    pub scope: String,
    /// The user.
    pub user: UserRecord,
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

impl Latch {
    /// Starts a session for `user` and issues its first token pair.
    pub(super) async fn start_session(
        &self,
        runtime: &TenantRuntime,
        user: UserRecord,
        client: ClientInfo,
    ) -> Result<TokenPair> {
        let now = self.now();
        let refresh_token = random_token(REFRESH_TOKEN_PREFIX);
        let session = SessionRecord {
            tenant: user.tenant.clone(),
            id: Uuid::now_v7(),
            user_id: user.id,
            created_at: now,
            last_used_at: now,
            expires_at: now + runtime.tenant.settings.refresh_token_ttl as i64,
            generation: 0,
            user_agent: client
                .user_agent
                .map(|ua| ua.chars().take(MAX_USER_AGENT).collect()),
            ip: client.ip,
            revoked_at: None,
        };
        let hash = token_hash(refresh_token.expose_secret());
        let stored = session.clone();
        self.store
            .write(move |store| store.insert_session(&stored, &hash))
            .await?;
        self.token_pair(runtime, user, &session, refresh_token, now)
    }

    fn token_pair(
        &self,
        runtime: &TenantRuntime,
        user: UserRecord,
        session: &SessionRecord,
        refresh_token: SecretString,
        now: i64,
    ) -> Result<TokenPair> {
        let settings = &runtime.tenant.settings;
        let mut scopes: Vec<&str> = user
            .roles
            .iter()
            .filter_map(|role| settings.roles.get(role))
            .flatten()
            .map(String::as_str)
            .collect();
        scopes.sort_unstable();
        scopes.dedup();
        let scope = scopes.join(" ");
        let claims = Claims {
            iss: runtime.issuer.clone(),
            sub: user.id.to_string(),
            aud: Audience::One(runtime.audience.clone()),
            exp: now + settings.access_token_ttl as i64,
            iat: now,
            nbf: now,
            jti: Uuid::new_v4().to_string(),
            tid: user.tenant.to_string(),
            sid: session.id.to_string(),
            roles: user.roles.clone(),
            scope: scope.clone(),
            email: settings.email_claim.then(|| user.email.clone()),
        };
        let access_token = runtime
            .signer
            .sign(&claims)
            .map_err(|e| Error::Internal(format!("signing failed: {e}")))?;
        Ok(TokenPair {
            access_token,
            refresh_token,
            expires_in: settings.access_token_ttl,
            scope,
            user,
        })
    }

    /// Exchanges a refresh token for a new pair. The presented token is
    /// retired; presenting it again revokes the whole session.
    pub async fn refresh(&self, tenant: &TenantId, presented: &str) -> Result<TokenPair> {
        let runtime = self.runtime(tenant).await?;
        let hash = token_hash(presented);
        loop {
            let now = self.now();
            let owned = tenant.clone();
            let found = self
                .store
                .read(move |store| {
                    let Some(refresh) = store.get_refresh(&owned, &hash)? else {
                        return Ok(None);
                    };
                    let Some(session) = store.get_session(&owned, refresh.session_id)? else {
                        return Ok(None);
                    };
                    let user = store.get_user(&owned, session.user_id)?;
                    Ok(Some((refresh, session, user)))
                })
                .await?;
            let Some((refresh, session, Some(user))) = found else {
                return Err(Error::InvalidRefreshToken);
            };
            if !session.is_active(now) {
                return Err(Error::InvalidRefreshToken);
            }
            if refresh.generation != session.generation {
                self.revoke_for_reuse(&session, now).await?;
                return Err(Error::RefreshTokenReused);
            }
            if user.disabled {
                return Err(Error::UserDisabled);
            }
            let next_token = random_token(REFRESH_TOKEN_PREFIX);
            let next_hash = token_hash(next_token.expose_secret());
            let next = SessionRecord {
                generation: session.generation + 1,
                last_used_at: now,
                expires_at: now + runtime.tenant.settings.refresh_token_ttl as i64,
                ..session.clone()
            };
            let stored = next.clone();
            match self
                .store
                .write(move |store| store.rotate_session(session.generation, &stored, &next_hash))
                .await
            {
                Ok(()) => return self.token_pair(&runtime, user, &next, next_token, now),
                // Another request rotated or revoked it first: decide again on fresh state.
                Err(StoreError::Stale) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn revoke_for_reuse(&self, session: &SessionRecord, now: i64) -> Result<()> {
        let (tenant, id) = (session.tenant.clone(), session.id);
        self.store
            .write(move |store| store.revoke_session(&tenant, id, now))
            .await?;
        tracing::warn!(tenant = %session.tenant, session = %session.id, user = %session.user_id, "refresh token reuse detected; session revoked");
        Ok(())
    }

    /// Verifies an access token with the tenant's rules (the same code as the
    /// wasm verifier), then checks on the server that its session is live and
    /// its user enabled.
    pub async fn authenticate(&self, tenant: &TenantId, token: &str) -> Result<Principal> {
        let runtime: Arc<TenantRuntime> = self.runtime(tenant).await?;
        let now = self.now();
        let verified = latch_shared::verify(token, &runtime.keys, &runtime.validation, now)
            .map_err(Error::InvalidToken)?;
        let claims = verified.claims().map_err(Error::InvalidToken)?;
        let (Ok(user_id), Ok(session_id)) =
            (Uuid::parse_str(&claims.sub), Uuid::parse_str(&claims.sid))
        else {
            return Err(Error::InvalidToken(latch_shared::Error::InvalidClaim(
                "sub",
            )));
        };
        if claims.tid != tenant.as_str() {
            return Err(Error::InvalidToken(latch_shared::Error::WrongIssuer));
        }
        let owned = tenant.clone();
        let (session, user) = self
            .store
            .read(move |store| {
                Ok((
                    store.get_session(&owned, session_id)?,
                    store.get_user(&owned, user_id)?,
                ))
            })
            .await?;
        let (Some(session), Some(user)) = (session, user) else {
            return Err(Error::SessionEnded);
        };
        if session.user_id != user.id || session.revoked_at.is_some() {
            return Err(Error::SessionEnded);
        }
        if user.disabled {
            return Err(Error::UserDisabled);
        }
        Ok(Principal {
            claims,
            user,
            session,
        })
    }

    /// Ends the caller's session; its refresh tokens stop working at once.
    pub async fn logout(&self, principal: &Principal) -> Result<()> {
        let (tenant, id, now) = (
            principal.session.tenant.clone(),
            principal.session.id,
            self.now(),
        );
        self.store
            .write(move |store| store.revoke_session(&tenant, id, now))
            .await?;
        Ok(())
    }
}
