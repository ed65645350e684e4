//! Expressions to IR: name resolution, dtype promotion, and the operators.
//!
//! A [`Lowerer`] adds nodes for one function (a run's training step, its
//! eval function, or a REPL session) to one [`Graph`]. Every error becomes a
//! diagnostic and the failing expression yields `None`, so one error does
//! not cascade into others.

use std::collections::HashMap;

use crate::diag::{Code, Diagnostic};
use crate::ir::{DType, Graph, IrError, IrErrorKind, NodeId, Op, Type};
use crate::span::Span;
use crate::syntax::ast;

/// The deepest chain of user-function calls (a recursive `fn` stops here).
pub const MAX_CALL_DEPTH: usize = 32;

/// The most statements that inlining `fn` calls may lower in one graph.
pub const MAX_INLINED: usize = 1_000_000;

/// A tensor value during lowering. `weak` marks a bare number literal: it
/// takes the dtype of the tensor it meets (`x / 255` stays f32), as JAX's
/// weakly typed Python scalars do.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Val {
    pub node: NodeId,
    pub weak: bool,
}

/// Whether dropout is active.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

/// Top-level definitions visible from every expression.
pub struct Globals<'a> {
    pub fns: HashMap<&'a str, &'a ast::FnDecl>,
    pub lets: HashMap<&'a str, &'a ast::Let>,
    /// Names that exist but are not tensors (models, data, runs), for
    /// better messages.
    pub other: HashMap<&'a str, &'static str>,
}

pub struct Lowerer<'a, 'g> {
    pub g: &'g mut Graph,
    pub globals: &'a Globals<'a>,
    pub diags: Vec<Diagnostic>,
    pub(super) scopes: Vec<HashMap<String, Val>>,
    /// Top-level lets already lowered into this graph.
    pub(super) global_cache: HashMap<String, Option<Val>>,
    pub(super) in_progress: Vec<String>,
    pub mode: Mode,
    /// The step counter input (for dropout and random tensors).
    pub step: Option<NodeId>,
    pub(super) next_stream: u32,
    pub(super) call_depth: usize,
    /// Statements lowered inside inlined `fn` bodies so far: inlining
    /// doubles per level when each function calls the last twice, so the
    /// depth limit alone does not bound the work.
    pub(super) inlined: usize,
    /// In a run's loss: the label input and the data's class count, so
    /// that `cross_entropy` and `binary_cross_entropy` can check the
    /// model's output width against it.
    pub classes: Option<LabelClasses>,
}

/// The label input of a run with class labels, its class count, and where
/// the model declares its output type (for width diagnostics).
#[derive(Clone, Copy, Debug)]
pub struct LabelClasses {
    pub label: NodeId,
    pub classes: u64,
    pub output_span: Span,
}

impl<'a, 'g> Lowerer<'a, 'g> {
    pub fn new(g: &'g mut Graph, globals: &'a Globals<'a>, mode: Mode) -> Self {
        Lowerer {
            g,
            globals,
            diags: Vec::new(),
            scopes: vec![HashMap::new()],
            global_cache: HashMap::new(),
            in_progress: Vec::new(),
            mode,
            step: None,
            next_stream: 0,
            call_depth: 0,
            inlined: 0,
            classes: None,
        }
    }

