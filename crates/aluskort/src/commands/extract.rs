//! `aluskort extract`: indicators in text, one JSON line each (`{"type", "value"}`), or with
//! `--jsonl`, one `{"id", "iocs"}` line per `{"id", "text"}` input line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aluskort_extract::extract_iocs;
use serde_json::{Value, json};

use crate::commands::read_input;

pub async fn run(file: Option<&Path>, jsonl: bool) -> anyhow::Result<ExitCode> {
    let path = file.map_or_else(|| PathBuf::from("-"), Path::to_path_buf);
    let (name, bytes) = read_input(&path)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if !jsonl {
        let text = String::from_utf8_lossy(&bytes);
        for ioc in extract_iocs(&text) {
            writeln!(out, "{}", serde_json::to_string(&ioc)?)?;
        }
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut failures = 0_usize;
    for (index, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed: Result<Value, String> = serde_json::from_slice(line).map_err(|error| error.to_string());
        let (id, text) = match &parsed {
            Ok(value) => match value.get("text").and_then(Value::as_str) {
                Some(text) => (value.get("id").cloned().unwrap_or(Value::Null), text),
                None => {
                    eprintln!("error: {name}:{}: missing string field \"text\"", index + 1);
                    failures += 1;
                    continue;
                }
            },
            Err(error) => {
                eprintln!("error: {name}:{}: invalid JSON: {error}", index + 1);
                failures += 1;
                continue;
            }
        };
        writeln!(out, "{}", json!({"id": id, "iocs": extract_iocs(text)}))?;
    }
    out.flush()?;
    Ok(if failures > 0 { ExitCode::from(2) } else { ExitCode::SUCCESS })
}
