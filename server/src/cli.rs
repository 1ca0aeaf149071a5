//! The `latch` command line.

use std::sync::Arc;

use clap::{Parser, Subcommand};
use secrecy::ExposeSecret as _;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use latch_shared::Algorithm;

use crate::clock::SystemClock;
use crate::config::{CommonArgs, ConfigArgs, Settings, StoreLocation};
use crate::domain::{Actor, ClientChanges, Latch, NewClient, NewTenant, NewUser, Operator, TenantChanges, TenantId};
use crate::store::ClientType;
use crate::store::sled::SledStore;
use crate::store::{Store as _, StoreError};

/// latch: a single-binary, multi-tenant authentication server.
#[derive(Debug, Parser)]
#[command(name = "latch", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    common: CommonArgs,
    /// Log what a command does (-v: the --log filter, info by default).
    /// Commands other than `serve` log only errors without it.
    #[arg(short, long, global = true)]
    verbose: bool,
}

/// The signing algorithms a tenant can be created with.
const ALGORITHMS: [&str; 3] = ["EdDSA", "ES256", "RS256"];

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default). Its settings can also come from the
    /// --config file and `LATCH_*` variables (see the README).
    Serve {
        #[command(flatten)]
        config: Box<ConfigArgs>,
    },
    /// Set up a new data directory without starting the server: the master
    /// key, the operator token (printed once) and the first tenant.
    Init {
        /// The first tenant's id (slug).
        tenant: String,
        /// Its signing algorithm [default: EdDSA].
        #[arg(long, value_parser = ALGORITHMS)]
        algorithm: Option<String>,
        /// Its display name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Tenants (on a data directory no server is running on; while it runs, use /admin/tenants).
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Users of a tenant (on a data directory no server is running on; while it runs, use /t/{T}/admin).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// OAuth clients of a tenant (on a data directory no server is running on; while it runs, use /t/{T}/admin/clients).
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
    /// Signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Write a consistent backup of the whole store to FILE: directly from a
    /// stopped data directory, or through the operator API (GET /admin/backup,
    /// LATCH_OPERATOR_TOKEN) when a server is running on it or --server is given.
    Backup {
        /// The file to write (replaced if it exists).
        file: PathBuf,
        /// Base URL of the running server [default: the public URL, or http://{listen}].
        #[arg(long)]
        server: Option<String>,
    },
    /// Restore a backup FILE into a new, empty store: a data directory
    /// (--data-dir) or an empty PostgreSQL database (--store postgres://…),
    /// whichever store the backup was taken from. The server then needs the
    /// master key file the backup's data was made with.
    Restore {
        /// The backup file.
        file: PathBuf,
    },
    /// Copy every record of a stopped store into a new, empty one in one
    /// step, e.g. `latch migrate --from ./latch-data --to postgres://latch@db/latch`.
    /// Each side is a data directory or a postgres:// URL (password from
    /// LATCH_STORE_PASSWORD or ~/.pgpass).
    Migrate {
        /// The store to copy (stop the servers on it first).
        #[arg(long)]
        from: String,
        /// The new store: a missing or empty data directory, or an empty database.
        #[arg(long)]
        to: String,
    },
    /// Print the OpenAPI document the server serves at /openapi.json.
    Openapi,
}

#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// Register a client; a confidential client's secret is printed once.
    Create {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The client id (generated when left out).
        #[arg(long)]
        client_id: Option<String>,
        /// public (SPA, native app: PKCE, no secret) or confidential (a server with a secret).
        #[arg(long = "type", value_parser = ["public", "confidential"])]
        client_type: String,
        #[command(flatten)]
        settings: ClientSettingsArgs,
    },
    /// List a tenant's clients.
    List {
        /// The tenant.
        #[arg(long)]
        tenant: String,
    },
    /// Show a client (JSON).
    Show {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The client id.
        client_id: String,
    },
    /// Change a client's settings.
    Update {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The client id.
        client_id: String,
        #[command(flatten)]
        settings: ClientSettingsArgs,
    },
    /// Remove a client.
    Delete {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The client id.
        client_id: String,
        /// Confirm the removal.
        #[arg(long)]
        yes: bool,
    },
}

