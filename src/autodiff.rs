//! Reverse-mode differentiation as an IR → IR transformation.
//!
//! [`grad`] adds to a graph the nodes that compute ∂y/∂x for a scalar `y`
//! and each `x` in `wrt`. The generic driver owns everything that is not
//! about one op: the reverse sweep in id order, fan-out (a value used twice
//! gets the sum of both adjoints), and un-broadcasting (an operand that was
//! broadcast gets its adjoint summed over the broadcast axes). [`vjp`] holds
//! one local rule per primitive, each under a one-line math comment.
//!
//! Conventions at non-differentiable points: `max(a, b)` sends the adjoint
//! to `a` where a > b and to `b` otherwise, so relu'(0) = 0 (d2l's choice);
//! `reduce_max` splits the adjoint equally among tied maxima; |x|'(0) = 0.
//!
//! Each new node carries the span of the forward node it differentiates,
//! and `Graph::grad_of` records which forward node that was, so the printed
//! backward pass reads back to the source.
//!
//! Architecture invariant: the input graph is well typed; a failure here
//! is a compiler bug and panics with a message that says so.

use crate::ir::{CmpOp, DType, Dim, Graph, Linalg, Node, NodeId, Op, Shape, Type};
use crate::span::Span;

/// A local derivative rule: given the forward node `id`, the adjoint of its
/// output, and an operand index, the operand's adjoint contribution (in the
/// operand's shape or the output's broadcast shape), or `None` when no
/// gradient flows to that operand.
pub type Rule = dyn Fn(&mut Graph, NodeId, NodeId, usize) -> Option<NodeId>;

/// ∂y/∂x for each x in `wrt`, with the standard rules. `y` must be a
/// float scalar. A `wrt` node that `y` does not depend on gets zeros.
pub fn grad(g: &mut Graph, y: NodeId, wrt: &[NodeId]) -> Vec<NodeId> {
    grad_with(g, y, wrt, &vjp)
}

/// [`grad`] with a given rule set (tests inject a broken rule to show the
/// gradient check can fail).
pub fn grad_with(g: &mut Graph, y: NodeId, wrt: &[NodeId], rule: &Rule) -> Vec<NodeId> {
    let n = y.index() + 1;
    // Which nodes depend on a wrt node: only they need adjoints.
    let mut needs = vec![false; g.len()];
    for w in wrt {
        needs[w.index()] = true;
    }
    for i in 0..n {
        if !needs[i] && g.nodes[i].inputs.iter().any(|x| needs[x.index()]) {
            needs[i] = !matches!(g.nodes[i].op, Op::StopGradient);
        }
    }
    let yt = g.ty(y).clone();
    assert!(
        yt.shape.rank() == 0 && yt.dtype.is_float(),
        "compiler bug: grad of a non-scalar {yt}"
    );
    let mut adj: Vec<Option<NodeId>> = vec![None; n];
    let span = g.node(y).span;
    adj[y.index()] = Some(g.constant(1.0, yt.dtype, span));
    for i in (0..n).rev() {
        let Some(a) = adj[i] else { continue };
        if !needs[i] {
            continue;
        }
        let id = NodeId(i as u32);
        let inputs = g.nodes[i].inputs.clone();
        for (k, x) in inputs.iter().enumerate() {
            if !needs[x.index()] || !g.ty(*x).dtype.is_float() {
                continue;
            }
            let before = g.len();
            let Some(c) = rule(g, id, a, k) else { continue };
            let c = unbroadcast(g, c, &g.ty(*x).clone(), g.node(id).span);
            let total = match adj[x.index()] {
                None => c,
                Some(prev) => g.emit(Op::Add, &[prev, c], None, g.node(id).span),
            };
            for new in before..g.len() {
                g.grad_of.entry(NodeId(new as u32)).or_insert(id);
            }
            adj[x.index()] = Some(total);
        }
    }
    wrt.iter()
        .map(|w| match adj.get(w.index()).copied().flatten() {
            Some(a) => a,
            None => {
                let t = g.ty(*w).clone();
                let span = g.node(*w).span;
                let z = g.constant(0.0, t.dtype, span);
                g.emit(Op::Broadcast, &[z], Some(t), span)
            }
        })
        .collect()
}

