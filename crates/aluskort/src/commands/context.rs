//! `aluskort context ...`: what enrichment and the FP check read besides threat intelligence.
//!
//! - `import-ueba FILE [--tenant T]`: UEBA user risk (FR-ENR-005), JSON lines
//!   `{"user", "priority" (0..=10), "observed_at" (RFC 3339), "tenant"?, "detail"? (object)}`.
//! - `import-ctem FILE [--tenant T]`: CTEM exposures (FR-ENR-006), JSON lines `{"exposure_id",
//!   "asset_id", "asset_zone", "status", "ctem_score", "title", "updated_at" (RFC 3339), "tenant"?}`.
//! - `add-fp FILE`: false-positive patterns (FR-RAG-005), JSON lines `{"pattern_id", "tenant"?,
//!   "name", "alert_name_regex"?, "entity_patterns": [{"entity_type", "pattern"}],
//!   "confidence_threshold"? (0.90), "status"? (pending_review), "approved_by"? ([]),
//!   "approval_date"?, "expires_at"?, "reason"}`. A pattern without a tenant applies to every
//!   tenant. Every regex and CIDR is compiled as the matcher will; an approved or active pattern
//!   needs 2 distinct approvers and an approval date (NFR-CMP-003) and expires 90 days after
//!   approval unless it says otherwise.
//! - `list-fp [--tenant T] [--json]`: the patterns that may close the tenant's alerts now.
//!
//! An import reads the whole file first and names every bad line (`FILE:LINE: field: reason`);
//! when there is one, nothing is written and the exit status is 2. A line's tenant wins over
//! `--tenant`, which wins over the default tenant (`default`). Unknown fields are refused, so a
//! misspelt one is not silently dropped.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aluskort_core::TenantId;
use aluskort_ingest::reader::kind_of;
use aluskort_knowledge::fp::FpMatcher;
use aluskort_store::model::DEFAULT_FP_CONFIDENCE_THRESHOLD;
use aluskort_store::{EntityPattern, Exposure, FpPattern, FpStatus, StoreError, UserRisk};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};

use crate::commands::read_input;
use crate::wiring::{Backends, load_config};

/// An approved pattern without `expires_at` expires this long after its approval (REQUIREMENTS
/// "FP governance": expiry +90 d).
pub fn fp_default_lifetime() -> Duration {
    Duration::days(90)
}

/// Distinct approvers an approved or active pattern needs (REQUIREMENTS "2 distinct approvers
/// for FP patterns").
pub const FP_MIN_APPROVERS: usize = 2;

/// Clock skew tolerated on times that must not be in the future.
fn skew() -> Duration {
    Duration::minutes(5)
}

/// CTEM remediation statuses (REQUIREMENTS §3.2), stored in this spelling.
const CTEM_STATUSES: &[&str] = &["Open", "Assigned", "InProgress", "FixDeployed", "Verified", "Closed"];

/// The fields of one input line, read one at a time; each problem is recorded against its field
/// and reading goes on, so a line reports all of its problems at once.
struct Fields<'a> {
    object: &'a Map<String, Value>,
    /// `(field, reason)`; the field is empty for the line as a whole.
    problems: Vec<(String, String)>,
    /// Names the record in every message of the line (`pattern "fp-1"`).
    label: Option<String>,
    now: DateTime<Utc>,
}

impl<'a> Fields<'a> {
    fn new(object: &'a Map<String, Value>, known: &[&str], now: DateTime<Utc>) -> Self {
        let mut fields = Fields { object, problems: Vec::new(), label: None, now };
        for key in object.keys().filter(|key| !known.contains(&key.as_str())) {
            fields.problem(key, format!("unknown field (expected {})", known.join(", ")));
        }
        fields
    }

    fn problem(&mut self, field: &str, reason: impl Into<String>) {
        self.problems.push((field.to_owned(), reason.into()));
    }

