//! The JIT against the interpreter: every program's training step and eval
//! function, JIT in f32 against the interpreter in f64 on the same inputs,
//! at several batch sizes (one compiled step serves them all), within
//! DESIGN.md's bound |a − b| ≤ 1e-5·(1 + K)·max|b|, K the longest reduction.

mod common;
use common::longest_reduction;

use dlc::gradcheck::random_inputs;
use dlc::interp::{self, Env, Precision, Tensor};
use dlc::ir::{Graph, Op};
use dlc::jit::Matmul;
use dlc::opt::Passes;
use dlc::step::{eval_function, training_step, training_step_without_grads};

/// Every pass configuration: all on, all off, and each pass off in turn.
pub fn configurations() -> Vec<(String, Passes)> {
    let mut v = vec![
        ("all passes".to_string(), Passes::all()),
        ("--no-opt".to_string(), Passes::none()),
    ];
    for name in Passes::NAMES {
        v.push((format!("all but {name}"), Passes::without(name)));
    }
    v
}

pub fn compare(g: &Graph, inputs: &[Tensor], batch: usize, what: &str) {
    let env = Env { batch, seed: 3 };
    let want = interp::run(g, inputs, &env, Precision::F64).expect("interpreter runs");
    for (config, passes) in configurations() {
        let mut c = dlc::jit::compile_with(g, false, &passes).expect("compiles");
        for matmul in [Matmul::Gemm, Matmul::Jit] {
            c.matmul = matmul;
            let got = c.run(inputs, &env).expect("JIT runs");
            check(
                g,
                &got,
                &want,
                batch,
                &format!("{what} ({config}, {matmul:?} matmul)"),
            );
        }
    }
}

fn check(g: &Graph, got: &[Tensor], want: &[Tensor], batch: usize, what: &str) {
    let k = longest_reduction(g, batch) as f64;
    for ((name, _), (a, b)) in g.outputs.iter().zip(got.iter().zip(want)) {
        assert_eq!(a.shape, b.shape, "{what}: {name}");
        let scale = b.data.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let tol = 1e-5 * (1.0 + k) * scale.max(1e-30);
        for (i, (x, y)) in a.data.iter().zip(&b.data).enumerate() {
            let ok = (x.is_nan() && y.is_nan()) || (x - y).abs() <= tol || x == y;
            assert!(ok, "{what}: output {name}[{i}] JIT {x} vs interpreter {y} (tol {tol:e}, batch {batch})");
        }
    }
}

/// f32[B, d].
fn f32_rows(d: u64) -> dlc::ir::Type {
    use dlc::ir::{DType, Dim, Shape, Type};
    Type::new(DType::F32, Shape(vec![Dim::Batch, Dim::Fixed(d)]))
}

/// An f32 tensor of a fixed shape.
fn f32_fixed(dims: &[u64]) -> dlc::ir::Type {
    dlc::ir::Type::new(dlc::ir::DType::F32, dlc::ir::Shape::fixed(dims))
}

/// A graph input without a span.
fn input(g: &mut Graph, name: &str, role: dlc::ir::Role, ty: dlc::ir::Type) -> dlc::ir::NodeId {
    g.input(name, role, ty, dlc::span::Span::default())
}

/// Node `op` of `ins`, without a name or span.
fn add(g: &mut Graph, op: Op, ins: &[dlc::ir::NodeId]) -> dlc::ir::NodeId {
    g.add(op, ins, None, dlc::span::Span::default())
        .expect("op")
}

