use aluskort_core::entity::{Account, Host, IpEntity, Mailbox};
use aluskort_core::{AlertId, AlertSource, CanonicalAlert, Classification, DegradationLevel, GraphState, Severity, TenantId};
use chrono::{TimeZone, Utc};

use super::*;

/// A valid playbook; the lint tests break one thing at a time.
const BASE: &str = r#"
[playbook]
id = "base"
name = "Base"
description = "test playbook"
version = 1

[match]
techniques = ["T1566"]

[[steps]]
id = "ticket"
description = "ticket for {{ alert.title }}"
action = "webhook.ticket"
tier = 0
destructive = false
reversible = true
[steps.params]
title = "{{ alert.title }}"

[[steps]]
id = "isolate"
description = "isolate {{ target }}"
action = "defender.isolate_machine"
for_each = "host"
tier = 2
destructive = true
reversible = true
[steps.params]
machine_id = "{{ target.machine_id }}"
"#;

fn file(source: &str, text: &str) -> PlaybookFile {
    PlaybookFile { source: source.to_owned(), text: text.to_owned() }
}

fn problems_of(text: &str) -> Vec<Problem> {
    check(&[file("test.toml", text)]).1
}

fn errors_of(text: &str) -> Vec<String> {
    problems_of(text).iter().filter(|problem| problem.is_error()).map(ToString::to_string).collect()
}

#[test]
fn built_in_playbooks_lint_clean() {
    let (loaded, problems) = check(&builtin_files());
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(problems.is_empty(), "built-in playbooks have problems:\n{}", lines.join("\n"));
    let builtin = PlaybookSet::builtin();
    let ids: Vec<&str> = builtin.playbooks().iter().map(LoadedPlaybook::id).collect();
    assert_eq!(ids, ["credential-compromise", "data-exfiltration", "malware-endpoint", "oauth-app", "phishing", "ransomware-precursor"]);
    for step in loaded.iter().flat_map(|loaded| &loaded.playbook.steps) {
        assert!(!step.destructive || step.tier >= 2, "{} is destructive below tier 2", step.id);
        assert!(!step.description.is_empty(), "{} has no description", step.id);
    }
    // Each built-in file is named after the playbook it holds.
    for loaded in &loaded {
        assert_eq!(loaded.source, format!("builtin:{}.toml", loaded.id()));
    }
}

#[test]
fn the_base_playbook_is_clean() {
    assert_eq!(problems_of(BASE), Vec::new());
}

#[test]
fn a_destructive_step_without_an_approval_gate_is_refused_fr_rsp_002() {
    let text = BASE.replace("tier = 2\ndestructive = true", "tier = 1\ndestructive = true");
    assert_eq!(
        errors_of(&text),
        ["test.toml: playbook base step isolate: destructive step without an approval gate (FR-RSP-002): `tier` = 1, needs 2 or more"]
    );
    // Webhooks declare their own nature, and the same rule holds for them.
    let text = BASE.replace("tier = 0\ndestructive = false", "tier = 0\ndestructive = true");
    assert_eq!(errors_of(&text).len(), 1);
    assert!(errors_of(&text)[0].contains("step ticket: destructive step without an approval gate"));
}

