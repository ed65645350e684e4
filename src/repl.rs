//! `dlc repl`: tensor expressions in the `.dl` language, each compiled by the
//! same pipeline (parser, checker, IR passes, Cranelift JIT) and run.
//!
//! A [`Session`] holds the bindings (`let x = ...`, `x += ...`) as tensors and
//! the functions defined so far (`fn f(x) = ...`). Every input becomes one
//! graph whose inputs are the bindings it may read; its outputs are the new
//! bindings and the value to print. Errors are diagnostics pointing into the
//! input just typed; the session and its bindings survive them.
//!
//! The terminal front end (line editing, history, completion) is in
//! `repl/line.rs`; when stdin is not a terminal, [`script::run_script`] reads inputs
//! from it with no prompts, one result per input.

pub mod files;
pub mod format;
pub mod line;
pub mod script;

use std::collections::HashMap;
use std::time::Instant;

use crate::check::{Globals, Lowerer, Mode, Produced};
use crate::diag::{self, Code, Diagnostic};
use crate::interp::{Env, Tensor};
use crate::ir::{DType, Graph, Role, Shape, Type};
use crate::span::Span;
use crate::syntax::ast::{self, Item};

/// The name diagnostics give the input line.
const FILE: &str = "<repl>";

/// What one input produced.
#[derive(Debug, PartialEq)]
pub enum Reply {
    /// Text to print (a value, a type, a listing).
    Text(String),
    /// Nothing to print (a binding, a definition).
    Nothing,
    /// `:quit`.
    Quit,
}

/// The commands, for `:help` and completion.
pub const COMMANDS: [(&str, &str); 11] = [
    (":type e", "the dtype and shape of e, without running it"),
    (
        ":grad e wrt x",
        "∂e/∂x for a scalar e (also grad(e, x) in expressions)",
    ),
    (":ir e", "the IR of e after the optimizer's passes"),
    (":time e", "compile e, then time its kernels"),
    (":vars", "the bindings and their types"),
    (
        ":save F x y",
        "write bindings to a safetensors file (all when none named)",
    ),
    (
        ":load F",
        "bind every tensor of a safetensors file by its name",
    ),
    (
        ":id x",
        "the address of x's buffer (x += e keeps it, let x = ... does not)",
    ),
    (":help", "this list"),
    (":quit", "leave (also Ctrl-D)"),
    ("let x = e", "bind x; `x += e` updates it"),
];

/// A REPL session: bindings, functions, and a counter that keys the random
/// constructors (so `rand(3)` differs each time, reproducibly per session).
#[derive(Default)]
pub struct Session {
    vars: Vec<(String, Binding)>,
    fns: Vec<ast::FnDecl>,
    /// Functions whose definition did not parse (until defined again).
    broken_fns: Vec<String>,
    evals: u64,
    pub color: bool,
}

/// A binding's value, in the JIT's memory format (f32, i32 or f64 words),
/// in a buffer of its own: an update (`x += 1`, `x[:] = e`) is written into
/// it, so it keeps its address, while `let x = ...` makes a new one.
struct Binding {
    dtype: DType,
    shape: Vec<usize>,
    words: Vec<u64>,
}

impl Binding {
    fn new(t: &Tensor) -> Binding {
        let bytes = t.data.len() * crate::jit::exec::elem_size(t.dtype);
        let mut words = vec![0u64; bytes.div_ceil(8).max(1)];
        crate::jit::exec::write(&mut words, t.dtype, &t.data);
        Binding {
            dtype: t.dtype,
            shape: t.shape.clone(),
            words,
        }
    }

    fn tensor(&self) -> Tensor {
        let n = self.shape.iter().product();
        Tensor::new(
            self.dtype,
            self.shape.clone(),
            crate::jit::exec::read(&self.words, self.dtype, n),
        )
    }

    fn ty(&self) -> Type {
        let dims: Vec<u64> = self.shape.iter().map(|d| *d as u64).collect();
        Type::new(self.dtype, Shape::fixed(&dims))
    }
}

/// One input lowered into a graph: the graph, the bindings it defines (name,
/// output index) and whether its last output is a value to print.
struct Lowered {
    graph: Graph,
    binds: Vec<(String, usize)>,
    /// Bindings updated in place (`x += e`, `x[:] = e`).
    updated: Vec<String>,
    shows: bool,
}

