//! `aluskort`: the binary. Parses the command line, reads the environment once, builds the
//! backends from config (the composition root, [`wiring`]), and runs a command.

mod commands;
mod wiring;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// mimalloc: the extraction hot paths allocate many small strings; it measured ~25% faster than the
/// system allocator on the Sentinel entity benchmark (see `cargo bench -p aluskort-extract`).
/// Built without transparent huge pages (`no_thp`): the pipeline allocates on one thread and
/// frees on another, so fresh memory is touched all through a burst, and zeroing 2 MiB pages for
/// it was ~10 % of `bench pipeline`'s CPU (kernel time −0.7 s for 5,000 alerts without them).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "aluskort", version, about = "Autonomous SOC analyst: triage, investigate and audit security alerts")]
struct Cli {
    /// Config file (TOML). Without one, everything is embedded under --data-dir.
    #[arg(long, global = true, env = "ALUSKORT_CONFIG")]
    config: Option<PathBuf>,
    /// Directory for embedded state (overrides `data_dir` of the config).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum OutputFormat {
    /// One JSON object per input alert.
    Jsonl,
    /// A human-readable table.
    Table,
}

#[derive(Subcommand)]
enum Command {
    /// Run alerts (files or `-` for stdin; JSONL, JSON array, or Log Analytics response) through
    /// the whole pipeline and print one result per alert.
    Triage {
        /// Input files; `-` or nothing reads standard input.
        files: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: OutputFormat,
    },
    /// Extract indicators from text.
    Extract {
        /// Input file; `-` or nothing reads standard input.
        file: Option<PathBuf>,
        /// Read JSON lines `{"id", "text"}` and print `{"id", "iocs"}` per line.
        #[arg(long)]
        jsonl: bool,
    },
    /// Audit chain operations.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// API keys for `[api.auth]`.
    ApiKey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// Configuration operations.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Kill switches switched on and off at run time, read by every worker within
    /// `redis.kill_switch_refresh_secs` (needs `[redis]`; `list` also shows the config file's).
    #[cfg(feature = "redis")]
    Killswitch {
        #[command(subcommand)]
        command: KillSwitchCommand,
    },
    /// Benchmarks (throughput and memory, measured; never in tests).
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// The LLM context gateway: injection screening of untrusted text.
    Gateway {
        #[command(subcommand)]
        command: GatewayCommand,
    },
    /// MITRE ATT&CK: technique suggestions from text.
    Attack {
        #[command(subcommand)]
        command: AttackCommand,
    },
    /// Threat-intelligence indicators for enrichment (FR-ENR-004).
    Ti {
        #[command(subcommand)]
        command: TiCommand,
    },
    /// Incident memory by month (NFR-CMP-002): what is kept, and archiving old months to `[blobs]`.
    Memory {
        #[command(subcommand)]
        command: MemoryCommand,
    },
    /// The asset/zone graph (`[graph]`): where assets reside and what a compromise there costs.
    Assets {
        #[command(subcommand)]
        command: AssetsCommand,
    },
    /// Enrichment context: UEBA user risk, CTEM exposures and false-positive patterns.
    Context {
        #[command(subcommand)]
        command: ContextCommand,
    },
    /// The model layer: providers, routes and usage.
    Llm {
        #[command(subcommand)]
        command: LlmCommand,
    },
    /// Knowledge base data.
    Knowledge {
        #[command(subcommand)]
        command: KnowledgeCommand,
    },
    /// SIEM connectors configured as [sources.<name>].
    Sources {
        #[command(subcommand)]
        command: SourcesCommand,
    },
    /// Approval gates (FR-RSP-002/003): list, approve or reject proposed response actions.
    Approvals {
        #[command(subcommand)]
        command: ApprovalsCommand,
    },
    /// Response playbooks (FR-RSP-005): lint and list.
    Playbook {
        #[command(subcommand)]
        command: PlaybookCommand,
    },
    /// Analyst feedback on an investigation (FR-CSM-004): stored, audited, written back to incident
    /// memory; repeated confirmed false positives propose an FP pattern for review.
    Feedback {
        investigation_id: String,
        /// Who gives it.
        #[arg(long)]
        actor: String,
        /// Whether the verdict was right.
        #[arg(long, action = clap::ArgAction::Set)]
        correct: bool,
        /// 1..=5.
        #[arg(long)]
        rating: u8,
        #[arg(long, default_value = "")]
        comment: String,
        /// The right classification when --correct false: true_positive, benign_true_positive,
        /// false_positive or needs_investigation.
        #[arg(long)]
        classification: Option<String>,
    },
    /// Run the HTTP API, the pipeline and every enabled source (embedded by default), until Ctrl-C.
    Serve {
        /// Listen address (overrides `listen_addr`; default 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// The API only, no stage (needs `[bus] backend = "kafka"`; workers run the stages).
        #[arg(long)]
        api_only: bool,
        /// No authentication, every request served as a local admin: for trying ALUSKORT on your own
        /// machine only (the same as `[api.auth] disabled = true`; refused on a non-loopback address).
        #[arg(long)]
        no_auth: bool,
    },
    /// One stage of the pipeline, stateless, with /health, /ready and /metrics on --listen
    /// (needs `[bus] backend = "kafka"`); SIGTERM finishes the message in hand, then exits.
    Worker {
        #[arg(long, value_enum)]
        stage: commands::serve::Stage,
        /// Probe address (overrides `listen_addr`).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
}

#[derive(Subcommand)]
enum ApprovalsCommand {
    /// Approvals and the actions each would release.
    List {
        /// pending (default), approved, rejected, timed_out or all.
        #[arg(long, default_value = "pending")]
        status: String,
        #[arg(long)]
        tenant: Option<String>,
        /// One JSON object per approval instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Approve: the investigation's gated actions run once (dry-run unless `respond.mode = "live"`).
    Approve {
        approval_id: String,
        /// Who decides (recorded in the audit trail).
        #[arg(long)]
        actor: String,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Reject: nothing runs; the investigation closes as `response_rejected`.
    Reject {
        approval_id: String,
        #[arg(long)]
        actor: String,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Reminders at 50 %, escalation (critical/high) or timeout (medium/low) past the deadline.
    Sweep,
}

#[derive(Subcommand)]
enum PlaybookCommand {
    /// Lint playbook files or directories (default: the built-in set); exit 1 on any error.
    Lint { paths: Vec<PathBuf> },
    /// The effective playbooks: built-ins overridden by `respond.playbook_dir` / `<data_dir>/playbooks`.
    List,
}

#[cfg(feature = "redis")]
#[derive(Subcommand)]
enum KillSwitchCommand {
    /// Stop automation in a scope: no auto-close, no automatic action (tenant, source, technique
    /// and its sub-techniques, or an FP pattern id).
    On {
        /// tenant, source, technique or pattern.
        dimension: String,
        value: String,
        #[arg(long)]
        actor: String,
        #[arg(long)]
        reason: String,
    },
    /// Lift a run-time switch (the config file's stay until the file changes).
    Off { dimension: String, value: String },
    /// Every switch in force: the config file's and the run-time ones.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Synthetic alerts through the whole embedded pipeline (deterministic reasoner) in a scratch
    /// directory: alerts/s and p50/p99 alert-to-verdict latency.
    #[command(alias = "triage")]
    Pipeline {
        /// Number of alerts.
        #[arg(long, default_value_t = 2000)]
        alerts: usize,
        /// Alerts per host/account group (incident size).
        #[arg(long, default_value_t = 10)]
        group: usize,
        /// Template alerts (default: the bundled demo alerts).
        #[arg(long)]
        source: Option<PathBuf>,
        /// Offered load in alerts per second (default: submit as fast as accepted).
        #[arg(long)]
        rate: Option<f64>,
        /// Run in this directory (new or empty) instead of a scratch one, and leave the data there
        /// for inspection (e.g. what each table stores per alert).
        #[arg(long)]
        keep: Option<PathBuf>,
    },
    /// The analyst API (what the web UI calls) over loopback HTTP, after `--investigations`
    /// synthetic alerts went through the embedded pipeline: p50/p99 per route and a cursor walk
    /// through the whole queue.
    Api {
        #[arg(long, default_value_t = 10_000)]
        investigations: usize,
        #[arg(long, default_value_t = 10)]
        group: usize,
    },
    /// IOC exact-match lookups through the Redis cache against a real server: p50/p95/p99.
    #[cfg(feature = "redis")]
    Redis {
        #[arg(long, default_value = "redis://127.0.0.1:6379")]
        url: String,
        #[arg(long, default_value_t = 100_000)]
        lookups: usize,
        /// Lookups in flight at once.
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
    },
}

#[derive(Subcommand)]
enum TiCommand {
    /// Threat-intel indicators: JSON lines {"type","value","confidence"?,"description"?}, or any
    /// text (a report, an IOC list) whose indicators are extracted.
    Import {
        file: PathBuf,
        /// Feed name recorded with each indicator (default: the file name).
        #[arg(long)]
        source: Option<String>,
        /// Only this tenant's alerts match (default: every tenant).
        #[arg(long)]
        tenant: Option<String>,
        /// Confidence 0..=100 for indicators that carry none; sets their lifetime.
        #[arg(long, default_value_t = 50)]
        confidence: u8,
    },
}

#[derive(Subcommand)]
enum AssetsCommand {
    /// Place assets in zones: JSON lines {"asset","zone","consequence" (low|medium|high|critical),
    /// "tenant"?}. Any bad line: all are named and nothing is written.
    Import {
        file: PathBuf,
        /// Tenant of lines that name none.
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// Where the named assets reside: one {"asset","zone","consequence"} line each; exit 1 if any
    /// is unknown.
    Show {
        #[arg(required = true)]
        assets: Vec<String>,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
}

#[derive(Subcommand)]
enum ContextCommand {
    /// UEBA user risk (FR-ENR-005): JSON lines {"user","priority" (0..=10),"observed_at" (RFC 3339),
    /// "tenant"?,"detail"? (object)}. Any bad line: all are named and nothing is written.
    ImportUeba {
        file: PathBuf,
        /// Tenant of lines that name none (default: `default`).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// CTEM exposures (FR-ENR-006): JSON lines {"exposure_id","asset_id","asset_zone","status",
    /// "ctem_score","title","updated_at" (RFC 3339),"tenant"?}. Any bad line: nothing is written.
    ImportCtem {
        file: PathBuf,
        /// Tenant of lines that name none (default: `default`).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// False-positive patterns (FR-RAG-005): JSON lines {"pattern_id","tenant"?,"name","alert_name_regex"?,
    /// "entity_patterns":[{"entity_type","pattern"}],"confidence_threshold"? (0.90),"status"? (pending_review),
    /// "approved_by"?,"approval_date"?,"expires_at"?,"reason"}. Approved/active patterns need 2 distinct
    /// approvers and an approval date, and expire 90 days after it by default. Any bad line: nothing is written.
    AddFp { file: PathBuf },
    /// The approved or active, unexpired FP patterns that apply to a tenant (its own and global ones);
    /// with --status, patterns in that status (pending ones for review) of every tenant or of --tenant.
    ListFp {
        /// Default: `default`.
        #[arg(long)]
        tenant: Option<String>,
        /// pending_review, approved, active, shadow, deprecated, expired, revoked or all.
        #[arg(long)]
        status: Option<String>,
        /// One JSON object per pattern instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending (or expired) FP pattern; it becomes active for 90 days once two distinct
    /// people have approved it (NFR-CMP-003).
    ApproveFp {
        pattern_id: String,
        /// Who approves (recorded in the pattern and the audit trail).
        #[arg(long)]
        actor: String,
    },
    /// Extend an approved or active FP pattern for another 90 days from now.
    ReaffirmFp {
        pattern_id: String,
        #[arg(long)]
        actor: String,
    },
    /// Revoke an FP pattern: it never closes an alert again.
    RevokeFp {
        pattern_id: String,
        #[arg(long)]
        actor: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(Subcommand)]
enum LlmCommand {
    /// Providers, the model of every tier, fallbacks, spend limits and queue concurrency.
    Status,
    /// Model calls, tokens, cost and latency by day, tier and task; spend against the limits.
    Usage {
        /// Days back, today included.
        #[arg(long, default_value_t = 7)]
        days: u32,
        /// One JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum GatewayCommand {
    /// Verdict (benign, suspicious, malicious) with reasons: one text, or `{"id","text"}` lines with --jsonl.
    Screen {
        /// Input file; `-` or nothing reads standard input.
        file: Option<PathBuf>,
        #[arg(long)]
        jsonl: bool,
    },
}

#[derive(Subcommand)]
enum AttackCommand {
    /// Techniques a text describes: plain input prints the top K `{"id","name","score"}` lines;
    /// `--jsonl` reads `{"id","text"}` lines and prints `{"id","techniques":[{"id","score"}]}` each.
    Suggest {
        /// Input file; `-` or nothing reads standard input.
        file: Option<PathBuf>,
        #[arg(long, default_value_t = 5)]
        top: usize,
        #[arg(long)]
        jsonl: bool,
        /// ATT&CK STIX bundle (default: the imported one, then $ALUSKORT_ATTACK_BUNDLE, then ../shared/data).
        #[arg(long)]
        bundle: Option<PathBuf>,
    },
    /// Top-1/3/5 accuracy on procedure examples held out of the model.
    Eval {
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// Also score the built-in hashing embedder on the same split (a full scan per example; slow).
        #[arg(long)]
        embedder: bool,
    },
}

#[derive(Subcommand)]
enum KnowledgeCommand {
    /// Import a data set: `attack FILE` (an ATT&CK STIX bundle such as enterprise-attack.json) or
    /// `atlas FILE` (ATLAS.yaml).
    Import {
        #[arg(value_parser = ["attack", "atlas"])]
        kind: String,
        file: PathBuf,
    },
    /// A technique: name, tactics, parent, status; with an import, mitigations and procedure examples.
    Show { id: String },
    /// Import threat-intel reports (text or Markdown): chunked by section, indexed by indicator;
    /// triage then notes alerts whose indicators a report names.
    Reports { files: Vec<PathBuf> },
    /// Reports naming the indicators in TEXT (an IP, domain, hash, URL...; defanged is fine).
    Lookup { text: String },
}

#[derive(Subcommand)]
enum SourcesCommand {
    /// Each source with its kind, state and checkpoint.
    List,
    /// Check credentials and connectivity and print what a poll would fetch (publishes nothing).
    Test {
        name: String,
        /// Records to show.
        #[arg(long, default_value_t = 5)]
        limit: u32,
    },
    /// Poll once now: publish and investigate what is new, save the checkpoint.
    Poll { name: String },
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Print a new random key (once, on stdout) and the `[[api.auth.keys]]` entry admitting it.
    New {
        /// Who the key is for: recorded as the actor of what it does.
        #[arg(long)]
        name: String,
        /// analyst, senior_analyst (approves actions), admin or audit_reader.
        #[arg(long)]
        role: String,
        /// Limit the key to this tenant (repeatable; default every tenant).
        #[arg(long = "tenant")]
        tenants: Vec<String>,
    },
}

#[derive(Subcommand)]
enum MemoryCommand {
    /// Months of incident memory with their counts, which are due for archiving, and the hot
    /// vector count against its limit.
    Status,
    /// Store every month older than the hot window in `[blobs]` (`incident-memory/<YYYY-MM>.jsonl`,
    /// write-once, read back and checked), then remove it from the store and the vector index.
    Archive {
        /// Months kept hot before the current one.
        #[arg(long, default_value_t = aluskort_knowledge::memory::HOT_MONTHS)]
        keep_months: u32,
        /// Only say what would be archived.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify every record and link of the audit chain.
    Verify,
    /// Export one investigation as an evidence package (its states, alert, incident, audit
    /// records and chain proof), stored write-once in `[blobs]`; prints its key and SHA-256.
    Evidence {
        /// The investigation id (as `triage` prints it).
        investigation: String,
        /// Also write the package to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check an evidence package file: every record's hash, every successor link, the chain head.
    /// Exit 0 when it holds; 1 naming the first failure.
    VerifyEvidence {
        /// The package (a file, or `-` for standard input).
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the configuration and print every problem.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    #[expect(clippy::disallowed_methods, reason = "the one place the environment is read")]
    let env: HashMap<String, String> = std::env::vars().collect();
    let serve = matches!(cli.command, Command::Serve { .. } | Command::Worker { .. });
    wiring::init_tracing(&env, serve);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Triage { files, format } => commands::triage::run(cli.config.as_deref(), cli.data_dir, &env, &files, format).await,
            Command::Extract { file, jsonl } => commands::extract::run(file.as_deref(), jsonl).await,
            Command::Audit { command: AuditCommand::Verify } => commands::audit::verify(cli.config.as_deref(), cli.data_dir, &env).await,
            Command::Audit { command: AuditCommand::Evidence { investigation, out } } => {
                commands::audit::evidence(cli.config.as_deref(), cli.data_dir, &env, &investigation, out.as_deref()).await
            }
            Command::Audit { command: AuditCommand::VerifyEvidence { file } } => commands::audit::verify_evidence(&file),
            Command::ApiKey { command: ApiKeyCommand::New { name, role, tenants } } => commands::apikey::new(&name, &role, &tenants),
            Command::Config { command: ConfigCommand::Check } => commands::config::check(cli.config.as_deref(), cli.data_dir, &env),
            Command::Bench { command: BenchCommand::Pipeline { alerts, group, source, rate, keep } } => {
                commands::bench::run(commands::bench::BenchOptions { alerts, group, source, rate, api: false, keep }).await
            }
            Command::Bench { command: BenchCommand::Api { investigations, group } } => {
                commands::bench::run(commands::bench::BenchOptions {
                    alerts: investigations,
                    group,
                    source: None,
                    rate: None,
                    api: true,
                    keep: None,
                })
                .await
            }
            #[cfg(feature = "redis")]
            Command::Bench { command: BenchCommand::Redis { url, lookups, concurrency } } => {
                commands::redis::bench(url, lookups, concurrency).await
            }
            #[cfg(feature = "redis")]
            Command::Killswitch { command } => {
                let action = match command {
                    KillSwitchCommand::On { dimension, value, actor, reason } => {
                        commands::redis::KillSwitchAction::On { dimension, value, actor, reason }
                    }
                    KillSwitchCommand::Off { dimension, value } => commands::redis::KillSwitchAction::Off { dimension, value },
                    KillSwitchCommand::List { json } => commands::redis::KillSwitchAction::List { json },
                };
                commands::redis::killswitch(cli.config.as_deref(), cli.data_dir, &env, action).await
            }
            Command::Gateway { command: GatewayCommand::Screen { file, jsonl } } => commands::gateway::screen(file.as_deref(), jsonl),
            Command::Attack { command } => {
                let config = wiring::load_config(cli.config.as_deref(), cli.data_dir, &env)?;
                match command {
                    AttackCommand::Suggest { file, top, jsonl, bundle } => {
                        commands::attack::suggest(&config.data_dir, &env, bundle.as_deref(), file.as_deref(), top, jsonl)
                    }
                    AttackCommand::Eval { bundle, embedder } => commands::attack::eval(&config.data_dir, &env, bundle.as_deref(), embedder),
                }
            }
            Command::Knowledge { command } => {
                let config = wiring::load_config(cli.config.as_deref(), cli.data_dir, &env)?;
                match command {
                    KnowledgeCommand::Import { kind, file } => commands::attack::import(&config.data_dir, &kind, &file),
                    KnowledgeCommand::Show { id } => commands::attack::show(&config.data_dir, &id),
                    KnowledgeCommand::Reports { files } => commands::attack::import_reports(&config.data_dir, &files),
                    KnowledgeCommand::Lookup { text } => commands::attack::lookup(&config.data_dir, &text),
                }
            }
            Command::Memory { command } => {
                let config = wiring::load_config(cli.config.as_deref(), cli.data_dir, &env)?;
                match command {
                    MemoryCommand::Status => commands::memory::status(&config).await,
                    MemoryCommand::Archive { keep_months, dry_run } => commands::memory::archive(&config, keep_months, dry_run).await,
                }
            }
            Command::Assets { command: AssetsCommand::Import { file, tenant } } => {
                commands::assets::import(cli.config.as_deref(), cli.data_dir, &env, &file, &tenant).await
            }
            Command::Assets { command: AssetsCommand::Show { assets, tenant } } => {
                commands::assets::show(cli.config.as_deref(), cli.data_dir, &env, &assets, &tenant).await
            }
            Command::Ti { command: TiCommand::Import { file, source, tenant, confidence } } => {
                let options = commands::ti::ImportOptions { file: &file, source, tenant, confidence };
                commands::ti::import(cli.config.as_deref(), cli.data_dir, &env, options).await
            }
            Command::Approvals { command } => {
                let (config, data_dir) = (cli.config.as_deref(), cli.data_dir);
                match command {
                    ApprovalsCommand::List { status, tenant, json } => {
                        commands::approvals::list(config, data_dir, &env, &status, tenant, json).await
                    }
                    ApprovalsCommand::Approve { approval_id, actor, comment } => {
                        let decision = aluskort_respond::gate::Decision::Approve;
                        commands::approvals::decide(config, data_dir, &env, &approval_id, &actor, decision, &comment).await
                    }
                    ApprovalsCommand::Reject { approval_id, actor, comment } => {
                        let decision = aluskort_respond::gate::Decision::Reject;
                        commands::approvals::decide(config, data_dir, &env, &approval_id, &actor, decision, &comment).await
                    }
                    ApprovalsCommand::Sweep => commands::approvals::sweep(config, data_dir, &env).await,
                }
            }
            Command::Playbook { command } => match command {
                PlaybookCommand::Lint { paths } => commands::playbook::lint(&paths),
                PlaybookCommand::List => {
                    let config = wiring::load_config(cli.config.as_deref(), cli.data_dir, &env)?;
                    commands::playbook::list(wiring::playbook_dir(&config).as_deref()).map(|()| ExitCode::SUCCESS)
                }
            },
            Command::Context { command } => {
                let (config, data_dir) = (cli.config.as_deref(), cli.data_dir);
                match command {
                    ContextCommand::ImportUeba { file, tenant } => {
                        commands::context::import_ueba(config, data_dir, &env, &file, tenant).await
                    }
                    ContextCommand::ImportCtem { file, tenant } => {
                        commands::context::import_ctem(config, data_dir, &env, &file, tenant).await
                    }
                    ContextCommand::AddFp { file } => commands::context::add_fp(config, data_dir, &env, &file).await,
                    ContextCommand::ListFp { tenant, status, json } => {
                        commands::context::list_fp(config, data_dir, &env, tenant, status, json).await
                    }
                    ContextCommand::ApproveFp { pattern_id, actor } => {
                        let step = commands::feedback::FpStep::Approve;
                        commands::feedback::fp_step(config, data_dir, &env, &pattern_id, &actor, step).await
                    }
                    ContextCommand::ReaffirmFp { pattern_id, actor } => {
                        let step = commands::feedback::FpStep::Reaffirm;
                        commands::feedback::fp_step(config, data_dir, &env, &pattern_id, &actor, step).await
                    }
                    ContextCommand::RevokeFp { pattern_id, actor, reason } => {
                        let step = commands::feedback::FpStep::Revoke { reason };
                        commands::feedback::fp_step(config, data_dir, &env, &pattern_id, &actor, step).await
                    }
                }
            }
            Command::Llm { command: LlmCommand::Status } => commands::llm::status(cli.config.as_deref(), cli.data_dir, &env),
            Command::Llm { command: LlmCommand::Usage { days, json } } => {
                commands::llm::usage(cli.config.as_deref(), cli.data_dir, &env, days, json).await
            }
            Command::Sources { command: SourcesCommand::List } => commands::sources::list(cli.config.as_deref(), cli.data_dir, &env).await,
            Command::Sources { command: SourcesCommand::Test { name, limit } } => {
                commands::sources::test(cli.config.as_deref(), cli.data_dir, &env, &name, limit).await
            }
            Command::Sources { command: SourcesCommand::Poll { name } } => {
                commands::sources::poll(cli.config.as_deref(), cli.data_dir, &env, &name).await
            }
            Command::Feedback { investigation_id, actor, correct, rating, comment, classification } => {
                let args = commands::feedback::FeedbackArgs { investigation_id, actor, correct, rating, comment, classification };
                commands::feedback::run(cli.config.as_deref(), cli.data_dir, &env, args).await
            }
            Command::Serve { listen, api_only, no_auth } => {
                let mode = if api_only { commands::serve::Mode::ApiOnly } else { commands::serve::Mode::All };
                commands::serve::run(cli.config.as_deref(), cli.data_dir, &env, commands::serve::Options { listen, mode, no_auth }).await
            }
            Command::Worker { stage, listen } => {
                let options = commands::serve::Options { listen, mode: commands::serve::Mode::Worker(stage), no_auth: false };
                commands::serve::run(cli.config.as_deref(), cli.data_dir, &env, options).await
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}
