//! The parser: tokens to AST, with chumsky.
//!
//! Invariant: parsing never fails. It returns a [`Program`] (with
//! `Item::Error` / `Stmt::Error` / `ExprKind::Error` where it recovered) and
//! the diagnostics. Recovery happens at two levels: a broken top-level item
//! is skipped up to the next item keyword, and a broken statement inside a
//! model, function or train block is skipped up to the next line.

use chumsky::input::{Input as _, MappedInput, ValueInput};
use chumsky::pratt::{infix, left, postfix, prefix, right};
use chumsky::prelude::*;

use super::ast::*;
use super::lexer::Token;
use crate::diag::{Code, Diagnostic};
use crate::span::{Span, Spanned};

type Extra<'t, 's> =
    extra::Full<Rich<'t, Token<'s>, SimpleSpan>, extra::SimpleState<LineStarts<'t>>, ()>;

/// Byte offsets where a line begins after only whitespace: a statement
/// starts on a new line, so recovery inside a block resumes there.
#[derive(Clone, Copy)]
pub struct LineStarts<'t>(pub &'t [bool]);

fn sp(s: SimpleSpan) -> Span {
    Span::new(s.start, s.end)
}

type Input<'t, 's> = MappedInput<'t, Token<'s>, SimpleSpan, &'t [(Token<'s>, SimpleSpan)]>;

