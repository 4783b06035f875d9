//! False-positive pattern matching (FR-RSN-006, FR-RAG-005; REQUIREMENTS "FP match score").
//!
//! A pattern scores an alert as `(name + matched / total) / 2`, where `name` is 1 when its
//! `alert_name_regex` matches the alert's name (else 0) and `matched / total` is the share of its
//! entity patterns that some entity of the alert satisfies. A pattern without entity patterns
//! scores `name` alone; one without a name regex scores the entity share alone. An entity pattern of
//! type `ip` is a CIDR (or one address) that must contain the entity's address; any other type is a
//! regular expression searched for in the entity's value, ignoring case (anchor it with `^…$` to
//! match the whole value). The alert-name regex is matched as written (add `(?i)` to ignore case).
//!
//! The caller closes the alert without a model call only when the best score is strictly greater
//! than the pattern's threshold ([`FpMatch::short_circuits`]; 0.90 by default, never `>=`).

use std::net::IpAddr;

use aluskort_store::{EntityPattern, FpPattern};
use ipnet::IpNet;
use regex::{Regex, RegexBuilder};

/// Compiled size limit of one regex: patterns are written by analysts, but a runaway one must not
/// take the pipeline's memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// How an entity pattern tests a value.
#[derive(Debug)]
enum ValueTest {
    /// Type `ip`: the value parses as an address inside the network.
    Cidr(IpNet),
    Regex(Regex),
}

#[derive(Debug)]
struct CompiledEntityPattern {
    entity_type: String,
    /// As the analyst wrote it, for the reason text.
    source: String,
    test: ValueTest,
}

impl CompiledEntityPattern {
    fn compile(index: usize, entity: &EntityPattern) -> Result<Self, String> {
        let entity_type = entity.entity_type.trim().to_ascii_lowercase();
        let test = if entity_type == "ip" {
            let network = entity
                .pattern
                .parse::<IpNet>()
                .or_else(|_| entity.pattern.parse::<IpAddr>().map(IpNet::from))
                .map_err(|error| format!("entity_patterns[{index}] (ip): {:?} is not a CIDR: {error}", entity.pattern))?;
            ValueTest::Cidr(network)
        } else {
            let regex = RegexBuilder::new(&entity.pattern)
                .case_insensitive(true)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|error| format!("entity_patterns[{index}] ({entity_type}): invalid regex: {error}"))?;
            ValueTest::Regex(regex)
        };
        Ok(CompiledEntityPattern { entity_type, source: entity.pattern.clone(), test })
    }

    /// The first value among `entities` of this pattern's type that satisfies it.
    fn first_match<'a>(&self, entities: &'a [(String, String)]) -> Option<&'a str> {
        entities.iter().filter(|(entity_type, _)| entity_type.trim().eq_ignore_ascii_case(&self.entity_type)).find_map(|(_, value)| {
            let value = value.trim();
            let matched = match &self.test {
                ValueTest::Cidr(network) => value.parse::<IpAddr>().is_ok_and(|address| network.contains(&address)),
                ValueTest::Regex(regex) => regex.is_match(value),
            };
            matched.then_some(value)
        })
    }
}

#[derive(Debug)]
struct CompiledPattern {
    pattern_id: String,
    name: String,
    confidence_threshold: f64,
    alert_name: Option<Regex>,
    entities: Vec<CompiledEntityPattern>,
}

