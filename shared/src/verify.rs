//! The verification rules of SPEC §3, in the order they are applied:
//! size, structure, header (alg, crit, typ), key lookup and algorithm
//! binding, signature, then claims (exp, nbf, iss, aud).

use serde_json::{Map, Value};

use crate::claims::{audience, numeric_date};
use crate::{Algorithm, Claims, Error, Header, KeySet, VerifyingKey, b64, json};

/// Tokens longer than this many bytes are rejected before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Revocation feeds longer than this many bytes are rejected before any
/// parsing (about 100,000 entries; docs/revocation-feed.md).
pub const MAX_FEED_BYTES: usize = 8 * 1024 * 1024;
/// The largest clock leeway a [`Validation`] accepts, in seconds.
pub const MAX_LEEWAY_SECONDS: u64 = 300;
/// The leeway used unless one is set.
const DEFAULT_LEEWAY_SECONDS: u64 = 30;

/// What a token must satisfy beyond its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    issuer: String,
    audiences: Vec<String>,
    leeway: i64,
    algorithms: Vec<Algorithm>,
    kind: Kind,
}

/// Which of latch's signed documents a [`Validation`] accepts: each has its
/// own `typ`, so none passes for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `at+jwt` (or `application/at+jwt`).
    Access,
    /// `JWT` or no `typ`.
    Id,
    /// [`crate::REVOCATION_FEED_TYPE`].
    RevocationFeed,
}

impl Validation {
    /// Requires `iss == issuer` exactly and `aud` to contain `audience`; 30 s leeway; every algorithm allowed.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Result<Validation, Error> {
        Validation::with_audiences(issuer, vec![audience.into()])
    }

    /// Like [`Validation::new`], accepting any one of several audiences.
    pub fn with_audiences(issuer: impl Into<String>, audiences: Vec<String>) -> Result<Validation, Error> {
        let issuer = issuer.into();
        if issuer.is_empty() || audiences.is_empty() || audiences.iter().any(String::is_empty) {
            return Err(Error::InvalidOptions);
        }
        Ok(Validation {
            issuer,
            audiences,
            leeway: DEFAULT_LEEWAY_SECONDS as i64,
            algorithms: Algorithm::ALL.to_vec(),
            kind: Kind::Access,
        })
    }

    /// Sets the clock leeway applied to `exp` and `nbf`; at most [`MAX_LEEWAY_SECONDS`].
    pub fn leeway(mut self, seconds: u64) -> Result<Validation, Error> {
        if seconds > MAX_LEEWAY_SECONDS {
            return Err(Error::InvalidOptions);
        }
        self.leeway = seconds as i64;
        Ok(self)
    }

    /// Restricts the algorithms accepted (a key of another algorithm never verifies).
    pub fn algorithms(mut self, algorithms: &[Algorithm]) -> Result<Validation, Error> {
        if algorithms.is_empty() {
            return Err(Error::InvalidOptions);
        }
        self.algorithms = algorithms.to_vec();
        Ok(self)
    }

    /// Verifies OpenID Connect ID tokens (`typ` `JWT` or none) instead of
    /// access tokens (`at+jwt`): the two never pass for each other.
    pub fn id_tokens(mut self) -> Validation {
        self.kind = Kind::Id;
        self
    }

    /// The expected issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The time rules alone, for claims that passed every other rule
    /// earlier (a cache of verified tokens): `exp`, and `nbf` if present,
    /// with the leeway, at `now`.
    pub fn check_time(&self, exp: i64, nbf: Option<i64>, now: i64) -> Result<(), Error> {
        if now.saturating_sub(self.leeway) >= exp {
            return Err(Error::Expired);
        }
        if nbf.is_some_and(|nbf| now.saturating_add(self.leeway) < nbf) {
            return Err(Error::NotYetValid);
        }
        Ok(())
    }
}

/// A token whose signature and claims passed every rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The protected header.
    pub header: Header,
    /// Every claim of the payload, as JSON.
    pub payload: Map<String, Value>,
    /// The payload exactly as the token carried it (valid, duplicate-free JSON text).
    pub payload_json: String,
}

