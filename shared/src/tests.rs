//! The verification rules, one test per rule and per attack. They run
//! natively and, under `wasm-bindgen-test`, in wasm32 too (the tests that
//! need the `sign` feature only natively).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer as _;
use serde_json::{Value, json};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use crate::*;

const ISS: &str = "https://auth.example/t/acme";
const AUD: &str = "acme";
const NOW: i64 = 1_800_000_000;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn claims() -> Value {
    json!({
        "iss": ISS, "sub": "user-1", "aud": AUD, "exp": NOW + 900, "iat": NOW, "nbf": NOW,
        "jti": "j1", "tid": "acme", "sid": "s1", "roles": ["user"], "scope": "openid profile"
    })
}

fn validation() -> Validation {
    Validation::new(ISS, AUD).expect("valid options")
}

/// An Ed25519 key from a fixed seed, with its JWKS, for hand-made tokens.
struct Ed {
    key: ed25519_dalek::SigningKey,
    kid: &'static str,
}

impl Ed {
    fn new() -> Ed {
        Ed { key: ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]), kid: "ed-1" }
    }

    fn jwk(&self) -> Jwk {
        Jwk {
            kty: "OKP".into(),
            crv: Some("Ed25519".into()),
            x: Some(b64(self.key.verifying_key().as_bytes())),
            kid: Some(self.kid.into()),
            ..Jwk::default()
        }
    }

    fn keys(&self) -> KeySet {
        KeySet::from_jwks(&Jwks { keys: vec![self.jwk()] }).expect("valid jwks")
    }

    fn header(&self) -> Value {
        json!({"alg": "EdDSA", "kid": self.kid, "typ": "at+jwt"})
    }

    /// Signs arbitrary header and payload bytes.
    fn sign_raw(&self, header: &[u8], payload: &[u8]) -> String {
        let input = format!("{}.{}", b64(header), b64(payload));
        let signature = self.key.sign(input.as_bytes());
        format!("{input}.{}", b64(&signature.to_bytes()))
    }

    fn sign(&self, header: &Value, payload: &Value) -> String {
        self.sign_raw(header.to_string().as_bytes(), payload.to_string().as_bytes())
    }

    fn token(&self) -> String {
        self.sign(&self.header(), &claims())
    }
}

fn with(mut value: Value, name: &str, member: Value) -> Value {
    value[name] = member;
    value
}

fn without(mut value: Value, name: &str) -> Value {
    value.as_object_mut().expect("object").remove(name);
    value
}

#[test]
fn a_well_formed_token_verifies_and_yields_its_claims() {
    let ed = Ed::new();
    let verified = verify(&ed.token(), &ed.keys(), &validation(), NOW).expect("verifies");
    assert_eq!(verified.header.alg, Algorithm::EdDSA);
    assert_eq!(verified.header.kid.as_deref(), Some("ed-1"));
    let claims = verified.claims().expect("latch claims");
    assert_eq!(claims.sub, "user-1");
    assert!(claims.has_role("user") && !claims.has_role("admin"));
    assert!(claims.has_scope("profile") && !claims.has_scope("prof"));
}

#[test]
fn alg_none_is_rejected() {
    let ed = Ed::new();
    let header = json!({"alg": "none", "kid": "ed-1", "typ": "at+jwt"});
    let token = format!("{}.{}.", b64(header.to_string().as_bytes()), b64(claims().to_string().as_bytes()));
    assert_eq!(verify(&token, &ed.keys(), &validation(), NOW).unwrap_err(), Error::Malformed);
    let token = format!("{token}AAAA");
    assert_eq!(verify(&token, &ed.keys(), &validation(), NOW).unwrap_err(), Error::AlgNotAllowed);
}

#[test]
fn hs256_signed_with_the_public_key_as_secret_is_rejected() {
    use hmac::Mac;
    let ed = Ed::new();
    let header = json!({"alg": "HS256", "kid": "ed-1", "typ": "at+jwt"});
    let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims().to_string().as_bytes()));
    for secret in [ed.key.verifying_key().as_bytes().to_vec(), ed.jwk().x.expect("x").into_bytes()] {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&secret).expect("any key size");
        mac.update(input.as_bytes());
        let token = format!("{input}.{}", b64(&mac.finalize().into_bytes()));
        assert_eq!(verify(&token, &ed.keys(), &validation(), NOW).unwrap_err(), Error::AlgNotAllowed);
    }
}

#[test]
fn a_header_alg_that_differs_from_the_keys_is_rejected() {
    let ed = Ed::new();
    let token = ed.sign(&with(ed.header(), "alg", json!("ES256")), &claims());
    assert_eq!(verify(&token, &ed.keys(), &validation(), NOW).unwrap_err(), Error::AlgNotAllowed);
}

