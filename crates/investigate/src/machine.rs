//! One alert's investigation (ARCHITECTURE.md state machine). Each step moves the `GraphState` one
//! state forward and saves it as a new version, with its decision audited, into the batch's
//! [`Work`]: the batch commits versions and audit records together, so a crash loses neither one
//! without the other. On redelivery the investigation resumes from the last committed version.

use std::collections::HashSet;

use aluskort_audit::AuditEvent;
use aluskort_core::response::{Execution, PlannedAction};
use aluskort_core::{CanonicalAlert, Classification, DegradationLevel, GraphState, Incident, IncidentMember, InvestigationState, Verdict};
use aluskort_ingest::NormalizedAlert;
use aluskort_store::StoreError;
use chrono::Utc;
use serde_json::json;

use crate::enrich;
use crate::grouping::{self, GroupingDecision};
use crate::model;
use crate::pipeline::Pipeline;
use crate::reasoner::{self, IncidentContext, ReasoningInput};
use crate::work::Work;

/// What grouping did with an alert.
struct Grouped {
    incident_id: String,
    /// Alerts in the incident now.
    alerts: usize,
    reason: String,
}

/// FR-RSN-006 / §3.4: minimum confidence for closing without a human.
pub const AUTO_CLOSE_CONFIDENCE: f64 = 0.85;

/// FR-RSP-006: confidence a true-positive verdict needs before tier-1 (auto-conditional) playbook
/// steps run without approval.
pub const AUTO_RESPONSE_CONFIDENCE: f64 = 0.85;

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Worth retrying (store or audit unavailable, version conflict).
    #[error("transient: {0}")]
    Transient(String),
    /// Will fail again: the investigation goes to FAILED.
    #[error("{0}")]
    Permanent(String),
}

/// Technique suggestions scoring below this fraction of the best one are not kept.
const SUGGESTION_MIN_SCORE: f64 = 0.5;

impl From<StoreError> for StepError {
    fn from(error: StoreError) -> Self {
        if error.is_retryable() { StepError::Transient(error.to_string()) } else { StepError::Permanent(error.to_string()) }
    }
}

impl From<aluskort_audit::chain::AuditError> for StepError {
    fn from(error: aluskort_audit::chain::AuditError) -> Self {
        match error {
            aluskort_audit::chain::AuditError::Store(store) => store.into(),
            aluskort_audit::chain::AuditError::Contention => StepError::Transient(error.to_string()),
            other => StepError::Permanent(other.to_string()),
        }
    }
}

impl Pipeline {
    fn state_event(&self, state: &GraphState, event_type: &'static str, actor: &str) -> AuditEvent {
        let mut event = AuditEvent::agent(state.tenant_id.as_str(), event_type, actor, Utc::now());
        event.investigation_id = Some(state.investigation_id.to_string());
        event.alert_id = Some(state.alert_id.to_string());
        event.context = json!({"degradation_level": state.degradation_level.as_str()});
        event
    }

    /// Audits a transition of `state` to `next` and saves it as the next version.
    pub(crate) fn transition(
        &self,
        work: &mut Work,
        state: &mut GraphState,
        next: InvestigationState,
        agent: &str,
        reason: &str,
    ) -> Result<(), StepError> {
        let from = state.state;
        state.transition(next, reason, Utc::now()).map_err(|error| StepError::Permanent(error.to_string()))?;
        let mut event = self.state_event(state, "investigation.state_changed", agent);
        // Keys in canonical (sorted) order: the audit hash writes such an object without sorting.
        event.outcome = json!({"outcome_status": "success", "state_after": next.as_str(), "state_before": from.as_str()});
        event.decision = json!({"decision_type": "transition", "reasoning_summary": reason});
        work.audit(event);
        work.save(state, false);
        Ok(())
    }

    /// Advances `state` until it waits for a human, is closed, or failed.
    pub(crate) async fn advance(&self, work: &mut Work, state: &mut GraphState, normalized: &NormalizedAlert) -> Result<(), StepError> {
        loop {
            match state.state {
                InvestigationState::Received => self.step_parse(work, state, normalized)?,
                InvestigationState::Parsing => self.step_fp_check(work, state, normalized)?,
                InvestigationState::Enriching => self.step_enrich(work, state, normalized).await?,
                InvestigationState::Reasoning => self.step_reason(work, state, normalized).await?,
                InvestigationState::Responding => self.step_respond(work, state)?,
                InvestigationState::AwaitingHuman | InvestigationState::Closed | InvestigationState::Failed => return Ok(()),
            }
        }
    }

