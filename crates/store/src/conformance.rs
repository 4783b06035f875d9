//! The conformance suite every `CaseStore` + `AuditStore` implementation runs (STYLE ex. 2), with
//! the usage, threat-intel and context stores. The embedded store is the specification; the server
//! store must behave identically.

use std::sync::Arc;

use aluskort_core::audit::AuditRecord;
use aluskort_core::{
    AlertId, AlertSource, CanonicalAlert, DegradationLevel, GraphState, Incident, IncidentLink, InvestigationState, Severity, TenantId,
};
use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::{
    AlertFilter, AuditFilter, AuditStore, CaseStore, ContextStore, DeadLetter, EntityPattern, Exposure, FpPattern, FpStatus, GroupingClaim,
    IncidentFilter, InsertOutcome, InvestigationFilter, InvestigationWrite, LlmCall, MemoryStore, PageKey, PastIncidentRow, RawMark,
    RawRecord, RawStatus, ResponseStore, StoreErrorKind, ThreatIntelStore, TiIndicator, UsageStore, UserRisk, WorkBatch,
};

fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 7, 4, 22, 35, 0).single().unwrap_or_default()
}

fn alert_id(raw: &str) -> AlertId {
    AlertId::parse(raw).unwrap_or_else(|error| panic!("test id {raw:?}: {error}"))
}

pub fn sample_alert(id: &str, minutes: i64) -> CanonicalAlert {
    CanonicalAlert {
        alert_id: alert_id(id),
        source: AlertSource::Sentinel,
        timestamp: base_time() + Duration::minutes(minutes),
        title: format!("alert {id}"),
        description: "it's a \"quoted\" description; with SQL-ish text: ' OR 1=1 --".to_owned(),
        severity: Severity::High,
        tactics: vec!["Execution".to_owned()],
        techniques: vec!["T1059".to_owned()],
        entities_raw: "[]".to_owned(),
        product: "test".to_owned(),
        tenant_id: TenantId::default_tenant(),
        raw_payload: serde_json::json!({"id": id}),
    }
}

pub fn sample_audit_record(tenant: &str, sequence: u64, previous_hash: String) -> AuditRecord {
    AuditRecord {
        audit_id: uuid::Uuid::now_v7().to_string(),
        tenant_id: tenant.to_owned(),
        sequence_number: sequence,
        previous_hash,
        timestamp: "2024-07-04T22:35:00.000Z".to_owned(),
        ingested_at: "2024-07-04T22:35:00.001Z".to_owned(),
        event_type: "alert.classified".to_owned(),
        event_category: "decision".to_owned(),
        severity: "info".to_owned(),
        actor_type: "agent".to_owned(),
        actor_id: "reasoning_agent".to_owned(),
        actor_permissions: vec!["query_data".to_owned()],
        investigation_id: None,
        alert_id: Some("a-1".to_owned()),
        entity_ids: vec!["host:ws01".to_owned()],
        context: serde_json::json!({"degradation_level": "deterministic", "n": 1.5}),
        decision: serde_json::json!({"classification": "true_positive", "confidence": 0.85}),
        outcome: serde_json::json!({}),
        record_hash: format!("{sequence:064}"),
        record_version: "1.0".to_owned(),
    }
}

pub async fn insert_alert_is_idempotent(store: &dyn CaseStore) {
    let alert = sample_alert("a-1", 0);
    assert_eq!(store.insert_alert(&alert).await.expect("insert"), InsertOutcome::Inserted);
    let mut changed = alert.clone();
    changed.title = "changed".to_owned();
    assert_eq!(store.insert_alert(&changed).await.expect("insert again"), InsertOutcome::Duplicate);
    let stored = store.alert(&alert.tenant_id, &alert.alert_id).await.expect("query");
    assert_eq!(stored, Some(alert), "a duplicate insert changes nothing");
}

pub async fn alerts_are_queried_by_time_window(store: &dyn CaseStore) {
    for (id, minutes) in [("w-1", 0), ("w-2", 30), ("w-3", 90)] {
        store.insert_alert(&sample_alert(id, minutes)).await.expect("insert");
    }
    let tenant = TenantId::default_tenant();
    let found = store.alerts_between(&tenant, base_time(), base_time() + Duration::minutes(60)).await.expect("query");
    let ids: Vec<&str> = found.iter().map(|a| a.alert_id.as_str()).collect();
    assert_eq!(ids, vec!["w-1", "w-2"], "window is [from, to)");
}

pub async fn investigation_saves_are_versioned(store: &dyn CaseStore) {
    let alert = sample_alert("v-1", 0);
    let mut state = GraphState::new(alert.alert_id.clone(), alert.tenant_id.clone(), DegradationLevel::Deterministic, base_time());
    state.version = 1;
    assert_eq!(store.create_investigation(&state).await.expect("create"), InsertOutcome::Inserted);
    let mut twin = GraphState::new(alert.alert_id.clone(), alert.tenant_id.clone(), DegradationLevel::Deterministic, base_time());
    twin.version = 1;
    assert_eq!(store.create_investigation(&twin).await.expect("create twin"), InsertOutcome::Duplicate, "one investigation per alert");

    state.transition(InvestigationState::Parsing, "start", base_time()).expect("legal");
    let version = store.save_investigation(&state, 1).await.expect("save v2");
    assert_eq!(version, 2);
    let stale = store.save_investigation(&state, 1).await.expect_err("stale version");
    assert_eq!(stale.kind, StoreErrorKind::Conflict);

    let loaded = store.investigation(state.investigation_id).await.expect("load").expect("exists");
    assert_eq!(loaded.version, 2);
    assert_eq!(loaded.state, InvestigationState::Parsing);
    let by_alert = store.investigation_for_alert(&alert.tenant_id, &alert.alert_id).await.expect("load").expect("exists");
    assert_eq!(by_alert.investigation_id, state.investigation_id);
    let history = store.investigation_history(state.investigation_id).await.expect("history");
    let states: Vec<InvestigationState> = history.iter().map(|s| s.state).collect();
    assert_eq!(states, vec![InvestigationState::Received, InvestigationState::Parsing], "every version kept for replay");

    let missing = GraphState::new(alert_id("nope"), TenantId::default_tenant(), DegradationLevel::Full, base_time());
    let error = store.save_investigation(&missing, 1).await.expect_err("missing");
    assert_eq!(error.kind, StoreErrorKind::NotFound);
}

pub async fn investigations_are_listed_by_state_and_time(store: &dyn CaseStore) {
    for (index, state_after) in
        [InvestigationState::Parsing, InvestigationState::Failed, InvestigationState::Parsing].into_iter().enumerate()
    {
        let alert = sample_alert(&format!("l-{index}"), 0);
        let at = base_time() + Duration::minutes(i64::try_from(index).unwrap_or_default());
        let mut state = GraphState::new(alert.alert_id.clone(), alert.tenant_id.clone(), DegradationLevel::Deterministic, at);
        state.version = 1;
        store.create_investigation(&state).await.expect("create");
        state.transition(state_after, "test", at).expect("legal");
        store.save_investigation(&state, 1).await.expect("save");
    }
    let parsing = InvestigationFilter { state: Some(InvestigationState::Parsing), ..Default::default() };
    let found = store.list_investigations(&parsing).await.expect("list");
    let ids: Vec<&str> = found.iter().map(|s| s.alert_id.as_str()).collect();
    assert_eq!(ids, vec!["l-2", "l-0"], "newest first");
    let since = InvestigationFilter { since: Some(base_time() + Duration::minutes(1)), limit: Some(1), ..Default::default() };
    let found = store.list_investigations(&since).await.expect("list");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].alert_id.as_str(), "l-2");
    let other_tenant = InvestigationFilter { tenant: Some(TenantId::parse("other").expect("valid")), ..Default::default() };
    assert!(store.list_investigations(&other_tenant).await.expect("list").is_empty());
}

pub async fn raw_inbox_replays_pending_records(store: &dyn CaseStore) {
    let record = RawRecord {
        ingest_id: "r-1".to_owned(),
        origin: "file:1".to_owned(),
        received_at: base_time(),
        payload: serde_json::json!({"x": 1}),
        tenant: None,
    };
    let assigned = RawRecord { ingest_id: "r-2".to_owned(), tenant: Some(TenantId::parse("acme").expect("valid")), ..record.clone() };
    assert_eq!(store.insert_raw(&record).await.expect("insert"), InsertOutcome::Inserted);
    assert_eq!(store.insert_raw(&record).await.expect("again"), InsertOutcome::Duplicate);
    assert_eq!(store.insert_raw(&assigned).await.expect("insert"), InsertOutcome::Inserted);
    assert_eq!(store.pending_raw(10).await.expect("pending"), vec![record.clone(), assigned.clone()]);
    store.mark_raw("r-1", RawStatus::Done, None).await.expect("mark");
    store.mark_raw("r-2", RawStatus::Done, None).await.expect("mark");
    assert!(store.pending_raw(10).await.expect("pending").is_empty());
}

/// FR-ING-003: a connector's position survives a restart and is replaced, not appended.
pub async fn connector_checkpoints_round_trip(store: &dyn CaseStore) {
    assert_eq!(store.load_checkpoint("sentinel-prod").await.expect("load"), None);
    let first = serde_json::json!({"time": "2024-01-01T00:00:00Z", "ids": ["a"]});
    let second = serde_json::json!({"time": "2024-01-01T00:00:05Z", "ids": ["b", "c"]});
    store.save_checkpoint("sentinel-prod", &first).await.expect("save");
    store.save_checkpoint("elastic", &first).await.expect("save");
    store.save_checkpoint("sentinel-prod", &second).await.expect("replace");
    assert_eq!(store.load_checkpoint("sentinel-prod").await.expect("load"), Some(second));
    assert_eq!(store.load_checkpoint("elastic").await.expect("load"), Some(first));
}