    /// The field's value; `null` counts as absent.
    fn get(&self, field: &str) -> Option<&'a Value> {
        self.object.get(field).filter(|value| !value.is_null())
    }

    fn required(&mut self, field: &str) -> Option<&'a Value> {
        let value = self.get(field);
        if value.is_none() {
            self.problem(field, "missing");
        }
        value
    }

    fn text_of(&mut self, field: &str, value: &Value, allow_empty: bool) -> Option<String> {
        match value.as_str() {
            Some(text) if !allow_empty && text.trim().is_empty() => {
                self.problem(field, "must not be empty");
                None
            }
            Some(text) => Some(text.to_owned()),
            None => {
                self.problem(field, format!("must be a string, not {value}"));
                None
            }
        }
    }

    /// A required, non-blank string.
    fn string(&mut self, field: &str) -> Option<String> {
        let value = self.required(field)?;
        self.text_of(field, value, false)
    }

    /// A required string that may be empty.
    fn any_string(&mut self, field: &str) -> Option<String> {
        let value = self.required(field)?;
        self.text_of(field, value, true)
    }

    /// `Ok(None)` when absent, `Err(())` when present but not a non-blank string.
    fn optional_string(&mut self, field: &str) -> Result<Option<String>, ()> {
        match self.get(field) {
            None => Ok(None),
            Some(value) => self.text_of(field, value, false).map(Some).ok_or(()),
        }
    }

    fn number_of(&mut self, field: &str, value: &Value) -> Option<f64> {
        let number = value.as_f64().filter(|number| number.is_finite());
        if number.is_none() {
            self.problem(field, format!("must be a number, not {value}"));
        }
        number
    }

    fn number(&mut self, field: &str) -> Option<f64> {
        let value = self.required(field)?;
        self.number_of(field, value)
    }

    fn time_of(&mut self, field: &str, value: &Value) -> Option<DateTime<Utc>> {
        let Some(text) = value.as_str() else {
            self.problem(field, format!("must be an RFC 3339 time string (2025-01-31T12:00:00Z), not {value}"));
            return None;
        };
        match DateTime::parse_from_rfc3339(text.trim()) {
            Ok(time) => Some(time.with_timezone(&Utc)),
            Err(error) => {
                self.problem(field, format!("{text:?} is not an RFC 3339 time like 2025-01-31T12:00:00Z ({error})"));
                None
            }
        }
    }

    /// A time when the source computed something: it cannot be in the future, or stale data
    /// would pass as fresh.
    fn past_time(&mut self, field: &str, value: &Value) -> Option<DateTime<Utc>> {
        let time = self.time_of(field, value)?;
        if time > self.now + skew() {
            self.problem(field, format!("{} is in the future", time.to_rfc3339()));
            return None;
        }
        Some(time)
    }

    /// `Ok(None)` when absent, `Err(())` when present but invalid.
    fn optional_time(&mut self, field: &str, past: bool) -> Result<Option<DateTime<Utc>>, ()> {
        match self.get(field) {
            None => Ok(None),
            Some(value) if past => self.past_time(field, value).map(Some).ok_or(()),
            Some(value) => self.time_of(field, value).map(Some).ok_or(()),
        }
    }

    /// The line's tenant if it names a valid one, else `fallback`.
    fn tenant_or(&mut self, fallback: &str) -> String {
        match self.optional_string("tenant") {
            Ok(Some(tenant)) => match TenantId::parse(&tenant) {
                Ok(tenant) => tenant.as_str().to_owned(),
                Err(error) => {
                    self.problem("tenant", format!("{tenant:?} {error}"));
                    fallback.to_owned()
                }
            },
            Ok(None) | Err(()) => fallback.to_owned(),
        }
    }

    /// A row the store would refuse (its own `validate`), as a problem of the line; only asked
    /// when the line is otherwise clean, so a problem is not named twice.
    fn store_check(&mut self, validate: impl FnOnce() -> Result<(), StoreError>) {
        if !self.problems.is_empty() {
            return;
        }
        if let Err(error) = validate() {
            self.problem("", format!("{:#}", error.source));
        }
    }
}

/// One good line: its number and what it became.
struct Parsed<T> {
    line: usize,
    value: T,
}

/// Reads every non-blank line of `bytes` as a JSON object and hands it to `parse`. Returns the
/// good lines and one message per problem (`name:line: field: reason`).
fn parse_lines<T>(
    name: &str,
    bytes: &[u8],
    known: &[&str],
    now: DateTime<Utc>,
    mut parse: impl FnMut(&mut Fields) -> Option<T>,
) -> (Vec<Parsed<T>>, Vec<String>) {
    let mut good = Vec::new();
    let mut errors = Vec::new();
    for (index, line) in bytes.split(|byte| *byte == b'\n').enumerate() {
        let number = index + 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let object = match serde_json::from_slice::<Value>(line) {
            Ok(Value::Object(object)) => object,
            Ok(other) => {
                errors.push(format!("{name}:{number}: expected a JSON object, not {}", kind_of(&other)));
                continue;
            }
            Err(error) => {
                errors.push(format!("{name}:{number}: invalid JSON: {error}"));
                continue;
            }
        };
        let mut fields = Fields::new(&object, known, now);
        let value = parse(&mut fields);
        match value {
            Some(value) if fields.problems.is_empty() => good.push(Parsed { line: number, value }),
            _ => {
                if fields.problems.is_empty() {
                    fields.problem("", "rejected");
                }
                let at = match &fields.label {
                    Some(label) => format!("{number}: {label}"),
                    None => number.to_string(),
                };
                errors.extend(fields.problems.iter().map(|(field, reason)| problem_text(name, &at, field, reason)));
            }
        }
    }
    (good, errors)
}