    fn step_parse(&self, work: &mut Work, state: &mut GraphState, normalized: &NormalizedAlert) -> Result<(), StepError> {
        state.entities = normalized.entities.clone().into();
        state.iocs = normalized.iocs.clone().into();
        state.techniques = normalized.alert.techniques.clone();
        // ATLAS techniques (adversarial ML, `AML.T…`) are also kept apart for the AI-system view.
        state.atlas_techniques = state.techniques.iter().filter(|id| id.starts_with("AML.")).cloned().collect();
        state.tactics = normalized.alert.tactics.clone();
        if !normalized.warnings.is_empty() {
            state.case_facts.insert("ingest_warnings".to_owned(), json!(normalized.warnings));
        }
        if normalized.sanitize.truncated + normalized.sanitize.stripped + normalized.sanitize.rejected > 0 {
            state.case_facts.insert("sanitize".to_owned(), json!(normalized.sanitize));
        }
        let summary = format!("{} entities, {} indicators extracted", normalized.entities.len(), normalized.iocs.len());
        state.record_decision("ioc_extractor", "extracted", &summary, None, Utc::now());
        if state.techniques.is_empty()
            && let Some(suggester) = &self.settings.technique_suggester
        {
            // FR-RSN-004: an alert without techniques gets suggestions from its own text, kept
            // apart from the source's techniques (they are a model's guess, not the SIEM's).
            let text = format!("{} {}", normalized.alert.title, normalized.alert.description);
            let suggestions: Vec<_> = suggester
                .suggest(&text, 3)
                .into_iter()
                .filter(|s| s.score >= SUGGESTION_MIN_SCORE)
                .map(|s| json!({"id": s.id, "name": s.name, "score": s.score}))
                .collect();
            if !suggestions.is_empty() {
                let ids: Vec<&str> = suggestions.iter().filter_map(|s| s["id"].as_str()).collect();
                let note = format!("the alert names no technique; its text suggests {}", ids.join(", "));
                state.record_decision("technique_mapper", "suggested", &note, None, Utc::now());
                state.case_facts.insert("suggested_techniques".to_owned(), json!(suggestions));
            }
        }
        self.transition(work, state, InvestigationState::Parsing, "ioc_extractor", &summary)
    }

    /// The exact-match lookups (threat intel, asset zone) and the FP check (FR-RSN-006): an
    /// approved FP pattern scoring above its threshold (0.90 by default, strictly) closes the
    /// alert as a false positive before any model call, unless a kill switch or a safety rule
    /// covers it, or the degradation level forbids closing without a human (then the match is
    /// evidence for the reasoner and a human decides).
    fn step_fp_check(&self, work: &mut Work, state: &mut GraphState, normalized: &NormalizedAlert) -> Result<(), StepError> {
        let alert = &normalized.alert;
        let now = Utc::now();
        let failures = work.context.failures();
        if !failures.is_empty() {
            let mut names: Vec<&str> = failures.keys().copied().collect();
            names.sort_unstable();
            let note = names.iter().map(|name| format!("{name}: {}", failures[name])).collect::<Vec<_>>().join("; ");
            state.case_facts.insert("enrichment_failures".to_owned(), json!(failures));
            state.record_decision(
                "context_enricher",
                "enrichment_degraded",
                format!("lookups unavailable, going on without them: {note}"),
                None,
                now,
            );
        }
        // FR-ENR-004: exact matches of the alert's indicators in imported threat intelligence.
        state.ioc_matches = work.context.ti_matches(&alert.tenant_id, &state.iocs);
        if !state.iocs.is_empty() {
            state.queries_executed += 1;
        }
        if !state.ioc_matches.is_empty() {
            let names: Vec<String> = state.ioc_matches.iter().map(|m| format!("{} ({})", m.ioc, m.source)).collect();
            let note = format!("{} indicator(s) in threat intelligence: {}", names.len(), names.join(", "));
            state.record_decision("context_enricher", "ti_matched", &note, None, now);
        }
        match work.context.zone(&self.settings.zones, &alert.tenant_id, &normalized.entities) {
            Some(zone) => {
                state.case_facts.insert("asset_zone".to_owned(), json!({"zone": zone.name, "consequence": zone.consequence.as_str()}));
            }
            None if !self.settings.zones.is_empty() => {
                state.case_facts.insert(
                    "asset_zone".to_owned(),
                    json!({"zone": null, "consequence": null, "note": "no configured zone holds the alert's assets"}),
                );
            }
            None => {}
        }

        let Some(found) = work.context.fp_match(&alert.tenant_id, &alert.title, &normalized.entities) else {
            state.record_decision("context_enricher", "fp_check", "no approved false-positive pattern matched", None, now);
            return self.transition(work, state, InvestigationState::Enriching, "context_enricher", "no approved FP pattern matched");
        };
        state.case_facts.insert(
            "fp_match".to_owned(),
            json!({"pattern_id": found.pattern_id, "name": found.name, "score": found.score,
                   "threshold": found.confidence_threshold, "reason": found.reason}),
        );
        let summary = format!("FP pattern {} ({}) scores {:.2}: {}", found.pattern_id, found.name, found.score, found.reason);
        if !found.short_circuits() {
            state.record_decision(
                "context_enricher",
                "fp_partial_match",
                format!("{summary}; not above its threshold {:.2}", found.confidence_threshold),
                Some(found.score),
                now,
            );
            return self.transition(work, state, InvestigationState::Enriching, "context_enricher", "FP pattern below its threshold");
        }
        let switches = self.settings.kill_switches.snapshot();
        let blocked = switches
            .blocks_pattern(&found.pattern_id)
            .or_else(|| kill_switch(&switches, alert, &[]))
            .or_else(|| safety_relevance(state, alert, None))
            .or_else(|| {
                (!state.degradation_level.allows_auto_close())
                    .then(|| format!("degradation level {} closes nothing without a human", state.degradation_level))
            });
        if let Some(why) = blocked {
            state.record_decision(
                "context_enricher",
                "fp_close_blocked",
                format!("{summary}; not closed automatically: {why}"),
                Some(found.score),
                now,
            );
            return self.transition(work, state, InvestigationState::Enriching, "context_enricher", "FP pattern matched, closing blocked");
        }
        state.classification = Some(Classification::FalsePositive);
        state.confidence = found.score.min(0.99);
        state.requires_human_approval = false;
        state.close_reason = Some(format!("fp_pattern:{}", found.pattern_id));
        state.record_decision("context_enricher", "fp_short_circuit", &summary, Some(found.score), now);
        let mut event = self.state_event(state, "alert.short_circuited", "context_enricher");
        event.decision = json!({
            "decision_type": "fp_short_circuit",
            "classification": "false_positive",
            "confidence": state.confidence,
            "confidence_basis": "fp_pattern",
            "fp_pattern_id": found.pattern_id,
            "reasoning_summary": summary,
        });
        event.outcome = json!({"outcome_status": "success"});
        work.audit(event);
        self.transition(
            work,
            state,
            InvestigationState::Closed,
            "context_enricher",
            &format!("approved FP pattern {} matched (no model call)", found.pattern_id),
        )?;
        work.closed.push(state.clone());
        Ok(())
    }

