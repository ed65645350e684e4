//! `dlc fmt`: one canonical layout of a `.dl` program, printed from its
//! AST (issue #20).
//!
//! The layout: four spaces a level; one statement, parameter or setting a
//! line (`;` becomes a newline); one space around binary operators and
//! after commas; parentheses only where precedence needs them; a call or
//! list longer than the line ([`WIDTH`]) broken after `(`, one argument a
//! line, a trailing comma (none in an index), `)` back at the start's
//! indentation, and a
//! binary operation broken after its operator, as the grammar's rule for
//! continuing a line asks (grammar/README.md). Nothing is aligned to
//! anything else, so a one-line edit never moves other lines. Numbers and
//! strings keep their spelling (`1e-4` stays `1e-4`).
//!
//! Comments and blank lines: a comment on its own line stays on its own
//! line before what follows it; a comment after code stays after that
//! line; a comment after a call's argument, a list's item, an index or a
//! header's parameter (or after its opening bracket) stays after that
//! element, and its call or list breaks one element a line, the comment
//! after the element's comma; a comment after a binary operator stays
//! after it, the line broken there. Any other comment inside a statement
//! that spans lines moves to its own line just before the statement. Runs
//! of blank lines become one; none is added. So `fmt(fmt(x)) == fmt(x)`,
//! every comment survives, one kept on its line still follows the same
//! token, and the program parses to the same tree (tests/fmt.rs).

mod doc;

use super::ast::*;
use crate::diag::Diagnostic;
use crate::span::Span;
pub use doc::WIDTH;
use doc::{render, Doc};

/// Formats `src`, or returns the parser's diagnostics (a program that does
/// not parse is not formatted).
pub fn format(src: &str) -> Result<String, Vec<Diagnostic>> {
    let (program, diags) = super::parse(src);
    if !diags.is_empty() {
        return Err(diags);
    }
    let text = Source::new(src);
    let mut f = Formatter {
        src: &text,
        out: String::new(),
        used: vec![false; text.comments.len()],
    };
    let items: Vec<Anchor> = program.items.iter().map(item_anchor).collect();
    f.block(&items, Span::new(0, src.len()), 0, &|f, i, depth| {
        f.item(&program.items[i], depth)
    });
    // A comment nothing claimed (none should be left): kept at the end.
    for (i, c) in text.comments.iter().enumerate() {
        if !f.used[i] {
            f.out.push_str(&c.text);
            f.out.push('\n');
        }
    }
    let trimmed = f.out.trim_end_matches('\n');
    Ok(if trimmed.is_empty() {
        String::new()
    } else {
        format!("{trimmed}\n")
    })
}

/// The text of every comment of `src`, in order.
pub fn comments(src: &str) -> Vec<String> {
    Source::new(src)
        .comments
        .into_iter()
        .map(|c| c.text)
        .collect()
}

/// A comment: `#` to the end of its line, outside a string.
#[derive(Clone, Debug)]
struct Comment {
    start: usize,
    line: usize,
    /// Nothing but spaces before it on its line.
    own_line: bool,
    text: String,
}

/// The source's lines and comments.
struct Source<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
    comments: Vec<Comment>,
}

impl<'a> Source<'a> {
    fn new(text: &'a str) -> Source<'a> {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        let mut comments = Vec::new();
        for (line, &start) in line_starts.iter().enumerate() {
            let end = text[start..].find('\n').map_or(text.len(), |e| start + e);
            let l = &text[start..end];
            let mut in_str = false;
            for (i, ch) in l.char_indices() {
                match ch {
                    '"' => in_str = !in_str,
                    '#' if !in_str => {
                        comments.push(Comment {
                            start: start + i,
                            line,
                            own_line: l[..i].trim().is_empty(),
                            text: l[i..].trim_end().to_string(),
                        });
                        break;
                    }
                    _ => {}
                }
            }
        }
        Source {
            text,
            line_starts,
            comments,
        }
    }

    fn line(&self, pos: usize) -> usize {
        self.line_starts
            .partition_point(|s| *s <= pos)
            .saturating_sub(1)
    }

    /// Whether the expression at `s` stands in parentheses of its own in
    /// the source (the parentheses a user wrote around an operand are
    /// kept, needed or not).
    fn parenthesized(&self, s: Span) -> bool {
        let before = self.text.get(..s.start).unwrap_or("").trim_end();
        let after = self.text.get(s.end..).unwrap_or("").trim_start();
        before.ends_with('(') && after.starts_with(')') && {
            // Not a call's parentheses: `f(x)` has a name, `)` or `]` on
            // the same line before its `(`.
            let b = before[..before.len() - 1].trim_end_matches([' ', '\t']);
            !b.ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ')' || c == ']')
        }
    }

