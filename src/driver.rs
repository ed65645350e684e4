//! The commands behind the `dlc` binary, as functions from arguments to
//! output text and an exit code, so tests can call them directly.
//!
//! Exit codes (DESIGN.md): 0 success, 1 a user error, 2 a usage error (clap),
//! 3 an internal compiler error.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::check::{self, Checked};
use crate::diag::{self, Diagnostic};
use crate::ir::print::{self, SourceInfo};
use crate::output::Input;
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
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("error: {} is not UTF-8 text", path.display()))?;
    // A byte-order mark (some Windows editors write one) is not part of
    // the program.
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// Refuses, in one line, a path that is not a `.dl` program: a folder, or
/// a data file (which `dlc data` summarizes directly).
fn expect_program(path: &Path) -> Result<(), String> {
    if path.is_dir() {
        return Err(format!(
            "error: {} is a folder, not a .dl program (`dlc data {}` summarizes an IDX folder)",
            path.display(),
            path.display()
        ));
    }
    let is_dl = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("dl"));
    if is_dl || !path.exists() {
        return Ok(());
    }
    Err(if is_data_file(path) {
        format!(
            "error: {} is a data file, not a .dl program (`dlc data {}` summarizes it; a program reads it with `data d = csv(...)` or `idx(...)`)",
            path.display(),
            path.display()
        )
    } else {
        format!(
            "error: {} is not a .dl program (programs are .dl files, in the language of grammar/README.md)",
            path.display()
        )
    })
}

/// A CSV file or an IDX file, plain or gzipped, by its name.
fn is_data_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    name.ends_with(".csv") || name.contains("idx") || name.ends_with("ubyte")
}

pub fn load(args: &ProgramArgs) -> Result<Loaded, String> {
    load_described(args, HashMap::new())
}

