//! `dlc check`: parse, type- and shape-check; diagnostics only.

use std::fmt::Write as _;

use super::program::{data_warnings, load, render, Output, ProgramArgs};

/// `dlc check FILE`: diagnostics only.
pub fn cmd_check(args: &ProgramArgs) -> Output {
    let l = match load(args) {
        Ok(l) => l,
        Err(e) => return Output::fail(e + "\n"),
    };
    if !l.diagnostics.is_empty() {
        let n = l.diagnostics.len();
        let mut err = render(&l, args.color);
        let _ = writeln!(
            err,
            "{}: {n} error{}",
            l.file_name,
            if n == 1 { "" } else { "s" }
        );
        return Output::fail(err);
    }
    let mut err = data_warnings(&l);
    let runs: Vec<&str> = l.checked.runs.iter().map(|r| r.name.as_str()).collect();
    let _ = writeln!(
        err,
        "{}: ok ({} data source{}, {} run{}{})",
        l.file_name,
        l.checked.data.len(),
        if l.checked.data.len() == 1 { "" } else { "s" },
        runs.len(),
        if runs.len() == 1 { "" } else { "s" },
        if runs.is_empty() {
            String::new()
        } else {
            format!(": {}", runs.join(", "))
        }
    );
    Output {
        stdout: String::new(),
        stderr: err,
        code: 0,
    }
}