#[test]
fn algorithms_outside_the_allowed_list_are_rejected() {
    let ed = Ed::new();
    let only_es256 = validation().algorithms(&[Algorithm::ES256]).expect("non-empty");
    assert_eq!(verify(&ed.token(), &ed.keys(), &only_es256, NOW).unwrap_err(), Error::AlgNotAllowed);
}

#[test]
fn unknown_crit_headers_are_rejected_and_malformed_crit_too() {
    let ed = Ed::new();
    let token = ed.sign(&with(ed.header(), "crit", json!(["exp"])), &claims());
    assert_eq!(verify(&token, &ed.keys(), &validation(), NOW).unwrap_err(), Error::UnsupportedCrit);
    let token = ed.sign(&with(ed.header(), "crit", json!([])), &claims());
    assert_eq!(verify(&token, &ed.keys(), &validation(), NOW).unwrap_err(), Error::Malformed);
    let token = ed.sign(&with(ed.header(), "crit", json!("b64")), &claims());
    assert_eq!(verify(&token, &ed.keys(), &validation(), NOW).unwrap_err(), Error::Malformed);
}

#[test]
fn tokens_over_8_kib_are_rejected_before_parsing() {
    let ed = Ed::new();
    let padding = "x".repeat(MAX_TOKEN_BYTES);
    let token = ed.sign(&ed.header(), &with(claims(), "pad", json!(padding)));
    assert_eq!(verify(&token, &ed.keys(), &validation(), NOW).unwrap_err(), Error::TooLarge);
    assert_eq!(verify(&"a".repeat(MAX_TOKEN_BYTES + 1), &ed.keys(), &validation(), NOW).unwrap_err(), Error::TooLarge);
}

#[test]
fn a_tampered_payload_fails_the_signature() {
    let ed = Ed::new();
    let token = ed.token();
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = b64(with(claims(), "roles", json!(["admin"])).to_string().as_bytes());
    assert_eq!(verify(&parts.join("."), &ed.keys(), &validation(), NOW).unwrap_err(), Error::BadSignature);
}

#[test]
fn typ_must_be_an_access_token_type() {
    let ed = Ed::new();
    for typ in [json!("JWT"), json!(1), Value::Null] {
        let token = ed.sign(&with(ed.header(), "typ", typ), &claims());
        assert_eq!(verify(&token, &ed.keys(), &validation(), NOW).unwrap_err(), Error::WrongType);
    }
    let token = ed.sign(&without(ed.header(), "typ"), &claims());
    assert_eq!(verify(&token, &ed.keys(), &validation(), NOW).unwrap_err(), Error::WrongType);
    let token = ed.sign(&with(ed.header(), "typ", json!("application/AT+JWT")), &claims());
    assert!(verify(&token, &ed.keys(), &validation(), NOW).is_ok());
}

#[test]
fn expiry_is_checked_at_the_leeway_edge() {
    let ed = Ed::new();
    let token = ed.sign(&ed.header(), &with(claims(), "exp", json!(NOW - 30)));
    assert_eq!(verify(&token, &ed.keys(), &validation(), NOW).unwrap_err(), Error::Expired);
    let token = ed.sign(&ed.header(), &with(claims(), "exp", json!(NOW - 29)));
    assert!(verify(&token, &ed.keys(), &validation(), NOW).is_ok());
    let strict = validation().leeway(0).expect("allowed");
    let token = ed.sign(&ed.header(), &with(claims(), "exp", json!(NOW)));
    assert_eq!(verify(&token, &ed.keys(), &strict, NOW).unwrap_err(), Error::Expired);
    let token = ed.sign(&ed.header(), &with(claims(), "exp", json!(NOW + 1)));
    assert!(verify(&token, &ed.keys(), &strict, NOW).is_ok());
}

#[test]
fn not_before_is_checked_at_the_leeway_edge() {
    let ed = Ed::new();
    let token = ed.sign(&ed.header(), &with(claims(), "nbf", json!(NOW + 31)));
    assert_eq!(verify(&token, &ed.keys(), &validation(), NOW).unwrap_err(), Error::NotYetValid);
    let token = ed.sign(&ed.header(), &with(claims(), "nbf", json!(NOW + 30)));
    assert!(verify(&token, &ed.keys(), &validation(), NOW).is_ok());
}

#[test]
fn leeway_above_five_minutes_is_refused() {
    assert_eq!(validation().leeway(MAX_LEEWAY_SECONDS + 1).unwrap_err(), Error::InvalidOptions);
    assert!(validation().leeway(MAX_LEEWAY_SECONDS).is_ok());
}