    async fn step_enrich(&self, work: &mut Work, state: &mut GraphState, normalized: &NormalizedAlert) -> Result<(), StepError> {
        let decision = self.group(work, &normalized.alert, normalized);
        state.incident_id = Some(decision.incident_id.clone());
        state.case_facts.insert(
            "incident".to_owned(),
            json!({"incident_id": decision.incident_id, "alerts": decision.alerts, "reason": decision.reason}),
        );
        if let Some(memory) = &self.settings.incident_memory {
            // FR-RSN-004: similar closed incidents of this tenant, by the §3.3 composite score.
            let summary = format!("{} {} {}", normalized.alert.title, normalized.alert.description, normalized.alert.product);
            state.case_facts.insert("memory_summary".to_owned(), json!(summary));
            let recall = tokio::time::timeout(
                self.settings.enricher_timeout,
                memory.recall(state.tenant_id.as_str(), &summary, &state.techniques, state.incident_id.as_deref(), Utc::now()),
            )
            .await;
            let recall = match recall {
                Ok(recall) => recall,
                Err(_) => {
                    let why = format!("similar-incident recall timed out after {} ms", self.settings.enricher_timeout.as_millis());
                    state.record_decision("context_enricher", "enrichment_degraded", &why, None, Utc::now());
                    state.case_facts.insert("memory_fallback".to_owned(), json!(why));
                    aluskort_knowledge::memory::Recall { similar: Vec::new(), fallback: None }
                }
            };
            if let Some(fallback) = &recall.fallback {
                // NFR-REL-004: degradation level 3 (structured search), shown on the verdict; it
                // does not stop automatic closing, a missing model (level 2) does.
                if state.degradation_level == DegradationLevel::Full {
                    state.degradation_level = DegradationLevel::StructuredSearch;
                }
                state.record_decision("context_enricher", "degraded", format!("structured_search: {fallback}"), None, Utc::now());
                state.case_facts.insert("memory_fallback".to_owned(), json!(fallback));
            }
            if !recall.similar.is_empty() {
                let similar: Vec<_> = recall
                    .similar
                    .iter()
                    .map(|s| {
                        json!({"investigation_id": s.incident.id, "incident_id": s.incident.incident_id, "classification": s.incident.classification,
                               "closed_at": s.incident.closed_at, "similarity": s.similarity, "score": s.score, "summary": s.incident.summary})
                    })
                    .collect();
                let note = format!("{} similar past incident(s); best {:.2}", similar.len(), recall.similar[0].score);
                state.record_decision("context_enricher", "recalled", &note, None, Utc::now());
                state.case_facts.insert("similar_incidents".to_owned(), json!(similar));
            }
        }
        if let Some(reports) = &self.settings.report_index {
            let matches = reports.matches(&state.iocs);
            if !matches.is_empty() {
                let note = format!("{} indicator match(es) in imported threat-intel reports", matches.len());
                state.record_decision("context_enricher", "ti_matched", &note, None, Utc::now());
                state.case_facts.insert("ti_matches".to_owned(), json!(matches));
            }
        }
        // FR-ENR-005: the riskiest of the alert's accounts; absent data is `no_baseline`, never `low`.
        let now = Utc::now();
        let (risk, users) = work.context.user_risk(&state.tenant_id, &normalized.entities, now);
        state.risk_state = risk.as_str().to_owned();
        if !users.is_empty() {
            state.record_decision(
                "context_enricher",
                "user_risk",
                format!("user risk {} from UEBA ({} account(s))", risk.as_str(), users.len()),
                None,
                now,
            );
        }
        state.ueba_context = users;
        // FR-ENR-006: open exposures of the alert's hosts in their zone.
        if let Some(zone) = work.context.zone(&self.settings.zones, &state.tenant_id, &normalized.entities) {
            let exposures = work.context.exposures(&state.tenant_id, &normalized.entities, zone, now);
            if !exposures.is_empty() {
                let fresh = exposures.iter().filter(|e| e["stale"] == json!(false)).count();
                let note = format!(
                    "{} open exposure(s) on the asset in {} ({fresh} fresh, best score {})",
                    exposures.len(),
                    zone.name,
                    exposures[0]["ctem_score"]
                );
                state.record_decision("ctem_correlator", "exposures", note, None, now);
            }
            state.ctem_exposures = exposures;
        }
        state.record_decision("context_enricher", "grouped", &decision.reason, None, Utc::now());
        self.transition(
            work,
            state,
            InvestigationState::Reasoning,
            "context_enricher",
            &format!("incident {}: {}", decision.incident_id, decision.reason),
        )
    }

