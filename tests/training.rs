//! The training loop through the library: the prefetch thread, gradient
//! norms against the interpreter, and the profile's phases.

use dlc::driver::{self, Loaded, ProgramArgs};
use dlc::interp::{self, Env, Precision, Tensor};
use dlc::ir::Role;
use dlc::train::{self, Sink, TrainOptions};

fn load(path: &str) -> Loaded {
    let l = driver::load(&ProgramArgs {
        file: std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path),
        data: None,
        run: None,
        color: false,
    })
    .expect("the program reads");
    assert!(l.diagnostics.is_empty(), "{:?}", l.diagnostics);
    l
}

/// Trains run `name` of `l` and returns its JSON lines.
/// The keys of `dlc train --json` lines that are measurements of time or
/// memory, which differ from run to run.
const TIMINGS: [&str; 8] = [
    "seconds",
    "samples_per_sec",
    "compile_ms",
    "infer_first_seconds",
    "infer_min_seconds",
    "infer_max_seconds",
    "infer_seconds",
    "peak_rss_bytes",
];

/// JSON lines without their [`TIMINGS`]: what must be bit-identical.
fn without_timings(lines: &[serde_json::Value]) -> Vec<String> {
    lines
        .iter()
        .map(|v| {
            let mut v = v.clone();
            if let Some(o) = v.as_object_mut() {
                for k in TIMINGS {
                    o.remove(k);
                }
            }
            v.to_string()
        })
        .collect()
}

fn train_json(l: &Loaded, name: &str, opts: &TrainOptions) -> Vec<serde_json::Value> {
    let run = l
        .checked
        .runs
        .iter()
        .find(|r| r.name == name)
        .expect("the run exists");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut sink = Sink {
        stdout: &mut out,
        stderr: &mut err,
        json: true,
        quiet: true,
        progress: false,
    };
    let opts = TrainOptions {
        json: true,
        quiet: true,
        ..opts.clone()
    };
    train::train_run(run, &l.checked.data[run.data], &opts, &mut sink).expect("trains");
    String::from_utf8(out)
        .expect("utf-8")
        .lines()
        .map(|s| serde_json::from_str(s).expect("a JSON line"))
        .collect()
}

#[test]
fn the_prefetch_thread_changes_no_loss_and_no_parameter() {
    let l = load("programs/softmax.dl");
    let opts = |prefetch| TrainOptions {
        epochs: Some(2),
        threads: Some(1),
        prefetch,
        ..Default::default()
    };
    let with = train_json(&l, "main", &opts(true));
    let without = train_json(&l, "main", &opts(false));
    assert_eq!(with.len(), 3, "two epochs and a final line");
    assert_eq!(without_timings(&with), without_timings(&without));
}

/// One thread or two (kernels split by rows, batches copied by both
/// threads, shares taken back from a late worker) train the same model:
/// with the JIT's matmul, which computes every row the same way whatever
/// the split, bit for bit.
#[test]
fn two_threads_train_exactly_as_one() {
    let l = load("programs/mlp.dl");
    let opts = |threads| TrainOptions {
        epochs: Some(1),
        threads: Some(threads),
        prefetch: false,
        matmul: dlc::jit::Matmul::Jit,
        ..Default::default()
    };
    let one = train_json(&l, "main", &opts(1));
    let two = train_json(&l, "main", &opts(2));
    assert_eq!(one.len(), 2, "an epoch and a final line");
    assert_eq!(without_timings(&one), without_timings(&two));
}

