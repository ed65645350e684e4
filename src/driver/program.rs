//! What the commands share: reading and checking a program, choosing its
//! runs, the files it reads (so no output replaces them), and errors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::check::{self, Checked};
use crate::diag::{self, Diagnostic};
use crate::output::Input;
use crate::syntax;

/// What a command produced.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

impl Output {
    pub(super) fn fail(stderr: String) -> Output {
        Output {
            stdout: String::new(),
            stderr,
            code: 1,
        }
    }
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
pub(super) fn is_data_file(path: &Path) -> bool {
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

pub(super) fn render(l: &Loaded, color: bool) -> String {
    diag::render(&l.diagnostics, &l.file_name, &l.src, color)
}

/// The error for a `--run NAME` the program does not define.
pub(super) fn unknown_run(l: &Loaded, args: &ProgramArgs) -> Option<String> {
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
pub(super) fn selected_runs<'l>(l: &'l Loaded, args: &ProgramArgs) -> Vec<&'l crate::check::Run> {
    l.checked
        .runs
        .iter()
        .filter(|r| args.run.as_ref().is_none_or(|n| *n == r.name))
        .collect()
}

/// The one run a command on a saved model works on: the program's only
/// run, or `--run NAME`; else an error listing the runs (`what`: what the
/// command does to it).
pub(super) fn one_run<'l>(
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

pub(super) fn load_checked(args: &ProgramArgs, stderr: &mut dyn std::io::Write) -> Option<Loaded> {
    load_checked_described(args, HashMap::new(), stderr)
}

/// A program for a command that uses a trained model (predict, export):
/// the data its checkpoint was trained on is described by the
/// checkpoint's preprocessing, so a deployed model is its program and its
/// checkpoint, without the training data's files. (`--data` still reads
/// the files it names; a checkpoint without preprocessing, from an older
/// dlc, reads them too.)
pub(super) fn load_deployed(
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
pub(super) fn data_warnings(l: &Loaded) -> String {
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
pub(super) fn program_inputs(
    args: &ProgramArgs,
    l: &Loaded,
    run: Option<&check::Run>,
) -> Vec<NamedInput> {
    let mut inputs = vec![("the program".to_string(), args.file.clone())];
    let specs = l.checked.data.iter().enumerate();
    for (_, d) in specs.filter(|(i, _)| run.is_none_or(|r| r.data == *i)) {
        let files = match d.rows.unknown {
            // Described by a checkpoint: not read, but the program's
            // files all the same, and not to be written over.
            true => declared_path(args, l, &d.name).into_iter().collect(),
            false => d.source.files(),
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

/// Borrowed views of `inputs`, as `output::prepare` takes them.
pub(super) fn as_inputs(inputs: &[NamedInput]) -> Vec<Input<'_>> {
    inputs
        .iter()
        .map(|(r, p)| (r.as_str(), p.as_path()))
        .collect()
}

/// Writes `error: {e}` and a newline in one write: the lines of several
/// processes' errors, which a launcher forwards as they come, do not
/// interleave.
pub(super) fn error_line(stderr: &mut dyn std::io::Write, e: &str) {
    let _ = stderr.write_all(format!("error: {e}\n").as_bytes());
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