fn llm_call(id: &str, minutes: i64, tenant: &str, task: &str, outcome: &str, cost_micros: u64) -> LlmCall {
    LlmCall {
        call_id: id.to_owned(),
        called_at: base_time() + Duration::minutes(minutes),
        tenant_id: tenant.to_owned(),
        task: task.to_owned(),
        tier: "tier_1".to_owned(),
        provider: "anthropic".to_owned(),
        model: "claude-sonnet-4-5-20250929".to_owned(),
        outcome: outcome.to_owned(),
        input_tokens: 1_000,
        output_tokens: 200,
        cache_read_tokens: 50,
        cache_write_tokens: 10,
        cost_micros,
        latency_ms: 900,
    }
}

/// Spend limits, hourly quotas (FR-ING-007) and the usage report read the call ledger; a call
/// recorded twice (a retried write) counts once.
pub async fn llm_calls_are_accounted(store: &dyn UsageStore) {
    let calls = [
        llm_call("c1", 0, "acme", "investigation", "ok", 6_000),
        llm_call("c2", 10, "acme", "investigation", "throttled", 0),
        llm_call("c3", 20, "globex", "ioc_extraction", "ok", 1_500),
        llm_call("c4", 24 * 60 + 5, "acme", "investigation", "ok", 3_000),
    ];
    for call in &calls {
        store.record_llm_call(call).await.expect("record");
    }
    store.record_llm_call(&calls[0]).await.expect("idempotent");

    assert_eq!(store.llm_cost_since(base_time()).await.expect("cost"), 10_500);
    assert_eq!(store.llm_cost_since(base_time() + Duration::minutes(15)).await.expect("cost"), 4_500);
    assert_eq!(store.llm_calls_since("acme", base_time()).await.expect("count"), 3);
    assert_eq!(store.llm_calls_since("acme", base_time() + Duration::minutes(5)).await.expect("count"), 2);
    assert_eq!(store.llm_calls_since("initech", base_time()).await.expect("count"), 0);

    let rows = store.llm_usage(base_time(), base_time() + Duration::days(2)).await.expect("usage");
    let keys: Vec<(&str, &str)> = rows.iter().map(|row| (row.day.as_str(), row.task.as_str())).collect();
    assert_eq!(keys, [("2024-07-04", "investigation"), ("2024-07-04", "ioc_extraction"), ("2024-07-05", "investigation")]);
    assert_eq!((rows[0].calls, rows[0].failures, rows[0].cost_micros), (2, 1, 6_000));
    assert_eq!((rows[0].input_tokens, rows[0].output_tokens, rows[0].cache_read_tokens, rows[0].cache_write_tokens), (2_000, 400, 100, 20));
    assert_eq!(rows[0].latency_ms, 1_800);
    let first_day = store.llm_usage(base_time(), base_time() + Duration::hours(2)).await.expect("usage");
    assert_eq!(first_day.len(), 2, "the window's end is exclusive");
}

/// FR-ENR-004: exact matches of unexpired indicators, the tenant's own and every tenant's feeds;
/// a re-import replaces an indicator.
pub async fn threat_intel_matches_exactly_and_expires(store: &dyn ThreatIntelStore) {
    let now = base_time();
    let indicator = |tenant: &str, value: &str, confidence: u8, days: i64| TiIndicator {
        tenant_id: tenant.to_owned(),
        indicator: value.to_owned(),
        confidence,
        source: "feed".to_owned(),
        description: format!("{value} seen in a campaign"),
        expires_at: now + Duration::days(days),
    };
    let written = store
        .upsert_indicators(&[
            indicator("", "ipv4:203.0.113.7", 90, 30),
            indicator("acme", "domain:evil.example", 60, 7),
            indicator("globex", "domain:evil.example", 60, 7),
            indicator("", "sha256:aa", 40, -1),
        ])
        .await
        .expect("upsert");
    assert_eq!(written, 4);
    let wanted = ["ipv4:203.0.113.7".to_owned(), "domain:evil.example".to_owned(), "sha256:aa".to_owned(), "url:x".to_owned()];
    let found = store.match_indicators("acme", &wanted, now).await.expect("match");
    let mut names: Vec<(&str, &str)> = found.iter().map(|i| (i.tenant_id.as_str(), i.indicator.as_str())).collect();
    names.sort();
    assert_eq!(names, [("", "ipv4:203.0.113.7"), ("acme", "domain:evil.example")], "expired and other tenants' indicators do not match");
    // Long lists are looked up in chunks; a match in the last chunk is found.
    let mut many: Vec<String> = (0..250).map(|n| format!("domain:d{n}.example")).collect();
    many.push("ipv4:203.0.113.7".to_owned());
    assert_eq!(store.match_indicators("acme", &many, now).await.expect("match").len(), 1);
    store.upsert_indicators(&[indicator("", "ipv4:203.0.113.7", 95, 30)]).await.expect("replace");
    let again = store.match_indicators("initech", &wanted[..1], now).await.expect("match");
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].confidence, again[0].expires_at), (95, now + Duration::days(30)));
}

fn fp_pattern(id: &str, tenant: Option<&str>, status: FpStatus, expires_in_hours: Option<i64>) -> FpPattern {
    FpPattern {
        pattern_id: id.to_owned(),
        tenant: tenant.map(str::to_owned),
        name: format!("pattern {id}"),
        alert_name_regex: Some("(?i)^backup job .* failed$".to_owned()),
        entity_patterns: vec![
            EntityPattern { entity_type: "ip".to_owned(), pattern: "10.20.0.0/16".to_owned() },
            EntityPattern { entity_type: "host".to_owned(), pattern: "^bkp-\\d+$".to_owned() },
        ],
        confidence_threshold: 0.9,
        status,
        approved_by: vec!["analyst-1".to_owned(), "analyst-2".to_owned()],
        approval_date: Some(base_time() - Duration::days(3)),
        expires_at: expires_in_hours.map(|hours| base_time() + Duration::hours(hours)),
        created_at: base_time() - Duration::days(4),
        reason: "nightly backups to the DR site; ' OR 1=1 --".to_owned(),
    }
}

/// FR-RAG-005, NFR-CMP-003: only approved or active, unexpired patterns of the tenant or of every
/// tenant may close an alert; a re-upsert replaces the pattern.
pub async fn fp_patterns_match_by_tenant_status_and_expiry(store: &dyn ContextStore) {
    let now = base_time();
    let patterns = [
        fp_pattern("fp-01-global", None, FpStatus::Active, None),
        fp_pattern("fp-02-acme", Some("acme"), FpStatus::Approved, Some(24)),
        fp_pattern("fp-03-globex", Some("globex"), FpStatus::Active, None),
        fp_pattern("fp-04-pending", Some("acme"), FpStatus::PendingReview, None),
        fp_pattern("fp-05-revoked", None, FpStatus::Revoked, None),
        fp_pattern("fp-06-expired", Some("acme"), FpStatus::Active, Some(-1)),
        fp_pattern("fp-07-expires-now", None, FpStatus::Active, Some(0)),
        fp_pattern("fp-08-shadow", None, FpStatus::Shadow, None),
        fp_pattern("fp-09-deprecated", Some("acme"), FpStatus::Deprecated, None),
        fp_pattern("fp-10-status-expired", Some("acme"), FpStatus::Expired, None),
    ];
    // Written in reverse so that the order read back is the store's, not the insertion order.
    for pattern in patterns.iter().rev() {
        store.upsert_fp_pattern(pattern).await.expect("upsert");
    }
    let ids = |found: Vec<FpPattern>| found.into_iter().map(|pattern| pattern.pattern_id).collect::<Vec<_>>();
    let acme = store.matchable_fp_patterns("acme", now).await.expect("matchable");
    assert_eq!(ids(acme.clone()), ["fp-01-global", "fp-02-acme"], "pending, revoked, shadow, deprecated, expired excluded");
    assert_eq!(acme[1], patterns[1], "read back exactly as written");
    assert_eq!(ids(store.matchable_fp_patterns("globex", now).await.expect("matchable")), ["fp-01-global", "fp-03-globex"]);
    assert_eq!(ids(store.matchable_fp_patterns("initech", now).await.expect("matchable")), ["fp-01-global"]);
    let later = store.matchable_fp_patterns("acme", now + Duration::hours(25)).await.expect("matchable");
    assert_eq!(ids(later), ["fp-01-global"], "fp-02 has expired by then");
    let earlier = store.matchable_fp_patterns("acme", now - Duration::hours(2)).await.expect("matchable");
    assert_eq!(ids(earlier), ["fp-01-global", "fp-02-acme", "fp-06-expired", "fp-07-expires-now"]);

    assert_eq!(store.fp_pattern("fp-04-pending").await.expect("get"), Some(patterns[3].clone()));
    assert_eq!(store.fp_pattern("fp-99").await.expect("get"), None);

    // Re-upserting replaces every field: revoke the tenant pattern, promote the pending one to global.
    let mut revoked = patterns[1].clone();
    revoked.status = FpStatus::Revoked;
    revoked.reason = "revoked after a missed true positive".to_owned();
    store.upsert_fp_pattern(&revoked).await.expect("revoke");
    let mut promoted = patterns[3].clone();
    promoted.tenant = None;
    promoted.status = FpStatus::Active;
    promoted.alert_name_regex = None;
    promoted.entity_patterns.clear();
    promoted.approval_date = None;
    store.upsert_fp_pattern(&promoted).await.expect("promote");
    assert_eq!(store.fp_pattern("fp-02-acme").await.expect("get"), Some(revoked));
    assert_eq!(store.fp_pattern("fp-04-pending").await.expect("get"), Some(promoted));
    assert_eq!(
        ids(store.matchable_fp_patterns("globex", now).await.expect("matchable")),
        ["fp-01-global", "fp-03-globex", "fp-04-pending"]
    );
    assert_eq!(ids(store.matchable_fp_patterns("acme", now).await.expect("matchable")), ["fp-01-global", "fp-04-pending"]);
    // Governance writes are compare-and-set: a stale copy cannot undo a revocation.
    let stored = store.fp_pattern("fp-01-global").await.expect("read").expect("present");
    let mut revoked = stored.clone();
    revoked.status = FpStatus::Revoked;
    store.replace_fp_pattern(&stored, &revoked).await.expect("revoke from the version read");
    let mut reaffirmed = stored.clone();
    reaffirmed.expires_at = Some(now + Duration::days(90));
    let error = store.replace_fp_pattern(&stored, &reaffirmed).await.expect_err("stale copy");
    assert_eq!(error.kind, StoreErrorKind::Conflict);
    assert_eq!(store.fp_pattern("fp-01-global").await.expect("read").map(|p| p.status), Some(FpStatus::Revoked));
}