fn programs() -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(root.join("programs"))
        .expect("programs")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "dl"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_programs_training_step_and_eval_function_match_the_interpreter() {
    for f in programs() {
        let src = std::fs::read_to_string(&f).expect("program");
        let (_, checked, diags) = dlc::check::check_file(&f, &src, None);
        assert!(diags.is_empty());
        for run in &checked.runs {
            let data = checked.data.get(run.data);
            let mut graphs = vec![("eval", eval_function(run))];
            if let Some(s) = training_step(run) {
                graphs.push(("step", s));
            }
            // The step `dlc train` runs: without the gradients as outputs,
            // so that SGD steps fold into their weight-gradient matmuls.
            if let Some(s) = training_step_without_grads(run) {
                graphs.push(("step without gradients", s));
            }
            for (kind, g) in graphs {
                for batch in [1, 7, 33] {
                    let inputs = random_inputs(&g, data, batch, batch as u64);
                    compare(
                        &g,
                        &inputs,
                        batch,
                        &format!("{} {} {kind}", f.display(), run.name),
                    );
                }
            }
        }
    }
}

/// Every tile class of both matmul forms, with each operand given as is or
/// as the transpose of an input (read in place by the matmul, no
/// transposed copy: xᵀ·g of a weight gradient, g·Wᵀ of an input gradient).
#[test]
fn matmul_tiles_and_ragged_edges_match_the_interpreter() {
    use dlc::ir::{DType, Role, Shape, Type};
    use dlc::span::Span;
    for (m, k, n) in [
        (1, 1, 1),
        (4, 8, 8),
        (5, 3, 9),
        (3, 5, 7),
        (33, 17, 70),
        (64, 64, 64),
        (8, 1, 16),
        (12, 40, 10),
        (200, 300, 40),
    ] {
        for (a_t, b_t) in [(false, false), (true, false), (false, true), (true, true)] {
            let mut g = Graph::new();
            let sp = Span::default();
            let mut operand = |name: &str, rows: u64, cols: u64, t: bool| {
                let dims = if t { [cols, rows] } else { [rows, cols] };
                let x = g.input(
                    name,
                    Role::Features,
                    Type::new(DType::F32, Shape::fixed(&dims)),
                    sp,
                );
                if t {
                    g.add(Op::Transpose { perm: vec![1, 0] }, &[x], None, sp)
                        .expect("transpose")
                } else {
                    x
                }
            };
            let a = operand("a", m, k, a_t);
            let b = operand("b", k, n, b_t);
            let c = g.add(Op::MatMul, &[a, b], None, sp).expect("matmul");
            g.outputs = vec![("c".into(), c)];
            let inputs = random_inputs(&g, None, 1, m * 1000 + n);
            let what = format!("matmul {m}x{k} @ {k}x{n}, aᵀ {a_t}, bᵀ {b_t}");
            let plan = dlc::jit::compile(&g, false).expect("compiles").plan;
            assert_eq!(plan.kernels.len(), 1, "{what}: no transposed copy");
            compare(&g, &inputs, 1, &what);
        }
    }
}

#[test]
fn threads_split_a_matmul_into_identical_results() {
    // Depth 400, and 784 (a first layer's): on an AVX-512 host two threads
    // take the deeper product's two depth halves at batches 8 and 97 (the
    // second half into a partial buffer, added after).
    for depth in [400, 784] {
        threads_split_matmul(depth);
    }
}

fn threads_split_matmul(depth: u64) {
    use dlc::ir::Role;
    let mut g = Graph::new();
    let a = input(&mut g, "a", Role::Features, f32_rows(depth));
    let b = input(&mut g, "b", Role::Features, f32_fixed(&[depth, 120]));
    let c = add(&mut g, Op::MatMul, &[a, b]);
    // An epilogue: with fewer rows than B has columns (batch 8 and 97),
    // two threads cut the product by B's columns, then its rows.
    let t = add(&mut g, Op::Tanh, &[c]);
    let d = add(&mut g, Op::Mul, &[t, c]);
    g.outputs = vec![("c".into(), c), ("d".into(), d)];
    for batch in [8, 97, 256] {
        let inputs = random_inputs(&g, None, batch, 9);
        let env = Env { batch, seed: 0 };
        for matmul in [Matmul::Gemm, Matmul::Jit] {
            let mut one = dlc::jit::compile(&g, false).expect("compiles");
            (one.threads, one.matmul) = (1, matmul);
            let mut two = dlc::jit::compile(&g, false).expect("compiles");
            (two.threads, two.matmul) = (2, matmul);
            let (r1, r2) = (
                one.run(&inputs, &env).expect("runs"),
                two.run(&inputs, &env).expect("runs"),
            );
            for (x, y) in r1.iter().zip(&r2) {
                assert_eq!(
                    x.data, y.data,
                    "depth {depth}, batch {batch}, {matmul:?}: threads change nothing"
                );
            }
        }
        compare(
            &g,
            &inputs,
            batch,
            &format!("threaded matmul of depth {depth} at batch {batch}"),
        );
    }
}

