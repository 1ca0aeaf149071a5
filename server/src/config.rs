//! Configuration: defaults, then an optional TOML file, then `LATCH_*`
//! environment variables, then flags (later wins).
//!
//! Every non-secret key exists in all three layers under one name
//! (`--hash-concurrency`, `LATCH_HASH_CONCURRENCY`, `hash_concurrency`):
//! [`ConfigArgs`] is the one list, read by clap from the flags and by serde
//! from the file and the environment, and the layers are merged key by key.
//! Secrets (the operator token, the SMTP password) come only from the
//! environment; in a file they are refused with the variable to use.
//! [`Settings::resolve`] takes the environment as an argument, so tests
//! inject it instead of changing the process's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::mail::{SmtpSecurity, SmtpSettings};
use crate::serve::ConnectionLimits;

/// The environment as `resolve` reads it: variable name to value.
pub type Environment = HashMap<String, String>;

/// The process's environment, for the binary.
pub fn process_environment() -> Environment {
    std::env::vars().collect()
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The keys every command reads (global flags): where the data is, the
/// file the rest may come from, and how to log.
#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
pub struct CommonArgs {
    /// Data directory [default: ./latch-data].
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Master key file, created 0600 on first start [default: latch-master.key beside the data directory].
    #[arg(long, global = true)]
    pub master_key_file: Option<PathBuf>,
    /// Optional TOML configuration file (flag or `LATCH_CONFIG` only).
    #[arg(long, global = true)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Log filter (tracing EnvFilter syntax) [default: info].
    #[arg(long, global = true)]
    pub log: Option<String>,
    /// Log format [default: text].
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Where the data lives: `sled` (the data directory) or a `postgres://`
    /// URL (its password in LATCH_STORE_PASSWORD, never in a file) [default: sled].
    #[arg(long, global = true, value_name = "sled|URL")]
    pub store: Option<String>,
}

/// Every non-secret setting, as flags (clap), TOML keys and `LATCH_*`
/// variables (serde) alike: `None` is "not given in this layer". The
/// [`CommonArgs`] are flags of every command; the rest are flags of `serve`
/// only (the other commands read them from the file or the environment).
#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
pub struct ConfigArgs {
    /// The keys every command takes as flags (filled from the global flags).
    #[arg(skip)]
    #[serde(flatten)]
    pub common: CommonArgs,
    /// Address and port to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    pub listen: Option<String>,
    /// Public base URL, used in issuers and links [default: http://{listen}].
    #[arg(long)]
    pub public_url: Option<String>,
    /// Password hashes computed at once [default: CPU count].
    #[arg(long)]
    pub hash_concurrency: Option<usize>,
    /// sled page cache in MiB [default: 32].
    #[arg(long)]
    pub cache_mb: Option<u64>,
    /// Create the `demo` tenant on first start [default: true].
    #[arg(long)]
    pub demo_tenant: Option<bool>,
    /// Verified access tokens remembered, all tenants together, about 100
    /// bytes each; 0 verifies every request in full [default: 65536].
    #[arg(long)]
    pub token_cache_entries: Option<usize>,
    /// Requests per minute per client IP to the auth and token endpoints, 0: off [default: 30].
    #[arg(long)]
    pub auth_rate_limit_per_minute: Option<u32>,
    /// Open connections at most [default: 4096].
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Seconds for a request head to arrive [default: 10].
    #[arg(long)]
    pub header_timeout_seconds: Option<u64>,
    /// Seconds an idle connection stays open [default: 60].
    #[arg(long)]
    pub idle_timeout_seconds: Option<u64>,
    /// Seconds for a request body to arrive [default: 30].
    #[arg(long)]
    pub body_timeout_seconds: Option<u64>,
    /// SMTP relay host [default: none, mail goes to the file outbox].
    #[arg(long)]
    pub smtp_host: Option<String>,
    /// SMTP relay port [default: 587, or 465 with `tls`].
    #[arg(long)]
    pub smtp_port: Option<u16>,
    /// SMTP transport security [default: starttls].
    #[arg(long, value_enum)]
    pub smtp_security: Option<SmtpSecurity>,
    /// SMTP login (its password: `LATCH_SMTP_PASSWORD`).
    #[arg(long)]
    pub smtp_username: Option<String>,
    /// The sender of latch's mail [default: latch <latch@localhost>].
    #[arg(long)]
    pub mail_from: Option<String>,
    /// A reverse proxy whose forwarding headers are believed, as an address or
    /// CIDR (repeatable; env comma-separated) [default: none].
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    pub trusted_proxies: Option<Vec<String>>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key); reread
    /// when the file changes or on SIGHUP [default: plain HTTP].
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Address and port serving Prometheus metrics at /metrics [default: off].
    #[arg(long, value_name = "ADDRESS:PORT")]
    pub metrics_listen: Option<String>,
}