    /// Groups the alert and records the incident(s) it changed in the unit of work (moved there,
    /// not copied: a large incident is costly to copy once per alert). Returns the incident id,
    /// its size and why.
    fn group(&self, work: &mut Work, alert: &CanonicalAlert, normalized: &NormalizedAlert) -> Grouped {
        let member = IncidentMember {
            alert_id: alert.alert_id.clone(),
            severity: alert.severity,
            activity_start: normalized.activity_start,
            activity_end: normalized.activity_end,
            keys: grouping::entity_keys(&normalized.entities),
            tactics: alert.tactics.clone(),
        };
        let window = self.settings.grouping_window;
        // Read-modify-write over incidents: batches run one at a time in this process.
        let (from, to) = (member.activity_start - window, member.activity_end + window);
        let hubs = grouping::hub_keys(&member, |key| work.candidates_holding(&alert.tenant_id, key, from, to));
        // Only incidents sharing a key that links can be related: one sharing nothing but a hub
        // (a device seen with every account of the window) is not read member by member.
        let linking: Vec<String> = member.keys.iter().filter(|key| !hubs.contains(*key)).cloned().collect();
        let candidates = work.candidates(&alert.tenant_id, &linking, from, to);
        let new_id = format!("inc-{}", uuid::Uuid::now_v7().simple());
        let GroupingDecision { incident, merged, reason } =
            grouping::group(&alert.tenant_id, &alert.title, member, candidates, &hubs, window, new_id);
        let mut event = AuditEvent::agent(alert.tenant_id.as_str(), "incident.grouped", "context_enricher", Utc::now());
        event.alert_id = Some(alert.alert_id.to_string());
        event.entity_ids = incident.members.last().map(|m| m.keys.clone()).unwrap_or_default();
        event.decision = json!({
            "decision_type": "incident_grouping",
            "incident_id": incident.incident_id,
            "merged": merged.iter().map(|i| i.incident_id.clone()).collect::<Vec<_>>(),
            "reasoning_summary": reason,
        });
        work.audit(event);
        let grouped = Grouped { incident_id: incident.incident_id.clone(), alerts: incident.alert_ids.len(), reason };
        for absorbed in merged {
            work.put_incident(absorbed);
        }
        work.put_incident(incident);
        grouped
    }

