//! A unit of work planned as statements: each [`Step`] is one SQL statement with its bound values
//! and what it must do for the unit to stand ([`Check`]). Planned once for both databases by plain
//! functions, and run by `impl_stores!` (`run_steps`) inside one transaction.
//!
//! A check that fails decides the unit: an investigation overtaken by someone else
//! ([`Failure::Skip`]) has the unit rolled back and planned again without it; anything else is a
//! [`StoreError`] and nothing of the unit lands.

use std::borrow::Cow;

use aluskort_core::audit::AuditRecord;
use aluskort_core::{Incident, InvestigationId};

use crate::error::{StoreError, StoreErrorKind, StoreResult};
use crate::model::{AuditTexts, GroupingClaim, WorkBatch, time_text};
use crate::sql::{Placeholders, i64_of, insert_rows_sql};

/// One bound value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param<'a> {
    Text(Cow<'a, str>),
    Int(i64),
    Null,
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(text: &'a str) -> Self {
        Param::Text(Cow::Borrowed(text))
    }
}

impl<'a> From<Cow<'a, str>> for Param<'a> {
    fn from(text: Cow<'a, str>) -> Self {
        Param::Text(text)
    }
}

impl From<String> for Param<'_> {
    fn from(text: String) -> Self {
        Param::Text(Cow::Owned(text))
    }
}

impl From<i64> for Param<'_> {
    fn from(value: i64) -> Self {
        Param::Int(value)
    }
}

impl<'a, T: Into<Param<'a>>> From<Option<T>> for Param<'a> {
    fn from(value: Option<T>) -> Self {
        value.map_or(Param::Null, Into::into)
    }
}

/// What a statement must do for its unit to stand.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Check {
    Nothing,
    /// A version-fenced update of an investigation whose writer allows being overtaken: when no
    /// row changed, the unit is planned again without this investigation.
    Skippable(InvestigationId),
    /// Must change a row, else the unit conflicts for this reason.
    Changes(String),
    /// Returns the first column of each row it wrote, which must be every one of these ids;
    /// a missing one conflicts with the reason paired with it.
    Returns(Vec<(String, String)>),
    /// A unique violation here is a conflict for this reason.
    Unique(String),
}

impl Check {
    pub(crate) fn returns_rows(&self) -> bool {
        matches!(self, Check::Returns(_))
    }

    /// Whether a statement that changed `changed` rows and returned `returned` did its part.
    pub(crate) fn verify(&self, changed: u64, returned: &[String]) -> Result<(), Failure> {
        match self {
            Check::Nothing | Check::Unique(_) => Ok(()),
            Check::Skippable(id) if changed == 0 => Err(Failure::Skip(*id)),
            Check::Skippable(_) => Ok(()),
            Check::Changes(reason) if changed == 0 => Err(Failure::Store(conflict(reason))),
            Check::Changes(_) => Ok(()),
            Check::Returns(expected) => match expected.iter().find(|(id, _)| !returned.contains(id)) {
                Some((_, reason)) => Err(Failure::Store(conflict(reason))),
                None => Ok(()),
            },
        }
    }

    /// `error` raised by this statement, as a store error.
    pub(crate) fn error(&self, error: impl Into<StoreError>) -> StoreError {
        let error = error.into();
        match self {
            Check::Unique(reason) if error.kind == StoreErrorKind::Conflict => conflict(reason),
            _ => error,
        }
    }
}

fn conflict(reason: &str) -> StoreError {
    StoreError::new(StoreErrorKind::Conflict, anyhow::anyhow!("{reason}"))
}

/// Why a unit did not stand.
#[derive(Debug)]
pub(crate) enum Failure {
    /// This investigation moved on meanwhile and its write may be skipped: roll back, plan again
    /// without it.
    Skip(InvestigationId),
    Store(StoreError),
}

impl Failure {
    /// As a store error, where no write may be skipped.
    pub(crate) fn into_store(self) -> StoreError {
        match self {
            Failure::Store(error) => error,
            Failure::Skip(id) => StoreError::internal(format!("investigation {id} was overtaken where its write cannot be skipped")),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Failure::Store(error)
    }
}

/// One statement of a unit. Its SQL is a constant or a constant with generated placeholders
/// only; every value is bound (NFR-SEC-007).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Step<'a> {
    pub(crate) sql: Cow<'static, str>,
    pub(crate) params: Vec<Param<'a>>,
    pub(crate) check: Check,
}

