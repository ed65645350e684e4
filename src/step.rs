//! The training step and the eval function of a run, as IR functions.
//!
//! The training step takes the parameters, a batch (`x`, `label`), the step
//! counter, the learning rate and the optimizer's state (with momentum,
//! each parameter's velocity), and returns the loss, the batch's metric
//! sums, each parameter's gradient, the updated parameters and state.
//! Gradients come from [`autodiff::grad`], the update from the run's
//! optimizer rule ([`optim`]).
//!
//! The eval function is the model without dropout: loss, output and the
//! metric sums, no gradients and no update.

use crate::autodiff;
use crate::check::run::{Metric, Run};
use crate::ir::{CmpOp, DType, Dim, Graph, NodeId, Op, Role, Shape, Type};
use crate::optim;
use crate::span::Span;

/// The output names of the metric sums, per metric.
pub fn metric_output(m: Metric) -> Option<&'static str> {
    match m {
        Metric::Loss => None,
        Metric::Acc => Some("correct"),
        Metric::Rmse => Some("sq_err"),
        Metric::LogRmse => Some("sq_log_err"),
    }
}

fn output(g: &Graph, name: &str) -> Option<NodeId> {
    g.outputs.iter().find(|(n, _)| n == name).map(|(_, id)| *id)
}

fn input(g: &Graph, role: fn(&Role) -> bool) -> Option<NodeId> {
    g.inputs.iter().find(|i| role(&i.role)).map(|i| i.node)
}

/// Adds the batch sums of the run's metrics as outputs: the number of
/// correct predictions, Σ(ŷ − y)², Σ(log max(ŷ, 1) − log y)².
fn add_metrics(g: &mut Graph, run: &Run) {
    let (Some(out), Some(label)) = (output(g, "output"), input(g, |r| matches!(r, Role::Label)))
    else {
        return;
    };
    let sp = g.node(out).span;
    let ot = g.ty(out).clone();
    let all = |rank: usize| (1u32 << rank) - 1;
    for m in &run.settings.metrics {
        let Some(name) = metric_output(*m) else {
            continue;
        };
        let v = match m {
            Metric::Loss => continue,
            Metric::Acc => {
                let r = ot.shape.rank() as u32;
                let am = if r == 1 || ot.shape.0.last() == Some(&Dim::Fixed(1)) {
                    // One logit per sample: class 1 where it is positive.
                    let zero = g.constant(0.0, ot.dtype, sp);
                    let pos = g.emit(Op::Cmp(CmpOp::Gt), &[out, zero], None, sp);
                    let c = g.emit(
                        Op::Cast,
                        &[pos],
                        Some(Type::new(DType::I32, ot.shape.clone())),
                        sp,
                    );
                    let dims = ot.shape.0[..1].to_vec();
                    g.emit(
                        Op::Reshape,
                        &[c],
                        Some(Type::new(DType::I32, Shape(dims))),
                        sp,
                    )
                } else {
                    g.emit(Op::ArgMax { axis: r - 1 }, &[out], None, sp)
                };
                let eq = g.emit(Op::Cmp(CmpOp::Eq), &[am, label], None, sp);
                let st = g.ty(eq).shape.clone();
                let f = g.emit(Op::Cast, &[eq], Some(Type::new(DType::F32, st.clone())), sp);
                g.emit(
                    Op::ReduceSum {
                        axes: all(st.rank()),
                    },
                    &[f],
                    None,
                    sp,
                )
            }
            Metric::Rmse | Metric::LogRmse => {
                let (p, y) = if *m == Metric::LogRmse {
                    // d2l's log-RMSE: predictions clamped to ≥ 1 before the log.
                    let one = g.constant(1.0, ot.dtype, sp);
                    let c = g.emit(Op::Max, &[out, one], None, sp);
                    (
                        g.emit(Op::Log, &[c], None, sp),
                        g.emit(Op::Log, &[label], None, sp),
                    )
                } else {
                    (out, label)
                };
                let ny = g.emit(Op::Neg, &[y], None, sp);
                let d = g.emit(Op::Add, &[p, ny], None, sp);
                let sq = g.emit(Op::Mul, &[d, d], None, sp);
                let r = g.ty(sq).shape.rank();
                g.emit(Op::ReduceSum { axes: all(r) }, &[sq], None, sp)
            }
        };
        g.outputs.push((name.to_string(), v));
    }
}

/// The training step of `run` (a rule's runs only; `closed_form` has
/// none): the run's train function, its metric sums, the gradients from
/// [`autodiff::grad`], the learning rate of its schedule
/// ([`crate::schedule`], output as `lr`) and the update [`optim::apply`]
/// builds.
pub fn training_step(run: &Run) -> Option<Graph> {
    build_step(run, false)
}

