//! The f32 math of `math.rs` emitted inline in CLIF (same operation order).
//!
//! Each function works on one f32 or on four lanes of an f32x4: constants
//! are splat and selects become bit-selects on lane masks.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{types, Endianness, InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::FunctionBuilder;

use super::super::math::{EXP_HI, EXP_LO, EXP_P, LN2_HI, LN2_LO, LOG2E, LOG_P, TANH_P};

/// Lane types: (float, int).
fn tys(vector: bool) -> (Type, Type) {
    if vector {
        (types::F32X4, types::I32X4)
    } else {
        (types::F32, types::I32)
    }
}

fn c(b: &mut FunctionBuilder, vector: bool, v: f32) -> Value {
    let x = b.ins().f32const(v);
    if vector {
        b.ins().splat(types::F32X4, x)
    } else {
        x
    }
}

fn ci(b: &mut FunctionBuilder, vector: bool, v: i32) -> Value {
    let x = b.ins().iconst(types::I32, i64::from(v));
    if vector {
        b.ins().splat(types::I32X4, x)
    } else {
        x
    }
}

fn bits(vector: bool) -> MemFlagsData {
    if vector {
        MemFlagsData::new().with_endianness(Endianness::Little)
    } else {
        MemFlagsData::new()
    }
}

/// where(cond, a, b) for a comparison result `cond`.
fn sel(b: &mut FunctionBuilder, vector: bool, cond: Value, x: Value, y: Value) -> Value {
    if vector {
        let mask = b.ins().bitcast(types::F32X4, bits(true), cond);
        b.ins().bitselect(mask, x, y)
    } else {
        b.ins().select(cond, x, y)
    }
}

fn pow2i(b: &mut FunctionBuilder, vector: bool, n: Value) -> Value {
    let (ft, _) = tys(vector);
    let k = ci(b, vector, 127);
    let biased = b.ins().iadd(n, k);
    let sh = b.ins().ishl_imm_u(biased, 23);
    b.ins().bitcast(ft, bits(vector), sh)
}

pub fn exp(b: &mut FunctionBuilder, vector: bool, x: Value) -> Value {
    let (_, it) = tys(vector);
    let (lo, hi) = (c(b, vector, EXP_LO), c(b, vector, EXP_HI));
    let xm = b.ins().fmax(x, lo);
    let xc = b.ins().fmin(xm, hi);
    let l2e = c(b, vector, LOG2E);
    let t = b.ins().fmul(xc, l2e);
    let n = b.ins().nearest(t);
    let (h1, h2) = (c(b, vector, LN2_HI), c(b, vector, LN2_LO));
    let t1 = b.ins().fmul(n, h1);
    let r1 = b.ins().fsub(xc, t1);
    let t2 = b.ins().fmul(n, h2);
    let r = b.ins().fsub(r1, t2);
    let mut p = c(b, vector, EXP_P[0]);
    for k in &EXP_P[1..] {
        let m = b.ins().fmul(p, r);
        let kc = c(b, vector, *k);
        p = b.ins().fadd(m, kc);
    }
    let pr = b.ins().fmul(p, r);
    let prr = b.ins().fmul(pr, r);
    let s = b.ins().fadd(prr, r);
    let one = c(b, vector, 1.0);
    let p = b.ins().fadd(s, one);
    let ni = b.ins().fcvt_to_sint_sat(it, n);
    let h = b.ins().sshr_imm_u(ni, 1);
    let rest = b.ins().isub(ni, h);
    let ph = pow2i(b, vector, h);
    let pr = pow2i(b, vector, rest);
    let y1 = b.ins().fmul(p, ph);
    let y = b.ins().fmul(y1, pr);
    let over = b.ins().fcmp(FloatCC::GreaterThan, x, hi);
    let inf = c(b, vector, f32::INFINITY);
    let y = sel(b, vector, over, inf, y);
    let under = b.ins().fcmp(FloatCC::LessThan, x, lo);
    let zero = c(b, vector, 0.0);
    sel(b, vector, under, zero, y)
}