    async fn step_reason(&self, work: &mut Work, state: &mut GraphState, normalized: &NormalizedAlert) -> Result<(), StepError> {
        let incident: Option<Incident> = match &state.incident_id {
            Some(id) => work.resolve_incident(self.store.as_ref(), id).await?,
            None => None,
        };
        let baseline = reasoner::reason(&ReasoningInput {
            alert: &normalized.alert,
            entities: &normalized.entities,
            iocs: &normalized.iocs,
            incident: incident.as_ref(),
            ti_matches: &state.ioc_matches,
            facts: reasoner::Facts::of(state),
        });
        let (verdict, basis) = match self.model_verdict(state, normalized, incident.as_ref(), &baseline).await {
            Some(verdict) => (verdict, "model"),
            None => (baseline, "deterministic_rules"),
        };
        apply_verdict(state, &verdict, incident.as_ref());
        state.record_decision("reasoning_agent", "classified", verdict.reasoning.join("; "), Some(verdict.confidence), Utc::now());
        let mut classified = self.classified_event(state, &verdict, None);
        classified.decision["confidence_basis"] = json!(basis);
        work.audit(classified);
        if let Some(incident) = &incident {
            self.reassess_members(work, incident, &state.alert_id).await?;
        }

        let switches = self.settings.kill_switches.snapshot();
        // A switched-off FP pattern's match is still evidence, but closes nothing by itself or
        // through the verdict it informed.
        let matched_pattern =
            state.case_facts.get("fp_match").and_then(|found| found.get("pattern_id")).and_then(serde_json::Value::as_str);
        let killed = matched_pattern
            .and_then(|pattern| switches.blocks_pattern(pattern))
            .or_else(|| kill_switch(&switches, &normalized.alert, &verdict.techniques));
        let (auto_actions, gated_actions) = self.plan_response(work, state, &normalized.alert, killed.is_some());
        let destructive = verdict.has_destructive_action() || gated_actions.iter().any(|action| action.destructive);
        let dismissible = matches!(verdict.classification, Classification::FalsePositive | Classification::BenignTruePositive);
        let safety = killed.or_else(|| safety_relevance(state, &normalized.alert, incident.as_ref()));
        let auto_close = dismissible
            && !destructive
            && verdict.confidence >= AUTO_CLOSE_CONFIDENCE
            && state.degradation_level.allows_auto_close()
            && safety.is_none();
        if let (true, Some(why)) = (dismissible, &safety) {
            state.record_decision(
                "reasoning_agent",
                "dismissal_blocked",
                format!("safety-relevant alert, never dismissed automatically: {why}"),
                None,
                Utc::now(),
            );
            state.case_facts.insert("safety_relevant".to_owned(), json!(why));
        }
        if auto_close {
            state.requires_human_approval = false;
            return self.transition(
                work,
                state,
                InvestigationState::Responding,
                "reasoning_agent",
                "confident benign verdict, nothing destructive",
            );
        }
        state.requires_human_approval = true;
        let why = if destructive {
            "destructive actions proposed: human approval required (FR-RSP-002)"
        } else if state.degradation_level == DegradationLevel::Deterministic {
            "deterministic mode: every alert is queued for a human (NFR-REL-003)"
        } else if dismissible && safety.is_some() {
            "a benign verdict on this alert is confirmed by a human, never applied automatically (safety rule or kill switch)"
        } else {
            "verdict needs a human decision"
        };
        let event_type = if destructive { "approval.requested" } else { "alert.escalated" };
        let now = Utc::now();
        let dry_run = self.settings.dry_run.as_ref().filter(|_| self.settings.respond.mode == aluskort_config::ResponseMode::DryRun);
        for action in auto_actions {
            let mut execution = Execution::queued(state.tenant_id.as_str(), &state.investigation_id.to_string(), None, action, now);
            if let Some(runner) = dry_run {
                work.audit(runner.record(&mut execution, now));
            }
            work.batch.executions.push(execution);
        }
        // FR-RSP-002/003: every investigation waiting for a human has one approval, holding the
        // actions that need it (none when only the verdict needs confirming), with its deadline.
        let approval = aluskort_respond::gate::open(state, gated_actions, why, &self.settings.respond, now);
        state.case_facts.insert("approval_id".to_owned(), json!(approval.approval_id));
        let mut event = self.state_event(state, event_type, "reasoning_agent");
        event.decision = json!({
            "decision_type": "escalation",
            "reasoning_summary": why,
            "approval_id": approval.approval_id,
            "recommended_actions": approval.actions.iter().map(|a| json!({"step": a.step_key, "action": a.action, "target": a.target, "tier": a.tier})).collect::<Vec<_>>(),
        });
        event.outcome =
            json!({"outcome_status": "pending_approval", "deadline": approval.deadline, "required_approvers": approval.required_approvers});
        work.audit(event);
        work.batch.approvals.push(aluskort_store::ApprovalWrite { expected_version: 0, approval });
        self.transition(work, state, InvestigationState::AwaitingHuman, "reasoning_agent", why)
    }

    /// FR-RSP-005/006: the steps of the playbooks matching this investigation, split into those
    /// that run without a person (tier 0; tier 1 when a true positive is confident enough) and
    /// those that wait for approval (destructive or tier 2+, and everything under a kill switch).
    fn plan_response(
        &self,
        work: &mut Work,
        state: &mut GraphState,
        alert: &CanonicalAlert,
        killed: bool,
    ) -> (Vec<PlannedAction>, Vec<PlannedAction>) {
        let Some(playbooks) = &self.settings.playbooks else { return (Vec::new(), Vec::new()) };
        let plan = playbooks.plan(state, alert);
        if plan.matches.is_empty() {
            return (Vec::new(), Vec::new());
        }
        state.playbook_matches = plan.matches.iter().map(|m| json!({"playbook_id": m.playbook_id, "name": m.name, "why": m.why})).collect();
        // The steps themselves are stored once, in the approval (gated) and the execution queue
        // (automatic), not in every later version of the investigation.
        let confident = state.classification == Some(Classification::TruePositive) && state.confidence >= AUTO_RESPONSE_CONFIDENCE;
        let (auto, gated): (Vec<PlannedAction>, Vec<PlannedAction>) = plan
            .actions
            .into_iter()
            .partition(|action| !killed && !action.needs_approval() && (action.tier == 0 || (action.tier == 1 && confident)));
        let names: Vec<&str> = plan.matches.iter().map(|m| m.playbook_id.as_str()).collect();
        state.record_decision(
            "response_agent",
            "playbook_selected",
            format!("{}: {} automatic step(s), {} awaiting approval", names.join(", "), auto.len(), gated.len()),
            None,
            Utc::now(),
        );
        let mut event = self.state_event(state, "playbook.selected", "response_agent");
        event.decision = json!({
            "decision_type": "playbook_selection",
            "playbooks": state.playbook_matches,
            "automatic": auto.iter().map(|a| a.step_key.as_str()).collect::<Vec<_>>(),
            "gated": gated.iter().map(|a| a.step_key.as_str()).collect::<Vec<_>>(),
            "constraints_applied": if killed { vec!["kill_switch: nothing runs automatically"] } else { Vec::new() },
        });
        work.audit(event);
        (auto, gated)
    }

