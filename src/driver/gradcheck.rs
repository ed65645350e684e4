//! `dlc gradcheck`: every parameter's gradient against central finite
//! differences.

use std::fmt::Write as _;

use super::program::{load, render, unknown_run, Output, ProgramArgs};

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