    pub fn error(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// A shape error about the value at `span`, of type `ty`.
    pub fn shape_error(&mut self, message: impl Into<String>, span: Span, ty: &Type) {
        self.error(
            Diagnostic::new(Code::ShapeMismatch, message).label(span, format!("this is {ty}")),
        );
    }

    pub fn bind(&mut self, name: &str, v: Val) {
        if let Some(s) = self.scopes.last_mut() {
            s.insert(name.to_string(), v);
        }
    }

    pub fn push_scope(&mut self) {
        self.scopes.push(HashMap::new());
    }

    pub fn pop_scope(&mut self) {
        self.scopes.pop();
    }

    pub fn ty(&self, v: Val) -> &Type {
        self.g.ty(v.node)
    }

    pub fn fresh_stream(&mut self) -> u32 {
        self.next_stream += 1;
        self.next_stream - 1
    }

    /// Adds a primitive, turning a rule violation into a diagnostic that
    /// labels each operand with its type.
    pub fn prim(
        &mut self,
        op: Op,
        inputs: &[NodeId],
        out: Option<Type>,
        span: Span,
        operand_spans: &[Span],
    ) -> Option<NodeId> {
        // Fold negation and reciprocal of a scalar constant (x / 2 becomes
        // x · 0.5); the optimizer folds the rest.
        if let ([x], Op::Neg | Op::Recip) = (inputs, &op) {
            if let Some(c) = self.g.const_value(*x) {
                let v = if op == Op::Neg { -c } else { 1.0 / c };
                let dt = self.g.ty(*x).dtype;
                if dt.is_float() {
                    return Some(self.constant(v, dt, span));
                }
            }
        }
        match self.g.add(op, inputs, out, span) {
            Ok(id) => Some(id),
            Err(e) => {
                let d = self.ir_diag(&e, span, inputs, operand_spans);
                self.error(d);
                None
            }
        }
    }

    fn ir_diag(&self, e: &IrError, span: Span, inputs: &[NodeId], spans: &[Span]) -> Diagnostic {
        let code = match e.kind {
            IrErrorKind::Shape => Code::ShapeMismatch,
            IrErrorKind::DType => Code::DTypeMismatch,
            IrErrorKind::Axis => Code::BadAxis,
        };
        let mut d = Diagnostic::new(code, e.message.clone());
        if spans.is_empty() || spans.len() != inputs.len() {
            d = d.label(span, "in this expression");
        } else {
            for (s, id) in spans.iter().zip(inputs) {
                d = d.label(*s, format!("this is {}", self.g.ty(*id)));
            }
        }
        d
    }

    /// The values of `node` when they are known at compile time: a tensor
    /// literal, a constant, or a broadcast or reshape of one.
    pub fn known_values(&self, node: NodeId) -> Option<Vec<f64>> {
        let n = self.g.node(node);
        match &n.op {
            Op::Literal(i) => self.g.literals.get(*i as usize).cloned(),
            Op::Const(_) => self.g.const_value(node).map(|v| vec![v]),
            Op::Broadcast | Op::Reshape => self.known_values(*n.inputs.first()?),
            _ => None,
        }
    }

    /// A scalar constant.
    pub fn constant(&mut self, v: f64, dtype: DType, span: Span) -> NodeId {
        self.g.constant(v, dtype, span)
    }

    /// Converts `v` to `dtype` (a weak constant is re-made, not cast).
    pub fn convert(&mut self, v: Val, dtype: DType, span: Span) -> Option<NodeId> {
        let t = self.ty(v).clone();
        if t.dtype == dtype {
            return Some(v.node);
        }
        if let Some(c) = self.g.const_value(v.node) {
            return Some(self.constant(c, dtype, span));
        }
        self.prim(
            Op::Cast,
            &[v.node],
            Some(Type::new(dtype, t.shape)),
            span,
            &[],
        )
    }

    /// Promotes two operands to a common dtype (NumPy/PyTorch rules; weak
    /// literals adopt the other side's dtype; bool never mixes).
    /// [`Self::promote`] of two strongly typed nodes.
    pub fn promote_nodes(
        &mut self,
        what: &str,
        (a, sa): (NodeId, Span),
        (b, sb): (NodeId, Span),
        span: Span,
    ) -> Option<(NodeId, NodeId, DType)> {
        self.promote(what, Self::strong(a), Self::strong(b), span, sa, sb)
    }

    pub fn promote(
        &mut self,
        what: &str,
        a: Val,
        b: Val,
        span: Span,
        sa: Span,
        sb: Span,
    ) -> Option<(NodeId, NodeId, DType)> {
        let (da, db) = (self.ty(a).dtype, self.ty(b).dtype);
        // A weak literal adopts the other side's dtype, except that a float
        // literal meeting an integer tensor makes it float (`ints + 1.5`).
        let weak_into = |lit: DType, other: DType| {
            if lit.is_float() && other == DType::I32 {
                DType::F32
            } else {
                other
            }
        };
        let no_bool = da != DType::Bool && db != DType::Bool;
        let target = if da == db {
            da
        } else if a.weak && !b.weak && no_bool {
            weak_into(da, db)
        } else if b.weak && !a.weak && no_bool {
            weak_into(db, da)
        } else {
            match (da, db) {
                (DType::Bool, _) | (_, DType::Bool) => {
                    let d = Diagnostic::new(
                        Code::DTypeMismatch,
                        format!("cannot {what} {} and {}", da.name(), db.name()),
                    )
                    .label(sa, format!("this is {}", self.ty(a)))
                    .label(sb, format!("this is {}", self.ty(b)))
                    .note("convert a bool tensor to numbers with f32(mask)");
                    self.error(d);
                    return None;
                }
                (DType::F64, _) | (_, DType::F64) => DType::F64,
                (DType::F32, _) | (_, DType::F32) => DType::F32,
                _ => DType::I32,
            }
        };
        let x = self.convert(a, target, span)?;
        let y = self.convert(b, target, span)?;
        Some((x, y, target))
    }

    /// Requires a floating-point operand, converting an integer one (as
    /// `torch.exp` of an int tensor does); bool is an error.
    pub fn float_operand(&mut self, what: &str, v: Val, span: Span) -> Option<NodeId> {
        let d = self.ty(v).dtype;
        match d {
            DType::F32 | DType::F64 => Some(v.node),
            DType::I32 => self.convert(v, DType::F32, span),
            DType::Bool => {
                let d = Diagnostic::new(
                    Code::DTypeMismatch,
                    format!("{what} needs a number tensor, found bool"),
                )
                .label(span, format!("this is {}", self.ty(v)))
                .note("convert a bool tensor to numbers with f32(mask)");
                self.error(d);
                None
            }
        }
    }

    pub fn strong(node: NodeId) -> Val {
        Val { node, weak: false }
    }
}

/// The candidate closest to `name` by edit distance, if close enough.
pub fn nearest<'c>(name: &str, cands: impl Iterator<Item = &'c str>) -> Option<String> {
    let mut best: Option<(usize, &str)> = None;
    for c in cands {
        if c == name {
            continue;
        }
        let d = edit_distance(name, c);
        let limit = (name.len().max(c.len()) / 3).max(1);
        if d <= limit && best.is_none_or(|(bd, bc)| d < bd || (d == bd && c < bc)) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c.to_string())
}

/// Edit distance counting an adjacent transposition as one edit
/// (optimal string alignment), so `reul` is one edit from `relu`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (n, m) = (a.len(), b.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[n][m]
}
