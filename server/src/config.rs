//! Configuration: defaults, then an optional TOML file, then `LATCH_*`
//! environment variables, then flags (later wins). Secrets (the operator
//! token) come only from the environment, never from a file or a flag.

use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::mail::{SmtpSecurity, SmtpSettings};
use crate::serve::ConnectionLimits;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Settings given on the command line or in the environment (flags win; clap reads `LATCH_*`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// Address and port to listen on [default: 127.0.0.1:8080].
    #[arg(long, global = true, env = "LATCH_LISTEN")]
    pub listen: Option<String>,
    /// Data directory [default: ./latch-data].
    #[arg(long, global = true, env = "LATCH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Public base URL, used in issuers and links [default: http://{listen}].
    #[arg(long, global = true, env = "LATCH_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Master key file, created 0600 on first start [default: latch-master.key beside the data directory].
    #[arg(long, global = true, env = "LATCH_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// Optional TOML configuration file.
    #[arg(long, global = true, env = "LATCH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log filter (tracing EnvFilter syntax) [default: info].
    #[arg(long, global = true, env = "LATCH_LOG")]
    pub log: Option<String>,
    /// Log format [default: text].
    #[arg(long, global = true, env = "LATCH_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
}

/// The TOML file: every key optional, unknown keys rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    public_url: Option<String>,
    master_key_file: Option<PathBuf>,
    log: Option<String>,
    log_format: Option<LogFormat>,
    hash_concurrency: Option<usize>,
    cache_mb: Option<u64>,
    demo_tenant: Option<bool>,
    auth_rate_limit_per_minute: Option<u32>,
    max_connections: Option<usize>,
    header_timeout_seconds: Option<u64>,
    idle_timeout_seconds: Option<u64>,
    body_timeout_seconds: Option<u64>,
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listen address.
    pub listen: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Public base URL; `None` means derived from the bound address.
    pub public_url: Option<String>,
    /// Master key file.
    pub master_key_file: PathBuf,
    /// The operator token from `LATCH_OPERATOR_TOKEN`, if set.
    pub operator_token: Option<SecretString>,
    /// Log filter.
    pub log: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Password hashes computed at once (default: CPU count).
    pub hash_concurrency: usize,
    /// sled page cache size in MiB.
    pub cache_mb: u64,
    /// Create the `demo` tenant on first start.
    pub demo_tenant: bool,
    /// Requests per minute per client IP to the auth and token endpoints (0: no limit).
    pub auth_rate_limit_per_minute: u32,
    /// The SMTP relay (`LATCH_SMTP_HOST` and friends); `None`: the file outbox.
    pub smtp: Option<SmtpSettings>,
    /// The sender of latch's mail (`LATCH_MAIL_FROM`).
    pub mail_from: String,
    /// Connection cap and timeouts.
    pub connections: ConnectionLimits,
}

/// The shortest operator token accepted from the environment.
pub const MIN_OPERATOR_TOKEN_LEN: usize = 16;

/// A configuration problem, reported before anything starts.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML file could not be read or parsed.
    #[error("config file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A value is out of range.
    #[error("{0}")]
    Invalid(String),
}

/// The SMTP relay from `LATCH_SMTP_HOST`, `LATCH_SMTP_PORT` (default 587),
/// `LATCH_SMTP_SECURITY` (`starttls` default, `tls`, `none`),
/// `LATCH_SMTP_USERNAME` and `LATCH_SMTP_PASSWORD`.
fn smtp_from_env() -> Result<Option<SmtpSettings>, ConfigError> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let Some(host) = var("LATCH_SMTP_HOST") else { return Ok(None) };
    let security = match var("LATCH_SMTP_SECURITY").as_deref() {
        None | Some("starttls") => SmtpSecurity::StartTls,
        Some("tls") => SmtpSecurity::Tls,
        Some("none") => SmtpSecurity::None,
        Some(other) => {
            return Err(ConfigError::Invalid(format!(
                "LATCH_SMTP_SECURITY must be starttls, tls or none, not {other:?}"
            )));
        }
    };
    let default_port = if security == SmtpSecurity::Tls { 465 } else { 587 };
    let port = match var("LATCH_SMTP_PORT") {
        Some(port) => {
            port.parse().map_err(|_| ConfigError::Invalid(format!("LATCH_SMTP_PORT {port:?} is not a port")))?
        }
        None => default_port,
    };
    Ok(Some(SmtpSettings {
        host,
        port,
        security,
        username: var("LATCH_SMTP_USERNAME"),
        password: var("LATCH_SMTP_PASSWORD").map(SecretString::from),
    }))
}

