//! Context assembly for a model call (FR-RAG-*): retrieved snippets ranked by score, de-duplicated,
//! fitted to the tier's token budget (decisions table: tier 0 4,096; tier 1 8,192; tier 1+ 16,384;
//! tier 2 16,384 tokens of retrieved context), each keeping its source for attribution.
//!
//! Tokens are estimated as one per four characters (rounded up), the usual rule for English with
//! BPE tokenizers; the budget is a ceiling, so the estimate errs on the long side for prose.

/// Model tiers of the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Tier0,
    Tier1,
    Tier1Plus,
    Tier2,
}

impl Tier {
    pub fn context_budget(self) -> usize {
        match self {
            Tier::Tier0 => 4_096,
            Tier::Tier1 => 8_192,
            Tier::Tier1Plus | Tier::Tier2 => 16_384,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Snippet {
    /// Where it came from: `report:<id>#<chunk>`, `incident:<id>`, `attack:<technique>`, ...
    pub source: String,
    pub text: String,
    pub score: f64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Assembled {
    /// Kept snippets, best first.
    pub snippets: Vec<Snippet>,
    pub tokens: usize,
    /// Left out for the budget.
    pub over_budget: usize,
    /// Left out as repeats of a better-scored snippet.
    pub duplicates: usize,
}

pub fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(4)
}

fn normalised(text: &str) -> String {
    text.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>().join(" ")
}

/// Best-scored snippets that fit `budget` tokens; a snippet whose text equals or is contained in
/// an already kept one is a duplicate. A snippet too large for what is left is skipped and smaller
/// ones after it may still fit.
pub fn assemble(mut candidates: Vec<Snippet>, budget: usize) -> Assembled {
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.source.cmp(&b.source)));
    let mut out = Assembled::default();
    let mut kept_texts: Vec<String> = Vec::new();
    for snippet in candidates {
        let text = normalised(&snippet.text);
        if text.is_empty() || kept_texts.iter().any(|kept| kept.contains(&text)) {
            out.duplicates += 1;
            continue;
        }
        let tokens = estimate_tokens(&snippet.text);
        if out.tokens + tokens > budget {
            out.over_budget += 1;
            continue;
        }
        out.tokens += tokens;
        kept_texts.push(text);
        out.snippets.push(snippet);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snippet(source: &str, text: &str, score: f64) -> Snippet {
        Snippet { source: source.to_owned(), text: text.to_owned(), score }
    }

    #[test]
    fn keeps_the_best_within_budget_without_repeats() {
        let candidates = vec![
            snippet("report:r1#0", &"a".repeat(400), 0.9),
            snippet("report:r2#3", "APT29 used   PowerShell", 0.95),
            snippet("incident:I-7", "apt29 used powershell", 0.5),
            snippet("report:r3#1", &"b".repeat(40_000), 0.8),
            snippet("attack:T1059.001", "PowerShell: adversaries may abuse PowerShell", 0.7),
        ];
        let assembled = assemble(candidates, Tier::Tier0.context_budget());
        let sources: Vec<&str> = assembled.snippets.iter().map(|s| s.source.as_str()).collect();
        assert_eq!(sources, vec!["report:r2#3", "report:r1#0", "attack:T1059.001"]);
        assert_eq!((assembled.duplicates, assembled.over_budget), (1, 1));
        assert!(assembled.tokens <= 4_096);
        assert_eq!(Tier::Tier2.context_budget(), 16_384);
        assert_eq!(estimate_tokens("abcde"), 2);
    }
}
