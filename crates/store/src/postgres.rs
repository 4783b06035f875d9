//! Server store: PostgreSQL, same statements as the embedded store plus the audit append-only
//! trigger. `schema` (optional) isolates a deployment or a test run in its own schema.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::error::StoreResult;
use crate::memory_sql::impl_memory_store;
use crate::response_sql::impl_response_store;
use crate::schema::{AUDIT_TENANT_PARTITIONS, POSTGRES_EXTRAS};
use crate::sql::impl_stores;

/// Months after the current one whose audit partitions are created ahead of time.
const MONTHS_AHEAD: u32 = 2;
/// The tables partitioned by month (and tenant) in PostgreSQL.
const PARTITIONED_BY_MONTH: [&str; 2] = ["audit_records", "incident_memory"];

/// Serialises concurrent migrators (several replicas starting at once); released at commit.
const MIGRATION_LOCK: &str = "SELECT pg_advisory_xact_lock(7305840521)";

#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// Writes go through the same pool: PostgreSQL handles concurrent writers itself.
    writer: PgPool,
    /// Grouping candidates as last decoded (see [`crate::sql::IncidentCache`]).
    incident_cache: std::sync::Arc<crate::sql::IncidentCache>,
}

impl PostgresStore {
    /// Runs a planned unit in one transaction of the pool: committed when every statement did its
    /// part, rolled back otherwise.
    pub(crate) async fn execute_unit(&self, steps: &[crate::unit::Step<'_>]) -> Result<(), crate::unit::Failure> {
        let mut transaction = self.writer.begin().await.map_err(crate::StoreError::from)?;
        match Self::run_steps(&mut transaction, steps).await {
            Ok(()) => Ok(transaction.commit().await.map_err(crate::StoreError::from)?),
            Err(failure) => {
                transaction.rollback().await.map_err(crate::StoreError::from)?;
                Err(failure)
            }
        }
    }

    /// Claims up to `limit` claimable executions in one transaction: the rows are locked as they
    /// are read, skipping rows another replica's claim holds, so replicas claiming at once take
    /// disjoint executions; each claim is also fenced on `attempts` and the claimable condition.
    async fn claim(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        lease: chrono::Duration,
        limit: u32,
    ) -> StoreResult<Vec<aluskort_core::response::Execution>> {
        let now_text = crate::model::time_text(now);
        let mut transaction = self.writer.begin().await?;
        let rows: Vec<String> = sqlx::query_scalar(crate::response_sql::CLAIMABLE_EXECUTIONS_SKIP_LOCKED)
            .bind(now_text.as_str())
            .bind(i64::from(limit))
            .fetch_all(&mut *transaction)
            .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for body in rows {
            let (execution, params) = crate::response_sql::claim(&body, now, &now_text, lease)?;
            let mut query = sqlx::query(crate::response_sql::CLAIM_EXECUTION);
            for param in &params {
                query = Self::bind_param(query, param);
            }
            if query.execute(&mut *transaction).await?.rows_affected() == 1 {
                claimed.push(execution);
            }
        }
        transaction.commit().await?;
        Ok(claimed)
    }

    /// Connects to `url`, creates `schema` if given and missing, applies migrations, and makes sure
    /// the audit table has its partitions for this month and the next
    /// ([`PostgresStore::prepare_partitions`]).
    pub async fn connect(url: &str, schema: Option<&str>, max_connections: u32) -> StoreResult<Self> {
        let store = Self::connect_until(url, schema, max_connections, i64::MAX).await?;
        store.prepare_partitions(chrono::Utc::now()).await?;
        Ok(store)
    }

    /// Creates the monthly partitions (each hash-partitioned by tenant, NFR-CMP-002) of the audit
    /// table and of incident memory for the month of `now` and the [`MONTHS_AHEAD`] after it,
    /// where missing. Returns `"<table> <YYYY-MM>"` for each month that could not be partitioned
    /// because rows of it already sit in the table's default partition (they stay there, still
    /// read and verified; a warning says so). Run at connect and hourly by `serve` and the audit
    /// worker, so a month's partitions exist before its first row.
    pub async fn prepare_partitions(&self, now: chrono::DateTime<chrono::Utc>) -> StoreResult<Vec<String>> {
        use chrono::Datelike;
        let mut skipped = Vec::new();
        for table in PARTITIONED_BY_MONTH {
            let (mut year, mut month) = (now.year(), now.month());
            for _ in 0..=MONTHS_AHEAD {
                let label = format!("{year:04}-{month:02}");
                let created: bool = sqlx::query_scalar("SELECT aluskort_month_partition($1, $2, $3)")
                    .bind(table)
                    .bind(&label)
                    .bind(AUDIT_TENANT_PARTITIONS)
                    .fetch_one(&self.writer)
                    .await?;
                if !created {
                    tracing::warn!(table, month = %label, "rows of this month are in the default partition; it was not partitioned");
                    skipped.push(format!("{table} {label}"));
                }
                (year, month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
            }
        }
        Ok(skipped)
    }

    async fn connect_until(url: &str, schema: Option<&str>, max_connections: u32, until: i64) -> StoreResult<Self> {
        let mut options = PgConnectOptions::from_str(url)?;
        if let Some(schema) = schema {
            if !schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || schema.is_empty() {
                return Err(crate::StoreError::invalid(format!("schema name {schema:?} must be [A-Za-z0-9_]+")));
            }
            let bootstrap = PgPoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
            // The name is checked above to be an identifier; DDL cannot take a bound parameter.
            let create = format!("CREATE SCHEMA IF NOT EXISTS {schema}");
            sqlx::query(sqlx::AssertSqlSafe(create)).execute(&bootstrap).await?;
            bootstrap.close().await;
            options = options.options([("search_path", schema)]);
        }
        let pool =
            PgPoolOptions::new().max_connections(max_connections).acquire_timeout(Duration::from_secs(30)).connect_with(options).await?;
        let store = PostgresStore { writer: pool.clone(), pool, incident_cache: Default::default() };
        store.apply_migrations(Some(MIGRATION_LOCK), POSTGRES_EXTRAS, until).await?;
        Ok(store)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Test helper: a store in a fresh schema of the database named by `ALUSKORT_TEST_PG_URL`.
    /// Returns `None` (skip) when the variable is unset, and panics instead when `CI` is set, so a
    /// missing server fails CI rather than silently skipping the suite.
    #[cfg(any(test, feature = "testsuite"))]
    pub async fn for_test() -> Option<Self> {
        let url = aluskort_testkit::pg_test_url()?;
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        match PostgresStore::connect(&url, Some(&schema), 4).await {
            Ok(store) => Some(store),
            Err(error) => panic!("cannot connect to ALUSKORT_TEST_PG_URL: {error}"),
        }
    }
}

impl_stores!(PostgresStore, sqlx::Postgres, Numbered);
impl_response_store!(PostgresStore, sqlx::Postgres);
impl_memory_store!(PostgresStore, sqlx::Postgres, crate::memory_sql::DROP_MONTH_PARTITIONS);

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! pg_or_skip {
        () => {
            match PostgresStore::for_test().await {
                Some(store) => store,
                None => return,
            }
        };
    }

    crate::conformance::case_store_suite!(postgres_conformance, pg_or_skip!());

    /// Inserts `record` as a row, bypassing the chain heads (the layout before version 8).
    async fn insert_audit_row(pool: &PgPool, record: &aluskort_core::audit::AuditRecord) {
        let mut steps = Vec::new();
        crate::unit::plan_audit_rows(&mut steps, crate::sql::Placeholders::Numbered, std::slice::from_ref(record), &[]).expect("plan");
        let mut connection = pool.acquire().await.expect("connection");
        PostgresStore::run_steps(&mut connection, &steps).await.map_err(crate::unit::Failure::into_store).expect("insert row");
    }

    /// `count` linked sample records of `tenant`, the i-th stamped `times[i % times.len()]`.
    fn chain(tenant: &str, count: u64, times: &[&str]) -> Vec<aluskort_core::audit::AuditRecord> {
        let mut records: Vec<aluskort_core::audit::AuditRecord> = Vec::new();
        for sequence in 0..count {
            let previous = records.last().map_or_else(|| "0".repeat(64), |record| record.record_hash.clone());
            let mut record = crate::conformance::sample_audit_record(tenant, sequence, previous);
            record.record_hash = format!("{tenant}{sequence:060}");
            record.timestamp = times[usize::try_from(sequence).expect("small") % times.len()].to_owned();
            records.push(record);
        }
        records
    }

    /// Which table each record of `tenant` is stored in, by sequence.
    async fn placement(store: &PostgresStore, tenant: &str) -> Vec<(i64, String)> {
        sqlx::query_as("SELECT sequence_number, tableoid::regclass::text FROM audit_records WHERE tenant_id = $1 ORDER BY sequence_number")
            .bind(tenant)
            .fetch_all(&store.pool)
            .await
            .expect("placement")
    }

    /// Respond replicas claiming at once (`FOR UPDATE SKIP LOCKED`): while one replica's claim
    /// holds the oldest executions, another takes the next ones at once instead of queueing on
    /// the same rows and losing the race; every execution is claimed exactly once.
    #[tokio::test]
    async fn a_claim_skips_executions_another_claim_holds() {
        use crate::{CaseStore, ResponseStore, WorkBatch};
        use aluskort_core::response::Execution;
        let store = pg_or_skip!();
        let now = chrono::Utc::now();
        let queued: Vec<Execution> = (0..10)
            .map(|n| {
                let mut planned = crate::conformance::sample_planned("scan");
                planned.step_key = format!("scan-{n}");
                Execution::queued("acme", &format!("inv-{n}"), None, planned, now + chrono::Duration::milliseconds(n))
            })
            .collect();
        store.commit_work(&WorkBatch { executions: queued.clone(), ..WorkBatch::default() }, &[]).await.expect("queue");
        // Another replica's claim, still open: it holds the five oldest rows.
        let mut other = store.pool.begin().await.expect("begin");
        let held: Vec<String> = sqlx::query_scalar(crate::response_sql::CLAIMABLE_EXECUTIONS_SKIP_LOCKED)
            .bind(crate::model::time_text(now))
            .bind(5_i64)
            .fetch_all(&mut *other)
            .await
            .expect("hold");
        assert_eq!(held.len(), 5);
        let claimed =
            tokio::time::timeout(std::time::Duration::from_secs(5), store.claim_executions(now, chrono::Duration::minutes(5), 10))
                .await
                .expect("not blocked by the other claim's rows")
                .expect("claim");
        let keys: Vec<&str> = claimed.iter().map(|execution| execution.execution_key.as_str()).collect();
        let expected: Vec<&str> = queued[5..].iter().map(|execution| execution.execution_key.as_str()).collect();
        assert_eq!(keys, expected, "the five the other claim does not hold");
        other.rollback().await.expect("release");
        let rest = store.claim_executions(now, chrono::Duration::minutes(5), 10).await.expect("claim the rest");
        assert_eq!(rest.len(), 5, "released rows are claimable again");
    }

    /// NFR-CMP-002: the audit table is partitioned by month of the event, and each month by tenant;
    /// a month whose records already sit in the default partition is reported, not partitioned.
    #[tokio::test]
    async fn audit_records_are_partitioned_by_month_and_tenant() {
        use crate::AuditStore;
        let store = pg_or_skip!();
        let now = chrono::Utc::now();
        let month = now.format("%Y_%m").to_string();
        let tenant_partitions: Vec<String> =
            sqlx::query_scalar("SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = to_regclass($1) ORDER BY 1")
                .bind(format!("audit_records_{month}"))
                .fetch_all(&store.pool)
                .await
                .expect("partitions");
        let expected: Vec<String> = (0..AUDIT_TENANT_PARTITIONS).map(|bucket| format!("audit_records_{month}_t{bucket}")).collect();
        assert_eq!(tenant_partitions, expected, "this month exists at connect, split by tenant");

        let this_month = now.format("%Y-%m-%dT%H:%M:%S.000Z").to_string();
        let records = chain("acme", 3, &["2024-07-04T22:35:00.000Z", &this_month, &this_month]);
        for record in &records {
            store.append_audit(record).await.expect("append");
        }
        let placed = placement(&store, "acme").await;
        assert_eq!(placed[0], (0, "audit_records_default".to_owned()), "a month without a partition goes to the default");
        assert!(placed[1].1.starts_with(&format!("audit_records_{month}_t")), "{placed:?}");
        assert_eq!(placed[1].1, placed[2].1, "one tenant's month is one partition");
        assert_eq!(store.audit_records("acme", 0, 10).await.expect("read"), records, "read back across partitions, in order");

        // July 2024 has a record in the default partition: it stays there; later months are made.
        let july = chrono::DateTime::parse_from_rfc3339("2024-07-10T00:00:00Z").expect("time").with_timezone(&chrono::Utc);
        assert_eq!(store.prepare_partitions(july).await.expect("prepare"), vec!["audit_records 2024-07".to_owned()]);
        let august: Option<String> =
            sqlx::query_scalar("SELECT to_regclass('audit_records_2024_08')::text").fetch_one(&store.pool).await.expect("lookup");
        assert_eq!(august.as_deref(), Some("audit_records_2024_08"));
        // A bad month never reaches DDL.
        let error = sqlx::query("SELECT aluskort_audit_partition($1, 4)").bind("2024-13; DROP TABLE x").execute(&store.pool).await;
        assert!(error.is_err(), "the month is validated");
    }

    /// NFR-CMP-002: this month's incident memory lands in its month's tenant partition, and
    /// dropping the month (after archiving) drops the partitions with the rows.
    #[tokio::test]
    async fn incident_memory_months_are_partitions_that_drop_whole() {
        use crate::MemoryStore;
        let Some(url) = aluskort_testkit::pg_test_url() else { return };
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        let store = PostgresStore::connect(&url, Some(&schema), 2).await.expect("connect");
        let now = chrono::Utc::now();
        let month = now.format("%Y-%m").to_string();
        let row = crate::PastIncidentRow {
            tenant: "acme".to_owned(),
            id: "m-1".to_owned(),
            closed_at: now,
            incident_id: None,
            body: serde_json::json!({"id": "m-1"}),
        };
        store.put_past_incident(&row).await.expect("put");
        let placed: String =
            sqlx::query_scalar("SELECT tableoid::regclass::text FROM incident_memory").fetch_one(&store.pool).await.expect("placed");
        assert!(placed.starts_with(&format!("incident_memory_{}_t", month.replace('-', "_"))), "{placed}");
        assert_eq!(store.drop_past_incident_month(&month).await.expect("drop"), 1);
        let left: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
            .bind(format!("incident_memory_{}", month.replace('-', "_")))
            .fetch_one(&store.pool)
            .await
            .expect("lookup");
        assert_eq!(left, None, "the month's partitions are gone");
        assert!(store.past_incident_months().await.expect("months").is_empty());
        store.put_past_incident(&row).await.expect("a dropped month's rows go to the default partition");
    }

    /// The version-8 migration turns an existing unpartitioned audit table into the partitioned one
    /// without losing or changing a record, and seeds each tenant's chain head from it.
    #[tokio::test]
    async fn partitioning_migration_keeps_every_record_and_the_heads() {
        use crate::AuditStore;
        let Some(url) = aluskort_testkit::pg_test_url() else { return };
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        let old = PostgresStore::connect_until(&url, Some(&schema), 2, 7).await.expect("version 7");
        let acme = chain("acme", 5, &["2024-07-30T23:59:59.999Z", "2024-08-01T00:00:00.000Z", "not-a-time"]);
        let umbrella = chain("umbrella", 2, &["2025-01-15T10:00:00.000Z"]);
        for record in acme.iter().chain(&umbrella) {
            insert_audit_row(&old.pool, record).await;
        }
        old.close().await;

        let store = PostgresStore::connect(&url, Some(&schema), 2).await.expect("migrate");
        assert_eq!(store.audit_records("acme", 0, 100).await.expect("acme"), acme);
        assert_eq!(store.audit_records("umbrella", 0, 100).await.expect("umbrella"), umbrella);
        assert_eq!(store.audit_tenants().await.expect("tenants"), vec!["acme".to_owned(), "umbrella".to_owned()]);
        assert_eq!(store.audit_head("acme").await.expect("head"), Some((4, acme[4].record_hash.clone())));
        let placed: Vec<String> = placement(&store, "acme").await.into_iter().map(|(_, table)| table).collect();
        assert!(placed[0].starts_with("audit_records_2024_07_t"), "{placed:?}");
        assert!(placed[1].starts_with("audit_records_2024_08_t"), "{placed:?}");
        assert_eq!(placed[2], "audit_records_default", "an unreadable time is kept, in the default partition");

        // The chain goes on from the seeded head, and a fork of it is refused.
        let next = chain("acme", 6, &["2024-07-30T23:59:59.999Z"]).remove(5);
        let mut next = next;
        next.previous_hash = acme[4].record_hash.clone();
        store.append_audit(&next).await.expect("append after the migration");
        let error = store.append_audit(&next).await.expect_err("the same sequence again");
        assert_eq!(error.kind, crate::StoreErrorKind::Conflict);
        let update = sqlx::query("UPDATE audit_records SET actor_id = 'mallory'").execute(&store.pool).await;
        assert!(update.is_err(), "still append-only after the migration");
    }

    #[tokio::test]
    async fn audit_records_are_append_only_in_postgres() {
        let store = pg_or_skip!();
        let record = crate::conformance::sample_audit_record("t", 0, "0".repeat(64));
        crate::AuditStore::append_audit(&store, &record).await.expect("append");
        let update = sqlx::query("UPDATE audit_records SET actor_id = 'mallory'").execute(&store.pool).await;
        assert!(update.is_err(), "UPDATE must be refused by the trigger");
        let delete = sqlx::query("DELETE FROM audit_records").execute(&store.pool).await;
        assert!(delete.is_err(), "DELETE must be refused by the trigger");
    }
}