/// `path` as the file system will resolve it: absolute, with symlinks of
/// its existing part followed and `.` and `..` applied, so two spellings of
/// one place compare equal. Nothing is created.
fn resolved(path: &Path) -> PathBuf {
    use std::path::Component;
    let absolute = std::env::current_dir().map_or_else(|_| path.to_owned(), |cwd| cwd.join(path));
    let mut resolved = PathBuf::new();
    for component in absolute.components() {
        let next = resolved.join(component);
        // What exists is resolved as the file system does (symlinks, and
        // `..` after them); what does not exist yet, lexically.
        match next.canonicalize() {
            Ok(canonical) => resolved = canonical,
            Err(_) => match component {
                Component::ParentDir => {
                    resolved.pop();
                }
                Component::CurDir => {}
                other => resolved.push(other),
            },
        }
    }
    resolved
}

/// The connection cap and timeouts from the file, each at least 1.
fn connection_limits(file: &FileConfig) -> Result<ConnectionLimits, ConfigError> {
    let defaults = ConnectionLimits::default();
    let positive = |key: &str, value: Option<u64>, default: u64| match value {
        Some(0) => Err(ConfigError::Invalid(format!("{key} must be at least 1"))),
        Some(value) => Ok(value),
        None => Ok(default),
    };
    let seconds = |key, value, default: std::time::Duration| {
        positive(key, value, default.as_secs()).map(std::time::Duration::from_secs)
    };
    Ok(ConnectionLimits {
        max_connections: positive(
            "max_connections",
            file.max_connections.map(|n| n as u64),
            defaults.max_connections as u64,
        )? as usize,
        header_timeout: seconds("header_timeout_seconds", file.header_timeout_seconds, defaults.header_timeout)?,
        idle_timeout: seconds("idle_timeout_seconds", file.idle_timeout_seconds, defaults.idle_timeout)?,
        body_timeout: seconds("body_timeout_seconds", file.body_timeout_seconds, defaults.body_timeout)?,
    })
}