    /// The comment that trails code ending at `end`: on the same line,
    /// with nothing but spaces and at most one `,` between (an argument's
    /// or list item's comment, or the one after an opening bracket).
    fn trailing_comment(&self, end: usize) -> Option<usize> {
        let line = self.line(end.saturating_sub(1));
        let c = self
            .comments
            .iter()
            .position(|c| c.start >= end && c.line == line && !c.own_line)?;
        let between = self.text.get(end..self.comments[c].start)?;
        let only_space = between
            .chars()
            .all(|ch| ch == ' ' || ch == '\t' || ch == ',');
        (only_space && between.matches(',').count() <= 1).then_some(c)
    }

    /// The comment after the first `open` bracket at or after `from`
    /// (before `to`), on its line.
    fn open_comment(&self, from: usize, to: usize, open: char) -> Option<usize> {
        let pos = from + self.text.get(from..to)?.find(open)?;
        self.trailing_comment(pos + open.len_utf8())
            .filter(|c| !self.text[pos + 1..self.comments[*c].start].contains(','))
    }

    /// The comment after a binary operator `sym` that stands between
    /// `lhs_end` and `rhs_start` (with the `)` of a parenthesized left
    /// operand before it), on the operator's line.
    fn operator_comment(&self, lhs_end: usize, rhs_start: usize, sym: &str) -> Option<usize> {
        let c = self
            .comments
            .iter()
            .position(|c| (lhs_end..rhs_start).contains(&c.start) && !c.own_line)?;
        let between = self.text.get(lhs_end..self.comments[c].start)?;
        let op = between.trim_start_matches(|ch: char| ch == ')' || ch.is_whitespace());
        (op.trim() == sym).then_some(c)
    }

    /// A comment as a document: kept two spaces after its code.
    fn comment_doc(&self, c: Option<usize>) -> Option<Doc> {
        c.map(|c| Doc::Comment(c, self.comments[c].text.clone()))
    }

    /// `s` with the parentheses written around it (`(a)` of `f((a), b)`).
    fn with_parens(&self, mut s: Span) -> Span {
        while self.parenthesized(s) {
            let open = self.text[..s.start].trim_end().len() - 1;
            let after = &self.text[s.end..];
            let close = s.end + (after.len() - after.trim_start().len());
            s = Span::new(open, close + 1);
        }
        s
    }

    /// The source text of a span (a literal's spelling).
    fn slice(&self, s: Span) -> &str {
        self.text.get(s.start..s.end).unwrap_or("")
    }
}

/// Something that takes a line (or a block of lines) of its own: an item,
/// a statement, a setting; with the span its comments are found by.
#[derive(Clone, Copy, Debug)]
struct Anchor {
    span: Span,
}

fn item_anchor(i: &Item) -> Anchor {
    let span = match i {
        Item::Data(d) => d.span,
        Item::Model(m) => m.span,
        Item::Fn(f) => f.span,
        Item::Train(t) => t.span,
        Item::Let(l) => l.span,
        Item::Assign(a) => a.span,
        Item::Expr(e) => e.span,
        Item::Error(s) => *s,
    };
    Anchor { span }
}

impl Source<'_> {
    /// A block item's header: from its start to just after its `{` (its
    /// comments go before the item, unless the header line keeps them).
    fn header(&self, whole: Span, first_child: Option<Span>) -> Span {
        let end = self.body(whole, first_child).map_or(whole.end, |b| b.start);
        Span::new(whole.start, end)
    }

    /// A block item's body: from just after its `{` (the first outside a
    /// comment or string before its first child) to its end; `None`
    /// without a `{`.
    fn body(&self, whole: Span, first_child: Option<Span>) -> Option<Span> {
        let limit = first_child.map_or(whole.end, |c| c.start);
        let mut in_str = false;
        let bytes = self.text.as_bytes();
        let mut pos = whole.start;
        while pos < limit.min(bytes.len()) {
            if let Some(c) = self.comments.iter().find(|c| c.start == pos) {
                pos += c.text.len();
                continue;
            }
            match bytes[pos] {
                b'"' => in_str = !in_str,
                b'{' if !in_str => return Some(Span::new(pos + 1, whole.end)),
                _ => {}
            }
            pos += 1;
        }
        None
    }
}