/// Parses a token stream. `first_on_line[i]` says whether token-start byte
/// `i` is the first token on its line.
pub fn parse_tokens<'s>(
    tokens: &[(Token<'s>, Span)],
    src_len: usize,
    first_on_line: &[bool],
) -> (Program, Vec<Diagnostic>) {
    let toks: Vec<(Token<'s>, SimpleSpan)> = tokens
        .iter()
        .map(|&(t, s)| (t, SimpleSpan::from(s.start..s.end)))
        .collect();
    let error_starts: Vec<usize> = tokens
        .iter()
        .filter(|(t, _)| *t == Token::Error)
        .map(|(_, s)| s.start)
        .collect();
    let input: Input<'_, 's> = toks
        .as_slice()
        .map(SimpleSpan::from(src_len..src_len), |(t, s)| (t, s));
    let mut state = extra::SimpleState(LineStarts(first_on_line));
    let (out, errs) = program_parser()
        .parse_with_state(input, &mut state)
        .into_output_errors();
    let mut diags = Vec::new();
    for e in errs {
        let span = sp(*e.span());
        // The lexer already reported bad characters; don't repeat them.
        if error_starts.contains(&span.start) {
            continue;
        }
        diags.push(rich_to_diag(&e, span));
    }
    (out.unwrap_or_default(), diags)
}

fn rich_to_diag(e: &Rich<'_, Token<'_>, SimpleSpan>, span: Span) -> Diagnostic {
    let found = match e.found() {
        Some(t) => t.to_string(),
        None => "end of input".to_string(),
    };
    let mut expected: Vec<String> = e
        .expected()
        .map(|p| match p {
            chumsky::error::RichPattern::Token(t) => t.to_string(),
            chumsky::error::RichPattern::Label(l) => l.to_string(),
            chumsky::error::RichPattern::EndOfInput => "end of input".to_string(),
            other => other.to_string(),
        })
        .collect();
    expected.sort();
    expected.dedup();
    let message = match e.reason() {
        chumsky::error::RichReason::Custom(msg) => msg.to_string(),
        chumsky::error::RichReason::ExpectedFound { .. } => format!("unexpected {found}"),
    };
    let label = if expected.is_empty() {
        "unexpected here".to_string()
    } else if expected.len() <= 6 {
        format!("expected {}", join_or(&expected))
    } else {
        format!(
            "expected {}, or one of {} others",
            expected[..5].join(", "),
            expected.len() - 5
        )
    };
    let mut d = Diagnostic::new(Code::Syntax, message).label(span, label);
    if let Some(ctx) = e.contexts().next() {
        d = d.label(sp(*ctx.1), format!("while parsing this {}", ctx.0));
    }
    d
}

fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

fn ident<'t, 's: 't, I>() -> impl Parser<'t, I, Ident, Extra<'t, 's>> + Clone
where
    I: ValueInput<'t, Token = Token<'s>, Span = SimpleSpan>,
{
    select! { Token::Ident(s) => s.to_string() }
        .map_with(|s, e| Spanned::new(s, sp(e.span())))
        .labelled("a name")
}

/// Skips one statement's worth of tokens: up to the next token that starts
/// a line, or a `;` or `}` (not consumed), skipping bracketed groups whole.
fn stmt_junk<'t, 's: 't, I>() -> impl Parser<'t, I, Span, Extra<'t, 's>> + Clone
where
    I: ValueInput<'t, Token = Token<'s>, Span = SimpleSpan>,
{
    let group = token_tree();
    let not_line_start = any().try_map_with(|t: Token<'s>, e| {
        let span: SimpleSpan = e.span();
        let starts: &mut extra::SimpleState<LineStarts<'t>> = e.state();
        let at_start = starts.0 .0.get(span.start).copied().unwrap_or(false);
        if at_start
            || matches!(
                t,
                Token::Semi
                    | Token::RBrace
                    | Token::RParen
                    | Token::RBracket
                    | Token::LParen
                    | Token::LBracket
                    | Token::LBrace
            )
        {
            Err(Rich::custom(span, "stop"))
        } else {
            Ok(())
        }
    });
    group
        .clone()
        .or(any()
            .and_is(one_of([Token::RBrace, Token::RParen, Token::RBracket]).not())
            .ignored())
        .then(group.or(not_line_start).repeated())
        .map_with(|_, e| sp(e.span()))
}

/// A balanced bracketed group of any tokens.
fn token_tree<'t, 's: 't, I>() -> impl Parser<'t, I, (), Extra<'t, 's>> + Clone
where
    I: ValueInput<'t, Token = Token<'s>, Span = SimpleSpan>,
{
    recursive(|tree| {
        let inner = tree.or(none_of([
            Token::LParen,
            Token::RParen,
            Token::LBracket,
            Token::RBracket,
            Token::LBrace,
            Token::RBrace,
        ])
        .ignored());
        choice((
            inner
                .clone()
                .repeated()
                .delimited_by(just(Token::LParen), just(Token::RParen)),
            inner
                .clone()
                .repeated()
                .delimited_by(just(Token::LBracket), just(Token::RBracket)),
            inner
                .repeated()
                .delimited_by(just(Token::LBrace), just(Token::RBrace)),
        ))
        .ignored()
    })
}

/// `tok` when it is not the first token on its line. A call's `(`, an
/// index's `[` and a binary `+` or `-` continue the line they are on, so a
/// line that starts with `(`, `[`, `-` or `+` starts a new statement (a
/// body's result after a `let`), as in Go and Swift. To continue an
/// expression onto the next line, end the line with the operator.
fn same_line<'t, 's: 't, I>(tok: Token<'s>) -> impl Parser<'t, I, Token<'s>, Extra<'t, 's>> + Clone
where
    I: ValueInput<'t, Token = Token<'s>, Span = SimpleSpan>,
{
    any().try_map_with(move |t: Token<'s>, e| {
        let span: SimpleSpan = e.span();
        let starts: &mut extra::SimpleState<LineStarts<'t>> = e.state();
        let first = starts.0 .0.get(span.start).copied().unwrap_or(false);
        if t == tok && !first {
            Ok(t)
        } else {
            Err(Rich::custom(span, format!("expected {tok}")))
        }
    })
}

fn type_ann<'t, 's: 't, I>() -> impl Parser<'t, I, TypeAnn, Extra<'t, 's>> + Clone
where
    I: ValueInput<'t, Token = Token<'s>, Span = SimpleSpan>,
{
    let dim = choice((
        select! { Token::Int(s) => s }.try_map(|s: &str, span| {
            s.replace('_', "")
                .parse::<u64>()
                .map(DimAnn::Fixed)
                .map_err(|_| Rich::custom(span, format!("dimension `{s}` is too large")))
        }),
        select! { Token::Ident(s) => DimAnn::Name(s.to_string()) },
    ))
    .map_with(|d, e| Spanned::new(d, sp(e.span())))
    .labelled("a dimension");
    ident()
        .then(
            dim.separated_by(just(Token::Comma))
                .allow_trailing()
                .collect::<Vec<_>>()
                .delimited_by(just(Token::LBracket), just(Token::RBracket))
                .or_not(),
        )
        .map_with(|(dtype, dims), e| TypeAnn {
            dtype,
            dims: dims.unwrap_or_default(),
            span: sp(e.span()),
        })
        .labelled("a type")
}

