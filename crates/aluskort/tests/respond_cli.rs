//! Response from the command line (FR-RSP-002..004): `triage` opens approvals, `approvals approve`
//! runs the released actions against a fake Defender for Endpoint exactly once, `reject` runs
//! nothing, and the audit chain verifies afterwards; `playbook lint` refuses a destructive step
//! without an approval gate.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use aluskort_testkit::fake::defender::{self, FakeDefender};
use serde_json::Value;

fn aluskort() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_aluskort"));
    command.env_remove("ALUSKORT_CONFIG").env_remove("ALUSKORT_DATA_DIR").env_remove("RUST_LOG");
    command.env_remove("ANTHROPIC_API_KEY").env_remove("OPENAI_API_KEY").env_remove("OPENAI_BASE_URL");
    command
}

fn demo_alerts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sentinel-demo.jsonl")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run(dir: &Path, config: &Path, args: &[&str]) -> Output {
    aluskort().arg("--config").arg(config).arg("--data-dir").arg(dir).args(args).output().expect("aluskort runs")
}

fn approvals(dir: &Path, config: &Path, status: &str) -> Vec<Value> {
    let output = run(dir, config, &["approvals", "list", "--json", "--status", status]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout).lines().map(|line| serde_json::from_str(line).expect("JSON approval")).collect()
}

fn has_action(approval: &Value, action: &str) -> bool {
    approval["actions"].as_array().is_some_and(|actions| actions.iter().any(|a| a["action"] == action))
}

const PARIS_02: &str = "5b0c6c1f9a3e4d7fb2a1c0e9d8f7a6b5c4d3e2f1";

#[test]
fn approved_isolation_hits_defender_once_and_rejected_never() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let fake = runtime.block_on(FakeDefender::start());
    // The demo alerts carry the device's Defender id (MdatpDeviceId), which the playbook passes on.
    fake.add_machine(PARIS_02, "fs-paris-02.corp.contoso-demo.com");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("aluskort.toml");
    std::fs::write(
        &config,
        format!(
            "[respond]\nmode = \"live\"\n[respond.defender]\napi_url = \"{}\"\ntoken_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"${{DEFENDER_SECRET}}\"\n",
            fake.api_url(),
            fake.token_url(),
            defender::CLIENT_ID
        ),
    )
    .expect("config");
    let data = dir.path().join("data");
    let with_secret = |args: &[&str]| -> Output {
        aluskort()
            .env("DEFENDER_SECRET", defender::CLIENT_SECRET)
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .args(args)
            .output()
            .expect("aluskort runs")
    };
    let output = with_secret(&["triage", demo_alerts().to_str().expect("utf-8 path")]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let secret_config = |status: &str| {
        let output = with_secret(&["approvals", "list", "--json", "--status", status]);
        assert!(output.status.success(), "{}", text(&output.stderr));
        text(&output.stdout).lines().map(|line| serde_json::from_str(line).expect("JSON approval")).collect::<Vec<Value>>()
    };
    let pending = secret_config("pending");
    assert_eq!(pending.len(), 5, "every demo investigation waits for a human");
    let isolating: Vec<&Value> = pending.iter().filter(|a| has_action(a, "defender.isolate_machine")).collect();
    assert!(isolating.len() >= 2, "two investigations propose isolating the file server");
    let before = fake.isolations(PARIS_02);

    let reject = isolating[1]["approval_id"].as_str().expect("id");
    let output = with_secret(&["approvals", "reject", reject, "--actor", "bob", "--comment", "maintenance window"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("rejected"), "{}", text(&output.stdout));
    assert_eq!(fake.isolations(PARIS_02), before, "a rejected isolation never runs");

    let approve = isolating[0]["approval_id"].as_str().expect("id");
    let output = with_secret(&["approvals", "approve", approve, "--actor", "alice", "--comment", "contain"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("approved"), "{}", text(&output.stdout));
    assert_eq!(fake.isolations(PARIS_02), before + 1, "the approved isolation ran once: {}", text(&output.stdout));

    let again = with_secret(&["approvals", "approve", approve, "--actor", "carol"]);
    assert_eq!(again.status.code(), Some(1), "a decided approval is refused");
    assert!(text(&again.stderr).contains("not pending"), "{}", text(&again.stderr));
    assert_eq!(fake.isolations(PARIS_02), before + 1, "nothing ran twice");
    assert_eq!(secret_config("approved").len(), 1);
    assert_eq!(secret_config("rejected").len(), 1);

    let verify = aluskort().args(["audit", "verify", "--data-dir"]).arg(&data).output().expect("verify");
    assert!(verify.status.success(), "{}", text(&verify.stdout));
}

#[test]
fn dry_run_is_the_default_and_sends_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("aluskort.toml");
    std::fs::write(&config, "").expect("config");
    let output = run(dir.path(), &config, &["triage", demo_alerts().to_str().expect("utf-8 path")]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let pending = approvals(dir.path(), &config, "pending");
    let isolating = pending.iter().find(|a| has_action(a, "defender.isolate_machine")).expect("an isolation proposed");
    let id = isolating["approval_id"].as_str().expect("id");
    let output = run(dir.path(), &config, &["approvals", "approve", id, "--actor", "alice"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("dry-run") && stdout.contains(" 0 succeeded"), "{stdout}");
}

#[test]
fn playbook_lint_passes_the_built_ins_and_refuses_an_ungated_destructive_step() {
    let output = aluskort().args(["playbook", "lint"]).output().expect("lint");
    assert!(output.status.success(), "{}{}", text(&output.stdout), text(&output.stderr));
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("bad.toml"),
        r#"
[playbook]
id = "yolo-isolate"
name = "Isolate without asking"
description = "wrong on purpose"
version = 1

[match]
techniques = ["T1059"]

[[steps]]
id = "isolate"
description = "isolate {{ target }}"
action = "defender.isolate_machine"
for_each = "host"
tier = 1
destructive = true
reversible = true
"#,
    )
    .expect("playbook");
    let output = aluskort().args(["playbook", "lint"]).arg(dir.path()).output().expect("lint");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stdout));
    let all = format!("{}{}", text(&output.stdout), text(&output.stderr));
    assert!(all.contains("yolo-isolate") && all.contains("approval gate"), "{all}");
}
