//! The store implementation, written once and expanded per database by [`impl_stores!`]. Both
//! SQLite and PostgreSQL accept every statement here (`$n` parameters, `ON CONFLICT`, TEXT/BIGINT),
//! so the embedded store and the server store cannot drift apart. Only static SQL strings are used
//! (plus one generated list of `$n` placeholders, [`match_ti_sql`]): every value is a bound
//! parameter (NFR-SEC-007).

use aluskort_core::audit::AuditRecord;
use aluskort_core::{CanonicalAlert, GraphState, Incident};

use crate::error::StoreResult;
use crate::model::parse_time_text;

pub(crate) const INSERT_RAW: &str = "INSERT INTO raw_inbox (ingest_id, origin, received_at, payload, status, error, updated_at, tenant_id)
     VALUES ($1, $2, $3, $4, 'pending', NULL, $5, $6) ON CONFLICT (ingest_id) DO NOTHING";
pub(crate) const MARK_RAW: &str = "UPDATE raw_inbox SET status = $2, error = $3, updated_at = $4 WHERE ingest_id = $1";
pub(crate) const PENDING_RAW: &str = "SELECT ingest_id, origin, received_at, payload, tenant_id FROM raw_inbox WHERE status = 'pending' ORDER BY received_at, ingest_id LIMIT $1";
pub(crate) const SELECT_CHECKPOINT: &str = "SELECT checkpoint FROM connector_checkpoints WHERE source_name = $1";
pub(crate) const UPSERT_CHECKPOINT: &str = "INSERT INTO connector_checkpoints (source_name, checkpoint, updated_at) VALUES ($1, $2, $3)
     ON CONFLICT (source_name) DO UPDATE SET checkpoint = excluded.checkpoint, updated_at = excluded.updated_at";
pub(crate) const INSERT_LLM_CALL: &str = "INSERT INTO llm_calls (call_id, called_at, tenant_id, task, tier, provider, model, outcome,
     input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_micros, latency_ms)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT (call_id) DO NOTHING";
pub(crate) const LLM_COST_SINCE: &str = "SELECT CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) FROM llm_calls WHERE called_at >= $1";
pub(crate) const LLM_CALLS_SINCE: &str =
    "SELECT COUNT(*) FROM llm_calls WHERE tenant_id = $1 AND called_at >= $2 AND provider <> 'deterministic'";
pub(crate) const LLM_USAGE: &str = "SELECT substr(called_at, 1, 10) AS day, tier, task, COUNT(*) AS calls,
     CAST(SUM(CASE WHEN outcome = 'ok' THEN 0 ELSE 1 END) AS BIGINT) AS failures,
     CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT), CAST(SUM(cache_read_tokens) AS BIGINT),
     CAST(SUM(cache_write_tokens) AS BIGINT), CAST(SUM(cost_micros) AS BIGINT), CAST(SUM(latency_ms) AS BIGINT)
     FROM llm_calls WHERE called_at >= $1 AND called_at < $2
     GROUP BY substr(called_at, 1, 10), tier, task ORDER BY day, tier, task";
pub(crate) const UPSERT_TI: &str =
    "INSERT INTO threat_intel_iocs (tenant_id, indicator, confidence, source, description, expires_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (tenant_id, indicator) DO UPDATE SET confidence = excluded.confidence, source = excluded.source,
       description = excluded.description, expires_at = excluded.expires_at, updated_at = excluded.updated_at";
pub(crate) const MATCH_TI: &str = "SELECT tenant_id, indicator, confidence, source, description, expires_at FROM threat_intel_iocs
     WHERE (tenant_id = $1 OR tenant_id = '') AND expires_at > $2 AND indicator IN (";
/// Indicators looked up per statement.
pub(crate) const MATCH_TI_CHUNK: usize = 200;

/// `MATCH_TI` with `count` placeholders `$3..` for the indicator list: only numbers are added to
/// the SQL text, every value is bound (NFR-SEC-007).
pub(crate) fn match_ti_sql(count: usize) -> String {
    let placeholders: Vec<String> = (0..count).map(|index| format!("${}", index + 3)).collect();
    format!("{MATCH_TI}{})", placeholders.join(", "))
}

/// Most bound parameters in one multi-row statement (SQLite allows 32,766, PostgreSQL 65,535).
/// Kept small: SQLite looks a parameter's name up by a linear scan of the statement's parameter
/// list (`sqlite3_bind_parameter_name`), and sqlx does so for every bind, so binding one statement
/// costs O(n²) in its parameters: at 4,096 this was the pipeline's largest single cost.
const MAX_BATCH_PARAMS: usize = 256;

/// Row counts to split `total` rows of `columns` parameters into: full chunks of the largest power
/// of two that fits [`MAX_BATCH_PARAMS`], then the remainder by powers of two. Few distinct row
/// counts means few distinct statements, so the prepared-statement cache keeps them all.
pub(crate) fn chunk_lengths(total: usize, columns: usize) -> Vec<usize> {
    chunk_lengths_up_to(total, columns, MAX_BATCH_PARAMS)
}

fn chunk_lengths_up_to(total: usize, columns: usize, max_params: usize) -> Vec<usize> {
    let fits = (max_params / columns.max(1)).max(1);
    let largest = 1usize << (usize::BITS - 1 - fits.leading_zeros());
    let mut lengths = vec![largest; total / largest];
    let mut rest = total % largest;
    while rest > 0 {
        let power = 1usize << (usize::BITS - 1 - rest.leading_zeros());
        lengths.push(power);
        rest -= power;
    }
    lengths
}

/// `items` in the chunks [`chunk_lengths`] gives.
pub(crate) fn batches<T>(items: &[T], columns: usize) -> impl Iterator<Item = &[T]> {
    split_into(items, chunk_lengths(items.len(), columns))
}

/// `items` cut into consecutive slices of `lengths` (which sum to its length).
fn split_into<T>(items: &[T], lengths: Vec<usize>) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    lengths.into_iter().map(move |length| {
        let (chunk, tail) = rest.split_at(length);
        rest = tail;
        chunk
    })
}

/// How a database spells the placeholders of a multi-row insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placeholders {
    /// `$1, $2, …` (PostgreSQL).
    Numbered,
    /// `?, ?, …` (SQLite): bound by position, so binding costs nothing per parameter. Numbered
    /// ones cost a linear scan each in SQLite (`sqlite3_bind_parameter_name`, which sqlx calls
    /// for every bind), quadratic in the statement's parameters.
    Anonymous,
}

/// Most bound parameters in one multi-row insert of [`insert_rows_sql`] (SQLite allows 32,766,
/// PostgreSQL 65,535): with anonymous placeholders large statements are cheap, and fewer of them
/// means fewer round trips to the database.
const MAX_INSERT_PARAMS: usize = 4096;

/// Row counts of the multi-row inserts of `total` rows of `columns` values (see
/// [`insert_batches`]).
pub(crate) fn insert_chunk_lengths(total: usize, columns: usize) -> Vec<usize> {
    chunk_lengths_up_to(total, columns, MAX_INSERT_PARAMS)
}

/// Most rows in one multi-row insert of a unit of work on SQLite ([`unit_chunk_lengths`]).
const UNIT_INSERT_ROWS: usize = 32;

/// Row counts of a unit's multi-row inserts in `style`. PostgreSQL: as [`insert_chunk_lengths`]
/// (each statement is a round trip). SQLite runs a unit in process, where a statement costs its
/// preparing, once per unit and distinct row count, and preparing grows with the statement's
/// text: full chunks of [`UNIT_INSERT_ROWS`] rows, then the rest by powers of two. (Chunks of 128
/// rows made preparing ~30 % of a unit's time on the database.)
pub(crate) fn unit_chunk_lengths(style: Placeholders, total: usize, columns: usize) -> Vec<usize> {
    match style {
        Placeholders::Numbered => insert_chunk_lengths(total, columns),
        Placeholders::Anonymous => chunk_lengths_up_to(total, columns, UNIT_INSERT_ROWS * columns),
    }
}

/// `items` in chunks for [`insert_rows_sql`] statements: as [`batches`], up to
/// [`MAX_INSERT_PARAMS`] parameters each.
pub(crate) fn insert_batches<T>(items: &[T], columns: usize) -> impl Iterator<Item = &[T]> {
    split_into(items, insert_chunk_lengths(items.len(), columns))
}

/// `head` + `rows` tuples of `columns` placeholders + `tail`, for an insert whose only
/// parameters are its rows' values (head and tail take none). Only placeholders are added to
/// the constant SQL; every value is bound (NFR-SEC-007).
pub(crate) fn insert_rows_sql(style: Placeholders, head: &str, columns: usize, rows: usize, tail: &str) -> String {
    match style {
        Placeholders::Numbered => values_sql(head, columns, rows, 1, tail),
        Placeholders::Anonymous => {
            let tuple = format!("({})", vec!["?"; columns].join(", "));
            let mut sql = String::with_capacity(head.len() + tail.len() + rows * (tuple.len() + 2));
            sql.push_str(head);
            for row in 0..rows {
                sql.push_str(if row == 0 { " " } else { ", " });
                sql.push_str(&tuple);
            }
            sql.push_str(tail);
            sql
        }
    }
}

/// `head` + `rows` tuples of `columns` placeholders numbered from `$first` + `tail`: only numbers
/// are added to the constant SQL, every value is bound (NFR-SEC-007).
pub(crate) fn values_sql(head: &str, columns: usize, rows: usize, first: usize, tail: &str) -> String {
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * columns * 6);
    sql.push_str(head);
    for row in 0..rows {
        sql.push_str(if row == 0 { " (" } else { ", (" });
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(first + row * columns + column).to_string());
        }
        sql.push(')');
    }
    sql.push_str(tail);
    sql
}

/// `head` + `($first, ..)` with `count` placeholders + `tail` (an `IN` list).
pub(crate) fn in_list_sql(head: &str, count: usize, first: usize, tail: &str) -> String {
    let placeholders: Vec<String> = (0..count).map(|index| format!("${}", first + index)).collect();
    format!("{head}({}){tail}", placeholders.join(", "))
}

pub(crate) const INSERT_RAW_ROWS: &str =
    "INSERT INTO raw_inbox (ingest_id, origin, received_at, payload, status, error, updated_at, tenant_id) VALUES";
pub(crate) const INSERT_RAW_ROWS_TAIL: &str = " ON CONFLICT (ingest_id) DO NOTHING RETURNING ingest_id";
pub(crate) const INSERT_ALERT_ROWS: &str =
    "INSERT INTO alerts (tenant_id, alert_id, source, alert_time, severity, title, body, inserted_at) VALUES";
pub(crate) const INSERT_ALERT_ROWS_TAIL: &str = " ON CONFLICT (tenant_id, alert_id) DO NOTHING";
pub(crate) const INSERT_INVESTIGATION_ROWS: &str = "INSERT INTO investigations
     (investigation_id, tenant_id, alert_id, state, version, incident_id, created_at, updated_at, graph_state) VALUES";
