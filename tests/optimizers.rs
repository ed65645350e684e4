//! Every optimizer against NumPy (tests/golden/gen_optim.py, output
//! committed as optim.json): a small MLP takes 50 steps on fixed batches
//! from fixed weights under each rule (SGD with momentum and decoupled
//! weight decay, Nesterov, Adam with bias correction, AdamW, RMSprop). The
//! f64 cases run the training step in the interpreter and agree to 1e-12
//! relative; the f32 cases run it compiled, with and without the passes,
//! and agree to 1e-5 (f32 rounding over 50 steps; see the test).

mod common;

use dlc::interp::{self, Env, Precision, Tensor};
use dlc::ir::{Graph, Role};

fn program(dtype: &str, optimizer: &str, weight_decay: Option<&str>) -> String {
    let decay = weight_decay.map_or(String::new(), |d| format!("    weight_decay = {d}\n"));
    format!(
        "data s = linear(w = [2, -3.4, 1], b = 4.2, n_train = 64)
model m(x: f32[B, 3]) -> {dtype}[B, 1] {{
    param W1: {dtype}[3, 4] = zeros
    param b1: {dtype}[4] = zeros
    param W2: {dtype}[4, 1] = zeros
    param b2: {dtype}[1] = zeros
    relu({dtype}(x) @ W1 + b1) @ W2 + b2
}}
train main: m on s {{
    loss = squared_loss(output, label)
    optimizer = {optimizer}
{decay}    batch = 8
}}
"
    )
}

/// The first run's learning rate (as f32) and training step.
fn training_step(src: &str) -> (f64, Graph) {
    let checked = common::check_clean(src, "o.dl");
    let run = &checked.runs[0];
    let lr = run.settings.lr().expect("a rule's run") as f32 as f64;
    let g = dlc::step::training_step_without_grads(run).expect("a training step");
    (lr, g)
}

fn numbers(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

/// How a step graph is run: compiled (f32 cases) or interpreted in f64.
enum Runner {
    Jit(Box<dlc::jit::Compiled>),
    Interp,
}

impl Runner {
    fn run(&mut self, g: &Graph, inputs: &[Tensor], env: &Env) -> Vec<Tensor> {
        match self {
            Runner::Jit(c) => c.run(inputs, env).expect("the step runs"),
            Runner::Interp => interp::run(g, inputs, env, Precision::F64).expect("the step runs"),
        }
    }
}

/// The new parameters and state of a step's outputs `out` become the
/// next step's inputs.
fn feed_back(g: &Graph, out: &[Tensor], inputs: &mut [Tensor]) {
    for (k, info) in g.inputs.iter().enumerate() {
        let name = match info.role {
            Role::Param { .. } => info.name.clone(),
            Role::State(slot) => format!("{slot} {}", info.name),
            _ => continue,
        };
        let i = g
            .outputs
            .iter()
            .position(|(o, _)| *o == name)
            .unwrap_or_else(|| panic!("no output {name}"));
        inputs[k].data.clone_from(&out[i].data);
    }
}

/// The run's parameters after the golden file's steps, by name.
fn train(
    g: &Graph,
    doc: &serde_json::Value,
    runner: &mut Runner,
    lr: f64,
) -> Vec<(String, Vec<f64>)> {
    let batch = doc["batch"].as_u64().expect("batch") as usize;
    let env = Env { batch, seed: 0 };
    // Inputs by role: parameters from the golden file, state at zero.
    let mut inputs: Vec<Tensor> = g
        .inputs
        .iter()
        .map(|info| {
            let ty = g.ty(info.node);
            let shape = dlc::interp::concrete(&ty.shape, batch);
            let n = shape.iter().product();
            let data = match &info.role {
                Role::Param { .. } => numbers(&doc["init"][&info.name]),
                Role::Hyper => vec![lr],
                _ => vec![0.0; n],
            };
            Tensor::new(ty.dtype, shape, data)
        })
        .collect();
    for (t, b) in doc["batches"]
        .as_array()
        .expect("batches")
        .iter()
        .enumerate()
    {
        for (k, info) in g.inputs.iter().enumerate() {
            match info.role {
                Role::Features => inputs[k].data = numbers(&b["x"]),
                Role::Label => inputs[k].data = numbers(&b["y"]),
                Role::Step => inputs[k].data = vec![t as f64],
                _ => {}
            }
        }
        let out = runner.run(g, &inputs, &env);
        feed_back(g, &out, &mut inputs);
    }
    g.inputs
        .iter()
        .zip(&inputs)
        .filter(|(info, _)| matches!(info.role, Role::Param { .. }))
        .map(|(info, t)| (info.name.clone(), t.data.clone()))
        .collect()
}

#[test]
fn every_optimizer_matches_numpy_after_50_steps() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("tests/golden/optim.json")).expect("optim.json");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let cases = doc["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 12);
    let mut worst = (0.0f64, String::new());
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let dtype = case["dtype"].as_str().expect("dtype");
        let src = program(
            dtype,
            case["optimizer"].as_str().expect("optimizer"),
            case["weight_decay"].as_str(),
        );
        let (lr, g) = training_step(&src);
        let runners: Vec<(&str, Runner)> = if dtype == "f64" {
            vec![("interpreter", Runner::Interp)]
        } else {
            let passes = dlc::opt::Passes::all();
            let none = dlc::opt::Passes::none();
            vec![
                (
                    "JIT",
                    Runner::Jit(Box::new(
                        dlc::jit::compile_with(&g, false, &passes).expect("compiles"),
                    )),
                ),
                (
                    "JIT without passes",
                    Runner::Jit(Box::new(
                        dlc::jit::compile_with(&g, false, &none).expect("compiles"),
                    )),
                ),
            ]
        };
        // In f64 the rule is computed exactly as written: agreement to
        // rounding. In f32, 50 steps of forward and backward passes summed
        // in another order than NumPy's drift by tens of ulps (NumPy's own
        // f32 run differs from its f64 run by up to 2.3e-5 here).
        let tolerance = if dtype == "f64" { 1e-12 } else { 1e-5 };
        for (how, mut runner) in runners {
            for (p, got) in train(&g, &doc, &mut runner, lr) {
                let want = numbers(&case["final"][&p]);
                assert_eq!(got.len(), want.len());
                for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                    let rel = (a - b).abs() / b.abs().max(1e-3);
                    if rel > worst.0 {
                        worst = (rel, format!("{name} ({how}) {p}[{i}]: {a} vs {b}"));
                    }
                    assert!(
                        rel <= tolerance,
                        "{name} ({how}): {p}[{i}] is {a}, NumPy says {b} (relative error {rel:.2e})"
                    );
                }
            }
        }
    }
    eprintln!("largest relative error: {:.2e} at {}", worst.0, worst.1);
}