#[test]
fn numeric_dates_are_type_checked_and_cannot_overflow() {
    let ed = Ed::new();
    for (name, value) in [
        ("exp", json!("1900000000")),
        ("exp", json!(true)),
        ("exp", json!(1e300)),
        ("exp", json!(u64::MAX)),
        ("nbf", json!("0")),
        ("iat", json!([1])),
    ] {
        let token = ed.sign(&ed.header(), &with(claims(), name, value.clone()));
        assert_eq!(
            verify(&token, &ed.keys(), &validation(), NOW).unwrap_err(),
            Error::InvalidClaim(name),
            "{name}={value}"
        );
    }
    let token = ed.sign(&ed.header(), &without(claims(), "exp"));
    assert_eq!(verify(&token, &ed.keys(), &validation(), NOW).unwrap_err(), Error::MissingClaim("exp"));
    let token = ed.sign(&ed.header(), &with(claims(), "exp", json!((NOW + 60) as f64 + 0.5)));
    assert!(verify(&token, &ed.keys(), &validation(), NOW).is_ok(), "fractional NumericDate");
    let token = ed.sign(&ed.header(), &claims());
    assert_eq!(verify(&token, &ed.keys(), &validation(), i64::MIN).unwrap_err(), Error::NotYetValid);
    assert_eq!(verify(&token, &ed.keys(), &validation(), i64::MAX).unwrap_err(), Error::Expired);
}

#[test]
fn issuer_must_match_exactly() {
    let ed = Ed::new();
    for iss in [format!("{ISS}/"), ISS.to_uppercase(), "https://auth.example/t/other".into()] {
        let token = ed.sign(&ed.header(), &with(claims(), "iss", json!(iss)));
        assert_eq!(verify(&token, &ed.keys(), &validation(), NOW).unwrap_err(), Error::WrongIssuer);
    }
    let token = ed.sign(&ed.header(), &without(claims(), "iss"));
    assert_eq!(verify(&token, &ed.keys(), &validation(), NOW).unwrap_err(), Error::MissingClaim("iss"));
}

#[test]
fn audience_must_be_present_and_match() {
    let ed = Ed::new();
    let token = ed.sign(&ed.header(), &without(claims(), "aud"));
    assert_eq!(verify(&token, &ed.keys(), &validation(), NOW).unwrap_err(), Error::MissingClaim("aud"));
    let token = ed.sign(&ed.header(), &with(claims(), "aud", json!("other")));
    assert_eq!(verify(&token, &ed.keys(), &validation(), NOW).unwrap_err(), Error::WrongAudience);
    let token = ed.sign(&ed.header(), &with(claims(), "aud", json!(["other", AUD])));
    assert!(verify(&token, &ed.keys(), &validation(), NOW).is_ok());
    let token = ed.sign(&ed.header(), &with(claims(), "aud", json!([])));
    assert_eq!(verify(&token, &ed.keys(), &validation(), NOW).unwrap_err(), Error::InvalidClaim("aud"));
}

#[test]
fn duplicate_member_names_are_rejected_in_header_and_payload() {
    let ed = Ed::new();
    let payload = claims().to_string();
    let doubled = format!(r#"{{"exp":{},{}"#, NOW - 1000, &payload[1..]);
    let token = ed.sign_raw(ed.header().to_string().as_bytes(), doubled.as_bytes());
    assert_eq!(verify(&token, &ed.keys(), &validation(), NOW).unwrap_err(), Error::DuplicateMember);
    let header = r#"{"alg":"EdDSA","kid":"ed-1","typ":"at+jwt","kid":"ed-1"}"#;
    let token = ed.sign_raw(header.as_bytes(), payload.as_bytes());
    assert_eq!(verify(&token, &ed.keys(), &validation(), NOW).unwrap_err(), Error::DuplicateMember);
}

#[test]
fn non_utf8_and_non_canonical_encodings_are_malformed() {
    let ed = Ed::new();
    let token = ed.sign_raw(ed.header().to_string().as_bytes(), b"{\"sub\":\"\xff\"}");
    assert_eq!(verify(&token, &ed.keys(), &validation(), NOW).unwrap_err(), Error::Malformed);
    let token = ed.token();
    let parts: Vec<&str> = token.split('.').collect();
    let padded = format!("{}=.{}.{}", parts[0], parts[1], parts[2]);
    assert_eq!(verify(&padded, &ed.keys(), &validation(), NOW).unwrap_err(), Error::Malformed);
    for broken in ["", "a.b", "a.b.c.d", "..", "a..c"] {
        assert_eq!(verify(broken, &ed.keys(), &validation(), NOW).unwrap_err(), Error::Malformed, "{broken:?}");
    }
}

#[test]
fn keys_named_by_the_token_itself_are_ignored() {
    let ed = Ed::new();
    let attacker = Ed { key: ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]), kid: "ed-1" };
    let header = json!({
        "alg": "EdDSA", "kid": "ed-1", "typ": "at+jwt",
        "jwk": attacker.jwk(), "jku": "https://attacker.example/jwks.json", "x5u": "https://attacker.example/x5"
    });
    let token = attacker.sign(&header, &claims());
    assert_eq!(verify(&token, &ed.keys(), &validation(), NOW).unwrap_err(), Error::BadSignature);
    let token = attacker.sign(&with(header, "kid", json!("attacker")), &claims());
    assert_eq!(verify(&token, &ed.keys(), &validation(), NOW).unwrap_err(), Error::UnknownKid);
}