/// Listing for review (FR-RAG-005): every status, filtered by tenant (its own and global) and
/// status, by pattern id, whatever the expiry.
pub async fn fp_patterns_are_listed_by_tenant_and_status(store: &dyn ContextStore) {
    let patterns = [
        fp_pattern("fp-1-global", None, FpStatus::Active, None),
        fp_pattern("fp-2-acme-pending", Some("acme"), FpStatus::PendingReview, None),
        fp_pattern("fp-3-acme-expired", Some("acme"), FpStatus::Active, Some(-1)),
        fp_pattern("fp-4-globex-pending", Some("globex"), FpStatus::PendingReview, None),
        fp_pattern("fp-5-globex-revoked", Some("globex"), FpStatus::Revoked, None),
        fp_pattern("fp-6-'; DROP TABLE fp_patterns; --", Some("acme"), FpStatus::Revoked, None),
    ];
    for pattern in patterns.iter().rev() {
        store.upsert_fp_pattern(pattern).await.expect("upsert");
    }
    let ids = |found: Vec<FpPattern>| found.into_iter().map(|pattern| pattern.pattern_id).collect::<Vec<_>>();
    let all = store.fp_patterns(None, None).await.expect("all");
    assert_eq!(all.len(), patterns.len());
    assert_eq!(all[1], patterns[1], "read back exactly as written");
    assert_eq!(
        ids(store.fp_patterns(Some("acme"), None).await.expect("acme")),
        ["fp-1-global", "fp-2-acme-pending", "fp-3-acme-expired", "fp-6-'; DROP TABLE fp_patterns; --"],
        "the tenant's own and global ones, expired or not"
    );
    assert_eq!(
        ids(store.fp_patterns(None, Some(FpStatus::PendingReview)).await.expect("pending")),
        ["fp-2-acme-pending", "fp-4-globex-pending"]
    );
    assert_eq!(ids(store.fp_patterns(Some("globex"), Some(FpStatus::Revoked)).await.expect("revoked")), ["fp-5-globex-revoked"]);
    assert_eq!(ids(store.fp_patterns(Some("initech"), None).await.expect("initech")), ["fp-1-global"]);
    assert!(store.fp_patterns(None, Some(FpStatus::Shadow)).await.expect("shadow").is_empty());
}

fn user_risk(tenant: &str, user: &str, priority: f64) -> UserRisk {
    UserRisk {
        tenant: tenant.to_owned(),
        user: user.to_owned(),
        priority,
        observed_at: base_time() - Duration::hours(2),
        detail: serde_json::json!({"InvestigationPriority": priority, "source": "sentinel-ueba", "note": "' OR 1=1 --"}),
    }
}

/// FR-ENR-005: UEBA rows are keyed by the lower-cased account, looked up in any case, and a
/// re-import replaces them.
pub async fn user_risk_is_case_insensitive_and_replaced_on_reimport(store: &dyn ContextStore) {
    let written = store
        .upsert_user_risk(&[
            user_risk("acme", "Alice@Contoso.com", 7.5),
            user_risk("acme", "CONTOSO\\Bob", 2.0),
            user_risk("globex", "alice@contoso.com", 1.0),
        ])
        .await
        .expect("upsert");
    assert_eq!(written, 3);
    let wanted =
        ["ALICE@contoso.COM".to_owned(), "contoso\\bob".to_owned(), "nobody@contoso.com".to_owned(), "alice@contoso.com".to_owned()];
    let found = store.user_risk("acme", &wanted).await.expect("lookup");
    let mut expected = vec![user_risk("acme", "alice@contoso.com", 7.5), user_risk("acme", "contoso\\bob", 2.0)];
    assert_eq!(found, expected, "lower-cased, by user, each once; other tenants' rows and unknown users missing");
    assert!(store.user_risk("acme", &[]).await.expect("lookup").is_empty());

    // A re-import replaces the row; a key repeated in one import is written once, the last wins.
    let mut replaced = user_risk("acme", "alice@CONTOSO.com", 4.0);
    replaced.observed_at = base_time();
    let written = store.upsert_user_risk(&[user_risk("acme", "ALICE@contoso.com", 9.0), replaced.clone()]).await.expect("re-import");
    assert_eq!(written, 1);
    replaced.user = "alice@contoso.com".to_owned();
    expected[0] = replaced;
    assert_eq!(store.user_risk("acme", &wanted).await.expect("lookup"), expected);

    // Imports and lookups larger than one statement are split transparently.
    let many: Vec<UserRisk> = (0..700).map(|n| user_risk("initech", &format!("User{n:03}@Initech.example"), f64::from(n % 11))).collect();
    assert_eq!(store.upsert_user_risk(&many).await.expect("large import"), 700);
    let names: Vec<String> = (0..700).rev().map(|n| format!("user{n:03}@initech.example")).collect();
    let found = store.user_risk("initech", &names).await.expect("large lookup");
    assert_eq!(found.len(), 700);
    assert_eq!((found[699].user.as_str(), found[699].priority), ("user699@initech.example", 6.0));
}

fn exposure(tenant: &str, id: &str, asset: &str, zone: &str, status: &str, score: f64) -> Exposure {
    Exposure {
        tenant: tenant.to_owned(),
        exposure_id: id.to_owned(),
        asset_id: asset.to_owned(),
        asset_zone: zone.to_owned(),
        status: status.to_owned(),
        ctem_score: score,
        title: format!("{id} on {asset}"),
        updated_at: base_time() - Duration::hours(1),
    }
}

/// FR-ENR-006: exposures count for an asset only in their zone (not by asset id alone), closed or
/// verified ones never, highest score first.
pub async fn exposures_correlate_by_asset_and_zone(store: &dyn ContextStore) {
    let exposures = [
        exposure("acme", "e-1", "WS-01", "corp", "Open", 7.0),
        exposure("acme", "e-2", "ws-01", "dmz", "Open", 9.0),
        exposure("acme", "e-3", "ws-01", "corp", "Verified", 9.9),
        exposure("acme", "e-4", "ws-01", "corp", "CLOSED", 9.8),
        exposure("acme", "e-5", "Ws-01", "corp", "InProgress", 8.5),
        exposure("globex", "e-6", "ws-01", "corp", "Open", 9.7),
        exposure("acme", "e-7", "srv-02", "prod", "Assigned", 9.5),
        exposure("acme", "e-8", "srv-02", "corp", "Open", 9.6),
        exposure("acme", "e-9", "ws-01", "corp", "FixDeployed", 7.0),
    ];
    assert_eq!(store.upsert_exposures(&exposures).await.expect("upsert"), 9);
    let ids = |found: &[Exposure]| found.iter().map(|exposure| exposure.exposure_id.clone()).collect::<Vec<_>>();
    let assets =
        [("ws-01".to_owned(), "corp".to_owned()), ("SRV-02".to_owned(), "prod".to_owned()), ("WS-01".to_owned(), "corp".to_owned())];
    let found = store.exposures_for_assets("acme", &assets).await.expect("correlate");
    assert_eq!(ids(&found), ["e-7", "e-5", "e-1", "e-9"], "by score then id; other zones, tenants, verified and closed excluded");
    assert_eq!(found[2], exposures[0], "read back exactly as written, asset id in its own spelling");
    let dmz = store.exposures_for_assets("acme", &[("WS-01".to_owned(), "dmz".to_owned())]).await.expect("correlate");
    assert_eq!(ids(&dmz), ["e-2"]);
    assert!(store.exposures_for_assets("acme", &[("ws-01".to_owned(), "prod".to_owned())]).await.expect("correlate").is_empty());
    assert!(store.exposures_for_assets("acme", &[]).await.expect("correlate").is_empty());

    // A re-import replaces: e-1 is closed now, e-5 re-scored; a repeated id is written once, the last wins.
    let written = store
        .upsert_exposures(&[
            exposure("acme", "e-5", "WS-01", "corp", "InProgress", 1.0),
            exposure("acme", "e-1", "ws-01", "corp", "Closed", 7.0),
            exposure("acme", "e-5", "ws-01", "corp", "Open", 9.9),
        ])
        .await
        .expect("re-import");
    assert_eq!(written, 2);
    let found = store.exposures_for_assets("acme", &assets).await.expect("correlate");
    assert_eq!(ids(&found), ["e-5", "e-7", "e-9"]);
    assert_eq!((found[0].status.as_str(), found[0].ctem_score), ("Open", 9.9));
}

