//! The OpenAPI document as the contract the server keeps, read once at the
//! first request: route templates for logs and metrics, `Allow` on a 405,
//! and the JSON types of request bodies.
//!
//! poem-openapi reads a JSON number or boolean where a string is declared as
//! that string (`{"id": 0}` would create tenant "0"), and the document says
//! `type: string`. [`check_json_body`] holds bodies to the document first: a
//! value declared a string must be a JSON string, or the answer is 400
//! before any handler runs.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

/// The document and its operations by path shape.
struct Contract {
    document: Value,
    /// Shape (`/t/*/users/*`) → the document's path.
    by_shape: HashMap<String, String>,
    /// Each path's segments (`*` for a parameter) and how many are literal,
    /// for matching raw paths without splitting the shapes per request.
    segments: Vec<(Vec<String>, usize, String)>,
}

/// A path with its parameters as `*` (poem's `:param0`, the document's
/// `{tenant}`, a wildcard `*path`).
fn shape<'a>(segments: impl Iterator<Item = &'a str>) -> String {
    let parameter = |s: &str| s.starts_with(':') || s.starts_with('{') || s.starts_with('*');
    segments.map(|s| if parameter(s) { "*" } else { s }).collect::<Vec<_>>().join("/")
}

fn contract() -> &'static Contract {
    static CONTRACT: OnceLock<Contract> = OnceLock::new();
    CONTRACT.get_or_init(|| {
        let document: Value = serde_json::from_str(super::openapi_json()).unwrap_or_default();
        let by_shape: HashMap<String, String> = document["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(path, _)| (shape(path.split('/')), path.clone()))
            .collect();
        let segments = by_shape
            .iter()
            .map(|(shape, path)| {
                let parts: Vec<String> = shape.split('/').map(str::to_owned).collect();
                let literal = parts.iter().filter(|part| *part != "*").count();
                (parts, literal, path.clone())
            })
            .collect();
        Contract { document, by_shape, segments }
    })
}

/// The document's path for a matched poem pattern (poem names parameters
/// `:param0`, `:param1`…, so it is found by its literal segments), or the
/// pattern itself for routes outside the document (`/demo/*path`).
pub fn route_of(pattern: &str) -> String {
    contract().by_shape.get(&shape(pattern.split('/'))).cloned().unwrap_or_else(|| pattern.to_owned())
}

/// The methods a matched pattern answers, for `Allow` on a 405 (HEAD with
/// GET); routes outside the document answer GET only.
pub fn allowed_methods(pattern: &str) -> String {
    let Some(path) = contract().by_shape.get(&shape(pattern.split('/'))) else { return "GET, HEAD".into() };
    let mut methods: Vec<String> = contract().document["paths"][path]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(method, _)| method.to_ascii_uppercase())
        .filter(|method| poem::http::Method::from_bytes(method.as_bytes()).is_ok())
        .collect();
    if methods.iter().any(|m| m == "GET") {
        methods.push("HEAD".into());
    }
    methods.join(", ")
}

/// The document's path a raw request path falls under: literal segments
/// must match, a parameter takes any one segment, and the path with the most
/// literal segments wins (as the router prefers `/users/me` to `/users/{user}`).
fn path_for(raw: &str) -> Option<&'static str> {
    let count = raw.split('/').count();
    contract()
        .segments
        .iter()
        .filter(|(parts, _, _)| {
            parts.len() == count
                && parts.iter().zip(raw.split('/')).all(|(part, segment)| part == "*" || part == segment)
        })
        .max_by_key(|(_, literal, _)| *literal)
        .map(|(_, _, path)| path.as_str())
}

/// `schema` with a `$ref` followed.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/schemas/")) {
        Some(name) => &document["components"]["schemas"][name],
        None => schema,
    }
}

