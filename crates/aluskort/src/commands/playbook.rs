//! `aluskort playbook lint [PATH...]` and `aluskort playbook list [--dir DIR]`.
//!
//! `lint` checks playbook files with the same parser and rules the runtime loader uses: one line
//! per problem (`file: playbook <id> step <id>: reason`), then a summary; exit 1 when any problem
//! is an error. Without paths it checks the built-in set; a directory means every `*.toml` in it.
//! `list` shows the set in effect: the built-ins, overridden by the playbooks of a directory.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aluskort_respond::playbook::{self, PlaybookFile, PlaybookSet, Problem};

pub fn lint(paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut files: Vec<PlaybookFile> = Vec::new();
    let mut problems: Vec<Problem> = Vec::new();
    if paths.is_empty() {
        files = playbook::builtin_files();
    }
    for path in paths {
        if path.is_dir() {
            match playbook::read_dir(path) {
                Ok(found) if found.is_empty() => {
                    problems.push(Problem::warning(&path.display().to_string(), None, None, "no *.toml files in this directory"));
                }
                Ok(found) => files.extend(found),
                Err(unreadable) => problems.extend(unreadable),
            }
        } else {
            match playbook::read_file(path) {
                Ok(file) => files.push(file),
                Err(unreadable) => problems.push(unreadable),
            }
        }
    }
    let (loaded, found) = playbook::check(&files);
    problems.extend(found);
    for problem in &problems {
        println!("{problem}");
    }
    let errors = problems.iter().filter(|problem| problem.is_error()).count();
    let warnings = problems.len() - errors;
    println!("{} playbook(s) in {} file(s): {errors} error(s), {warnings} warning(s)", loaded.len(), files.len());
    Ok(if errors > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

pub fn list(dir: Option<&Path>) -> anyhow::Result<()> {
    let set = match PlaybookSet::load(dir) {
        Ok(set) => set,
        Err(problems) => {
            for problem in &problems {
                eprintln!("{problem}");
            }
            let errors = problems.iter().filter(|problem| problem.is_error()).count();
            anyhow::bail!("the playbook set does not load: {errors} error(s) (run `aluskort playbook lint` on the files)");
        }
    };
    for warning in set.warnings() {
        eprintln!("{warning}");
    }
    let rows: Vec<[String; 5]> = set
        .playbooks()
        .iter()
        .map(|loaded| {
            let meta = &loaded.playbook.playbook;
            let name = if meta.enabled { meta.name.clone() } else { format!("{} (disabled)", meta.name) };
            [
                format!("{} v{}", meta.id, meta.version),
                name,
                format!("{} step(s)", loaded.playbook.steps.len()),
                loaded.source.clone(),
                loaded.playbook.criteria.summary(),
            ]
        })
        .collect();
    let width = |column: usize| rows.iter().map(|row| row[column].chars().count()).max().unwrap_or(0);
    let (id_width, name_width, steps_width, source_width) = (width(0), width(1), width(2), width(3));
    for [id, name, steps, source, criteria] in &rows {
        println!("{id:<id_width$}  {name:<name_width$}  {steps:<steps_width$}  {source:<source_width$}  {criteria}");
    }
    println!("{} playbook(s)", rows.len());
    Ok(())
}
