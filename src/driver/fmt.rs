//! `dlc fmt`: programs in place in the canonical layout, or stdin to stdout.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::diag::{self};

use super::program::Output;

/// `dlc fmt [--check] [FILES]`: each file formatted in place (written
/// atomically, only when it changes), or with `--check` listed on stdout
/// when it would change (exit 1); with no file, stdin to stdout. A file
/// that does not parse keeps its text and gets its diagnostics (exit 1).
pub fn cmd_fmt(files: &[PathBuf], check: bool, stdin: Option<&str>, color: bool) -> Output {
    let mut out = Output {
        stdout: String::new(),
        stderr: String::new(),
        code: 0,
    };
    if files.is_empty() {
        let src = stdin.unwrap_or("");
        match crate::syntax::fmt::format(src) {
            Ok(text) => {
                if check && text != src {
                    out.stdout.push_str("<stdin>\n");
                    out.code = 1;
                } else if !check {
                    out.stdout = text;
                }
            }
            Err(d) => {
                out.stderr = diag::render(&d, "<stdin>", src, color);
                out.code = 1;
            }
        }
        return out;
    }
    for path in files {
        let name = path.display().to_string();
        let src = match std::fs::read_to_string(path) {
            Ok(s) => s,
            Err(e) => {
                let _ = writeln!(out.stderr, "error: cannot read {name}: {e}");
                out.code = 1;
                continue;
            }
        };
        match crate::syntax::fmt::format(&src) {
            Ok(text) if text == src => {}
            Ok(_) if check => {
                let _ = writeln!(out.stdout, "{name}");
                out.code = 1;
            }
            Ok(text) => {
                if let Err(e) = crate::output::write(path, &[], text.as_bytes()) {
                    let _ = writeln!(out.stderr, "error: {e}");
                    out.code = 1;
                }
            }
            Err(d) => {
                out.stderr.push_str(&diag::render(&d, &name, &src, color));
                out.code = 1;
            }
        }
    }
    out
}
