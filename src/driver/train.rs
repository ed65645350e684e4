//! `dlc train`: compile and train every run, then save what was asked.

use std::path::PathBuf;

use crate::output::Input;

use super::program::{
    as_inputs, error_line, load_checked, per_name, program_inputs, selected_runs, unknown_run,
    Loaded, ProgramArgs,
};

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
    opts.program_hash = crate::rng::text_hash(&l.src);
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
    let mine = u64::from_str_radix(&crate::rng::text_hash(&what), 16).unwrap_or(0);
    crate::dist::agree(mine, "the program, its data's shape or the settings")
}
