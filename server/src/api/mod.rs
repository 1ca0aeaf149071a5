//! The HTTP API: one `#[OpenApi]` struct per resource, combined into one
//! OpenAPI service, plus the middleware every response passes through.

mod admin;
mod auth;
mod authorize;
mod clients;
mod contract;
mod demo;
mod error;
mod headers;
mod health;
mod import;
mod limits;
mod mfa;
mod models;
mod ndjson;
mod oauth;
mod observe;
mod pages;
mod proxies;

pub use proxies::TrustedProxies;
mod tenants;
mod users;
mod wellknown;

pub use error::{ApiError, ApiResult, Problem};
pub use limits::AuthRateLimit;

use std::sync::Arc;
use std::time::Duration;

use poem::http::StatusCode;
use poem::middleware::CatchPanic;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route};
use poem_openapi::auth::Bearer;
use poem_openapi::{ApiResponse, OpenApiService, SecurityScheme, Tags};

use crate::domain::{ClientInfo, Latch, TenantId};

/// Largest request body accepted, in bytes.
pub const BODY_LIMIT: usize = 64 * 1024;

#[derive(Tags)]
enum ApiTags {
    /// Register, log in, refresh, log out.
    Auth,
    /// OAuth 2.0 token, revocation and introspection endpoints.
    #[oai(rename = "OAuth")]
    OAuth,
    /// The caller's own account.
    Users,
    /// Tenant administration: users, roles, sessions, audit events (role `admin` or the operator token).
    Admin,
    /// Operator: tenants, keys, backup.
    Tenants,
    /// Discovery document and JWKS.
    Discovery,
    /// Liveness and readiness.
    Health,
}

/// A user's access token from this tenant.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT")]
pub struct BearerToken(Bearer);

/// The scopes the explorer may ask the `demo` tenant for.
#[derive(poem_openapi::OAuthScopes)]
#[oai(rename_all = "lowercase")]
pub enum DemoScopes {
    /// OpenID Connect sign-in.
    Openid,
    /// The user's name.
    Profile,
    /// The user's email.
    Email,
}

/// Signing in to the `demo` tenant from the explorer's "Authorize": the
/// authorization code flow with PKCE through the hosted sign-in page (client
/// `latch-explorer`, no secret), or the legacy password flow.
#[derive(SecurityScheme)]
#[oai(
    ty = "oauth2",
    flows(
        authorization_code(
            authorization_url = "/t/demo/oauth/authorize",
            token_url = "/t/demo/oauth/token",
            scopes = "DemoScopes"
        ),
        password(token_url = "/t/demo/oauth/token")
    )
)]
pub struct DemoOAuth(Bearer);

/// A user of the tenant: an access token pasted as a bearer token, or
/// obtained through the explorer's sign-in to the demo tenant.
#[derive(SecurityScheme)]
pub enum UserAuth {
    /// Bearer token.
    BearerToken(BearerToken),
    /// OAuth 2.0 (demo tenant).
    DemoOAuth(DemoOAuth),
}

impl UserAuth {
    /// The access token presented.
    pub fn token(&self) -> &str {
        match self {
            UserAuth::BearerToken(auth) => &auth.0.token,
            UserAuth::DemoOAuth(auth) => &auth.0.token,
        }
    }
}

/// The explorer's page: poem-openapi's Swagger UI, told to use PKCE and the
/// `latch-explorer` client for the code flow (its template has no such
/// setting; a test checks the insertion took, should the template change).
fn explorer_page(api: &OpenApiService<impl poem_openapi::OpenApi, ()>) -> String {
    // The page embeds the document: the one `/openapi.json` serves.
    api.swagger_ui_html().replacen(&api.spec(), openapi_json(), 1).replacen(
        "SwaggerUIBundle({",
        "window.ui = SwaggerUIBundle({",
        1,
    ) .replacen(
        "</script>\n\n</body>",
        "window.ui.initOAuth({ clientId: \"latch-explorer\", usePkceWithAuthorizationCodeGrant: true, scopes: \"openid profile email\" });\n</script>\n\n</body>",
        1,
    )
}

/// The operator token (printed at first start, or `LATCH_OPERATOR_TOKEN`).
#[derive(SecurityScheme)]
#[oai(ty = "bearer")]
pub struct OperatorToken(Bearer);

