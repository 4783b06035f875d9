use std::collections::{BTreeSet, HashMap};

use aluskort_ingest::{NormalizedAlert, RawAlert, normalize};

use super::*;

fn sentinel_alerts() -> Vec<NormalizedAlert> {
    let text = std::fs::read_to_string(aluskort_testkit::sentinel_alerts_path()).expect("shared sentinel alerts");
    text.lines()
        .enumerate()
        .map(|(index, line)| {
            let raw = RawAlert {
                ingest_id: index.to_string(),
                origin: format!("sentinel:{}", index + 1),
                received_at: Utc::now(),
                payload: serde_json::from_str(line).expect("fixture line is JSON"),
                tenant: None,
            };
            normalize(&raw).expect("fixture normalises")
        })
        .collect()
}

/// [`hub_keys`] among `candidates`, found by scanning them (the pipeline asks its key index).
fn hubs_among<I: Borrow<Incident>>(candidates: &[I], member: &IncidentMember) -> BTreeSet<String> {
    hub_keys(member, |key| {
        let holding: Vec<&Incident> = candidates
            .iter()
            .map(Borrow::borrow)
            .filter(|incident| incident.members.iter().any(|m| m.keys.binary_search_by(|k| k.as_str().cmp(key)).is_ok()))
            .collect();
        holding.into_iter()
    })
}

fn member(alert: &NormalizedAlert) -> IncidentMember {
    IncidentMember {
        alert_id: alert.alert.alert_id.clone(),
        severity: alert.alert.severity,
        activity_start: alert.activity_start,
        activity_end: alert.activity_end,
        keys: entity_keys(&alert.entities),
        tactics: alert.alert.tactics.clone(),
    }
}

/// Groups alerts in the given order with an in-memory incident table, as the pipeline does with
/// the store; returns the partition as sets of alert ids.
fn partition(alerts: &[NormalizedAlert]) -> BTreeSet<BTreeSet<String>> {
    let mut incidents: HashMap<String, Incident> = HashMap::new();
    let tenant = TenantId::default_tenant();
    for (index, alert) in alerts.iter().enumerate() {
        let member = member(alert);
        let candidates = incidents
            .values()
            .filter(|i| {
                i.merged_into.is_none()
                    && i.first_seen <= member.activity_end + DEFAULT_WINDOW
                    && i.last_seen >= member.activity_start - DEFAULT_WINDOW
            })
            .cloned()
            .collect::<Vec<Incident>>();
        let hubs = hubs_among(&candidates, &member);
        let decision = group(&tenant, &alert.alert.title, member, candidates, &hubs, DEFAULT_WINDOW, format!("inc-{index}"));
        for merged in decision.merged {
            incidents.insert(merged.incident_id.clone(), merged);
        }
        incidents.insert(decision.incident.incident_id.clone(), decision.incident);
    }
    incidents.values().filter(|i| i.merged_into.is_none()).map(|i| i.alert_ids.iter().map(|id| id.as_str().to_owned()).collect()).collect()
}

fn ground_truth() -> BTreeSet<BTreeSet<String>> {
    let text = std::fs::read_to_string(aluskort_testkit::sentinel_incidents_path()).expect("shared incidents");
    text.lines()
        .map(|line| {
            let incident: serde_json::Value = serde_json::from_str(line).expect("JSON");
            let ids: Vec<String> = serde_json::from_str(incident["AlertIds"].as_str().expect("AlertIds string")).expect("id list");
            ids.into_iter().collect()
        })
        .collect()
}

#[test]
fn real_sentinel_alerts_group_into_the_three_ground_truth_incidents() {
    let alerts = sentinel_alerts();
    assert_eq!(partition(&alerts), ground_truth());
}

#[test]
fn grouping_does_not_depend_on_arrival_order() {
    let mut alerts = sentinel_alerts();
    let expected = ground_truth();
    alerts.reverse();
    assert_eq!(partition(&alerts), expected);
    // A deterministic shuffle: interleave from both ends.
    let mut interleaved = Vec::new();
    while !alerts.is_empty() {
        interleaved.push(alerts.remove(0));
        if let Some(last) = alerts.pop() {
            interleaved.push(last);
        }
    }
    assert_eq!(partition(&interleaved), expected);
}

#[test]
fn endpoint_ips_are_not_link_keys_but_identity_alert_ips_are() {
    let alerts = sentinel_alerts();
    let endpoint = alerts.iter().find(|a| !a.entities.hosts.is_empty() && !a.entities.ips.is_empty()).expect("endpoint alert with ip");
    assert!(!entity_keys(&endpoint.entities).iter().any(|k| k.starts_with("ip:")));
    let identity = alerts.iter().find(|a| a.alert.title == "Anonymous IP address").expect("identity alert");
    assert!(entity_keys(&identity.entities).contains(&"ip:95.202.65.202".to_owned()));
}