/// A client's settings; those left out keep their value (or default).
#[derive(Debug, clap::Args)]
struct ClientSettingsArgs {
    /// Display name (shown on the consent page).
    #[arg(long)]
    name: Option<String>,
    /// Where authorization answers may go (repeatable).
    #[arg(long = "redirect-uri", value_name = "URI")]
    redirect_uris: Vec<String>,
    /// A setting as `key=value`, repeatable: any key of `latch client show`
    /// (e.g. `first_party=true`, `grant_types=authorization_code,refresh_token`,
    /// `post_logout_redirect_uris=https://app.example/`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

impl ClientSettingsArgs {
    /// The changes, read through the same serde names as the API's.
    fn changes(self) -> anyhow::Result<ClientChanges> {
        let mut changes = ClientChanges::default();
        if let Some(name) = self.name {
            changes.set("name", name.into())?;
        }
        if !self.redirect_uris.is_empty() {
            changes.set("redirect_uris", self.redirect_uris.into())?;
        }
        for assignment in &self.set {
            changes.set_text(assignment)?;
        }
        Ok(changes)
    }
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Rotate a tenant's signing key, on a data directory no server is running on.
    /// (While the server runs, use POST /admin/tenants/{T}/keys/rotate.)
    Rotate {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Seconds the new key is published before it signs (the JWKS max-age
        /// by default, so cached JWKS hold it first; 0 signs at once).
        #[arg(long, default_value_t = crate::domain::DEFAULT_PUBLISH_DELAY_SECONDS)]
        publish_delay: u32,
    },
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Create a tenant with its own issuer and signing key.
    Create {
        /// The tenant id (slug).
        id: String,
        /// Signing algorithm [default: EdDSA].
        #[arg(long, value_parser = ALGORITHMS)]
        algorithm: Option<String>,
        #[command(flatten)]
        settings: TenantSettingsArgs,
    },
    /// List tenants.
    List,
    /// Show a tenant and its settings (JSON).
    Show {
        /// The tenant id.
        id: String,
    },
    /// Change a tenant's name or settings.
    Update {
        /// The tenant id.
        id: String,
        #[command(flatten)]
        settings: TenantSettingsArgs,
    },
    /// Delete a tenant with all its users, sessions and keys.
    Delete {
        /// The tenant id.
        id: String,
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
    },
}

/// A tenant's name and settings; those left out keep their value (or default).
#[derive(Debug, clap::Args)]
struct TenantSettingsArgs {
    /// Display name.
    #[arg(long)]
    name: Option<String>,
    /// A setting as `key=value`, repeatable: any key of `latch tenant show`'s
    /// `settings` (e.g. `access_token_ttl=600`, `registration=closed`,
    /// `cors_allowed_origins=https://a.example,https://b.example`,
    /// `roles={"user":["openid"],"admin":["openid","admin"]}`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

impl TenantSettingsArgs {
    /// The changes, read through the same serde names as the API's.
    fn changes(self) -> anyhow::Result<TenantChanges> {
        let mut changes = self.name.map(TenantChanges::name).unwrap_or_default();
        for assignment in &self.set {
            changes.set_text(assignment)?;
        }
        Ok(changes)
    }
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from standard input.
    Create {
        #[command(flatten)]
        new: NewUserArgs,
    },
    /// Create a user without a password and mail them a link to choose one.
    Invite {
        #[command(flatten)]
        new: NewUserArgs,
    },
    /// Set a user's password, read from standard input; their sessions end.
    SetPassword {
        #[command(flatten)]
        who: UserArgs,
    },
    /// Disable a user: login is refused and their sessions end.
    Disable {
        #[command(flatten)]
        who: UserArgs,
    },
    /// Enable a disabled user.
    Enable {
        #[command(flatten)]
        who: UserArgs,
    },
    /// Remove a user's second factor (TOTP and recovery codes).
    ResetMfa {
        #[command(flatten)]
        who: UserArgs,
    },
    /// Replace a user's roles.
    SetRoles {
        #[command(flatten)]
        who: UserArgs,
        /// The roles (comma-separated; empty for none).
        #[arg(long, value_delimiter = ',', num_args = 0..)]
        roles: Vec<String>,
    },
    /// Import users with their existing password hashes from a file of one
    /// JSON object a line (see docs/import.md). Every line is checked first:
    /// a file with a bad line imports nothing.
    Import {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// An email the tenant already has: `skip` it, or `update` the user.
        #[arg(long, value_enum, default_value = "skip")]
        existing: ExistingArg,
        /// The file (NDJSON; `-` for standard input is not taken: it is read twice).
        file: PathBuf,
    },
    /// List a tenant's users ordered by email.
    List {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Only emails starting with this.
        #[arg(long)]
        email_prefix: Option<String>,
    },
}

/// What an import does with an email the tenant already has.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ExistingArg {
    /// Leave the user as they are.
    Skip,
    /// Replace their hash (their sessions end), and the fields the line gives.
    Update,
}

/// A user to create: who, and their name and roles.
#[derive(Debug, clap::Args)]
struct NewUserArgs {
    #[command(flatten)]
    who: UserArgs,
    /// Display name.
    #[arg(long)]
    name: Option<String>,
    /// Roles (comma-separated) [default: the tenant's default roles].
    #[arg(long, value_delimiter = ',')]
    roles: Option<Vec<String>>,
}

impl NewUserArgs {
    /// The tenant and the user to create, with `password` (`None`: invited).
    fn user(self, password: Option<String>) -> anyhow::Result<(TenantId, NewUser)> {
        let NewUserArgs { who, name, roles } = self;
        Ok((TenantId::parse(&who.tenant)?, NewUser { email: who.email, password, name, roles }))
    }
}

/// Which user.
#[derive(Debug, clap::Args)]
struct UserArgs {
    /// The tenant.
    #[arg(long)]
    tenant: String,
    /// The user's email.
    #[arg(long)]
    email: String,
}

impl Cli {
    /// The flags' layer of the configuration: the global flags, and the
    /// server's flags when the command is `serve`.
    pub fn config(&self) -> ConfigArgs {
        let mut config = match &self.command {
            Some(Command::Serve { config }) => (**config).clone(),
            _ => ConfigArgs::default(),
        };
        config.common = self.common.clone();
        config
    }
}

/// Parses the command line and runs it.
pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let flags = cli.config();
    let resolved = Settings::resolve(&flags, &crate::config::process_environment())?;
    // Commands print their results; their log holds only errors unless -v.
    let log = if cli.verbose { resolved.log.clone() } else { "error".to_owned() };
    let settings = || {
        crate::telemetry::init(&log, resolved.log_format)?;
        anyhow::Ok(resolved.clone())
    };
    match cli.command {
        None | Some(Command::Serve { .. }) => serve(resolved),
        Some(Command::Init { tenant, algorithm, name }) => {
            let algorithm = algorithm.as_deref().and_then(Algorithm::parse);
            let changes = name.map(TenantChanges::name).unwrap_or_default();
            let first = NewTenant { id: TenantId::parse(&tenant)?, algorithm, settings: changes };
            init(&settings()?, first)
        }
        Some(Command::Keys { command: KeysCommand::Rotate { tenant, publish_delay } }) => {
            with_data_dir(&settings()?, |latch| async move {
                let tenant = crate::domain::TenantId::parse(&tenant)?;
                let key = latch.rotate_signing_key(&Operator::local(), &tenant, publish_delay).await?;
                println!(
                    "tenant {tenant}: new {} key {} published now, signs from {}",
                    key.algorithm.as_str(),
                    key.kid,
                    crate::clock::rfc3339(key.active_from)
                );
                Ok(())
            })
        }
        Some(Command::Tenant { command }) => with_data_dir(&settings()?, |latch| tenant_command(latch, command)),
        Some(Command::User { command }) => with_data_dir(&settings()?, |latch| user_command(latch, command)),
        Some(Command::Client { command }) => with_data_dir(&settings()?, |latch| client_command(latch, command)),
        Some(Command::Backup { file, server }) => backup(&settings()?, &file, server),
        Some(Command::Restore { file }) => {
            let settings = settings()?;
            let target = match &settings.store {
                StoreLocation::Sled => StoreArg::Sled(settings.data_dir.clone()),
                StoreLocation::Postgres(database) => StoreArg::Postgres(database.clone()),
            };
            let input = std::fs::File::open(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let records = target.restore(&mut std::io::BufReader::new(input))?;
            println!("restored {records} records into {target}");
            println!("start latch on it with the master key file the backup's data was made with");
            Ok(())
        }
        Some(Command::Migrate { from, to }) => migrate(&StoreArg::parse(&from)?, &StoreArg::parse(&to)?),
        Some(Command::Openapi) => {
            println!("{}", crate::api::openapi_json());
            Ok(())
        }
    }
}

async fn tenant_command(latch: Arc<Latch>, command: TenantCommand) -> anyhow::Result<()> {
    let operator = Operator::local();
    match command {
        TenantCommand::Create { id, algorithm, settings } => {
            let algorithm = algorithm.as_deref().and_then(Algorithm::parse);
            let new = NewTenant { id: TenantId::parse(&id)?, algorithm, settings: settings.changes()? };
            let tenant = latch.create_tenant(&operator, new).await?;
            println!(
                "created tenant {} ({}), issuer {}",
                tenant.id,
                tenant.algorithm.as_str(),
                latch.issuer(&tenant.id)
            );
        }
        TenantCommand::List => {
            for tenant in latch.list_tenants(&operator).await? {
                println!("{}\t{}\t{}\t{}", tenant.id, tenant.algorithm.as_str(), tenant.name, latch.issuer(&tenant.id));
            }
        }
        TenantCommand::Show { id } => print_tenant(&latch, latch.tenant(&operator, &TenantId::parse(&id)?).await?)?,
        TenantCommand::Update { id, settings } => {
            let tenant = latch.update_tenant(&operator, &TenantId::parse(&id)?, settings.changes()?).await?;
            print_tenant(&latch, tenant)?;
        }
        TenantCommand::Delete { id, yes } => {
            if !yes {
                anyhow::bail!("deleting tenant {id} removes all its users, sessions and keys; add --yes to confirm");
            }
            latch.delete_tenant(&operator, &TenantId::parse(&id)?).await?;
            println!("deleted tenant {id}");
        }
    }
    Ok(())
}

fn print_tenant(latch: &Latch, tenant: crate::store::TenantRecord) -> anyhow::Result<()> {
    let shown = serde_json::json!({
        "id": tenant.id,
        "name": tenant.name,
        "algorithm": tenant.algorithm.as_str(),
        "issuer": latch.issuer(&tenant.id),
        "created_at": crate::clock::rfc3339(tenant.created_at),
        "settings": tenant.settings,
    });
    println!("{}", serde_json::to_string_pretty(&shown)?);
    Ok(())
}

fn print_client(client: &crate::store::ClientRecord) -> anyhow::Result<()> {
    let mut shown = serde_json::to_value(client)?;
    if let Some(fields) = shown.as_object_mut() {
        fields.remove("secret_sha256");
        fields.remove("tenant");
    }
    println!("{}", serde_json::to_string_pretty(&shown)?);
    Ok(())
}

async fn client_command(latch: Arc<Latch>, command: ClientCommand) -> anyhow::Result<()> {
    let operator_in = |tenant: &str| anyhow::Ok(Actor::operator(Operator::local(), TenantId::parse(tenant)?));
    match command {
        ClientCommand::Create { tenant, client_id, client_type, settings } => {
            let client_type = if client_type == "confidential" { ClientType::Confidential } else { ClientType::Public };
            let new = NewClient { client_id, client_type, settings: settings.changes()? };
            let (client, secret) = latch.create_client(&operator_in(&tenant)?, new).await?;
            print_client(&client)?;
            if let Some(secret) = secret {
                use secrecy::ExposeSecret as _;
                println!("client secret (shown once, only its hash is kept): {}", secret.expose_secret());
            }
        }
        ClientCommand::List { tenant } => {
            for client in latch.clients(&operator_in(&tenant)?).await? {
                let kind = if client.client_type == ClientType::Public { "public" } else { "confidential" };
                println!(
                    "{}\t{kind}\t{}\t{}",
                    client.client_id,
                    client.settings.name,
                    client.settings.redirect_uris.join(" ")
                );
            }
        }
        ClientCommand::Show { tenant, client_id } => {
            print_client(&latch.client(&operator_in(&tenant)?, &client_id).await?)?
        }
        ClientCommand::Update { tenant, client_id, settings } => {
            let client = latch.update_client(&operator_in(&tenant)?, &client_id, settings.changes()?).await?;
            print_client(&client)?;
        }
        ClientCommand::Delete { tenant, client_id, yes } => {
            if !yes {
                anyhow::bail!("removing client {client_id} stops its refresh tokens; add --yes to confirm");
            }
            latch.delete_client(&operator_in(&tenant)?, &client_id).await?;
            println!("deleted client {client_id}");
        }
    }
    Ok(())
}

/// The first line of standard input, without its line ending.
fn password_from_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        anyhow::bail!("no password on standard input (pipe it in: printf '%s' \"$PASSWORD\" | latch user ...)");
    }
    Ok(password)
}