#[test]
fn kid_is_required_when_the_set_holds_several_keys() {
    let ed = Ed::new();
    let token = ed.sign(&without(ed.header(), "kid"), &claims());
    assert!(verify(&token, &ed.keys(), &validation(), NOW).is_ok(), "a single key needs no kid");
    let mut keys = ed.keys();
    keys.push(VerifyingKey::hmac(Some("h".into()), &[1u8; 32]).expect("strong enough"));
    assert_eq!(verify(&token, &keys, &validation(), NOW).unwrap_err(), Error::UnknownKid);
}

#[test]
fn prepare_names_the_position_of_the_key_it_picked() {
    let ed = Ed::new();
    let mut keys = KeySet::default();
    keys.push(VerifyingKey::hmac(Some("h".into()), &[1u8; 32]).expect("strong enough"));
    for key in ed.keys().keys() {
        keys.push(key.clone());
    }
    let token = ed.token();
    let prepared = prepare(&token, &keys, &validation()).expect("prepared");
    assert_eq!(prepared.key_index(), 1);
    assert!(std::ptr::eq(prepared.key(), &keys.keys()[1]));
    let single = ed.keys();
    let without_kid = ed.sign(&without(ed.header(), "kid"), &claims());
    assert_eq!(prepare(&without_kid, &single, &validation()).expect("one key").key_index(), 0);
}

#[test]
fn id_tokens_and_access_tokens_never_pass_for_each_other() {
    let ed = Ed::new();
    let id_token = ed.sign(&with(ed.header(), "typ", json!("JWT")), &claims());
    let untyped = ed.sign(&without(ed.header(), "typ"), &claims());
    let access = ed.token();
    let id_rules = validation().id_tokens();
    assert_eq!(verify(&id_token, &ed.keys(), &validation(), NOW).unwrap_err(), Error::WrongType);
    assert!(verify(&id_token, &ed.keys(), &id_rules, NOW).is_ok());
    assert!(verify(&untyped, &ed.keys(), &id_rules, NOW).is_ok(), "OIDC lets an ID token omit typ");
    assert_eq!(verify(&access, &ed.keys(), &id_rules, NOW).unwrap_err(), Error::WrongType);
}

fn feed() -> Value {
    json!({"iss": ISS, "cursor": "e1.2", "revoked": [["s1", NOW - 10, NOW + 1190], ["s2", NOW - 5, NOW + 1195]]})
}

#[test]
fn a_revocation_feed_verifies_only_as_a_feed_of_its_issuer_and_keys() {
    let ed = Ed::new();
    let feed_header = with(ed.header(), "typ", json!(REVOCATION_FEED_TYPE));
    let document = ed.sign(&feed_header, &feed());
    let payload = verify_revocation_feed(&document, &ed.keys(), &validation()).expect("a good feed");
    let parsed: RevocationFeed = serde_json::from_str(&payload).expect("the feed's form");
    assert_eq!(
        parsed.revoked,
        vec![RevokedSession("s1".into(), NOW - 10, NOW + 1190), RevokedSession("s2".into(), NOW - 5, NOW + 1195)]
    );
    assert_eq!((parsed.cursor.as_str(), parsed.since), ("e1.2", None));

    // Neither passes for the other: a feed is no access token, a token no feed.
    assert_eq!(verify(&document, &ed.keys(), &validation(), NOW).unwrap_err(), Error::WrongType);
    assert_eq!(verify_revocation_feed(&ed.token(), &ed.keys(), &validation()).unwrap_err(), Error::WrongType);
    // Another tenant's feed (its issuer), another key, a changed entry, no typ.
    let foreign = ed.sign(&feed_header, &with(feed(), "iss", json!("https://auth.example/t/other")));
    assert_eq!(verify_revocation_feed(&foreign, &ed.keys(), &validation()).unwrap_err(), Error::WrongIssuer);
    let stranger = Ed { key: ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]), kid: "ed-1" };
    assert_eq!(
        verify_revocation_feed(&stranger.sign(&feed_header, &feed()), &ed.keys(), &validation()).unwrap_err(),
        Error::BadSignature
    );
    let [header, _, signature] = <[&str; 3]>::try_from(document.split('.').collect::<Vec<_>>()).expect("three parts");
    let emptied = format!("{header}.{}.{signature}", b64(with(feed(), "revoked", json!([])).to_string().as_bytes()));
    assert_eq!(verify_revocation_feed(&emptied, &ed.keys(), &validation()).unwrap_err(), Error::BadSignature);
    let untyped = ed.sign(&without(ed.header(), "typ"), &feed());
    assert_eq!(verify_revocation_feed(&untyped, &ed.keys(), &validation()).unwrap_err(), Error::WrongType);
    // Larger than a token may be, up to the feed's own bound.
    let many: Vec<Value> = (0..2000).map(|i| json!([format!("{i:036}"), NOW, NOW + 900])).collect();
    let large = ed.sign(&feed_header, &with(feed(), "revoked", json!(many)));
    assert!(large.len() > MAX_TOKEN_BYTES);
    assert!(verify_revocation_feed(&large, &ed.keys(), &validation()).is_ok());
    let oversized = "a".repeat(MAX_FEED_BYTES + 1);
    assert_eq!(verify_revocation_feed(&oversized, &ed.keys(), &validation()).unwrap_err(), Error::TooLarge);
}

