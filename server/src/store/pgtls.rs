//! TLS to PostgreSQL with rustls, as the store URL's libpq parameters ask:
//!
//! | `sslmode` | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `allow`, `prefer` (the default) | when the server offers it | not checked (as libpq) |
//! | `require` | always | not checked (as libpq) |
//! | `verify-ca` | always | signed by a trusted CA |
//! | `verify-full` | always | signed by a trusted CA and naming the host |
//!
//! The trusted CAs are the PEM file `sslrootcert` names, else the Mozilla
//! roots (`webpki-roots`). tokio-postgres knows only `disable`, `prefer` and
//! `require` and no `sslrootcert`: [`split_url`] takes libpq's parameters
//! out of the URL and gives back one tokio-postgres parses.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// The TLS side of every connection to the database: rustls, as
/// `tokio-postgres-rustls` connects it.
#[derive(Clone)]
pub struct Connector(tokio_postgres_rustls::MakeRustlsConnect);

impl<S> ::postgres::tls::MakeTlsConnect<S> for Connector
where
    tokio_postgres_rustls::MakeRustlsConnect: ::postgres::tls::MakeTlsConnect<S>,
{
    type Stream = <tokio_postgres_rustls::MakeRustlsConnect as ::postgres::tls::MakeTlsConnect<S>>::Stream;
    type TlsConnect = <tokio_postgres_rustls::MakeRustlsConnect as ::postgres::tls::MakeTlsConnect<S>>::TlsConnect;
    type Error = <tokio_postgres_rustls::MakeRustlsConnect as ::postgres::tls::MakeTlsConnect<S>>::Error;

    fn make_tls_connect(&mut self, host: &str) -> Result<Self::TlsConnect, Self::Error> {
        // A Unix socket has no host name (tokio-postgres passes ""), and
        // PostgreSQL never speaks TLS on one: any valid name will do there.
        self.0.make_tls_connect(if host.is_empty() { "localhost" } else { host })
    }
}

/// What the URL's `sslmode` asks of the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Encrypt only (`allow`, `prefer`, `require`), as libpq does.
    Nothing,
    /// A chain to a trusted CA (`verify-ca`).
    Chain,
    /// A chain to a trusted CA and the host's name (`verify-full`).
    ChainAndName,
}

/// Splits a `postgres://` URL into one tokio-postgres parses, what it asks
/// of the server's certificate, and the `sslrootcert` file if any.
pub fn split_url(url: &str) -> Result<(String, Check, Option<String>), String> {
    let mut parsed = url::Url::parse(url).map_err(|e| format!("store URL: {e}"))?;
    let (mut check, mut root_file, mut kept) = (Check::Nothing, None, Vec::new());
    for (key, value) in parsed.query_pairs() {
        match (key.as_ref(), value.as_ref()) {
            ("sslrootcert", file) => root_file = Some(file.to_owned()),
            ("sslmode", mode @ ("verify-ca" | "verify-full")) => {
                check = if mode == "verify-ca" { Check::Chain } else { Check::ChainAndName };
                kept.push(("sslmode".to_owned(), "require".to_owned()));
            }
            ("sslmode", "allow") => kept.push(("sslmode".to_owned(), "prefer".to_owned())),
            (key, value) => kept.push((key.to_owned(), value.to_owned())),
        }
    }
    parsed.set_query(None);
    if !kept.is_empty() {
        parsed.query_pairs_mut().extend_pairs(kept);
    }
    Ok((parsed.to_string(), check, root_file))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The connector for `check`, trusting the CAs in `root_file` (PEM) or the Mozilla roots.
pub fn connector(check: Check, root_file: Option<&str>) -> Result<Connector, String> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let chain = match check {
        Check::Nothing => None,
        Check::Chain | Check::ChainAndName => {
            let mut roots = rustls::RootCertStore::empty();
            match root_file {
                Some(file) => {
                    let certificates = CertificateDer::pem_file_iter(file)
                        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
                        .map_err(|e| format!("sslrootcert {file}: {e}"))?;
                    let (added, _) = roots.add_parsable_certificates(certificates);
                    if added == 0 {
                        return Err(format!("sslrootcert {file}: no certificate in it"));
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| format!("TLS: {e}"))?;
            Some(webpki)
        }
    };
    let verifier = Arc::new(Verifier { chain, check_name: check == Check::ChainAndName, provider });
    let config = builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth();
    Ok(Connector(tokio_postgres_rustls::MakeRustlsConnect::new(config)))
}

/// Checks the server's certificate as `sslmode` asks: nothing (`prefer`,
/// `require`, as libpq), the chain (`verify-ca`), or the chain and the name
/// (`verify-full`). The handshake's signatures are checked in every mode.
#[derive(Debug)]
struct Verifier {
    chain: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else { return Ok(ServerCertVerified::assertion()) };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_parameters_are_taken_out_of_the_url() {
        let (url, check, root) = split_url(
            "postgres://latch@db.example/latch?sslmode=verify-full&sslrootcert=/etc/ca.pem&connect_timeout=5",
        )
        .expect("parses");
        assert_eq!(check, Check::ChainAndName);
        assert_eq!(root.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(url, "postgres://latch@db.example/latch?sslmode=require&connect_timeout=5");
        assert!(url.parse::<::postgres::Config>().is_ok(), "tokio-postgres reads what is left");
        let (url, check, _) = split_url("postgres://latch@db.example/latch?sslmode=verify-ca").expect("parses");
        assert_eq!((url.as_str(), check), ("postgres://latch@db.example/latch?sslmode=require", Check::Chain));
        let (url, check, root) = split_url("postgres://latch@db.example/latch").expect("parses");
        assert_eq!((url.as_str(), check, root), ("postgres://latch@db.example/latch", Check::Nothing, None));
        let (url, _, _) = split_url("postgres://latch@db.example/latch?sslmode=allow").expect("parses");
        assert!(url.ends_with("sslmode=prefer"), "{url}");
        let missing = connector(Check::ChainAndName, Some("/nonexistent/ca.pem")).err().expect("no such file");
        assert!(missing.contains("sslrootcert /nonexistent/ca.pem"), "{missing}");
    }
}
