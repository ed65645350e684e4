//! Optimizers as rules, the way `autodiff` treats primitives: each
//! optimizer is one function that builds, in IR ops, the direction a
//! parameter moves along from its gradient and its own state; one driver
//! applies the chosen rule to every parameter, keeps the rule's state as
//! inputs and outputs of the training step, and writes the step itself:
//!
//! ```text
//! d, state′ = rule(w, ∂loss/∂w, state, hyper-parameters)
//! w′ = w − η·d                   (no decay, or decay in the loss as λ/2·‖w‖²)
//! w′ = (1 − ηλ)·w − η·d          (decoupled weight decay)
//! ```
//!
//! The update is ordinary IR, so the passes fuse it into the kernel that
//! produces the gradient and place `w′` and `state′` in their inputs'
//! buffers; `jit` knows no optimizer by name, only by pattern: a
//! direction that is the gradient itself, plain SGD, folds into gemm's
//! accumulation, and a step scaled by a root mean square (Adam, AdamW,
//! RMSprop, as built here) runs as one routine over each row
//! (`jit/update.rs`: a change to how they are built here may stop it
//! matching, which tests/optimizers.rs catches). The penalty form of weight decay is part of the loss, added by
//! the checker where the loss is lowered (`check::run`).
//!
//! Adding an optimizer is one rule function and one entry in [`RULES`],
//! the table the checker reads the `optimizer = name(...)` setting from.

use crate::ir::{DType, Graph, NodeId, Op, Role, Type};
use crate::span::Span;

/// A hyper-parameter of a rule beyond the learning rate (which every rule
/// takes first): its name, its default and the values it may take. A flag
/// (`nesterov = true`) is 1 or 0.
#[derive(Debug)]
pub struct Hyper {
    pub name: &'static str,
    pub default: f64,
    /// Written `true` or `false`.
    pub flag: bool,
    /// Whether a value is allowed.
    pub valid: fn(f64) -> bool,
    /// The diagnostic's message and label for a value that is not.
    pub message: &'static str,
    pub expected: &'static str,
}

/// A tensor of optimizer state per parameter (a parameter's shape and
/// dtype), carried from step to step and saved in checkpoints as
/// `NAME.PARAM`.
#[derive(Debug, PartialEq, Eq)]
pub struct Slot {
    /// The name of the input and output (`velocity w`) and of the
    /// checkpoint tensor (`velocity.w`).
    pub name: &'static str,
    /// What it is, for messages ("the momentum of only some parameters").
    pub what: &'static str,
}

/// What a rule sees of one parameter.
pub struct Param<'a> {
    pub w: NodeId,
    /// ∂loss/∂w.
    pub grad: NodeId,
    /// The steps taken before this one (an i32 scalar: 0 at the first).
    pub step: NodeId,
    /// This parameter's state, in the order of the rule's [`Rule::slots`].
    pub state: &'a [NodeId],
    pub dtype: DType,
    pub span: Span,
}

/// A rule's result for one parameter: the direction `d` of `w ← w − η·d`
/// and the new value of each state tensor, in slot order.
pub struct Direction {
    pub d: NodeId,
    pub state: Vec<NodeId>,
}

impl Direction {
    /// The plain gradient, keeping no state (a rule whose hyper-parameters
    /// keep none: SGD without momentum).
    fn gradient(p: &Param) -> Direction {
        Direction {
            d: p.grad,
            state: Vec::new(),
        }
    }
}

/// An optimizer.
#[derive(Debug)]
pub struct Rule {
    /// Its name in `optimizer = name(lr = ..., ...)`.
    pub name: &'static str,
    /// Its hyper-parameters after `lr`, in positional order.
    pub hypers: &'static [Hyper],
    /// The state it keeps per parameter.
    pub slots: &'static [Slot],
    /// Whether it keeps that state with these hyper-parameters' values
    /// (SGD without momentum keeps none).
    pub keeps: fn(&[f64]) -> bool,
    /// Builds one parameter's direction and new state.
    pub direction: fn(&mut Graph, &Param, &[f64]) -> Direction,
    /// What is wrong with these hyper-parameters together, if anything.
    pub conflict: fn(&[f64]) -> Option<&'static str>,
    /// How its `weight_decay` argument decays: decoupled from the
    /// gradient (AdamW's (1 − ηλ)·w), or coupled as torch's SGD, Adam and
    /// RMSprop do it, g + λw (the gradient of the penalty λ/2·‖w‖²).
    pub decoupled: bool,
}

