//! Optimizer updates as one fused pass over a row: the JIT recognizes, by
//! the shape of the IR and not by an optimizer's name, the update that
//! scales a step by a root-mean-square,
//!
//! ```text
//! v′ = v·β₂ + (g·g)·δ₂                      (the mean square)
//! m′ = m·β₁ + g·δ₁                          (the mean, Adam's only)
//! w′ = w·f + −(η·((m′·c₁) · 1/(√(v′·c₂) + ε)))   (RMSprop: g for m′·c₁)
//! ```
//!
//! which `optim.rs` builds for Adam, AdamW and RMSprop (c₁, c₂ the bias
//! corrections, f AdamW's decay factor; each optional), and runs it in
//! one Rust routine over the row (`exec::dlc_rms_step`) instead of the
//! Cranelift chain: Cranelift emits no 256-bit vectors, and the square
//! root and the division, which cost the same per instruction on 4 lanes
//! as on 8 here, are most of the update's time. The routine performs the
//! same IEEE operations on the same operands in the same order (additions
//! and products, whose operand order does not change an IEEE result), so
//! it writes what the chain would have, bit for bit; the `update` pass
//! switches it off (`--no-pass update`), and the tests compare the two.

use crate::ir::{DType, Dim, Graph, NodeId, Op};

/// One recognized update inside a row group: its member nodes (a run of
/// the group's members, in order) and what the routine reads and writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RmsStep {
    /// Every member the routine replaces, in the group's order.
    pub nodes: Vec<NodeId>,
    /// Read along the row: the gradient, the mean square, the parameter,
    /// and the mean (Adam).
    pub g: NodeId,
    pub v: NodeId,
    pub w: NodeId,
    pub m: Option<NodeId>,
    /// One value each (rank-0 tensors, constants included).
    pub beta2: NodeId,
    pub delta2: NodeId,
    pub eps: NodeId,
    pub lr: NodeId,
    pub c2: Option<NodeId>,
    /// The mean's β₁, δ₁ and bias correction (Adam).
    pub beta1: Option<NodeId>,
    pub delta1: Option<NodeId>,
    pub c1: Option<NodeId>,
    /// The parameter's decay factor (AdamW's 1 − ηλ).
    pub decay: Option<NodeId>,
    /// Written: the new mean square, the new mean (Adam), the new parameter.
    pub v_out: NodeId,
    pub m_out: Option<NodeId>,
    pub w_out: NodeId,
}

impl RmsStep {
    /// Which optimizer's form this is, for listings.
    pub fn describe(&self) -> &'static str {
        match (self.m_out.is_some(), self.decay.is_some()) {
            (true, true) => "adam with decoupled decay",
            (true, false) => "adam",
            (false, true) => "rmsprop with decoupled decay",
            (false, false) => "rmsprop",
        }
    }
}

