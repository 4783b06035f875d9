//! Playbooks as data (FR-RSP-001, -002, -005): TOML files that say when they apply and which
//! actions to propose, built into the binary and overridable from a directory.
//!
//! # Layout
//! - [`model`]: the file format (`[playbook]`, `[match]`, `[[steps]]`), parsed with
//!   `deny_unknown_fields`.
//! - [`lint`]: every rule beyond shape (a destructive step needs an approval gate, actions exist
//!   and fit their targets, ids, ATT&CK ids, template variables); errors refuse the set.
//! - [`template`]: `{{ variable }}` substitution in descriptions and parameters.
//! - [`select`]: matching an investigation and turning matched steps into
//!   [`aluskort_core::response::PlannedAction`]s.
//! - [`attack`]: ATT&CK / ATLAS id syntax and tactic names.
//!
//! The built-in set ([`BUILTIN`], `crates/respond/playbooks/*.toml`) is the starting point; a
//! directory (`respond.playbook_dir`, default `<data_dir>/playbooks`) adds playbooks and replaces
//! built-ins that have the same id.

pub mod attack;
pub mod lint;
pub mod model;
pub mod select;
pub mod template;

use std::collections::BTreeMap;
use std::path::Path;

use aluskort_core::{CanonicalAlert, GraphState};

pub use lint::{Level, Problem};
pub use model::{EntityKind, MatchCriteria, Meta, Playbook, Step};
pub use select::{MAX_TARGETS_PER_STEP, Plan, PlaybookMatch};

/// The built-in playbooks: file name and text, compiled in.
pub const BUILTIN: &[(&str, &str)] = &[
    ("credential-compromise.toml", include_str!("../../playbooks/credential-compromise.toml")),
    ("data-exfiltration.toml", include_str!("../../playbooks/data-exfiltration.toml")),
    ("malware-endpoint.toml", include_str!("../../playbooks/malware-endpoint.toml")),
    ("oauth-app.toml", include_str!("../../playbooks/oauth-app.toml")),
    ("phishing.toml", include_str!("../../playbooks/phishing.toml")),
    ("ransomware-precursor.toml", include_str!("../../playbooks/ransomware-precursor.toml")),
];

/// The text of one playbook file and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaybookFile {
    /// The path, or `builtin:<name>` for a built-in playbook.
    pub source: String,
    pub text: String,
}

/// A parsed playbook and the file it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedPlaybook {
    pub playbook: Playbook,
    pub source: String,
}

impl LoadedPlaybook {
    pub fn id(&self) -> &str {
        &self.playbook.playbook.id
    }
}

/// The built-in playbook files.
pub fn builtin_files() -> Vec<PlaybookFile> {
    BUILTIN.iter().map(|(name, text)| PlaybookFile { source: format!("builtin:{name}"), text: (*text).to_owned() }).collect()
}

/// Reads one playbook file.
pub fn read_file(path: &Path) -> Result<PlaybookFile, Problem> {
    let source = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(PlaybookFile { source, text }),
        Err(error) => Err(Problem::error(&source, None, None, format!("cannot read: {error}"))),
    }
}

/// Reads every `*.toml` file directly in `dir`, in name order.
pub fn read_dir(dir: &Path) -> Result<Vec<PlaybookFile>, Vec<Problem>> {
    let source = dir.display().to_string();
    let entries =
        std::fs::read_dir(dir).map_err(|error| vec![Problem::error(&source, None, None, format!("cannot read directory: {error}"))])?;
    let mut paths = Vec::new();
    let mut problems = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => {
                let path = entry.path();
                if path.extension().is_some_and(|extension| extension == "toml") && path.is_file() {
                    paths.push(path);
                }
            }
            Err(error) => problems.push(Problem::error(&source, None, None, format!("cannot list directory: {error}"))),
        }
    }
    paths.sort();
    let mut files = Vec::new();
    for path in paths {
        match read_file(&path) {
            Ok(file) => files.push(file),
            Err(problem) => problems.push(problem),
        }
    }
    if problems.is_empty() { Ok(files) } else { Err(problems) }
}