/// A bodiless success.
#[derive(ApiResponse)]
pub enum NoContent {
    /// Done.
    #[oai(status = 204)]
    Done,
}

fn tenant_id(raw: &str) -> ApiResult<TenantId> {
    Ok(TenantId::parse(raw)?)
}

fn client_info(req: &Request) -> ClientInfo {
    ClientInfo {
        ip: proxies::client_of(req).ip.map(|ip| ip.to_string()),
        user_agent: req.header("user-agent").map(str::to_owned),
    }
}

/// The OpenAPI service (no state: handlers get [`Latch`] from request data).
pub fn service() -> OpenApiService<impl poem_openapi::OpenApi, ()> {
    OpenApiService::new(
        (
            health::HealthApi,
            wellknown::WellKnownApi,
            auth::AuthApi,
            oauth::OAuthApi,
            authorize::AuthorizeApi,
            users::UsersApi,
            mfa::MfaApi,
            admin::AdminApi,
            clients::ClientsApi,
            tenants::TenantsApi,
        ),
        "latch",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Multi-tenant authentication server. Tenant endpoints live under /t/{tenant}; \
         errors are application/problem+json with a stable `code`.",
    )
}

/// The OpenAPI document as served at `/openapi.json`.
/// Built once per process: the served document, the explorer's page and the
/// contract (`api/contract.rs`) all read this one.
pub fn openapi_json() -> &'static str {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| document(&service().spec()))
}

/// The request bodies that refuse unknown members (`#[oai(deny_unknown_fields)]`,
/// which poem-openapi does not state in the document): operator and admin
/// bodies, where a misspelt setting must not be silently ignored.
fn closed_bodies() -> [std::borrow::Cow<'static, str>; 7] {
    use poem_openapi::types::Type as _;
    [
        admin::CreateUserRequest::name(),
        admin::SetRolesRequest::name(),
        clients::CreateClientRequest::name(),
        clients::UpdateClientRequest::name(),
        tenants::CreateTenantRequest::name(),
        tenants::UpdateTenantRequest::name(),
        tenants::RotateKeyRequest::name(),
    ]
}

