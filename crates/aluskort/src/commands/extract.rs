//! `aluskort extract`: indicators in text, one JSON line each (`{"type", "value"}`), or with
//! `--jsonl`, one `{"id", "iocs"}` line per `{"id", "text"}` input line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aluskort_extract::extract_iocs;
use serde_json::json;

use crate::commands::{answer_jsonl, read_input};

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
    drop(out);
    answer_jsonl(&name, &bytes, |id, text| json!({"id": id, "iocs": extract_iocs(text)}))
}