impl Session {
    pub fn new(color: bool) -> Session {
        Session {
            color,
            ..Session::default()
        }
    }

    /// The names completion offers: bindings and functions.
    pub fn names(&self) -> Vec<String> {
        self.vars
            .iter()
            .map(|(n, _)| n.clone())
            .chain(self.fns.iter().map(|f| f.name.node.clone()))
            .collect()
    }

    /// A binding's value.
    pub fn var(&self, name: &str) -> Option<Tensor> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.tensor())
    }

    /// The address of a binding's buffer (what Python's `id` shows for a
    /// tensor's storage).
    pub fn address(&self, name: &str) -> Option<usize> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.words.as_ptr() as usize)
    }

    /// Evaluates one input (a statement, an expression or a `:command`).
    /// `Err` is the rendered diagnostic.
    pub fn eval(&mut self, input: &str) -> Result<Reply, String> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Ok(Reply::Nothing);
        }
        if trimmed.starts_with(':') {
            // Byte offsets into `input` from here on: the command's word
            // starts after the colon, and its argument after the first
            // whitespace character (of any width) that follows the word.
            let at = input.len() - input.trim_start().len() + 1;
            let (end, rest) = match input[at..].char_indices().find(|(_, c)| c.is_whitespace()) {
                Some((i, c)) => (at + i, at + i + c.len_utf8()),
                None => (input.len(), input.len()),
            };
            return self.command(input, &input[at..end], rest);
        }
        let lowered = self.lower(input, input)?;
        let outputs = self.run(&lowered.graph, input, &lowered.updated)?;
        for (name, k) in &lowered.binds {
            let t = &outputs[*k];
            let updated = lowered.updated.contains(name);
            match self.vars.iter_mut().find(|(n, _)| n == name) {
                // An update keeps x's type and buffer; when the kernels
                // already wrote the value there this copies it onto itself.
                Some((_, b)) if updated && b.dtype == t.dtype && b.shape == t.shape => {
                    crate::jit::exec::write(&mut b.words, t.dtype, &t.data)
                }
                Some((_, b)) => *b = Binding::new(t),
                None => self.vars.push((name.clone(), Binding::new(t))),
            }
        }
        match (lowered.shows, outputs.last()) {
            (true, Some(t)) => Ok(Reply::Text(format::tensor(t))),
            _ => Ok(Reply::Nothing),
        }
    }

    /// `:type`, `:ir`, `:time`, `:grad`, ...: `word` is the command's name
    /// and `rest` the byte offset in `input` where its argument starts
    /// (everything to the end of the input, trailing whitespace included,
    /// so that spans computed in it are spans in `input`).
    fn command(&mut self, input: &str, word: &str, at: usize) -> Result<Reply, String> {
        let rest = &input[at..];
        match word {
            "type" => {
                let l = self.lower_command_expr(input, at, "type")?;
                let t = last_type(&l.graph);
                Ok(Reply::Text(t))
            }
            "ir" => {
                let l = self.lower_command_expr(input, at, "ir")?;
                let opt = crate::opt::optimize(&l.graph, &crate::opt::Passes::all());
                Ok(Reply::Text(without_unused_inputs(
                    &crate::ir::print::graph(&opt, None),
                )))
            }
            "time" => {
                let l = self.lower_command_expr(input, at, "time")?;
                self.time(&l.graph, input)
            }
            "grad" => self.grad_command(input, at),
            "save" => self.save_command(rest),
            "load" => self.load_command(rest),
            "id" => {
                let name = rest.trim();
                match self.address(name) {
                    Some(a) => Ok(Reply::Text(format!("{a:#x}"))),
                    None => Err(diag::one_line(
                        Code::UnknownName,
                        &format!("`:id` takes a binding's name; `{name}` is not bound"),
                    )),
                }
            }
            "vars" => Ok(Reply::Text(self.vars_listing())),
            "help" | "h" | "?" => Ok(Reply::Text(help())),
            "quit" | "q" | "exit" => Ok(Reply::Quit),
            other => Err(diag::one_line(
                Code::Syntax,
                &format!("unknown command `:{other}` (`:help` lists them)"),
            )),
        }
    }

    /// The expression after `:what` (from byte `at` to the end of `input`),
    /// lowered in its place in the input so that diagnostics point into it.
    fn lower_command_expr(
        &mut self,
        input: &str,
        at: usize,
        what: &str,
    ) -> Result<Lowered, String> {
        let rest = &input[at..];
        if rest.trim().is_empty() {
            return Err(diag::one_line(
                Code::Syntax,
                &format!("`:{what}` needs an expression, as in `:{what} x + 1`"),
            ));
        }
        // Spaces keep every byte offset of `rest` what it is in `input`.
        let src = format!("{}{rest}", " ".repeat(at));
        self.lower(&src, input)
    }

    /// `:grad e wrt x` (e starting at byte `at` of `input`): runs
    /// `grad(e, x)`, written over the input byte for byte so that spans
    /// still point into what was typed: `grad(` over `:grad ` (at least
    /// six bytes) and ` ,   ` over ` wrt `.
    fn grad_command(&mut self, input: &str, at: usize) -> Result<Reply, String> {
        let Some(w) = input[at..].rfind(" wrt ").map(|w| at + w) else {
            return Err(diag::one_line(
                Code::Syntax,
                "`:grad` is written `:grad e wrt x`, as in `:grad sum(x * x) wrt x`",
            ));
        };
        let mut src = String::with_capacity(input.len() + 1);
        src.push_str(&" ".repeat(at - "grad(".len()));
        src.push_str("grad(");
        src.push_str(&input[at..w]);
        src.push_str(" ,   ");
        src.push_str(&input[w + " wrt ".len()..]);
        src.push(')');
        let l = self.lower(&src, input)?;
        let outputs = self.run(&l.graph, input, &[])?;
        Ok(match outputs.last() {
            Some(t) => Reply::Text(format::tensor(t)),
            None => Reply::Nothing,
        })
    }

    /// `:save FILE [names...]`; no names saves every binding.
    fn save_command(&self, rest: &str) -> Result<Reply, String> {
        let mut words = rest.split_whitespace();
        let Some(file) = words.next() else {
            return Err(diag::one_line(
                Code::Syntax,
                "`:save` is written `:save FILE x y`, as in `:save t.safetensors x`",
            ));
        };
        let names: Vec<&str> = words.collect();
        let mut out = Vec::new();
        for (n, b) in &self.vars {
            if names.is_empty() || names.contains(&n.as_str()) {
                out.push((n.clone(), b.tensor()));
            }
        }
        if let Some(missing) = names.iter().find(|n| self.address(n).is_none()) {
            return Err(diag::one_line(
                Code::UnknownName,
                &format!("`{missing}` is not bound; nothing was saved"),
            ));
        }
        files::save(std::path::Path::new(file), &out)
            .map_err(|e| diag::one_line(Code::BadData, &e))?;
        let saved: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
        Ok(Reply::Text(format!("saved {} to {file}", saved.join(", "))))
    }

    /// `:load FILE`: binds every tensor of the file by its name, or none
    /// when some name cannot be bound.
    fn load_command(&mut self, rest: &str) -> Result<Reply, String> {
        let file = rest.trim();
        if file.is_empty() {
            return Err(diag::one_line(
                Code::Syntax,
                "`:load` is written `:load FILE`",
            ));
        }
        let tensors = files::load(std::path::Path::new(file))
            .map_err(|e| diag::one_line(Code::BadData, &e))?;
        let bad: Vec<&str> = tensors
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| !is_name(n))
            .collect();
        if !bad.is_empty() {
            return Err(diag::one_line(
                Code::BadData,
                &format!(
                    "{file}: {} cannot be bound (not names in the language); nothing was loaded",
                    bad.join(", ")
                ),
            ));
        }
        let mut loaded = Vec::new();
        for (n, t) in tensors {
            let b = Binding::new(&t);
            loaded.push(format!("{n}: {}", b.ty()));
            match self.vars.iter_mut().find(|(m, _)| *m == n) {
                Some(slot) => slot.1 = b,
                None => self.vars.push((n, b)),
            }
        }
        Ok(Reply::Text(format!("loaded {}", loaded.join(", "))))
    }

    /// `:vars`: the bindings with their types, then the functions.
    fn vars_listing(&self) -> String {
        let lines: Vec<String> = self
            .vars
            .iter()
            .map(|(n, b)| format!("{n}: {}", b.ty()))
            .chain(
                self.fns
                    .iter()
                    .map(|f| format!("{}: function", f.name.node)),
            )
            .collect();
        if lines.is_empty() {
            "no bindings yet".to_string()
        } else {
            lines.join("\n")
        }
    }

    /// Parses and checks `src` (the input, or a command's expression padded
    /// to its place in `shown`), lowering it into a graph over the bindings.
    fn lower(&mut self, src: &str, shown: &str) -> Result<Lowered, String> {
        let render = |ds: &[Diagnostic]| diag::render(ds, FILE, shown, self.color);
        let (program, ds) = crate::syntax::parse(src);
        if !ds.is_empty() {
            // A function whose definition failed is remembered by name, so
            // that calling it says why it is missing.
            for item in &program.items {
                if let Item::Fn(f) = item {
                    if !self.broken_fns.contains(&f.name.node) {
                        self.broken_fns.push(f.name.node.clone());
                    }
                }
            }
            return Err(render(&ds));
        }
        // Definitions first: a `fn` typed in the REPL is kept for later
        // inputs; models, data and training recipes belong in programs.
        let mut new_fns = Vec::new();
        for item in &program.items {
            match item {
                Item::Fn(f) => new_fns.push(f.clone()),
                Item::Data(d) => return Err(render(&[not_here("a data source", d.span)])),
                Item::Model(m) => return Err(render(&[not_here("a model", m.span)])),
                Item::Train(t) => return Err(render(&[not_here("a training recipe", t.span)])),
                Item::Let(_) | Item::Assign(_) | Item::Expr(_) | Item::Error(_) => {}
            }
        }
        let mut fns: Vec<ast::FnDecl> = self
            .fns
            .iter()
            .filter(|f| !new_fns.iter().any(|n| n.name.node == f.name.node))
            .cloned()
            .collect();
        fns.extend(new_fns.iter().cloned());
        let globals = Globals {
            fns: fns.iter().map(|f| (f.name.node.as_str(), f)).collect(),
            lets: HashMap::new(),
            other: self
                .broken_fns
                .iter()
                .filter(|n| !fns.iter().any(|f| f.name.node == **n))
                .map(|n| (n.as_str(), crate::check::builtins::BROKEN_FN))
                .collect(),
        };
        let (mut g, step) = crate::check::graph_with_step();
        let mut inputs = Vec::new();
        for (name, b) in &self.vars {
            inputs.push(g.input(name, Role::Value, b.ty(), Span::default()));
        }
        let mut lw = Lowerer::new(&mut g, &globals, Mode::Eval);
        lw.step = Some(step);
        for ((name, _), id) in self.vars.iter().zip(&inputs) {
            lw.bind(name, Lowerer::strong(*id));
        }
        let done = crate::check::lower_statements(&mut lw, &program.items);
        // The value shown is the last statement's, when it is an expression.
        let shows = matches!(program.items.last(), Some(Item::Expr(_)))
            && done.last().is_some_and(|(_, _, p)| *p == Produced::Value);
        let mut binds = Vec::new();
        let mut updated = Vec::new();
        for (k, (name, _, p)) in done.iter().enumerate() {
            match p {
                Produced::Let => binds.push((name.clone(), k)),
                Produced::Update => {
                    binds.push((name.clone(), k));
                    updated.push(name.clone());
                }
                Produced::Value => {}
            }
        }
        let outputs = done.into_iter().map(|(n, id, _)| (n, id)).collect();
        let ds = std::mem::take(&mut lw.diags);
        drop(lw);
        if !ds.is_empty() {
            return Err(render(&ds));
        }
        g.outputs = outputs;
        self.fns = fns;
        Ok(Lowered {
            graph: g,
            binds,
            updated,
            shows,
        })
    }

    /// The step counter's next value, which keys the random constructors.
    fn next_step(&mut self) -> Tensor {
        self.evals += 1;
        Tensor::new(DType::I32, vec![], vec![self.evals as f64])
    }

    /// The inputs of a graph from [`Session::lower`]: the step counter, then
    /// every binding.
    fn inputs(&mut self) -> Vec<Tensor> {
        std::iter::once(self.next_step())
            .chain(self.vars.iter().map(|(_, b)| b.tensor()))
            .collect()
    }

    /// Compiles and runs a lowered graph; the bindings in `updated` are read
    /// from (and, where the plan puts the update in place, written into)
    /// their own buffers.
    fn run(&mut self, g: &Graph, input: &str, updated: &[String]) -> Result<Vec<Tensor>, String> {
        let fail = |e: String| {
            format!(
                "internal compiler error: {e} (while running `{}`)\n",
                input.trim()
            )
        };
        fits(g, input)?;
        let mut c = crate::jit::compile(g, false).map_err(fail)?;
        let step = self.next_step();
        let values: Vec<Option<Tensor>> = self
            .vars
            .iter()
            .map(|(n, b)| (!updated.contains(n)).then(|| b.tensor()))
            .collect();
        let given: Vec<Option<&Tensor>> = std::iter::once(Some(&step))
            .chain(values.iter().map(Option::as_ref))
            .collect();
        // Input 0 is the step counter; binding i is input i + 1.
        let mut external: Vec<(usize, &mut [u64])> = self
            .vars
            .iter_mut()
            .enumerate()
            .filter(|(_, (n, _))| updated.contains(n))
            .map(|(i, (_, b))| (i + 1, &mut b.words[..]))
            .collect();
        c.run_external(&given, &mut external, &Env { batch: 1, seed: 0 })
            .map_err(fail)
    }

    /// `:time e`: compile time, then the kernels' time per run.
    fn time(&mut self, g: &Graph, input: &str) -> Result<Reply, String> {
        let fail = |e: String| {
            format!(
                "internal compiler error: {e} (while timing `{}`)\n",
                input.trim()
            )
        };
        fits(g, input)?;
        let start = Instant::now();
        let mut c = crate::jit::compile(g, false).map_err(fail)?;
        let compile = start.elapsed().as_secs_f64();
        let inputs = self.inputs();
        let env = Env { batch: 1, seed: 0 };
        // Enough runs for about a tenth of a second.
        let once = c.time_kernels(&inputs, &env, 1).map_err(fail)?;
        let reps = ((0.1 / once.max(1e-7)) as usize).clamp(1, 100_000);
        let per = c.time_kernels(&inputs, &env, reps).map_err(fail)?;
        Ok(Reply::Text(format!(
            "compiled in {} ({} kernels); {} per run (mean of {reps})",
            seconds(compile),
            c.plan.kernels.len(),
            seconds(per)
        )))
    }
}