#[test]
fn gradient_norms_are_the_norms_of_the_interpreters_gradients() {
    // One batch of all 1000 samples, so the epoch's mean norm is the norm
    // of the gradient at the initial parameters.
    let l = load("programs/linreg.dl");
    let lines = train_json(
        &l,
        "sgd",
        &TrainOptions {
            epochs: Some(1),
            batch: Some(1000),
            grad_norms: true,
            ..Default::default()
        },
    );
    let reported = &lines[0]["grad_norms"];
    let run = l
        .checked
        .runs
        .iter()
        .find(|r| r.name == "sgd")
        .expect("sgd");
    let data = &l.checked.data[run.data];
    let seed = run.settings.seed;
    let t = dlc::data::load::load(data, seed).expect("data").train;
    let order = train::epoch_order(&run.settings.sampler, &t, seed, 1);
    let g = dlc::step::training_step(run).expect("a step");
    let mut pi = 0;
    let inputs: Vec<Tensor> = g
        .inputs
        .iter()
        .map(|info| {
            let ty = g.ty(info.node);
            let shape = interp::concrete(&ty.shape, order.len());
            let values = match info.role {
                Role::Param { .. } => {
                    pi += 1;
                    train::init_values(&run.params[pi - 1], seed, pi - 1)
                }
                Role::Features => order
                    .iter()
                    .flat_map(|&r| {
                        t.x.values(r * t.width, (r + 1) * t.width)
                            .into_iter()
                            .map(f64::from)
                    })
                    .collect(),
                Role::Label => order.iter().map(|&r| t.y[r]).collect(),
                Role::Hyper => vec![0.03],
                Role::Step | Role::Epoch | Role::State(_) | Role::Value => {
                    vec![0.0; shape.iter().product()]
                }
                // One process: the whole batch.
                Role::Samples => vec![order.len() as f64],
                Role::FirstSample => vec![0.0],
            };
            Tensor::new(ty.dtype, shape, values)
        })
        .collect();
    let env = Env {
        batch: order.len(),
        seed,
    };
    let out = interp::run(&g, &inputs, &env, Precision::F64).expect("runs");
    for p in ["w", "b"] {
        let k = g
            .outputs
            .iter()
            .position(|(n, _)| *n == format!("grad {p}"))
            .expect("a gradient output");
        let norm = out[k].data.iter().map(|v| v * v).sum::<f64>().sqrt();
        let got = reported[p].as_f64().expect("a reported norm");
        assert!(
            (got - norm).abs() <= 1e-4 * norm,
            "{p}: reported {got}, interpreter {norm}"
        );
        assert!(norm > 0.1, "a real gradient: {norm}");
    }
}

#[test]
fn the_profile_splits_a_step_into_forward_backward_and_update() {
    use dlc::profile::{phases, Phase};
    let l = load("programs/linreg.dl");
    let run = &l.checked.runs[0];
    let g = dlc::step::training_step(run).expect("a step");
    let ph = phases(&g);
    let of = |id: dlc::ir::NodeId| ph[id.index()];
    // The forward matmul, the gradient of w, and the updated w.
    let fwd = g
        .nodes
        .iter()
        .position(|n| n.op == dlc::ir::Op::MatMul)
        .expect("a matmul");
    assert_eq!(ph[fwd], Phase::Forward);
    let out = |name: &str| {
        g.outputs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| *id)
            .expect("an output")
    };
    assert_eq!(of(out("grad w")), Phase::Backward);
    assert_eq!(of(out("w")), Phase::Update);
    assert_eq!(of(out("loss")), Phase::Forward);

    // The report charges every kernel to a line; the shares add to 100%.
    let times: Vec<(Vec<dlc::ir::NodeId>, f64)> = (0..g.len())
        .map(|i| (vec![dlc::ir::NodeId(i as u32)], 1e-3))
        .collect();
    let text = dlc::profile::report(&g, (&times, &[]), 10, &l.src, "linreg.dl");
    let shares: f64 = text
        .lines()
        .skip(2)
        .take_while(|l| !l.contains("slowest"))
        .filter_map(|l| {
            l.split('%')
                .next()?
                .split_whitespace()
                .last()?
                .parse::<f64>()
                .ok()
        })
        .sum();
    assert!((shares - 100.0).abs() < 0.5, "{shares}\n{text}");
    assert!(text.contains("x @ w + b"), "{text}");
}