impl<'a> Step<'a> {
    pub(crate) fn new(sql: impl Into<Cow<'static, str>>, params: Vec<Param<'a>>, check: Check) -> Self {
        Step { sql: sql.into(), params, check }
    }
}

/// A unit's multi-row insert ([`insert_rows_sql`]). On SQLite it is `INSERT OR FAIL`: a
/// statement that may abort half-way needs a statement journal (a copy of every page it changes
/// that the unit changed before, ~2 % of a unit's time), and one that fails instead keeps its
/// first rows; a unit is rolled back whole when any statement fails, so neither is needed.
fn unit_insert_sql(style: Placeholders, head: &'static str, columns: usize, rows: usize, tail: &'static str) -> String {
    match (style, head.strip_prefix("INSERT INTO ")) {
        (Placeholders::Anonymous, Some(rest)) => insert_rows_sql(style, &format!("INSERT OR FAIL INTO {rest}"), columns, rows, tail),
        _ => insert_rows_sql(style, head, columns, rows, tail),
    }
}

/// Appends multi-row inserts of `items` (`columns` values each, written by `row`) in chunks of
/// [`crate::sql::unit_chunk_lengths`]; `check` gives each chunk's check.
#[expect(clippy::too_many_arguments, reason = "the statement's shape, its rows and its check are each needed")]
fn insert_rows<'a, T>(
    steps: &mut Vec<Step<'a>>,
    style: Placeholders,
    head: &'static str,
    tail: &'static str,
    columns: usize,
    items: Vec<T>,
    mut check: impl FnMut(&[T]) -> Check,
    mut row: impl FnMut(T, &mut Vec<Param<'a>>) -> StoreResult<()>,
) -> StoreResult<()> {
    let lengths = crate::sql::unit_chunk_lengths(style, items.len(), columns);
    let mut items = items.into_iter();
    for length in lengths {
        let chunk: Vec<T> = items.by_ref().take(length).collect();
        let check = check(&chunk);
        let mut params = Vec::with_capacity(length * columns);
        for item in chunk {
            row(item, &mut params)?;
        }
        steps.push(Step::new(unit_insert_sql(style, head, columns, length, tail), params, check));
    }
    Ok(())
}

