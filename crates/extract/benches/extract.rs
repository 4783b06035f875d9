//! Extraction throughput (issue "extraction engine" targets: free text >= 50 MB/s, Sentinel entity
//! parsing >= 100,000 alerts/s, single thread).
//!
//! Corpora, read in place from the shared reference data:
//! - threat-report text: the descriptions of every ATT&CK object (real prose with technique ids,
//!   URLs, file paths, registry keys), plus a synthetic report section dense with defanged indicators;
//! - the 26 real Sentinel `SecurityAlert` rows.

use std::hint::black_box;

use aluskort_extract::sanitize::SanitizeReport;
use aluskort_extract::{extract_iocs, sentinel};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;

/// The allocator the `aluskort` binary ships with, so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn attack_prose() -> String {
    let path = aluskort_testkit::shared_data("mitre/enterprise-attack-v18.1.json");
    let bundle: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("ATT&CK bundle")).expect("JSON");
    let mut text = String::new();
    for object in bundle["objects"].as_array().expect("objects") {
        if let Some(description) = object["description"].as_str() {
            text.push_str(description);
            text.push_str("\n\n");
        }
    }
    text
}

fn dense_report() -> String {
    let paragraph = "The actor staged payloads at hxxps://cdn-update[.]example-mirror[.]com/dl/stage2.bin and \
        hxxp://198.51.100[.]23:8080/gate.php, resolving c2.bad-actor(.)net to 203.0.113.45 and 2001:db8:85a3::8a2e:370:7334. \
        Dropped C:\\Users\\Public\\Libraries\\svc.dll (SHA256 4e1f0d4c3b2a19087f6e5d4c3b2a19087f6e5d4c3b2a19087f6e5d4c3b2a1908, \
        MD5 9d8e30daf21108092d5980c931876b7e) and set HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\Updater. \
        Phishing from billing[at]invoices-contoso[.]co exploited CVE-2023-23397 (T1566.001, T1204.002); traffic from AS64501 \
        and MAC 00:1A:2B:3C:4D:5E was observed. Persistence via /etc/cron.d/update and report.pdf lures.\n";
    paragraph.repeat(200)
}

fn free_text(c: &mut Criterion) {
    let mut group = c.benchmark_group("free_text");
    for (name, text) in [("attack_descriptions", attack_prose()), ("dense_defanged_report", dense_report())] {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(name, |b| b.iter(|| black_box(extract_iocs(black_box(&text)))));
    }
    group.finish();
}

fn sentinel_entities(c: &mut Criterion) {
    let text = std::fs::read_to_string(aluskort_testkit::sentinel_alerts_path()).expect("alerts");
    let rows: Vec<Value> = text.lines().map(|line| serde_json::from_str(line).expect("JSON")).collect();
    let entities: Vec<Value> = rows.iter().map(|row| row["Entities"].clone()).collect();
    let mut group = c.benchmark_group("sentinel");
    group.throughput(Throughput::Elements(entities.len() as u64));
    group.bench_function("parse_entities", |b| {
        b.iter(|| {
            for value in &entities {
                let mut report = SanitizeReport::default();
                black_box(sentinel::parse_entities(black_box(value), &mut report));
            }
        })
    });
    group.bench_function("parse_entities_and_iocs", |b| {
        b.iter(|| {
            for value in &entities {
                let mut report = SanitizeReport::default();
                let parsed = sentinel::parse_entities(black_box(value), &mut report);
                black_box(aluskort_extract::entity_iocs(&parsed));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, free_text, sentinel_entities);
criterion_main!(benches);