/// The kernels' own exp, log, tanh, sigmoid, sin, cos and floor (not just
/// their Rust model)
/// against f64 libm over the range that matters: max relative error
/// ≤ 2e-6 where defined; overflow, underflow and NaN at the edges.
#[test]
fn jit_transcendentals_are_accurate() {
    use dlc::ir::{DType, Role, Shape, Type};
    use dlc::span::Span;
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    type Reference<'a> = &'a dyn Fn(f64) -> f64;
    let cases: [(Op, f64, f64, Reference); 7] = [
        (Op::Exp, -87.0, 88.0, &f64::exp),
        (Op::Log, 1e-30, 1e30, &f64::ln),
        (Op::Tanh, -12.0, 12.0, &f64::tanh),
        (Op::Sigmoid, -80.0, 30.0, &sigmoid),
        (Op::Sin, -100.0, 100.0, &f64::sin),
        (Op::Cos, -100.0, 100.0, &f64::cos),
        (Op::Floor, -1e4, 1e4, &f64::floor),
    ];
    for (op, lo, hi, f) in cases {
        let n = 100_003; // not a multiple of 4: the scalar tail runs too
        let xs: Vec<f64> = (0..n)
            .map(|i| {
                let t = i as f64 / (n - 1) as f64;
                let v = if op == Op::Log {
                    lo * (hi / lo).powf(t)
                } else {
                    lo + (hi - lo) * t
                };
                v as f32 as f64
            })
            .collect();
        let mut g = Graph::new();
        let x = g.input(
            "x",
            Role::Features,
            Type::new(DType::F32, Shape::fixed(&[n as u64])),
            Span::default(),
        );
        let y = g.add(op.clone(), &[x], None, Span::default()).expect("op");
        g.outputs = vec![("y".into(), y)];
        let mut c = dlc::jit::compile(&g, false).expect("compiles");
        let out = c
            .run(
                &[Tensor::new(DType::F32, vec![n], xs.clone())],
                &Env { batch: 1, seed: 0 },
            )
            .expect("runs");
        let mut worst = 0.0f64;
        for (x, got) in xs.iter().zip(&out[0].data) {
            let want = f(*x);
            if want.abs() < 1e-37 || !want.is_finite() {
                continue;
            }
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst <= 2e-6, "{}: max relative error {worst:e}", op.name());
        // Edges, through the vector lanes (8 values) and the scalar tail (7).
        let all = [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            200.0,
            -200.0,
            -1.0,
            1.0,
        ];
        for edge in [&all[..], &all[..7], &all[4..]] {
            let mut g = Graph::new();
            let x = g.input(
                "x",
                Role::Features,
                Type::new(DType::F32, Shape::fixed(&[edge.len() as u64])),
                Span::default(),
            );
            let y = g.add(op.clone(), &[x], None, Span::default()).expect("op");
            g.outputs = vec![("y".into(), y)];
            let mut c = dlc::jit::compile(&g, false).expect("compiles");
            let got = c
                .run(
                    &[Tensor::new(DType::F32, vec![edge.len()], edge.to_vec())],
                    &Env { batch: 1, seed: 0 },
                )
                .expect("runs");
            for (x, v) in edge.iter().zip(&got[0].data) {
                let want = f(*x) as f32 as f64;
                let close = (want - v).abs() <= 2e-6 * want.abs();
                let same = (want.is_nan() && v.is_nan()) || want == *v || close;
                assert!(same, "{}({x}) = {v}, want {want}", op.name());
            }
        }
    }
}

