//! Composition root: config → backends → pipeline. The only module that names backend types.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aluskort_audit::AuditLog;
use aluskort_bus::{Bus, MemoryBus};
use aluskort_config::{CaseStoreConfig, Config, EmbedderConfig, VectorIndexConfig};
use aluskort_gateway::Gateway;
use aluskort_gateway::setup::{GatewayParts, build_gateway};
use aluskort_investigate::{Pipeline, PipelineSettings};
use aluskort_knowledge::embed::{Embedder, HashingEmbedder, OpenAiCompatible};
use aluskort_knowledge::memory::IncidentMemory;
use aluskort_knowledge::qdrant::QdrantIndex;
use aluskort_knowledge::taxonomy::Taxonomy;
use aluskort_knowledge::vector::{FlatIndex, VectorIndex};
use aluskort_llm::deterministic::DeterministicProvider;
use aluskort_store::{AuditStore, CaseStore, ContextStore, MemoryStore, ResponseStore, SqliteStore, ThreatIntelStore, UsageStore};
use anyhow::Context;
use tokio_util::sync::CancellationToken;

/// Loads and validates the config; `--data-dir` wins over the file and the environment.
pub fn load_config(path: Option<&Path>, data_dir: Option<PathBuf>, env: &HashMap<String, String>) -> anyhow::Result<Config> {
    let text = match path {
        Some(path) => Some(std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?),
        None => None,
    };
    let mut config = aluskort_config::load(text.as_deref(), env)
        .map_err(|errors| anyhow::anyhow!("invalid configuration:\n  {}", errors.0.join("\n  ")))?;
    if let Some(dir) = data_dir {
        config.data_dir = dir;
    }
    Ok(config)
}

/// The backends a command works with.
pub struct Backends {
    pub case_store: Arc<dyn CaseStore>,
    pub audit_store: Arc<dyn AuditStore>,
    /// The model-call ledger (spend limits, quotas, `aluskort llm usage`).
    pub usage_store: Arc<dyn UsageStore>,
    /// Threat-intelligence indicators (`aluskort ti import`).
    pub threat_intel: Arc<dyn ThreatIntelStore>,
    /// FP patterns, UEBA user risk and CTEM exposures (`aluskort context ...`).
    pub context: Arc<dyn ContextStore>,
    /// Approvals, action executions and feedback (`aluskort approvals ...`).
    pub responses: Arc<dyn ResponseStore>,
    /// Incident memory (`[knowledge]`), unless disabled; its records are kept in `memory_store`.
    pub incident_memory: Option<Arc<IncidentMemory>>,
    /// Incident memory's records by month (NFR-CMP-002; `aluskort memory`).
    pub memory_store: Arc<dyn MemoryStore>,
    /// The kill switches in force: the file's, joined at run time by those in Redis (`[redis]`).
    pub kill_switches: aluskort_config::SharedKillSwitches,
    /// The shared Redis of `[redis]`, when configured.
    #[cfg(feature = "redis")]
    pub redis: Option<aluskort_cache::RedisCache>,
    closer: Closer,
}

enum Closer {
    Sqlite(SqliteStore),
    #[cfg(feature = "postgres")]
    Postgres(aluskort_store::PostgresStore),
}

