//! The `dlc` command line: parses flags with clap and runs a command from
//! `dlc::driver`, turning a caught panic into exit code 3.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use dlc::driver::{self, Output, ProgramArgs, Stage};

#[derive(Parser)]
#[command(
    name = "dlc",
    version,
    about = "A deep-learning compiler for the models of Dive into Deep Learning (chapters 2-5)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Common {
    /// The .dl program.
    file: PathBuf,
    /// Replace the program's data source (an IDX folder or a CSV file).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Only this named run.
    #[arg(long)]
    run: Option<String>,
}

#[derive(Args, Clone)]
struct TrainFlags {
    /// Total number of epochs (also when resuming).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    epochs: Option<u64>,
    /// Batch size.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    batch: Option<u64>,
    /// Learning rate (a positive number f32 holds).
    #[arg(long, value_parser = learning_rate)]
    lr: Option<f64>,
    /// Random seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Worker threads for large kernels (default: all cores). Each kernel
    /// shares its rows with them only while that measures faster.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: Option<u16>,
    /// Save a checkpoint (safetensors) after training.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Resume from a checkpoint, up to the total --epochs.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Draw learning curves to FILE.svg or FILE.png (one file per run:
    /// FILE-RUN.svg, when a program trains several).
    #[arg(long, value_parser = picture_path)]
    plot: Option<PathBuf>,
    /// JSON lines on stdout.
    #[arg(long)]
    json: bool,
    /// No progress output.
    #[arg(long)]
    quiet: bool,
    /// Time every kernel; after training print the time per .dl source
    /// line (forward, backward, update) and the slowest kernels.
    #[arg(long)]
    profile: bool,
    /// Report each parameter's gradient norm per epoch (the mean over its batches).
    #[arg(long)]
    grad_norms: bool,
    /// Print kernels, buffers and memory before and after the optimizer's
    /// passes, for the training step and the eval function.
    #[arg(long)]
    verbose: bool,
    /// Prepare the next batch on a second thread while the kernels run
    /// (for a core that --threads leaves free). Off by default: the
    /// training thread writes each batch straight into the step's inputs,
    /// which measured faster at small batches and whenever the second
    /// vCPU was busy.
    #[arg(long, conflicts_with = "no_prefetch")]
    prefetch: bool,
    /// Gather each batch on the training thread (the default; kept so
    /// that scripts written for the old default still run).
    #[arg(long)]
    no_prefetch: bool,
    /// Turn the optimizer's passes off: one kernel and one buffer per
    /// primitive (for debugging and for measuring what the passes buy).
    #[arg(long)]
    no_opt: bool,
    /// Turn one pass off (repeatable): fold, simplify, cse, dce, fuse,
    /// inplace.
    #[arg(long = "no-pass", value_name = "PASS", value_parser = clap::builder::PossibleValuesParser::new(dlc::opt::Passes::NAMES))]
    no_pass: Vec<String>,
    /// How matmuls run: gemm (the gemm crate's micro-kernels on blocks of
    /// rows, each block's fused epilogue in JIT code right after it) or jit
    /// (the JIT's own 4×8-tile kernel with the epilogue in each strip).
    #[arg(long, value_enum, default_value = "gemm")]
    matmul: MatmulArg,
    /// Time the final evaluation N more times after the first and report
    /// their median as infer_seconds (the first run's time is
    /// infer_first_seconds), as the framework benchmarks time inference.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1000))]
    infer_reps: u32,
}

#[derive(Clone, Copy, ValueEnum)]
enum MatmulArg {
    Gemm,
    Jit,
}

#[derive(Clone, Copy, ValueEnum)]
enum StageArg {
    Ast,
    Typed,
    Grad,
    Opt,
    Kernels,
    Clif,
}

/// `dlc export --format`.
#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    /// The parameters as NumPy arrays (`np.load`), one per name.
    Npz,
    /// The eval function as an ONNX model (opset 17), parameters as
    /// initializers, the batch dimension symbolic.
    Onnx,
}

