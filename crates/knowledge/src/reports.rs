//! Threat-intelligence reports (FR-RAG-*, FR-ENR-007): section-aware chunks for retrieval, and a
//! reverse index from each indicator to the reports (and chunks) that mention it, for exact-match
//! enrichment of an alert's IOCs.
//!
//! Tokens here are whitespace-separated words, a stable stand-in for model tokens (an English word
//! is ~1.3 BPE tokens, so a 512-word chunk stays within common 1,024-token embedding limits).
//! Chunks never cross a Markdown heading; paragraphs of one section are packed up to
//! [`CHUNK_TOKENS`], a longer paragraph is cut into windows overlapping by [`OVERLAP_TOKENS`].

use std::collections::{BTreeMap, BTreeSet};

use aluskort_core::Ioc;
use serde::{Deserialize, Serialize};

pub const CHUNK_TOKENS: usize = 512;
pub const OVERLAP_TOKENS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// The heading path the chunk sits under (`Report > Infrastructure`), empty before any heading.
    pub section: String,
    pub text: String,
    pub tokens: usize,
}

/// Splits `text` into chunks of at most `max` tokens, overlapping by `overlap` inside long paragraphs.
pub fn chunk(text: &str, max: usize, overlap: usize) -> Vec<Chunk> {
    let max = max.max(1);
    let overlap = overlap.min(max.saturating_sub(1));
    let mut chunks = Vec::new();
    let mut headings: Vec<(usize, String)> = Vec::new();
    let mut section_paragraphs: Vec<Vec<&str>> = Vec::new();
    let mut paragraph: Vec<&str> = Vec::new();
    let flush_section = |headings: &[(usize, String)], paragraphs: &mut Vec<Vec<&str>>, chunks: &mut Vec<Chunk>| {
        let section = headings.iter().map(|(_, h)| h.as_str()).collect::<Vec<_>>().join(" > ");
        let mut current: Vec<&str> = Vec::new();
        for words in paragraphs.drain(..) {
            if words.len() > max {
                if !current.is_empty() {
                    chunks.push(make(&section, &current));
                    current.clear();
                }
                let step = max - overlap;
                let mut start = 0;
                loop {
                    let end = (start + max).min(words.len());
                    chunks.push(make(&section, &words[start..end]));
                    if end == words.len() {
                        break;
                    }
                    start += step;
                }
            } else if current.len() + words.len() > max {
                chunks.push(make(&section, &current));
                current = words;
            } else {
                current.extend(words);
            }
        }
        if !current.is_empty() {
            chunks.push(make(&section, &current));
        }
    };
    for line in text.lines() {
        let trimmed = line.trim();
        let level = trimmed.chars().take_while(|c| *c == '#').count();
        if (1..=6).contains(&level) && trimmed[level..].starts_with(' ') {
            if !paragraph.is_empty() {
                section_paragraphs.push(std::mem::take(&mut paragraph));
            }
            flush_section(&headings, &mut section_paragraphs, &mut chunks);
            headings.retain(|(l, _)| *l < level);
            headings.push((level, trimmed[level..].trim().to_owned()));
        } else if trimmed.is_empty() {
            if !paragraph.is_empty() {
                section_paragraphs.push(std::mem::take(&mut paragraph));
            }
        } else {
            paragraph.extend(trimmed.split_whitespace());
        }
    }
    if !paragraph.is_empty() {
        section_paragraphs.push(paragraph);
    }
    flush_section(&headings, &mut section_paragraphs, &mut chunks);
    chunks
}

fn make(section: &str, words: &[&str]) -> Chunk {
    Chunk { section: section.to_owned(), text: words.join(" "), tokens: words.len() }
}

/// A report as stored: its chunks and the indicators each mentions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub id: String,
    pub title: String,
    pub chunks: Vec<Chunk>,
    /// Indicators per chunk (same order as `chunks`).
    pub chunk_iocs: Vec<Vec<Ioc>>,
}

impl Report {
    pub fn new(id: &str, title: &str, text: &str) -> Self {
        let chunks = chunk(text, CHUNK_TOKENS, OVERLAP_TOKENS);
        let chunk_iocs = chunks.iter().map(|c| aluskort_extract::extract_iocs(&c.text)).collect();
        Report { id: id.to_owned(), title: title.to_owned(), chunks, chunk_iocs }
    }
}

/// Where an indicator was seen.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mention {
    pub report_id: String,
    pub chunk: usize,
}

/// Indicator → mentions, exact (canonical values: `Ioc` holds only canonical forms, so a defanged
/// `evil[.]com` in a report matches `evil.com` in an alert).
#[derive(Debug, Default)]
pub struct ReportIndex {
    reports: BTreeMap<String, Report>,
    by_ioc: BTreeMap<Ioc, BTreeSet<Mention>>,
}

impl ReportIndex {
    /// Adds or replaces a report.
    pub fn add(&mut self, report: Report) {
        self.remove(&report.id.clone());
        for (index, iocs) in report.chunk_iocs.iter().enumerate() {
            for ioc in iocs {
                self.by_ioc.entry(ioc.clone()).or_default().insert(Mention { report_id: report.id.clone(), chunk: index });
            }
        }
        self.reports.insert(report.id.clone(), report);
    }