/// The training step of `run` for one of several processes training it
/// together, each on its share of every global batch (issue #19,
/// [`crate::dist`]): as [`training_step`], but every gradient is summed
/// across the processes (`all_reduce`) before the update reads it, and so
/// are the loss and the metric sums it outputs; each mean divides by the
/// global batch (input `samples`) instead of this process's rows; and
/// dropout draws for the global batch's rows (input `first_sample`). The
/// processes then take the steps of one process on the global batch, up
/// to the order of the sums. `grads`: keep the `grad X` outputs.
pub fn data_parallel(run: &Run, grads: bool) -> Option<Graph> {
    let mut g = build_step(run, true)?;
    if !grads {
        g.outputs.retain(|(n, _)| !n.starts_with("grad "));
    }
    Some(global_batch(&g))
}

/// The mean's count and dropout's rows of a data-parallel step, counted in
/// the global batch: each `batch_size` becomes the `samples` input, and
/// each random draw over the batch's rows is keyed from the
/// `first_sample` input's row on. (A `batch_size` the passes add later,
/// for a sum over this process's rows, is this process's B again.)
fn global_batch(g: &Graph) -> Graph {
    let mut samples: Option<NodeId> = None;
    let mut first: Option<NodeId> = None;
    // An i32 scalar input, added to the new graph when first needed (so
    // that it comes before its readers).
    let input = |ng: &mut Graph, at: &mut Option<NodeId>, (name, role), span| {
        *at.get_or_insert_with(|| ng.input(name, role, Type::scalar(DType::I32), span))
    };
    crate::opt::rewrite::rewrite(g, &mut |ng, node, ins| match &node.op {
        Op::BatchSize => {
            let s = input(ng, &mut samples, ("samples", Role::Samples), node.span);
            ng.emit(Op::Cast, &[s], Some(node.ty.clone()), node.span)
                .into()
        }
        Op::Random { .. } if node.ty.shape.0.first() == Some(&Dim::Batch) => {
            let f = input(
                ng,
                &mut first,
                ("first_sample", Role::FirstSample),
                node.span,
            );
            let mut with = ins.to_vec();
            with.push(f);
            ng.emit(node.op.clone(), &with, Some(node.ty.clone()), node.span)
                .into()
        }
        _ => None,
    })
}

fn build_step(run: &Run, parallel: bool) -> Option<Graph> {
    let chosen = run.settings.chosen()?;
    let mut g = run.train.clone();
    let loss = output(&g, "loss")?;
    let params: Vec<(String, NodeId)> = g
        .inputs
        .iter()
        .filter(|i| matches!(i.role, Role::Param { .. }))
        .map(|i| (i.name.clone(), i.node))
        .collect();
    let lr = g.input("lr", Role::Hyper, Type::scalar(DType::F32), Span::default());
    let state = optim::state_inputs(&mut g, chosen, &params);
    add_metrics(&mut g, run);
    let wrt: Vec<NodeId> = params.iter().map(|(_, p)| *p).collect();
    let mut grads = autodiff::grad(&mut g, loss, &wrt);
    if parallel {
        // Each process's gradient is its rows' part of the global batch's
        // (the mean divides by the global batch): summed across the
        // processes, it is the whole.
        let sum = |g: &mut Graph, x: NodeId| {
            let sp = g.node(x).span;
            g.emit(Op::AllReduce, &[x], None, sp)
        };
        grads = grads.iter().map(|x| sum(&mut g, *x)).collect();
        for (name, id) in g.outputs.clone() {
            let summed =
                name == "loss" || ["correct", "sq_err", "sq_log_err"].contains(&name.as_str());
            if summed {
                let s = sum(&mut g, id);
                if let Some(o) = g.outputs.iter_mut().find(|(n, _)| *n == name) {
                    o.1 = s;
                }
            }
        }
    }
    let step = match input(&g, |r| *r == Role::Step) {
        Some(s) => s,
        None => g.input(
            "step",
            Role::Step,
            Type::scalar(DType::I32),
            Span::default(),
        ),
    };
    let schedule = &run.settings.schedule;
    let lr = if schedule.is_constant() {
        lr
    } else {
        let span = run.settings.schedule_span;
        let epoch = g.input("epoch", Role::Epoch, Type::scalar(DType::I32), span);
        let rate = schedule.build(&mut g, lr, (step, epoch), span);
        g.outputs.push(("lr".to_string(), rate));
        rate
    };
    let updates = optim::apply(&mut g, chosen, &params, &state, (lr, step), &grads);
    for ((name, _), gw) in params.iter().zip(&grads) {
        g.outputs.push((format!("grad {name}"), *gw));
    }
    g.outputs.retain(|(n, _)| n != "output");
    g.outputs.extend(updates);
    Some(g)
}

/// The training step without its `grad X` outputs (when `--grad-norms` is
/// off): the gradients still feed the updates, but nothing copies them out.
pub fn training_step_without_grads(run: &Run) -> Option<Graph> {
    let mut g = training_step(run)?;
    g.outputs.retain(|(n, _)| !n.starts_with("grad "));
    Some(g)
}

/// The eval function of `run`: loss, output and metric sums, no dropout.
pub fn eval_function(run: &Run) -> Graph {
    let mut g = run.eval.clone();
    add_metrics(&mut g, run);
    g
}
