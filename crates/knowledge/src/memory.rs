//! Incident-memory scoring (FR-RSN-004, REQUIREMENTS §3.3 and the decisions table): how relevant a
//! past incident is to the one under investigation.
//!
//! `composite = 0.4·similarity + 0.3·recency + 0.15·tenant_match + 0.15·technique_jaccard`, with the
//! dual-decay recency `0.7·e^(−0.023·d) + 0.3 / (1 + ln(1 + d/365))` (a fast decay for the usual case,
//! a slow one so that old incidents never vanish entirely), floored at 0.1 for incidents marked rare
//! and important. A missing age counts as 30 days (the enricher's default).

/// Weights of the composite score.
pub const WEIGHT_SIMILARITY: f64 = 0.4;
pub const WEIGHT_RECENCY: f64 = 0.3;
pub const WEIGHT_TENANT: f64 = 0.15;
pub const WEIGHT_TECHNIQUES: f64 = 0.15;
/// Per-day rate of the fast decay.
pub const DECAY_RATE: f64 = 0.023;
/// Recency never falls below this for rare, important incidents.
pub const RARE_IMPORTANT_FLOOR: f64 = 0.1;
/// Age assumed when a past incident's age is unknown.
pub const DEFAULT_AGE_DAYS: f64 = 30.0;
/// Similar incidents kept for the investigation's context.
pub const TOP_K: usize = 5;

/// Recency of an incident `age_days` old (negative ages count as 0).
pub fn recency(age_days: Option<f64>, rare_important: bool) -> f64 {
    let days = age_days.unwrap_or(DEFAULT_AGE_DAYS).max(0.0);
    let value = 0.7 * (-DECAY_RATE * days).exp() + 0.3 / (1.0 + (1.0 + days / 365.0).ln());
    if rare_important { value.max(RARE_IMPORTANT_FLOOR) } else { value }
}

/// Jaccard overlap of two technique sets (0 when both are empty).
pub fn technique_jaccard(a: &[String], b: &[String]) -> f64 {
    let a: std::collections::BTreeSet<&str> = a.iter().map(String::as_str).collect();
    let b: std::collections::BTreeSet<&str> = b.iter().map(String::as_str).collect();
    let union = a.union(&b).count();
    if union == 0 { 0.0 } else { a.intersection(&b).count() as f64 / union as f64 }
}

/// What is known about one candidate past incident.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Vector (or lexical) similarity to the current incident, 0..=1.
    pub similarity: f64,
    pub age_days: Option<f64>,
    pub same_tenant: bool,
    /// Technique overlap with the current incident, 0..=1.
    pub technique_overlap: f64,
    pub rare_important: bool,
}

pub fn composite(candidate: &Candidate) -> f64 {
    WEIGHT_SIMILARITY * candidate.similarity.clamp(0.0, 1.0)
        + WEIGHT_RECENCY * recency(candidate.age_days, candidate.rare_important)
        + WEIGHT_TENANT * f64::from(u8::from(candidate.same_tenant))
        + WEIGHT_TECHNIQUES * candidate.technique_overlap.clamp(0.0, 1.0)
}

/// Candidates ranked best first (ties keep input order), at most [`TOP_K`]. Candidates from other
/// tenants are never returned: memory is tenant-isolated, the tenant term only orders shared ones.
pub fn rank<T>(candidates: Vec<(T, Candidate)>) -> Vec<(T, f64)> {
    let mut scored: Vec<(usize, T, f64)> = candidates
        .into_iter()
        .enumerate()
        .filter(|(_, (_, candidate))| candidate.same_tenant)
        .map(|(index, (item, candidate))| (index, item, composite(&candidate)))
        .collect();
    scored.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
    scored.into_iter().take(TOP_K).map(|(_, item, score)| (item, score)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pinned(days: f64) -> Candidate {
        Candidate { similarity: 0.95, age_days: Some(days), same_tenant: true, technique_overlap: 0.8, rare_important: false }
    }

    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() < 5e-5
    }

    /// REQUIREMENTS §3.3 (REM-M02) pinned values: recency / composite for similarity 0.95, same
    /// tenant, overlap 0.8.
    #[test]
    fn dual_decay_matches_the_pinned_values() {
        for (days, expected_recency, expected_composite) in
            [(0.0, 1.0, 0.95), (1.0, 0.98327, 0.94498), (30.0, 0.62914, 0.83874), (180.0, 0.22530, 0.71759), (365.0, 0.17734, 0.70320)]
        {
            let r = recency(Some(days), false);
            let c = composite(&pinned(days));
            assert!(close(r, expected_recency), "d={days}: recency {r} != {expected_recency}");
            assert!(close(c, expected_composite), "d={days}: composite {c} != {expected_composite}");
        }
    }

    #[test]
    fn a_recent_match_outranks_an_old_one_and_the_floor_holds() {
        let recent = Candidate { similarity: 0.85, age_days: Some(2.0), technique_overlap: 0.0, ..pinned(0.0) };
        let old = Candidate { similarity: 0.85, age_days: Some(180.0), technique_overlap: 0.0, ..pinned(0.0) };
        assert!(close(composite(&recent), 0.78007), "{}", composite(&recent));
        assert!(close(composite(&old), 0.55759), "{}", composite(&old));
        assert!(recency(Some(100_000.0), true) >= RARE_IMPORTANT_FLOOR);
        assert!(recency(Some(100_000.0), false) < RARE_IMPORTANT_FLOOR);
        assert!(close(recency(None, false), recency(Some(30.0), false)), "a missing age counts as 30 days");
    }

    #[test]
    fn ranking_is_tenant_isolated_and_keeps_five() {
        let mut candidates: Vec<(u32, Candidate)> = (0..8).map(|i| (i, pinned(f64::from(i) * 10.0))).collect();
        candidates.push((99, Candidate { same_tenant: false, ..pinned(0.0) }));
        let ranked = rank(candidates);
        assert_eq!(ranked.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
        assert!((technique_jaccard(&["T1".into(), "T2".into()], &["T2".into(), "T3".into()]) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(technique_jaccard(&[], &[]), 0.0);
    }
}