fn stmt_span(s: &Stmt) -> Span {
    match s {
        Stmt::Param(p) => p.span,
        Stmt::Let(l) => l.span,
        Stmt::Expr(e) => e.span,
        Stmt::Error(s) => *s,
    }
}

fn setting_span(s: &Setting) -> Span {
    Span::new(s.key.span.start, s.value.span.end.max(s.key.span.end))
}

type Render<'r> = dyn Fn(&mut Formatter, usize, usize) + 'r;

struct Formatter<'a> {
    src: &'a Source<'a>,
    out: String,
    used: Vec<bool>,
}

impl Formatter<'_> {
    fn indent(&mut self, depth: usize) {
        for _ in 0..depth {
            self.out.push_str("    ");
        }
    }

    /// The comments at positions [from, to) not yet printed.
    fn comments_in(&self, from: usize, to: usize) -> Vec<usize> {
        (0..self.src.comments.len())
            .filter(|i| !self.used[*i])
            .filter(|i| (from..to).contains(&self.src.comments[*i].start))
            .collect()
    }

    fn comment_line(&mut self, i: usize, depth: usize) {
        self.used[i] = true;
        self.indent(depth);
        let text = self.src.comments[i].text.clone();
        self.out.push_str(&text);
        self.out.push('\n');
    }

    /// The entries of a region (the file, or a block's body) in order:
    /// the anchors (each rendered by `render(index, depth)`) and the
    /// comments between them on lines of their own, with one blank line
    /// wherever the source had one or more.
    fn block(&mut self, anchors: &[Anchor], region: Span, depth: usize, each: &Render) {
        // (start line, end line, what): a comment or an anchor.
        enum Entry {
            Comment(usize),
            Anchor(usize),
        }
        let mut entries: Vec<(usize, usize, usize, Entry)> = Vec::new();
        let mut taken = vec![false; self.src.comments.len()];
        for (ai, a) in anchors.iter().enumerate() {
            for c in self.comments_in(a.span.start, a.span.end) {
                taken[c] = true;
            }
            let last = self
                .src
                .line(a.span.end.saturating_sub(1).max(a.span.start));
            if let Some(t) = self.trailing(a.span.end, last) {
                taken[t] = true;
            }
            entries.push((
                a.span.start,
                self.src.line(a.span.start),
                last,
                Entry::Anchor(ai),
            ));
        }
        for c in self.comments_in(region.start, region.end) {
            if !taken[c] {
                let line = self.src.comments[c].line;
                entries.push((self.src.comments[c].start, line, line, Entry::Comment(c)));
            }
        }
        entries.sort_by_key(|e| e.0);
        let mut prev_end: Option<usize> = None;
        for (_, first, last, e) in entries {
            if let Some(p) = prev_end {
                if first > p + 1 && self.blank_between(p, first) {
                    self.out.push('\n');
                }
            }
            match e {
                Entry::Comment(c) => self.comment_line(c, depth),
                // Comments inside it that neither it nor a child keeps go
                // before it (`code_line`, `header_line`).
                Entry::Anchor(ai) => each(self, ai, depth),
            }
            prev_end = Some(last);
        }
    }

    /// Whether a line strictly between lines `a` and `b` is blank.
    fn blank_between(&self, a: usize, b: usize) -> bool {
        (a + 1..b).any(|l| {
            let s = self.src.line_starts[l];
            let e = self
                .src
                .line_starts
                .get(l + 1)
                .map_or(self.src.text.len(), |n| *n);
            self.src.text[s..e].trim().is_empty()
        })
    }

    /// The comment after position `end` on line `line`, with nothing but
    /// spaces and `;` between, if any.
    fn trailing(&self, end: usize, line: usize) -> Option<usize> {
        (0..self.src.comments.len()).find(|i| {
            let c = &self.src.comments[*i];
            let between = self.src.text.get(end..c.start).unwrap_or("x");
            !self.used[*i]
                && c.line == line
                && c.start >= end
                && !c.own_line
                && between
                    .chars()
                    .all(|ch| ch == ' ' || ch == '\t' || ch == ';')
        })
    }

    /// Ends a printed line: its trailing comment (the one after `end` on
    /// the source line of `end`), then a newline.
    fn end_line(&mut self, end: usize) {
        let line = self.src.line(end.saturating_sub(1));
        if let Some(t) = self.trailing(end, line) {
            self.used[t] = true;
            let text = self.src.comments[t].text.clone();
            self.out.push_str("  ");
            self.out.push_str(&text);
        }
        self.out.push('\n');
    }

    /// A line of code at `depth`: comments inside it first (on lines of
    /// their own), then the code laid out within the width.
    fn code_line(&mut self, span: Span, depth: usize, doc: Doc) {
        self.claim(&doc);
        for c in self.comments_in(span.start, span.end) {
            self.comment_line(c, depth);
        }
        self.indent(depth);
        let text = render(&doc, depth * 4);
        self.out.push_str(&text);
        self.end_line(span.end);
    }

    /// Marks the comments `doc` keeps on their lines as printed.
    fn claim(&mut self, doc: &Doc) {
        let mut kept = Vec::new();
        doc.comments(&mut kept);
        for c in kept {
            self.used[c] = true;
        }
    }

    fn item(&mut self, item: &Item, depth: usize) {
        let src = self.src;
        match item {
            Item::Data(d) => {
                let doc = Doc::concat(vec![
                    Doc::text(format!("data {} = ", d.name.node)),
                    expr(src, &d.source),
                ]);
                self.code_line(d.span, depth, doc);
            }
            Item::Model(m) => {
                let inputs = m
                    .inputs
                    .iter()
                    .map(|(n, t)| {
                        let doc = Doc::text(format!("{}: {}", n.node, super::print::ty(t)));
                        (doc, Span::new(n.span.start, t.span.end))
                    })
                    .collect();
                let inputs =
                    Elements::new(src, Span::new(m.name.span.end, m.span.end), '(', inputs);
                let mut head = vec![
                    Doc::text(format!("model {}", m.name.node)),
                    args_doc(inputs, "(", ")"),
                ];
                if let Some(t) = &m.output {
                    head.push(Doc::text(format!(" -> {}", super::print::ty(t))));
                }
                head.push(Doc::text(" {"));
                let header = src.header(m.span, m.body.first().map(stmt_span));
                self.header_line(Doc::concat(head), header, depth);
                self.body(&m.body, m.span, depth);
            }
            Item::Fn(f) => {
                let params = f
                    .params
                    .iter()
                    .map(|p| (Doc::text(p.node.clone()), p.span))
                    .collect();
                let params =
                    Elements::new(src, Span::new(f.name.span.end, f.span.end), '(', params);
                let head = Doc::concat(vec![
                    Doc::text(format!("fn {}", f.name.node)),
                    args_doc(params, "(", ")"),
                ]);
                if let [Stmt::Expr(e)] = f.body.as_slice() {
                    let doc = Doc::concat(vec![head, Doc::text(" = "), expr(src, e)]);
                    self.code_line(f.span, depth, doc);
                } else {
                    let header = src.header(f.span, f.body.first().map(stmt_span));
                    self.header_line(Doc::concat(vec![head, Doc::text(" {")]), header, depth);
                    self.body(&f.body, f.span, depth);
                }
            }
            Item::Train(t) => {
                let run = t
                    .run
                    .as_ref()
                    .map(|r| format!("{}: ", r.node))
                    .unwrap_or_default();
                let head = format!("train {run}{} on {} {{", t.model.node, t.data.node);
                let header = src.header(t.span, t.settings.first().map(setting_span));
                self.header_line(Doc::text(head), header, depth);
                let spans = t.settings.iter().map(setting_span).collect();
                self.children(spans, t.span, depth, &|f, i, d| {
                    let s = &t.settings[i];
                    let doc = Doc::concat(vec![
                        Doc::text(format!("{} = ", s.key.node)),
                        expr(f.src, &s.value),
                    ]);
                    f.code_line(setting_span(s), d, doc);
                });
            }
            Item::Let(l) => {
                let doc = let_doc(src, l);
                self.code_line(l.span, depth, doc);
            }
            Item::Assign(a) => {
                let op = a.op.symbol();
                let mut parts = vec![Doc::text(a.target.node.clone())];
                if let Some(idx) = &a.index {
                    parts.push(index_doc(
                        src,
                        Span::new(a.target.span.end, a.span.end),
                        idx,
                    ));
                }
                parts.push(Doc::text(format!(" {op} ")));
                parts.push(expr(src, &a.value));
                self.code_line(a.span, depth, Doc::concat(parts));
            }
            Item::Expr(e) => {
                let doc = expr(src, e);
                self.code_line(e.span, depth, doc);
            }
            // A well-formed program has none (`format` refuses the others).
            Item::Error(s) => {
                let text = self.src.slice(*s).to_string();
                self.out.push_str(&text);
                self.out.push('\n');
            }
        }
    }

    /// A block's first line (`model ... {`), without its trailing comment:
    /// a comment on that line goes before the item with the header's (the
    /// comments in `header` the line does not keep).
    fn header_line(&mut self, doc: Doc, header: Span, depth: usize) {
        self.claim(&doc);
        for c in self.comments_in(header.start, header.end) {
            self.comment_line(c, depth);
        }
        self.indent(depth);
        let text = render(&doc, depth * 4);
        self.out.push_str(&text);
        self.out.push('\n');
    }

    /// A block's closing `}` and the comment after it.
    fn close(&mut self, span: Span, depth: usize) {
        self.indent(depth);
        self.out.push('}');
        self.end_line(span.end);
    }

    /// A block's children (a span each, rendered by `each`) with the
    /// comments among them, one level in, then its `}`.
    fn children(&mut self, spans: Vec<Span>, whole: Span, depth: usize, each: &Render) {
        let anchors: Vec<Anchor> = spans.into_iter().map(|span| Anchor { span }).collect();
        let region = self
            .src
            .body(whole, anchors.first().map(|a| a.span))
            .unwrap_or(whole);
        self.block(&anchors, region, depth + 1, each);
        self.close(whole, depth);
    }

    /// A model's or function's statements, then its `}`.
    fn body(&mut self, body: &[Stmt], span: Span, depth: usize) {
        let spans = body.iter().map(stmt_span).collect();
        self.children(spans, span, depth, &|f, i, d| {
            let s = &body[i];
            let doc = match s {
                Stmt::Param(p) => {
                    let mut parts = vec![Doc::text(format!(
                        "param {}: {}",
                        p.name.node,
                        super::print::ty(&p.ty)
                    ))];
                    if let Some(init) = &p.init {
                        parts.push(Doc::text(" = "));
                        parts.push(expr(f.src, init));
                    }
                    Doc::concat(parts)
                }
                Stmt::Let(l) => let_doc(f.src, l),
                Stmt::Expr(e) => expr(f.src, e),
                Stmt::Error(s) => Doc::text(f.src.slice(*s).to_string()),
            };
            f.code_line(stmt_span(s), d, doc);
        });
    }
}

