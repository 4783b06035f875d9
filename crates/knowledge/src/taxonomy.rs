//! ATT&CK Enterprise and ATLAS tactics and techniques, from the embedded tables.
//!
//! Table format (`data/*.tsv`): `#` comment lines (MITRE's notice, the source version), a header,
//! then `kind id name tactics parent status replaced_by`, tab-separated. `tactics` are ATT&CK tactic
//! short names (`credential-access`) or ATLAS tactic ids (`AML.TA0002`), comma-separated.

use std::collections::HashMap;
use std::sync::OnceLock;

const ATTACK_TABLE: &str = include_str!("../data/attack-enterprise.tsv");
const ATLAS_TABLE: &str = include_str!("../data/atlas.tsv");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framework {
    Attack,
    Atlas,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TechniqueStatus {
    Active,
    Deprecated,
    Revoked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tactic {
    pub framework: Framework,
    pub id: String,
    pub name: String,
    /// ATT&CK's short name (`credential-access`); empty for ATLAS.
    pub short_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Technique {
    pub framework: Framework,
    pub id: String,
    pub name: String,
    /// Tactic ids (`TA0006`, `AML.TA0002`).
    pub tactics: Vec<String>,
    /// The parent technique of a sub-technique.
    pub parent: Option<String>,
    pub status: TechniqueStatus,
    pub replaced_by: Option<String>,
}

impl Technique {
    pub fn is_subtechnique(&self) -> bool {
        self.parent.is_some()
    }
}

/// Why an id is not a technique to use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TechniqueError {
    #[error("{0} is not an ATT&CK or ATLAS technique id")]
    Unknown(String),
    #[error("{id} ({name}) is revoked{}", .replaced_by.as_ref().map(|r| format!("; use {r}")).unwrap_or_default())]
    Revoked { id: String, name: String, replaced_by: Option<String> },
    #[error("{id} ({name}) is deprecated")]
    Deprecated { id: String, name: String },
}

#[derive(Debug)]
pub struct Taxonomy {
    tactics: Vec<Tactic>,
    techniques: Vec<Technique>,
    by_id: HashMap<String, usize>,
}

impl Taxonomy {
    /// The embedded ATT&CK Enterprise v18.1 + ATLAS v5.6.0 tables, parsed once.
    pub fn embedded() -> &'static Taxonomy {
        static TAXONOMY: OnceLock<Taxonomy> = OnceLock::new();
        TAXONOMY.get_or_init(|| {
            let mut taxonomy = Taxonomy { tactics: Vec::new(), techniques: Vec::new(), by_id: HashMap::new() };
            // The tables are generated and reviewed; a malformed row is a build defect, caught by the tests.
            taxonomy.load(Framework::Attack, ATTACK_TABLE);
            taxonomy.load(Framework::Atlas, ATLAS_TABLE);
            taxonomy
        })
    }

    fn load(&mut self, framework: Framework, table: &str) {
        let mut short_to_id: HashMap<String, String> = HashMap::new();
        for line in table.lines().filter(|l| !l.starts_with('#') && !l.starts_with("kind\t") && !l.trim().is_empty()) {
            let fields: Vec<&str> = line.split('\t').collect();
            let [kind, id, name, tactics, parent, status, replaced_by] = fields[..] else { continue };
            match kind {
                "tactic" => {
                    short_to_id.insert(tactics.to_owned(), id.to_owned());
                    self.tactics.push(Tactic { framework, id: id.to_owned(), name: name.to_owned(), short_name: tactics.to_owned() });
                }
                "technique" => {
                    let tactics = tactics
                        .split(',')
                        .filter(|t| !t.is_empty())
                        .map(|t| short_to_id.get(t).cloned().unwrap_or_else(|| t.to_owned()))
                        .collect();
                    let status = match status {
                        "revoked" => TechniqueStatus::Revoked,
                        "deprecated" => TechniqueStatus::Deprecated,
                        _ => TechniqueStatus::Active,
                    };
                    self.by_id.insert(id.to_ascii_uppercase(), self.techniques.len());
                    self.techniques.push(Technique {
                        framework,
                        id: id.to_owned(),
                        name: name.to_owned(),
                        tactics,
                        parent: (!parent.is_empty()).then(|| parent.to_owned()),
                        status,
                        replaced_by: (!replaced_by.is_empty()).then(|| replaced_by.to_owned()),
                    });
                }
                _ => {}
            }
        }
    }

    pub fn tactics(&self, framework: Framework) -> impl Iterator<Item = &Tactic> {
        self.tactics.iter().filter(move |t| t.framework == framework)
    }

    pub fn techniques(&self, framework: Framework) -> impl Iterator<Item = &Technique> {
        self.techniques.iter().filter(move |t| t.framework == framework)
    }

    /// Any technique with this id (case-insensitive), whatever its status.
    pub fn get(&self, id: &str) -> Option<&Technique> {
        self.by_id.get(&id.trim().to_ascii_uppercase()).map(|&index| &self.techniques[index])
    }

    /// The technique, if it is one to use (active).
    pub fn validate(&self, id: &str) -> Result<&Technique, TechniqueError> {
        let technique = self.get(id).ok_or_else(|| TechniqueError::Unknown(id.to_owned()))?;
        match technique.status {
            TechniqueStatus::Active => Ok(technique),
            TechniqueStatus::Revoked => Err(TechniqueError::Revoked {
                id: technique.id.clone(),
                name: technique.name.clone(),
                replaced_by: technique.replaced_by.clone(),
            }),
            TechniqueStatus::Deprecated => Err(TechniqueError::Deprecated { id: technique.id.clone(), name: technique.name.clone() }),
        }
    }

    pub fn tactic(&self, id: &str) -> Option<&Tactic> {
        self.tactics.iter().find(|t| t.id.eq_ignore_ascii_case(id.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active(framework: Framework) -> Vec<&'static Technique> {
        Taxonomy::embedded().techniques(framework).filter(|t| t.status == TechniqueStatus::Active).collect()
    }

    /// Decision-chain entries name the taxonomy release (FR-CSM-001); it must be the embedded one.
    #[test]
    fn the_recorded_taxonomy_version_is_the_embedded_release() {
        let release = |table: &str| {
            table
                .lines()
                .find_map(|line| line.strip_prefix("# Source: ").and_then(|rest| rest.split("(version ").nth(1)))
                .and_then(|rest| rest.split(')').next())
                .map(str::to_owned)
        };
        let expected =
            format!("attack-enterprise-{}+atlas-{}", release(ATTACK_TABLE).unwrap_or_default(), release(ATLAS_TABLE).unwrap_or_default());
        assert_eq!(aluskort_core::graph_state::TAXONOMY_VERSION, expected);
    }

    #[test]
    fn attack_v18_1_counts_match_mitre() {
        let taxonomy = Taxonomy::embedded();
        assert_eq!(taxonomy.tactics(Framework::Attack).count(), 14);
        let techniques = active(Framework::Attack);
        assert_eq!(techniques.iter().filter(|t| !t.is_subtechnique()).count(), 216);
        assert_eq!(techniques.iter().filter(|t| t.is_subtechnique()).count(), 475);
        assert_eq!(taxonomy.techniques(Framework::Attack).count(), 835, "revoked and deprecated ones are kept, flagged");
    }

    #[test]
    fn atlas_v5_6_counts_match_mitre() {
        let taxonomy = Taxonomy::embedded();
        assert_eq!(taxonomy.tactics(Framework::Atlas).count(), 16);
        assert_eq!(active(Framework::Atlas).len(), 170);
        assert_eq!(active(Framework::Atlas).iter().filter(|t| t.is_subtechnique()).count(), 69);
    }

    #[test]
    fn every_technique_names_known_tactics_and_parents() {
        let taxonomy = Taxonomy::embedded();
        for technique in active(Framework::Attack).into_iter().chain(active(Framework::Atlas)) {
            assert!(!technique.name.is_empty(), "{}", technique.id);
            for tactic in &technique.tactics {
                assert!(taxonomy.tactic(tactic).is_some(), "{}: unknown tactic {tactic}", technique.id);
            }
            if let Some(parent) = &technique.parent {
                assert!(taxonomy.get(parent).is_some(), "{}: unknown parent {parent}", technique.id);
            }
        }
    }

    #[test]
    fn validation_names_the_technique_and_flags_retired_ones() {
        let taxonomy = Taxonomy::embedded();
        let technique = taxonomy.validate("t1059.001").expect("active");
        assert_eq!((technique.name.as_str(), technique.parent.as_deref()), ("PowerShell", Some("T1059")));
        assert_eq!(technique.tactics, vec!["TA0002"]);
        assert_eq!(taxonomy.validate("AML.T0051").expect("ATLAS").framework, Framework::Atlas);
        assert!(matches!(taxonomy.validate("T1002"), Err(TechniqueError::Revoked { .. })));
        assert_eq!(taxonomy.validate("T9999"), Err(TechniqueError::Unknown("T9999".to_owned())));
    }

    /// The committed table is what the script derives from the shared STIX bundle: same active ids,
    /// names and parents (regenerate with `scripts/gen_attack_table.py` when this fails).
    #[test]
    fn the_embedded_table_matches_the_stix_bundle() {
        let path = aluskort_testkit::shared_data("mitre/enterprise-attack-v18.1.json");
        let bundle: serde_json::Value = serde_json::from_slice(&std::fs::read(path).expect("bundle")).expect("JSON");
        let mut from_stix: Vec<(String, String)> = bundle["objects"]
            .as_array()
            .expect("objects")
            .iter()
            .filter(|o| o["type"] == "attack-pattern" && o["revoked"] != true && o["x_mitre_deprecated"] != true)
            .filter_map(|o| {
                let id =
                    o["external_references"].as_array()?.iter().find(|r| r["source_name"] == "mitre-attack")?["external_id"].as_str()?;
                Some((id.to_owned(), o["name"].as_str()?.split_whitespace().collect::<Vec<_>>().join(" ")))
            })
            .collect();
        from_stix.sort();
        let mut embedded: Vec<(String, String)> = active(Framework::Attack).iter().map(|t| (t.id.clone(), t.name.clone())).collect();
        embedded.sort();
        assert_eq!(embedded, from_stix);
    }
}
