//! The deterministic reasoner: the verdict ALUSKORT reaches without a model (degradation level
//! `deterministic`, NFR-REL-003), and the baseline a model's verdict is checked against.
//!
//! It scores evidence, one named rule at a time, and every rule that fires adds a line to the
//! reasoning chain, so an analyst sees exactly why. It never classifies an alert as
//! `false_positive` on its own: dismissal needs an approved FP pattern (FR-RSN-006) or a human.

use aluskort_core::entity::AlertEntities;
use aluskort_core::{ActionKind, CanonicalAlert, Classification, Incident, Ioc, RecommendedAction, Severity, Verdict};
use serde_json::Value;

/// Score at or above which the evidence supports `true_positive`.
pub const TRUE_POSITIVE_THRESHOLD: f64 = 0.70;
/// Score at or above which containment (host isolation, account disable) is proposed.
pub const CONTAINMENT_THRESHOLD: f64 = 0.80;

/// Command-line fragments of well-known attacker tradecraft, with the technique they indicate.
const TRADECRAFT: &[(&str, &str, &str)] = &[
    ("-encodedcommand", "T1059.001", "encoded PowerShell command"),
    (" -enc ", "T1059.001", "encoded PowerShell command"),
    ("-executionpolicy bypass", "T1059.001", "PowerShell execution policy bypass"),
    ("downloadstring", "T1105", "PowerShell download cradle"),
    ("downloadfile", "T1105", "PowerShell download cradle"),
    ("net.webclient", "T1105", "PowerShell download cradle"),
    ("invoke-webrequest", "T1105", "PowerShell download"),
    ("invoke-expression", "T1059.001", "PowerShell Invoke-Expression"),
    ("iex(", "T1059.001", "PowerShell Invoke-Expression"),
    ("certutil -urlcache", "T1105", "certutil download"),
    ("bitsadmin /transfer", "T1197", "BITS download"),
    ("mshta ", "T1218.005", "mshta proxy execution"),
    ("regsvr32 /s /n /u /i:", "T1218.010", "regsvr32 scriptlet (squiblydoo)"),
    ("rundll32 javascript:", "T1218.011", "rundll32 script execution"),
    ("sekurlsa", "T1003.001", "LSASS credential dumping (mimikatz)"),
    ("mimikatz", "T1003", "mimikatz"),
    ("procdump -ma lsass", "T1003.001", "LSASS memory dump"),
    ("comsvcs.dll, minidump", "T1003.001", "LSASS dump via comsvcs"),
    ("vssadmin delete shadows", "T1490", "shadow copy deletion"),
    ("wbadmin delete catalog", "T1490", "backup catalog deletion"),
    ("schtasks /create", "T1053.005", "scheduled task creation"),
    ("currentversion\\run", "T1547.001", "Run key persistence"),
    ("net user /add", "T1136.001", "local account creation"),
    ("wevtutil cl", "T1070.001", "event log clearing"),
];

/// Tactics whose presence alone makes an alert more likely to matter.
const HIGH_IMPACT_TACTICS: &[&str] = &[
    "credentialaccess",
    "lateralmovement",
    "exfiltration",
    "impact",
    "privilegeescalation",
    "defenseevasion",
    "commandandcontrol",
    "persistence",
];

/// Titles of alerts that record the SOC's own activity (benign true positives).
const OPERATIONAL_TITLES: &[&str] = &["automated investigation started", "test alert", "simulated", "attack simulation"];

/// Everything the reasoner looks at.
pub struct ReasoningInput<'a> {
    pub alert: &'a CanonicalAlert,
    pub entities: &'a AlertEntities,
    pub iocs: &'a [Ioc],
    /// The incident the alert belongs to, when grouping has run.
    pub incident: Option<&'a Incident>,
    /// The alert's indicators found in threat intelligence (FR-ENR-004).
    pub ti_matches: &'a [aluskort_core::graph_state::IocMatch],
    /// What enrichment found about the alert's users, assets and FP patterns.
    pub facts: Facts,
}