impl PartialEq for Rule {
    fn eq(&self, other: &Rule) -> bool {
        self.name == other.name
    }
}

/// Every optimizer, by name: the checker's table.
pub const RULES: &[&Rule] = &[&SGD, &ADAM, &ADAMW, &RMSPROP];

/// The rule named `name`.
pub fn rule(name: &str) -> Option<&'static Rule> {
    RULES.iter().copied().find(|r| r.name == name)
}

/// Every state slot any rule keeps (a checkpoint may hold another
/// optimizer's state, which a run of this one ignores).
pub fn all_slots() -> impl Iterator<Item = &'static Slot> {
    RULES.iter().flat_map(|r| r.slots.iter())
}

const VELOCITY: Slot = Slot {
    name: "velocity",
    what: "momentum",
};

/// Stochastic gradient descent, with momentum when μ > 0 (d2l §12.6):
/// `v ← μ·v + g`, stepping along `v`, or with `nesterov` along `g + μ·v`
/// (`torch.optim.SGD`'s form); without momentum, along `g`.
pub const SGD: Rule = Rule {
    name: "sgd",
    hypers: &[
        rate(
            "momentum",
            0.0,
            "momentum must be in [0, 1)",
            "expected 0 ≤ momentum < 1",
        ),
        Hyper {
            name: "nesterov",
            default: 0.0,
            flag: true,
            valid: |_| true,
            message: "nesterov must be true or false",
            expected: "expected true or false",
        },
        weight_decay(0.0),
    ],
    slots: &[VELOCITY],
    keeps: |h| h[0] > 0.0,
    direction: sgd,
    conflict: |h| (h[1] != 0.0 && h[0] == 0.0).then_some("nesterov needs a momentum > 0"),
    decoupled: false,
};

fn sgd(g: &mut Graph, p: &Param, h: &[f64]) -> Direction {
    let [v] = *p.state else {
        return Direction::gradient(p);
    };
    let heavy_ball = momentum(g, p, v, h[0]);
    if h[1] == 0.0 {
        return heavy_ball;
    }
    // Nesterov: g + μ·v′.
    let mu = g.constant(h[0], p.dtype, p.span);
    let mv = g.emit(Op::Mul, &[heavy_ball.d, mu], None, p.span);
    let d = g.emit(Op::Add, &[p.grad, mv], None, p.span);
    Direction {
        d,
        state: heavy_ball.state,
    }
}

/// v ← μ·v + g; the step follows the new v.
fn momentum(g: &mut Graph, p: &Param, v: NodeId, mu: f64) -> Direction {
    let mu = g.constant(mu, p.dtype, p.span);
    let mv = g.emit(Op::Mul, &[v, mu], None, p.span);
    let nv = g.emit(Op::Add, &[mv, p.grad], None, p.span);
    Direction {
        d: nv,
        state: vec![nv],
    }
}

/// A hyper-parameter in [0, 1): a momentum or a decay rate.
const fn rate(
    name: &'static str,
    default: f64,
    message: &'static str,
    expected: &'static str,
) -> Hyper {
    Hyper {
        name,
        default,
        flag: false,
        valid: |v| (0.0..1.0).contains(&v),
        message,
        expected,
    }
}

const BETA1: Hyper = rate(
    "beta1",
    0.9,
    "beta1 must be in [0, 1)",
    "expected 0 ≤ beta1 < 1",
);

const BETA2: Hyper = rate(
    "beta2",
    0.999,
    "beta2 must be in [0, 1)",
    "expected 0 ≤ beta2 < 1",
);

const EPS: Hyper = Hyper {
    name: "eps",
    default: 1e-8,
    flag: false,
    valid: |v| v > 0.0 && v.is_finite(),
    message: "eps must be a positive number",
    expected: "expected eps > 0",
};

const ADAM_M: Slot = Slot {
    name: "adam_m",
    what: "first moment",
};

const ADAM_V: Slot = Slot {
    name: "adam_v",
    what: "second moment",
};

