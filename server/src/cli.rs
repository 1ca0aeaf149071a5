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
    /// Print the OpenAPI document the server serves at /openapi.json.
    Openapi,
}

/// Parses the command line and runs it.
pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        None => serve(&cli.config),
        Some(Command::Serve { config }) => serve(&merge(config, cli.config)),
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

fn serve(args: &ConfigArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(args, std::env::var("LATCH_OPERATOR_TOKEN").ok())?;
    crate::telemetry::init(&settings.log, settings.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let server = crate::app::start(&settings, Arc::new(SystemClock)).await?;
        print_banner(&server, &settings);
        server.run_until_signal().await
    })
}

/// What a new operator needs, on stdout (not in the log: it may hold the operator token).
fn print_banner(server: &crate::app::RunningServer, settings: &Settings) {
    let url = &server.public_url;
    println!(
        "latch {} listening on {}",
        env!("CARGO_PKG_VERSION"),
        server.addr
    );
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
            println!(
                "                   shown this once; set LATCH_OPERATOR_TOKEN to choose your own"
            );
        }
        None if settings.operator_token.is_some() => {
            println!("  operator token : from LATCH_OPERATOR_TOKEN")
        }
        None => println!(
            "  operator token : shown at first start (set LATCH_OPERATOR_TOKEN to replace it)"
        ),
    }
    println!("  API explorer   : {url}/docs");
    println!("  demo JWKS      : {url}/t/demo/.well-known/jwks.json");
}
