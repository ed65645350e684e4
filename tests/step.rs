//! The training step and the eval function, run in the interpreter: SGD's
//! update, momentum, and the two weight-decay forms, which agree without
//! momentum and differ with it exactly as their formulas say.

mod common;

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
    let checked = common::check_clean(PROGRAM, "step.dl");
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
    let checked = common::check_clean(&src, "step.dl");
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

/// The scheduled rate at `(steps taken, epochs completed)`, by the
/// documented formula of each run of `schedule_program`.
fn scheduled(run: &str, s: u64, e: u64) -> f64 {
    let (s, e) = (s as f64, e as f64);
    let step = |every: f64, gamma: f64| LR * gamma.powf((e / every).floor());
    let cosine = |t: f64, min: f64| {
        min + (LR - min) * (1.0 + (std::f64::consts::PI * e.min(t) / t).cos()) / 2.0
    };
    let warmup = |n: f64| ((s + 1.0) / n).min(1.0);
    match run {
        "stepped" | "stepped_torch" => step(3.0, 0.5),
        "cosine" | "cosine_total" | "cosine_torch" => cosine(10.0, 0.01),
        "cosine_run" => cosine(20.0, 0.0),
        "warm_step" => step(2.0, 0.1) * warmup(7.0),
        "warm" => LR * warmup(5.0),
        _ => LR,
    }
}

fn schedule_program() -> Vec<Run> {
    let model = &PROGRAM[..PROGRAM.find("\ntrain ").expect("a train block")];
    let block = |name: &str, schedule: &str| {
        format!(
            "train {name}: lin on synth {{
    loss = squared_loss(output, label)
    optimizer = sgd(lr = 0.1)
    epochs = 20
    lr_schedule = {schedule}
}}
"
        )
    };
    let src = [
        model.to_string(),
        block("constant", "constant"),
        block("stepped", "step(every = 3, gamma = 0.5)"),
        block("cosine", "cosine(10, min_lr = 0.01)"),
        // The and torch.optim.lr_scheduler's names for the same.
        block("stepped_torch", "step(step_size = 3, gamma = 0.5)"),
        block("cosine_total", "cosine(total = 10, min_lr = 0.01)"),
        block("cosine_torch", "cosine(T_max = 10, eta_min = 0.01)"),
        block("cosine_run", "cosine()"),
        block("warm_step", "warmup(7, then = step(2, 0.1))"),
        block("warm", "warmup(steps = 5)"),
    ]
    .concat();
    let checked = common::check_clean(&src, "step.dl");
    checked.runs
}

/// Every schedule's rate, computed inside the step from its counters,
/// equals its formula at steps around each boundary (warmup's end, step's
/// drops, cosine's end and after), interpreted and compiled; and the
/// update uses it: w′ = w − η(s, e)·∂L/∂w.
#[test]
fn schedules_compute_their_formula_inside_the_step_and_the_update_uses_it() {
    let counters = [
        (0, 0),
        (3, 0),
        (4, 1),
        (5, 2),
        (6, 3),
        (7, 5),
        (40, 6),
        (100, 9),
        (101, 10),
        (500, 11),
        (1000, 25),
    ];
    for run in schedule_program() {
        let g = training_step(&run).expect("an SGD run");
        // Without a schedule the step has no `lr` output or epoch input.
        let has_lr = g.outputs.iter().any(|(n, _)| n == "lr");
        assert_eq!(has_lr, run.name != "constant", "{}", run.name);
        let mut compiled = dlc::jit::compile(&g, false).expect("compiles");
        for (s, e) in counters {
            let mut inputs = random_inputs(&g, None, 4, 5);
            for (k, info) in g.inputs.iter().enumerate() {
                let v = match info.role {
                    Role::Hyper => LR,
                    Role::Step => s as f64,
                    Role::Epoch => e as f64,
                    _ => continue,
                };
                inputs[k] = Tensor::scalar(v, inputs[k].dtype);
            }
            let env = Env { batch: 4, seed: 0 };
            let want = scheduled(&run.name, s, e);
            let interp = interp::run(&g, &inputs, &env, Precision::F64).expect("runs");
            let jit = compiled.run(&inputs, &env).expect("runs");
            let out = |outs: &[Tensor], name: &str| -> Vec<f64> {
                let i = g.outputs.iter().position(|(n, _)| n == name).expect(name);
                outs[i].data.clone()
            };
            // Its constants are f32 (π/T, min_lr): 1e-6 relative.
            for (how, outs) in [("interpreted", &interp), ("compiled", &jit)] {
                let lr = if has_lr { out(outs, "lr")[0] } else { LR };
                let what = format!("{} at step {s}, epoch {e}, {how}", run.name);
                assert!(
                    (lr - want).abs() <= 1e-6 * want + 1e-12,
                    "{what}: lr {lr}, want {want}"
                );
                let (w, gw) = (out(outs, "w"), out(outs, "grad w"));
                let old = &inputs[g.inputs.iter().position(|i| i.name == "w").expect("w")].data;
                for ((w, o), gw) in w.iter().zip(old).zip(&gw) {
                    let expect = o - want * gw;
                    assert!(
                        (w - expect).abs() <= 1e-5 * (1.0 + o.abs()),
                        "{what}: w {w}, want {expect}"
                    );
                }
            }
        }
    }
}