/// The four-lane comparisons and selects (bools are i32 0/1 lanes) agree
/// with the interpreter for every comparison, NaN and infinities included,
/// through the vector lanes and the scalar tail, with the mask broadcast or
/// not.
#[test]
fn vector_comparisons_and_selects_match_the_interpreter() {
    use dlc::ir::{CmpOp, DType, Role, Shape, Type};
    use dlc::span::Span;
    let sp = Span::default;
    let xs = [
        f64::NAN,
        1.0,
        -0.0,
        f64::INFINITY,
        2.5,
        f64::NEG_INFINITY,
        0.0,
        -3.0,
        7.0,
        1.0,
        f64::NAN,
    ];
    let ys = [
        1.0,
        f64::NAN,
        0.0,
        f64::INFINITY,
        -2.5,
        3.0,
        0.0,
        -3.0,
        8.0,
        0.5,
        f64::NAN,
    ];
    let cmps = [
        CmpOp::Eq,
        CmpOp::Ne,
        CmpOp::Lt,
        CmpOp::Le,
        CmpOp::Gt,
        CmpOp::Ge,
    ];
    for n in [8usize, 11] {
        for c in cmps {
            let mut g = Graph::new();
            let ty = Type::new(DType::F32, Shape::fixed(&[2, n as u64]));
            let x = g.input("x", Role::Features, ty.clone(), sp());
            let y = g.input("y", Role::Features, ty, sp());
            let m = g.add(Op::Cmp(c), &[x, y], None, sp()).expect("cmp");
            let s = g.add(Op::Select, &[m, x, y], None, sp()).expect("select");
            g.outputs = vec![("m".into(), m), ("s".into(), s)];
            let data = |v: &[f64]| {
                let row = &v[..n];
                Tensor::new(
                    DType::F32,
                    vec![2, n],
                    row.iter().chain(row.iter().rev()).copied().collect(),
                )
            };
            let inputs = [data(&xs), data(&ys)];
            let env = Env { batch: 1, seed: 0 };
            let want = interp::run(&g, &inputs, &env, Precision::F32).expect("interpreter");
            for passes in [Passes::all(), Passes::none()] {
                let mut jit = dlc::jit::compile_with(&g, false, &passes).expect("compiles");
                let got = jit.run(&inputs, &env).expect("runs");
                for (a, b) in got.iter().zip(&want) {
                    let same = a
                        .data
                        .iter()
                        .zip(&b.data)
                        .all(|(p, q)| p == q || (p.is_nan() && q.is_nan()));
                    assert!(
                        same,
                        "{c:?} over {n}: JIT {:?} vs interpreter {:?}",
                        a.data, b.data
                    );
                }
            }
        }
    }
}

