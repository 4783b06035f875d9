//! Playbook rules beyond shape: what `aluskort playbook lint` reports and what the loader refuses.
//!
//! Every rule is checked and every problem reported in one run (a pure function, no I/O). Errors
//! make the runtime loader refuse the whole set; warnings are shown and the set still loads.

use std::collections::BTreeSet;
use std::fmt;

use aluskort_core::Classification;

use super::attack::{is_known_enterprise_tactic, is_tactic_id, is_technique_id};
use super::model::{Playbook, Step};
use super::template::{check_variable, string_leaves, variables};
use crate::action::{CATALOGUE, spec, webhook_name};

/// The highest tier a step may have (3: approval by two people, see `respond.four_eyes_tier`).
pub const MAX_TIER: u8 = 3;

/// Lowest tier that waits for a human (FR-RSP-001).
pub const APPROVAL_TIER: u8 = 2;

/// Longest playbook or step id.
pub const MAX_ID_LEN: usize = 64;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Shown; the playbook still loads.
    Warning,
    /// The loader refuses the set; `lint` exits 1.
    Error,
}

/// One problem in one playbook file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub level: Level,
    /// The file (path, or `builtin:<name>` for a built-in playbook).
    pub file: String,
    /// The playbook's id, when the file parsed far enough to have one.
    pub playbook: Option<String>,
    /// The step's id, for step problems.
    pub step: Option<String>,
    /// What is wrong, naming the field.
    pub message: String,
}

impl Problem {
    pub fn error(file: &str, playbook: Option<&str>, step: Option<&str>, message: impl Into<String>) -> Self {
        Problem {
            level: Level::Error,
            file: file.to_owned(),
            playbook: playbook.map(str::to_owned),
            step: step.map(str::to_owned),
            message: message.into(),
        }
    }

    pub fn warning(file: &str, playbook: Option<&str>, step: Option<&str>, message: impl Into<String>) -> Self {
        Problem { level: Level::Warning, ..Problem::error(file, playbook, step, message) }
    }

    pub fn is_error(&self) -> bool {
        self.level == Level::Error
    }
}

/// `file: playbook <id> step <id>: message`, with `warning: ` before warning messages.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(playbook) = &self.playbook {
            write!(f, ": playbook {playbook}")?;
        }
        if let Some(step) = &self.step {
            let separator = if self.playbook.is_some() { " " } else { ": " };
            write!(f, "{separator}step {step}")?;
        }
        let level = match self.level {
            Level::Warning => "warning: ",
            Level::Error => "",
        };
        write!(f, ": {level}{}", self.message)
    }
}

fn id_problem(id: &str) -> Option<String> {
    if id.is_empty() {
        return Some("must not be empty".to_owned());
    }
    if id.len() > MAX_ID_LEN {
        return Some(format!("is longer than {MAX_ID_LEN} characters"));
    }
    if !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Some(format!("{id:?} may only hold letters, digits, `-` and `_`"));
    }
    None
}

/// Every problem of one parsed playbook read from `file`.
pub fn lint(playbook: &Playbook, file: &str) -> Vec<Problem> {
    let meta = &playbook.playbook;
    let id = meta.id.as_str();
    let mut problems = Vec::new();
    let mut error = |message: String| problems.push(Problem::error(file, Some(id), None, message));

    if let Some(problem) = id_problem(id) {
        error(format!("`playbook.id` {problem}"));
    }
    if meta.name.trim().is_empty() {
        error("`playbook.name` must not be empty".to_owned());
    }
    if meta.version == 0 {
        error("`playbook.version` must be 1 or more".to_owned());
    }
    lint_criteria(playbook, file, &mut problems);
    if playbook.steps.is_empty() {
        problems.push(Problem::error(file, Some(id), None, "`steps`: a playbook needs at least one step"));
    }
    let mut seen = BTreeSet::new();
    for step in &playbook.steps {
        if !seen.insert(step.id.as_str()) {
            problems.push(Problem::error(file, Some(id), Some(&step.id), "`id`: another step of this playbook has the same id"));
        }
        lint_step(step, file, id, &mut problems);
    }
    problems
}