#[test]
fn each_lint_rule_names_its_problem() {
    let cases: &[(&str, String, &str)] = &[
        (
            "built-in destructive action marked non-destructive",
            BASE.replace("tier = 2\ndestructive = true", "tier = 2\ndestructive = false"),
            "step isolate: `destructive` = false, but defender.isolate_machine is destructive",
        ),
        (
            "reversibility contradicts the catalogue",
            BASE.replace("destructive = true\nreversible = true", "destructive = true\nreversible = false"),
            "step isolate: `reversible` = false, but defender.isolate_machine is reversible",
        ),
        (
            "unknown action",
            BASE.replace("defender.isolate_machine", "defender.wipe"),
            "step isolate: `action` \"defender.wipe\" is neither a built-in action",
        ),
        (
            "bad webhook name",
            BASE.replace("webhook.ticket", "webhook.my ticket"),
            "step ticket: `action` \"webhook.my ticket\": a webhook name may only hold",
        ),
        (
            "for_each kind differs from the action's target",
            BASE.replace("for_each = \"host\"", "for_each = \"account\""),
            "step isolate: `for_each` = \"account\", but defender.isolate_machine applies to host entities",
        ),
        (
            "built-in action without for_each",
            BASE.replace("for_each = \"host\"\n", "").replace("{{ target.machine_id }}", "x").replace("isolate {{ target }}", "isolate"),
            "step isolate: defender.isolate_machine applies to one host at a time: it needs `for_each = \"host\"`",
        ),
        (
            "duplicate step ids",
            BASE.replace("id = \"isolate\"", "id = \"ticket\""),
            "step ticket: `id`: another step of this playbook has the same id",
        ),
        (
            "bad playbook id",
            BASE.replace("id = \"base\"", "id = \"base/1\""),
            "playbook base/1: `playbook.id` \"base/1\" may only hold letters, digits",
        ),
        ("bad step id", BASE.replace("id = \"isolate\"", "id = \"iso late\""), "step iso late: `id` \"iso late\" may only hold letters"),
        ("tier above 3", BASE.replace("tier = 2", "tier = 4"), "step isolate: `tier` = 4: tiers go from 0 to 3"),
        (
            "unknown template variable",
            BASE.replace("{{ alert.title }}\"", "{{ alert.body }}\""),
            "step ticket: `params.title`: unknown template variable `{{ alert.body }}`",
        ),
        (
            "target in an investigation-wide step",
            BASE.replace("ticket for {{ alert.title }}", "ticket for {{ target }}"),
            "step ticket: `description`: template variable `{{ target }}` is empty in a step without `for_each`",
        ),
        (
            "target variable of another kind",
            BASE.replace("{{ target.machine_id }}", "{{ target.upn }}"),
            "step isolate: `params.machine_id`: template variable `{{ target.upn }}` is only set for `for_each = \"account\"`",
        ),
        (
            "unterminated template",
            BASE.replace("isolate {{ target }}", "isolate {{ target"),
            "step isolate: `description`: `{{` at byte 8 is never closed",
        ),
        (
            "no steps",
            BASE.split("[[steps]]").next().unwrap_or_default().to_owned(),
            "playbook base: `steps`: a playbook needs at least one step",
        ),
        (
            "no match criteria",
            BASE.replace("techniques = [\"T1566\"]", "min_severity = \"high\""),
            "playbook base: `match` needs `tactics`, `techniques` or `products`",
        ),
        ("bad technique id", BASE.replace("[\"T1566\"]", "[\"T1566.1\"]"), "`match.techniques`: \"T1566.1\" is not a technique id"),
        (
            "bad tactic id",
            BASE.replace("techniques = [\"T1566\"]", "tactics = [\"InitialAccess\"]"),
            "`match.tactics`: \"InitialAccess\" is not a tactic id",
        ),
        (
            "benign verdict",
            BASE.replace("techniques = [\"T1566\"]", "techniques = [\"T1566\"]\nclassifications = [\"true_positive\", \"false_positive\"]"),
            "`match.classifications`: false_positive is a benign verdict; playbooks never run on benign verdicts",
        ),
        (
            "no verdict at all",
            BASE.replace("techniques = [\"T1566\"]", "techniques = [\"T1566\"]\nclassifications = []"),
            "`match.classifications` is empty: the playbook never matches",
        ),
        (
            "severities below the minimum",
            BASE.replace("techniques = [\"T1566\"]", "techniques = [\"T1566\"]\nseverities = [\"low\"]\nmin_severity = \"high\""),
            "`match.severities` lists nothing at or above `min_severity = \"high\"`",
        ),
        ("empty name", BASE.replace("name = \"Base\"", "name = \" \""), "`playbook.name` must not be empty"),
        ("version 0", BASE.replace("version = 1", "version = 0"), "`playbook.version` must be 1 or more"),
        (
            "unknown field",
            BASE.replace("version = 1", "version = 1\nrequires_approval = true"),
            "test.toml: line 7, column 1: unknown field `requires_approval`",
        ),
    ];
    for (rule, text, expected) in cases {
        let errors = errors_of(text);
        assert!(errors.iter().any(|error| error.contains(expected)), "{rule}: expected {expected:?} in {errors:#?}");
    }
}

#[test]
fn warnings_do_not_refuse_a_playbook() {
    let text =
        BASE.replace("techniques = [\"T1566\"]", "tactics = [\"TA0099\"]").replace("description = \"ticket for {{ alert.title }}\"\n", "");
    let problems = problems_of(&text);
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "test.toml: playbook base: warning: `match.tactics`: TA0099 is not an Enterprise ATT&CK tactic; it only matches alerts that give the id itself",
            "test.toml: playbook base step ticket: warning: `description` is empty: the approver will not be told what the step does",
        ]
    );
    let set = PlaybookSet::from_files(&[file("test.toml", &text)]).expect("warnings only");
    assert_eq!(set.warnings().len(), 2);
}