/// The first place in `value` where a string is declared and something else
/// was sent, as a JSON path (`id`, `redirect_uris[0]`).
fn misplaced_string(document: &Value, schema: &Value, value: &Value, at: &str) -> Option<String> {
    let schema = resolve(document, schema);
    // `allOf: [{$ref}]` is how poem-openapi annotates a referenced property.
    if let Some(parts) = schema["allOf"].as_array() {
        return parts.iter().find_map(|part| misplaced_string(document, part, value, at));
    }
    match (schema["type"].as_str(), value) {
        (_, Value::Null) => None,
        (Some("string"), Value::String(_)) => None,
        (Some("string"), _) => Some(at.to_owned()),
        (Some("array"), Value::Array(items)) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| misplaced_string(document, &schema["items"], item, &format!("{at}[{i}]"))),
        (_, Value::Object(fields)) => fields.iter().find_map(|(name, field)| {
            let declared = schema["properties"].get(name).or_else(|| schema.get("additionalProperties"))?;
            let at = if at.is_empty() { name.clone() } else { format!("{at}.{name}") };
            misplaced_string(document, declared, field, &at)
        }),
        _ => None,
    }
}

/// The content type an operation declares for its request body (the first,
/// when it declares several): what an empty POST without one is read as.
pub fn body_content_type(method: &poem::http::Method, path: &str) -> Option<&'static str> {
    let operation_path = path_for(path)?;
    let operation = &contract().document["paths"][operation_path][method.as_str().to_ascii_lowercase()];
    operation["requestBody"]["content"].as_object()?.keys().next().map(String::as_str)
}

/// Checks a JSON request body against the operation's declared schema: a
/// member declared a string must be a JSON string. Anything else (bodies
/// that are not JSON, unknown operations) is left to the handler's parser.
pub fn check_json_body(method: &poem::http::Method, path: &str, body: &[u8]) -> Result<(), String> {
    let Some(operation_path) = path_for(path) else { return Ok(()) };
    let document = &contract().document;
    let operation = &document["paths"][operation_path][method.as_str().to_ascii_lowercase()];
    let schema = &operation["requestBody"]["content"]["application/json; charset=utf-8"]["schema"];
    let schema =
        if schema.is_null() { &operation["requestBody"]["content"]["application/json"]["schema"] } else { schema };
    if schema.is_null() {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<Value>(body) else { return Ok(()) };
    match misplaced_string(document, schema, &value, "") {
        Some(at) if at.is_empty() => Err("the body must be a JSON string".into()),
        Some(at) => Err(format!("`{at}` must be a JSON string")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_named_as_the_document_spells_them() {
        assert_eq!(route_of("/t/:param0/users/:param1"), "/t/{tenant}/users/{user}");
        assert_eq!(route_of("/t/:param0/users/me"), "/t/{tenant}/users/me");
        assert_eq!(route_of("/demo/*path"), "/demo/*path");
        assert_eq!(path_for("/t/acme/users/me"), Some("/t/{tenant}/users/me"), "the literal route wins");
        assert_eq!(path_for("/t/acme/users/0192"), Some("/t/{tenant}/users/{user}"));
        assert_eq!(path_for("/nowhere"), None);
    }

    #[test]
    fn allow_lists_the_documented_methods_of_a_template() {
        assert_eq!(allowed_methods("/t/:param0/auth/login"), "POST");
        let me = allowed_methods("/t/:param0/users/me");
        assert!(me.contains("GET") && me.contains("PATCH") && me.contains("HEAD"), "{me}");
        assert_eq!(allowed_methods("/demo/*path"), "GET, HEAD");
    }

    #[test]
    fn a_number_or_boolean_where_a_string_is_declared_is_refused() {
        let post = poem::http::Method::POST;
        let check = |path: &str, body: &str| check_json_body(&post, path, body.as_bytes());
        assert_eq!(check("/admin/tenants", r#"{"id": 0}"#), Err("`id` must be a JSON string".into()));
        assert!(check("/admin/tenants", r#"{"id": "acme", "access_token_ttl": 600}"#).is_ok());
        assert_eq!(
            check("/t/acme/auth/login", r#"{"email": true, "password": "x"}"#),
            Err("`email` must be a JSON string".into())
        );
        assert_eq!(
            check(
                "/t/acme/admin/clients",
                r#"{"type": "public", "name": "x", "redirect_uris": ["https://a.example/", 7]}"#
            ),
            Err("`redirect_uris[1]` must be a JSON string".into())
        );
        assert!(check("/t/acme/auth/login", "not json").is_ok(), "left to the handler's parser");
        assert_eq!(body_content_type(&post, "/t/acme/oauth/token"), Some("application/x-www-form-urlencoded"));
        assert!(body_content_type(&post, "/t/acme/auth/login").is_some_and(|t| t.starts_with("application/json")));
    }
}
