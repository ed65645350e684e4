//! A REPL script from a pipe or a file: one result per input, no prompts,
//! inputs continued while a bracket is open, lines capped at
//! [`MAX_INPUT`], and exit 1 when any input failed.

use super::{Reply, Session};

/// Whether `text` leaves a bracket open (so the input continues on the next
/// line). Brackets inside strings and comments do not count.
pub fn unbalanced(text: &str) -> bool {
    let mut b = Brackets::default();
    b.feed(text);
    b.open()
}

/// The bracket depth of text fed to it a piece at a time (strings and
/// comments skipped), so a script's open input is scanned once, not again
/// at each of its lines.
#[derive(Clone, Copy, Debug, Default)]
pub struct Brackets {
    depth: i64,
    in_str: bool,
    in_comment: bool,
}

impl Brackets {
    pub fn feed(&mut self, text: &str) {
        for c in text.chars() {
            match c {
                '\n' => self.in_comment = false,
                _ if self.in_comment => {}
                '"' => self.in_str = !self.in_str,
                _ if self.in_str => {}
                '#' => self.in_comment = true,
                '(' | '[' | '{' => self.depth += 1,
                ')' | ']' | '}' => self.depth -= 1,
                _ => {}
            }
        }
    }

    /// Whether a bracket is still open.
    pub fn open(&self) -> bool {
        self.depth > 0
    }
}

/// The longest input a script may give, in bytes (16 MiB): a longer line
/// is an error and is read past without being kept, so memory does not
/// grow with it.
pub const MAX_INPUT: usize = 16 << 20;

/// One line of a script, as [`read_script_line`] found it.
enum ScriptLine {
    /// The line's text, with its newline when it has one.
    Text(String),
    /// Not UTF-8: the offset of the first byte that is not.
    NotUtf8(usize),
    /// Over [`MAX_INPUT`]: its length in bytes (read past, not kept).
    TooLong(u64),
    /// The input cannot be read (the message).
    Unreadable(String),
    End,
}

/// Reads one line of at most [`MAX_INPUT`] bytes into `buf` (reused between
/// lines); a longer one is streamed past to its newline.
fn read_script_line(input: &mut dyn std::io::BufRead, buf: &mut Vec<u8>) -> ScriptLine {
    use std::io::{BufRead, Read};
    buf.clear();
    // One byte past the cap tells a line at the cap from a longer one.
    let limit = MAX_INPUT as u64 + 1;
    match (&mut *input).take(limit).read_until(b'\n', buf) {
        Ok(0) => return ScriptLine::End,
        Ok(_) => {}
        Err(e) => return ScriptLine::Unreadable(e.to_string()),
    }
    if buf.len() > MAX_INPUT && !buf.ends_with(b"\n") {
        let mut length = buf.len() as u64;
        buf.clear();
        loop {
            let (used, ended) = match input.fill_buf() {
                Ok([]) => break,
                Ok(bytes) => match bytes.iter().position(|b| *b == b'\n') {
                    Some(i) => (i, true),
                    None => (bytes.len(), false),
                },
                Err(e) => return ScriptLine::Unreadable(e.to_string()),
            };
            input.consume(used + usize::from(ended));
            length += used as u64;
            if ended {
                break;
            }
        }
        return ScriptLine::TooLong(length);
    }
    match String::from_utf8(std::mem::take(buf)) {
        Ok(text) => ScriptLine::Text(text),
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            *buf = e.into_bytes();
            ScriptLine::NotUtf8(at)
        }
    }
}

/// Scripted use: reads every input from `input`, evaluates each (an input
/// continues over lines while a bracket is open), writes one result per
/// input to `out` and each error to `err`; no prompts, no colour. A line
/// that is not UTF-8 text or is over [`MAX_INPUT`] bytes is an error naming
/// it, and the script goes on. Returns at `:quit` or the end of the input:
/// whether every input succeeded (`dlc repl` then exits 0, else 1).
pub fn run_script(
    input: &mut dyn std::io::BufRead,
    out: &mut dyn std::io::Write,
    err: &mut dyn std::io::Write,
) -> bool {
    let mut session = Session::new(false);
    let mut failed = false;
    let mut report = |out: &mut dyn std::io::Write, e: &str| {
        failed = true;
        let _ = out.flush();
        let _ = write!(err, "{e}");
        if !e.ends_with('\n') {
            let _ = writeln!(err);
        }
        let _ = err.flush();
    };
    // The input being gathered (while a bracket is open) and the number of
    // the line it began on.
    let mut pending = String::new();
    let mut brackets = Brackets::default();
    let mut first = 0usize;
    let mut number = 0usize;
    let mut buf = Vec::new();
    loop {
        let line = read_script_line(input, &mut buf);
        if !matches!(line, ScriptLine::End | ScriptLine::Unreadable(_)) {
            number += 1;
        }
        // What an open input loses when one of its lines is bad.
        let dropped = |pending: &str| {
            if pending.is_empty() {
                String::new()
            } else {
                format!(" (with the input begun on line {first})")
            }
        };
        let end = match line {
            ScriptLine::Text(text) => {
                if pending.is_empty() {
                    first = number;
                }
                if pending.len() + text.trim_end_matches(['\n', '\r']).len() > MAX_INPUT {
                    report(out, &format!(
                        "error: the input begun on line {first} is over {} MiB at line {number}; skipped",
                        MAX_INPUT >> 20
                    ));
                    pending.clear();
                    brackets = Brackets::default();
                    continue;
                }
                pending.push_str(&text);
                brackets.feed(&text);
                if brackets.open() {
                    continue;
                }
                false
            }
            ScriptLine::NotUtf8(at) => {
                report(
                    out,
                    &format!(
                        "error: line {number} is not UTF-8 text (from its byte {}); skipped{}",
                        at + 1,
                        dropped(&pending)
                    ),
                );
                pending.clear();
                brackets = Brackets::default();
                continue;
            }
            ScriptLine::TooLong(length) => {
                report(
                    out,
                    &format!(
                    "error: line {number} is {length} bytes, over the limit of {} MiB; skipped{}",
                    MAX_INPUT >> 20,
                    dropped(&pending)
                ),
                );
                pending.clear();
                brackets = Brackets::default();
                continue;
            }
            ScriptLine::Unreadable(e) => {
                report(out, &format!("error: cannot read line {}: {e}", number + 1));
                true
            }
            ScriptLine::End => true,
        };
        if end && pending.trim().is_empty() {
            return !failed;
        }
        let text = std::mem::take(&mut pending);
        brackets = Brackets::default();
        match session.eval(text.trim_end_matches(['\n', '\r'])) {
            Ok(Reply::Text(t)) => {
                let _ = writeln!(out, "{t}");
            }
            Ok(Reply::Nothing) => {}
            Ok(Reply::Quit) => return !failed,
            Err(e) => report(out, &e),
        }
        if end {
            return !failed;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_bracket_continues_the_input() {
        assert!(unbalanced("let y = [[1.0, 2.0],"));
        assert!(!unbalanced("let y = [[1.0, 2.0], [3.0, 4.0]]"));
        assert!(!unbalanced("f(\"(\") # ( in a string and a comment"));
        assert!(unbalanced("sum(x,\n  axis=0"));
    }
}