fn parse_int(s: &str) -> Option<i64> {
    s.replace('_', "").parse::<i64>().ok()
}

fn expr<'t, 's: 't, I>() -> impl Parser<'t, I, Expr, Extra<'t, 's>> + Clone
where
    I: ValueInput<'t, Token = Token<'s>, Span = SimpleSpan>,
{
    recursive(|expr| {
        with_operators(atom(expr.clone()), postfix_op(expr))
            .labelled("an expression")
            .boxed()
    })
}

/// A literal or a name.
fn literal<'t, 's: 't, I>() -> impl Parser<'t, I, ExprKind, Extra<'t, 's>> + Clone
where
    I: ValueInput<'t, Token = Token<'s>, Span = SimpleSpan>,
{
    select! {
        Token::Int(s) => match parse_int(s) { Some(v) => ExprKind::Int(v), None => ExprKind::Float(s.replace('_', "").parse::<f64>().unwrap_or(f64::INFINITY)) },
        Token::Float(s) => ExprKind::Float(s.replace('_', "").parse::<f64>().unwrap_or(f64::NAN)),
        Token::Str(s) => ExprKind::Str(s.to_string()),
        Token::True => ExprKind::Bool(true),
        Token::False => ExprKind::Bool(false),
        Token::Ident(s) => ExprKind::Name(s.to_string()),
    }
    .labelled("a value")
}

/// An operand of the operators: a literal, a name, a list `[a, b]` or a
/// parenthesized expression, with a broken bracketed group recovered as
/// an error node.
fn atom<'t, 's: 't, I, P>(expr: P) -> impl Parser<'t, I, Expr, Extra<'t, 's>> + Clone
where
    I: ValueInput<'t, Token = Token<'s>, Span = SimpleSpan>,
    P: Parser<'t, I, Expr, Extra<'t, 's>> + Clone + 't,
{
    let list = expr
        .clone()
        .separated_by(just(Token::Comma))
        .allow_trailing()
        .collect::<Vec<_>>()
        .delimited_by(just(Token::LBracket), just(Token::RBracket))
        .map(ExprKind::List)
        .labelled("a list");

    choice((literal(), list))
        .map_with(|k, e| Spanned::new(k, sp(e.span())))
        .or(expr.delimited_by(just(Token::LParen), just(Token::RParen)))
        .recover_with(via_parser(nested_delimiters(
            Token::LParen,
            Token::RParen,
            [
                (Token::LBracket, Token::RBracket),
                (Token::LBrace, Token::RBrace),
            ],
            |s| Spanned::new(ExprKind::Error, sp(s)),
        )))
        .recover_with(via_parser(nested_delimiters(
            Token::LBracket,
            Token::RBracket,
            [
                (Token::LParen, Token::RParen),
                (Token::LBrace, Token::RBrace),
            ],
            |s| Spanned::new(ExprKind::Error, sp(s)),
        )))
        .boxed()
}

/// What follows an operand as a postfix operator.
enum Post {
    Call(Vec<Arg>),
    Index(Vec<IndexArg>),
    Field(Ident),
}

/// A postfix operator: a call's arguments `(a, name = b)`, an index
/// `[i, a:b:c]` or a field `.name`.
fn postfix_op<'t, 's: 't, I, P>(expr: P) -> impl Parser<'t, I, Post, Extra<'t, 's>> + Clone
where
    I: ValueInput<'t, Token = Token<'s>, Span = SimpleSpan>,
    P: Parser<'t, I, Expr, Extra<'t, 's>> + Clone,
{
    let arg = ident()
        .then_ignore(just(Token::Eq))
        .or_not()
        .then(expr.clone())
        .map(|(name, value)| Arg { name, value });
    let args = arg
        .separated_by(just(Token::Comma))
        .allow_trailing()
        .collect::<Vec<_>>()
        .delimited_by(same_line(Token::LParen), just(Token::RParen))
        .labelled("arguments");

    let indices = index_arg(expr)
        .separated_by(just(Token::Comma))
        .at_least(1)
        .allow_trailing()
        .collect::<Vec<_>>()
        .delimited_by(same_line(Token::LBracket), just(Token::RBracket))
        .labelled("an index");

    choice((
        args.map(Post::Call),
        indices.map(Post::Index),
        just(Token::Dot).ignore_then(ident()).map(Post::Field),
    ))
}