/// Secrets: environment only. A file naming one gets an error that says
/// which variable to use.
const SECRETS: &[(&str, &str)] = &[
    ("operator_token", OPERATOR_TOKEN_VAR),
    ("smtp_password", SMTP_PASSWORD_VAR),
    ("store_password", STORE_PASSWORD_VAR),
];
const OPERATOR_TOKEN_VAR: &str = "LATCH_OPERATOR_TOKEN";
const SMTP_PASSWORD_VAR: &str = "LATCH_SMTP_PASSWORD";
/// The PostgreSQL password, when the store URL has none.
pub const STORE_PASSWORD_VAR: &str = "LATCH_STORE_PASSWORD";
const CONFIG_VAR: &str = "LATCH_CONFIG";
/// Verified access tokens remembered by default: tens of thousands of live
/// tokens in a few MiB (each entry is a hash and three numbers).
pub const DEFAULT_TOKEN_CACHE_ENTRIES: usize = 65_536;

impl ConfigArgs {
    /// The keys every layer knows, as the file spells them.
    pub fn keys() -> Vec<String> {
        match serde_json::to_value(ConfigArgs::default()) {
            Ok(Value::Object(keys)) => keys.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// The variable that sets `key`.
    pub fn variable(key: &str) -> String {
        format!("LATCH_{}", key.to_ascii_uppercase())
    }

    /// The layer the environment gives: `LATCH_{KEY}` for each key. A value
    /// is read as a number or `true`/`false` when the key takes one, else as text.
    fn from_environment(env: &Environment) -> Result<ConfigArgs, ConfigError> {
        let mut layer = Map::new();
        for key in ConfigArgs::keys() {
            let variable = ConfigArgs::variable(&key);
            let Some(text) = env.get(&variable).filter(|text| !text.is_empty()) else { continue };
            let fits = |value: Value| {
                let one = Map::from_iter([(key.clone(), value.clone())]);
                serde_json::from_value::<ConfigArgs>(Value::Object(one)).map(|_| value)
            };
            let scalar = serde_json::from_str::<Value>(text).ok().filter(|v| v.is_number() || v.is_boolean());
            // A list key takes a comma-separated value.
            let list =
                || Value::Array(text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(Value::from).collect());
            let value = scalar
                .and_then(|scalar| fits(scalar).ok())
                .map_or_else(|| fits(Value::String(text.clone())), Ok)
                .or_else(|e| fits(list()).map_err(|_| e))
                .map_err(|e| ConfigError::Invalid(format!("{variable}: {e}")))?;
            layer.insert(key, value);
        }
        serde_json::from_value(Value::Object(layer)).map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    /// The layer a TOML file gives; unknown keys and secrets are refused.
    fn from_file(path: &Path) -> Result<ConfigArgs, ConfigError> {
        let shown = path.display().to_string();
        let error = |reason: String| ConfigError::File { path: shown.clone(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| error(e.to_string()))?;
        if let Some((key, variable)) = SECRETS.iter().find(|(key, _)| table.contains_key(*key)) {
            return Err(error(format!("`{key}` is a secret and is not read from files; set {variable} instead")));
        }
        if let Some(store) = table.get("store").and_then(toml::Value::as_str)
            && url::Url::parse(store).is_ok_and(|url| url.password().is_some())
        {
            return Err(error(format!(
                "the `store` URL holds a password, which is not read from files; set {STORE_PASSWORD_VAR} instead"
            )));
        }
        let keys = ConfigArgs::keys();
        if let Some(unknown) = table.keys().find(|key| !keys.contains(key)) {
            return Err(error(format!("unknown key `{unknown}`; the keys are {}", keys.join(", "))));
        }
        table.try_into().map_err(|e: toml::de::Error| error(e.to_string()))
    }

    /// `self` with the keys `over` gives replaced.
    fn under(self, over: &ConfigArgs) -> Result<ConfigArgs, ConfigError> {
        let as_map = |layer: &ConfigArgs| match serde_json::to_value(layer) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(ConfigError::Invalid("configuration does not serialize".into())),
        };
        let mut merged = as_map(&self)?;
        merged.extend(as_map(over)?.into_iter().filter(|(_, value)| !value.is_null()));
        let mut layer: ConfigArgs =
            serde_json::from_value(Value::Object(merged)).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        layer.common.config = over.common.config.clone().or(self.common.config);
        Ok(layer)
    }

    /// Every layer merged: the file (named by `--config` or `LATCH_CONFIG`),
    /// then the environment, then `self` (the flags).
    pub fn merged(&self, env: &Environment) -> Result<ConfigArgs, ConfigError> {
        let file_path =
            self.common.config.clone().or_else(|| env.get(CONFIG_VAR).filter(|p| !p.is_empty()).map(PathBuf::from));
        let file = match &file_path {
            Some(path) => ConfigArgs::from_file(path)?,
            None => ConfigArgs::default(),
        };
        file.under(&ConfigArgs::from_environment(env)?)?.under(self)
    }
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
    /// Verified access tokens remembered (0: none).
    pub token_cache_entries: usize,
    /// Requests per minute per client IP to the auth and token endpoints (0: no limit).
    pub auth_rate_limit_per_minute: u32,
    /// The SMTP relay; `None`: the file outbox.
    pub smtp: Option<SmtpSettings>,
    /// The sender of latch's mail.
    pub mail_from: String,
    /// Connection cap and timeouts.
    pub connections: ConnectionLimits,
    /// Reverse proxies whose forwarding headers are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The certificate and key to serve HTTPS with; `None`: plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Where `/metrics` is served; `None`: metrics are off.
    pub metrics_listen: Option<String>,
    /// Where the data lives.
    pub store: StoreLocation,
}

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum StoreLocation {
    /// sled, in the data directory.
    #[default]
    Sled,
    /// A PostgreSQL database.
    Postgres(Box<crate::store::postgres::Database>),
}

/// The PEM files HTTPS is served with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// An address to listen on: `host:port`. A bare port gets a suggestion.
fn listen_address(key: &str, text: &str) -> Result<String, ConfigError> {
    let has_port = text.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if has_port {
        return Ok(text.to_owned());
    }
    let hint = match text.parse::<u16>() {
        Ok(port) => format!("; did you mean 127.0.0.1:{port} (this machine only) or 0.0.0.0:{port} (every interface)?"),
        Err(_) => String::new(),
    };
    Err(ConfigError::Invalid(format!("{key}: {text:?} is not an address and port such as 127.0.0.1:8080{hint}")))
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

/// The SMTP relay, if a host is configured; its password from the environment.
fn smtp(config: &ConfigArgs, env: &Environment) -> Option<SmtpSettings> {
    let host = config.smtp_host.clone().filter(|host| !host.is_empty())?;
    let security = config.smtp_security.unwrap_or(SmtpSecurity::StartTls);
    let default_port = if security == SmtpSecurity::Tls { 465 } else { 587 };
    Some(SmtpSettings {
        host,
        port: config.smtp_port.unwrap_or(default_port),
        security,
        username: config.smtp_username.clone().filter(|name| !name.is_empty()),
        password: env.get(SMTP_PASSWORD_VAR).filter(|p| !p.is_empty()).cloned().map(SecretString::from),
    })
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
fn connection_limits(file: &ConfigArgs) -> Result<ConnectionLimits, ConfigError> {
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
    /// Resolves settings from the flags (`args`), the environment `env`
    /// (`LATCH_*`, and the secrets) and the TOML file either names.
    pub fn resolve(args: &ConfigArgs, env: &Environment) -> Result<Settings, ConfigError> {
        let config = args.merged(env)?;
        let connections = connection_limits(&config)?;
        let data_dir = config.common.data_dir.clone().unwrap_or_else(|| PathBuf::from("latch-data"));
        let master_key_file = config
            .common
            .master_key_file
            .clone()
            .unwrap_or_else(|| data_dir.parent().unwrap_or(Path::new("")).join("latch-master.key"));
        if resolved(&master_key_file).starts_with(resolved(&data_dir)) {
            return Err(ConfigError::Invalid(
                "the master key file must live outside the data directory, so the data alone never yields a signing key".into(),
            ));
        }
        let operator_token = match env.get(OPERATOR_TOKEN_VAR).filter(|token| !token.is_empty()) {
            Some(token) if token.len() < MIN_OPERATOR_TOKEN_LEN => {
                return Err(ConfigError::Invalid(format!(
                    "{OPERATOR_TOKEN_VAR} must have at least {MIN_OPERATOR_TOKEN_LEN} characters"
                )));
            }
            other => other.cloned().map(SecretString::from),
        };
        let public_url = config.public_url.clone().map(|url| url.trim_end_matches('/').to_owned());
        if let Some(url) = &public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::Invalid(format!("public URL {url:?} must start with http:// or https://")));
        }
        let trusted_proxies = config
            .trusted_proxies
            .iter()
            .flatten()
            .map(|text| {
                text.parse::<ipnet::IpNet>()
                    .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        ConfigError::Invalid(format!(
                            "trusted_proxies: {text:?} is not an address or CIDR such as 10.0.0.0/8 or 127.0.0.1"
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert: cert.clone(), key: key.clone() }),
            (None, None) => None,
            _ => return Err(ConfigError::Invalid("tls_cert and tls_key go together: give both, or neither".into())),
        };
        let log = config.common.log.clone().unwrap_or_else(|| "info".into());
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log) {
            return Err(ConfigError::Invalid(format!(
                "log: {log:?} is not a log filter ({e}); use a level (error, warn, info, debug, trace) or directives such as info,latch_server=debug"
            )));
        }
        let listen = listen_address("listen", config.listen.as_deref().unwrap_or("127.0.0.1:8080"))?;
        let metrics_listen =
            config.metrics_listen.as_deref().map(|m| listen_address("metrics_listen", m)).transpose()?;
        let store = match config.common.store.as_deref() {
            None | Some("sled") => StoreLocation::Sled,
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                let password = env.get(STORE_PASSWORD_VAR).filter(|p| !p.is_empty()).map(String::as_str);
                let password_file = crate::store::postgres::password_file(
                    env.get("PGPASSFILE").map(String::as_str),
                    env.get("HOME").map(String::as_str),
                );
                StoreLocation::Postgres(Box::new(
                    crate::store::postgres::Database::parse(url, password, password_file.as_deref())
                        .map_err(ConfigError::Invalid)?,
                ))
            }
            Some(other) => {
                return Err(ConfigError::Invalid(format!("store: {other:?} is neither `sled` nor a postgres:// URL")));
            }
        };
        if config.hash_concurrency == Some(0) {
            return Err(ConfigError::Invalid("hash_concurrency must be at least 1".into()));
        }
        Ok(Settings {
            listen,
            data_dir,
            public_url,
            master_key_file,
            operator_token,
            log,
            log_format: config.common.log_format.unwrap_or_default(),
            hash_concurrency: config
                .hash_concurrency
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from)),
            cache_mb: config.cache_mb.unwrap_or(32),
            demo_tenant: config.demo_tenant.unwrap_or(true),
            token_cache_entries: config.token_cache_entries.unwrap_or(DEFAULT_TOKEN_CACHE_ENTRIES),
            auth_rate_limit_per_minute: config.auth_rate_limit_per_minute.unwrap_or(30),
            smtp: smtp(&config, env),
            mail_from: config.mail_from.clone().unwrap_or_else(|| "latch <latch@localhost>".into()),
            connections,
            trusted_proxies,
            tls,
            metrics_listen,
            store,
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
    use serde_json::json;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("latch.toml");
        std::fs::write(&file, "listen = \"0.0.0.0:9000\"\npublic_url = \"https://auth.example/\"\nlog = \"debug\"\n")
            .expect("write");
        let args = ConfigArgs {
            common: CommonArgs { config: Some(file), ..CommonArgs::default() },
            listen: Some("127.0.0.1:7000".into()),
            ..ConfigArgs::default()
        };
        let settings = Settings::resolve(&args, &Environment::new()).expect("valid");
        assert_eq!(settings.listen, "127.0.0.1:7000");
        assert_eq!(settings.public_url.as_deref(), Some("https://auth.example"));
        assert_eq!(settings.log, "debug");
        assert_eq!(settings.data_dir, PathBuf::from("latch-data"));
        assert_eq!(settings.master_key_file, PathBuf::from("latch-master.key"));
    }

    #[test]
    fn unknown_keys_and_secrets_in_the_file_are_refused_naming_the_variable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("latch.toml");
        let args = ConfigArgs {
            common: CommonArgs { config: Some(file.clone()), ..CommonArgs::default() },
            ..ConfigArgs::default()
        };
        for (key, variable) in SECRETS {
            std::fs::write(&file, format!("{key} = \"in-a-file\"\n")).expect("write");
            let err = Settings::resolve(&args, &Environment::new()).expect_err("refused").to_string();
            assert!(err.contains(key) && err.contains(&format!("set {variable} instead")), "{err}");
        }
        std::fs::write(&file, "lisen = \"127.0.0.1:1\"\n").expect("write");
        let err = Settings::resolve(&args, &Environment::new()).expect_err("refused").to_string();
        assert!(err.contains("lisen"), "{err}");
    }

    /// A valid value for each key, different from its default.
    fn sample(key: &str) -> Option<(&'static str, Value)> {
        Some(match key {
            "listen" => ("127.0.0.1:9999", json!("127.0.0.1:9999")),
            "data_dir" => ("/srv/latch-sample", json!("/srv/latch-sample")),
            "public_url" => ("https://auth.sample.example", json!("https://auth.sample.example")),
            "master_key_file" => ("/etc/latch-sample.key", json!("/etc/latch-sample.key")),
            "log" => ("debug", json!("debug")),
            "log_format" => ("json", json!("json")),
            "hash_concurrency" => ("3", json!(3)),
            "cache_mb" => ("64", json!(64)),
            "demo_tenant" => ("false", json!(false)),
            "token_cache_entries" => ("1000", json!(1000)),
            "auth_rate_limit_per_minute" => ("7", json!(7)),
            "max_connections" => ("100", json!(100)),
            "header_timeout_seconds" => ("5", json!(5)),
            "idle_timeout_seconds" => ("6", json!(6)),
            "body_timeout_seconds" => ("8", json!(8)),
            "smtp_host" => ("mail.sample.example", json!("mail.sample.example")),
            "smtp_port" => ("2525", json!(2525)),
            "smtp_security" => ("tls", json!("tls")),
            "smtp_username" => ("latch", json!("latch")),
            "mail_from" => ("Sample <auth@sample.example>", json!("Sample <auth@sample.example>")),
            "trusted_proxies" => ("10.0.0.0/8", json!(["10.0.0.0/8"])),
            "tls_cert" => ("/etc/latch/cert.pem", json!("/etc/latch/cert.pem")),
            "tls_key" => ("/etc/latch/key.pem", json!("/etc/latch/key.pem")),
            "metrics_listen" => ("127.0.0.1:9464", json!("127.0.0.1:9464")),
            "store" => ("postgres://latch@db.example/latch", json!("postgres://latch@db.example/latch")),
            _ => return None,
        })
    }

    /// Every key works as a flag, a `LATCH_*` variable and a TOML key.
    #[test]
    fn every_key_is_read_from_the_file_the_environment_and_a_flag() {
        use crate::cli::Cli;
        use clap::{CommandFactory as _, Parser as _};
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("latch.toml");
        let keys = ConfigArgs::keys();
        assert!(keys.len() >= 22, "{keys:?}");
        // The flags of `serve`: its own and the global ones.
        let mut command = Cli::command();
        command.build();
        let serve = command.find_subcommand("serve").expect("a serve command");
        let flags: Vec<String> = serve.get_arguments().map(|arg| arg.get_id().as_str().to_owned()).collect();
        for key in keys {
            let (text, expected) = sample(&key).unwrap_or_else(|| panic!("no sample value for the key `{key}`"));
            assert!(flags.contains(&key), "no flag for `{key}`");
            let read = |args: &ConfigArgs, env: &Environment| {
                serde_json::to_value(args.merged(env).expect("valid")).expect("serializes")[&key].clone()
            };
            // SPEC §9 names the list's flag in the singular (it repeats).
            let flag = match key.as_str() {
                "trusted_proxies" => "--trusted-proxy".to_owned(),
                other => format!("--{}", other.replace('_', "-")),
            };
            let from_flag = Cli::try_parse_from(["latch", "serve", &flag, text]).expect("parses").config();
            assert_eq!(read(&from_flag, &Environment::new()), expected, "flag for {key}");
            let env = Environment::from([(ConfigArgs::variable(&key), text.to_owned())]);
            assert_eq!(read(&ConfigArgs::default(), &env), expected, "variable for {key}");
            let value = match &expected {
                Value::String(text) => toml::Value::String(text.clone()),
                Value::Bool(b) => toml::Value::Boolean(*b),
                Value::Array(items) => toml::Value::Array(
                    items.iter().map(|i| toml::Value::String(i.as_str().expect("text").to_owned())).collect(),
                ),
                other => toml::Value::Integer(other.as_i64().expect("integer")),
            };
            std::fs::write(&file, toml::to_string(&toml::Table::from_iter([(key.clone(), value)])).expect("toml"))
                .expect("write");
            let in_file = ConfigArgs {
                common: CommonArgs { config: Some(file.clone()), ..CommonArgs::default() },
                ..ConfigArgs::default()
            };
            assert_eq!(read(&in_file, &Environment::new()), expected, "file key {key}");
        }
    }

    #[test]
    fn flags_win_over_the_environment_and_the_environment_over_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("latch.toml");
        std::fs::write(&file, "cache_mb = 1\nhash_concurrency = 1\nlog = \"warn\"\n").expect("write");
        let env = Environment::from([
            ("LATCH_CONFIG".to_owned(), file.display().to_string()),
            ("LATCH_CACHE_MB".to_owned(), "2".to_owned()),
            ("LATCH_HASH_CONCURRENCY".to_owned(), "2".to_owned()),
        ]);
        let args = ConfigArgs { hash_concurrency: Some(3), ..ConfigArgs::default() };
        let settings = Settings::resolve(&args, &env).expect("valid");
        assert_eq!((settings.log.as_str(), settings.cache_mb, settings.hash_concurrency), ("warn", 2, 3));
    }