/// The statements of [`crate::CaseStore::commit_work`], leaving out the investigations in
/// `skipped` (overtaken meanwhile; see [`Check::Skippable`]), stamped `now` (`time_text`; the
/// revision of every incident written).
pub(crate) fn plan_work<'a>(
    style: Placeholders,
    work: &'a WorkBatch,
    audit: &'a [AuditRecord],
    texts: &'a [AuditTexts],
    skipped: &[InvestigationId],
    now: &str,
) -> StoreResult<Vec<Step<'a>>> {
    let now = now.to_owned();
    let mut steps = Vec::new();
    let alerts: Vec<_> = work.alerts.iter().collect();
    insert_rows(
        &mut steps,
        style,
        crate::sql::INSERT_ALERT_ROWS,
        crate::sql::INSERT_ALERT_ROWS_TAIL,
        8,
        alerts,
        |_| Check::Nothing,
        |alert, params| {
            params.extend([
                alert.tenant_id.as_str().into(),
                alert.alert_id.as_str().into(),
                alert.source.as_str().into(),
                time_text(alert.timestamp).into(),
                alert.severity.as_str().into(),
                alert.title.as_str().into(),
                serde_json::to_string(alert)?.into(),
                now.clone().into(),
            ]);
            Ok(())
        },
    )?;

    // Investigations: every version serialised once; creates in multi-row inserts, updates one
    // by one (each fenced by its expected version).
    let mut versions: Vec<(String, i64, &'static str, String, Cow<'a, str>)> = Vec::new();
    let mut creates: Vec<(&aluskort_core::GraphState, Cow<'a, str>)> = Vec::new();
    for (index, write) in work.investigations.iter().enumerate() {
        let Some(last) = write.versions.last() else { continue };
        for (offset, state) in write.versions.iter().enumerate() {
            if state.version != write.expected_version + 1 + offset as u64 || state.investigation_id != last.investigation_id {
                return Err(StoreError::invalid(format!(
                    "investigation {}: versions must run consecutively from {}",
                    last.investigation_id,
                    write.expected_version + 1
                )));
            }
        }
        if skipped.contains(&last.investigation_id) {
            continue;
        }
        // Each version after the first of this write as a patch against the one before, encoded
        // ahead if the batch was (`WorkBatch::encode_versions`).
        let (bodies, current): (Vec<Cow<'a, str>>, Cow<'a, str>) = match work.encoded.of(index, write) {
            Some((bodies, current)) => (bodies.iter().map(|body| Cow::Borrowed(body.as_str())).collect(), Cow::Borrowed(current)),
            None => {
                let (bodies, current) = crate::patch::encode_states(&write.versions)?;
                (bodies.into_iter().map(Cow::Owned).collect(), Cow::Owned(current))
            }
        };
        let id = last.investigation_id.to_string();
        if write.expected_version == 0 {
            creates.push((last, current));
        } else {
            let check = if write.skip_on_conflict {
                Check::Skippable(last.investigation_id)
            } else {
                Check::Changes(format!("investigation {id} is not at version {}", write.expected_version))
            };
            let params = vec![
                id.clone().into(),
                last.state.as_str().into(),
                i64_of(last.version, "version")?.into(),
                last.incident_id.as_deref().into(),
                time_text(last.updated_at).into(),
                current.into(),
                i64_of(write.expected_version, "version")?.into(),
            ];
            steps.push(Step::new(crate::sql::UPDATE_INVESTIGATION, params, check));
        }
        for (state, body) in write.versions.iter().zip(bodies) {
            versions.push((id.clone(), i64_of(state.version, "version")?, state.state.as_str(), time_text(state.updated_at), body));
        }
    }
    insert_rows(
        &mut steps,
        style,
        crate::sql::INSERT_INVESTIGATION_ROWS,
        crate::sql::INSERT_INVESTIGATION_ROWS_TAIL,
        9,
        creates,
        |chunk| {
            Check::Returns(
                chunk
                    .iter()
                    .map(|(state, _)| {
                        (state.investigation_id.to_string(), format!("alert {} already has an investigation", state.alert_id))
                    })
                    .collect(),
            )
        },
        |(state, body), params| {
            params.extend([
                state.investigation_id.to_string().into(),
                state.tenant_id.as_str().into(),
                state.alert_id.as_str().into(),
                state.state.as_str().into(),
                i64_of(state.version, "version")?.into(),
                state.incident_id.as_deref().into(),
                time_text(state.created_at).into(),
                time_text(state.updated_at).into(),
                body.into(),
            ]);
            Ok(())
        },
    )?;
    insert_rows(
        &mut steps,
        style,
        crate::sql::INSERT_VERSION_ROWS,
        crate::sql::INSERT_VERSION_ROWS_TAIL,
        5,
        versions,
        |_| Check::Nothing,
        |(id, version, state, at, body), params| {
            params.extend([id.into(), version.into(), state.into(), at.into(), body.into()]);
            Ok(())
        },
    )?;

    let incidents: Vec<&Incident> = work.incidents.iter().collect();
    plan_incidents(&mut steps, style, &incidents, &now)?;
    plan_grouping_claims(&mut steps, style, &work.grouping_claims)?;
    plan_response(&mut steps, style, work, &now)?;
    plan_audit(&mut steps, style, audit, texts, &now)?;

    let mut marks: std::collections::BTreeMap<(&'static str, Option<&str>), Vec<&str>> = std::collections::BTreeMap::new();
    for mark in &work.raw {
        marks.entry((mark.status.as_str(), mark.error.as_deref())).or_default().push(mark.ingest_id.as_str());
    }
    for ((status, error), ids) in marks {
        for chunk in ids.chunks(crate::sql::IN_LIST_CHUNK) {
            let sql = crate::sql::in_list_sql(crate::sql::MARK_RAW_IN, chunk.len(), 4, "");
            let mut params: Vec<Param<'a>> = Vec::with_capacity(3 + chunk.len());
            params.extend([status.into(), error.into(), now.clone().into()]);
            params.extend(chunk.iter().map(|id| Param::from(*id)));
            steps.push(Step::new(sql, params, Check::Nothing));
        }
    }
    Ok(steps)
}

/// Upserts `incidents` (each id once) and indexes their members' entity keys.
pub(crate) fn plan_incidents<'a>(steps: &mut Vec<Step<'a>>, style: Placeholders, incidents: &[&'a Incident], now: &str) -> StoreResult<()> {
    insert_rows(
        steps,
        style,
        crate::sql::UPSERT_INCIDENT_ROWS,
        crate::sql::UPSERT_INCIDENT_ROWS_TAIL,
        8,
        incidents.to_vec(),
        |chunk| {
            Check::Returns(
                chunk
                    .iter()
                    .map(|incident| {
                        let reason = format!(
                            "incident {} is no longer at version {} (written meanwhile by another writer)",
                            incident.incident_id,
                            incident.version.saturating_sub(1)
                        );
                        (incident.incident_id.clone(), reason)
                    })
                    .collect(),
            )
        },
        |incident, params| {
            if incident.version == 0 {
                return Err(StoreError::invalid(format!("incident {}: version 0 cannot be stored (the first is 1)", incident.incident_id)));
            }
            params.extend([
                incident.incident_id.as_str().into(),
                incident.tenant_id.as_str().into(),
                time_text(incident.first_seen).into(),
                time_text(incident.last_seen).into(),
                incident.merged_into.as_deref().into(),
                serde_json::to_string(incident)?.into(),
                now.to_owned().into(),
                i64_of(incident.version, "version")?.into(),
            ]);
            Ok(())
        },
    )?;
    let keys: Vec<(&str, &str, &str)> = incidents.iter().flat_map(|incident| crate::sql::incident_key_rows(incident)).collect();
    insert_rows(
        steps,
        style,
        crate::sql::INSERT_INCIDENT_KEY_ROWS,
        crate::sql::INSERT_INCIDENT_KEY_ROWS_TAIL,
        3,
        keys,
        |_| Check::Nothing,
        |(tenant, key, incident), params| {
            params.extend([tenant.into(), key.into(), incident.into()]);
            Ok(())
        },
    )
}

/// Claims on the entity keys a batch grouped on, each fenced by the epoch before it.
fn plan_grouping_claims<'a>(steps: &mut Vec<Step<'a>>, style: Placeholders, claims: &'a [GroupingClaim]) -> StoreResult<()> {
    insert_rows(
        steps,
        style,
        crate::sql::CLAIM_GROUPING_KEY_ROWS,
        crate::sql::CLAIM_GROUPING_KEY_ROWS_TAIL,
        3,
        claims.iter().collect(),
        |chunk| {
            Check::Returns(
                chunk
                    .iter()
                    .map(|claim| {
                        let reason = format!(
                            "alerts sharing {} were grouped meanwhile by another writer (key no longer at epoch {})",
                            claim.entity_key,
                            claim.epoch.saturating_sub(1)
                        );
                        (format!("{} {}", claim.tenant_id.as_str(), claim.entity_key), reason)
                    })
                    .collect(),
            )
        },
        |claim, params| {
            if claim.epoch == 0 {
                return Err(StoreError::invalid(format!(
                    "grouping claim on {}: epoch 0 cannot be stored (the first is 1)",
                    claim.entity_key
                )));
            }
            params.extend([claim.tenant_id.as_str().into(), claim.entity_key.as_str().into(), i64_of(claim.epoch, "epoch")?.into()]);
            Ok(())
        },
    )
}

