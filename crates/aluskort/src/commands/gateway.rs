//! `aluskort gateway screen [FILE] [--jsonl]`: the injection screen on untrusted text. Plain input
//! is one text; `--jsonl` reads `{"id", "text"}` lines. Prints `{"id", "verdict", "reasons"}` each.

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Value, json};

use crate::commands::read_input;

pub fn screen(input: Option<&Path>, jsonl: bool) -> anyhow::Result<ExitCode> {
    let (name, bytes) = read_input(input.unwrap_or(Path::new("-")))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if !jsonl {
        let screening = aluskort_gateway::screen(&String::from_utf8_lossy(&bytes));
        writeln!(out, "{}", json!({"id": Value::Null, "verdict": screening.verdict, "reasons": screening.reasons}))?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut bad = 0_usize;
    for (index, line) in bytes.lines().enumerate() {
        let line = line.with_context(|| format!("{name}:{}: not UTF-8", index + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let record: Value = match serde_json::from_str(&line) {
            Ok(record) => record,
            Err(error) => {
                eprintln!("error: {name}:{}: invalid JSON: {error}", index + 1);
                bad += 1;
                continue;
            }
        };
        let Some(text) = record.get("text").and_then(Value::as_str) else {
            eprintln!("error: {name}:{}: missing string field \"text\"", index + 1);
            bad += 1;
            continue;
        };
        let screening = aluskort_gateway::screen(text);
        let id = record.get("id").cloned().unwrap_or(Value::Null);
        writeln!(out, "{}", json!({"id": id, "verdict": screening.verdict, "reasons": screening.reasons}))?;
    }
    out.flush()?;
    Ok(if bad > 0 { ExitCode::from(2) } else { ExitCode::SUCCESS })
}
