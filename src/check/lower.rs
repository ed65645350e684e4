//! Expressions to IR: name resolution, dtype promotion, and the operators.
//!
//! A [`Lowerer`] adds nodes for one function (a run's training step, its
//! eval function, or a REPL session) to one [`Graph`]. Every error becomes a
//! diagnostic and the failing expression yields `None`, so one error does
//! not cascade into others.

use std::collections::HashMap;

use crate::diag::{Code, Diagnostic};
use crate::ir::{CmpOp, DType, Graph, IrError, IrErrorKind, NodeId, Op, Type};
use crate::span::Span;
use crate::syntax::ast::{self, BinOp, Expr, ExprKind, Stmt, UnOp};

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
    scopes: Vec<HashMap<String, Val>>,
    /// Top-level lets already lowered into this graph.
    global_cache: HashMap<String, Option<Val>>,
    in_progress: Vec<String>,
    pub mode: Mode,
    /// The step counter input (for dropout and random tensors).
    pub step: Option<NodeId>,
    next_stream: u32,
    call_depth: usize,
    /// Statements lowered inside inlined `fn` bodies so far: inlining
    /// doubles per level when each function calls the last twice, so the
    /// depth limit alone does not bound the work.
    inlined: usize,
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

    /// Looks a name up: local scopes, then top-level `let`s.
    fn lookup(&mut self, name: &str, span: Span) -> Option<Val> {
        for s in self.scopes.iter().rev() {
            if let Some(v) = s.get(name) {
                return Some(*v);
            }
        }
        if let Some(cached) = self.global_cache.get(name) {
            return *cached;
        }
        if let Some(l) = self.globals.lets.get(name).copied() {
            if self.in_progress.iter().any(|n| n == name) {
                self.error(
                    Diagnostic::new(
                        Code::UnknownName,
                        format!("`{name}` is defined in terms of itself"),
                    )
                    .label(span, "used here")
                    .label(l.name.span, "defined here"),
                );
                return None;
            }
            self.in_progress.push(name.to_string());
            // Top-level lets see only other top-level definitions.
            let saved = std::mem::replace(&mut self.scopes, vec![HashMap::new()]);
            let v = self.let_value(l);
            self.scopes = saved;
            self.in_progress.pop();
            self.global_cache.insert(name.to_string(), v);
            return v;
        }
        let kind = self.globals.other.get(name).copied();
        let d = match kind {
            Some(kind) => Diagnostic::new(
                Code::UnknownName,
                format!("`{name}` is a {kind}, not a tensor"),
            )
            .label(span, format!("a {kind} cannot be used in an expression")),
            None => {
                let mut d = Diagnostic::new(Code::UnknownName, format!("unknown name `{name}`"))
                    .label(span, "not defined here");
                if let Some(s) = self.suggest(name) {
                    d = d.note(format!("did you mean `{s}`?"));
                }
                d
            }
        };
        self.error(d);
        None
    }

    /// The nearest visible name, for "did you mean".
    pub fn suggest(&self, name: &str) -> Option<String> {
        let mut cands: Vec<String> = Vec::new();
        for s in &self.scopes {
            cands.extend(s.keys().cloned());
        }
        cands.extend(self.globals.lets.keys().map(|s| s.to_string()));
        cands.extend(self.globals.fns.keys().map(|s| s.to_string()));
        cands.extend(super::builtins::NAMES.iter().map(|s| s.to_string()));
        nearest(name, cands.iter().map(|s| s.as_str()))
    }

    /// Lowers a `let`, checking its annotation if any.
    pub fn let_value(&mut self, l: &ast::Let) -> Option<Val> {
        let v = self.expr(&l.value)?;
        if let Some(ann) = &l.ty {
            let want = super::resolve_type(ann, &HashMap::new(), &mut self.diags)?;
            let have = self.ty(v).clone();
            if want.shape != have.shape || (want.dtype != have.dtype && !v.weak) {
                self.error(
                    Diagnostic::new(
                        Code::ShapeMismatch,
                        format!(
                            "`{}` is declared {want} but its value is {have}",
                            l.name.node
                        ),
                    )
                    .label(l.value.span, format!("this is {have}"))
                    .label(ann.span, "declared here"),
                );
                return None;
            }
            let n = self.convert(v, want.dtype, l.value.span)?;
            return Some(Self::strong(n));
        }
        Some(v)
    }

    /// Lowers a body: statements, then the last expression as the result.
    /// `Param` statements are handled by the caller and skipped here.
    pub fn body(&mut self, stmts: &[Stmt], span: Span) -> Option<Val> {
        // A body the parser already reported on gets no further complaints
        // about its shape; its lets are still checked.
        let broken = stmts.iter().any(|s| matches!(s, Stmt::Error(_)));
        let mut result = None;
        let mut ok = !broken;
        for (i, s) in stmts.iter().enumerate() {
            let last = i + 1 == stmts.len();
            match s {
                Stmt::Let(l) => {
                    if let Some(v) = self.let_value(l) {
                        self.bind(&l.name.node, v);
                    } else {
                        ok = false;
                    }
                    if last && !broken {
                        self.error(
                            Diagnostic::new(Code::Syntax, "a body must end with an expression")
                                .label(l.span, "this `let` is last; its value is not returned")
                                .note(format!("add `{}` on a line after it", l.name.node)),
                        );
                        return None;
                    }
                }
                Stmt::Expr(e) => {
                    if last {
                        result = self.expr(e);
                    } else if !broken {
                        self.error(
                            Diagnostic::new(
                                Code::Syntax,
                                "only the last expression of a body is its result",
                            )
                            .label(e.span, "this value is computed and dropped")
                            .note("bind it with `let name = ...`, or remove it"),
                        );
                        ok = false;
                    }
                }
                Stmt::Param(_) => {}
                Stmt::Error(_) => ok = false,
            }
        }
        if stmts.iter().all(|s| !matches!(s, Stmt::Expr(_))) && !broken {
            self.error(
                Diagnostic::new(Code::Syntax, "this body has no result expression")
                    .label(span, "add an expression at the end of the body"),
            );
            return None;
        }
        if ok {
            result
        } else {
            None
        }
    }

    /// Lowers an expression to a tensor value.
    /// `eigh(A).values` (ascending) and `eigh(A).vectors` (as columns) of a
    /// symmetric matrix.
    fn eigh(&mut self, args: &[ast::Arg], field: &ast::Ident, span: Span) -> Option<Val> {
        let kind = match field.node.as_str() {
            "values" => crate::ir::Linalg::EigVals,
            "vectors" => crate::ir::Linalg::EigVecs,
            other => {
                self.error(
                    Diagnostic::new(Code::UnknownName, format!("`eigh` has no field `{other}`"))
                        .label(field.span, "`values` or `vectors`"),
                );
                return None;
            }
        };
        let [arg] = args else {
            self.error(
                Diagnostic::new(
                    Code::Arity,
                    format!("`eigh` takes one matrix, got {}", args.len()),
                )
                .label(span, "here"),
            );
            return None;
        };
        let a = self.expr(&arg.value)?;
        let a = self.float_operand("eigh", a, arg.value.span)?;
        self.prim(Op::Linalg(kind), &[a], None, span, &[arg.value.span])
            .map(Self::strong)
    }

    pub fn expr(&mut self, e: &Expr) -> Option<Val> {
        match &e.node {
            ExprKind::Int(v) => {
                if *v > i32::MAX as i64 || *v < i32::MIN as i64 {
                    // Too large for i32: a weak float, like 1e10.
                    let n = self.constant(*v as f64, DType::F32, e.span);
                    return Some(Val {
                        node: n,
                        weak: true,
                    });
                }
                let n = self.constant(*v as f64, DType::I32, e.span);
                Some(Val {
                    node: n,
                    weak: true,
                })
            }
            ExprKind::Float(v) => {
                let n = self.constant(*v, DType::F32, e.span);
                Some(Val {
                    node: n,
                    weak: true,
                })
            }
            ExprKind::Bool(b) => {
                let n = self.constant(if *b { 1.0 } else { 0.0 }, DType::Bool, e.span);
                Some(Self::strong(n))
            }
            ExprKind::Str(_) => {
                self.error(
                    Diagnostic::new(Code::BadArgument, "a string is not a tensor")
                        .label(e.span, "strings name files and columns in `data` sources"),
                );
                None
            }
            ExprKind::Name(n) => self.lookup(n, e.span),
            ExprKind::List(_) => self.literal(e),
            ExprKind::Call { callee, args } => {
                let ExprKind::Name(name) = &callee.node else {
                    self.error(
                        Diagnostic::new(Code::BadArgument, "only named functions can be called")
                            .label(callee.span, "this is not a function name"),
                    );
                    return None;
                };
                self.call(name, callee.span, args, e.span)
            }
            ExprKind::Binary { op, lhs, rhs } => self.binary(*op, lhs, rhs, e.span),
            ExprKind::Unary { op, operand } => {
                let v = self.expr(operand)?;
                match op {
                    UnOp::Plus => Some(v),
                    UnOp::Neg => {
                        if let Some(c) = self.g.const_value(v.node) {
                            let d = self.ty(v).dtype;
                            let n = self.constant(-c, d, e.span);
                            return Some(Val {
                                node: n,
                                weak: v.weak,
                            });
                        }
                        let n = self.prim(Op::Neg, &[v.node], None, e.span, &[operand.span])?;
                        Some(Val {
                            node: n,
                            weak: v.weak,
                        })
                    }
                    UnOp::Not => {
                        if self.ty(v).dtype != DType::Bool {
                            self.error(
                                Diagnostic::new(
                                    Code::DTypeMismatch,
                                    format!("`not` needs a bool tensor, found {}", self.ty(v)),
                                )
                                .label(operand.span, format!("this is {}", self.ty(v))),
                            );
                            return None;
                        }
                        let f = self.constant(0.0, DType::Bool, e.span);
                        let n = self.prim(Op::Cmp(CmpOp::Eq), &[v.node, f], None, e.span, &[])?;
                        Some(Self::strong(n))
                    }
                }
            }
            ExprKind::Index { base, indices } => self.index(base, indices, e.span),
            ExprKind::Field { base, name } => {
                // eigh(A).values and eigh(A).vectors
                if let ExprKind::Call { callee, args } = &base.node {
                    if matches!(&callee.node, ExprKind::Name(f) if f == "eigh") {
                        return self.eigh(args, name, e.span);
                    }
                }
                let v = self.expr(base)?;
                match name.node.as_str() {
                    "T" => {
                        let r = self.ty(v).shape.rank();
                        if r < 2 {
                            return Some(v);
                        }
                        let perm: Vec<u8> = (0..r as u8).rev().collect();
                        let n = self.prim(Op::Transpose { perm }, &[v.node], None, e.span, &[])?;
                        Some(Self::strong(n))
                    }
                    other => {
                        self.error(
                            Diagnostic::new(
                                Code::UnknownName,
                                format!("tensors have no field `{other}`"),
                            )
                            .label(name.span, "the only field is `.T` (transpose)"),
                        );
                        None
                    }
                }
            }
            ExprKind::Error => None,
        }
    }

    fn binary(&mut self, op: BinOp, lhs: &Expr, rhs: &Expr, span: Span) -> Option<Val> {
        let a = self.expr(lhs);
        let b = self.expr(rhs);
        let (a, b) = (a?, b?);
        let (sa, sb) = (lhs.span, rhs.span);
        let weak = a.weak && b.weak;
        // Fold arithmetic on two scalar constants.
        if let (Some(x), Some(y)) = (self.g.const_value(a.node), self.g.const_value(b.node)) {
            let folded = match op {
                BinOp::Add => Some(x + y),
                BinOp::Sub => Some(x - y),
                BinOp::Mul => Some(x * y),
                BinOp::Div => Some(x / y),
                BinOp::Pow => Some(x.powf(y)),
                _ => None,
            };
            let (da, db) = (self.ty(a).dtype, self.ty(b).dtype);
            if let Some(v) = folded {
                if da != DType::Bool && db != DType::Bool {
                    let int = da == DType::I32 && db == DType::I32 && !matches!(op, BinOp::Div);
                    let d = if int {
                        DType::I32
                    } else if da == DType::F64 || db == DType::F64 {
                        DType::F64
                    } else {
                        DType::F32
                    };
                    let n = self.constant(v, d, span);
                    return Some(Val { node: n, weak });
                }
            }
        }
        let verb = match op {
            BinOp::Add => "add",
            BinOp::Sub => "subtract",
            BinOp::Mul => "multiply",
            BinOp::Div => "divide",
            BinOp::MatMul => "matrix-multiply",
            BinOp::Pow => "raise",
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => "compare",
            BinOp::And | BinOp::Or => "combine",
        };
        match op {
            BinOp::And | BinOp::Or => {
                for (v, s) in [(a, sa), (b, sb)] {
                    if self.ty(v).dtype != DType::Bool {
                        self.error(
                            Diagnostic::new(
                                Code::DTypeMismatch,
                                format!("`{}` needs bool operands", op.symbol()),
                            )
                            .label(s, format!("this is {}", self.ty(v))),
                        );
                        return None;
                    }
                }
                // a and b = where(a, b, false); a or b = where(a, true, b)
                let (t, f) = (
                    self.constant(1.0, DType::Bool, span),
                    self.constant(0.0, DType::Bool, span),
                );
                let ins = if op == BinOp::And {
                    [a.node, b.node, f]
                } else {
                    [a.node, t, b.node]
                };
                let n = self.prim(Op::Select, &ins, None, span, &[])?;
                return Some(Self::strong(n));
            }
            BinOp::MatMul => {
                let x = self.float_operand("@", a, sa)?;
                let y = self.float_operand("@", b, sb)?;
                let (x, y, _) =
                    self.promote(verb, Self::strong(x), Self::strong(y), span, sa, sb)?;
                let n = super::composite::matmul(self, x, y, span, sa, sb)?;
                return Some(Self::strong(n));
            }
            _ => {}
        }
        let (x, y, d) = self.promote(verb, a, b, span, sa, sb)?;
        if d == DType::Bool && !matches!(op, BinOp::Eq | BinOp::Ne) {
            self.error(
                Diagnostic::new(Code::DTypeMismatch, format!("cannot {verb} bool tensors"))
                    .label(sa, format!("this is {}", self.g.ty(x)))
                    .label(sb, format!("this is {}", self.g.ty(y)))
                    .note("convert a bool tensor to numbers with f32(mask)"),
            );
            return None;
        }
        let spans = [sa, sb];
        let n = match op {
            BinOp::Add => self.prim(Op::Add, &[x, y], None, span, &spans)?,
            BinOp::Mul => self.prim(Op::Mul, &[x, y], None, span, &spans)?,
            BinOp::Sub => {
                // a - b = a + (-b)
                let ny = self.prim(Op::Neg, &[y], None, sb, &[])?;
                self.prim(Op::Add, &[x, ny], None, span, &spans)?
            }
            BinOp::Div => {
                // a / b = a · (1/b); integers divide as floats, like Python's `/`.
                let (x, y) = if d == DType::I32 {
                    (
                        self.convert(Self::strong(x), DType::F32, span)?,
                        self.convert(Self::strong(y), DType::F32, span)?,
                    )
                } else {
                    (x, y)
                };
                let ry = self.prim(Op::Recip, &[y], None, sb, &[])?;
                self.prim(Op::Mul, &[x, ry], None, span, &spans)?
            }
            BinOp::Pow => {
                return super::composite::power(self, x, y, span, sa, sb)
                    .map(|n| Val { node: n, weak })
            }
            BinOp::Eq => self.prim(Op::Cmp(CmpOp::Eq), &[x, y], None, span, &spans)?,
            BinOp::Ne => self.prim(Op::Cmp(CmpOp::Ne), &[x, y], None, span, &spans)?,
            BinOp::Lt => self.prim(Op::Cmp(CmpOp::Lt), &[x, y], None, span, &spans)?,
            BinOp::Le => self.prim(Op::Cmp(CmpOp::Le), &[x, y], None, span, &spans)?,
            BinOp::Gt => self.prim(Op::Cmp(CmpOp::Gt), &[x, y], None, span, &spans)?,
            BinOp::Ge => self.prim(Op::Cmp(CmpOp::Ge), &[x, y], None, span, &spans)?,
            BinOp::And | BinOp::Or | BinOp::MatMul => return None,
        };
        let weak = weak
            && !matches!(
                op,
                BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge
            );
        Some(Val { node: n, weak })
    }

    /// A call: a user function (inlined) or a builtin.
    fn call(&mut self, name: &str, name_span: Span, args: &[ast::Arg], span: Span) -> Option<Val> {
        let found = self.scopes.iter().any(|s| s.contains_key(name));
        if found {
            self.error(
                Diagnostic::new(
                    Code::BadArgument,
                    format!("`{name}` is a tensor, not a function"),
                )
                .label(name_span, "cannot be called"),
            );
            return None;
        }
        if let Some(f) = self.globals.fns.get(name).copied() {
            return self.call_user(f, args, span);
        }
        super::builtins::call(self, name, name_span, args, span)
    }

    fn call_user(&mut self, f: &ast::FnDecl, args: &[ast::Arg], span: Span) -> Option<Val> {
        if args.len() != f.params.len() || args.iter().any(|a| a.name.is_some()) {
            let d = Diagnostic::new(
                Code::Arity,
                format!(
                    "`{}` takes {} positional argument{}, got {}",
                    f.name.node,
                    f.params.len(),
                    if f.params.len() == 1 { "" } else { "s" },
                    args.len()
                ),
            )
            .label(span, "in this call")
            .label(f.name.span, "defined here");
            self.error(d);
            return None;
        }
        if f.body.iter().any(|s| matches!(s, Stmt::Error(_))) {
            // Already reported by the parser.
            return None;
        }
        if self.inlined > MAX_INLINED {
            return None; // reported once, where inlining had to stop
        }
        if self.call_depth >= MAX_CALL_DEPTH {
            // One report: every other path down the same calls would
            // repeat it (exponentially many, for functions that call
            // others twice).
            self.inlined = MAX_INLINED + 1;
            self.error(
                Diagnostic::new(
                    Code::Arity,
                    format!(
                        "calls nested deeper than {MAX_CALL_DEPTH} (is `{}` recursive?)",
                        f.name.node
                    ),
                )
                .label(span, "this call"),
            );
            return None;
        }
        self.inlined += 1 + f.body.len();
        if self.inlined > MAX_INLINED {
            self.error(
                Diagnostic::new(
                    Code::Arity,
                    format!(
                        "inlining `{}` expands the program past {MAX_INLINED} statements",
                        f.name.node
                    ),
                )
                .label(span, "this call")
                .label(f.name.span, "defined here")
                .note("every call of a `fn` is inlined, so functions that call others several times grow exponentially with their depth; call each once and bind its result with `let`"),
            );
            return None;
        }
        let mut vals = Vec::new();
        for a in args {
            vals.push(self.expr(&a.value)?);
        }
        // A function body sees its parameters and the top level only.
        let saved = std::mem::replace(&mut self.scopes, vec![HashMap::new()]);
        for (p, v) in f.params.iter().zip(vals) {
            self.bind(&p.node, v);
        }
        self.call_depth += 1;
        let r = self.body(&f.body, f.span);
        self.call_depth -= 1;
        self.scopes = saved;
        r
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