/// Invalid context rows are refused with `Invalid`, naming the field, and nothing of the call is written.
pub async fn context_writes_are_validated(store: &dyn ContextStore) {
    let refused = |error: crate::StoreError, field: &str| {
        assert_eq!(error.kind, StoreErrorKind::Invalid, "{error}");
        assert!(error.to_string().contains(field), "{error} names {field}");
    };
    let pattern = fp_pattern("fp-v", None, FpStatus::Active, None);
    for (threshold, valid) in [(0.0, false), (-0.5, false), (1.5, false), (f64::NAN, false), (1.0, true), (0.01, true)] {
        let candidate = FpPattern { confidence_threshold: threshold, ..pattern.clone() };
        match store.upsert_fp_pattern(&candidate).await {
            Ok(()) => assert!(valid, "threshold {threshold} must be refused"),
            Err(error) => {
                assert!(!valid, "threshold {threshold} must be accepted");
                refused(error, "confidence_threshold");
            }
        }
    }
    refused(store.upsert_fp_pattern(&FpPattern { pattern_id: " ".to_owned(), ..pattern.clone() }).await.expect_err("id"), "pattern_id");
    refused(store.upsert_fp_pattern(&FpPattern { tenant: Some(String::new()), ..pattern.clone() }).await.expect_err("tenant"), "tenant");
    let bad_entity = FpPattern { entity_patterns: vec![EntityPattern { entity_type: "ip".to_owned(), pattern: String::new() }], ..pattern };
    refused(store.upsert_fp_pattern(&bad_entity).await.expect_err("entity"), "entity_patterns[0]");
    assert_eq!(store.fp_pattern("fp-v").await.expect("get").map(|p| p.confidence_threshold), Some(0.01), "refused writes changed nothing");

    for (priority, valid) in [(10.5, false), (-0.1, false), (f64::NAN, false), (0.0, true), (10.0, true)] {
        match store.upsert_user_risk(&[user_risk("acme", "carol@contoso.com", priority)]).await {
            Ok(written) => assert!(valid && written == 1, "priority {priority} must be refused"),
            Err(error) => {
                assert!(!valid, "priority {priority} must be accepted");
                refused(error, "priority");
            }
        }
    }
    refused(store.upsert_user_risk(&[user_risk("acme", "", 1.0)]).await.expect_err("user"), "user");
    refused(store.upsert_user_risk(&[user_risk("", "dave@contoso.com", 1.0)]).await.expect_err("tenant"), "tenant");
    let half_valid = [user_risk("acme", "erin@contoso.com", 1.0), user_risk("acme", "frank@contoso.com", 11.0)];
    refused(store.upsert_user_risk(&half_valid).await.expect_err("one bad row"), "priority");
    assert!(
        store.user_risk("acme", &["erin@contoso.com".to_owned()]).await.expect("lookup").is_empty(),
        "nothing of a refused call is written"
    );

    let good = exposure("acme", "e-v", "ws-01", "corp", "Open", 5.0);
    refused(store.upsert_exposures(&[Exposure { exposure_id: String::new(), ..good.clone() }]).await.expect_err("id"), "exposure_id");
    refused(store.upsert_exposures(&[Exposure { asset_id: String::new(), ..good.clone() }]).await.expect_err("asset"), "asset_id");
    refused(store.upsert_exposures(&[Exposure { tenant: String::new(), ..good.clone() }]).await.expect_err("tenant"), "tenant");
    let nan = Exposure { ctem_score: f64::NAN, ..good.clone() };
    refused(store.upsert_exposures(&[good.clone(), nan]).await.expect_err("score"), "ctem_score");
    assert!(store.exposures_for_assets("acme", &[("ws-01".to_owned(), "corp".to_owned())]).await.expect("correlate").is_empty());
}

pub async fn incidents_and_dead_letters_round_trip(store: &dyn CaseStore) {
    let tenant = TenantId::default_tenant();
    let incident = Incident {
        incident_id: "inc-1".to_owned(),
        tenant_id: tenant.clone(),
        title: "t".to_owned(),
        severity: Severity::Medium,
        alert_ids: vec![alert_id("a-1")],
        links: vec![IncidentLink { alert_id: alert_id("a-1"), linked_to: None, reason: "opened".to_owned() }],
        members: Vec::new(),
        first_seen: base_time(),
        last_seen: base_time() + Duration::hours(1),
        merged_into: None,
        version: 1,
    };
    store.upsert_incident(&incident).await.expect("upsert");
    let found =
        store.incidents_overlapping(&tenant, base_time() + Duration::minutes(30), base_time() + Duration::hours(5)).await.expect("query");
    assert_eq!(found, vec![incident.clone()]);
    let later =
        store.incidents_overlapping(&tenant, base_time() + Duration::hours(2), base_time() + Duration::hours(5)).await.expect("query");
    assert!(later.is_empty());
    let mut merged = incident.clone();
    merged.merged_into = Some("inc-2".to_owned());
    merged.version = 2;
    store.upsert_incident(&merged).await.expect("upsert merged");
    assert_eq!(store.incident("inc-1").await.expect("get"), Some(merged));
    assert!(
        store.incidents_overlapping(&tenant, base_time(), base_time()).await.expect("query").is_empty(),
        "merged incidents are not candidates"
    );

    let letter = DeadLetter {
        id: "d-1".to_owned(),
        topic: "alerts.raw.dlq".to_owned(),
        origin: "file:3".to_owned(),
        error: "invalid JSON".to_owned(),
        original: serde_json::json!("{bad"),
        recorded_at: base_time(),
    };
    store.record_dead_letter(&letter).await.expect("dlq");
    store.record_dead_letter(&letter).await.expect("dlq is idempotent");
    assert_eq!(store.dead_letters(10).await.expect("list"), vec![letter]);
}

/// A connector page lands in one transaction; repeats (within the page or of earlier pages) are
/// duplicates, and pages larger than one statement's parameter budget are split transparently.
pub async fn raw_records_insert_in_batches(store: &dyn CaseStore) {
    let record = |id: &str| RawRecord {
        ingest_id: id.to_owned(),
        origin: "page:1".to_owned(),
        received_at: base_time(),
        payload: serde_json::json!({"id": id, "text": "' OR 1=1 --"}),
        tenant: None,
    };
    assert_eq!(store.insert_raw(&record("c")).await.expect("insert"), InsertOutcome::Inserted);
    let outcomes = store.insert_raw_many(&[record("a"), record("b"), record("a"), record("c")]).await.expect("batch");
    assert_eq!(outcomes, vec![InsertOutcome::Inserted, InsertOutcome::Inserted, InsertOutcome::Duplicate, InsertOutcome::Duplicate]);
    let many: Vec<RawRecord> = (0..1_300).map(|index| record(&format!("m-{index:04}"))).collect();
    let outcomes = store.insert_raw_many(&many).await.expect("large batch");
    assert!(outcomes.iter().all(|outcome| *outcome == InsertOutcome::Inserted));
    let pending = store.pending_raw(5_000).await.expect("pending");
    assert_eq!(pending.len(), 1_303);
    assert_eq!(pending.iter().find(|r| r.ingest_id == "m-1299"), Some(&many[1_299]), "stored exactly");
}

fn versions_of(alert: &CanonicalAlert, through: InvestigationState) -> Vec<GraphState> {
    let mut state = GraphState::new(alert.alert_id.clone(), alert.tenant_id.clone(), DegradationLevel::Deterministic, base_time());
    state.version = 1;
    let mut versions = vec![state.clone()];
    for next in
        [InvestigationState::Parsing, InvestigationState::Enriching, InvestigationState::Reasoning, InvestigationState::AwaitingHuman]
    {
        if versions.last().is_some_and(|last| last.state == through) {
            break;
        }
        state.transition(next, "step", base_time()).expect("legal");
        state.version += 1;
        versions.push(state.clone());
    }
    versions
}

fn keyed_incident(id: &str, keys: &[&str], hours: i64) -> Incident {
    let member = aluskort_core::IncidentMember {
        alert_id: alert_id(&format!("{id}-a")),
        severity: Severity::High,
        activity_start: base_time() + Duration::hours(hours),
        activity_end: base_time() + Duration::hours(hours),
        keys: keys.iter().map(|key| (*key).to_owned()).collect(),
        tactics: Vec::new(),
    };
    Incident {
        incident_id: id.to_owned(),
        tenant_id: TenantId::default_tenant(),
        title: id.to_owned(),
        severity: Severity::High,
        alert_ids: vec![member.alert_id.clone()],
        links: Vec::new(),
        first_seen: member.activity_start,
        last_seen: member.activity_end,
        members: vec![member],
        merged_into: None,
        version: 1,
    }
}

