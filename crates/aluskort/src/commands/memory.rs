//! `aluskort memory status|archive` (NFR-CMP-002): incident memory is kept by month; recall looks
//! back [`HOT_MONTHS`] months, and months older than that are archived whole to object storage
//! (`[blobs]`), then removed from the store (PostgreSQL drops their partitions) and from the vector
//! index, which keeps the hot index small (under [`HOT_VECTORS_MAX`] vectors).
//!
//! An archive is one JSON Lines object per month, `incident-memory/<YYYY-MM>.jsonl`, one past
//! incident per line, by tenant and id. Objects are write-once: a rerun after an interruption
//! finds the same bytes and carries on; an object of that month with other content is never
//! overwritten (the month is left in place and the command fails, naming it).

use std::process::ExitCode;

use aluskort_knowledge::memory::{HOT_MONTHS, HOT_VECTORS_MAX};
use aluskort_store::PastIncidentRow;
use anyhow::Context;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::wiring::Backends;

/// The object key of `month`'s archive.
pub fn archive_key(month: &str) -> String {
    format!("incident-memory/{month}.jsonl")
}

/// The first month (`YYYY-MM`) kept hot when `keep_months` months are kept before `now`'s.
fn first_kept_month(now: DateTime<Utc>, keep_months: u32) -> String {
    now.checked_sub_months(chrono::Months::new(keep_months)).unwrap_or(now).format("%Y-%m").to_string()
}

fn jsonl(rows: &[PastIncidentRow]) -> anyhow::Result<Bytes> {
    let mut out = Vec::new();
    for row in rows {
        serde_json::to_writer(&mut out, row)?;
        out.push(b'\n');
    }
    Ok(Bytes::from(out))
}

pub async fn status(config: &aluskort_config::Config) -> anyhow::Result<ExitCode> {
    let backends = Backends::open(config).await?;
    let months = backends.memory_store.past_incident_months().await;
    let vectors = match &backends.incident_memory {
        Some(memory) => Some(memory.hot_vectors().await),
        None => None,
    };
    backends.close().await;
    let months = months?;
    let first_kept = first_kept_month(Utc::now(), HOT_MONTHS);
    println!("incident memory: {} month(s), {} past incident(s)", months.len(), months.iter().map(|(_, n)| n).sum::<u64>());
    for (month, count) in &months {
        let due = if *month < first_kept { "  (older than the hot window: archive due)" } else { "" };
        println!("  {month}  {count:>8}{due}");
    }
    match vectors {
        Some(vectors) if vectors > HOT_VECTORS_MAX => {
            println!("hot vectors: {vectors} (above {HOT_VECTORS_MAX}: archive older months or shorten the hot window)")
        }
        Some(vectors) => println!("hot vectors: {vectors} (limit {HOT_VECTORS_MAX})"),
        None => println!("hot vectors: incident memory is disabled ([knowledge] incident_memory = false)"),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn archive(config: &aluskort_config::Config, keep_months: u32, dry_run: bool) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(keep_months >= 1, "--keep-months must be at least 1");
    let blobs = aluskort_blobs::BlobStore::open(&config.blobs, &config.data_dir).context("cannot open [blobs]")?;
    let backends = Backends::open(config).await?;
    let outcome = archive_months(&backends, &blobs, keep_months, dry_run).await;
    backends.close().await;
    outcome
}

async fn archive_months(
    backends: &Backends,
    blobs: &aluskort_blobs::BlobStore,
    keep_months: u32,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let first_kept = first_kept_month(Utc::now(), keep_months);
    let due: Vec<(String, u64)> =
        backends.memory_store.past_incident_months().await?.into_iter().filter(|(month, _)| *month < first_kept).collect();
    if due.is_empty() {
        println!("memory archive: nothing older than {first_kept} to archive");
        return Ok(ExitCode::SUCCESS);
    }
    let (mut archived, mut incidents) = (0usize, 0usize);
    for (position, (month, _)) in due.iter().enumerate() {
        let rows = backends.memory_store.past_incidents_of_month(month).await?;
        let bytes = jsonl(&rows)?;
        let key = archive_key(month);
        if dry_run {
            println!(
                "memory archive: would archive {month}: {} incident(s), {} bytes -> {}/{key}",
                rows.len(),
                bytes.len(),
                blobs.location()
            );
            continue;
        }
        let stored = match blobs.put_new(&key, bytes.clone()).await {
            Ok(stored) => stored,
            Err(aluskort_blobs::BlobError::Conflict { .. }) => {
                eprintln!(
                    "memory archive: {}/{key} already holds a different archive of {month}; archives are write-once, so {month} \
                     stays in the store (move the object aside or restore it, then rerun)",
                    blobs.location()
                );
                return Ok(ExitCode::from(1));
            }
            Err(error) => return Err(error).with_context(|| format!("cannot store the archive of {month}")),
        };
        // Read back before anything is removed: the store's copy goes only once the archive holds.
        let back = blobs.get(&key).await.with_context(|| format!("cannot read back the archive of {month}"))?;
        anyhow::ensure!(
            aluskort_blobs::sha256_hex(&back) == stored.sha256,
            "the archive of {month} read back differs from what was written; nothing removed"
        );
        if let Some(memory) = &backends.incident_memory {
            let ids: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
            memory.forget(&ids).await.with_context(|| format!("the archive of {month} is stored, but its vectors could not be removed"))?;
        }
        let removed = backends.memory_store.drop_past_incident_month(month).await?;
        archived += 1;
        incidents += rows.len();
        println!(
            "memory archive: [{}/{}] {month}: {} incident(s) -> {}/{key} (sha256 {}{}); {removed} removed from the store",
            position + 1,
            due.len(),
            rows.len(),
            blobs.location(),
            stored.sha256,
            if stored.created { "" } else { ", already archived" },
        );
    }
    if !dry_run {
        println!("memory archive: {archived} month(s), {incidents} incident(s) archived; months from {first_kept} stay hot");
    }
    Ok(ExitCode::SUCCESS)
}
