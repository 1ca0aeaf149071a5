//! HTTPS in the binary: rustls with the PEM certificate and key named by
//! `--tls-cert` / `--tls-key`.
//!
//! The certificate is swapped without a restart: a connection's handshake
//! takes whichever certificate is current ([`Reloading`] resolves it per
//! handshake), and [`watch`] loads the files again when their modification
//! time or size changes (checked every [`RELOAD_CHECK`]) or on SIGHUP.
//! A pair that does not load (half-written, key and certificate not
//! matching) is logged and the previous certificate stays in use, so a
//! renewal written in two steps never takes the server down.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;

/// How often the files are checked for a change.
pub const RELOAD_CHECK: Duration = Duration::from_secs(2);

/// The certificate every new handshake gets; replaced on reload.
#[derive(Debug)]
pub struct Reloading {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone())
    }
}

impl Reloading {
    fn replace(&self, key: Arc<CertifiedKey>) {
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = key;
    }
}

/// Reads the certificate chain and its key, and checks that they match.
fn load(files: &TlsFiles) -> anyhow::Result<Arc<CertifiedKey>> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .with_context(|| format!("cannot read the TLS certificate {}", files.cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not a PEM certificate chain", files.cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("{} holds no certificate", files.cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("cannot read a PEM private key from {}", files.key.display()))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .with_context(|| format!("{} is not a supported private key", files.key.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .with_context(|| format!("the key {} does not belong to {}", files.key.display(), files.cert.display()))?;
    Ok(Arc::new(certified))
}

/// The acceptor for `files` and the resolver [`watch`] reloads.
pub fn acceptor(files: &TlsFiles) -> anyhow::Result<(TlsAcceptor, Arc<Reloading>)> {
    let resolver = Arc::new(Reloading { current: RwLock::new(load(files)?) });
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_cert_resolver(resolver.clone());
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(config)), resolver))
}

/// What identifies a version of the files: modification time and size.
fn stamp(files: &TlsFiles) -> Option<[(SystemTime, u64); 2]> {
    let of = |path: &Path| std::fs::metadata(path).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
    Some([of(&files.cert)?, of(&files.key)?])
}

/// Reloads the certificate when the files change or SIGHUP arrives; runs
/// until the task is aborted.
pub async fn watch(files: TlsFiles, resolver: Arc<Reloading>) {
    let mut hangup = hangups();
    let mut seen = stamp(&files);
    let mut tick = tokio::time::interval(RELOAD_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let signalled = tokio::select! {
            _ = tick.tick() => false,
            Some(()) = recv(&mut hangup) => true,
        };
        let now = stamp(&files);
        if !signalled && now == seen {
            continue;
        }
        seen = now;
        match load(&files) {
            Ok(key) => {
                resolver.replace(key);
                tracing::info!(cert = %files.cert.display(), signalled, "TLS certificate reloaded");
            }
            Err(e) => tracing::error!(error = format!("{e:#}"), "TLS certificate not reloaded; the previous one stays"),
        }
    }
}

#[cfg(unix)]
fn hangups() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(unix)]
async fn recv(hangup: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match hangup {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
fn hangups() -> Option<()> {
    None
}

#[cfg(not(unix))]
async fn recv(_: &mut Option<()>) -> Option<()> {
    std::future::pending().await
}