/// A unit of work (alert, investigation versions, incidents, audit records, raw-inbox marks) is
/// stored whole or not at all; a stale version fails it unless the write asked to be skipped.
pub async fn work_commits_atomically(store: &dyn CaseStore, audit: &dyn AuditStore) {
    let alert = sample_alert("u-1", 0);
    let raw = RawRecord {
        ingest_id: "u-raw-1".to_owned(),
        origin: "t".to_owned(),
        received_at: base_time(),
        payload: serde_json::json!({}),
        tenant: None,
    };
    store.insert_raw(&raw).await.expect("raw");
    let mut versions = versions_of(&alert, InvestigationState::Reasoning);
    // Versions are stored as patches against the one before; a JSON null (which a merge patch
    // cannot express) and removed keys must still read back exactly.
    versions[1].case_facts.insert("note".to_owned(), serde_json::json!({"set": true, "n": 1}));
    versions[2].case_facts.insert("note".to_owned(), serde_json::Value::Null);
    versions[3].case_facts.remove("note");
    let investigation_id = versions[0].investigation_id;
    let genesis = sample_audit_record("default", 0, "0".repeat(64));
    let first = sample_audit_record("default", 1, genesis.record_hash.clone());
    let incident = keyed_incident("inc-u", &["host:ws-1", "upn:a@x"], 0);
    let work = WorkBatch {
        alerts: vec![alert.clone()],
        investigations: vec![InvestigationWrite { expected_version: 0, versions: versions.clone(), skip_on_conflict: false }],
        incidents: vec![incident.clone()],
        raw: vec![RawMark { ingest_id: "u-raw-1".to_owned(), status: RawStatus::Done, error: None }],
        ..WorkBatch::default()
    };
    let report = store.commit_work(&work, &[genesis.clone(), first.clone()]).await.expect("commit");
    assert!(report.skipped.is_empty());
    assert_eq!(store.alert(&alert.tenant_id, &alert.alert_id).await.expect("alert"), Some(alert.clone()));
    let history = store.investigation_history(investigation_id).await.expect("history");
    assert_eq!(history, versions, "every version kept");
    let current = store.investigations_for_alerts(&alert.tenant_id, std::slice::from_ref(&alert.alert_id)).await.expect("current");
    assert_eq!(current, vec![versions[3].clone()]);
    assert!(store.pending_raw(10).await.expect("pending").is_empty(), "marked in the same unit");
    assert_eq!(audit.audit_records("default", 0, 10).await.expect("audit"), vec![genesis.clone(), first.clone()]);
    let found = store
        .incidents_with_keys(&TenantId::default_tenant(), &["upn:a@x".to_owned(), "host:other".to_owned()], base_time(), base_time())
        .await
        .expect("by key");
    assert_eq!(found, vec![Arc::new(incident.clone())]);

    // A second unit whose audit record takes a sequence already stored: nothing of it lands.
    let mut next = versions[3].clone();
    next.transition(InvestigationState::AwaitingHuman, "step", base_time()).expect("legal");
    next.version = 5;
    let later_alert = sample_alert("u-2", 5);
    let clash = WorkBatch {
        alerts: vec![later_alert.clone()],
        investigations: vec![InvestigationWrite { expected_version: 4, versions: vec![next.clone()], skip_on_conflict: false }],
        incidents: vec![keyed_incident("inc-v", &["host:ws-2"], 0)],
        raw: Vec::new(),
        ..WorkBatch::default()
    };
    let error = store.commit_work(&clash, &[sample_audit_record("default", 1, genesis.record_hash.clone())]).await.expect_err("fork");
    assert_eq!(error.kind, StoreErrorKind::Conflict);
    assert_eq!(store.alert(&later_alert.tenant_id, &later_alert.alert_id).await.expect("alert"), None, "rolled back");
    assert_eq!(store.investigation(investigation_id).await.expect("load").map(|s| s.version), Some(4));
    assert_eq!(store.incident("inc-v").await.expect("incident"), None);

    // A stale expected version fails the unit, or is skipped when the write allows it.
    let stale = InvestigationWrite { expected_version: 3, versions: vec![versions[3].clone()], skip_on_conflict: false };
    let error =
        store.commit_work(&WorkBatch { investigations: vec![stale.clone()], ..WorkBatch::default() }, &[]).await.expect_err("stale");
    assert_eq!(error.kind, StoreErrorKind::Conflict);
    let skipped = InvestigationWrite { skip_on_conflict: true, ..stale.clone() };
    let report = store.commit_work(&WorkBatch { investigations: vec![skipped], ..WorkBatch::default() }, &[]).await.expect("skip");
    assert_eq!(report.skipped, vec![investigation_id]);
    assert_eq!(store.investigation_history(investigation_id).await.expect("history").len(), 4);
    // Skipped beside other writes: the rest of the unit lands, the overtaken write leaves nothing.
    let other_alert = sample_alert("u-3", 6);
    let other = versions_of(&other_alert, InvestigationState::Received);
    let other_id = other[0].investigation_id;
    let mixed = WorkBatch {
        alerts: vec![other_alert.clone()],
        investigations: vec![
            InvestigationWrite { skip_on_conflict: true, ..stale },
            InvestigationWrite { expected_version: 0, versions: other.clone(), skip_on_conflict: false },
        ],
        ..WorkBatch::default()
    };
    let report = store.commit_work(&mixed, &[]).await.expect("skip one, write the rest");
    assert_eq!(report.skipped, vec![investigation_id]);
    assert_eq!(store.alert(&other_alert.tenant_id, &other_alert.alert_id).await.expect("alert"), Some(other_alert));
    assert_eq!(store.investigation_history(other_id).await.expect("history"), other);
    assert_eq!(store.investigation_history(investigation_id).await.expect("history").len(), 4);
    let gap = InvestigationWrite { expected_version: 4, versions: vec![versions[3].clone()], skip_on_conflict: false };
    let error = store.commit_work(&WorkBatch { investigations: vec![gap], ..WorkBatch::default() }, &[]).await.expect_err("gap");
    assert_eq!(error.kind, StoreErrorKind::Invalid);

    let applied = InvestigationWrite { expected_version: 4, versions: vec![next.clone()], skip_on_conflict: false };
    store.commit_work(&WorkBatch { investigations: vec![applied], ..WorkBatch::default() }, &[]).await.expect("update");
    assert_eq!(store.investigation(investigation_id).await.expect("load"), Some(next));
    // Creating a second investigation for the same alert is a conflict.
    let twin = versions_of(&alert, InvestigationState::Received);
    let twin = InvestigationWrite { expected_version: 0, versions: twin, skip_on_conflict: false };
    let error = store.commit_work(&WorkBatch { investigations: vec![twin], ..WorkBatch::default() }, &[]).await.expect_err("twin");
    assert_eq!(error.kind, StoreErrorKind::Conflict);
}

/// Grouping candidates come from the entity-key index: unmerged incidents of the tenant sharing a
/// key, active in the window.
pub async fn incidents_are_found_by_entity_key(store: &dyn CaseStore) {
    let tenant = TenantId::default_tenant();
    store.upsert_incident(&keyed_incident("inc-a", &["host:ws-1", "upn:a@x"], 0)).await.expect("upsert");
    store.upsert_incident(&keyed_incident("inc-b", &["host:ws-1"], 2)).await.expect("upsert");
    store.upsert_incident(&keyed_incident("inc-late", &["host:ws-1"], 100)).await.expect("upsert");
    let mut merged = keyed_incident("inc-m", &["upn:a@x"], 0);
    merged.merged_into = Some("inc-a".to_owned());
    store.upsert_incident(&merged).await.expect("upsert");
    let mut elsewhere = keyed_incident("inc-o", &["host:ws-1"], 0);
    elsewhere.tenant_id = TenantId::parse("other").expect("valid");
    store.upsert_incident(&elsewhere).await.expect("upsert");

    let ids = |found: Vec<Arc<Incident>>| found.iter().map(|incident| incident.incident_id.clone()).collect::<Vec<_>>();
    let window = (base_time() - Duration::hours(24), base_time() + Duration::hours(24));
    let by_host = store.incidents_with_keys(&tenant, &["host:ws-1".to_owned()], window.0, window.1).await.expect("query");
    assert_eq!(ids(by_host), vec!["inc-a", "inc-b"], "oldest first; other tenants, merged and out-of-window excluded");
    let by_both =
        store.incidents_with_keys(&tenant, &["upn:a@x".to_owned(), "host:ws-1".to_owned()], window.0, window.1).await.expect("query");
    assert_eq!(ids(by_both), vec!["inc-a", "inc-b"], "each incident once");
    let unknown = store.incidents_with_keys(&tenant, &["host:nowhere".to_owned()], window.0, window.1).await.expect("query");
    assert!(unknown.is_empty());
    // A grown incident is indexed under its new members' keys too.
    let mut grown = keyed_incident("inc-b", &["host:ws-1"], 2);
    grown.members.push(keyed_incident("x", &["url:https://evil.example/"], 2).members.remove(0));
    grown.version = 2;
    store.upsert_incident(&grown).await.expect("upsert");
    let by_url = store.incidents_with_keys(&tenant, &["url:https://evil.example/".to_owned()], window.0, window.1).await.expect("query");
    assert_eq!(ids(by_url), vec!["inc-b"]);
    // Lookups hand out each incident as it is stored now, not as an earlier lookup read it
    // (the stores keep decoded candidates by revision): a change, then a merge, are seen.
    let found = store.incidents_with_keys(&tenant, &["host:ws-1".to_owned()], window.0, window.1).await.expect("query");
    assert_eq!(found.iter().find(|incident| incident.incident_id == "inc-b").map(|incident| &**incident), Some(&grown));
    let mut retitled = grown.clone();
    retitled.title = "retitled".to_owned();
    retitled.version = 3;
    store.upsert_incident(&retitled).await.expect("upsert");
    let found = store.incidents_with_keys(&tenant, &["host:ws-1".to_owned()], window.0, window.1).await.expect("query");
    assert_eq!(found.iter().find(|incident| incident.incident_id == "inc-b").map(|incident| &**incident), Some(&retitled));
    let mut absorbed = retitled.clone();
    absorbed.merged_into = Some("inc-a".to_owned());
    absorbed.version = 4;
    store.upsert_incident(&absorbed).await.expect("upsert");
    let found = store.incidents_with_keys(&tenant, &["host:ws-1".to_owned()], window.0, window.1).await.expect("query");
    assert_eq!(ids(found), vec!["inc-a"], "a merged incident is no longer a candidate");
    // A unit of work's incidents are candidates as written (the store keeps them decoded at the
    // revision it wrote), and a later write by anyone else replaces them.
    let mut committed = keyed_incident("inc-a", &["host:ws-1", "upn:a@x"], 0);
    committed.title = "committed".to_owned();
    committed.version = 2;
    store.commit_work(&WorkBatch { incidents: vec![committed.clone()], ..WorkBatch::default() }, &[]).await.expect("commit");
    let found = store.incidents_with_keys(&tenant, &["host:ws-1".to_owned()], window.0, window.1).await.expect("query");
    assert_eq!(found, vec![Arc::new(committed.clone())]);
    let mut elsewhere = committed;
    elsewhere.title = "written by another replica".to_owned();
    elsewhere.version = 3;
    store.upsert_incident(&elsewhere).await.expect("upsert");
    let found = store.incidents_with_keys(&tenant, &["upn:a@x".to_owned()], window.0, window.1).await.expect("query");
    assert_eq!(found, vec![Arc::new(elsewhere)]);
}