/// The JIT runs an Adam, AdamW or RMSprop update of a matrix as one
/// routine over each row (`jit/update.rs`, 8 lanes where the host has AVX)
/// instead of the Cranelift chain: both must write the same bits. Widths
/// 13 and 16 take the 8-lane loop and its scalar tail; 20 steps from
/// random weights, state and batches, each step's outputs fed back.
#[test]
fn fused_updates_write_what_the_chains_write() {
    for optimizer in [
        "adam(lr = 0.01)",
        "adam(lr = 0.01, weight_decay = 0.1)",
        "adamw(lr = 0.01, weight_decay = 0.1)",
        "adamw(lr = 0.01, weight_decay = 0)",
        "rmsprop(lr = 0.01)",
        "rmsprop(lr = 0.01, weight_decay = 0.1)",
        "adam(lr = 0.01, beta1 = 0.8, beta2 = 0.99, eps = 0.001)",
    ] {
        let src = format!(
            "data s = linear(w = [2, -3.4, 1], b = 4.2, n_train = 64)
model m(x: f32[B, 3]) -> f32[B, 1] {{
    param W1: f32[3, 13] = normal(0.5)
    param b1: f32[13] = zeros
    param W2: f32[13, 16] = normal(0.5)
    param W3: f32[16, 1] = normal(0.5)
    tanh(relu(x @ W1 + b1) @ W2) @ W3
}}
train main: m on s {{
    loss = squared_loss(output, label)
    optimizer = {optimizer}
    batch = 8
}}
"
        );
        let (_, g) = training_step(&src);
        let fused = dlc::jit::compile_with(&g, false, &dlc::opt::Passes::all()).expect("compiles");
        let chains = dlc::opt::Passes::without("update");
        let chains = dlc::jit::compile_with(&g, false, &chains).expect("compiles");
        // W1 and W2 (W3 is one column wide: a row of one value).
        let updates: usize = fused.plan.kernels.iter().map(|k| k.updates.len()).sum();
        assert_eq!(
            updates, 2,
            "{optimizer}: the updates of W1 and W2 are recognized"
        );
        assert!(chains.plan.kernels.iter().all(|k| k.updates.is_empty()));
        let batch = 8;
        let env = Env { batch, seed: 1 };
        let mut inputs = dlc::gradcheck::random_inputs(&g, None, batch, 7);
        for (info, t) in g.inputs.iter().zip(&mut inputs) {
            if matches!(info.role, Role::State(_)) {
                t.data.iter_mut().for_each(|v| *v = v.abs() * 0.01);
            }
        }
        let names: Vec<&str> = g.outputs.iter().map(|(n, _)| n.as_str()).collect();
        let mut runs = [(fused, inputs.clone()), (chains, inputs)];
        for t in 0..20 {
            let mut outs = Vec::new();
            for (c, ins) in &mut runs {
                for (k, info) in g.inputs.iter().enumerate() {
                    match info.role {
                        Role::Step => ins[k].data = vec![t as f64],
                        Role::Features | Role::Label => {
                            let fresh = dlc::gradcheck::random_inputs(&g, None, batch, 100 + t);
                            ins[k].data.clone_from(&fresh[k].data);
                        }
                        _ => {}
                    }
                }
                let out = c.run(ins, &env).expect("the step runs");
                feed_back(&g, &out, ins);
                outs.push(out);
            }
            for ((name, a), b) in names.iter().zip(&outs[0]).zip(&outs[1]) {
                for (i, (x, y)) in a.data.iter().zip(&b.data).enumerate() {
                    assert!(
                        (*x as f32).to_bits() == (*y as f32).to_bits(),
                        "{optimizer}: step {t}, {name}[{i}]: fused {x}, chain {y}"
                    );
                }
            }
        }
    }
}
