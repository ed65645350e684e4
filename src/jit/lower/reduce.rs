//! Reductions: sums and maxima over an axis mask (f32 columns four or sixteen at a time), argmax.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, InstBuilder, MemFlagsData, Value};

use super::kb::{clif_type, numel, Kb, Site, Sz};
use crate::ir::{DType, Graph, NodeId, Op};

/// A sum or max over the `axes` bitmask.
pub(super) fn reduce(kb: &mut Kb, g: &Graph, id: NodeId, site: &Site, axes: u32) {
    let (out_t, d, out, ins, in_t) = site.parts();
    let node = g.node(id);
    let is_sum = matches!(node.op, Op::ReduceSum { .. });
    let init = if is_sum {
        0.0
    } else if d.is_float() {
        f64::NEG_INFINITY
    } else {
        f64::from(i32::MIN)
    };
    kb.flat(numel(&out_t.shape), &mut |kb, o| {
        let z = kb.fconst(d, init);
        kb.store(out, o, d, z);
    });
    let src = kb.buf(ins[0]);
    let it = &in_t[0].shape;
    let dims = kb.dims(it);
    let ist = kb.strides_v(it);
    // Output strides along the input's axes: 0 on reduced ones.
    let kept: Vec<usize> = (0..it.rank()).filter(|i| axes & (1 << i) == 0).collect();
    let ost_kept = kb.strides_v(&out_t.shape);
    let ost: Vec<Value> = (0..it.rank())
        .map(|i| match kept.iter().position(|k| *k == i) {
            Some(p) => ost_kept[p],
            None => kb.iconst(0),
        })
        .collect();
    let zero = kb.iconst(0);
    let r = it.rank();
    if d == DType::F32 && r >= 2 && axes & (1 << (r - 1)) == 0 {
        reduce_f32x4(kb, (src, out), (&dims, &ist, &ost), (axes, zero), is_sum);
        return;
    }
    kb.nest(&dims, &[ist, ost], &[zero, zero], &mut |kb, offs, _| {
        let v = kb.load(src, offs[0], d);
        let acc = kb.load(out, offs[1], d);
        let r = match (is_sum, d.is_float()) {
            (true, true) => kb.b.ins().fadd(acc, v),
            (true, false) => kb.b.ins().iadd(acc, v),
            (false, true) => kb.b.ins().fmax(acc, v),
            (false, false) => kb.b.ins().smax(acc, v),
        };
        kb.store(out, offs[1], d, r);
    });
}

/// A float32 reduction that keeps the innermost axis, contiguous in input
/// and output: four accumulators at a time, each summed in the same order
/// as the scalar loop.
fn reduce_f32x4(
    kb: &mut Kb,
    (src, out): (Value, Value),
    (dims, ist, ost): (&[Value], &[Value], &[Value]),
    (axes, zero): (u32, Value),
    is_sum: bool,
) {
    let d = DType::F32;
    let r = dims.len();
    let len = dims[r - 1];
    let flags = MemFlagsData::new().with_notrap();
    let v4 = types::F32X4;
    // Column sums first, sixteen at a time; the columns left over take
    // the loop below.
    let mut start = kb.iconst(0);
    if (0..r - 1).all(|i| axes & (1 << i) != 0) {
        start = column_sums_x16(kb, (src, out), (dims, ist), start, is_sum);
    }
    let outer: Vec<Vec<Value>> = vec![ist[..r - 1].to_vec(), ost[..r - 1].to_vec()];
    kb.nest(&dims[..r - 1], &outer, &[zero, zero], &mut |kb, offs, _| {
        let len4 = match kb.const_of(len) {
            Some(n) => kb.iconst(n & !3),
            None => kb.b.ins().band_imm_s(len, !3),
        };
        let (si, so) = (offs[0], offs[1]);
        kb.range(start, len4, 4, &mut |kb, j| {
            let oi = kb.b.ins().iadd(si, j);
            let ai = kb.addr(src, oi, d);
            let oo = kb.b.ins().iadd(so, j);
            let ao = kb.addr(out, oo, d);
            let v = kb.b.ins().load(v4, flags, ai, 0);
            let acc = kb.b.ins().load(v4, flags, ao, 0);
            let r = if is_sum {
                kb.b.ins().fadd(acc, v)
            } else {
                kb.b.ins().fmax(acc, v)
            };
            kb.b.ins().store(flags, r, ao, 0);
        });
        kb.range(len4, len, 1, &mut |kb, j| {
            let oi = kb.b.ins().iadd(si, j);
            let oo = kb.b.ins().iadd(so, j);
            let v = kb.load(src, oi, d);
            let acc = kb.load(out, oo, d);
            let r = if is_sum {
                kb.b.ins().fadd(acc, v)
            } else {
                kb.b.ins().fmax(acc, v)
            };
            kb.store(out, oo, d, r);
        });
    });
}

