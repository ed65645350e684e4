//! Compile time against program size: generated programs of about 1k, 4k
//! and 16k IR nodes, each stage timed on its own, and the growth exponent
//! of each stage (the slope of log time against log nodes between the
//! smallest and the largest program). Run with:
//!
//!     cargo bench --bench compile [-- KIND...]
//!
//! KIND is `lets` (a chain of `let`s in a model, each one elementwise step
//! of a [B, 1] value) or `params` (scalar parameters, each added into the
//! output once); both by default. Stages: `check` (parse, type-check,
//! lower to IR), `grad` (autodiff into the training step), `opt` (the IR
//! passes), `plan` (kernels and memory), `codegen` (Cranelift, with the
//! plan and passes it repeats subtracted). docs/compile-time.md records the
//! results.

use std::path::Path;
use std::time::Instant;

use dlc::opt::Passes;

/// A program with about `n` statements of kind `kind`.
fn program(kind: &str, n: usize) -> String {
    let mut s = String::from(
        "data s = linear(w = [2, -3.4], b = 4.2, n_train = 64, noise = 0.01)\n\
         model m(x: f32[B, 2]) -> f32[B, 1] {\n    param w: f32[2, 1] = normal(0.01)\n    param b: f32[1] = zeros\n",
    );
    match kind {
        "lets" => {
            s.push_str("    let h0 = x @ w + b\n");
            for i in 1..=n {
                s.push_str(&format!("    let h{i} = h{} * 1.0001 + 0.001\n", i - 1));
            }
            s.push_str(&format!("    h{n}\n"));
        }
        _ => {
            for i in 0..n {
                s.push_str(&format!("    param p{i}: f32[1] = zeros\n"));
            }
            s.push_str("    let h0 = x @ w + b\n");
            for i in 0..n {
                s.push_str(&format!("    let h{} = h{i} + p{i}\n", i + 1));
            }
            s.push_str(&format!("    h{n}\n"));
        }
    }
    s.push_str(
        "}\ntrain m on s {\n    loss = squared_loss(output, label)\n    optimizer = sgd(lr = 0.01)\n    epochs = 1\n}\n",
    );
    s
}

const STAGES: [&str; 5] = ["check", "grad", "opt", "plan", "codegen"];

/// Seconds per stage, and the training step's node count.
fn measure(src: &str) -> ([f64; 5], usize) {
    let t = Instant::now();
    let (_, checked, diags) = dlc::check::check_file(Path::new("gen.dl"), src, None);
    assert!(diags.is_empty(), "{:?}", diags.first());
    let check = t.elapsed().as_secs_f64();
    let run = &checked.runs[0];
    let t = Instant::now();
    let g = dlc::step::training_step_without_grads(run).expect("a training step");
    let grad = t.elapsed().as_secs_f64();
    let passes = Passes::all();
    let t = Instant::now();
    let opt = dlc::opt::optimize(&g, &passes);
    let opt_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let _ = dlc::jit::plan::plan(&opt, &passes);
    let plan_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let _ = dlc::jit::compile_with(&g, false, &passes).expect("compiles");
    let all = t.elapsed().as_secs_f64();
    let codegen = (all - opt_s - plan_s).max(0.0);
    ([check, grad, opt_s, plan_s, codegen], g.len())
}

fn main() {
    let kinds: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a == "lets" || a == "params")
        .collect();
    let kinds = if kinds.is_empty() {
        vec!["lets".to_string(), "params".to_string()]
    } else {
        kinds
    };
    for kind in &kinds {
        // Statement counts that give the training step about 1k, 4k and
        // 16k nodes, from the nodes a program of 200 statements has.
        let (_, base) = measure(&program(kind, 200));
        let per = base as f64 / 200.0;
        let sizes: Vec<usize> = [1_000.0, 4_000.0, 16_000.0]
            .iter()
            .map(|n| (n / per).round() as usize)
            .collect();
        println!("{kind}: seconds per stage");
        println!(
            "{:>8} {:>8} {}  {:>8}",
            "stmts",
            "nodes",
            STAGES.map(|s| format!("{s:>8}")).join(" "),
            "total"
        );
        let mut rows = Vec::new();
        for &n in &sizes {
            let (t, nodes) = measure(&program(kind, n));
            println!(
                "{n:>8} {nodes:>8} {}  {:>8.3}",
                t.map(|x| format!("{x:>8.3}")).join(" "),
                t.iter().sum::<f64>()
            );
            rows.push((nodes, t));
        }
        let ((n0, t0), (n1, t1)) = (rows[0], rows[rows.len() - 1]);
        let slope =
            |a: f64, b: f64| ((b.max(1e-6)) / (a.max(1e-6))).ln() / (n1 as f64 / n0 as f64).ln();
        let exps: Vec<String> = (0..5)
            .map(|i| format!("{:>8.2}", slope(t0[i], t1[i])))
            .collect();
        println!(
            "{:>17} {}  {:>8.2}\n",
            "exponent",
            exps.join(" "),
            slope(t0.iter().sum(), t1.iter().sum())
        );
    }
}