#[test]
fn parameters_kept_in_the_step_train_exactly_as_copied_ones() {
    // With the passes, SGD writes each parameter and velocity in place and
    // they stay in the compiled step between steps; with --no-opt they are
    // copied in and out every step. The losses, metrics and parameters
    // must be the same, with momentum and with weight decay.
    let dir = std::env::temp_dir().join(format!("dlc-resident-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("momentum.dl");
    std::fs::write(
        &file,
        r#"data synth = linear(w = [2, -3.4], b = 4.2, n_train = 203, n_test = 50, noise = 0.01)

model mlp(x: f32[B, 2]) -> f32[B, 1] {
    param W1: f32[2, 8] = xavier_uniform
    param b1: f32[8] = zeros
    param W2: f32[8, 1] = normal(0.1)
    param b2: f32[1] = zeros
    tanh(x @ W1 + b1) @ W2 + b2
}

train main: mlp on synth {
    loss = squared_loss(output, label)
    optimizer = sgd(lr = 0.01, momentum = 0.9)
    weight_decay = decoupled(0.01, [W1, W2])
    batch = 16
    epochs = 3
    seed = 7
    metrics = [loss, rmse]
}
"#,
    )
    .expect("written");
    let l = driver::load(&ProgramArgs {
        file: file.clone(),
        data: None,
        run: None,
        color: false,
    })
    .expect("reads");
    assert!(l.diagnostics.is_empty(), "{:?}", l.diagnostics);
    // Every parameter and velocity stays in the optimized step.
    let step = dlc::step::training_step_without_grads(&l.checked.runs[0]).expect("a step");
    let c = dlc::jit::compile(&step, false).expect("compiles");
    let plain = dlc::jit::compile_with(&step, false, &dlc::opt::Passes::none()).expect("compiles");
    for (k, info) in step.inputs.iter().enumerate() {
        let out = match info.role {
            Role::Param { .. } => info.name.clone(),
            Role::State(slot) => format!("{slot} {}", info.name),
            _ => continue,
        };
        assert!(c.resident(k, &out), "{out} is not kept in place");
        assert!(!plain.resident(k, &out), "{out}: --no-opt copies");
    }
    // With the JIT's own matmul, whose sums run in one fixed order, the
    // results are bit-identical.
    let jit = dlc::jit::Matmul::Jit;
    let opt = without_timings(&train_json(
        &l,
        "main",
        &TrainOptions {
            matmul: jit,
            ..Default::default()
        },
    ));
    let plain = without_timings(&train_json(
        &l,
        "main",
        &TrainOptions {
            no_opt: true,
            matmul: jit,
            ..Default::default()
        },
    ));
    assert_eq!(opt.len(), 4, "{opt:?}");
    assert_eq!(opt, plain);
    // The gemm crate's summation order may differ between a transpose read
    // in place and one copied first: the same up to rounding.
    let numbers = |opts: TrainOptions| -> Vec<f64> {
        fn walk(v: &serde_json::Value, out: &mut Vec<f64>) {
            match v {
                serde_json::Value::Number(n) => out.extend(n.as_f64()),
                serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
                serde_json::Value::Object(o) => o
                    .iter()
                    .filter(|(k, _)| !TIMINGS.contains(&k.as_str()))
                    .for_each(|(_, x)| walk(x, out)),
                _ => {}
            }
        }
        let mut out = Vec::new();
        train_json(&l, "main", &opts)
            .iter()
            .for_each(|v| walk(v, &mut out));
        out
    };
    let opt = numbers(TrainOptions::default());
    let plain = numbers(TrainOptions {
        no_opt: true,
        ..Default::default()
    });
    assert_eq!(opt.len(), plain.len());
    for (a, b) in opt.iter().zip(&plain) {
        assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "gemm: {a} vs {b}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
