//! Password hashes made elsewhere and imported as they are: bcrypt
//! (`$2a$`/`$2b$`/`$2y$`, as passlib and Supabase write it), PBKDF2-SHA256
//! (passlib's `$pbkdf2-sha256$rounds$salt$hash` and the PHC form), scrypt
//! and argon2id/argon2i (PHC). A user keeps such a hash until their first
//! login, which verifies it with its own scheme and replaces it with the
//! tenant's argon2id (the rehash-on-login every outdated hash gets).
//!
//! The work an imported hash may ask for is bounded when it is imported, so
//! a file cannot make one login take minutes or gigabytes.

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use base64::Engine as _;
use subtle::ConstantTimeEq;

/// bcrypt cost at most (2^16 rounds: seconds per login on one core).
const MAX_BCRYPT_COST: u32 = 16;
/// PBKDF2 iterations at most (Django's 2025 default is 1,000,000).
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
/// Memory one scrypt or argon2 check may use at most.
const MAX_MEMORY_BYTES: u64 = 256 << 20;
/// argon2 passes at most.
const MAX_ARGON2_PASSES: u32 = 16;
/// Parallelism (argon2 lanes, scrypt p) at most.
const MAX_PARALLELISM: u32 = 16;

/// A password hash scheme latch verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// argon2id, version 19: the one latch writes.
    Argon2id,
    /// argon2i.
    Argon2i,
    /// bcrypt in its modular-crypt form.
    Bcrypt,
    /// PBKDF2 with HMAC-SHA256, passlib's form or PHC.
    Pbkdf2Sha256,
    /// scrypt (PHC).
    Scrypt,
}

impl Scheme {
    /// The name the admin API counts it under.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Argon2id => "argon2id",
            Scheme::Argon2i => "argon2i",
            Scheme::Bcrypt => "bcrypt",
            Scheme::Pbkdf2Sha256 => "pbkdf2-sha256",
            Scheme::Scrypt => "scrypt",
        }
    }
}

/// The scheme of a stored hash, by its form alone; `None` for an invited
/// user's empty hash or anything latch does not know.
pub fn scheme(stored: &str) -> Option<Scheme> {
    if is_bcrypt(stored) {
        return Some(Scheme::Bcrypt);
    }
    if stored.starts_with("$pbkdf2-sha256$") {
        return Some(Scheme::Pbkdf2Sha256);
    }
    match PasswordHash::new(stored).ok()?.algorithm.as_str() {
        "argon2id" => Some(Scheme::Argon2id),
        "argon2i" => Some(Scheme::Argon2i),
        "scrypt" => Some(Scheme::Scrypt),
        _ => None,
    }
}

/// The scheme of a hash latch did not write (an imported one, until its
/// user logs in): anything but argon2id of version 19. `None` for latch's
/// own hashes and an invited user's empty one.
pub fn imported_scheme(stored: &str) -> Option<Scheme> {
    match scheme(stored)? {
        Scheme::Argon2id if PasswordHash::new(stored).is_ok_and(|phc| is_latch_argon2id(&phc)) => None,
        other => Some(other),
    }
}

/// argon2id of version 19, the hashes latch writes.
pub fn is_latch_argon2id(hash: &PasswordHash<'_>) -> bool {
    hash.algorithm == argon2::ARGON2ID_IDENT && hash.version.is_none_or(|v| v == u32::from(argon2::Version::V0x13))
}

fn is_bcrypt(stored: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"].iter().any(|prefix| stored.starts_with(prefix))
}