/// Optimistic versioning of grouping (several investigate replicas): an incident lands only over
/// the version before it, a grouping claim only over the epoch before it, and a unit with either
/// stale fails whole with `Conflict`.
pub async fn incidents_and_grouping_claims_are_fenced(store: &dyn CaseStore) {
    let tenant = TenantId::default_tenant();
    let first = keyed_incident("inc-f", &["host:ws-9"], 0);
    store.upsert_incident(&first).await.expect("version 1 of a new incident");
    let mut rewrite = first.clone();
    rewrite.title = "the same version again".to_owned();
    assert_eq!(store.upsert_incident(&rewrite).await.expect_err("version 1 twice").kind, StoreErrorKind::Conflict);
    rewrite.version = 3;
    assert_eq!(store.upsert_incident(&rewrite).await.expect_err("a version skipped").kind, StoreErrorKind::Conflict);
    assert_eq!(store.incident("inc-f").await.expect("get"), Some(first.clone()), "a refused write changes nothing");
    rewrite.version = 0;
    assert_eq!(store.upsert_incident(&rewrite).await.expect_err("version 0").kind, StoreErrorKind::Invalid);
    rewrite.version = 2;
    store.upsert_incident(&rewrite).await.expect("the next version");
    assert_eq!(store.incident("inc-f").await.expect("get"), Some(rewrite.clone()));

    let keys = ["host:ws-9".to_owned(), "upn:z@x".to_owned()];
    assert!(store.grouping_epochs(&tenant, &keys).await.expect("epochs").is_empty(), "never claimed");
    let claim = |key: &str, epoch: u64| GroupingClaim { tenant_id: tenant.clone(), entity_key: key.to_owned(), epoch };
    let claims = WorkBatch { grouping_claims: vec![claim("host:ws-9", 1), claim("upn:z@x", 1)], ..WorkBatch::default() };
    store.commit_work(&claims, &[]).await.expect("first claims");
    let epochs = store.grouping_epochs(&tenant, &keys).await.expect("epochs");
    assert_eq!((epochs.get("host:ws-9"), epochs.get("upn:z@x")), (Some(&1), Some(&1)));
    // Another writer that read the same epochs: its claims and everything with them are refused.
    let stale = WorkBatch {
        alerts: vec![sample_alert("fenced-out", 0)],
        grouping_claims: vec![claim("upn:z@x", 2), claim("host:ws-9", 1)],
        ..WorkBatch::default()
    };
    assert_eq!(store.commit_work(&stale, &[]).await.expect_err("stale claim").kind, StoreErrorKind::Conflict);
    assert_eq!(store.alert(&tenant, &alert_id("fenced-out")).await.expect("get"), None, "the unit failed whole");
    let epochs = store.grouping_epochs(&tenant, &keys).await.expect("epochs");
    assert_eq!(epochs.get("upn:z@x"), Some(&1), "the claim that would have landed was rolled back");
    let skipping = WorkBatch { grouping_claims: vec![claim("host:ws-9", 3)], ..WorkBatch::default() };
    assert_eq!(store.commit_work(&skipping, &[]).await.expect_err("an epoch skipped").kind, StoreErrorKind::Conflict);
    // A stale incident in a unit fails it too.
    let with_incident =
        WorkBatch { grouping_claims: vec![claim("host:ws-9", 2)], incidents: vec![rewrite.clone()], ..WorkBatch::default() };
    assert_eq!(store.commit_work(&with_incident, &[]).await.expect_err("stale incident").kind, StoreErrorKind::Conflict);
    assert_eq!(store.grouping_epochs(&tenant, &keys).await.expect("epochs").get("host:ws-9"), Some(&1));
    rewrite.version = 3;
    let next = WorkBatch { grouping_claims: vec![claim("host:ws-9", 2)], incidents: vec![rewrite.clone()], ..WorkBatch::default() };
    store.commit_work(&next, &[]).await.expect("the next epoch and version");
    assert_eq!(store.grouping_epochs(&tenant, &keys).await.expect("epochs").get("host:ws-9"), Some(&2));
    assert_eq!(store.incident("inc-f").await.expect("get").map(|incident| incident.version), Some(3));
    // Epochs are per tenant.
    let other = TenantId::parse("other").expect("valid");
    let elsewhere = GroupingClaim { tenant_id: other.clone(), entity_key: "host:ws-9".to_owned(), epoch: 1 };
    store.commit_work(&WorkBatch { grouping_claims: vec![elsewhere], ..WorkBatch::default() }, &[]).await.expect("other tenant");
    assert_eq!(store.grouping_epochs(&other, &keys).await.expect("epochs").get("host:ws-9"), Some(&1));
}

pub async fn audit_chain_storage_is_exact_and_gap_free(store: &dyn AuditStore) {
    assert_eq!(store.audit_head("t").await.expect("head"), None);
    let first = sample_audit_record("t", 0, "0".repeat(64));
    store.append_audit(&first).await.expect("append");
    let second = sample_audit_record("t", 1, first.record_hash.clone());
    store.append_audit(&second).await.expect("append");
    let fork = sample_audit_record("t", 1, first.record_hash.clone());
    let error = store.append_audit(&fork).await.expect_err("same sequence twice");
    assert_eq!(error.kind, StoreErrorKind::Conflict);
    // The head moves by compare-and-set: a record must follow it and name its hash.
    let unlinked = sample_audit_record("t", 2, "f".repeat(64));
    assert_eq!(store.append_audit(&unlinked).await.expect_err("not naming the head's hash").kind, StoreErrorKind::Conflict);
    let gap = sample_audit_record("t", 3, second.record_hash.clone());
    assert_eq!(store.append_audit(&gap).await.expect_err("a gap").kind, StoreErrorKind::Conflict);
    let restart = sample_audit_record("t", 0, "0".repeat(64));
    assert_eq!(store.append_audit(&restart).await.expect_err("a second genesis").kind, StoreErrorKind::Conflict);
    assert_eq!(store.audit_head("t").await.expect("head"), Some((1, second.record_hash.clone())));
    let records = store.audit_records("t", 0, 100).await.expect("records");
    assert_eq!(records, vec![first, second.clone()], "records read back exactly as written");
    assert_eq!(store.audit_tenants().await.expect("tenants"), vec!["t".to_owned()]);

    // An investigation's records, by tenant and id, in order (evidence packages).
    let mut third = sample_audit_record("t", 2, second.record_hash.clone());
    third.investigation_id = Some("inv-9".to_owned());
    let mut fourth = sample_audit_record("t", 3, third.record_hash.clone());
    fourth.investigation_id = Some("inv-8".to_owned());
    let mut fifth = sample_audit_record("t", 4, fourth.record_hash.clone());
    fifth.investigation_id = Some("inv-9".to_owned());
    for record in [&third, &fourth, &fifth] {
        store.append_audit(record).await.expect("append");
    }
    assert_eq!(store.audit_records_for_investigation("t", "inv-9").await.expect("of inv-9"), vec![third, fifth]);
    assert!(store.audit_records_for_investigation("other", "inv-9").await.expect("other tenant").is_empty());

    // Audit events (issue 10): by investigation and event time, paged by sequence number.
    let of_inv9 = AuditFilter { tenant: "t".to_owned(), investigation_id: Some("inv-9".to_owned()), limit: 10, ..Default::default() };
    let found = store.audit_events(&of_inv9).await.expect("events");
    assert_eq!(found.iter().map(|r| r.sequence_number).collect::<Vec<_>>(), vec![2, 4]);
    let mut filter = AuditFilter { tenant: "t".to_owned(), limit: 2, ..Default::default() };
    let mut sequences = Vec::new();
    for _ in 0..5 {
        let page = store.audit_events(&filter).await.expect("page");
        let Some(last) = page.last() else { break };
        filter.after_sequence = Some(last.sequence_number);
        sequences.extend(page.iter().map(|r| r.sequence_number));
    }
    assert_eq!(sequences, vec![0, 1, 2, 3, 4], "pages visit every record once, in chain order");
    // The sample records' event time is 2024-07-04T22:35:00.000Z.
    let at = base_time();
    let window = |since: DateTime<Utc>, until: DateTime<Utc>| AuditFilter {
        tenant: "t".to_owned(),
        since: Some(since),
        until: Some(until),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(store.audit_events(&window(at, at + Duration::seconds(1))).await.expect("in").len(), 5);
    assert!(store.audit_events(&window(at + Duration::milliseconds(1), at + Duration::hours(1))).await.expect("after").is_empty());
    assert!(store.audit_events(&window(at - Duration::hours(1), at)).await.expect("before").is_empty());
}

fn past_row(tenant: &str, id: &str, closed_at: &str) -> PastIncidentRow {
    PastIncidentRow {
        tenant: tenant.to_owned(),
        id: id.to_owned(),
        closed_at: DateTime::parse_from_rfc3339(closed_at).map(|t| t.with_timezone(&Utc)).unwrap_or_default(),
        incident_id: Some(format!("inc-{id}")),
        body: serde_json::json!({"id": id, "summary": "it's a \"quoted\" summary; ' OR 1=1 --", "at": closed_at}),
    }
}

/// NFR-CMP-002: incident memory's records are kept by month, read by tenant and window, listed by
/// month and removed a month at a time; a record stored again replaces the earlier one.
pub async fn incident_memory_is_kept_by_month(store: &dyn MemoryStore) {
    for row in [
        past_row("acme", "m-1", "2024-07-04T10:00:00Z"),
        past_row("acme", "m-2", "2024-07-31T23:59:59Z"),
        past_row("acme", "m-3", "2024-08-01T00:00:00Z"),
        past_row("other", "m-1", "2024-08-15T00:00:00Z"),
        // Stored again, closed later: it moves to August.
        past_row("acme", "m-1", "2024-08-02T00:00:00Z"),
    ] {
        store.put_past_incident(&row).await.expect("put");
    }
    assert_eq!(store.past_incident_months().await.expect("months"), vec![("2024-07".to_owned(), 1), ("2024-08".to_owned(), 3)]);
    let window = |y, m| Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single().unwrap_or_default();
    let acme = store.past_incidents("acme", window(2024, 7), window(2024, 9), 10).await.expect("acme");
    assert_eq!(acme.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), vec!["m-1", "m-3", "m-2"], "newest first");
    assert_eq!(acme[0], past_row("acme", "m-1", "2024-08-02T00:00:00Z"), "read back exactly");
    assert_eq!(store.past_incidents("acme", window(2024, 8), window(2024, 9), 1).await.expect("limit").len(), 1);
    let august = store.past_incidents_of_month("2024-08").await.expect("august");
    let keys: Vec<(&str, &str)> = august.iter().map(|r| (r.tenant.as_str(), r.id.as_str())).collect();
    assert_eq!(keys, vec![("acme", "m-1"), ("acme", "m-3"), ("other", "m-1")]);
    assert_eq!(store.drop_past_incident_month("2024-07").await.expect("drop"), 1);
    assert_eq!(store.drop_past_incident_month("2024-07").await.expect("again"), 0);
    assert_eq!(store.past_incident_months().await.expect("months"), vec![("2024-08".to_owned(), 3)]);
    for bad in ["2024-13", "2024-7", "24-07", "2024-07'; DROP TABLE x; --"] {
        assert_eq!(store.drop_past_incident_month(bad).await.expect_err(bad).kind, StoreErrorKind::Invalid, "{bad}");
    }
}

