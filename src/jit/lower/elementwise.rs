//! Elementwise ops: scalar conversions and math, their loop nests, and their f32x4 forms.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, Endianness, InstBuilder, MemFlagsData, Value};
use cranelift_frontend::FunctionBuilder;

use super::inline;
use super::kb::{clif_type, Kb, Site};
use crate::ir::{CmpOp, DType, Dim, Graph, NodeId, Op};

/// Converts a scalar between dtypes (bool is i32 0/1).
pub(super) fn convert(kb: &mut Kb, v: Value, from: DType, to: DType) -> Value {
    let b = &mut kb.b;
    match (from, to) {
        _ if from == to => v,
        (DType::F32, DType::F64) => b.ins().fpromote(types::F64, v),
        (DType::F64, DType::F32) => b.ins().fdemote(types::F32, v),
        (DType::F32 | DType::F64, DType::I32) => b.ins().fcvt_to_sint_sat(types::I32, v),
        (DType::I32 | DType::Bool, DType::F32 | DType::F64) => {
            b.ins().fcvt_from_sint(clif_type(to), v)
        }
        (DType::F32 | DType::F64, DType::Bool) => {
            let z = if from == DType::F32 {
                b.ins().f32const(0.0)
            } else {
                b.ins().f64const(0.0)
            };
            let c = b.ins().fcmp(FloatCC::NotEqual, v, z);
            b.ins().uextend(types::I32, c)
        }
        (DType::I32, DType::Bool) => {
            let c = b.ins().icmp_imm_s(IntCC::NotEqual, v, 0);
            b.ins().uextend(types::I32, c)
        }
        (DType::Bool, DType::I32) => v,
        _ => v,
    }
}

fn unary(kb: &mut Kb, op: &Op, x: Value, d: DType) -> Value {
    let float = d.is_float();
    let f32t = d == DType::F32;
    match op {
        Op::Neg if float => kb.b.ins().fneg(x),
        Op::Neg => kb.b.ins().ineg(x),
        Op::Recip => {
            let one = kb.fconst(d, 1.0);
            kb.b.ins().fdiv(one, x)
        }
        // f32: inline polynomials (math.rs); f64: libm through Rust.
        Op::Exp if f32t => inline::exp(kb.b, false, x),
        Op::Log if f32t => inline::ln(kb.b, false, x),
        Op::Tanh if f32t => inline::tanh(kb.b, false, x),
        Op::Sigmoid if f32t => inline::sigmoid(kb.b, false, x),
        Op::Exp => kb.call1(kb.ext.exp, &[x]),
        Op::Log => kb.call1(kb.ext.log, &[x]),
        Op::Tanh => kb.call1(kb.ext.tanh, &[x]),
        Op::Sin if f32t => kb.call1(kb.ext.sinf, &[x]),
        Op::Cos if f32t => kb.call1(kb.ext.cosf, &[x]),
        Op::Sin => kb.call1(kb.ext.sin, &[x]),
        Op::Cos => kb.call1(kb.ext.cos, &[x]),
        Op::Floor => kb.b.ins().floor(x),
        Op::Sigmoid => kb.call1(kb.ext.sigmoid, &[x]),
        Op::Sqrt => kb.b.ins().sqrt(x),
        Op::Abs if float => kb.b.ins().fabs(x),
        Op::Abs => kb.b.ins().iabs(x),
        _ => x,
    }
}

fn binary(kb: &mut Kb, op: &Op, x: Value, y: Value, d: DType) -> Value {
    let float = d.is_float();
    match op {
        Op::Add if float => kb.b.ins().fadd(x, y),
        Op::Add => kb.b.ins().iadd(x, y),
        Op::Mul if float => kb.b.ins().fmul(x, y),
        Op::Mul => kb.b.ins().imul(x, y),
        Op::Max if float => kb.b.ins().fmax(x, y),
        Op::Max => kb.b.ins().smax(x, y),
        Op::Pow => kb.call1(
            if d == DType::F32 {
                kb.ext.powf
            } else {
                kb.ext.pow
            },
            &[x, y],
        ),
        Op::Cmp(c) => {
            let r = if float {
                kb.b.ins().fcmp(float_cc(*c), x, y)
            } else {
                let cc = match c {
                    CmpOp::Eq => IntCC::Equal,
                    CmpOp::Ne => IntCC::NotEqual,
                    CmpOp::Lt => IntCC::SignedLessThan,
                    CmpOp::Le => IntCC::SignedLessThanOrEqual,
                    CmpOp::Gt => IntCC::SignedGreaterThan,
                    CmpOp::Ge => IntCC::SignedGreaterThanOrEqual,
                };
                kb.b.ins().icmp(cc, x, y)
            };
            kb.b.ins().uextend(types::I32, r)
        }
        _ => x,
    }
}