/// Checks a hash to be imported: a scheme latch verifies, well formed, and
/// asking for no more work than the bounds above. The reason otherwise.
pub fn check_imported(hash: &str) -> Result<Scheme, String> {
    let unknown = || {
        "password_hash: not a hash latch can import (bcrypt $2a$/$2b$/$2y$, $pbkdf2-sha256$, or a PHC \
         string of argon2id, argon2i, pbkdf2-sha256 or scrypt)"
            .to_owned()
    };
    let scheme = scheme(hash).ok_or_else(unknown)?;
    match scheme {
        Scheme::Bcrypt => {
            // (bcrypt's own errors quote the hash: not echoed.)
            let parts: bcrypt::HashParts =
                hash.parse().map_err(|_| "password_hash: not a well-formed bcrypt hash".to_owned())?;
            let cost = parts.get_cost();
            if !(4..=MAX_BCRYPT_COST).contains(&cost) {
                return Err(format!("password_hash: bcrypt cost {cost} is outside 4-{MAX_BCRYPT_COST}"));
            }
        }
        Scheme::Pbkdf2Sha256 => {
            let iterations = match Passlib::parse(hash) {
                Some(passlib) => passlib.rounds,
                None => {
                    let phc = PasswordHash::new(hash).map_err(|e| format!("password_hash: {e}"))?;
                    pbkdf2::Params::try_from(&phc).map_err(|e| format!("password_hash: pbkdf2: {e}"))?.rounds
                }
            };
            if !(1..=MAX_PBKDF2_ITERATIONS).contains(&iterations) {
                return Err(format!(
                    "password_hash: {iterations} PBKDF2 iterations is outside 1-{MAX_PBKDF2_ITERATIONS}"
                ));
            }
        }
        Scheme::Scrypt => {
            let phc = PasswordHash::new(hash).map_err(|e| format!("password_hash: {e}"))?;
            let params = scrypt::Params::try_from(&phc).map_err(|e| format!("password_hash: scrypt: {e}"))?;
            let memory = 128u64 << params.log_n() as u64;
            if memory.saturating_mul(params.r() as u64) > MAX_MEMORY_BYTES || params.p() > MAX_PARALLELISM {
                return Err("password_hash: scrypt parameters need more than 256 MiB or 16 lanes".into());
            }
            if phc.salt.is_none() || phc.hash.is_none() {
                return Err("password_hash: scrypt without a salt or hash".into());
            }
        }
        Scheme::Argon2id | Scheme::Argon2i => {
            let phc = PasswordHash::new(hash).map_err(|e| format!("password_hash: {e}"))?;
            let params = argon2::Params::try_from(&phc).map_err(|e| format!("password_hash: argon2: {e}"))?;
            if params.m_cost() as u64 * 1024 > MAX_MEMORY_BYTES
                || params.t_cost() > MAX_ARGON2_PASSES
                || params.p_cost() > MAX_PARALLELISM
            {
                return Err("password_hash: argon2 parameters beyond m=262144, t=16, p=16".into());
            }
            if phc.salt.is_none() || phc.hash.is_none() {
                return Err("password_hash: argon2 without a salt or hash".into());
            }
        }
    }
    Ok(scheme)
}

/// Whether `password` matches `stored`, a hash of any scheme latch imports
/// (argon2id included, with whatever parameters and version it has).
/// Anything that does not parse, or asks for more work than an import may,
/// matches nothing.
pub fn verify_imported(password: &[u8], stored: &str) -> bool {
    // Beyond the bounds (only possible for a hash stored by other means):
    // refused rather than given the work it asks for.
    if check_imported(stored).is_err() {
        return false;
    }
    match scheme(stored) {
        Some(Scheme::Bcrypt) => bcrypt::verify(password, stored).unwrap_or(false),
        Some(Scheme::Pbkdf2Sha256) => match Passlib::parse(stored) {
            Some(passlib) => passlib.verify(password),
            None => PasswordHash::new(stored).is_ok_and(|phc| pbkdf2::Pbkdf2.verify_password(password, &phc).is_ok()),
        },
        Some(Scheme::Scrypt) => {
            PasswordHash::new(stored).is_ok_and(|phc| scrypt::Scrypt.verify_password(password, &phc).is_ok())
        }
        Some(Scheme::Argon2id | Scheme::Argon2i) => {
            PasswordHash::new(stored).is_ok_and(|phc| argon2::Argon2::default().verify_password(password, &phc).is_ok())
        }
        None => false,
    }
}

/// passlib's `$pbkdf2-sha256$rounds$salt$checksum`, salt and checksum in
/// its "adapted base64" (`.` for `+`, no padding).
struct Passlib {
    rounds: u32,
    salt: Vec<u8>,
    checksum: Vec<u8>,
}