#[derive(Subcommand)]
enum Command {
    /// Compile and train: a per-epoch table, learning curves, checkpoints.
    Train {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        flags: TrainFlags,
    },
    /// Test-set metrics of a saved model.
    Eval {
        #[command(flatten)]
        common: Common,
        /// The checkpoint to evaluate.
        #[arg(long)]
        load: PathBuf,
        /// JSON lines on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Write a saved model for other tools: its parameters as NumPy arrays
    /// under their names (`--format npz`).
    Export {
        #[command(flatten)]
        common: Common,
        /// The checkpoint to export.
        #[arg(long)]
        load: PathBuf,
        /// The file to write (atomically).
        #[arg(long)]
        out: PathBuf,
        /// What to write (default: from --out's extension, .npz or .onnx).
        #[arg(long, value_enum)]
        format: Option<FormatArg>,
    },
    /// Predict new data with a saved model: a CSV without the label
    /// column, an IDX images file or a .npy in, one prediction per row out
    /// (CSV).
    Predict {
        #[command(flatten)]
        common: Common,
        /// The checkpoint to predict with (a K-fold one: the average of its
        /// fold models).
        #[arg(long)]
        load: PathBuf,
        /// The new data: a CSV file with the training file's columns (the
        /// label may be absent), an IDX images file, or a .npy of samples.
        #[arg(long)]
        input: PathBuf,
        /// Where to write the predictions (CSV, atomically), or - for stdout.
        #[arg(long)]
        out: PathBuf,
        /// Also write each class's probability (classifiers).
        #[arg(long)]
        proba: bool,
        /// Also write the model's raw outputs (`output`, or `output_K`).
        #[arg(long)]
        raw: bool,
        /// Rows per call of the compiled model (default: the run's batch).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        batch: Option<u64>,
        /// Worker threads for large kernels (default: all cores).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
        threads: Option<u16>,
    },
    /// Parse, type- and shape-check; diagnostics only.
    Check {
        #[command(flatten)]
        common: Common,
    },
    /// The language server, over stdin and stdout (for an editor).
    Lsp,
    /// Format programs in place in the one canonical layout (stdin to
    /// stdout when no file is given).
    Fmt {
        /// List the files that would change, change none, and exit 1 if
        /// any would.
        #[arg(long)]
        check: bool,
        /// The .dl files.
        files: Vec<PathBuf>,
    },
    /// Print a compiler stage.
    Ir {
        #[command(flatten)]
        common: Common,
        /// The stage to print.
        #[arg(long, value_enum, default_value = "typed")]
        stage: StageArg,
        /// Show the training step of one of N processes that train the
        /// run together (`mpirun -np N dlc train`, built with `--features
        /// mpi`): its gradients, loss and metrics summed across them
        /// (all_reduce). Default: the processes this one was launched
        /// among, else 1
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        ranks: Option<u32>,
    },
    /// Compare every parameter's gradient with central finite differences.
    Gradcheck {
        #[command(flatten)]
        common: Common,
        /// Relative finite-difference step [default: 1e-6].
        #[arg(long, value_parser = positive_f64)]
        eps: Option<f64>,
        /// Coordinates sampled per parameter [default: 8].
        #[arg(long)]
        samples: Option<usize>,
    },
    /// Summarize the program's data: parts, shapes, class balance, column statistics.
    Data {
        #[command(flatten)]
        common: Common,
        /// Show the first N training samples: rows of numbers, or a picture
        /// with --out.
        #[arg(long)]
        show: Option<usize>,
        /// Draw the samples (images, with their labels) to F.png or F.svg
        /// [default N: 18].
        #[arg(long, value_parser = picture_path)]
        out: Option<PathBuf>,
        /// Print, as CSV, where every row goes in each run (or --run NAME):
        /// `run,part,row,fold`, the part train, valid or test, the row's
        /// index in its file from 0, the K-fold fold that holds it out.
        #[arg(long, conflicts_with_all = ["show", "out"])]
        split_indices: bool,
    },
    /// The tensor-expression REPL: line editing and history on a terminal;
    /// with stdin not a terminal, one result per input, no prompts.
    Repl,
}

fn positive_f64(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("`{s}` is not a positive number")),
    }
}

/// A learning rate: positive, and held by the f32 the training step
/// computes in (as the check refuses `lr = 1e39` in a program).
fn learning_rate(s: &str) -> Result<f64, String> {
    let v = positive_f64(s)?;
    if v > f64::from(f32::MAX) {
        Err(format!("`{s}` does not fit f32 (at most 3.4e38)"))
    } else if v as f32 == 0.0 {
        Err(format!("`{s}` is so small that f32 rounds it to 0"))
    } else {
        Ok(v)
    }
}

