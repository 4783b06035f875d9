//! Context lookups of a batch (FR-ENR-004..006, FR-RSN-006): threat-intel exact matches, UEBA
//! user risk, CTEM exposures and approved FP patterns, read once per tenant for every alert of the
//! batch, the four lookups running concurrently, each under its own timeout
//! ([`crate::PipelineSettings::enricher_timeout`]). A lookup that fails or times out does not stop
//! the investigations: it is recorded on each of them, user risk becomes `unknown` (never `low`),
//! and an alert whose threat-intel lookup failed is never closed automatically.
//!
//! The asset zone of an alert comes from the asset graph (`[graph]`, read once per batch before
//! the other lookups: hosts first, then addresses), else from the static zone table
//! (`[[pipeline.zones]]`); CTEM exposures count only for the alert's host *in that zone*
//! (FR-ENR-006: by asset and zone, not by asset id alone), and data older than 24 h is stale.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::IpAddr;
use std::time::Duration as StdDuration;

use aluskort_config::{AssetZone, Consequence};
use aluskort_core::entity::AlertEntities;
use aluskort_core::graph_state::IocMatch;
use aluskort_core::{Ioc, TenantId};
use aluskort_ingest::NormalizedAlert;
use aluskort_knowledge::fp::{FpMatch, FpMatcher};
use aluskort_knowledge::ueba::{RiskState, classify_user_risk};
use aluskort_store::{ContextStore, Exposure, ThreatIntelStore, TiIndicator, UserRisk};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// CTEM data older than this is stale (FR-ENR-006).
pub const CTEM_STALE_HOURS: i64 = 24;

/// What the lookups of one batch found, per tenant.
#[derive(Default)]
pub(crate) struct BatchContext {
    ti: HashMap<TenantId, HashMap<String, TiIndicator>>,
    risk: HashMap<(TenantId, String), UserRisk>,
    exposures: HashMap<(TenantId, String, String), Vec<Exposure>>,
    fp: HashMap<TenantId, FpMatcher>,
    /// Where the batch's assets reside, per tenant, as the asset graph placed them.
    placed: HashMap<TenantId, HashMap<String, AssetZone>>,
    /// Lookups that failed or timed out, by enricher (`threat_intel`, `ueba`, `ctem`,
    /// `fp_patterns`), with the reason.
    failures: HashMap<&'static str, String>,
    /// FP patterns that could not be compiled (id, reason), reported once per batch.
    pub(crate) bad_patterns: Vec<(String, String)>,
}

/// The sources the lookups read.
pub(crate) struct Sources<'a> {
    pub threat_intel: Option<&'a dyn ThreatIntelStore>,
    pub context: Option<&'a dyn ContextStore>,
    pub zones: &'a [AssetZone],
    pub graph: Option<&'a dyn aluskort_knowledge::assets::AssetGraph>,
    pub timeout: StdDuration,
}

/// An alert's host names (lower-case) and addresses, as the zone table and CTEM see them.
fn assets(entities: &AlertEntities) -> (Vec<String>, Vec<IpAddr>) {
    let mut hosts: Vec<String> = entities
        .hosts
        .iter()
        .flat_map(|host| [host.hostname.as_deref(), host.fqdn.as_deref()])
        .flatten()
        .map(str::to_ascii_lowercase)
        .collect();
    hosts.sort_unstable();
    hosts.dedup();
    let ips = entities.ips.iter().filter_map(|ip| ip.address.parse().ok()).collect();
    (hosts, ips)
}

/// The zone of an alert's assets, if the zone table places one of them.
fn static_zone<'z>(zones: &'z [AssetZone], entities: &AlertEntities) -> Option<&'z AssetZone> {
    let (hosts, ips) = assets(entities);
    hosts.iter().find_map(|host| aluskort_config::zone_of(zones, Some(host), &[])).or_else(|| aluskort_config::zone_of(zones, None, &ips))
}

/// The names the asset graph knows an alert's assets by: host names (lower-case), then addresses.
fn graph_names(entities: &AlertEntities) -> Vec<String> {
    let (hosts, ips) = assets(entities);
    hosts.into_iter().chain(ips.iter().map(ToString::to_string)).collect()
}

