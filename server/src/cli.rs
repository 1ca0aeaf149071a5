//! The `latch` command line.

use std::sync::Arc;

use clap::{Parser, Subcommand};
use secrecy::ExposeSecret as _;

use crate::clock::SystemClock;
use crate::config::{ConfigArgs, Settings};

/// latch: a single-binary, multi-tenant authentication server.
#[derive(Debug, Parser)]
#[command(name = "latch", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Print the OpenAPI document the server serves at /openapi.json.
    Openapi,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Rotate a tenant's signing key, on a data directory no server is running on.
    /// (While the server runs, use POST /admin/tenants/{T}/keys/rotate.)
    Rotate {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Seconds the new key is published before it signs.
        #[arg(long, default_value_t = 0)]
        publish_delay: u32,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

/// Parses the command line and runs it.
pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        None => serve(&cli.config),
        Some(Command::Serve { config }) => serve(&merge(config, cli.config)),
        Some(Command::Keys { command: KeysCommand::Rotate { tenant, publish_delay, config } }) => {
            let settings = Settings::resolve(&merge(config, cli.config), std::env::var("LATCH_OPERATOR_TOKEN").ok())?;
            with_data_dir(&settings, |latch| async move {
                let tenant = crate::domain::TenantId::parse(&tenant)?;
                let key = latch.rotate_signing_key(&tenant, publish_delay, "operator (cli)").await?;
                println!(
                    "tenant {tenant}: new {} key {} published now, signs from {}",
                    key.algorithm.as_str(),
                    key.kid,
                    crate::clock::rfc3339(key.active_from)
                );
                Ok(())
            })
        }
        Some(Command::Openapi) => {
            println!("{}", crate::api::openapi_json());
            Ok(())
        }
    }
}

/// Flags after the subcommand win over those before it.
fn merge(inner: ConfigArgs, outer: ConfigArgs) -> ConfigArgs {
    ConfigArgs {
        listen: inner.listen.or(outer.listen),
        data_dir: inner.data_dir.or(outer.data_dir),
        public_url: inner.public_url.or(outer.public_url),
        master_key_file: inner.master_key_file.or(outer.master_key_file),
        config: inner.config.or(outer.config),
        log: inner.log.or(outer.log),
        log_format: inner.log_format.or(outer.log_format),
    }
}

/// Runs `job` on the data directory of `settings`, then flushes and closes it.
fn with_data_dir<F, Fut>(settings: &Settings, job: F) -> anyhow::Result<()>
where
    F: FnOnce(Arc<crate::domain::Latch>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    if !settings.data_dir.exists() {
        anyhow::bail!("no data directory at {}", settings.data_dir.display());
    }
    crate::telemetry::init(&settings.log, settings.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let opened = crate::app::open(settings, Arc::new(SystemClock)).await.map_err(|e| {
            if e.to_string().contains("in use by another latch process") {
                e.context("the server is running on this data directory: stop it, or use the operator API")
            } else {
                e
            }
        })?;
        let result = job(opened.latch().clone()).await;
        opened.close().await?;
        result
    })
}

fn serve(args: &ConfigArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(args, std::env::var("LATCH_OPERATOR_TOKEN").ok())?;
    crate::telemetry::init(&settings.log, settings.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let server = crate::app::start(&settings, Arc::new(SystemClock)).await?;
        print_banner(&server, &settings);
        server.run_until_signal().await
    })
}

/// What a new operator needs, on stdout (not in the log: it may hold the operator token).
fn print_banner(server: &crate::app::RunningServer, settings: &Settings) {
    let url = &server.public_url;
    println!("latch {} listening on {}", env!("CARGO_PKG_VERSION"), server.addr);
    println!("  data directory : {}", settings.data_dir.display());
    if server.startup.master_key_created {
        println!(
            "  master key     : created {} (0600); back it up apart from the data",
            settings.master_key_file.display()
        );
    }
    match &server.startup.new_operator_token {
        Some(token) => {
            println!("  operator token : {}", token.expose_secret());
            println!("                   shown this once; set LATCH_OPERATOR_TOKEN to choose your own");
        }
        None if settings.operator_token.is_some() => {
            println!("  operator token : from LATCH_OPERATOR_TOKEN")
        }
        None => println!("  operator token : shown at first start (set LATCH_OPERATOR_TOKEN to replace it)"),
    }
    println!("  API explorer   : {url}/docs");
    println!("  demo JWKS      : {url}/t/demo/.well-known/jwks.json");
}
