//! Selection and planning (FR-RSP-005): which playbooks match an investigation, and the concrete
//! actions their steps become.
//!
//! Deterministic: playbooks in id order, steps in file order, targets in the order the entities
//! first appear. A step runs once per distinct target (step key `<playbook>/<step>/<target>`,
//! `<playbook>/<step>/` for an investigation-wide step), for at most [`MAX_TARGETS_PER_STEP`]
//! targets. When two playbooks plan the same built-in action on the same target (or the same
//! webhook call with identical parameters) it is planned once, by the first playbook, with the
//! stricter gate of the two.

use std::collections::{BTreeMap, BTreeSet};

use aluskort_core::entity::{Account, AlertEntities, FileHash, OtherEntity};
use aluskort_core::response::PlannedAction;
use aluskort_core::{CanonicalAlert, Classification, GraphState, Severity};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::LoadedPlaybook;
use super::attack::{tactic_id, technique_matches};
use super::model::{EntityKind, MatchCriteria, Playbook, Step};
use super::template::{Vars, kind_variables, render, render_params};
use crate::action::spec;

/// Most targets one step is planned for; more are left out and the match's `why` says so.
pub const MAX_TARGETS_PER_STEP: usize = 20;

/// A playbook that matched, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaybookMatch {
    pub playbook_id: String,
    pub name: String,
    pub version: u32,
    /// Which criteria held, then anything left out of the plan (targets over the cap, steps with
    /// no entity to apply to, actions another playbook already planned).
    pub why: String,
}

/// The response plan for one investigation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub matches: Vec<PlaybookMatch>,
    pub actions: Vec<PlannedAction>,
}

/// One entity a step can apply to: its value (`{{ target }}`) and the kind's extra variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: EntityKind,
    pub value: String,
    /// `target.<x>` variables of this kind ([`kind_variables`]); missing ones render empty.
    pub extra: Vec<(&'static str, String)>,
}

impl Target {
    fn new(kind: EntityKind, value: String) -> Self {
        Target { kind, value, extra: Vec::new() }
    }

    fn with(mut self, name: &'static str, value: Option<&str>) -> Self {
        if let Some(value) = value.map(str::trim).filter(|value| !value.is_empty()) {
            self.extra.push((name, value.to_owned()));
        }
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.extra.iter().find(|(known, _)| *known == name).map(|(_, value)| value.as_str())
    }
}

fn non_empty(value: Option<&str>) -> Option<String> {
    value.map(str::trim).filter(|value| !value.is_empty()).map(str::to_owned)
}

/// The distinct entities of `kind`, in order of first appearance.
pub fn targets(entities: &AlertEntities, kind: EntityKind) -> Vec<Target> {
    let mut out: Vec<Target> = Vec::new();
    let mut push_unique = |target: Target| {
        if !out.iter().any(|seen| seen.value.eq_ignore_ascii_case(&target.value)) {
            out.push(target);
        }
    };
    match kind {
        EntityKind::Host => return hosts(entities),
        EntityKind::Account => return accounts(&entities.accounts),
        EntityKind::Ip => {
            entities.ips.iter().filter_map(|ip| non_empty(Some(&ip.address))).for_each(|ip| push_unique(Target::new(kind, ip)))
        }
        EntityKind::Url => {
            entities.urls.iter().filter_map(|url| non_empty(Some(&url.url))).for_each(|url| push_unique(Target::new(kind, url)))
        }
        EntityKind::Domain => entities
            .dns
            .iter()
            .filter_map(|dns| non_empty(Some(dns.domain.trim_end_matches('.'))))
            .for_each(|domain| push_unique(Target::new(kind, domain.to_ascii_lowercase()))),
        EntityKind::Filehash => file_hashes(entities).0.into_iter().for_each(push_unique),
        EntityKind::Mailbox => entities
            .mailboxes
            .iter()
            .filter_map(|mailbox| non_empty(mailbox.address.as_deref()).or_else(|| non_empty(mailbox.aad_id.as_deref())))
            .for_each(|mailbox| push_unique(Target::new(kind, mailbox))),
        EntityKind::MailMessage => others(entities, "mailmessage")
            .filter_map(|other| {
                let value = attribute(other, "NetworkMessageId").or_else(|| attribute(other, "InternetMessageId"))?;
                Some(
                    Target::new(kind, value)
                        .with("target.recipient", attribute(other, "Recipient").as_deref())
                        .with("target.sender", attribute(other, "Sender").or_else(|| attribute(other, "P2Sender")).as_deref())
                        .with("target.internet_message_id", attribute(other, "InternetMessageId").as_deref())
                        .with("target.subject", attribute(other, "Subject").as_deref()),
                )
            })
            .for_each(push_unique),
        EntityKind::OauthApp => others(entities, "oauthapplication")
            .filter_map(|other| {
                let value = attribute(other, "OAuthAppId")?;
                Some(
                    Target::new(kind, value)
                        .with("target.name", attribute(other, "Name").as_deref())
                        .with("target.object_id", attribute(other, "OAuthObjectId").as_deref()),
                )
            })
            .for_each(push_unique),
    }
    out
}