#[test]
fn two_files_with_one_id_are_refused_and_the_set_names_both() {
    let problems = PlaybookSet::from_files(&[file("a.toml", BASE), file("b.toml", BASE)]).expect_err("duplicate ids");
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(lines, ["b.toml: playbook base: `playbook.id`: a.toml has the same id"]);
}

fn alert(techniques: &[&str], tactics: &[&str], product: &str, severity: Severity) -> CanonicalAlert {
    CanonicalAlert {
        alert_id: AlertId::parse("alert-1").expect("valid id"),
        source: AlertSource::Sentinel,
        timestamp: Utc.with_ymd_and_hms(2024, 7, 22, 10, 0, 0).single().expect("valid time"),
        title: "Test alert".to_owned(),
        description: String::new(),
        severity,
        tactics: tactics.iter().map(|t| (*t).to_owned()).collect(),
        techniques: techniques.iter().map(|t| (*t).to_owned()).collect(),
        entities_raw: String::new(),
        product: product.to_owned(),
        tenant_id: TenantId::default_tenant(),
        raw_payload: serde_json::Value::Null,
    }
}

fn state_for(alert: &CanonicalAlert, classification: Option<Classification>) -> GraphState {
    let mut state = GraphState::new(alert.alert_id.clone(), alert.tenant_id.clone(), DegradationLevel::Deterministic, alert.timestamp);
    state.classification = classification;
    state.confidence = 0.9;
    state.entities.make_mut().hosts.push(Host {
        hostname: Some("ws01".to_owned()),
        fqdn: Some("ws01.corp.local".to_owned()),
        device_id: Some("dev-1".to_owned()),
        ..Host::default()
    });
    state
}

fn set_of(text: &str) -> PlaybookSet {
    PlaybookSet::from_files(&[file("test.toml", text)]).expect("valid playbook")
}

fn matched(set: &PlaybookSet, alert: &CanonicalAlert, classification: Option<Classification>) -> Vec<String> {
    set.plan(&state_for(alert, classification), alert).matches.into_iter().map(|m| m.playbook_id).collect()
}

#[test]
fn a_technique_matches_its_sub_techniques() {
    let set = set_of(BASE);
    let tp = Some(Classification::TruePositive);
    assert_eq!(matched(&set, &alert(&["T1566.001"], &[], "", Severity::Low), tp), ["base"]);
    assert_eq!(matched(&set, &alert(&["t1566"], &[], "", Severity::Low), tp), ["base"]);
    let sub = set_of(&BASE.replace("[\"T1566\"]", "[\"T1566.001\"]"));
    assert!(matched(&sub, &alert(&["T1566"], &[], "", Severity::Low), tp).is_empty());
    assert!(matched(&sub, &alert(&["T1566.002"], &[], "", Severity::Low), tp).is_empty());
    // Techniques the investigation found count as much as the alert's own.
    let bare = alert(&[], &[], "", Severity::Low);
    let mut state = state_for(&bare, tp);
    state.techniques.push("T1566.002".to_owned());
    assert_eq!(set.plan(&state, &bare).matches.len(), 1);
}

#[test]
fn every_criterion_must_hold() {
    let text = BASE.replace(
        "techniques = [\"T1566\"]",
        "techniques = [\"T1566\"]\nproducts = [\"Microsoft 365 Defender\"]\nmin_severity = \"medium\"\nentity_kinds = [\"host\", \"mailbox\"]",
    );
    let set = set_of(&text);
    let tp = Some(Classification::TruePositive);
    let good = alert(&["T1566.002"], &[], "microsoft 365 defender", Severity::High);
    let mut state = state_for(&good, tp);
    assert!(set.plan(&state, &good).matches.is_empty(), "no mailbox yet");
    state.entities.make_mut().mailboxes.push(Mailbox { address: Some("a@corp.example".to_owned()), ..Mailbox::default() });
    let plan = set.plan(&state, &good);
    assert_eq!(plan.matches.len(), 1);
    assert_eq!(
        plan.matches[0].why,
        "ATT&CK T1566.002 (under T1566); product microsoft 365 defender; severity high (at least medium); has host, mailbox; verdict true_positive (0.90)"
    );
    for (what, other) in [
        ("technique", alert(&["T1078"], &[], "Microsoft 365 Defender", Severity::High)),
        ("product", alert(&["T1566.002"], &[], "Microsoft Defender for Endpoint", Severity::High)),
        ("severity", alert(&["T1566.002"], &[], "Microsoft 365 Defender", Severity::Low)),
    ] {
        assert!(set.plan(&state, &other).matches.is_empty(), "{what} does not hold, yet it matched");
    }
    // The investigation's severity, once set, is the one compared.
    state.severity = "low".to_owned();
    assert!(set.plan(&state, &good).matches.is_empty());
}

