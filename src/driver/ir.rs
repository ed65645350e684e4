//! `dlc ir`: a compiler stage printed, from the AST to Cranelift's IR.

use std::fmt::Write as _;

use crate::diag::{self};
use crate::ir::print::{self, SourceInfo};
use crate::span::LineIndex;
use crate::syntax;

use super::program::{load, render, unknown_run, Loaded, Output, ProgramArgs};

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
