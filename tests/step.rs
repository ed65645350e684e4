//! The training step and the eval function, run in the interpreter: SGD's
//! update, momentum, and the two weight-decay forms, which agree without
//! momentum and differ with it exactly as their formulas say.

use dlc::check::run::Run;
use dlc::gradcheck::random_inputs;
use dlc::interp::{self, Env, Precision, Tensor};
use dlc::ir::{Op, Role};
use dlc::step::{eval_function, training_step};

const PROGRAM: &str = "
data synth = linear(w = [2, -3.4], b = 4.2, n_train = 100)
model lin(x: f32[B, 2]) -> f32[B, 1] {
    param w: f32[2, 1] = normal(0.01)
    param b: f32[1] = zeros
    x @ w + b
}
train penalty: lin on synth {
    loss = squared_loss(output, label)
    optimizer = sgd(lr = 0.1, momentum = 0.9)
    weight_decay = penalty(0.5, [w])
}
train decoupled: lin on synth {
    loss = squared_loss(output, label)
    optimizer = sgd(lr = 0.1, momentum = 0.9)
    weight_decay = decoupled(0.5, [w])
}
train plain_penalty: lin on synth {
    loss = squared_loss(output, label)
    optimizer = sgd(lr = 0.1)
    weight_decay = penalty(0.5, [w])
}
train plain_decoupled: lin on synth {
    loss = squared_loss(output, label)
    optimizer = sgd(lr = 0.1)
    weight_decay = decoupled(0.5, [w])
}
";

const LR: f64 = 0.1;
const LAMBDA: f64 = 0.5;
// The program is f32: its constants are rounded to f32 (the interpreter then
// computes in f64).
const MU: f64 = 0.9f32 as f64;

fn runs() -> Vec<Run> {
    let (program, diags) = dlc::syntax::parse(PROGRAM);
    assert!(diags.is_empty());
    let (checked, cd) = dlc::check::check(&program, &Default::default());
    assert!(cd.is_empty(), "{cd:?}");
    checked.runs
}

/// One step: returns the named outputs.
fn step(run: &Run, state: &[(String, Vec<f64>)]) -> Vec<(String, Vec<f64>)> {
    let g = training_step(run).expect("an SGD run");
    let mut inputs = random_inputs(&g, None, 4, 11);
    for (k, info) in g.inputs.iter().enumerate() {
        let key = match info.role {
            Role::Param { .. } => info.name.clone(),
            Role::State(slot) => format!("{slot} {}", info.name),
            Role::Hyper => {
                inputs[k] = Tensor::scalar(LR, inputs[k].dtype);
                continue;
            }
            _ => continue,
        };
        if let Some((_, v)) = state.iter().find(|(n, _)| *n == key) {
            inputs[k].data.clone_from(v);
        } else if matches!(info.role, Role::State(_)) {
            inputs[k].data.iter_mut().for_each(|x| *x = 0.0);
        }
    }
    let out = interp::run(&g, &inputs, &Env { batch: 4, seed: 0 }, Precision::F64).expect("runs");
    let mut named: Vec<(String, Vec<f64>)> = g
        .outputs
        .iter()
        .zip(out)
        .map(|((n, _), t)| (n.clone(), t.data))
        .collect();
    // The parameters as they were, for the formulas.
    for (k, info) in g.inputs.iter().enumerate() {
        if matches!(info.role, Role::Param { .. }) {
            named.push((format!("old {}", info.name), inputs[k].data.clone()));
        }
    }
    named
}

fn get<'a>(out: &'a [(String, Vec<f64>)], name: &str) -> &'a [f64] {
    &out.iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no output {name}"))
        .1
}

fn close(a: &[f64], b: &[f64]) -> bool {
    a.iter()
        .zip(b)
        .all(|(x, y)| (x - y).abs() <= 1e-12 * (1.0 + x.abs()))
}

#[test]
fn the_two_weight_decay_forms_follow_their_formulas_with_momentum() {
    let runs = runs();
    let (pen, dec) = (&runs[0], &runs[1]);
    let (p1, d1) = (step(pen, &[]), step(dec, &[]));
    let w0 = get(&p1, "old w");
    assert!(close(w0, get(&d1, "old w")), "same start");
    // The penalty's gradient is the plain gradient plus λw.
    let (gp, gd) = (get(&p1, "grad w"), get(&d1, "grad w"));
    let want: Vec<f64> = gd.iter().zip(w0).map(|(g, w)| g + LAMBDA * w).collect();
    assert!(close(gp, &want), "penalty grad {gp:?} vs {want:?}");
    // v₁ = μ·0 + g; penalty: w₁ = w₀ − η·v₁; decoupled: w₁ = (1 − ηλ)·w₀ − η·v₁.
    assert!(close(get(&p1, "velocity w"), gp));
    let want_p: Vec<f64> = w0.iter().zip(gp).map(|(w, g)| w - LR * g).collect();
    let want_d: Vec<f64> = w0
        .iter()
        .zip(gd)
        .map(|(w, g)| (1.0 - LR * LAMBDA) * w - LR * g)
        .collect();
    assert!(close(get(&p1, "w"), &want_p));
    assert!(close(get(&d1, "w"), &want_d));
    // Without momentum the two forms give the same first step; with it the
    // second step differs: the velocity carries λw in one form only.
    assert!(close(get(&p1, "w"), get(&d1, "w")), "first steps agree");
    let carry = |out: &[(String, Vec<f64>)]| {
        vec![
            ("w".to_string(), get(out, "w").to_vec()),
            ("b".to_string(), get(out, "b").to_vec()),
            ("velocity w".to_string(), get(out, "velocity w").to_vec()),
            ("velocity b".to_string(), get(out, "velocity b").to_vec()),
        ]
    };
    let (p2, d2) = (step(pen, &carry(&p1)), step(dec, &carry(&d1)));
    let w1 = get(&p1, "w");
    let v2p: Vec<f64> = get(&p1, "velocity w")
        .iter()
        .zip(get(&p2, "grad w"))
        .map(|(v, g)| MU * v + g)
        .collect();
    assert!(close(get(&p2, "velocity w"), &v2p));
    let w2p: Vec<f64> = w1.iter().zip(&v2p).map(|(w, v)| w - LR * v).collect();
    assert!(close(get(&p2, "w"), &w2p));
    let v2d: Vec<f64> = get(&d1, "velocity w")
        .iter()
        .zip(get(&d2, "grad w"))
        .map(|(v, g)| MU * v + g)
        .collect();
    let w2d: Vec<f64> = get(&d1, "w")
        .iter()
        .zip(&v2d)
        .map(|(w, v)| (1.0 - LR * LAMBDA) * w - LR * v)
        .collect();
    assert!(close(get(&d2, "w"), &w2d));
    let gap: f64 = get(&p2, "w")
        .iter()
        .zip(get(&d2, "w"))
        .map(|(a, b)| (a - b).abs())
        .sum();
    assert!(gap > 1e-6, "with momentum the forms must differ, gap {gap}");
}

