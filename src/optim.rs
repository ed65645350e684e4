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
//! buffers; `jit` knows no optimizer (a direction that is the gradient
//! itself, plain SGD, folds into gemm's accumulation by pattern, not by
//! name). The penalty form of weight decay is part of the loss, added by
//! the checker where the loss is lowered (`check::run`).
//!
//! Adding an optimizer is one rule function and one entry in [`RULES`],
//! the table the checker reads the `optimizer = name(...)` setting from.

use crate::autodiff::add;
use crate::ir::{DType, Graph, NodeId, Op, Role, Type};
use crate::span::Span;

/// A hyper-parameter of a rule beyond the learning rate (which every rule
/// takes first): its name, its default and the values it may take.
#[derive(Debug)]
pub struct Hyper {
    pub name: &'static str,
    pub default: f64,
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
}

impl PartialEq for Rule {
    fn eq(&self, other: &Rule) -> bool {
        self.name == other.name
    }
}

/// Every optimizer, by name: the checker's table.
pub const RULES: &[&Rule] = &[&SGD];

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

/// Stochastic gradient descent, with Polyak momentum when μ > 0 (d2l §12.6):
/// `v ← μ·v + g`, stepping along `v`; without momentum, along `g`.
pub const SGD: Rule = Rule {
    name: "sgd",
    hypers: &[Hyper {
        name: "momentum",
        default: 0.0,
        valid: |v| (0.0..1.0).contains(&v),
        message: "momentum must be in [0, 1)",
        expected: "expected 0 ≤ momentum < 1",
    }],
    slots: &[VELOCITY],
    keeps: |h| h[0] > 0.0,
    direction: sgd,
};

fn sgd(g: &mut Graph, p: &Param, h: &[f64]) -> Direction {
    match *p.state {
        [v] => momentum(g, p, v, h[0]),
        _ => Direction {
            d: p.grad,
            state: Vec::new(),
        },
    }
}

/// v ← μ·v + g; the step follows the new v.
fn momentum(g: &mut Graph, p: &Param, v: NodeId, mu: f64) -> Direction {
    let mu = g.constant(mu, p.dtype, p.span);
    let mv = add(g, Op::Mul, &[v, mu], None, p.span);
    let nv = add(g, Op::Add, &[mv, p.grad], None, p.span);
    Direction {
        d: nv,
        state: vec![nv],
    }
}

/// The optimizer of a run: its rule and hyper-parameters' values.
#[derive(Clone, Copy, Debug)]
pub struct Chosen<'a> {
    pub rule: &'static Rule,
    pub hypers: &'a [f64],
    /// Decoupled weight decay: λ and the parameters it applies to.
    pub decoupled: Option<(f64, &'a [String])>,
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
/// to the training step `g`: the rule's state as inputs (`velocity w`),
/// the learning rate as the `lr` input, and returns the outputs to add,
/// per parameter its new state then the new parameter.
pub fn apply(
    g: &mut Graph,
    chosen: Chosen,
    params: &[(String, NodeId)],
    state: &[Vec<NodeId>],
    lr: NodeId,
    grads: &[NodeId],
) -> Vec<(String, NodeId)> {
    let slots = chosen.slots();
    let mut updates = Vec::new();
    for (((name, w), gw), st) in params.iter().zip(grads).zip(state) {
        let (dt, sp) = (g.ty(*w).dtype, g.node(*w).span);
        let lr_t = if dt == DType::F32 {
            lr
        } else {
            add(g, Op::Cast, &[lr], Some(Type::scalar(dt)), sp)
        };
        let p = Param {
            w: *w,
            grad: *gw,
            state: st,
            dtype: dt,
            span: sp,
        };
        let dir = (chosen.rule.direction)(g, &p, chosen.hypers);
        for (slot, v) in slots.iter().zip(&dir.state) {
            updates.push((format!("{} {name}", slot.name), *v));
        }
        let step = add(g, Op::Mul, &[lr_t, dir.d], None, sp);
        let nstep = add(g, Op::Neg, &[step], None, sp);
        let decay = chosen
            .decoupled
            .filter(|(_, names)| names.contains(name))
            .map(|(lambda, _)| lambda);
        let kept = match decay {
            Some(lambda) => decoupled(g, *w, lr_t, lambda, sp),
            None => *w,
        };
        let nw = add(g, Op::Add, &[kept, nstep], None, sp);
        updates.push((name.clone(), nw));
    }
    updates
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
    let lrl = add(g, Op::Mul, &[lr, l], None, sp);
    let nlrl = add(g, Op::Neg, &[lrl], None, sp);
    let one = g.constant(1.0, dt, sp);
    let f = add(g, Op::Add, &[one, nlrl], None, sp);
    add(g, Op::Mul, &[w, f], None, sp)
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
