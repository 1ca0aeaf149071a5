//! HTTPS in the binary: a certificate made at test time (rcgen) is served,
//! HSTS is sent, and a replaced certificate is picked up without a restart,
//! on SIGHUP and when the files change.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::*;

/// A new self-signed certificate for 127.0.0.1, written as PEM to `dir`
/// (replacing what is there); returns its DER.
fn write_certificate(dir: &Path) -> CertificateDer<'static> {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("a certificate");
    // Written beside, then renamed: a reader never sees half a file.
    for (name, text) in [("key.pem", made.signing_key.serialize_pem()), ("cert.pem", made.cert.pem())] {
        let partial = dir.join(format!("{name}.partial"));
        std::fs::write(&partial, text).expect("write");
        std::fs::rename(&partial, dir.join(name)).expect("rename");
    }
    made.cert.der().clone()
}

/// Connects over TLS trusting only `trusted`, sends `GET path`, and returns
/// the certificate the server presented and the response head.
async fn https_get(addr: &str, trusted: &CertificateDer<'static>, path: &str) -> (CertificateDer<'static>, String) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).expect("a root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("127.0.0.1").expect("a name").to_owned();
    let mut tls = connector.connect(name, tcp).await.expect("a handshake the trusted certificate verifies");
    let presented = tls.get_ref().1.peer_certificates().expect("a certificate")[0].clone().into_owned();
    tls.write_all(format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .expect("send");
    let mut response = String::new();
    tls.read_to_string(&mut response).await.ok();
    (presented, response)
}

/// The certificate presented now, without verifying it (it may be the old one).
async fn presented(addr: &str) -> CertificateDer<'static> {
    #[derive(Debug)]
    struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);
    impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("127.0.0.1").expect("a name").to_owned();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.expect("handshake");
    tls.get_ref().1.peer_certificates().expect("a certificate")[0].clone().into_owned()
}

/// Waits (at most 30 s) until the server presents `expected`.
async fn until_presented(addr: &str, expected: &CertificateDer<'static>, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while presented(addr).await != *expected {
        assert!(Instant::now() < deadline, "the server never presented the {what} certificate");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn latch_serves_https_with_hsts_and_picks_up_a_new_certificate_without_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = write_certificate(dir.path());
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let args = ["--tls-cert".as_ref(), cert.as_os_str(), "--tls-key".as_ref(), key.as_os_str()];
    let mut child = serve_command(dir.path(), &args).spawn().expect("latch starts");
    let banner = banner_until(&mut child, |line| line.contains("API explorer")).await;
    let addr = listening_address(&banner[0]);
    let explorer = banner.last().expect("the explorer line").clone();
    assert!(explorer.contains(&format!("https://{addr}/docs")), "the public URL is https: {explorer}");

    let (cert, response) = https_get(&addr, &first, "/t/demo/.well-known/openid-configuration").await;
    assert_eq!(cert, first);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.to_ascii_lowercase().contains("strict-transport-security: max-age=31536000"), "{response}");
    assert!(response.contains(&format!("\"issuer\":\"https://{addr}/t/demo\"")), "{response}");

    // Plain HTTP on the TLS port gets no answer from the API.
    let mut plain = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    plain.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await.expect("send");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut answer)).await;
    assert!(!String::from_utf8_lossy(&answer).contains("200 OK"), "plain HTTP served on the TLS port");

    // Replaced and signalled: the next handshake has the new certificate.
    let second = write_certificate(dir.path());
    let pid = child.id().expect("running").to_string();
    let hup = tokio::process::Command::new("kill").args(["-HUP", &pid]).status().await.expect("kill runs");
    assert!(hup.success());
    until_presented(&addr, &second, "second").await;
    let (_, response) = https_get(&addr, &second, "/healthz").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    // Replaced without a signal: noticed when the files change.
    let third = write_certificate(dir.path());
    until_presented(&addr, &third, "third").await;

    // A broken replacement is refused and the current certificate stays.
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").expect("write");
    let hup = tokio::process::Command::new("kill").args(["-HUP", &pid]).status().await.expect("kill runs");
    assert!(hup.success());
    let (cert, response) = https_get(&addr, &third, "/healthz").await;
    assert_eq!(cert, third);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(child.try_wait().expect("status").is_none(), "still running");
}

#[tokio::test]
async fn a_certificate_that_does_not_load_refuses_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_certificate(dir.path());
    let other = tempfile::tempdir().expect("tempdir");
    write_certificate(other.path());
    let data = dir.path().join("data").display().to_string();
    let cert = dir.path().join("cert.pem").display().to_string();
    let mismatched_key = other.path().join("key.pem").display().to_string();
    let args = ["serve", "--listen", "127.0.0.1:0", "--data-dir", &data, "--tls-cert", &cert, "--tls-key"];
    let (ok, _, stderr) = run_latch(args.iter().copied().chain([mismatched_key.as_str()]), "").await;
    assert!(!ok && stderr.contains("does not belong to"), "{stderr}");
    let (ok, _, stderr) =
        run_latch(["serve", "--listen", "127.0.0.1:0", "--data-dir", &data, "--tls-cert", &cert], "").await;
    assert!(!ok && stderr.contains("tls_cert and tls_key go together"), "{stderr}");
    assert!(!Path::new(&data).exists(), "nothing created");
}
