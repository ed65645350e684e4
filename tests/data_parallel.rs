//! The data-parallel training step (issue #19) without MPI: each process's
//! step, run on its share of a batch, computes its part of the global
//! batch's gradients, loss and metric sums, so that the parts summed (what
//! `all_reduce` does across processes) are the one-process step's values,
//! dropout included. Checked in the interpreter and in the JIT, for shares
//! of 2, 3 and 4 processes, uneven and empty ones among them.

mod common;

use dlc::check::run::Run;
use dlc::dist::{Ranks, Share};
use dlc::gradcheck::random_inputs;
use dlc::interp::{self, Env, Precision, Tensor};
use dlc::ir::{Graph, Op, Role};
use dlc::step::{data_parallel, training_step};

const PROGRAM: &str = r#"
data fashion = idx("programs/data/fashion-mnist", scale = 1/255, classes = 10)
model net(x: f32[B, 784]) -> f32[B, 10] {
    param W1: f32[784, 256] = normal(0.5)
    param b1: f32[256] = zeros
    param W2: f32[256, 10] = normal(0.5)
    param b2: f32[10] = zeros
    let h = dropout(relu(x @ W1 + b1), 0.3)
    h @ W2 + b2
}
train main: net on fashion {
    loss = cross_entropy(output, label)
    optimizer = adamw(lr = 0.01)
    metrics = [loss, acc]
}
"#;

const BATCH: usize = 10;

fn run() -> Run {
    common::check_clean(PROGRAM, "dp.dl").runs.remove(0)
}

/// The one-process step's inputs at batch `BATCH`: random features, class
/// labels, parameters and state, step 3.
fn global_inputs(g: &Graph) -> Vec<Tensor> {
    let mut inputs = random_inputs(g, None, BATCH, 5);
    for (k, info) in g.inputs.iter().enumerate() {
        if info.role == Role::Label {
            inputs[k].data = (0..BATCH).map(|i| (i % 10) as f64).collect();
        }
    }
    inputs
}

/// The inputs of the data-parallel step `dp` for `share`: the global
/// inputs' rows of the share, everything else the same.
fn share_inputs(one: &Graph, dp: &Graph, global: &[Tensor], share: Share) -> Vec<Tensor> {
    dp.inputs
        .iter()
        .map(|info| match info.role {
            Role::Samples => Tensor::scalar(share.total as f64, dlc::ir::DType::I32),
            Role::FirstSample => Tensor::scalar(share.first as f64, dlc::ir::DType::I32),
            _ => {
                let k = one
                    .inputs
                    .iter()
                    .position(|i| i.name == info.name && i.role == info.role)
                    .expect("an input of the one-process step");
                let t = &global[k];
                if matches!(info.role, Role::Features | Role::Label) {
                    let width = t.data.len() / BATCH;
                    let mut shape = t.shape.clone();
                    shape[0] = share.rows;
                    Tensor::new(
                        t.dtype,
                        shape,
                        t.data[share.first * width..(share.first + share.rows) * width].to_vec(),
                    )
                } else {
                    t.clone()
                }
            }
        })
        .collect()
}

/// The outputs a process sums across processes: the gradients, the loss
/// and the metric sums.
fn summed(name: &str) -> bool {
    name.starts_with("grad ") || name == "loss" || name == "correct"
}

fn outputs(g: &Graph, values: Vec<Tensor>) -> Vec<(String, Vec<f64>)> {
    g.outputs
        .iter()
        .zip(values)
        .map(|((n, _), t)| (n.clone(), t.data))
        .collect()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
}

/// Runs the one-process step on the batch and each process's step on its
/// share with `eval`, and checks that the shares' summed outputs are the
/// whole's, and that every other output (the updated parameters and
/// state, computed from the summed gradients) is each process's.
/// Runs a graph on inputs at a batch size.
type Eval<'a> = dyn FnMut(&Graph, &[Tensor], usize) -> Vec<Tensor> + 'a;

fn check(eval: &mut Eval, tol: f64) {
    let run = run();
    let one = training_step(&run).expect("a step");
    let dp = data_parallel(&run, true).expect("a step");
    let global = global_inputs(&one);
    let whole = outputs(&one, eval(&one, &global, BATCH));
    for size in [2, 3, 4, 12] {
        let mut total: Vec<(String, Vec<f64>)> = Vec::new();
        for rank in 0..size {
            let share = Share::of(BATCH, Ranks { rank, size });
            let ins = share_inputs(&one, &dp, &global, share);
            let part = outputs(&dp, eval(&dp, &ins, share.rows));
            for (name, v) in part {
                if !summed(&name) {
                    continue;
                }
                match total.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, t)) => t.iter_mut().zip(&v).for_each(|(t, x)| *t += x),
                    None => total.push((name, v)),
                }
            }
        }
        for (name, v) in &whole {
            if !summed(name) {
                continue;
            }
            let (_, t) = total
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("{size} processes: no output {name}"));
            for (i, (a, b)) in v.iter().zip(t).enumerate() {
                assert!(
                    close(*a, *b, tol),
                    "{size} processes: {name}[{i}] summed over the shares is {b}, the whole batch's {a}"
                );
            }
        }
        assert!(total.iter().any(|(n, _)| n == "grad W1"));
    }
}

#[test]
fn the_shares_sum_to_the_whole_in_the_interpreter() {
    check(
        &mut |g, ins, batch| {
            interp::run(g, ins, &Env { batch, seed: 7 }, Precision::F64).expect("runs")
        },
        1e-9,
    );
}

#[test]
fn the_shares_sum_to_the_whole_in_the_jit() {
    check(
        &mut |g, ins, batch| {
            let mut c = dlc::jit::compile(g, false).expect("compiles");
            c.threads = 1;
            c.run(ins, &Env { batch, seed: 7 }).expect("runs")
        },
        1e-5,
    );
}

/// The data-parallel step sums what the update reads and what it reports,
/// and nothing else; its means count the global batch.
#[test]
fn the_step_sums_gradients_loss_and_metrics() {
    let run = run();
    let dp = data_parallel(&run, false).expect("a step");
    let sums: Vec<_> = dp.nodes.iter().filter(|n| n.op == Op::AllReduce).collect();
    // Four parameters' gradients, the loss and the correct count.
    assert_eq!(sums.len(), 6);
    assert!(dp.nodes.iter().all(|n| n.op != Op::BatchSize));
    assert!(dp.inputs.iter().any(|i| i.role == Role::Samples));
    assert!(dp.inputs.iter().any(|i| i.role == Role::FirstSample));
    let one = training_step(&run).expect("a step");
    assert!(one.nodes.iter().all(|n| n.op != Op::AllReduce));
}
