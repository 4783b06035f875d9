//! Embedded store: one SQLite file under the data directory (bundled SQLite, WAL journal).
//!
//! The audit table here has no append-only trigger on purpose: anyone who can edit the file can
//! drop a trigger, so in the embedded store integrity rests on the hash chain, which `aluskort audit
//! verify` checks (tamper-evident, not tamper-proof). The PostgreSQL store adds the trigger, where
//! database roles make it meaningful.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::error::{StoreError, StoreErrorKind, StoreResult};
use crate::memory_sql::impl_memory_store;
use crate::response_sql::impl_response_store;
use crate::sql::impl_stores;

/// How often committed WAL pages are copied back into the database file (see
/// `SqliteStore::spawn_checkpointer`).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Bytes of WAL past which the checkpointer starts the WAL over (`wal_checkpoint(RESTART)`), 64 MiB.
///
/// PASSIVE checkpoints alone never let the WAL start over under sustained load: it starts over
/// only when a write begins with every frame already copied back, and with commits arriving
/// every few milliseconds one always lands while a checkpoint runs. Measured with `bench pipeline
/// --rate 500`: the WAL file grew to 1.2 GB in 6 s (small commits rewrite whole 16 KiB pages), and
/// would have grown for as long as the load lasted. Started over, the file is written again from
/// its beginning: its size stays near the limit plus one checkpoint interval's writes (~100 MB at
/// 500 alerts/s). (It is not cut back: `journal_size_limit` truncated the file on the commit path
/// and regrew it every interval; truncating a 1 GB WAL stalled a commit for 100-200 ms.)
#[cfg(not(test))]
const WAL_SIZE_LIMIT: i64 = 64 << 20;
/// 1 MiB in tests, so that a test can grow the WAL past it with a few MB.
#[cfg(test)]
const WAL_SIZE_LIMIT: i64 = 1 << 20;

/// How long a RESTART checkpoint waits for the writer and for readers of the WAL (it holds the
/// write lock while it waits for readers): a long read delays the start-over to a later
/// interval instead of stalling commits for the connections' whole busy timeout.
const RESTART_WAIT_MS: u64 = 200;

/// How long a connection waits for a lock it needs (`PRAGMA busy_timeout`), in milliseconds.
const BUSY_TIMEOUT_MS: u64 = 10_000;

/// Page cache of the writer connection, `PRAGMA cache_size` (negative: KiB), 64 MiB.
const WRITER_CACHE_KIB: &str = "-65536";

/// File name of the embedded database inside the data directory.
pub const DATABASE_FILE: &str = "aluskort.db";

#[derive(Clone)]
pub struct SqliteStore {
    /// Reads (WAL: readers never wait for the writer).
    pool: SqlitePool,
    /// Every write, through one connection: SQLite has one writer at a time, and writers queued
    /// here wait their turn in order, where writers racing for the file lock would sleep in
    /// SQLite's busy handler (1, 2, 5, 10, … ms) and could time out under load.
    writer: SqlitePool,
    /// Grouping candidates as last decoded (see [`crate::sql::IncidentCache`]).
    incident_cache: std::sync::Arc<crate::sql::IncidentCache>,
}

