//! `aluskort assets import|show` and the graph's zone reaching triage's reasoning (issue 9).

use std::path::Path;
use std::process::{Command, Output};

fn aluskort() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_aluskort"));
    command.env_remove("ALUSKORT_CONFIG").env_remove("ALUSKORT_DATA_DIR").env_remove("RUST_LOG");
    command.env_remove("ANTHROPIC_API_KEY").env_remove("OPENAI_API_KEY").env_remove("OPENAI_BASE_URL");
    command
}

fn run(dir: &Path, args: &[&str]) -> Output {
    aluskort().arg("--data-dir").arg(dir).args(args).output().expect("runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The Sentinel workspace tenant of `examples/sentinel-demo.jsonl`.
const DEMO_TENANT: &str = "3f1c2a9e-0d4b-4e8a-9b77-5d2c1e0a6f10";

#[test]
fn assets_are_placed_shown_and_used_by_triage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("assets.jsonl");
    std::fs::write(
        &file,
        "{\"asset\":\"FS-PARIS-02\",\"zone\":\"Zone1_Finance\",\"consequence\":\"critical\"}\n\
         {\"asset\":\"ws 9\",\"zone\":\"Zone3\",\"consequence\":\"low\"}\n\
         {\"asset\":\"wks-lyon-117\",\"zone\":\"Zone3\",\"consequence\":\"severe\"}\n",
    )
    .expect("write");
    let refused = run(dir.path(), &["assets", "import", file.to_str().expect("path")]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("assets.jsonl:2: asset \"ws 9\"") && stderr.contains("assets.jsonl:3:") && stderr.contains("nothing was written"),
        "{stderr}"
    );
    let shown = run(dir.path(), &["assets", "show", "fs-paris-02"]);
    assert_eq!(shown.status.code(), Some(1), "nothing was placed");

    std::fs::write(
        &file,
        "{\"asset\":\"FS-PARIS-02\",\"zone\":\"Zone1_Finance\",\"consequence\":\"critical\"}\n\
         {\"asset\":\"wks-lyon-117\",\"zone\":\"Zone3\",\"consequence\":\"low\",\"tenant\":\"other\"}\n",
    )
    .expect("write");
    let imported = run(dir.path(), &["assets", "import", file.to_str().expect("path"), "--tenant", DEMO_TENANT]);
    assert!(imported.status.success(), "{}", text(&imported.stderr));
    assert_eq!(text(&imported.stdout).trim(), "2 asset(s) placed in 2 zone(s)");
    let shown = run(dir.path(), &["assets", "show", "fs-paris-02", "wks-lyon-117", "--tenant", DEMO_TENANT]);
    assert_eq!(shown.status.code(), Some(1), "wks-lyon-117 is another tenant's");
    assert_eq!(text(&shown.stdout).trim(), r#"{"asset":"fs-paris-02","zone":"Zone1_Finance","consequence":"critical"}"#);
    assert!(text(&shown.stderr).contains(&format!("wks-lyon-117: not in the asset graph of tenant {DEMO_TENANT}")));

    // Triage reads the graph: the demo alerts on fs-paris-02 are weighed as a critical zone's.
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sentinel-demo.jsonl");
    let triage = run(dir.path(), &["triage", demo.to_str().expect("path")]);
    assert!(triage.status.success(), "{}", text(&triage.stderr));
    let stdout = text(&triage.stdout);
    assert!(stdout.contains("the asset is in zone Zone1_Finance (critical consequence)"), "{stdout}");
}