/// Approvals created or updated (fenced by version), executions queued, and executions finished
/// (fenced by the attempt that claimed them).
fn plan_response<'a>(steps: &mut Vec<Step<'a>>, style: Placeholders, work: &'a WorkBatch, now: &str) -> StoreResult<()> {
    let mut creates = Vec::new();
    for write in &work.approvals {
        let approval = &write.approval;
        if approval.version != write.expected_version + 1 {
            return Err(StoreError::invalid(format!(
                "approval {}: version {} must follow {}",
                approval.approval_id, approval.version, write.expected_version
            )));
        }
        let body = serde_json::to_string(approval)?;
        if write.expected_version == 0 {
            creates.push((approval, body));
            continue;
        }
        let params = vec![
            approval.approval_id.as_str().into(),
            approval.status.as_str().into(),
            time_text(approval.deadline).into(),
            i64_of(approval.version, "version")?.into(),
            body.into(),
            now.to_owned().into(),
            i64_of(write.expected_version, "version")?.into(),
        ];
        let reason = format!("approval {} is not at version {}", approval.approval_id, write.expected_version);
        steps.push(Step::new(crate::response_sql::UPDATE_APPROVAL, params, Check::Changes(reason)));
    }
    insert_rows(
        steps,
        style,
        crate::response_sql::INSERT_APPROVAL_ROWS,
        "",
        9,
        creates,
        |chunk| Check::Unique(format!("one of {} approvals already exists", chunk.len())),
        |(approval, body), params| {
            params.extend([
                approval.approval_id.as_str().into(),
                approval.tenant_id.as_str().into(),
                approval.investigation_id.as_str().into(),
                approval.status.as_str().into(),
                time_text(approval.deadline).into(),
                i64_of(approval.version, "version")?.into(),
                body.into(),
                time_text(approval.requested_at).into(),
                now.to_owned().into(),
            ]);
            Ok(())
        },
    )?;
    let executions: Vec<_> = work.executions.iter().collect();
    insert_rows(
        steps,
        style,
        crate::response_sql::INSERT_EXECUTION_ROWS,
        crate::response_sql::INSERT_EXECUTION_ROWS_TAIL,
        10,
        executions,
        |_| Check::Nothing,
        |execution, params| {
            params.extend([
                execution.execution_key.as_str().into(),
                execution.tenant_id.as_str().into(),
                execution.investigation_id.as_str().into(),
                execution.approval_id.as_deref().into(),
                execution.status.as_str().into(),
                i64::from(execution.attempts).into(),
                execution.lease_until.map(time_text).into(),
                serde_json::to_string(execution)?.into(),
                time_text(execution.created_at).into(),
                now.to_owned().into(),
            ]);
            Ok(())
        },
    )?;
    for execution in &work.execution_updates {
        let params = vec![
            execution.execution_key.as_str().into(),
            execution.status.as_str().into(),
            execution.lease_until.map(time_text).into(),
            serde_json::to_string(execution)?.into(),
            now.to_owned().into(),
            i64::from(execution.attempts).into(),
        ];
        let reason = format!(
            "execution {} is no longer held by attempt {} (its lease ran out and another worker took it)",
            execution.execution_key, execution.attempts
        );
        steps.push(Step::new(crate::response_sql::FINISH_EXECUTION, params, Check::Changes(reason)));
    }
    Ok(())
}

