//! `aluskort llm status`: the configured providers, the route of every tier and the spend limits
//! (never a key). `aluskort llm usage [--days N] [--json]`: model calls, tokens, cost and latency
//! by day, tier and task from the call ledger, with today's and this month's spend against the
//! limits (NFR-OBS-002).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aluskort_config::{LlmConfig, LlmProviderConfig, OpenAiFlavorConfig};
use aluskort_gateway::Tier;
use aluskort_gateway::setup::build_router;
use aluskort_gateway::spend::{day_start, month_start, usd};
use aluskort_llm::deterministic::DeterministicProvider;
use aluskort_store::LlmUsageRow;
use chrono::Utc;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::wiring::{Backends, load_config};

fn describe(provider: &LlmProviderConfig) -> String {
    match provider {
        LlmProviderConfig::Deterministic => "deterministic (no model)".to_owned(),
        LlmProviderConfig::Anthropic { url, .. } => format!("anthropic at {url} (key set)"),
        LlmProviderConfig::OpenAiCompatible { url, api_key, flavor, json_object } => format!(
            "openai-compatible at {url} ({}, {}, {})",
            match flavor {
                OpenAiFlavorConfig::OpenAi => "openai".to_owned(),
                OpenAiFlavorConfig::Azure { api_version } => format!("azure {api_version}"),
            },
            if api_key.is_some() { "key set" } else { "no key" },
            if *json_object { "json mode" } else { "tool calls" }
        ),
    }
}

fn print_limits(out: &mut impl Write, llm: &LlmConfig) -> std::io::Result<()> {
    let spend = &llm.spend;
    writeln!(
        out,
        "spend limits: daily soft ${:.2} / hard ${:.2} (critical exempt), monthly soft ${:.2} / hard ${:.2}",
        spend.daily_soft_usd, spend.daily_hard_usd, spend.monthly_soft_usd, spend.monthly_hard_usd
    )
}

pub fn status(path: Option<&Path>, data_dir: Option<PathBuf>, env: &HashMap<String, String>) -> anyhow::Result<ExitCode> {
    let config = load_config(path, data_dir, env)?;
    let llm = &config.llm;
    let router = build_router(llm, DeterministicProvider::new(), &CancellationToken::new())
        .map_err(|error| anyhow::anyhow!("cannot set up the model providers: {error}"))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "primary provider: {}", describe(&llm.primary))?;
    writeln!(out, "fallback provider: {}", llm.fallback.as_ref().map_or_else(|| "none".to_owned(), describe))?;
    writeln!(out, "degradation level: {}", serde_json::to_value(router.degradation())?.as_str().unwrap_or("unknown"))?;
    for tier in Tier::ALL {
        match router.routes(tier) {
            None => writeln!(out, "{:<12} deterministic only", tier.as_str())?,
            Some(routes) => {
                let fallbacks: Vec<String> =
                    routes.fallbacks.iter().map(|route| format!("{} {}", route.provider.name(), route.model)).collect();
                writeln!(
                    out,
                    "{:<12} {} {}{}{}{}",
                    tier.as_str(),
                    routes.primary.provider.name(),
                    routes.primary.model,
                    if routes.primary.thinking { " +thinking" } else { "" },
                    if routes.primary.batch.is_some() { " +batch" } else { "" },
                    if fallbacks.is_empty() { String::new() } else { format!(", fallback {}", fallbacks.join(", ")) }
                )?;
            }
        }
    }
    print_limits(&mut out, llm)?;
    let concurrency = llm.queue_concurrency;
    writeln!(
        out,
        "queue concurrency: critical {}, high {}, normal {}, low {}",
        concurrency[0], concurrency[1], concurrency[2], concurrency[3]
    )?;
    Ok(ExitCode::SUCCESS)
}

pub async fn usage(
    path: Option<&Path>,
    data_dir: Option<PathBuf>,
    env: &HashMap<String, String>,
    days: u32,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    if days == 0 {
        anyhow::bail!("--days must be at least 1");
    }
    let config = load_config(path, data_dir, env)?;
    let backends = Backends::open(&config).await?;
    let now = Utc::now();
    let from = day_start(now) - chrono::Duration::days(i64::from(days) - 1);
    let result = async {
        let rows = backends.usage_store.llm_usage(from, now + chrono::Duration::seconds(1)).await?;
        let today = backends.usage_store.llm_cost_since(day_start(now)).await?;
        let month = backends.usage_store.llm_cost_since(month_start(now)).await?;
        anyhow::Ok((rows, today, month))
    }
    .await;
    backends.close().await;
    let (rows, today, month) = result?;
    let mut out = std::io::stdout().lock();
    if as_json {
        let report = json!({
            "from": from.to_rfc3339(),
            "rows": rows,
            "spend": {"today_usd": usd(today), "month_usd": usd(month), "limits": {
                "daily_soft_usd": config.llm.spend.daily_soft_usd, "daily_hard_usd": config.llm.spend.daily_hard_usd,
                "monthly_soft_usd": config.llm.spend.monthly_soft_usd, "monthly_hard_usd": config.llm.spend.monthly_hard_usd,
            }},
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "model usage since {} ({} day(s))", from.format("%Y-%m-%d"), days)?;
    if rows.is_empty() {
        writeln!(out, "no model calls recorded (the deterministic provider makes none)")?;
    } else {
        writeln!(
            out,
            "{:<10}  {:<11}  {:<26} {:>6} {:>6} {:>10} {:>9} {:>10} {:>10} {:>10} {:>9}",
            "day", "tier", "task", "calls", "failed", "input", "output", "cache_rd", "cache_wr", "cost_usd", "avg_ms"
        )?;
        let mut total = LlmUsageRow::default();
        for row in &rows {
            writeln!(
                out,
                "{:<10}  {:<11}  {:<26} {:>6} {:>6} {:>10} {:>9} {:>10} {:>10} {:>10.4} {:>9}",
                row.day,
                row.tier,
                row.task,
                row.calls,
                row.failures,
                row.input_tokens,
                row.output_tokens,
                row.cache_read_tokens,
                row.cache_write_tokens,
                usd(row.cost_micros),
                row.latency_ms / row.calls.max(1)
            )?;
            total.calls += row.calls;
            total.failures += row.failures;
            total.input_tokens += row.input_tokens;
            total.output_tokens += row.output_tokens;
            total.cache_read_tokens += row.cache_read_tokens;
            total.cache_write_tokens += row.cache_write_tokens;
            total.cost_micros += row.cost_micros;
            total.latency_ms += row.latency_ms;
        }
        writeln!(
            out,
            "{:<10}  {:<11}  {:<26} {:>6} {:>6} {:>10} {:>9} {:>10} {:>10} {:>10.4} {:>9}",
            "total",
            "",
            "",
            total.calls,
            total.failures,
            total.input_tokens,
            total.output_tokens,
            total.cache_read_tokens,
            total.cache_write_tokens,
            usd(total.cost_micros),
            total.latency_ms / total.calls.max(1)
        )?;
    }
    writeln!(out, "spend today ${:.4}, this month ${:.4}", usd(today), usd(month))?;
    print_limits(&mut out, &config.llm)?;
    Ok(ExitCode::SUCCESS)
}