#[test]
fn tactics_match_by_id_or_any_spelling_of_the_name_and_either_tactic_or_technique_is_enough() {
    let set = set_of(&BASE.replace("techniques = [\"T1566\"]", "tactics = [\"TA0006\"]\ntechniques = [\"T1566\"]"));
    let tp = Some(Classification::TruePositive);
    for tactic in ["CredentialAccess", "Credential Access", "credential-access", "TA0006"] {
        assert_eq!(matched(&set, &alert(&[], &[tactic], "", Severity::Low), tp), ["base"], "{tactic}");
    }
    assert_eq!(matched(&set, &alert(&["T1566"], &["Execution"], "", Severity::Low), tp), ["base"]);
    assert!(matched(&set, &alert(&["T1059"], &["Execution"], "", Severity::Low), tp).is_empty());
}

#[test]
fn benign_verdicts_and_investigations_without_a_verdict_never_match() {
    let set = set_of(BASE);
    let phish = alert(&["T1566"], &[], "", Severity::Critical);
    assert_eq!(matched(&set, &phish, Some(Classification::TruePositive)), ["base"]);
    assert_eq!(matched(&set, &phish, Some(Classification::NeedsInvestigation)), ["base"]);
    assert!(matched(&set, &phish, Some(Classification::FalsePositive)).is_empty());
    assert!(matched(&set, &phish, Some(Classification::BenignTruePositive)).is_empty());
    assert!(matched(&set, &phish, None).is_empty());
    let only_tp = set_of(&BASE.replace("techniques = [\"T1566\"]", "techniques = [\"T1566\"]\nclassifications = [\"true_positive\"]"));
    assert!(matched(&only_tp, &phish, Some(Classification::NeedsInvestigation)).is_empty());
}

#[test]
fn a_disabled_playbook_is_listed_but_never_planned() {
    let set = set_of(&BASE.replace("version = 1", "version = 1\nenabled = false"));
    assert_eq!(set.playbooks().len(), 1);
    assert!(matched(&set, &alert(&["T1566"], &[], "", Severity::High), Some(Classification::TruePositive)).is_empty());
}

#[test]
fn planning_renders_each_step_once_per_distinct_target() {
    let set = set_of(BASE);
    let phish = alert(&["T1566.001"], &[], "", Severity::High);
    let mut state = state_for(&phish, Some(Classification::TruePositive));
    // The same device seen twice (short name and FQDN), and a second device.
    state.entities.make_mut().hosts.push(Host { hostname: Some("WS01".to_owned()), ..Host::default() });
    state.entities.make_mut().hosts.push(Host { fqdn: Some("ws02.corp.local".to_owned()), ..Host::default() });
    state.incident_id = Some("inc-7".to_owned());
    let plan = set.plan(&state, &phish);
    let keys: Vec<&str> = plan.actions.iter().map(|action| action.step_key.as_str()).collect();
    assert_eq!(keys, ["base/ticket/", "base/isolate/ws01.corp.local", "base/isolate/ws02.corp.local"]);
    let ticket = &plan.actions[0];
    assert_eq!((ticket.tier, ticket.destructive, ticket.target.as_str()), (0, false, ""));
    assert_eq!(ticket.description, "ticket for Test alert");
    assert_eq!(ticket.params["title"], "Test alert");
    let isolate = &plan.actions[1];
    assert_eq!((isolate.tier, isolate.destructive, isolate.reversible), (2, true, true));
    assert_eq!(isolate.action, "defender.isolate_machine");
    assert_eq!(isolate.description, "isolate ws01.corp.local");
    assert_eq!(isolate.params["machine_id"], "dev-1");
    assert_eq!(plan.actions[2].params["machine_id"], "", "no Defender id known: empty, not an error");
    assert!(isolate.needs_approval() && !ticket.needs_approval());
    assert_eq!(set.plan(&state, &phish), plan, "planning is deterministic");
}