#[test]
fn small_order_ed25519_keys_and_signatures_are_rejected() {
    // The identity point as the public key, with R = identity and S = 0:
    // a lax verifier accepts this "signature" for every message.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let jwk = Jwk {
        kty: "OKP".into(),
        crv: Some("Ed25519".into()),
        x: Some(b64(&identity)),
        kid: Some("weak".into()),
        ..Jwk::default()
    };
    let keys = KeySet::from_jwks(&Jwks { keys: vec![jwk] }).expect("decodes");
    let header = json!({"alg": "EdDSA", "kid": "weak", "typ": "at+jwt"});
    let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims().to_string().as_bytes()));
    let mut signature = [0u8; 64];
    signature[0] = 1;
    let token = format!("{input}.{}", b64(&signature));
    assert_eq!(verify(&token, &keys, &validation(), NOW).unwrap_err(), Error::BadSignature);
    // R = the base point and S = 1 satisfy the equation for this key and any
    // message; a verifier that only checks the equation (OpenSSL) accepts it.
    let mut base = [0x66u8; 64];
    base[0] = 0x58;
    base[32..].fill(0);
    base[32] = 1;
    let forged = format!("{input}.{}", b64(&base));
    assert_eq!(prepare(&forged, &keys, &validation()).unwrap_err(), Error::BadSignature);
}

#[test]
fn non_canonical_ed25519_s_is_rejected() {
    let ed = Ed::new();
    let token = ed.token();
    let (input, signature) = token.rsplit_once('.').expect("three parts");
    let mut signature = URL_SAFE_NO_PAD.decode(signature).expect("base64");
    // S + L, where L is the group order: same value mod L, not canonical.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = signature[32 + i] as u16 + L[i] as u16 + carry;
        signature[32 + i] = sum as u8;
        carry = sum >> 8;
    }
    let token = format!("{input}.{}", b64(&signature));
    assert_eq!(verify(&token, &ed.keys(), &validation(), NOW).unwrap_err(), Error::BadSignature);
    assert_eq!(prepare(&token, &ed.keys(), &validation()).unwrap_err(), Error::BadSignature);
}

#[test]
fn ed25519_signatures_of_bad_form_fail_before_any_signature_check() {
    // `prepare` is all a native or WebCrypto check gets: it must refuse what
    // verify_strict refuses for form alone, so both paths accept the same tokens.
    let ed = Ed::new();
    let token = ed.token();
    let (input, signature) = token.rsplit_once('.').expect("three parts");
    let signature = URL_SAFE_NO_PAD.decode(signature).expect("base64");
    let with_r = |r: [u8; 32]| {
        let mut changed = signature.clone();
        changed[..32].copy_from_slice(&r);
        format!("{input}.{}", b64(&changed))
    };
    assert!(prepare(&token, &ed.keys(), &validation()).is_ok());
    for point in curve25519_dalek::constants::EIGHT_TORSION {
        let r = point.compress().to_bytes();
        assert_eq!(prepare(&with_r(r), &ed.keys(), &validation()).unwrap_err(), Error::BadSignature, "small-order R");
        let mut signed = r;
        signed[31] |= 0x80;
        assert_eq!(prepare(&with_r(signed), &ed.keys(), &validation()).unwrap_err(), Error::BadSignature);
    }
    // y = p + 2 (not below the field prime): an encoding no signer produces.
    let mut non_canonical = [0xff; 32];
    non_canonical[0] = 0xef;
    non_canonical[31] = 0x7f;
    assert_eq!(prepare(&with_r(non_canonical), &ed.keys(), &validation()).unwrap_err(), Error::BadSignature);
    let short = format!("{input}.{}", b64(&signature[..63]));
    assert_eq!(prepare(&short, &ed.keys(), &validation()).unwrap_err(), Error::BadSignature);
}

