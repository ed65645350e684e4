//! exp, log, tanh and sigmoid as polynomial approximations in f32 (the
//! Cephes forms), written once here in Rust and emitted as the same
//! operation sequence in Cranelift IR by `lower.rs`, so the kernels need no
//! call into libm per element. Tests compare both against f64 libm: max
//! relative error ≤ 2e-6 where the function is defined; overflow to ±inf,
//! underflow to 0, and NaN propagate.

// The coefficients are Cephes's as published, with more digits than f32
// keeps; the compiler rounds them.
#![allow(clippy::excessive_precision)]

/// ln 2 split in two (Cody–Waite), so n·ln2 is exact in f32.
pub const LN2_HI: f32 = 0.693_359_4;
pub const LN2_LO: f32 = -2.121_944_4e-4;
pub const LOG2E: f32 = std::f32::consts::LOG2_E;
/// exp overflows to +inf above this, and underflows to 0 below EXP_LO.
pub const EXP_HI: f32 = 88.722_84;
pub const EXP_LO: f32 = -103.972_08;
pub const EXP_P: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    5.000_000_1e-1,
];
pub const LOG_P: [f32; 9] = [
    7.037_683_6e-2,
    -1.151_461e-1,
    1.167_699_9e-1,
    -1.242_014_1e-1,
    1.424_932_3e-1,
    -1.666_805_8e-1,
    2.000_071_5e-1,
    -2.499_999_4e-1,
    3.333_333_1e-1,
];
pub const TANH_P: [f32; 5] = [
    -5.704_988_7e-3,
    2.063_908_9e-2,
    -5.373_971_6e-2,
    1.333_144_2e-1,
    -3.333_328_2e-1,
];

/// 2ⁿ for n in [-126, 127], from the exponent bits.
fn pow2i(n: i32) -> f32 {
    f32::from_bits(((n + 127) as u32) << 23)
}

pub fn exp(x: f32) -> f32 {
    let xc = x.clamp(EXP_LO, EXP_HI);
    let n = (xc * LOG2E).round_ties_even();
    let r = xc - n * LN2_HI - n * LN2_LO;
    let mut p = EXP_P[0];
    for c in &EXP_P[1..] {
        p = p * r + c;
    }
    let p = p * r * r + r + 1.0;
    // 2ⁿ in two halves so that n down to -150 (subnormal results) works.
    let n = n as i32;
    let h = n >> 1;
    let y = p * pow2i(h) * pow2i(n - h);
    if x > EXP_HI {
        f32::INFINITY
    } else if x < EXP_LO {
        0.0
    } else {
        // NaN falls through: the clamp kept it, and so did the arithmetic.
        y
    }
}

pub fn ln(x: f32) -> f32 {
    // Subnormals: scale into the normal range first.
    let small = x < f32::MIN_POSITIVE;
    let xs = if small { x * 8_388_608.0 } else { x };
    let bits = xs.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 126 - if small { 23 } else { 0 };
    let mut m = f32::from_bits((bits & 0x807f_ffff) | 0x3f00_0000);
    if m < std::f32::consts::FRAC_1_SQRT_2 {
        e -= 1;
        m = m + m - 1.0;
    } else {
        m -= 1.0;
    }
    let z = m * m;
    let mut y = LOG_P[0];
    for c in &LOG_P[1..] {
        y = y * m + c;
    }
    let mut y = y * m * z;
    let ef = e as f32;
    y += ef * LN2_LO;
    y += -0.5 * z;
    let r = m + y + ef * LN2_HI;
    if x.is_nan() || x < 0.0 {
        f32::NAN
    } else if x == 0.0 {
        f32::NEG_INFINITY
    } else if x == f32::INFINITY {
        f32::INFINITY
    } else {
        r
    }
}

pub fn tanh(x: f32) -> f32 {
    let a = x.abs();
    // Small |x|: an odd polynomial; else 1 − 2/(e^{2|x|} + 1).
    let z = x * x;
    let mut p = TANH_P[0];
    for c in &TANH_P[1..] {
        p = p * z + c;
    }
    let small = p * z * x + x;
    let e = exp(2.0 * a);
    let big = 1.0 - 2.0 / (e + 1.0);
    let big = if x < 0.0 { -big } else { big };
    if a < 0.625 {
        small
    } else {
        // NaN: a < 0.625 is false and exp(NaN) is NaN, so NaN comes out.
        big
    }
}

pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, f: fn(f32) -> f32, g: fn(f64) -> f64, lo: f32, hi: f32) {
        let n = 200_000;
        let mut worst = 0.0f64;
        let mut at = 0.0;
        for i in 0..=n {
            let x = lo + (hi - lo) * i as f32 / n as f32;
            let want = g(f64::from(x));
            let got = f64::from(f(x));
            if want == 0.0 || !want.is_finite() || want.abs() < f64::from(f32::MIN_POSITIVE) {
                continue;
            }
            let rel = ((got - want) / want).abs();
            if rel > worst {
                worst = rel;
                at = x;
            }
        }
        assert!(
            worst <= 2e-6,
            "{name}: max relative error {worst:e} at {at}"
        );
    }

    #[test]
    fn exp_is_accurate() {
        check("exp", exp, f64::exp, -87.0, 88.5);
        check("exp near 0", exp, f64::exp, -1.0, 1.0);
        assert_eq!(exp(100.0), f32::INFINITY);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(-200.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(0.0), 1.0);
        // subnormal results: exact to the subnormal spacing (1.4e-45 here)
        let s = exp(-100.0);
        assert!(
            s > 0.0 && (f64::from(s) - (-100f64).exp()).abs() < 2e-45,
            "{s}"
        );
    }

    #[test]
    fn log_is_accurate() {
        check("log", ln, f64::ln, 1e-30, 1e30);
        check("log near 1", ln, f64::ln, 0.5, 2.0);
        check("log small", ln, f64::ln, 1e-6, 1e-3);
        assert_eq!(ln(0.0), f32::NEG_INFINITY);
        assert!(ln(-1.0).is_nan());
        assert!(ln(f32::NAN).is_nan());
        assert_eq!(ln(f32::INFINITY), f32::INFINITY);
        assert_eq!(ln(1.0), 0.0);
        let sub = 1e-40f32;
        assert!(((f64::from(ln(sub)) - f64::from(sub).ln()) / f64::from(sub).ln()).abs() < 2e-6);
    }

    #[test]
    fn tanh_is_accurate() {
        check("tanh", tanh, f64::tanh, -12.0, 12.0);
        check("tanh near 0", tanh, f64::tanh, -0.7, 0.7);
        assert_eq!(tanh(50.0), 1.0);
        assert_eq!(tanh(-50.0), -1.0);
        assert_eq!(tanh(f32::INFINITY), 1.0);
        assert!(tanh(f32::NAN).is_nan());
    }

    #[test]
    fn sigmoid_is_accurate() {
        let s = |x: f64| 1.0 / (1.0 + (-x).exp());
        check("sigmoid", sigmoid, s, -80.0, 30.0);
        assert_eq!(sigmoid(200.0), 1.0);
        assert_eq!(sigmoid(-200.0), 0.0);
        assert!(sigmoid(f32::NAN).is_nan());
    }
}
