//! Full imports of MITRE data (`aluskort knowledge import attack|atlas FILE`): what the compact
//! embedded table leaves out, namely descriptions, mitigations, groups, software and the `uses`
//! relationships with their procedure-example text, with revoked/deprecated flags.
//!
//! - ATT&CK: a STIX 2.x bundle (`enterprise-attack.json`): `attack-pattern`, `x-mitre-tactic`,
//!   `course-of-action`, `intrusion-set`, `malware`, `tool`, `relationship` (`uses`, `mitigates`,
//!   `subtechnique-of`, `revoked-by`).
//! - ATLAS: `ATLAS.yaml` (`matrices[].tactics/techniques/mitigations`).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::taxonomy::{Framework, TechniqueStatus};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    pub name: String,
    /// `technique`, `tactic`, `mitigation`, `group`, `malware`, `tool`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tactics: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    pub revoked: bool,
    pub deprecated: bool,
}

/// `source` (a group, software or mitigation id) relates to `technique`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relation {
    pub source: String,
    /// `uses` or `mitigates`.
    pub kind: String,
    pub technique: String,
    /// The procedure example or mitigation text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnowledgeImport {
    pub framework: String,
    pub version: String,
    pub entries: Vec<Entry>,
    pub relations: Vec<Relation>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("not an ATT&CK STIX bundle: {0}")]
    NotStix(String),
    #[error("not an ATLAS.yaml: {0}")]
    NotAtlas(String),
}

impl KnowledgeImport {
    pub fn count(&self, kind: &str) -> usize {
        self.entries.iter().filter(|e| e.kind == kind && !e.revoked && !e.deprecated).count()
    }

