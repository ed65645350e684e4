//! The commands behind the `dlc` binary, as functions from arguments to
//! output text and an exit code, so tests can call them directly.
//!
//! Exit codes (DESIGN.md): 0 success, 1 a user error, 2 a usage error (clap),
//! 3 an internal compiler error.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::check::{self, Checked};
use crate::diag::{self, Diagnostic};
use crate::ir::print::{self, SourceInfo};
use crate::span::LineIndex;
use crate::syntax;

/// What a command produced.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

impl Output {
    fn fail(stderr: String) -> Output {
        Output {
            stdout: String::new(),
            stderr,
            code: 1,
        }
    }
}

/// The IR stages `dlc ir` can print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Ast,
    Typed,
    Grad,
    Opt,
    Kernels,
    Clif,
}

/// Options shared by the commands that read a program.
#[derive(Clone, Debug, Default)]
pub struct ProgramArgs {
    pub file: PathBuf,
    pub data: Option<PathBuf>,
    pub run: Option<String>,
    pub color: bool,
}

/// A program read and checked, with its diagnostics rendered.
pub struct Loaded {
    pub src: String,
    pub file_name: String,
    pub program: syntax::ast::Program,
    pub checked: Checked,
    pub diagnostics: Vec<Diagnostic>,
}

/// Reads a file as UTF-8, with a one-line error.
pub fn read_source(path: &Path) -> Result<String, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("error: cannot read {}: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| format!("error: {} is not UTF-8 text", path.display()))
}

pub fn load(args: &ProgramArgs) -> Result<Loaded, String> {
    let src = read_source(&args.file)?;
    let (program, checked, diagnostics) = check::check_file(&args.file, &src, args.data.clone());
    let file_name = args
        .file
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| args.file.display().to_string());
    Ok(Loaded {
        src,
        file_name,
        program,
        checked,
        diagnostics,
    })
}

fn render(l: &Loaded, color: bool) -> String {
    diag::render(&l.diagnostics, &l.file_name, &l.src, color)
}

/// `dlc check FILE`: diagnostics only.
pub fn cmd_check(args: &ProgramArgs) -> Output {
    let l = match load(args) {
        Ok(l) => l,
        Err(e) => return Output::fail(e + "\n"),
    };
    if !l.diagnostics.is_empty() {
        let n = l.diagnostics.len();
        let mut err = render(&l, args.color);
        let _ = writeln!(
            err,
            "{}: {n} error{}",
            l.file_name,
            if n == 1 { "" } else { "s" }
        );
        return Output::fail(err);
    }
    let mut err = String::new();
    let runs: Vec<&str> = l.checked.runs.iter().map(|r| r.name.as_str()).collect();
    let _ = writeln!(
        err,
        "{}: ok ({} data source{}, {} run{}{})",
        l.file_name,
        l.checked.data.len(),
        if l.checked.data.len() == 1 { "" } else { "s" },
        runs.len(),
        if runs.len() == 1 { "" } else { "s" },
        if runs.is_empty() {
            String::new()
        } else {
            format!(": {}", runs.join(", "))
        }
    );
    Output {
        stdout: String::new(),
        stderr: err,
        code: 0,
    }
}