    #[test]
    fn a_bad_value_in_the_environment_names_the_variable() {
        let env = Environment::from([("LATCH_CACHE_MB".to_owned(), "lots".to_owned())]);
        let err = Settings::resolve(&ConfigArgs::default(), &env).expect_err("refused").to_string();
        assert!(err.starts_with("LATCH_CACHE_MB:"), "{err}");
        let env = Environment::from([("LATCH_SMTP_SECURITY".to_owned(), "ssl".to_owned())]);
        let err = Settings::resolve(&ConfigArgs::default(), &env).expect_err("refused").to_string();
        assert!(err.starts_with("LATCH_SMTP_SECURITY:"), "{err}");
    }

    #[test]
    fn smtp_comes_from_the_keys_and_its_password_from_the_environment_only() {
        let env = Environment::from([
            ("LATCH_SMTP_HOST".to_owned(), "mail.example".to_owned()),
            ("LATCH_SMTP_SECURITY".to_owned(), "tls".to_owned()),
            (SMTP_PASSWORD_VAR.to_owned(), "relay-secret".to_owned()),
        ]);
        let smtp = Settings::resolve(&ConfigArgs::default(), &env).expect("valid").smtp.expect("configured");
        assert_eq!((smtp.host.as_str(), smtp.port, smtp.security), ("mail.example", 465, SmtpSecurity::Tls));
        assert_eq!(smtp.password.as_ref().map(|p| p.expose_secret().to_owned()).as_deref(), Some("relay-secret"));
        assert!(Settings::resolve(&ConfigArgs::default(), &Environment::new()).expect("valid").smtp.is_none());
    }