/// Enrichment findings the reasoner weighs, as recorded on the investigation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// UEBA risk state of the alert's riskiest account (`no_baseline` when unknown to UEBA).
    pub user_risk: Option<String>,
    /// Fresh open CTEM exposures of the alert's asset in its zone, and the best score.
    pub fresh_exposures: usize,
    pub best_exposure_score: f64,
    /// Zone and consequence of the alert's asset.
    pub zone: Option<(String, aluskort_config::Consequence)>,
    /// Best approved FP pattern: id, score, threshold.
    pub fp_match: Option<(String, f64, f64)>,
}

impl Facts {
    /// The findings recorded on `state` (risk_state, ctem_exposures, case_facts).
    pub fn of(state: &aluskort_core::GraphState) -> Self {
        let fresh: Vec<f64> = state
            .ctem_exposures
            .iter()
            .filter(|exposure| exposure.get("stale") == Some(&Value::Bool(false)))
            .filter_map(|exposure| exposure.get("ctem_score").and_then(Value::as_f64))
            .collect();
        let zone = state.case_facts.get("asset_zone").and_then(|zone| {
            let name = zone.get("zone")?.as_str()?.to_owned();
            let consequence = aluskort_config::Consequence::parse(zone.get("consequence")?.as_str()?)?;
            Some((name, consequence))
        });
        let fp_match = state.case_facts.get("fp_match").and_then(|found| {
            Some((found.get("pattern_id")?.as_str()?.to_owned(), found.get("score")?.as_f64()?, found.get("threshold")?.as_f64()?))
        });
        Facts {
            user_risk: Some(state.risk_state.clone()).filter(|risk| !risk.is_empty()),
            fresh_exposures: fresh.len(),
            best_exposure_score: fresh.iter().copied().fold(0.0, f64::max),
            zone,
            fp_match,
        }
    }
}

/// CTEM score (0–10) from which an open exposure of the alert's asset weighs in.
const SERIOUS_EXPOSURE: f64 = 7.0;

/// Tactic spelling folded for comparison (`Credential Access`, `credential-access` → `credentialaccess`).
pub(crate) fn normalise(text: &str) -> String {
    text.to_ascii_lowercase().replace([' ', '_', '-'], "")
}

fn base_score(severity: Severity) -> f64 {
    match severity {
        Severity::Informational => 0.30,
        Severity::Low => 0.45,
        Severity::Medium => 0.60,
        Severity::High => 0.72,
        Severity::Critical => 0.82,
    }
}

/// The SIEM's own recorded determination (Sentinel `ExtendedProperties.Classification`), if any.
fn vendor_classification(alert: &CanonicalAlert) -> Option<(Classification, String)> {
    let properties = alert.raw_payload.get("ExtendedProperties")?;
    let parsed;
    let properties = match properties {
        Value::String(text) => {
            parsed = serde_json::from_str::<Value>(text).ok()?;
            &parsed
        }
        other => other,
    };
    let raw = properties.get("Classification")?.as_str()?;
    let classification = match normalise(raw).as_str() {
        "truepositive" => Classification::TruePositive,
        "benignpositive" | "benigntruepositive" => Classification::BenignTruePositive,
        "falsepositive" => Classification::FalsePositive,
        _ => return None,
    };
    Some((classification, raw.to_owned()))
}

/// What the reasoner takes from an incident; when it changes, member verdicts are reassessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IncidentContext {
    /// At least 3 related alerts, or related alerts across at least 2 tactics.
    pub multi_stage: bool,
    pub severity: Severity,
    pub tactics: usize,
}

impl IncidentContext {
    pub fn of(incident: &Incident) -> Self {
        Self::of_parts(incident.alert_ids.len(), incident.severity, incident.members.iter())
    }

