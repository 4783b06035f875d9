//! `aluskort attack suggest|eval` and `aluskort knowledge import attack FILE`.
//!
//! The suggestion model is built from an ATT&CK STIX bundle at start (a second or two in release).
//! The bundle is found, in order: `--bundle FILE`; `<data_dir>/knowledge/enterprise-attack.json`
//! (written by `knowledge import attack`); `$ALUSKORT_ATTACK_BUNDLE`; and
//! `../shared/data/mitre/enterprise-attack-v18.1.json` next to the working directory.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aluskort_knowledge::import::KnowledgeImport;
use aluskort_knowledge::reports::{Report, ReportIndex};
use aluskort_knowledge::suggest::{Accuracy, Corpus};
use anyhow::Context;
use serde_json::{Value, json};

use crate::commands::{answer_jsonl, read_input};

/// Where `knowledge import attack` keeps the bundle (the suggester reads it from here too).
pub const IMPORTED: &str = "knowledge/enterprise-attack.json";

fn bundle_path(explicit: Option<&Path>, data_dir: &Path, env: &HashMap<String, String>) -> anyhow::Result<PathBuf> {
    let candidates: Vec<PathBuf> = explicit
        .map(Path::to_path_buf)
        .into_iter()
        .chain(std::iter::once(data_dir.join(IMPORTED)))
        .chain(env.get("ALUSKORT_ATTACK_BUNDLE").map(PathBuf::from))
        .chain(std::iter::once(PathBuf::from("../shared/data/mitre/enterprise-attack-v18.1.json")))
        .collect();
    if let Some(path) = explicit {
        anyhow::ensure!(path.is_file(), "--bundle {}: no such file", path.display());
    }
    candidates.into_iter().find(|path| path.is_file()).with_context(|| {
        format!(
            "no ATT&CK STIX bundle found: run `aluskort knowledge import attack enterprise-attack.json` (writes {}), \
             pass --bundle FILE, or set ALUSKORT_ATTACK_BUNDLE",
            data_dir.join(IMPORTED).display()
        )
    })
}

pub fn load(path: &Path, hold_out: bool) -> anyhow::Result<Corpus> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let bundle: Value = serde_json::from_slice(&bytes).with_context(|| format!("{} is not JSON", path.display()))?;
    Corpus::from_stix(&bundle, hold_out).with_context(|| format!("{}", path.display()))
}

