//! Enrichment in the pipeline: FP short-circuit (FR-RSN-006), UEBA risk (FR-ENR-005), CTEM
//! exposures by asset and zone (FR-ENR-006), and lookups that fail or time out.

use aluskort_config::{AssetZone, Consequence};
use aluskort_core::{Classification, GraphState, InvestigationState};
use aluskort_store::{AuditStore, ContextStore, EntityPattern, Exposure, FpPattern, FpStatus, InvestigationFilter, StoreResult, UserRisk};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::tests::{Harness, harness_with};
use super::*;

fn sentinel_alert(id: &str, name: &str, severity: &str, host: &str, account: &str) -> Value {
    let entities = json!([
        {"$id": "1", "Type": "host", "HostName": host},
        {"$id": "2", "Type": "account", "Name": account, "UPNSuffix": "contoso.com", "NTDomain": "CONTOSO"},
    ]);
    json!({"SystemAlertId": id, "AlertName": name, "AlertSeverity": severity, "TimeGenerated": Utc::now().to_rfc3339(),
           "ProductName": "Azure Sentinel", "Entities": entities.to_string()})
}

fn backup_pattern() -> FpPattern {
    FpPattern {
        pattern_id: "fp-backup".into(),
        tenant: None,
        name: "Nightly backup".into(),
        alert_name_regex: Some("^Backup job".into()),
        entity_patterns: vec![EntityPattern { entity_type: "host".into(), pattern: "^bkp-".into() }],
        confidence_threshold: 0.90,
        status: FpStatus::Approved,
        approved_by: vec!["alice".into(), "bob".into()],
        approval_date: Some(Utc::now()),
        expires_at: Some(Utc::now() + Duration::days(90)),
        created_at: Utc::now(),
        reason: "backup software reads every file".into(),
    }
}

async fn states_by_alert(harness: &Harness) -> HashMap<String, GraphState> {
    let states = harness.store.list_investigations(&InvestigationFilter::default()).await.expect("list");
    states.into_iter().map(|state| (state.alert_id.to_string(), state)).collect()
}

fn actions(state: &GraphState) -> Vec<&str> {
    state.decision_chain.iter().map(|entry| entry.action.as_str()).collect()
}

/// FR-RSN-006: an approved pattern scoring above 0.90 closes the alert as a false positive
/// before reasoning (no reasoning step, so no model call); a critical alert matching it, and an
/// alert matching only half of it, are not closed.
#[tokio::test]
async fn an_approved_fp_pattern_closes_the_alert_before_reasoning() {
    let harness = harness_with(|store| PipelineSettings {
        context: Some(store.clone()),
        degradation: aluskort_core::DegradationLevel::Full,
        ..PipelineSettings::default()
    })
    .await;
    harness.store.upsert_fp_pattern(&backup_pattern()).await.expect("pattern");
    harness
        .run(vec![
            sentinel_alert("fp-1", "Backup job read 40,000 files", "Medium", "bkp-01", "svc-backup"),
            sentinel_alert("fp-2", "Backup job read 40,000 files", "High", "ws-07", "svc-backup"),
            sentinel_alert("fp-3", "Backup job read 40,000 files", "Critical", "bkp-02", "svc-backup"),
        ])
        .await;
    let states = states_by_alert(&harness).await;
    let closed = &states["fp-1"];
    assert_eq!(closed.state, InvestigationState::Closed);
    assert_eq!(closed.classification, Some(Classification::FalsePositive));
    assert_eq!(closed.close_reason.as_deref(), Some("fp_pattern:fp-backup"));
    assert!(closed.decision_chain.iter().all(|entry| entry.agent != "reasoning_agent"), "{:?}", actions(closed));
    assert_eq!(closed.llm_calls, 0);

    let partial = &states["fp-2"];
    assert_eq!(partial.case_facts["fp_match"]["score"], json!(0.5));
    assert!(actions(partial).contains(&"fp_partial_match"), "{:?}", actions(partial));
    assert_ne!(partial.state, InvestigationState::Closed);

    let critical = &states["fp-3"];
    assert!(actions(critical).contains(&"fp_close_blocked"), "{:?}", actions(critical));
    assert_eq!(critical.state, InvestigationState::AwaitingHuman, "a critical alert is never dismissed automatically");

    let report = aluskort_audit::verify_store(harness.store.as_ref()).await.expect("verify");
    assert_eq!(report.first_break, None);
    let records = harness.store.audit_records("default", 0, 10_000).await.expect("records");
    let short = records.iter().filter(|record| record.event_type == "alert.short_circuited").count();
    assert_eq!(short, 1, "one short-circuit audited");
    harness.stop().await;
}