impl SqliteStore {
    /// Opens (creating if needed) `<data_dir>/aluskort.db` and applies migrations.
    pub async fn open(data_dir: &Path) -> StoreResult<Self> {
        std::fs::create_dir_all(data_dir).map_err(|error| {
            StoreError::new(StoreErrorKind::Unavailable, anyhow::anyhow!("cannot create data directory {}: {error}", data_dir.display()))
        })?;
        let options = SqliteConnectOptions::new()
            .filename(data_dir.join(DATABASE_FILE))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))
            .foreign_keys(true)
            // Investigation versions, alert bodies and audit records are mostly 1–8 KiB rows: with
            // 4 KiB pages many spilled onto overflow pages. Measured with `bench pipeline`
            // (5,000 alerts as a burst / p99 alert-to-verdict at an offered 100 alerts/s): 4 KiB
            // ~2,100/s / 10–11 ms; 16 KiB ~2,500–3,000/s / 16–20 ms (each small commit writes
            // bigger pages to the WAL); 32 KiB ~2,700–3,300/s / 21 ms. 16 KiB is the middle.
            // Applies to databases created from now on (an existing file keeps its page size).
            .page_size(16384);
        let store = Self::connect(options, 4).await?;
        store.spawn_checkpointer();
        Ok(store)
    }

    /// Moves WAL checkpoints off the commit path: the writer's automatic checkpoint (every 1,000
    /// pages, run inside the commit that crosses the mark) is turned off, and a reader connection
    /// copies committed pages back every [`CHECKPOINT_EVERY`] in PASSIVE mode, which never blocks
    /// the writer. Stops when the store is closed. Measured with `bench pipeline`, the two builds
    /// interleaved on this machine: p99 alert-to-verdict at an offered 100 alerts/s 20.2 → 16.7 ms
    /// (means of 4 runs), at 50/s 20.7 → 15.3 ms; bursts 1,615 → 1,719 alerts/s (means of 3).
    ///
    /// When a PASSIVE checkpoint leaves more than [`WAL_SIZE_LIMIT`] bytes of WAL, a RESTART
    /// checkpoint follows ([`restart_wal`]): it waits up to [`RESTART_WAIT_MS`] for the writer's
    /// transaction in progress and for readers of the WAL, copies the few frames the PASSIVE one
    /// could not, and makes the next write start the WAL over.
    fn spawn_checkpointer(&self) {
        let (pool, writer) = (self.pool.clone(), self.writer.clone());
        tokio::spawn(async move {
            if let Err(error) = sqlx::query("PRAGMA wal_autocheckpoint = 0").execute(&writer).await {
                tracing::warn!(%error, "cannot move WAL checkpoints off the commit path; SQLite keeps checkpointing in commits");
                return;
            }
            let page_size: i64 = match sqlx::query_scalar("PRAGMA page_size").fetch_one(&pool).await {
                Ok(size) => size,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the page size: the WAL is checkpointed but never started over");
                    0
                }
            };
            let mut every = tokio::time::interval(CHECKPOINT_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if pool.is_closed() {
                    return;
                }
                // (busy, frames in the WAL, frames copied back)
                let passive = sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&pool).await;
                let restart = match passive {
                    Ok((_, frames, _)) => frames.saturating_mul(page_size) > WAL_SIZE_LIMIT,
                    Err(error) if pool.is_closed() => {
                        tracing::debug!(%error, "store closed during a WAL checkpoint");
                        return;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "WAL checkpoint failed; retrying");
                        false
                    }
                };
                if restart && let Err(error) = restart_wal(&pool).await {
                    if pool.is_closed() {
                        return;
                    }
                    tracing::warn!(%error, "WAL restart checkpoint failed; retrying");
                }
            }
        });
    }

    /// A private in-memory database (tests).
    pub async fn in_memory() -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?;
        // One connection: every connection to `:memory:` would be a different database.
        Self::connect(options, 1).await
    }

    async fn connect(options: SqliteConnectOptions, max_connections: u32) -> StoreResult<Self> {
        let pool = pool_options(max_connections).connect_with(options.clone()).await?;
        let writer = if max_connections > 1 {
            // The writer's page cache holds a whole batch's dirty pages: with SQLite's default
            // (2 MB, 125 pages of 16 KiB) a batch of 256 investigations spilled pages into the
            // WAL mid-transaction and rewrote them there before its commit (`pagerStress` was 4 %
            // of a `bench pipeline` profile). Negative: KiB.
            //
            // Statement journals (kept so a multi-row `INSERT … ON CONFLICT` that fails midway
            // can be undone alone) go to memory, not to a temporary file per transaction: system
            // CPU of `bench pipeline --rate 100 --alerts 2000` 6.8 → 6.0 s (two runs each).
            let options = options.pragma("cache_size", WRITER_CACHE_KIB).pragma("temp_store", "memory");
            pool_options(1).connect_with(options).await?
        } else {
            // One connection (an in-memory database is private to its connection): it does both.
            pool.clone()
        };
        let store = SqliteStore { pool, writer, incident_cache: Default::default() };
        store.apply_migrations(None, crate::schema::SQLITE_EXTRAS, i64::MAX).await?;
        Ok(store)
    }

    /// Runs a planned unit in one transaction of the writer connection, on its SQLite handle
    /// directly (see [`crate::direct`]): one hand-off to sqlx's worker thread per unit instead of
    /// one per statement. Committed when every statement did its part, rolled back otherwise.
    pub(crate) async fn execute_unit(&self, steps: &[crate::unit::Step<'_>]) -> Result<(), crate::unit::Failure> {
        self.execute_unit_counted(steps).await.map(drop)
    }

    /// Claims up to `limit` claimable executions. The candidates are read beside the writer (a WAL
    /// reader never waits for it), then claimed in one unit on the writer's handle, each claim
    /// fenced on `attempts` and the claimable condition: a row another claim or a finish moved
    /// meanwhile changes nothing and is not returned. (Read and claimed statement by statement
    /// inside one sqlx transaction, a response pass of ~80 executions held the single writer for
    /// ~80 round trips to its worker thread, and investigations' commits queued behind it.)
    async fn claim(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        lease: chrono::Duration,
        limit: u32,
    ) -> StoreResult<Vec<aluskort_core::response::Execution>> {
        let now_text = crate::model::time_text(now);
        let rows: Vec<String> = sqlx::query_scalar(crate::response_sql::CLAIMABLE_EXECUTIONS)
            .bind(now_text.as_str())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        let mut executions = Vec::with_capacity(rows.len());
        let mut steps = Vec::with_capacity(rows.len());
        for body in rows {
            let (execution, params) = crate::response_sql::claim(&body, now, &now_text, lease)?;
            executions.push(execution);
            steps.push(crate::unit::Step::new(crate::response_sql::CLAIM_EXECUTION, params, crate::unit::Check::Nothing));
        }
        if steps.is_empty() {
            return Ok(Vec::new());
        }
        let changed = self.execute_unit_counted(&steps).await.map_err(crate::unit::Failure::into_store)?;
        Ok(executions.into_iter().zip(changed).filter(|(_, changed)| *changed == 1).map(|(execution, _)| execution).collect())
    }

    /// As [`SqliteStore::execute_unit`], returning the rows each statement changed (or returned).
    async fn execute_unit_counted(&self, steps: &[crate::unit::Step<'_>]) -> Result<Vec<u64>, crate::unit::Failure> {
        let mut connection = self.writer.acquire().await.map_err(StoreError::from)?;
        let ran = {
            let mut locked = connection.lock_handle().await.map_err(StoreError::from)?;
            let handle = locked.as_raw_handle().as_ptr();
            // SAFETY: `locked` keeps sqlx's worker thread off this handle until it drops, after
            // `run_unit` has returned and finalised every statement it prepared.
            #[allow(unsafe_code, reason = "the handle is held exclusively through `locked`")]
            off_the_runtime(|| unsafe { crate::direct::run_unit(handle, steps) })
        };
        if ran.broken {
            // Still inside a transaction it could not roll back: not handed to the next writer.
            tracing::error!("the SQLite writer connection could not end a failed unit's transaction; it is closed");
            connection.close_on_drop();
        }
        ran.result
    }

    /// Flushes the WAL into the database file and closes every connection.
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

/// A pool of up to `max_connections`, each with stable plans ([`stable_plans`]).
fn pool_options(max_connections: u32) -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(|connection, _| Box::pin(stable_plans(connection)))
}

/// Turns on SQLite's query planner stability guarantee (`SQLITE_DBCONFIG_ENABLE_QPSG`) for a new
/// connection: a statement's plan no longer depends on the values bound to it. Without it the
/// bundled SQLite (built with `SQLITE_ENABLE_STAT4`) marks parameters whose value could change a
/// plan (`LIMIT ?`, a value compared with a partial index's condition, a range on an indexed
/// column) and re-prepares the cached statement every time one of them is bound to a new value:
/// `sqlite3Reprepare`, with the result columns' names allocated afresh each time, was ~3 % of a
/// `bench pipeline` run's profile, mostly in the paged reads of the chain verification after the
/// burst (paged API reads pay it the same way). The store never runs `ANALYZE`, so there were no
/// statistics for such a plan to use anyway.
async fn stable_plans(connection: &mut sqlx::SqliteConnection) -> Result<(), sqlx::Error> {
    let mut locked = connection.lock_handle().await?;
    let handle = locked.as_raw_handle().as_ptr();
    // SAFETY: `locked` keeps sqlx's worker thread off the handle while it is borrowed here; the
    // borrowed `Connection` neither closes it (not owned) nor keeps a statement past this block.
    #[allow(unsafe_code, reason = "the handle is held exclusively through `locked`")]
    let connection = unsafe { rusqlite::Connection::from_handle(handle) }.map_err(|error| sqlx::Error::Configuration(error.into()))?;
    let enabled = connection
        .set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(|error| sqlx::Error::Configuration(error.into()))?;
    if !enabled {
        return Err(sqlx::Error::Configuration("SQLite did not enable its query planner stability guarantee".into()));
    }
    Ok(())
}

/// `wal_checkpoint(RESTART)` on a reader connection, waiting at most [`RESTART_WAIT_MS`] for the
/// locks it needs (a checkpoint that could not finish in time reports itself busy, and the next
/// interval tries again). The connection gets its usual busy timeout back, or is closed.
async fn restart_wal(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let mut connection = pool.acquire().await?;
    // Audited: PRAGMA values cannot be bound; both are constants of this file.
    sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA busy_timeout = {RESTART_WAIT_MS}"))).execute(&mut *connection).await?;
    let restarted = sqlx::query("PRAGMA wal_checkpoint(RESTART)").execute(&mut *connection).await;
    let restored = sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}"))).execute(&mut *connection).await;
    if let Err(error) = restored {
        connection.close().await?;
        return Err(error);
    }
    restarted.map(drop)
}