/// The updates among a row group's `members` (in the group's order) that
/// run as one routine: each a contiguous run of members, f32, every
/// member of it elementwise on the update's shape (a matrix, at least two
/// columns wide), none of them read outside the run but the new mean
/// square, mean and parameter.
pub fn find(
    g: &Graph,
    members: &[NodeId],
    readers: &[Vec<NodeId>],
    output: &[bool],
) -> Vec<RmsStep> {
    let pos: std::collections::HashMap<NodeId, usize> =
        members.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut found: Vec<RmsStep> = Vec::new();
    for (end, root) in members.iter().enumerate() {
        let m = Matcher {
            g,
            pos: &pos,
            shape: &g.ty(*root).shape.0,
            nodes: std::cell::RefCell::new(Vec::new()),
        };
        let wide = matches!(m.shape.last(), Some(Dim::Fixed(n)) if *n >= 2) && m.shape.len() >= 2;
        let Some(step) = wide.then(|| m.step(*root)).flatten() else {
            continue;
        };
        let mut at: Vec<usize> = step.nodes.iter().map(|id| pos[id]).collect();
        at.sort_unstable();
        // The matched members precede the root (the group is in
        // topological order), so they fit before it.
        let Some(start) = (end + 1).checked_sub(at.len()) else {
            continue;
        };
        let contiguous = at.iter().enumerate().all(|(k, p)| *p == start + k);
        let after = found
            .last()
            .is_none_or(|f| pos[f.nodes.last().unwrap_or(root)] < start);
        // The leaves that are members come before the run.
        let leaves = [
            Some(step.g),
            Some(step.v),
            Some(step.w),
            step.m,
            Some(step.beta2),
            Some(step.delta2),
            Some(step.eps),
            Some(step.lr),
            step.c2,
            step.beta1,
            step.delta1,
            step.c1,
            step.decay,
        ];
        let leaves_before = leaves
            .iter()
            .flatten()
            .all(|x| pos.get(x).is_none_or(|p| *p < start));
        let written = [Some(step.v_out), step.m_out, Some(step.w_out)];
        let private = step.nodes.iter().all(|id| {
            written.contains(&Some(*id))
                || (!output[id.index()]
                    && readers[id.index()].iter().all(|r| step.nodes.contains(r)))
        });
        if contiguous && after && leaves_before && private {
            let mut step = step;
            step.nodes = at.iter().map(|p| members[*p]).collect();
            found.push(step);
        }
    }
    found
}

/// Matching one candidate update, from its new parameter down.
struct Matcher<'a> {
    g: &'a Graph,
    pos: &'a std::collections::HashMap<NodeId, usize>,
    /// The update's shape: every member's and every row operand's.
    shape: &'a [Dim],
    /// The members matched so far.
    nodes: std::cell::RefCell<Vec<NodeId>>,
}