    pub fn entry(&self, id: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.id.eq_ignore_ascii_case(id))
    }

    pub fn relations_of(&self, technique: &str) -> impl Iterator<Item = &Relation> {
        self.relations.iter().filter(move |r| r.technique.eq_ignore_ascii_case(technique))
    }

    pub fn status(entry: &Entry) -> TechniqueStatus {
        if entry.revoked {
            TechniqueStatus::Revoked
        } else if entry.deprecated {
            TechniqueStatus::Deprecated
        } else {
            TechniqueStatus::Active
        }
    }

    pub fn framework(&self) -> Framework {
        if self.framework == "atlas" { Framework::Atlas } else { Framework::Attack }
    }

    pub fn from_stix(bundle: &Value) -> Result<Self, ImportError> {
        let objects = bundle.get("objects").and_then(Value::as_array).ok_or_else(|| ImportError::NotStix("no objects array".to_owned()))?;
        let text = |object: &Value, key: &str| object.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
        let mut by_ref: HashMap<&str, String> = HashMap::new();
        let mut tactic_ids: HashMap<String, String> = HashMap::new();
        for object in objects {
            if let (Some(stix), Some(id)) = (object.get("id").and_then(Value::as_str), crate::stix::external_id(object)) {
                by_ref.insert(stix, id.to_owned());
            }
            if object.get("type").and_then(Value::as_str) == Some("x-mitre-tactic")
                && let Some(id) = crate::stix::external_id(object)
            {
                tactic_ids.insert(text(object, "x_mitre_shortname"), id.to_owned());
            }
        }
        let mut entries = Vec::new();
        let mut version = String::new();
        for object in objects {
            let kind = match object.get("type").and_then(Value::as_str) {
                Some("attack-pattern") => "technique",
                Some("x-mitre-tactic") => "tactic",
                Some("course-of-action") => "mitigation",
                Some("intrusion-set") => "group",
                Some("malware") => "malware",
                Some("tool") => "tool",
                Some("x-mitre-collection") => {
                    version = text(object, "x_mitre_version");
                    continue;
                }
                _ => continue,
            };
            let Some(id) = crate::stix::external_id(object) else { continue };
            let tactics = crate::stix::phase_names(object).filter_map(|p| tactic_ids.get(p).cloned()).collect();
            let aliases = object
                .get("aliases")
                .or_else(|| object.get("x_mitre_aliases"))
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default();
            entries.push(Entry {
                id: id.to_owned(),
                name: text(object, "name"),
                kind: kind.to_owned(),
                description: text(object, "description"),
                tactics,
                parent: (kind == "technique" && id.contains('.')).then(|| id.split('.').next().unwrap_or(id).to_owned()),
                aliases,
                revoked: object.get("revoked").and_then(Value::as_bool) == Some(true),
                deprecated: object.get("x_mitre_deprecated").and_then(Value::as_bool) == Some(true),
            });
        }
        let mut relations = Vec::new();
        for relation in objects.iter().filter(|o| o.get("type").and_then(Value::as_str) == Some("relationship")) {
            let kind = text(relation, "relationship_type");
            if kind != "uses" && kind != "mitigates" {
                continue;
            }
            let (Some(source), Some(target)) = (
                relation.get("source_ref").and_then(Value::as_str).and_then(|r| by_ref.get(r)),
                relation.get("target_ref").and_then(Value::as_str).and_then(|r| by_ref.get(r)),
            ) else {
                continue;
            };
            if !target.starts_with('T') {
                continue;
            }
            relations.push(Relation { source: source.clone(), kind, technique: target.clone(), text: text(relation, "description") });
        }
        if entries.is_empty() {
            return Err(ImportError::NotStix("no ATT&CK objects with mitre-attack ids".to_owned()));
        }
        if version.is_empty() {
            // Bundles cut from mitre/cti carry no collection object; the spec version is all there is.
            version = format!("unknown (STIX {})", bundle.get("spec_version").and_then(Value::as_str).unwrap_or("2.x"));
        }
        Ok(KnowledgeImport { framework: "attack".to_owned(), version, entries, relations })
    }

    pub fn from_atlas_yaml(text: &str) -> Result<Self, ImportError> {
        let data: Value = serde_norway::from_str(text).map_err(|error| ImportError::NotAtlas(error.to_string()))?;
        let matrices = data.get("matrices").and_then(Value::as_array).ok_or_else(|| ImportError::NotAtlas("no matrices".to_owned()))?;
        let string = |object: &Value, key: &str| object.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
        let mut entries = Vec::new();
        let mut relations = Vec::new();
        for matrix in matrices {
            for (key, kind) in [("tactics", "tactic"), ("techniques", "technique"), ("mitigations", "mitigation")] {
                for object in matrix.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() {
                    let id = string(object, "id");
                    if id.is_empty() {
                        continue;
                    }
                    entries.push(Entry {
                        id: id.clone(),
                        name: string(object, "name"),
                        kind: kind.to_owned(),
                        description: string(object, "description"),
                        tactics: object
                            .get("tactics")
                            .and_then(Value::as_array)
                            .map(|t| t.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                            .unwrap_or_default(),
                        parent: object.get("subtechnique-of").and_then(Value::as_str).map(str::to_owned),
                        aliases: Vec::new(),
                        revoked: false,
                        deprecated: false,
                    });
                    if kind == "mitigation" {
                        for technique in object.get("techniques").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() {
                            let (technique_id, use_text) = match technique {
                                Value::String(id) => (id.clone(), String::new()),
                                other => (string(other, "id"), string(other, "use")),
                            };
                            if !technique_id.is_empty() {
                                relations.push(Relation {
                                    source: id.clone(),
                                    kind: "mitigates".to_owned(),
                                    technique: technique_id,
                                    text: use_text,
                                });
                            }
                        }
                    }
                }
            }
        }
        if entries.is_empty() {
            return Err(ImportError::NotAtlas("no tactics or techniques".to_owned()));
        }
        Ok(KnowledgeImport { framework: "atlas".to_owned(), version: string(&data, "version"), entries, relations })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts of the shared v18.1 bundle and ATLAS v5.6.0 (../shared/data/README.md).
    #[test]
    fn imports_every_object_kind_with_relationships() {
        let path = aluskort_testkit::shared_data("mitre/enterprise-attack-v18.1.json");
        let bundle: Value = serde_json::from_slice(&std::fs::read(path).expect("bundle")).expect("JSON");
        let attack = KnowledgeImport::from_stix(&bundle).expect("import");
        assert_eq!(attack.count("tactic"), 14);
        assert_eq!(attack.entries.iter().filter(|e| e.kind == "technique").count(), 835, "retired ones kept, flagged");
        assert_eq!(attack.count("technique"), 691);
        assert!(attack.count("mitigation") > 0 && attack.count("group") > 0 && attack.count("malware") > 0 && attack.count("tool") > 0);
        let powershell: Vec<&Relation> = attack.relations_of("T1059.001").filter(|r| r.kind == "uses").collect();
        assert!(powershell.len() > 50 && powershell.iter().all(|r| !r.text.is_empty()), "procedure examples with text");
        assert!(attack.relations_of("T1059.001").any(|r| r.kind == "mitigates" && r.source.starts_with('M')));

        let atlas_text = std::fs::read_to_string(aluskort_testkit::shared_data("mitre/ATLAS.yaml")).expect("atlas");
        let atlas = KnowledgeImport::from_atlas_yaml(&atlas_text).expect("import");
        assert_eq!((atlas.version.as_str(), atlas.count("tactic"), atlas.count("technique")), ("5.6.0", 16, 170));
        assert_eq!(atlas.entries.iter().filter(|e| e.parent.is_some()).count(), 69);
        assert!(KnowledgeImport::from_atlas_yaml("not: [an, atlas]").is_err());
    }
}