    /// The model's verdict through the gateway, escalated once to tier 1+ when it is unsure about a
    /// critical or high alert. `None` (with the reason recorded on the investigation, whose
    /// degradation level becomes `deterministic`) when no model is configured or reachable, the
    /// evidence was quarantined as an injection attempt, or the answer was unusable.
    async fn model_verdict(
        &self,
        state: &mut GraphState,
        normalized: &NormalizedAlert,
        incident: Option<&Incident>,
        baseline: &Verdict,
    ) -> Option<Verdict> {
        let gateway = self.settings.gateway.as_ref()?;
        if !gateway.router.has_model_routes() {
            // Deterministic by configuration: nothing to report per alert.
            return None;
        }
        if gateway.router.degradation() != DegradationLevel::Full {
            state.degradation_level = DegradationLevel::Deterministic;
            state
                .case_facts
                .insert("model_unavailable".to_owned(), json!("no model provider reachable (breakers open or none configured)"));
            return None;
        }
        let enrichment = json!({
            "similar_incidents": state.case_facts.get("similar_incidents"),
            "ti_matches": state.case_facts.get("ti_matches"),
            "threat_intel": state.ioc_matches,
            "suggested_techniques": state.case_facts.get("suggested_techniques"),
            "user_risk": state.risk_state,
        });
        let mut ask = model::Ask {
            alert: &normalized.alert,
            entities: &normalized.entities,
            iocs: &normalized.iocs,
            incident_context: incident.map(|incident| json!(IncidentContext::of(incident))),
            enrichment,
            baseline,
            investigation_id: state.investigation_id.to_string(),
            previous_confidence: None,
        };
        let mut escalated = false;
        loop {
            let request = model::request(&ask);
            let answer = gateway.call(&request).await;
            let response = match answer {
                Ok(response) => response,
                Err(error) => {
                    let kind = error.kind();
                    if kind == "injection" {
                        // The alert carries text aimed at the model: a finding in itself, and a human must look.
                        state.case_facts.insert("prompt_injection".to_owned(), json!(error.to_string()));
                        state.record_decision("reasoning_agent", "injection_quarantined", error.to_string(), None, Utc::now());
                    } else {
                        state.case_facts.insert("model_unavailable".to_owned(), json!(error.to_string()));
                        state.record_decision("reasoning_agent", "model_failed", error.to_string(), None, Utc::now());
                    }
                    state.degradation_level = DegradationLevel::Deterministic;
                    return None;
                }
            };
            state.llm_calls += 1;
            state.total_cost_usd += response.cost_usd;
            if !response.quarantined_techniques.is_empty() {
                state.case_facts.insert("quarantined_techniques".to_owned(), json!(response.quarantined_techniques));
            }
            let verdict = match model::verdict(&response, &normalized.alert, baseline) {
                Ok(verdict) => verdict,
                Err(reason) => {
                    state.record_decision("reasoning_agent", "model_answer_unusable", &reason, None, Utc::now());
                    state.degradation_level = DegradationLevel::Deterministic;
                    return None;
                }
            };
            let note =
                format!("{} via {} {} ({})", verdict.classification.as_str(), response.provider, response.model, response.tier.as_str());
            state.record_decision("reasoning_agent", "model_answered", note, Some(verdict.confidence), Utc::now());
            if model::should_escalate(normalized.alert.severity, verdict.confidence, escalated) {
                escalated = true;
                ask.previous_confidence = Some(verdict.confidence);
                continue;
            }
            if response.degradation != DegradationLevel::Full {
                // The model layer's own level (e.g. deterministic) wins; a full one keeps what
                // enrichment recorded (structured search).
                state.degradation_level = response.degradation;
            }
            return Some(verdict);
        }
    }

    fn classified_event(&self, state: &GraphState, verdict: &Verdict, reassessed: Option<&str>) -> AuditEvent {
        let mut event = self.state_event(state, "alert.classified", "reasoning_agent");
        event.decision = json!({
            "decision_type": if reassessed.is_some() { "reclassification" } else { "classification" },
            "classification": verdict.classification.as_str(),
            "confidence": verdict.confidence,
            "confidence_basis": "deterministic_rules",
            "severity_assigned": verdict.severity.as_str(),
            "recommended_actions": verdict.recommended_actions,
            "reasoning_summary": reassessed.map_or_else(|| verdict.reasoning.last().cloned().unwrap_or_default(), str::to_owned),
        });
        event
    }

