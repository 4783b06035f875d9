//! Server store: PostgreSQL, same statements as the embedded store plus the audit append-only
//! trigger. `schema` (optional) isolates a deployment or a test run in its own schema.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::error::StoreResult;
use crate::response_sql::impl_response_store;
use crate::schema::POSTGRES_EXTRAS;
use crate::sql::impl_stores;

/// Serialises concurrent migrators (several replicas starting at once); released at commit.
const MIGRATION_LOCK: &str = "SELECT pg_advisory_xact_lock(7305840521)";

#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// Writes go through the same pool: PostgreSQL handles concurrent writers itself.
    writer: PgPool,
}

impl PostgresStore {
    /// Connects to `url`, creates `schema` if given and missing, and applies migrations.
    pub async fn connect(url: &str, schema: Option<&str>, max_connections: u32) -> StoreResult<Self> {
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
        let store = PostgresStore { writer: pool.clone(), pool };
        store.apply_migrations(Some(MIGRATION_LOCK), POSTGRES_EXTRAS).await?;
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
impl_response_store!(PostgresStore, sqlx::Postgres, "BEGIN");

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