#[test]
fn without_momentum_the_two_forms_agree() {
    let runs = runs();
    let (p, d) = (step(&runs[2], &[]), step(&runs[3], &[]));
    assert!(close(get(&p, "w"), get(&d, "w")));
    assert!(close(get(&p, "b"), get(&d, "b")));
    assert!(training_step(&runs[2])
        .expect("sgd")
        .inputs
        .iter()
        .all(|i| !matches!(i.role, Role::State(_))));
}

#[test]
fn the_eval_function_has_no_dropout_and_no_update() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join("programs/mlp_dropout.dl");
    let src = std::fs::read_to_string(&path).expect("program");
    let (_, checked, diags) = dlc::check::check_file(&path, &src, None);
    assert!(diags.is_empty());
    let run = &checked.runs[0];
    let eval = eval_function(run);
    assert!(!eval.nodes.iter().any(|n| matches!(n.op, Op::Random { .. })));
    assert!(run
        .train
        .nodes
        .iter()
        .any(|n| matches!(n.op, Op::Random { .. })));
    assert!(eval.outputs.iter().any(|(n, _)| n == "correct"));
    let env = Env { batch: 3, seed: 1 };
    let at = |g: &dlc::ir::Graph, step: f64| {
        let mut inputs = random_inputs(g, None, 3, 5);
        for (k, info) in g.inputs.iter().enumerate() {
            if info.role == Role::Step {
                inputs[k] = Tensor::scalar(step, inputs[k].dtype);
            }
        }
        interp::run(g, &inputs, &env, Precision::F32).expect("runs")[0]
            .data
            .clone()
    };
    assert_eq!(at(&eval, 1.0), at(&eval, 2.0), "eval is deterministic");
    assert_ne!(
        at(&run.train, 1.0),
        at(&run.train, 2.0),
        "dropout masks change with the step"
    );
}

#[test]
fn clipping_scales_every_gradient_by_the_global_norm_and_is_the_identity_below_it() {
    // The same data and model as PROGRAM, three recipes.
    let model = &PROGRAM[..PROGRAM.find("\ntrain ").expect("a train block")];
    let src = format!(
        "{model}
train plain: lin on synth {{
    loss = squared_loss(output, label)
    optimizer = sgd(lr = 0.1)
}}
train clipped: lin on synth {{
    loss = squared_loss(output, label)
    optimizer = sgd(lr = 0.1)
    clip_grad_norm = 0.5
}}
train loose: lin on synth {{
    loss = squared_loss(output, label)
    optimizer = sgd(lr = 0.1)
    clip_grad_norm = 1e6
}}
"
    );
    let (program, diags) = dlc::syntax::parse(&src);
    assert!(diags.is_empty());
    let (checked, cd) = dlc::check::check(&program, &Default::default());
    assert!(cd.is_empty(), "{cd:?}");
    let runs = &checked.runs;
    let (plain, clipped, loose) = (
        step(&runs[0], &[]),
        step(&runs[1], &[]),
        step(&runs[2], &[]),
    );
    // The same inputs, so the same raw gradients.
    let (gw, gb) = (get(&plain, "grad w"), get(&plain, "grad b"));
    assert!(close(gw, get(&clipped, "grad w")));
    let norm = gw.iter().chain(gb).map(|g| g * g).sum::<f64>().sqrt();
    // The random batch's gradient is far above the threshold.
    assert!(norm > 1.0, "{norm}");
    let scale = (0.5 / (norm + 1e-6f32 as f64)).min(1.0);
    for (p, g) in [("w", gw), ("b", gb)] {
        let old = get(&plain, &format!("old {p}"));
        let want: Vec<f64> = old.iter().zip(g).map(|(w, g)| w - LR * g * scale).collect();
        assert!(
            close(get(&clipped, p), &want),
            "{p}: {:?} vs {want:?}",
            get(&clipped, p)
        );
        // Below the threshold the update is exactly the unclipped one.
        assert_eq!(get(&loose, p), get(&plain, p));
    }
}