/// Whether `n` can be a binding's name: an identifier, not a keyword.
fn is_name(n: &str) -> bool {
    let mut cs = n.chars();
    cs.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !matches!(
            n,
            "data"
                | "model"
                | "param"
                | "let"
                | "fn"
                | "train"
                | "on"
                | "true"
                | "false"
                | "and"
                | "or"
                | "not"
        )
}

/// A printed graph without the `in` lines of inputs nothing reads (every
/// binding is an input of every graph; `:ir` shows those the input uses).
fn without_unused_inputs(text: &str) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let id_of = |l: &str| -> Option<String> {
        let rest = l.strip_prefix("in ")?.trim_start();
        Some(rest.split(':').next()?.to_string())
    };
    let used = |id: &str| {
        lines.iter().any(|l| {
            id_of(l).is_none()
                && l.split(|c: char| !(c.is_alphanumeric() || c == '%'))
                    .any(|tok| tok == id)
        })
    };
    lines
        .iter()
        .filter(|l| id_of(l).is_none_or(|id| used(&id)))
        .copied()
        .collect::<Vec<_>>()
        .join("\n")
}

fn not_here(what: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        Code::Syntax,
        format!("{what} cannot be defined in the REPL"),
    )
    .label(span, "define it in a .dl program")
    .note(
        "the REPL takes `let` bindings, updates such as `x += 1`, `fn` definitions and expressions",
    )
}

