/// Why a token, key or option was rejected.
///
/// Every variant has a distinct, stable [`Error::code`] that the server's
/// error bodies and the npm package's `VerifyError.code` expose unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The token is longer than [`crate::MAX_TOKEN_BYTES`].
    #[error("token is larger than 8 KiB")]
    TooLarge,
    /// Not three base64url segments of UTF-8 JSON objects, or a header that breaks JWS syntax.
    #[error("token is not a well-formed compact JWS")]
    Malformed,
    /// A JSON object in the header or payload repeats a member name.
    #[error("a JSON object in the token repeats a member name")]
    DuplicateMember,
    /// The header's `alg` is `none`, unknown, not allowed by the options, or differs from the key's.
    #[error("the token's algorithm is not allowed for its key")]
    AlgNotAllowed,
    /// The header lists a `crit` extension this verifier does not understand.
    #[error("the token names a critical header extension that is not supported")]
    UnsupportedCrit,
    /// The header's `typ` is not `at+jwt` (or `application/at+jwt`).
    #[error("the token is not an access token (typ must be at+jwt)")]
    WrongType,
    /// No key in the key set has the header's `kid`.
    #[error("no key in the key set matches the token's kid")]
    UnknownKid,
    /// The signature does not verify with the key.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// `exp` is in the past, beyond the leeway.
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future, beyond the leeway.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iss` is not exactly the expected issuer.
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    /// `aud` does not contain an accepted audience.
    #[error("the token is meant for another audience")]
    WrongAudience,
    /// A required claim is absent.
    #[error("the token lacks the required claim `{0}`")]
    MissingClaim(&'static str),
    /// A claim has the wrong JSON type or an out-of-range value.
    #[error("the token's claim `{0}` has an invalid value")]
    InvalidClaim(&'static str),
    /// A key in the key set is malformed or too weak.
    #[error("a key in the key set is invalid")]
    InvalidKey,
    /// The validation options are inconsistent (empty issuer, no audience, leeway above the maximum).
    #[error("the verification options are invalid")]
    InvalidOptions,
}

impl Error {
    /// Every code [`Error::code`] can return (a test keeps the two in step).
    pub const CODES: &'static [&'static str] = &[
        "too_large",
        "malformed",
        "duplicate_member",
        "alg_not_allowed",
        "unsupported_crit",
        "wrong_type",
        "unknown_kid",
        "bad_signature",
        "expired",
        "not_yet_valid",
        "wrong_issuer",
        "wrong_audience",
        "missing_claim",
        "invalid_claim",
        "invalid_key",
        "invalid_options",
    ];

    /// The stable machine-readable code, e.g. `"expired"` or `"bad_signature"`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::TooLarge => "too_large",
            Error::Malformed => "malformed",
            Error::DuplicateMember => "duplicate_member",
            Error::AlgNotAllowed => "alg_not_allowed",
            Error::UnsupportedCrit => "unsupported_crit",
            Error::WrongType => "wrong_type",
            Error::UnknownKid => "unknown_kid",
            Error::BadSignature => "bad_signature",
            Error::Expired => "expired",
            Error::NotYetValid => "not_yet_valid",
            Error::WrongIssuer => "wrong_issuer",
            Error::WrongAudience => "wrong_audience",
            Error::MissingClaim(_) => "missing_claim",
            Error::InvalidClaim(_) => "invalid_claim",
            Error::InvalidKey => "invalid_key",
            Error::InvalidOptions => "invalid_options",
        }
    }
}
