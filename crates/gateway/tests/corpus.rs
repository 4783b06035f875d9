//! Detection and false-positive rates of the injection screen (issue 6, NFR-SEC-002) on the
//! red-team corpus (`scripts/gen_redteam_corpus.py`) and on benign security text read in place:
//! ATT&CK technique descriptions and procedure examples, ATLAS technique descriptions (which
//! discuss prompt injection at length) and the real Sentinel alert descriptions.

use std::collections::BTreeMap;

use aluskort_gateway::{Verdict, screen};
use serde_json::Value;

fn benign_texts() -> Vec<(String, String)> {
    let mut texts = Vec::new();
    let bundle: Value =
        serde_json::from_slice(&std::fs::read(aluskort_testkit::shared_data("mitre/enterprise-attack-v18.1.json")).expect("bundle"))
            .expect("JSON");
    for object in bundle["objects"].as_array().expect("objects") {
        let keep = match object["type"].as_str() {
            Some("attack-pattern") => object["revoked"] != true,
            Some("relationship") => object["relationship_type"] == "uses",
            _ => false,
        };
        if keep && let Some(text) = object["description"].as_str() {
            texts.push(("attack".to_owned(), text.to_owned()));
        }
    }
    let atlas = std::fs::read_to_string(aluskort_testkit::shared_data("mitre/ATLAS.yaml")).expect("atlas");
    // Descriptions are `description: ...` scalars or `|-` blocks; a line-level read is enough here.
    let mut block: Option<String> = None;
    for line in atlas.lines() {
        if let Some(text) = block.as_mut() {
            if line.starts_with("      ") || line.trim().is_empty() {
                text.push(' ');
                text.push_str(line.trim());
                continue;
            }
            texts.push(("atlas".to_owned(), block.take().unwrap_or_default()));
        }
        if let Some(rest) = line.trim_start().strip_prefix("description: ") {
            if rest.starts_with('|') || rest.starts_with('>') {
                block = Some(String::new());
            } else {
                texts.push(("atlas".to_owned(), rest.trim_matches(['\'', '"']).to_owned()));
            }
        }
    }
    let alerts = std::fs::read_to_string(aluskort_testkit::sentinel_alerts_path()).expect("alerts");
    for line in alerts.lines() {
        let row: Value = serde_json::from_str(line).expect("row");
        if let Some(text) = row["Description"].as_str() {
            texts.push(("sentinel".to_owned(), text.to_owned()));
        }
    }
    texts
}

#[test]
fn detection_and_false_positive_rates() {
    let corpus = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/redteam.jsonl")).expect("corpus");
    let mut by_category: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut benign_flagged = 0;
    let mut benign_total = 0;
    let mut missed = Vec::new();
    for line in corpus.lines() {
        let case: Value = serde_json::from_str(line).expect("case");
        let text = case["text"].as_str().expect("text");
        let verdict = screen(text).verdict;
        if case["label"] == "malicious" {
            let entry = by_category.entry(case["category"].as_str().expect("category").to_owned()).or_default();
            entry.1 += 1;
            if verdict != Verdict::Benign {
                entry.0 += 1;
            } else {
                missed.push(text.to_owned());
            }
        } else {
            benign_total += 1;
            benign_flagged += usize::from(verdict != Verdict::Benign);
        }
    }
    let mut flagged_by_source: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (source, text) in benign_texts() {
        let entry = flagged_by_source.entry(source).or_default();
        entry.1 += 1;
        if screen(&text).verdict != Verdict::Benign {
            entry.0 += 1;
        }
    }
    let caught: usize = by_category.values().map(|(c, _)| c).sum();
    let total: usize = by_category.values().map(|(_, t)| t).sum();
    let detection = caught as f64 / total as f64;
    let flagged: usize = flagged_by_source.values().map(|(f, _)| f).sum::<usize>() + benign_flagged;
    let benign: usize = flagged_by_source.values().map(|(_, t)| t).sum::<usize>() + benign_total;
    let false_positive = flagged as f64 / benign as f64;
    eprintln!("malicious: {caught}/{total} caught ({detection:.3}); by category: {by_category:?}");
    eprintln!(
        "benign: {flagged}/{benign} flagged ({false_positive:.4}); corpus {benign_flagged}/{benign_total}, shared: {flagged_by_source:?}"
    );
    for text in missed.iter().take(10) {
        eprintln!("missed: {text:?}");
    }
    assert!(total >= 200 && by_category.len() >= 7, "corpus size: {total} in {} categories", by_category.len());
    assert!(benign >= 200, "benign texts: {benign}");
    assert!(detection >= 0.95, "detection {detection:.3} below the 95% target");
    assert!(false_positive <= 0.02, "false positives {false_positive:.4} above the 2% target");
}
