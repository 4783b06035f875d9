//! One module per command.

pub mod apikey;
pub mod approvals;
pub mod assets;
pub mod attack;
pub mod audit;
pub mod bench;
pub mod config;
pub mod context;
pub mod extract;
pub mod feedback;
pub mod gateway;
pub mod llm;
pub mod memory;
pub mod playbook;
#[cfg(feature = "redis")]
pub mod redis;
pub mod serve;
pub mod sources;
pub mod ti;
pub mod triage;

use std::io::Read;
use std::path::Path;

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::Value;

/// Reads a file, or standard input for `-`.
pub fn read_input(path: &Path) -> anyhow::Result<(String, Vec<u8>)> {
    if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin().read_to_end(&mut bytes).context("cannot read standard input")?;
        return Ok(("stdin".to_owned(), bytes));
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok((path.display().to_string(), bytes))
}

/// The `--jsonl` contract shared by `extract`, `attack suggest` and `gateway screen`: each
/// `{"id", "text"}` line of `bytes` gets one output line, `answer(id, text)`. A line that is not
/// JSON or has no string `text` is named on stderr (`name:line`) and the exit status becomes 2;
/// the other lines are still answered.
pub fn answer_jsonl(name: &str, bytes: &[u8], mut answer: impl FnMut(Value, &str) -> Value) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failures = 0_usize;
    for (index, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let record: Value = match serde_json::from_slice(line) {
            Ok(record) => record,
            Err(error) => {
                eprintln!("error: {name}:{}: invalid JSON: {error}", index + 1);
                failures += 1;
                continue;
            }
        };
        let Some(text) = record.get("text").and_then(Value::as_str) else {
            eprintln!("error: {name}:{}: missing string field \"text\"", index + 1);
            failures += 1;
            continue;
        };
        let id = record.get("id").cloned().unwrap_or(Value::Null);
        writeln!(out, "{}", answer(id, text))?;
    }
    out.flush()?;
    Ok(if failures > 0 { ExitCode::from(2) } else { ExitCode::SUCCESS })
}