fn let_doc(src: &Source, l: &Let) -> Doc {
    let head = match &l.ty {
        Some(t) => format!("let {}: {} = ", l.name.node, super::print::ty(t)),
        None => format!("let {} = ", l.name.node),
    };
    Doc::concat(vec![Doc::text(head), expr(src, &l.value)])
}

// ---- expressions ----

/// How tightly an expression binds, as the parser's table says: a postfix
/// form or an atom 10, `**` 9, prefix `-`/`+` 8, `* / @` 7, `+ -` 6,
/// comparisons 5, `not` 4, `and` 3, `or` 2.
fn prec(e: &Expr) -> u8 {
    match &e.node {
        ExprKind::Binary { op, .. } => binary_prec(*op),
        ExprKind::Unary { op, .. } => unary_prec(*op),
        _ => 10,
    }
}

fn binary_prec(op: BinOp) -> u8 {
    match op {
        BinOp::Pow => 9,
        BinOp::Mul | BinOp::Div | BinOp::MatMul => 7,
        BinOp::Add | BinOp::Sub => 6,
        BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => 5,
        BinOp::And => 3,
        BinOp::Or => 2,
    }
}

fn unary_prec(op: UnOp) -> u8 {
    match op {
        UnOp::Neg | UnOp::Plus => 8,
        UnOp::Not => 4,
    }
}