fn float_cc(c: CmpOp) -> FloatCC {
    match c {
        CmpOp::Eq => FloatCC::Equal,
        CmpOp::Ne => FloatCC::NotEqual,
        CmpOp::Lt => FloatCC::LessThan,
        CmpOp::Le => FloatCC::LessThanOrEqual,
        CmpOp::Gt => FloatCC::GreaterThan,
        CmpOp::Ge => FloatCC::GreaterThanOrEqual,
    }
}

/// Elementwise ops (unary, binary, `select`, casts and broadcasts): one
/// loop nest over the output, f32x4 where `vector_plan` allows.
pub(super) fn elementwise(kb: &mut Kb, g: &Graph, id: NodeId, site: &Site) {
    let (out_t, d, out, ins, in_t) = site.parts();
    let node = g.node(id);
    let dims = kb.dims(&out_t.shape);
    let mut strides = vec![kb.strides_v(&out_t.shape)];
    let mut ptrs = Vec::new();
    for (i, t) in ins.iter().zip(in_t) {
        strides.push(kb.bstrides(&t.shape, &out_t.shape));
        ptrs.push(kb.buf(*i));
    }
    let zero = kb.iconst(0);
    let bases = vec![zero; strides.len()];
    let op = node.op.clone();
    let in_dt: Vec<DType> = in_t.iter().map(|t| t.dtype).collect();
    if let Some(inner) = vector_plan(&op, out_t, in_t) {
        elementwise_f32x4(kb, &op, out, &ptrs, &in_dt, d, &dims, &strides, &inner);
        return;
    }
    kb.nest(&dims, &strides, &bases, &mut |kb, offs, _| {
        let vals: Vec<Value> = ptrs
            .iter()
            .zip(&in_dt)
            .zip(&offs[1..])
            .map(|((p, t), o)| kb.load(*p, *o, *t))
            .collect();
        let r = match &op {
            Op::Cast => convert(kb, vals[0], in_dt[0], d),
            Op::StopGradient | Op::Broadcast | Op::AllReduce => vals[0],
            Op::Add | Op::Mul | Op::Max | Op::Pow | Op::Cmp(_) => {
                binary(kb, &op, vals[0], vals[1], in_dt[0])
            }
            Op::Select => {
                let c = kb.b.ins().icmp_imm_s(IntCC::NotEqual, vals[0], 0);
                kb.b.ins().select(c, vals[1], vals[2])
            }
            other => unary(kb, other, vals[0], d),
        };
        kb.store(out, offs[0], d, r);
    });
}

/// Whether an elementwise node runs four lanes at a time: f32 in and out, an
/// op with a vector form, and along the innermost axis every operand either
/// contiguous (`true`) or broadcast (`false`, loaded once and splat).
pub(super) fn vector_plan(
    op: &Op,
    out: &crate::ir::Type,
    ins: &[crate::ir::Type],
) -> Option<Vec<bool>> {
    let vectorizes = matches!(
        op,
        Op::Add
            | Op::Mul
            | Op::Max
            | Op::Neg
            | Op::Recip
            | Op::Sqrt
            | Op::Abs
            | Op::Exp
            | Op::Log
            | Op::Tanh
            | Op::Sigmoid
            | Op::StopGradient
            | Op::Broadcast
            | Op::AllReduce
    );
    let r = out.shape.rank();
    let f32s = |ts: &[crate::ir::Type]| ts.iter().all(|t| t.dtype == DType::F32);
    let typed = match op {
        // A comparison of f32s gives a bool (an i32 0 or 1 per element).
        Op::Cmp(_) => out.dtype == DType::Bool && f32s(ins),
        // where(mask, x, y) over f32s.
        Op::Select => out.dtype == DType::F32 && ins[0].dtype == DType::Bool && f32s(&ins[1..]),
        _ => vectorizes && out.dtype == DType::F32 && f32s(ins),
    };
    if !typed || r == 0 {
        return None;
    }
    let last = out.shape.0[r - 1];
    Some(
        ins.iter()
            .map(|t| matches!(t.shape.0.last(), Some(d) if *d == last && *d != Dim::Fixed(1)))
            .collect(),
    )
}