impl CompiledPattern {
    fn compile(pattern: &FpPattern) -> Result<Self, String> {
        if !pattern.status.is_matchable() {
            return Err(format!("status {} may not close alerts", pattern.status.as_str()));
        }
        let alert_name = match &pattern.alert_name_regex {
            Some(source) => Some(
                RegexBuilder::new(source)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|error| format!("alert_name_regex: invalid regex: {error}"))?,
            ),
            None => None,
        };
        let entities = pattern
            .entity_patterns
            .iter()
            .enumerate()
            .map(|(index, entity)| CompiledEntityPattern::compile(index, entity))
            .collect::<Result<Vec<_>, _>>()?;
        if alert_name.is_none() && entities.is_empty() {
            return Err("neither alert_name_regex nor entity_patterns: the pattern matches nothing".to_owned());
        }
        Ok(CompiledPattern {
            pattern_id: pattern.pattern_id.clone(),
            name: pattern.name.clone(),
            confidence_threshold: pattern.confidence_threshold,
            alert_name,
            entities,
        })
    }

    fn score(&self, alert_name: &str, entities: &[(String, String)]) -> FpMatch {
        let mut parts = Vec::new();
        let name_score = self.alert_name.as_ref().map(|regex| {
            let matched = regex.is_match(alert_name);
            parts.push(format!("alert name {} /{}/", if matched { "matches" } else { "does not match" }, regex.as_str()));
            if matched { 1.0 } else { 0.0 }
        });
        let entity_score = (!self.entities.is_empty()).then(|| {
            let mut matched = 0usize;
            let mut details = Vec::new();
            for entity in &self.entities {
                let shown = match entity.test {
                    ValueTest::Cidr(_) => format!("{} in {}", entity.entity_type, entity.source),
                    ValueTest::Regex(_) => format!("{} /{}/", entity.entity_type, entity.source),
                };
                match entity.first_match(entities) {
                    Some(value) => {
                        matched += 1;
                        details.push(format!("{shown}: {value}"));
                    }
                    None => details.push(format!("{shown}: no match")),
                }
            }
            parts.push(format!("{matched} of {} entity patterns match ({})", self.entities.len(), details.join("; ")));
            matched as f64 / self.entities.len() as f64
        });
        let score = match (name_score, entity_score) {
            (Some(name), Some(share)) => (name + share) / 2.0,
            (Some(name), None) => name,
            (None, Some(share)) => share,
            // Refused by `compile`.
            (None, None) => 0.0,
        };
        FpMatch {
            pattern_id: self.pattern_id.clone(),
            name: self.name.clone(),
            score,
            confidence_threshold: self.confidence_threshold,
            reason: parts.join("; "),
        }
    }
}

/// How well one pattern matches an alert.
#[derive(Debug, Clone, PartialEq)]
pub struct FpMatch {
    pub pattern_id: String,
    pub name: String,
    /// 0..=1.
    pub score: f64,
    /// The pattern's threshold, which the score must exceed.
    pub confidence_threshold: f64,
    /// Which parts matched, for the decision record and the analyst.
    pub reason: String,
}

impl FpMatch {
    /// FR-RSN-006: the alert may be closed as a false positive without a model call only when the
    /// score is strictly greater than the threshold.
    pub fn short_circuits(&self) -> bool {
        self.score > self.confidence_threshold
    }
}

/// Approved false-positive patterns, compiled once and matched against many alerts.
#[derive(Debug, Default)]
pub struct FpMatcher {
    /// In the order given (the store's: by pattern id), which breaks ties between equal scores.
    patterns: Vec<CompiledPattern>,
}

