//! The command line, as clap parses it. Every command's help ends with an example.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Where the services listen and who is calling.
#[derive(Debug, Args)]
pub struct Connection {
    /// Bearer token (reader, operator, approver or admin). With scripts/run the tokens are in
    /// target/dev/tokens.
    #[arg(long, env = "SYNCGUARD_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Ingest service URL [default: http://127.0.0.1:50051, https:// with --ca].
    #[arg(
        long,
        env = "SYNCGUARD_INGEST_URL",
        hide_env_values = true,
        global = true
    )]
    pub ingest_url: Option<String>,
    /// Stager service URL [default: http://127.0.0.1:50052, https:// with --ca].
    #[arg(
        long,
        env = "SYNCGUARD_STAGER_URL",
        hide_env_values = true,
        global = true
    )]
    pub stager_url: Option<String>,
    /// Gate service URL [default: http://127.0.0.1:50053, https:// with --ca].
    #[arg(
        long,
        env = "SYNCGUARD_GATE_URL",
        hide_env_values = true,
        global = true
    )]
    pub gate_url: Option<String>,
    /// Notifier service URL [default: http://127.0.0.1:50054, https:// with --ca].
    #[arg(
        long,
        env = "SYNCGUARD_NOTIFIER_URL",
        hide_env_values = true,
        global = true
    )]
    pub notifier_url: Option<String>,
    /// Retention service URL [default: http://127.0.0.1:50055, https:// with --ca].
    #[arg(
        long,
        env = "SYNCGUARD_RETENTION_URL",
        hide_env_values = true,
        global = true
    )]
    pub retention_url: Option<String>,
    /// Exporter service URL [default: http://127.0.0.1:50056, https:// with --ca].
    #[arg(
        long,
        env = "SYNCGUARD_EXPORTER_URL",
        hide_env_values = true,
        global = true
    )]
    pub exporter_url: Option<String>,
    /// CA certificate (PEM) the services' TLS certificates are checked against; the default
    /// URLs become https://. With scripts/run: target/dev/tls/ca.pem.
    #[arg(long, env = "SYNCGUARD_CA", global = true)]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) for services that require mutual TLS.
    #[arg(long, env = "SYNCGUARD_CLIENT_CERT", global = true, requires = "key")]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, env = "SYNCGUARD_CLIENT_KEY", global = true, requires = "cert")]
    pub key: Option<PathBuf>,
    /// Print JSON instead of tables (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
}

/// The syncguard admin command line.
#[derive(Debug, Parser)]
#[command(
    name = "syncguard",
    version,
    about = "Administer syncguard: jobs, cycles, quarantines, logs, the directory, imports",
    after_help = "Exit codes: 0 done, 1 failed, 2 bad usage or not confirmed, 3 not found, \
                  4 not allowed (token or role), 5 refused in this state (e.g. stale digest), \
                  6 a service is unreachable (or the address given is another service's).\n\n\
                  Example: SYNCGUARD_TOKEN=... syncguard jobs list"
)]
pub struct Cli {
    /// Connection settings.
    #[command(flatten)]
    pub connection: Connection,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sync jobs and their settings.
    #[command(
        subcommand,
        after_help = "Example: syncguard jobs create --name 'HR feed' --recipient ops@example.com --threshold 3"
    )]
    Jobs(JobsCommand),
    /// Sync cycles.
    #[command(
        subcommand,
        after_help = "Example: syncguard cycles list --job <job id>"
    )]
    Cycles(CyclesCommand),
    /// Quarantined cycles: show, allow, reject, restart, pins.
    #[command(subcommand, after_help = "Example: syncguard quarantine show <job id>")]
    Quarantine(QuarantineCommand),
    /// The provisioning log.
    #[command(after_help = "Example: syncguard logs --job <job id> --action staged-delete")]
    Logs(LogsArgs),
    /// The target directory: objects, deleted objects, restore, purge.
    #[command(
        subcommand,
        after_help = "Example: syncguard directory deleted <job id>"
    )]
    Directory(DirectoryCommand),
    /// Export targets (LDAP directories, SCIM apps): where each stands, refused objects, retry.
    #[command(
        subcommand,
        after_help = "Example: syncguard targets status --job <job id>"
    )]
    Targets(TargetsCommand),
    /// Follow a job's change feed: one line per applied change, as it is applied.
    #[command(after_help = "Example: syncguard watch <job id> --after <cursor> --until-now")]
    Watch(WatchArgs),
    /// Push an LDIF or JSON export file (or a folder of them) as a job's snapshot.
    #[command(after_help = "Example: syncguard import <job id> exports/people.ldif")]
    Import(ImportArgs),
    /// Play the accidental-deletion story against a running suite, step by step.
    #[command(
        after_help = "Example: SYNCGUARD_TOKEN=<admin token> syncguard demo --mail-dir target/dev/mail"
    )]
    Demo(DemoArgs),
    /// Bearer tokens for the services' tokens file.
    #[command(
        subcommand,
        after_help = "Example: syncguard tokens new --role approver --name alice"
    )]
    Tokens(TokensCommand),
    /// Make a throwaway development CA and certificates for running the services on TLS.
    #[command(after_help = "Example: syncguard dev-certs --out target/dev/tls")]
    DevCerts(DevCertsArgs),
}