impl Verified {
    /// The payload as latch's typed claims (fails for tokens lacking latch's own claims).
    pub fn claims(&self) -> Result<Claims, Error> {
        Claims::from_payload(&self.payload)
    }
}

/// Verifies `token` against the trusted `keys` and `validation` at time `now` (Unix seconds).
pub fn verify(token: &str, keys: &KeySet, validation: &Validation, now: i64) -> Result<Verified, Error> {
    let prepared = prepare(token, keys, validation)?;
    prepared.check_signature()?;
    prepared.finish(validation, now)
}

/// A token whose size, structure and header passed, with the one key that
/// may have signed it: what a signature check needs.
#[derive(Debug)]
pub struct Prepared<'t, 'k> {
    key: &'k VerifyingKey,
    key_index: usize,
    header: ParsedHeader,
    signing_input: &'t str,
    payload: &'t str,
    signature: Vec<u8>,
}

impl<'t, 'k> Prepared<'t, 'k> {
    /// The key the token's `kid` names, bound to the token's algorithm.
    pub fn key(&self) -> &'k VerifyingKey {
        self.key
    }

    /// That key's position in the key set's [`KeySet::keys`], stable for the
    /// set's lifetime: callers cache per-key work (an imported WebCrypto key) under it.
    pub fn key_index(&self) -> usize {
        self.key_index
    }

    /// The bytes the signature covers (`header.payload`).
    pub fn signing_input(&self) -> &'t [u8] {
        self.signing_input.as_bytes()
    }

    /// The decoded signature.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// One copy of the signature check for every caller (the wasm stays small).
    #[inline(never)]
    fn check_signature(&self) -> Result<(), Error> {
        self.key.verify_signature(self.signing_input.as_bytes(), &self.signature)
    }

    /// The payload's JSON text and object (valid, duplicate-free).
    fn payload(&self) -> Result<(String, Map<String, Value>), Error> {
        let payload_json = String::from_utf8(b64::decode(self.payload)?).map_err(|_| Error::Malformed)?;
        let payload = json::parse_object_text(&payload_json)?;
        Ok((payload_json, payload))
    }

    fn finish(self, validation: &Validation, now: i64) -> Result<Verified, Error> {
        let (payload_json, payload) = self.payload()?;
        check_claims(&payload, validation, now)?;
        let header = Header { alg: self.key.algorithm(), kid: self.header.kid, typ: self.header.typ };
        Ok(Verified { header, payload, payload_json })
    }
}

/// Verifies a tenant's signed revocation feed (docs/revocation-feed.md)
/// against the same `keys` and the `validation`'s issuer and algorithms:
/// `typ` [`crate::REVOCATION_FEED_TYPE`] (so no token passes for a feed, nor
/// a feed for a token), at most [`MAX_FEED_BYTES`], a valid signature, and
/// `iss` exactly the issuer. Returns the payload's JSON text; the entries'
/// form is the caller's to read ([`crate::RevocationFeed`]).
pub fn verify_revocation_feed(document: &str, keys: &KeySet, validation: &Validation) -> Result<String, Error> {
    let parts = Parts::split_at_most(document, MAX_FEED_BYTES)?;
    let prepared = prepare_parts(parts, keys, validation, Kind::RevocationFeed)?;
    prepared.check_signature()?;
    let (payload_json, payload) = prepared.payload()?;
    match payload.get("iss") {
        Some(Value::String(iss)) if *iss == validation.issuer => Ok(payload_json),
        Some(Value::String(_)) => Err(Error::WrongIssuer),
        Some(_) => Err(Error::InvalidClaim("iss")),
        None => Err(Error::MissingClaim("iss")),
    }
}

/// A [`Prepared`] token holding its own copies, kept across a signature
/// check made elsewhere (WebCrypto, `node:crypto`) and finished without
/// preparing the token again.
#[derive(Debug)]
pub struct PreparedOwned {
    key_index: usize,
    algorithm: Algorithm,
    header: ParsedHeader,
    /// `header.payload`, the payload from `payload_start`.
    signing_input: String,
    payload_start: usize,
    signature: Vec<u8>,
}

