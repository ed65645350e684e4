//! The JIT's own matmul: strips of 4×8 f32x4 register tiles, each followed by its epilogue.

use cranelift_codegen::ir::{types, InstBuilder, MemFlagsData, Value};

use super::kb::{clif_type, Kb, Sz};
use crate::ir::{DType, Graph, NodeId};

/// A matmul over output rows [lo, hi) (the whole output, or one thread's
/// share), strip by strip: f32 in 4×8 register tiles of f32x4
/// accumulators, 1×8 tiles for the rows left over and scalar dot products
/// for the ragged right columns; other dtypes by scalar dot products.
/// After each strip, `epilogue(start, end)` runs on its rows.
pub(super) fn lower_matmul(
    kb: &mut Kb,
    g: &Graph,
    id: NodeId,
    epilogue: &mut dyn FnMut(&mut Kb, Value, Value),
) {
    let node = g.node(id);
    let d = node.ty.dtype;
    let ins = &node.inputs;
    let (ta, tb) = (g.ty(ins[0]), g.ty(ins[1]));
    let (m, k, n) = (
        Sz::of(ta.shape.0[0]),
        Sz::of(ta.shape.0[1]),
        Sz::of(tb.shape.0[1]),
    );
    let (mv, kv, nv) = (kb.sz(m), kb.sz(k), kb.sz(n));
    let one = kb.iconst(1);
    // a[i, p] is at i·sa_i + p·sa_p: [k, 1] as stored, or [1, m] when a is
    // a transpose read from its untransposed input.
    let (pa, sa) = match kb.inline.get(&ins[0]).copied() {
        Some(x) => (kb.buf(x), (one, mv)),
        None => (kb.buf(ins[0]), (kv, one)),
    };
    // b[p, j] at p·sb_p + j·sb_j: [n, 1] as stored, or [1, k] when b is a
    // transpose read from its untransposed input (g·Wᵀ).
    let (pb, sb) = match kb.inline.get(&ins[1]).copied() {
        Some(x) => (kb.buf(x), (one, kv)),
        None => (kb.buf(ins[1]), (nv, one)),
    };
    let out = kb.buf(id);
    let zero = kb.iconst(0);
    let (lo, hi) = (kb.lo, kb.hi);
    if d != DType::F32 {
        kb.range(lo, hi, 1, &mut |kb, i| {
            kb.range(zero, nv, 1, &mut |kb, j| {
                scalar_dot(kb, pa, sa, pb, sb, out, i, j, kv, nv, d)
            });
            let next = kb.b.ins().iadd_imm_s(i, 1);
            epilogue(kb, i, next);
        });
        return;
    }
    let n8 = kb.b.ins().band_imm_s(nv, !7);
    // Blocks of `TILE_ROWS` rows: a full block is one strip of 4, the last
    // (short) one strips of 1 (loops of one trip or none, so that the
    // epilogue, often most of the kernel's code, is emitted only once).
    kb.range(lo, hi, TILE_ROWS as i64, &mut |kb, i| {
        let full = kb.b.ins().iadd_imm_s(i, TILE_ROWS as i64);
        let next = kb.b.ins().smin(full, hi);
        let whole = kb.b.ins().isub(next, i);
        let whole = kb.b.ins().udiv_imm_u(whole, TILE_ROWS as i64);
        let whole = kb.b.ins().imul_imm_s(whole, TILE_ROWS as i64);
        let tiled = kb.b.ins().iadd(i, whole);
        for (start, end, rows) in [(i, tiled, TILE_ROWS), (tiled, next, 1)] {
            kb.range(start, end, rows as i64, &mut |kb, r0| {
                matmul_strip(kb, pa, sa, pb, sb, out, r0, n8, kv, nv, rows);
                let r1 = kb.b.ins().iadd_imm_s(r0, rows as i64);
                kb.range(r0, r1, 1, &mut |kb, r| {
                    kb.range(n8, nv, 1, &mut |kb, j| {
                        scalar_dot(kb, pa, sa, pb, sb, out, r, j, kv, nv, d)
                    });
                });
            });
        }
        epilogue(kb, i, next);
    });
}

/// out[i, j] = Σₚ a[i, p]·b[p, j], one element (the ragged edges).
#[allow(clippy::too_many_arguments)]
fn scalar_dot(
    kb: &mut Kb,
    pa: Value,
    (sa_i, sa_p): (Value, Value),
    pb: Value,
    (sb_p, sb_j): (Value, Value),
    out: Value,
    i: Value,
    j: Value,
    kv: Value,
    nv: Value,
    d: DType,
) {
    let acc = kb.b.declare_var(clif_type(d));
    let z = kb.fconst(d, 0.0);
    kb.b.def_var(acc, z);
    let a0 = kb.b.ins().imul(i, sa_i);
    let b0 = kb.b.ins().imul(j, sb_j);
    let zero = kb.iconst(0);
    kb.range(zero, kv, 1, &mut |kb, p| {
        let pa_off = kb.b.ins().imul(p, sa_p);
        let ao = kb.b.ins().iadd(a0, pa_off);
        let pb_off = kb.b.ins().imul(p, sb_p);
        let bo = kb.b.ins().iadd(b0, pb_off);
        let x = kb.load(pa, ao, d);
        let y = kb.load(pb, bo, d);
        let prod = kb.b.ins().fmul(x, y);
        let a = kb.b.use_var(acc);
        let s = kb.b.ins().fadd(a, prod);
        kb.b.def_var(acc, s);
    });
    let a = kb.b.use_var(acc);
    let io = kb.b.ins().imul(i, nv);
    let o = kb.b.ins().iadd(io, j);
    kb.store(out, o, d, a);
}

