//! `aluskort ti import FILE [--source NAME] [--tenant ID] [--confidence N]`: threat-intelligence
//! indicators for exact-match enrichment (FR-ENR-004).
//!
//! A file of JSON lines `{"type", "value", "confidence"?, "description"?}` is read line by line
//! (a bad line is named and skipped); any other file is treated as a report or IOC list and its
//! indicators are extracted (defanged values included). Values are canonicalised exactly as alert
//! indicators are, so they match. Each indicator lives for a time set by its confidence: above 80
//! 30 days, 50–80 7 days, below 50 24 hours.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aluskort_core::{Ioc, IocType};
use aluskort_store::TiIndicator;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use crate::commands::read_input;
use crate::wiring::{Backends, load_config};

/// FR-ENR-004 lifetimes by confidence.
pub fn lifetime(confidence: u8) -> Duration {
    if confidence > 80 {
        Duration::days(30)
    } else if confidence >= 50 {
        Duration::days(7)
    } else {
        Duration::hours(24)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    #[serde(rename = "type")]
    kind: IocType,
    value: String,
    confidence: Option<u8>,
    description: Option<String>,
}

pub struct ImportOptions<'a> {
    pub file: &'a Path,
    pub source: Option<String>,
    pub tenant: Option<String>,
    pub confidence: u8,
}

fn indicator(ioc: &Ioc, confidence: u8, description: String, source: &str, tenant: &str, now: DateTime<Utc>) -> TiIndicator {
    TiIndicator {
        tenant_id: tenant.to_owned(),
        indicator: ioc.to_string(),
        confidence,
        source: source.to_owned(),
        description,
        expires_at: now + lifetime(confidence),
    }
}

pub async fn import(
    path: Option<&Path>,
    data_dir: Option<PathBuf>,
    env: &HashMap<String, String>,
    options: ImportOptions<'_>,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(options.confidence <= 100, "--confidence must be 0..=100");
    let (name, bytes) = read_input(options.file)?;
    let text = String::from_utf8_lossy(&bytes);
    let source = options.source.unwrap_or_else(|| name.clone());
    let tenant = options.tenant.unwrap_or_default();
    let now = Utc::now();
    let mut indicators = Vec::new();
    let mut rejected = 0;
    let lines: Vec<&str> = text.lines().filter(|line| !line.trim().is_empty()).collect();
    let jsonl = !lines.is_empty() && lines.iter().all(|line| line.trim_start().starts_with('{'));
    if jsonl {
        for (number, line) in text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()) {
            let parsed = serde_json::from_str::<Line>(line).map_err(|error| error.to_string()).and_then(|line| {
                let confidence = line.confidence.unwrap_or(options.confidence);
                if confidence > 100 {
                    return Err(format!("confidence {confidence} is not 0..=100"));
                }
                let ioc = Ioc::parse(line.kind, &line.value).map_err(|error| format!("value: {error}"))?;
                Ok(indicator(&ioc, confidence, line.description.unwrap_or_default(), &source, &tenant, now))
            });
            match parsed {
                Ok(indicator) => indicators.push(indicator),
                Err(reason) => {
                    rejected += 1;
                    eprintln!("{name}:{}: skipped: {reason}", number + 1);
                }
            }
        }
    } else {
        for ioc in aluskort_extract::extract_iocs(&text).iter().filter(|ioc| ioc.kind() != IocType::AttackTechnique) {
            indicators.push(indicator(ioc, options.confidence, format!("listed in {name}"), &source, &tenant, now));
        }
    }
    indicators.sort_by(|a, b| a.indicator.cmp(&b.indicator));
    indicators.dedup_by(|a, b| a.indicator == b.indicator);
    let config = load_config(path, data_dir, env)?;
    let backends = Backends::open(&config).await?;
    let written = backends.threat_intel.upsert_indicators(&indicators).await;
    backends.close().await;
    let written = written?;
    let scope = if tenant.is_empty() { "every tenant".to_owned() } else { format!("tenant {tenant}") };
    eprintln!("ti import: {written} indicator(s) from {name} as source {source:?} for {scope}; {rejected} line(s) skipped");
    Ok(if rejected == 0 { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_follow_confidence() {
        assert_eq!(lifetime(81), Duration::days(30));
        assert_eq!(lifetime(80), Duration::days(7));
        assert_eq!(lifetime(50), Duration::days(7));
        assert_eq!(lifetime(49), Duration::hours(24));
    }
}
