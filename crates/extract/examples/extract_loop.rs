fn main() {
    let bundle: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("/work/shared/data/mitre/enterprise-attack-v18.1.json").unwrap()).unwrap();
    let mut text = String::new();
    for o in bundle["objects"].as_array().unwrap() {
        if let Some(d) = o["description"].as_str() {
            text.push_str(d);
            text.push_str("\n\n");
        }
    }
    let t = std::time::Instant::now();
    let mut n = 0;
    for _ in 0..10 {
        n += aluskort_extract::extract_iocs(&text).len();
    }
    eprintln!("{n} {:.1} MB/s", 10.0 * text.len() as f64 / t.elapsed().as_secs_f64() / 1e6);
}
