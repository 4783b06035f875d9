//! `aluskort audit evidence` and `audit verify-evidence` as users and auditors run them, with the
//! independent Python check (`scripts/verify-evidence`) reading the same packages.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn aluskort() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_aluskort"));
    command.env_remove("ALUSKORT_CONFIG").env_remove("ALUSKORT_DATA_DIR").env_remove("RUST_LOG");
    command.env_remove("ANTHROPIC_API_KEY").env_remove("OPENAI_API_KEY").env_remove("OPENAI_BASE_URL");
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn python_verifier() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/verify-evidence")
}

/// Triage the real Sentinel alerts into `dir` (with `config`, if given); the investigation ids.
fn triaged(dir: &Path, config: Option<&Path>) -> Vec<String> {
    let mut command = aluskort();
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    let output = run(command.arg("--data-dir").arg(dir).arg("triage").arg(aluskort_testkit::sentinel_alerts_path()));
    assert!(output.status.success(), "triage: {}", text(&output.stderr));
    text(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("json line"))
        .filter_map(|line| line["investigation_id"].as_str().map(str::to_owned))
        .collect()
}

fn export(dir: &Path, config: Option<&Path>, investigation: &str, out: &Path) -> Output {
    let mut command = aluskort();
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    run(command.arg("--data-dir").arg(dir).args(["audit", "evidence", investigation, "--out"]).arg(out))
}

/// Both verifiers on `package`: (aluskort's exit code and output, the Python check's).
fn verdicts(package: &Path) -> ((i32, String), (i32, String)) {
    let ours = run(aluskort().args(["audit", "verify-evidence"]).arg(package));
    let theirs = run(Command::new("python3").arg(python_verifier()).arg(package));
    ((ours.status.code().unwrap_or(-1), text(&ours.stdout)), (theirs.status.code().unwrap_or(-1), text(&theirs.stdout)))
}

/// FR-CSM-003 / §3.8: a package of a real investigation is stored write-once under the evidence
/// key, and both the built-in check and an independent one accept it and name any edit.
#[test]
fn evidence_packages_are_stored_and_verified_independently() {
    let dir = tempfile::tempdir().expect("tempdir");
    let investigations = triaged(dir.path(), None);
    assert!(!investigations.is_empty());
    let package_file = dir.path().join("package.json");
    let output = export(dir.path(), None, &investigations[0], &package_file);
    assert!(output.status.success(), "{}{}", text(&output.stdout), text(&output.stderr));
    let stdout = text(&output.stdout);
    let key = stdout.split(" stored ").nth(1).and_then(|rest| rest.split(' ').next()).expect("key");
    let stored = std::fs::read(dir.path().join("blobs").join(key)).expect("stored under <data_dir>/blobs");
    assert_eq!(stored, std::fs::read(&package_file).expect("--out"), "the stored object is the package written out");

    let package: Value = serde_json::from_slice(&stored).expect("json");
    // §3.8's evidence key: {tenant}/{YYYY/MM/DD}/{audit_id}/{type}.json, from the newest record.
    let newest = package["audit_records"].as_array().and_then(|records| records.last()).expect("records");
    let day = newest["timestamp"].as_str().expect("timestamp")[..10].replace('-', "/");
    let prefix =
        format!("{}/{day}/{}/evidence_package-", package["tenant_id"].as_str().expect("tenant"), newest["audit_id"].as_str().expect("id"));
    assert!(key.starts_with(&prefix) && key.ends_with(".json"), "{key} under {prefix}");
    assert_eq!(package["investigation_id"], investigations[0].as_str());
    let records = package["audit_records"].as_array().expect("records");
    assert!(records.len() >= 3, "state changes and the verdict: {}", records.len());
    assert!(records.iter().all(|record| record["investigation_id"] == investigations[0].as_str()));

    let ((ours, our_text), (theirs, their_text)) = verdicts(&package_file);
    assert_eq!((ours, theirs), (0, 0), "{our_text}{their_text}");
    assert!(our_text.starts_with("evidence package valid") && their_text.contains("valid (independent check)"));

    // Any edit is named by both: content, then a re-hashed record whose successor no longer agrees.
    let mut edited = package.clone();
    edited["audit_records"][0]["actor_id"] = Value::from("mallory");
    let edited_file = dir.path().join("edited.json");
    std::fs::write(&edited_file, serde_json::to_vec(&edited).expect("json")).expect("write");
    let ((ours, our_text), (theirs, their_text)) = verdicts(&edited_file);
    assert_eq!((ours, theirs), (1, 1));
    assert!(our_text.contains("does not match its content") && their_text.contains("does not match its content"), "{our_text}{their_text}");

    let mut reordered = package;
    reordered["audit_records"].as_array_mut().expect("records").reverse();
    std::fs::write(&edited_file, serde_json::to_vec(&reordered).expect("json")).expect("write");
    let ((ours, _), (theirs, _)) = verdicts(&edited_file);
    assert_eq!((ours, theirs), (1, 1), "records out of chain order");
}