    /// The context of an incident of `alerts` alerts and `severity` whose members are `members`.
    pub fn of_parts<'a>(alerts: usize, severity: Severity, members: impl Iterator<Item = &'a aluskort_core::IncidentMember>) -> Self {
        // Members mostly repeat their tactics: the distinct names are normalised, not every copy.
        let mut names: Vec<&str> = members.flat_map(|m| m.tactics.iter().map(String::as_str)).collect();
        names.sort_unstable();
        names.dedup();
        let mut tactics: Vec<String> = names.into_iter().map(normalise).collect();
        tactics.sort_unstable();
        tactics.dedup();
        let multi_stage = alerts > 1 && (alerts >= 3 || tactics.len() >= 2);
        IncidentContext { multi_stage, severity, tactics: tactics.len() }
    }
}

pub fn reason(input: &ReasoningInput<'_>) -> Verdict {
    let alert = input.alert;
    let mut reasoning = Vec::new();
    let mut score = base_score(alert.severity);
    reasoning.push(format!("base score {score:.2} from source severity {}", alert.severity));
    let mut techniques: Vec<String> = alert.techniques.clone();
    let mut severity = alert.severity;

    let title = alert.title.to_ascii_lowercase();
    let operational = OPERATIONAL_TITLES.iter().any(|pattern| title.contains(pattern));
    if operational {
        reasoning.push(format!("title {:?} records operational (SOC) activity, not an attack", alert.title));
    }

    let command_lines: Vec<String> = input
        .entities
        .processes
        .iter()
        .filter_map(|p| p.command_line.as_deref())
        .map(|c| c.to_ascii_lowercase().split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let mut tradecraft_hits = 0;
    for (fragment, technique, label) in TRADECRAFT {
        if command_lines.iter().any(|line| format!(" {line} ").contains(fragment)) {
            tradecraft_hits += 1;
            reasoning.push(format!("command line shows {label} ({technique})"));
            if !techniques.iter().any(|t| t == technique) {
                techniques.push((*technique).to_owned());
            }
        }
    }
    if tradecraft_hits > 0 {
        let bonus = (0.08 * f64::from(tradecraft_hits)).min(0.20);
        score += bonus;
        reasoning.push(format!("+{bonus:.2} for {tradecraft_hits} tradecraft indicator(s)"));
    }

    let impact: Vec<&String> = alert.tactics.iter().filter(|t| HIGH_IMPACT_TACTICS.contains(&normalise(t).as_str())).collect();
    if !impact.is_empty() {
        score += 0.05;
        reasoning.push(format!("+0.05 for high-impact tactic(s) {}", impact.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")));
    }

    if let Some(best) = input.ti_matches.iter().max_by(|a, b| a.confidence.total_cmp(&b.confidence)) {
        // A known-bad indicator is strong evidence; how strong follows the feed's confidence.
        let bonus = if best.confidence >= 0.8 {
            0.25
        } else if best.confidence >= 0.5 {
            0.15
        } else {
            0.05
        };
        score += bonus;
        reasoning.push(format!(
            "+{bonus:.2}: {} indicator(s) in threat intelligence, best {} from {} at confidence {:.0}",
            input.ti_matches.len(),
            best.ioc,
            best.source,
            best.confidence * 100.0
        ));
    }

    if let Some(incident) = input.incident {
        let context = IncidentContext::of(incident);
        let tactics = context.tactics;
        if context.multi_stage {
            score += 0.10;
            reasoning.push(format!(
                "+0.10: part of incident {} with {} related alerts across {} tactic(s) (multi-stage activity)",
                incident.incident_id,
                incident.alert_ids.len(),
                tactics
            ));
            if incident.severity > severity && !operational {
                severity = incident.severity;
                reasoning.push(format!("severity raised to the incident's {severity}"));
            }
        }
    }

    let facts = &input.facts;
    match facts.user_risk.as_deref() {
        Some("high") => {
            score += 0.08;
            reasoning.push("+0.08: the account's UEBA risk is high".to_owned());
        }
        Some("medium") => {
            score += 0.04;
            reasoning.push("+0.04: the account's UEBA risk is medium".to_owned());
        }
        Some("low") => reasoning.push("the account's UEBA risk is low (no change)".to_owned()),
        Some("unknown") => reasoning.push("the account's UEBA risk is unknown (stale or unavailable): not counted either way".to_owned()),
        _ => {}
    }
    if facts.fresh_exposures > 0 && facts.best_exposure_score >= SERIOUS_EXPOSURE {
        score += 0.05;
        reasoning.push(format!(
            "+0.05: the asset has {} open exposure(s) in its zone, best CTEM score {:.1}",
            facts.fresh_exposures, facts.best_exposure_score
        ));
    }
    if let Some((zone, consequence)) = &facts.zone {
        let bonus = match consequence {
            aluskort_config::Consequence::Critical => 0.08,
            aluskort_config::Consequence::High => 0.05,
            _ => 0.0,
        };
        if bonus > 0.0 {
            score += bonus;
            reasoning.push(format!("+{bonus:.2}: the asset is in zone {zone} ({} consequence)", consequence.as_str()));
        }
    }
    let mut fp_verdict = None;
    if let Some((pattern, fp_score, threshold)) = &facts.fp_match {
        if *fp_score > *threshold && input.ti_matches.is_empty() {
            reasoning.push(format!("matches approved FP pattern {pattern} (score {fp_score:.2} > {threshold:.2})"));
            fp_verdict = Some(*fp_score);
        } else if *fp_score >= 0.5 {
            score -= 0.10;
            reasoning.push(format!("-0.10: resembles approved FP pattern {pattern} (score {fp_score:.2}, threshold {threshold:.2})"));
        }
    }

    let mut classification = if let Some(fp_score) = fp_verdict {
        score = fp_score;
        Classification::FalsePositive
    } else if operational {
        // Confidence here is confidence in "benign": a fixed 0.75, below the auto-close bar (0.85),
        // so a human still confirms it.
        score = 0.75;
        Classification::BenignTruePositive
    } else if score >= TRUE_POSITIVE_THRESHOLD {
        Classification::TruePositive
    } else {
        Classification::NeedsInvestigation
    };
    if let Some((vendor, raw)) = vendor_classification(alert) {
        reasoning.push(format!("the SIEM records an analyst determination {raw:?}; it is adopted"));
        classification = vendor;
        score = score.max(0.90);
    }
    let confidence = match classification {
        Classification::NeedsInvestigation => (1.0 - score).clamp(0.3, 0.6),
        _ => score.clamp(0.0, 0.99),
    };
    reasoning.push(format!("classified {classification} with confidence {confidence:.2} (deterministic engine)"));

    let recommended_actions = recommend(input, classification, score);
    Verdict {
        classification,
        confidence: round2(confidence),
        severity,
        techniques,
        tactics: alert.tactics.clone(),
        reasoning,
        recommended_actions,
    }
}

/// Vendor and cloud-platform domains that are infrastructure, never block candidates: blocking
/// them would cut the organisation off from its own tools.
const PROTECTED_DOMAINS: &[&str] = &[
    "microsoft.com",
    "windows.net",
    "windows.com",
    "office.com",
    "office365.com",
    "office.net",
    "microsoftonline.com",
    "azure.com",
    "azure.net",
    "live.com",
    "sharepoint.com",
    "google.com",
    "googleapis.com",
    "gstatic.com",
    "apple.com",
    "amazon.com",
    "cloudflare.com",
    "github.com",
];

/// Domains the organisation owns, as its accounts and mailboxes show them.
fn organisation_domains(entities: &AlertEntities) -> Vec<String> {
    let from_accounts = entities.accounts.iter().filter_map(|a| a.upn.as_deref().and_then(|u| u.rsplit_once('@')).map(|(_, d)| d));
    let from_mailboxes = entities.mailboxes.iter().filter_map(|m| m.address.as_deref().and_then(|a| a.rsplit_once('@')).map(|(_, d)| d));
    from_accounts.chain(from_mailboxes).map(str::to_ascii_lowercase).collect()
}

fn is_protected_domain(host: &str, own: &[String]) -> bool {
    let suffix_of = |domain: &str| host == domain || host.ends_with(&format!(".{domain}"));
    PROTECTED_DOMAINS.iter().any(|d| suffix_of(d)) || own.iter().any(|d| suffix_of(d))
}

fn is_public(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => !(v4.is_private() || v4.is_loopback() || v4.is_link_local() || v4.is_unspecified()),
        std::net::IpAddr::V6(v6) => !(v6.is_loopback() || v6.is_unspecified()),
    }
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn recommend(input: &ReasoningInput<'_>, classification: Classification, score: f64) -> Vec<RecommendedAction> {
    let mut actions = Vec::new();
    if matches!(classification, Classification::FalsePositive | Classification::BenignTruePositive) {
        actions.push(RecommendedAction::new(ActionKind::NotifyAnalyst, "soc", "confirm the benign determination and close"));
        return actions;
    }
    let entities = input.entities;
    let contain = classification == Classification::TruePositive && score >= CONTAINMENT_THRESHOLD;
    for host in &entities.hosts {
        let Some(name) = host.fqdn.clone().or_else(|| host.hostname.clone()) else { continue };
        actions.push(RecommendedAction::new(ActionKind::CollectEvidence, &name, "collect the device investigation package"));
        if classification == Classification::TruePositive {
            actions.push(RecommendedAction::new(ActionKind::RunAvScan, &name, "full antivirus scan of the affected device"));
        }
        if contain {
            actions.push(RecommendedAction::new(ActionKind::IsolateHost, &name, "contain the device while the activity is investigated"));
        }
    }
    let identity_alert = entities.hosts.is_empty();
    for account in &entities.accounts {
        let Some(target) = account.upn.clone().or_else(|| account.aad_user_id.clone()).or_else(|| account.name.clone()) else { continue };
        if classification == Classification::TruePositive && (identity_alert || contain) {
            actions.push(RecommendedAction::new(
                ActionKind::RevokeSessions,
                &target,
                "revoke sessions and refresh tokens of the affected account",
            ));
            actions.push(RecommendedAction::new(ActionKind::ResetPassword, &target, "force a credential reset"));
        }
        if contain && input.alert.severity >= Severity::High {
            actions.push(RecommendedAction::new(
                ActionKind::DisableAccount,
                &target,
                "disable the account until the investigation clears it",
            ));
        }
    }
    if classification == Classification::TruePositive {
        let own_domains = organisation_domains(entities);
        for ip in entities.ips.iter().filter(|_| identity_alert) {
            if ip.address.parse::<std::net::IpAddr>().is_ok_and(is_public) {
                actions.push(RecommendedAction::new(
                    ActionKind::BlockIndicator,
                    &ip.address,
                    "block the sign-in source address at the perimeter",
                ));
            }
        }
        let typed_hosts = entities.urls.iter().map(|u| u.url.as_str()).chain(entities.dns.iter().map(|d| d.domain.as_str()));
        for indicator in typed_hosts {
            let host =
                indicator.split("://").nth(1).unwrap_or(indicator).split(['/', ':', '?']).next().unwrap_or_default().to_ascii_lowercase();
            if !is_protected_domain(&host, &own_domains) {
                actions.push(RecommendedAction::new(ActionKind::BlockIndicator, indicator, "block the reported URL/domain at the proxy"));
            }
        }
        if !entities.mailboxes.is_empty() && input.alert.title.to_ascii_lowercase().contains("inbox") {
            for mailbox in entities.mailboxes.iter().filter_map(|m| m.address.as_deref()) {
                actions.push(RecommendedAction::new(ActionKind::RemoveMailArtifact, mailbox, "remove the malicious inbox rule"));
            }
        }
    }
    if !input.iocs.is_empty() {
        actions.push(RecommendedAction::new(
            ActionKind::HuntIndicators,
            format!("{} indicator(s)", input.iocs.len()),
            "search the estate for the same indicators",
        ));
    }
    actions.push(RecommendedAction::new(ActionKind::NotifyAnalyst, "soc", "review the verdict and approve or reject the proposed actions"));
    actions.dedup();
    actions
}

#[cfg(test)]
mod tests;