#[test]
fn alerts_outside_the_window_open_separate_incidents_and_links_explain_themselves() {
    let alerts = sentinel_alerts();
    let first = member(&alerts[0]);
    let mut later = member(&alerts[1]);
    later.activity_start += Duration::days(3);
    later.activity_end += Duration::days(3);
    let tenant = TenantId::default_tenant();
    let none = BTreeSet::new();
    let opened = group(&tenant, "a", first.clone(), Vec::<Incident>::new(), &none, DEFAULT_WINDOW, "inc-1".into());
    let apart = group(&tenant, "b", later, vec![opened.incident.clone()], &none, DEFAULT_WINDOW, "inc-2".into());
    assert_eq!(apart.incident.incident_id, "inc-2");
    let near = group(&tenant, "b", member(&alerts[1]), vec![opened.incident], &none, DEFAULT_WINDOW, "inc-3".into());
    assert_eq!(near.incident.incident_id, "inc-1");
    let link = near.incident.links.last().expect("link");
    assert_eq!(link.linked_to.as_ref(), Some(&first.alert_id));
    assert!(link.reason.starts_with("shared "), "{}", link.reason);
}

#[test]
fn a_full_incident_takes_no_more_alerts() {
    let alerts = sentinel_alerts();
    let tenant = TenantId::default_tenant();
    let template = member(&alerts[0]);
    let none = BTreeSet::new();
    let mut incident = group(&tenant, "a", template.clone(), Vec::<Incident>::new(), &none, DEFAULT_WINDOW, "inc-full".into()).incident;
    for index in 1..MAX_INCIDENT_ALERTS {
        let mut next = template.clone();
        next.alert_id = AlertId::parse(&format!("filler-{index}")).expect("id");
        incident = group(&tenant, "a", next, vec![incident], &none, DEFAULT_WINDOW, "unused".into()).incident;
    }
    assert_eq!(incident.alert_ids.len(), MAX_INCIDENT_ALERTS);
    let mut overflow = template;
    overflow.alert_id = AlertId::parse("overflow").expect("id");
    let decision = group(&tenant, "a", overflow, vec![incident], &none, DEFAULT_WINDOW, "inc-next".into());
    assert_eq!(decision.incident.incident_id, "inc-next");
    assert!(decision.incident.links[0].reason.contains("inc-full is full"), "{}", decision.incident.links[0].reason);
}

/// A domain controller seen with many accounts is shared infrastructure: it stops linking alerts
/// once more than HUB_ACCOUNTS accounts were seen on it, while a shared account still links.
#[test]
fn a_host_seen_with_many_accounts_does_not_glue_everything_together() {
    let tenant = TenantId::default_tenant();
    let start = Utc::now();
    let member = |index: usize, keys: &[String]| {
        let mut keys = keys.to_vec();
        keys.sort();
        IncidentMember {
            alert_id: AlertId::parse(&format!("dc-{index}")).expect("id"),
            severity: aluskort_core::Severity::Medium,
            activity_start: start,
            activity_end: start,
            keys,
            tactics: vec!["Discovery".to_owned()],
        }
    };
    let mut incidents: Vec<Incident> = Vec::new();
    let mut reasons = Vec::new();
    for index in 0..12 {
        let keys = ["host:dc01".to_owned(), format!("upn:user{index}@corp.example")];
        let member = member(index, &keys);
        let hubs = hubs_among(&incidents, &member);
        let decision = group(&tenant, "LDAP query", member, incidents.clone(), &hubs, DEFAULT_WINDOW, format!("inc-{index}"));
        reasons.push(decision.reason.clone());
        incidents.retain(|incident| incident.incident_id != decision.incident.incident_id);
        incidents.push(decision.incident);
    }
    let sizes: Vec<usize> = incidents.iter().map(|incident| incident.alert_ids.len()).collect();
    assert_eq!(sizes, [HUB_ACCOUNTS, 1, 1, 1, 1], "the first {HUB_ACCOUNTS} accounts linked before dc01 was a hub");
    assert!(
        reasons[HUB_ACCOUNTS].contains("shared infrastructure not used as a link (seen with more than 8 accounts): host:dc01"),
        "{reasons:?}"
    );

    // The same account on the hub still links: accounts are never hubs.
    let keys = ["host:dc01".to_owned(), "upn:user11@corp.example".to_owned()];
    let member = member(99, &keys);
    let hubs = hubs_among(&incidents, &member);
    let decision = group(&tenant, "LDAP query", member, incidents.clone(), &hubs, DEFAULT_WINDOW, "inc-new".into());
    assert_eq!(decision.incident.incident_id, "inc-11", "{}", decision.reason);
    assert!(decision.reason.starts_with("shared upn:user11@corp.example"), "{}", decision.reason);
}
