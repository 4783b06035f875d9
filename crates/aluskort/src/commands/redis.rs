//! `aluskort killswitch on|off|list` (run-time kill switches in the `[redis]` of the config) and
//! `aluskort bench redis` (IOC lookup latency against a real server, NFR-PRF-008).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aluskort_cache::RedisCache;
use aluskort_cache::kill::KillSwitchStore;
use aluskort_cache::ti::CachedThreatIntel;
use aluskort_config::{KillDimension, RedisConfig, SecretString};
use aluskort_store::{SqliteStore, ThreatIntelStore, TiIndicator};
use anyhow::Context;

/// What `killswitch` does.
pub enum KillSwitchAction {
    On { dimension: String, value: String, actor: String, reason: String },
    Off { dimension: String, value: String },
    List { json: bool },
}

fn dimension(text: &str) -> anyhow::Result<KillDimension> {
    KillDimension::parse(text).with_context(|| format!("dimension {text:?}: expected tenant, source, technique or pattern"))
}

pub async fn killswitch(
    config_path: Option<&Path>,
    data_dir: Option<PathBuf>,
    env: &HashMap<String, String>,
    action: KillSwitchAction,
) -> anyhow::Result<ExitCode> {
    let config = crate::wiring::load_config(config_path, data_dir, env)?;
    let configured = config.kill_switches.clone();
    let Some(redis) = &config.redis else {
        if let KillSwitchAction::List { json } = action {
            print_configured(&configured, json);
            return Ok(ExitCode::SUCCESS);
        }
        anyhow::bail!(
            "switching at run time needs `[redis]` in the config (every worker reads the switches from there); \
             without it, kill switches are `[pipeline.kill_switches]` in the config file"
        );
    };
    let store = KillSwitchStore::new(RedisCache::connect(redis).await.context("cannot reach the Redis of `[redis]`")?);
    match action {
        KillSwitchAction::On { dimension: name, value, actor, reason } => {
            let switch = store.activate(dimension(&name)?, &value, &actor, &reason, chrono::Utc::now()).await?;
            println!(
                "kill switch on: {} {} (by {}: {}); every worker holds it within {} s",
                switch.dimension,
                switch.value,
                switch.activated_by,
                switch.reason,
                redis.kill_switch_refresh.as_secs()
            );
            Ok(ExitCode::SUCCESS)
        }
        KillSwitchAction::Off { dimension: name, value } => {
            let dimension = dimension(&name)?;
            if store.deactivate(dimension, &value).await? {
                println!("kill switch off: {dimension} {value}");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("no run-time kill switch on {dimension} {value}");
                Ok(ExitCode::from(1))
            }
        }
        KillSwitchAction::List { json } => {
            print_configured(&configured, json);
            for switch in store.list().await? {
                if json {
                    let mut line = serde_json::to_value(&switch)?;
                    line["origin"] = "redis".into();
                    println!("{line}");
                } else {
                    println!(
                        "{:<10} {:<24} redis, by {} at {}: {}",
                        switch.dimension,
                        switch.value,
                        switch.activated_by,
                        switch.activated_at.to_rfc3339(),
                        switch.reason
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_configured(configured: &aluskort_config::KillSwitches, json: bool) {
    for dimension in KillDimension::ALL {
        for value in configured.values(dimension) {
            if json {
                println!("{}", serde_json::json!({"dimension": dimension.as_str(), "value": value, "origin": "config"}));
            } else {
                println!("{:<10} {value:<24} config file", dimension.as_str());
            }
        }
    }
}

/// `bench redis`: IOC exact-match lookups through the cache against a real Redis.
pub async fn bench(url: String, lookups: usize, concurrency: usize) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(lookups > 0, "--lookups must be at least 1");
    let concurrency = concurrency.clamp(1, 256);
    let config = RedisConfig {
        url: SecretString::new(url),
        key_prefix: format!("aluskort-bench:{}:", std::process::id()),
        timeout: Duration::from_secs(5),
        negative_ttl_secs: 3_600,
        kill_switch_refresh: Duration::from_secs(10),
    };
    let cache = RedisCache::connect(&config).await.context("cannot reach Redis")?;
    let store = Arc::new(SqliteStore::in_memory().await?);
    let cached = Arc::new(CachedThreatIntel::new(cache.clone(), store));
    // 10,000 indicators (half global, half the tenant's); lookups ask for them and for as many
    // that no feed has, so hits and cached misses are both measured.
    let now = chrono::Utc::now();
    let indicators: Vec<TiIndicator> = (0..10_000)
        .map(|n| TiIndicator {
            tenant_id: if n % 2 == 0 { String::new() } else { "acme".to_owned() },
            indicator: format!("ipv4:10.{}.{}.{}", n / 65_536, (n / 256) % 256, n % 256),
            confidence: 60 + (n % 40) as u8,
            source: "bench".to_owned(),
            description: "benchmark indicator".to_owned(),
            expires_at: now + chrono::Duration::days(30),
        })
        .collect();
    cached.upsert_indicators(&indicators).await?;
    let names: Arc<Vec<String>> =
        Arc::new((0..20_000).map(|n| format!("ipv4:10.{}.{}.{}", n / 65_536, (n / 256) % 256, n % 256)).collect());
    // Warm: every name once, so the measured lookups are answered by Redis.
    for chunk in names.chunks(500) {
        cached.match_indicators("acme", chunk, now).await?;
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (cached, names) = (Arc::clone(&cached), Arc::clone(&names));
        let share = lookups / concurrency + usize::from(worker < lookups % concurrency);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(share);
            let mut hits = 0usize;
            for n in 0..share {
                let name = &names[(worker * 7_919 + n * 104_729) % names.len()];
                let at = Instant::now();
                let found = cached.match_indicators("acme", std::slice::from_ref(name), now).await?;
                latencies.push(at.elapsed());
                hits += found.len();
            }
            anyhow::Ok((latencies, hits))
        }));
    }
    let mut latencies = Vec::with_capacity(lookups);
    let mut hits = 0;
    for task in tasks {
        let (mut part, part_hits) = task.await.context("bench task panicked")??;
        latencies.append(&mut part);
        hits += part_hits;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let percentile = |p: f64| crate::commands::bench::percentile_ms(&latencies, p);
    println!(
        "bench redis: {lookups} IOC lookups ({concurrency} concurrent, one indicator each, {hits} hits) in {:.2}s = {:.0} lookups/s; \
         p50 {:.3} ms, p95 {:.3} ms, p99 {:.3} ms, max {:.3} ms (NFR-PRF-008: < 1 ms, p95 < 5 ms)",
        elapsed.as_secs_f64(),
        lookups as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
        percentile(0.50),
        percentile(0.95),
        percentile(0.99),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1_000.0),
    );
    cache.clear_prefix().await?;
    Ok(ExitCode::SUCCESS)
}
