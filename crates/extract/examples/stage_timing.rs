use std::time::Instant;
fn main() {
    let path = "/work/shared/data/mitre/enterprise-attack-v18.1.json";
    let bundle: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut text = String::new();
    for o in bundle["objects"].as_array().unwrap() {
        if let Some(d) = o["description"].as_str() {
            text.push_str(d);
            text.push_str("\n\n");
        }
    }
    println!("{} bytes", text.len());
    let pats = [
        ("url", r#"(?i)\b(?:https?|ftps?|sftp|wss?)://[^\s<>"'`{}|\\^\[\]]+"#),
        ("email", r"(?i)[a-z0-9._%+'-]+@(?:[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]"),
        ("domain", r"(?i)(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})"),
        ("ipv4", r"(?:\d{1,3}\.){3}\d{1,3}"),
        ("ipv6", r"(?i)(?:[0-9a-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9a-f]{0,4})"),
        ("hex", r"[0-9A-Fa-f]{32,}"),
        ("cve", r"(?i)\bCVE-\d{4}-\d{4,7}\b"),
        ("tech", r"\b(?:AML\.)?T\d{4}(?:\.\d{3})?\b"),
        ("mac", r"(?-u:\b)[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){5}(?-u:\b)"),
        ("asn", r"\bASN?[ ]?(\d{1,10})\b"),
        ("winpath", r#"(?i)(?:(?-u:\b)[a-z]:\\|\\\\[a-z0-9_.$-]+\\|%[a-z_]+%\\)[^\r\n\t"'<>|*?]+"#),
        ("posix", r"(?:^|[\s'(=])(/(?:[\w.-]+/)+[\w.-]+)"),
    ];
    for (name, p) in pats {
        let r = regex::Regex::new(p).unwrap();
        let t = Instant::now();
        let n = r.find_iter(&text).count();
        let e = t.elapsed();
        println!("{name:8} {n:7} matches {:7.1} MB/s", text.len() as f64 / e.as_secs_f64() / 1e6);
    }
    let t = Instant::now();
    let r = aluskort_extract::refang::refang(&text);
    println!("refang {:.1} MB/s {}", text.len() as f64 / t.elapsed().as_secs_f64() / 1e6, r.len());
    let t = Instant::now();
    let n = aluskort_extract::extract_iocs(&text).len();
    println!("all {n} {:.1} MB/s", text.len() as f64 / t.elapsed().as_secs_f64() / 1e6);
}
