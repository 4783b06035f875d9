//! `aluskort audit verify`: recomputes every hash and link; exit 0 and a count when valid,
//! exit 1 naming the first broken record otherwise.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aluskort_config::CaseStoreConfig;
use aluskort_store::sqlite::DATABASE_FILE;

use crate::wiring::{Backends, load_config};

pub async fn verify(path: Option<&Path>, data_dir: Option<PathBuf>, env: &HashMap<String, String>) -> anyhow::Result<ExitCode> {
    let config = load_config(path, data_dir, env)?;
    if config.case_store == CaseStoreConfig::Sqlite {
        let database = config.data_dir.join(DATABASE_FILE);
        if !database.is_file() {
            eprintln!(
                "error: no audit data: {} does not exist (run `aluskort triage` or `serve` first, or pass --data-dir)",
                database.display()
            );
            return Ok(ExitCode::from(1));
        }
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
