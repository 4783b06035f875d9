//! `aluskort config check`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aluskort_config::CaseStoreConfig;

pub fn check(path: Option<&Path>, data_dir: Option<PathBuf>, env: &HashMap<String, String>) -> anyhow::Result<ExitCode> {
    match crate::wiring::load_config(path, data_dir, env) {
        Ok(config) => {
            let store = match &config.case_store {
                CaseStoreConfig::Sqlite => format!("sqlite under {}", config.data_dir.display()),
                CaseStoreConfig::Postgres { schema, .. } => format!("postgres (schema {})", schema.as_deref().unwrap_or("public")),
            };
            eprintln!(
                "configuration is valid: case store {store}; listen {}; model provider {}{}; grouping window {} h",
                config.listen_addr,
                config.llm.primary.name(),
                config.llm.fallback.as_ref().map(|fallback| format!(" (fallback {})", fallback.name())).unwrap_or_default(),
                config.grouping_window_hours
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("{error:#}");
            Ok(ExitCode::from(1))
        }
    }
}