/// poem-openapi's document with what its derive macros cannot say, taken
/// from the one place each rule lives: the tenant-id pattern on every
/// `tenant` path parameter and on a new tenant's `id` (`TenantId`), the
/// ranges of the numeric tenant and client settings (their `Rule`s), and
/// `additionalProperties: false` on the bodies that refuse unknown members.
fn document(spec: &str) -> String {
    use serde_json::{Value, json};
    let Ok(mut doc) = serde_json::from_str::<Value>(spec) else { return spec.to_owned() };
    let tenant_id = |schema: &mut Value| {
        schema["pattern"] = json!(TenantId::PATTERN);
        schema["minLength"] = json!(1);
        schema["maxLength"] = json!(TenantId::MAX_LEN);
    };
    // (`get_mut`, not indexing: indexing a missing member inserts `null`.)
    for operations in doc.get_mut("paths").and_then(Value::as_object_mut).into_iter().flat_map(|p| p.values_mut()) {
        for operation in operations.as_object_mut().into_iter().flat_map(|ops| ops.values_mut()) {
            let parameters = operation.get_mut("parameters").and_then(Value::as_array_mut);
            for parameter in parameters.into_iter().flatten() {
                if parameter["name"] == "tenant" && parameter["in"] == "path" {
                    if let Some(schema) = parameter.get_mut("schema") {
                        tenant_id(schema);
                    }
                } else if let Some(schema) = parameter.get_mut("schema") {
                    integer_bounds(schema);
                }
            }
        }
    }
    fn ranges<T: crate::domain::Ruled>() -> impl Iterator<Item = (&'static str, i64, i64)> {
        T::RULES.iter().filter_map(|rule| rule.range.map(|(min, max)| (rule.setting, min, max)))
    }
    let ranged: Vec<_> =
        ranges::<crate::store::TenantSettings>().chain(ranges::<crate::store::ClientSettings>()).collect();
    // An empty POST is read as `{}` (`limit_body`), so a JSON body with no
    // required member is optional.
    let optional_bodies: Vec<String> = doc["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, schema)| schema.get("required").is_none_or(|r| r.as_array().is_none_or(Vec::is_empty)))
        .map(|(name, _)| format!("#/components/schemas/{name}"))
        .collect();
    for operations in doc.get_mut("paths").and_then(Value::as_object_mut).into_iter().flat_map(|p| p.values_mut()) {
        let Some(post) = operations.get_mut("post") else { continue };
        let Some(body) = post.get_mut("requestBody") else { continue };
        let json_schema = body["content"].as_object().and_then(|content| {
            content
                .iter()
                .find(|(kind, _)| kind.starts_with("application/json"))
                .map(|(_, media)| media["schema"].clone())
        });
        if json_schema
            .is_some_and(|schema| schema["$ref"].as_str().is_some_and(|r| optional_bodies.iter().any(|o| o == r)))
        {
            body["required"] = json!(false);
        }
    }
    let closed = closed_bodies();
    let schemas = doc.get_mut("components").and_then(|c| c.get_mut("schemas")).and_then(Value::as_object_mut);
    for (name, schema) in schemas.into_iter().flatten() {
        if closed.iter().any(|closed| closed == name) {
            schema["additionalProperties"] = json!(false);
        }
        let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else { continue };
        if name == "CreateTenantRequest"
            && let Some(id) = properties.get_mut("id")
        {
            tenant_id(id);
        }
        if name == "TokenRequest"
            && let Some(grant) = properties.get_mut("grant_type")
        {
            grant["enum"] = json!(oauth::SUPPORTED_GRANTS);
        }
        for property in properties.values_mut() {
            integer_bounds(property);
        }
        for (setting, min, max) in &ranged {
            if let Some(property) = properties.get_mut(*setting)
                && property["type"] == "integer"
            {
                property["minimum"] = json!(min);
                property["maximum"] = json!(max);
            }
        }
    }
    serde_json::to_string_pretty(&doc).unwrap_or_else(|_| spec.to_owned())
}

/// The range an integer's `format` implies (`uint32`: 0 to 4294967295),
/// stated where the schema gives none: the parser refuses what lies outside.
fn integer_bounds(schema: &mut serde_json::Value) {
    if schema["type"] != "integer" || schema.get("minimum").is_some() {
        return;
    }
    use serde_json::json;
    let (min, max) = match schema["format"].as_str() {
        Some("uint8") => (json!(0), json!(u8::MAX)),
        Some("uint16") => (json!(0), json!(u16::MAX)),
        Some("uint32") => (json!(0), json!(u32::MAX)),
        Some("uint64") => (json!(0), json!(u64::MAX)),
        Some("int32") => (json!(i32::MIN), json!(i32::MAX)),
        Some("int64") => (json!(i64::MIN), json!(i64::MAX)),
        _ => return,
    };
    schema["minimum"] = min;
    schema["maximum"] = max;
}

/// The whole HTTP application.
/// A request body must arrive within `body_timeout` of its head.
pub fn app(
    latch: Arc<Latch>,
    limits: AuthRateLimit,
    trusted: TrustedProxies,
    body_timeout: Duration,
) -> impl Endpoint<Output = Response> {
    let api = service();
    let document = openapi_json();
    let spec = poem::endpoint::make_sync(move |_| {
        Response::builder().content_type("application/json; charset=utf-8").body(document)
    });
    let page = explorer_page(&api);
    // The explorer's own page, with its OAuth settings; the rest of /docs
    // (the OAuth receiver page) as poem-openapi serves it.
    let explorer = api.swagger_ui().around(move |next, req| {
        let page = page.clone();
        async move {
            if req.uri().path() == "/" || req.uri().path().is_empty() {
                return Ok(poem::web::Html(page).into_response());
            }
            next.call(req).await.map(IntoResponse::into_response)
        }
    });
    Route::new()
        .at("/openapi.json", spec)
        .nest("/docs", explorer)
        .at("/favicon.ico", poem::get(favicon))
        .at("/demo", poem::get(demo::root))
        .at("/demo/*path", poem::get(demo::file))
        .nest("/", api)
        .around(limits::limit_auth)
        .around(headers::cors)
        .data(latch)
        .data(limits)
        .around(move |next, req| limit_body(next, req, body_timeout))
        .with(CatchPanic::new().with_handler(|_| {
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "the server failed; see its log",
            )
            .into_response()
        }))
        .catch_all_error(|err| async move { observe::error_response(err) })
        .map_to_response()
        .around(headers::security_headers)
        .around(move |next, req| observe::observe(next, req, trusted.clone()))
}