/// Adam (d2l §12.10), `torch.optim.Adam`'s update with bias correction:
/// `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`, stepping along
/// `m̂ / (√v̂ + ε)` with `m̂ = m/(1−β₁ᵗ)`, `v̂ = v/(1−β₂ᵗ)` at step t.
pub const ADAM: Rule = Rule {
    name: "adam",
    hypers: &[BETA1, BETA2, EPS, weight_decay(0.0)],
    slots: &[ADAM_M, ADAM_V],
    keeps: |_| true,
    direction: adam,
    conflict: |_| None,
    decoupled: false,
};

/// AdamW: Adam's direction with decoupled weight decay,
/// `w ← (1 − ηλ)·w − η·m̂/(√v̂ + ε)` (`torch.optim.AdamW`; λ defaults to
/// its 0.01). The decay applies to the weights (parameters of rank ≥ 2)
/// unless a `weight_decay = decoupled(λ, [...])` setting names them.
pub const ADAMW: Rule = Rule {
    name: "adamw",
    hypers: &[BETA1, BETA2, EPS, weight_decay(0.01)],
    slots: &[ADAM_M, ADAM_V],
    keeps: |_| true,
    direction: adam,
    conflict: |_| None,
    decoupled: true,
};

/// λ, a rule's `weight_decay` argument (the checker turns it into the
/// run's weight decay of the weights, [`Rule::decoupled`] saying how).
const fn weight_decay(default: f64) -> Hyper {
    Hyper {
        name: "weight_decay",
        default,
        flag: false,
        valid: |v| v >= 0.0 && v.is_finite(),
        message: "weight_decay must be a number ≥ 0",
        expected: "expected weight_decay ≥ 0",
    }
}

fn adam(g: &mut Graph, p: &Param, h: &[f64]) -> Direction {
    let [m, v] = *p.state else {
        return Direction::gradient(p);
    };
    let (b1, b2, eps) = (h[0], h[1], h[2]);
    let m2 = average(g, p, m, p.grad, b1);
    let gg = g.emit(Op::Mul, &[p.grad, p.grad], None, p.span);
    let v2 = average(g, p, v, gg, b2);
    // m̂ / (√v̂ + ε) = (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε)
    let t = steps_taken(g, p);
    let c1 = bias_correction(g, p, b1, t);
    let c2 = bias_correction(g, p, b2, t);
    let mhat = g.emit(Op::Mul, &[m2, c1], None, p.span);
    let vhat = g.emit(Op::Mul, &[v2, c2], None, p.span);
    let d = scaled_by_rms(g, p, mhat, vhat, eps);
    Direction {
        d,
        state: vec![m2, v2],
    }
}

/// RMSprop (d2l §12.8), `torch.optim.RMSprop`'s update:
/// `v ← αv + (1−α)g²`, stepping along `g / (√v + ε)`.
pub const RMSPROP: Rule = Rule {
    name: "rmsprop",
    hypers: &[
        rate(
            "alpha",
            0.99,
            "alpha must be in [0, 1)",
            "expected 0 ≤ alpha < 1",
        ),
        EPS,
        weight_decay(0.0),
    ],
    slots: &[Slot {
        name: "rmsprop_v",
        what: "mean square",
    }],
    keeps: |_| true,
    direction: rmsprop,
    conflict: |_| None,
    decoupled: false,
};

fn rmsprop(g: &mut Graph, p: &Param, h: &[f64]) -> Direction {
    let [v] = *p.state else {
        return Direction::gradient(p);
    };
    let gg = g.emit(Op::Mul, &[p.grad, p.grad], None, p.span);
    let v2 = average(g, p, v, gg, h[0]);
    let d = scaled_by_rms(g, p, p.grad, v2, h[1]);
    Direction { d, state: vec![v2] }
}

/// The moving average `β·s + (1 − β)·x`.
fn average(g: &mut Graph, p: &Param, s: NodeId, x: NodeId, beta: f64) -> NodeId {
    let b = g.constant(beta, p.dtype, p.span);
    let c = g.constant(1.0 - beta, p.dtype, p.span);
    let bs = g.emit(Op::Mul, &[s, b], None, p.span);
    let cx = g.emit(Op::Mul, &[x, c], None, p.span);
    g.emit(Op::Add, &[bs, cx], None, p.span)
}

