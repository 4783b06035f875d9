//! The built-in playbooks against the real Sentinel alerts of the shared reference data
//! (`alerts/sentinel/sentinel-securityalert.jsonl`, read in place; a missing file fails the suite).
//!
//! The alerts are mapped here with a small Sentinel reader covering the entity types the
//! playbooks act on; it stands in for `aluskort-ingest`/`aluskort-extract`, which this crate does
//! not depend on. Verdicts are set as reasoning would set them.

use std::collections::BTreeSet;

use aluskort_core::entity::{Account, AlertEntities, DnsEntity, FileEntity, FileHash, Host, IpEntity, Mailbox, OtherEntity, UrlEntity};
use aluskort_core::{AlertId, AlertSource, CanonicalAlert, Classification, DegradationLevel, GraphState, Severity, TenantId};
use aluskort_respond::playbook::{Plan, PlaybookSet};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

fn rows() -> Vec<Value> {
    let path = aluskort_testkit::sentinel_alerts_path();
    let text = std::fs::read_to_string(&path).expect("read the Sentinel alerts");
    text.lines().filter(|line| !line.trim().is_empty()).map(|line| serde_json::from_str(line).expect("one JSON row per line")).collect()
}

fn row_named(rows: &[Value], name: &str) -> Value {
    rows.iter().find(|row| row["AlertName"] == name).unwrap_or_else(|| panic!("no alert named {name:?} in the reference data")).clone()
}

fn text(object: &Value, name: &str) -> Option<String> {
    object.get(name).and_then(Value::as_str).map(str::trim).filter(|text| !text.is_empty()).map(str::to_owned)
}

fn string_list(row: &Value, column: &str) -> Vec<String> {
    match text(row, column) {
        Some(json) if json.starts_with('[') => serde_json::from_str(&json).expect("a JSON string array"),
        Some(list) => list.split(',').map(str::trim).filter(|item| !item.is_empty() && *item != "Unknown").map(str::to_owned).collect(),
        None => Vec::new(),
    }
}

fn canonical(row: &Value) -> CanonicalAlert {
    let time = text(row, "TimeGenerated").expect("TimeGenerated");
    CanonicalAlert {
        alert_id: AlertId::parse(&text(row, "SystemAlertId").expect("SystemAlertId")).expect("valid id"),
        source: AlertSource::Sentinel,
        timestamp: DateTime::parse_from_rfc3339(&time).expect("RFC 3339 time").with_timezone(&Utc),
        title: text(row, "AlertName").expect("AlertName"),
        description: text(row, "Description").unwrap_or_default(),
        severity: text(row, "AlertSeverity").expect("AlertSeverity").parse().expect("known severity"),
        tactics: string_list(row, "Tactics"),
        techniques: string_list(row, "Techniques").into_iter().chain(string_list(row, "SubTechniques")).collect(),
        entities_raw: text(row, "Entities").unwrap_or_default(),
        product: text(row, "ProductName").unwrap_or_default(),
        tenant_id: TenantId::parse(&text(row, "TenantId").expect("TenantId")).expect("valid tenant"),
        raw_payload: row.clone(),
    }
}

/// Every entity object (`Type` and `$id`) at any depth, once each; `$ref`s resolved for the
/// hashes of files.
fn entities(raw: &str) -> AlertEntities {
    fn collect<'a>(value: &'a Value, by_id: &mut Vec<(String, &'a Value)>) {
        match value {
            Value::Array(items) => items.iter().for_each(|item| collect(item, by_id)),
            Value::Object(object) => {
                if let (Some(_), Some(id)) = (text(value, "Type"), text(value, "$id"))
                    && !by_id.iter().any(|(seen, _)| *seen == id)
                {
                    by_id.push((id, value));
                }
                object.values().for_each(|item| collect(item, by_id));
            }
            _ => {}
        }
    }
    let parsed: Value = serde_json::from_str(raw).expect("Entities is JSON");
    let mut by_id = Vec::new();
    collect(&parsed, &mut by_id);
    let resolve = |item: &'_ Value| -> Option<Value> {
        match text(item, "$ref") {
            Some(reference) => by_id.iter().find(|(id, _)| *id == reference).map(|(_, value)| (*value).clone()),
            None => Some(item.clone()),
        }
    };
    let mut out = AlertEntities::default();
    for (_, value) in &by_id {
        let kind = text(value, "Type").unwrap_or_default();
        if kind == "file" {
            let hashes: Vec<FileHash> = value
                .get("FileHashes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(resolve)
                .filter_map(|hash| Some(FileHash { algorithm: text(&hash, "Algorithm")?, value: text(&hash, "Value")? }))
                .collect();
            out.files.push(FileEntity { name: text(value, "Name"), directory: text(value, "Directory"), hashes });
        } else if let Some(object) = value.as_object() {
            add(&kind, value, object, &mut out);
        }
    }
    out
}

