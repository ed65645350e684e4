//! The lexer: source text to tokens, with logos.
//!
//! Invariant: lexing never fails. A character that starts no token becomes
//! [`Token::Error`] (reported once, by [`lex`]), so the parser always gets a
//! complete token stream and can report errors past the bad character.

use logos::Logos;
use std::fmt;

use crate::diag::{Code, Diagnostic};
use crate::span::Span;

/// The deepest bracket or prefix-operator nesting the parser accepts. The
/// parser is recursive descent, so this bounds its stack use; 10,000-deep
/// input gets a diagnostic instead of a stack overflow.
pub const MAX_NESTING: usize = 256;

#[derive(Logos, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[logos(skip r"[ \t\r\n\f]+")]
#[logos(skip(r"#[^\n]*", allow_greedy = true))]
pub enum Token<'src> {
    Error,

    #[token("data")]
    Data,
    #[token("model")]
    Model,
    #[token("param")]
    Param,
    #[token("let")]
    Let,
    #[token("fn")]
    Fn,
    #[token("train")]
    Train,
    #[token("on")]
    On,
    #[token("true")]
    True,
    #[token("false")]
    False,
    #[token("and")]
    And,
    #[token("or")]
    Or,
    #[token("not")]
    Not,

    #[regex(r"[A-Za-z_][A-Za-z0-9_]*")]
    Ident(&'src str),
    #[regex(r"[0-9][0-9_]*", priority = 3)]
    Int(&'src str),
    #[regex(r"[0-9][0-9_]*\.[0-9_]*([eE][+-]?[0-9]+)?")]
    #[regex(r"[0-9][0-9_]*[eE][+-]?[0-9]+")]
    #[regex(r"\.[0-9][0-9_]*([eE][+-]?[0-9]+)?")]
    Float(&'src str),
    /// A string literal; the slice excludes the quotes. No escapes: paths and
    /// column names never need them.
    #[regex(r#""[^"\n]*""#, |lex| { let s = lex.slice(); &s[1..s.len() - 1] })]
    Str(&'src str),

    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token(",")]
    Comma,
    #[token(":")]
    Colon,
    #[token(";")]
    Semi,
    #[token(".")]
    Dot,
    #[token("->")]
    Arrow,
    #[token("=")]
    Eq,
    #[token("+=")]
    PlusEq,
    #[token("-=")]
    MinusEq,
    #[token("*=")]
    StarEq,
    #[token("/=")]
    SlashEq,
    #[token("+")]
    Plus,
    #[token("-")]
    Minus,
    #[token("*")]
    Star,
    #[token("/")]
    Slash,
    #[token("@")]
    At,
    #[token("**")]
    StarStar,
    #[token("==")]
    EqEq,
    #[token("!=")]
    NotEq,
    #[token("<")]
    Lt,
    #[token("<=")]
    Le,
    #[token(">")]
    Gt,
    #[token(">=")]
    Ge,
}

impl fmt::Display for Token<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let s = match self {
            Token::Error => "an invalid character",
            Token::Data => "`data`",
            Token::Model => "`model`",
            Token::Param => "`param`",
            Token::Let => "`let`",
            Token::Fn => "`fn`",
            Token::Train => "`train`",
            Token::On => "`on`",
            Token::True => "`true`",
            Token::False => "`false`",
            Token::And => "`and`",
            Token::Or => "`or`",
            Token::Not => "`not`",
            Token::Ident(s) => return write!(f, "name `{s}`"),
            Token::Int(s) | Token::Float(s) => return write!(f, "number `{s}`"),
            Token::Str(s) => return write!(f, "string \"{s}\""),
            Token::LParen => "`(`",
            Token::RParen => "`)`",
            Token::LBracket => "`[`",
            Token::RBracket => "`]`",
            Token::LBrace => "`{`",
            Token::RBrace => "`}`",
            Token::Comma => "`,`",
            Token::Colon => "`:`",
            Token::Semi => "`;`",
            Token::Dot => "`.`",
            Token::Arrow => "`->`",
            Token::Eq => "`=`",
            Token::PlusEq => "`+=`",
            Token::MinusEq => "`-=`",
            Token::StarEq => "`*=`",
            Token::SlashEq => "`/=`",
            Token::Plus => "`+`",
            Token::Minus => "`-`",
            Token::Star => "`*`",
            Token::Slash => "`/`",
            Token::At => "`@`",
            Token::StarStar => "`**`",
            Token::EqEq => "`==`",
            Token::NotEq => "`!=`",
            Token::Lt => "`<`",
            Token::Le => "`<=`",
            Token::Gt => "`>`",
            Token::Ge => "`>=`",
        };
        f.write_str(s)
    }
}