/// [`load`] with some data sources described already (`check::Options::described`).
fn load_described(
    args: &ProgramArgs,
    described: HashMap<String, check::DataSpec>,
) -> Result<Loaded, String> {
    expect_program(&args.file)?;
    let src = read_source(&args.file)?;
    let (program, checked, diagnostics) =
        check::check_file_described(&args.file, &src, (args.data.clone(), described));
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

/// `dlc fmt [--check] [FILES]`: each file formatted in place (written
/// atomically, only when it changes), or with `--check` listed on stdout
/// when it would change (exit 1); with no file, stdin to stdout. A file
/// that does not parse keeps its text and gets its diagnostics (exit 1).
pub fn cmd_fmt(files: &[PathBuf], check: bool, stdin: Option<&str>, color: bool) -> Output {
    let mut out = Output {
        stdout: String::new(),
        stderr: String::new(),
        code: 0,
    };
    if files.is_empty() {
        let src = stdin.unwrap_or("");
        match crate::syntax::fmt::format(src) {
            Ok(text) => {
                if check && text != src {
                    out.stdout.push_str("<stdin>\n");
                    out.code = 1;
                } else if !check {
                    out.stdout = text;
                }
            }
            Err(d) => {
                out.stderr = diag::render(&d, "<stdin>", src, color);
                out.code = 1;
            }
        }
        return out;
    }
    for path in files {
        let name = path.display().to_string();
        let src = match std::fs::read_to_string(path) {
            Ok(s) => s,
            Err(e) => {
                let _ = writeln!(out.stderr, "error: cannot read {name}: {e}");
                out.code = 1;
                continue;
            }
        };
        match crate::syntax::fmt::format(&src) {
            Ok(text) if text == src => {}
            Ok(_) if check => {
                let _ = writeln!(out.stdout, "{name}");
                out.code = 1;
            }
            Ok(text) => {
                if let Err(e) = crate::output::write(path, &[], text.as_bytes()) {
                    let _ = writeln!(out.stderr, "error: {e}");
                    out.code = 1;
                }
            }
            Err(d) => {
                out.stderr.push_str(&diag::render(&d, &name, &src, color));
                out.code = 1;
            }
        }
    }
    out
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
    let mut err = data_warnings(&l);
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
pub fn cmd_ir(args: &ProgramArgs, stage: Stage, ranks: usize) -> Output {
    let l = match load(args) {
        Ok(l) => l,
        Err(e) => return Output::fail(e + "\n"),
    };
    if stage == Stage::Ast {
        return ast_output(&l, args.color);
    }
    if !l.diagnostics.is_empty() {
        return Output::fail(render(&l, args.color));
    }
    let mut err = String::new();
    let lines = LineIndex::new(&l.src);
    let info = SourceInfo {
        file: &l.file_name,
        lines: &lines,
    };
    let mut out = String::new();
    if let Some(e) = unknown_run(&l, args) {
        return Output::fail(e);
    }
    for d in &l.checked.data {
        let _ = writeln!(out, "# data {}: {}", d.name, d.summary);
    }
    for r in &l.checked.runs {
        if args.run.as_ref().is_some_and(|n| *n != r.name) {
            continue;
        }
        let data = &l.checked.data[r.data].name;
        match stage {
            Stage::Clif => {
                if let Err(e) = write_clif(&mut out, &mut err, r, ranks) {
                    return Output::fail(e);
                }
            }
            Stage::Opt | Stage::Kernels => {
                write_optimized(&mut out, r, (data, ranks), stage, &info);
            }
            Stage::Grad => write_training_step(&mut out, r, (data, ranks), &info),
            // The AST returned above.
            Stage::Ast | Stage::Typed => {
                let _ = writeln!(
                    out,
                    "\n# run {}: {} on {} (training mode)",
                    r.name, r.model, data
                );
                out.push_str(&print::graph(&r.train, Some(&info)));
            }
        }
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

/// `dlc ir --stage ast`: the tree prints even when later stages find
/// errors; parse errors still fail, since the tree would hold error nodes.
fn ast_output(l: &Loaded, color: bool) -> Output {
    let (_, parse_diags) = syntax::parse(&l.src);
    if !parse_diags.is_empty() {
        return Output::fail(diag::render(&parse_diags, &l.file_name, &l.src, color));
    }
    Output {
        stdout: syntax::print::program(&l.program),
        stderr: String::new(),
        code: 0,
    }
}

/// A run's training step, for one of `ranks` processes (with its gradient
/// outputs).
fn step_for(r: &crate::check::Run, ranks: usize) -> Option<crate::ir::Graph> {
    if ranks > 1 {
        crate::step::data_parallel(r, true)
    } else {
        crate::step::training_step(r)
    }
}

/// " (one of N processes)" for a data-parallel step's heading.
fn of_ranks(ranks: usize) -> String {
    if ranks > 1 {
        format!(" (one of {ranks} processes: gradients, loss and metrics summed across them)")
    } else {
        String::new()
    }
}

/// `--stage clif`: a run's training step as Cranelift functions, with the
/// compile time on `err`; `Err` is the internal compiler error to fail with.
fn write_clif(
    out: &mut String,
    err: &mut String,
    r: &crate::check::Run,
    ranks: usize,
) -> Result<(), String> {
    let Some(step) = step_for(r, ranks) else {
        let _ = writeln!(out, "\n# run {}: solved in closed form, no kernels", r.name);
        return Ok(());
    };
    match crate::jit::compile(&step, true) {
        Ok(c) => {
            let epilogues = c
                .clif
                .iter()
                .filter(|(n, _)| n.ends_with("_epilogue"))
                .count();
            let _ = writeln!(
                out,
                "\n# run {}: the training step as {} Cranelift functions, one per kernel (see --stage kernels), and {} epilogues: a matmul-headed kernel's other members alone, run after each block of rows that the gemm crate multiplies",
                r.name,
                c.clif.len() - epilogues,
                epilogues
            );
            let _ = writeln!(err, "run {}: compiled in {:.1} ms", r.name, c.compile_ms);
            for (name, text) in &c.clif {
                let _ = writeln!(out, "\n; {name}\n{text}");
            }
            Ok(())
        }
        Err(e) => Err(format!("internal compiler error: {e}\n")),
    }
}

/// `--stage opt` and `--stage kernels`: a run's training step and eval
/// function after the optimizer's passes, as IR or as kernels, each under
/// its statistics before and after.
fn write_optimized(
    out: &mut String,
    r: &crate::check::Run,
    (data, ranks): (&str, usize),
    stage: Stage,
    info: &SourceInfo,
) {
    let Some(step) = step_for(r, ranks) else {
        let _ = writeln!(
            out,
            "\n# run {}: solved in closed form, no training step",
            r.name
        );
        return;
    };
    let batch = r.settings.batch as usize;
    let all = crate::opt::Passes::all();
    let step_name = format!("the training step{}", of_ranks(ranks));
    for (what, g) in [
        (step_name.as_str(), step),
        ("the eval function", crate::step::eval_function(r)),
    ] {
        let before = crate::jit::describe::stats(&g, &crate::opt::Passes::none(), batch);
        let opt = crate::opt::optimize(&g, &all);
        let after = crate::jit::describe::stats(&opt, &all, batch);
        let _ = writeln!(
            out,
            "\n# run {}: {} on {}: {what}, optimized\n#   before: {}\n#   after:  {}  (batch {batch})",
            r.name,
            r.model,
            data,
            before.line(),
            after.line()
        );
        if stage == Stage::Opt {
            out.push_str(&print::graph(&opt, Some(info)));
        } else {
            out.push_str(&crate::jit::describe::describe(&opt, &all, batch));
        }
    }
}

/// `--stage grad`: a run's training step (forward, gradients, update).
fn write_training_step(
    out: &mut String,
    r: &crate::check::Run,
    (data, ranks): (&str, usize),
    info: &SourceInfo,
) {
    match step_for(r, ranks) {
        Some(step) => {
            let _ = writeln!(
                out,
                "\n# run {}: {} on {}: the training step{}",
                r.name,
                r.model,
                data,
                of_ranks(ranks)
            );
            out.push_str(&print::graph(&step, Some(info)));
        }
        None => {
            let _ = writeln!(
                out,
                "\n# run {}: solved in closed form, no training step",
                r.name
            );
        }
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
    if let Some(e) = unknown_run(&l, args) {
        return Output::fail(e);
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

/// The error for a `--run NAME` the program does not define.
fn unknown_run(l: &Loaded, args: &ProgramArgs) -> Option<String> {
    let r = args.run.as_ref()?;
    if l.checked.runs.iter().any(|x| &x.name == r) {
        return None;
    }
    let names: Vec<&str> = l.checked.runs.iter().map(|x| x.name.as_str()).collect();
    Some(format!(
        "error: no run named `{r}`; the runs are: {}\n",
        names.join(", ")
    ))
}

/// Loads and checks a program for a streaming command; on failure writes
/// the error or the diagnostics to `stderr` and returns `None` (exit 1).
/// The program's runs, or only `--run NAME`.
fn selected_runs<'l>(l: &'l Loaded, args: &ProgramArgs) -> Vec<&'l crate::check::Run> {
    l.checked
        .runs
        .iter()
        .filter(|r| args.run.as_ref().is_none_or(|n| *n == r.name))
        .collect()
}

/// The one run a command on a saved model works on: the program's only
/// run, or `--run NAME`; else an error listing the runs (`what`: what the
/// command does to it).
fn one_run<'l>(
    l: &'l Loaded,
    args: &ProgramArgs,
    what: &str,
    stderr: &mut dyn std::io::Write,
) -> Option<&'l crate::check::Run> {
    let runs = selected_runs(l, args);
    if let [run] = runs.as_slice() {
        return Some(run);
    }
    let names: Vec<&str> = l.checked.runs.iter().map(|x| x.name.as_str()).collect();
    let _ = writeln!(
        stderr,
        "error: name the run to {what} with --run; the runs are: {}",
        names.join(", ")
    );
    None
}

fn load_checked(args: &ProgramArgs, stderr: &mut dyn std::io::Write) -> Option<Loaded> {
    load_checked_described(args, HashMap::new(), stderr)
}

/// A program for a command that uses a trained model (predict, export):
/// the data its checkpoint was trained on is described by the
/// checkpoint's preprocessing, so a deployed model is its program and its
/// checkpoint, without the training data's files. (`--data` still reads
/// the files it names; a checkpoint without preprocessing, from an older
/// dlc, reads them too.)
fn load_deployed(
    args: &ProgramArgs,
    ckpt: &Path,
    stderr: &mut dyn std::io::Write,
) -> Option<Loaded> {
    let mut described = HashMap::new();
    if args.data.is_none() {
        if let Ok((run, Some(prep))) = crate::checkpoint::peek(ckpt) {
            let src = read_source(&args.file).unwrap_or_default();
            let (program, _) = syntax::parse(&src);
            let data = program.items.iter().find_map(|i| match i {
                syntax::ast::Item::Train(t)
                    if t.run.as_ref().map_or("main", |r| r.node.as_str()) == run =>
                {
                    Some(t.data.node.clone())
                }
                _ => None,
            });
            if let Some(name) = data {
                if let Some(spec) = check::data::DataSpec::from_preprocessing(&name, &prep, ckpt) {
                    described.insert(name, spec);
                }
            }
        }
    }
    load_checked_described(args, described, stderr)
}

fn load_checked_described(
    args: &ProgramArgs,
    described: HashMap<String, check::DataSpec>,
    stderr: &mut dyn std::io::Write,
) -> Option<Loaded> {
    let l = match load_described(args, described) {
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
    let _ = write!(stderr, "{}", data_warnings(&l));
    Some(l)
}

/// The data sources' warnings, one `warning: ...` line each.
fn data_warnings(l: &Loaded) -> String {
    l.checked
        .data
        .iter()
        .flat_map(|d| &d.warnings)
        .map(|w| format!("warning: {w}\n"))
        .collect()
}

/// One of a command's inputs, owned: what it is and its path.
type NamedInput = (String, PathBuf);

/// What a command reads of a program: the program itself, and the data
/// files of `run` (of every run when `None`); an output must be none of
/// them (`output::prepare`).
fn program_inputs(args: &ProgramArgs, l: &Loaded, run: Option<&check::Run>) -> Vec<NamedInput> {
    let mut inputs = vec![("the program".to_string(), args.file.clone())];
    let specs = l.checked.data.iter().enumerate();
    for (_, d) in specs.filter(|(i, _)| run.is_none_or(|r| r.data == *i)) {
        let files = match d.rows.unknown {
            // Described by a checkpoint: not read, but the program's
            // files all the same, and not to be written over.
            true => declared_path(args, l, &d.name).into_iter().collect(),
            false => data_files(d),
        };
        for f in files {
            inputs.push((format!("a file of data `{}`", d.name), f));
        }
    }
    inputs
}

/// The path a data declaration names (its first argument), relative to
/// the program's folder.
fn declared_path(args: &ProgramArgs, l: &Loaded, name: &str) -> Option<PathBuf> {
    use syntax::ast::{ExprKind, Item};
    let decl = l.program.items.iter().find_map(|i| match i {
        Item::Data(d) if d.name.node == name => Some(d),
        _ => None,
    })?;
    let ExprKind::Call { args: call, .. } = &decl.source.node else {
        return None;
    };
    let first = call.iter().find(|a| a.name.is_none())?;
    let Some(check::consts::Const::Str(p)) = check::consts::eval(&first.value) else {
        return None;
    };
    let base = args.file.parent().unwrap_or(Path::new(""));
    Some(base.join(p))
}

/// The files a data source reads.
fn data_files(d: &check::data::DataSpec) -> Vec<PathBuf> {
    use check::data::Source;
    match &d.source {
        Source::Idx { images, labels, .. } => images.iter().chain(labels).cloned().collect(),
        Source::Csv {
            path, test_file, ..
        } => std::iter::once(path.clone())
            .chain(test_file.clone())
            .collect(),
        Source::Npy {
            train, test_arrays, ..
        } => train
            .iter()
            .chain(test_arrays.iter().flatten())
            .map(|r| r.path.clone())
            .collect(),
        Source::Synthetic { .. } => Vec::new(),
    }
}

/// Borrowed views of `inputs`, as `output::prepare` takes them.
fn as_inputs(inputs: &[NamedInput]) -> Vec<Input<'_>> {
    inputs
        .iter()
        .map(|(r, p)| (r.as_str(), p.as_path()))
        .collect()
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
    if let Some(e) = unknown_run(&l, args) {
        let _ = write!(stderr, "{e}");
        return 1;
    }
    let mut opts = opts.clone();
    opts.program_hash = crate::checkpoint::program_hash(&l.src);
    opts.source.clone_from(&l.src);
    opts.source_name.clone_from(&l.file_name);
    let opts = &opts;
    let runs = selected_runs(&l, args);
    if let Err(e) = same_everywhere(&l, &runs, opts) {
        error_line(stderr, &e);
        return 1;
    }
    // Across processes, the first prints for all (errors aside).
    let leads = crate::dist::ranks().leads();
    let progress = leads && !opts.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut nowhere = std::io::sink();
    let stdout: &mut dyn std::io::Write = if leads { stdout } else { &mut nowhere };
    let mut sink = crate::train::Sink {
        stdout,
        stderr,
        json: opts.json && leads,
        quiet: opts.quiet || !leads,
        progress,
    };
    // With several runs, each saves, resumes and draws its own file:
    // ckpt-RUN.safetensors, curves-RUN.svg.
    let per_run = |r: &crate::check::Run| {
        let mut o = opts.clone();
        if runs.len() > 1 {
            o.plot = opts.plot.as_deref().map(|p| per_name(p, &r.name));
            o.save = opts.save.as_deref().map(|p| per_name(p, &r.name));
            o.resume = opts.resume.as_deref().map(|p| per_name(p, &r.name));
        }
        o
    };
    // Whatever is to be saved must be writable before hours of training
    // (by the process that writes it).
    // Nor may it be one of the files the run reads.
    for r in runs.iter().filter(|_| leads) {
        let o = per_run(r);
        let mut inputs = program_inputs(args, &l, Some(r));
        if let Some(p) = &o.resume {
            inputs.push((
                "the checkpoint it resumes (--resume)".to_string(),
                p.clone(),
            ));
        }
        let outputs = [("--save", &o.save), ("--plot", &o.plot)];
        for (i, (flag, p)) in outputs.iter().enumerate() {
            let Some(p) = p else { continue };
            // Saving over the checkpoint a run resumes from is the usual
            // way to continue a run: it was read whole before training.
            let mut refused: Vec<Input> = as_inputs(&inputs)
                .into_iter()
                .filter(|(role, _)| *flag != "--save" || !role.contains("--resume"))
                .collect();
            let others: Vec<(String, PathBuf)> = outputs[..i]
                .iter()
                .filter_map(|(f, q)| {
                    q.as_ref()
                        .map(|q| (format!("the output of {f}"), q.clone()))
                })
                .collect();
            refused.extend(as_inputs(&others));
            if let Err(e) = crate::output::prepare(p, &refused) {
                let _ = writeln!(sink.stderr, "error: {flag}: {e}");
                return 1;
            }
        }
    }
    for r in &runs {
        let data = &l.checked.data[r.data];
        let opts = &per_run(r);
        if let Err(e) = crate::train::train_run(r, data, opts, &mut sink) {
            error_line(sink.stderr, &e);
            return 1;
        }
    }
    0
}

/// Writes `error: {e}` and a newline in one write: the lines of several
/// processes' errors, which a launcher forwards as they come, do not
/// interleave.
fn error_line(stderr: &mut dyn std::io::Write, e: &str) {
    let _ = stderr.write_all(format!("error: {e}\n").as_bytes());
}

/// Across processes: that every process trains the same program on the
/// same data (its metadata: the contents are compared once loaded) with
/// the same settings (a hash of them, compared).
fn same_everywhere(
    l: &Loaded,
    runs: &[&crate::check::Run],
    opts: &crate::train::TrainOptions,
) -> Result<(), String> {
    if crate::dist::collective().is_none() {
        return Ok(());
    }
    let mut what = format!(
        "{}\n{:?} {:?} {:?} {:?} {:?}",
        l.src, opts.epochs, opts.batch, opts.lr, opts.seed, opts.resume
    );
    for r in runs {
        let d = &l.checked.data[r.data];
        what.push_str(&format!(
            "\n{} {} {:?} {:?}",
            r.name, d.summary, d.sample, d.rows
        ));
    }
    let mine = u64::from_str_radix(&crate::checkpoint::program_hash(&what), 16).unwrap_or(0);
    crate::dist::agree(mine, "the program, its data's shape or the settings")
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
    let Some(run) = one_run(&l, args, "evaluate", stderr) else {
        return 1;
    };
    let mut opts = opts.clone();
    opts.program_hash = crate::checkpoint::program_hash(&l.src);
    opts.source.clone_from(&l.src);
    let mut sink = crate::train::Sink {
        stdout,
        stderr,
        json: opts.json,
        quiet: opts.quiet,
        progress: false,
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

/// What `dlc export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// The parameters as NumPy arrays under their names.
    Npz,
    /// The eval function as an ONNX model.
    Onnx,
}

/// `dlc export FILE --load CKPT --out OUT`: a checkpoint's parameters in
/// another format, written atomically.
pub fn cmd_export(
    args: &ProgramArgs,
    ckpt: &Path,
    out: &Path,
    format: ExportFormat,
    stderr: &mut dyn std::io::Write,
) -> i32 {
    let Some(l) = load_deployed(args, ckpt, stderr) else {
        return 1;
    };
    let Some(run) = one_run(&l, args, "export", stderr) else {
        return 1;
    };
    let written = (|| {
        let mut inputs = program_inputs(args, &l, None);
        inputs.push(("the checkpoint (--load)".to_string(), ckpt.to_path_buf()));
        let target = crate::output::prepare(out, &as_inputs(&inputs))?;
        let ck = crate::checkpoint::load(ckpt, run)?;
        if let Some(note) = crate::checkpoint::changed_note(&ck, &l.src, ckpt) {
            let _ = writeln!(stderr, "{note}");
        }
        let shapes: Vec<Vec<usize>> = run
            .params
            .iter()
            .map(|p| crate::interp::concrete(&p.ty.shape, 1))
            .collect();
        // A K-fold checkpoint's models are `fold1.W`, `fold2.W`, ...
        let models = ck.models();
        let names: Vec<Vec<String>> = (1..=models.len())
            .map(|k| {
                run.params
                    .iter()
                    .map(|p| match ck.folds.is_empty() {
                        true => p.name.clone(),
                        false => format!("fold{k}.{}", p.name),
                    })
                    .collect()
            })
            .collect();
        let arrays: Vec<crate::export::Array> = models
            .iter()
            .zip(&names)
            .flat_map(|(model, names)| {
                run.params
                    .iter()
                    .zip(&shapes)
                    .zip(model.iter().zip(names))
                    .map(|((p, shape), (values, name))| crate::export::Array {
                        name,
                        shape,
                        dtype: p.ty.dtype,
                        values,
                    })
            })
            .collect();
        let bytes = match format {
            ExportFormat::Npz => crate::export::npz(&arrays)?,
            ExportFormat::Onnx => {
                let weights = crate::export::onnx::Weights { models };
                let g = crate::step::eval_function(run);
                crate::export::onnx::model(&g, &weights, (&l.src, &l.file_name))?
            }
        };
        target.write(&bytes)?;
        let what = match format {
            ExportFormat::Npz => "the parameters as NumPy arrays",
            ExportFormat::Onnx => "the model as ONNX",
        };
        let _ = writeln!(stderr, "wrote {what} to {}", out.display());
        Ok::<(), String>(())
    })();
    match written {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(stderr, "error: {e}");
            1
        }
    }
}

/// `dlc predict FILE --load CKPT --input NEW --out OUT`: a saved model's
/// predictions on new data, as CSV, streamed to OUT (appearing whole once
/// every row is predicted: `output`) or to stdout for `-`.
pub fn cmd_predict(
    args: &ProgramArgs,
    (req, out): (&crate::predict::Request<'_>, &Path),
    stdout: &mut dyn std::io::Write,
    stderr: &mut dyn std::io::Write,
) -> i32 {
    let Some(l) = load_deployed(args, req.checkpoint, stderr) else {
        return 1;
    };
    let Some(run) = one_run(&l, args, "predict with", stderr) else {
        return 1;
    };
    let to_stdout = out == Path::new("-");
    let done = (|| {
        let p = if to_stdout {
            let p = crate::predict::predict(run, &l.checked.data[run.data], req, stdout)?;
            stdout
                .flush()
                .map_err(|e| format!("cannot write the predictions to stdout: {e}"))?;
            p
        } else {
            let mut inputs = program_inputs(args, &l, Some(run));
            inputs.push((
                "the checkpoint (--load)".to_string(),
                req.checkpoint.to_path_buf(),
            ));
            inputs.push(("the input (--input)".to_string(), req.input.to_path_buf()));
            let target = crate::output::prepare(out, &as_inputs(&inputs))?;
            let mut sink = target.create()?;
            let p = crate::predict::predict(run, &l.checked.data[run.data], req, &mut sink)?;
            sink.commit()?;
            p
        };
        let changed = crate::checkpoint::changed_note(&p.checkpoint, &l.src, req.checkpoint);
        for n in changed.iter().chain(&p.notes) {
            let _ = writeln!(stderr, "{n}");
        }
        if !to_stdout {
            let _ = writeln!(stderr, "wrote {} predictions to {}", p.rows, out.display());
        }
        Ok::<(), String>(())
    })();
    match done {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(stderr, "error: {e}");
            1
        }
    }
}

/// `dlc data FILE`: each data source's parts, shapes, class balance and
/// feature statistics (per column for CSV: kind, missing count, mean, std).
pub fn cmd_data(
    args: &ProgramArgs,
    show: Option<usize>,
    picture: Option<&Path>,
    stdout: &mut dyn std::io::Write,
    stderr: &mut dyn std::io::Write,
) -> i32 {
    let l = match data_program(args, stdout, stderr) {
        Ok(l) => l,
        Err(code) => return code,
    };
    // The picture may not be one of the files it is drawn from.
    if let Some(p) = picture {
        let inputs = program_inputs(args, &l, None);
        for d in &l.checked.data {
            let p = match l.checked.data.len() {
                1 => p.to_path_buf(),
                _ => per_name(p, &d.name),
            };
            if let Err(e) = crate::output::prepare(&p, &as_inputs(&inputs)) {
                let _ = writeln!(stderr, "error: --out: {e}");
                return 1;
            }
        }
    }
    for (di, d) in l.checked.data.iter().enumerate() {
        let mut out = String::new();
        let _ = writeln!(out, "data {}: {}", d.name, d.summary);
        let parts = match crate::data::load::load(d, split_seed(&l, di)) {
            Ok(p) => p,
            Err(e) => {
                let _ = writeln!(stderr, "error: {e}");
                return 1;
            }
        };
        for w in &parts.warnings {
            let _ = writeln!(stderr, "warning: {w}");
        }
        for r in &parts.dropped {
            let _ = writeln!(stderr, "note: data `{}`: {r}", d.name);
            let _ = writeln!(out, "  rows: {r}");
        }
        for (name, t) in [("train", &parts.train), ("test", &parts.test)] {
            if !t.is_empty() {
                write_part_summary(&mut out, d, name, t);
            }
        }
        if let crate::check::data::Source::Csv { path, features, .. } = &d.source {
            write_csv_columns(&mut out, path, features);
        }
        // Samples: a picture with --out (18 by default, as d2l shows), or
        // rows of numbers with --show alone.
        if let Some(n) = show.or(picture.map(|_| 18)) {
            let shown = match picture {
                Some(p) => {
                    let p = if l.checked.data.len() > 1 {
                        per_name(p, &d.name)
                    } else {
                        p.to_path_buf()
                    };
                    draw_samples(d, &parts.train, n, &p)
                }
                None => Ok(sample_rows(d, &parts.train, n)),
            };
            match shown {
                Ok(s) => out.push_str(&s),
                Err(e) => {
                    let _ = stdout.write_all(out.as_bytes());
                    let _ = writeln!(stderr, "error: {e}");
                    return 1;
                }
            }
        }
        if stdout.write_all(out.as_bytes()).is_err() {
            return 0;
        }
    }
    0
}

/// The program `dlc data` summarizes: a data file or folder is summarized
/// directly, as if a program read it. `Err` is the exit code, once the
/// error (or a CSV file's whole summary) has been written.
fn data_program(
    args: &ProgramArgs,
    stdout: &mut dyn std::io::Write,
    stderr: &mut dyn std::io::Write,
) -> Result<Loaded, i32> {
    if args.file.is_dir() {
        idx_folder_program(args, stderr).ok_or(1)
    } else if is_data_file(&args.file) && args.file.extension().is_none_or(|e| e != "dl") {
        Err(csv_file_summary(&args.file, stdout, stderr))
    } else {
        load_checked(args, stderr).ok_or(1)
    }
}

/// `dlc data FILE --split-indices`: every selected run's split as CSV
/// lines `run,part,row,fold` (see `train::split_indices`).
pub fn cmd_split_indices(
    args: &ProgramArgs,
    stdout: &mut dyn std::io::Write,
    stderr: &mut dyn std::io::Write,
) -> i32 {
    let Some(l) = load_checked(args, stderr) else {
        return 1;
    };
    if let Some(e) = unknown_run(&l, args) {
        let _ = write!(stderr, "{e}");
        return 1;
    }
    let mut w = csv::Writer::from_writer(stdout);
    let bad = |e: csv::Error| format!("cannot write the split: {e}");
    let written = (|| {
        w.write_record(["run", "part", "row", "fold"])
            .map_err(bad)?;
        for r in selected_runs(&l, args) {
            let rows = crate::train::split_indices(r, &l.checked.data[r.data])?;
            for (part, row, fold) in rows {
                let fold = fold.map(|f| f.to_string()).unwrap_or_default();
                w.write_record([r.name.as_str(), part, &row.to_string(), &fold])
                    .map_err(bad)?;
            }
        }
        w.flush()
            .map_err(|e| format!("cannot write the split: {e}"))
    })();
    match written {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(stderr, "error: {e}");
            1
        }
    }
}

/// The seed of the split a run of data source `di` uses, or 0.
fn split_seed(l: &Loaded, di: usize) -> u64 {
    l.checked
        .runs
        .iter()
        .find(|r| r.data == di)
        .map(|r| r.settings.split_seed)
        .unwrap_or(0)
}

/// One part's line (samples, feature mean and std), then its class balance
/// or its target's mean and std.
fn write_part_summary(
    out: &mut String,
    d: &crate::check::data::DataSpec,
    name: &str,
    t: &crate::data::table::Table,
) {
    use crate::check::data::LabelKind;
    let shape: Vec<String> = d.sample.iter().map(|x| x.to_string()).collect();
    let n = t.len() as f64;
    let mean = t.x.iter().map(f64::from).sum::<f64>() / (t.x.len().max(1) as f64);
    let var =
        t.x.iter()
            .map(|v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / (t.x.len().max(1) as f64);
    let _ = writeln!(
        out,
        "  {name}: {} samples of [{}] features (mean {mean:.4}, std {:.4})",
        t.len(),
        shape.join(", "),
        var.sqrt()
    );
    match &d.label {
        LabelKind::Class { .. } => {
            let classes = t.y.iter().fold(0usize, |m, y| m.max(*y as usize + 1));
            let mut counts = vec![0usize; classes];
            for y in &t.y {
                counts[*y as usize] += 1;
            }
            let parts: Vec<String> = counts
                .iter()
                .enumerate()
                .map(|(c, k)| format!("{} {k} ({:.1}%)", d.class_name(c), 100.0 * *k as f64 / n))
                .collect();
            let _ = writeln!(out, "    classes: {}", parts.join(", "));
        }
        LabelKind::Target => {
            let m = t.y.iter().sum::<f64>() / n;
            let sd = (t.y.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n).sqrt();
            let _ = writeln!(out, "    target: mean {m:.4}, std {sd:.4}");
        }
    }
}

/// A CSV source's columns over the whole file: kind, missing cells, and
/// the role the program gives each (nothing when the file cannot be read).
fn write_csv_columns(out: &mut String, path: &Path, features: &[crate::check::data::Feature]) {
    use crate::check::data::FeatureKind;
    let Ok(schema) = crate::data::meta::scan_csv(path) else {
        return;
    };
    let _ = writeln!(out, "  columns (whole file):");
    let by_column: std::collections::HashMap<&str, &crate::check::data::Feature> =
        features.iter().map(|f| (f.column.as_str(), f)).collect();
    for c in &schema.columns {
        let kind = match &c.kind {
            crate::data::meta::ColumnKind::Numeric { min, max, mean } => {
                format!("numeric, min {min}, max {max}, mean {mean:.4}")
            }
            crate::data::meta::ColumnKind::Categorical { categories } => {
                format!("categorical, {} categories", categories.len())
            }
        };
        let role = match by_column.get(c.name.as_str()) {
            Some(f) => match &f.kind {
                FeatureKind::Numeric => "feature".to_string(),
                FeatureKind::Categorical { .. } => {
                    format!("feature, one-hot ×{}", f.width())
                }
            },
            None => "label or dropped".to_string(),
        };
        let _ = writeln!(
            out,
            "    {:<22} {kind}; {} missing; {role}",
            c.name, c.missing
        );
    }
}

/// An IDX folder as the program `data NAME = idx(".")` in that folder.
fn idx_folder_program(args: &ProgramArgs, stderr: &mut dyn std::io::Write) -> Option<Loaded> {
    let dir = &args.file;
    let name: String = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let name = if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        format!("d{name}")
    } else {
        name
    };
    let src = format!("data {name} = idx(\".\")\n");
    let file = dir.join(format!("{name}.dl"));
    let (program, checked, diagnostics) = check::check_file(&file, &src, None);
    if !diagnostics.is_empty() {
        // Only the data source's own messages: without the program text
        // they read best as lines.
        for d in &diagnostics {
            let _ = writeln!(stderr, "error: {}: {}", dir.display(), d.message);
        }
        return None;
    }
    Some(Loaded {
        src,
        file_name: file.display().to_string(),
        program,
        checked,
        diagnostics,
    })
}

/// `dlc data FILE.csv`: the file's rows and, per column, its kind, range or
/// categories and missing cells, from one scan.
fn csv_file_summary(
    path: &Path,
    stdout: &mut dyn std::io::Write,
    stderr: &mut dyn std::io::Write,
) -> i32 {
    let schema = match crate::data::meta::scan_csv(path) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(stderr, "error: {e}");
            return 1;
        }
    };
    if schema.rows == 0 {
        let _ = writeln!(
            stderr,
            "error: {} has a header and no data rows (columns {})",
            schema.path.display(),
            schema.names().join(", ")
        );
        return 1;
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: CSV, {} rows, {} columns",
        schema.path.display(),
        schema.rows,
        schema.columns.len()
    );
    for c in &schema.columns {
        let kind = match &c.kind {
            crate::data::meta::ColumnKind::Numeric { min, max, mean } => {
                format!("numeric, min {min}, max {max}, mean {mean:.4}")
            }
            crate::data::meta::ColumnKind::Categorical { categories } => {
                let shown: Vec<&str> = categories.iter().take(5).map(String::as_str).collect();
                format!(
                    "categorical, {} categories ({}{})",
                    categories.len(),
                    shown.join(", "),
                    if categories.len() > 5 { ", ..." } else { "" }
                )
            }
        };
        let _ = writeln!(out, "  {:<22} {kind}; {} missing", c.name, c.missing);
    }
    let last = schema.columns.last().map_or("COLUMN", |c| c.name.as_str());
    let _ = writeln!(
        out,
        "a program reads it with: data d = csv(\"{}\", label = \"{last}\")",
        path.display()
    );
    let _ = stdout.write_all(out.as_bytes());
    0
}