/// `name:at: field: reason` on one line (a regex error spans several).
fn problem_text(name: &str, at: &str, field: &str, reason: &str) -> String {
    let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
    if field.is_empty() { format!("{name}:{at}: {reason}") } else { format!("{name}:{at}: {field}: {reason}") }
}

/// Prints every problem and the verdict; the exit status for a refused file.
fn refuse(command: &str, name: &str, errors: &[String]) -> ExitCode {
    for error in errors {
        eprintln!("error: {error}");
    }
    eprintln!("context {command}: {} problem(s) in {name}; nothing imported", errors.len());
    ExitCode::from(2)
}

/// `--tenant`, checked, or the default tenant.
fn fallback_tenant(tenant: Option<String>) -> anyhow::Result<String> {
    match tenant {
        Some(tenant) => TenantId::parse(&tenant)
            .map(|tenant| tenant.as_str().to_owned())
            .map_err(|error| anyhow::anyhow!("--tenant {tenant:?}: {error}")),
        None => Ok(TenantId::default_tenant().as_str().to_owned()),
    }
}

const UEBA_FIELDS: &[&str] = &["user", "priority", "observed_at", "tenant", "detail"];

fn user_risk(fields: &mut Fields, fallback: &str) -> Option<UserRisk> {
    let tenant = fields.tenant_or(fallback);
    let user = fields.string("user");
    let priority = fields.number("priority");
    if let Some(priority) = priority
        && !(0.0..=10.0).contains(&priority)
    {
        fields.problem("priority", format!("{priority} is not in 0..=10"));
    }
    let observed_at = fields.required("observed_at").and_then(|value| fields.past_time("observed_at", value));
    let detail = match fields.get("detail") {
        None => Some(Value::Object(Map::new())),
        Some(detail @ Value::Object(_)) => Some(detail.clone()),
        Some(other) => {
            fields.problem("detail", format!("must be an object, not {}", kind_of(other)));
            None
        }
    };
    let row = UserRisk { tenant, user: user?.trim().to_owned(), priority: priority?, observed_at: observed_at?, detail: detail? };
    fields.store_check(|| row.validate());
    Some(row)
}

const CTEM_FIELDS: &[&str] = &["exposure_id", "asset_id", "asset_zone", "status", "ctem_score", "title", "updated_at", "tenant"];

fn exposure(fields: &mut Fields, fallback: &str) -> Option<Exposure> {
    let tenant = fields.tenant_or(fallback);
    let exposure_id = fields.string("exposure_id");
    let asset_id = fields.string("asset_id");
    let asset_zone = fields.string("asset_zone");
    let status = fields.string("status").and_then(|status| {
        let known = CTEM_STATUSES.iter().find(|known| known.eq_ignore_ascii_case(status.trim()));
        if known.is_none() {
            fields.problem("status", format!("unknown status {status:?} (expected one of {})", CTEM_STATUSES.join(", ")));
        }
        known.map(|known| (*known).to_owned())
    });
    let ctem_score = fields.number("ctem_score");
    if let Some(score) = ctem_score
        && score < 0.0
    {
        fields.problem("ctem_score", format!("{score} is negative"));
    }
    let title = fields.any_string("title");
    let updated_at = fields.required("updated_at").and_then(|value| fields.past_time("updated_at", value));
    let row = Exposure {
        tenant,
        exposure_id: exposure_id?.trim().to_owned(),
        asset_id: asset_id?.trim().to_owned(),
        // Compared exactly by the store: kept as written.
        asset_zone: asset_zone?,
        status: status?,
        ctem_score: ctem_score?,
        title: title?,
        updated_at: updated_at?,
    };
    fields.store_check(|| row.validate());
    Some(row)
}

