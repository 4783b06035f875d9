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
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // Investigation versions, alert bodies and audit records are mostly 1–8 KiB rows: with
            // 4 KiB pages many spilled onto overflow pages. Measured with `bench pipeline`
            // (5,000 alerts as a burst / p99 alert-to-verdict at an offered 100 alerts/s): 4 KiB
            // ~2,100/s / 10–11 ms; 16 KiB ~2,500–3,000/s / 16–20 ms (each small commit writes
            // bigger pages to the WAL); 32 KiB ~2,700–3,300/s / 21 ms. 16 KiB is the middle.
            // Applies to databases created from now on (an existing file keeps its page size).
            .page_size(16384);
        Self::connect(options, 4).await
    }

    /// A private in-memory database (tests).
    pub async fn in_memory() -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?;
        // One connection: every connection to `:memory:` would be a different database.
        Self::connect(options, 1).await
    }

    async fn connect(options: SqliteConnectOptions, max_connections: u32) -> StoreResult<Self> {
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await?;
        let writer = if max_connections > 1 {
            SqlitePoolOptions::new().max_connections(1).acquire_timeout(Duration::from_secs(30)).connect_with(options).await?
        } else {
            // One connection (an in-memory database is private to its connection): it does both.
            pool.clone()
        };
        let store = SqliteStore { pool, writer };
        store.apply_migrations(None, crate::schema::SQLITE_EXTRAS, i64::MAX).await?;
        Ok(store)
    }

    /// Flushes the WAL into the database file and closes every connection.
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

impl_stores!(SqliteStore, sqlx::Sqlite, Anonymous);
impl_response_store!(SqliteStore, sqlx::Sqlite, "BEGIN IMMEDIATE", crate::response_sql::CLAIMABLE_EXECUTIONS);
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
}