/// Every row of a keyset listing, page by page: `fetch` lists the page after a key, `key` is a
/// row's key (at most 10 pages).
async fn all_pages<T, Fut>(fetch: impl Fn(Option<PageKey>) -> Fut, key: impl Fn(&T) -> PageKey) -> Vec<T>
where
    Fut: std::future::Future<Output = Vec<T>>,
{
    let (mut after, mut rows) = (None, Vec::new());
    for _ in 0..10 {
        let page = fetch(after.clone()).await;
        let Some(last) = page.last() else { break };
        after = Some(key(last));
        rows.extend(page);
    }
    rows
}

/// Keyset pages (issue 10): following each page's last row visits every row exactly once, in the
/// listing's order, also where rows share a sort time; filters combine with pages.
pub async fn listings_page_by_keyset(store: &dyn CaseStore) {
    let other = TenantId::parse("other").expect("valid");
    for n in 0..7 {
        let mut alert = sample_alert(&format!("p-{n}"), n / 2);
        if n % 3 == 0 {
            alert.tenant_id = other.clone();
        }
        if n == 6 {
            alert.severity = Severity::Low;
        }
        store.insert_alert(&alert).await.expect("insert");
        // Investigations: two share each update time.
        let mut state = GraphState::new(alert.alert_id.clone(), alert.tenant_id.clone(), DegradationLevel::Deterministic, alert.timestamp);
        state.version = 1;
        store.create_investigation(&state).await.expect("create");
        // Incidents: two share each last-seen time; one is merged.
        let mut incident = keyed_incident(&format!("inc-{n}"), &["host:x"], n / 2);
        if n == 5 {
            incident.merged_into = Some("inc-4".to_owned());
        }
        store.upsert_incident(&incident).await.expect("incident");
    }

    let all = store.list_alerts(&AlertFilter::default()).await.expect("all alerts");
    assert_eq!(all.len(), 7);
    assert!(all.windows(2).all(|pair| pair[0].timestamp >= pair[1].timestamp), "newest first");
    let paged = all_pages(
        |after| async move { store.list_alerts(&AlertFilter { limit: Some(3), after, ..Default::default() }).await.expect("page") },
        |last| PageKey { time: last.timestamp, tenant: last.tenant_id.as_str().to_owned(), id: last.alert_id.as_str().to_owned() },
    )
    .await;
    assert_eq!(paged, all, "alert pages");
    let of_other = AlertFilter { tenant: Some(other.clone()), ..Default::default() };
    assert_eq!(store.list_alerts(&of_other).await.expect("other").len(), 3);
    let low = AlertFilter { severity: Some("low".to_owned()), ..Default::default() };
    assert_eq!(store.list_alerts(&low).await.expect("low").iter().map(|a| a.alert_id.as_str()).collect::<Vec<_>>(), vec!["p-6"]);
    let window = AlertFilter {
        since: Some(base_time() + Duration::minutes(1)),
        until: Some(base_time() + Duration::minutes(3)),
        ..Default::default()
    };
    assert_eq!(store.list_alerts(&window).await.expect("window").len(), 4);

    let all = store.list_investigations(&InvestigationFilter::default()).await.expect("all investigations");
    assert_eq!(all.len(), 7);
    let paged = all_pages(
        |after| async move {
            store.list_investigations(&InvestigationFilter { limit: Some(2), after, ..Default::default() }).await.expect("page")
        },
        |last| PageKey { time: last.updated_at, tenant: String::new(), id: last.investigation_id.to_string() },
    )
    .await;
    assert_eq!(paged, all, "investigation pages");

    let all = store.list_incidents(&IncidentFilter::default()).await.expect("all incidents");
    assert_eq!(all.iter().map(|i| i.incident_id.as_str()).collect::<Vec<_>>(), vec!["inc-6", "inc-4", "inc-3", "inc-2", "inc-1", "inc-0"]);
    let paged = all_pages(
        |after| async move { store.list_incidents(&IncidentFilter { limit: Some(4), after, ..Default::default() }).await.expect("page") },
        |last| PageKey { time: last.last_seen, tenant: String::new(), id: last.incident_id.clone() },
    )
    .await;
    assert_eq!(paged, all, "incident pages");
    let recent = IncidentFilter { since: Some(base_time() + Duration::hours(2)), ..Default::default() };
    assert_eq!(store.list_incidents(&recent).await.expect("recent").len(), 2, "inc-4 and inc-6 (inc-5 is merged)");
    let early = IncidentFilter { until: Some(base_time() + Duration::hours(1)), ..Default::default() };
    assert_eq!(store.list_incidents(&early).await.expect("early").len(), 2);
    let of_other = IncidentFilter { tenant: Some(other), ..Default::default() };
    assert!(store.list_incidents(&of_other).await.expect("other").is_empty());
}

pub(crate) fn sample_planned(step: &str) -> aluskort_core::response::PlannedAction {
    aluskort_core::response::PlannedAction {
        step_key: format!("pb/{step}/host-1"),
        playbook_id: "pb".to_owned(),
        step_id: step.to_owned(),
        action: "defender.isolate_machine".to_owned(),
        target: "host-1".to_owned(),
        params: serde_json::Map::new(),
        tier: 2,
        destructive: true,
        reversible: true,
        description: "isolate host-1".to_owned(),
    }
}

fn sample_approval(id: &str, tenant: &str, severity: &str, deadline_minutes: i64) -> aluskort_core::response::Approval {
    aluskort_core::response::Approval {
        approval_id: id.to_owned(),
        tenant_id: tenant.to_owned(),
        investigation_id: format!("inv-{id}"),
        alert_id: format!("alert-{id}"),
        incident_id: None,
        severity: severity.to_owned(),
        status: aluskort_core::response::ApprovalStatus::Pending,
        reason: "destructive actions proposed".to_owned(),
        actions: vec![sample_planned("isolate")],
        required_approvers: 1,
        decisions: Vec::new(),
        requested_at: base_time(),
        deadline: base_time() + Duration::minutes(deadline_minutes),
        notified_at: None,
        reminded_at: None,
        escalated_at: None,
        decided_at: None,
        version: 1,
    }
}

/// FR-RSP-002/003: approvals are created once, replaced only from the version read, and listed by
/// status, tenant, investigation and deadline, earliest deadline first.
pub async fn approvals_are_versioned_and_listed_by_deadline(store: &(impl CaseStore + ResponseStore)) {
    use aluskort_core::response::ApprovalStatus;
    let create = |approval| crate::ApprovalWrite { expected_version: 0, approval };
    let work = WorkBatch {
        approvals: vec![
            create(sample_approval("a-1", "acme", "critical", 60)),
            create(sample_approval("a-2", "acme", "low", 480)),
            create(sample_approval("a-3", "globex", "high", 120)),
        ],
        ..WorkBatch::default()
    };
    store.commit_work(&work, &[]).await.expect("create approvals");
    let again = WorkBatch { approvals: vec![create(sample_approval("a-1", "acme", "critical", 60))], ..WorkBatch::default() };
    let error = store.commit_work(&again, &[]).await.expect_err("an approval id is created once");
    assert_eq!(error.kind, StoreErrorKind::Conflict);
    let mut second = sample_approval("a-9", "acme", "critical", 60);
    second.investigation_id = "inv-a-1".to_owned();
    let error = store
        .commit_work(&WorkBatch { approvals: vec![create(second)], ..WorkBatch::default() }, &[])
        .await
        .expect_err("one pending approval per investigation");
    assert_eq!(error.kind, StoreErrorKind::Conflict);

    let all = store.approvals(&crate::ApprovalFilter::default()).await.expect("list");
    assert_eq!(all.iter().map(|a| a.approval_id.as_str()).collect::<Vec<_>>(), ["a-1", "a-3", "a-2"], "earliest deadline first");
    let acme = crate::ApprovalFilter { tenant: Some("acme".to_owned()), ..Default::default() };
    assert_eq!(store.approvals(&acme).await.expect("acme").len(), 2);
    let due = crate::ApprovalFilter { deadline_before: Some(base_time() + Duration::minutes(120)), ..Default::default() };
    assert_eq!(store.approvals(&due).await.expect("due").iter().map(|a| a.approval_id.as_str()).collect::<Vec<_>>(), ["a-1", "a-3"]);
    let by_investigation = crate::ApprovalFilter { investigation_id: Some("inv-a-2".to_owned()), ..Default::default() };
    assert_eq!(store.approvals(&by_investigation).await.expect("by investigation")[0].approval_id, "a-2");
    // Keyset pages: after a-1 (deadline, id) come a-3 then a-2.
    let first = &all[0];
    let after = crate::ApprovalFilter {
        after: Some(PageKey { time: first.deadline, tenant: String::new(), id: first.approval_id.clone() }),
        limit: 1,
        ..Default::default()
    };
    assert_eq!(store.approvals(&after).await.expect("page")[0].approval_id, "a-3");

    let mut approved = store.approval("a-1").await.expect("read").expect("present");
    approved.status = ApprovalStatus::Approved;
    approved.decisions.push(aluskort_core::response::ApprovalDecision {
        actor: "alice".to_owned(),
        decision: "approve".to_owned(),
        comment: "go".to_owned(),
        at: base_time(),
    });
    approved.version = 2;
    let update =
        WorkBatch { approvals: vec![crate::ApprovalWrite { expected_version: 1, approval: approved.clone() }], ..WorkBatch::default() };
    store.commit_work(&update, &[]).await.expect("update from the version read");
    let error = store.commit_work(&update, &[]).await.expect_err("a second writer from the same version");
    assert_eq!(error.kind, StoreErrorKind::Conflict);
    assert_eq!(store.approval("a-1").await.expect("read").expect("present"), approved, "read back exactly as written");
    let pending = crate::ApprovalFilter { status: Some(ApprovalStatus::Pending), ..Default::default() };
    assert_eq!(store.approvals(&pending).await.expect("pending").len(), 2);
    assert!(store.approval("missing").await.expect("read").is_none());
}