    #[test]
    fn short_operator_tokens_and_a_master_key_inside_the_data_dir_are_refused() {
        let token = |value: &str| Environment::from([(OPERATOR_TOKEN_VAR.to_owned(), value.to_owned())]);
        assert!(Settings::resolve(&ConfigArgs::default(), &token("short")).is_err());
        assert!(Settings::resolve(&ConfigArgs::default(), &token("a-long-enough-operator-token")).is_ok());
        let inside = ConfigArgs {
            common: CommonArgs {
                data_dir: Some("/srv/latch".into()),
                master_key_file: Some("/srv/latch/master.key".into()),
                ..CommonArgs::default()
            },
            ..ConfigArgs::default()
        };
        assert!(Settings::resolve(&inside, &Environment::new()).is_err());
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
                common: CommonArgs {
                    data_dir: Some(data.clone()),
                    master_key_file: Some(key.clone()),
                    ..CommonArgs::default()
                },
                ..ConfigArgs::default()
            };
            let err = Settings::resolve(&args, &Environment::new()).expect_err(&format!("{} is inside", key.display()));
            assert!(err.to_string().contains("outside the data directory"), "{err}");
        }
        let relative_data = ConfigArgs {
            common: CommonArgs {
                data_dir: Some(link.clone()),
                master_key_file: Some(data.join("k.key")),
                ..CommonArgs::default()
            },
            ..ConfigArgs::default()
        };
        assert!(
            Settings::resolve(&relative_data, &Environment::new()).is_err(),
            "the data dir given through a symlink"
        );
        let beside = ConfigArgs {
            common: CommonArgs {
                data_dir: Some(data.clone()),
                master_key_file: Some(dir.path().join("data-keys/k.key")),
                ..CommonArgs::default()
            },
            ..ConfigArgs::default()
        };
        assert!(
            Settings::resolve(&beside, &Environment::new()).is_ok(),
            "a sibling whose name starts the same is outside"
        );
        assert!(!dir.path().join("data-keys").exists() && !data.join("k.key").exists(), "nothing was created");
    }
}