fn lint_criteria(playbook: &Playbook, file: &str, problems: &mut Vec<Problem>) {
    let criteria = &playbook.criteria;
    let id = Some(playbook.playbook.id.as_str());
    let mut error = |message: String| problems.push(Problem::error(file, id, None, message));
    if criteria.tactics.is_empty() && criteria.techniques.is_empty() && criteria.products.is_empty() {
        error("`match` needs `tactics`, `techniques` or `products`: without them the playbook would match every alert".to_owned());
    }
    let mut warnings = Vec::new();
    for tactic in &criteria.tactics {
        if !is_tactic_id(tactic) {
            error(format!("`match.tactics`: {tactic:?} is not a tactic id (TA0001 or AML.TA0001)"));
        } else if !is_known_enterprise_tactic(tactic) {
            warnings.push(format!(
                "`match.tactics`: {tactic} is not an Enterprise ATT&CK tactic; it only matches alerts that give the id itself"
            ));
        }
    }
    for technique in &criteria.techniques {
        if !is_technique_id(technique) {
            error(format!("`match.techniques`: {technique:?} is not a technique id (T1566, T1566.001 or AML.T0051)"));
        }
    }
    if criteria.products.iter().any(|product| product.trim().is_empty()) {
        error("`match.products`: a product name is empty".to_owned());
    }
    if let Some(min) = criteria.min_severity
        && !criteria.severities.is_empty()
        && criteria.severities.iter().all(|severity| *severity < min)
    {
        error(format!("`match.severities` lists nothing at or above `min_severity = \"{min}\"`: the playbook never matches"));
    }
    if let Some(classifications) = &criteria.classifications {
        if classifications.is_empty() {
            error("`match.classifications` is empty: the playbook never matches".to_owned());
        }
        for benign in classifications
            .iter()
            .filter(|classification| matches!(classification, Classification::FalsePositive | Classification::BenignTruePositive))
        {
            error(format!("`match.classifications`: {benign} is a benign verdict; playbooks never run on benign verdicts"));
        }
    }
    problems.extend(warnings.into_iter().map(|message| Problem::warning(file, id, None, message)));
}

fn lint_step(step: &Step, file: &str, playbook: &str, problems: &mut Vec<Problem>) {
    let mut error = |message: String| problems.push(Problem::error(file, Some(playbook), Some(&step.id), message));
    if let Some(problem) = id_problem(&step.id) {
        error(format!("`id` {problem}"));
    }
    if step.tier > MAX_TIER {
        error(format!("`tier` = {}: tiers go from 0 to {MAX_TIER}", step.tier));
    }
    if step.destructive && step.tier < APPROVAL_TIER {
        error(format!("destructive step without an approval gate (FR-RSP-002): `tier` = {}, needs {APPROVAL_TIER} or more", step.tier));
    }
    let mut warnings = Vec::new();
    match spec(&step.action) {
        Some(action) => {
            if action.destructive && !step.destructive {
                error(format!("`destructive` = false, but {} is destructive", action.name));
            }
            if !action.destructive && step.destructive {
                warnings.push(format!("`destructive` = true, but {} is not destructive", action.name));
            }
            if action.reversible != step.reversible {
                error(format!("`reversible` = {}, but {} is {}", step.reversible, action.name, reversibility(action.reversible)));
            }
            if action.target != "any" {
                match step.for_each {
                    None => error(format!(
                        "{} applies to one {} at a time: it needs `for_each = \"{}\"`",
                        action.name, action.target, action.target
                    )),
                    Some(kind) if kind.as_str() != action.target => {
                        error(format!("`for_each` = \"{kind}\", but {} applies to {} entities", action.name, action.target));
                    }
                    Some(_) => {}
                }
            }
        }
        None => match webhook_name(&step.action) {
            Some(name) if id_problem(name).is_some() => {
                error(format!("`action` {:?}: a webhook name may only hold letters, digits, `-` and `_`", step.action));
            }
            Some(_) => {}
            None => error(format!(
                "`action` {:?} is neither a built-in action ({}) nor `webhook.<name>`",
                step.action,
                CATALOGUE.iter().map(|action| action.name).collect::<Vec<_>>().join(", ")
            )),
        },
    }
    if step.description.trim().is_empty() {
        warnings.push("`description` is empty: the approver will not be told what the step does".to_owned());
    }
    let templates = std::iter::once(("description".to_owned(), step.description.as_str())).chain(string_leaves(&step.params));
    for (field, text) in templates {
        match variables(text) {
            Ok(names) => {
                for name in names {
                    if let Err(problem) = check_variable(name, step.for_each) {
                        error(format!("`{field}`: {problem}"));
                    }
                }
            }
            Err(problem) => error(format!("`{field}`: {problem}")),
        }
    }
    problems.extend(warnings.into_iter().map(|message| Problem::warning(file, Some(playbook), Some(&step.id), message)));
}

const fn reversibility(reversible: bool) -> &'static str {
    if reversible { "reversible" } else { "not reversible" }
}
