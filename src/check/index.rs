//! Tensor literals and indexing: `[[1, 2], [3, 4]]` and `x[i, a:b:s]`.

use crate::diag::{Code, Diagnostic};
use crate::ir::{DType, Dim, Op, Shape, Type};
use crate::span::Span;
use crate::syntax::ast::{Expr, ExprKind, IndexArg};

use super::consts::{self, Const};
use super::lower::{Lowerer, Val};

impl Lowerer<'_, '_> {
    /// A tensor literal: nested lists of constant numbers or bools.
    pub(super) fn literal(&mut self, e: &Expr) -> Option<Val> {
        let mut values = Vec::new();
        let mut dims: Vec<u64> = Vec::new();
        let mut dtype = DType::I32;
        let mut bools = 0usize;
        if !self.collect_literal(e, 0, &mut dims, &mut values, &mut dtype, &mut bools) {
            return None;
        }
        if bools > 0 && bools != values.len() {
            self.error(
                Diagnostic::new(
                    Code::DTypeMismatch,
                    "a tensor literal mixes bools and numbers",
                )
                .label(e.span, "use only numbers or only `true`/`false`"),
            );
            return None;
        }
        if bools > 0 {
            dtype = DType::Bool;
        }
        let ty = Type::new(dtype, Shape::fixed(&dims));
        let n = self.g.literal(values, ty, e.span);
        Some(Self::strong(n))
    }

    fn collect_literal(
        &mut self,
        e: &Expr,
        depth: usize,
        dims: &mut Vec<u64>,
        values: &mut Vec<f64>,
        dtype: &mut DType,
        bools: &mut usize,
    ) -> bool {
        match &e.node {
            ExprKind::List(items) => {
                let n = items.len() as u64;
                if dims.len() == depth {
                    dims.push(n);
                } else if dims.get(depth) != Some(&n) || dims.len() <= depth {
                    self.error(
                        Diagnostic::new(Code::ShapeMismatch, "a ragged tensor literal").label(
                            e.span,
                            format!(
                                "this row has {n} elements, the first has {}",
                                dims.get(depth).copied().unwrap_or(0)
                            ),
                        ),
                    );
                    return false;
                }
                if n == 0 {
                    self.error(
                        Diagnostic::new(Code::ShapeMismatch, "an empty tensor literal")
                            .label(e.span, "write zeros(0) for an empty tensor"),
                    );
                    return false;
                }
                items
                    .iter()
                    .all(|it| self.collect_literal(it, depth + 1, dims, values, dtype, bools))
            }
            _ => {
                if dims.len() != depth {
                    self.error(
                        Diagnostic::new(Code::ShapeMismatch, "a ragged tensor literal")
                            .label(e.span, "expected a list here, like its neighbours"),
                    );
                    return false;
                }
                match consts::eval(e) {
                    Some(Const::Num(v, is_int)) => {
                        if !is_int {
                            *dtype = DType::F32;
                        }
                        values.push(v);
                        true
                    }
                    Some(Const::Bool(b)) => {
                        *bools += 1;
                        values.push(if b { 1.0 } else { 0.0 });
                        true
                    }
                    _ => {
                        self.error(
                            Diagnostic::new(
                                Code::BadArgument,
                                "a tensor literal holds constant numbers",
                            )
                            .label(e.span, "not a constant number"),
                        );
                        false
                    }
                }
            }
        }
    }