    /// An incident is judged as a whole: when it grows enough to change what the reasoner sees
    /// (multi-stage, higher severity), the verdicts of its other members still waiting for a human
    /// are recomputed, audited and saved as new versions.
    ///
    /// Members already carry the context of the incident as it was before this alert joined (each
    /// earlier alert's reasoning brought them up to date), so when this alert neither changed the
    /// context nor merged incidents there is nothing to read: this keeps a large incident from
    /// costing a read per member for every new alert.
    async fn reassess_members(&self, work: &mut Work, incident: &Incident, current: &aluskort_core::AlertId) -> Result<(), StepError> {
        let context = IncidentContext::of(incident);
        let merged_now = incident.links.iter().any(|link| link.alert_id == *current && link.reason.starts_with("merged "));
        let before = context_among(incident, |id| id != current);
        if !merged_now && before == Some(context) {
            return Ok(());
        }
        // The members that may carry another context: on a merge where the surviving incident's
        // own context did not change, only those of the incidents it absorbed (each carries its
        // old incident's context); otherwise all of them. Without this, every merge into a large
        // incident read and decoded all its members' investigations (at an offered 100 alerts/s,
        // such alerts took 5–15 ms longer: the p99).
        let absorbed: HashSet<&aluskort_core::AlertId> = if merged_now {
            work.absorbed_into(&incident.incident_id).flat_map(|absorbed| &absorbed.alert_ids).collect()
        } else {
            HashSet::new()
        };
        let survivor_unchanged =
            merged_now && !absorbed.is_empty() && context_among(incident, |id| id != current && !absorbed.contains(id)) == Some(context);
        // Members this batch has not touched are read in one query, once a batch.
        let others: Vec<aluskort_core::AlertId> =
            incident.alert_ids.iter().filter(|id| *id != current && (!survivor_unchanged || absorbed.contains(id))).cloned().collect();
        work.read_states(self.store.as_ref(), &incident.tenant_id, &others).await?;
        let stale: Vec<aluskort_core::GraphState> = others
            .iter()
            .filter_map(|member| work.current_state(&incident.tenant_id, member))
            .filter(|member_state| {
                // A member judged by the model keeps that verdict: rules do not overwrite it.
                let judged_by_model = member_state.llm_calls > 0 && !member_state.case_facts.contains_key("model_unavailable");
                member_state.state == InvestigationState::AwaitingHuman
                    && recorded_context(member_state) != Some(context)
                    && !judged_by_model
            })
            .cloned()
            .collect();
        for mut member_state in stale {
            let member = &member_state.alert_id.clone();
            let Some(alert) = work.load_alert(self.store.as_ref(), &incident.tenant_id, member).await? else { continue };
            let verdict = reasoner::reason(&ReasoningInput {
                alert: &alert,
                entities: &member_state.entities,
                iocs: &member_state.iocs,
                incident: Some(incident),
                ti_matches: &member_state.ioc_matches,
                facts: reasoner::Facts::of(&member_state),
            });
            apply_verdict(&mut member_state, &verdict, Some(incident));
            let why = format!("reassessed: incident {} now has {} alerts", incident.incident_id, incident.alert_ids.len());
            member_state.record_decision(
                "reasoning_agent",
                "reclassified",
                format!("{why}; {}", verdict.reasoning.join("; ")),
                Some(verdict.confidence),
                Utc::now(),
            );
            member_state.updated_at = Utc::now();
            work.audit(self.classified_event(&member_state, &verdict, Some(&why)));
            // Someone (an analyst) may change it meanwhile: then their version wins.
            work.save(&mut member_state, true);
        }
        Ok(())
    }

    fn step_respond(&self, work: &mut Work, state: &mut GraphState) -> Result<(), StepError> {
        let mut event = self.state_event(state, "alert.auto_closed", "response_agent");
        event.decision = json!({
            "decision_type": "auto_close",
            "classification": state.classification.map(|c| c.as_str()),
            "confidence": state.confidence,
        });
        event.outcome = json!({"outcome_status": "success"});
        work.audit(event);
        state.close_reason = state.classification.map(|c| c.as_str().to_owned());
        self.transition(
            work,
            state,
            InvestigationState::Closed,
            "response_agent",
            "closed automatically: confident non-malicious verdict",
        )?;
        work.closed.push(state.clone());
        Ok(())
    }