/// One index inside `[...]`: an expression or a slice `start:end:step`
/// (each part optional, but not all of an index).
fn index_arg<'t, 's: 't, I, P>(expr: P) -> impl Parser<'t, I, IndexArg, Extra<'t, 's>> + Clone
where
    I: ValueInput<'t, Token = Token<'s>, Span = SimpleSpan>,
    P: Parser<'t, I, Expr, Extra<'t, 's>> + Clone,
{
    expr.clone()
        .or_not()
        .then(
            just(Token::Colon)
                .ignore_then(expr.clone().or_not())
                .then(just(Token::Colon).ignore_then(expr.or_not()).or_not())
                .or_not(),
        )
        .try_map(|(first, rest), span| match (first, rest) {
            (Some(e), None) => Ok(IndexArg::Single(e)),
            (None, None) => Err(Rich::custom(span, "empty index")),
            (start, Some((end, step))) => Ok(IndexArg::Slice {
                start,
                end,
                step: step.flatten(),
                span: sp(span),
            }),
        })
}

/// The operators over `atom`, by precedence: postfix (`post`), `**`,
/// prefix `-` and `+`, `* / @`, `+ -`, comparisons, `not`, `and`, `or`.
fn with_operators<'t, 's: 't, I, A, O>(
    atom: A,
    post: O,
) -> impl Parser<'t, I, Expr, Extra<'t, 's>> + Clone
where
    I: ValueInput<'t, Token = Token<'s>, Span = SimpleSpan>,
    A: Parser<'t, I, Expr, Extra<'t, 's>> + Clone,
    O: Parser<'t, I, Post, Extra<'t, 's>> + Clone,
{
    let bin = |op: BinOp| {
        move |l: Expr, _, r: Expr, e: &mut chumsky::input::MapExtra<'t, '_, I, Extra<'t, 's>>| {
            Spanned::new(
                ExprKind::Binary {
                    op,
                    lhs: Box::new(l),
                    rhs: Box::new(r),
                },
                sp(e.span()),
            )
        }
    };
    let un = |op: UnOp| {
        move |_, r: Expr, e: &mut chumsky::input::MapExtra<'t, '_, I, Extra<'t, 's>>| {
            Spanned::new(
                ExprKind::Unary {
                    op,
                    operand: Box::new(r),
                },
                sp(e.span()),
            )
        }
    };

    atom.pratt((
        postfix(
            10,
            post,
            |base: Expr, p: Post, e: &mut chumsky::input::MapExtra<'t, '_, I, Extra<'t, 's>>| {
                let kind = match p {
                    Post::Call(args) => ExprKind::Call {
                        callee: Box::new(base),
                        args,
                    },
                    Post::Index(indices) => ExprKind::Index {
                        base: Box::new(base),
                        indices,
                    },
                    Post::Field(name) => ExprKind::Field {
                        base: Box::new(base),
                        name,
                    },
                };
                Spanned::new(kind, sp(e.span()))
            },
        ),
        infix(right(9), just(Token::StarStar), bin(BinOp::Pow)),
        prefix(8, just(Token::Minus), un(UnOp::Neg)),
        prefix(8, just(Token::Plus), un(UnOp::Plus)),
        infix(left(7), just(Token::Star), bin(BinOp::Mul)),
        infix(left(7), just(Token::Slash), bin(BinOp::Div)),
        infix(left(7), just(Token::At), bin(BinOp::MatMul)),
        infix(left(6), same_line(Token::Plus), bin(BinOp::Add)),
        infix(left(6), same_line(Token::Minus), bin(BinOp::Sub)),
        infix(left(5), just(Token::EqEq), bin(BinOp::Eq)),
        infix(left(5), just(Token::NotEq), bin(BinOp::Ne)),
        infix(left(5), just(Token::Lt), bin(BinOp::Lt)),
        infix(left(5), just(Token::Le), bin(BinOp::Le)),
        infix(left(5), just(Token::Gt), bin(BinOp::Gt)),
        infix(left(5), just(Token::Ge), bin(BinOp::Ge)),
        prefix(4, just(Token::Not), un(UnOp::Not)),
        infix(left(3), just(Token::And), bin(BinOp::And)),
        infix(left(2), just(Token::Or), bin(BinOp::Or)),
    ))
}