/// The elementwise loop nest with its innermost loop four lanes wide
/// (f32x4), and a scalar tail for lengths that are not multiples of 4.
#[allow(clippy::too_many_arguments)]
fn elementwise_f32x4(
    kb: &mut Kb,
    op: &Op,
    out: Value,
    ptrs: &[Value],
    in_dt: &[DType],
    out_dt: DType,
    dims: &[Value],
    strides: &[Vec<Value>],
    inner: &[bool],
) {
    let r = dims.len();
    let outer_dims = &dims[..r - 1];
    let outer_strides: Vec<Vec<Value>> = strides.iter().map(|s| s[..r - 1].to_vec()).collect();
    let inner_strides: Vec<Value> = strides.iter().map(|s| s[r - 1]).collect();
    let len = dims[r - 1];
    let zero = kb.iconst(0);
    let bases = vec![zero; strides.len()];
    let flags = MemFlagsData::new().with_notrap();
    let v4 = types::F32X4;
    kb.nest(outer_dims, &outer_strides, &bases, &mut |kb, offs, _| {
        let len4 = match kb.const_of(len) {
            Some(n) => kb.iconst(n & !3),
            None => kb.b.ins().band_imm_s(len, !3),
        };
        let zero = kb.iconst(0);
        // Splat the broadcast operands once per row.
        let splats: Vec<Option<Value>> = ptrs
            .iter()
            .zip(inner)
            .zip(&offs[1..])
            .map(|((p, contiguous), o)| {
                (!contiguous).then(|| {
                    let x = kb.load(*p, *o, DType::F32);
                    kb.b.ins().splat(v4, x)
                })
            })
            .collect();
        kb.range(zero, len4, 4, &mut |kb, j| {
            let vals: Vec<Value> = ptrs
                .iter()
                .zip(&splats)
                .zip(&offs[1..])
                .map(|((p, sp), o)| match sp {
                    Some(v) => *v,
                    None => {
                        let oj = kb.b.ins().iadd(*o, j);
                        let a = kb.addr(*p, oj, DType::F32);
                        kb.b.ins().load(v4, flags, a, 0)
                    }
                })
                .collect();
            let v = vector_op(kb.b, op, &vals);
            let oj = kb.b.ins().iadd(offs[0], j);
            let a = kb.addr(out, oj, DType::F32);
            kb.b.ins().store(flags, v, a, 0);
        });
        // The scalar tail.
        let offs = offs.to_vec();
        let inner_strides = inner_strides.clone();
        kb.range(len4, len, 1, &mut |kb, j| {
            let at: Vec<Value> = offs
                .iter()
                .zip(&inner_strides)
                .map(|(o, s)| {
                    let js = kb.b.ins().imul(j, *s);
                    kb.b.ins().iadd(*o, js)
                })
                .collect();
            let vals: Vec<Value> = ptrs
                .iter()
                .zip(&at[1..])
                .zip(in_dt)
                .map(|((p, o), t)| kb.load(*p, *o, *t))
                .collect();
            let v = scalar_op(kb, op, &vals);
            kb.store(out, at[0], out_dt, v);
        });
    });
}

/// One elementwise op on f32x4 lanes (a bool is an i32 0 or 1 per lane,
/// carried in an f32x4).
pub(super) fn vector_op(b: &mut FunctionBuilder, op: &Op, vals: &[Value]) -> Value {
    let v4 = types::F32X4;
    match op {
        // Lanes of all ones where the comparison holds, then 0 or 1.
        Op::Cmp(c) => {
            let mask = b.ins().fcmp(float_cc(*c), vals[0], vals[1]);
            let one = b.ins().iconst(types::I32, 1);
            let ones = b.ins().splat(types::I32X4, one);
            let r = b.ins().band(mask, ones);
            b.ins().bitcast(
                v4,
                MemFlagsData::new().with_endianness(Endianness::Little),
                r,
            )
        }
        // The bool lanes (loaded as f32 bits) become all-ones masks.
        Op::Select => {
            let le = MemFlagsData::new().with_endianness(Endianness::Little);
            let c = b.ins().bitcast(types::I32X4, le, vals[0]);
            let zero = b.ins().iconst(types::I32, 0);
            let zeros = b.ins().splat(types::I32X4, zero);
            let m = b.ins().icmp(IntCC::NotEqual, c, zeros);
            let m = b.ins().bitcast(v4, le, m);
            b.ins().bitselect(m, vals[1], vals[2])
        }
        Op::Add => b.ins().fadd(vals[0], vals[1]),
        Op::Mul => b.ins().fmul(vals[0], vals[1]),
        Op::Max => b.ins().fmax(vals[0], vals[1]),
        Op::Neg => b.ins().fneg(vals[0]),
        Op::Recip => {
            let one = b.ins().f32const(1.0);
            let ones = b.ins().splat(v4, one);
            b.ins().fdiv(ones, vals[0])
        }
        Op::Sqrt => b.ins().sqrt(vals[0]),
        Op::Abs => b.ins().fabs(vals[0]),
        Op::Exp => inline::exp(b, true, vals[0]),
        Op::Log => inline::ln(b, true, vals[0]),
        Op::Tanh => inline::tanh(b, true, vals[0]),
        Op::Sigmoid => inline::sigmoid(b, true, vals[0]),
        _ => vals[0],
    }
}

/// One elementwise op of the vector plan on a single f32 (a bool as i32).
pub(super) fn scalar_op(kb: &mut Kb, op: &Op, vals: &[Value]) -> Value {
    match op {
        Op::Add | Op::Mul | Op::Max | Op::Cmp(_) => binary(kb, op, vals[0], vals[1], DType::F32),
        Op::Select => {
            let c = kb.b.ins().icmp_imm_s(IntCC::NotEqual, vals[0], 0);
            kb.b.ins().select(c, vals[1], vals[2])
        }
        Op::StopGradient | Op::Broadcast | Op::AllReduce => vals[0],
        other => unary(kb, other, vals[0], DType::F32),
    }
}
