//! Copies (reshape; transpose, slice and pad as strided copies) and iota and the batch size.

use cranelift_codegen::ir::{types, InstBuilder, Value};

use super::elementwise::convert;
use super::kb::{numel, Kb, Site};
use crate::ir::{DType, NodeId};

/// Copies element by element over `dims`, reading node `src` with (strides,
/// base) and writing buffer `out` with its (strides, base): transpose,
/// slice and pad are this loop with different strides.
fn strided_copy(
    kb: &mut Kb,
    src: NodeId,
    (sst, sbase): (Vec<Value>, Value),
    out: Value,
    (ost, obase): (Vec<Value>, Value),
    dims: &[Value],
    d: DType,
) {
    let sp = kb.buf(src);
    kb.nest(dims, &[sst, ost], &[sbase, obase], &mut |kb, offs, _| {
        let v = kb.load(sp, offs[0], d);
        kb.store(out, offs[1], d, v);
    });
}

/// A reshape: the values copied in order.
pub(super) fn reshape(kb: &mut Kb, site: &Site) {
    let (out_t, d, out, ins, _) = site.parts();
    let src = kb.buf(ins[0]);
    kb.flat(numel(&out_t.shape), &mut |kb, o| {
        let v = kb.load(src, o, d);
        kb.store(out, o, d, v);
    });
}

/// A transpose: the input read with permuted strides.
pub(super) fn transpose(kb: &mut Kb, site: &Site, perm: &[u8]) {
    let (out_t, d, out, ins, in_t) = site.parts();
    // out[i] = x[i permuted]: the input read with permuted strides.
    let dims = kb.dims(&out_t.shape);
    let ist = kb.strides_v(&in_t[0].shape);
    let pst: Vec<Value> = perm.iter().map(|p| ist[*p as usize]).collect();
    let ost = kb.strides_v(&out_t.shape);
    let zero = kb.iconst(0);
    strided_copy(kb, ins[0], (pst, zero), out, (ost, zero), &dims, d);
}

/// A strided slice along `axis`.
pub(super) fn slice(kb: &mut Kb, site: &Site, (axis, start, step): (u32, u64, u64)) {
    let (out_t, d, out, ins, in_t) = site.parts();
    // The input read from `start` with its axis stride scaled by `step`.
    let dims = kb.dims(&out_t.shape);
    let (ist, base) = kb.stepped_strides(&in_t[0].shape, axis, start, step);
    let ost = kb.strides_v(&out_t.shape);
    let zero = kb.iconst(0);
    strided_copy(kb, ins[0], (ist, base), out, (ost, zero), &dims, d);
}

/// Zeros with the input written at strided positions along `axis`.
pub(super) fn pad(kb: &mut Kb, site: &Site, (axis, start, step): (u32, u64, u64)) {
    let (out_t, d, out, ins, in_t) = site.parts();
    // Zeros, then the input written at its strided positions (the
    // mirror image of Slice).
    kb.flat(numel(&out_t.shape), &mut |kb, o| {
        let z = kb.fconst(d, 0.0);
        kb.store(out, o, d, z);
    });
    let dims = kb.dims(&in_t[0].shape);
    let ist = kb.strides_v(&in_t[0].shape);
    let (ost, base) = kb.stepped_strides(&out_t.shape, axis, start, step);
    let zero = kb.iconst(0);
    strided_copy(kb, ins[0], (ist, zero), out, (ost, base), &dims, d);
}

/// The index along `axis` at every position.
pub(super) fn iota(kb: &mut Kb, site: &Site, axis: u32) {
    let (out_t, d, out, _, _) = site.parts();
    let dims = kb.dims(&out_t.shape);
    let ost = kb.strides_v(&out_t.shape);
    let zero = kb.iconst(0);
    let a = axis as usize;
    kb.nest(&dims, &[ost], &[zero], &mut |kb, offs, idx| {
        let i32v = kb.b.ins().ireduce(types::I32, idx[a]);
        let v = convert(kb, i32v, DType::I32, d);
        kb.store(out, offs[0], d, v);
    });
}

/// The run-time batch size as a scalar.
pub(super) fn batch_size(kb: &mut Kb, site: &Site) {
    let (_, d, out, _, _) = site.parts();
    let b32 = kb.b.ins().ireduce(types::I32, kb.batch);
    let v = convert(kb, b32, DType::I32, d);
    let zero = kb.iconst(0);
    kb.store(out, zero, d, v);
}
