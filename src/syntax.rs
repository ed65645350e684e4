//! Source text to AST: the lexer, the parser, the AST and its printer.
//!
//! Invariant: [`parse`] never fails and never panics; it returns a tree and
//! the diagnostics of every independent error it found.

pub mod ast;
pub mod fmt;
pub mod lexer;
pub mod parser;
pub mod print;

use crate::diag::Diagnostic;
use crate::span::LineIndex;

/// Lexes and parses a whole program (or REPL input).
pub fn parse(src: &str) -> (ast::Program, Vec<Diagnostic>) {
    let lexed = lexer::lex(src);
    let mut diagnostics = lexed.diagnostics;
    if !lexed.balanced {
        return (ast::Program::default(), diagnostics);
    }
    let lines = LineIndex::new(src);
    let mut first_on_line = vec![false; src.len() + 1];
    let mut last_line = 0;
    for (_, span) in &lexed.tokens {
        let line = lines.line(span.start);
        if line != last_line {
            first_on_line[span.start] = true;
            last_line = line;
        }
    }
    let (program, parse_diags) = parser::parse_tokens(&lexed.tokens, src.len(), &first_on_line);
    diagnostics.extend(parse_diags);
    (program, diagnostics)
}