const FP_FIELDS: &[&str] = &[
    "pattern_id",
    "tenant",
    "name",
    "alert_name_regex",
    "entity_patterns",
    "confidence_threshold",
    "status",
    "approved_by",
    "approval_date",
    "expires_at",
    "reason",
];

fn entity_patterns(fields: &mut Fields) -> Option<Vec<EntityPattern>> {
    let value = fields.required("entity_patterns")?;
    let Some(items) = value.as_array() else {
        fields.problem("entity_patterns", format!("must be an array of {{\"entity_type\", \"pattern\"}}, not {}", kind_of(value)));
        return None;
    };
    let mut patterns = Vec::with_capacity(items.len());
    let mut ok = true;
    for (index, item) in items.iter().enumerate() {
        let field = format!("entity_patterns[{index}]");
        let Some(object) = item.as_object() else {
            fields.problem(&field, format!("must be an object {{\"entity_type\", \"pattern\"}}, not {}", kind_of(item)));
            ok = false;
            continue;
        };
        let mut inner = Fields::new(object, &["entity_type", "pattern"], fields.now);
        let entity_type = inner.string("entity_type");
        let pattern = inner.string("pattern");
        for (inner_field, reason) in inner.problems {
            fields.problem(&format!("{field}.{inner_field}"), reason);
            ok = false;
        }
        if let (Some(entity_type), Some(pattern)) = (entity_type, pattern) {
            patterns.push(EntityPattern { entity_type: entity_type.trim().to_ascii_lowercase(), pattern });
        }
    }
    ok.then_some(patterns)
}

fn approvers(fields: &mut Fields) -> Option<Vec<String>> {
    let Some(value) = fields.get("approved_by") else {
        return Some(Vec::new());
    };
    let Some(items) = value.as_array() else {
        fields.problem("approved_by", format!("must be an array of names, not {}", kind_of(value)));
        return None;
    };
    let mut names = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        match item.as_str().map(str::trim) {
            Some(name) if !name.is_empty() => names.push(name.to_owned()),
            _ => fields.problem(&format!("approved_by[{index}]"), format!("must be a non-empty name, not {item}")),
        }
    }
    (names.len() == items.len()).then_some(names)
}

/// Approvers counted once each, ignoring case and surrounding space.
fn distinct_approvers(names: &[String]) -> usize {
    names.iter().map(|name| name.trim().to_lowercase()).collect::<BTreeSet<_>>().len()
}