/// Where development certificates go.
#[derive(Debug, Args)]
pub struct DevCertsArgs {
    /// Directory for ca.pem, server.pem, server-key.pem, client.pem, client-key.pem.
    #[arg(long)]
    pub out: PathBuf,
    /// Extra host names or addresses the server certificate names (besides localhost,
    /// loopback and the compose service names).
    #[arg(long = "host")]
    pub hosts: Vec<String>,
    /// Keep an existing complete set instead of replacing it.
    #[arg(long)]
    pub keep_existing: bool,
}

/// Token commands; they work offline.
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Make a new random token: give the token to the person, put the printed line (its
    /// SHA-256 digest, not the token) in SYNCGUARD_TOKENS_FILE and send the services SIGHUP.
    #[command(after_help = "Example: syncguard tokens new --role approver --name alice")]
    New {
        /// reader, operator, approver, admin or service.
        #[arg(long)]
        role: String,
        /// Who holds it; recorded as the actor of what they do.
        #[arg(long)]
        name: String,
    },
    /// The tokens-file line for an existing token (read from standard input).
    #[command(
        after_help = "Example: printf '%s' \"$TOKEN\" | syncguard tokens digest --role admin --name ada"
    )]
    Digest {
        /// The role to list it with.
        #[arg(long)]
        role: String,
        /// The principal's name.
        #[arg(long)]
        name: String,
    },
}