/// The result of lexing: every token with its span, and the diagnostics.
/// `balanced` is false when brackets don't match or nest too deeply; the
/// parser is then skipped, since its errors would only repeat these.
pub struct Lexed<'src> {
    pub tokens: Vec<(Token<'src>, Span)>,
    pub diagnostics: Vec<Diagnostic>,
    pub balanced: bool,
}

/// Splits `src` into tokens. Never fails: see the module invariant.
pub fn lex(src: &str) -> Lexed<'_> {
    let mut tokens = Vec::new();
    let mut diagnostics = Vec::new();
    let mut lexer = Token::lexer(src);
    while let Some(result) = lexer.next() {
        let range = lexer.span();
        let span = Span::new(range.start, range.end);
        match result {
            Ok(tok) => tokens.push((tok, span)),
            Err(()) => {
                let text = &src[range.clone()];
                let (message, label) = if text.starts_with('"') {
                    (
                        "unterminated string".to_string(),
                        "this string has no closing `\"` on its line".to_string(),
                    )
                } else {
                    let shown: String = text.chars().take(1).collect();
                    (
                        format!("unexpected character `{}`", shown.escape_debug()),
                        "not part of any token".to_string(),
                    )
                };
                // Merge runs of bad characters into one diagnostic.
                let merged =
                    matches!(tokens.last(), Some((Token::Error, last)) if last.end == span.start);
                if merged {
                    if let Some((_, last)) = tokens.last_mut() {
                        last.end = span.end;
                    }
                    if let Some(d) = diagnostics.last_mut() {
                        let d: &mut Diagnostic = d;
                        d.extend_primary(span.end);
                    }
                } else {
                    tokens.push((Token::Error, span));
                    diagnostics
                        .push(Diagnostic::new(Code::BadCharacter, message).label(span, label));
                }
            }
        }
    }
    let balanced = check_nesting(&tokens, &mut diagnostics);
    Lexed {
        tokens,
        diagnostics,
        balanced,
    }
}