fn fp_pattern(fields: &mut Fields) -> Option<FpPattern> {
    let pattern_id = fields.string("pattern_id").map(|id| id.trim().to_owned());
    fields.label = pattern_id.as_ref().map(|id| format!("pattern {id:?}"));
    let tenant = match fields.optional_string("tenant") {
        Ok(Some(tenant)) => match TenantId::parse(&tenant) {
            Ok(tenant) => Some(Some(tenant.as_str().to_owned())),
            Err(error) => {
                fields.problem("tenant", format!("{tenant:?} {error}"));
                None
            }
        },
        Ok(None) => Some(None),
        Err(()) => None,
    };
    let name = fields.string("name");
    let alert_name_regex = fields.optional_string("alert_name_regex");
    let entity_patterns = entity_patterns(fields);
    // Compiled as the matcher will, whatever the status, so a pattern approved later cannot fail
    // then: an invalid regex or CIDR, or nothing to match on.
    if let (Ok(alert_name_regex), Some(entity_patterns)) = (&alert_name_regex, &entity_patterns) {
        let probe = FpPattern {
            pattern_id: String::new(),
            tenant: None,
            name: String::new(),
            alert_name_regex: alert_name_regex.clone(),
            entity_patterns: entity_patterns.clone(),
            confidence_threshold: DEFAULT_FP_CONFIDENCE_THRESHOLD,
            status: FpStatus::Approved,
            approved_by: Vec::new(),
            approval_date: None,
            expires_at: None,
            created_at: fields.now,
            reason: String::new(),
        };
        for (_, reason) in FpMatcher::compile(&[probe]).1 {
            fields.problem("", reason);
        }
    }
    let confidence_threshold = match fields.get("confidence_threshold") {
        None => Some(DEFAULT_FP_CONFIDENCE_THRESHOLD),
        Some(value) => fields.number_of("confidence_threshold", value).and_then(|threshold| {
            if threshold > 0.0 && threshold <= 1.0 {
                Some(threshold)
            } else {
                fields.problem("confidence_threshold", format!("{threshold} is not in (0, 1]"));
                None
            }
        }),
    };
    let status = match fields.optional_string("status") {
        Ok(None) => Some(FpStatus::PendingReview),
        Ok(Some(text)) => {
            let status = FpStatus::parse(text.trim());
            if status.is_none() {
                let known: Vec<&str> = FpStatus::ALL.iter().map(|status| status.as_str()).collect();
                fields.problem("status", format!("unknown status {text:?} (expected one of {})", known.join(", ")));
            }
            status
        }
        Err(()) => None,
    };
    let approved_by = approvers(fields);
    let approval_date = fields.optional_time("approval_date", true);
    let expires_at = fields.optional_time("expires_at", false);
    let reason = fields.string("reason");

    let (Some(status), Some(approved_by), Ok(approval_date), Ok(mut expires_at)) = (status, approved_by, approval_date, expires_at) else {
        return None;
    };
    if let (None, Some(approved)) = (expires_at, approval_date) {
        expires_at = Some(approved + fp_default_lifetime());
    }
    if status.is_matchable() {
        // NFR-CMP-003: an automated closure traces back to two people and a date.
        let distinct = distinct_approvers(&approved_by);
        if distinct < FP_MIN_APPROVERS {
            fields.problem(
                "approved_by",
                format!("status {} needs {FP_MIN_APPROVERS} distinct approvers (NFR-CMP-003), found {distinct}", status.as_str()),
            );
        }
        if approval_date.is_none() {
            fields.problem("approval_date", format!("required for status {}", status.as_str()));
        }
        if let Some(expires) = expires_at
            && expires <= fields.now
        {
            fields.problem(
                "expires_at",
                format!("{} has passed (approval_date + 90 days when not given): the pattern would never match", expires.to_rfc3339()),
            );
        }
    }
    if let (Some(approved), Some(expires)) = (approval_date, expires_at)
        && expires <= approved
    {
        fields.problem("expires_at", format!("{} is not after approval_date {}", expires.to_rfc3339(), approved.to_rfc3339()));
    }
    let pattern = FpPattern {
        pattern_id: pattern_id?,
        tenant: tenant?,
        name: name?,
        alert_name_regex: alert_name_regex.ok()?,
        entity_patterns: entity_patterns?,
        confidence_threshold: confidence_threshold?,
        status,
        approved_by,
        approval_date,
        expires_at,
        created_at: fields.now,
        reason: reason?,
    };
    fields.store_check(|| pattern.validate());
    Some(pattern)
}

fn tenant_count<'a>(tenants: impl Iterator<Item = &'a str>) -> usize {
    tenants.collect::<BTreeSet<_>>().len()
}

/// One of the row imports (`import-ueba`, `import-ctem`): its command name, known fields, and
/// how its rows are named in the summary.
struct RowImport<T> {
    command: &'static str,
    known: &'static [&'static str],
    /// "user risk row(s)", "exposure(s)".
    rows: &'static str,
    /// What a repeated key is: "user(s)", "exposure id(s)".
    repeated: &'static str,
    tenant: fn(&T) -> &str,
}

/// Reads and checks the whole file, refuses it with every problem if any line is bad, else
/// writes every row with `write` and prints the counts.
async fn import_rows<T>(
    path: Option<&Path>,
    data_dir: Option<PathBuf>,
    env: &HashMap<String, String>,
    file: &Path,
    import: RowImport<T>,
    parse: impl FnMut(&mut Fields) -> Option<T>,
    write: impl AsyncFnOnce(&dyn aluskort_store::ContextStore, &[T]) -> aluskort_store::StoreResult<u64>,
) -> anyhow::Result<ExitCode> {
    let (name, bytes) = read_input(file)?;
    let (good, errors) = parse_lines(&name, &bytes, import.known, Utc::now(), parse);
    if !errors.is_empty() {
        return Ok(refuse(import.command, &name, &errors));
    }
    let rows: Vec<T> = good.into_iter().map(|parsed| parsed.value).collect();
    let config = load_config(path, data_dir, env)?;
    let backends = Backends::open(&config).await?;
    let written = if rows.is_empty() { Ok(0) } else { write(backends.context.as_ref(), &rows).await };
    backends.close().await;
    let written = written?;
    let tenants = tenant_count(rows.iter().map(import.tenant));
    let repeated = rows.len() as u64 - written.min(rows.len() as u64);
    let note = if repeated > 0 { format!(" ({repeated} repeated {}: the last line wins)", import.repeated) } else { String::new() };
    eprintln!("context {}: imported {written} {} for {tenants} tenant(s) from {name}{note}", import.command, import.rows);
    Ok(ExitCode::SUCCESS)
}