/// Rows per register tile. Five or six rows (10 or 12 accumulators) fit the
/// 16 xmm registers on paper, but Cranelift's register allocator then
/// spills accumulators to the stack on every step (seen in the machine
/// code): measured 22 and 26 GFLOP/s against 32 for four rows.
pub const TILE_ROWS: usize = 4;

/// One strip of a matmul: output rows [i, i + rows), columns [0, n8). For
/// each `rows`-row × 8-column tile of the output, 2·rows f32x4 accumulators
/// live in registers through the whole k loop; each step loads two vectors
/// of b's row p and broadcasts `rows` elements of a's column p. Pointers
/// advance by addition and the loads use base + offset addressing (no
/// multiplications in the k loop).
#[allow(clippy::too_many_arguments)]
fn matmul_strip(
    kb: &mut Kb,
    pa: Value,
    (sa_i, sa_p): (Value, Value),
    pb: Value,
    (sb_p, sb_j): (Value, Value),
    out: Value,
    i: Value,
    n8: Value,
    kv: Value,
    nv: Value,
    rows: usize,
) {
    let v4 = types::F32X4;
    let flags = MemFlagsData::new().with_notrap();
    let zero = kb.iconst(0);
    // Byte offsets of a's rows within a tile, and per-step advances.
    let row_bytes_a = kb.b.ins().imul_imm_s(sa_i, 4);
    let a_offs: Vec<Value> = (0..rows)
        .map(|r| kb.b.ins().imul_imm_s(row_bytes_a, r as i64))
        .collect();
    let a_step = kb.b.ins().imul_imm_s(sa_p, 4);
    let b_step = kb.b.ins().imul_imm_s(sb_p, 4);
    // Bytes between b's columns: 4 when its rows are contiguous (two
    // vector loads a step), else a transposed b's column stride (eight
    // element loads a step, gathered into the two vectors).
    let b_col = kb.b.ins().imul_imm_s(sb_j, 4);
    let b_rows_contiguous = kb.const_of(sb_j) == Some(1);
    let out_row = kb.b.ins().imul_imm_s(nv, 4);
    {
        let ia = kb.b.ins().imul(i, row_bytes_a);
        let a_tile = kb.b.ins().iadd(pa, ia);
        kb.range(zero, n8, 8, &mut |kb, j| {
            let accs: Vec<_> = (0..2 * rows)
                .map(|_| {
                    let v = kb.b.declare_var(v4);
                    let z = kb.b.ins().f32const(0.0);
                    let zv = kb.b.ins().splat(v4, z);
                    kb.b.def_var(v, zv);
                    v
                })
                .collect();
            let ap = kb.b.declare_var(types::I64);
            kb.b.def_var(ap, a_tile);
            let bp = kb.b.declare_var(types::I64);
            let jb = kb.b.ins().imul(j, b_col);
            let b0p = kb.b.ins().iadd(pb, jb);
            kb.b.def_var(bp, b0p);
            kb.range(zero, kv, 1, &mut |kb, _p| {
                let bq = kb.b.use_var(bp);
                let aq = kb.b.use_var(ap);
                let (b0, b1) = if b_rows_contiguous {
                    (
                        kb.b.ins().load(v4, flags, bq, 0),
                        kb.b.ins().load(v4, flags, bq, 16),
                    )
                } else {
                    let mut half = |h: i64| {
                        let mut v = None;
                        for c in 0..4 {
                            let off = kb.b.ins().imul_imm_s(b_col, h * 4 + c);
                            let at = kb.b.ins().iadd(bq, off);
                            let x = kb.b.ins().load(types::F32, flags, at, 0);
                            v = Some(match v {
                                None => kb.b.ins().scalar_to_vector(v4, x),
                                Some(v) => kb.b.ins().insertlane(v, x, c as u8),
                            });
                        }
                        v.expect("four lanes")
                    };
                    (half(0), half(1))
                };
                for r in 0..rows {
                    let addr = kb.b.ins().iadd(aq, a_offs[r]);
                    let a = kb.b.ins().load(types::F32, flags, addr, 0);
                    let av = kb.b.ins().splat(v4, a);
                    for c in 0..2 {
                        let acc = accs[r * 2 + c];
                        let cur = kb.b.use_var(acc);
                        let bv = if c == 0 { b0 } else { b1 };
                        let nv = if kb.fma {
                            kb.b.ins().fma(av, bv, cur)
                        } else {
                            let prod = kb.b.ins().fmul(av, bv);
                            kb.b.ins().fadd(prod, cur)
                        };
                        kb.b.def_var(acc, nv);
                    }
                }
                let bn = kb.b.ins().iadd(bq, b_step);
                kb.b.def_var(bp, bn);
                let an = kb.b.ins().iadd(aq, a_step);
                kb.b.def_var(ap, an);
            });
            let io = kb.b.ins().imul(i, out_row);
            let base = kb.b.ins().iadd(out, io);
            let jo = kb.b.ins().imul_imm_s(j, 4);
            let base = kb.b.ins().iadd(base, jo);
            for r in 0..rows {
                let ro = kb.b.ins().imul_imm_s(out_row, r as i64);
                let op = kb.b.ins().iadd(base, ro);
                for c in 0..2 {
                    let v = kb.b.use_var(accs[r * 2 + c]);
                    kb.b.ins().store(flags, v, op, (c * 16) as i32);
                }
            }
        });
    }
}