async fn user_command(latch: Arc<Latch>, command: UserCommand) -> anyhow::Result<()> {
    // The operator, in the tenant a command names.
    let operator_in = |tenant: TenantId| Actor::operator(Operator::local(), tenant);
    let find = |who: &UserArgs| {
        let latch = latch.clone();
        let (tenant, email) = (who.tenant.clone(), who.email.clone());
        async move {
            let actor = operator_in(TenantId::parse(&tenant)?);
            let user = latch.admin_user_by_email(&actor, &email).await?;
            anyhow::Ok((actor, user.id))
        }
    };
    match command {
        UserCommand::Create { new } => {
            let (tenant, new) = new.user(Some(password_from_stdin()?))?;
            let user = latch.create_user(&operator_in(tenant.clone()), new).await?;
            println!("created user {} <{}> in {tenant} with roles [{}]", user.id, user.email, user.roles.join(", "));
        }
        UserCommand::Invite { new } => {
            let (tenant, new) = new.user(None)?;
            let user = latch.create_user(&operator_in(tenant.clone()), new).await?;
            println!("invited {} <{}> to {tenant}; the invitation link was mailed", user.id, user.email);
        }
        UserCommand::SetPassword { who } => {
            let password = password_from_stdin()?;
            let (actor, id) = find(&who).await?;
            latch.set_password(&actor, id, &password).await?;
            println!("password set for {}; their sessions have ended", who.email);
        }
        UserCommand::Disable { who } => {
            let (actor, id) = find(&who).await?;
            latch.set_disabled(&actor, id, true).await?;
            println!("disabled {}; their sessions have ended", who.email);
        }
        UserCommand::Enable { who } => {
            let (actor, id) = find(&who).await?;
            latch.set_disabled(&actor, id, false).await?;
            println!("enabled {}", who.email);
        }
        UserCommand::ResetMfa { who } => {
            let (actor, id) = find(&who).await?;
            latch.reset_mfa(&actor, id).await?;
            println!("removed the second factor of {}; they log in with their password", who.email);
        }
        UserCommand::SetRoles { who, roles } => {
            let (actor, id) = find(&who).await?;
            let user = latch.set_roles(&actor, id, roles).await?;
            println!("{} now has roles [{}]", user.email, user.roles.join(", "));
        }
        UserCommand::Import { tenant, existing, file } => {
            use crate::domain::imports::{Existing, Progress};
            let actor = operator_in(TenantId::parse(&tenant)?);
            let existing = match existing {
                ExistingArg::Skip => Existing::Skip,
                ExistingArg::Update => Existing::Update,
            };
            let opened = std::fs::File::open(&file).with_context(|| format!("cannot open {}", file.display()))?;
            let (importer, opened) = latch.importer(&actor, existing).await?.check_file(opened).await?;
            if importer.error_count() > 0 {
                for error in importer.errors() {
                    eprintln!("line {}: {}", error.line, error.reason);
                }
                anyhow::bail!(
                    "{} of the {} lines of {} cannot be imported, so none was",
                    importer.error_count(),
                    importer.lines(),
                    file.display()
                );
            }
            let mut progress = importer.write_file(opened);
            while let Some(next) = progress.recv().await {
                match next {
                    Progress::Line(result) => {
                        if let crate::domain::imports::Outcome::Failed(reason) = &result.outcome {
                            eprintln!("line {}: not imported: {reason}", result.line);
                        }
                    }
                    Progress::Done(t) => {
                        println!(
                            "imported into {tenant}: {} created, {} updated, {} skipped, {} failed",
                            t.created, t.updated, t.skipped, t.failed
                        );
                    }
                    Progress::Stopped(error) => {
                        anyhow::bail!("the import stopped: {error} (the lines before are imported; run it again)")
                    }
                }
            }
        }
        UserCommand::List { tenant, email_prefix } => {
            let actor = operator_in(TenantId::parse(&tenant)?);
            let mut cursor = None;
            loop {
                let page = latch.list_users(&actor, email_prefix.as_deref(), cursor.as_deref(), 200).await?;
                for user in &page.items {
                    let state = if user.disabled { "disabled" } else { "active" };
                    println!("{}\t{}\t{}\t{}", user.id, user.email, user.roles.join(","), state);
                }
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
    }
    Ok(())
}

/// A store named on the command line.
enum StoreArg {
    /// A sled data directory.
    Sled(PathBuf),
    /// A PostgreSQL database.
    Postgres(Box<crate::store::postgres::Database>),
}

impl std::fmt::Display for StoreArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreArg::Sled(dir) => write!(f, "{}", dir.display()),
            StoreArg::Postgres(database) => f.write_str(database.shown()),
        }
    }
}

