//! Tenant administration: who may administer a tenant (its admins, the
//! operator), what they may do to its users, and the owner-only rule for a
//! user's own resources.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use super::events::{Event, EventKind};
use super::settings::ADMIN_ROLE;
use super::{Actor, Email, Error, Latch, Password, Principal, Result, TenantId};
use crate::store::{Change, EventRecord, UserRecord};

/// Largest page of users or events.
const MAX_PAGE: usize = 200;

/// A user created by an admin or the operator.
pub struct NewUser {
    /// Email.
    pub email: String,
    /// Password (the tenant's policy applies); `None` invites the user: an
    /// invitation link is mailed that lets them choose one.
    pub password: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Roles; the tenant's default roles when `None`.
    pub roles: Option<Vec<String>>,
}

/// One page of a listing.
#[derive(Debug)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `None` on the last one.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from `items` fetched with one more than `limit`, which tells
    /// whether another page follows.
    fn from_one_extra(mut items: Vec<T>, limit: usize, cursor: impl Fn(&T) -> String) -> Page<T> {
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(cursor)
        } else {
            None
        };
        Page { items, next_cursor }
    }
}

const FOREIGN_TENANT: &str = "this token belongs to another tenant; it grants nothing here";

fn is_admin(user: &UserRecord) -> bool {
    user.roles.iter().any(|role| role == ADMIN_ROLE)
}

impl Latch {
    /// Who is calling a tenant's admin API: the operator token, or an access
    /// token of a live session whose user holds `admin` in this tenant now
    /// (the stored roles decide, not the token's claim). A valid token of
    /// another tenant of this server is 403: authenticated, not allowed here.
    pub async fn tenant_admin(&self, tenant: &TenantId, token: &str) -> Result<Actor> {
        if let Ok(operator) = self.operator(token) {
            self.runtime(tenant).await?;
            return Ok(Actor::operator(operator, tenant.clone()));
        }
        let principal = match self.authenticate(tenant, token).await {
            Ok(principal) => principal,
            Err(Error::InvalidToken(reason)) => {
                let foreign = self.home_tenant(tenant, token).await.is_some();
                return Err(if foreign { Error::Forbidden(FOREIGN_TENANT) } else { Error::InvalidToken(reason) });
            }
            Err(other) => return Err(other),
        };
        if !is_admin(&principal.user) {
            return Err(Error::Forbidden("this needs the `admin` role in this tenant"));
        }
        Ok(Actor::admin(principal))
    }

    /// The other tenant of this server whose live token `token` is, if any.
    async fn home_tenant(&self, here: &TenantId, token: &str) -> Option<TenantId> {
        let claims = latch_shared::decode_unverified(token).ok()?.payload;
        let home = TenantId::parse(claims.get("tid")?.as_str()?).ok().filter(|home| home != here)?;
        self.authenticate(&home, token).await.ok().map(|_| home)
    }

    /// The owner-only rule: `principal` may reach `target`'s resources if it is
    /// `target` or an admin of the same tenant (403 otherwise, whether or not
    /// `target` exists). Returns the target as stored.
    pub async fn user_for(&self, principal: &Principal, target: Uuid) -> Result<UserRecord> {
        if principal.user.id == target {
            return Ok(principal.user.clone());
        }
        if !is_admin(&principal.user) {
            return Err(Error::Forbidden("only the user themselves or an admin of the tenant may do this"));
        }
        self.user(&principal.user.tenant, target).await
    }

    /// One user of a tenant, as stored.
    pub(crate) async fn user(&self, tenant: &TenantId, id: Uuid) -> Result<UserRecord> {
        let owned = tenant.clone();
        self.store.run(move |store| store.get_user(&owned, id)).await?.ok_or(Error::UserNotFound)
    }

    /// A user of a tenant by email, as stored.
    pub(crate) async fn user_by_email(&self, tenant: &TenantId, email: &str) -> Result<UserRecord> {
        let key = Email::parse(email)?.key().to_owned();
        let owned = tenant.clone();
        self.store.run(move |store| store.find_user_by_email(&owned, &key)).await?.ok_or(Error::UserNotFound)
    }