impl Backends {
    /// Every store role served by one database.
    fn over<S>(store: &S, incident_memory: Option<IncidentMemory>, closer: Closer) -> Self
    where
        S: CaseStore + AuditStore + UsageStore + ThreatIntelStore + ContextStore + ResponseStore + MemoryStore + Clone,
    {
        let memory_store: Arc<dyn MemoryStore> = Arc::new(store.clone());
        let incident_memory = incident_memory.map(|memory| Arc::new(memory.with_store(Arc::clone(&memory_store))));
        Backends {
            case_store: Arc::new(store.clone()),
            audit_store: Arc::new(store.clone()),
            usage_store: Arc::new(store.clone()),
            threat_intel: Arc::new(store.clone()),
            context: Arc::new(store.clone()),
            responses: Arc::new(store.clone()),
            incident_memory,
            memory_store,
            kill_switches: aluskort_config::SharedKillSwitches::default(),
            #[cfg(feature = "redis")]
            redis: None,
            closer,
        }
    }

    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        let mut backends = Self::open_stores(config).await?;
        backends.kill_switches = aluskort_config::SharedKillSwitches::new(config.kill_switches.clone());
        if let Some(redis) = &config.redis {
            #[cfg(feature = "redis")]
            {
                let cache = aluskort_cache::RedisCache::connect(redis).await.context("cannot reach the Redis of `[redis]`")?;
                backends.threat_intel =
                    Arc::new(aluskort_cache::ti::CachedThreatIntel::new(cache.clone(), Arc::clone(&backends.threat_intel)));
                backends.context = Arc::new(aluskort_cache::fp::CachedContext::new(cache.clone(), Arc::clone(&backends.context)));
                // In force before the first alert: the refresher only keeps them current.
                let stored = aluskort_cache::kill::KillSwitchStore::new(cache.clone())
                    .current()
                    .await
                    .context("cannot read the kill switches in Redis (`[redis]`); refusing to run without them")?;
                backends.kill_switches.replace(config.kill_switches.union(&stored));
                backends.redis = Some(cache);
            }
            #[cfg(not(feature = "redis"))]
            {
                let _ = redis;
                anyhow::bail!("`[redis]` is configured but aluskort was built without the `redis` feature");
            }
        }
        Ok(backends)
    }

    async fn open_stores(config: &Config) -> anyhow::Result<Self> {
        match &config.case_store {
            CaseStoreConfig::Sqlite => {
                let store = SqliteStore::open(&config.data_dir)
                    .await
                    .with_context(|| format!("cannot open the embedded store under {}", config.data_dir.display()))?;
                Ok(Backends::over(&store, open_memory(config).await?, Closer::Sqlite(store.clone())))
            }
            #[cfg(feature = "postgres")]
            CaseStoreConfig::Postgres { url, schema, max_connections } => {
                let store = aluskort_store::PostgresStore::connect(url.expose(), schema.as_deref(), *max_connections)
                    .await
                    .context("cannot connect to the PostgreSQL case store")?;
                Ok(Backends::over(&store, open_memory(config).await?, Closer::Postgres(store.clone())))
            }
            #[cfg(not(feature = "postgres"))]
            CaseStoreConfig::Postgres { .. } => anyhow::bail!("aluskort was built without the `postgres` feature"),
        }
    }

    /// The PostgreSQL store, whose audit table is partitioned by month (NFR-CMP-002) and needs
    /// next month's partitions made ahead of time; `None` on SQLite.
    #[cfg(feature = "postgres")]
    pub fn partitioned_audit(&self) -> Option<aluskort_store::PostgresStore> {
        match &self.closer {
            Closer::Postgres(store) => Some(store.clone()),
            Closer::Sqlite(_) => None,
        }
    }

    /// Flushes and closes connections (SQLite checkpoints its WAL into the database file).
    pub async fn close(self) {
        match self.closer {
            Closer::Sqlite(store) => store.close().await,
            #[cfg(feature = "postgres")]
            Closer::Postgres(store) => store.close().await,
        }
    }
}

/// The bus of `[bus]`: in-process, or a Kafka cluster.
#[derive(Clone)]
pub enum BusHandle {
    Memory(Arc<MemoryBus>),
    #[cfg(feature = "kafka")]
    Kafka(Arc<aluskort_kafka::KafkaBus>),
}

impl BusHandle {
    pub async fn open(config: &aluskort_config::BusConfig) -> anyhow::Result<Self> {
        match config {
            aluskort_config::BusConfig::Memory => Ok(BusHandle::Memory(Arc::new(MemoryBus::new()))),
            #[cfg(feature = "kafka")]
            aluskort_config::BusConfig::Kafka { brokers, topic_prefix, client_id, replication } => {
                let settings = aluskort_kafka::KafkaSettings {
                    brokers: brokers.clone(),
                    topic_prefix: topic_prefix.clone(),
                    client_id: client_id.clone(),
                    replication: *replication,
                };
                let bus =
                    aluskort_kafka::KafkaBus::connect(settings).await.with_context(|| format!("cannot use the Kafka bus at {brokers}"))?;
                Ok(BusHandle::Kafka(Arc::new(bus)))
            }
            #[cfg(not(feature = "kafka"))]
            aluskort_config::BusConfig::Kafka { .. } => {
                anyhow::bail!("`[bus] backend = \"kafka\"` needs a build with the `kafka` feature (cargo build --release --features kafka)")
            }
        }
    }

    pub fn shared(&self) -> Arc<dyn Bus> {
        match self {
            BusHandle::Memory(bus) => bus.clone(),
            #[cfg(feature = "kafka")]
            BusHandle::Kafka(bus) => bus.clone(),
        }
    }