impl StoreArg {
    /// A postgres:// URL, or else a data directory.
    fn parse(raw: &str) -> anyhow::Result<StoreArg> {
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
            let password = var(crate::config::STORE_PASSWORD_VAR);
            let file = crate::store::postgres::password_file(var("PGPASSFILE").as_deref(), var("HOME").as_deref());
            let database = crate::store::postgres::Database::parse(raw, password.as_deref(), file.as_deref())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            return Ok(StoreArg::Postgres(Box::new(database)));
        }
        Ok(StoreArg::Sled(PathBuf::from(raw)))
    }

    /// Loads a backup into this store, which must be new or empty.
    fn restore(&self, input: &mut dyn std::io::BufRead) -> anyhow::Result<u64> {
        match self {
            StoreArg::Sled(dir) => Ok(SledStore::restore(dir, input)?),
            StoreArg::Postgres(database) => {
                let mut reader = crate::store::backup::BackupReader::new(input)?;
                Ok(database.connect()?.import(&mut reader)?)
            }
        }
    }

    /// Writes every record of this store, which no server may be using
    /// (sled's lock makes sure of it; PostgreSQL's copy is one snapshot).
    fn export(&self, out: &mut dyn std::io::Write) -> anyhow::Result<u64> {
        match self {
            StoreArg::Sled(dir) => {
                if !SledStore::holds_store(dir) {
                    anyhow::bail!("no latch store at {}", dir.display());
                }
                let store = SledStore::open(dir, 8 << 20).map_err(|e| match e {
                    StoreError::Locked(_) => anyhow::anyhow!("{e}: stop the server first"),
                    e => e.into(),
                })?;
                Ok(store.export(out)?)
            }
            StoreArg::Postgres(database) => Ok(database.connect()?.export(&mut std::io::BufWriter::new(out))?),
        }
    }
}

