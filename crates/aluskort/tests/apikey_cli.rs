//! `aluskort api-key new` (issue 10): the printed key and entry are what `config check` accepts.

use std::process::Command;

fn aluskort() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_aluskort"));
    command.env_remove("ALUSKORT_CONFIG").env_remove("ALUSKORT_DATA_DIR").env_remove("RUST_LOG");
    command
}

#[test]
fn a_new_key_and_its_entry_pass_the_config_check() {
    let output = aluskort()
        .args(["api-key", "new", "--name", "alice.ops", "--role", "senior_analyst", "--tenant", "contoso"])
        .output()
        .expect("runs");
    assert!(output.status.success());
    let key = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert_eq!(key.len(), 64, "only the key on stdout: {key}");
    let advice = String::from_utf8_lossy(&output.stderr).into_owned();
    let entry = &advice[advice.find("[[api.auth.keys]]").expect("an entry")..advice.find("Callers send").expect("the end")];
    assert!(entry.contains("key = \"${ALUSKORT_KEY_ALICE_OPS}\"") && entry.contains("tenants = [\"contoso\"]"), "{entry}");
    assert!(!advice.contains(&key), "the key is not repeated in the advice");

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("aluskort.toml");
    std::fs::write(&config, format!("version = 1\ndata_dir = {:?}\n\n{entry}", dir.path().join("data"))).expect("write");
    let check =
        aluskort().arg("--config").arg(&config).args(["config", "check"]).env("ALUSKORT_KEY_ALICE_OPS", &key).output().expect("runs");
    assert!(check.status.success(), "{}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
    let short =
        aluskort().arg("--config").arg(&config).args(["config", "check"]).env("ALUSKORT_KEY_ALICE_OPS", "short").output().expect("runs");
    assert!(!short.status.success(), "a short key is refused");

    let bad = aluskort().args(["api-key", "new", "--name", "x", "--role", "root"]).output().expect("runs");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected analyst, senior_analyst, admin or audit_reader"));
}