/// Matches brackets and bounds the depth of the tree the parser will build:
/// open brackets, plus runs of prefix operators, plus the infix operators
/// of the expression chains still open (`a + b + c` nests two deep). The
/// parser and every later stage recurse over that tree, so this bound is
/// what keeps them off the end of the stack.
fn check_nesting(tokens: &[(Token<'_>, Span)], diagnostics: &mut Vec<Diagnostic>) -> bool {
    let mut depth = Depth::default();
    let mut prev: Option<Token<'_>> = None;
    let mut ok = true;
    for &(tok, span) in tokens {
        let after_operand = ends_operand(prev);
        prev = Some(tok);
        depth.count_operator(tok, after_operand);
        let close = match tok {
            Token::LParen | Token::LBracket | Token::LBrace => {
                depth.stack.push((tok, span, 0));
                None
            }
            Token::RParen => Some(Token::LParen),
            Token::RBracket => Some(Token::LBracket),
            Token::RBrace => Some(Token::LBrace),
            _ => None,
        };
        if depth.levels() > MAX_NESTING {
            diagnostics.push(depth.too_deep(span));
            return false;
        }
        if let Some(open) = close {
            match depth.stack.pop() {
                Some((t, _, ops)) if t == open => depth.total_ops -= ops,
                Some((t, open_span, _)) => {
                    diagnostics.push(
                        Diagnostic::new(
                            Code::UnbalancedDelimiter,
                            format!("mismatched closing delimiter {tok}"),
                        )
                        .label(span, format!("{tok} does not close this {t}"))
                        .label(open_span, "the unclosed delimiter"),
                    );
                    return false;
                }
                None => {
                    diagnostics.push(
                        Diagnostic::new(
                            Code::UnbalancedDelimiter,
                            format!("unexpected closing delimiter {tok}"),
                        )
                        .label(span, "nothing is open here"),
                    );
                    ok = false;
                }
            }
        }
    }
    for (tok, span, _) in depth.stack.into_iter().rev().take(1) {
        diagnostics.push(
            Diagnostic::new(
                Code::UnbalancedDelimiter,
                format!("unclosed delimiter {tok}"),
            )
            .label(span, "this is never closed"),
        );
        ok = false;
    }
    ok
}

/// Whether a token after `prev` follows an operand, so that `-` is binary
/// and `(`, `[` or `.` continue a postfix chain.
fn ends_operand(prev: Option<Token<'_>>) -> bool {
    matches!(
        prev,
        Some(
            Token::Ident(_)
                | Token::Int(_)
                | Token::Float(_)
                | Token::Str(_)
                | Token::True
                | Token::False
                | Token::RParen
                | Token::RBracket
        )
    )
}

/// What [`check_nesting`] has open at a point of the token stream.
#[derive(Default)]
struct Depth<'s> {
    /// Per open bracket: (the bracket, its span, infix operators in its chain).
    stack: Vec<(Token<'s>, Span, usize)>,
    /// Infix operators in the chain outside every bracket.
    top_ops: usize,
    /// Infix operators in all the open chains.
    total_ops: usize,
    /// Prefix operators in a row.
    prefix_run: usize,
}

impl Depth<'_> {
    /// Counts `tok` as a prefix operator, as one more infix or postfix
    /// operator in its level's chain, or as the end of that chain.
    fn count_operator(&mut self, tok: Token<'_>, after_operand: bool) {
        let level_ops = match self.stack.last_mut() {
            Some(top) => &mut top.2,
            None => &mut self.top_ops,
        };
        match tok {
            Token::Minus | Token::Plus | Token::Not if !after_operand => self.prefix_run += 1,
            // Postfix chains (`x.T.T`, `f(a)(b)`, `x[0][0]`) nest too.
            Token::Dot | Token::LParen | Token::LBracket if after_operand => {
                *level_ops += 1;
                self.total_ops += 1;
                self.prefix_run = 0;
            }
            Token::Plus
            | Token::Minus
            | Token::Star
            | Token::Slash
            | Token::At
            | Token::StarStar
            | Token::EqEq
            | Token::NotEq
            | Token::Lt
            | Token::Le
            | Token::Gt
            | Token::Ge
            | Token::And
            | Token::Or => {
                *level_ops += 1;
                self.total_ops += 1;
                self.prefix_run = 0;
            }
            Token::Comma
            | Token::Semi
            | Token::Colon
            | Token::Eq
            | Token::PlusEq
            | Token::MinusEq
            | Token::StarEq
            | Token::SlashEq
            | Token::Data
            | Token::Model
            | Token::Param
            | Token::Let
            | Token::Fn
            | Token::Train => {
                self.total_ops -= *level_ops;
                *level_ops = 0;
                self.prefix_run = 0;
            }
            _ => self.prefix_run = 0,
        }
    }

    /// The depth of the tree so far: open brackets, prefix operators in a
    /// row and the operators of the open chains.
    fn levels(&self) -> usize {
        self.stack.len() + self.prefix_run + self.total_ops
    }

    /// The diagnostic for a tree deeper than [`MAX_NESTING`] at `span`.
    fn too_deep(&self, span: Span) -> Diagnostic {
        // Say which of the three made it deep: a long flat chain of
        // operators is not what a user calls nesting.
        let (message, note) = if self.total_ops >= self.stack.len().max(self.prefix_run) {
            (
                format!("an expression with more than {MAX_NESTING} operators in a chain (each operator of `a + b + c + …` is one level of the tree it builds)"),
                "split the chain with `let` bindings (`let s1 = a + b + …` then `s1 + …`), or add up a tensor with sum([...])",
            )
        } else if self.prefix_run >= self.stack.len() {
            (
                format!("more than {MAX_NESTING} prefix operators in a row"),
                "each `-`, `+` or `not` in front of an operand is one level",
            )
        } else {
            (
                format!("brackets nested deeper than {MAX_NESTING} levels"),
                "split the expression with `let` bindings",
            )
        };
        Diagnostic::new(Code::NestingTooDeep, message)
            .label(span, "too deep here")
            .note(note)
    }
}