fn parens(d: Doc, yes: bool) -> Doc {
    if yes {
        Doc::concat(vec![Doc::text("("), d, Doc::text(")")])
    } else {
        d
    }
}

fn expr(src: &Source, e: &Expr) -> Doc {
    match &e.node {
        // Literals keep their spelling.
        ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Str(_) => {
            Doc::text(src.slice(e.span).to_string())
        }
        ExprKind::Bool(b) => Doc::text(b.to_string()),
        ExprKind::Name(n) => Doc::text(n.clone()),
        // A list of numbers, strings or names fills its lines; any other
        // list, or one with a comment inside, breaks as a call's arguments
        // do.
        ExprKind::List(items) => {
            let parts = items.iter().map(|i| (expr(src, i), i.span)).collect();
            let elements = Elements::new(src, e.span, '[', parts);
            if items.iter().all(is_atom) && !elements.has_comments() {
                fill_doc(elements.items.into_iter().map(|(d, _)| d).collect())
            } else {
                args_doc(elements, "[", "]")
            }
        }
        ExprKind::Call { callee, args } => {
            let parts = args
                .iter()
                .map(|a| {
                    let doc = match &a.name {
                        Some(n) => Doc::concat(vec![
                            Doc::text(format!("{} = ", n.node)),
                            expr(src, &a.value),
                        ]),
                        None => expr(src, &a.value),
                    };
                    let start = a.name.as_ref().map_or(a.value.span.start, |n| n.span.start);
                    (doc, Span::new(start, a.value.span.end))
                })
                .collect();
            let elements = Elements::new(src, Span::new(callee.span.end, e.span.end), '(', parts);
            Doc::concat(vec![
                postfix_base(src, callee),
                args_doc(elements, "(", ")"),
            ])
        }
        ExprKind::Binary { op, lhs, rhs } => {
            let p = binary_prec(*op);
            let right_assoc = *op == BinOp::Pow;
            let l = parens(
                expr(src, lhs),
                prec(lhs) < p || (prec(lhs) == p && right_assoc) || src.parenthesized(lhs.span),
            );
            // A prefix `-` or `+` starts an operand anywhere (`2 ** -1`).
            let r = parens(
                expr(src, rhs),
                (prec(rhs) < p && !signed(rhs))
                    || (prec(rhs) == p && !right_assoc)
                    || src.parenthesized(rhs.span),
            );
            // A comment after the operator stays after it, and breaks the
            // line there.
            let comment = src.operator_comment(lhs.span.end, rhs.span.start, op.symbol());
            let mut parts = vec![l, Doc::text(format!(" {}", op.symbol()))];
            parts.extend(src.comment_doc(comment));
            parts.push(Doc::nest(4, Doc::concat(vec![Doc::Line, r])));
            Doc::group(Doc::concat(parts))
        }
        ExprKind::Unary { op, operand } => {
            let p = unary_prec(*op);
            let sym = match op {
                UnOp::Neg => "-",
                UnOp::Plus => "+",
                UnOp::Not => "not ",
            };
            // A sign of a sign reads `-(-x)`, not `--x`.
            let inner = parens(
                expr(src, operand),
                prec(operand) < p || signed(operand) || src.parenthesized(operand.span),
            );
            Doc::concat(vec![Doc::text(sym), inner])
        }
        ExprKind::Index { base, indices } => Doc::concat(vec![
            postfix_base(src, base),
            index_doc(src, Span::new(base.span.end, e.span.end), indices),
        ]),
        ExprKind::Field { base, name } => Doc::concat(vec![
            postfix_base(src, base),
            Doc::text(format!(".{}", name.node)),
        ]),
        ExprKind::Error => Doc::text(src.slice(e.span).to_string()),
    }
}

