//! Each IR pass on small graphs: the graph before and after, snapshotted,
//! and the interpreter's outputs unchanged by the pass.

use dlc::interp::{self, Env, Precision, Tensor};
use dlc::ir::{DType, Graph, NodeId, Op, Role, Shape, Type};
use dlc::span::Span;

fn f32s(dims: &[u64]) -> Type {
    Type::new(DType::F32, Shape::fixed(dims))
}

fn add(g: &mut Graph, op: Op, ins: &[NodeId]) -> NodeId {
    g.add(op, ins, None, Span::default()).expect("a valid node")
}

/// The graph printed before and after `pass`, checking that the outputs
/// are the same on a fixed input.
fn before_after(g: &Graph, pass: fn(&Graph) -> Graph) -> String {
    let after = pass(g);
    assert!(dlc::ir::verify::verify(&after).is_ok());
    let inputs: Vec<Tensor> = g
        .inputs
        .iter()
        .map(|info| {
            let t = g.ty(info.node);
            let shape = interp::concrete(&t.shape, 2);
            let n: usize = shape.iter().product();
            Tensor::new(
                t.dtype,
                shape,
                (0..n).map(|i| 0.3 * i as f64 - 0.7).collect(),
            )
        })
        .collect();
    let env = Env { batch: 2, seed: 1 };
    let a = interp::run(g, &inputs, &env, Precision::F64).expect("runs");
    let b = interp::run(&after, &inputs, &env, Precision::F64).expect("runs");
    for (x, y) in a.iter().zip(&b) {
        for (u, v) in x.data.iter().zip(&y.data) {
            assert!((u - v).abs() <= 1e-6 * (1.0 + u.abs()), "{u} vs {v}");
        }
    }
    format!(
        "== BEFORE ==\n{}== AFTER ==\n{}",
        dlc::ir::print::graph(g, None),
        dlc::ir::print::graph(&after, None)
    )
}

#[test]
fn fold_computes_constant_expressions() {
    let mut g = Graph::new();
    let x = g.input("x", Role::Features, f32s(&[3]), Span::default());
    let two = g.constant(2.0, DType::F32, Span::default());
    let three = g.constant(3.0, DType::F32, Span::default());
    let six = add(&mut g, Op::Mul, &[two, three]);
    let e = add(&mut g, Op::Exp, &[six]);
    let y = add(&mut g, Op::Mul, &[x, e]);
    g.outputs = vec![("y".into(), y)];
    insta::assert_snapshot!(before_after(&g, dlc::opt::fold::fold));
}

#[test]
fn simplify_applies_its_algebraic_rules() {
    let mut g = Graph::new();
    let x = g.input("x", Role::Features, f32s(&[2, 3]), Span::default());
    let m = g.input(
        "m",
        Role::Features,
        Type::new(DType::Bool, Shape::fixed(&[2, 3])),
        Span::default(),
    );
    let one = g.constant(1.0, DType::F32, Span::default());
    let zero = g.constant(0.0, DType::F32, Span::default());
    let a = add(&mut g, Op::Mul, &[x, one]); // x·1
    let b = add(&mut g, Op::Add, &[a, zero]); // +0
    let n1 = add(&mut g, Op::Neg, &[b]);
    let n2 = add(&mut g, Op::Neg, &[n1]); // −(−x)
    let t1 = add(&mut g, Op::Transpose { perm: vec![1, 0] }, &[n2]);
    let t2 = add(&mut g, Op::Transpose { perm: vec![1, 0] }, &[t1]); // (xᵀ)ᵀ
    let e = add(&mut g, Op::Exp, &[t2]);
    let l = add(&mut g, Op::Log, &[e]); // log eˣ
    let c = g
        .add(Op::Cast, &[m], Some(f32s(&[2, 3])), Span::default())
        .expect("cast");
    let masked = add(&mut g, Op::Mul, &[l, c]); // x·cast(m)
    let s = add(&mut g, Op::StopGradient, &[masked]);
    g.outputs = vec![("y".into(), s)];
    insta::assert_snapshot!(before_after(&g, |g| {
        dlc::opt::dce::dce(&dlc::opt::simplify::simplify(g))
    }));
}

