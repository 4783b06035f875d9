//! `aluskort audit verify`: recomputes every hash and link; exit 0 and a count when valid,
//! exit 1 naming the first broken record otherwise.
//!
//! `aluskort audit evidence INV`: the investigation's evidence package, stored write-once in
//! `[blobs]` under §3.8's evidence key; `aluskort audit verify-evidence FILE` checks one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use aluskort_config::CaseStoreConfig;
use aluskort_store::sqlite::DATABASE_FILE;

use crate::wiring::{Backends, load_config};

/// Whether there is audit data to read: the embedded database must exist (opening would create an
/// empty one and report nothing).
fn audit_data_exists(config: &aluskort_config::Config) -> bool {
    if config.case_store == CaseStoreConfig::Sqlite {
        let database = config.data_dir.join(DATABASE_FILE);
        if !database.is_file() {
            eprintln!(
                "error: no audit data: {} does not exist (run `aluskort triage` or `serve` first, or pass --data-dir)",
                database.display()
            );
            return false;
        }
    }
    true
}

pub async fn verify(path: Option<&Path>, data_dir: Option<PathBuf>, env: &HashMap<String, String>) -> anyhow::Result<ExitCode> {
    let config = load_config(path, data_dir, env)?;
    if !audit_data_exists(&config) {
        return Ok(ExitCode::from(1));
    }
    let backends = Backends::open(&config).await?;
    let result = aluskort_audit::verify_store(backends.audit_store.as_ref()).await;
    backends.close().await;
    match result {
        Ok(report) => match report.first_break {
            None => {
                println!("audit chain valid: {} records across {} tenant(s)", report.records, report.tenants);
                Ok(ExitCode::SUCCESS)
            }
            Some(chain_break) => {
                println!("audit chain BROKEN after {} valid records: first broken record: {chain_break}", report.records);
                Ok(ExitCode::from(1))
            }
        },
        Err(error) => {
            println!("audit chain BROKEN: a record cannot be read back: {error}");
            Ok(ExitCode::from(1))
        }
    }
}

/// `aluskort audit evidence INV [--out FILE]`.
pub async fn evidence(
    path: Option<&Path>,
    data_dir: Option<PathBuf>,
    env: &HashMap<String, String>,
    investigation: &str,
    out: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let Ok(uuid) = uuid::Uuid::parse_str(investigation.trim()) else {
        eprintln!("error: {investigation:?} is not an investigation id (a UUID, as `aluskort triage` prints it)");
        return Ok(ExitCode::from(2));
    };
    let config = load_config(path, data_dir, env)?;
    if !audit_data_exists(&config) {
        return Ok(ExitCode::from(1));
    }
    let blobs = aluskort_blobs::BlobStore::open(&config.blobs, &config.data_dir)?;
    let backends = Backends::open(&config).await?;
    let built = aluskort_audit::evidence::build_package(
        backends.case_store.as_ref(),
        backends.audit_store.as_ref(),
        aluskort_core::InvestigationId(uuid),
        chrono::Utc::now(),
    )
    .await;
    backends.close().await;
    let package = match built {
        Ok(package) => package,
        Err(error @ (aluskort_audit::evidence::EvidenceError::NotFound(_) | aluskort_audit::evidence::EvidenceError::NoRecords(_))) => {
            eprintln!("error: {error}");
            return Ok(ExitCode::from(1));
        }
        Err(error) => return Err(error.into()),
    };
    if let Err(problem) = aluskort_audit::evidence::verify_package(&package) {
        eprintln!("error: the package does not verify, so it is not stored: {problem}");
        return Ok(ExitCode::from(1));
    }
    let bytes = serde_json::to_vec_pretty(&package)?;
    if let Some(out) = out {
        std::fs::write(out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
    }
    let key = aluskort_audit::evidence::package_key(&package).context("the package's newest audit record has no usable timestamp")?;
    let stored = blobs.put_new(&key, bytes::Bytes::from(bytes)).await?;
    println!(
        "evidence package of investigation {} ({} audit records, chain head {}): {} {} in {} (sha256 {}, {} bytes)",
        package.investigation_id,
        package.audit_records.len(),
        package.chain_proof.head_sequence,
        if stored.created { "stored" } else { "already stored, identical" },
        stored.key,
        blobs.location(),
        stored.sha256,
        stored.size,
    );
    Ok(ExitCode::SUCCESS)
}

/// `aluskort audit verify-evidence FILE`.
pub fn verify_evidence(file: &Path) -> anyhow::Result<ExitCode> {
    let bytes = if file == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes).context("cannot read standard input")?;
        bytes
    } else {
        std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?
    };
    let package: aluskort_audit::evidence::EvidencePackage = match serde_json::from_slice(&bytes) {
        Ok(package) => package,
        Err(error) => {
            println!("evidence package INVALID: not a package: {error}");
            return Ok(ExitCode::from(1));
        }
    };
    match aluskort_audit::evidence::verify_package(&package) {
        Ok(report) => {
            println!(
                "evidence package valid: investigation {} of tenant {}: {} audit records, {} named by their successors, chain head {} (sha256 {})",
                package.investigation_id,
                package.tenant_id,
                report.records,
                report.linked,
                report.head_sequence,
                aluskort_blobs::sha256_hex(&bytes),
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(problem) => {
            println!("evidence package INVALID: {problem}");
            Ok(ExitCode::from(1))
        }
    }
}