    pub fn close(&self) {
        match self {
            BusHandle::Memory(bus) => bus.close(),
            #[cfg(feature = "kafka")]
            BusHandle::Kafka(bus) => bus.close(),
        }
    }
}

/// The pipeline over `backends` and the bus of `[bus]`, its parse and investigate stages running.
pub struct Running {
    pub pipeline: Arc<Pipeline>,
    /// The only path to a model (`[llm]`); the investigation engine does not call it yet.
    pub gateway: Arc<Gateway>,
    /// Approvals and response actions; its loop runs beside the stages.
    pub responder: Arc<aluskort_respond::service::Responder>,
    pub bus: BusHandle,
    shutdown: CancellationToken,
    stages: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Which of the pipeline's consuming stages a process runs (`aluskort worker --stage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stages {
    /// `alerts.raw` → `alerts.normalized`.
    pub parse: bool,
    /// `alerts.normalized` → investigations → `incidents.enriched`.
    pub investigate: bool,
    /// Approvals, action executions and FP pattern expiry.
    pub respond: bool,
}

impl Stages {
    pub const ALL: Stages = Stages { parse: true, investigate: true, respond: true };
    pub const NONE: Stages = Stages { parse: false, investigate: false, respond: false };
}

impl Running {
    /// Every stage in this process (the embedded default, `serve`, `triage`).
    pub async fn start(config: &Config, backends: &Backends) -> anyhow::Result<Self> {
        Self::start_stages(config, backends, Stages::ALL).await
    }

    pub async fn start_stages(config: &Config, backends: &Backends, run: Stages) -> anyhow::Result<Self> {
        let bus = BusHandle::open(&config.bus).await?;
        let audit = Arc::new(AuditLog::new(Arc::clone(&backends.audit_store)));
        let shutdown = CancellationToken::new();
        let parts = GatewayParts {
            ledger: Arc::clone(&backends.usage_store),
            audit: Arc::clone(&audit),
            catalog: Arc::new(Taxonomy::embedded()),
            deterministic: DeterministicProvider::new(),
        };
        let gateway = build_gateway(&config.llm, parts, &shutdown).context("cannot set up the model providers")?;
        #[cfg(feature = "redis")]
        let gateway = match &backends.redis {
            Some(cache) => gateway.with_quota(Arc::new(SharedQuota(aluskort_cache::quota::RedisQuota::new(cache.clone())))),
            None => gateway,
        };
        let gateway = Arc::new(gateway);
        let settings = PipelineSettings {
            technique_suggester: load_suggester(&config.data_dir),
            incident_memory: backends.incident_memory.clone(),
            report_index: load_reports(&config.data_dir),
            // Without a reachable model, reasoning is deterministic (NFR-REL-003).
            degradation: gateway.router.degradation(),
            gateway: Some(Arc::clone(&gateway)),
            kill_switches: backends.kill_switches.clone(),
            threat_intel: Some(Arc::clone(&backends.threat_intel)),
            context: Some(Arc::clone(&backends.context)),
            zones: config.zones.clone(),
            asset_graph: Some(open_graph(config).await?),
            enricher_timeout: config.enricher_timeout,
            grouping_window: chrono::Duration::hours(i64::from(config.grouping_window_hours)),
            max_attempts: config.max_attempts,
            playbooks: Some(Arc::new(load_playbooks(config)?)),
            respond: config.respond.clone(),
            ..PipelineSettings::default()
        };
        let shared_bus = bus.shared();
        let responder = build_responder(config, backends, Arc::clone(&audit), &shutdown)?;
        let settings = PipelineSettings {
            dry_run: Some(aluskort_respond::service::DryRunner {
                executors: Arc::clone(&responder.executors),
                notifier: responder.notifier.clone(),
            }),
            ..settings
        };
        let pipeline = Pipeline::new(shared_bus, Arc::clone(&backends.case_store), audit, settings);
        let mut stages = Vec::new();
        if run.parse {
            stages.push(tokio::spawn(Arc::clone(&pipeline).run_parse_stage(shutdown.clone())));
        }
        if run.investigate {
            stages.push(tokio::spawn(Arc::clone(&pipeline).run_investigate_stage(shutdown.clone())));
        }
        if run.respond {
            stages.push(tokio::spawn(Arc::clone(&responder).run(shutdown.clone(), RESPONSE_POLL)));
            stages.push(tokio::spawn(expire_fp_patterns(Arc::clone(&backends.context), Arc::clone(&responder.audit), shutdown.clone())));
        }
        #[cfg(feature = "redis")]
        if let (true, Some(cache), Some(redis)) = (run.investigate || run.respond, &backends.redis, &config.redis) {
            let store = aluskort_cache::kill::KillSwitchStore::new(cache.clone());
            let refresh = aluskort_cache::kill::refresh(
                store,
                config.kill_switches.clone(),
                backends.kill_switches.clone(),
                redis.kill_switch_refresh,
                shutdown.clone(),
            );
            stages.push(tokio::spawn(async move {
                refresh.await;
                anyhow::Ok(())
            }));
        }
        Ok(Running { pipeline, gateway, responder, bus, shutdown, stages })
    }

