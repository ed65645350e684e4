//! Where a run's output goes: the human report (stdout, or stderr under
//! `--json`, or nowhere under `--quiet`), the result lines (printed also
//! under `--quiet`, named by their run) and the JSON lines of DESIGN.md.

use std::io::Write;

/// Where output goes.
pub struct Sink<'a> {
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
    pub json: bool,
    pub quiet: bool,
    /// Draw a progress bar per epoch on stderr (a terminal, not --quiet).
    pub progress: bool,
}

impl Sink<'_> {
    /// A line of the human report.
    pub(super) fn human(&mut self, s: &str) {
        if self.quiet {
            return;
        }
        let w: &mut dyn Write = if self.json {
            &mut *self.stderr
        } else {
            &mut *self.stdout
        };
        let _ = writeln!(w, "{s}");
    }

    /// A result line (the final metrics): printed also under `--quiet`,
    /// which drops only the progress and the per-epoch table, and there
    /// named by its run.
    pub(super) fn result(&mut self, run: &str, s: &str) {
        if self.json {
            return;
        }
        let _ = if self.quiet {
            writeln!(self.stdout, "run {run}: {s}")
        } else {
            writeln!(self.stdout, "{s}")
        };
    }

    /// A JSON line (under `--json` only).
    pub(super) fn json(&mut self, s: &str) {
        if self.json {
            let _ = writeln!(self.stdout, "{s}");
        }
    }
}