/// Sums `c` down to type `to`: over leading axes it has and `to` lacks, and
/// over axes where `to` has size 1 (the inverse of NumPy broadcasting).
pub fn unbroadcast(g: &mut Graph, c: NodeId, to: &Type, span: Span) -> NodeId {
    let from = g.ty(c).clone();
    if from.shape == to.shape {
        return c;
    }
    let (r, t) = (from.shape.rank(), to.shape.rank());
    let mut axes = 0u32;
    for i in 0..r {
        let reduce = if i < r - t {
            true
        } else {
            to.shape.0[i - (r - t)] == Dim::Fixed(1) && from.shape.0[i] != Dim::Fixed(1)
        };
        if reduce {
            axes |= 1 << i;
        }
    }
    let s = if axes != 0 {
        g.emit(Op::ReduceSum { axes }, &[c], None, span)
    } else {
        c
    };
    if g.ty(s).shape == to.shape {
        s
    } else {
        g.emit(
            Op::Reshape,
            &[s],
            Some(Type::new(from.dtype, to.shape.clone())),
            span,
        )
    }
}

/// The standard vector-Jacobian products, one per primitive.
pub fn vjp(g: &mut Graph, id: NodeId, a: NodeId, k: usize) -> Option<NodeId> {
    let node: Node = g.node(id).clone();
    let sp = node.span;
    let dt = node.ty.dtype;
    let x = |i: usize| node.inputs[i];
    let c = |g: &mut Graph, v: f64| g.constant(v, dt, sp);
    // 1·q = q when q already has the product's shape (the seed adjoint of
    // the loss is 1; this keeps the printed backward pass free of `mul 1`).
    let mul = |g: &mut Graph, p: NodeId, q: NodeId| {
        let one = |v: NodeId| g.const_value(v) == Some(1.0);
        if one(p) && g.ty(q).shape.rank() >= g.ty(p).shape.rank() {
            return q;
        }
        if one(q) && g.ty(p).shape.rank() >= g.ty(q).shape.rank() {
            return p;
        }
        g.emit(Op::Mul, &[p, q], None, sp)
    };
    let neg = |g: &mut Graph, p: NodeId| g.emit(Op::Neg, &[p], None, sp);
    match &node.op {
        Op::Input(_)
        | Op::Const(_)
        | Op::Literal(_)
        | Op::Iota { .. }
        | Op::BatchSize
        | Op::Random { .. }
        | Op::Cmp(_)
        | Op::ArgMax { .. }
        | Op::Floor
        | Op::StopGradient => None,
        // The adjoint of a sum across processes is the sum of the
        // cotangents across them.
        Op::AllReduce => Some(g.emit(Op::AllReduce, &[a], None, sp)),
        // d(−x) = −dx
        Op::Neg => Some(neg(g, a)),
        // d(1/x) = −dx/x² = −dx·out²
        Op::Recip => {
            let sq = mul(g, id, id);
            let m = mul(g, a, sq);
            Some(neg(g, m))
        }
        // d(eˣ) = eˣ·dx
        Op::Exp => Some(mul(g, a, id)),
        // d(ln x) = dx/x
        Op::Log => {
            let r = g.emit(Op::Recip, &[x(0)], None, sp);
            Some(mul(g, a, r))
        }
        // d(√x) = dx/(2√x)
        Op::Sqrt => {
            let r = g.emit(Op::Recip, &[id], None, sp);
            let half = c(g, 0.5);
            let h = mul(g, r, half);
            Some(mul(g, a, h))
        }
        // d|x| = sign(x)·dx, with sign(0) = 0
        Op::Abs => {
            let zero = c(g, 0.0);
            let (one, m1) = (c(g, 1.0), c(g, -1.0));
            let pos = g.emit(Op::Cmp(CmpOp::Gt), &[x(0), zero], None, sp);
            let negv = g.emit(Op::Cmp(CmpOp::Lt), &[x(0), zero], None, sp);
            let s0 = g.emit(Op::Select, &[negv, m1, zero], None, sp);
            let sign = g.emit(Op::Select, &[pos, one, s0], None, sp);
            Some(mul(g, a, sign))
        }
        // d(tanh x) = (1 − tanh²x)·dx
        Op::Tanh => {
            let sq = mul(g, id, id);
            let nsq = neg(g, sq);
            let one = c(g, 1.0);
            let d = g.emit(Op::Add, &[one, nsq], None, sp);
            Some(mul(g, a, d))
        }
        // d(sin x) = cos x·dx
        Op::Sin => {
            let cos = g.emit(Op::Cos, &[x(0)], None, sp);
            Some(mul(g, a, cos))
        }
        // d(cos x) = −sin x·dx
        Op::Cos => {
            let sin = g.emit(Op::Sin, &[x(0)], None, sp);
            let m = mul(g, a, sin);
            Some(neg(g, m))
        }
        // d(σ(x)) = σ(x)(1 − σ(x))·dx
        Op::Sigmoid => {
            let n = neg(g, id);
            let one = c(g, 1.0);
            let om = g.emit(Op::Add, &[one, n], None, sp);
            let d = mul(g, id, om);
            Some(mul(g, a, d))
        }
        // a cast between floats passes the adjoint back in the operand's dtype
        Op::Cast => {
            let from = g.ty(x(0)).clone();
            if !from.dtype.is_float() {
                return None;
            }
            let t = Type::new(from.dtype, g.ty(a).shape.clone());
            Some(g.emit(Op::Cast, &[a], Some(t), sp))
        }
        // d(a + b) = da + db
        Op::Add => Some(a),
        // d(a·b) = b·da + a·db
        Op::Mul => Some(mul(g, a, x(1 - k))),
        // d max(a, b) = [a > b]·da + [a ≤ b]·db
        Op::Max => {
            let gt = g.emit(Op::Cmp(CmpOp::Gt), &[x(0), x(1)], None, sp);
            let zero = c(g, 0.0);
            let ins = if k == 0 { [gt, a, zero] } else { [gt, zero, a] };
            Some(g.emit(Op::Select, &ins, None, sp))
        }
        // d(aᵇ) = b·aᵇ⁻¹·da + ln(a)·aᵇ·db
        Op::Pow => {
            if k == 0 {
                let one = c(g, 1.0);
                let nb = neg(g, one);
                let bm1 = g.emit(Op::Add, &[x(1), nb], None, sp);
                let p = g.emit(Op::Pow, &[x(0), bm1], None, sp);
                let bp = mul(g, x(1), p);
                Some(mul(g, a, bp))
            } else {
                let l = g.emit(Op::Log, &[x(0)], None, sp);
                let lo = mul(g, l, id);
                Some(mul(g, a, lo))
            }
        }
        // d where(c, a, b) = where(c, d, 0) to a and where(c, 0, d) to b
        Op::Select => {
            if k == 0 {
                return None;
            }
            let zero = c(g, 0.0);
            let ins = if k == 1 {
                [x(0), a, zero]
            } else {
                [x(0), zero, a]
            };
            Some(g.emit(Op::Select, &ins, None, sp))
        }
        // d Σ x = the adjoint broadcast back over the summed axes
        Op::ReduceSum { axes } => {
            let xt = g.ty(x(0)).clone();
            let kept = keep_dims(g, a, &xt.shape, *axes, sp);
            Some(g.emit(
                Op::Broadcast,
                &[kept],
                Some(Type::new(g.ty(a).dtype, xt.shape)),
                sp,
            ))
        }
        // d max x = the adjoint shared equally among the maxima
        Op::ReduceMax { axes } => {
            let xt = g.ty(x(0)).clone();
            let m = keep_dims(g, id, &xt.shape, *axes, sp);
            let eq = g.emit(Op::Cmp(CmpOp::Eq), &[x(0), m], None, sp);
            let mask = g.emit(
                Op::Cast,
                &[eq],
                Some(Type::new(xt.dtype, xt.shape.clone())),
                sp,
            );
            let count = g.emit(Op::ReduceSum { axes: *axes }, &[mask], None, sp);
            let share = g.emit(Op::Recip, &[count], None, sp);
            let per = mul(g, a, share);
            let per = keep_dims(g, per, &xt.shape, *axes, sp);
            Some(mul(g, mask, per))
        }
        // broadcasting is undone by the driver's un-broadcast
        Op::Broadcast => Some(a),
        // d reshape(x) = reshape⁻¹(d)
        Op::Reshape => {
            let t = g.ty(x(0)).clone();
            Some(g.emit(
                Op::Reshape,
                &[a],
                Some(Type::new(g.ty(a).dtype, t.shape)),
                sp,
            ))
        }
        // d transpose(x, p) = transpose(d, p⁻¹)
        Op::Transpose { perm } => {
            let mut inv = vec![0u8; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inv[p as usize] = i as u8;
            }
            Some(g.emit(Op::Transpose { perm: inv }, &[a], None, sp))
        }
        // d slice(x) = the adjoint padded back into place with zeros
        Op::Slice {
            axis, start, step, ..
        } => {
            let len = match g.ty(x(0)).shape.0[*axis as usize] {
                Dim::Fixed(n) => n,
                Dim::Batch => panic!("compiler bug: a slice of the batch axis reached autodiff"),
            };
            let op = Op::Pad {
                axis: *axis,
                start: *start,
                step: *step,
                len,
            };
            Some(g.emit(op, &[a], None, sp))
        }
        // d pad(x) = slice(d)
        Op::Pad {
            axis, start, step, ..
        } => {
            let n = match g.ty(x(0)).shape.0[*axis as usize] {
                Dim::Fixed(n) => n,
                Dim::Batch => panic!("compiler bug: a pad of the batch axis"),
            };
            let op = Op::Slice {
                axis: *axis,
                start: *start,
                end: start + (n - 1) * step + 1,
                step: *step,
            };
            Some(g.emit(op, &[a], None, sp))
        }
        // d(A⁻¹) = −A⁻ᵀ·dX·A⁻ᵀ
        Op::Linalg(Linalg::Inv) => {
            let t = Op::Transpose { perm: vec![1, 0] };
            let xt = g.emit(t, &[id], None, sp);
            let l = g.emit(Op::MatMul, &[xt, a], None, sp);
            let r = g.emit(Op::MatMul, &[l, xt], None, sp);
            Some(neg(g, r))
        }
        // d(det A) = dy·det A·A⁻ᵀ
        Op::Linalg(Linalg::Det) => {
            let inv = g.emit(Op::Linalg(Linalg::Inv), &[x(0)], None, sp);
            let t = g.emit(Op::Transpose { perm: vec![1, 0] }, &[inv], None, sp);
            let s = mul(g, a, id);
            Some(mul(g, s, t))
        }
        // x = A⁻¹b: db = A⁻ᵀ·dx to b and −db·xᵀ to A
        Op::Linalg(Linalg::Solve) => {
            let at = g.emit(Op::Transpose { perm: vec![1, 0] }, &[x(0)], None, sp);
            let db = g.emit(Op::Linalg(Linalg::Solve), &[at, a], None, sp);
            if k == 1 {
                return Some(db);
            }
            let n = g.ty(x(0)).shape.0[0];
            let (col, row) = if g.ty(id).shape.rank() == 1 {
                let dtp = g.ty(id).dtype;
                let c = g.emit(
                    Op::Reshape,
                    &[db],
                    Some(Type::new(dtp, Shape(vec![n, Dim::Fixed(1)]))),
                    sp,
                );
                let r = g.emit(
                    Op::Reshape,
                    &[id],
                    Some(Type::new(dtp, Shape(vec![Dim::Fixed(1), n]))),
                    sp,
                );
                (c, r)
            } else {
                (
                    db,
                    g.emit(Op::Transpose { perm: vec![1, 0] }, &[id], None, sp),
                )
            };
            let outer = g.emit(Op::MatMul, &[col, row], None, sp);
            Some(neg(g, outer))
        }
        // Not differentiated (`grad` refuses a path through them).
        Op::Linalg(Linalg::Cholesky | Linalg::EigVals | Linalg::EigVecs) => None,
        // d(A·B) = dC·Bᵀ to A and Aᵀ·dC to B
        Op::MatMul => {
            let t = Op::Transpose { perm: vec![1, 0] };
            if k == 0 {
                let bt = g.emit(t, &[x(1)], None, sp);
                Some(g.emit(Op::MatMul, &[a, bt], None, sp))
            } else {
                let at = g.emit(t, &[x(0)], None, sp);
                Some(g.emit(Op::MatMul, &[at, a], None, sp))
            }
        }
    }
}

/// Reshapes a reduction's result back to its input's rank (size 1 on the
/// reduced axes), ready to broadcast against the input.
fn keep_dims(g: &mut Graph, v: NodeId, in_shape: &Shape, axes: u32, sp: Span) -> NodeId {
    let dims: Vec<Dim> = in_shape
        .0
        .iter()
        .enumerate()
        .map(|(i, d)| {
            if axes & (1 << i) != 0 {
                Dim::Fixed(1)
            } else {
                *d
            }
        })
        .collect();
    let t = Type::new(g.ty(v).dtype, Shape(dims));
    if g.ty(v).shape == t.shape {
        return v;
    }
    g.emit(Op::Reshape, &[v], Some(t), sp)
}

/// Whether values of this dtype carry gradients.
pub fn differentiable(d: DType) -> bool {
    d.is_float()
}
