//! OAuth clients of a tenant, under `/t/{tenant}/admin/clients`: for the
//! tenant's admins and the operator, like the rest of the admin API.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use secrecy::{ExposeSecret as _, SecretString};

use super::{ApiResult, ApiTags, NoContent, UserAuth, tenant_id};
use crate::clock::rfc3339;
use crate::domain::{Actor, ClientChanges, Error, Latch, NewClient, client_changes};
use crate::store::{ClientRecord, ClientType};

/// Client registration.
pub struct ClientsApi;

/// Public (PKCE, no secret) or confidential (a secret).
#[derive(Debug, Clone, Copy, poem_openapi::Enum, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum ClientTypeName {
    /// A browser or native app: no secret; PKCE proves who asks for the tokens.
    Public,
    /// A server-side app with a secret (`client_secret_basic` or `client_secret_post`).
    Confidential,
}

impl From<ClientTypeName> for ClientType {
    fn from(name: ClientTypeName) -> ClientType {
        match name {
            ClientTypeName::Public => ClientType::Public,
            ClientTypeName::Confidential => ClientType::Confidential,
        }
    }
}

/// Declares a client request body: its own leading fields, then every
/// client setting as an optional field (as `tenant_request!` does for
/// tenants; a test checks that every stored setting is listed).
macro_rules! client_request {
    ($(#[$attr:meta])* $name:ident { $($(#[$field_attr:meta])* $field:ident: $ty:ty,)* }) => {
        $(#[$attr])*
        #[derive(Debug, Object, serde::Serialize)]
        #[oai(deny_unknown_fields)]
        pub struct $name {
            $($(#[$field_attr])* #[serde(skip)] pub $field: $ty,)*
            /// Display name, shown on the consent page (1-200 characters; required on creation).
            #[oai(nullable)]
            pub name: Option<String>,
            /// Where authorization answers may go, matched exactly: https, http on a loopback
            /// host (any port for public clients' `127.0.0.1`/`[::1]`, RFC 8252), or a private-use
            /// scheme such as `com.example.app:/cb`. At most 20; no wildcards, no fragments.
            #[oai(nullable)]
            pub redirect_uris: Option<Vec<String>>,
            /// Where RP-initiated logout may send the browser afterwards (same rules).
            #[oai(nullable)]
            pub post_logout_redirect_uris: Option<Vec<String>>,
            /// `authorization_code`, `refresh_token`, `client_credentials` (confidential clients
            /// only), `password` (legacy) (default: `authorization_code`, `refresh_token`).
            #[oai(nullable)]
            pub grant_types: Option<Vec<String>>,
            /// Scopes the client may ask for (default `openid profile email`); users get the
            /// intersection with what their roles allow.
            #[oai(nullable)]
            pub scopes: Option<Vec<String>>,
            /// The tenant's own app: no consent page (default false).
            #[oai(nullable)]
            pub first_party: Option<bool>,
            /// An extra `aud` for its access tokens, beside the tenant's (default empty: none).
            #[oai(nullable)]
            pub audience: Option<String>,
        }

        impl $name {
            /// The settings as domain changes, through their serde names.
            fn changes(&self) -> ApiResult<ClientChanges> {
                match serde_json::to_value(self) {
                    Ok(serde_json::Value::Object(object)) => Ok(client_changes(object)?),
                    _ => Err(Error::Internal("a client request does not serialize".into()).into()),
                }
            }
        }
    };
}

client_request! {
    /// A client to register; unknown fields are refused.
    CreateClientRequest {
        /// The client id (1-128 of `A-Z a-z 0-9 . _ ~ -`); generated when left out.
        client_id: Option<String>,
        /// `public` or `confidential`.
        #[oai(rename = "type")]
        client_type: ClientTypeName,
    }
}

client_request! {
    /// Changes to a client; fields left out keep their value, unknown fields are refused.
    UpdateClientRequest {}
}

// Read from the stored client through its serde names (`view`).
/// A registered client.
#[derive(Debug, Object, serde::Deserialize)]
pub struct Client {
    /// The client id.
    pub client_id: String,
    /// `public` or `confidential`.
    #[oai(rename = "type")]
    #[serde(rename = "client_type")]
    pub client_type: ClientTypeName,
    /// Display name.
    pub name: String,
    /// Registered redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Registered post-logout redirect URIs.
    pub post_logout_redirect_uris: Vec<String>,
    /// Allowed grant types.
    pub grant_types: Vec<String>,
    /// Scopes it may ask for.
    pub scopes: Vec<String>,
    /// Skips the consent page.
    pub first_party: bool,
    /// Extra access-token audience (empty: none).
    pub audience: String,
    /// Creation time, RFC 3339.
    #[serde(skip)]
    pub created_at: String,
    /// Last change, RFC 3339.
    #[serde(skip)]
    pub updated_at: String,
    /// The secret of a confidential client: only in the answer that created
    /// or replaced it; latch keeps a hash.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip)]
    pub client_secret: Option<String>,
}

/// A tenant's clients.
#[derive(Debug, Object)]
pub struct ClientList {
    /// By id.
    pub clients: Vec<Client>,
}

/// A new client secret, shown once.
#[derive(Debug, Object)]
pub struct ClientSecret {
    /// Send it with `client_secret_basic` or `client_secret_post`.
    pub client_secret: String,
}

/// Client registered.
#[derive(ApiResponse)]
pub enum ClientCreated {
    /// The client, with its secret if it is confidential.
    #[oai(status = 201)]
    Created(Json<Client>),
}

/// Secret replaced.
#[derive(ApiResponse)]
pub enum SecretReplaced {
    /// The new secret; the old one no longer works.
    #[oai(status = 201)]
    Created(Json<ClientSecret>),
}

fn view(client: ClientRecord, secret: Option<SecretString>) -> ApiResult<Client> {
    let unreadable = |e: serde_json::Error| Error::Internal(format!("a client does not fit the view: {e}"));
    let mut view: Client = serde_json::to_value(&client).and_then(serde_json::from_value).map_err(unreadable)?;
    view.created_at = rfc3339(client.created_at);
    view.updated_at = rfc3339(client.updated_at);
    view.client_secret = secret.map(|s| s.expose_secret().to_owned());
    Ok(view)
}

impl ClientsApi {
    async fn admin(latch: &Latch, tenant: &str, auth: &UserAuth) -> ApiResult<Actor> {
        Ok(latch.tenant_admin(&tenant_id(tenant)?, auth.token()).await?)
    }
}

#[OpenApi(tag = "ApiTags::Admin")]
impl ClientsApi {
    /// Register an OAuth client. A confidential client's secret is in this answer only.
    #[oai(path = "/t/:tenant/admin/clients", method = "post", operation_id = "adminCreateClient")]
    async fn create(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        auth: UserAuth,
        body: Json<CreateClientRequest>,
    ) -> ApiResult<ClientCreated> {
        let actor = Self::admin(&latch, &tenant, &auth).await?;
        let new = NewClient {
            client_id: body.client_id.clone(),
            client_type: body.client_type.into(),
            settings: body.changes()?,
        };
        let (client, secret) = latch.create_client(&actor, new).await?;
        Ok(ClientCreated::Created(Json(view(client, secret)?)))
    }

    /// The tenant's clients.
    #[oai(path = "/t/:tenant/admin/clients", method = "get", operation_id = "adminListClients")]
    async fn list(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        auth: UserAuth,
    ) -> ApiResult<Json<ClientList>> {
        let actor = Self::admin(&latch, &tenant, &auth).await?;
        let clients = latch.clients(&actor).await?.into_iter().map(|c| view(c, None)).collect::<ApiResult<_>>()?;
        Ok(Json(ClientList { clients }))
    }

    /// One client.
    #[oai(path = "/t/:tenant/admin/clients/:client_id", method = "get", operation_id = "adminGetClient")]
    async fn get(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        client_id: Path<String>,
        auth: UserAuth,
    ) -> ApiResult<Json<Client>> {
        let actor = Self::admin(&latch, &tenant, &auth).await?;
        Ok(Json(view(latch.client(&actor, &client_id).await?, None)?))
    }

    /// Change a client's settings (its id and type stay).
    #[oai(path = "/t/:tenant/admin/clients/:client_id", method = "patch", operation_id = "adminUpdateClient")]
    async fn update(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        client_id: Path<String>,
        auth: UserAuth,
        body: Json<UpdateClientRequest>,
    ) -> ApiResult<Json<Client>> {
        let actor = Self::admin(&latch, &tenant, &auth).await?;
        Ok(Json(view(latch.update_client(&actor, &client_id, body.changes()?).await?, None)?))
    }

    /// Replace a confidential client's secret; the old one stops working at once.
    #[oai(path = "/t/:tenant/admin/clients/:client_id/secret", method = "post", operation_id = "adminNewClientSecret")]
    async fn new_secret(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        client_id: Path<String>,
        auth: UserAuth,
    ) -> ApiResult<SecretReplaced> {
        let actor = Self::admin(&latch, &tenant, &auth).await?;
        let secret = latch.new_client_secret(&actor, &client_id).await?;
        Ok(SecretReplaced::Created(Json(ClientSecret { client_secret: secret.expose_secret().to_owned() })))
    }

    /// Remove a client; refresh tokens issued to it stop working.
    #[oai(path = "/t/:tenant/admin/clients/:client_id", method = "delete", operation_id = "adminDeleteClient")]
    async fn delete(
        &self,
        latch: Data<&Arc<Latch>>,
        tenant: Path<String>,
        client_id: Path<String>,
        auth: UserAuth,
    ) -> ApiResult<NoContent> {
        let actor = Self::admin(&latch, &tenant, &auth).await?;
        latch.delete_client(&actor, &client_id).await?;
        Ok(NoContent::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::properties;
    use super::*;
    use crate::domain::client_setting_names;

    #[test]
    fn every_stored_client_setting_is_in_the_request_and_view_schemas() {
        super::super::tests::assert_schemas_list(
            &client_setting_names(),
            &[
                ("CreateClientRequest", properties::<CreateClientRequest>()),
                ("UpdateClientRequest", properties::<UpdateClientRequest>()),
                ("Client", properties::<Client>()),
            ],
        );
    }
}
