//! Expressions, statements and calls to IR: the operators, name lookup,
//! `let`s and user `fn`s, and calls, dispatched to the builtin table
//! (`builtins`). The top of the checker's lowering: it uses the builtins,
//! which use the composites, which use the [`Lowerer`]'s context.

use std::collections::HashMap;

use crate::diag::{Code, Diagnostic};
use crate::ir::{CmpOp, DType, Op};
use crate::span::Span;
use crate::syntax::ast::{self, BinOp, Expr, ExprKind, Stmt, UnOp};

use super::lower::{nearest, Lowerer, Val, MAX_CALL_DEPTH, MAX_INLINED};

impl Lowerer<'_, '_> {
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
            ExprKind::Unary { op, operand } => self.unary(*op, operand, e.span),
            ExprKind::Index { base, indices } => self.index(base, indices, e.span),
            ExprKind::Field { base, name } => self.field(base, name, e.span),
            ExprKind::Error => None,
        }
    }

    /// A unary operator: `+x`, `-x` (folded on a constant), `not b`.
    fn unary(&mut self, op: UnOp, operand: &Expr, span: Span) -> Option<Val> {
        let v = self.expr(operand)?;
        match op {
            UnOp::Plus => Some(v),
            UnOp::Neg => {
                if let Some(c) = self.g.const_value(v.node) {
                    let d = self.ty(v).dtype;
                    let n = self.constant(-c, d, span);
                    return Some(Val {
                        node: n,
                        weak: v.weak,
                    });
                }
                let n = self.prim(Op::Neg, &[v.node], None, span, &[operand.span])?;
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
                let f = self.constant(0.0, DType::Bool, span);
                let n = self.prim(Op::Cmp(CmpOp::Eq), &[v.node, f], None, span, &[])?;
                Some(Self::strong(n))
            }
        }
    }

    /// A field: `eigh(A).values` and `.vectors`, and `.T` (transpose).
    fn field(&mut self, base: &Expr, name: &ast::Ident, span: Span) -> Option<Val> {
        // eigh(A).values and eigh(A).vectors
        if let ExprKind::Call { callee, args } = &base.node {
            if matches!(&callee.node, ExprKind::Name(f) if f == "eigh") {
                return self.eigh(args, name, span);
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
                let n = self.prim(Op::Transpose { perm }, &[v.node], None, span, &[])?;
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

    /// Arithmetic on two scalar constants, folded: a constant of the
    /// operands' common dtype (integers divide as floats).
    fn fold_constants(&mut self, op: BinOp, (a, b): (Val, Val), span: Span) -> Option<Val> {
        let weak = a.weak && b.weak;
        let (x, y) = (self.g.const_value(a.node)?, self.g.const_value(b.node)?);
        let v = match op {
            BinOp::Add => x + y,
            BinOp::Sub => x - y,
            BinOp::Mul => x * y,
            BinOp::Div => x / y,
            BinOp::Pow => x.powf(y),
            _ => return None,
        };
        let (da, db) = (self.ty(a).dtype, self.ty(b).dtype);
        if da == DType::Bool || db == DType::Bool {
            return None;
        }
        let int = da == DType::I32 && db == DType::I32 && !matches!(op, BinOp::Div);
        let d = if int {
            DType::I32
        } else if da == DType::F64 || db == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        let n = self.constant(v, d, span);
        Some(Val { node: n, weak })
    }

    /// `a and b` = where(a, b, false); `a or b` = where(a, true, b), on
    /// bool operands.
    fn logical(
        &mut self,
        op: BinOp,
        (a, sa): (Val, Span),
        (b, sb): (Val, Span),
        span: Span,
    ) -> Option<Val> {
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
        Some(Self::strong(n))
    }

    fn binary(&mut self, op: BinOp, lhs: &Expr, rhs: &Expr, span: Span) -> Option<Val> {
        let a = self.expr(lhs);
        let b = self.expr(rhs);
        let (a, b) = (a?, b?);
        let (sa, sb) = (lhs.span, rhs.span);
        let weak = a.weak && b.weak;
        if let Some(v) = self.fold_constants(op, (a, b), span) {
            return Some(v);
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
            BinOp::And | BinOp::Or => return self.logical(op, (a, sa), (b, sb), span),
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