/// `other` entities whose type, lowercased with punctuation removed, is `squashed_type`.
fn others<'a>(entities: &'a AlertEntities, squashed_type: &'a str) -> impl Iterator<Item = &'a OtherEntity> {
    entities.other.iter().filter(move |other| {
        let squashed: String = other.entity_type.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect();
        squashed == squashed_type
    })
}

/// A scalar attribute as text (numbers too), when present and not empty.
fn attribute(other: &OtherEntity, name: &str) -> Option<String> {
    match other.attributes.get(name)? {
        Value::String(text) => non_empty(Some(text)),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

fn hosts(entities: &AlertEntities) -> Vec<Target> {
    let mut out: Vec<(String, Target)> = Vec::new();
    for host in &entities.hosts {
        let Some(value) = non_empty(host.fqdn.as_deref())
            .or_else(|| non_empty(host.hostname.as_deref()))
            .or_else(|| non_empty(host.device_id.as_deref()))
            .or_else(|| non_empty(host.azure_id.as_deref()))
        else {
            continue;
        };
        let key = host.short_name().unwrap_or_else(|| value.to_ascii_lowercase());
        let machine_id = non_empty(host.device_id.as_deref());
        let same = |(seen_key, seen): &&mut (String, Target)| {
            *seen_key == key
                && match (seen.get("target.machine_id"), machine_id.as_deref()) {
                    (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                    _ => true,
                }
        };
        match out.iter_mut().find(same) {
            Some((_, seen)) => {
                if seen.get("target.machine_id").is_none() {
                    *seen = seen.clone().with("target.machine_id", machine_id.as_deref());
                }
            }
            None => {
                let target = Target::new(EntityKind::Host, value)
                    .with("target.machine_id", machine_id.as_deref())
                    .with("target.hostname", host.short_name().as_deref());
                out.push((key, target));
            }
        }
    }
    out.into_iter().map(|(_, target)| target).collect()
}

fn accounts(accounts: &[Account]) -> Vec<Target> {
    let mut out: Vec<(Vec<String>, Target)> = Vec::new();
    for account in accounts {
        let qualified = match (non_empty(account.domain.as_deref()), non_empty(account.name.as_deref())) {
            (Some(domain), Some(name)) => Some(format!("{domain}\\{name}")),
            _ => None,
        };
        let Some(value) = non_empty(account.upn.as_deref())
            .or_else(|| non_empty(account.aad_user_id.as_deref()))
            .or(qualified)
            .or_else(|| non_empty(account.name.as_deref()))
            .or_else(|| non_empty(account.sid.as_deref()))
        else {
            continue;
        };
        let mut keys = account.identity_keys();
        keys.push(format!("value:{}", value.to_ascii_lowercase()));
        match out.iter_mut().find(|(seen_keys, _)| seen_keys.iter().any(|key| keys.contains(key))) {
            Some((seen_keys, seen)) => {
                for (name, field) in [("target.upn", &account.upn), ("target.aad_user_id", &account.aad_user_id)] {
                    if seen.get(name).is_none() {
                        *seen = seen.clone().with(name, field.as_deref());
                    }
                }
                seen_keys.extend(keys);
            }
            None => {
                let target = Target::new(EntityKind::Account, value)
                    .with("target.upn", account.upn.as_deref())
                    .with("target.aad_user_id", account.aad_user_id.as_deref());
                out.push((keys, target));
            }
        }
    }
    out.into_iter().map(|(_, target)| target).collect()
}

fn hash_rank(hash: &FileHash) -> u8 {
    match hash.algorithm.to_ascii_lowercase().replace('-', "").as_str() {
        "sha256" => 3,
        "sha1" => 2,
        "md5" => 1,
        _ => 0,
    }
}

fn hash_target(hash: &FileHash) -> Option<Target> {
    let value = non_empty(Some(&hash.value))?.to_ascii_lowercase();
    Some(Target::new(EntityKind::Filehash, value).with("target.algorithm", Some(&hash.algorithm.to_ascii_lowercase())))
}

/// Whether `directory` holds the operating system's or installed programs' own binaries: the
/// Windows directory itself, its `System32`, `SysWOW64` and `WinSxS` trees, and the `Program Files`
/// trees. The files an alert names there are the legitimate programs it involved (the
/// `powershell.exe` that ran a script, the `WINWORD.EXE` that spawned it), and quarantining one by
/// hash would break it on every endpoint. Drive letters, `%SystemRoot%`, `%ProgramFiles%` and NT
/// device paths (`\Device\HarddiskVolume4\Windows\...`) are understood; `C:\Windows\Temp` and
/// `C:\ProgramData` are not such directories.
pub fn is_os_or_program_directory(directory: &str) -> bool {
    let normal = directory.trim().replace('/', "\\").to_ascii_lowercase();
    let normal = normal.trim_end_matches('\\');
    let path = if let Some(rest) = normal.strip_prefix("%systemroot%") {
        format!("\\windows{rest}")
    } else if let Some(rest) = normal.strip_prefix("%programfiles%") {
        format!("\\program files{rest}")
    } else if let Some(rest) = normal.strip_prefix("\\device\\") {
        // `\Device\HarddiskVolume4\Windows\...`: drop the volume.
        rest.find('\\').map_or_else(String::new, |at| rest.get(at..).unwrap_or_default().to_owned())
    } else {
        let without_prefix = normal.strip_prefix("\\\\?\\").unwrap_or(normal);
        match without_prefix.as_bytes() {
            [drive, b':', ..] if drive.is_ascii_alphabetic() => without_prefix.get(2..).unwrap_or_default().to_owned(),
            _ => without_prefix.to_owned(),
        }
    };
    let under = |tree: &str| path == tree || path.starts_with(&format!("{tree}\\"));
    path == "\\windows"
        || ["\\windows\\system32", "\\windows\\syswow64", "\\windows\\winsxs", "\\program files", "\\program files (x86)"]
            .into_iter()
            .any(under)
}

/// Each file by its strongest hash, then hashes that belong to no file entity. Files in
/// [operating-system or program directories](is_os_or_program_directory) are left out and their
/// names returned.
fn file_hashes(entities: &AlertEntities) -> (Vec<Target>, Vec<String>) {
    let mut skipped = Vec::new();
    let mut out = Vec::new();
    for file in &entities.files {
        if file.directory.as_deref().is_some_and(is_os_or_program_directory) {
            let name = file.name.clone().unwrap_or_else(|| "(unnamed)".to_owned());
            if !skipped.contains(&name) {
                skipped.push(name);
            }
            continue;
        }
        out.extend(file.hashes.iter().max_by_key(|hash| hash_rank(hash)).and_then(hash_target));
    }
    let of_files: BTreeSet<String> =
        entities.files.iter().flat_map(|file| &file.hashes).map(|hash| hash.value.trim().to_ascii_lowercase()).collect();
    out.extend(
        entities.file_hashes.iter().filter(|hash| !of_files.contains(&hash.value.trim().to_ascii_lowercase())).filter_map(hash_target),
    );
    (out, skipped)
}

/// What matching and templating read from one investigation.
struct Facts {
    techniques: Vec<String>,
    tactics: Vec<String>,
    tactic_ids: Vec<String>,
    product: String,
    severity: Severity,
    classification: Option<Classification>,
    confidence: f64,
    targets: BTreeMap<EntityKind, Vec<Target>>,
    /// Files left out of `filehash` targets: operating-system and installed programs' binaries.
    system_files: Vec<String>,
}

fn push_distinct(list: &mut Vec<String>, item: &str) {
    let item = item.trim();
    if !item.is_empty() && !list.iter().any(|seen| seen.eq_ignore_ascii_case(item)) {
        list.push(item.to_owned());
    }
}

impl Facts {
    fn new(state: &GraphState, alert: &CanonicalAlert) -> Self {
        let mut techniques = Vec::new();
        for technique in alert.techniques.iter().chain(&state.techniques).chain(&state.atlas_techniques) {
            push_distinct(&mut techniques, &technique.to_ascii_uppercase());
        }
        let mut tactics = Vec::new();
        for tactic in alert.tactics.iter().chain(&state.tactics) {
            push_distinct(&mut tactics, tactic);
        }
        let mut tactic_ids = Vec::new();
        for id in tactics.iter().filter_map(|tactic| tactic_id(tactic)) {
            push_distinct(&mut tactic_ids, &id);
        }
        Facts {
            techniques,
            tactics,
            tactic_ids,
            product: alert.product.trim().to_owned(),
            severity: state.severity.parse().unwrap_or(alert.severity),
            classification: state.classification,
            confidence: state.confidence,
            targets: EntityKind::ALL.into_iter().map(|kind| (kind, targets(&state.entities, kind))).collect(),
            system_files: file_hashes(&state.entities).1,
        }
    }

    fn targets(&self, kind: EntityKind) -> &[Target] {
        self.targets.get(&kind).map_or(&[], Vec::as_slice)
    }

    /// The reasons each criterion holds, or `None` when one does not.
    fn matches(&self, criteria: &MatchCriteria) -> Option<Vec<String>> {
        let mut why = Vec::new();
        let classification = self.classification?;
        if !criteria.classifications().contains(&classification) {
            return None;
        }
        if !criteria.tactics.is_empty() || !criteria.techniques.is_empty() {
            let mut hits = Vec::new();
            for listed in &criteria.techniques {
                for seen in self.techniques.iter().filter(|seen| technique_matches(listed, seen)) {
                    hits.push(if seen.eq_ignore_ascii_case(listed) { seen.clone() } else { format!("{seen} (under {listed})") });
                }
            }
            for listed in &criteria.tactics {
                if self.tactic_ids.iter().any(|seen| seen.eq_ignore_ascii_case(listed)) {
                    hits.push(format!("tactic {listed}"));
                }
            }
            if hits.is_empty() {
                return None;
            }
            why.push(format!("ATT&CK {}", hits.join(", ")));
        }
        if !criteria.products.is_empty() {
            criteria.products.iter().find(|product| product.trim().eq_ignore_ascii_case(&self.product))?;
            why.push(format!("product {}", self.product));
        }
        if !criteria.severities.is_empty() && !criteria.severities.contains(&self.severity) {
            return None;
        }
        match criteria.min_severity {
            Some(min) if self.severity < min => return None,
            Some(min) => why.push(format!("severity {} (at least {min})", self.severity)),
            None if !criteria.severities.is_empty() => why.push(format!("severity {}", self.severity)),
            None => {}
        }
        if !criteria.entity_kinds.is_empty() {
            if criteria.entity_kinds.iter().any(|kind| self.targets(*kind).is_empty()) {
                return None;
            }
            let kinds: Vec<&str> = criteria.entity_kinds.iter().map(|kind| kind.as_str()).collect();
            why.push(format!("has {}", kinds.join(", ")));
        }
        why.push(format!("verdict {classification} ({:.2})", self.confidence));
        Some(why)
    }

    fn vars(&self, state: &GraphState, alert: &CanonicalAlert) -> Vars<'static> {
        let mut vars = Vars::default();
        vars.set("investigation_id", state.investigation_id.to_string());
        vars.set("incident_id", state.incident_id.clone().unwrap_or_default());
        vars.set("tenant_id", state.tenant_id.as_str());
        vars.set("alert_id", state.alert_id.as_str());
        vars.set("alert.title", alert.title.as_str());
        vars.set("alert.severity", alert.severity.as_str());
        vars.set("alert.product", alert.product.as_str());
        vars.set("alert.source", alert.source.as_str());
        vars.set("severity", self.severity.as_str());
        vars.set("classification", self.classification.map(Classification::as_str).unwrap_or_default());
        vars.set("confidence", format!("{:.2}", self.confidence));
        vars.set("techniques", self.techniques.join(", "));
        vars.set("tactics", self.tactics.join(", "));
        vars
    }
}

/// Whether two planned actions have the same effect: the same built-in action on the same target,
/// or the same webhook call (action, target and parameters).
fn same_effect(a: &PlannedAction, b: &PlannedAction) -> bool {
    a.action == b.action && a.target.eq_ignore_ascii_case(&b.target) && (spec(&a.action).is_some() || a.params == b.params)
}

/// The plan of `playbooks` (already in id order) for one investigation.
pub(super) fn plan(playbooks: &[LoadedPlaybook], state: &GraphState, alert: &CanonicalAlert) -> Plan {
    let facts = Facts::new(state, alert);
    let base = facts.vars(state, alert);
    let mut plan = Plan::default();
    let mut step_keys = BTreeSet::new();
    for loaded in playbooks.iter().filter(|loaded| loaded.playbook.playbook.enabled) {
        let playbook = &loaded.playbook;
        let Some(mut why) = facts.matches(&playbook.criteria) else {
            continue;
        };
        let mut vars = base.child();
        vars.set("playbook.id", playbook.playbook.id.as_str());
        vars.set("playbook.name", playbook.playbook.name.as_str());
        vars.set("playbook.version", playbook.playbook.version.to_string());
        for step in &playbook.steps {
            plan_step(playbook, step, &facts, &vars, &mut step_keys, &mut plan.actions, &mut why);
        }
        plan.matches.push(PlaybookMatch {
            playbook_id: playbook.playbook.id.clone(),
            name: playbook.playbook.name.clone(),
            version: playbook.playbook.version,
            why: why.join("; "),
        });
    }
    plan
}

fn plan_step(
    playbook: &Playbook,
    step: &Step,
    facts: &Facts,
    vars: &Vars<'_>,
    step_keys: &mut BTreeSet<String>,
    actions: &mut Vec<PlannedAction>,
    why: &mut Vec<String>,
) {
    let investigation_wide = [Target::new(EntityKind::Host, String::new())];
    let targets: &[Target] = match step.for_each {
        None => &investigation_wide,
        Some(kind) => facts.targets(kind),
    };
    if let Some(kind) = step.for_each {
        if kind == EntityKind::Filehash && !facts.system_files.is_empty() {
            why.push(format!(
                "step {}: left out files of the operating system or installed programs: {}",
                step.id,
                facts.system_files.join(", ")
            ));
        }
        if targets.is_empty() {
            why.push(format!("step {}: no {kind} to apply to", step.id));
            return;
        }
        if targets.len() > MAX_TARGETS_PER_STEP {
            why.push(format!("step {}: {} {kind} targets, planned for the first {MAX_TARGETS_PER_STEP} only", step.id, targets.len()));
        }
    }
    for target in targets.iter().take(MAX_TARGETS_PER_STEP) {
        let step_key = format!("{}/{}/{}", playbook.playbook.id, step.id, target.value);
        if !step_keys.insert(step_key.clone()) {
            continue;
        }
        let mut vars = vars.child();
        vars.set("step.id", step.id.as_str());
        if let Some(kind) = step.for_each {
            vars.set("target", target.value.as_str());
            vars.set("target.kind", kind.as_str());
            for name in kind_variables(kind) {
                vars.set(name, target.get(name).unwrap_or_default());
            }
        }
        let rendered = render(&step.description, &vars).and_then(|description| Ok((description, render_params(&step.params, &vars)?)));
        let (description, params) = match rendered {
            Ok(rendered) => rendered,
            Err(error) => {
                // Lint refuses such playbooks before they load; kept for sets built another way.
                why.push(format!("step {} on {:?} left out: {error}", step.id, target.value));
                continue;
            }
        };
        let action = PlannedAction {
            step_key,
            playbook_id: playbook.playbook.id.clone(),
            step_id: step.id.clone(),
            action: step.action.clone(),
            target: target.value.clone(),
            params,
            tier: step.tier,
            destructive: step.destructive,
            reversible: step.reversible,
            description,
        };
        match actions.iter_mut().find(|planned| same_effect(planned, &action)) {
            Some(planned) => {
                planned.tier = planned.tier.max(action.tier);
                planned.destructive |= action.destructive;
                planned.reversible &= action.reversible;
                why.push(format!("step {} on {:?} is already planned as {}", step.id, target.value, planned.step_key));
            }
            None => actions.push(action),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operating_system_and_program_directories_are_recognised_in_every_spelling() {
        for directory in [
            r"C:\Windows",
            r"C:\Windows\System32\WindowsPowerShell\v1.0",
            r"c:/windows/syswow64",
            r"%SystemRoot%\System32",
            r"\Device\HarddiskVolume4\Windows\System32\WindowsPowerShell\v1.0",
            r"\\?\C:\Windows\WinSxS\amd64_x",
            r"C:\Program Files\Microsoft Office\root\Office16",
            r"D:\Program Files (x86)\App\",
            r"%ProgramFiles%\WindowsApps\Notepad",
        ] {
            assert!(is_os_or_program_directory(directory), "{directory}");
        }
        for directory in [
            r"C:\Windows\Temp",
            r"C:\ProgramData\x",
            r"C:\Users\samuelf\Desktop",
            r"C:\Windows\System32evil",
            r"C:\Program Files Evil",
            r"\Device\HarddiskVolume4\Users\x",
            "",
        ] {
            assert!(!is_os_or_program_directory(directory), "{directory}");
        }
    }
}