/// The `[graph]` lookup of a batch: each tenant's asset names, and a zone per name placed.
async fn placed_assets(
    graph: &dyn aluskort_knowledge::assets::AssetGraph,
    alerts: &[&NormalizedAlert],
) -> Result<HashMap<TenantId, HashMap<String, AssetZone>>, String> {
    let mut names: HashMap<TenantId, HashSet<String>> = HashMap::new();
    for alert in alerts {
        names.entry(alert.alert.tenant_id.clone()).or_default().extend(graph_names(&alert.entities));
    }
    let mut placed: HashMap<TenantId, HashMap<String, AssetZone>> = HashMap::new();
    for (tenant, names) in names.into_iter().filter(|(_, names)| !names.is_empty()) {
        let names: Vec<String> = names.into_iter().collect();
        for placement in graph.placements(tenant.as_str(), &names).await.map_err(|error| error.to_string())? {
            // A zone without a consequence class (written by another tool) places nothing.
            let Some(consequence) = placement.consequence() else { continue };
            let zone = AssetZone { name: placement.zone, consequence, hosts: vec![placement.asset.clone()], cidrs: Vec::new() };
            placed.entry(tenant.clone()).or_default().insert(placement.asset, zone);
        }
    }
    Ok(placed)
}

/// The UEBA keys an account may be known by: its UPN, `domain\name`, and its name.
fn user_keys(entities: &AlertEntities) -> Vec<String> {
    let mut keys = Vec::new();
    for account in &entities.accounts {
        if let Some(upn) = &account.upn {
            keys.push(aluskort_store::user_key(upn));
        }
        if let Some(name) = &account.name {
            if let Some(domain) = &account.domain {
                keys.push(aluskort_store::user_key(&format!("{domain}\\{name}")));
            }
            keys.push(aluskort_store::user_key(name));
        }
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// The `(type, value)` pairs FP entity patterns are tested against.
pub(crate) fn fp_entities(entities: &AlertEntities) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut push = |kind: &str, value: &str| pairs.push((kind.to_owned(), value.to_owned()));
    for host in &entities.hosts {
        for name in [&host.hostname, &host.fqdn].into_iter().flatten() {
            push("host", name);
        }
    }
    for account in &entities.accounts {
        for name in [&account.upn, &account.name, &account.sid, &account.aad_user_id].into_iter().flatten() {
            push("account", name);
        }
    }
    for ip in &entities.ips {
        push("ip", &ip.address);
    }
    for hash in entities.file_hashes.iter().chain(entities.files.iter().flat_map(|file| file.hashes.iter())) {
        push("file_hash", &hash.value);
    }
    for file in &entities.files {
        if let Some(name) = &file.name {
            push("file", name);
        }
    }
    for url in &entities.urls {
        push("url", &url.url);
    }
    for dns in &entities.dns {
        push("domain", &dns.domain);
    }
    for mailbox in &entities.mailboxes {
        if let Some(address) = &mailbox.address {
            push("mailbox", address);
        }
    }
    for process in &entities.processes {
        for text in [&process.command_line, &process.image_file].into_iter().flatten() {
            push("process", text);
        }
    }
    pairs
}

/// Runs `lookup` under `timeout`; a failure or timeout becomes the reason.
async fn bounded<T>(timeout: StdDuration, lookup: impl Future<Output = Result<T, String>>) -> Result<T, String> {
    match tokio::time::timeout(timeout, lookup).await {
        Ok(result) => result,
        Err(_) => Err(format!("timed out after {} ms", timeout.as_millis())),
    }
}

/// What one tenant's alerts of the batch ask for.
#[derive(Default)]
struct Wanted {
    indicators: HashSet<String>,
    users: HashSet<String>,
    assets: HashSet<(String, String)>,
}

impl BatchContext {
    /// The zone of an alert's assets: where the asset graph placed one of them (hosts first, then
    /// addresses), else the zone table's.
    pub(crate) fn zone<'z>(&'z self, zones: &'z [AssetZone], tenant: &TenantId, entities: &AlertEntities) -> Option<&'z AssetZone> {
        let placed = self.placed.get(tenant);
        placed.and_then(|placed| graph_names(entities).iter().find_map(|name| placed.get(name))).or_else(|| static_zone(zones, entities))
    }

    /// Reads everything the batch's alerts need: the asset graph first (zones decide which
    /// exposures count), then the four lookups concurrently.
    pub(crate) async fn load(sources: &Sources<'_>, alerts: &[&NormalizedAlert], now: DateTime<Utc>) -> BatchContext {
        let timeout = sources.timeout;
        let mut context = BatchContext::default();
        if let Some(graph) = sources.graph {
            match bounded(timeout, placed_assets(graph, alerts)).await {
                Ok(placed) => context.placed = placed,
                Err(reason) => {
                    context.failures.insert("asset_graph", reason);
                }
            }
        }
        let mut wanted: HashMap<TenantId, Wanted> = HashMap::new();
        for alert in alerts {
            let entry = wanted.entry(alert.alert.tenant_id.clone()).or_default();
            entry.indicators.extend(alert.iocs.iter().map(Ioc::to_string));
            entry.users.extend(user_keys(&alert.entities));
            if let Some(zone) = context.zone(sources.zones, &alert.alert.tenant_id, &alert.entities) {
                entry.assets.extend(assets(&alert.entities).0.into_iter().map(|host| (host, zone.name.clone())));
            }
        }
        let ti = bounded(timeout, async {
            let mut found = HashMap::new();
            let Some(store) = sources.threat_intel else { return Ok(found) };
            for (tenant, want) in &wanted {
                if want.indicators.is_empty() {
                    continue;
                }
                let indicators: Vec<String> = want.indicators.iter().cloned().collect();
                let hits = store.match_indicators(tenant.as_str(), &indicators, now).await.map_err(|error| error.to_string())?;
                let best: &mut HashMap<String, TiIndicator> = found.entry(tenant.clone()).or_default();
                for hit in hits {
                    match best.get(&hit.indicator) {
                        Some(kept) if kept.confidence >= hit.confidence => {}
                        _ => {
                            best.insert(hit.indicator.clone(), hit);
                        }
                    }
                }
            }
            Ok(found)
        });
        let ueba = bounded(timeout, async {
            let mut found = HashMap::new();
            let Some(store) = sources.context else { return Ok(found) };
            for (tenant, want) in &wanted {
                if want.users.is_empty() {
                    continue;
                }
                let users: Vec<String> = want.users.iter().cloned().collect();
                for row in store.user_risk(tenant.as_str(), &users).await.map_err(|error| error.to_string())? {
                    found.insert((tenant.clone(), aluskort_store::user_key(&row.user)), row);
                }
            }
            Ok(found)
        });
        let ctem = bounded(timeout, async {
            let mut found: HashMap<(TenantId, String, String), Vec<Exposure>> = HashMap::new();
            let Some(store) = sources.context else { return Ok(found) };
            for (tenant, want) in &wanted {
                if want.assets.is_empty() {
                    continue;
                }
                let assets: Vec<(String, String)> = want.assets.iter().cloned().collect();
                for exposure in store.exposures_for_assets(tenant.as_str(), &assets).await.map_err(|error| error.to_string())? {
                    let key = (tenant.clone(), exposure.asset_id.to_ascii_lowercase(), exposure.asset_zone.clone());
                    found.entry(key).or_default().push(exposure);
                }
            }
            Ok(found)
        });
        let fp = bounded(timeout, async {
            let mut found = HashMap::new();
            let mut bad = Vec::new();
            let Some(store) = sources.context else { return Ok((found, bad)) };
            for tenant in wanted.keys() {
                let patterns = store.matchable_fp_patterns(tenant.as_str(), now).await.map_err(|error| error.to_string())?;
                if patterns.is_empty() {
                    continue;
                }
                let (matcher, errors) = FpMatcher::compile(&patterns);
                bad.extend(errors);
                found.insert(tenant.clone(), matcher);
            }
            Ok((found, bad))
        });
        let (ti, ueba, ctem, fp) = tokio::join!(ti, ueba, ctem, fp);
        match ti {
            Ok(found) => context.ti = found,
            Err(reason) => {
                context.failures.insert("threat_intel", reason);
            }
        }
        match ueba {
            Ok(found) => context.risk = found,
            Err(reason) => {
                context.failures.insert("ueba", reason);
            }
        }
        match ctem {
            Ok(found) => context.exposures = found,
            Err(reason) => {
                context.failures.insert("ctem", reason);
            }
        }
        match fp {
            Ok((found, bad)) => {
                context.fp = found;
                context.bad_patterns = bad;
            }
            Err(reason) => {
                context.failures.insert("fp_patterns", reason);
            }
        }
        context
    }

    /// The lookups that failed or timed out for this batch, by enricher.
    pub(crate) fn failures(&self) -> &HashMap<&'static str, String> {
        &self.failures
    }

    /// The alert's indicators found in threat intelligence.
    pub(crate) fn ti_matches(&self, tenant: &TenantId, iocs: &[Ioc]) -> Vec<IocMatch> {
        let Some(found) = self.ti.get(tenant) else { return Vec::new() };
        iocs.iter()
            .filter_map(|ioc| {
                found.get(&ioc.to_string()).map(|hit| IocMatch {
                    ioc: ioc.clone(),
                    source: hit.source.clone(),
                    confidence: f64::from(hit.confidence) / 100.0,
                })
            })
            .collect()
    }

    /// The riskiest of the alert's accounts (FR-ENR-005): `no_baseline` when UEBA knows none of
    /// them, `unknown` when the lookup failed or the data is stale.
    pub(crate) fn user_risk(&self, tenant: &TenantId, entities: &AlertEntities, now: DateTime<Utc>) -> (RiskState, Vec<Value>) {
        if self.failures.contains_key("ueba") {
            return (RiskState::Unknown, Vec::new());
        }
        let rows: Vec<&UserRisk> =
            user_keys(entities).into_iter().filter_map(|key| self.risk.get(&(tenant.clone(), key))).collect::<Vec<_>>();
        if rows.is_empty() {
            return (RiskState::NoBaseline, Vec::new());
        }
        let rank = |state: RiskState| match state {
            RiskState::NoBaseline => 0,
            RiskState::Unknown => 1,
            RiskState::Low => 2,
            RiskState::Medium => 3,
            RiskState::High => 4,
        };
        let risk =
            rows.iter().map(|row| classify_user_risk(Some(row), now)).max_by_key(|state| rank(*state)).unwrap_or(RiskState::NoBaseline);
        let context = rows
            .iter()
            .map(|row| {
                json!({"user": row.user, "priority": row.priority, "observed_at": row.observed_at,
                       "risk": classify_user_risk(Some(row), now).as_str(), "detail": row.detail})
            })
            .collect();
        (risk, context)
    }

    /// Open exposures of the alert's hosts in its zone, highest score first, each marked stale
    /// when older than [`CTEM_STALE_HOURS`].
    pub(crate) fn exposures(&self, tenant: &TenantId, entities: &AlertEntities, zone: &AssetZone, now: DateTime<Utc>) -> Vec<Value> {
        let mut found: Vec<&Exposure> = assets(entities)
            .0
            .into_iter()
            .filter_map(|host| self.exposures.get(&(tenant.clone(), host, zone.name.clone())))
            .flatten()
            .collect();
        found.sort_by(|a, b| b.ctem_score.total_cmp(&a.ctem_score).then_with(|| a.exposure_id.cmp(&b.exposure_id)));
        found.dedup_by(|a, b| a.exposure_id == b.exposure_id);
        found
            .into_iter()
            .map(|exposure| {
                let stale = now - exposure.updated_at > chrono::Duration::hours(CTEM_STALE_HOURS);
                json!({"exposure_id": exposure.exposure_id, "asset_id": exposure.asset_id, "asset_zone": exposure.asset_zone,
                       "status": exposure.status, "ctem_score": exposure.ctem_score, "title": exposure.title,
                       "updated_at": exposure.updated_at, "stale": stale})
            })
            .collect()
    }

    /// The best approved FP pattern for the alert, if any scores above zero.
    pub(crate) fn fp_match(&self, tenant: &TenantId, title: &str, entities: &AlertEntities) -> Option<FpMatch> {
        self.fp.get(tenant)?.best(title, &fp_entities(entities))
    }
}

/// The consequence recorded for an alert (`case_facts.asset_zone`), if its zone is known.
pub(crate) fn recorded_consequence(facts: &serde_json::Map<String, Value>) -> Option<Consequence> {
    facts.get("asset_zone")?.get("consequence")?.as_str().and_then(Consequence::parse)
}