pub(crate) const INSERT_INVESTIGATION_ROWS_TAIL: &str = " ON CONFLICT (tenant_id, alert_id) DO NOTHING RETURNING investigation_id";
pub(crate) const INSERT_VERSION_ROWS: &str =
    "INSERT INTO investigation_versions (investigation_id, version, state, recorded_at, graph_state) VALUES";
pub(crate) const INSERT_VERSION_ROWS_TAIL: &str = " ON CONFLICT (investigation_id, version) DO NOTHING";
/// Incidents at their new `version`, each landing only over the version before it (a row that
/// did not land returns nothing; the unit then conflicts).
pub(crate) const UPSERT_INCIDENT_ROWS: &str =
    "INSERT INTO incidents (incident_id, tenant_id, first_seen, last_seen, merged_into, body, updated_at, version) VALUES";
pub(crate) const UPSERT_INCIDENT_ROWS_TAIL: &str = " ON CONFLICT (incident_id) DO UPDATE SET first_seen = excluded.first_seen,
       last_seen = excluded.last_seen, merged_into = excluded.merged_into, body = excluded.body, updated_at = excluded.updated_at,
       version = excluded.version
     WHERE incidents.version = excluded.version - 1 RETURNING incident_id";
/// Grouping claims: each entity key a batch grouped on, at its next epoch, landing only over the
/// epoch the batch read before its candidates (absent is epoch 0). Two batches grouping alerts
/// that share a key cannot both land: the later one is grouped again and sees the other's
/// incidents. Returns `tenant_id || ' ' || entity_key` of each claim that landed.
pub(crate) const CLAIM_GROUPING_KEY_ROWS: &str = "INSERT INTO grouping_keys (tenant_id, entity_key, epoch) VALUES";
pub(crate) const CLAIM_GROUPING_KEY_ROWS_TAIL: &str = " ON CONFLICT (tenant_id, entity_key) DO UPDATE SET epoch = excluded.epoch
     WHERE grouping_keys.epoch = excluded.epoch - 1 RETURNING tenant_id || ' ' || entity_key";
/// Epochs of some of a tenant's grouping keys (absent: never claimed, epoch 0).
pub(crate) const GROUPING_EPOCHS_IN: &str = "SELECT entity_key, epoch FROM grouping_keys WHERE tenant_id = $1 AND entity_key IN ";
pub(crate) const INSERT_INCIDENT_KEY_ROWS: &str = "INSERT INTO incident_keys (tenant_id, entity_key, incident_id) VALUES";
pub(crate) const INSERT_INCIDENT_KEY_ROWS_TAIL: &str = " ON CONFLICT (tenant_id, entity_key, incident_id) DO NOTHING";
pub(crate) const INSERT_AUDIT_ROWS: &str = "INSERT INTO audit_records (tenant_id, sequence_number, audit_id, previous_hash, event_time,
       ingested_at, event_type, event_category, severity, actor_type, actor_id, actor_permissions, investigation_id,
       alert_id, entity_ids, context, decision, outcome, record_hash, record_version) VALUES";
pub(crate) const MARK_RAW_IN: &str = "UPDATE raw_inbox SET status = $1, error = $2, updated_at = $3 WHERE ingest_id IN ";
pub(crate) const INVESTIGATIONS_FOR_ALERTS: &str = "SELECT graph_state FROM investigations WHERE tenant_id = $1 AND alert_id IN ";
/// Grouping candidates (unmerged incidents of the tenant sharing a key, active in the window), by
/// id and revision (`updated_at`, set by every upsert); their bodies are `INCIDENT_BODIES_IN`.
///
/// Driven from the keys (`CROSS JOIN` keeps SQLite's join order; PostgreSQL plans it as any inner
/// join): with `incident_id IN (…)` SQLite chose the window index and visited every incident of
/// the window for each lookup, then walked each matching body's overflow pages to reach
/// `updated_at` (about 3 ms per lookup at an offered 100 alerts/s, the slowest of a lone alert's
/// reads; 148 µs against 27 µs on a warm 400-incident file).
pub(crate) const INCIDENT_REVISIONS_WITH_KEYS: &str = "SELECT i.incident_id, i.updated_at
     FROM (SELECT DISTINCT incident_id FROM incident_keys WHERE tenant_id = $1 AND entity_key IN ";
pub(crate) const INCIDENT_REVISIONS_WITH_KEYS_TAIL: &str = ") AS k CROSS JOIN incidents AS i
     WHERE i.incident_id = k.incident_id AND i.tenant_id = $1 AND i.merged_into IS NULL AND i.first_seen <= $3 AND i.last_seen >= $2";
pub(crate) const INCIDENT_BODIES_IN: &str = "SELECT incident_id, updated_at, body FROM incidents WHERE incident_id IN ";
pub(crate) const ALL_INCIDENT_BODIES: &str = "SELECT body FROM incidents";
/// Values looked up per `IN` list.
pub(crate) const IN_LIST_CHUNK: usize = 500;

/// Incidents as last decoded, by id, with the revision they were read at (`updated_at`, which
/// every upsert sets). A grouping lookup reads the candidates' revisions and decodes only the
/// bodies whose revision moved: a key shared across a tenant (a tool's file hash on every host)
/// makes every alert's lookup return most incidents of the window, each up to
/// `MAX_INCIDENT_ALERTS` members of JSON, and decoding them again for every alert was the largest
/// single cost of an alert investigated alone (issue 7: the lookup was 8 % of `bench pipeline`'s
/// samples at 100 alerts/s, its JSON decoding 7 %; with this cache the run's CPU fell by ~5 %, the
/// copies handed out now being the larger part).
/// Checked against the store on every lookup, so other writers (replicas, the API) are seen.
/// Revisions are microsecond times: two writers storing one incident in the same microsecond
/// could leave a stale copy, which the next write to it replaces.
#[derive(Debug, Default)]
pub(crate) struct IncidentCache {
    entries: std::sync::Mutex<IncidentEntries>,
}

#[derive(Debug, Default)]
struct IncidentEntries {
    by_id: std::collections::HashMap<String, (String, std::sync::Arc<Incident>)>,
    /// Members held, the measure of the cache's size.
    members: usize,
}

impl IncidentCache {
    /// Most incident members held (a full incident holds 150); beyond it the cache starts over.
    const MAX_MEMBERS: usize = 200_000;

    fn entries(&self) -> std::sync::MutexGuard<'_, IncidentEntries> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The incident `id` at `revision`, if held.
    pub(crate) fn get(&self, id: &str, revision: &str) -> Option<std::sync::Arc<Incident>> {
        self.entries().by_id.get(id).filter(|(held, _)| held == revision).map(|(_, incident)| std::sync::Arc::clone(incident))
    }

    pub(crate) fn put(&self, revision: String, incident: std::sync::Arc<Incident>) {
        let mut entries = self.entries();
        if entries.members + incident.members.len() > Self::MAX_MEMBERS {
            entries.by_id.clear();
            entries.members = 0;
        }
        entries.members += incident.members.len();
        if let Some((_, previous)) = entries.by_id.insert(incident.incident_id.clone(), (revision, incident)) {
            entries.members -= previous.members.len();
        }
    }
}

/// `(tenant, key, incident)` rows of an incident's member keys, unique.
pub(crate) fn incident_key_rows(incident: &Incident) -> Vec<(&str, &str, &str)> {
    let mut keys: Vec<&str> = incident.members.iter().flat_map(|member| member.keys.iter().map(String::as_str)).collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter().map(|key| (incident.tenant_id.as_str(), key, incident.incident_id.as_str())).collect()
}

pub(crate) const INSERT_ALERT: &str = "INSERT INTO alerts (tenant_id, alert_id, source, alert_time, severity, title, body, inserted_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant_id, alert_id) DO NOTHING";
pub(crate) const SELECT_ALERT: &str = "SELECT body FROM alerts WHERE tenant_id = $1 AND alert_id = $2";
pub(crate) const ALERTS_BETWEEN: &str =
    "SELECT body FROM alerts WHERE tenant_id = $1 AND alert_time >= $2 AND alert_time < $3 ORDER BY alert_time, alert_id";
pub(crate) const INSERT_INVESTIGATION: &str = "INSERT INTO investigations
     (investigation_id, tenant_id, alert_id, state, version, incident_id, created_at, updated_at, graph_state)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (tenant_id, alert_id) DO NOTHING";
pub(crate) const UPDATE_INVESTIGATION: &str = "UPDATE investigations
     SET state = $2, version = $3, incident_id = $4, updated_at = $5, graph_state = $6
     WHERE investigation_id = $1 AND version = $7";
pub(crate) const INSERT_VERSION: &str = "INSERT INTO investigation_versions (investigation_id, version, state, recorded_at, graph_state)
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (investigation_id, version) DO NOTHING";
pub(crate) const SELECT_INVESTIGATION: &str = "SELECT graph_state FROM investigations WHERE investigation_id = $1";
pub(crate) const INVESTIGATION_EXISTS: &str = "SELECT version FROM investigations WHERE investigation_id = $1";
pub(crate) const SELECT_INVESTIGATION_FOR_ALERT: &str = "SELECT graph_state FROM investigations WHERE tenant_id = $1 AND alert_id = $2";
pub(crate) const INVESTIGATION_HISTORY: &str =
    "SELECT graph_state FROM investigation_versions WHERE investigation_id = $1 ORDER BY version";
pub(crate) const LIST_INVESTIGATIONS: &str = "SELECT graph_state FROM investigations
     WHERE ($1 IS NULL OR tenant_id = $1) AND ($2 IS NULL OR state = $2)
       AND ($3 IS NULL OR updated_at >= $3) AND ($4 IS NULL OR updated_at < $4)
       AND ($6 IS NULL OR updated_at < $6 OR (updated_at = $6 AND investigation_id < $7))
     ORDER BY updated_at DESC, investigation_id DESC LIMIT $5";
/// Keyset pages (`$4`, `$5`: the last row of the previous page).
pub(crate) const LIST_INCIDENTS: &str = "SELECT body FROM incidents
     WHERE merged_into IS NULL AND ($1 IS NULL OR tenant_id = $1) AND ($2 IS NULL OR last_seen >= $2) AND ($3 IS NULL OR first_seen < $3)
       AND ($4 IS NULL OR last_seen < $4 OR (last_seen = $4 AND incident_id < $5))
     ORDER BY last_seen DESC, incident_id DESC LIMIT $6";
pub(crate) const LIST_ALERTS: &str = "SELECT body FROM alerts
     WHERE ($1 IS NULL OR tenant_id = $1) AND ($2 IS NULL OR alert_time >= $2) AND ($3 IS NULL OR alert_time < $3)
       AND ($4 IS NULL OR severity = $4) AND ($5 IS NULL OR source = $5)
       AND ($6 IS NULL OR alert_time < $6 OR (alert_time = $6 AND (tenant_id < $7 OR (tenant_id = $7 AND alert_id < $8))))
     ORDER BY alert_time DESC, tenant_id DESC, alert_id DESC LIMIT $9";
pub(crate) const SELECT_INCIDENT: &str = "SELECT body FROM incidents WHERE incident_id = $1";
pub(crate) const INCIDENTS_OVERLAPPING: &str = "SELECT body FROM incidents
     WHERE tenant_id = $1 AND merged_into IS NULL AND first_seen <= $3 AND last_seen >= $2 ORDER BY first_seen, incident_id";
pub(crate) const INSERT_DEAD_LETTER: &str = "INSERT INTO dead_letters (id, topic, origin, error, original, recorded_at)
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING";
pub(crate) const SELECT_DEAD_LETTERS: &str =
    "SELECT id, topic, origin, error, original, recorded_at FROM dead_letters ORDER BY recorded_at, id LIMIT $1";
pub(crate) const AUDIT_HEAD: &str = "SELECT sequence_number, record_hash FROM audit_chain_heads WHERE tenant_id = $1";
/// Starts a tenant's chain; no row when another writer started it first.
pub(crate) const INSERT_AUDIT_HEAD: &str = "INSERT INTO audit_chain_heads (tenant_id, sequence_number, record_hash, updated_at)
     VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id) DO NOTHING";