impl FpMatcher {
    /// Compiles `patterns`; a pattern that cannot be compiled (an invalid regex or CIDR, a status
    /// that may not close alerts, nothing to match on) is left out and returned with the reason as
    /// `(pattern_id, reason)`. Expiry is the store's filter ([`aluskort_store::ContextStore`]).
    pub fn compile(patterns: &[FpPattern]) -> (FpMatcher, Vec<(String, String)>) {
        let mut compiled = Vec::with_capacity(patterns.len());
        let mut skipped = Vec::new();
        for pattern in patterns {
            match CompiledPattern::compile(pattern) {
                Ok(pattern) => compiled.push(pattern),
                Err(reason) => skipped.push((pattern.pattern_id.clone(), reason)),
            }
        }
        (FpMatcher { patterns: compiled }, skipped)
    }

    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The highest-scoring pattern for an alert named `alert_name` with `entities`
    /// (`(type, value)`: `("ip", "10.0.0.5")`, `("host", "ws-01")`); the earlier pattern wins a tie.
    /// `None` when no pattern matches any part.
    pub fn best(&self, alert_name: &str, entities: &[(String, String)]) -> Option<FpMatch> {
        let mut best: Option<FpMatch> = None;
        for pattern in &self.patterns {
            let candidate = pattern.score(alert_name, entities);
            if candidate.score > best.as_ref().map_or(0.0, |found| found.score) {
                best = Some(candidate);
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use aluskort_store::FpStatus;
    use chrono::{TimeZone, Utc};

    use super::*;

    fn pattern(id: &str, alert_name_regex: Option<&str>, entities: &[(&str, &str)]) -> FpPattern {
        FpPattern {
            pattern_id: id.to_owned(),
            tenant: None,
            name: format!("pattern {id}"),
            alert_name_regex: alert_name_regex.map(str::to_owned),
            entity_patterns: entities
                .iter()
                .map(|(entity_type, pattern)| EntityPattern { entity_type: (*entity_type).to_owned(), pattern: (*pattern).to_owned() })
                .collect(),
            confidence_threshold: aluskort_store::model::DEFAULT_FP_CONFIDENCE_THRESHOLD,
            status: FpStatus::Active,
            approved_by: vec!["analyst-1".to_owned(), "analyst-2".to_owned()],
            approval_date: None,
            expires_at: None,
            created_at: Utc.with_ymd_and_hms(2024, 7, 1, 0, 0, 0).single().unwrap_or_default(),
            reason: "test".to_owned(),
        }
    }

    fn entities(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(entity_type, value)| ((*entity_type).to_owned(), (*value).to_owned())).collect()
    }

    fn compile_all(patterns: &[FpPattern]) -> FpMatcher {
        let (matcher, skipped) = FpMatcher::compile(patterns);
        assert!(skipped.is_empty(), "{skipped:?}");
        matcher
    }

    const BACKUP: &str = "^Backup job .* failed$";

    #[test]
    fn a_fully_matched_pattern_scores_one_and_short_circuits() {
        let matcher = compile_all(&[pattern("fp-1", Some(BACKUP), &[("ip", "10.20.0.0/16"), ("host", "^bkp-\\d+$")])]);
        let found = matcher.best("Backup job nightly failed", &entities(&[("host", "BKP-07"), ("ip", "10.20.3.4")])).expect("a match");
        assert_eq!(found.score, 1.0);
        assert!(found.short_circuits(), "1.0 > 0.90");
        assert_eq!(found.pattern_id, "fp-1");
        assert!(found.reason.contains("alert name matches") && found.reason.contains("2 of 2 entity patterns match"), "{}", found.reason);
        assert!(found.reason.contains("ip in 10.20.0.0/16: 10.20.3.4"), "{}", found.reason);
    }

    #[test]
    fn half_the_entity_patterns_score_three_quarters_and_do_not_short_circuit() {
        let matcher = compile_all(&[pattern("fp-1", Some(BACKUP), &[("ip", "10.20.0.0/16"), ("host", "^bkp-\\d+$")])]);
        let found = matcher.best("Backup job nightly failed", &entities(&[("host", "ws-01"), ("ip", "10.20.3.4")])).expect("a match");
        assert_eq!(found.score, 0.75);
        assert!(!found.short_circuits());
        assert!(found.reason.contains("1 of 2 entity patterns match") && found.reason.contains("host /^bkp-\\d+$/: no match"));
    }

    #[test]
    fn a_name_only_pattern_scores_the_name_alone() {
        let matcher = compile_all(&[pattern("fp-1", Some(BACKUP), &[])]);
        let found = matcher.best("Backup job weekly failed", &[]).expect("a match");
        assert_eq!(found.score, 1.0);
        assert!(found.short_circuits());
        assert_eq!(matcher.best("Backup job weekly succeeded", &[]), None, "a score of 0 is no match");
        assert_eq!(matcher.best("backup job weekly failed", &[]), None, "the name regex is matched as written");
    }

    #[test]
    fn an_entity_only_pattern_scores_the_entity_share_alone() {
        let matcher =
            compile_all(&[pattern("fp-1", None, &[("account", "^svc-backup@contoso\\.com$"), ("domain", "(^|\\.)contoso\\.com$")])]);
        let both = matcher.best("anything", &entities(&[("account", "SVC-Backup@Contoso.com"), ("domain", "dr.contoso.com")]));
        assert_eq!(both.map(|found| found.score), Some(1.0), "entity regexes ignore case");
        let one = matcher.best("anything", &entities(&[("account", "svc-backup@contoso.com"), ("domain", "evil.example")]));
        assert_eq!(one.map(|found| found.score), Some(0.5));
    }

    #[test]
    fn the_name_failing_halves_a_full_entity_match() {
        let matcher = compile_all(&[pattern("fp-1", Some(BACKUP), &[("ip", "10.20.0.0/16")])]);
        let found = matcher.best("Impossible travel", &entities(&[("ip", "10.20.0.9")])).expect("a match");
        assert_eq!(found.score, 0.5);
        assert!(found.reason.contains("alert name does not match"));
    }

    #[test]
    fn any_entity_of_the_type_satisfies_a_pattern_and_types_must_agree() {
        let matcher = compile_all(&[pattern("fp-1", None, &[("host", "^bkp-"), ("ip", "2001:db8::/32")])]);
        let found = matcher
            .best("x", &entities(&[("host", "ws-01"), ("HOST", "bkp-02"), ("ip", "2001:db8::7"), ("account", "bkp-admin")]))
            .expect("a match");
        assert_eq!(found.score, 1.0);
        let wrong_type = matcher.best("x", &entities(&[("account", "bkp-02"), ("ip", "2001:db9::1"), ("ip", "not an address")]));
        assert_eq!(wrong_type, None, "an account value does not satisfy a host pattern; outside the network is no match");
    }

    #[test]
    fn a_single_address_is_a_one_host_network() {
        let matcher = compile_all(&[pattern("fp-1", None, &[("ip", "192.0.2.10")])]);
        assert_eq!(matcher.best("x", &entities(&[("ip", "192.0.2.10")])).map(|found| found.score), Some(1.0));
        assert_eq!(matcher.best("x", &entities(&[("ip", "192.0.2.11")])), None);
    }

    #[test]
    fn a_score_equal_to_the_threshold_does_not_short_circuit() {
        let mut at_threshold = pattern("fp-1", Some(BACKUP), &[("ip", "10.20.0.0/16"), ("host", "^bkp-")]);
        at_threshold.confidence_threshold = 0.75;
        let mut exact_one = pattern("fp-2", Some(BACKUP), &[]);
        exact_one.confidence_threshold = 1.0;
        let alert_entities = entities(&[("ip", "10.20.0.1"), ("host", "ws-01")]);
        let partial = compile_all(std::slice::from_ref(&at_threshold)).best("Backup job a failed", &alert_entities).expect("a match");
        assert_eq!((partial.score, partial.confidence_threshold), (0.75, 0.75));
        assert!(!partial.short_circuits(), "0.75 is not greater than 0.75");
        let matcher = compile_all(&[at_threshold, exact_one]);
        let found = matcher.best("Backup job a failed", &alert_entities).expect("a match");
        assert_eq!((found.pattern_id.as_str(), found.score), ("fp-2", 1.0), "the higher score wins");
        assert!(!found.short_circuits(), "1.0 is not greater than a threshold of 1.0");
    }

    #[test]
    fn ties_go_to_the_earlier_pattern() {
        let matcher = compile_all(&[pattern("fp-a", Some(BACKUP), &[]), pattern("fp-b", Some(BACKUP), &[])]);
        assert_eq!(matcher.best("Backup job x failed", &[]).map(|found| found.pattern_id), Some("fp-a".to_owned()));
    }

    #[test]
    fn uncompilable_patterns_are_reported_and_skipped() {
        let mut revoked = pattern("fp-revoked", Some(BACKUP), &[]);
        revoked.status = FpStatus::Revoked;
        let (matcher, skipped) = FpMatcher::compile(&[
            pattern("fp-bad-regex", Some("Backup (job"), &[]),
            pattern("fp-bad-entity-regex", None, &[("host", "[bkp")]),
            pattern("fp-bad-cidr", None, &[("ip", "10.0.0.0/33")]),
            pattern("fp-empty", None, &[]),
            revoked,
            pattern("fp-good", Some(BACKUP), &[]),
        ]);
        let reported: Vec<&str> = skipped.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(reported, ["fp-bad-regex", "fp-bad-entity-regex", "fp-bad-cidr", "fp-empty", "fp-revoked"]);
        assert!(skipped[0].1.contains("alert_name_regex"), "{}", skipped[0].1);
        assert!(skipped[1].1.contains("entity_patterns[0] (host)"), "{}", skipped[1].1);
        assert!(skipped[2].1.contains("not a CIDR"), "{}", skipped[2].1);
        assert!(skipped[4].1.contains("revoked"), "{}", skipped[4].1);
        assert_eq!(matcher.len(), 1);
        assert_eq!(matcher.best("Backup job x failed", &[]).map(|found| found.pattern_id), Some("fp-good".to_owned()));
    }

    #[test]
    fn an_empty_matcher_matches_nothing() {
        let (matcher, skipped) = FpMatcher::compile(&[]);
        assert!(matcher.is_empty() && skipped.is_empty());
        assert_eq!(matcher.best("Backup job x failed", &entities(&[("ip", "10.0.0.1")])), None);
    }
}