/// Runs `work` that blocks the thread (SQLite on the calling thread) where it does not stall
/// other tasks: on a multi-threaded runtime the worker's other tasks move to another thread
/// meanwhile; elsewhere (a current-thread runtime, no runtime) it just runs.
fn off_the_runtime<R>(work: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

impl_stores!(SqliteStore, sqlx::Sqlite, Anonymous);
impl_response_store!(SqliteStore, sqlx::Sqlite);
impl_memory_store!(SqliteStore, sqlx::Sqlite, crate::memory_sql::DROP_MONTH_ROWS);

#[cfg(test)]
mod tests {
    use super::*;

    crate::conformance::case_store_suite!(sqlite_conformance, SqliteStore::in_memory().await.expect("in-memory sqlite"));

    #[tokio::test]
    async fn file_store_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path()).await.expect("open");
        crate::conformance::insert_alert_is_idempotent(&store).await;
        store.close().await;
        let reopened = SqliteStore::open(dir.path()).await.expect("reopen");
        let alert = crate::conformance::sample_alert("a-1", 0);
        let stored = crate::CaseStore::alert(&reopened, &alert.tenant_id, &alert.alert_id).await.expect("query");
        assert_eq!(stored, Some(alert));
    }

    /// Checkpoints run beside the writer: commits leave WAL checkpointing to the background task
    /// (the writer's automatic checkpoint is off), which copies committed pages into the database
    /// file well before SQLite's own 1,000-page mark would have.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn committed_pages_reach_the_database_file_without_commits_checkpointing() {
        use crate::CaseStore;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path()).await.expect("open");
        let database = dir.path().join(DATABASE_FILE);
        let size = || std::fs::metadata(&database).map(|m| m.len()).unwrap_or(0);
        let autocheckpoint = async {
            for _ in 0..100 {
                let pages: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint").fetch_one(&store.writer).await.expect("pragma");
                if pages == 0 {
                    return 0;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            -1
        };
        assert_eq!(autocheckpoint.await, 0, "the writer does not checkpoint in its commits");
        let before = size();
        // About 2 MB of alerts: far below the 1,000 pages (16 MB) of SQLite's own checkpoint.
        for n in 0..400 {
            let mut alert = crate::conformance::sample_alert(&format!("c-{n}"), n);
            alert.description = "x".repeat(4096);
            store.insert_alert(&alert).await.expect("insert");
        }
        let mut grew = 0;
        for _ in 0..100 {
            grew = size().saturating_sub(before);
            if grew >= 1_500_000 {
                break;
            }
            tokio::time::sleep(CHECKPOINT_EVERY).await;
        }
        assert!(grew >= 1_500_000, "the database file grew by only {grew} bytes: pages stayed in the WAL");
        store.close().await;
    }

    /// Under sustained load (commits back to back, one always landing while a checkpoint runs) the
    /// WAL is still started over, again and again, instead of growing for as long as the load
    /// lasts as it did with PASSIVE checkpoints alone. Each start-over increments the checkpoint
    /// sequence number in the WAL's header (bytes 12..16, big-endian; SQLite's file format).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_is_started_over_under_sustained_writes() {
        use crate::CaseStore;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path()).await.expect("open");
        let wal = dir.path().join(format!("{DATABASE_FILE}-wal"));
        let sequence = || {
            use std::io::Read;
            let mut header = [0u8; 16];
            std::fs::File::open(&wal).ok()?.read_exact(&mut header).ok()?;
            Some(u32::from_be_bytes([header[12], header[13], header[14], header[15]]))
        };
        let limit = u64::try_from(WAL_SIZE_LIMIT).expect("limit");
        // Readers all along, as the pipeline's are: a reader whose snapshot holds WAL frames keeps
        // a write from starting the WAL over.
        let reading = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let (store, reading) = (store.clone(), std::sync::Arc::clone(&reading));
                let alert = crate::conformance::sample_alert("s-0", 0);
                tokio::spawn(async move {
                    while reading.load(std::sync::atomic::Ordering::Relaxed) {
                        store.alert(&alert.tenant_id, &alert.alert_id).await.expect("read");
                    }
                })
            })
            .collect();
        let started = std::time::Instant::now();
        let (mut commits, mut sequences) = (0u64, std::collections::BTreeSet::new());
        // Back-to-back commits for 3 s (twelve checkpoint intervals), many times the limit in all.
        while started.elapsed() < Duration::from_secs(3) {
            let mut alert = crate::conformance::sample_alert(&format!("s-{commits}"), 0);
            alert.description = "x".repeat(4096);
            store.insert_alert(&alert).await.expect("insert");
            commits += 1;
            if commits % 50 == 0 {
                sequences.extend(sequence());
            }
        }
        assert!(commits * 16_384 > 8 * limit, "only {commits} commits: too few to tell");
        reading.store(false, std::sync::atomic::Ordering::Relaxed);
        for reader in readers {
            reader.await.expect("reader");
        }
        // Every interval whose checkpoint finds more than the limit starts the WAL over; without
        // the RESTART checkpoint this test saw it started over in 3-5 of the 12 intervals (when a
        // checkpoint happened to finish between two commits and reads).
        let intervals = started.elapsed().as_millis() / CHECKPOINT_EVERY.as_millis();
        let restarts = sequences.len().saturating_sub(1) as u128;
        assert!(
            restarts * 3 >= intervals * 2,
            "the WAL was started over {restarts} time(s) in {intervals} intervals under {commits} commits"
        );
        store.close().await;
    }

    /// Every connection of the store, readers and the writer, has the query planner stability
    /// guarantee on: a cached statement whose `LIMIT` is bound (as every paged read is) is not
    /// prepared again each time it is bound to another value, as it is with SQLite's default.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bound_values_do_not_make_cached_statements_prepare_again() {
        use rusqlite::StatementStatus;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path()).await.expect("open");
        crate::conformance::insert_alert_is_idempotent(&store).await;
        let reprepares = |db: *mut rusqlite::ffi::sqlite3, planner_stability: Option<bool>| -> (bool, i32) {
            // SAFETY: the caller holds the handle exclusively (a locked sqlx connection) until
            // this returns; the borrowed connection does not outlive it or close the handle.
            #[allow(unsafe_code, reason = "a test borrowing a locked handle")]
            let connection = unsafe { rusqlite::Connection::from_handle(db) }.expect("borrow");
            if let Some(on) = planner_stability {
                connection.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, on).expect("db config");
            }
            let enabled = connection.db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG).expect("db config");
            let mut statement = connection.prepare("SELECT alert_id FROM alerts ORDER BY alert_id LIMIT ?").expect("prepare");
            for limit in 1..=5_i64 {
                let _rows: Vec<String> =
                    statement.query_map([limit], |row| row.get(0)).expect("query").collect::<Result<_, _>>().expect("rows");
            }
            (enabled, statement.get_status(StatementStatus::RePrepare))
        };
        for pool in [&store.pool, &store.writer] {
            let mut connection = pool.acquire().await.expect("acquire");
            let mut locked = connection.lock_handle().await.expect("lock");
            assert_eq!(reprepares(locked.as_raw_handle().as_ptr(), None), (true, 0), "no statement prepared again");
            // The check can fail: with SQLite's default, the same reads prepare again per value.
            let (enabled, again) = reprepares(locked.as_raw_handle().as_ptr(), Some(false));
            assert!(!enabled && again >= 4, "SQLite's default prepares again per bound LIMIT ({again} times)");
            reprepares(locked.as_raw_handle().as_ptr(), Some(true));
        }
        store.close().await;
    }
}