    /// `x[i, a:b, ...]`: constant integer indices and slices, axis by axis.
    pub(super) fn index(&mut self, base: &Expr, indices: &[IndexArg], span: Span) -> Option<Val> {
        let v = self.expr(base)?;
        let ty = self.ty(v).clone();
        if indices.len() > ty.shape.rank() {
            self.error(
                Diagnostic::new(
                    Code::BadAxis,
                    format!(
                        "{} indices for a tensor of rank {}",
                        indices.len(),
                        ty.shape.rank()
                    ),
                )
                .label(span, format!("the tensor is {ty}")),
            );
            return None;
        }
        let mut node = v.node;
        let mut drop_axes = Vec::new();
        for (axis, idx) in indices.iter().enumerate() {
            let dim = ty.shape.0[axis];
            let len = match dim {
                Dim::Fixed(n) => Some(n as i64),
                Dim::Batch => None,
            };
            let Some((s, en, step, single)) = self.axis_bounds(idx, len, axis, &ty)? else {
                continue;
            };
            node = self.prim(
                Op::Slice {
                    axis: axis as u32,
                    start: s as u64,
                    end: en as u64,
                    step: step as u64,
                },
                &[node],
                None,
                span,
                &[],
            )?;
            if single {
                drop_axes.push(axis);
            }
        }
        if !drop_axes.is_empty() {
            let t = self.g.ty(node).clone();
            let dims: Vec<Dim> = t
                .shape
                .0
                .iter()
                .enumerate()
                .filter(|(i, _)| !drop_axes.contains(i))
                .map(|(_, d)| *d)
                .collect();
            node = self.prim(
                Op::Reshape,
                &[node],
                Some(Type::new(t.dtype, Shape(dims))),
                span,
                &[],
            )?;
        }
        Some(Val { node, weak: v.weak })
    }
    /// The bounds of index `idx` on `axis` (of length `len`; `None` for the
    /// batch axis) of a tensor of type `ty`: start, end, step and whether
    /// it is a single index (which drops the axis). `Some(None)` keeps the
    /// whole axis; `None` is an error, reported.
    fn axis_bounds(
        &mut self,
        idx: &IndexArg,
        len: Option<i64>,
        axis: usize,
        ty: &Type,
    ) -> Option<Option<(i64, i64, i64, bool)>> {
        let (start, end, step, single, ispan) = self.index_ints(idx, len)?;
        if start.is_none() && end.is_none() && step == 1 {
            return Some(None);
        }
        if len.is_none() {
            // The batch's length is only known at run time, and a model
            // treats every sample alike: take whole batches (`x[:, ...]`).
            self.error(
                Diagnostic::new(
                    Code::ShapeMismatch,
                    "cannot index or slice the batch axis `B`",
                )
                .label(ispan, "the batch size is only known at run time")
                .note("keep the whole batch with `:` and index the other axes, like x[:, 0:4]"),
            );
            return None;
        }
        let norm = |i: i64| -> Option<i64> {
            if i < 0 {
                len.map(|n| n + i)
            } else {
                Some(i)
            }
        };
        let s = norm(start.unwrap_or(0));
        let en = match end {
            Some(e) => norm(e),
            None => len,
        };
        let (Some(s), Some(en)) = (s, en) else {
            self.error(
                Diagnostic::new(
                    Code::ShapeMismatch,
                    "a slice of the batch axis needs explicit, non-negative bounds",
                )
                .label(ispan, "the batch size B is only known at run time"),
            );
            return None;
        };
        if step <= 0 {
            self.error(
                Diagnostic::new(
                    Code::BadAxis,
                    format!("a slice step must be positive, found {step}"),
                )
                .label(
                    ispan,
                    if step == 0 {
                        "a step of 0"
                    } else {
                        "a negative step"
                    },
                )
                .note("reversing an axis (x[::-1]) is not supported, as in PyTorch"),
            );
            return None;
        }
        if !single && en <= s && s >= 0 {
            self.error(
                Diagnostic::new(
                    Code::BadAxis,
                    format!("the slice {s}:{en} of axis {axis} of {ty} is empty"),
                )
                .label(ispan, "selects no elements"),
            );
            return None;
        }
        if s < 0 || en < s || (single && len.is_some_and(|n| s >= n)) {
            self.error(
                Diagnostic::new(
                    Code::BadAxis,
                    format!("index out of range for axis {axis} of {ty}"),
                )
                .label(ispan, "out of range"),
            );
            return None;
        }
        Some(Some((s, en, step, single)))
    }
    /// The constant integers of index `idx` on an axis of length `len`:
    /// start, end, step, whether it is a single index, and its span.
    #[allow(clippy::type_complexity)]
    fn index_ints(
        &mut self,
        idx: &IndexArg,
        len: Option<i64>,
    ) -> Option<(Option<i64>, Option<i64>, i64, bool, Span)> {
        let int_of = |me: &mut Self, e: &Option<Expr>| -> Result<Option<i64>, ()> {
            match e {
                None => Ok(None),
                Some(e) => match consts::eval(e) {
                    Some(Const::Num(v, true)) => Ok(Some(v as i64)),
                    _ => {
                        me.error(
                            Diagnostic::new(
                                Code::BadArgument,
                                "an index must be a constant integer",
                            )
                            .label(e.span, "not a constant integer"),
                        );
                        Err(())
                    }
                },
            }
        };
        let parsed = match idx {
            IndexArg::Single(e) => {
                let i = int_of(self, &Some(e.clone())).ok()?.unwrap_or(0);
                // x[-1] is the last element: normalize before taking i..i+1.
                let i = match (i < 0, len) {
                    (true, Some(n)) => i + n,
                    _ => i,
                };
                (Some(i), Some(i + 1), 1, true, e.span)
            }
            IndexArg::Slice {
                start,
                end,
                step,
                span,
            } => {
                let s = int_of(self, start).ok()?;
                let en = int_of(self, end).ok()?;
                let st = int_of(self, step).ok()?.unwrap_or(1);
                (s, en, st, false, *span)
            }
        };
        Some(parsed)
    }
}