/// `dlc ir FILE --stage S`.
pub fn cmd_ir(args: &ProgramArgs, stage: Stage) -> Output {
    let l = match load(args) {
        Ok(l) => l,
        Err(e) => return Output::fail(e + "\n"),
    };
    if stage == Stage::Ast {
        // The AST prints even when later stages find errors; parse errors
        // still fail, since the tree would hold error nodes.
        let (_, parse_diags) = syntax::parse(&l.src);
        if !parse_diags.is_empty() {
            return Output::fail(diag::render(&parse_diags, &l.file_name, &l.src, args.color));
        }
        return Output {
            stdout: syntax::print::program(&l.program),
            stderr: String::new(),
            code: 0,
        };
    }
    if !l.diagnostics.is_empty() {
        return Output::fail(render(&l, args.color));
    }
    match stage {
        Stage::Ast | Stage::Typed | Stage::Grad | Stage::Clif => {}
        Stage::Opt | Stage::Kernels => {
            let name = match stage {
                Stage::Opt => "opt (the optimizer)",
                _ => "kernels (the optimizer's kernel plan)",
            };
            return Output::fail(format!(
                "error: the stage {name} is not built yet; this version prints `ast`, `typed`, `grad` and `clif`\n"
            ));
        }
    }
    let mut err = String::new();
    let lines = LineIndex::new(&l.src);
    let info = SourceInfo {
        file: &l.file_name,
        lines: &lines,
    };
    let mut out = String::new();
    if let Some(r) = &args.run {
        if !l.checked.runs.iter().any(|x| &x.name == r) {
            let names: Vec<&str> = l.checked.runs.iter().map(|x| x.name.as_str()).collect();
            return Output::fail(format!(
                "error: no run named `{r}`; the runs are: {}\n",
                names.join(", ")
            ));
        }
    }
    for d in &l.checked.data {
        let _ = writeln!(out, "# data {}: {}", d.name, d.summary);
    }
    for r in &l.checked.runs {
        if args.run.as_ref().is_some_and(|n| *n != r.name) {
            continue;
        }
        let data = &l.checked.data[r.data];
        if stage == Stage::Clif {
            let Some(step) = crate::step::training_step(r) else {
                let _ = writeln!(out, "\n# run {}: solved in closed form, no kernels", r.name);
                continue;
            };
            match crate::jit::compile(&step, true) {
                Ok(c) => {
                    let _ = writeln!(
                        out,
                        "\n# run {}: the training step as {} Cranelift functions, one per IR node",
                        r.name,
                        c.clif.len()
                    );
                    let _ = writeln!(err, "run {}: compiled in {:.1} ms", r.name, c.compile_ms);
                    for (name, text) in &c.clif {
                        let _ = writeln!(out, "\n; {name}\n{text}");
                    }
                }
                Err(e) => return Output::fail(format!("internal compiler error: {e}\n")),
            }
            continue;
        }
        if stage == Stage::Grad {
            match crate::step::training_step(r) {
                Some(step) => {
                    let _ = writeln!(
                        out,
                        "\n# run {}: {} on {}: the training step",
                        r.name, r.model, data.name
                    );
                    out.push_str(&print::graph(&step, Some(&info)));
                }
                None => {
                    let _ = writeln!(
                        out,
                        "\n# run {}: solved in closed form, no training step",
                        r.name
                    );
                }
            }
            continue;
        }
        let _ = writeln!(
            out,
            "\n# run {}: {} on {} (training mode)",
            r.name, r.model, data.name
        );
        out.push_str(&print::graph(&r.train, Some(&info)));
    }
    if args.run.is_none() && stage == Stage::Typed {
        if let Some(s) = &l.checked.session {
            let _ = writeln!(out, "\n# top level");
            out.push_str(&print::graph(s, Some(&info)));
        }
    }
    Output {
        stdout: out,
        stderr: err,
        code: 0,
    }
}

/// A command whose stage comes in a later version: checks the program, then
/// says plainly what is missing.
pub fn cmd_not_yet(args: &ProgramArgs, what: &str) -> Output {
    let l = match load(args) {
        Ok(l) => l,
        Err(e) => return Output::fail(e + "\n"),
    };
    if !l.diagnostics.is_empty() {
        return Output::fail(render(&l, args.color));
    }
    Output::fail(format!(
        "error: `dlc {what}` is not built yet. {} checks fine; today dlc parses and type-checks programs (`dlc check`, `dlc ir --stage ast|typed`)\n",
        l.file_name
    ))
}

/// `dlc gradcheck FILE`: every run's parameter gradients against central
/// finite differences, in f64 through the interpreter.
pub fn cmd_gradcheck(args: &ProgramArgs, opts: &crate::gradcheck::Options) -> Output {
    cmd_gradcheck_with(args, opts, &crate::autodiff::vjp)
}

/// [`cmd_gradcheck`] with the given derivative rules (a test injects a
/// broken one to show the command fails as it should).
pub fn cmd_gradcheck_with(
    args: &ProgramArgs,
    opts: &crate::gradcheck::Options,
    rule: &crate::autodiff::Rule,
) -> Output {
    let l = match load(args) {
        Ok(l) => l,
        Err(e) => return Output::fail(e + "\n"),
    };
    if !l.diagnostics.is_empty() {
        return Output::fail(render(&l, args.color));
    }
    if let Some(r) = &args.run {
        if !l.checked.runs.iter().any(|x| &x.name == r) {
            let names: Vec<&str> = l.checked.runs.iter().map(|x| x.name.as_str()).collect();
            return Output::fail(format!(
                "error: no run named `{r}`; the runs are: {}\n",
                names.join(", ")
            ));
        }
    }
    let mut out = String::new();
    let mut failures = Vec::new();
    for r in &l.checked.runs {
        if args.run.as_ref().is_some_and(|n| *n != r.name) {
            continue;
        }
        if !r.train.outputs.iter().any(|(n, _)| n == "loss") {
            let _ = writeln!(
                out,
                "{} run {}: solved in closed form, no loss to differentiate",
                l.file_name, r.name
            );
            continue;
        }
        let _ = writeln!(
            out,
            "{} run {} (batch {}, eps {:e}, f64):",
            l.file_name, r.name, opts.batch, opts.eps
        );
        let data = l.checked.data.get(r.data);
        match crate::gradcheck::check_run(r, data, opts, rule) {
            Ok(rep) => {
                out.push_str(&rep.render());
                if !rep.ok() {
                    failures.push(rep);
                }
            }
            Err(e) => return Output::fail(format!("error: run {}: {e}\n", r.name)),
        }
    }
    let mut err = String::new();
    for rep in &failures {
        let worst = rep
            .params
            .iter()
            .filter(|p| !p.worst.ok())
            .map(|p| (format!("{}{:?}", p.name, p.worst.index), &p.worst))
            .chain(
                (!rep.direction.ok()).then(|| ("the random direction".to_string(), &rep.direction)),
            )
            .next();
        if let Some((what, w)) = worst {
            let _ = writeln!(
                err,
                "error: gradient check failed in run {}: {what}: symbolic {:.6e}, finite difference {:.6e} (|diff| {:.1e} > tolerance {:.1e})",
                rep.run,
                w.symbolic,
                w.numeric,
                w.error(),
                w.tolerance()
            );
        }
    }
    Output {
        stdout: out,
        stderr: err,
        code: i32::from(!failures.is_empty()),
    }
}

