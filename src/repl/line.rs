//! The terminal front end of `dlc repl`: rustyline's line editing, history
//! kept in a file between sessions, an input that continues over lines
//! while a bracket is open, and tab completion of bindings, functions,
//! builtins and `:commands`.

use std::borrow::Cow;
use std::path::PathBuf;

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Editor, Helper};

use super::script::unbalanced;
use super::{Reply, Session};

/// Completion candidates, refreshed after every input.
struct Help {
    names: Vec<String>,
}

impl Completer for Help {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        // rustyline's `pos` is a byte offset; past the end or inside a
        // character there is nothing to complete.
        let Some(before) = line.get(..pos) else {
            return Ok((pos, Vec::new()));
        };
        let start = word_start(before);
        let word = &before[start..];
        if word.is_empty() {
            return Ok((pos, Vec::new()));
        }
        let commands = super::COMMANDS
            .iter()
            .filter_map(|(c, _)| c.strip_prefix(':'))
            .map(|c| format!(":{}", c.split_whitespace().next().unwrap_or(c)));
        let mut found: Vec<String> = self
            .names
            .iter()
            .cloned()
            .chain(crate::check::builtins::NAMES.iter().map(|s| s.to_string()))
            .chain(commands)
            .filter(|n| n.starts_with(word))
            .collect();
        found.sort();
        found.dedup();
        Ok((
            start,
            found
                .into_iter()
                .map(|n| Pair {
                    display: n.clone(),
                    replacement: n,
                })
                .collect(),
        ))
    }
}

/// The byte offset where the word ending `before` starts: after the last
/// character that cannot be part of a name or a `:command` (which may be
/// several bytes long: `x·y`, `a→b`).
pub fn word_start(before: &str) -> usize {
    before
        .char_indices()
        .rfind(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == ':'))
        .map_or(0, |(i, c)| i + c.len_utf8())
}

impl Hinter for Help {
    type Hint = String;
}

impl Highlighter for Help {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Validator for Help {
    /// An input with an open bracket continues on the next line.
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        Ok(if unbalanced(ctx.input()) {
            ValidationResult::Incomplete
        } else {
            ValidationResult::Valid(None)
        })
    }
}

impl Helper for Help {}

/// Where history is kept: `$DLC_HISTORY`, else `~/.dlc_history`.
fn history_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("DLC_HISTORY") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".dlc_history"))
}

/// Runs the interactive REPL on the terminal until `:quit` or Ctrl-D.
/// Returns the exit code.
pub fn interactive(color: bool) -> i32 {
    let mut ed: Editor<Help, rustyline::history::DefaultHistory> = match Editor::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot open the terminal: {e}");
            return 1;
        }
    };
    let mut session = Session::new(color);
    ed.set_helper(Some(Help { names: Vec::new() }));
    let history = history_path();
    if let Some(h) = &history {
        // A first session has no history file yet.
        let _ = ed.load_history(h);
    }
    println!("dlc repl: tensor expressions in the .dl language (:help lists the commands, Ctrl-D leaves)");
    loop {
        match ed.readline(">>> ") {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = ed.add_history_entry(line.as_str());
                }
                match session.eval(&line) {
                    Ok(Reply::Text(t)) => println!("{t}"),
                    Ok(Reply::Nothing) => {}
                    Ok(Reply::Quit) => break,
                    Err(e) if e.ends_with('\n') => eprint!("{e}"),
                    Err(e) => eprintln!("{e}"),
                }
                if let Some(h) = ed.helper_mut() {
                    h.names = session.names();
                }
            }
            // Ctrl-C abandons the line being typed, as in Python.
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("error: {e}");
                break;
            }
        }
    }
    if let Some(h) = &history {
        if let Err(e) = ed.save_history(h) {
            eprintln!("note: history not saved to {}: {e}", h.display());
        }
    }
    0
}