#[test]
fn cse_merges_equal_nodes() {
    let mut g = Graph::new();
    let x = g.input("x", Role::Features, f32s(&[3]), Span::default());
    // Nodes pushed without sharing, as a rewrite may leave them.
    let node = |g: &mut Graph, op: Op, ins: Vec<NodeId>| {
        g.push(dlc::ir::Node {
            op,
            inputs: ins,
            ty: f32s(&[3]),
            span: Span::default(),
        })
    };
    let e1 = node(&mut g, Op::Exp, vec![x]);
    let e2 = node(&mut g, Op::Exp, vec![x]);
    let y = node(&mut g, Op::Add, vec![e1, e2]);
    g.outputs = vec![("y".into(), y)];
    insta::assert_snapshot!(before_after(&g, |g| {
        dlc::opt::dce::dce(&dlc::opt::cse::cse(g))
    }));
}

#[test]
fn dce_drops_what_no_output_needs() {
    let mut g = Graph::new();
    let x = g.input("x", Role::Features, f32s(&[3]), Span::default());
    let unused = g.input("unused", Role::Features, f32s(&[3]), Span::default());
    let dead = add(&mut g, Op::Exp, &[x]);
    let _ = add(&mut g, Op::Neg, &[dead]);
    let y = add(&mut g, Op::Tanh, &[x]);
    g.outputs = vec![("y".into(), y)];
    let text = before_after(&g, dlc::opt::dce::dce);
    // Inputs stay (callers pass the same arguments), dead nodes go.
    assert!(text.contains("unused"));
    let _ = unused;
    insta::assert_snapshot!(text);
}

#[test]
fn simplify_reads_relus_mask_from_its_output() {
    let mut g = Graph::new();
    let x = g.input("x", Role::Features, f32s(&[2, 3]), Span::default());
    let d = g.input("d", Role::Features, f32s(&[2, 3]), Span::default());
    let zero = g.constant(0.0, DType::F32, Span::default());
    let h = add(&mut g, Op::Max, &[x, zero]);
    let mask = add(&mut g, Op::Cmp(dlc::ir::CmpOp::Gt), &[x, zero]);
    let dx = add(&mut g, Op::Select, &[mask, d, zero]);
    // A comparison with anything but 0 is left alone.
    let one = g.constant(1.0, DType::F32, Span::default());
    let other = add(&mut g, Op::Cmp(dlc::ir::CmpOp::Gt), &[x, one]);
    let kept = add(&mut g, Op::Select, &[other, d, zero]);
    g.outputs = vec![("h".into(), h), ("dx".into(), dx), ("kept".into(), kept)];
    let text = before_after(&g, |g| dlc::opt::dce::dce(&dlc::opt::simplify::simplify(g)));
    insta::assert_snapshot!(text);
}

#[test]
fn simplify_sums_a_broadcast_by_multiplying() {
    let mut g = Graph::new();
    let x = g.input("x", Role::Features, f32s(&[3]), Span::default());
    let y = g.input("y", Role::Features, f32s(&[1, 3]), Span::default());
    // Σ over the 4 copies of x: 4·x.
    let bx = g
        .add(Op::Broadcast, &[x], Some(f32s(&[4, 3])), Span::default())
        .expect("broadcast");
    let sx = add(&mut g, Op::ReduceSum { axes: 1 }, &[bx]);
    // Σ over the B copies of y: B·y, in the shape [3].
    let batch_rows = Type::new(
        DType::F32,
        Shape(vec![dlc::ir::Dim::Batch, dlc::ir::Dim::Fixed(3)]),
    );
    let by = g
        .add(Op::Broadcast, &[y], Some(batch_rows), Span::default())
        .expect("broadcast");
    let sy = add(&mut g, Op::ReduceSum { axes: 1 }, &[by]);
    let z = add(&mut g, Op::Add, &[sx, sy]);
    g.outputs = vec![("z".into(), z)];
    let text = before_after(&g, |g| dlc::opt::dce::dce(&dlc::opt::simplify::simplify(g)));
    assert!(
        !text
            .split("== AFTER ==")
            .nth(1)
            .unwrap_or("")
            .contains("reduce_sum"),
        "{text}"
    );
    insta::assert_snapshot!(text);
}