/// A picture's path: it must end in .svg or .png.
fn picture_path(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    match p
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
    {
        Some(e) if e == "svg" || e == "png" => Ok(p),
        _ => Err(format!("`{s}` must end in .svg or .png")),
    }
}

fn program_args(c: Common) -> ProgramArgs {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    ProgramArgs {
        file: c.file,
        data: c.data,
        run: c.run,
        color,
    }
}

/// Where this process stands among those a launcher (`mpirun`, `srun`)
/// started, for a command that does not train across them. Built with
/// `--features mpi`, MPI says (initialized and finalized at once, by
/// every process alike); without it, the launcher's environment (no run
/// spans processes then: rank 0 stands as one process).
fn place() -> Result<dlc::dist::Ranks, String> {
    #[cfg(feature = "mpi")]
    {
        dlc::dist::mpi::place()
    }
    #[cfg(not(feature = "mpi"))]
    {
        let rank = dlc::dist::launched_rank().unwrap_or(0);
        Ok(dlc::dist::Ranks {
            rank,
            size: rank + 1,
        })
    }
}

/// Runs one parsed command line. Under a launcher, every command but
/// data-parallel training (`train`, built with `--features mpi`) runs on
/// rank 0 alone: the other processes end at once with exit 0, printing
/// and writing nothing, so that a command prints and writes once
/// (docs/distributed.md).
fn run(cli: Cli) -> Output {
    let across = cfg!(feature = "mpi") && matches!(cli.command, Command::Train { .. });
    let among = if across {
        1
    } else {
        match place() {
            Ok(r) if !r.leads() => return streamed(0),
            Ok(r) => r.size,
            Err(e) => {
                eprintln!("error: {e}");
                return streamed(1);
            }
        }
    };
    run_here(cli, among)
}

/// Runs one parsed command line on this process, one of `among` that a
/// launcher started (1 when none did).
/// Runs one parsed command line.
fn run_here(cli: Cli, among: usize) -> Output {
    match cli.command {
        Command::Check { common } => driver::cmd_check(&program_args(common)),
        Command::Lsp => run_lsp(),
        Command::Fmt { check, files } => run_fmt(&files, check),
        Command::Ir {
            common,
            stage,
            ranks,
        } => {
            let ranks = ranks.map_or(among, |n| n as usize);
            driver::cmd_ir(&program_args(common), stage_of(stage), ranks)
        }
        Command::Train { common, flags } => run_train(common, &flags),
        Command::Eval { common, load, json } => run_eval(common, &load, json),
        Command::Export {
            common,
            load,
            out,
            format,
        } => run_export(common, &load, &out, format),
        Command::Predict {
            common,
            load,
            input,
            out,
            proba,
            raw,
            batch,
            threads,
        } => {
            let req = dlc::predict::Request {
                checkpoint: &load,
                input: &input,
                proba,
                raw,
                batch,
                threads: threads.map(usize::from),
            };
            run_predict(common, &req, &out)
        }
        Command::Gradcheck {
            common,
            eps,
            samples,
        } => run_gradcheck(common, eps, samples),
        Command::Data {
            common,
            split_indices: true,
            ..
        } => {
            let mut stdout = QuietStdout::default();
            let code = driver::cmd_split_indices(
                &program_args(common),
                &mut stdout,
                &mut std::io::stderr(),
            );
            streamed(code)
        }
        Command::Data {
            common, show, out, ..
        } => run_data(common, show, out),
        Command::Repl => run_repl(),
    }
}

/// `dlc lsp`: 0 after `shutdown` and `exit`, 1 after `exit` alone or at
/// the end of the input, as the specification asks.
fn run_lsp() -> Output {
    match dlc::lsp::stdio() {
        Ok(code) => Output {
            stdout: String::new(),
            stderr: String::new(),
            code,
        },
        Err(e) => Output {
            stdout: String::new(),
            stderr: format!("error: dlc lsp: {e}\n"),
            code: 1,
        },
    }
}

/// `dlc fmt`: the files in place, or stdin to stdout when none is given.
fn run_fmt(files: &[std::path::PathBuf], check: bool) -> Output {
    let stdin = files.is_empty().then(|| {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut s);
        s
    });
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    driver::cmd_fmt(files, check, stdin.as_deref(), color)
}