#[test]
fn planning_caps_targets_per_step_and_says_so() {
    let text =
        BASE.replace("action = \"defender.isolate_machine\"\nfor_each = \"host\"", "action = \"webhook.firewall\"\nfor_each = \"ip\"");
    let text = text.replace("{{ target.machine_id }}", "{{ target }}");
    let set = set_of(&text);
    let phish = alert(&["T1566"], &[], "", Severity::High);
    let mut state = state_for(&phish, Some(Classification::TruePositive));
    for last in 0..30 {
        state.entities.make_mut().ips.push(IpEntity { address: format!("203.0.113.{last}"), ..IpEntity::default() });
    }
    state.entities.make_mut().ips.push(IpEntity { address: "203.0.113.0".to_owned(), ..IpEntity::default() });
    let plan = set.plan(&state, &phish);
    assert_eq!(plan.actions.iter().filter(|action| action.step_id == "isolate").count(), MAX_TARGETS_PER_STEP);
    assert!(plan.matches[0].why.ends_with("step isolate: 30 ip targets, planned for the first 20 only"), "{}", plan.matches[0].why);
}

#[test]
fn the_same_effect_from_two_playbooks_is_planned_once_with_the_stricter_gate() {
    let account_step = |playbook: &str, tier: u8| {
        format!(
            r#"
[playbook]
id = "{playbook}"
name = "{playbook}"
version = 1
[match]
techniques = ["T1078"]
[[steps]]
id = "revoke"
description = "revoke {{{{ target }}}} ({{{{ playbook.id }}}})"
action = "entra.revoke_sessions"
for_each = "account"
tier = {tier}
destructive = true
reversible = false
"#
        )
    };
    let set = PlaybookSet::from_files(&[file("a.toml", &account_step("a", 2)), file("b.toml", &account_step("b", 3))]).expect("valid");
    let login = alert(&["T1078.004"], &[], "", Severity::High);
    let mut state = state_for(&login, Some(Classification::TruePositive));
    state.entities.make_mut().accounts.push(Account {
        upn: Some("Kim@corp.example".to_owned()),
        aad_user_id: Some("aad-1".to_owned()),
        ..Account::default()
    });
    state.entities.make_mut().accounts.push(Account {
        aad_user_id: Some("AAD-1".to_owned()),
        sid: Some("S-1-5-21-1".to_owned()),
        ..Account::default()
    });
    let plan = set.plan(&state, &login);
    assert_eq!(plan.actions.len(), 1, "{:#?}", plan.actions);
    let action = &plan.actions[0];
    assert_eq!(
        (action.step_key.as_str(), action.tier, action.description.as_str()),
        ("a/revoke/Kim@corp.example", 3, "revoke Kim@corp.example (a)")
    );
    assert_eq!(plan.matches.len(), 2);
    assert!(plan.matches[1].why.ends_with("step revoke on \"Kim@corp.example\" is already planned as a/revoke/Kim@corp.example"));
}

#[test]
fn a_directory_adds_playbooks_and_overrides_built_ins_by_id() {
    let dir = tempfile::tempdir().expect("temp dir");
    let builtin_phishing = PlaybookSet::builtin().get("phishing").expect("built-in").playbook.clone();
    let override_text = BASE.replace("id = \"base\"", "id = \"phishing\"").replace("version = 1", "version = 7");
    std::fs::write(dir.path().join("phishing.toml"), override_text).expect("write");
    std::fs::write(dir.path().join("extra.toml"), BASE).expect("write");
    std::fs::write(dir.path().join("notes.txt"), "not a playbook").expect("write");
    let set = PlaybookSet::load(Some(dir.path())).expect("valid directory");
    assert_eq!(set.playbooks().len(), 7);
    let phishing = set.get("phishing").expect("overridden");
    assert_eq!(phishing.playbook.playbook.version, 7);
    assert_ne!(phishing.playbook, builtin_phishing);
    assert_eq!(phishing.source, dir.path().join("phishing.toml").display().to_string());
    assert!(set.get("base").is_some() && set.get("ransomware-precursor").is_some());
    let ids: Vec<&str> = set.playbooks().iter().map(LoadedPlaybook::id).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "id order");
}

#[test]
fn a_directory_with_a_lint_error_refuses_the_set_naming_file_and_field() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, BASE.replace("tier = 2\ndestructive = true", "tier = 0\ndestructive = true")).expect("write");
    let problems = PlaybookSet::load(Some(dir.path())).expect_err("refused");
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [format!(
            "{}: playbook base step isolate: destructive step without an approval gate (FR-RSP-002): `tier` = 0, needs 2 or more",
            path.display()
        )]
    );
    let missing = dir.path().join("absent");
    let problems = PlaybookSet::load(Some(&missing)).expect_err("no such directory");
    assert!(problems[0].to_string().starts_with(&format!("{}: cannot read directory", missing.display())), "{}", problems[0]);
}
