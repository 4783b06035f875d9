//! `aluskort gateway screen [FILE] [--jsonl]`: the injection screen on untrusted text. Plain input
//! is one text; `--jsonl` reads `{"id", "text"}` lines. Prints `{"id", "verdict", "reasons"}` each.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use serde_json::{Value, json};

use crate::commands::{answer_jsonl, read_input};

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
    drop(out);
    answer_jsonl(&name, &bytes, |id, text| {
        let screening = aluskort_gateway::screen(text);
        json!({"id": id, "verdict": screening.verdict, "reasons": screening.reasons})
    })
}