/// latch's icon, so browsers opening the demo, the explorer or the sign-in
/// pages find one instead of logging a 404.
#[poem::handler]
fn favicon() -> Response {
    Response::builder()
        .content_type("image/x-icon")
        .header(poem::http::header::CACHE_CONTROL, "public, max-age=86400")
        .body(include_bytes!("favicon.ico").as_slice())
}

/// `/t/{tenant}/admin/users/import`.
fn is_user_import(path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').collect();
    matches!(segments.as_slice(), ["", "t", tenant, "admin", "users", "import"] if !tenant.is_empty())
}

/// Reads the body up to [`BODY_LIMIT`], whatever `Content-Length` claims, so
/// chunked uploads are bounded too, and within `deadline`, so a client that
/// trickles its body cannot hold a connection and a worker (408, and the
/// connection is closed).
async fn limit_body<E: Endpoint>(next: E, mut req: Request, deadline: Duration) -> poem::Result<Response> {
    // The user import takes files of a million lines: it streams its body
    // to a temporary file itself, after the caller's token was checked.
    if req.method() == poem::http::Method::POST && is_user_import(req.uri().path()) {
        return next.call(req).await.map(IntoResponse::into_response);
    }
    if let Some(length) = req.header("content-length").and_then(|v| v.parse::<usize>().ok())
        && length > BODY_LIMIT
    {
        return Err(poem::Error::from_status(StatusCode::PAYLOAD_TOO_LARGE));
    }
    let read = tokio::time::timeout(deadline, req.take_body().into_bytes_limit(BODY_LIMIT));
    let Ok(body) = read.await else {
        let mut timed_out = error::error_response(poem::Error::from_string(
            format!("the request body did not arrive within {} s", deadline.as_secs()),
            StatusCode::REQUEST_TIMEOUT,
        ));
        timed_out.headers_mut().insert(poem::http::header::CONNECTION, poem::http::HeaderValue::from_static("close"));
        return Ok(timed_out);
    };
    let body = body.map_err(|e| match e {
        poem::error::ReadBodyError::PayloadTooLarge => poem::Error::from_status(StatusCode::PAYLOAD_TOO_LARGE),
        other => poem::Error::from_string(other.to_string(), StatusCode::BAD_REQUEST),
    })?;
    if req.content_type().is_some_and(|t| t.starts_with("application/json")) {
        contract::check_json_body(req.method(), req.uri().path(), &body)
            .map_err(|reason| poem::Error::from_string(reason, StatusCode::BAD_REQUEST))?;
    }
    // A POST with no body at all is an empty body of the type the operation
    // declares (JSON, or a form): endpoints whose fields are all optional
    // take it, the others answer 400 for what is missing rather than 415 for
    // a content type nobody had to send.
    let mut body = body;
    if body.is_empty() && req.method() == poem::http::Method::POST && req.content_type().is_none() {
        let declared = contract::body_content_type(req.method(), req.uri().path()).unwrap_or("application/json");
        req.headers_mut().insert(poem::http::header::CONTENT_TYPE, poem::http::HeaderValue::from_static(declared));
        if declared.starts_with("application/json") {
            // No body is an empty object, not `null` (which the schema refuses).
            body = b"{}".to_vec().into();
        }
    }
    req.set_body(body);
    next.call(req).await.map(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use poem_openapi::registry::{MetaSchemaRef, Registry};
    use poem_openapi::types::Type;

    /// The property names of `T`'s OpenAPI schema.
    pub fn properties<T: Type>() -> Vec<String> {
        let mut registry = Registry::new();
        T::register(&mut registry);
        let MetaSchemaRef::Reference(name) = T::schema_ref() else { panic!("not a named schema") };
        registry.schemas[&name].properties.iter().map(|(property, _)| (*property).to_owned()).collect()
    }

    /// Asserts that every one of `fields` (a stored record's serde names) is a
    /// property of each named schema: a field added to the record but not to
    /// a request body or the view would be settable nowhere, or invisible.
    pub fn assert_schemas_list(fields: &[String], schemas: &[(&str, Vec<String>)]) {
        for (schema, properties) in schemas {
            for field in fields {
                assert!(properties.contains(field), "{schema} lacks the field `{field}`");
            }
        }
    }
}
