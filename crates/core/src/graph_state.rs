//! `GraphState`: the persisted, replayable record of one alert's investigation (REQUIREMENTS §3.11,
//! FR-RSN-007). Saved at every transition with an incrementing version (optimistic concurrency).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::alert::{AlertId, TenantId};
use crate::degradation::DegradationLevel;
use crate::entity::AlertEntities;
use crate::ioc::Ioc;
use crate::shared::Shared;
use crate::state::InvestigationState;
use crate::verdict::{Classification, RecommendedAction};

/// Investigation identifier (UUIDv7: time-ordered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InvestigationId(pub Uuid);

impl InvestigationId {
    pub fn new() -> Self {
        InvestigationId(Uuid::now_v7())
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Uuid::parse_str(raw).ok().map(InvestigationId)
    }
}

impl Default for InvestigationId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for InvestigationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One step of the decision chain (FR-CSM-001).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionEntry {
    pub step: u32,
    /// Role that took the step: ioc_extractor, context_enricher, reasoning_agent, response_agent, ...
    pub agent: String,
    pub action: String,
    pub reasoning: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    pub timestamp: DateTime<Utc>,
    /// The ATT&CK/ATLAS release technique ids were judged against ([`TAXONOMY_VERSION`]); empty in
    /// entries recorded before it was kept.
    #[serde(default)]
    pub taxonomy_version: String,
}

/// The embedded technique taxonomy (ATT&CK Enterprise and ATLAS releases) decisions are made
/// against; `aluskort-knowledge` checks its tables are this release.
pub const TAXONOMY_VERSION: &str = "attack-enterprise-18.1+atlas-5.6.0";

/// One recorded state change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateChange {
    pub from: InvestigationState,
    pub to: InvestigationState,
    pub at: DateTime<Utc>,
    pub reason: String,
}

/// A match of an indicator against threat intelligence or an FP pattern.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IocMatch {
    pub ioc: Ioc,
    pub source: String,
    pub confidence: f64,
}

/// Investigation state of one alert (§3.11 fields plus the bookkeeping ALUSKORT adds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphState {
    pub investigation_id: InvestigationId,
    pub state: InvestigationState,
    pub alert_id: AlertId,
    pub tenant_id: TenantId,
    /// Set when the alert is parsed and then only read: shared by every later version.
    pub entities: Shared<AlertEntities>,
    #[serde(default)]
    pub iocs: Shared<Vec<Ioc>>,
    #[serde(default)]
    pub ioc_matches: Vec<IocMatch>,
    #[serde(default)]
    pub ueba_context: Vec<serde_json::Value>,
    #[serde(default)]
    pub ctem_exposures: Vec<serde_json::Value>,
    #[serde(default)]
    pub atlas_techniques: Vec<String>,
    #[serde(default)]
    pub techniques: Vec<String>,
    #[serde(default)]
    pub tactics: Vec<String>,
    #[serde(default)]
    pub similar_incidents: Vec<serde_json::Value>,
    #[serde(default)]
    pub playbook_matches: Vec<serde_json::Value>,
    #[serde(default)]
    pub decision_chain: Vec<DecisionEntry>,
    #[serde(default)]
    pub classification: Option<Classification>,
    #[serde(default)]
    pub confidence: f64,
    /// Severity assigned by reasoning ("" until then, as §3.11 specifies).
    #[serde(default)]
    pub severity: String,
    #[serde(default)]
    pub recommended_actions: Vec<RecommendedAction>,
    #[serde(default)]
    pub requires_human_approval: bool,
    /// UEBA risk state (FR-ENR-005); absent data is `unknown`/`no_baseline`, never `low`.
    pub risk_state: String,
    #[serde(default)]
    pub llm_calls: u32,
    #[serde(default)]
    pub total_cost_usd: f64,
    #[serde(default)]
    pub queries_executed: u32,
    #[serde(default)]
    pub case_facts: serde_json::Map<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    pub degradation_level: DegradationLevel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub history: Vec<StateChange>,
    /// Incremented on every save; the store rejects a save whose expected version is stale.
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("illegal transition {from} → {to}")]
pub struct IllegalTransition {
    pub from: InvestigationState,
    pub to: InvestigationState,
}

/// Lists every field of [`GraphState`] once: its serialised names ([`GraphState::FIELDS`]) and the
/// comparison of two versions ([`GraphState::changed_fields`]) come from the same list, and a test
/// checks it against the serialised fields.
macro_rules! graph_state_fields {
    ($($field:ident),* $(,)?) => {
        impl GraphState {
            /// The serialised names of every field.
            pub const FIELDS: &'static [&'static str] = &[$(stringify!($field)),*];

            /// The serialised names of the fields that differ from `before`'s: what a new version
            /// changed, compared as values (no serialisation).
            pub fn changed_fields(&self, before: &GraphState) -> Vec<&'static str> {
                let mut changed = Vec::new();
                $(if self.$field != before.$field {
                    changed.push(stringify!($field));
                })*
                changed
            }

            /// The fields that differ from `before`'s ([`GraphState::changed_fields`]), each
            /// list that only grew with the JSON array of the items it gained: a new version
            /// serialises those items, not the whole list again (the decision chain and the
            /// history grow at every step).
            pub fn changes_since(&self, before: &GraphState) -> Vec<FieldChange> {
                let mut changed = Vec::new();
                $(if self.$field != before.$field {
                    changed.push(FieldChange { name: stringify!($field), appended: self.$field.grown_json(&before.$field) });
                })*
                changed
            }
        }
    };
}

