//! Learning-rate schedules, computed inside the compiled training step.
//!
//! A schedule is a few scalar IR ops from the run's base learning rate
//! (the `lr` input) and two counters the step already gets: `step`, the
//! steps taken before this one, and `epoch`, the epochs completed before
//! this step's. Nothing is recompiled and the host computes nothing per
//! step; the step outputs the rate it used (`lr`), which the epoch reports
//! read.
//!
//! | schedule | the rate of a step in epoch e (from 0), after s steps |
//! |---|---|
//! | `constant` | η |
//! | `step(every = N, gamma = γ)` | η·γ^⌊e/N⌋ (`torch.optim.lr_scheduler.StepLR`) |
//! | `cosine(epochs = T, min_lr = m)` | m + (η − m)·(1 + cos(π·min(e, T)/T))/2 (`CosineAnnealingLR`, held at m after T; T is the train block's `epochs` unless given, not `--epochs`: a run stopped and resumed follows one curve) |
//! | `warmup(N, then = S)` | S's rate · min(1, (s + 1)/N): linear from η/N to η over the first N steps |

use crate::ir::{CmpOp, DType, Graph, NodeId, Op, Type};
use crate::span::Span;

/// A learning-rate schedule (`lr_schedule = ...`).
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    Constant,
    /// Multiply by `gamma` every `every` epochs.
    Step {
        every: u64,
        gamma: f64,
    },
    /// Half a cosine from the base rate down to `min_lr` over `epochs`.
    Cosine {
        epochs: u64,
        min_lr: f64,
    },
    /// A linear ramp over the first `steps` steps, then `then`.
    Warmup {
        steps: u64,
        then: Box<Schedule>,
    },
}

impl Schedule {
    /// Whether the rate never changes (no schedule ops in the step).
    pub fn is_constant(&self) -> bool {
        *self == Schedule::Constant
    }

    /// The rate a cosine decays to, if there is one.
    pub fn min_lr(&self) -> Option<f64> {
        match self {
            Schedule::Cosine { min_lr, .. } => Some(*min_lr),
            Schedule::Warmup { then, .. } => then.min_lr(),
            Schedule::Constant | Schedule::Step { .. } => None,
        }
    }

    /// The rate at the step after `step` steps in epoch `epoch` (counted
    /// from 0), as f32 ops of `g` at `span`, from the base rate `lr` (an
    /// f32 scalar) and the i32 scalar counters `step` and `epoch`.
    pub fn build(
        &self,
        g: &mut Graph,
        lr: NodeId,
        (step, epoch): (NodeId, NodeId),
        span: Span,
    ) -> NodeId {
        let mut b = Builder { g, span };
        b.rate(self, lr, step, epoch)
    }
}

struct Builder<'g> {
    g: &'g mut Graph,
    span: Span,
}

impl Builder<'_> {
    fn op(&mut self, op: Op, ins: &[NodeId]) -> NodeId {
        let ty = match op {
            Op::Cast => Some(Type::scalar(DType::F32)),
            _ => None,
        };
        self.g.emit(op, ins, ty, self.span)
    }

    fn c(&mut self, v: f64) -> NodeId {
        self.g.constant(v, DType::F32, self.span)
    }

    fn mul(&mut self, a: NodeId, b: NodeId) -> NodeId {
        self.op(Op::Mul, &[a, b])
    }

    fn add(&mut self, a: NodeId, b: NodeId) -> NodeId {
        self.op(Op::Add, &[a, b])
    }

    fn min(&mut self, a: NodeId, b: NodeId) -> NodeId {
        let lt = self.op(Op::Cmp(CmpOp::Lt), &[a, b]);
        self.op(Op::Select, &[lt, a, b])
    }

    /// ⌊k/n⌋ of a whole number k ≥ 0, exactly: k + ½ keeps the quotient
    /// at least ½/n away from a whole number, so f32 rounding cannot carry
    /// it across one (for k up to 2²⁰).
    fn quotient(&mut self, k: NodeId, n: u64) -> NodeId {
        let half = self.c(0.5);
        let kh = self.add(k, half);
        let inv = self.c(1.0 / n as f64);
        let q = self.mul(kh, inv);
        self.op(Op::Floor, &[q])
    }

    fn rate(&mut self, s: &Schedule, lr: NodeId, step: NodeId, epoch: NodeId) -> NodeId {
        match s {
            Schedule::Constant => lr,
            Schedule::Step { every, gamma } => {
                let e = self.op(Op::Cast, &[epoch]);
                let k = self.quotient(e, *every);
                let gm = self.c(*gamma);
                let f = self.op(Op::Pow, &[gm, k]);
                self.mul(lr, f)
            }
            Schedule::Cosine { epochs, min_lr } => {
                let epochs = *epochs as f64;
                let e = self.op(Op::Cast, &[epoch]);
                let t = self.c(epochs);
                let e = self.min(e, t);
                let w = self.c(std::f64::consts::PI / epochs);
                let angle = self.mul(e, w);
                let cos = self.op(Op::Cos, &[angle]);
                // (1 + cos)/2 of the way from min_lr to lr.
                let half = self.c(0.5);
                let hc = self.mul(cos, half);
                let f = self.add(hc, half);
                let m = self.c(*min_lr);
                let nm = self.op(Op::Neg, &[m]);
                let span = self.add(lr, nm);
                let above = self.mul(span, f);
                self.add(m, above)
            }
            Schedule::Warmup { steps, then } => {
                let inner = self.rate(then, lr, step, epoch);
                let s = self.op(Op::Cast, &[step]);
                let one = self.c(1.0);
                let s1 = self.add(s, one);
                let inv = self.c(1.0 / *steps as f64);
                let frac = self.mul(s1, inv);
                let f = self.min(frac, one);
                self.mul(inner, f)
            }
        }
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schedule::Constant => write!(f, "constant"),
            Schedule::Step { every, gamma } => write!(f, "step(every = {every}, gamma = {gamma})"),
            Schedule::Cosine { epochs, min_lr } => {
                write!(f, "cosine(epochs = {epochs}, min_lr = {min_lr})")
            }
            Schedule::Warmup { steps, then } => write!(f, "warmup({steps}, then = {then})"),
        }
    }
}