/// Moves each tenant's chain head over `records` by compare-and-set (a head another writer moved
/// first conflicts: nothing of the unit lands, and the audit log reseals and retries), then
/// inserts the records (with their JSON columns `texts`, when they are one per record).
pub(crate) fn plan_audit<'a>(
    steps: &mut Vec<Step<'a>>,
    style: Placeholders,
    records: &'a [AuditRecord],
    texts: &'a [AuditTexts],
    now: &str,
) -> StoreResult<()> {
    for head in crate::sql::head_moves(records)? {
        let expected = head.from.map_or_else(|| "empty".to_owned(), |(sequence, _)| format!("at #{sequence}"));
        let reason = format!("the audit chain of tenant {} is no longer {expected}: another writer advanced it", head.tenant);
        let mut params: Vec<Param<'a>> = vec![head.tenant.into(), head.to.0.into(), head.to.1.into(), now.to_owned().into()];
        let sql = match head.from {
            None => crate::sql::INSERT_AUDIT_HEAD,
            Some((sequence, hash)) => {
                params.extend([sequence.into(), hash.into()]);
                crate::sql::ADVANCE_AUDIT_HEAD
            }
        };
        steps.push(Step::new(sql, params, Check::Changes(reason)));
    }
    plan_audit_rows(steps, style, records, texts)
}