/// `latch migrate`: the source's backup, streamed through a pipe into the
/// target's restore, so the records are checked (count and checksum) as for
/// a backup file and nothing is held in memory or on disk twice.
fn migrate(from: &StoreArg, to: &StoreArg) -> anyhow::Result<()> {
    if let (StoreArg::Sled(a), StoreArg::Sled(b)) = (from, to)
        && a == b
    {
        anyhow::bail!("--from and --to name the same data directory");
    }
    let (reader, writer) = std::io::pipe()?;
    let (exported, restored) = std::thread::scope(|scope| {
        let exporting = scope.spawn(move || {
            let mut out = std::io::BufWriter::new(writer);
            // Dropping the pipe on failure ends the file early: the restore refuses it.
            from.export(&mut out)
        });
        let restored = to.restore(&mut std::io::BufReader::new(reader));
        (exporting.join().unwrap_or_else(|_| Err(anyhow::anyhow!("the export failed"))), restored)
    });
    let exported = exported.context("reading the source store")?;
    let restored = restored.context("writing the new store")?;
    if exported != restored {
        anyhow::bail!("{exported} records read but {restored} written");
    }
    println!("migrated {restored} records from {from} to {to}");
    println!("start latch on {to} with the same master key file");
    Ok(())
}

/// A backup: read directly from a stopped data directory or from
/// PostgreSQL (one snapshot, while servers run), or fetched from the running
/// server's operator API.
fn backup(settings: &Settings, file: &Path, server: Option<String>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let partial = file.with_extension("partial");
    let written = |how: String, fill: &mut dyn FnMut(&mut std::fs::File) -> anyhow::Result<()>| {
        let mut out =
            crate::private::create(&partial).with_context(|| format!("cannot write {}", partial.display()))?;
        fill(&mut out)?;
        out.sync_all().with_context(|| format!("cannot write {}", partial.display()))?;
        std::fs::rename(&partial, file).with_context(|| format!("cannot write {}", file.display()))?;
        let bytes = std::fs::metadata(file).map_or(0, |m| m.len());
        println!("backup {how} written to {} ({bytes} bytes)", file.display());
        Ok(())
    };
    let fetched = |url: String, how: String| -> anyhow::Result<()> {
        let bytes = runtime.block_on(fetch_backup(settings, &url))?;
        written(how, &mut |out| Ok(std::io::Write::write_all(out, &bytes)?))
    };
    match (server, &settings.store) {
        (Some(url), _) => fetched(url.clone(), format!("from {url}")),
        // One snapshot, consistent while the servers go on writing.
        (None, StoreLocation::Postgres(database)) => {
            let store = StoreArg::Postgres(database.clone());
            written(format!("from {}", database.shown()), &mut |out| store.export(out).map(drop))
        }
        (None, StoreLocation::Sled) => {
            if !settings.data_dir.exists() {
                anyhow::bail!("no data directory at {}", settings.data_dir.display());
            }
            match SledStore::open(&settings.data_dir, 8 << 20) {
                Ok(store) => written(format!("from {}", settings.data_dir.display()), &mut |out| {
                    store.export(&mut std::io::BufWriter::new(out))?;
                    Ok(())
                }),
                Err(StoreError::Locked(_)) => {
                    let url = settings.public_url.clone().unwrap_or_else(|| format!("http://{}", settings.listen));
                    fetched(url.clone(), format!("from the server at {url}"))
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

async fn fetch_backup(settings: &Settings, base: &str) -> anyhow::Result<Vec<u8>> {
    let Some(token) = settings.operator_token() else {
        anyhow::bail!("a backup through the operator API needs LATCH_OPERATOR_TOKEN");
    };
    let url = format!("{}/admin/backup", base.trim_end_matches('/'));
    let response = reqwest::Client::new()
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    if !response.status().is_success() {
        anyhow::bail!("{url} answered {}", response.status());
    }
    Ok(response.bytes().await?.to_vec())
}

/// Runs `job` on the data directory of `settings`, then flushes and closes it.
fn with_data_dir<F, Fut>(settings: &Settings, job: F) -> anyhow::Result<()>
where
    F: FnOnce(Arc<crate::domain::Latch>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    if settings.store == StoreLocation::Sled && !settings.data_dir.exists() {
        anyhow::bail!("no data directory at {} (create one with `latch init TENANT`)", settings.data_dir.display());
    }
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

/// `latch init`: a new data directory, its secrets and the first tenant.
fn init(settings: &Settings, first: NewTenant) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let (startup, tenant, issuer) = runtime.block_on(crate::app::init(settings, Arc::new(SystemClock), first))?;
    println!("initialized {}", settings.data_dir.display());
    if startup.master_key_created {
        println!(
            "  master key     : created {} (0600); back it up apart from the data",
            settings.master_key_file.display()
        );
    }
    match &startup.new_operator_token {
        Some(token) => {
            println!("  operator token : {}", token.expose_secret());
            println!("                   shown this once; keep it (set LATCH_OPERATOR_TOKEN to choose your own)");
        }
        None => println!("  operator token : from LATCH_OPERATOR_TOKEN"),
    }
    println!("  first tenant   : {} ({}), issuer {issuer}", tenant.id, tenant.algorithm.as_str());
    println!("start the server with `latch serve` and the same --data-dir");
    Ok(())
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    crate::telemetry::init(&settings.log, settings.log_format)?;
    // Store calls are short and flushes run one at a time: a few blocking
    // threads keep up, and each thread glibc gives an arena of its own costs
    // resident memory (tokio's default allows 512).
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().max_blocking_threads(16).build()?;
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
    if let Some(metrics) = server.metrics_addr {
        println!("  metrics        : http://{metrics}/metrics");
    }
    println!("  API explorer   : {url}/docs");
    println!("  web demo       : {url}/demo/");
    println!("  demo JWKS      : {url}/t/demo/.well-known/jwks.json");
}