fn add(kind: &str, value: &Value, object: &Map<String, Value>, out: &mut AlertEntities) {
    match kind {
        "account" => out.accounts.push(Account {
            name: text(value, "AccountName"),
            upn: text(value, "UserPrincipalName"),
            domain: text(value, "UPNSuffix").or_else(|| text(value, "DomainName")),
            sid: text(value, "Sid"),
            aad_user_id: text(value, "AadUserId"),
            display_name: text(value, "DisplayName"),
        }),
        "host" => out.hosts.push(Host {
            hostname: text(value, "HostName"),
            fqdn: text(value, "FQDN"),
            domain: text(value, "DnsDomain"),
            os: text(value, "OSFamily"),
            device_id: text(value, "MdatpDeviceId"),
            azure_id: text(value, "AadDeviceId"),
        }),
        "ip" => out.ips.extend(text(value, "Address").map(|address| IpEntity { address, ..IpEntity::default() })),
        "url" => out.urls.extend(text(value, "Url").map(|url| UrlEntity { url })),
        "dns" => out.dns.extend(text(value, "DomainName").map(|domain| DnsEntity { domain, resolved_ips: Vec::new() })),
        "filehash" => {
            if let (Some(algorithm), Some(value)) = (text(value, "Algorithm"), text(value, "Value")) {
                out.file_hashes.push(FileHash { algorithm, value });
            }
        }
        "mailbox" => out.mailboxes.push(Mailbox {
            address: text(value, "MailboxPrimaryAddress"),
            display_name: text(value, "DisplayName"),
            aad_id: text(value, "AadId"),
        }),
        _ => out.other.push(OtherEntity {
            entity_type: kind.to_owned(),
            attributes: object
                .iter()
                .filter(|(key, item)| !key.starts_with('$') && *key != "Type" && !item.is_object() && !item.is_array())
                .map(|(key, item)| (key.clone(), item.clone()))
                .collect(),
        }),
    }
}

/// The investigation state reasoning would leave: the alert's entities and techniques plus
/// `found`, a verdict and a severity.
fn investigated(alert: &CanonicalAlert, found: &[&str], classification: Classification) -> GraphState {
    let mut state = GraphState::new(alert.alert_id.clone(), alert.tenant_id.clone(), DegradationLevel::Deterministic, alert.timestamp);
    state.entities = entities(&alert.entities_raw).into();
    state.techniques = alert.techniques.iter().cloned().chain(found.iter().map(|t| (*t).to_owned())).collect();
    state.tactics = alert.tactics.clone();
    state.classification = Some(classification);
    state.confidence = 0.91;
    state.severity = alert.severity.as_str().to_owned();
    state
}

fn keys(plan: &Plan) -> Vec<&str> {
    plan.actions.iter().map(|action| action.step_key.as_str()).collect()
}

#[test]
fn internal_phishing_from_a_compromised_mailbox_plans_the_phishing_playbook() {
    // Microsoft 365 Defender: a user already tied to a BEC attempt sent suspicious mail
    // ("Re: Project status") to a colleague. Reasoning maps it to Internal Spearphishing.
    let alert = canonical(&row_named(&rows(), "Suspicious emails sent by BEC-related user"));
    assert_eq!((alert.severity, alert.techniques.as_slice()), (Severity::High, ["T1586".to_owned()].as_slice()));
    let mut state = investigated(&alert, &["T1534"], Classification::TruePositive);
    state.incident_id = Some("inc-529".to_owned());
    let plan = PlaybookSet::builtin().plan(&state, &alert);

    let matched: Vec<&str> = plan.matches.iter().map(|m| m.playbook_id.as_str()).collect();
    assert_eq!(matched, ["phishing"]);
    assert_eq!(
        plan.matches[0].why,
        "ATT&CK T1534; severity high (at least low); verdict true_positive (0.91); step block_url: no url to apply to; \
         step block_domain: no domain to apply to; step quarantine_attachment: no filehash to apply to; \
         step scan_device: no host to apply to"
    );
    assert_eq!(
        keys(&plan),
        [
            "phishing/open_ticket/",
            "phishing/purge_message/eb498b73-fc74-4033-9de4-08dcaa320078",
            "phishing/revoke_sessions/laylaw@vnevado.alpineskihouse.co",
        ]
    );

    let ticket = &plan.actions[0];
    assert_eq!((ticket.action.as_str(), ticket.tier, ticket.destructive), ("webhook.ticket", 0, false));
    assert!(!ticket.needs_approval());
    assert_eq!(ticket.params["title"], "[ALUSKORT] high: Suspicious emails sent by BEC-related user");
    assert_eq!(ticket.params["investigation_id"], state.investigation_id.to_string());
    assert_eq!(ticket.params["incident_id"], "inc-529");
    assert_eq!(ticket.params["techniques"], "T1586, T1534");
    assert_eq!(ticket.params["confidence"], "0.91");

    let purge = &plan.actions[1];
    assert_eq!((purge.action.as_str(), purge.tier, purge.destructive, purge.reversible), ("webhook.mail", 2, true, true));
    assert_eq!(purge.params["sender"], "laylaw@vnevado.alpineskihouse.co");
    assert_eq!(purge.params["recipient"], "tony@avoriaz.alpineskihouse.co");
    assert_eq!(purge.params["internet_message_id"], "<MRZP264MB23142878BD07D8AF502A40C892A82@MRZP264MB2314.FRAP264.PROD.OUTLOOK.COM>");
    assert_eq!(
        purge.description,
        "Soft-delete message eb498b73-fc74-4033-9de4-08dcaa320078 (\"Re: Project status\" from laylaw@vnevado.alpineskihouse.co) \
         from every mailbox it was delivered to; it stays recoverable from Recoverable Items."
    );

    let revoke = &plan.actions[2];
    assert_eq!((revoke.action.as_str(), revoke.tier, revoke.destructive, revoke.reversible), ("entra.revoke_sessions", 2, true, false));
    assert_eq!(revoke.params["user_id"], "89e933b9-5b2e-4bd6-bcdf-033db707ef82");
    assert!(purge.needs_approval() && revoke.needs_approval());

    // A benign verdict on the same alert plans nothing.
    let benign = investigated(&alert, &["T1534"], Classification::BenignTruePositive);
    assert_eq!(PlaybookSet::builtin().plan(&benign, &alert), Plan::default());
}