#[test]
fn the_small_order_table_is_exactly_the_eight_torsion_points() {
    let mut expected: Vec<[u8; 32]> = curve25519_dalek::constants::EIGHT_TORSION
        .iter()
        .map(|point| {
            let mut y = point.compress().to_bytes();
            y[31] &= 0x7f;
            y
        })
        .collect();
    expected.sort();
    expected.dedup();
    let mut table = crate::jwk::SMALL_ORDER_Y.to_vec();
    table.sort();
    assert_eq!(table, expected);
}

#[test]
fn rsa_keys_under_2048_bits_are_refused() {
    let jwk = Jwk { kty: "RSA".into(), n: Some(b64(&[0xc5; 128])), e: Some(b64(&[1, 0, 1])), ..Jwk::default() };
    assert_eq!(KeySet::from_jwks(&Jwks { keys: vec![jwk] }).unwrap_err(), Error::InvalidKey);
}

#[test]
fn keys_of_other_uses_or_curves_are_skipped() {
    let ed = Ed::new();
    let encryption = Jwk { use_: Some("enc".into()), ..ed.jwk() };
    let p384 = Jwk { kty: "EC".into(), crv: Some("P-384".into()), ..Jwk::default() };
    let ps256 = Jwk { alg: Some("PS256".into()), ..Jwk { kty: "RSA".into(), ..Jwk::default() } };
    let keys = KeySet::from_jwks(&Jwks { keys: vec![encryption, p384, ps256, ed.jwk()] }).expect("valid");
    assert_eq!(keys.keys().len(), 1);
}

#[test]
fn decode_unverified_reads_header_and_payload_without_checks() {
    let ed = Ed::new();
    let token = ed.sign(&ed.header(), &with(claims(), "exp", json!(0)));
    let decoded = decode_unverified(&token).expect("decodes");
    assert_eq!(decoded.header["alg"], "EdDSA");
    assert_eq!(decoded.payload["exp"], 0);
}

/// Every variant has its own code, and `Error::CODES` lists exactly them:
/// the match below has no wildcard, so a new variant does not compile until it is here.
#[test]
fn error_codes_are_distinct_and_listed_in_error_codes() {
    let every = [
        Error::TooLarge,
        Error::Malformed,
        Error::DuplicateMember,
        Error::AlgNotAllowed,
        Error::UnsupportedCrit,
        Error::WrongType,
        Error::UnknownKid,
        Error::BadSignature,
        Error::Expired,
        Error::NotYetValid,
        Error::WrongIssuer,
        Error::WrongAudience,
        Error::MissingClaim("exp"),
        Error::InvalidClaim("exp"),
        Error::InvalidKey,
        Error::InvalidOptions,
    ];
    for error in every {
        match error {
            Error::TooLarge
            | Error::Malformed
            | Error::DuplicateMember
            | Error::AlgNotAllowed
            | Error::UnsupportedCrit
            | Error::WrongType
            | Error::UnknownKid
            | Error::BadSignature
            | Error::Expired
            | Error::NotYetValid
            | Error::WrongIssuer
            | Error::WrongAudience
            | Error::MissingClaim(_)
            | Error::InvalidClaim(_)
            | Error::InvalidKey
            | Error::InvalidOptions => {}
        }
    }
    let codes: Vec<&str> = every.iter().map(Error::code).collect();
    assert_eq!(codes, Error::CODES);
    let distinct: std::collections::HashSet<_> = codes.iter().collect();
    assert_eq!(distinct.len(), codes.len());
}

#[test]
fn the_two_phase_path_applies_the_same_rules_as_verify() {
    let ed = Ed::new();
    let keys = ed.keys();
    let token = ed.token();
    let prepared = prepare(&token, &keys, &validation()).expect("header and key pass");
    assert_eq!(prepared.key().algorithm(), Algorithm::EdDSA);
    assert_eq!(prepared.key().public_jwk().and_then(|j| j.x.clone()), ed.jwk().x);
    let (input, _) = token.rsplit_once('.').expect("three parts");
    assert_eq!(prepared.signing_input(), input.as_bytes());
    assert_eq!(prepared.signature().len(), 64);

    let finished = finish_after_external_signature(&token, &keys, &validation(), NOW, true).expect("valid");
    assert_eq!(finished, verify(&token, &keys, &validation(), NOW).expect("valid"));
    assert_eq!(finish_after_external_signature(&token, &keys, &validation(), NOW, false), Err(Error::BadSignature));
    let expired = ed.sign(&ed.header(), &with(claims(), "exp", json!(NOW - 100)));
    assert_eq!(finish_after_external_signature(&expired, &keys, &validation(), NOW, true), Err(Error::Expired));
    let bad_type = ed.sign(&with(ed.header(), "typ", json!("JWT")), &claims());
    assert_eq!(finish_after_external_signature(&bad_type, &keys, &validation(), NOW, true), Err(Error::WrongType));
    assert!(prepare("a.b", &keys, &validation()).is_err());

    // Owned, it finishes the same way without the token.
    let owned = prepare(&token, &keys, &validation()).expect("prepares").into_owned();
    assert_eq!((owned.signing_input(), owned.key_index()), (input.as_bytes(), 0));
    assert_eq!(owned.finish(&keys, &validation(), NOW, true), verify(&token, &keys, &validation(), NOW));
    let owned = prepare(&token, &keys, &validation()).expect("prepares").into_owned();
    assert_eq!(owned.finish(&keys, &validation(), NOW, false), Err(Error::BadSignature));
    let owned = prepare(&expired, &keys, &validation()).expect("prepares").into_owned();
    assert_eq!(owned.finish(&keys, &validation(), NOW, true), Err(Error::Expired));
    let owned = prepare(&token, &keys, &validation()).expect("prepares").into_owned();
    assert_eq!(owned.finish(&KeySet::default(), &validation(), NOW, true), Err(Error::UnknownKid), "another key set");
}