/// Elementwise members of a row group run as one fused loop over the row
/// (registers between members, stores only for values read outside it):
/// a value read later (`a`) is still stored, a per-row operand (`s`) is
/// splat, bools pass between members, and rows of 2, 8 and 11 values
/// cover the vector lanes and the scalar tail.
#[test]
fn fused_row_chains_match_the_interpreter() {
    use dlc::ir::{CmpOp, DType, Role};
    for n in [2u64, 8, 11] {
        let mut g = Graph::new();
        let x = input(&mut g, "x", Role::Features, f32_rows(n));
        let s = input(&mut g, "s", Role::Features, f32_rows(1));
        let b = input(&mut g, "b", Role::Value, f32_fixed(&[n]));
        let zero = g.constant(0.0, DType::F32, dlc::span::Span::default());
        let a = add(&mut g, Op::Add, &[x, b]);
        let r = add(&mut g, Op::Max, &[a, zero]);
        let m = add(&mut g, Op::Cmp(CmpOp::Gt), &[r, s]);
        let t = add(&mut g, Op::Select, &[m, r, a]);
        let e = add(&mut g, Op::Exp, &[t]);
        let neg = add(&mut g, Op::Neg, &[e]);
        let total = add(&mut g, Op::Add, &[neg, a]);
        g.outputs = vec![("a".into(), a), ("total".into(), total)];
        let batch = 3;
        let vals = |k: usize, len: usize| -> Vec<f64> {
            (0..len)
                .map(|i| ((i * 7 + k * 3) % 11) as f64 * 0.25 - 1.2)
                .collect()
        };
        let inputs = [
            Tensor::new(
                DType::F32,
                vec![batch, n as usize],
                vals(1, batch * n as usize),
            ),
            Tensor::new(DType::F32, vec![batch, 1], vals(2, batch)),
            Tensor::new(DType::F32, vec![n as usize], vals(3, n as usize)),
        ];
        compare(
            &g,
            &inputs,
            batch,
            &format!("a fused chain over rows of {n}"),
        );
    }
}

/// The `wide` pass runs tanh, sigmoid and exp of rows at least 16 wide as
/// an 8-lane routine (`exec::wide`) instead of Cranelift's 4-lane loop: it
/// must write the same bits, in a fused row chain and in a matmul's
/// epilogue, on one thread and two, through the 8-lane loop and a ragged
/// tail, over values that reach every branch (tanh's polynomial and its
/// exp form, exp's overflow and underflow, infinities, NaN).
#[test]
fn wide_activations_write_what_the_four_lane_loops_write() {
    use dlc::ir::{DType, Role};
    for n in [16u64, 19, 40] {
        let mut g = Graph::new();
        let x = input(&mut g, "x", Role::Features, f32_rows(24));
        let w = input(&mut g, "w", Role::Value, f32_fixed(&[24, n]));
        let b = input(&mut g, "b", Role::Value, f32_fixed(&[n]));
        let z = add(&mut g, Op::MatMul, &[x, w]);
        let zb = add(&mut g, Op::Add, &[z, b]);
        let t = add(&mut g, Op::Tanh, &[zb]);
        let s = add(&mut g, Op::Sigmoid, &[zb]);
        let e = add(&mut g, Op::Exp, &[zb]);
        let ts = add(&mut g, Op::Mul, &[t, s]);
        let out = add(&mut g, Op::Add, &[ts, e]);
        g.outputs = vec![("t".into(), t), ("s".into(), s), ("out".into(), out)];
        let wide = dlc::jit::compile_with(&g, false, &Passes::all()).expect("compiles");
        let members: usize = wide.plan.kernels.iter().map(|k| k.wide.len()).sum();
        assert_eq!(members, 3, "rows of {n}: tanh, sigmoid and exp run wide");
        let batch = 37;
        let mut seed = 5u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 40) as f64 / (1u64 << 24) as f64 - 0.5
        };
        // Pre-activations from about -100 to 100 and edge values.
        let mut xs: Vec<f64> = (0..batch * 24).map(|_| next() * 8.0).collect();
        for (i, v) in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e30, -1e30]
            .iter()
            .enumerate()
        {
            xs[i * 24 + 3] = *v;
        }
        let inputs = [
            Tensor::new(DType::F32, vec![batch, 24], xs),
            Tensor::new(
                DType::F32,
                vec![24, n as usize],
                (0..24 * n).map(|_| next() * 2.0).collect(),
            ),
            Tensor::new(
                DType::F32,
                vec![n as usize],
                (0..n).map(|_| next() * 4.0).collect(),
            ),
        ];
        let env = Env { batch, seed: 0 };
        for threads in [1, 2] {
            let mut a = dlc::jit::compile_with(&g, false, &Passes::all()).expect("compiles");
            let mut b =
                dlc::jit::compile_with(&g, false, &Passes::without("wide")).expect("compiles");
            (a.threads, b.threads) = (threads, threads);
            let (ra, rb) = (
                a.run(&inputs, &env).expect("runs"),
                b.run(&inputs, &env).expect("runs"),
            );
            for ((name, _), (x, y)) in g.outputs.iter().zip(ra.iter().zip(&rb)) {
                for (i, (p, q)) in x.data.iter().zip(&y.data).enumerate() {
                    let (p, q) = (*p as f32, *q as f32);
                    assert!(
                        p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan()),
                        "rows of {n}, {threads} threads: {name}[{i}] wide {p} vs 4 lanes {q}"
                    );
                }
            }
        }
        compare(
            &g,
            &inputs,
            batch,
            &format!("wide activations over rows of {n}"),
        );
    }
}