pub fn suggest(
    data_dir: &Path,
    env: &HashMap<String, String>,
    bundle: Option<&Path>,
    input: Option<&Path>,
    top: usize,
    jsonl: bool,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!((1..=100).contains(&top), "--top {top}: must be 1..=100");
    let corpus = load(&bundle_path(bundle, data_dir, env)?, false)?;
    let (name, bytes) = read_input(input.unwrap_or(Path::new("-")))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if !jsonl {
        let text = String::from_utf8_lossy(&bytes);
        for suggestion in corpus.suggest(&text, top) {
            writeln!(out, "{}", json!({"id": suggestion.id, "name": suggestion.name, "score": suggestion.score}))?;
        }
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    drop(out);
    answer_jsonl(&name, &bytes, |id, text| {
        let techniques: Vec<Value> = corpus.suggest(text, top).into_iter().map(|s| json!({"id": s.id, "score": s.score})).collect();
        json!({"id": id, "techniques": techniques})
    })
}

pub fn eval(data_dir: &Path, env: &HashMap<String, String>, bundle: Option<&Path>, embedder: bool) -> anyhow::Result<ExitCode> {
    let path = bundle_path(bundle, data_dir, env)?;
    let corpus = load(&path, true)?;
    let accuracy = corpus.evaluate();
    let total = accuracy.examples;
    println!(
        "{}: {} techniques; {total} held-out procedure examples (1 in 5 by relationship id, not indexed): \
         top-1 {:.3}, top-3 {:.3}, top-5 {:.3}",
        path.display(),
        corpus.techniques().len(),
        Accuracy::rate(accuracy.top1, total),
        Accuracy::rate(accuracy.top3, total),
        Accuracy::rate(accuracy.top5, total)
    );
    if !embedder {
        return Ok(ExitCode::SUCCESS);
    }
    // The built-in embedder on the same split (nearest indexed examples vote): how good incident
    // memory's default vectors are at telling techniques apart.
    let embedder = aluskort_knowledge::embed::HashingEmbedder::default();
    let embedded = aluskort_knowledge::suggest::evaluate_embedder(&corpus, &|text| embedder.embed_one(text), 500);
    println!(
        "built-in hashing embedder (kNN over indexed examples, {} sampled held-out examples): top-1 {:.3}, top-3 {:.3}, top-5 {:.3}",
        embedded.examples,
        Accuracy::rate(embedded.top1, embedded.examples),
        Accuracy::rate(embedded.top3, embedded.examples),
        Accuracy::rate(embedded.top5, embedded.examples)
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes `bytes` to `target` through a temporary file and a rename (never half-written).
fn write_atomically(target: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let partial = target.with_extension("partial");
    std::fs::write(&partial, bytes).with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, target).with_context(|| format!("cannot move {} into place", partial.display()))?;
    Ok(())
}

fn import_path(data_dir: &Path, framework: &str) -> PathBuf {
    data_dir.join(format!("knowledge/{framework}.import.json"))
}

/// `knowledge import attack|atlas FILE`: validates the file, stores the full import (and, for
/// ATT&CK, the bundle the suggestion model is built from) under the data directory.
pub fn import(data_dir: &Path, kind: &str, file: &Path) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let import = match kind {
        "attack" => {
            let bundle: Value = serde_json::from_slice(&bytes).with_context(|| format!("{} is not JSON", file.display()))?;
            let import = KnowledgeImport::from_stix(&bundle).with_context(|| format!("{}", file.display()))?;
            write_atomically(&data_dir.join(IMPORTED), &bytes)?;
            import
        }
        "atlas" => {
            let text = String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8", file.display()))?;
            KnowledgeImport::from_atlas_yaml(&text).with_context(|| format!("{}", file.display()))?
        }
        other => anyhow::bail!("unknown import kind {other:?} (expected attack or atlas)"),
    };
    write_atomically(&import_path(data_dir, kind), &serde_json::to_vec(&import)?)?;
    let retired = import.entries.iter().filter(|e| e.kind == "technique" && (e.revoked || e.deprecated)).count();
    println!(
        "imported {kind} {} from {}: {} tactics, {} active techniques ({retired} revoked/deprecated kept, flagged), {} mitigations, {} groups, {} software, {} relationships",
        import.version,
        file.display(),
        import.count("tactic"),
        import.count("technique"),
        import.count("mitigation"),
        import.count("group"),
        import.count("malware") + import.count("tool"),
        import.relations.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// Where imported threat-intel reports live.
pub fn reports_path(data_dir: &Path) -> PathBuf {
    data_dir.join("knowledge/reports.jsonl")
}

/// `knowledge import report FILE...`: each text/Markdown file becomes a report (id = file name,
/// title = its first heading or the file name), chunked and indexed by indicator; a report with
/// the same id is replaced.
pub fn import_reports(data_dir: &Path, files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let path = reports_path(data_dir);
    let mut index = ReportIndex::load(&path).map_err(|e| anyhow::anyhow!(e))?;
    for file in files {
        let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {} as UTF-8 text", file.display()))?;
        let id = file.file_name().map_or_else(|| file.display().to_string(), |n| n.to_string_lossy().into_owned());
        let title = text
            .lines()
            .find_map(|line| line.trim().strip_prefix('#').map(|h| h.trim_start_matches('#').trim().to_owned()))
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| id.clone());
        let report = Report::new(&id, &title, &text);
        let indicators: std::collections::BTreeSet<_> = report.chunk_iocs.iter().flatten().collect();
        println!("{id}: {:?}, {} chunk(s), {} indicator(s)", title, report.chunks.len(), indicators.len());
        index.add(report);
    }
    write_atomically(&path, index.to_jsonl()?.as_bytes())?;
    println!("{} report(s) in {}", index.reports().count(), path.display());
    Ok(ExitCode::SUCCESS)
}

/// `knowledge lookup TEXT`: the reports naming the indicators found in `TEXT` (defanged is fine).
pub fn lookup(data_dir: &Path, text: &str) -> anyhow::Result<ExitCode> {
    let index = ReportIndex::load(&reports_path(data_dir)).map_err(|e| anyhow::anyhow!(e))?;
    let iocs = aluskort_extract::extract_iocs(text);
    anyhow::ensure!(!iocs.is_empty(), "no indicator found in {text:?}");
    let matches = index.matches(&iocs);
    for found in &matches {
        println!("{}", json!({"ioc": found.ioc, "report_id": found.report_id, "title": found.title, "section": found.section}));
    }
    if matches.is_empty() {
        eprintln!("no imported report names {}", iocs.iter().map(|i| i.value().to_owned()).collect::<Vec<_>>().join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

/// `knowledge show ID`: a technique as the embedded table and the imports know it.
pub fn show(data_dir: &Path, id: &str) -> anyhow::Result<ExitCode> {
    let taxonomy = aluskort_knowledge::Taxonomy::embedded();
    let Some(technique) = taxonomy.get(id) else {
        eprintln!("error: {}", aluskort_knowledge::TechniqueError::Unknown(id.to_owned()));
        return Ok(ExitCode::from(1));
    };
    let tactics: Vec<String> = technique
        .tactics
        .iter()
        .map(|t| taxonomy.tactic(t).map_or_else(|| t.clone(), |tactic| format!("{} ({})", tactic.name, tactic.id)))
        .collect();
    println!("{} {} [{:?}]", technique.id, technique.name, technique.status);
    println!("  tactics: {}", if tactics.is_empty() { "-".to_owned() } else { tactics.join(", ") });
    if let Some(parent) = &technique.parent {
        println!("  sub-technique of {parent} {}", taxonomy.get(parent).map(|p| p.name.as_str()).unwrap_or_default());
    }
    let framework = match technique.framework {
        aluskort_knowledge::Framework::Attack => "attack",
        aluskort_knowledge::Framework::Atlas => "atlas",
    };
    let path = import_path(data_dir, framework);
    if !path.is_file() {
        println!("  (run `aluskort knowledge import {framework} FILE` for descriptions, mitigations and procedure examples)");
        return Ok(ExitCode::SUCCESS);
    }
    let import: KnowledgeImport =
        serde_json::from_slice(&std::fs::read(&path)?).with_context(|| format!("{} is unreadable", path.display()))?;
    let name_of = |id: &str| import.entry(id).map(|e| e.name.clone()).unwrap_or_default();
    let mitigations: Vec<String> = import
        .relations_of(&technique.id)
        .filter(|r| r.kind == "mitigates")
        .map(|r| format!("{} {}", r.source, name_of(&r.source)))
        .collect();
    let users: Vec<&aluskort_knowledge::import::Relation> = import.relations_of(&technique.id).filter(|r| r.kind == "uses").collect();
    println!("  mitigations: {}", if mitigations.is_empty() { "-".to_owned() } else { mitigations.join("; ") });
    println!("  procedure examples: {}", users.len());
    for relation in users.iter().take(3) {
        println!("    {} {}: {}", relation.source, name_of(&relation.source), relation.text.chars().take(160).collect::<String>());
    }
    Ok(ExitCode::SUCCESS)
}