#[test]
fn unknown_or_malformed_investigation_ids_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    triaged(dir.path(), None);
    let out = dir.path().join("p.json");
    let unknown = export(dir.path(), None, "0190f3a0-0000-7000-8000-000000000000", &out);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown.stderr).contains("no investigation 0190f3a0"), "{}", text(&unknown.stderr));
    let malformed = export(dir.path(), None, "inv-1; DROP", &out);
    assert_eq!(malformed.status.code(), Some(2));
    assert!(!out.exists(), "nothing written");
    let not_json = run(aluskort().args(["audit", "verify-evidence"]).arg(aluskort_testkit::sentinel_alerts_path()));
    assert_eq!(not_json.status.code(), Some(1));
    assert!(text(&not_json.stdout).contains("INVALID: not a package"));
}

/// One HTTP/1.1 request to the S3 stand-in; the status and body. moto wants an `Authorization`
/// header on object requests but does not check the signature, so a placeholder one is sent.
fn http(endpoint: &str, method: &str, path: &str) -> (u16, Vec<u8>) {
    let authority = endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(authority).expect("connect");
    let authorization = "AWS4-HMAC-SHA256 Credential=testing/20261206/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0";
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: {authorization}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read");
    let split = response.windows(4).position(|window| window == b"\r\n\r\n").expect("headers") + 4;
    let head = text(&response[..split]);
    let status = head.split(' ').nth(1).and_then(|code| code.parse().ok()).expect("status");
    let mut body = response[split..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = body.windows(2).position(|window| window == b"\r\n") {
        let size = usize::from_str_radix(text(&body[..line_end]).trim(), 16).expect("chunk size");
        if size == 0 {
            break;
        }
        out.extend_from_slice(&body[line_end + 2..line_end + 2 + size]);
        body = &body[line_end + 4 + size..];
    }
    out
}

/// With `[blobs] backend = "s3"`, packages go to the bucket (moto's S3 server: a local stand-in that
/// speaks the S3 REST protocol, not AWS).
#[test]
fn evidence_packages_go_to_an_s3_bucket_when_configured() {
    let Some(endpoint) = aluskort_testkit::s3_test_endpoint() else { return };
    let bucket = format!("evidence-{}", std::process::id());
    let (status, _) = http(&endpoint, "PUT", &format!("/{bucket}"));
    assert_eq!(status, 200, "CreateBucket");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("aluskort.toml");
    std::fs::write(
        &config,
        format!(
            "[blobs]\nbackend = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\naccess_key_id = \"${{S3_KEY}}\"\n\
             secret_access_key = \"${{S3_SECRET}}\"\nkey_prefix = \"prod\"\n"
        ),
    )
    .expect("config");
    let mut command = aluskort();
    command.env("S3_KEY", "testing").env("S3_SECRET", "testing");
    let investigations = {
        let output = run(command
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path())
            .arg("triage")
            .arg(aluskort_testkit::sentinel_alerts_path()));
        assert!(output.status.success(), "{}", text(&output.stderr));
        text(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok()?["investigation_id"].as_str().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    let out = dir.path().join("package.json");
    let output = run(aluskort()
        .env("S3_KEY", "testing")
        .env("S3_SECRET", "testing")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["audit", "evidence", &investigations[0], "--out"])
        .arg(&out));
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(stdout.contains(&format!("in s3://{bucket} at {endpoint}")), "{stdout}");
    assert!(!stdout.contains("testing"), "credentials are never printed: {stdout}");
    let key = stdout.split(" stored ").nth(1).and_then(|rest| rest.split(' ').next()).expect("key");
    let (status, body) = http(&endpoint, "GET", &format!("/{bucket}/prod/{key}"));
    assert_eq!(status, 200, "the object is in the bucket under the deployment prefix");
    assert_eq!(body, std::fs::read(&out).expect("--out"));
    assert!(!dir.path().join("blobs").exists(), "nothing in local files");
}