/// A field a version changed ([`GraphState::changes_since`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    pub name: &'static str,
    /// For a list that only grew: the JSON array of the items added at its end.
    pub appended: Option<String>,
}

/// The items a field gained at its end since `before`, as a JSON array; `None` when it is not a
/// list, or changed otherwise.
trait Grown {
    fn grown_json(&self, before: &Self) -> Option<String>;
}

impl<T: Serialize + PartialEq> Grown for Vec<T> {
    fn grown_json(&self, before: &Self) -> Option<String> {
        let kept = before.len();
        if self.len() <= kept || self[..kept] != before[..] {
            return None;
        }
        // A failure to serialise is reported where the field is serialised whole.
        serde_json::to_string(&self[kept..]).ok()
    }
}

impl<T: Serialize + PartialEq> Grown for Shared<Vec<T>> {
    fn grown_json(&self, before: &Self) -> Option<String> {
        (**self).grown_json(before)
    }
}

macro_rules! not_grown {
    ($($ty:ty),* $(,)?) => {
        $(impl Grown for $ty {
            fn grown_json(&self, _: &Self) -> Option<String> {
                None
            }
        })*
    };
}

not_grown!(
    InvestigationId,
    InvestigationState,
    AlertId,
    TenantId,
    Shared<AlertEntities>,
    Option<Classification>,
    Option<String>,
    String,
    f64,
    bool,
    u32,
    u64,
    serde_json::Map<String, serde_json::Value>,
    DegradationLevel,
    DateTime<Utc>,
);

graph_state_fields!(
    investigation_id,
    state,
    alert_id,
    tenant_id,
    entities,
    iocs,
    ioc_matches,
    ueba_context,
    ctem_exposures,
    atlas_techniques,
    techniques,
    tactics,
    similar_incidents,
    playbook_matches,
    decision_chain,
    classification,
    confidence,
    severity,
    recommended_actions,
    requires_human_approval,
    risk_state,
    llm_calls,
    total_cost_usd,
    queries_executed,
    case_facts,
    incident_id,
    degradation_level,
    close_reason,
    error,
    history,
    version,
    created_at,
    updated_at,
);

impl GraphState {
    pub fn new(alert_id: AlertId, tenant_id: TenantId, degradation_level: DegradationLevel, now: DateTime<Utc>) -> Self {
        GraphState {
            investigation_id: InvestigationId::new(),
            state: InvestigationState::Received,
            alert_id,
            tenant_id,
            entities: Shared::default(),
            iocs: Shared::default(),
            ioc_matches: Vec::new(),
            ueba_context: Vec::new(),
            ctem_exposures: Vec::new(),
            atlas_techniques: Vec::new(),
            techniques: Vec::new(),
            tactics: Vec::new(),
            similar_incidents: Vec::new(),
            playbook_matches: Vec::new(),
            decision_chain: Vec::new(),
            classification: None,
            confidence: 0.0,
            severity: String::new(),
            recommended_actions: Vec::new(),
            requires_human_approval: false,
            risk_state: "unknown".to_owned(),
            llm_calls: 0,
            total_cost_usd: 0.0,
            queries_executed: 0,
            case_facts: serde_json::Map::new(),
            incident_id: None,
            degradation_level,
            close_reason: None,
            error: None,
            history: Vec::new(),
            version: 0,
            created_at: now,
            updated_at: now,
        }
    }

    /// Moves to `next` if the state machine allows it, recording the change.
    pub fn transition(&mut self, next: InvestigationState, reason: impl Into<String>, now: DateTime<Utc>) -> Result<(), IllegalTransition> {
        if !self.state.can_transition_to(next) {
            return Err(IllegalTransition { from: self.state, to: next });
        }
        self.history.push(StateChange { from: self.state, to: next, at: now, reason: reason.into() });
        self.state = next;
        self.updated_at = now;
        Ok(())
    }

