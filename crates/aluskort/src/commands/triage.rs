//! `aluskort triage`: every input record through the whole pipeline (raw inbox → parse →
//! investigate), then one result per input alert on stdout, in input order; errors and the
//! summary on stderr.
//!
//! Exit status: 0 when every record was investigated; 2 when some input was rejected (named on
//! stderr, dead-lettered with the reason); 1 on a fatal error.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use aluskort_core::InvestigationId;
use aluskort_investigate::{StageOutcome, TriageRecord};
use anyhow::Context;
use serde_json::Value;

use crate::OutputFormat;
use crate::commands::read_input;
use crate::wiring::{Backends, Running, load_config};

/// Consumer group the CLI reads outcomes as.
const CLI_GROUP: &str = "aluskort.cli";

enum Submitted {
    Alert {
        location: String,
        ingest_id: String,
    },
    Unreadable,
    /// Heartbeat/test/health alert: not investigated (FR-ING-001).
    Dropped,
}

pub async fn run(
    config_path: Option<&Path>,
    data_dir: Option<PathBuf>,
    env: &HashMap<String, String>,
    files: &[PathBuf],
    format: OutputFormat,
) -> anyhow::Result<ExitCode> {
    let config = load_config(config_path, data_dir, env)?;
    let inputs: Vec<PathBuf> = if files.is_empty() { vec![PathBuf::from("-")] } else { files.to_vec() };
    let mut documents = Vec::with_capacity(inputs.len());
    for input in &inputs {
        documents.push(read_input(input)?);
    }

    let backends = Backends::open(&config).await?;
    let running = Running::start(&config, &backends).await?;
    let pipeline = Arc::clone(&running.pipeline);
    let started = Instant::now();

    let mut submitted = Vec::new();
    for (name, bytes) in &documents {
        for record in aluskort_ingest::read_records(name, bytes) {
            match record.record {
                Ok(payload) => {
                    if let Ok(identity) = aluskort_ingest::identify(&payload, chrono::Utc::now())
                        && let Some(reason) = identity.noise
                    {
                        eprintln!(
                            "note: {}: dropped {reason} {:?} ({}): not investigated",
                            record.location, identity.title, identity.alert_id
                        );
                        submitted.push(Submitted::Dropped);
                        continue;
                    }
                    let ingest_id = pipeline.submit(&record.location, payload).await?;
                    submitted.push(Submitted::Alert { location: record.location, ingest_id });
                }
                Err(reason) => {
                    eprintln!("error: {}: {reason}", record.location);
                    pipeline.reject_unreadable(&record.location, &reason, Value::Null).await?;
                    submitted.push(Submitted::Unreadable);
                }
            }
        }
    }
    let expected: HashSet<String> =
        submitted.iter().filter_map(|s| if let Submitted::Alert { ingest_id, .. } = s { Some(ingest_id.clone()) } else { None }).collect();
    let total = expected.len();
    let show_progress = std::io::stderr().is_terminal() && total >= 50;
    let mut done = 0_usize;
    let outcomes = pipeline
        .await_outcomes(expected, CLI_GROUP, |_| {
            done += 1;
            if show_progress && (done.is_multiple_of(50) || done == total) {
                eprint!("\rtriage: {done}/{total} alerts processed");
            }
        })
        .await?;
    if show_progress {
        eprintln!();
    }
    let elapsed = started.elapsed();
    let by_ingest: HashMap<&str, &StageOutcome> = outcomes.iter().map(|o| (o.ingest_id.as_str(), o)).collect();

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if matches!(format, OutputFormat::Table) {
        writeln!(
            out,
            "{:<38} {:<13} {:<15} {:<21} {:>5} {:<36} TITLE",
            "ALERT_ID", "SEVERITY", "STATE", "CLASSIFICATION", "CONF", "INCIDENT"
        )?;
    }
    let mut states: BTreeMap<String, usize> = BTreeMap::new();
    let mut incidents: HashSet<String> = HashSet::new();
    let (mut rejected, mut duplicates, mut investigated, mut dropped) = (0_usize, 0_usize, 0_usize, 0_usize);
    for entry in &submitted {
        let (location, ingest_id) = match entry {
            Submitted::Unreadable => {
                rejected += 1;
                continue;
            }
            Submitted::Dropped => {
                dropped += 1;
                continue;
            }
            Submitted::Alert { location, ingest_id } => (location, ingest_id),
        };
        let Some(outcome) = by_ingest.get(ingest_id.as_str()) else {
            anyhow::bail!("{location}: no outcome was recorded (this is a bug)");
        };
        if let Some(error) = &outcome.error {
            eprintln!("error: {location}: {error} (dead-lettered)");
            rejected += 1;
            continue;
        }
        let investigation_id = outcome
            .investigation_id
            .as_deref()
            .and_then(InvestigationId::parse)
            .with_context(|| format!("{location}: outcome without an investigation id"))?;
        let state = pipeline_store_state(&backends, investigation_id).await?;
        let mut record = TriageRecord::load(backends.case_store.as_ref(), &state)
            .await?
            .with_context(|| format!("{location}: alert {} missing from the store", state.alert_id))?;
        record.origin = Some(location.clone());
        record.duplicate = outcome.duplicate;
        for warning in &outcome.warnings {
            eprintln!("warning: {location}: {warning}");
        }
        investigated += 1;
        duplicates += usize::from(outcome.duplicate);
        *states.entry(record.state.clone()).or_default() += 1;
        if let Some(incident) = &record.incident_id {
            incidents.insert(incident.clone());
        }
        match format {
            OutputFormat::Jsonl => writeln!(out, "{}", serde_json::to_string(&record)?)?,
            OutputFormat::Table => writeln!(
                out,
                "{:<38} {:<13} {:<15} {:<21} {:>5.2} {:<36} {}",
                truncate(&record.alert_id, 38),
                record.severity,
                record.state,
                record.classification.as_deref().unwrap_or("-"),
                record.confidence,
                record.incident_id.as_deref().unwrap_or("-"),
                truncate(&record.title, 60)
            )?,
        }
    }
    out.flush()?;
    drop(out);

    running.stop().await?;
    let audit = aluskort_audit::verify_store(backends.audit_store.as_ref()).await;
    let audit_summary = match &audit {
        Ok(report) if report.first_break.is_none() => format!("audit chain valid ({} records)", report.records),
        Ok(report) => format!("AUDIT CHAIN BROKEN: {}", report.first_break.as_ref().map(ToString::to_string).unwrap_or_default()),
        Err(error) => format!("audit chain unreadable: {error}"),
    };
    let state_summary = states.iter().map(|(state, count)| format!("{count} {state}")).collect::<Vec<_>>().join(", ");
    eprintln!(
        "triage: {} record(s) in {:.2}s: {investigated} investigated ({state_summary}{}), {rejected} rejected{}; {} incident(s); degradation level deterministic; {audit_summary}",
        submitted.len(),
        elapsed.as_secs_f64(),
        if duplicates > 0 { format!("; {duplicates} already investigated before") } else { String::new() },
        if dropped > 0 { format!(", {dropped} dropped (heartbeat/test)") } else { String::new() },
        incidents.len(),
    );
    backends.close().await;
    Ok(if rejected > 0 { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

async fn pipeline_store_state(backends: &Backends, id: InvestigationId) -> anyhow::Result<aluskort_core::GraphState> {
    backends.case_store.investigation(id).await?.with_context(|| format!("investigation {id} missing from the store"))
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max { text.to_owned() } else { format!("{}…", text.chars().take(max - 1).collect::<String>()) }
}