/// Tests that generate keys through the `sign` feature (native only).
#[cfg(feature = "sign")]
mod signing {
    use super::*;
    use crate::sign::SigningKey;

    #[test]
    fn every_algorithm_round_trips_through_sign_and_verify() {
        let mut rng = rand::thread_rng();
        for alg in Algorithm::ALL {
            let key = SigningKey::generate(alg, &mut rng).expect("generates");
            let mut keys = KeySet::default();
            keys.push(key.verifying_key().clone());
            let token = key.sign(&claims()).expect("signs");
            let verified = verify(&token, &keys, &validation(), NOW).unwrap_or_else(|e| panic!("{alg:?}: {e}"));
            assert_eq!(verified.header.alg, alg);
            assert_eq!(verified.header.kid.as_deref(), Some(key.kid()));

            let (input, _) = token.rsplit_once('.').expect("three parts");
            let other = SigningKey::generate(alg, &mut rng).expect("generates");
            let forged = other.sign(&claims()).expect("signs");
            let (_, foreign_signature) = forged.rsplit_once('.').expect("three parts");
            let token = format!("{input}.{foreign_signature}");
            assert_eq!(verify(&token, &keys, &validation(), NOW).unwrap_err(), Error::BadSignature, "{alg:?}");

            let restored = SigningKey::from_private_bytes(key.kid().into(), alg, key.private_bytes().to_vec().into())
                .expect("restores");
            assert_eq!(restored.public_jwk(), key.public_jwk());
        }
    }

    #[test]
    fn hmac_secrets_never_reach_the_public_jwk() {
        let key = SigningKey::generate(Algorithm::HS256, &mut rand::thread_rng()).expect("generates");
        assert!(key.public_jwk().is_none());
        assert!(VerifyingKey::hmac(None, &[0u8; 16]).is_err(), "short secrets are refused");
    }

    #[test]
    fn es256_signatures_with_r_or_s_zero_are_rejected() {
        let key = SigningKey::generate(Algorithm::ES256, &mut rand::thread_rng()).expect("generates");
        let keys = KeySet::from_jwks(&Jwks { keys: vec![key.public_jwk().expect("public").clone()] }).expect("valid");
        let token = key.sign(&claims()).expect("signs");
        let (input, signature) = token.rsplit_once('.').expect("three parts");
        let signature = URL_SAFE_NO_PAD.decode(signature).expect("base64");
        for forged in [
            [0u8; 64].to_vec(),
            [&[0u8; 32][..], &signature[32..]].concat(),
            [&signature[..32], &[0u8; 32][..]].concat(),
        ] {
            let token = format!("{input}.{}", b64(&forged));
            assert_eq!(verify(&token, &keys, &validation(), NOW).unwrap_err(), Error::BadSignature);
        }
    }

    #[test]
    fn rsa_signatures_of_the_wrong_length_or_not_below_the_modulus_are_rejected() {
        let key = SigningKey::generate(Algorithm::RS256, &mut rand::thread_rng()).expect("generates");
        let jwk = key.public_jwk().expect("public").clone();
        let keys = KeySet::from_jwks(&Jwks { keys: vec![jwk.clone()] }).expect("valid");
        let token = key.sign(&claims()).expect("signs");
        let (input, signature) = token.rsplit_once('.').expect("three parts");
        let signature = URL_SAFE_NO_PAD.decode(signature).expect("base64");
        let short = format!("{input}.{}", b64(&signature[1..]));
        assert_eq!(verify(&short, &keys, &validation(), NOW).unwrap_err(), Error::BadSignature);
        let modulus = URL_SAFE_NO_PAD.decode(jwk.n.expect("n")).expect("base64");
        let at_modulus = format!("{input}.{}", b64(&modulus));
        assert_eq!(verify(&at_modulus, &keys, &validation(), NOW).unwrap_err(), Error::BadSignature);
    }
}