    /// A closed investigation joins incident memory. Failure to store it is logged, never fatal:
    /// the investigation itself is complete and saved.
    pub(crate) async fn remember(&self, state: &GraphState) {
        let Some(memory) = &self.settings.incident_memory else { return };
        let summary = state.case_facts.get("memory_summary").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        let incident = aluskort_knowledge::memory::PastIncident {
            id: state.investigation_id.to_string(),
            tenant: state.tenant_id.to_string(),
            incident_id: state.incident_id.clone(),
            summary,
            techniques: state.techniques.clone(),
            classification: state.classification.map_or("unknown", |c| c.as_str()).to_owned(),
            closed_at: Utc::now(),
            rare_important: matches!(state.classification, Some(aluskort_core::Classification::TruePositive))
                && matches!(state.severity.as_str(), "critical" | "high"),
        };
        if let Err(error) = memory.remember(incident).await {
            tracing::warn!(investigation_id = %state.investigation_id, error = %format!("{error:#}"), "could not store the investigation in incident memory");
        }
    }

    /// Puts an investigation into FAILED with the reason (kept, visible, retryable).
    pub(crate) fn fail(&self, work: &mut Work, state: &mut GraphState, reason: &str) -> Result<(), StepError> {
        state.error = Some(reason.to_owned());
        self.transition(work, state, InvestigationState::Failed, "orchestrator", reason)
    }
}

fn recorded_context(state: &GraphState) -> Option<IncidentContext> {
    state.case_facts.get("incident_context").and_then(|value| serde_json::from_value(value.clone()).ok())
}

/// The kill switch covering `alert`, if one does: its tenant, its source, or a technique it or its
/// verdict names (a switched-off technique covers its sub-techniques).
fn kill_switch(switches: &aluskort_config::KillSwitches, alert: &aluskort_core::CanonicalAlert, techniques: &[String]) -> Option<String> {
    let named = alert.techniques.iter().chain(techniques).map(String::as_str);
    switches.applies(alert.tenant_id.as_str(), alert.source.as_str(), named)
}

/// Tactics whose alerts are never dismissed without a human, whatever the confidence.
const SAFETY_TACTICS: &[&str] = &["credentialaccess", "lateralmovement", "exfiltration", "impact", "commandandcontrol"];

/// Why an alert must not be closed automatically, if it must not: critical severity, a
/// high-impact tactic, a threat-intel match, a prompt-injection attempt in its evidence, or a
/// high-severity incident around it.
fn safety_relevance(state: &GraphState, alert: &aluskort_core::CanonicalAlert, incident: Option<&Incident>) -> Option<String> {
    if alert.severity == aluskort_core::Severity::Critical {
        return Some("critical severity".to_owned());
    }
    if let Some(tactic) =
        alert.tactics.iter().chain(&state.tactics).find(|tactic| SAFETY_TACTICS.contains(&reasoner::normalise(tactic).as_str()))
    {
        return Some(format!("high-impact tactic {tactic}"));
    }
    if state.case_facts.contains_key("ti_matches") || !state.ioc_matches.is_empty() {
        return Some("its indicators appear in threat-intel reports".to_owned());
    }
    if let Some(reason) = state.case_facts.get("enrichment_failures").and_then(|failures| failures.get("threat_intel")) {
        return Some(format!(
            "its indicators could not be checked against threat intelligence ({})",
            reason.as_str().unwrap_or("lookup failed")
        ));
    }
    if enrich::recorded_consequence(&state.case_facts) == Some(aluskort_config::Consequence::Critical) {
        return Some("it concerns an asset in a critical-consequence zone".to_owned());
    }
    if state.case_facts.contains_key("prompt_injection") {
        return Some("its evidence carries a prompt-injection attempt".to_owned());
    }
    if let Some(incident) = incident.filter(|incident| incident.alert_ids.len() > 1 && incident.severity >= aluskort_core::Severity::High) {
        return Some(format!(
            "part of {} ({} alerts, {} severity)",
            incident.incident_id,
            incident.alert_ids.len(),
            incident.severity.as_str()
        ));
    }
    None
}

/// The context of `incident` over the members `include` keeps (without the alert just added: as
/// it was before that alert joined); `None` when it keeps none.
fn context_among(incident: &Incident, include: impl Fn(&aluskort_core::AlertId) -> bool) -> Option<IncidentContext> {
    let members = || incident.members.iter().filter(|member| include(&member.alert_id));
    let severity = members().map(|member| member.severity).max()?;
    let alerts = incident.alert_ids.iter().filter(|id| include(id)).count();
    Some(IncidentContext::of_parts(alerts, severity, members()))
}

fn apply_verdict(state: &mut GraphState, verdict: &Verdict, incident: Option<&Incident>) {
    state.classification = Some(verdict.classification);
    state.confidence = verdict.confidence;
    state.severity = verdict.severity.as_str().to_owned();
    state.techniques = verdict.techniques.clone();
    state.tactics = verdict.tactics.clone();
    state.recommended_actions = verdict.recommended_actions.clone();
    state.case_facts.insert("reasoning".to_owned(), json!(verdict.reasoning));
    if let Some(incident) = incident {
        state.case_facts.insert("incident_context".to_owned(), json!(IncidentContext::of(incident)));
    }
    if state.state == InvestigationState::AwaitingHuman {
        state.requires_human_approval = true;
    }
}
