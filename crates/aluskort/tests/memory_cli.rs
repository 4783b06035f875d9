//! `aluskort memory status|archive` (NFR-CMP-002) as an operator runs them on the embedded
//! backends: months older than the hot window go to object storage whole, write-once, and leave
//! the store and the vector index.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use aluskort_knowledge::embed::HashingEmbedder;
use aluskort_knowledge::memory::{IncidentMemory, PastIncident};
use aluskort_knowledge::vector::FlatIndex;
use aluskort_store::{MemoryStore, SqliteStore};
use chrono::{Datelike, Months, Utc};

fn aluskort(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_aluskort"));
    command.env_remove("ALUSKORT_CONFIG").env_remove("ALUSKORT_DATA_DIR").env_remove("RUST_LOG");
    command.arg("--data-dir").arg(dir);
    command
}

fn run(command: &mut Command) -> (i32, String, String) {
    let Output { status, stdout, stderr } = command.output().expect("runs");
    (status.code().unwrap_or(-1), String::from_utf8_lossy(&stdout).into_owned(), String::from_utf8_lossy(&stderr).into_owned())
}

fn past(id: &str, months_ago: u32) -> PastIncident {
    let now = Utc::now();
    // The 15th of the month `months_ago` before this one, well inside it.
    let month = now.checked_sub_months(Months::new(months_ago)).expect("a month");
    let closed_at = month.with_day(15).expect("the 15th");
    PastIncident {
        id: id.to_owned(),
        tenant: "acme".to_owned(),
        incident_id: Some(format!("inc-{id}")),
        summary: format!("mimikatz dumped lsass credentials on host {id}"),
        techniques: vec!["T1003.001".to_owned()],
        classification: "true_positive".to_owned(),
        closed_at,
        rare_important: false,
    }
}

fn month_of(months_ago: u32) -> String {
    Utc::now().checked_sub_months(Months::new(months_ago)).expect("a month").format("%Y-%m").to_string()
}

async fn remember(dir: &Path, incidents: Vec<PastIncident>) {
    let store = Arc::new(SqliteStore::open(dir).await.expect("store"));
    let index = Arc::new(FlatIndex::open(&dir.join("vectors")).await.expect("index"));
    let memory = IncidentMemory::new(Arc::new(HashingEmbedder::default()), index).with_store(store.clone());
    for incident in incidents {
        memory.remember(incident).await.expect("remember");
    }
    store.close().await;
}

fn archive_file(dir: &Path, month: &str) -> PathBuf {
    dir.join("blobs").join("incident-memory").join(format!("{month}.jsonl"))
}

#[tokio::test]
async fn old_months_are_archived_whole_and_leave_the_store_and_the_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    remember(dir, vec![past("a", 14), past("b", 14), past("c", 13), past("d", 0)]).await;
    let (old, older, now) = (month_of(13), month_of(14), month_of(0));

    let (code, out, err) = run(aluskort(dir).args(["memory", "status"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("3 month(s), 4 past incident(s)"), "{out}");
    assert!(out.contains(&format!("{older}         2  (older than the hot window: archive due)")), "{out}");
    assert!(out.contains("hot vectors: 4 (limit 100000)"), "{out}");

    let (code, out, err) = run(aluskort(dir).args(["memory", "archive", "--dry-run"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches("would archive").count(), 2, "{out}");
    assert!(!archive_file(dir, &older).exists(), "a dry run writes nothing");

    let (code, out, err) = run(aluskort(dir).args(["memory", "archive"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2 month(s), 3 incident(s) archived"), "{out}");
    let lines = std::fs::read_to_string(archive_file(dir, &older)).expect("the older month's archive");
    let archived: Vec<aluskort_store::PastIncidentRow> = lines.lines().map(|line| serde_json::from_str(line).expect("a row")).collect();
    assert_eq!(archived.iter().map(|row| row.id.as_str()).collect::<Vec<_>>(), vec!["a", "b"]);
    assert_eq!(archived[0].body["summary"], "mimikatz dumped lsass credentials on host a", "the whole record");
    assert_eq!(std::fs::read_to_string(archive_file(dir, &old)).expect("the old month's").lines().count(), 1);
    assert!(!archive_file(dir, &now).exists(), "this month stays hot");

    let (_, out, _) = run(aluskort(dir).args(["memory", "status"]));
    assert!(out.contains("1 month(s), 1 past incident(s)") && out.contains(&now), "{out}");
    assert!(out.contains("hot vectors: 1 (limit 100000)"), "the archived months' vectors are gone: {out}");
    let (code, out, _) = run(aluskort(dir).args(["memory", "archive"]));
    assert_eq!(code, 0);
    assert!(out.contains("nothing older than"), "{out}");

    // A late record of an archived month: the archive is write-once, so the month stays put.
    remember(dir, vec![past("late", 13)]).await;
    let (code, _, err) = run(aluskort(dir).args(["memory", "archive"]));
    assert_eq!(code, 1);
    assert!(err.contains(&format!("already holds a different archive of {old}")), "{err}");
    let store = SqliteStore::open(dir).await.expect("store");
    assert_eq!(store.past_incident_months().await.expect("months"), vec![(old, 1), (now, 1)], "nothing removed");
    store.close().await;
}
