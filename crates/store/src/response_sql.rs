//! Approvals, action executions and feedback (migration 7), written once for both databases and
//! expanded per store by [`impl_response_store!`]. Every value is bound; the SQL is constant.

pub(crate) const INSERT_APPROVAL_ROWS: &str = "INSERT INTO approvals (approval_id, tenant_id, investigation_id, status, deadline, version,
       body, requested_at, updated_at) VALUES";
pub(crate) const UPDATE_APPROVAL: &str = "UPDATE approvals SET status = $2, deadline = $3, version = $4, body = $5, updated_at = $6
     WHERE approval_id = $1 AND version = $7";
pub(crate) const SELECT_APPROVAL: &str = "SELECT body FROM approvals WHERE approval_id = $1";
/// Optional filters are `($n IS NULL OR column = $n)`; casts keep PostgreSQL's type inference happy.
pub(crate) const SELECT_APPROVALS: &str = "SELECT body FROM approvals
     WHERE ($1 IS NULL OR tenant_id = CAST($1 AS TEXT)) AND ($2 IS NULL OR status = CAST($2 AS TEXT))
       AND ($3 IS NULL OR investigation_id = CAST($3 AS TEXT)) AND ($4 IS NULL OR deadline <= CAST($4 AS TEXT))
       AND ($6 IS NULL OR deadline > CAST($6 AS TEXT) OR (deadline = CAST($6 AS TEXT) AND approval_id > CAST($7 AS TEXT)))
     ORDER BY deadline, approval_id LIMIT $5";
pub(crate) const INSERT_EXECUTION_ROWS: &str = "INSERT INTO action_executions (execution_key, tenant_id, investigation_id, approval_id,
       status, attempts, lease_until, body, created_at, updated_at) VALUES";
pub(crate) const INSERT_EXECUTION_ROWS_TAIL: &str = " ON CONFLICT (execution_key) DO NOTHING";
/// Fenced by the claim: the row must still be running under the attempt that claimed it.
pub(crate) const FINISH_EXECUTION: &str = "UPDATE action_executions SET status = $2, lease_until = $3, body = $4, updated_at = $5
     WHERE execution_key = $1 AND attempts = $6 AND status = 'running'";
pub(crate) const CLAIMABLE_EXECUTIONS: &str = "SELECT body FROM action_executions
     WHERE status = 'pending' OR (status = 'running' AND lease_until < $1) ORDER BY created_at, execution_key LIMIT $2";
/// PostgreSQL: the same rows, locked, skipping rows another worker's claim holds, so replicas
/// claiming at once take disjoint executions instead of queueing on the same rows and losing the
/// race (each claim is still fenced on `attempts`).
pub(crate) const CLAIMABLE_EXECUTIONS_SKIP_LOCKED: &str = "SELECT body FROM action_executions
     WHERE status = 'pending' OR (status = 'running' AND lease_until < $1) ORDER BY created_at, execution_key LIMIT $2
     FOR UPDATE SKIP LOCKED";
pub(crate) const CLAIM_EXECUTION: &str = "UPDATE action_executions SET status = 'running', attempts = $2, lease_until = $3, body = $4,
       updated_at = $5 WHERE execution_key = $1 AND attempts = $6 AND (status = 'pending' OR (status = 'running' AND lease_until < $7))";
pub(crate) const SELECT_EXECUTION: &str = "SELECT body FROM action_executions WHERE execution_key = $1";
pub(crate) const EXECUTIONS_FOR_INVESTIGATION: &str =
    "SELECT body FROM action_executions WHERE investigation_id = $1 ORDER BY created_at, execution_key";
pub(crate) const INSERT_FEEDBACK: &str = "INSERT INTO feedback (feedback_id, tenant_id, investigation_id, actor, correct, rating, comment,
       body, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
pub(crate) const FEEDBACK_FOR: &str = "SELECT body FROM feedback WHERE investigation_id = $1 ORDER BY created_at, feedback_id";
pub(crate) const FEEDBACK_SINCE: &str =
    "SELECT body FROM feedback WHERE tenant_id = $1 AND created_at >= $2 ORDER BY created_at, feedback_id";

/// `body` (a claimable execution as stored) claimed at `now` for `lease`, and the `CLAIM_EXECUTION`
/// values that claim it (fenced on the attempt count it was read at).
pub(crate) fn claim(
    body: &str,
    now: chrono::DateTime<chrono::Utc>,
    now_text: &str,
    lease: chrono::Duration,
) -> crate::StoreResult<(aluskort_core::response::Execution, Vec<crate::unit::Param<'static>>)> {
    let mut execution: aluskort_core::response::Execution = body_of("action_executions", body)?;
    let held = execution.attempts;
    execution.attempts += 1;
    execution.status = aluskort_core::response::ExecutionStatus::Running;
    execution.lease_until = Some(now + lease);
    execution.updated_at = now;
    let params = vec![
        execution.execution_key.clone().into(),
        i64::from(execution.attempts).into(),
        execution.lease_until.map(crate::model::time_text).into(),
        serde_json::to_string(&execution)?.into(),
        now_text.to_owned().into(),
        i64::from(held).into(),
        now_text.to_owned().into(),
    ];
    Ok((execution, params))
}