impl Passlib {
    fn parse(stored: &str) -> Option<Passlib> {
        let mut fields = stored.strip_prefix("$pbkdf2-sha256$")?.split('$');
        let (rounds, salt, checksum) = (fields.next()?, fields.next()?, fields.next()?);
        if fields.next().is_some() || !rounds.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let ab64 = |text: &str| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text.replace('.', "+")).ok();
        let passlib = Passlib { rounds: rounds.parse().ok()?, salt: ab64(salt)?, checksum: ab64(checksum)? };
        (!passlib.checksum.is_empty() && passlib.checksum.len() <= 64).then_some(passlib)
    }

    fn verify(&self, password: &[u8]) -> bool {
        let mut computed = vec![0u8; self.checksum.len()];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, &self.salt, self.rounds, &mut computed);
        computed.ct_eq(&self.checksum).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Hashes made by each scheme's own crate (passlib's output is tested
    // end to end in tests/integration/imports.rs).
    #[test]
    fn every_scheme_verifies_its_own_hash_and_nothing_else() {
        use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
        let salt = SaltString::generate(&mut OsRng);
        let bcrypt = bcrypt::hash("password", 4).expect("bcrypt");
        let made = [
            (Scheme::Bcrypt, bcrypt.clone()),
            // The same algorithm under the older and PHP's prefixes.
            (Scheme::Bcrypt, bcrypt.replacen("$2b$", "$2a$", 1)),
            (Scheme::Bcrypt, bcrypt.replacen("$2b$", "$2y$", 1)),
            (
                Scheme::Pbkdf2Sha256,
                pbkdf2::Pbkdf2
                    .hash_password_customized(
                        b"password",
                        None,
                        None,
                        pbkdf2::Params { rounds: 1000, output_length: 32 },
                        &salt,
                    )
                    .expect("pbkdf2")
                    .to_string(),
            ),
            (Scheme::Pbkdf2Sha256, passlib_pbkdf2(b"password", b"saltsaltsaltsalt", 1000)),
            (
                Scheme::Scrypt,
                scrypt::Scrypt
                    .hash_password_customized(
                        b"password",
                        None,
                        None,
                        scrypt::Params::new(10, 8, 1, 32).expect("p"),
                        &salt,
                    )
                    .expect("scrypt")
                    .to_string(),
            ),
            (
                Scheme::Argon2i,
                argon2::Argon2::new(
                    argon2::Algorithm::Argon2i,
                    argon2::Version::V0x13,
                    argon2::Params::new(64, 1, 1, None).expect("p"),
                )
                .hash_password(b"password", &salt)
                .expect("argon2i")
                .to_string(),
            ),
        ];
        for (expected, hash) in made {
            assert_eq!(check_imported(&hash), Ok(expected), "{hash}");
            assert!(verify_imported(b"password", &hash), "{hash}");
            assert!(!verify_imported(b"passwore", &hash), "{hash}");
            assert!(!verify_imported(b"", &hash), "{hash}");
        }
    }

    /// passlib's format, computed independently of `Passlib`.
    fn passlib_pbkdf2(password: &[u8], salt: &[u8], rounds: u32) -> String {
        let mut out = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, rounds, &mut out);
        let ab64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes).replace('+', ".");
        format!("$pbkdf2-sha256${rounds}${}${}", ab64(salt), ab64(&out))
    }

    #[test]
    fn hashes_that_ask_too_much_or_do_not_parse_are_refused_with_a_reason() {
        for (hash, reason) in [
            ("", "not a hash latch can import"),
            ("plaintext", "not a hash latch can import"),
            ("$1$saltsalt$hash", "not a hash latch can import"),
            ("$2x$04$cVWp4XaNU8a4v1uMRum2SO/EB.DxEEC3wzCjzbHGVYThsN.qR2cf.", "not a hash latch can import"),
            ("$2b$31$cVWp4XaNU8a4v1uMRum2SO/EB.DxEEC3wzCjzbHGVYThsN.qR2cf.", "cost 31"),
            ("$2b$04$short", "not a well-formed bcrypt hash"),
            ("$pbkdf2-sha256$99999999$c2FsdA$aGFzaA", "iterations"),
            ("$scrypt$ln=30,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "256 MiB"),
            ("$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "m=262144"),
            ("$argon2d$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "not a hash latch can import"),
        ] {
            let error = check_imported(hash).expect_err(hash);
            assert!(error.contains(reason), "{hash}: {error}");
            assert!(!verify_imported(b"password", hash));
        }
    }
}