impl Prepared<'_, '_> {
    /// The same, owning its parts.
    pub fn into_owned(self) -> PreparedOwned {
        PreparedOwned {
            key_index: self.key_index,
            algorithm: self.key.algorithm(),
            header: self.header,
            signing_input: self.signing_input.to_owned(),
            payload_start: self.signing_input.len() - self.payload.len(),
            signature: self.signature,
        }
    }
}

impl PreparedOwned {
    /// See [`Prepared::key_index`].
    pub fn key_index(&self) -> usize {
        self.key_index
    }

    /// See [`Prepared::signing_input`].
    pub fn signing_input(&self) -> &[u8] {
        self.signing_input.as_bytes()
    }

    /// See [`Prepared::signature`].
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// The second half of [`verify`] after a signature check of
    /// [`Self::signing_input`] and [`Self::signature`] elsewhere, whose
    /// result is `signature_valid`: the claims, with the key set and rules
    /// the token was prepared with (another set's key at that index, or of
    /// another algorithm, is `UnknownKid`).
    pub fn finish(
        self,
        keys: &KeySet,
        validation: &Validation,
        now: i64,
        signature_valid: bool,
    ) -> Result<Verified, Error> {
        let key =
            keys.keys().get(self.key_index).filter(|key| key.algorithm() == self.algorithm).ok_or(Error::UnknownKid)?;
        if !signature_valid {
            return Err(Error::BadSignature);
        }
        let prepared = Prepared {
            key,
            key_index: self.key_index,
            header: self.header,
            signing_input: &self.signing_input,
            payload: &self.signing_input[self.payload_start..],
            signature: self.signature,
        };
        prepared.finish(validation, now)
    }
}

/// The first half of [`verify`]: every rule up to the signature (size,
/// structure, `alg`, `crit`, `typ`, key lookup and algorithm binding, the
/// signature's encoding).
pub fn prepare<'t, 'k>(token: &'t str, keys: &'k KeySet, validation: &Validation) -> Result<Prepared<'t, 'k>, Error> {
    prepare_parts(Parts::split(token)?, keys, validation, validation.kind)
}

fn prepare_parts<'t, 'k>(
    parts: Parts<'t>,
    keys: &'k KeySet,
    validation: &Validation,
    kind: Kind,
) -> Result<Prepared<'t, 'k>, Error> {
    let header = parts.header(kind)?;
    let (key_index, key) = select_key(&header, keys, validation)?;
    let signature = b64::decode(parts.signature)?;
    key.check_signature_encoding(&signature)?;
    Ok(Prepared { key, key_index, header, signing_input: parts.signing_input, payload: parts.payload, signature })
}

/// The second half of [`verify`] for callers that checked the signature of
/// [`prepare`]'s result elsewhere (WebCrypto): the same rules up to the
/// signature again, then the claims. `signature_valid` is that check's result.
pub fn finish_after_external_signature(
    token: &str,
    keys: &KeySet,
    validation: &Validation,
    now: i64,
    signature_valid: bool,
) -> Result<Verified, Error> {
    let prepared = prepare(token, keys, validation)?;
    if !signature_valid {
        return Err(Error::BadSignature);
    }
    prepared.finish(validation, now)
}

/// A token's header and payload, decoded but not verified.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The protected header.
    pub header: Map<String, Value>,
    /// The claims.
    pub payload: Map<String, Value>,
    /// The header as the token carried it (valid JSON text).
    pub header_json: String,
    /// The payload as the token carried it (valid JSON text).
    pub payload_json: String,
}

/// Decodes a token's header and payload without checking anything but their
/// form. Never use the result for an access decision.
pub fn decode_unverified(token: &str) -> Result<Decoded, Error> {
    let parts = Parts::split(token)?;
    let text = |segment| String::from_utf8(b64::decode(segment)?).map_err(|_| Error::Malformed);
    let (header_json, payload_json) = (text(parts.header)?, text(parts.payload)?);
    Ok(Decoded {
        header: json::parse_object_text(&header_json)?,
        payload: json::parse_object_text(&payload_json)?,
        header_json,
        payload_json,
    })
}

struct Parts<'a> {
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
    signing_input: &'a str,
}