/// Parses a JSON body column, naming the table when it is not what it should be.
pub(crate) fn body_of<T: serde::de::DeserializeOwned>(table: &str, body: &str) -> crate::StoreResult<T> {
    serde_json::from_str(body).map_err(|error| crate::StoreError::invalid(format!("{table}: stored body is not valid: {error}")))
}

macro_rules! impl_response_store {
    ($store:ident, $db:ty) => {
        impl $store {
            async fn bodies<T: serde::de::DeserializeOwned>(
                &self,
                table: &str,
                sql: &'static str,
                key: &str,
            ) -> $crate::StoreResult<Vec<T>> {
                let rows: Vec<String> = sqlx::query_scalar(sql).bind(key).fetch_all(&self.pool).await?;
                rows.iter().map(|body| $crate::response_sql::body_of(table, body)).collect()
            }
        }

        #[async_trait::async_trait]
        impl $crate::ResponseStore for $store {
            async fn approval(&self, approval_id: &str) -> $crate::StoreResult<Option<aluskort_core::response::Approval>> {
                Ok(self.bodies("approvals", $crate::response_sql::SELECT_APPROVAL, approval_id).await?.pop())
            }

            async fn approvals(&self, filter: &$crate::ApprovalFilter) -> $crate::StoreResult<Vec<aluskort_core::response::Approval>> {
                let rows: Vec<String> = sqlx::query_scalar($crate::response_sql::SELECT_APPROVALS)
                    .bind(filter.tenant.as_deref())
                    .bind(filter.status.map(|s| s.as_str()))
                    .bind(filter.investigation_id.as_deref())
                    .bind(filter.deadline_before.map($crate::model::time_text))
                    .bind(i64::from(if filter.limit == 0 { 1000 } else { filter.limit }))
                    .bind(filter.after.as_ref().map(|key| $crate::model::time_text(key.time)))
                    .bind(filter.after.as_ref().map(|key| key.id.as_str()))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(|body| $crate::response_sql::body_of("approvals", body)).collect()
            }

            async fn execution(&self, execution_key: &str) -> $crate::StoreResult<Option<aluskort_core::response::Execution>> {
                Ok(self.bodies("action_executions", $crate::response_sql::SELECT_EXECUTION, execution_key).await?.pop())
            }

            async fn executions_for_investigation(
                &self,
                investigation_id: &str,
            ) -> $crate::StoreResult<Vec<aluskort_core::response::Execution>> {
                self.bodies("action_executions", $crate::response_sql::EXECUTIONS_FOR_INVESTIGATION, investigation_id).await
            }

            async fn claim_executions(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                lease: chrono::Duration,
                limit: u32,
            ) -> $crate::StoreResult<Vec<aluskort_core::response::Execution>> {
                // Each store claims its own way ([`crate::response_sql::claim`] gives the change).
                self.claim(now, lease, limit).await
            }

            async fn insert_feedback(&self, feedback: &$crate::Feedback) -> $crate::StoreResult<()> {
                use $crate::model::time_text;
                if !(1..=5).contains(&feedback.rating) {
                    return Err($crate::StoreError::invalid(format!("feedback rating {} must be 1..=5", feedback.rating)));
                }
                sqlx::query($crate::response_sql::INSERT_FEEDBACK)
                    .bind(feedback.feedback_id.as_str())
                    .bind(feedback.tenant_id.as_str())
                    .bind(feedback.investigation_id.as_str())
                    .bind(feedback.actor.as_str())
                    .bind(i64::from(feedback.correct))
                    .bind(i64::from(feedback.rating))
                    .bind(feedback.comment.as_str())
                    .bind(serde_json::to_string(feedback)?)
                    .bind(time_text(feedback.created_at))
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn feedback_for(&self, investigation_id: &str) -> $crate::StoreResult<Vec<$crate::Feedback>> {
                self.bodies("feedback", $crate::response_sql::FEEDBACK_FOR, investigation_id).await
            }

            async fn feedback_since(
                &self,
                tenant: &str,
                since: chrono::DateTime<chrono::Utc>,
            ) -> $crate::StoreResult<Vec<$crate::Feedback>> {
                let rows: Vec<String> = sqlx::query_scalar($crate::response_sql::FEEDBACK_SINCE)
                    .bind(tenant)
                    .bind($crate::model::time_text(since))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(|body| $crate::response_sql::body_of("feedback", body)).collect()
            }
        }
    };
}

pub(crate) use impl_response_store;
