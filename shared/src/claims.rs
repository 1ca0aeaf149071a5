//! The access-token claims latch issues (SPEC §3, RFC 9068) and the header it verifies.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Algorithm, Error};

/// The `aud` claim: one audience or several. Serialized as a plain string when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience, written as a JSON string.
    One(String),
    /// Several audiences, written as a JSON array.
    Many(Vec<String>),
}

impl Audience {
    /// True if `candidate` is one of the audiences.
    pub fn contains(&self, candidate: &str) -> bool {
        match self {
            Audience::One(aud) => aud == candidate,
            Audience::Many(auds) => auds.iter().any(|aud| aud == candidate),
        }
    }
}

/// Claims of a latch access token. Times are NumericDate seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer: `{public_url}/t/{tenant}`.
    pub iss: String,
    /// Subject: the user id.
    pub sub: String,
    /// Audience.
    pub aud: Audience,
    /// Expiry.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Unique token id.
    pub jti: String,
    /// Tenant id.
    pub tid: String,
    /// Session id.
    pub sid: String,
    /// Roles in the tenant.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Space-separated scopes.
    #[serde(default)]
    pub scope: String,
    /// The user's email, only where the tenant opts in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Whether that email was verified; present exactly when `email` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// The OAuth client the token was issued to (RFC 9068); absent for
    /// latch's own JSON login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

impl Claims {
    /// Reads typed claims out of a payload whose registered claims were already checked.
    /// Tokens from other issuers may lack latch's own claims; those are then `MissingClaim`.
    pub fn from_payload(payload: &Map<String, Value>) -> Result<Claims, Error> {
        fn string(payload: &Map<String, Value>, name: &'static str) -> Result<String, Error> {
            match payload.get(name) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(Error::InvalidClaim(name)),
                None => Err(Error::MissingClaim(name)),
            }
        }
        let roles = match payload.get("roles") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| item.as_str().map(str::to_owned).ok_or(Error::InvalidClaim("roles")))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(Error::InvalidClaim("roles")),
        };
        let optional = |name: &'static str| match payload.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(Error::InvalidClaim(name)),
        };
        Ok(Claims {
            iss: string(payload, "iss")?,
            sub: string(payload, "sub")?,
            aud: audience(payload)?,
            exp: numeric_date(payload, "exp")?.ok_or(Error::MissingClaim("exp"))?,
            iat: numeric_date(payload, "iat")?.ok_or(Error::MissingClaim("iat"))?,
            nbf: numeric_date(payload, "nbf")?.ok_or(Error::MissingClaim("nbf"))?,
            jti: string(payload, "jti")?,
            tid: string(payload, "tid")?,
            sid: string(payload, "sid")?,
            roles,
            scope: optional("scope")?.unwrap_or_default(),
            email: optional("email")?,
            client_id: optional("client_id")?,
            email_verified: match payload.get("email_verified") {
                None => None,
                Some(Value::Bool(verified)) => Some(*verified),
                Some(_) => return Err(Error::InvalidClaim("email_verified")),
            },
        })
    }

    /// True if the token carries `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// True if the space-separated `scope` contains `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.split(' ').any(|s| s == scope)
    }
}

/// Reads `aud`: a string or a non-empty array of strings.
pub(crate) fn audience(payload: &Map<String, Value>) -> Result<Audience, Error> {
    match payload.get("aud") {
        None => Err(Error::MissingClaim("aud")),
        Some(Value::String(aud)) => Ok(Audience::One(aud.clone())),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned).ok_or(Error::InvalidClaim("aud")))
            .collect::<Result<_, _>>()
            .map(Audience::Many),
        Some(_) => Err(Error::InvalidClaim("aud")),
    }
}

/// Reads a NumericDate (RFC 7519 §2): a JSON number, fractions truncated toward
/// the past. Strings, booleans, non-finite and out-of-range values are invalid.
pub(crate) fn numeric_date(payload: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, Error> {
    // Beyond ±2^53 seconds no JSON parser agrees on the value; nothing legitimate lives there.
    const LIMIT: i64 = 1 << 53;
    let Some(value) = payload.get(name) else { return Ok(None) };
    let Value::Number(number) = value else { return Err(Error::InvalidClaim(name)) };
    let seconds = if let Some(i) = number.as_i64() {
        i
    } else {
        let f = number.as_f64().filter(|f| f.is_finite()).ok_or(Error::InvalidClaim(name))?;
        if f.abs() >= LIMIT as f64 {
            return Err(Error::InvalidClaim(name));
        }
        f.floor() as i64
    };
    if !(-LIMIT..=LIMIT).contains(&seconds) {
        return Err(Error::InvalidClaim(name));
    }
    Ok(Some(seconds))
}

/// The protected header of a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The algorithm, which is the verifying key's.
    pub alg: Algorithm,
    /// The key id, if the token named one.
    pub kid: Option<String>,
    /// The token type.
    pub typ: String,
}