/// A kill switch on an FP pattern (REQUIREMENTS §1.9, switched on at run time through `[redis]`
/// or in the config file) stops that pattern closing alerts, audited as a blocked close; lifting
/// it lets the next alert close again, without a restart (the pipeline reads the shared switches).
#[tokio::test]
async fn a_kill_switch_on_an_fp_pattern_stops_it_closing_alerts() {
    let switches = aluskort_config::SharedKillSwitches::default();
    let shared = switches.clone();
    let harness = harness_with(move |store| PipelineSettings {
        context: Some(store.clone()),
        degradation: aluskort_core::DegradationLevel::Full,
        kill_switches: shared,
        ..PipelineSettings::default()
    })
    .await;
    harness.store.upsert_fp_pattern(&backup_pattern()).await.expect("pattern");
    switches.replace(aluskort_config::KillSwitches { patterns: vec!["fp-backup".into()], ..Default::default() });
    harness.run(vec![sentinel_alert("ks-1", "Backup job read 40,000 files", "Medium", "bkp-01", "svc-backup")]).await;
    switches.replace(aluskort_config::KillSwitches::default());
    harness.run(vec![sentinel_alert("ks-2", "Backup job read 40,000 files", "Medium", "bkp-03", "svc-backup")]).await;
    let states = states_by_alert(&harness).await;
    let held = &states["ks-1"];
    assert_ne!(held.state, InvestigationState::Closed, "{:?}", actions(held));
    let blocked = held.decision_chain.iter().find(|entry| entry.action == "fp_close_blocked").expect("a blocked close");
    assert!(blocked.reasoning.contains("kill switch on FP pattern fp-backup"), "{}", blocked.reasoning);
    assert_eq!(states["ks-2"].close_reason.as_deref(), Some("fp_pattern:fp-backup"), "lifted: the pattern closes again");
    harness.stop().await;
}

/// NFR-REL-003: at the deterministic level an FP match is evidence, and a human closes.
#[tokio::test]
async fn at_the_deterministic_level_an_fp_match_waits_for_a_human() {
    let harness = harness_with(|store| PipelineSettings { context: Some(store.clone()), ..PipelineSettings::default() }).await;
    harness.store.upsert_fp_pattern(&backup_pattern()).await.expect("pattern");
    harness.run(vec![sentinel_alert("fp-4", "Backup job read 40,000 files", "Low", "bkp-01", "svc-backup")]).await;
    let state = &states_by_alert(&harness).await["fp-4"];
    assert_eq!(state.state, InvestigationState::AwaitingHuman);
    assert_eq!(state.classification, Some(Classification::FalsePositive), "the reasoner adopts the FP match");
    assert!(actions(state).contains(&"fp_close_blocked"), "{:?}", actions(state));
    harness.stop().await;
}

fn zones() -> Vec<AssetZone> {
    vec![
        AssetZone { name: "Zone1_Critical".into(), consequence: Consequence::Critical, hosts: vec!["dc-*".into()], cidrs: vec![] },
        AssetZone { name: "Zone3_Enterprise".into(), consequence: Consequence::Medium, hosts: vec!["ws-*".into()], cidrs: vec![] },
    ]
}

fn exposure(id: &str, asset: &str, zone: &str, status: &str, score: f64, updated_at: DateTime<Utc>) -> Exposure {
    Exposure {
        tenant: "default".into(),
        exposure_id: id.into(),
        asset_id: asset.into(),
        asset_zone: zone.into(),
        status: status.into(),
        ctem_score: score,
        title: format!("exposure {id}"),
        updated_at,
    }
}