impl<'a> Parts<'a> {
    fn split(token: &'a str) -> Result<Parts<'a>, Error> {
        Parts::split_at_most(token, MAX_TOKEN_BYTES)
    }

    fn split_at_most(token: &'a str, max_bytes: usize) -> Result<Parts<'a>, Error> {
        if token.len() > max_bytes {
            return Err(Error::TooLarge);
        }
        let mut segments = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (segments.next(), segments.next(), segments.next(), segments.next())
        else {
            return Err(Error::Malformed);
        };
        if header.is_empty() || payload.is_empty() || signature.is_empty() {
            return Err(Error::Malformed);
        }
        let signing_input = &token[..header.len() + 1 + payload.len()];
        Ok(Parts { header, payload, signature, signing_input })
    }

    fn header(&self, kind: Kind) -> Result<ParsedHeader, Error> {
        let object = json::parse_object(&b64::decode(self.header)?)?;
        ParsedHeader::from_object(&object, kind)
    }
}

#[derive(Debug)]
struct ParsedHeader {
    alg: String,
    kid: Option<String>,
    typ: String,
}

impl ParsedHeader {
    fn from_object(header: &Map<String, Value>, kind: Kind) -> Result<ParsedHeader, Error> {
        let alg = match header.get("alg") {
            Some(Value::String(alg)) => alg.clone(),
            _ => return Err(Error::Malformed),
        };
        match header.get("crit") {
            None => {}
            // RFC 7515 §4.1.11: an empty list or non-string entries are invalid;
            // any entry names an extension we do not implement.
            Some(Value::Array(names)) if !names.is_empty() && names.iter().all(Value::is_string) => {
                return Err(Error::UnsupportedCrit);
            }
            Some(_) => return Err(Error::Malformed),
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err(Error::Malformed),
        };
        let typ = match (kind, header.get("typ")) {
            (Kind::Access, Some(Value::String(typ))) if is_access_token_type(typ) => typ.clone(),
            (Kind::Id, Some(Value::String(typ))) if typ.eq_ignore_ascii_case("JWT") => typ.clone(),
            (Kind::Id, None) => String::new(),
            (Kind::RevocationFeed, Some(Value::String(typ))) if typ == crate::REVOCATION_FEED_TYPE => typ.clone(),
            _ => return Err(Error::WrongType),
        };
        // jku, x5u, jwk and x5c are deliberately never read: keys come only from the KeySet.
        Ok(ParsedHeader { alg, kid, typ })
    }
}

fn is_access_token_type(typ: &str) -> bool {
    typ.eq_ignore_ascii_case(crate::ACCESS_TOKEN_TYPE) || typ.eq_ignore_ascii_case("application/at+jwt")
}

/// Finds the key named by `kid` and checks the header's `alg` is that key's one algorithm.
fn select_key<'k>(
    header: &ParsedHeader,
    keys: &'k KeySet,
    validation: &Validation,
) -> Result<(usize, &'k VerifyingKey), Error> {
    let named = Algorithm::parse(&header.alg).ok_or(Error::AlgNotAllowed)?;
    if !validation.algorithms.contains(&named) {
        return Err(Error::AlgNotAllowed);
    }
    let (index, key) = keys.find(header.kid.as_deref())?;
    if key.algorithm() != named {
        return Err(Error::AlgNotAllowed);
    }
    Ok((index, key))
}

fn check_claims(payload: &Map<String, Value>, validation: &Validation, now: i64) -> Result<(), Error> {
    let exp = numeric_date(payload, "exp")?.ok_or(Error::MissingClaim("exp"))?;
    let nbf = numeric_date(payload, "nbf")?;
    numeric_date(payload, "iat")?;
    validation.check_time(exp, nbf, now)?;
    match payload.get("iss") {
        Some(Value::String(iss)) if *iss == validation.issuer => {}
        Some(Value::String(_)) => return Err(Error::WrongIssuer),
        Some(_) => return Err(Error::InvalidClaim("iss")),
        None => return Err(Error::MissingClaim("iss")),
    }
    let aud = audience(payload)?;
    if !validation.audiences.iter().any(|accepted| aud.contains(accepted)) {
        return Err(Error::WrongAudience);
    }
    Ok(())
}