/// Whether `e` is `-x` or `+x`.
fn signed(e: &Expr) -> bool {
    matches!(
        e.node,
        ExprKind::Unary {
            op: UnOp::Neg | UnOp::Plus,
            ..
        }
    )
}

fn is_atom(e: &Expr) -> bool {
    match &e.node {
        ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Str(_)
        | ExprKind::Bool(_)
        | ExprKind::Name(_) => true,
        ExprKind::Unary { operand, .. } => is_atom(operand),
        _ => false,
    }
}

/// `[a, b, c]` on one line, or broken after `[` with as many elements a
/// line as fit, a trailing comma and `]` on a line of its own.
fn fill_doc(parts: Vec<Doc>) -> Doc {
    if parts.is_empty() {
        return Doc::text("[]");
    }
    let mut inner = vec![Doc::SoftLine];
    let n = parts.len();
    let widths: Vec<usize> = parts.iter().map(Doc::flat_width).collect();
    for (i, p) in parts.into_iter().enumerate() {
        inner.push(p);
        if i + 1 < n {
            inner.push(Doc::text(","));
            // The next element and its comma must fit after the space.
            inner.push(Doc::FillLine(widths[i + 1] + 1));
        } else {
            inner.push(Doc::IfBroken(",".into()));
        }
    }
    Doc::group(Doc::concat(vec![
        Doc::text("["),
        Doc::nest(4, Doc::concat(inner)),
        Doc::SoftLine,
        Doc::text("]"),
    ]))
}