/// FR-RSP-004: one execution per key however often it is queued; a claim is fenced by its attempt,
/// so a worker whose lease ran out cannot record over the one that took the execution over.
pub async fn executions_run_once_per_key_and_claims_are_fenced(store: &(impl CaseStore + ResponseStore)) {
    use aluskort_core::response::{Execution, ExecutionStatus};
    let now = base_time();
    let first = Execution::queued("acme", "inv-1", Some("appr-1"), sample_planned("isolate"), now);
    let second = Execution::queued("acme", "inv-1", None, sample_planned("scan"), now + Duration::seconds(1));
    let queue = WorkBatch { executions: vec![first.clone(), second.clone()], ..WorkBatch::default() };
    store.commit_work(&queue, &[]).await.expect("queue");
    store.commit_work(&queue, &[]).await.expect("a redelivered queue is accepted");
    assert_eq!(store.executions_for_investigation("inv-1").await.expect("list").len(), 2, "queued once per key");

    let lease = Duration::minutes(5);
    let claimed = store.claim_executions(now, lease, 1).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].execution_key, first.execution_key, "oldest first");
    assert_eq!((claimed[0].status, claimed[0].attempts), (ExecutionStatus::Running, 1));
    let rest = store.claim_executions(now, lease, 10).await.expect("claim the rest");
    assert_eq!(rest.iter().map(|e| e.execution_key.as_str()).collect::<Vec<_>>(), [second.execution_key.as_str()]);
    assert!(store.claim_executions(now + Duration::minutes(1), lease, 10).await.expect("nothing").is_empty(), "leases hold");

    // The first worker's lease runs out; another takes the execution over (in doubt).
    let taken = store.claim_executions(now + Duration::minutes(6), lease, 10).await.expect("reclaim");
    assert_eq!(taken.len(), 2);
    let retaken = taken.iter().find(|e| e.execution_key == first.execution_key).expect("first in doubt");
    assert_eq!(retaken.attempts, 2);

    let mut stale = claimed[0].clone();
    stale.status = ExecutionStatus::Succeeded;
    let error = store
        .commit_work(&WorkBatch { execution_updates: vec![stale], ..WorkBatch::default() }, &[])
        .await
        .expect_err("the first worker no longer holds it");
    assert_eq!(error.kind, StoreErrorKind::Conflict);

    let mut done = retaken.clone();
    done.status = ExecutionStatus::Succeeded;
    done.result = Some(serde_json::json!({"machine_action": "ma-1"}));
    store.commit_work(&WorkBatch { execution_updates: vec![done.clone()], ..WorkBatch::default() }, &[]).await.expect("finish");
    assert_eq!(store.execution(&first.execution_key).await.expect("read"), Some(done));
    assert!(
        store
            .claim_executions(now + Duration::hours(1), lease, 10)
            .await
            .expect("claim")
            .iter()
            .all(|e| e.execution_key != first.execution_key),
        "a finished execution is never claimed again"
    );
}

/// FR-CSM-004: feedback is stored once per id, rating 1..=5, listed per investigation and tenant.
pub async fn feedback_round_trips(store: &impl ResponseStore) {
    let feedback = |id: &str, investigation: &str, minutes: i64, rating: u8| crate::Feedback {
        feedback_id: id.to_owned(),
        tenant_id: "acme".to_owned(),
        investigation_id: investigation.to_owned(),
        actor: "alice".to_owned(),
        correct: false,
        rating,
        comment: "benign backup job".to_owned(),
        corrected_classification: Some(aluskort_core::Classification::FalsePositive),
        created_at: base_time() + Duration::minutes(minutes),
    };
    store.insert_feedback(&feedback("f-1", "inv-1", 0, 4)).await.expect("insert");
    store.insert_feedback(&feedback("f-2", "inv-2", 10, 5)).await.expect("insert");
    let error = store.insert_feedback(&feedback("f-1", "inv-1", 0, 4)).await.expect_err("duplicate id");
    assert_eq!(error.kind, StoreErrorKind::Conflict);
    let error = store.insert_feedback(&feedback("f-3", "inv-1", 0, 6)).await.expect_err("rating 6");
    assert_eq!(error.kind, StoreErrorKind::Invalid);
    assert_eq!(store.feedback_for("inv-1").await.expect("for"), vec![feedback("f-1", "inv-1", 0, 4)]);
    let since = store.feedback_since("acme", base_time() + Duration::minutes(5)).await.expect("since");
    assert_eq!(since.iter().map(|f| f.feedback_id.as_str()).collect::<Vec<_>>(), ["f-2"]);
    assert!(store.feedback_since("globex", base_time()).await.expect("other tenant").is_empty());
}

/// Instantiates every conformance test for a store built by `$make` (an expression, evaluated in
/// each test; it may `return` to skip). Used by this crate's own tests only.
#[cfg(test)]
macro_rules! case_store_suite {
    ($suite:ident, $make:expr) => {
        mod $suite {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test]
            async fn insert_alert_is_idempotent() {
                let store = $make;
                $crate::conformance::insert_alert_is_idempotent(&store).await;
            }
            #[tokio::test]
            async fn alerts_are_queried_by_time_window() {
                let store = $make;
                $crate::conformance::alerts_are_queried_by_time_window(&store).await;
            }
            #[tokio::test]
            async fn investigation_saves_are_versioned() {
                let store = $make;
                $crate::conformance::investigation_saves_are_versioned(&store).await;
            }
            #[tokio::test]
            async fn incident_memory_is_kept_by_month() {
                let store = $make;
                $crate::conformance::incident_memory_is_kept_by_month(&store).await;
            }
            #[tokio::test]
            async fn listings_page_by_keyset() {
                let store = $make;
                $crate::conformance::listings_page_by_keyset(&store).await;
            }
            #[tokio::test]
            async fn investigations_are_listed_by_state_and_time() {
                let store = $make;
                $crate::conformance::investigations_are_listed_by_state_and_time(&store).await;
            }
            #[tokio::test]
            async fn raw_inbox_replays_pending_records() {
                let store = $make;
                $crate::conformance::raw_inbox_replays_pending_records(&store).await;
            }
            #[tokio::test]
            async fn connector_checkpoints_round_trip() {
                let store = $make;
                $crate::conformance::connector_checkpoints_round_trip(&store).await;
            }
            #[tokio::test]
            async fn llm_calls_are_accounted() {
                let store = $make;
                $crate::conformance::llm_calls_are_accounted(&store).await;
            }
            #[tokio::test]
            async fn threat_intel_matches_exactly_and_expires() {
                let store = $make;
                $crate::conformance::threat_intel_matches_exactly_and_expires(&store).await;
            }
            #[tokio::test]
            async fn fp_patterns_match_by_tenant_status_and_expiry() {
                let store = $make;
                $crate::conformance::fp_patterns_match_by_tenant_status_and_expiry(&store).await;
            }
            #[tokio::test]
            async fn fp_patterns_are_listed_by_tenant_and_status() {
                let store = $make;
                $crate::conformance::fp_patterns_are_listed_by_tenant_and_status(&store).await;
            }
            #[tokio::test]
            async fn user_risk_is_case_insensitive_and_replaced_on_reimport() {
                let store = $make;
                $crate::conformance::user_risk_is_case_insensitive_and_replaced_on_reimport(&store).await;
            }
            #[tokio::test]
            async fn exposures_correlate_by_asset_and_zone() {
                let store = $make;
                $crate::conformance::exposures_correlate_by_asset_and_zone(&store).await;
            }
            #[tokio::test]
            async fn context_writes_are_validated() {
                let store = $make;
                $crate::conformance::context_writes_are_validated(&store).await;
            }
            #[tokio::test]
            async fn incidents_and_dead_letters_round_trip() {
                let store = $make;
                $crate::conformance::incidents_and_dead_letters_round_trip(&store).await;
            }
            #[tokio::test]
            async fn raw_records_insert_in_batches() {
                let store = $make;
                $crate::conformance::raw_records_insert_in_batches(&store).await;
            }
            #[tokio::test]
            async fn work_commits_atomically() {
                let store = $make;
                $crate::conformance::work_commits_atomically(&store, &store).await;
            }
            #[tokio::test]
            async fn incidents_are_found_by_entity_key() {
                let store = $make;
                $crate::conformance::incidents_are_found_by_entity_key(&store).await;
            }
            #[tokio::test]
            async fn incidents_and_grouping_claims_are_fenced() {
                let store = $make;
                $crate::conformance::incidents_and_grouping_claims_are_fenced(&store).await;
            }
            #[tokio::test]
            async fn approvals_are_versioned_and_listed_by_deadline() {
                let store = $make;
                $crate::conformance::approvals_are_versioned_and_listed_by_deadline(&store).await;
            }
            #[tokio::test]
            async fn executions_run_once_per_key_and_claims_are_fenced() {
                let store = $make;
                $crate::conformance::executions_run_once_per_key_and_claims_are_fenced(&store).await;
            }
            #[tokio::test]
            async fn feedback_round_trips() {
                let store = $make;
                $crate::conformance::feedback_round_trips(&store).await;
            }
            #[tokio::test]
            async fn audit_chain_storage_is_exact_and_gap_free() {
                let store = $make;
                $crate::conformance::audit_chain_storage_is_exact_and_gap_free(&store).await;
            }
        }
    };
}

#[cfg(test)]
pub(crate) use case_store_suite;