pub fn ln(b: &mut FunctionBuilder, vector: bool, x: Value) -> Value {
    let (ft, it) = tys(vector);
    let minp = c(b, vector, f32::MIN_POSITIVE);
    let small = b.ins().fcmp(FloatCC::LessThan, x, minp);
    let scale = c(b, vector, 8_388_608.0);
    let xscaled = b.ins().fmul(x, scale);
    let xs = sel(b, vector, small, xscaled, x);
    let bts = b.ins().bitcast(it, bits(vector), xs);
    let sh = b.ins().ushr_imm_u(bts, 23);
    let ff = ci(b, vector, 0xff);
    let ex = b.ins().band(sh, ff);
    let k126 = ci(b, vector, -126);
    let e0 = b.ins().iadd(ex, k126);
    let k23 = ci(b, vector, -23);
    let e23 = b.ins().iadd(e0, k23);
    // Integer lanes select through the same mask (as floats).
    let e0f = b.ins().bitcast(ft, bits(vector), e0);
    let e23f = b.ins().bitcast(ft, bits(vector), e23);
    let ef = sel(b, vector, small, e23f, e0f);
    let e = b.ins().bitcast(it, bits(vector), ef);
    let mmask = ci(b, vector, 0x807f_ffff_u32 as i32);
    let mb = b.ins().band(bts, mmask);
    let half_exp = ci(b, vector, 0x3f00_0000);
    let mb = b.ins().bor(mb, half_exp);
    let m = b.ins().bitcast(ft, bits(vector), mb);
    let rt = c(b, vector, std::f32::consts::FRAC_1_SQRT_2);
    let lt = b.ins().fcmp(FloatCC::LessThan, m, rt);
    let m1i = ci(b, vector, -1);
    let em1 = b.ins().iadd(e, m1i);
    let em1f = b.ins().bitcast(ft, bits(vector), em1);
    let ef = b.ins().bitcast(ft, bits(vector), e);
    let ef = sel(b, vector, lt, em1f, ef);
    let e = b.ins().bitcast(it, bits(vector), ef);
    let one = c(b, vector, 1.0);
    let m2 = b.ins().fadd(m, m);
    let m2 = b.ins().fsub(m2, one);
    let m1 = b.ins().fsub(m, one);
    let m = sel(b, vector, lt, m2, m1);
    let z = b.ins().fmul(m, m);
    let mut y = c(b, vector, LOG_P[0]);
    for k in &LOG_P[1..] {
        let t = b.ins().fmul(y, m);
        let kc = c(b, vector, *k);
        y = b.ins().fadd(t, kc);
    }
    let ym = b.ins().fmul(y, m);
    let y = b.ins().fmul(ym, z);
    let ef = b.ins().fcvt_from_sint(ft, e);
    let lo = c(b, vector, LN2_LO);
    let t = b.ins().fmul(ef, lo);
    let y = b.ins().fadd(y, t);
    let half = c(b, vector, -0.5);
    let t = b.ins().fmul(half, z);
    let y = b.ins().fadd(y, t);
    let hi = c(b, vector, LN2_HI);
    let t = b.ins().fmul(ef, hi);
    let s = b.ins().fadd(m, y);
    let r = b.ins().fadd(s, t);
    // x < 0 or NaN → NaN; 0 → −inf; +inf → +inf
    let zero = c(b, vector, 0.0);
    let nan = c(b, vector, f32::NAN);
    let neg = b.ins().fcmp(FloatCC::UnorderedOrLessThan, x, zero);
    let r = sel(b, vector, neg, nan, r);
    let is0 = b.ins().fcmp(FloatCC::Equal, x, zero);
    let ninf = c(b, vector, f32::NEG_INFINITY);
    let r = sel(b, vector, is0, ninf, r);
    let inf = c(b, vector, f32::INFINITY);
    let isinf = b.ins().fcmp(FloatCC::Equal, x, inf);
    sel(b, vector, isinf, inf, r)
}

pub fn tanh(b: &mut FunctionBuilder, vector: bool, x: Value) -> Value {
    let a = b.ins().fabs(x);
    let z = b.ins().fmul(x, x);
    let mut p = c(b, vector, TANH_P[0]);
    for k in &TANH_P[1..] {
        let t = b.ins().fmul(p, z);
        let kc = c(b, vector, *k);
        p = b.ins().fadd(t, kc);
    }
    let pz = b.ins().fmul(p, z);
    let pzx = b.ins().fmul(pz, x);
    let small = b.ins().fadd(pzx, x);
    let a2 = b.ins().fadd(a, a);
    let e = exp(b, vector, a2);
    let one = c(b, vector, 1.0);
    let two = c(b, vector, 2.0);
    let e1 = b.ins().fadd(e, one);
    let q = b.ins().fdiv(two, e1);
    let big = b.ins().fsub(one, q);
    let zero = c(b, vector, 0.0);
    let negx = b.ins().fcmp(FloatCC::LessThan, x, zero);
    let nbig = b.ins().fneg(big);
    let big = sel(b, vector, negx, nbig, big);
    let lim = c(b, vector, 0.625);
    let is_small = b.ins().fcmp(FloatCC::LessThan, a, lim);
    sel(b, vector, is_small, small, big)
}

pub fn sigmoid(b: &mut FunctionBuilder, vector: bool, x: Value) -> Value {
    let nx = b.ins().fneg(x);
    let e = exp(b, vector, nx);
    let one = c(b, vector, 1.0);
    let d = b.ins().fadd(one, e);
    b.ins().fdiv(one, d)
}