pub async fn import_ueba(
    path: Option<&Path>,
    data_dir: Option<PathBuf>,
    env: &HashMap<String, String>,
    file: &Path,
    tenant: Option<String>,
) -> anyhow::Result<ExitCode> {
    let fallback = fallback_tenant(tenant)?;
    let import = RowImport {
        command: "import-ueba",
        known: UEBA_FIELDS,
        rows: "user risk row(s)",
        repeated: "user(s)",
        tenant: |row: &UserRisk| row.tenant.as_str(),
    };
    import_rows(
        path,
        data_dir,
        env,
        file,
        import,
        |fields| user_risk(fields, &fallback),
        async |store, rows| store.upsert_user_risk(rows).await,
    )
    .await
}

pub async fn import_ctem(
    path: Option<&Path>,
    data_dir: Option<PathBuf>,
    env: &HashMap<String, String>,
    file: &Path,
    tenant: Option<String>,
) -> anyhow::Result<ExitCode> {
    let fallback = fallback_tenant(tenant)?;
    let import = RowImport {
        command: "import-ctem",
        known: CTEM_FIELDS,
        rows: "exposure(s)",
        repeated: "exposure id(s)",
        tenant: |row: &Exposure| row.tenant.as_str(),
    };
    import_rows(
        path,
        data_dir,
        env,
        file,
        import,
        |fields| exposure(fields, &fallback),
        async |store, rows| store.upsert_exposures(rows).await,
    )
    .await
}

pub async fn add_fp(
    path: Option<&Path>,
    data_dir: Option<PathBuf>,
    env: &HashMap<String, String>,
    file: &Path,
) -> anyhow::Result<ExitCode> {
    let (name, bytes) = read_input(file)?;
    let (good, mut errors) = parse_lines(&name, &bytes, FP_FIELDS, Utc::now(), fp_pattern);
    let mut first_line: BTreeMap<&str, usize> = BTreeMap::new();
    for parsed in &good {
        if let Some(first) = first_line.insert(&parsed.value.pattern_id, parsed.line) {
            let at = format!("{}: pattern {:?}", parsed.line, parsed.value.pattern_id);
            errors.push(problem_text(&name, &at, "pattern_id", &format!("repeats line {first}")));
            first_line.insert(&parsed.value.pattern_id, first);
        }
    }
    if !errors.is_empty() {
        return Ok(refuse("add-fp", &name, &errors));
    }
    let config = load_config(path, data_dir, env)?;
    let backends = Backends::open(&config).await?;
    let result = async {
        let mut replaced = 0_usize;
        for parsed in &good {
            let mut pattern = parsed.value.clone();
            // A pattern re-imported keeps the time it was first added.
            if let Some(existing) = backends.context.fp_pattern(&pattern.pattern_id).await? {
                pattern.created_at = existing.created_at;
                replaced += 1;
            }
            backends.context.upsert_fp_pattern(&pattern).await?;
        }
        anyhow::Ok(replaced)
    }
    .await;
    backends.close().await;
    let replaced = result?;
    let matchable = good.iter().filter(|parsed| parsed.value.status.is_matchable()).count();
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    for parsed in good.iter().filter(|parsed| !parsed.value.status.is_matchable()) {
        *by_status.entry(parsed.value.status.as_str()).or_default() += 1;
    }
    let others: Vec<String> = by_status.iter().map(|(status, count)| format!("{count} {status}")).collect();
    let others = if others.is_empty() { String::new() } else { format!("; {} (not matched until approved or active)", others.join(", ")) };
    eprintln!("context add-fp: added {} FP pattern(s) from {name} ({replaced} replaced): {matchable} approved/active{others}", good.len());
    Ok(ExitCode::SUCCESS)
}