impl Settings {
    /// Resolves settings from flags/env (`args`), the TOML file they name, and
    /// the operator token (normally `LATCH_OPERATOR_TOKEN`).
    pub fn resolve(args: &ConfigArgs, operator_token: Option<String>) -> Result<Settings, ConfigError> {
        let file = match &args.config {
            Some(path) => {
                let shown = path.display().to_string();
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::File { path: shown.clone(), reason: e.to_string() })?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| ConfigError::File { path: shown, reason: e.to_string() })?
            }
            None => FileConfig::default(),
        };
        let connections = connection_limits(&file)?;
        let data_dir = args.data_dir.clone().or(file.data_dir).unwrap_or_else(|| PathBuf::from("latch-data"));
        let master_key_file = args
            .master_key_file
            .clone()
            .or(file.master_key_file)
            .unwrap_or_else(|| data_dir.parent().unwrap_or(Path::new("")).join("latch-master.key"));
        if resolved(&master_key_file).starts_with(resolved(&data_dir)) {
            return Err(ConfigError::Invalid(
                "the master key file must live outside the data directory, so the data alone never yields a signing key".into(),
            ));
        }
        let operator_token = match operator_token {
            Some(token) if token.len() < MIN_OPERATOR_TOKEN_LEN => {
                return Err(ConfigError::Invalid(format!(
                    "LATCH_OPERATOR_TOKEN must have at least {MIN_OPERATOR_TOKEN_LEN} characters"
                )));
            }
            other => other.map(SecretString::from),
        };
        let public_url = args.public_url.clone().or(file.public_url).map(|url| url.trim_end_matches('/').to_owned());
        if let Some(url) = &public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::Invalid(format!("public URL {url:?} must start with http:// or https://")));
        }
        Ok(Settings {
            listen: args.listen.clone().or(file.listen).unwrap_or_else(|| "127.0.0.1:8080".into()),
            data_dir,
            public_url,
            master_key_file,
            operator_token,
            log: args.log.clone().or(file.log).unwrap_or_else(|| "info".into()),
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            hash_concurrency: file
                .hash_concurrency
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from)),
            cache_mb: file.cache_mb.unwrap_or(32),
            demo_tenant: file.demo_tenant.unwrap_or(true),
            auth_rate_limit_per_minute: file.auth_rate_limit_per_minute.unwrap_or(30),
            smtp: smtp_from_env()?,
            mail_from: std::env::var("LATCH_MAIL_FROM").unwrap_or_else(|_| "latch <latch@localhost>".into()),
            connections,
        })
    }

    /// The operator token, if configured.
    pub fn operator_token(&self) -> Option<&str> {
        self.operator_token.as_ref().map(|t| t.expose_secret())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("latch.toml");
        std::fs::write(&file, "listen = \"0.0.0.0:9000\"\npublic_url = \"https://auth.example/\"\nlog = \"debug\"\n")
            .expect("write");
        let args = ConfigArgs { config: Some(file), listen: Some("127.0.0.1:7000".into()), ..ConfigArgs::default() };
        let settings = Settings::resolve(&args, None).expect("valid");
        assert_eq!(settings.listen, "127.0.0.1:7000");
        assert_eq!(settings.public_url.as_deref(), Some("https://auth.example"));
        assert_eq!(settings.log, "debug");
        assert_eq!(settings.data_dir, PathBuf::from("latch-data"));
        assert_eq!(settings.master_key_file, PathBuf::from("latch-master.key"));
    }

    #[test]
    fn unknown_keys_and_secrets_in_the_file_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("latch.toml");
        std::fs::write(&file, "operator_token = \"in-a-file\"\n").expect("write");
        let args = ConfigArgs { config: Some(file), ..ConfigArgs::default() };
        let err = Settings::resolve(&args, None).expect_err("refused");
        assert!(err.to_string().contains("operator_token"), "{err}");
    }

    #[test]
    fn short_operator_tokens_and_a_master_key_inside_the_data_dir_are_refused() {
        assert!(Settings::resolve(&ConfigArgs::default(), Some("short".into())).is_err());
        assert!(Settings::resolve(&ConfigArgs::default(), Some("a-long-enough-operator-token".into())).is_ok());
        let inside = ConfigArgs {
            data_dir: Some("/srv/latch".into()),
            master_key_file: Some("/srv/latch/master.key".into()),
            ..ConfigArgs::default()
        };
        assert!(Settings::resolve(&inside, None).is_err());
    }

    #[test]
    fn a_master_key_inside_the_data_dir_is_refused_however_the_paths_are_spelled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("mkdir");
        let link = dir.path().join("link-to-data");
        std::os::unix::fs::symlink(&data, &link).expect("symlink");
        let spellings = [
            data.join("k.key"),                         // plainly inside
            dir.path().join("elsewhere/../data/k.key"), // `..` through a directory that does not exist
            link.join("k.key"),                         // through a symlink
            data.join("sub/../k.key"),                  // `..` below the data dir
            dir.path().join("data/./new/k.key"),        // inside, in a directory not made yet
        ];
        for key in spellings {
            let args = ConfigArgs {
                data_dir: Some(data.clone()),
                master_key_file: Some(key.clone()),
                ..ConfigArgs::default()
            };
            let err = Settings::resolve(&args, None).expect_err(&format!("{} is inside", key.display()));
            assert!(err.to_string().contains("outside the data directory"), "{err}");
        }
        let relative_data = ConfigArgs {
            data_dir: Some(link.clone()),
            master_key_file: Some(data.join("k.key")),
            ..ConfigArgs::default()
        };
        assert!(Settings::resolve(&relative_data, None).is_err(), "the data dir given through a symlink");
        let beside = ConfigArgs {
            data_dir: Some(data.clone()),
            master_key_file: Some(dir.path().join("data-keys/k.key")),
            ..ConfigArgs::default()
        };
        assert!(Settings::resolve(&beside, None).is_ok(), "a sibling whose name starts the same is outside");
        assert!(!dir.path().join("data-keys").exists() && !data.join("k.key").exists(), "nothing was created");
    }
}