/// Inserts audit `records` (their chain heads are [`plan_audit`]'s part), with their JSON columns
/// `texts` (one per record), or encoding them here when `texts` is empty. Texts of another
/// count are the caller's mistake, refused.
pub(crate) fn plan_audit_rows<'a>(
    steps: &mut Vec<Step<'a>>,
    style: Placeholders,
    records: &'a [AuditRecord],
    texts: &'a [AuditTexts],
) -> StoreResult<()> {
    let rows: Vec<(&AuditRecord, Option<&AuditTexts>)> = if texts.is_empty() {
        records.iter().map(|record| (record, None)).collect()
    } else if texts.len() == records.len() {
        records.iter().zip(texts.iter().map(Some)).collect()
    } else {
        return Err(StoreError::internal(format!("{} audit records came with the encoded columns of {}", records.len(), texts.len())));
    };
    insert_rows(
        steps,
        style,
        crate::sql::INSERT_AUDIT_ROWS,
        "",
        20,
        rows,
        |_| Check::Nothing,
        |(record, texts), params| {
            let [permissions, entities, context, decision, outcome]: [Param<'a>; 5] = match texts {
                Some(texts) => [&texts.actor_permissions, &texts.entity_ids, &texts.context, &texts.decision, &texts.outcome]
                    .map(|text| text.as_str().into()),
                None => {
                    let AuditTexts { actor_permissions, entity_ids, context, decision, outcome } = AuditTexts::of(record)?;
                    [actor_permissions, entity_ids, context, decision, outcome].map(Into::into)
                }
            };
            params.extend([
                record.tenant_id.as_str().into(),
                i64_of(record.sequence_number, "sequence_number")?.into(),
                record.audit_id.as_str().into(),
                record.previous_hash.as_str().into(),
                record.timestamp.as_str().into(),
                record.ingested_at.as_str().into(),
                record.event_type.as_str().into(),
                record.event_category.as_str().into(),
                record.severity.as_str().into(),
                record.actor_type.as_str().into(),
                record.actor_id.as_str().into(),
                permissions,
                record.investigation_id.as_deref().into(),
                record.alert_id.as_deref().into(),
                entities,
                context,
                decision,
                outcome,
                record.record_hash.as_str().into(),
                record.record_version.as_str().into(),
            ]);
            Ok(())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_rows_take_their_encoded_columns_one_per_record_or_none() {
        let records = [
            crate::conformance::sample_audit_record("t", 1, "p".to_owned()),
            crate::conformance::sample_audit_record("t", 2, "q".to_owned()),
        ];
        let mut texts: Vec<AuditTexts> = records.iter().map(|record| AuditTexts::of(record).expect("encodes")).collect();
        texts[1].context = r#"{"given":true}"#.to_owned();
        let mut steps = Vec::new();
        plan_audit_rows(&mut steps, Placeholders::Anonymous, &records, &texts).expect("one per record");
        assert!(steps[0].params.contains(&Param::Text(r#"{"given":true}"#.into())), "the given text is written");
        let mut encoded = Vec::new();
        plan_audit_rows(&mut encoded, Placeholders::Anonymous, &records, &[]).expect("encoded here");
        assert_eq!(encoded[0].params.len(), 40);
        let error = plan_audit_rows(&mut Vec::new(), Placeholders::Anonymous, &records, &texts[..1]).expect_err("one text for two records");
        assert_eq!(error.kind, StoreErrorKind::Internal);
    }

    #[test]
    fn sqlite_unit_inserts_fail_without_a_statement_journal_and_postgres_ones_are_plain() {
        let sqlite = unit_insert_sql(Placeholders::Anonymous, crate::sql::INSERT_ALERT_ROWS, 8, 2, crate::sql::INSERT_ALERT_ROWS_TAIL);
        assert!(sqlite.starts_with("INSERT OR FAIL INTO alerts (tenant_id,"), "{sqlite}");
        assert!(sqlite.ends_with("(?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, alert_id) DO NOTHING"), "{sqlite}");
        let postgres = unit_insert_sql(Placeholders::Numbered, crate::sql::INSERT_ALERT_ROWS, 8, 2, crate::sql::INSERT_ALERT_ROWS_TAIL);
        assert!(postgres.starts_with("INSERT INTO alerts (tenant_id,") && postgres.contains("$16)"), "{postgres}");
    }

    #[test]
    fn checks_decide_whether_a_unit_stands() {
        let id = InvestigationId::new();
        assert!(matches!(Check::Skippable(id).verify(0, &[]), Err(Failure::Skip(skipped)) if skipped == id));
        assert!(Check::Skippable(id).verify(1, &[]).is_ok());
        assert!(matches!(Check::Changes("moved".into()).verify(0, &[]), Err(Failure::Store(e)) if e.kind == StoreErrorKind::Conflict));
        let returns = Check::Returns(vec![("a".into(), "a taken".into()), ("b".into(), "b taken".into())]);
        assert!(returns.verify(2, &["b".into(), "a".into()]).is_ok());
        match returns.verify(1, &["a".into()]) {
            Err(Failure::Store(error)) => assert!(error.to_string().contains("b taken"), "{error}"),
            other => panic!("expected a conflict naming b, got {other:?}"),
        }
    }

    /// The version rows a unit writes: (version, body).
    fn version_rows(steps: &[Step<'_>]) -> Vec<(i64, String)> {
        let rows = steps.iter().filter(|step| step.sql.starts_with(crate::sql::INSERT_VERSION_ROWS));
        rows.flat_map(|step| step.params.chunks(5).map(|row| (row[1].clone(), row[4].clone())))
            .map(|(version, body)| match (version, body) {
                (Param::Int(version), Param::Text(body)) => (version, body.into_owned()),
                other => panic!("unexpected version row {other:?}"),
            })
            .collect()
    }

    /// With only some writes encoded ahead, the unit encodes the others as it is planned: the
    /// stored rows are the same as with everything, or nothing, encoded ahead.
    #[test]
    fn writes_not_encoded_ahead_are_encoded_by_the_plan() {
        let writes: Vec<crate::InvestigationWrite> = ["a-1", "a-2", "a-3"]
            .into_iter()
            .map(|alert| {
                let mut state = aluskort_core::GraphState::new(
                    aluskort_core::AlertId::parse(alert).expect("id"),
                    aluskort_core::TenantId::default_tenant(),
                    aluskort_core::DegradationLevel::Deterministic,
                    chrono::Utc::now(),
                );
                let versions = [(1, "received"), (2, "parsed")]
                    .into_iter()
                    .map(|(version, step)| {
                        state.version = version;
                        state.record_decision("orchestrator", step, "why", None, chrono::Utc::now());
                        state.clone()
                    })
                    .collect();
                crate::InvestigationWrite { expected_version: 0, versions, skip_on_conflict: false }
            })
            .collect();
        let mut work = WorkBatch { investigations: writes, ..WorkBatch::default() };
        let plain = version_rows(&plan_work(Placeholders::Numbered, &work, &[], &[], &[], "now").expect("plan"));
        assert_eq!(plain.len(), 6);
        work.encode_versions_ahead(2).expect("encode");
        assert!(work.encoded.of(1, &work.investigations[1]).is_some());
        assert!(work.encoded.of(2, &work.investigations[2]).is_none(), "the third is left to the plan");
        assert_eq!(version_rows(&plan_work(Placeholders::Numbered, &work, &[], &[], &[], "now").expect("plan")), plain);
        work.encode_versions_ahead(0).expect("encode");
        assert!(work.encoded.of(0, &work.investigations[0]).is_none());
        assert_eq!(version_rows(&plan_work(Placeholders::Numbered, &work, &[], &[], &[], "now").expect("plan")), plain);
    }

    /// Bodies encoded ahead are used for the write they were made from; a write changed since is
    /// encoded again, never stored with another write's bodies.
    #[test]
    fn versions_encoded_ahead_are_used_only_for_their_write() {
        let mut state = aluskort_core::GraphState::new(
            aluskort_core::AlertId::parse("a-1").expect("id"),
            aluskort_core::TenantId::default_tenant(),
            aluskort_core::DegradationLevel::Deterministic,
            chrono::Utc::now(),
        );
        let mut versions = Vec::new();
        for (version, step) in [(1, "received"), (2, "parsed"), (3, "grouped")] {
            state.version = version;
            state.record_decision("orchestrator", step, "why", None, chrono::Utc::now());
            versions.push(state.clone());
        }
        let write = |versions: &[aluskort_core::GraphState]| crate::InvestigationWrite {
            expected_version: 0,
            versions: versions.to_vec(),
            skip_on_conflict: false,
        };
        let mut work = WorkBatch { investigations: vec![write(&versions[..2])], ..WorkBatch::default() };
        let plain = version_rows(&plan_work(Placeholders::Numbered, &work, &[], &[], &[], "now").expect("plan"));
        work.encode_versions().expect("encode");
        let (bodies, _) = work.encoded.of(0, &work.investigations[0]).expect("encoded for this write");
        assert_eq!(bodies.len(), 2);
        assert_eq!(version_rows(&plan_work(Placeholders::Numbered, &work, &[], &[], &[], "now").expect("plan")), plain);
        // The write grew after encoding: its three versions are encoded afresh.
        work.investigations[0] = write(&versions);
        assert!(work.encoded.of(0, &work.investigations[0]).is_none());
        let rows = version_rows(&plan_work(Placeholders::Numbered, &work, &[], &[], &[], "now").expect("plan"));
        let (fresh, _) = crate::patch::encode(&versions, None).expect("encode");
        assert_eq!(rows, vec![(1, fresh[0].clone()), (2, fresh[1].clone()), (3, fresh[2].clone())]);
    }
}