/// The operand of a call, index or field: parenthesized unless an atom or
/// another postfix form.
fn postfix_base(src: &Source, e: &Expr) -> Doc {
    parens(expr(src, e), prec(e) < 10)
}

/// An index `[...]`, its `[` the first in `within`.
fn index_doc(src: &Source, within: Span, idx: &[IndexArg]) -> Doc {
    let parts = idx
        .iter()
        .map(|i| match i {
            IndexArg::Single(e) => (expr(src, e), e.span),
            IndexArg::Slice {
                start,
                end,
                step,
                span,
            } => {
                let o = |e: &Option<Expr>| e.as_ref().map_or(Doc::text(""), |e| expr(src, e));
                let mut parts = vec![o(start), Doc::text(":"), o(end)];
                if let Some(s) = step {
                    parts.push(Doc::text(":"));
                    parts.push(expr(src, s));
                }
                (Doc::concat(parts), *span)
            }
        })
        .collect();
    // No trailing comma: an assignment's `x[i,] = v` reads it as `x[i, :]`.
    list_doc(Elements::new(src, within, '[', parts), "[", "]", "")
}

/// The elements of a bracketed list (a call's arguments, a list's items,
/// an index, a header's parameters) with the comments that stay on their
/// lines: the one after the opening bracket, and each element's trailing
/// comment (after it or its comma).
struct Elements {
    open: Option<Doc>,
    items: Vec<(Doc, Option<Doc>)>,
}

impl Elements {
    /// `items` are each element's document and span; the opening bracket
    /// `open` is the first in `within` (which ends at or after it).
    fn new(src: &Source, within: Span, open: char, items: Vec<(Doc, Span)>) -> Elements {
        let first = items.first().map_or(within.end, |(_, s)| s.start);
        Elements {
            open: src.comment_doc(src.open_comment(within.start, first, open)),
            items: items
                .into_iter()
                .map(|(d, s)| {
                    let end = src.with_parens(s).end;
                    (d, src.comment_doc(src.trailing_comment(end)))
                })
                .collect(),
        }
    }

    fn has_comments(&self) -> bool {
        self.open.is_some() || self.items.iter().any(|(_, c)| c.is_some())
    }
}

/// `open a, b, c close` on one line, or broken after `open`, one element
/// a line with a trailing comma, `close` on a line of its own. A comment
/// kept on its line breaks it, and follows its element's comma.
fn args_doc(elements: Elements, open: &str, close: &str) -> Doc {
    list_doc(elements, open, close, ",")
}

/// [`args_doc`] with `trailing` after the last element when broken.
fn list_doc(elements: Elements, open: &str, close: &str, trailing: &str) -> Doc {
    if elements.items.is_empty() {
        return match elements.open {
            Some(c) => Doc::group(Doc::concat(vec![
                Doc::text(open),
                c,
                Doc::SoftLine,
                Doc::text(close),
            ])),
            None => Doc::text(format!("{open}{close}")),
        };
    }
    let mut inner = Vec::new();
    inner.extend(elements.open);
    inner.push(Doc::SoftLine);
    let n = elements.items.len();
    for (i, (p, comment)) in elements.items.into_iter().enumerate() {
        inner.push(p);
        if i + 1 < n {
            inner.push(Doc::text(","));
            inner.extend(comment);
            inner.push(Doc::Line);
        } else {
            inner.push(Doc::IfBroken(trailing.into()));
            inner.extend(comment);
        }
    }
    Doc::group(Doc::concat(vec![
        Doc::text(open),
        Doc::nest(4, Doc::concat(inner)),
        Doc::SoftLine,
        Doc::text(close),
    ]))
}