    /// One user of the actor's tenant.
    pub async fn admin_user(&self, actor: &Actor, id: Uuid) -> Result<UserRecord> {
        self.user(actor.tenant(), id).await
    }

    /// A user of the actor's tenant by email.
    pub async fn admin_user_by_email(&self, actor: &Actor, email: &str) -> Result<UserRecord> {
        self.user_by_email(actor.tenant(), email).await
    }

    /// A page of a tenant's users ordered by email, only those whose email
    /// starts with `email_prefix` (case-insensitive).
    pub async fn list_users(
        &self,
        actor: &Actor,
        email_prefix: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<UserRecord>> {
        let tenant = actor.tenant();
        self.runtime(tenant).await?;
        let limit = limit.clamp(1, MAX_PAGE);
        let prefix = email_prefix.unwrap_or_default().trim().to_lowercase();
        let after = cursor
            .map(|c| URL_SAFE_NO_PAD.decode(c).ok().and_then(|b| String::from_utf8(b).ok()).ok_or(Error::InvalidCursor))
            .transpose()?;
        let owned = tenant.clone();
        let users = self.store.run(move |store| store.list_users(&owned, &prefix, after.as_deref(), limit + 1)).await?;
        Ok(Page::from_one_extra(users, limit, |u| URL_SAFE_NO_PAD.encode(&u.email_key)))
    }

    /// A page of a tenant's audit events, newest first, older than the event `cursor`.
    pub async fn event_page(&self, actor: &Actor, cursor: Option<&str>, limit: usize) -> Result<Page<EventRecord>> {
        let tenant = actor.tenant();
        let before = cursor.map(|c| Uuid::parse_str(c).map_err(|_| Error::InvalidCursor)).transpose()?;
        let limit = limit.clamp(1, MAX_PAGE);
        let events = self.events(tenant, limit + 1, before).await?;
        Ok(Page::from_one_extra(events, limit, |e| e.id.to_string()))
    }

    /// Creates a user without logging them in (admin API, CLI).
    pub async fn create_user(&self, actor: &Actor, new: NewUser) -> Result<UserRecord> {
        let tenant = actor.tenant();
        let runtime = self.runtime(tenant).await?;
        let roles = match new.roles {
            Some(roles) => self.checked_roles(tenant, roles).await?,
            None => runtime.tenant.settings.default_roles.clone(),
        };
        let email = Email::parse(&new.email)?;
        let hash = match &new.password {
            Some(password) => {
                let password = Password::parse(password, runtime.tenant.settings.password_min_length, &email)?;
                self.passwords.hash(password).await?
            }
            None => String::new(),
        };
        let user = self.add_user(&runtime, &email, hash, new.name, roles).await?;
        let event = Event::new(EventKind::UserCreated).actor(actor.name()).subject(user.id);
        let invited = new.password.is_none();
        self.record(tenant, if invited { event.detail("invited") } else { event }).await;
        if invited {
            self.send_invitation(&runtime, &user).await?;
        }
        Ok(user)
    }

    /// Sets a user's password (the tenant's policy applies) and ends their sessions.
    pub async fn set_password(&self, actor: &Actor, id: Uuid, password: &str) -> Result<()> {
        let tenant = actor.tenant();
        let runtime = self.runtime(tenant).await?;
        let user = self.user(tenant, id).await?;
        let email = Email::parse(&user.email)?;
        let password = Password::parse(password, runtime.tenant.settings.password_min_length, &email)?;
        let hash = self.passwords.hash(password).await?;
        let now = self.now();
        self.change_user_then(
            tenant,
            id,
            move |user| {
                user.set_password_hash(hash.clone());
                user.updated_at = now;
                Change::Write
            },
            move |store, user| store.revoke_user_sessions(&user.tenant, user.id, None, now).map(drop),
        )
        .await?;
        self.record(tenant, Event::new(EventKind::PasswordSet).actor(actor.name()).subject(id)).await;
        Ok(())
    }

    /// Disables a user (their sessions end and their tokens stop working on
    /// the server at once) or enables them again.
    pub async fn set_disabled(&self, actor: &Actor, id: Uuid, disabled: bool) -> Result<UserRecord> {
        let tenant = actor.tenant();
        self.runtime(tenant).await?;
        let now = self.now();
        let (user, _) = self
            .change_user_then(
                tenant,
                id,
                move |user| {
                    user.disabled = disabled;
                    if disabled {
                        // Reset links sent before stay void after an enable.
                        user.void_reset_links();
                    }
                    user.updated_at = now;
                    Change::Write
                },
                move |store, user| {
                    if disabled {
                        store.revoke_user_sessions(&user.tenant, user.id, None, now)?;
                    }
                    Ok(())
                },
            )
            .await?;
        let kind = if disabled { EventKind::UserDisabled } else { EventKind::UserEnabled };
        self.record(tenant, Event::new(kind).actor(actor.name()).subject(id)).await;
        Ok(user)
    }

    /// Removes a user's second factor (TOTP, pending or confirmed, with its
    /// recovery codes), for an owner who lost their authenticator and their
    /// codes. Their next login needs the password only; they can enroll again.
    pub async fn reset_mfa(&self, actor: &Actor, id: Uuid) -> Result<UserRecord> {
        let tenant = actor.tenant();
        self.runtime(tenant).await?;
        let now = self.now();
        let (user, _) = self
            .change_user(tenant, id, move |user| {
                if user.totp.is_none() {
                    return Change::Keep;
                }
                user.totp = None;
                user.updated_at = now;
                Change::Write
            })
            .await?;
        self.record(tenant, Event::new(EventKind::MfaReset).actor(actor.name()).subject(id)).await;
        Ok(user)
    }

    /// Replaces a user's roles; each must be defined by the tenant. Live
    /// sessions keep working with their scopes narrowed to what the new roles
    /// allow; the server checks the stored roles at once.
    pub async fn set_roles(&self, actor: &Actor, id: Uuid, roles: Vec<String>) -> Result<UserRecord> {
        let tenant = actor.tenant();
        let roles = self.checked_roles(tenant, roles).await?;
        let (owned, now) = (tenant.clone(), self.now());
        let (before, user) = self
            .store
            .write(move |store| {
                let mut before = String::new();
                let user = store.update_user(&owned, id, &mut |user| {
                    before = user.roles.join(" ");
                    user.roles = roles.clone();
                    user.updated_at = now;
                    Change::Write
                })?;
                Ok((before, user))
            })
            .await?;
        let user = user.ok_or(Error::UserNotFound)?;
        let detail = format!("[{before}] -> [{}]", user.roles.join(" "));
        self.record(tenant, Event::new(EventKind::RolesChanged).actor(actor.name()).subject(id).detail(detail)).await;
        Ok(user)
    }

    async fn checked_roles(&self, tenant: &TenantId, mut roles: Vec<String>) -> Result<Vec<String>> {
        let runtime = self.runtime(tenant).await?;
        if let Some(unknown) = roles.iter().find(|role| !runtime.tenant.settings.roles.contains_key(*role)) {
            return Err(Error::UnknownRole(unknown.chars().take(64).collect()));
        }
        roles.sort_unstable();
        roles.dedup();
        Ok(roles)
    }

    /// Deletes a user with their sessions; the email is free again.
    pub async fn delete_user(&self, actor: &Actor, id: Uuid) -> Result<()> {
        let tenant = actor.tenant();
        self.runtime(tenant).await?;
        let (owned, now) = (tenant.clone(), self.now());
        let deleted = self.store.write(move |store| store.delete_user(&owned, id, now)).await?;
        if deleted.is_none() {
            return Err(Error::UserNotFound);
        }
        self.record(tenant, Event::new(EventKind::UserDeleted).actor(actor.name()).subject(id)).await;
        Ok(())
    }

    /// Ends every session of a user; returns how many were live.
    pub async fn end_user_sessions(&self, actor: &Actor, id: Uuid) -> Result<usize> {
        let tenant = actor.tenant();
        let user = self.user(tenant, id).await?;
        let now = self.now();
        let ended = self.store.write(move |store| store.revoke_user_sessions(&user.tenant, user.id, None, now)).await?;
        let event = Event::new(EventKind::SessionsEnded).actor(actor.name()).subject(id);
        self.record(tenant, event.detail(format!("{ended} sessions"))).await;
        Ok(ended)
    }
}