/// `curves.svg` → `curves-NAME.svg`: one picture per run or data set.
pub fn per_name(p: &Path, name: &str) -> std::path::PathBuf {
    let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned());
    let file = match p.extension() {
        Some(ext) => format!(
            "{}-{name}.{}",
            stem.unwrap_or_default(),
            ext.to_string_lossy()
        ),
        None => format!("{}-{name}", stem.unwrap_or_default()),
    };
    p.with_file_name(file)
}

/// A sample's label as text: its class name, or the target's value.
fn label_text(d: &crate::check::data::DataSpec, y: f64) -> String {
    match d.label {
        crate::check::data::LabelKind::Class { .. } => d.class_name(y as usize),
        crate::check::data::LabelKind::Target => format!("{y:.4}"),
    }
}

/// The first `n` training samples drawn as a grid of labelled images.
fn draw_samples(
    d: &crate::check::data::DataSpec,
    t: &crate::data::table::Table,
    n: usize,
    path: &Path,
) -> Result<String, String> {
    let (channels, h, w) = match d.sample.as_slice() {
        [h, w] => (1, *h as usize, *w as usize),
        [c @ (1 | 3), h, w] => (*c as usize, *h as usize, *w as usize),
        _ => {
            return Err(format!(
                "data {} is not images (each sample is [{}]); --out draws image data, --show N alone prints rows",
                d.name,
                d.sample.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ")
            ))
        }
    };
    let n = n.min(t.len());
    let images: Vec<crate::plot::Image> = (0..n)
        .map(|r| crate::plot::Image {
            channels,
            h,
            w,
            values: t
                .x
                .values(r * t.width, (r + 1) * t.width)
                .iter()
                .map(|v| f64::from(*v))
                .collect(),
            caption: label_text(d, t.y[r]),
        })
        .collect();
    let title = format!("data {}: the first {n} training samples", d.name);
    crate::plot::image_grid(path, &title, &images)?;
    Ok(format!("  drew {n} samples to {}\n", path.display()))
}

/// The first `n` training samples as rows: label, then features (the first
/// eight, for wide samples).
fn sample_rows(
    d: &crate::check::data::DataSpec,
    t: &crate::data::table::Table,
    n: usize,
) -> String {
    let n = n.min(t.len());
    let mut s = format!("  the first {n} training samples (label: features):\n");
    for r in 0..n {
        let row = t.x.values(r * t.width, (r + 1) * t.width);
        let shown: Vec<String> = row.iter().take(8).map(|v| format!("{v:.4}")).collect();
        let more = if row.len() > 8 {
            format!(" … ({} more)", row.len() - 8)
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "    {:>5}  {}: {}{more}",
            r,
            label_text(d, t.y[r]),
            shown.join(" ")
        );
    }
    s
}
