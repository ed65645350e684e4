//! One document as the language server sees it: its text, tree, checked
//! runs and diagnostics, and the answers to position requests.

use serde_json::{json, Value};

use crate::check::Checked;
use crate::diag::Diagnostic;
use crate::ir::{Graph, Role};
use crate::span::Span;
use crate::syntax::ast::{self, Item, Stmt};
use crate::syntax::lexer::{lex, Token};

pub struct Analysis {
    uri: String,
    text: String,
    line_starts: Vec<usize>,
    program: ast::Program,
    checked: Checked,
    diags: Vec<Diagnostic>,
    /// Every name token: (name, span).
    names: Vec<(String, Span)>,
}

/// What a name stands for, where it is declared.
#[derive(Clone, Debug, PartialEq)]
struct Def {
    name: String,
    at: Span,
    kind: Kind,
    /// The item whose scope it belongs to (`None`: the program's).
    scope: Option<usize>,
}

#[derive(Clone, Debug, PartialEq)]
enum Kind {
    Data,
    Model,
    Fn,
    Run,
    /// A top-level `let`.
    Global,
    Input,
    Param,
    Let,
    FnParam,
}

/// The folder of a `file:` URI (where the program's data paths start).
fn folder_of(uri: &str) -> std::path::PathBuf {
    let path = uri.strip_prefix("file://").unwrap_or(uri);
    let decoded = percent_decode(path);
    std::path::Path::new(&decoded)
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Analysis {
    pub fn new(uri: &str, text: &str) -> Analysis {
        Analysis::with_cache(uri, text, None)
    }

    /// [`Analysis::new`], reading data sources' metadata through `cache`
    /// (the server keeps one for all its documents).
    pub fn with_cache(
        uri: &str,
        text: &str,
        cache: Option<std::sync::Arc<crate::check::data::DataCache>>,
    ) -> Analysis {
        let (program, mut diags) = crate::syntax::parse(text);
        let opts = crate::check::Options {
            base_dir: folder_of(uri),
            data_override: None,
            data_cache: cache,
            described: Default::default(),
        };
        let (checked, cd) = crate::check::check(&program, &opts);
        diags.extend(cd);
        let names = lex(text)
            .tokens
            .iter()
            .filter_map(|(t, s)| match t {
                Token::Ident(n) => Some((n.to_string(), *s)),
                _ => None,
            })
            .collect();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Analysis {
            uri: uri.to_string(),
            text: text.to_string(),
            line_starts,
            program,
            checked,
            diags,
            names,
        }
    }

    // ---- positions: LSP counts UTF-16 units within a line ----

    /// The byte offset of (line, UTF-16 character), clamped to the line.
    pub fn offset(&self, line: usize, character: usize) -> Option<usize> {
        let start = *self.line_starts.get(line)?;
        let end = self
            .line_starts
            .get(line + 1)
            .map_or(self.text.len(), |e| e - 1);
        let mut units = 0;
        for (i, ch) in self.text[start..end.max(start)].char_indices() {
            if units >= character {
                return Some(start + i);
            }
            units += ch.len_utf16();
        }
        Some(end.max(start))
    }

    fn position(&self, offset: usize) -> Value {
        let offset = offset.min(self.text.len());
        let line = self
            .line_starts
            .partition_point(|s| *s <= offset)
            .saturating_sub(1);
        let start = self.line_starts[line];
        let character: usize = self
            .text
            .get(start..offset)
            .unwrap_or("")
            .chars()
            .map(char::len_utf16)
            .sum();
        json!({ "line": line, "character": character })
    }

    fn range(&self, s: Span) -> Value {
        json!({ "start": self.position(s.start), "end": self.position(s.end.max(s.start)) })
    }

    fn location(&self, s: Span) -> Value {
        json!({ "uri": self.uri, "range": self.range(s) })
    }

    // ---- diagnostics ----

    /// The checker's diagnostics as LSP's: the first label's span is the
    /// range, the other labels related information, the notes part of the
    /// message.
    pub fn diagnostics(&self) -> Vec<Value> {
        self.diags
            .iter()
            .map(|d| {
                let span = d.labels.first().map_or(Span::new(0, 0), |l| l.0);
                let mut message = d.message.clone();
                for n in &d.notes {
                    message.push_str("\nnote: ");
                    message.push_str(n);
                }
                if let Some((_, l)) = d.labels.first() {
                    if !l.is_empty() {
                        message.push_str(&format!("\n{l}"));
                    }
                }
                let related: Vec<Value> = d
                    .labels
                    .iter()
                    .skip(1)
                    .map(|(s, m)| json!({ "location": self.location(*s), "message": m }))
                    .collect();
                json!({
                    "range": self.range(span),
                    "severity": 1,
                    "code": d.code.as_str(),
                    "source": "dlc",
                    "message": message,
                    "relatedInformation": related,
                })
            })
            .collect()
    }

    // ---- names ----

    fn name_at(&self, offset: usize) -> Option<&(String, Span)> {
        self.names
            .iter()
            .find(|(_, s)| s.start <= offset && offset <= s.end)
    }

    /// The item whose span holds `offset`.
    fn item_at(&self, offset: usize) -> Option<usize> {
        self.program
            .items
            .iter()
            .position(|i| item_span(i).is_some_and(|s| s.start <= offset && offset <= s.end))
    }

    /// Every declaration of the program.
    fn defs(&self) -> Vec<Def> {
        let mut out = Vec::new();
        let mut def = |name: &ast::Ident, kind: Kind, scope: Option<usize>| {
            out.push(Def {
                name: name.node.clone(),
                at: name.span,
                kind,
                scope,
            });
        };
        for (i, item) in self.program.items.iter().enumerate() {
            match item {
                Item::Data(d) => def(&d.name, Kind::Data, None),
                Item::Model(m) => {
                    def(&m.name, Kind::Model, None);
                    for (n, _) in &m.inputs {
                        def(n, Kind::Input, Some(i));
                    }
                    for s in &m.body {
                        match s {
                            Stmt::Param(p) => def(&p.name, Kind::Param, Some(i)),
                            Stmt::Let(l) => def(&l.name, Kind::Let, Some(i)),
                            Stmt::Expr(_) | Stmt::Error(_) => {}
                        }
                    }
                }
                Item::Fn(f) => {
                    def(&f.name, Kind::Fn, None);
                    for p in &f.params {
                        def(p, Kind::FnParam, Some(i));
                    }
                    for s in &f.body {
                        if let Stmt::Let(l) = s {
                            def(&l.name, Kind::Let, Some(i));
                        }
                    }
                }
                Item::Train(t) => {
                    if let Some(r) = &t.run {
                        def(r, Kind::Run, None);
                    }
                }
                Item::Let(l) => def(&l.name, Kind::Global, None),
                Item::Assign(_) | Item::Expr(_) | Item::Error(_) => {}
            }
        }
        out
    }

    /// The declaration the name at `offset` refers to: its own scope's
    /// (the model or fn it is in, or for a `train` block the model it
    /// trains), the last declared at or before it, else the program's.
    fn resolve(&self, offset: usize) -> Option<Def> {
        self.resolve_in(&self.defs(), offset)
    }

    /// [`Analysis::resolve`] among `defs` (the program's, computed once
    /// by a caller that resolves many names).
    fn resolve_in(&self, defs: &[Def], offset: usize) -> Option<Def> {
        let (name, span) = self.name_at(offset)?;
        // On a declaration itself.
        if let Some(d) = defs.iter().find(|d| d.at == *span) {
            return Some(d.clone());
        }
        let mut scopes: Vec<Option<usize>> = Vec::new();
        if let Some(i) = self.item_at(offset) {
            scopes.push(Some(i));
            if let Item::Train(t) = &self.program.items[i] {
                // A train block names its model's parameters.
                if let Some(m) = self.model_index(&t.model.node) {
                    scopes.push(Some(m));
                }
            }
        }
        scopes.push(None);
        for scope in scopes {
            let found = defs
                .iter()
                .filter(|d| d.scope == scope && d.name == *name)
                .rfind(|d| scope.is_none() || d.at.start <= span.start || d.kind == Kind::Param);
            if let Some(d) = found {
                return Some(d.clone());
            }
        }
        None
    }

    fn model_index(&self, name: &str) -> Option<usize> {
        self.program
            .items
            .iter()
            .position(|i| matches!(i, Item::Model(m) if m.name.node == name))
    }

    pub fn definition(&self, offset: usize) -> Option<Value> {
        let d = self.resolve(offset)?;
        Some(self.location(d.at))
    }

    pub fn references(&self, offset: usize, with_decl: bool) -> Value {
        let defs = self.defs();
        let Some(d) = self.resolve_in(&defs, offset) else {
            return json!([]);
        };
        let refs: Vec<Value> = self
            .names
            .iter()
            .filter(|(n, s)| *n == d.name && (with_decl || *s != d.at))
            .filter(|(_, s)| self.resolve_in(&defs, s.start).as_ref() == Some(&d))
            .map(|(_, s)| self.location(*s))
            .collect();
        json!(refs)
    }

    // ---- types ----

    /// A run's typed training graph for the model at item `m`.
    fn graph_of(&self, m: usize) -> Option<&Graph> {
        let Item::Model(model) = &self.program.items[m] else {
            return None;
        };
        self.checked
            .runs
            .iter()
            .find(|r| r.model == model.name.node)
            .map(|r| &r.train)
    }

    /// The type of the value computed at `value` (an expression's span) in
    /// graph `g`: the node of exactly that span, else the widest inside it.
    fn type_of(g: &Graph, value: Span) -> Option<String> {
        let inside = |s: Span| s.start >= value.start && s.end <= value.end && s.end > s.start;
        let best = g
            .nodes
            .iter()
            .filter(|n| inside(n.span))
            .max_by_key(|n| (n.span == value, n.span.end - n.span.start))?;
        Some(best.ty.to_string())
    }

    /// A let's type in its model, when a run trains the model.
    fn let_type(&self, scope: usize, l: &ast::Let) -> Option<String> {
        Self::type_of(self.graph_of(scope)?, l.value.span)
    }

    fn input_type(&self, scope: usize, role: &dyn Fn(&Role, &str) -> bool) -> Option<String> {
        let g = self.graph_of(scope)?;
        g.inputs
            .iter()
            .find(|i| role(&i.role, &i.name))
            .map(|i| g.ty(i.node).to_string())
    }

    // ---- hover ----

    pub fn hover(&self, offset: usize) -> Option<Value> {
        let Some((name, span)) = self.name_at(offset).cloned() else {
            return self.hover_expression(offset);
        };
        let text = match self.resolve(offset) {
            Some(d) => self.describe(&d)?,
            None if crate::check::builtins::NAMES.contains(&name.as_str()) => builtin_doc(&name),
            None => return None,
        };
        Some(json!({
            "contents": { "kind": "markdown", "value": text },
            "range": self.range(span),
        }))
    }

    /// Hover off a name (on an operator, a bracket, a number): the type
    /// of the innermost expression there, in a model a run trains.
    fn hover_expression(&self, offset: usize) -> Option<Value> {
        let m = self.item_at(offset)?;
        let Item::Model(model) = &self.program.items[m] else {
            return None;
        };
        let mut best: Option<Span> = None;
        for s in &model.body {
            let e = match s {
                Stmt::Let(l) => &l.value,
                Stmt::Expr(e) => e,
                Stmt::Param(_) | Stmt::Error(_) => continue,
            };
            innermost(e, offset, &mut best);
        }
        let span = best?;
        let t = Self::type_of(self.graph_of(m)?, span)?;
        let text = format!("```dl\n{}: {t}\n```", self.slice(span));
        Some(json!({
            "contents": { "kind": "markdown", "value": text },
            "range": self.range(span),
        }))
    }

    fn describe(&self, d: &Def) -> Option<String> {
        let code = |s: String| format!("```dl\n{s}\n```");
        let item = |i: usize| &self.program.items[i];
        Some(match (&d.kind, d.scope) {
            (Kind::Let, Some(m)) => {
                let l = self.find_let(m, d.at)?;
                match self.let_type(m, l) {
                    Some(t) => code(format!("let {}: {t}", d.name)),
                    None => code(format!("let {}", d.name)),
                }
            }
            (Kind::Param, Some(m)) => {
                let Item::Model(model) = item(m) else {
                    return None;
                };
                let p = model.body.iter().find_map(|s| match s {
                    Stmt::Param(p) if p.name.span == d.at => Some(p),
                    _ => None,
                })?;
                let init = p
                    .init
                    .as_ref()
                    .map(|e| format!(" = {}", self.slice(e.span)))
                    .unwrap_or_default();
                code(format!(
                    "param {}: {}{init}",
                    d.name,
                    crate::syntax::print::ty(&p.ty)
                ))
            }
            (Kind::Input, Some(m)) => {
                let t = self
                    .input_type(m, &|r, _| *r == Role::Features)
                    .or_else(|| {
                        let Item::Model(model) = item(m) else {
                            return None;
                        };
                        model
                            .inputs
                            .iter()
                            .find(|(n, _)| n.span == d.at)
                            .map(|(_, t)| crate::syntax::print::ty(t))
                    })?;
                code(format!("{}: {t}", d.name))
            }
            (Kind::Model, _) => {
                let m = self.model_index(&d.name)?;
                let Item::Model(model) = item(m) else {
                    return None;
                };
                let ins: Vec<String> = model
                    .inputs
                    .iter()
                    .map(|(n, t)| format!("{}: {}", n.node, crate::syntax::print::ty(t)))
                    .collect();
                let out = model
                    .output
                    .as_ref()
                    .map(|t| format!(" -> {}", crate::syntax::print::ty(t)))
                    .unwrap_or_default();
                code(format!("model {}({}){out}", d.name, ins.join(", ")))
            }
            (Kind::Data, _) => {
                let spec = self.checked.data.iter().find(|s| s.name == d.name);
                match spec {
                    Some(s) => format!(
                        "{}\n\n{}; each sample {:?}; {}",
                        code(format!("data {}", d.name)),
                        s.summary,
                        s.sample,
                        s.rows.describe(s.test_fraction())
                    ),
                    None => code(format!("data {}", d.name)),
                }
            }
            (Kind::Fn, _) => {
                let f = self.program.items.iter().find_map(|i| match i {
                    Item::Fn(f) if f.name.node == d.name => Some(f),
                    _ => None,
                })?;
                let ps: Vec<&str> = f.params.iter().map(|p| p.node.as_str()).collect();
                code(format!("fn {}({})", d.name, ps.join(", ")))
            }
            (Kind::Run, _) => code(format!("run {}", d.name)),
            (Kind::FnParam, _) => code(format!("{} (a parameter of its fn)", d.name)),
            (Kind::Global, _) => code(format!("let {}", d.name)),
            (Kind::Let | Kind::Param | Kind::Input, None) => return None,
        })
    }

    fn find_let(&self, m: usize, at: Span) -> Option<&ast::Let> {
        let body = match &self.program.items[m] {
            Item::Model(model) => &model.body,
            Item::Fn(f) => &f.body,
            _ => return None,
        };
        body.iter().find_map(|s| match s {
            Stmt::Let(l) if l.name.span == at => Some(l),
            _ => None,
        })
    }

    fn slice(&self, s: Span) -> &str {
        self.text.get(s.start..s.end).unwrap_or("")
    }

    // ---- completion, symbols, formatting, hints ----

    pub fn completion(&self, offset: usize) -> Value {
        let in_train = self
            .item_at(offset)
            .is_some_and(|i| matches!(self.program.items[i], Item::Train(_)));
        let mut items: Vec<Value> = Vec::new();
        if in_train {
            for (k, doc) in SETTINGS {
                items.push(json!({ "label": k, "kind": 10, "detail": doc }));
            }
        }
        for b in crate::check::builtins::NAMES {
            items.push(json!({ "label": b, "kind": 3, "detail": builtin_signature(b) }));
        }
        let scope = self.item_at(offset);
        for d in self.defs() {
            if d.scope.is_none() || d.scope == scope {
                items.push(json!({ "label": d.name, "kind": 6 }));
            }
        }
        json!({ "isIncomplete": false, "items": items })
    }

    pub fn symbols(&self) -> Value {
        let sym = |name: &str, kind: u32, full: Span, sel: Span, children: Vec<Value>| {
            json!({
                "name": name,
                "kind": kind,
                "range": self.range(full),
                "selectionRange": self.range(sel),
                "children": children,
            })
        };
        let mut out = Vec::new();
        for item in &self.program.items {
            match item {
                Item::Data(d) => out.push(sym(&d.name.node, 13, d.span, d.name.span, vec![])),
                Item::Model(m) => {
                    let kids = m
                        .body
                        .iter()
                        .filter_map(|s| match s {
                            Stmt::Param(p) => {
                                Some(sym(&p.name.node, 8, p.span, p.name.span, vec![]))
                            }
                            Stmt::Let(l) => {
                                Some(sym(&l.name.node, 13, l.span, l.name.span, vec![]))
                            }
                            Stmt::Expr(_) | Stmt::Error(_) => None,
                        })
                        .collect();
                    out.push(sym(&m.name.node, 5, m.span, m.name.span, kids));
                }
                Item::Fn(f) => out.push(sym(&f.name.node, 12, f.span, f.name.span, vec![])),
                Item::Train(t) => {
                    let name = t.run.as_ref().map_or("main", |r| r.node.as_str());
                    let sel = t.run.as_ref().map_or(t.model.span, |r| r.span);
                    out.push(sym(&format!("train {name}"), 2, t.span, sel, vec![]));
                }
                Item::Let(l) => out.push(sym(&l.name.node, 13, l.span, l.name.span, vec![])),
                Item::Assign(_) | Item::Expr(_) | Item::Error(_) => {}
            }
        }
        json!(out)
    }

    pub fn formatting(&self) -> Value {
        match crate::syntax::fmt::format(&self.text) {
            Ok(t) if t != self.text => {
                json!([{ "range": self.range(Span::new(0, self.text.len())), "newText": t }])
            }
            _ => json!([]),
        }
    }

    /// `: TYPE` after each `let` name of a model that a run trains.
    pub fn inlay_hints(&self) -> Value {
        let mut out = Vec::new();
        for (i, item) in self.program.items.iter().enumerate() {
            let Item::Model(m) = item else { continue };
            for s in &m.body {
                let Stmt::Let(l) = s else { continue };
                if l.ty.is_some() {
                    continue;
                }
                if let Some(t) = self.let_type(i, l) {
                    out.push(json!({
                        "position": self.position(l.name.span.end),
                        "label": format!(": {t}"),
                        "kind": 1,
                    }));
                }
            }
        }
        json!(out)
    }
}

/// The smallest expression of `e` whose span holds `offset`.
fn innermost(e: &ast::Expr, offset: usize, best: &mut Option<Span>) {
    use ast::{ExprKind, IndexArg};
    if offset < e.span.start || offset > e.span.end {
        return;
    }
    if best.is_none_or(|b| e.span.end - e.span.start <= b.end - b.start) {
        *best = Some(e.span);
    }
    match &e.node {
        ExprKind::List(items) => items.iter().for_each(|i| innermost(i, offset, best)),
        ExprKind::Call { callee, args } => {
            innermost(callee, offset, best);
            args.iter().for_each(|a| innermost(&a.value, offset, best));
        }
        ExprKind::Binary { lhs, rhs, .. } => {
            innermost(lhs, offset, best);
            innermost(rhs, offset, best);
        }
        ExprKind::Unary { operand, .. } => innermost(operand, offset, best),
        ExprKind::Index { base, indices } => {
            innermost(base, offset, best);
            for i in indices {
                match i {
                    IndexArg::Single(x) => innermost(x, offset, best),
                    IndexArg::Slice {
                        start, end, step, ..
                    } => {
                        for x in [start, end, step].into_iter().flatten() {
                            innermost(x, offset, best);
                        }
                    }
                }
            }
        }
        ExprKind::Field { base, .. } => innermost(base, offset, best),
        ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Bool(_)
        | ExprKind::Str(_)
        | ExprKind::Name(_)
        | ExprKind::Error => {}
    }
}

fn item_span(i: &Item) -> Option<Span> {
    match i {
        Item::Data(d) => Some(d.span),
        Item::Model(m) => Some(m.span),
        Item::Fn(f) => Some(f.span),
        Item::Train(t) => Some(t.span),
        Item::Let(l) => Some(l.span),
        Item::Assign(a) => Some(a.span),
        Item::Expr(e) => Some(e.span),
        Item::Error(s) => Some(*s),
    }
}

/// The settings of a `train` block, with a line each.
const SETTINGS: &[(&str, &str)] = &[
    ("loss", "the loss: an expression of `output` and `label`"),
    (
        "optimizer",
        "sgd(lr, momentum, nesterov), adam, adamw, rmsprop, or closed_form",
    ),
    ("batch", "the (global) batch size"),
    ("epochs", "passes over the training part"),
    ("seed", "the seed of initialization, shuffling and dropout"),
    ("metrics", "[loss, acc, rmse, log_rmse]"),
    (
        "valid",
        "the fraction of the training part held out for validation",
    ),
    ("kfold", "K-fold cross-validation with K folds"),
    (
        "weight_decay",
        "penalty(λ, [params]) or decoupled(λ, [params])",
    ),
    (
        "sampler",
        "shuffle, sequential, weighted, oversample or undersample",
    ),
    ("early_stop", "early_stop(metric, patience)"),
    ("clip_grad_norm", "clip the gradients' global norm to this"),
    (
        "lr_schedule",
        "step, cosine, warmup ... of the learning rate",
    ),
];

/// A builtin's signature, where the table has it.
fn builtin_signature(name: &str) -> String {
    BUILTINS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map_or_else(|| format!("{name}(...)"), |(_, s, _)| s.to_string())
}

fn builtin_doc(name: &str) -> String {
    match BUILTINS.iter().find(|(n, _, _)| *n == name) {
        Some((_, sig, doc)) => format!("```dl\n{sig}\n```\n\n{doc}"),
        None => format!(
            "```dl\n{name}(...)\n```\n\nA builtin (grammar/README.md, \"Built-in functions\")."
        ),
    }
}

/// (name, signature, one line).
const BUILTINS: &[(&str, &str, &str)] = &[
    ("relu", "relu(x)", "max(x, 0), elementwise."),
    ("sigmoid", "sigmoid(x)", "1/(1 + e^-x), elementwise, stable for both signs."),
    ("tanh", "tanh(x)", "The hyperbolic tangent, elementwise."),
    ("exp", "exp(x)", "e^x, elementwise."),
    ("log", "log(x)", "The natural logarithm, elementwise."),
    ("sqrt", "sqrt(x)", "The square root, elementwise."),
    ("abs", "abs(x)", "|x|, elementwise."),
    ("sin", "sin(x)", "The sine, elementwise."),
    ("cos", "cos(x)", "The cosine, elementwise."),
    ("floor", "floor(x)", "The largest integer ≤ x, elementwise."),
    ("pow", "pow(x, p)", "x^p, elementwise (also `x ** p`)."),
    ("maximum", "maximum(a, b)", "The larger of a and b, elementwise, broadcast."),
    ("minimum", "minimum(a, b)", "The smaller of a and b, elementwise, broadcast."),
    ("where", "where(cond, a, b)", "a where cond is true, else b, broadcast."),
    ("clamp", "clamp(x, min = lo, max = hi)", "x limited to [lo, hi]."),
    ("sum", "sum(x, axis = a, keepdims = false)", "The sum over an axis (all axes without one)."),
    ("mean", "mean(x, axis = a, keepdims = false)", "The mean over an axis (all axes without one)."),
    ("max", "max(x, axis = a)", "The maximum over an axis (all without one)."),
    ("min", "min(x, axis = a)", "The minimum over an axis (all without one)."),
    ("argmax", "argmax(x, axis = a)", "The index of the first maximum along an axis, i32."),
    ("softmax", "softmax(x)", "exp(x) / Σ exp(x) along the last axis, stable."),
    ("log_softmax", "log_softmax(x)", "x − logsumexp(x) along the last axis."),
    ("logsumexp", "logsumexp(x)", "log Σ exp(x) along the last axis, without overflow."),
    ("one_hot", "one_hot(labels, n)", "Class indices as rows of n zeros and a one."),
    ("cross_entropy", "cross_entropy(logits, labels)", "The mean negative log-likelihood of class labels, from logits."),
    ("binary_cross_entropy", "binary_cross_entropy(logits, labels)", "The mean binary cross-entropy, from one logit per sample."),
    ("softplus", "softplus(x)", "log(1 + e^x), stable."),
    ("squared_loss", "squared_loss(pred, y)", "The mean of (pred − y)² / 2, d2l's squared loss."),
    ("mse", "mse(pred, y)", "The mean squared error."),
    ("accuracy", "accuracy(logits, labels)", "The fraction of correct predictions."),
    ("norm", "norm(x, p = 2)", "The p-norm of all of x's elements."),
    ("l1", "l1(x)", "Σ|x|."),
    ("l2", "l2(x)", "√Σx²."),
    ("frobenius", "frobenius(x)", "The Frobenius norm of a matrix."),
    ("dropout", "dropout(x, p)", "Zeroes each element with probability p and scales the rest by 1/(1 − p), in training only."),
    ("reshape", "reshape(x, [d0, d1, ...])", "The same elements in another shape (one -1 is inferred)."),
    ("transpose", "transpose(x)", "The matrix transpose (also `x.T`)."),
    ("matmul", "matmul(a, b)", "The matrix product (also `a @ b`)."),
    ("dot", "dot(a, b)", "The inner product of two vectors."),
    ("f32", "f32(x)", "x converted to f32."),
    ("f64", "f64(x)", "x converted to f64."),
    ("i32", "i32(x)", "x converted to i32 (floats truncate toward zero)."),
    ("bool", "bool(x)", "x ≠ 0."),
    ("zeros", "zeros(d0, d1, ...)", "A tensor of zeros; a parameter initializer."),
    ("ones", "ones(d0, d1, ...)", "A tensor of ones; a parameter initializer."),
    ("full", "full([d0, ...], v)", "A tensor filled with v."),
    ("arange", "arange(n)", "0, 1, ..., n − 1 as i32."),
    ("eye", "eye(n)", "The n×n identity."),
    ("diag", "diag(v)", "The diagonal matrix of v."),
    ("rand", "rand(d0, d1, ...)", "Uniform numbers in [0, 1)."),
    ("randn", "randn(d0, d1, ...)", "Standard normal numbers."),
    ("stop_gradient", "stop_gradient(x)", "x, with no gradient flowing through."),
    ("detach", "detach(x)", "x, with no gradient flowing through (d2l's name)."),
    ("concat", "concat([a, b, ...], axis = a)", "Tensors joined along an existing axis."),
    ("stack", "stack([a, b, ...], axis = a)", "Tensors joined along a new axis."),
    ("cumsum", "cumsum(x, axis = a)", "Running sums along an axis."),
    ("grad", "grad(f, x)", "The gradient of scalar f with respect to x."),
    ("inv", "inv(A)", "The inverse of a square matrix."),
    ("det", "det(A)", "The determinant of a square matrix."),
    ("solve", "solve(A, b)", "x with A x = b."),
    ("cholesky", "cholesky(A)", "L lower-triangular with L Lᵀ = A."),
    ("eigh", "eigh(A)", "The eigenvalues (`.values`) and eigenvectors (`.vectors`) of symmetric A."),
    ("multinomial", "multinomial(n, p, samples = k)", "Counts of n draws from probabilities p, k times."),
];