/// `dlc export`: the format from `--format`, else from `--out`'s extension.
fn run_export(
    common: Common,
    load: &std::path::Path,
    out: &std::path::Path,
    format: Option<FormatArg>,
) -> Output {
    let by_name = match out.extension().and_then(|e| e.to_str()) {
        Some("onnx") => Some(FormatArg::Onnx),
        Some("npz") => Some(FormatArg::Npz),
        _ => None,
    };
    let format = match format.or(by_name) {
        Some(FormatArg::Npz) => driver::ExportFormat::Npz,
        Some(FormatArg::Onnx) => driver::ExportFormat::Onnx,
        None => {
            eprintln!(
                "error: say --format npz or --format onnx (--out {} has neither extension)",
                out.display()
            );
            return Output {
                stdout: String::new(),
                stderr: String::new(),
                code: 2,
            };
        }
    };
    let mut err = std::io::stderr();
    streamed(driver::cmd_export(
        &program_args(common),
        load,
        out,
        format,
        &mut err,
    ))
}

/// `dlc predict`: predictions streamed to `out`.
fn run_predict(common: Common, req: &dlc::predict::Request, out: &std::path::Path) -> Output {
    let mut stdout = QuietStdout::default();
    let mut err = std::io::stderr();
    streamed(driver::cmd_predict(
        &program_args(common),
        (req, out),
        &mut stdout,
        &mut err,
    ))
}

/// The driver's stage for `--stage`.
fn stage_of(stage: StageArg) -> Stage {
    match stage {
        StageArg::Ast => Stage::Ast,
        StageArg::Typed => Stage::Typed,
        StageArg::Grad => Stage::Grad,
        StageArg::Opt => Stage::Opt,
        StageArg::Kernels => Stage::Kernels,
        StageArg::Clif => Stage::Clif,
    }
}

/// The output of a command that streamed its text itself: only the code.
fn streamed(code: i32) -> Output {
    Output {
        stdout: String::new(),
        stderr: String::new(),
        code,
    }
}

/// The training options `dlc train`'s flags ask for.
fn train_options(flags: &TrainFlags) -> dlc::train::TrainOptions {
    dlc::train::TrainOptions {
        epochs: flags.epochs,
        batch: flags.batch,
        lr: flags.lr,
        seed: flags.seed,
        threads: flags.threads.map(usize::from),
        save: flags.save.clone(),
        resume: flags.resume.clone(),
        grad_norms: flags.grad_norms,
        plot: flags.plot.clone(),
        prefetch: flags.prefetch,
        profile: flags.profile,
        no_opt: flags.no_opt,
        no_pass: flags.no_pass.clone(),
        matmul: match flags.matmul {
            MatmulArg::Gemm => dlc::jit::Matmul::Gemm,
            MatmulArg::Jit => dlc::jit::Matmul::Jit,
        },
        verbose: flags.verbose,
        json: flags.json,
        quiet: flags.quiet,
        infer_reps: flags.infer_reps as usize,
        ..Default::default()
    }
}

/// `dlc train`.
fn run_train(common: Common, flags: &TrainFlags) -> Output {
    // Under an MPI launcher (`--features mpi`), one of several processes.
    #[cfg(feature = "mpi")]
    if let Err(e) = dlc::dist::mpi::start() {
        eprintln!("error: {e}");
        return streamed(1);
    }
    let out = run_train_here(common, flags);
    if out.code != 0 {
        // No process may wait for this one forever.
        dlc::dist::fail_everywhere("stopped after the error above; ending every process");
    }
    #[cfg(feature = "mpi")]
    dlc::dist::mpi::finish();
    out
}

fn run_train_here(common: Common, flags: &TrainFlags) -> Output {
    let opts = train_options(flags);
    // A closed stdout must not lose a checkpoint or a picture the
    // user asked for: training goes on, without output, to save it.
    let mut out = QuietStdout {
        keep_going: opts.save.is_some() || opts.plot.is_some(),
        closed: false,
    };
    let mut err = std::io::stderr();
    let code = driver::cmd_train(&program_args(common), &opts, &mut out, &mut err);
    streamed(code)
}

/// `dlc eval`.
fn run_eval(common: Common, load: &std::path::Path, json: bool) -> Output {
    let opts = dlc::train::TrainOptions {
        json,
        ..Default::default()
    };
    let mut out = QuietStdout::default();
    let mut err = std::io::stderr();
    let code = driver::cmd_eval(&program_args(common), load, &opts, &mut out, &mut err);
    streamed(code)
}