/// Advances a tenant's chain from the head the records were sealed on; no row when it moved.
pub(crate) const ADVANCE_AUDIT_HEAD: &str = "UPDATE audit_chain_heads SET sequence_number = $2, record_hash = $3, updated_at = $4
     WHERE tenant_id = $1 AND sequence_number = $5 AND record_hash = $6";
pub(crate) const SELECT_AUDIT: &str = "SELECT tenant_id, sequence_number, audit_id, previous_hash, event_time, ingested_at,
       event_type, event_category, severity, actor_type, actor_id, actor_permissions, investigation_id, alert_id,
       entity_ids, context, decision, outcome, record_hash, record_version
     FROM audit_records WHERE tenant_id = $1 AND sequence_number >= $2 ORDER BY sequence_number LIMIT $3";
pub(crate) const AUDIT_OF_INVESTIGATION: &str = "SELECT tenant_id, sequence_number, audit_id, previous_hash, event_time, ingested_at,
       event_type, event_category, severity, actor_type, actor_id, actor_permissions, investigation_id, alert_id,
       entity_ids, context, decision, outcome, record_hash, record_version
     FROM audit_records WHERE tenant_id = $1 AND investigation_id = $2 ORDER BY sequence_number";
pub(crate) const AUDIT_EVENTS: &str = "SELECT tenant_id, sequence_number, audit_id, previous_hash, event_time, ingested_at,
       event_type, event_category, severity, actor_type, actor_id, actor_permissions, investigation_id, alert_id,
       entity_ids, context, decision, outcome, record_hash, record_version
     FROM audit_records WHERE tenant_id = $1 AND ($2 IS NULL OR investigation_id = $2)
       AND ($3 IS NULL OR event_time >= $3) AND ($4 IS NULL OR event_time < $4) AND sequence_number >= $5
     ORDER BY sequence_number LIMIT $6";
pub(crate) const AUDIT_TENANTS: &str = "SELECT tenant_id FROM audit_chain_heads ORDER BY tenant_id";

pub(crate) const UPSERT_FP_PATTERN: &str = "INSERT INTO fp_patterns (pattern_id, tenant_id, name, alert_name_regex, entity_patterns,
       confidence_threshold, status, approved_by, approval_date, expires_at, created_at, reason, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
     ON CONFLICT (pattern_id) DO UPDATE SET tenant_id = excluded.tenant_id, name = excluded.name,
       alert_name_regex = excluded.alert_name_regex, entity_patterns = excluded.entity_patterns,
       confidence_threshold = excluded.confidence_threshold, status = excluded.status, approved_by = excluded.approved_by,
       approval_date = excluded.approval_date, expires_at = excluded.expires_at, created_at = excluded.created_at,
       reason = excluded.reason, updated_at = excluded.updated_at";
pub(crate) const SELECT_FP_PATTERN: &str = "SELECT pattern_id, tenant_id, name, alert_name_regex, entity_patterns, confidence_threshold,
       status, approved_by, approval_date, expires_at, created_at, reason FROM fp_patterns WHERE pattern_id = $1";
/// The statuses listed are those of [`crate::FpStatus::is_matchable`].
pub(crate) const MATCHABLE_FP_PATTERNS: &str = "SELECT pattern_id, tenant_id, name, alert_name_regex, entity_patterns,
       confidence_threshold, status, approved_by, approval_date, expires_at, created_at, reason FROM fp_patterns
     WHERE status IN ('approved', 'active') AND (tenant_id = $1 OR tenant_id IS NULL) AND (expires_at IS NULL OR expires_at > $2)
     ORDER BY pattern_id";
/// Every pattern, optionally of one tenant (its own and global ones) and of one status; an empty
/// `$1`/`$3` switches its filter off (tenant ids and statuses are never empty).
/// Compare-and-set on the governance fields (status, approvers, expiry).
pub(crate) const REPLACE_FP_PATTERN: &str = "UPDATE fp_patterns SET tenant_id = $2, name = $3, alert_name_regex = $4, entity_patterns = $5,
       confidence_threshold = $6, status = $7, approved_by = $8, approval_date = $9, expires_at = $10, reason = $11, updated_at = $12
     WHERE pattern_id = $1 AND status = $13 AND approved_by = $14 AND COALESCE(expires_at, '') = COALESCE($15, '')";
pub(crate) const LIST_FP_PATTERNS: &str = "SELECT pattern_id, tenant_id, name, alert_name_regex, entity_patterns,
       confidence_threshold, status, approved_by, approval_date, expires_at, created_at, reason FROM fp_patterns
     WHERE ($1 = '' OR tenant_id = $2 OR tenant_id IS NULL) AND ($3 = '' OR status = $4)
     ORDER BY pattern_id";
pub(crate) const UPSERT_USER_RISK_ROWS: &str =
    "INSERT INTO user_risk (tenant_id, user_key, priority, observed_at, detail, imported_at) VALUES";
pub(crate) const UPSERT_USER_RISK_ROWS_TAIL: &str = " ON CONFLICT (tenant_id, user_key) DO UPDATE SET priority = excluded.priority,
       observed_at = excluded.observed_at, detail = excluded.detail, imported_at = excluded.imported_at";
pub(crate) const SELECT_USER_RISK: &str =
    "SELECT tenant_id, user_key, priority, observed_at, detail FROM user_risk WHERE tenant_id = $1 AND user_key IN ";
pub(crate) const UPSERT_EXPOSURE_ROWS: &str = "INSERT INTO ctem_exposures (tenant_id, exposure_id, asset_id, asset_key, asset_zone,
       status, ctem_score, title, updated_at, imported_at) VALUES";
pub(crate) const UPSERT_EXPOSURE_ROWS_TAIL: &str = " ON CONFLICT (tenant_id, exposure_id) DO UPDATE SET asset_id = excluded.asset_id,
       asset_key = excluded.asset_key, asset_zone = excluded.asset_zone, status = excluded.status, ctem_score = excluded.ctem_score,
       title = excluded.title, updated_at = excluded.updated_at, imported_at = excluded.imported_at";
