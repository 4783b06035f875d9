//! Incident memory's records (NFR-CMP-002, migration 10): every closed investigation incident
//! memory keeps, durable in the case store by month, so the hot vector index can be limited to the
//! last months and older months archived whole (`aluskort memory archive`). Written once for both
//! databases and expanded per store by [`impl_memory_store!`]; PostgreSQL's table is partitioned by
//! month of `closed_at` and hash of tenant, and dropping a month drops its partitions.

pub(crate) const UPSERT_DELETE: &str = "DELETE FROM incident_memory WHERE tenant_id = $1 AND memory_id = $2";
pub(crate) const INSERT: &str = "INSERT INTO incident_memory (tenant_id, memory_id, closed_at, incident_id, body, recorded_at)
     VALUES ($1, $2, $3, $4, $5, $6)";
pub(crate) const OF_TENANT: &str = "SELECT tenant_id, memory_id, closed_at, incident_id, body FROM incident_memory
     WHERE tenant_id = $1 AND closed_at >= $2 AND closed_at < $3 ORDER BY closed_at DESC, memory_id DESC LIMIT $4";
pub(crate) const MONTHS: &str =
    "SELECT substr(closed_at, 1, 7) AS month, COUNT(*) FROM incident_memory GROUP BY substr(closed_at, 1, 7) ORDER BY month";
pub(crate) const OF_MONTH: &str = "SELECT tenant_id, memory_id, closed_at, incident_id, body FROM incident_memory
     WHERE closed_at >= $1 AND closed_at < $2 ORDER BY tenant_id, memory_id";
/// SQLite: a month's rows go.
pub(crate) const DROP_MONTH_ROWS: &str = "DELETE FROM incident_memory WHERE closed_at >= $1 AND closed_at < $2";
/// PostgreSQL: a month's rows go and its partitions are dropped.
pub(crate) const DROP_MONTH_PARTITIONS: &str = "SELECT aluskort_memory_drop_month($1, $2)";

/// `YYYY-MM` and the month after it, or why `month` is not one.
pub(crate) fn month_bounds(month: &str) -> crate::StoreResult<(String, String)> {
    let invalid = || crate::StoreError::invalid(format!("{month:?} is not a month (YYYY-MM)"));
    let (year, number) = month.split_once('-').ok_or_else(invalid)?;
    if year.len() != 4 || number.len() != 2 {
        return Err(invalid());
    }
    let year: u32 = year.parse().map_err(|_| invalid())?;
    let number: u32 = number.parse().map_err(|_| invalid())?;
    if !(1..=12).contains(&number) {
        return Err(invalid());
    }
    let next = if number == 12 { format!("{:04}-01", year + 1) } else { format!("{year:04}-{:02}", number + 1) };
    Ok((month.to_owned(), next))
}

macro_rules! impl_memory_store {
    ($store:ident, $db:ty, $drop_month:expr) => {
        impl $store {
            fn memory_row(row: &<$db as sqlx::Database>::Row) -> $crate::StoreResult<$crate::PastIncidentRow> {
                use sqlx::Row;
                let closed_at: String = row.try_get(2)?;
                let body: String = row.try_get(4)?;
                Ok($crate::PastIncidentRow {
                    tenant: row.try_get(0)?,
                    id: row.try_get(1)?,
                    closed_at: $crate::model::parse_time_text(&closed_at)?,
                    incident_id: row.try_get(3)?,
                    body: $crate::response_sql::body_of("incident_memory", &body)?,
                })
            }
        }

        #[async_trait::async_trait]
        impl $crate::MemoryStore for $store {
            async fn put_past_incident(&self, row: &$crate::PastIncidentRow) -> $crate::StoreResult<()> {
                let mut transaction = self.writer.begin().await?;
                sqlx::query($crate::memory_sql::UPSERT_DELETE).bind(&row.tenant).bind(&row.id).execute(&mut *transaction).await?;
                sqlx::query($crate::memory_sql::INSERT)
                    .bind(&row.tenant)
                    .bind(&row.id)
                    .bind($crate::model::time_text(row.closed_at))
                    .bind(row.incident_id.as_deref())
                    .bind(row.body.to_string())
                    .bind($crate::model::time_text(chrono::Utc::now()))
                    .execute(&mut *transaction)
                    .await?;
                transaction.commit().await?;
                Ok(())
            }

            async fn past_incidents(
                &self,
                tenant: &str,
                from: chrono::DateTime<chrono::Utc>,
                to: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> $crate::StoreResult<Vec<$crate::PastIncidentRow>> {
                let rows = sqlx::query($crate::memory_sql::OF_TENANT)
                    .bind(tenant)
                    .bind($crate::model::time_text(from))
                    .bind($crate::model::time_text(to))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(Self::memory_row).collect()
            }

            async fn past_incident_months(&self) -> $crate::StoreResult<Vec<(String, u64)>> {
                use sqlx::Row;
                let rows = sqlx::query($crate::memory_sql::MONTHS).fetch_all(&self.pool).await?;
                rows.iter().map(|row| Ok((row.try_get(0)?, $crate::sql::u64_of(row.try_get(1)?, "count")?))).collect()
            }

            async fn past_incidents_of_month(&self, month: &str) -> $crate::StoreResult<Vec<$crate::PastIncidentRow>> {
                let (from, to) = $crate::memory_sql::month_bounds(month)?;
                let rows = sqlx::query($crate::memory_sql::OF_MONTH).bind(from).bind(to).fetch_all(&self.pool).await?;
                rows.iter().map(Self::memory_row).collect()
            }

            async fn drop_past_incident_month(&self, month: &str) -> $crate::StoreResult<u64> {
                let (from, to) = $crate::memory_sql::month_bounds(month)?;
                let mut transaction = self.writer.begin().await?;
                let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM incident_memory WHERE closed_at >= $1 AND closed_at < $2")
                    .bind(&from)
                    .bind(&to)
                    .fetch_one(&mut *transaction)
                    .await?;
                sqlx::query($drop_month).bind(&from).bind(&to).execute(&mut *transaction).await?;
                transaction.commit().await?;
                $crate::sql::u64_of(count, "count")
            }
        }
    };
}

pub(crate) use impl_memory_store;
