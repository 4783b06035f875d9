use serde_json::json;

use super::*;

fn parse(value: Value) -> (AlertEntities, SanitizeReport) {
    let mut report = SanitizeReport::default();
    let entities = parse_entities(&value, &mut report);
    (entities, report)
}

#[test]
fn resolves_refs_and_visits_nested_entities_once() {
    let entities = json!([
        {"$id": "2", "Name": "nathans", "NTDomain": "vnevado", "Sid": "S-1-5-21-1", "Type": "account"},
        {"$id": "3", "ProcessId": "7472", "CommandLine": "powershell.exe -enc AAAA",
         "ImageFile": {"$id": "4", "Directory": "C:\\Windows\\System32", "Name": "powershell.exe",
            "FileHashes": [{"$id": "5", "Algorithm": "SHA1", "Value": "7C04EC2377E32B3C7742F581F6C5437464DD2CF2", "Type": "filehash"}],
            "Type": "file"},
         "Account": {"$ref": "2"},
         "Type": "process"},
        {"$ref": "4"},
        {"$ref": "5"},
        {"$ref": "2"}
    ]);
    let text = Value::String(entities.to_string());
    let (parsed, report) = parse(text);
    assert_eq!(parsed.accounts.len(), 1);
    assert_eq!(parsed.processes.len(), 1);
    assert_eq!(parsed.processes[0].image_file.as_deref(), Some("C:\\Windows\\System32\\powershell.exe"));
    assert_eq!(parsed.processes[0].account.as_deref(), Some("nathans"));
    assert_eq!(parsed.files.len(), 1);
    assert_eq!(parsed.files[0].hashes[0].value, "7c04ec2377e32b3c7742f581f6c5437464dd2cf2");
    assert_eq!(parsed.file_hashes.len(), 1);
    assert!(parsed.parse_errors.is_empty(), "{:?}", parsed.parse_errors);
    assert_eq!(report.rejected, 0);
}

#[test]
fn keeps_unknown_and_unbucketed_types_under_other() {
    let (parsed, _) = parse(json!([
        {"$id": "1", "Hive": "HKEY_LOCAL_MACHINE", "Key": "SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run", "Type": "registry-key"},
        {"$id": "2", "KeyName": "x", "Type": "registrykey"},
        {"$id": "3", "AppId": 11161, "Name": "Office 365", "Type": "cloud-application"},
        {"$id": "4", "Foo": "bar", "Type": "brand-new-type"}
    ]));
    let types: Vec<&str> = parsed.other.iter().map(|o| o.entity_type.as_str()).collect();
    assert_eq!(types, vec!["registry-key", "registrykey", "cloud-application", "brand-new-type"]);
    assert_eq!(parsed.other[2].attributes.get("AppId"), Some(&json!(11161)));
}

#[test]
fn reports_bad_json_and_bad_values_without_failing() {
    let (parsed, _) = parse(Value::String("[{not json".into()));
    assert_eq!(parsed.parse_errors.len(), 1);
    let (parsed, report) = parse(json!([{"$id": "1", "Address": "999.1.1.1", "Type": "ip"}, {"$ref": "77"}]));
    assert!(parsed.ips.is_empty());
    assert_eq!(report.rejected, 1);
    assert_eq!(parsed.parse_errors, vec!["dangling $ref \"77\"".to_owned()]);
}

#[test]
fn survives_cycles_and_deep_nesting() {
    let (parsed, _) = parse(json!([{"$id": "1", "Type": "process", "ParentProcess": {"$ref": "1"}}]));
    assert_eq!(parsed.processes.len(), 1);
    let mut deep = json!({"Type": "file", "Name": "x"});
    for _ in 0..100 {
        deep = json!({"Type": "process", "ParentProcess": deep});
    }
    let (parsed, _) = parse(json!([deep]));
    assert!(!parsed.parse_errors.is_empty());
}

fn shared_alerts() -> Vec<Value> {
    let path = aluskort_testkit::sentinel_alerts_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
    text.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("bad fixture line: {error}"))).collect()
}

#[test]
fn parses_every_real_sentinel_alert_without_errors() {
    let alerts = shared_alerts();
    assert_eq!(alerts.len(), 26);
    let mut totals = [0usize; 4];
    for alert in &alerts {
        let (parsed, _) = parse(alert["Entities"].clone());
        assert!(parsed.parse_errors.is_empty(), "{}: {:?}", alert["SystemAlertId"], parsed.parse_errors);
        assert!(!parsed.is_empty(), "{} has entities", alert["SystemAlertId"]);
        totals[0] += parsed.accounts.len();
        totals[1] += parsed.hosts.len();
        totals[2] += parsed.processes.len();
        totals[3] += parsed.other.len();
    }
    assert!(totals.iter().all(|&count| count > 0), "accounts, hosts, processes, other all present: {totals:?}");
}

#[test]
fn first_real_alert_maps_its_powershell_process_tree() {
    let alerts = shared_alerts();
    let (parsed, _) = parse(alerts[0]["Entities"].clone());
    let account = &parsed.accounts[0];
    assert_eq!(account.upn.as_deref(), Some("nathans@vnevado.alpineskihouse.co"));
    assert_eq!(account.sid.as_deref(), Some("S-1-5-21-1240151660-3534038288-105586567-4122"));
    assert!(parsed.ips.iter().any(|ip| ip.address == "72.5.72.208"));
    let powershell = parsed.processes.iter().find(|p| p.process_id.as_deref() == Some("7472")).expect("process 7472");
    assert_eq!(powershell.image_file.as_deref(), Some("C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"));
    assert!(powershell.parent_image_file.as_deref().is_some_and(|p| p.ends_with("WindowsTerminal.exe")));
    assert!(parsed.file_hashes.iter().any(|h| h.value == "3247bcfd60f6dd25f34cb74b5889ab10ef1b3ec72b4d4b3d95b5b25b534560b8"));
}