/// Every axis but the innermost reduced (a bias gradient's column sums):
/// sixteen columns at a time go down all the rows in four vector
/// registers, each column still summed in row order. Returns where the
/// columns left over start.
fn column_sums_x16(
    kb: &mut Kb,
    (src, out): (Value, Value),
    (dims, ist): (&[Value], &[Value]),
    start: Value,
    is_sum: bool,
) -> Value {
    let d = DType::F32;
    let r = dims.len();
    let len = dims[r - 1];
    let flags = MemFlagsData::new().with_notrap();
    let v4 = types::F32X4;
    let len16 = match kb.const_of(len) {
        Some(n) => kb.iconst(n & !15),
        None => kb.b.ins().band_imm_s(len, !15),
    };
    let outer_ist = vec![ist[..r - 1].to_vec()];
    kb.range(start, len16, 16, &mut |kb, j| {
        let vars: Vec<_> = (0..4)
            .map(|k| {
                let o = kb.b.ins().iadd_imm_s(j, 4 * k);
                let a = kb.addr(out, o, d);
                let acc = kb.b.ins().load(v4, flags, a, 0);
                let var = kb.b.declare_var(v4);
                kb.b.def_var(var, acc);
                (var, a)
            })
            .collect();
        let z = kb.iconst(0);
        kb.nest(&dims[..r - 1], &outer_ist, &[z], &mut |kb, offs, _| {
            for (k, (var, _)) in vars.iter().enumerate() {
                let o = kb.b.ins().iadd(offs[0], j);
                let o = kb.b.ins().iadd_imm_s(o, 4 * k as i64);
                let a = kb.addr(src, o, d);
                let v = kb.b.ins().load(v4, flags, a, 0);
                let acc = kb.b.use_var(*var);
                let r = if is_sum {
                    kb.b.ins().fadd(acc, v)
                } else {
                    kb.b.ins().fmax(acc, v)
                };
                kb.b.def_var(*var, r);
            }
        });
        for (var, a) in &vars {
            let acc = kb.b.use_var(*var);
            kb.b.ins().store(flags, acc, *a, 0);
        }
    });
    len16
}

/// The index of the largest value along `axis` (NaN counts as the
/// largest; the first wins).
pub(super) fn argmax(kb: &mut Kb, site: &Site, axis: u32) {
    let (out_t, _, out, ins, in_t) = site.parts();
    let src = kb.buf(ins[0]);
    let it = in_t[0].clone();
    let a = axis as usize;
    let dims = kb.dims(&out_t.shape);
    let ost = kb.strides_v(&out_t.shape);
    let ist_all = kb.strides_v(&it.shape);
    let ist: Vec<Value> = (0..it.shape.rank())
        .filter(|i| *i != a)
        .map(|i| ist_all[i])
        .collect();
    let len = kb.sz(Sz::of(it.shape.0[a]));
    let astride = ist_all[a];
    let idt = it.dtype;
    let zero = kb.iconst(0);
    kb.nest(&dims, &[ost, ist], &[zero, zero], &mut |kb, offs, _| {
        let base = offs[1];
        let best_i = kb.b.declare_var(types::I64);
        let best_v = kb.b.declare_var(clif_type(idt));
        let z = kb.iconst(0);
        kb.b.def_var(best_i, z);
        let v0 = kb.load(src, base, idt);
        kb.b.def_var(best_v, v0);
        let one = kb.iconst(1);
        kb.nest(
            &[len],
            &[vec![astride], vec![one]],
            &[base, z],
            &mut |kb, o, _| {
                let v = kb.load(src, o[0], idt);
                let cur = kb.b.use_var(best_v);
                let better = if idt.is_float() {
                    // NaN counts as the maximum; the first one wins.
                    let gt = kb.b.ins().fcmp(FloatCC::GreaterThan, v, cur);
                    let vnan = kb.b.ins().fcmp(FloatCC::Unordered, v, v);
                    let cnan = kb.b.ins().fcmp(FloatCC::Unordered, cur, cur);
                    let either = kb.b.ins().bor(gt, vnan);
                    let notc = kb.b.ins().bxor_imm_s(cnan, 1);
                    kb.b.ins().band(either, notc)
                } else {
                    kb.b.ins().icmp(IntCC::SignedGreaterThan, v, cur)
                };
                let ci = kb.b.use_var(best_i);
                let ni = kb.b.ins().select(better, o[1], ci);
                let nv = kb.b.ins().select(better, v, cur);
                kb.b.def_var(best_i, ni);
                kb.b.def_var(best_v, nv);
            },
        );
        let bi = kb.b.use_var(best_i);
        let b32 = kb.b.ins().ireduce(types::I32, bi);
        kb.store(out, offs[0], DType::I32, b32);
    });
}