/// FR-ENR-005/006: the riskiest account's UEBA state (absent is `no_baseline`, stale is
/// `unknown`, never `low`), and CTEM exposures counted for the asset in its zone only.
#[tokio::test]
async fn user_risk_and_exposures_enrich_the_investigation() {
    let harness =
        harness_with(|store| PipelineSettings { context: Some(store.clone()), zones: zones(), ..PipelineSettings::default() }).await;
    let now = Utc::now();
    let risk = |user: &str, priority: f64, observed_at| UserRisk {
        tenant: "default".into(),
        user: user.into(),
        priority,
        observed_at,
        detail: json!({"source": "test"}),
    };
    harness
        .store
        .upsert_user_risk(&[risk("alice@contoso.com", 8.0, now - Duration::hours(1)), risk("contoso\\bob", 1.0, now - Duration::hours(30))])
        .await
        .expect("risk");
    harness
        .store
        .upsert_exposures(&[
            exposure("e-1", "ws-01", "Zone3_Enterprise", "Open", 8.5, now - Duration::hours(2)),
            exposure("e-2", "ws-01", "Zone9_Lab", "Open", 9.9, now),
            exposure("e-3", "ws-01", "Zone3_Enterprise", "Closed", 9.0, now),
            exposure("e-4", "dc-01", "Zone1_Critical", "Open", 5.0, now - Duration::hours(48)),
        ])
        .await
        .expect("exposures");
    harness
        .run(vec![
            sentinel_alert("u-1", "Suspicious sign-in", "Medium", "ws-01", "alice"),
            sentinel_alert("u-2", "Suspicious sign-in", "Medium", "dc-01", "bob"),
            sentinel_alert("u-3", "Suspicious sign-in", "Medium", "lab-01", "carol"),
        ])
        .await;
    let states = states_by_alert(&harness).await;

    let alice = &states["u-1"];
    assert_eq!(alice.risk_state, "high");
    let ids: Vec<&str> = alice.ctem_exposures.iter().filter_map(|e| e["exposure_id"].as_str()).collect();
    assert_eq!(ids, vec!["e-1"], "same asset in another zone, and closed findings, do not count");
    assert_eq!(alice.case_facts["asset_zone"]["zone"], json!("Zone3_Enterprise"));
    let reasoning = alice.case_facts["reasoning"].to_string();
    assert!(reasoning.contains("UEBA risk is high") && reasoning.contains("open exposure"), "{reasoning}");

    let bob = &states["u-2"];
    assert_eq!(bob.risk_state, "unknown", "30 h old UEBA data is stale, not low");
    assert_eq!(bob.ctem_exposures[0]["stale"], json!(true));
    let reasoning = bob.case_facts["reasoning"].to_string();
    assert!(reasoning.contains("zone Zone1_Critical (critical consequence)"), "{reasoning}");

    let carol = &states["u-3"];
    assert_eq!(carol.risk_state, "no_baseline");
    assert!(carol.ctem_exposures.is_empty());
    assert_eq!(carol.case_facts["asset_zone"]["zone"], Value::Null);
    harness.stop().await;
}