fn let_stmt<'t, 's: 't, I>() -> impl Parser<'t, I, Let, Extra<'t, 's>> + Clone
where
    I: ValueInput<'t, Token = Token<'s>, Span = SimpleSpan>,
{
    just(Token::Let)
        .ignore_then(ident())
        .then(just(Token::Colon).ignore_then(type_ann()).or_not())
        .then_ignore(just(Token::Eq))
        .then(expr())
        .map_with(|((name, ty), value), e| Let {
            name,
            ty,
            value,
            span: sp(e.span()),
        })
        .labelled("a `let` binding")
}

/// The statements of a `{ ... }` body, each recovered separately.
fn body<'t, 's: 't, I>(allow_params: bool) -> impl Parser<'t, I, Vec<Stmt>, Extra<'t, 's>> + Clone
where
    I: ValueInput<'t, Token = Token<'s>, Span = SimpleSpan>,
{
    let param = just(Token::Param)
        .ignore_then(ident())
        .then_ignore(just(Token::Colon))
        .then(type_ann())
        .then(just(Token::Eq).ignore_then(expr()).or_not())
        .map_with(|((name, ty), init), e| ParamDecl {
            name,
            ty,
            init,
            span: sp(e.span()),
        })
        .labelled("a parameter")
        .try_map(move |p, span| {
            if allow_params {
                Ok(Stmt::Param(p))
            } else {
                Err(Rich::custom(
                    span,
                    "`param` belongs in a model, not a function",
                ))
            }
        });
    choice((param, let_stmt().map(Stmt::Let), expr().map(Stmt::Expr)))
        .recover_with(via_parser(stmt_junk().map(Stmt::Error)))
        .then_ignore(just(Token::Semi).repeated())
        .repeated()
        .collect::<Vec<_>>()
        .delimited_by(just(Token::LBrace), just(Token::RBrace))
}

/// One top-level item.
fn item<'t, 's: 't, I>() -> impl Parser<'t, I, Item, Extra<'t, 's>> + Clone
where
    I: ValueInput<'t, Token = Token<'s>, Span = SimpleSpan>,
{
    choice((
        data_decl(),
        model_decl(),
        fn_decl(),
        train_decl(),
        let_stmt().map(Item::Let),
        assign(),
        expr().map(Item::Expr),
    ))
    .then_ignore(just(Token::Semi).repeated())
}

/// `data NAME = source`.
fn data_decl<'t, 's: 't, I>() -> impl Parser<'t, I, Item, Extra<'t, 's>> + Clone
where
    I: ValueInput<'t, Token = Token<'s>, Span = SimpleSpan>,
{
    just(Token::Data)
        .ignore_then(ident())
        .then_ignore(just(Token::Eq))
        .then(expr())
        .map_with(|(name, source), e| {
            Item::Data(DataDecl {
                name,
                source,
                span: sp(e.span()),
            })
        })
        .labelled("a data declaration")
}

/// `model NAME(x: T, ...) -> T { body }`, the output type optional.
fn model_decl<'t, 's: 't, I>() -> impl Parser<'t, I, Item, Extra<'t, 's>> + Clone
where
    I: ValueInput<'t, Token = Token<'s>, Span = SimpleSpan>,
{
    let input = ident().then_ignore(just(Token::Colon)).then(type_ann());
    just(Token::Model)
        .ignore_then(ident())
        .then(
            input
                .separated_by(just(Token::Comma))
                .allow_trailing()
                .collect::<Vec<_>>()
                .delimited_by(just(Token::LParen), just(Token::RParen)),
        )
        .then(just(Token::Arrow).ignore_then(type_ann()).or_not())
        .then(body(true))
        .map_with(|(((name, inputs), output), body), e| {
            Item::Model(ModelDecl {
                name,
                inputs,
                output,
                body,
                span: sp(e.span()),
            })
        })
        .labelled("a model")
}

/// `fn NAME(a, b) { body }` or `fn NAME(a, b) = expr`.
fn fn_decl<'t, 's: 't, I>() -> impl Parser<'t, I, Item, Extra<'t, 's>> + Clone
where
    I: ValueInput<'t, Token = Token<'s>, Span = SimpleSpan>,
{
    let fn_body = body(false).or(just(Token::Eq)
        .ignore_then(expr())
        .map(|e| vec![Stmt::Expr(e)]));
    just(Token::Fn)
        .ignore_then(ident())
        .then(
            ident()
                .separated_by(just(Token::Comma))
                .allow_trailing()
                .collect::<Vec<_>>()
                .delimited_by(just(Token::LParen), just(Token::RParen)),
        )
        .then(fn_body)
        .map_with(|((name, params), body), e| {
            Item::Fn(FnDecl {
                name,
                params,
                body,
                span: sp(e.span()),
            })
        })
        .labelled("a function")
}

