//! Outgoing mail: an SMTP relay when configured (`LATCH_SMTP_*`), otherwise a
//! file outbox (`{data_dir}/outbox/`, one `.eml` file per message) so a fresh
//! install works without a mail server.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::header::ContentTransferEncoding;
use lettre::message::{Body, Mailbox, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// TLS from the first byte (usually port 465).
    Tls,
    /// Plain connection upgraded with STARTTLS, which is required (usually port 587).
    #[value(name = "starttls")]
    StartTls,
    /// No encryption: only for a relay on the same host or a trusted network.
    None,
}

/// SMTP relay settings (`smtp_*` keys; the password from `LATCH_SMTP_PASSWORD`).
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// Relay host.
    pub host: String,
    /// Relay port.
    pub port: u16,
    /// Transport security.
    pub security: SmtpSecurity,
    /// Login, if the relay wants one.
    pub username: Option<String>,
    /// Password for `username`.
    pub password: Option<SecretString>,
}

/// A mail failure (the log has it; requests never fail because of it).
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// An address or the message could not be built.
    #[error("invalid message: {0}")]
    Message(String),
    /// The transport failed.
    #[error("mail transport: {0}")]
    Transport(String),
}

enum Transport {
    /// lettre writes each message into `staging` (a directory inside the
    /// outbox); it is made private there and then renamed into `dir`, so a
    /// reader of the outbox never sees a message half-written or readable
    /// by others.
    File {
        dir: PathBuf,
        staging: PathBuf,
        transport: AsyncFileTransport<Tokio1Executor>,
    },
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

/// The outbox's directory where messages are written before they are
/// moved into the outbox whole.
const STAGING: &str = ".incoming";

/// Sends mail through SMTP or into the file outbox.
pub struct Mailer {
    from: Mailbox,
    transport: Transport,
}

impl Mailer {
    /// A mailer writing `.eml` files into `dir` (created if missing).
    pub fn outbox(dir: PathBuf, from: &str) -> Result<Mailer, MailError> {
        let staging = dir.join(STAGING);
        for made in [&dir, &staging] {
            crate::private::dir(made).map_err(|e| MailError::Transport(format!("{}: {e}", made.display())))?;
        }
        let transport = AsyncFileTransport::<Tokio1Executor>::new(&staging);
        Ok(Mailer { from: mailbox(from)?, transport: Transport::File { dir, staging, transport } })
    }

    /// A mailer sending through an SMTP relay.
    pub fn smtp(settings: &SmtpSettings, from: &str) -> Result<Mailer, MailError> {
        let transport_error = |e: lettre::transport::smtp::Error| MailError::Transport(e.to_string());
        let tls = |host: &str| TlsParameters::new(host.to_owned()).map_err(transport_error);
        let security = match settings.security {
            SmtpSecurity::Tls => Tls::Wrapper(tls(&settings.host)?),
            SmtpSecurity::StartTls => Tls::Required(tls(&settings.host)?),
            SmtpSecurity::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            .port(settings.port)
            .tls(security)
            .timeout(Some(Duration::from_secs(20)));
        if let (Some(user), Some(password)) = (&settings.username, &settings.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.expose_secret().to_owned()));
        }
        Ok(Mailer { from: mailbox(from)?, transport: Transport::Smtp(builder.build()) })
    }

    /// Where mail goes, for the start-up banner and the log.
    pub fn describe(&self) -> String {
        match &self.transport {
            Transport::File { dir, .. } => format!("file outbox {}", dir.display()),
            Transport::Smtp(_) => "SMTP relay".to_owned(),
        }
    }

    /// Sends a plain-text message. The log names the recipient's domain and
    /// where it went, never the body (it carries single-use tokens).
    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), MailError> {
        let body = readable_body(&body);
        let message = Message::builder()
            .from(self.from.clone())
            .to(mailbox(to)?)
            .subject(subject)
            .singlepart(SinglePart::builder().header(lettre::message::header::ContentType::TEXT_PLAIN).body(body))
            .map_err(|e| MailError::Message(e.to_string()))?;
        let domain = to.rsplit_once('@').map_or("", |(_, domain)| domain);
        match &self.transport {
            Transport::File { dir, staging, transport } => {
                let id = transport.send(message).await.map_err(|e| MailError::Transport(e.to_string()))?;
                let (written, file) = (staging.join(format!("{id}.eml")), dir.join(format!("{id}.eml")));
                let failed = |e: std::io::Error| MailError::Transport(format!("{}: {e}", file.display()));
                // It holds a live link; lettre creates it with the umask's mode.
                crate::private::file(&written).map_err(failed)?;
                std::fs::rename(&written, &file).map_err(failed)?;
                tracing::info!(to_domain = domain, file = %file.display(), "mail written to the outbox");
            }
            Transport::Smtp(transport) => {
                transport.send(message).await.map_err(|e| MailError::Transport(e.to_string()))?;
                tracing::info!(to_domain = domain, "mail sent through SMTP");
            }
        }
        Ok(())
    }
}

/// The body as it stands (7bit, or 8bit for non-ASCII text) when its lines
/// fit RFC 5322's 998 characters, so a message in the outbox reads as written
/// and links stay whole; lettre would otherwise quote-print every line of 76
/// characters or more. Anything else is left to lettre's own choice.
fn readable_body(text: &str) -> Body {
    let crlf = text.replace("\r\n", "\n").replace('\n', "\r\n");
    let fits = crlf.split("\r\n").all(|line| line.len() <= 998 && !line.contains(['\0', '\r']));
    if !fits {
        return Body::new(text.to_owned());
    }
    let encoding = if crlf.is_ascii() { ContentTransferEncoding::SevenBit } else { ContentTransferEncoding::EightBit };
    Body::dangerous_pre_encoded(crlf.into_bytes(), encoding)
}

fn mailbox(address: &str) -> Result<Mailbox, MailError> {
    address.parse().map_err(|e: lettre::address::AddressError| MailError::Message(format!("{address:?}: {e}")))
}