/// Job commands.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Create a job (protection on by default: deletes + disables above 500 per cycle).
    #[command(
        after_help = "Example: syncguard jobs create --name 'HR feed' --recipient ops@example.com --threshold 3"
    )]
    Create(CreateJob),
    /// Show one job with its status.
    #[command(after_help = "Example: syncguard jobs show <job id>")]
    Show {
        /// The job.
        job: String,
    },
    /// List jobs.
    #[command(after_help = "Example: syncguard jobs list --json")]
    List,
    /// Show or change a job's deletion protection (changes need an admin token).
    #[command(
        after_help = "Example: syncguard jobs protection <job id> --threshold 50 --reason 'quarterly review'"
    )]
    Protection {
        /// The job.
        job: String,
        /// New limit: more deletes plus disables than this in one cycle quarantines it.
        #[arg(long)]
        threshold: Option<u64>,
        /// Turn protection off (recorded with your name and the reason).
        #[arg(long)]
        off: bool,
        /// Why (required for changes).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Set who is told about quarantines.
    #[command(
        after_help = "Example: syncguard jobs recipients <job id> --recipient ops@example.com"
    )]
    Recipients {
        /// The job.
        job: String,
        /// An address; repeat for several.
        #[arg(long = "recipient", required = true)]
        recipients: Vec<String>,
        /// Why (recipients guard deletions: admin only, recorded in the provisioning log).
        #[arg(long)]
        reason: String,
    },
    /// Set how long deleted objects stay restorable (1 to 365 days).
    #[command(
        after_help = "Example: syncguard jobs retention <job id> --days 30 --reason 'legal hold policy'"
    )]
    Retention {
        /// The job.
        job: String,
        /// Days.
        #[arg(long)]
        days: u32,
        /// Why (retention guards deletions: admin only, recorded in the provisioning log).
        #[arg(long)]
        reason: String,
    },
    /// Delete a job's configuration (admin); its objects and logs stay.
    #[command(after_help = "Example: syncguard jobs delete <job id> --yes")]
    Delete {
        /// The job.
        job: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// Options of `jobs create`.
#[derive(Debug, Args)]
pub struct CreateJob {
    /// Name shown everywhere.
    #[arg(long)]
    pub name: String,
    /// Read this export file each cycle instead of waiting for pushes (a path inside the
    /// ingest service's import directory, SYNCGUARD_IMPORT_DIR).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Who is told about quarantines; repeat for several.
    #[arg(long = "recipient")]
    pub recipients: Vec<String>,
    /// Quarantine a cycle with more deletes plus disables than this (default 500).
    #[arg(long)]
    pub threshold: Option<u64>,
    /// Days deleted objects stay restorable (default 30).
    #[arg(long)]
    pub retention_days: Option<u32>,
    /// Deprovision by disabling instead of deleting.
    #[arg(long)]
    pub disable_mode: bool,
    /// Only objects whose DN ends with this (repeat for several).
    #[arg(long = "base-dn")]
    pub base_dns: Vec<String>,
}

/// Cycle commands.
#[derive(Debug, Subcommand)]
pub enum CyclesCommand {
    /// Run a job's cycle now.
    #[command(after_help = "Example: syncguard cycles trigger <job id>")]
    Trigger {
        /// The job.
        job: String,
    },
    /// Show a cycle: state, phases, counts.
    #[command(after_help = "Example: syncguard cycles show <cycle id>")]
    Show {
        /// The cycle.
        cycle: String,
    },
    /// List cycles, newest first.
    #[command(after_help = "Example: syncguard cycles list --job <job id>")]
    List {
        /// Only this job's.
        #[arg(long)]
        job: Option<String>,
        /// Show at most this many (default 50; with --json, all unless given).
        #[arg(long)]
        limit: Option<u32>,
        /// Show every one (read page by page).
        #[arg(long, conflicts_with = "limit")]
        all: bool,
    },
}

/// Quarantine commands.
#[derive(Debug, Subcommand)]
pub enum QuarantineCommand {
    /// Show a job's open quarantine (or a quarantine by id): held actions, rules, digest.
    #[command(after_help = "Example: syncguard quarantine show <job id>")]
    Show {
        /// A job id (its open quarantine) or a quarantine id.
        target: String,
        /// Show at most this many actions (default 50).
        #[arg(long)]
        limit: Option<u32>,
        /// Show every action.
        #[arg(long, conflicts_with = "limit")]
        all: bool,
    },
    /// Allow the held deletes (all, or only --anchor ones; the rest are rejected and pinned).
    #[command(
        after_help = "Example: syncguard quarantine allow <job id> --reason 'HR confirmed the leavers' --yes"
    )]
    Allow(Decision),
    /// Reject the held deletes and pin those objects.
    #[command(
        after_help = "Example: syncguard quarantine reject <job id> --reason 'broken export' --yes"
    )]
    Reject(Decision),
    /// Supersede the held cycle and run a fresh one.
    #[command(
        after_help = "Example: syncguard quarantine restart <job id> --reason 'export fixed'"
    )]
    Restart {
        /// The job.
        job: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// List a job's pins, or release some.
    #[command(
        after_help = "Example: syncguard quarantine pins <job id> --release E-1001 --reason 'confirmed leaver'"
    )]
    Pins {
        /// The job.
        job: String,
        /// Release this anchor's pin (repeat for several); with --all, every pin.
        #[arg(long = "release")]
        release: Vec<String>,
        /// Release every pin of the job.
        #[arg(long)]
        all: bool,
        /// Why (required to release).
        #[arg(long)]
        reason: Option<String>,
    },
}

/// Options of allow and reject.
#[derive(Debug, Args)]
pub struct Decision {
    /// A job id (its open quarantine) or a quarantine id.
    pub target: String,
    /// Why (logged with your name).
    #[arg(long)]
    pub reason: String,
    /// Only these anchors (repeat for several).
    #[arg(long = "anchor")]
    pub anchors: Vec<String>,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
}

/// Log actions as administrators know them.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogAction {
    /// StagedDelete or StagedDisable.
    StagedAction,
    /// Held deletes.
    StagedDelete,
    /// Held disables.
    StagedDisable,
    /// Applied creates.
    Create,
    /// Applied updates.
    Update,
    /// Applied disables.
    Disable,
    /// Applied enables.
    Enable,
    /// Applied deletes.
    Delete,
    /// Restores.
    Restore,
    /// Purges.
    Purge,
    /// Admin decisions.
    Admin,
    /// Objects written to a job's targets.
    Export,
    /// Objects a target refused.
    ExportFailed,
}

/// Options of `logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Only this job.
    #[arg(long)]
    pub job: Option<String>,
    /// Only this cycle.
    #[arg(long)]
    pub cycle: Option<String>,
    /// Only this object anchor.
    #[arg(long)]
    pub anchor: Option<String>,
    /// Only this action.
    #[arg(long, value_enum)]
    pub action: Option<LogAction>,
    /// Only entries by this actor (e.g. approver:alice).
    #[arg(long)]
    pub actor: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Show at most this many entries (default 50; with --json, all unless given).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Show every matching entry (read page by page).
    #[arg(long, conflicts_with = "limit")]
    pub all: bool,
}