    pub fn remove(&mut self, id: &str) {
        if self.reports.remove(id).is_some() {
            self.by_ioc.values_mut().for_each(|mentions| mentions.retain(|m| m.report_id != id));
            self.by_ioc.retain(|_, mentions| !mentions.is_empty());
        }
    }

    /// Every mention of `ioc`, by report then chunk.
    pub fn lookup(&self, ioc: &Ioc) -> Vec<&Mention> {
        self.by_ioc.get(ioc).map(|m| m.iter().collect()).unwrap_or_default()
    }

    pub fn report(&self, id: &str) -> Option<&Report> {
        self.reports.get(id)
    }

    pub fn reports(&self) -> impl Iterator<Item = &Report> {
        self.reports.values()
    }

    /// Loads the reports written from [`ReportIndex::to_jsonl`] (one JSON report a line); a missing file is
    /// an empty index, an unreadable line an error naming it.
    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let mut index = ReportIndex::default();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(index),
            Err(error) => return Err(format!("{}: {error}", path.display())),
        };
        for (number, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let report: Report = serde_json::from_str(line).map_err(|error| format!("{}:{}: {error}", path.display(), number + 1))?;
            index.add(report);
        }
        Ok(index)
    }

    /// Every report, one JSON line each: what [`ReportIndex::load`] reads back.
    pub fn to_jsonl(&self) -> Result<String, serde_json::Error> {
        let mut out = String::new();
        for report in self.reports.values() {
            out.push_str(&serde_json::to_string(report)?);
            out.push('\n');
        }
        Ok(out)
    }

    /// Exact matches of `iocs` (FR-ENR-007): each indicator with the reports and sections naming it.
    pub fn matches(&self, iocs: &[Ioc]) -> Vec<IocMatch> {
        let mut out = Vec::new();
        for ioc in iocs {
            for mention in self.lookup(ioc) {
                if let Some(report) = self.reports.get(&mention.report_id) {
                    out.push(IocMatch {
                        ioc: ioc.clone(),
                        report_id: report.id.clone(),
                        title: report.title.clone(),
                        section: report.chunks.get(mention.chunk).map(|c| c.section.clone()).unwrap_or_default(),
                    });
                }
            }
        }
        out
    }
}

/// One indicator found in one report section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IocMatch {
    pub ioc: Ioc,
    pub report_id: String,
    pub title: String,
    pub section: String,
}

#[cfg(test)]
mod tests {
    use aluskort_core::IocType;

    use super::*;

    #[test]
    fn chunks_follow_sections_and_overlap_inside_long_paragraphs() {
        let long: String = (0..1_000).map(|i| format!("w{i} ")).collect();
        let text = format!("# Report\nintro words here\n\n## Infrastructure\n{long}\n\n## Tooling\nshort tail\n");
        let chunks = chunk(&text, CHUNK_TOKENS, OVERLAP_TOKENS);
        let sections: Vec<&str> = chunks.iter().map(|c| c.section.as_str()).collect();
        assert_eq!(
            sections,
            vec!["Report", "Report > Infrastructure", "Report > Infrastructure", "Report > Infrastructure", "Report > Tooling"]
        );
        assert_eq!(chunks[1].tokens, 512);
        assert!(chunks[2].text.starts_with("w448 "), "the second window starts 64 words before the first ends");
        assert!(chunks.iter().all(|c| c.tokens <= CHUNK_TOKENS));
        assert_eq!(chunks[3].text.split_whitespace().last(), Some("w999"), "nothing lost at the end");
    }

    #[test]
    fn indicators_map_back_to_reports_and_chunks() {
        let mut index = ReportIndex::default();
        index.add(Report::new("r1", "Campaign X", "# C2\nBeacons to update-check[.]sync-cdn[.]net and 203.0.113.77.\n"));
        index.add(Report::new("r2", "Campaign Y", "# Delivery\nPayload from hxxp://203.0.113.77/x.bin\n"));
        let ip = Ioc::parse(IocType::Ipv4, "203.0.113.77").expect("ip");
        let reports: Vec<&str> = index.lookup(&ip).iter().map(|m| m.report_id.as_str()).collect();
        assert_eq!(reports, vec!["r1", "r2"]);
        let domain = Ioc::parse(IocType::Domain, "update-check.sync-cdn.net").expect("domain");
        assert_eq!(index.lookup(&domain).len(), 1, "defanged in the report, canonical in the lookup");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("reports.jsonl");
        std::fs::write(&path, index.to_jsonl().expect("serialises")).expect("save");
        let loaded = ReportIndex::load(&path).expect("load");
        let matches = loaded.matches(std::slice::from_ref(&ip));
        assert_eq!(
            matches.iter().map(|m| (m.report_id.as_str(), m.section.as_str())).collect::<Vec<_>>(),
            vec![("r1", "C2"), ("r2", "Delivery")]
        );
        index.add(Report::new("r1", "Campaign X v2", "# C2\nnothing here now\n"));
        assert_eq!(
            index.lookup(&ip).iter().map(|m| m.report_id.as_str()).collect::<Vec<_>>(),
            vec!["r2"],
            "a replaced report leaves the index"
        );
    }
}