    /// Stops the stages after the message each is handling, closes the bus, and reports the first
    /// stage that failed or panicked.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.bus.close();
        let mut first_error = None;
        for stage in self.stages {
            let result = match stage.await {
                Ok(result) => result,
                Err(error) => Err(anyhow::anyhow!("pipeline stage panicked: {error}")),
            };
            if let Err(error) = result {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// How often approved FP patterns past their 90 days are marked expired.
const FP_EXPIRY_SWEEP: std::time::Duration = std::time::Duration::from_secs(300);

/// Marks approved/active FP patterns past `expires_at` as expired, now and every
/// [`FP_EXPIRY_SWEEP`] (they already stop matching at their expiry; this records it, audited).
async fn expire_fp_patterns(context: Arc<dyn ContextStore>, audit: Arc<AuditLog>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let governance = aluskort_respond::feedback::FpGovernance::new(context, audit, aluskort_respond::feedback::FpPolicy::default());
    let mut ticker = tokio::time::interval(FP_EXPIRY_SWEEP);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            _ = ticker.tick() => {}
        }
        match governance.expire_due(chrono::Utc::now()).await {
            Ok(expired) if !expired.is_empty() => tracing::info!(count = expired.len(), "FP patterns expired"),
            Ok(_) => {}
            Err(error) => tracing::warn!(error = %error, "FP pattern expiry sweep failed; retrying later"),
        }
    }
}

/// How often the response loop looks for queued actions and due approvals.
const RESPONSE_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// Where extra playbooks are read from: `respond.playbook_dir`, else `<data_dir>/playbooks` when it
/// exists.
pub fn playbook_dir(config: &Config) -> Option<std::path::PathBuf> {
    let default_dir = config.data_dir.join("playbooks");
    config.respond.playbook_dir.clone().or_else(|| default_dir.is_dir().then_some(default_dir))
}

/// The built-in playbooks, overridden by `respond.playbook_dir` (or `<data_dir>/playbooks` when it
/// exists); a set with lint errors is refused, every problem named.
pub fn load_playbooks(config: &Config) -> anyhow::Result<aluskort_respond::playbook::PlaybookSet> {
    aluskort_respond::playbook::PlaybookSet::load(playbook_dir(config).as_deref()).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("invalid playbooks:\n  {}", lines.join("\n  "))
    })
}