/// `[graph]` decides an alert's zone before the zone table: its placement moves ws-01 into
/// Zone9_Lab (so that zone's exposure counts, not Zone3's) and places lab-01, which the table does
/// not know; dc-01, absent from the graph, keeps the table's zone.
#[tokio::test]
async fn the_asset_graph_places_assets_before_the_zone_table() {
    use aluskort_knowledge::assets::{AssetGraph, MemoryGraph, Placement};
    let dir = tempfile::tempdir().expect("tempdir");
    let graph = Arc::new(MemoryGraph::open(dir.path()).await.expect("graph"));
    let placements = [Placement::new("default", "WS-01", "Zone9_Lab", "high"), Placement::new("default", "lab-01", "Zone9_Lab", "high")];
    graph.place(&placements.map(|placement| placement.expect("valid"))).await.expect("place");
    let asset_graph: Arc<dyn AssetGraph> = graph;
    let harness = harness_with(move |store| PipelineSettings {
        context: Some(store.clone()),
        zones: zones(),
        asset_graph: Some(asset_graph),
        ..PipelineSettings::default()
    })
    .await;
    let now = Utc::now();
    harness
        .store
        .upsert_exposures(&[
            exposure("e-1", "ws-01", "Zone3_Enterprise", "Open", 8.5, now),
            exposure("e-2", "ws-01", "Zone9_Lab", "Open", 9.9, now),
        ])
        .await
        .expect("exposures");
    harness
        .run(vec![
            sentinel_alert("g-1", "Suspicious sign-in", "Medium", "ws-01", "alice"),
            sentinel_alert("g-2", "Suspicious sign-in", "Medium", "dc-01", "bob"),
            sentinel_alert("g-3", "Suspicious sign-in", "Medium", "lab-01", "carol"),
        ])
        .await;
    let states = states_by_alert(&harness).await;
    assert_eq!(states["g-1"].case_facts["asset_zone"], json!({"zone": "Zone9_Lab", "consequence": "high"}));
    let ids: Vec<&str> = states["g-1"].ctem_exposures.iter().filter_map(|e| e["exposure_id"].as_str()).collect();
    assert_eq!(ids, vec!["e-2"], "exposures of the zone the graph places the asset in");
    assert_eq!(states["g-2"].case_facts["asset_zone"]["zone"], json!("Zone1_Critical"), "the table still places what the graph does not");
    assert_eq!(states["g-3"].case_facts["asset_zone"]["zone"], json!("Zone9_Lab"));
    harness.stop().await;
}

/// A context source that answers too late (UEBA) or fails (the rest).
struct Unreliable;

#[async_trait]
impl ContextStore for Unreliable {
    async fn upsert_fp_pattern(&self, _: &FpPattern) -> StoreResult<()> {
        Ok(())
    }
    async fn replace_fp_pattern(&self, _: &FpPattern, _: &FpPattern) -> StoreResult<()> {
        Ok(())
    }
    async fn fp_pattern(&self, _: &str) -> StoreResult<Option<FpPattern>> {
        Ok(None)
    }
    async fn matchable_fp_patterns(&self, _: &str, _: DateTime<Utc>) -> StoreResult<Vec<FpPattern>> {
        Err(aluskort_store::StoreError::new(aluskort_store::StoreErrorKind::Unavailable, anyhow::anyhow!("connection refused")))
    }
    async fn fp_patterns(&self, _: Option<&str>, _: Option<FpStatus>) -> StoreResult<Vec<FpPattern>> {
        Err(aluskort_store::StoreError::new(aluskort_store::StoreErrorKind::Unavailable, anyhow::anyhow!("connection refused")))
    }
    async fn upsert_user_risk(&self, _: &[UserRisk]) -> StoreResult<u64> {
        Ok(0)
    }
    async fn user_risk(&self, _: &str, _: &[String]) -> StoreResult<Vec<UserRisk>> {
        tokio::time::sleep(StdDuration::from_secs(30)).await;
        Ok(Vec::new())
    }
    async fn upsert_exposures(&self, _: &[Exposure]) -> StoreResult<u64> {
        Ok(0)
    }
    async fn exposures_for_assets(&self, _: &str, _: &[(String, String)]) -> StoreResult<Vec<Exposure>> {
        Ok(Vec::new())
    }
}