/// `train RUN: MODEL on DATA { key = value ... }`, the run name optional;
/// each broken setting is skipped and marks the block broken.
fn train_decl<'t, 's: 't, I>() -> impl Parser<'t, I, Item, Extra<'t, 's>> + Clone
where
    I: ValueInput<'t, Token = Token<'s>, Span = SimpleSpan>,
{
    let setting = ident()
        .then_ignore(just(Token::Eq))
        .then(expr())
        .map(|(key, value)| Some(Setting { key, value }))
        .labelled("a setting `name = value`")
        .recover_with(via_parser(stmt_junk().to(None)))
        .then_ignore(just(Token::Semi).repeated());
    just(Token::Train)
        .ignore_then(ident().then_ignore(just(Token::Colon)).or_not())
        .then(ident())
        .then_ignore(just(Token::On))
        .then(ident())
        .then(
            setting
                .repeated()
                .collect::<Vec<_>>()
                .delimited_by(just(Token::LBrace), just(Token::RBrace)),
        )
        .map_with(|(((run, model), data), settings), e| {
            Item::Train(TrainDecl {
                run,
                model,
                data,
                broken: settings.iter().any(Option::is_none),
                settings: settings.into_iter().flatten().collect(),
                span: sp(e.span()),
            })
        })
        .labelled("a train block")
}

/// An update of a binding: `x += e` (and `-=`, `*=`, `/=`) or
/// `x[i, a:b] = e`.
fn assign<'t, 's: 't, I>() -> impl Parser<'t, I, Item, Extra<'t, 's>> + Clone
where
    I: ValueInput<'t, Token = Token<'s>, Span = SimpleSpan>,
{
    let assign_op = choice((
        just(Token::PlusEq).to(AssignOp::Add),
        just(Token::MinusEq).to(AssignOp::Sub),
        just(Token::StarEq).to(AssignOp::Mul),
        just(Token::SlashEq).to(AssignOp::Div),
    ));
    let index_all = expr()
        .or_not()
        .then(just(Token::Colon).ignore_then(expr().or_not()).or_not())
        .map_with(|(first, rest), e| match (first, rest) {
            (Some(x), None) => IndexArg::Single(x),
            (start, rest) => IndexArg::Slice {
                start,
                end: rest.flatten(),
                step: None,
                span: sp(e.span()),
            },
        })
        .separated_by(just(Token::Comma))
        .at_least(1)
        .collect::<Vec<_>>()
        .delimited_by(just(Token::LBracket), just(Token::RBracket));
    choice((
        ident()
            .then(assign_op)
            .map(|(target, op)| (target, None, op)),
        ident()
            .then(index_all)
            .then_ignore(just(Token::Eq))
            .map(|(target, idx)| (target, Some(idx), AssignOp::Set)),
    ))
    .then(expr())
    .map_with(|((target, index, op), value), e| {
        Item::Assign(Assign {
            target,
            index,
            op,
            value,
            span: sp(e.span()),
        })
    })
}

/// Top-level recovery: skip the failing item's first token, then whole
/// bracketed groups and plain tokens, up to the next item keyword.
fn item_junk<'t, 's: 't, I>() -> impl Parser<'t, I, Item, Extra<'t, 's>> + Clone
where
    I: ValueInput<'t, Token = Token<'s>, Span = SimpleSpan>,
{
    let starters = [
        Token::Data,
        Token::Model,
        Token::Fn,
        Token::Train,
        Token::Let,
        Token::LParen,
        Token::RParen,
        Token::LBracket,
        Token::RBracket,
        Token::LBrace,
        Token::RBrace,
    ];
    token_tree()
        .or(any().ignored())
        .then(token_tree().or(none_of(starters).ignored()).repeated())
        .map_with(|_, e| Item::Error(sp(e.span())))
}

fn program_parser<'t, 's: 't>() -> impl Parser<'t, Input<'t, 's>, Program, Extra<'t, 's>> {
    just(Token::Semi)
        .repeated()
        .ignore_then(
            item()
                .recover_with(via_parser(item_junk()))
                .repeated()
                .collect::<Vec<_>>(),
        )
        .then_ignore(end())
        .map(|items| Program { items })
}