impl Matcher<'_> {
    /// `id`'s operands when it is a member, f32, of the update's shape,
    /// with op `op`; it then counts as matched.
    fn op(&self, id: NodeId, op: &Op) -> Option<Vec<NodeId>> {
        let n = self.g.node(id);
        let fits = self.pos.contains_key(&id)
            && n.op == *op
            && n.ty.dtype == DType::F32
            && n.ty.shape.0 == self.shape
            && !self.nodes.borrow().contains(&id);
        fits.then(|| {
            self.nodes.borrow_mut().push(id);
            n.inputs.clone()
        })
    }

    /// A binary member: its operands in either order, when `f` accepts
    /// them (an addition or a product: the order changes no result).
    fn either<T>(&self, id: NodeId, op: &Op, f: &dyn Fn(NodeId, NodeId) -> Option<T>) -> Option<T> {
        let mark = self.nodes.borrow().len();
        let ins = self.op(id, op)?;
        let [a, b] = ins[..] else {
            self.nodes.borrow_mut().truncate(mark);
            return None;
        };
        for (x, y) in [(a, b), (b, a)] {
            let inner = self.nodes.borrow().len();
            if let Some(t) = f(x, y) {
                return Some(t);
            }
            self.nodes.borrow_mut().truncate(inner);
        }
        self.nodes.borrow_mut().truncate(mark);
        None
    }

    /// A value read along the row: of the update's shape, f32, not a
    /// member matched as part of the update.
    fn row(&self, id: NodeId) -> Option<NodeId> {
        let t = self.g.ty(id);
        (t.dtype == DType::F32 && t.shape.0 == self.shape && !self.nodes.borrow().contains(&id))
            .then_some(id)
    }

    /// A row value the group does not compute: the parameter and its
    /// state are the step's inputs.
    fn given(&self, id: NodeId) -> Option<NodeId> {
        self.row(id).filter(|x| !self.pos.contains_key(x))
    }

    /// One value for the whole update: an f32 of one element.
    fn one(&self, id: NodeId) -> Option<NodeId> {
        let t = self.g.ty(id);
        (t.dtype == DType::F32 && t.shape.0.iter().all(|d| *d == Dim::Fixed(1))).then_some(id)
    }

    /// `x·s`, s one value: (x, s), x as `x` matches it.
    fn scaled(&self, id: NodeId, x: &dyn Fn(NodeId) -> Option<NodeId>) -> Option<(NodeId, NodeId)> {
        self.either(id, &Op::Mul, &|a, b| Some((x(a)?, self.one(b)?)))
    }

    /// A moving average `s·β + x·δ` of the given row value s: (s, x, β,
    /// δ), x as `x` matches it.
    fn average(
        &self,
        id: NodeId,
        x: &dyn Fn(NodeId) -> Option<NodeId>,
    ) -> Option<(NodeId, NodeId, NodeId, NodeId)> {
        self.either(id, &Op::Add, &|a, b| {
            let (s, beta) = self.scaled(a, &|s| self.given(s))?;
            let (x, delta) = self.scaled(b, x)?;
            Some((s, x, beta, delta))
        })
    }

    /// `v′·c` (a bias correction) or `v′` alone, v′ a moving average of
    /// the given value v: (v, x, β, δ, c, v′), x as `x` matches it.
    #[allow(clippy::type_complexity)]
    fn corrected(
        &self,
        id: NodeId,
        x: &dyn Fn(NodeId) -> Option<NodeId>,
    ) -> Option<((NodeId, NodeId, NodeId, NodeId), Option<NodeId>, NodeId)> {
        match self.g.node(id).op {
            Op::Mul => self.either(id, &Op::Mul, &|a, c| {
                let c = self.one(c)?;
                Some((self.average(a, x)?, Some(c), a))
            }),
            _ => Some((self.average(id, x)?, None, id)),
        }
    }

    /// `w·f + −(η·d)` or `w + −(η·d)`.
    fn step(&self, root: NodeId) -> Option<RmsStep> {
        self.either(root, &Op::Add, &|kept, moved| {
            let (w, decay) = match self.given(kept) {
                Some(w) => (w, None),
                None => {
                    let (w, f) = self.scaled(kept, &|w| self.given(w))?;
                    (w, Some(f))
                }
            };
            let [st] = self.op(moved, &Op::Neg)?[..] else {
                return None;
            };
            let (d, lr) = self.scaled(st, &Some)?;
            let mut s = self.direction(d)?;
            s.w = w;
            s.lr = lr;
            s.decay = decay;
            s.w_out = root;
            Some(s)
        })
    }

    /// `x · 1/(√s + ε)`, x the gradient or Adam's corrected mean.
    fn direction(&self, d: NodeId) -> Option<RmsStep> {
        self.either(d, &Op::Mul, &|x, inv| {
            let [den] = self.op(inv, &Op::Recip)?[..] else {
                return None;
            };
            let (root, eps) = self.either(den, &Op::Add, &|r, e| Some((r, self.one(e)?)))?;
            let [s] = self.op(root, &Op::Sqrt)?[..] else {
                return None;
            };
            // √(v′·c₂) or √v′, v′ = v·β₂ + (g·g)·δ₂.
            let square = |gg: NodeId| {
                let [g, g2] = self.op(gg, &Op::Mul)?[..] else {
                    return None;
                };
                self.row(g).filter(|g| *g == g2)
            };
            let ((v, g, beta2, delta2), c2, v2) = self.corrected(s, &square)?;
            // `step`, the caller, fills in w, lr, decay and w_out.
            let mut step = RmsStep {
                nodes: Vec::new(),
                g,
                v,
                w: g,
                m: None,
                beta2,
                delta2,
                eps,
                lr: eps,
                c2,
                beta1: None,
                delta1: None,
                c1: None,
                decay: None,
                v_out: v2,
                m_out: None,
                w_out: d,
            };
            if x != g {
                // Adam: (m·β₁ + g·δ₁)·c₁, or without the correction.
                let ((m, g1, beta1, delta1), c1, m2) = self.corrected(x, &|g1| self.row(g1))?;
                if g1 != g {
                    return None;
                }
                (step.m, step.beta1, step.delta1, step.c1, step.m_out) =
                    (Some(m), Some(beta1), Some(delta1), c1, Some(m2));
            }
            step.nodes = self.nodes.borrow().clone();
            Some(step)
        })
    }
}