/// Uniform random tensors (four lanes at a time, then a scalar tail) are
/// the interpreter's bit for bit, in f32 and f64, at sizes that are and are
/// not multiples of four.
#[test]
fn random_uniforms_match_the_interpreter_bit_for_bit() {
    use dlc::ir::{DType, Dim, Dist, Role, Shape, Type};
    use dlc::span::Span;
    let sp = Span::default;
    for dtype in [DType::F32, DType::F64] {
        for (width, batch) in [(3u64, 3usize), (4, 5), (1, 1)] {
            let mut g = Graph::new();
            let step = g.input(
                "step",
                Role::Step,
                Type::new(DType::I32, Shape(vec![])),
                sp(),
            );
            let ty = Type::new(dtype, Shape(vec![Dim::Batch, Dim::Fixed(width)]));
            let r = g
                .add(
                    Op::Random {
                        dist: Dist::Uniform,
                        stream: 7,
                    },
                    &[step],
                    Some(ty),
                    sp(),
                )
                .expect("random");
            g.outputs = vec![("r".into(), r)];
            let inputs = [Tensor::new(DType::I32, vec![], vec![12.0])];
            let env = Env { batch, seed: 5 };
            let want = interp::run(&g, &inputs, &env, Precision::F32).expect("interpreter");
            let got = dlc::jit::compile(&g, false)
                .expect("compiles")
                .run(&inputs, &env)
                .expect("runs");
            assert_eq!(got[0].data, want[0].data, "{dtype:?} [{batch}, {width}]");
            assert!(got[0].data.iter().all(|v| (0.0..1.0).contains(v)));
        }
    }
}

/// Column sums and maxima (every axis but the innermost reduced) run
/// sixteen columns at a time down the rows, then the columns left over
/// (widths 3, 16, 21 and 40, over one and two outer axes) and agree with
/// the interpreter.
#[test]
fn column_reductions_match_the_interpreter() {
    use dlc::ir::{DType, Dim, Role, Shape, Type};
    use dlc::span::Span;
    let sp = Span::default;
    for (inner, width) in [(1u64, 3u64), (1, 16), (1, 21), (2, 40)] {
        for sum in [true, false] {
            let mut g = Graph::new();
            let shape = Shape(vec![Dim::Batch, Dim::Fixed(inner), Dim::Fixed(width)]);
            let x = g.input("x", Role::Features, Type::new(DType::F32, shape), sp());
            let op = if sum {
                Op::ReduceSum { axes: 0b011 }
            } else {
                Op::ReduceMax { axes: 0b011 }
            };
            let r = g.add(op, &[x], None, sp()).expect("reduce");
            g.outputs = vec![("r".into(), r)];
            let batch = 37;
            let n = batch * (inner * width) as usize;
            let data: Vec<f64> = (0..n)
                .map(|i| ((i * 37 % 101) as f64 - 50.0) * 0.013)
                .collect();
            let shape = vec![batch, inner as usize, width as usize];
            let inputs = [Tensor::new(DType::F32, shape, data)];
            compare(
                &g,
                &inputs,
                batch,
                &format!("sum {sum} over [B, {inner}, {width}]"),
            );
        }
    }
}