/// Parses and lints `files` as one set: every problem (errors and warnings) of every file, and
/// each playbook that parsed (whether or not it has lint errors). Two files with the same
/// playbook id are an error.
pub fn check(files: &[PlaybookFile]) -> (Vec<LoadedPlaybook>, Vec<Problem>) {
    let mut loaded: Vec<LoadedPlaybook> = Vec::new();
    let mut problems = Vec::new();
    for file in files {
        let playbook = match model::parse(&file.text) {
            Ok(playbook) => playbook,
            Err(message) => {
                problems.push(Problem::error(&file.source, None, None, message));
                continue;
            }
        };
        problems.extend(lint::lint(&playbook, &file.source));
        if let Some(first) = loaded.iter().find(|seen| seen.id() == playbook.playbook.id) {
            problems.push(Problem::error(
                &file.source,
                Some(&playbook.playbook.id),
                None,
                format!("`playbook.id`: {} has the same id", first.source),
            ));
        }
        loaded.push(LoadedPlaybook { playbook, source: file.source.clone() });
    }
    (loaded, problems)
}

/// The playbooks in effect, in id order.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaybookSet {
    playbooks: Vec<LoadedPlaybook>,
    warnings: Vec<Problem>,
}

impl PlaybookSet {
    /// The built-in set.
    ///
    /// # Panics
    /// If a built-in playbook has a lint error, which the test suite rules out
    /// (`built_in_playbooks_lint_clean`).
    pub fn builtin() -> PlaybookSet {
        match PlaybookSet::from_files(&builtin_files()) {
            Ok(set) => set,
            Err(problems) => {
                let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
                panic!("the built-in playbooks do not lint clean:\n{}", lines.join("\n"))
            }
        }
    }

    /// The built-in set with the playbooks of `dir` added, each replacing a built-in of the same
    /// id. Refuses the set when any file (built-in or not) has a lint error; the problems returned
    /// then hold the warnings too.
    pub fn load(dir: Option<&Path>) -> Result<PlaybookSet, Vec<Problem>> {
        let builtin = PlaybookSet::from_files(&builtin_files());
        let Some(dir) = dir else {
            return builtin;
        };
        let overrides = read_dir(dir).and_then(|files| PlaybookSet::from_files(&files));
        match (builtin, overrides) {
            (Ok(builtin), Ok(overrides)) => Ok(builtin.overridden_by(overrides)),
            (builtin, overrides) => Err(builtin.err().into_iter().chain(overrides.err()).flatten().collect()),
        }
    }

    /// Exactly the playbooks of `files`, without the built-ins.
    pub fn from_files(files: &[PlaybookFile]) -> Result<PlaybookSet, Vec<Problem>> {
        let (mut playbooks, problems) = check(files);
        if problems.iter().any(Problem::is_error) {
            return Err(problems);
        }
        playbooks.sort_by(|a, b| a.id().cmp(b.id()));
        Ok(PlaybookSet { playbooks, warnings: problems })
    }

    fn overridden_by(self, overrides: PlaybookSet) -> PlaybookSet {
        let mut by_id: BTreeMap<String, LoadedPlaybook> =
            self.playbooks.into_iter().map(|loaded| (loaded.id().to_owned(), loaded)).collect();
        for loaded in overrides.playbooks {
            by_id.insert(loaded.id().to_owned(), loaded);
        }
        let warnings = self.warnings.into_iter().chain(overrides.warnings).collect();
        PlaybookSet { playbooks: by_id.into_values().collect(), warnings }
    }

    /// Every playbook in effect (disabled ones too), in id order.
    pub fn playbooks(&self) -> &[LoadedPlaybook] {
        &self.playbooks
    }

    pub fn get(&self, id: &str) -> Option<&LoadedPlaybook> {
        self.playbooks.iter().find(|loaded| loaded.id() == id)
    }

    /// Lint warnings of the files the set was loaded from.
    pub fn warnings(&self) -> &[Problem] {
        &self.warnings
    }

    /// The playbooks matching this investigation and the actions their steps become
    /// (FR-RSP-005). Nothing matches before reasoning has set a verdict, or on a benign one.
    pub fn plan(&self, state: &GraphState, alert: &CanonicalAlert) -> Plan {
        select::plan(&self.playbooks, state, alert)
    }
}

#[cfg(test)]
mod tests;