/// `dlc gradcheck`.
fn run_gradcheck(common: Common, eps: Option<f64>, samples: Option<usize>) -> Output {
    let mut opts = dlc::gradcheck::Options::default();
    if let Some(e) = eps {
        opts.eps = e;
    }
    if let Some(n) = samples {
        opts.samples = n;
    }
    driver::cmd_gradcheck(&program_args(common), &opts)
}

/// `dlc data`.
fn run_data(common: Common, show: Option<usize>, out: Option<PathBuf>) -> Output {
    let mut stdout = QuietStdout::default();
    let mut err = std::io::stderr();
    let code = driver::cmd_data(
        &program_args(common),
        show,
        out.as_deref(),
        &mut stdout,
        &mut err,
    );
    streamed(code)
}

/// `dlc repl`: interactive on a terminal, scripted otherwise.
fn run_repl() -> Output {
    let code = if std::io::stdin().is_terminal() {
        dlc::repl::line::interactive(std::io::stderr().is_terminal())
    } else {
        // Scripted: one result per input, no prompts or colour.
        let stdin = std::io::stdin();
        let mut input = stdin.lock();
        // Exit 1 when any input failed (every input still runs).
        let ok = dlc::repl::script::run_script(
            &mut input,
            &mut std::io::stdout(),
            &mut std::io::stderr(),
        );
        if ok {
            0
        } else {
            1
        }
    };
    streamed(code)
}

/// Runs the command line held in `cli` (taken out once).
fn run_taken(cli: &std::sync::Mutex<Option<Cli>>) -> Output {
    let taken = cli.lock().ok().and_then(|mut c| c.take());
    match taken {
        Some(c) => run(c),
        None => Output {
            stdout: String::new(),
            stderr: "error: the command line was already taken\n".into(),
            code: 1,
        },
    }
}

/// Stdout for streaming commands: a closed pipe (`| head`) ends the
/// program quietly, or, when something is still to be saved
/// (`keep_going`), silences the rest of the output.
#[derive(Default)]
struct QuietStdout {
    keep_going: bool,
    closed: bool,
}

impl QuietStdout {
    fn closed_pipe(&mut self) {
        if !self.keep_going {
            std::process::exit(0);
        }
        self.closed = true;
    }
}

impl Write for QuietStdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        match std::io::stdout().write(buf) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed_pipe();
                Ok(buf.len())
            }
            // A full disk or a failing device is not a reader that went
            // away: the command decides (dlc predict fails with exit 1).
            Err(e) => Err(e),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.closed {
            return Ok(());
        }
        match std::io::stdout().flush() {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e),
            Err(_) => self.closed_pipe(),
            Ok(()) => {}
        }
        Ok(())
    }
}

/// Writes to stdout; a closed pipe (`| head`) ends the program quietly.
fn emit(out: &Output) {
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(out.stdout.as_bytes())
        .and_then(|_| stdout.flush())
        .is_err()
    {
        std::process::exit(out.code);
    }
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(out.stderr.as_bytes());
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let what = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    std::panic::set_hook(Box::new(|_| {}));
    // A large stack: the front end recurses over nested expressions (bounded
    // by the parser's nesting limit, but generously).
    // Under an address-space limit (ulimit -v) the stack takes its share of
    // it: then a smaller one (the parser bounds nesting at 256 levels), and
    // if even that cannot be had, this thread's own.
    let cli = std::sync::Arc::new(std::sync::Mutex::new(Some(cli)));
    let spawn = |stack: usize| {
        let cli = cli.clone();
        std::thread::Builder::new()
            .stack_size(stack)
            .spawn(move || std::panic::catch_unwind(move || run_taken(&cli)))
    };
    let stack = if dlc::memory::address_space_limited() {
        32 << 20
    } else {
        256 << 20
    };
    let result = match spawn(stack).or_else(|_| spawn(8 << 20)) {
        Ok(h) => h.join().unwrap_or_else(Err),
        Err(_) => std::panic::catch_unwind(|| run_taken(&cli)),
    };
    match result {
        Ok(out) => {
            emit(&out);
            ExitCode::from(out.code.clamp(0, 255) as u8)
        }
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            eprintln!("internal compiler error: {msg}\nwhile running: dlc {what}\nThis is a bug in dlc, not in your program; please report it with the program that caused it.");
            ExitCode::from(3)
        }
    }
}