#[test]
fn the_rfc_8037_ed25519_example_verifies_strictly() {
    let fixture: Value =
        serde_json::from_str(include_str!("../tests/fixtures/rfc8037-appendix-a.json")).expect("fixture is JSON");
    let jwk: Jwk = serde_json::from_value(fixture["jwk"].clone()).expect("a JWK");
    let key = VerifyingKey::from_jwk(&jwk).expect("valid").expect("an Ed25519 key");
    let jws = fixture["jws"].as_str().expect("jws");
    let (input, signature) = jws.rsplit_once('.').expect("three parts");
    let signature = URL_SAFE_NO_PAD.decode(signature).expect("base64url");
    assert_eq!(key.verify_signature(input.as_bytes(), &signature), Ok(()));
    let other = input.replacen("RXhh", "RXha", 1);
    assert_eq!(key.verify_signature(other.as_bytes(), &signature), Err(Error::BadSignature));
    // As an access token it still fails the typ rule: the example has no `typ`.
    let keys = KeySet::from_jwks(&Jwks { keys: vec![jwk] }).expect("valid");
    let validation = Validation::new("https://issuer", "aud").expect("options");
    assert_eq!(verify(jws, &keys, &validation, NOW).unwrap_err(), Error::WrongType);
}

/// Google's Wycheproof vectors (tests/fixtures/wycheproof, see its README)
/// through each algorithm's signature check, encoding rules included.
mod wycheproof {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex")).collect()
    }

    /// Runs every vector of a file through the key's signature check; `key_of`
    /// builds the key from the group and vector (`None`: latch refuses the key,
    /// so the vector must fail). Returns how many valid vectors passed.
    fn run(file: &str, key_of: impl Fn(&Value, &Value) -> Option<VerifyingKey>) -> usize {
        let vectors: Value = serde_json::from_str(file).expect("fixture is JSON");
        let mut accepted_valid = 0;
        for group in vectors["testGroups"].as_array().expect("groups") {
            for case in group["tests"].as_array().expect("tests") {
                let key = key_of(group, case);
                let message = hex(case["msg"].as_str().expect("msg"));
                let signature = hex(case["sig"].as_str().or(case["tag"].as_str()).expect("sig or tag"));
                let accepted = key.as_ref().is_some_and(|key| key.verify_signature(&message, &signature).is_ok());
                let id = &case["tcId"];
                match case["result"].as_str().expect("result") {
                    "valid" if key.is_some() => {
                        assert!(accepted, "valid vector {id} ({}) rejected", case["comment"]);
                        accepted_valid += 1;
                    }
                    "acceptable" => {}
                    _ => assert!(!accepted, "vector {id} ({}) accepted", case["comment"]),
                }
            }
        }
        accepted_valid
    }

    fn jwk_key(jwk: &Value) -> Option<VerifyingKey> {
        let jwk: Jwk = serde_json::from_value(jwk.clone()).expect("a JWK");
        VerifyingKey::from_jwk(&jwk).ok().flatten()
    }

    #[test]
    fn ed25519() {
        let file = include_str!("../tests/fixtures/wycheproof/ed25519_test.json");
        assert_eq!(run(file, |group, _| jwk_key(&group["publicKeyJwk"])), 88);
    }

    #[test]
    fn ecdsa_p256_sha256_p1363() {
        let file = include_str!("../tests/fixtures/wycheproof/ecdsa_secp256r1_sha256_p1363_test.json");
        // A few groups' keys come only as coordinates (no JWK in the file).
        let key_of = |group: &Value, _: &Value| {
            let public = &group["publicKey"];
            let coordinate = |name: &str| {
                let bytes = hex(public[name].as_str().expect("coordinate"));
                let mut padded = vec![0u8; 32usize.saturating_sub(bytes.len())];
                padded.extend(bytes.iter().skip(bytes.len().saturating_sub(32)));
                b64(&padded)
            };
            jwk_key(&json!({"kty": "EC", "crv": "P-256", "x": coordinate("wx"), "y": coordinate("wy")}))
        };
        assert_eq!(run(file, key_of), 173);
    }

    #[test]
    fn rsa_pkcs1_2048_sha256() {
        let file = include_str!("../tests/fixtures/wycheproof/rsa_signature_2048_sha256_test.json");
        assert_eq!(run(file, |group, _| jwk_key(&group["keyJwk"])), 9);
    }

    #[test]
    fn hmac_sha256() {
        // latch takes secrets of at least 32 bytes and only whole 32-byte tags,
        // so the groups with shorter keys or truncated tags must fail throughout.
        let file = include_str!("../tests/fixtures/wycheproof/hmac_sha256_test.json");
        let passed = run(file, |group, case| {
            let key = hex(case["key"].as_str().expect("key"));
            (group["tagSize"] == 256).then(|| VerifyingKey::hmac(None, &key).ok()).flatten()
        });
        assert_eq!(passed, 30, "the valid vectors with keys of 32 bytes or more and whole tags");
    }
}