    /// Appends a decision-chain entry with the next step number.
    pub fn record_decision(
        &mut self,
        agent: &str,
        action: &str,
        reasoning: impl Into<String>,
        confidence: Option<f64>,
        now: DateTime<Utc>,
    ) {
        let step = u32::try_from(self.decision_chain.len()).unwrap_or(u32::MAX).saturating_add(1);
        self.decision_chain.push(DecisionEntry {
            step,
            agent: agent.to_owned(),
            action: action.to_owned(),
            reasoning: reasoning.into(),
            confidence,
            timestamp: now,
            taxonomy_version: TAXONOMY_VERSION.to_owned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> GraphState {
        let alert = AlertId::parse("a-1").expect("valid id");
        GraphState::new(alert, TenantId::default_tenant(), DegradationLevel::Deterministic, Utc::now())
    }

    /// `FIELDS` is every serialised field, in order (a field added to the struct must be added
    /// to `graph_state_fields!`, or its changes would not be stored as patches).
    #[test]
    fn the_field_list_is_every_serialised_field() {
        let mut graph = state();
        graph.incident_id = Some("inc-1".to_owned());
        graph.close_reason = Some("done".to_owned());
        graph.error = Some("none".to_owned());
        let value = serde_json::to_value(&graph).expect("serialises");
        let keys: Vec<&str> = value.as_object().expect("object").keys().map(String::as_str).collect();
        assert_eq!(keys, GraphState::FIELDS);
    }

    #[test]
    fn changed_fields_name_what_a_version_changed() {
        let before = state();
        assert!(before.changed_fields(&before).is_empty());
        let mut after = before.clone();
        after.record_decision("reasoning_agent", "classified", "why", Some(0.9), Utc::now());
        after.incident_id = Some("inc-1".to_owned());
        after.case_facts.insert("k".to_owned(), serde_json::json!(1));
        assert_eq!(after.changed_fields(&before), ["decision_chain", "case_facts", "incident_id"]);
    }

    #[test]
    fn a_list_that_only_grew_is_given_with_its_new_items() {
        let before = state();
        let mut after = before.clone();
        after.record_decision("reasoning_agent", "classified", "why", Some(0.9), Utc::now());
        after.techniques = vec!["T1059".to_owned(), "T1003".to_owned()];
        let changes = after.changes_since(&before);
        let names: Vec<&str> = changes.iter().map(|change| change.name).collect();
        assert_eq!(names, after.changed_fields(&before));
        let chain = serde_json::to_string(&after.decision_chain[before.decision_chain.len()..]).expect("json");
        assert_eq!(changes[1], FieldChange { name: "decision_chain", appended: Some(chain) });
        assert_eq!(changes[0], FieldChange { name: "techniques", appended: Some(r#"["T1059","T1003"]"#.to_owned()) });
        // Replaced, not grown: the whole field is serialised again.
        let mut replaced = after.clone();
        replaced.techniques = vec!["T1003".to_owned(), "T1059".to_owned(), "T1055".to_owned()];
        assert_eq!(replaced.changes_since(&after), [FieldChange { name: "techniques", appended: None }]);
        let mut shrunk = after.clone();
        shrunk.techniques.pop();
        assert_eq!(shrunk.changes_since(&after), [FieldChange { name: "techniques", appended: None }]);
    }

    #[test]
    fn defaults_match_requirements_3_11() {
        let graph = state();
        assert_eq!(graph.state, InvestigationState::Received);
        assert_eq!(graph.classification, None);
        assert_eq!(graph.confidence, 0.0);
        assert_eq!(graph.severity, "");
        assert!(!graph.requires_human_approval);
        assert_eq!(graph.risk_state, "unknown");
        assert_eq!((graph.llm_calls, graph.queries_executed, graph.version), (0, 0, 0));
    }

    #[test]
    fn illegal_transition_is_refused_and_leaves_state_untouched() {
        let mut graph = state();
        let error = graph.transition(InvestigationState::Responding, "skip", Utc::now());
        assert_eq!(error, Err(IllegalTransition { from: InvestigationState::Received, to: InvestigationState::Responding }));
        assert_eq!(graph.state, InvestigationState::Received);
        assert!(graph.history.is_empty());
        graph.transition(InvestigationState::Parsing, "start", Utc::now()).expect("legal");
        assert_eq!(graph.history.len(), 1);
    }

    /// FR-CSM-001: `{step, agent, action, reasoning, confidence, taxonomy_version}`; entries
    /// stored before the version was kept still read.
    #[test]
    fn decision_entries_are_numbered_and_name_the_taxonomy_release() {
        let mut graph = state();
        graph.record_decision("ioc_extractor", "extracted", "3 entities", None, Utc::now());
        graph.record_decision("reasoning_agent", "classified", "rules", Some(0.7), Utc::now());
        let entry = &graph.decision_chain[1];
        assert_eq!((entry.step, entry.agent.as_str(), entry.confidence), (2, "reasoning_agent", Some(0.7)));
        assert_eq!(entry.taxonomy_version, TAXONOMY_VERSION);
        let old = r#"{"step":1,"agent":"a","action":"b","reasoning":"c","timestamp":"2024-07-04T22:35:00Z"}"#;
        let old: DecisionEntry = serde_json::from_str(old).expect("an entry without taxonomy_version reads");
        assert_eq!(old.taxonomy_version, "");
    }

    #[test]
    fn graph_state_round_trips_through_json() {
        let mut graph = state();
        graph.record_decision("ioc_extractor", "extracted", "3 iocs", Some(0.5), Utc::now());
        let json = serde_json::to_string(&graph).expect("serialises");
        let back: GraphState = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, graph);
    }
}