#[test]
fn every_real_alert_gets_a_sound_plan_and_the_expected_playbooks() {
    let set = PlaybookSet::builtin();
    let rows = rows();
    assert_eq!(rows.len(), 26);
    let mut matched_by_title: Vec<(String, Vec<String>)> = Vec::new();
    for row in &rows {
        let alert = canonical(row);
        let state = investigated(&alert, &[], Classification::TruePositive);
        let plan = set.plan(&state, &alert);
        let distinct: BTreeSet<&str> = keys(&plan).into_iter().collect();
        assert_eq!(distinct.len(), plan.actions.len(), "{}: step keys repeat", alert.title);
        for action in &plan.actions {
            assert!(!action.destructive || action.needs_approval(), "{}: {} runs without approval", alert.title, action.step_key);
            assert!(!action.description.contains("{{"), "{}: unrendered description {:?}", alert.title, action.description);
            assert!(action.step_key.starts_with(&format!("{}/{}/", action.playbook_id, action.step_id)));
        }
        matched_by_title.push((alert.title.clone(), plan.matches.iter().map(|m| m.playbook_id.clone()).collect()));
    }
    let playbooks_of = |title: &str| -> BTreeSet<String> {
        matched_by_title.iter().filter(|(seen, _)| seen == title).flat_map(|(_, ids)| ids.iter().cloned()).collect()
    };
    let expect = |title: &str, ids: &[&str]| {
        let wanted: BTreeSet<String> = ids.iter().map(|id| (*id).to_owned()).collect();
        assert_eq!(playbooks_of(title), wanted, "{title}");
    };
    expect("Password Spray", &["credential-compromise"]);
    expect("Suspicious inbox manipulation rule", &["credential-compromise"]);
    expect("Possible BEC financial fraud", &["data-exfiltration"]);
    expect("Suspicious PowerShell command line", &["malware-endpoint"]);
    expect("Suspicious process injection observed", &["malware-endpoint"]);
    expect("BEC-related user signed in to SAP", &["credential-compromise"]);
    // Low severity: behavioural discovery alerts do not queue isolation requests.
    expect("Suspicious Application Window Discovery", &[]);
    expect("Anonymous IP address", &[]);
}

#[test]
fn a_defender_alert_plans_device_actions_by_fqdn_and_quarantines_only_the_dropped_file() {
    let alert = canonical(&row_named(&rows(), "Suspicious PowerShell command line"));
    let state = investigated(&alert, &[], Classification::TruePositive);
    let plan = PlaybookSet::builtin().plan(&state, &alert);
    let isolate = plan.actions.iter().find(|action| action.step_id == "isolate_device").expect("isolation is proposed");
    assert_eq!((isolate.tier, isolate.destructive), (2, true));
    let host = &state.entities.hosts[0];
    assert_eq!(isolate.target, host.fqdn.clone().expect("the alert names the device's FQDN"));
    assert_eq!(isolate.params["machine_id"], host.device_id.clone().expect("MDATP alerts carry the device id"));
    // Only the dropped backdoor is proposed for quarantine, by its SHA-256; Word, PowerShell and
    // schtasks, which the alert also names, are left out and the match says so.
    let quarantined: Vec<&str> =
        plan.actions.iter().filter(|action| action.step_id == "quarantine_file").map(|action| action.target.as_str()).collect();
    assert_eq!(quarantined, ["929cf5c2a2ce25d82699fc1bfe578bbe8abedce0e477a40980016ee32c2c7cbe"]);
    assert!(
        plan.matches[0].why.contains(
            "step quarantine_file: left out files of the operating system or installed programs: WINWORD.EXE, powershell.exe, schtasks.exe"
        ),
        "{}",
        plan.matches[0].why
    );
    let automatic: Vec<&str> =
        plan.actions.iter().filter(|action| !action.needs_approval()).map(|action| action.step_id.as_str()).collect();
    assert_eq!(automatic, ["open_ticket", "collect_package", "full_scan"]);
}