/// Loads and checks a program for a streaming command; on failure writes
/// the error or the diagnostics to `stderr` and returns `None` (exit 1).
fn load_checked(args: &ProgramArgs, stderr: &mut dyn std::io::Write) -> Option<Loaded> {
    let l = match load(args) {
        Ok(l) => l,
        Err(e) => {
            let _ = writeln!(stderr, "{e}");
            return None;
        }
    };
    if !l.diagnostics.is_empty() {
        let _ = write!(stderr, "{}", render(&l, args.color));
        return None;
    }
    Some(l)
}

/// `dlc train FILE`: trains every run (or `--run NAME`), streaming the
/// report to `stdout` / `stderr`; returns the exit code.
pub fn cmd_train(
    args: &ProgramArgs,
    opts: &crate::train::TrainOptions,
    stdout: &mut dyn std::io::Write,
    stderr: &mut dyn std::io::Write,
) -> i32 {
    let Some(l) = load_checked(args, stderr) else {
        return 1;
    };
    if let Some(r) = &args.run {
        if !l.checked.runs.iter().any(|x| &x.name == r) {
            let names: Vec<&str> = l.checked.runs.iter().map(|x| x.name.as_str()).collect();
            let _ = writeln!(
                stderr,
                "error: no run named `{r}`; the runs are: {}",
                names.join(", ")
            );
            return 1;
        }
    }
    let mut opts = opts.clone();
    opts.program_hash = crate::checkpoint::program_hash(&l.src);
    let opts = &opts;
    let progress = !opts.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut sink = crate::train::Sink {
        stdout,
        stderr,
        json: opts.json,
        quiet: opts.quiet,
        progress,
    };
    for r in &l.checked.runs {
        if args.run.as_ref().is_some_and(|n| *n != r.name) {
            continue;
        }
        let data = &l.checked.data[r.data];
        if let Err(e) = crate::train::train_run(r, data, opts, &mut sink) {
            let _ = writeln!(sink.stderr, "error: {e}");
            return 1;
        }
    }
    0
}

/// `dlc eval FILE --load CKPT`: the test metrics of a saved model (one run:
/// the only one, or `--run NAME`).
pub fn cmd_eval(
    args: &ProgramArgs,
    ckpt: &Path,
    opts: &crate::train::TrainOptions,
    stdout: &mut dyn std::io::Write,
    stderr: &mut dyn std::io::Write,
) -> i32 {
    let Some(l) = load_checked(args, stderr) else {
        return 1;
    };
    let runs: Vec<&crate::check::Run> = l
        .checked
        .runs
        .iter()
        .filter(|r| args.run.as_ref().is_none_or(|n| *n == r.name))
        .collect();
    let [run] = runs.as_slice() else {
        let names: Vec<&str> = l.checked.runs.iter().map(|x| x.name.as_str()).collect();
        let _ = writeln!(
            stderr,
            "error: name the run to evaluate with --run; the runs are: {}",
            names.join(", ")
        );
        return 1;
    };
    let mut opts = opts.clone();
    opts.program_hash = crate::checkpoint::program_hash(&l.src);
    let progress = !opts.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut sink = crate::train::Sink {
        stdout,
        stderr,
        json: opts.json,
        quiet: opts.quiet,
        progress,
    };
    let data = &l.checked.data[run.data];
    match crate::train::eval_checkpoint(run, data, ckpt, &opts, &mut sink) {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(sink.stderr, "error: {e}");
            1
        }
    }
}