/// `x / (√s + ε)`.
fn scaled_by_rms(g: &mut Graph, p: &Param, x: NodeId, s: NodeId, eps: f64) -> NodeId {
    let e = g.constant(eps, p.dtype, p.span);
    let root = g.emit(Op::Sqrt, &[s], None, p.span);
    let den = g.emit(Op::Add, &[root, e], None, p.span);
    let inv = g.emit(Op::Recip, &[den], None, p.span);
    g.emit(Op::Mul, &[x, inv], None, p.span)
}

/// t, the number of this step (1 at the first), as a scalar of the
/// parameter's dtype.
fn steps_taken(g: &mut Graph, p: &Param) -> NodeId {
    let s = g.emit(Op::Cast, &[p.step], Some(Type::scalar(p.dtype)), p.span);
    let one = g.constant(1.0, p.dtype, p.span);
    g.emit(Op::Add, &[s, one], None, p.span)
}

/// `1 / (1 − βᵗ)`, a scalar.
fn bias_correction(g: &mut Graph, p: &Param, beta: f64, t: NodeId) -> NodeId {
    let b = g.constant(beta, p.dtype, p.span);
    let bt = g.emit(Op::Pow, &[b, t], None, p.span);
    let nbt = g.emit(Op::Neg, &[bt], None, p.span);
    let one = g.constant(1.0, p.dtype, p.span);
    let c = g.emit(Op::Add, &[one, nbt], None, p.span);
    g.emit(Op::Recip, &[c], None, p.span)
}

/// The optimizer of a run: its rule and hyper-parameters' values.
#[derive(Clone, Copy, Debug)]
pub struct Chosen<'a> {
    pub rule: &'static Rule,
    pub hypers: &'a [f64],
    /// Decoupled weight decay: λ and the parameters it applies to.
    pub decoupled: Option<(f64, &'a [String])>,
    /// Clip the gradients to this global norm (`clip_grad_norm`).
    pub clip: Option<f64>,
}

impl Chosen<'_> {
    /// The state slots this run keeps per parameter.
    pub fn slots(&self) -> &'static [Slot] {
        if (self.rule.keeps)(self.hypers) {
            self.rule.slots
        } else {
            &[]
        }
    }
}

/// Adds the update of every parameter `(name, node)` with gradient `grads`
/// to the training step `g`, whose `lr` input is the learning rate and
/// `step` input the steps taken, with the rule's state inputs `state`
/// (`velocity w`); returns the outputs to add, per parameter its new
/// state then the new parameter.
pub fn apply(
    g: &mut Graph,
    chosen: Chosen,
    params: &[(String, NodeId)],
    state: &[Vec<NodeId>],
    (lr, step): (NodeId, NodeId),
    grads: &[NodeId],
) -> Vec<(String, NodeId)> {
    let slots = chosen.slots();
    let clipped;
    let grads = match chosen.clip {
        Some(max) => {
            clipped = clip_global_norm(g, grads, max);
            &clipped[..]
        }
        None => grads,
    };
    let mut updates = Vec::new();
    for (((name, w), gw), st) in params.iter().zip(grads).zip(state) {
        let (dt, sp) = (g.ty(*w).dtype, g.node(*w).span);
        let lr_t = if dt == DType::F32 {
            lr
        } else {
            g.emit(Op::Cast, &[lr], Some(Type::scalar(dt)), sp)
        };
        let p = Param {
            w: *w,
            grad: *gw,
            step,
            state: st,
            dtype: dt,
            span: sp,
        };
        let dir = (chosen.rule.direction)(g, &p, chosen.hypers);
        for (slot, v) in slots.iter().zip(&dir.state) {
            updates.push((format!("{} {name}", slot.name), *v));
        }
        let step = g.emit(Op::Mul, &[lr_t, dir.d], None, sp);
        let nstep = g.emit(Op::Neg, &[step], None, sp);
        let decay = chosen
            .decoupled
            .filter(|(_, names)| names.contains(name))
            .map(|(lambda, _)| lambda);
        let kept = match decay {
            Some(lambda) => decoupled(g, *w, lr_t, lambda, sp),
            None => *w,
        };
        let nw = g.emit(Op::Add, &[kept, nstep], None, sp);
        updates.push((name.clone(), nw));
    }
    updates
}

