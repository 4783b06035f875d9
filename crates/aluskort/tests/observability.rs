//! The Grafana dashboard (deploy/grafana/aluskort-dashboard.json, issue 10 / NFR-OBS-001) asks only
//! for metrics the code exports, with the types its queries assume.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

/// Every `metrics::<kind>!("aluskort_…"` in the workspace's sources: name → kind.
fn exported_metrics() -> BTreeMap<String, String> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found = BTreeMap::new();
    let mut stack = vec![crates];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let text = std::fs::read_to_string(&path).expect("read source");
                for kind in ["counter", "gauge", "histogram"] {
                    let marker = format!("metrics::{kind}!(");
                    for (start, _) in text.match_indices(&marker) {
                        let rest = text[start + marker.len()..].trim_start();
                        if let Some(name) = rest.strip_prefix('"').and_then(|rest| rest.split('"').next())
                            && name.starts_with("aluskort_")
                        {
                            found.insert(name.to_owned(), kind.to_owned());
                        }
                    }
                }
            }
        }
    }
    found
}

/// The `aluskort_*` names a PromQL expression reads.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("aluskort_") {
        let tail = &rest[start..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn every_dashboard_query_reads_an_exported_metric_of_the_right_type() {
    let exported = exported_metrics();
    assert!(exported.len() >= 30, "the source scan found {} metrics", exported.len());
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/grafana/aluskort-dashboard.json"))
        .expect("dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("valid JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 12);
    let mut read = BTreeSet::new();
    for panel in panels {
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {} queries nothing", panel["title"]);
        for target in targets {
            let expr = target["expr"].as_str().expect("expr");
            for name in metric_names(expr) {
                let (base, histogram_part) = match name.rsplit_once('_') {
                    Some((base, "bucket" | "sum" | "count")) if exported.get(base).is_some_and(|kind| kind == "histogram") => {
                        (base.to_owned(), true)
                    }
                    _ => (name.clone(), false),
                };
                let kind = exported.get(&base).unwrap_or_else(|| panic!("panel {}: {base} is not exported", panel["title"]));
                if histogram_part {
                    assert!(base.ends_with("_seconds"), "{base}: only *_seconds histograms have buckets (serve.rs)");
                } else {
                    assert_ne!(kind, "histogram", "panel {}: read {base} through _bucket/_sum/_count", panel["title"]);
                }
                if !histogram_part && (expr.contains(&format!("rate({base}[")) || expr.contains(&format!("increase({base}["))) {
                    assert_eq!(kind, "counter", "panel {}: rate() of a {kind}", panel["title"]);
                }
                read.insert(base);
            }
        }
    }
    for needed in [
        "aluskort_alerts_received_total",
        "aluskort_verdicts_total",
        "aluskort_alert_to_verdict_seconds",
        "aluskort_bus_pending",
        "aluskort_audit_chain_valid",
        "aluskort_llm_cost_microdollars_total",
    ] {
        assert!(read.contains(needed), "the dashboard shows {needed}");
    }
}