/// `sgd`'s, `adam`'s and `rmsprop`'s `weight_decay = λ` argument is
/// torch.optim's coupled decay of the weights, g + λw: the same step as the
/// penalty setting `weight_decay = penalty(λ, [w])`, whose gradient that is.
#[test]
fn a_rules_weight_decay_argument_is_torchs_coupled_decay_of_the_weights() {
    let model = &PROGRAM[..PROGRAM.find("\ntrain ").expect("a train block")];
    let block = |name: &str, optimizer: &str, setting: &str| {
        format!(
            "train {name}: lin on synth {{
    loss = squared_loss(output, label)
    optimizer = {optimizer}
    {setting}
}}
"
        )
    };
    let mut src = model.to_string();
    for (rule, args) in [
        ("sgd", "lr = 0.1, momentum = 0.9"),
        ("adam", "lr = 0.1"),
        ("rmsprop", "lr = 0.1"),
    ] {
        src += &block(
            &format!("{rule}_arg"),
            &format!("{rule}({args}, weight_decay = 0.5)"),
            "",
        );
        src += &block(
            &format!("{rule}_penalty"),
            &format!("{rule}({args})"),
            "weight_decay = penalty(0.5, [w])",
        );
    }
    let checked = common::check_clean(&src, "step.dl");
    for pair in checked.runs.chunks(2) {
        let (arg, penalty) = (step(&pair[0], &[]), step(&pair[1], &[]));
        for p in ["w", "b", "loss"] {
            assert_eq!(get(&arg, p), get(&penalty, p), "{} {p}", pair[0].name);
        }
    }
    // Plain SGD with the argument: w′ = w − η(∂L/∂w + λw), b undecayed.
    let sgd = step(&runs()[2], &[]);
    let (old_w, gw) = (get(&sgd, "old w"), get(&sgd, "grad w"));
    let src = format!(
        "{model}\n{}",
        block("torch", "sgd(lr = 0.1, weight_decay = 0.5)", "")
    );
    let (program, _) = dlc::syntax::parse(&src);
    let (checked, cd) = dlc::check::check(&program, &Default::default());
    assert!(cd.is_empty(), "{cd:?}");
    let out = step(&checked.runs[0], &[]);
    // The penalty's gradient is part of `grad w` here; the raw gradient is
    // the plain penalty run's minus λw.
    let raw: Vec<f64> = gw.iter().zip(old_w).map(|(g, w)| g - LAMBDA * w).collect();
    let want: Vec<f64> = old_w
        .iter()
        .zip(&raw)
        .map(|(w, g)| w - LR * (g + LAMBDA * w))
        .collect();
    assert!(
        close(get(&out, "w"), &want),
        "{:?} vs {want:?}",
        get(&out, "w")
    );
}
