//! Interpreter behaviour that golden values from source programs cannot
//! reach: `pad` (made only by autodiff), dropout's statistics, the batch
//! size, and f32 rounding.

use dlc::interp::{self, Env, Precision, Tensor};
use dlc::ir::{CmpOp, DType, Dim, Dist, Graph, Op, Role, Shape, Type};
use dlc::span::Span;

fn sp() -> Span {
    Span::default()
}

#[test]
fn pad_places_values_at_their_strided_positions() {
    let mut g = Graph::new();
    let x = g.input(
        "x",
        Role::Value,
        Type::new(DType::F64, Shape::fixed(&[2, 3])),
        sp(),
    );
    let p = g
        .add(
            Op::Pad {
                axis: 1,
                start: 1,
                step: 2,
                len: 7,
            },
            &[x],
            None,
            sp(),
        )
        .expect("pad");
    let s = g
        .add(
            Op::Slice {
                axis: 1,
                start: 1,
                end: 7,
                step: 2,
            },
            &[p],
            None,
            sp(),
        )
        .expect("slice");
    g.outputs = vec![("p".into(), p), ("s".into(), s)];
    let xs = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let out = interp::run(
        &g,
        &[Tensor::new(DType::F64, vec![2, 3], xs.clone())],
        &Env { batch: 1, seed: 0 },
        Precision::F64,
    )
    .expect("runs");
    assert_eq!(out[0].shape, vec![2, 7]);
    assert_eq!(
        out[0].data,
        vec![0.0, 1.0, 0.0, 2.0, 0.0, 3.0, 0.0, 0.0, 4.0, 0.0, 5.0, 0.0, 6.0, 0.0]
    );
    assert_eq!(out[1].data, xs, "slice undoes pad");
}

#[test]
fn dropout_keeps_1_minus_p_and_rescales() {
    // where(u ≥ p, x/(1−p), 0) with u uniform: E[out] = x, P(out = 0) = p.
    let mut g = Graph::new();
    let step = g.input("step", Role::Step, Type::scalar(DType::I32), sp());
    let t = Type::new(DType::F32, Shape(vec![Dim::Batch, Dim::Fixed(500)]));
    let u = g
        .add(
            Op::Random {
                dist: Dist::Uniform,
                stream: 0,
            },
            &[step],
            Some(t),
            sp(),
        )
        .expect("random");
    let p = g.constant(0.3, DType::F32, sp());
    let keep = g.add(Op::Cmp(CmpOp::Ge), &[u, p], None, sp()).expect("ge");
    let scale = g.constant(1.0 / 0.7, DType::F32, sp());
    let zero = g.constant(0.0, DType::F32, sp());
    let out = g
        .add(Op::Select, &[keep, scale, zero], None, sp())
        .expect("select");
    g.outputs = vec![("out".into(), out)];
    let env = Env {
        batch: 200,
        seed: 7,
    };
    let run = |s: f64| {
        interp::run(&g, &[Tensor::scalar(s, DType::I32)], &env, Precision::F32).expect("runs")[0]
            .data
            .clone()
    };
    let a = run(1.0);
    let n = a.len() as f64;
    let zeros = a.iter().filter(|v| **v == 0.0).count() as f64 / n;
    let mean = a.iter().sum::<f64>() / n;
    assert!((zeros - 0.3).abs() < 0.01, "dropped {zeros}");
    assert!((mean - 1.0).abs() < 0.02, "mean {mean}");
    assert_eq!(a, run(1.0), "same (seed, step): same mask");
    assert_ne!(a, run(2.0), "a new step: a new mask");
}

#[test]
fn batch_size_is_the_run_time_b() {
    let mut g = Graph::new();
    let b = g
        .add(Op::BatchSize, &[], Some(Type::scalar(DType::F32)), sp())
        .expect("batch");
    g.outputs = vec![("b".into(), b)];
    for batch in [1, 7, 256] {
        let out = interp::run(&g, &[], &Env { batch, seed: 0 }, Precision::F32).expect("runs");
        assert_eq!(out[0].data, vec![batch as f64]);
    }
}

#[test]
fn f32_precision_rounds_every_f32_node() {
    let mut g = Graph::new();
    let x = g.input("x", Role::Value, Type::scalar(DType::F32), sp());
    let y = g.add(Op::Mul, &[x, x], None, sp()).expect("mul");
    g.outputs = vec![("y".into(), y)];
    let v = 1.0 + 1e-7;
    let f32_out = interp::run(
        &g,
        &[Tensor::scalar(v, DType::F32)],
        &Env { batch: 1, seed: 0 },
        Precision::F32,
    )
    .expect("runs");
    let f64_out = interp::run(
        &g,
        &[Tensor::scalar(v, DType::F32)],
        &Env { batch: 1, seed: 0 },
        Precision::F64,
    )
    .expect("runs");
    let x32 = v as f32;
    assert_eq!(f32_out[0].data[0], (x32 * x32) as f64);
    assert_eq!(f64_out[0].data[0], v * v);
}

#[test]
fn a_wrong_input_shape_is_an_error_not_a_panic() {
    let mut g = Graph::new();
    let x = g.input(
        "x",
        Role::Value,
        Type::new(DType::F32, Shape::fixed(&[3])),
        sp(),
    );
    g.outputs = vec![("x".into(), x)];
    let r = interp::run(
        &g,
        &[Tensor::new(DType::F32, vec![2], vec![1.0, 2.0])],
        &Env { batch: 1, seed: 0 },
        Precision::F32,
    );
    assert!(r.is_err());
}