/// The gradients scaled together so that their global norm is at most
/// `max`: g·min(1, max/(‖g‖ + 10⁻⁶)), ‖g‖ over every parameter's gradient
/// (`torch.nn.utils.clip_grad_norm_`). Below the threshold the scale is 1.
fn clip_global_norm(g: &mut Graph, grads: &[NodeId], max: f64) -> Vec<NodeId> {
    let Some(&first) = grads.first() else {
        return Vec::new();
    };
    let sp = g.node(first).span;
    // Σ‖gₚ‖², in f32 or f64 as the first gradient is.
    let dt = g.ty(first).dtype;
    let sums: Vec<NodeId> = grads
        .iter()
        .map(|&gp| {
            let sq = g.emit(Op::Mul, &[gp, gp], None, sp);
            let r = g.ty(sq).shape.rank();
            let s = g.emit(
                Op::ReduceSum {
                    axes: (1u32 << r) - 1,
                },
                &[sq],
                None,
                sp,
            );
            if g.ty(s).dtype == dt {
                s
            } else {
                g.emit(Op::Cast, &[s], Some(Type::scalar(dt)), sp)
            }
        })
        .collect();
    let total = sums[1..]
        .iter()
        .fold(sums[0], |t, s| g.emit(Op::Add, &[t, *s], None, sp));
    let norm = g.emit(Op::Sqrt, &[total], None, sp);
    let eps = g.constant(1e-6, dt, sp);
    let den = g.emit(Op::Add, &[norm, eps], None, sp);
    let inv = g.emit(Op::Recip, &[den], None, sp);
    let m = g.constant(max, dt, sp);
    let coef = g.emit(Op::Mul, &[m, inv], None, sp);
    let one = g.constant(1.0, dt, sp);
    let below = g.emit(Op::Cmp(crate::ir::CmpOp::Lt), &[coef, one], None, sp);
    let scale = g.emit(Op::Select, &[below, coef, one], None, sp);
    grads
        .iter()
        .map(|&gp| {
            let s = if g.ty(gp).dtype == dt {
                scale
            } else {
                g.emit(Op::Cast, &[scale], Some(Type::scalar(g.ty(gp).dtype)), sp)
            };
            g.emit(Op::Mul, &[gp, s], None, sp)
        })
        .collect()
}

/// The state inputs of every parameter, in slot order per parameter.
pub fn state_inputs(
    g: &mut Graph,
    chosen: Chosen,
    params: &[(String, NodeId)],
) -> Vec<Vec<NodeId>> {
    let slots = chosen.slots();
    params
        .iter()
        .map(|(name, p)| {
            slots
                .iter()
                .map(|s| {
                    let t = g.ty(*p).clone();
                    g.input(name, Role::State(s.name), t, Span::default())
                })
                .collect()
        })
        .collect()
}

/// Decoupled weight decay's (1 − ηλ)·w.
fn decoupled(g: &mut Graph, w: NodeId, lr: NodeId, lambda: f64, sp: Span) -> NodeId {
    let dt = g.ty(w).dtype;
    let l = g.constant(lambda, dt, sp);
    let lrl = g.emit(Op::Mul, &[lr, l], None, sp);
    let nlrl = g.emit(Op::Neg, &[lrl], None, sp);
    let one = g.constant(1.0, dt, sp);
    let f = g.emit(Op::Add, &[one, nlrl], None, sp);
    g.emit(Op::Mul, &[w, f], None, sp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_consistent() {
        for (i, r) in RULES.iter().enumerate() {
            assert!(RULES[..i].iter().all(|o| o.name != r.name), "{}", r.name);
            assert_eq!(rule(r.name), Some(*r));
            for h in r.hypers {
                assert!((h.valid)(h.default), "{}'s {} default", r.name, h.name);
                assert_ne!(h.name, "lr", "lr comes first in every rule");
            }
        }
        // A checkpoint names state by slot: no two slots share a name
        // unless they are the same slot.
        let slots: Vec<&Slot> = all_slots().collect();
        for (i, a) in slots.iter().enumerate() {
            for b in &slots[..i] {
                assert!(a.name != b.name || a == b, "{}", a.name);
                assert_ne!(a.name, "param");
            }
        }
    }
}