/// Followed by `($2, $3), ..` (asset key, zone) pairs and [`EXPOSURES_FOR_ASSETS_TAIL`].
pub(crate) const EXPOSURES_FOR_ASSETS: &str = "SELECT tenant_id, exposure_id, asset_id, asset_zone, status, ctem_score, title, updated_at
     FROM ctem_exposures WHERE tenant_id = $1 AND LOWER(status) NOT IN ('verified', 'closed')
       AND (asset_key, asset_zone) IN (VALUES";
pub(crate) const EXPOSURES_FOR_ASSETS_TAIL: &str = ")";

/// Columns of `SELECT_FP_PATTERN`, in order.
pub(crate) type FpPatternRow =
    (String, Option<String>, String, Option<String>, String, f64, String, String, Option<String>, Option<String>, String, String);
/// Columns of `SELECT_USER_RISK`, in order.
pub(crate) type UserRiskRow = (String, String, f64, String, String);
/// Columns of `EXPOSURES_FOR_ASSETS`, in order.
pub(crate) type ExposureRow = (String, String, String, String, String, f64, String, String);

/// The stored, lower-cased spelling of an exposure's asset id, by which it is looked up.
pub(crate) fn asset_key(asset_id: &str) -> String {
    asset_id.to_lowercase()
}

/// The last occurrence of each key among `items`, in input order: one multi-row upsert must not
/// name a row twice (PostgreSQL refuses `ON CONFLICT DO UPDATE` affecting a row a second time).
pub(crate) fn last_of_each<'a, T, K: Ord>(items: &'a [T], key: impl Fn(&'a T) -> K) -> Vec<&'a T> {
    let mut last = std::collections::BTreeMap::new();
    for (index, item) in items.iter().enumerate() {
        last.insert(key(item), index);
    }
    let mut indices: Vec<usize> = last.into_values().collect();
    indices.sort_unstable();
    indices.into_iter().map(|index| &items[index]).collect()
}

pub(crate) fn fp_pattern_from_row(row: FpPatternRow) -> StoreResult<crate::FpPattern> {
    let (
        pattern_id,
        tenant,
        name,
        alert_name_regex,
        entity_patterns,
        confidence_threshold,
        status,
        approved_by,
        approval_date,
        expires_at,
        created_at,
        reason,
    ) = row;
    let status = crate::FpStatus::parse(&status)
        .ok_or_else(|| crate::StoreError::invalid(format!("fp pattern {pattern_id:?}: stored status {status:?} is unknown")))?;
    let optional_time = |text: Option<String>| text.as_deref().map(parse_time_text).transpose();
    Ok(crate::FpPattern {
        entity_patterns: serde_json::from_str(&entity_patterns)?,
        approved_by: serde_json::from_str(&approved_by)?,
        approval_date: optional_time(approval_date)?,
        expires_at: optional_time(expires_at)?,
        created_at: parse_time_text(&created_at)?,
        pattern_id,
        tenant,
        name,
        alert_name_regex,
        confidence_threshold,
        status,
        reason,
    })
}

pub(crate) fn user_risk_from_row(row: UserRiskRow) -> StoreResult<crate::UserRisk> {
    let (tenant, user, priority, observed_at, detail) = row;
    Ok(crate::UserRisk { tenant, user, priority, observed_at: parse_time_text(&observed_at)?, detail: serde_json::from_str(&detail)? })
}

pub(crate) fn exposure_from_row(row: ExposureRow) -> StoreResult<crate::Exposure> {
    let (tenant, exposure_id, asset_id, asset_zone, status, ctem_score, title, updated_at) = row;
    Ok(crate::Exposure { tenant, exposure_id, asset_id, asset_zone, status, ctem_score, title, updated_at: parse_time_text(&updated_at)? })
}

pub(crate) fn decode_alert(body: &str) -> StoreResult<CanonicalAlert> {
    Ok(serde_json::from_str(body)?)
}

pub(crate) fn decode_state(body: &str) -> StoreResult<GraphState> {
    Ok(serde_json::from_str(body)?)
}

pub(crate) fn decode_incident(body: &str) -> StoreResult<Incident> {
    Ok(serde_json::from_str(body)?)
}

pub(crate) fn i64_of(value: u64, field: &str) -> StoreResult<i64> {
    i64::try_from(value).map_err(|_| crate::StoreError::invalid(format!("{field} {value} out of range")))
}

pub(crate) fn u64_of(value: i64, field: &str) -> StoreResult<u64> {
    u64::try_from(value).map_err(|_| crate::StoreError::invalid(format!("{field} {value} is negative")))
}

/// How a unit of audit records moves one tenant's chain head: from the head they were sealed on
/// (`None` when they start the chain with its genesis record) to their last record.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct HeadMove<'a> {
    pub(crate) tenant: &'a str,
    pub(crate) from: Option<(i64, &'a str)>,
    pub(crate) to: (i64, &'a str),
}

/// The head moves of `records`, one per tenant in tenant order (writers take the heads' row
/// locks in one order, so two of them never deadlock). Each tenant's records must link up in
/// order: consecutive sequence numbers, each naming the hash of the one before.
pub(crate) fn head_moves(records: &[AuditRecord]) -> StoreResult<Vec<HeadMove<'_>>> {
    let mut moves: std::collections::BTreeMap<&str, HeadMove<'_>> = std::collections::BTreeMap::new();
    for record in records {
        let sequence = i64_of(record.sequence_number, "sequence_number")?;
        match moves.get_mut(record.tenant_id.as_str()) {
            Some(head) => {
                if sequence != head.to.0 + 1 || record.previous_hash != head.to.1 {
                    return Err(crate::StoreError::invalid(format!(
                        "audit records of tenant {} do not link up: #{sequence} follows #{} without naming its hash",
                        record.tenant_id, head.to.0
                    )));
                }
                head.to = (sequence, record.record_hash.as_str());
            }
            None => {
                let from = (sequence > 0).then(|| (sequence - 1, record.previous_hash.as_str()));
                let head = HeadMove { tenant: record.tenant_id.as_str(), from, to: (sequence, record.record_hash.as_str()) };
                moves.insert(record.tenant_id.as_str(), head);
            }
        }
    }
    Ok(moves.into_values().collect())
}

/// Columns of an audit row, in `SELECT_AUDIT` order, decoded back into a record. The JSON columns
/// are parsed back to values: the hash covers their canonical form, not their stored spelling.
#[expect(clippy::too_many_arguments, reason = "one argument per audit column keeps the mapping explicit")]
pub(crate) fn audit_from_columns(
    tenant_id: String,
    sequence_number: i64,
    audit_id: String,
    previous_hash: String,
    timestamp: String,
    ingested_at: String,
    event_type: String,
    event_category: String,
    severity: String,
    actor_type: String,
    actor_id: String,
    actor_permissions: String,
    investigation_id: Option<String>,
    alert_id: Option<String>,
    entity_ids: String,
    context: String,
    decision: String,
    outcome: String,
    record_hash: String,
    record_version: String,
) -> StoreResult<AuditRecord> {
    let column = |name: &str, text: &str| -> StoreResult<serde_json::Value> {
        serde_json::from_str(text).map_err(|error| {
            crate::StoreError::invalid(format!("audit record {tenant_id}#{sequence_number}: column {name} is not valid JSON: {error}"))
        })
    };
    let strings = |name: &str, text: &str| -> StoreResult<Vec<String>> {
        serde_json::from_value(column(name, text)?).map_err(|error| {
            crate::StoreError::invalid(format!(
                "audit record {tenant_id}#{sequence_number}: column {name} is not a list of strings: {error}"
            ))
        })
    };
    let actor_permissions = strings("actor_permissions", &actor_permissions)?;
    let entity_ids = strings("entity_ids", &entity_ids)?;
    let context = column("context", &context)?;
    let decision = column("decision", &decision)?;
    let outcome = column("outcome", &outcome)?;
    Ok(AuditRecord {
        audit_id,
        tenant_id,
        sequence_number: u64_of(sequence_number, "sequence_number")?,
        previous_hash,
        timestamp,
        ingested_at,
        event_type,
        event_category,
        severity,
        actor_type,
        actor_id,
        actor_permissions,
        investigation_id,
        alert_id,
        entity_ids,
        context,
        decision,
        outcome,
        record_hash,
        record_version,
    })
}

pub(crate) fn dead_letter_from_columns(
    id: String,
    topic: String,
    origin: String,
    error: String,
    original: String,
    recorded_at: String,
) -> StoreResult<crate::DeadLetter> {
    Ok(crate::DeadLetter {
        id,
        topic,
        origin,
        error,
        original: serde_json::from_str(&original)?,
        recorded_at: parse_time_text(&recorded_at)?,
    })
}

/// Expands `CaseStore` and `AuditStore` for a store type with a `pool` field of the given pool type.
macro_rules! impl_stores {
    ($store:ty, $db:ty, $placeholders:ident) => {
        impl $store {
            /// Placeholder spelling of this database's multi-row inserts.
            const PLACEHOLDERS: $crate::sql::Placeholders = $crate::sql::Placeholders::$placeholders;

            /// Binds one planned value onto `query`.
            fn bind_param<'q>(
                query: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments>,
                param: &'q $crate::unit::Param<'_>,
            ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments> {
                match param {
                    $crate::unit::Param::Text(text) => query.bind(text.as_ref()),
                    $crate::unit::Param::Int(value) => query.bind(*value),
                    $crate::unit::Param::Null => query.bind(None::<&str>),
                }
            }

            /// Runs a planned unit inside the caller's transaction, one statement at a time,
            /// checking each ([`$crate::unit::Check`]). (Sent to SQLite as one multi-statement
            /// query, a unit cost one round trip to sqlx's worker thread instead of one per
            /// statement, but the combined text differed from batch to batch, so its statements
            /// missed the prepared-statement cache: `bench pipeline` spent more CPU per alert
            /// (23.4 s against 22.2 s for 2,000 alerts at 100/s) and bursts were no faster.)
            async fn run_steps(
                conn: &mut <$db as sqlx::Database>::Connection,
                steps: &[$crate::unit::Step<'_>],
            ) -> Result<(), $crate::unit::Failure> {
                use sqlx::Row;
                for step in steps {
                    // Audited: constant SQL plus placeholders; every value is bound.
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(step.sql.to_string()));
                    for param in &step.params {
                        query = Self::bind_param(query, param);
                    }
                    if step.check.returns_rows() {
                        let rows = query.fetch_all(&mut *conn).await.map_err(|error| step.check.error(error))?;
                        let returned = rows
                            .iter()
                            .map(|row| row.try_get::<String, _>(0))
                            .collect::<Result<Vec<_>, _>>()
                            .map_err($crate::StoreError::from)?;
                        step.check.verify(rows.len() as u64, &returned)?;
                    } else {
                        let done = query.execute(&mut *conn).await.map_err(|error| step.check.error(error))?;
                        step.check.verify(done.rows_affected(), &[])?;
                    }
                }
                Ok(())
            }

            /// Runs `steps` in a transaction of the writer and commits it (`execute_unit`, each
            /// store's own).
            async fn commit_steps(&self, steps: &[$crate::unit::Step<'_>]) -> $crate::StoreResult<()> {
                self.execute_unit(steps).await.map_err($crate::unit::Failure::into_store)
            }

            /// An audit row (`SELECT_AUDIT` columns) decoded back into a record.
            fn audit_row(row: &<$db as sqlx::Database>::Row) -> $crate::StoreResult<aluskort_core::audit::AuditRecord> {
                use sqlx::Row;
                $crate::sql::audit_from_columns(
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                    row.try_get(4)?,
                    row.try_get(5)?,
                    row.try_get(6)?,
                    row.try_get(7)?,
                    row.try_get(8)?,
                    row.try_get(9)?,
                    row.try_get(10)?,
                    row.try_get(11)?,
                    row.try_get(12)?,
                    row.try_get(13)?,
                    row.try_get(14)?,
                    row.try_get(15)?,
                    row.try_get(16)?,
                    row.try_get(17)?,
                    row.try_get(18)?,
                    row.try_get(19)?,
                )
            }

            /// [`$crate::sql::insert_rows_sql`] in this database's placeholder spelling.
            fn insert_sql(head: &str, columns: usize, rows: usize, tail: &str) -> String {
                $crate::sql::insert_rows_sql(Self::PLACEHOLDERS, head, columns, rows, tail)
            }

            /// JSON bodies selected by `sql`, whose parameters are (tenant, from, to).
            async fn bodies_in_window(
                &self,
                sql: &'static str,
                tenant: &aluskort_core::TenantId,
                from: chrono::DateTime<chrono::Utc>,
                to: chrono::DateTime<chrono::Utc>,
            ) -> $crate::StoreResult<Vec<String>> {
                Ok(sqlx::query_scalar(sql)
                    .bind(tenant.as_str())
                    .bind($crate::model::time_text(from))
                    .bind($crate::model::time_text(to))
                    .fetch_all(&self.pool)
                    .await?)
            }

            /// Applies every migration not yet recorded in `schema_migrations`, one transaction per
            /// version. `lock`, when given, runs first in each transaction (PostgreSQL serialises
            /// concurrent migrators with an advisory lock); `extras` (the dialect's own statements,
            /// by version) run after the shared statements of their version. Versions after `until`
            /// are left (tests build older schemas this way).
            async fn apply_migrations(
                &self,
                lock: Option<&'static str>,
                extras: &[(i64, &[&'static str])],
                until: i64,
            ) -> $crate::StoreResult<()> {
                sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)")
                    .execute(&self.writer)
                    .await?;
                for (version, statements) in $crate::schema::MIGRATIONS.iter().filter(|(version, _)| *version <= until) {
                    let mut transaction = self.writer.begin().await?;
                    if let Some(lock) = lock {
                        sqlx::query(lock).execute(&mut *transaction).await?;
                    }
                    let applied: Option<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                        .bind(version)
                        .fetch_optional(&mut *transaction)
                        .await?;
                    if applied.is_some() {
                        continue;
                    }
                    for statement in *statements {
                        sqlx::query(*statement).execute(&mut *transaction).await?;
                    }
                    for statement in extras.iter().filter(|(at, _)| at == version).flat_map(|(_, statements)| statements.iter()) {
                        sqlx::query(*statement).execute(&mut *transaction).await?;
                    }
                    if *version == $crate::schema::INCIDENT_KEYS_VERSION {
                        let bodies: Vec<String> = sqlx::query_scalar($crate::sql::ALL_INCIDENT_BODIES).fetch_all(&mut *transaction).await?;
                        let incidents = bodies.iter().map(|body| $crate::sql::decode_incident(body)).collect::<Result<Vec<_>, _>>()?;
                        let incidents: Vec<&aluskort_core::Incident> = incidents.iter().collect();
                        let mut steps = Vec::new();
                        $crate::unit::plan_incidents(
                            &mut steps,
                            Self::PLACEHOLDERS,
                            &incidents,
                            &$crate::model::time_text(chrono::Utc::now()),
                        )?;
                        Self::run_steps(&mut *transaction, &steps).await.map_err($crate::unit::Failure::into_store)?;
                    }
                    sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                        .bind(version)
                        .bind($crate::model::time_text(chrono::Utc::now()))
                        .execute(&mut *transaction)
                        .await?;
                    transaction.commit().await?;
                }
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::CaseStore for $store {
            async fn insert_raw(&self, record: &$crate::RawRecord) -> $crate::StoreResult<$crate::InsertOutcome> {
                let result = sqlx::query($crate::sql::INSERT_RAW)
                    .bind(&record.ingest_id)
                    .bind(&record.origin)
                    .bind($crate::model::time_text(record.received_at))
                    .bind(record.payload.to_string())
                    .bind($crate::model::time_text(chrono::Utc::now()))
                    .bind(record.tenant.as_ref().map(aluskort_core::TenantId::as_str))
                    .execute(&self.writer)
                    .await?;
                Ok(if result.rows_affected() == 1 { $crate::InsertOutcome::Inserted } else { $crate::InsertOutcome::Duplicate })
            }

            async fn insert_raw_many(&self, records: &[$crate::RawRecord]) -> $crate::StoreResult<Vec<$crate::InsertOutcome>> {
                use sqlx::Row;
                let now = $crate::model::time_text(chrono::Utc::now());
                let mut inserted = std::collections::HashSet::new();
                let mut transaction = self.writer.begin().await?;
                for chunk in $crate::sql::insert_batches(records, 8) {
                    let sql = Self::insert_sql($crate::sql::INSERT_RAW_ROWS, 8, chunk.len(), $crate::sql::INSERT_RAW_ROWS_TAIL);
                    // Audited: constant SQL plus placeholders; every value is bound.
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for record in chunk {
                        query = query
                            .bind(record.ingest_id.as_str())
                            .bind(record.origin.as_str())
                            .bind($crate::model::time_text(record.received_at))
                            .bind(record.payload.to_string())
                            .bind($crate::RawStatus::Pending.as_str())
                            .bind(None::<String>)
                            .bind(now.clone())
                            .bind(record.tenant.as_ref().map(aluskort_core::TenantId::as_str));
                    }
                    for row in query.fetch_all(&mut *transaction).await? {
                        inserted.insert(row.try_get::<String, _>(0)?);
                    }
                }
                transaction.commit().await?;
                // The first occurrence of an inserted id was the insert; any other is a duplicate.
                Ok(records
                    .iter()
                    .map(|record| {
                        if inserted.remove(&record.ingest_id) { $crate::InsertOutcome::Inserted } else { $crate::InsertOutcome::Duplicate }
                    })
                    .collect())
            }

            async fn load_checkpoint(&self, source_name: &str) -> $crate::StoreResult<Option<serde_json::Value>> {
                let text: Option<String> =
                    sqlx::query_scalar($crate::sql::SELECT_CHECKPOINT).bind(source_name).fetch_optional(&self.pool).await?;
                Ok(text.map(|text| serde_json::from_str(&text)).transpose()?)
            }

            async fn save_checkpoint(&self, source_name: &str, checkpoint: &serde_json::Value) -> $crate::StoreResult<()> {
                sqlx::query($crate::sql::UPSERT_CHECKPOINT)
                    .bind(source_name)
                    .bind(checkpoint.to_string())
                    .bind($crate::model::time_text(chrono::Utc::now()))
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn mark_raw(&self, ingest_id: &str, status: $crate::RawStatus, error: Option<&str>) -> $crate::StoreResult<()> {
                sqlx::query($crate::sql::MARK_RAW)
                    .bind(ingest_id)
                    .bind(status.as_str())
                    .bind(error)
                    .bind($crate::model::time_text(chrono::Utc::now()))
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn pending_raw(&self, limit: u32) -> $crate::StoreResult<Vec<$crate::RawRecord>> {
                use sqlx::Row;
                let rows = sqlx::query($crate::sql::PENDING_RAW).bind(i64::from(limit)).fetch_all(&self.pool).await?;
                rows.iter()
                    .map(|row| {
                        let payload: String = row.try_get("payload")?;
                        let received_at: String = row.try_get("received_at")?;
                        let tenant: Option<String> = row.try_get("tenant_id")?;
                        Ok($crate::RawRecord {
                            tenant: tenant
                                .as_deref()
                                .map(aluskort_core::TenantId::parse)
                                .transpose()
                                .map_err(|error| $crate::StoreError::invalid(format!("raw_inbox.tenant_id: {error}")))?,
                            ingest_id: row.try_get("ingest_id")?,
                            origin: row.try_get("origin")?,
                            received_at: $crate::model::parse_time_text(&received_at)?,
                            payload: serde_json::from_str(&payload)?,
                        })
                    })
                    .collect()
            }

            async fn insert_alert(&self, alert: &aluskort_core::CanonicalAlert) -> $crate::StoreResult<$crate::InsertOutcome> {
                let result = sqlx::query($crate::sql::INSERT_ALERT)
                    .bind(alert.tenant_id.as_str())
                    .bind(alert.alert_id.as_str())
                    .bind(alert.source.as_str())
                    .bind($crate::model::time_text(alert.timestamp))
                    .bind(alert.severity.as_str())
                    .bind(&alert.title)
                    .bind(serde_json::to_string(alert)?)
                    .bind($crate::model::time_text(chrono::Utc::now()))
                    .execute(&self.writer)
                    .await?;
                Ok(if result.rows_affected() == 1 { $crate::InsertOutcome::Inserted } else { $crate::InsertOutcome::Duplicate })
            }

            async fn alert(
                &self,
                tenant: &aluskort_core::TenantId,
                alert_id: &aluskort_core::AlertId,
            ) -> $crate::StoreResult<Option<aluskort_core::CanonicalAlert>> {
                let body: Option<String> = sqlx::query_scalar($crate::sql::SELECT_ALERT)
                    .bind(tenant.as_str())
                    .bind(alert_id.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                body.as_deref().map($crate::sql::decode_alert).transpose()
            }

            async fn alerts_between(
                &self,
                tenant: &aluskort_core::TenantId,
                from: chrono::DateTime<chrono::Utc>,
                to: chrono::DateTime<chrono::Utc>,
            ) -> $crate::StoreResult<Vec<aluskort_core::CanonicalAlert>> {
                let bodies = self.bodies_in_window($crate::sql::ALERTS_BETWEEN, tenant, from, to).await?;
                bodies.iter().map(|body| $crate::sql::decode_alert(body)).collect()
            }

            async fn create_investigation(&self, state: &aluskort_core::GraphState) -> $crate::StoreResult<$crate::InsertOutcome> {
                let body = serde_json::to_string(state)?;
                let version = $crate::sql::i64_of(state.version, "version")?;
                let mut transaction = self.writer.begin().await?;
                let result = sqlx::query($crate::sql::INSERT_INVESTIGATION)
                    .bind(state.investigation_id.to_string())
                    .bind(state.tenant_id.as_str())
                    .bind(state.alert_id.as_str())
                    .bind(state.state.as_str())
                    .bind(version)
                    .bind(state.incident_id.as_deref())
                    .bind($crate::model::time_text(state.created_at))
                    .bind($crate::model::time_text(state.updated_at))
                    .bind(&body)
                    .execute(&mut *transaction)
                    .await?;
                if result.rows_affected() == 0 {
                    transaction.rollback().await?;
                    return Ok($crate::InsertOutcome::Duplicate);
                }
                sqlx::query($crate::sql::INSERT_VERSION)
                    .bind(state.investigation_id.to_string())
                    .bind(version)
                    .bind(state.state.as_str())
                    .bind($crate::model::time_text(state.updated_at))
                    .bind(&body)
                    .execute(&mut *transaction)
                    .await?;
                transaction.commit().await?;
                Ok($crate::InsertOutcome::Inserted)
            }

            async fn save_investigation(&self, state: &aluskort_core::GraphState, expected_version: u64) -> $crate::StoreResult<u64> {
                let new_version = expected_version.checked_add(1).ok_or_else(|| $crate::StoreError::invalid("version overflow"))?;
                let mut stored = state.clone();
                stored.version = new_version;
                let body = serde_json::to_string(&stored)?;
                let id = state.investigation_id.to_string();
                let mut transaction = self.writer.begin().await?;
                let result = sqlx::query($crate::sql::UPDATE_INVESTIGATION)
                    .bind(&id)
                    .bind(state.state.as_str())
                    .bind($crate::sql::i64_of(new_version, "version")?)
                    .bind(state.incident_id.as_deref())
                    .bind($crate::model::time_text(state.updated_at))
                    .bind(&body)
                    .bind($crate::sql::i64_of(expected_version, "version")?)
                    .execute(&mut *transaction)
                    .await?;
                if result.rows_affected() == 0 {
                    let current: Option<i64> =
                        sqlx::query_scalar($crate::sql::INVESTIGATION_EXISTS).bind(&id).fetch_optional(&mut *transaction).await?;
                    transaction.rollback().await?;
                    return Err(match current {
                        Some(current) => $crate::StoreError::new(
                            $crate::StoreErrorKind::Conflict,
                            anyhow::anyhow!("investigation {id} is at version {current}, not {expected_version}"),
                        ),
                        None => {
                            $crate::StoreError::new($crate::StoreErrorKind::NotFound, anyhow::anyhow!("investigation {id} does not exist"))
                        }
                    });
                }
                sqlx::query($crate::sql::INSERT_VERSION)
                    .bind(&id)
                    .bind($crate::sql::i64_of(new_version, "version")?)
                    .bind(state.state.as_str())
                    .bind($crate::model::time_text(state.updated_at))
                    .bind(&body)
                    .execute(&mut *transaction)
                    .await?;
                transaction.commit().await?;
                Ok(new_version)
            }

            async fn investigation(&self, id: aluskort_core::InvestigationId) -> $crate::StoreResult<Option<aluskort_core::GraphState>> {
                let body: Option<String> =
                    sqlx::query_scalar($crate::sql::SELECT_INVESTIGATION).bind(id.to_string()).fetch_optional(&self.pool).await?;
                body.as_deref().map($crate::sql::decode_state).transpose()
            }

            async fn investigation_for_alert(
                &self,
                tenant: &aluskort_core::TenantId,
                alert_id: &aluskort_core::AlertId,
            ) -> $crate::StoreResult<Option<aluskort_core::GraphState>> {
                let body: Option<String> = sqlx::query_scalar($crate::sql::SELECT_INVESTIGATION_FOR_ALERT)
                    .bind(tenant.as_str())
                    .bind(alert_id.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                body.as_deref().map($crate::sql::decode_state).transpose()
            }

            async fn investigations_for_alerts(
                &self,
                tenant: &aluskort_core::TenantId,
                alert_ids: &[aluskort_core::AlertId],
            ) -> $crate::StoreResult<Vec<aluskort_core::GraphState>> {
                let mut states = Vec::new();
                for chunk in alert_ids.chunks($crate::sql::IN_LIST_CHUNK) {
                    let sql = $crate::sql::in_list_sql($crate::sql::INVESTIGATIONS_FOR_ALERTS, chunk.len(), 2, "");
                    let mut query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).bind(tenant.as_str());
                    for id in chunk {
                        query = query.bind(id.as_str());
                    }
                    for body in query.fetch_all(&self.pool).await? {
                        states.push($crate::sql::decode_state(&body)?);
                    }
                }
                Ok(states)
            }

            async fn investigation_history(
                &self,
                id: aluskort_core::InvestigationId,
            ) -> $crate::StoreResult<Vec<aluskort_core::GraphState>> {
                let bodies: Vec<String> =
                    sqlx::query_scalar($crate::sql::INVESTIGATION_HISTORY).bind(id.to_string()).fetch_all(&self.pool).await?;
                $crate::patch::decode(&bodies)
            }

            async fn list_investigations(
                &self,
                filter: &$crate::InvestigationFilter,
            ) -> $crate::StoreResult<Vec<aluskort_core::GraphState>> {
                let limit = $crate::model::page_limit(filter.limit);
                let bodies: Vec<String> = sqlx::query_scalar($crate::sql::LIST_INVESTIGATIONS)
                    .bind(filter.tenant.as_ref().map(|t| t.as_str().to_owned()))
                    .bind(filter.state.map(|s| s.as_str().to_owned()))
                    .bind(filter.since.map($crate::model::time_text))
                    .bind(filter.until.map($crate::model::time_text))
                    .bind(limit)
                    .bind(filter.after.as_ref().map(|key| $crate::model::time_text(key.time)))
                    .bind(filter.after.as_ref().map(|key| key.id.as_str()))
                    .fetch_all(&self.pool)
                    .await?;
                bodies.iter().map(|body| $crate::sql::decode_state(body)).collect()
            }

            async fn list_incidents(&self, filter: &$crate::IncidentFilter) -> $crate::StoreResult<Vec<aluskort_core::Incident>> {
                let bodies: Vec<String> = sqlx::query_scalar($crate::sql::LIST_INCIDENTS)
                    .bind(filter.tenant.as_ref().map(aluskort_core::TenantId::as_str))
                    .bind(filter.since.map($crate::model::time_text))
                    .bind(filter.until.map($crate::model::time_text))
                    .bind(filter.after.as_ref().map(|key| $crate::model::time_text(key.time)))
                    .bind(filter.after.as_ref().map(|key| key.id.as_str()))
                    .bind($crate::model::page_limit(filter.limit))
                    .fetch_all(&self.pool)
                    .await?;
                bodies.iter().map(|body| $crate::sql::decode_incident(body)).collect()
            }

            async fn list_alerts(&self, filter: &$crate::AlertFilter) -> $crate::StoreResult<Vec<aluskort_core::CanonicalAlert>> {
                let bodies: Vec<String> = sqlx::query_scalar($crate::sql::LIST_ALERTS)
                    .bind(filter.tenant.as_ref().map(aluskort_core::TenantId::as_str))
                    .bind(filter.since.map($crate::model::time_text))
                    .bind(filter.until.map($crate::model::time_text))
                    .bind(filter.severity.as_deref())
                    .bind(filter.source.as_deref())
                    .bind(filter.after.as_ref().map(|key| $crate::model::time_text(key.time)))
                    .bind(filter.after.as_ref().map(|key| key.tenant.as_str()))
                    .bind(filter.after.as_ref().map(|key| key.id.as_str()))
                    .bind($crate::model::page_limit(filter.limit))
                    .fetch_all(&self.pool)
                    .await?;
                bodies.iter().map(|body| $crate::sql::decode_alert(body)).collect()
            }

            async fn upsert_incident(&self, incident: &aluskort_core::Incident) -> $crate::StoreResult<()> {
                let mut steps = Vec::new();
                $crate::unit::plan_incidents(&mut steps, Self::PLACEHOLDERS, &[incident], &$crate::model::time_text(chrono::Utc::now()))?;
                self.commit_steps(&steps).await
            }

            async fn incident(&self, incident_id: &str) -> $crate::StoreResult<Option<aluskort_core::Incident>> {
                let body: Option<String> =
                    sqlx::query_scalar($crate::sql::SELECT_INCIDENT).bind(incident_id).fetch_optional(&self.pool).await?;
                body.as_deref().map($crate::sql::decode_incident).transpose()
            }

            async fn incidents_overlapping(
                &self,
                tenant: &aluskort_core::TenantId,
                from: chrono::DateTime<chrono::Utc>,
                to: chrono::DateTime<chrono::Utc>,
            ) -> $crate::StoreResult<Vec<aluskort_core::Incident>> {
                let bodies = self.bodies_in_window($crate::sql::INCIDENTS_OVERLAPPING, tenant, from, to).await?;
                bodies.iter().map(|body| $crate::sql::decode_incident(body)).collect()
            }

            async fn grouping_epochs(
                &self,
                tenant: &aluskort_core::TenantId,
                keys: &[String],
            ) -> $crate::StoreResult<std::collections::HashMap<String, u64>> {
                use sqlx::Row;
                let mut epochs = std::collections::HashMap::new();
                for chunk in keys.chunks($crate::sql::IN_LIST_CHUNK) {
                    let sql = $crate::sql::in_list_sql($crate::sql::GROUPING_EPOCHS_IN, chunk.len(), 2, "");
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant.as_str());
                    for key in chunk {
                        query = query.bind(key.as_str());
                    }
                    for row in query.fetch_all(&self.pool).await? {
                        let epoch: i64 = row.try_get(1)?;
                        let epoch =
                            u64::try_from(epoch).map_err(|_| $crate::StoreError::invalid(format!("grouping epoch {epoch} is negative")))?;
                        epochs.insert(row.try_get(0)?, epoch);
                    }
                }
                Ok(epochs)
            }

            async fn incidents_with_keys(
                &self,
                tenant: &aluskort_core::TenantId,
                keys: &[String],
                from: chrono::DateTime<chrono::Utc>,
                to: chrono::DateTime<chrono::Utc>,
            ) -> $crate::StoreResult<Vec<std::sync::Arc<aluskort_core::Incident>>> {
                use sqlx::Row;
                let (from_text, to_text) = ($crate::model::time_text(from), $crate::model::time_text(to));
                // The candidates' revisions first; bodies only of those not held at that revision.
                let mut seen = std::collections::HashSet::new();
                let mut found: Vec<std::sync::Arc<aluskort_core::Incident>> = Vec::new();
                let mut stale: Vec<String> = Vec::new();
                for chunk in keys.chunks($crate::sql::IN_LIST_CHUNK) {
                    let sql = $crate::sql::in_list_sql(
                        $crate::sql::INCIDENT_REVISIONS_WITH_KEYS,
                        chunk.len(),
                        4,
                        $crate::sql::INCIDENT_REVISIONS_WITH_KEYS_TAIL,
                    );
                    let mut query =
                        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant.as_str()).bind(from_text.as_str()).bind(to_text.as_str());
                    for key in chunk {
                        query = query.bind(key.as_str());
                    }
                    for row in query.fetch_all(&self.pool).await? {
                        let id: String = row.try_get(0)?;
                        if !seen.insert(id.clone()) {
                            continue;
                        }
                        let revision: String = row.try_get(1)?;
                        match self.incident_cache.get(&id, &revision) {
                            Some(incident) => found.push(incident),
                            None => stale.push(id),
                        }
                    }
                }
                for chunk in stale.chunks($crate::sql::IN_LIST_CHUNK) {
                    let sql = $crate::sql::in_list_sql($crate::sql::INCIDENT_BODIES_IN, chunk.len(), 1, "");
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for id in chunk {
                        query = query.bind(id.as_str());
                    }
                    for row in query.fetch_all(&self.pool).await? {
                        let revision: String = row.try_get(1)?;
                        let body: String = row.try_get(2)?;
                        let incident = std::sync::Arc::new($crate::sql::decode_incident(&body)?);
                        self.incident_cache.put(revision, std::sync::Arc::clone(&incident));
                        // Written again between the two reads: still a candidate only if it still
                        // matches the lookup (its keys only grow).
                        if incident.merged_into.is_none() && incident.first_seen <= to && incident.last_seen >= from {
                            found.push(incident);
                        }
                    }
                }
                found.sort_by(|a, b| (a.first_seen, &a.incident_id).cmp(&(b.first_seen, &b.incident_id)));
                Ok(found)
            }

            async fn commit_work(
                &self,
                work: &$crate::WorkBatch,
                audit: &[aluskort_core::audit::AuditRecord],
            ) -> $crate::StoreResult<$crate::WorkReport> {
                self.commit_work_encoded(work, audit, &[]).await
            }

            async fn commit_work_encoded(
                &self,
                work: &$crate::WorkBatch,
                audit: &[aluskort_core::audit::AuditRecord],
                texts: &[$crate::AuditTexts],
            ) -> $crate::StoreResult<$crate::WorkReport> {
                // An investigation overtaken meanwhile (a reassessment an analyst changed first)
                // rolls the unit back, and it is planned again without that write: each pass
                // leaves out one more, so this ends.
                let mut skipped = Vec::new();
                loop {
                    let now = $crate::model::time_text(chrono::Utc::now());
                    let steps = $crate::unit::plan_work(Self::PLACEHOLDERS, work, audit, texts, &skipped, &now)?;
                    // A failed unit is rolled back whole: nothing of the batch stays.
                    match self.execute_unit(&steps).await {
                        Ok(()) => {
                            // The incidents just written, at the revision they were written at: the
                            // next grouping lookup finds them here instead of reading and decoding
                            // the bodies again (an incident an alert joins is the one the next
                            // alert of its host joins; re-decoding a large one took 5–10 ms).
                            for incident in work.incidents.iter().filter(|incident| incident.merged_into.is_none()) {
                                self.incident_cache.put(now.clone(), std::sync::Arc::new(incident.clone()));
                            }
                            return Ok($crate::WorkReport { skipped });
                        }
                        Err($crate::unit::Failure::Skip(id)) if !skipped.contains(&id) => skipped.push(id),
                        Err(failure) => return Err(failure.into_store()),
                    }
                }
            }

            async fn record_dead_letter(&self, letter: &$crate::DeadLetter) -> $crate::StoreResult<()> {
                sqlx::query($crate::sql::INSERT_DEAD_LETTER)
                    .bind(&letter.id)
                    .bind(&letter.topic)
                    .bind(&letter.origin)
                    .bind(&letter.error)
                    .bind(letter.original.to_string())
                    .bind($crate::model::time_text(letter.recorded_at))
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn dead_letters(&self, limit: u32) -> $crate::StoreResult<Vec<$crate::DeadLetter>> {
                use sqlx::Row;
                let rows = sqlx::query($crate::sql::SELECT_DEAD_LETTERS).bind(i64::from(limit)).fetch_all(&self.pool).await?;
                rows.iter()
                    .map(|row| {
                        $crate::sql::dead_letter_from_columns(
                            row.try_get(0)?,
                            row.try_get(1)?,
                            row.try_get(2)?,
                            row.try_get(3)?,
                            row.try_get(4)?,
                            row.try_get(5)?,
                        )
                    })
                    .collect()
            }

            async fn check_connectivity(&self) -> anyhow::Result<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::AuditStore for $store {
            async fn audit_head(&self, tenant: &str) -> $crate::StoreResult<Option<(u64, String)>> {
                use sqlx::Row;
                let row = sqlx::query($crate::sql::AUDIT_HEAD).bind(tenant).fetch_optional(&self.pool).await?;
                match row {
                    Some(row) => Ok(Some(($crate::sql::u64_of(row.try_get(0)?, "sequence_number")?, row.try_get(1)?))),
                    None => Ok(None),
                }
            }

            async fn append_audit(&self, record: &aluskort_core::audit::AuditRecord) -> $crate::StoreResult<()> {
                let mut steps = Vec::new();
                $crate::unit::plan_audit(
                    &mut steps,
                    Self::PLACEHOLDERS,
                    std::slice::from_ref(record),
                    &[],
                    &$crate::model::time_text(chrono::Utc::now()),
                )?;
                self.commit_steps(&steps).await
            }

            async fn audit_records(
                &self,
                tenant: &str,
                from_sequence: u64,
                limit: u32,
            ) -> $crate::StoreResult<Vec<aluskort_core::audit::AuditRecord>> {
                let rows = sqlx::query($crate::sql::SELECT_AUDIT)
                    .bind(tenant)
                    .bind($crate::sql::i64_of(from_sequence, "sequence_number")?)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(Self::audit_row).collect()
            }

            async fn audit_records_for_investigation(
                &self,
                tenant: &str,
                investigation_id: &str,
            ) -> $crate::StoreResult<Vec<aluskort_core::audit::AuditRecord>> {
                let rows =
                    sqlx::query($crate::sql::AUDIT_OF_INVESTIGATION).bind(tenant).bind(investigation_id).fetch_all(&self.pool).await?;
                rows.iter().map(Self::audit_row).collect()
            }

            async fn audit_events(&self, filter: &$crate::AuditFilter) -> $crate::StoreResult<Vec<aluskort_core::audit::AuditRecord>> {
                let from = match filter.after_sequence {
                    Some(last) => last.saturating_add(1),
                    None => 0,
                };
                let rows = sqlx::query($crate::sql::AUDIT_EVENTS)
                    .bind(&filter.tenant)
                    .bind(filter.investigation_id.as_deref())
                    // Audit records carry their event time with milliseconds (`audit_time`).
                    .bind(filter.since.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
                    .bind(filter.until.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
                    .bind($crate::sql::i64_of(from, "sequence_number")?)
                    .bind(i64::from(filter.limit.clamp(1, 1000)))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(Self::audit_row).collect()
            }

            async fn audit_tenants(&self) -> $crate::StoreResult<Vec<String>> {
                Ok(sqlx::query_scalar($crate::sql::AUDIT_TENANTS).fetch_all(&self.pool).await?)
            }
        }

        #[async_trait::async_trait]
        impl $crate::ThreatIntelStore for $store {
            async fn upsert_indicators(&self, indicators: &[$crate::TiIndicator]) -> $crate::StoreResult<u64> {
                let mut transaction = self.writer.begin().await?;
                let now = $crate::model::time_text(chrono::Utc::now());
                for indicator in indicators {
                    sqlx::query($crate::sql::UPSERT_TI)
                        .bind(&indicator.tenant_id)
                        .bind(&indicator.indicator)
                        .bind(i64::from(indicator.confidence.min(100)))
                        .bind(&indicator.source)
                        .bind(&indicator.description)
                        .bind($crate::model::time_text(indicator.expires_at))
                        .bind(&now)
                        .execute(&mut *transaction)
                        .await?;
                }
                transaction.commit().await?;
                Ok(indicators.len() as u64)
            }

            async fn match_indicators(
                &self,
                tenant: &str,
                indicators: &[String],
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::StoreResult<Vec<$crate::TiIndicator>> {
                use sqlx::Row;
                let now = $crate::model::time_text(now);
                let mut found = Vec::new();
                for chunk in indicators.chunks($crate::sql::MATCH_TI_CHUNK) {
                    let sql = $crate::sql::match_ti_sql(chunk.len());
                    // Audited: `sql` is a constant plus `$n` placeholders generated from a count.
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant).bind(&now);
                    for indicator in chunk {
                        query = query.bind(indicator);
                    }
                    let rows = query.fetch_all(&self.pool).await?;
                    for row in &rows {
                        let confidence: i64 = row.try_get(2)?;
                        let expires_at: String = row.try_get(5)?;
                        found.push($crate::TiIndicator {
                            tenant_id: row.try_get(0)?,
                            indicator: row.try_get(1)?,
                            confidence: u8::try_from(confidence.clamp(0, 100)).unwrap_or(100),
                            source: row.try_get(3)?,
                            description: row.try_get(4)?,
                            expires_at: $crate::model::parse_time_text(&expires_at)?,
                        });
                    }
                }
                Ok(found)
            }
        }

        #[async_trait::async_trait]
        impl $crate::ContextStore for $store {
            async fn upsert_fp_pattern(&self, pattern: &$crate::FpPattern) -> $crate::StoreResult<()> {
                use $crate::model::time_text;
                pattern.validate()?;
                sqlx::query($crate::sql::UPSERT_FP_PATTERN)
                    .bind(pattern.pattern_id.as_str())
                    .bind(pattern.tenant.as_deref())
                    .bind(pattern.name.as_str())
                    .bind(pattern.alert_name_regex.as_deref())
                    .bind(serde_json::to_string(&pattern.entity_patterns)?)
                    .bind(pattern.confidence_threshold)
                    .bind(pattern.status.as_str())
                    .bind(serde_json::to_string(&pattern.approved_by)?)
                    .bind(pattern.approval_date.map(time_text))
                    .bind(pattern.expires_at.map(time_text))
                    .bind(time_text(pattern.created_at))
                    .bind(pattern.reason.as_str())
                    .bind(time_text(chrono::Utc::now()))
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn replace_fp_pattern(&self, previous: &$crate::FpPattern, next: &$crate::FpPattern) -> $crate::StoreResult<()> {
                use $crate::model::time_text;
                next.validate()?;
                if previous.pattern_id != next.pattern_id {
                    return Err($crate::StoreError::invalid("replace_fp_pattern: the pattern ids differ"));
                }
                let result = sqlx::query($crate::sql::REPLACE_FP_PATTERN)
                    .bind(next.pattern_id.as_str())
                    .bind(next.tenant.as_deref())
                    .bind(next.name.as_str())
                    .bind(next.alert_name_regex.as_deref())
                    .bind(serde_json::to_string(&next.entity_patterns)?)
                    .bind(next.confidence_threshold)
                    .bind(next.status.as_str())
                    .bind(serde_json::to_string(&next.approved_by)?)
                    .bind(next.approval_date.map(time_text))
                    .bind(next.expires_at.map(time_text))
                    .bind(next.reason.as_str())
                    .bind(time_text(chrono::Utc::now()))
                    .bind(previous.status.as_str())
                    .bind(serde_json::to_string(&previous.approved_by)?)
                    .bind(previous.expires_at.map(time_text))
                    .execute(&self.writer)
                    .await?;
                if result.rows_affected() == 0 {
                    return Err($crate::StoreError::new(
                        $crate::StoreErrorKind::Conflict,
                        anyhow::anyhow!("fp pattern {} changed meanwhile; reload it and try again", next.pattern_id),
                    ));
                }
                Ok(())
            }

            async fn fp_pattern(&self, pattern_id: &str) -> $crate::StoreResult<Option<$crate::FpPattern>> {
                let row: Option<$crate::sql::FpPatternRow> =
                    sqlx::query_as($crate::sql::SELECT_FP_PATTERN).bind(pattern_id).fetch_optional(&self.pool).await?;
                row.map($crate::sql::fp_pattern_from_row).transpose()
            }

            async fn matchable_fp_patterns(
                &self,
                tenant: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::StoreResult<Vec<$crate::FpPattern>> {
                let rows: Vec<$crate::sql::FpPatternRow> = sqlx::query_as($crate::sql::MATCHABLE_FP_PATTERNS)
                    .bind(tenant)
                    .bind($crate::model::time_text(now))
                    .fetch_all(&self.pool)
                    .await?;
                let mut patterns = rows.into_iter().map($crate::sql::fp_pattern_from_row).collect::<Result<Vec<_>, _>>()?;
                // Byte order whatever the database's collation, so both stores agree.
                patterns.sort_by(|a, b| a.pattern_id.cmp(&b.pattern_id));
                Ok(patterns)
            }

            async fn fp_patterns(
                &self,
                tenant: Option<&str>,
                status: Option<$crate::FpStatus>,
            ) -> $crate::StoreResult<Vec<$crate::FpPattern>> {
                let tenant = tenant.unwrap_or_default();
                let status = status.map_or("", $crate::FpStatus::as_str);
                let rows: Vec<$crate::sql::FpPatternRow> = sqlx::query_as($crate::sql::LIST_FP_PATTERNS)
                    .bind(tenant)
                    .bind(tenant)
                    .bind(status)
                    .bind(status)
                    .fetch_all(&self.pool)
                    .await?;
                let mut patterns = rows.into_iter().map($crate::sql::fp_pattern_from_row).collect::<Result<Vec<_>, _>>()?;
                // Byte order whatever the database's collation, so both stores agree.
                patterns.sort_by(|a, b| a.pattern_id.cmp(&b.pattern_id));
                Ok(patterns)
            }

            async fn upsert_user_risk(&self, rows: &[$crate::UserRisk]) -> $crate::StoreResult<u64> {
                use $crate::model::{time_text, user_key};

                for row in rows {
                    row.validate()?;
                }
                let unique = $crate::sql::last_of_each(rows, |row| (row.tenant.as_str(), user_key(&row.user)));
                let now = time_text(chrono::Utc::now());
                let mut transaction = self.writer.begin().await?;
                for chunk in $crate::sql::insert_batches(&unique, 6) {
                    let sql = Self::insert_sql($crate::sql::UPSERT_USER_RISK_ROWS, 6, chunk.len(), $crate::sql::UPSERT_USER_RISK_ROWS_TAIL);
                    // Audited: constant SQL plus placeholders; every value is bound.
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for row in chunk {
                        query = query
                            .bind(row.tenant.as_str())
                            .bind(user_key(&row.user))
                            .bind(row.priority)
                            .bind(time_text(row.observed_at))
                            .bind(row.detail.to_string())
                            .bind(now.clone());
                    }
                    query.execute(&mut *transaction).await?;
                }
                transaction.commit().await?;
                Ok(unique.len() as u64)
            }

            async fn user_risk(&self, tenant: &str, users: &[String]) -> $crate::StoreResult<Vec<$crate::UserRisk>> {
                let mut keys: Vec<String> = users.iter().map(|user| $crate::model::user_key(user)).collect();
                keys.sort_unstable();
                keys.dedup();
                let mut found = Vec::new();
                for chunk in keys.chunks($crate::sql::IN_LIST_CHUNK) {
                    let sql = $crate::sql::in_list_sql($crate::sql::SELECT_USER_RISK, chunk.len(), 2, "");
                    // Audited: constant SQL plus numbered placeholders; every value is bound.
                    let mut query = sqlx::query_as::<_, $crate::sql::UserRiskRow>(sqlx::AssertSqlSafe(sql)).bind(tenant);
                    for key in chunk {
                        query = query.bind(key.as_str());
                    }
                    for row in query.fetch_all(&self.pool).await? {
                        found.push($crate::sql::user_risk_from_row(row)?);
                    }
                }
                found.sort_by(|a, b| a.user.cmp(&b.user));
                Ok(found)
            }

            async fn upsert_exposures(&self, exposures: &[$crate::Exposure]) -> $crate::StoreResult<u64> {
                use $crate::model::time_text;

                for exposure in exposures {
                    exposure.validate()?;
                }
                let unique = $crate::sql::last_of_each(exposures, |exposure| (exposure.tenant.as_str(), exposure.exposure_id.as_str()));
                let now = time_text(chrono::Utc::now());
                let mut transaction = self.writer.begin().await?;
                for chunk in $crate::sql::insert_batches(&unique, 10) {
                    let sql = Self::insert_sql($crate::sql::UPSERT_EXPOSURE_ROWS, 10, chunk.len(), $crate::sql::UPSERT_EXPOSURE_ROWS_TAIL);
                    // Audited: constant SQL plus placeholders; every value is bound.
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for exposure in chunk {
                        query = query
                            .bind(exposure.tenant.as_str())
                            .bind(exposure.exposure_id.as_str())
                            .bind(exposure.asset_id.as_str())
                            .bind($crate::sql::asset_key(&exposure.asset_id))
                            .bind(exposure.asset_zone.as_str())
                            .bind(exposure.status.as_str())
                            .bind(exposure.ctem_score)
                            .bind(exposure.title.as_str())
                            .bind(time_text(exposure.updated_at))
                            .bind(now.clone());
                    }
                    query.execute(&mut *transaction).await?;
                }
                transaction.commit().await?;
                Ok(unique.len() as u64)
            }

            async fn exposures_for_assets(&self, tenant: &str, assets: &[(String, String)]) -> $crate::StoreResult<Vec<$crate::Exposure>> {
                let mut pairs: Vec<(String, &str)> =
                    assets.iter().map(|(asset_id, zone)| ($crate::sql::asset_key(asset_id), zone.as_str())).collect();
                pairs.sort_unstable();
                pairs.dedup();
                let mut found = Vec::new();
                for chunk in $crate::sql::batches(&pairs, 2) {
                    let sql = $crate::sql::values_sql(
                        $crate::sql::EXPOSURES_FOR_ASSETS,
                        2,
                        chunk.len(),
                        2,
                        $crate::sql::EXPOSURES_FOR_ASSETS_TAIL,
                    );
                    // Audited: constant SQL plus numbered placeholders; every value is bound.
                    let mut query = sqlx::query_as::<_, $crate::sql::ExposureRow>(sqlx::AssertSqlSafe(sql)).bind(tenant);
                    for (key, zone) in chunk {
                        query = query.bind(key.as_str()).bind(*zone);
                    }
                    for row in query.fetch_all(&self.pool).await? {
                        found.push($crate::sql::exposure_from_row(row)?);
                    }
                }
                // The pairs are unique and an exposure has one (asset, zone): each is found once.
                found.sort_by(|a, b| b.ctem_score.total_cmp(&a.ctem_score).then_with(|| a.exposure_id.cmp(&b.exposure_id)));
                Ok(found)
            }
        }

        #[async_trait::async_trait]
        impl $crate::UsageStore for $store {
            async fn record_llm_call(&self, call: &$crate::LlmCall) -> $crate::StoreResult<()> {
                use $crate::sql::i64_of;
                sqlx::query($crate::sql::INSERT_LLM_CALL)
                    .bind(&call.call_id)
                    .bind($crate::model::time_text(call.called_at))
                    .bind(&call.tenant_id)
                    .bind(&call.task)
                    .bind(&call.tier)
                    .bind(&call.provider)
                    .bind(&call.model)
                    .bind(&call.outcome)
                    .bind(i64_of(call.input_tokens, "input_tokens")?)
                    .bind(i64_of(call.output_tokens, "output_tokens")?)
                    .bind(i64_of(call.cache_read_tokens, "cache_read_tokens")?)
                    .bind(i64_of(call.cache_write_tokens, "cache_write_tokens")?)
                    .bind(i64_of(call.cost_micros, "cost_micros")?)
                    .bind(i64_of(call.latency_ms, "latency_ms")?)
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn llm_cost_since(&self, since: chrono::DateTime<chrono::Utc>) -> $crate::StoreResult<u64> {
                let total: i64 =
                    sqlx::query_scalar($crate::sql::LLM_COST_SINCE).bind($crate::model::time_text(since)).fetch_one(&self.pool).await?;
                $crate::sql::u64_of(total, "llm cost")
            }

            async fn llm_calls_since(&self, tenant: &str, since: chrono::DateTime<chrono::Utc>) -> $crate::StoreResult<u64> {
                let count: i64 = sqlx::query_scalar($crate::sql::LLM_CALLS_SINCE)
                    .bind(tenant)
                    .bind($crate::model::time_text(since))
                    .fetch_one(&self.pool)
                    .await?;
                $crate::sql::u64_of(count, "llm call count")
            }

            async fn llm_usage(
                &self,
                from: chrono::DateTime<chrono::Utc>,
                to: chrono::DateTime<chrono::Utc>,
            ) -> $crate::StoreResult<Vec<$crate::LlmUsageRow>> {
                use sqlx::Row;
                use $crate::sql::u64_of;
                let rows = sqlx::query($crate::sql::LLM_USAGE)
                    .bind($crate::model::time_text(from))
                    .bind($crate::model::time_text(to))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|row| {
                        let number = |index: usize, name: &str| -> $crate::StoreResult<u64> { u64_of(row.try_get::<i64, _>(index)?, name) };
                        Ok($crate::LlmUsageRow {
                            day: row.try_get(0)?,
                            tier: row.try_get(1)?,
                            task: row.try_get(2)?,
                            calls: number(3, "calls")?,
                            failures: number(4, "failures")?,
                            input_tokens: number(5, "input_tokens")?,
                            output_tokens: number(6, "output_tokens")?,
                            cache_read_tokens: number(7, "cache_read_tokens")?,
                            cache_write_tokens: number(8, "cache_write_tokens")?,
                            cost_micros: number(9, "cost_micros")?,
                            latency_ms: number(10, "latency_ms")?,
                        })
                    })
                    .collect()
            }
        }
    };
}

pub(crate) use impl_stores;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_moves_are_one_per_tenant_in_order_and_need_linked_records() {
        let record = |tenant: &str, sequence: u64, previous: &str, hash: &str| {
            let mut record = crate::conformance::sample_audit_record(tenant, sequence, previous.to_owned());
            record.record_hash = hash.to_owned();
            record
        };
        let records = vec![
            record("zeta", 4, "z3", "z4"),
            record("acme", 0, "genesis", "a0"),
            record("zeta", 5, "z4", "z5"),
            record("acme", 1, "a0", "a1"),
        ];
        let moves = head_moves(&records).expect("linked");
        assert_eq!(
            moves,
            vec![HeadMove { tenant: "acme", from: None, to: (1, "a1") }, HeadMove { tenant: "zeta", from: Some((3, "z3")), to: (5, "z5") },]
        );
        let unlinked = vec![record("acme", 0, "genesis", "a0"), record("acme", 1, "other", "a1")];
        assert_eq!(head_moves(&unlinked).expect_err("unlinked").kind, crate::StoreErrorKind::Invalid);
        let gap = vec![record("acme", 0, "genesis", "a0"), record("acme", 2, "a0", "a2")];
        assert!(head_moves(&gap).expect_err("gap").to_string().contains("#2 follows #0"));
    }

    #[test]
    fn chunks_cover_every_row_with_few_distinct_sizes() {
        for (total, columns) in [(0, 5), (1, 20), (63, 20), (1_300, 8), (4_097, 1), (777, 9)] {
            let lengths = chunk_lengths(total, columns);
            assert_eq!(lengths.iter().sum::<usize>(), total, "{total} rows of {columns}");
            assert!(lengths.iter().all(|length| length.is_power_of_two() && length * columns <= MAX_BATCH_PARAMS.max(columns)));
            let items: Vec<usize> = (0..total).collect();
            let rejoined: Vec<usize> = batches(&items, columns).flatten().copied().collect();
            assert_eq!(rejoined, items);
        }
    }

    #[test]
    fn sqlite_units_insert_in_short_statements_and_postgres_in_long_ones() {
        for (total, columns) in [(0, 20), (1, 20), (31, 20), (2_560, 20), (257, 8), (5_000, 1)] {
            let sqlite = unit_chunk_lengths(Placeholders::Anonymous, total, columns);
            assert_eq!(sqlite.iter().sum::<usize>(), total, "{total} rows of {columns}");
            assert!(sqlite.iter().all(|length| length.is_power_of_two() && *length <= UNIT_INSERT_ROWS), "{sqlite:?}");
            let distinct: std::collections::BTreeSet<_> = sqlite.iter().collect();
            assert!(distinct.len() <= UNIT_INSERT_ROWS.trailing_zeros() as usize + 1, "{distinct:?}");
            assert_eq!(unit_chunk_lengths(Placeholders::Numbered, total, columns), insert_chunk_lengths(total, columns));
        }
        // 2,560 audit rows: 80 statements of 32 rows (PostgreSQL: 20 of 128).
        assert_eq!(unit_chunk_lengths(Placeholders::Anonymous, 2_560, 20), vec![32; 80]);
        assert_eq!(insert_chunk_lengths(2_560, 20), vec![128; 20]);
    }

    #[test]
    fn generated_sql_has_only_numbered_placeholders() {
        assert_eq!(
            values_sql("INSERT INTO t (a, b) VALUES", 2, 2, 1, " ON CONFLICT DO NOTHING"),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) ON CONFLICT DO NOTHING"
        );
        assert_eq!(in_list_sql("WHERE x IN ", 3, 4, ";"), "WHERE x IN ($4, $5, $6);");
        assert_eq!(
            insert_rows_sql(Placeholders::Anonymous, "INSERT INTO t (a, b) VALUES", 2, 3, " ON CONFLICT DO NOTHING"),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?) ON CONFLICT DO NOTHING"
        );
        assert_eq!(
            insert_rows_sql(Placeholders::Numbered, "INSERT INTO t (a, b) VALUES", 2, 2, ""),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)"
        );
    }
}