/// The type of a graph's last output, as `f32[2,3]`.
fn last_type(g: &Graph) -> String {
    g.outputs
        .last()
        .map(|(_, id)| g.ty(*id).to_string())
        .unwrap_or_else(|| "nothing".to_string())
}

fn seconds(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{:.2} µs", s * 1e6)
    }
}

/// The `:help` text.
pub fn help() -> String {
    let mut out =
        String::from("Expressions and statements in the .dl language, each compiled and run:\n");
    for (c, what) in COMMANDS {
        out.push_str(&format!("  {c:<14} {what}\n"));
    }
    out.push_str(
        "Tensors: [[1.0, 2.0], [3.0, 4.0]], arange(12), zeros(2, 3), ones(..), eye(3), rand(..), randn(..)\n\
         Reductions: sum(x, axis=0, keepdims=true), mean, max, min; x @ y, dot, matmul, norm, transpose, reshape\n\
         Gradients: grad(sum(x * x), x) is 2x; fn f(x) = ... then grad(f(x), x)",
    );
    out
}

/// Refuses, before compiling, a line whose values (and its results as f64
/// tensors) cannot fit in memory; the session goes on.
fn fits(g: &Graph, input: &str) -> Result<(), String> {
    let results: u128 = g
        .outputs
        .iter()
        .map(|(_, id)| crate::memory::elements(&g.ty(*id).shape, 1))
        .sum();
    crate::memory::check(
        &format!("`{}`", input.trim()),
        (crate::memory::graph_elements(g, 1) + results) * 8,
    )
    .map_err(|e| format!("error: {e}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_keeps_the_bindings() {
        let mut s = Session::new(false);
        assert_eq!(s.eval("let a = [1.0, 2.0]"), Ok(Reply::Nothing));
        let err = s.eval("a + nope").expect_err("unknown name");
        assert!(err.contains("unknown name `nope`"), "{err}");
        assert_eq!(s.eval("a * 2"), Ok(Reply::Text("[2. 4.]".into())));
        assert_eq!(s.eval("a += 1"), Ok(Reply::Nothing));
        assert_eq!(s.var("a").map(|t| t.data.clone()), Some(vec![2.0, 3.0]));
        assert_eq!(s.eval(":quit"), Ok(Reply::Quit));
    }

    /// multinomial's counts: every experiment has n draws, categories with
    /// probability 0 never come up, and frequencies approach the (normalized)
    /// probabilities: with 40,000 draws the standard error is below 0.0025.
    #[test]
    fn multinomial_counts_follow_the_probabilities() {
        let mut s = Session::new(false);
        s.eval("let c = multinomial(40000, [1.0, 0.0, 2.0, 3.0, 4.0])")
            .expect("draws");
        let c = s.var("c").expect("c");
        assert_eq!(c.data.iter().sum::<f64>(), 40000.0);
        assert_eq!(c.data[1], 0.0);
        for (got, p) in c.data.iter().zip([0.1, 0.0, 0.2, 0.3, 0.4]) {
            assert!((got / 40000.0 - p).abs() < 0.01, "{:?}", c.data);
        }
        s.eval("let r = multinomial(7, [0.5, 0.5], samples=300)")
            .expect("draws");
        let r = s.var("r").expect("r");
        assert_eq!(r.shape, vec![300, 2]);
        assert!(r.data.chunks(2).all(|row| row[0] + row[1] == 7.0));
        // Each experiment draws afresh: not every row is the same.
        assert!(r.data.chunks(2).any(|row| row != &r.data[..2]));
    }

    /// d2l §2.1: `X += Y` and `Z[:] = X + Y` write into the existing
    /// buffer; `Y = Y + X` makes a new one.
    #[test]
    fn updates_keep_the_buffer_and_let_makes_a_new_one() {
        let mut s = Session::new(false);
        s.eval("let x = [1.0, 2.0, 3.0]").expect("bound");
        let before = s.address("x").expect("x");
        s.eval("x += [10.0, 20.0, 30.0]").expect("updated");
        assert_eq!(s.address("x"), Some(before));
        s.eval("x[:] = x * 2").expect("updated");
        assert_eq!(s.address("x"), Some(before));
        assert_eq!(s.var("x").map(|t| t.data), Some(vec![22.0, 44.0, 66.0]));
        // The kernels wrote the update there: the plan puts `x + y` in x's
        // own buffer, which the run is given in place of a copy.
        let lowered = s.lower("x += 1", "x += 1").expect("lowers");
        let c = crate::jit::compile(&lowered.graph, false).expect("compiles");
        let x = c.graph.inputs[1].node;
        let out = c.graph.outputs[0].1;
        assert_eq!(crate::jit::plan::root(&c.plan.storage, out), x);
        s.eval("let x = x + 1").expect("rebound");
        assert_ne!(s.address("x"), Some(before));
        assert_eq!(s.var("x").map(|t| t.data), Some(vec![23.0, 45.0, 67.0]));
    }
}