pub async fn list_fp(
    path: Option<&Path>,
    data_dir: Option<PathBuf>,
    env: &HashMap<String, String>,
    tenant: Option<String>,
    status: Option<String>,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    // Without --status: what may close alerts of the tenant now. With it: any status, for review
    // (every tenant unless --tenant is given).
    let listing = match status.as_deref().map(str::trim) {
        None => None,
        Some("all") => Some(None),
        Some(text) => Some(Some(FpStatus::parse(text).ok_or_else(|| {
            let known: Vec<&str> = FpStatus::ALL.iter().map(|status| status.as_str()).collect();
            anyhow::anyhow!("--status {text:?}: expected one of {} or all", known.join(", "))
        })?)),
    };
    let tenant = match (&listing, tenant) {
        (Some(_), None) => None,
        (_, tenant) => Some(fallback_tenant(tenant)?),
    };
    let config = load_config(path, data_dir, env)?;
    let backends = Backends::open(&config).await?;
    let now = Utc::now();
    let patterns = match (&listing, tenant.as_deref()) {
        (Some(status), tenant) => backends.context.fp_patterns(tenant, *status).await,
        (None, Some(tenant)) => backends.context.matchable_fp_patterns(tenant, now).await,
        (None, None) => backends.context.fp_patterns(None, None).await,
    };
    backends.close().await;
    let patterns = patterns?;
    let mut out = std::io::stdout().lock();
    if as_json {
        for pattern in &patterns {
            writeln!(out, "{}", serde_json::to_string(pattern)?)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let tenant = tenant.unwrap_or_else(|| "*".to_owned());
    if patterns.is_empty() {
        match listing {
            None => writeln!(out, "no approved or active FP patterns apply to tenant {tenant}")?,
            Some(_) => writeln!(out, "no FP patterns match")?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<24} {:<12} {:<14} {:>9}  {:<10}  {:<24} name",
        "pattern_id", "tenant", "status", "threshold", "expires", "approved_by"
    )?;
    for pattern in &patterns {
        writeln!(
            out,
            "{:<24} {:<12} {:<14} {:>9.2}  {:<10}  {:<24} {}",
            pattern.pattern_id,
            pattern.tenant.as_deref().unwrap_or("*"),
            // Past its expiry but not yet swept: it no longer matches.
            if pattern.status.is_matchable() && pattern.expires_at.is_some_and(|expires| expires <= now) {
                "lapsed"
            } else {
                pattern.status.as_str()
            },
            pattern.confidence_threshold,
            pattern.expires_at.map_or_else(|| "never".to_owned(), |expires| expires.format("%Y-%m-%d").to_string()),
            pattern.approved_by.join(","),
            pattern.name
        )?;
    }
    writeln!(out, "{} pattern(s) for tenant {tenant} (* = every tenant)", patterns.len())?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z").map(|time| time.with_timezone(&Utc)).unwrap_or_default()
    }

    fn fp(lines: &str) -> (Vec<Parsed<FpPattern>>, Vec<String>) {
        parse_lines("fp.jsonl", lines.as_bytes(), FP_FIELDS, now(), fp_pattern)
    }

    #[test]
    fn an_approved_pattern_defaults_to_90_days_after_approval() {
        let (good, errors) = fp(
            r#"{"pattern_id":"p1","name":"n","alert_name_regex":"^Backup$","entity_patterns":[],"status":"approved","approved_by":["alice","bob"],"approval_date":"2026-02-01T00:00:00Z","reason":"r"}"#,
        );
        assert!(errors.is_empty(), "{errors:?}");
        let pattern = &good[0].value;
        assert_eq!(pattern.expires_at.map(|t| t.to_rfc3339()), Some("2026-05-02T00:00:00+00:00".to_owned()));
        assert_eq!(pattern.confidence_threshold, DEFAULT_FP_CONFIDENCE_THRESHOLD);
    }

    #[test]
    fn a_pattern_without_a_status_waits_for_review() {
        let (good, errors) =
            fp(r#"{"pattern_id":"p1","name":"n","entity_patterns":[{"entity_type":"Host","pattern":"^ws-"}],"reason":"r"}"#);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(good[0].value.status, FpStatus::PendingReview);
        assert_eq!(good[0].value.entity_patterns[0].entity_type, "host");
    }

    #[test]
    fn approvers_must_be_two_distinct_people_ignoring_case() {
        let (_, errors) = fp(
            r#"{"pattern_id":"p1","name":"n","alert_name_regex":"x","entity_patterns":[],"status":"active","approved_by":["Alice"," alice"],"reason":"r"}"#,
        );
        let prefix = "fp.jsonl:1: pattern \"p1\": ";
        assert!(
            errors.iter().any(|e| e.starts_with(&format!("{prefix}approved_by: status active needs 2 distinct approvers"))),
            "{errors:?}"
        );
        assert!(errors.iter().any(|e| e.starts_with(&format!("{prefix}approval_date: required"))), "{errors:?}");
    }

    #[test]
    fn every_problem_of_a_line_is_named() {
        let (_, errors) = fp(
            r#"{"pattern_id":"","name":3,"entity_patterns":[{"entity_type":"ip","pattern":"10.0.0.0/33"},{"pattern":"x"}],"confidence_threshold":1.5,"status":"aproved","extra":1}"#,
        );
        for needle in [
            "extra: unknown field",
            "pattern_id: must not be empty",
            "name: must be a string",
            "entity_patterns[1].entity_type: missing",
            "confidence_threshold: 1.5 is not in (0, 1]",
            "status: unknown status \"aproved\"",
            "reason: missing",
        ] {
            assert!(errors.iter().any(|e| e.contains(needle)), "{needle} in {errors:#?}");
        }
    }

    #[test]
    fn bad_regexes_and_cidrs_are_refused_even_before_approval() {
        let (_, errors) = fp(concat!(
            r#"{"pattern_id":"p1","name":"n","alert_name_regex":"(unclosed","entity_patterns":[],"reason":"r"}"#,
            "\n",
            r#"{"pattern_id":"p2","name":"n","entity_patterns":[{"entity_type":"ip","pattern":"10.0.0.0/33"}],"reason":"r"}"#,
            "\n",
            r#"{"pattern_id":"p3","name":"n","entity_patterns":[],"reason":"r"}"#
        ));
        assert_eq!(errors.len(), 3, "{errors:#?}");
        assert!(errors[0].starts_with("fp.jsonl:1: pattern \"p1\": alert_name_regex: invalid regex"), "{errors:?}");
        assert!(!errors[0].contains('\n'), "one line per problem: {errors:?}");
        assert!(errors[1].starts_with("fp.jsonl:2: pattern \"p2\": entity_patterns[0] (ip): \"10.0.0.0/33\" is not a CIDR"), "{errors:?}");
        assert!(errors[2].starts_with("fp.jsonl:3: pattern \"p3\": neither alert_name_regex nor entity_patterns"), "{errors:?}");
    }

    #[test]
    fn ueba_lines_are_checked_field_by_field() {
        let input = concat!(
            r#"{"user":"Alice@Contoso.com","priority":7,"observed_at":"2026-02-28T23:00:00Z"}"#,
            "\n\n",
            r#"{"user":"bob","priority":11,"observed_at":"yesterday","detail":[1]}"#,
            "\n",
            "[1]\n",
            r#"{"user":"carol","priority":1,"observed_at":"2026-03-02T00:00:00Z","tenant":"acme"}"#,
        );
        let (good, errors) = parse_lines("u.jsonl", input.as_bytes(), UEBA_FIELDS, now(), |fields| user_risk(fields, "default"));
        assert_eq!(good.len(), 1);
        assert_eq!((good[0].line, good[0].value.tenant.as_str()), (1, "default"));
        let expected = [
            "u.jsonl:3: priority: 11 is not in 0..=10",
            "u.jsonl:3: observed_at: \"yesterday\" is not an RFC 3339 time",
            "u.jsonl:3: detail: must be an object, not an array",
            "u.jsonl:4: expected a JSON object, not an array",
            "u.jsonl:5: observed_at: 2026-03-02T00:00:00+00:00 is in the future",
        ];
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
        for (error, expected) in errors.iter().zip(expected) {
            assert!(error.starts_with(expected), "{error:?} should start with {expected:?}");
        }
    }

    #[test]
    fn ctem_statuses_are_known_and_canonical() {
        let input = concat!(
            r#"{"exposure_id":"e1","asset_id":"ws-01","asset_zone":"Zone3_Enterprise","status":"inprogress","ctem_score":7.5,"title":"t","updated_at":"2026-02-28T00:00:00Z","tenant":"acme"}"#,
            "\n",
            r#"{"exposure_id":"e2","asset_id":"ws-01","asset_zone":"Zone3_Enterprise","status":"Closd","ctem_score":-1,"title":"t","updated_at":"2026-02-28T00:00:00Z"}"#,
        );
        let (good, errors) = parse_lines("c.jsonl", input.as_bytes(), CTEM_FIELDS, now(), |fields| exposure(fields, "default"));
        assert_eq!(good[0].value.status, "InProgress");
        assert_eq!(good[0].value.tenant, "acme");
        assert!(errors[0].starts_with("c.jsonl:2: status: unknown status \"Closd\""), "{errors:?}");
        assert_eq!(errors[1], "c.jsonl:2: ctem_score: -1 is negative");
    }
}