/// Directory commands.
#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// Show one object by object id.
    #[command(after_help = "Example: syncguard directory get <object id>")]
    Get {
        /// The object id.
        object: String,
    },
    /// List a job's live objects.
    #[command(after_help = "Example: syncguard directory list <job id> --limit 20")]
    List {
        /// The job.
        job: String,
        /// Show at most this many (default 50; with --json, all unless given).
        #[arg(long)]
        limit: Option<u32>,
        /// Show every one (read page by page).
        #[arg(long, conflicts_with = "limit")]
        all: bool,
    },
    /// List a job's soft-deleted objects with their purge dates.
    #[command(after_help = "Example: syncguard directory deleted <job id>")]
    Deleted {
        /// The job.
        job: String,
        /// Show at most this many (default 50; with --json, all unless given).
        #[arg(long)]
        limit: Option<u32>,
        /// Show every one (read page by page).
        #[arg(long, conflicts_with = "limit")]
        all: bool,
    },
    /// Restore a soft-deleted object (same object id, attributes and groups).
    #[command(
        after_help = "Example: syncguard directory restore <object id> --reason 'deleted by mistake'"
    )]
    Restore {
        /// The object id.
        object: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Purge a soft-deleted object now; it can never be restored.
    #[command(
        after_help = "Example: syncguard directory purge <object id> --reason 'erasure request' --yes"
    )]
    Purge {
        /// The object id.
        object: String,
        /// Why.
        #[arg(long)]
        reason: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// Options of `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The job.
    pub job: String,
    /// An .ldif or .json file, or a folder of them (each pushed as one snapshot, in name order).
    pub path: PathBuf,
}

/// Options of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the notifier writes mail (scripts/run: target/dev/mail).
    #[arg(long, env = "SYNCGUARD_MAIL_DIR", default_value = "target/dev/mail")]
    pub mail_dir: PathBuf,
    /// Users in the demo directory.
    #[arg(long, default_value_t = 1000)]
    pub users: usize,
    /// How many of them leave the source.
    #[arg(long, default_value_t = 600)]
    pub remove: usize,
    /// Also write the job's changes to this LDAP directory (e.g. ldap://127.0.0.1:389) and
    /// show the users arriving there and the held deletes kept out of it until allowed.
    #[arg(long, requires = "ldap_secret")]
    pub ldap_target: Option<String>,
    /// The secret (in the exporter's and ingest's SYNCGUARD_SECRETS_DIR) with the bind password.
    #[arg(long)]
    pub ldap_secret: Option<String>,
    /// Who writes to the LDAP target.
    #[arg(long, default_value = "cn=admin,dc=example,dc=org")]
    pub ldap_bind_dn: String,
    /// Where users go in the LDAP target.
    #[arg(long, default_value = "ou=people,dc=example,dc=org")]
    pub ldap_users: String,
}

/// `targets` commands.
#[derive(Debug, Subcommand)]
pub enum TargetsCommand {
    /// Every target of a job (or of every job): cursor, pending changes, lag, failures.
    #[command(after_help = "Example: syncguard targets status --job <job id>")]
    Status {
        /// Only this job's targets.
        #[arg(long)]
        job: Option<String>,
    },
    /// Objects a target refused: retrying, and parked as failed after the last attempt.
    #[command(after_help = "Example: syncguard targets failures <job id> --target directory")]
    Failures {
        /// The job.
        job: String,
        /// Only this target.
        #[arg(long)]
        target: Option<String>,
        /// Resolved ones too.
        #[arg(long)]
        resolved: bool,
        /// Show at most this many (default 50; with --json, all unless given).
        #[arg(long)]
        limit: Option<u32>,
        /// Show every one (read page by page).
        #[arg(long, conflicts_with = "limit")]
        all: bool,
    },
    /// Try refused objects again now: one failure, or all of a job's target.
    #[command(after_help = "Example: syncguard targets retry <job id> --target directory")]
    Retry {
        /// The job (with --target).
        #[arg(required_unless_present = "failure")]
        job: Option<String>,
        /// The target (with the job).
        #[arg(long, requires = "job")]
        target: Option<String>,
        /// One failure by id instead.
        #[arg(long, conflicts_with_all = ["job", "target"])]
        failure: Option<String>,
    },
}

/// Options of `watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The job (default: every job).
    pub job: Option<String>,
    /// Resume after this cursor (printed with each change); default: the oldest change kept.
    #[arg(long)]
    pub after: Option<String>,
    /// Stop once caught up with the changes applied before the call.
    #[arg(long)]
    pub until_now: bool,
    /// Only users or only groups.
    #[arg(long = "type", value_enum)]
    pub object_type: Option<WatchedType>,
}

/// Object types `watch` can be limited to.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum WatchedType {
    /// Users.
    User,
    /// Groups.
    Group,
}
