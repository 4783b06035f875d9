//! `aluskort assets import|show`: the asset/zone graph of `[graph]` (in-process or Neo4j).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aluskort_knowledge::assets::Placement;
use anyhow::Context;
use serde::Deserialize;

use crate::wiring::{load_config, open_graph};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    asset: String,
    zone: String,
    consequence: String,
    tenant: Option<String>,
}

/// `assets import FILE`: every line checked first; any bad line is named and nothing is written.
pub async fn import(
    path: Option<&Path>,
    data_dir: Option<PathBuf>,
    env: &HashMap<String, String>,
    file: &Path,
    tenant: &str,
) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut placements = Vec::new();
    let mut problems = Vec::new();
    for (number, line) in text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()) {
        let placed = serde_json::from_str::<Line>(line).map_err(|error| error.to_string()).and_then(|line| {
            Placement::new(line.tenant.as_deref().unwrap_or(tenant), &line.asset, &line.zone, &line.consequence)
                .map_err(|error| error.to_string())
        });
        match placed {
            Ok(placement) => placements.push(placement),
            Err(reason) => problems.push(format!("{}:{}: {reason}", file.display(), number + 1)),
        }
    }
    if !problems.is_empty() {
        for problem in &problems {
            eprintln!("error: {problem}");
        }
        eprintln!("error: {} bad line(s); nothing was written", problems.len());
        return Ok(ExitCode::from(1));
    }
    let config = load_config(path, data_dir, env)?;
    let graph = open_graph(&config).await?;
    let placed = graph.place(&placements).await.context("cannot write to the asset graph")?;
    let zones: std::collections::BTreeSet<&str> = placements.iter().map(|placement| placement.zone.as_str()).collect();
    println!("{placed} asset(s) placed in {} zone(s)", zones.len());
    Ok(ExitCode::SUCCESS)
}

/// `assets show NAME...`.
pub async fn show(
    path: Option<&Path>,
    data_dir: Option<PathBuf>,
    env: &HashMap<String, String>,
    assets: &[String],
    tenant: &str,
) -> anyhow::Result<ExitCode> {
    let config = load_config(path, data_dir, env)?;
    let graph = open_graph(&config).await?;
    let found = graph.placements(tenant, assets).await.context("cannot read the asset graph")?;
    for placement in &found {
        println!("{}", serde_json::json!({"asset": placement.asset, "zone": placement.zone, "consequence": placement.consequence}));
    }
    let known: std::collections::HashSet<&str> = found.iter().map(|placement| placement.asset.as_str()).collect();
    let unknown: Vec<&String> = assets.iter().filter(|asset| !known.contains(asset.trim().to_ascii_lowercase().as_str())).collect();
    if unknown.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        for asset in unknown {
            eprintln!("error: {asset}: not in the asset graph of tenant {tenant}");
        }
        Ok(ExitCode::from(1))
    }
}