/// The response service over `backends`: executors and notification targets of `[respond]`.
pub fn build_responder(
    config: &Config,
    backends: &Backends,
    audit: Arc<AuditLog>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Arc<aluskort_respond::service::Responder>> {
    let executors = aluskort_respond::executors::Executors::from_config(&config.respond, shutdown.clone())
        .map_err(|error| anyhow::anyhow!("cannot set up the response executors: {error}"))?;
    Ok(Arc::new(aluskort_respond::service::Responder {
        cases: Arc::clone(&backends.case_store),
        responses: Arc::clone(&backends.responses),
        audit,
        executors: Arc::new(executors),
        notifier: aluskort_respond::notify::Notifier::start(config.respond.notify.clone(), shutdown.clone()),
        config: config.respond.clone(),
        clock: aluskort_respond::service::Clock::system(),
        kill_switches: backends.kill_switches.clone(),
    }))
}

/// Tenant quotas counted in Redis, shared by every worker (FR-ING-007).
#[cfg(feature = "redis")]
struct SharedQuota(aluskort_cache::quota::RedisQuota);

#[cfg(feature = "redis")]
#[async_trait::async_trait]
impl aluskort_gateway::QuotaGate for SharedQuota {
    async fn take(&self, tenant: &str, limit: u64) -> Result<bool, String> {
        self.0.take(tenant, limit, chrono::Utc::now()).await.map(|decision| decision.allowed).map_err(|error| error.to_string())
    }
}

/// Incident memory per `[knowledge]`: the embedder and the vector index it names.
/// The asset/zone graph of `[graph]`: in-process under `<data_dir>/graph`, or Neo4j.
pub async fn open_graph(config: &Config) -> anyhow::Result<Arc<dyn aluskort_knowledge::assets::AssetGraph>> {
    use aluskort_knowledge::assets::{MemoryGraph, Neo4jGraph};
    Ok(match &config.graph {
        aluskort_config::GraphConfig::Memory => {
            let dir = config.data_dir.join("graph");
            let graph = MemoryGraph::open(&dir).await.with_context(|| format!("cannot open the asset graph under {}", dir.display()))?;
            if graph.skipped_lines > 0 {
                tracing::warn!(skipped = graph.skipped_lines, "asset graph log lines could not be read and were skipped");
            }
            Arc::new(graph)
        }
        aluskort_config::GraphConfig::Neo4j { url, database, user, password, timeout } => {
            Arc::new(Neo4jGraph::new(url, database, user, password.expose(), *timeout).context("cannot set up the Neo4j client")?)
        }
    })
}

async fn open_memory(config: &Config) -> anyhow::Result<Option<IncidentMemory>> {
    let knowledge = &config.knowledge;
    if !knowledge.incident_memory {
        return Ok(None);
    }
    let timeout = std::time::Duration::from_secs(30);
    let embedder: Arc<dyn Embedder> = match &knowledge.embedder {
        EmbedderConfig::Hashing => Arc::new(HashingEmbedder::default()),
        EmbedderConfig::OpenAiCompatible { url, model, dimensions, api_key } => Arc::new(
            OpenAiCompatible::new(url, api_key.as_ref().map(|k| k.expose().to_owned()), model, *dimensions, timeout)
                .context("cannot set up the embedding provider")?,
        ),
    };
    let index: Arc<dyn VectorIndex> = match &knowledge.vector_index {
        VectorIndexConfig::Embedded => Arc::new(
            FlatIndex::open(&config.data_dir.join("vectors"))
                .await
                .with_context(|| format!("cannot open the vector index under {}", config.data_dir.join("vectors").display()))?,
        ),
        VectorIndexConfig::Qdrant { url, api_key, collection_prefix } => Arc::new(
            QdrantIndex::new(url, api_key.as_ref().map(|k| k.expose().to_owned()), collection_prefix, timeout)
                .context("cannot set up the Qdrant client")?,
        ),
    };
    Ok(Some(IncidentMemory::new(embedder, index)))
}

/// Imported threat-intel reports (`aluskort knowledge reports`), if any; an unreadable file is
/// reported and skipped.
fn load_reports(data_dir: &Path) -> Option<Arc<aluskort_knowledge::reports::ReportIndex>> {
    let path = crate::commands::attack::reports_path(data_dir);
    if !path.is_file() {
        return None;
    }
    match aluskort_knowledge::reports::ReportIndex::load(&path) {
        Ok(index) => Some(Arc::new(index)),
        Err(error) => {
            tracing::warn!(%error, "imported threat-intel reports unreadable; no report matches");
            None
        }
    }
}

/// The technique suggester, when an ATT&CK bundle was imported (`aluskort knowledge import attack`).
/// A bundle that cannot be read is reported and skipped: suggestions are an aid, not a dependency.
fn load_suggester(data_dir: &Path) -> Option<Arc<aluskort_knowledge::suggest::Corpus>> {
    let path = data_dir.join(crate::commands::attack::IMPORTED);
    if !path.is_file() {
        return None;
    }
    match crate::commands::attack::load(&path, false) {
        Ok(corpus) => Some(Arc::new(corpus)),
        Err(error) => {
            tracing::warn!(path = %path.display(), error = %format!("{error:#}"), "imported ATT&CK bundle unreadable; no technique suggestions");
            None
        }
    }
}

/// Logs go to stderr; stdout is reserved for results. `ALUSKORT_LOG` (or `RUST_LOG`) sets the filter.
pub fn init_tracing(env: &HashMap<String, String>, serve: bool) {
    // One-shot commands report problems themselves on stderr; logs would repeat them.
    let default = if serve { "info" } else { "error" };
    let filter = env.get("ALUSKORT_LOG").or_else(|| env.get("RUST_LOG")).map_or(default, String::as_str);
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