/// Short loops are unrolled, but nested ones only up to a bounded number of
/// copies: an elementwise op over a fixed shape of many axes of 16 stays a
/// loop nest (its Cranelift IR a few kilobytes, not one line per element)
/// and computes what the interpreter does.
#[test]
fn unrolling_is_bounded_over_many_short_axes() {
    use dlc::ir::{DType, Role, Shape, Type};
    use dlc::span::Span;
    let sp = Span::default;
    let mut g = Graph::new();
    let ty = Type::new(DType::F32, Shape::fixed(&[16, 16, 16, 16]));
    let x = g.input("x", Role::Features, ty.clone(), sp());
    let y = g.input("y", Role::Features, ty, sp());
    let s = g.add(Op::Add, &[x, y], None, sp()).expect("add");
    g.outputs = vec![("s".into(), s)];
    let c = dlc::jit::compile(&g, true).expect("compiles");
    let clif: usize = c.clif.iter().map(|(_, text)| text.len()).sum();
    assert!(clif < 100_000, "{clif} bytes of Cranelift IR");
    let n = 16 * 16 * 16 * 16;
    let inputs = [
        Tensor::new(DType::F32, vec![16; 4], (0..n).map(|i| i as f64).collect()),
        Tensor::new(
            DType::F32,
            vec![16; 4],
            (0..n).map(|i| (n - i) as f64).collect(),
        ),
    ];
    compare(&g, &inputs, 1, "an add over [16, 16, 16, 16]");
}

/// A large random draw is split across threads by rows (ragged ones, whose
/// element ranges are not multiples of the four-wide loop): every value is
/// the same as on one thread and as the interpreter's, for both
/// distributions, at batch sizes that split and that do not.
#[test]
fn threads_split_a_random_draw_into_identical_values() {
    use dlc::ir::{DType, Dim, Dist, Role, Shape, Type};
    use dlc::span::Span;
    for dist in [Dist::Uniform, Dist::Normal] {
        let mut g = Graph::new();
        let step = g.input(
            "step",
            Role::Step,
            Type::new(DType::I32, Shape(vec![])),
            Span::default(),
        );
        let ty = Type::new(DType::F32, Shape(vec![Dim::Batch, Dim::Fixed(301)]));
        let r = g
            .add(
                Op::Random { dist, stream: 4 },
                &[step],
                Some(ty),
                Span::default(),
            )
            .expect("random");
        g.outputs = vec![("r".into(), r)];
        for batch in [3, 57, 200] {
            let inputs = vec![Tensor::new(DType::I32, vec![], vec![11.0])];
            let env = Env { batch, seed: 5 };
            let mut one = dlc::jit::compile(&g, false).expect("compiles");
            one.threads = 1;
            let mut two = dlc::jit::compile(&g, false).expect("compiles");
            two.threads = 2;
            let (r1, r2) = (
                one.run(&inputs, &env).expect("runs"),
                two.run(&inputs, &env).expect("runs"),
            );
            assert_eq!(r1[0].data.len(), batch * 301);
            assert_eq!(
                r1[0].data, r2[0].data,
                "{dist:?} at batch {batch}: threads change nothing"
            );
            compare(
                &g,
                &inputs,
                batch,
                &format!("{dist:?} draw at batch {batch}"),
            );
            if dist == Dist::Uniform {
                // Bit for bit the interpreter's generator (the f32 draw is
                // 24 bits times 2⁻²⁴, exact).
                let key = dlc::rng::key(5, 11, 4);
                for (i, v) in r2[0].data.iter().enumerate() {
                    assert_eq!(
                        *v,
                        dlc::rng::uniform(key, i as u64),
                        "element {i} at batch {batch}"
                    );
                }
            }
        }
    }
}