/// A lookup that times out or fails is recorded and the investigation goes on: user risk is
/// `unknown` (FR-ENR-005: a UEBA error is not `no_baseline`), the failure is on the verdict.
#[tokio::test]
async fn a_slow_or_failing_lookup_is_recorded_and_the_investigation_goes_on() {
    let harness = harness_with(|_| PipelineSettings {
        context: Some(Arc::new(Unreliable)),
        enricher_timeout: StdDuration::from_millis(50),
        ..PipelineSettings::default()
    })
    .await;
    let started = std::time::Instant::now();
    harness.run(vec![sentinel_alert("s-1", "Suspicious sign-in", "Medium", "ws-01", "alice")]).await;
    assert!(started.elapsed() < StdDuration::from_secs(20), "the 30 s lookup was not waited for");
    let state = &states_by_alert(&harness).await["s-1"];
    assert_eq!(state.state, InvestigationState::AwaitingHuman);
    assert_eq!(state.risk_state, "unknown");
    let failures = &state.case_facts["enrichment_failures"];
    assert!(failures["ueba"].as_str().is_some_and(|reason| reason.contains("timed out after 50 ms")), "{failures}");
    assert!(failures["fp_patterns"].as_str().is_some_and(|reason| reason.contains("connection refused")), "{failures}");
    assert!(actions(state).contains(&"enrichment_degraded"));
    harness.stop().await;
}

/// A vector index that is down.
struct DownIndex;

#[async_trait]
impl aluskort_knowledge::vector::VectorIndex for DownIndex {
    async fn upsert(&self, _: Vec<aluskort_knowledge::vector::VectorRecord>) -> Result<(), aluskort_knowledge::vector::VectorError> {
        Err(aluskort_knowledge::vector::VectorError::Io(std::io::Error::other("connection refused")))
    }
    async fn delete(&self, _: &[String]) -> Result<(), aluskort_knowledge::vector::VectorError> {
        Err(aluskort_knowledge::vector::VectorError::Io(std::io::Error::other("connection refused")))
    }
    async fn search(
        &self,
        _: &str,
        _: &[f32],
        _: &aluskort_knowledge::vector::Filter,
        _: usize,
    ) -> Result<Vec<aluskort_knowledge::vector::Hit>, aluskort_knowledge::vector::VectorError> {
        Err(aluskort_knowledge::vector::VectorError::Io(std::io::Error::other("connection refused")))
    }
    async fn count(&self) -> usize {
        0
    }
}

/// Degradation level 3 (NFR-REL-004): with the vector index down, similar incidents come from
/// the full-text fallback and the verdict says `structured_search`.
#[tokio::test]
async fn a_vector_index_outage_shows_as_structured_search_on_the_verdict() {
    let memory = Arc::new(aluskort_knowledge::memory::IncidentMemory::new(
        Arc::new(aluskort_knowledge::embed::HashingEmbedder::default()),
        Arc::new(DownIndex),
    ));
    let harness = harness_with(|_| PipelineSettings {
        incident_memory: Some(Arc::clone(&memory)),
        degradation: aluskort_core::DegradationLevel::Full,
        ..PipelineSettings::default()
    })
    .await;
    harness.run(vec![sentinel_alert("v-1", "Suspicious sign-in", "Medium", "ws-01", "alice")]).await;
    let state = &states_by_alert(&harness).await["v-1"];
    assert_eq!(state.degradation_level, aluskort_core::DegradationLevel::StructuredSearch);
    assert!(state.case_facts["memory_fallback"].as_str().is_some_and(|why| why.contains("connection refused")));
    assert!(memory.degraded().is_some(), "and /ready shows it");
    harness.stop().await;
}

/// Techniques are carried from the alert; ATLAS ones (`AML.T…`) are also kept apart.
#[tokio::test]
async fn atlas_techniques_are_carried_apart_from_attack_ones() {
    let harness = harness_with(|_| PipelineSettings::default()).await;
    let mut alert = sentinel_alert("a-1", "Prompt injection against the support chatbot", "High", "llm-gw-01", "svc-bot");
    alert["Techniques"] = json!("[\"AML.T0051\", \"T1059\"]");
    harness.run(vec![alert]).await;
    let state = &states_by_alert(&harness).await["a-1"];
    assert_eq!(state.atlas_techniques, vec!["AML.T0051".to_owned()]);
    assert!(state.techniques.iter().any(|t| t == "T1059") && state.techniques.iter().any(|t| t == "AML.T0051"), "{:?}", state.techniques);
    harness.stop().await;
}
