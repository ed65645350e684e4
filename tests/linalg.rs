//! The REPL's linear algebra checked by value, through the JIT, on random
//! well-conditioned matrices (M·Mᵀ + n·I, symmetric positive definite):
//! A·v = λ·v for eigh, A·inv(A) = I, det = the product of the eigenvalues,
//! and small residuals for solve and cholesky. f64, so the bounds are tight.

use dlc::repl::{Reply, Session};

fn value(s: &mut Session, expr: &str) -> Vec<f64> {
    s.eval(&format!("let r = {expr}")).expect("evaluates");
    assert_eq!(s.eval("r").map(|r| r != Reply::Nothing), Ok(true));
    s.var("r").expect("bound").data
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

#[test]
fn linear_algebra_satisfies_its_identities() {
    let mut s = Session::new(false);
    for n in [1usize, 2, 3, 5, 8] {
        for _ in 0..5 {
            // A fresh random matrix each time (rand draws anew per input).
            s.eval(&format!("let M = f64(randn({n}, {n}))")).expect("M");
            s.eval(&format!("let A = M @ transpose(M) + {n}.0 * f64(eye({n}))"))
                .expect("A");
            s.eval(&format!("let b = f64(randn({n}))")).expect("b");
            let i = value(&mut s, &format!("A @ inv(A) - f64(eye({n}))"));
            assert!(max_abs(&i) < 1e-10, "A·inv(A) − I: {i:?}");
            let res = value(&mut s, "A @ solve(A, b) - b");
            assert!(max_abs(&res) < 1e-10, "A·solve(A, b) − b: {res:?}");
            let l = value(&mut s, "cholesky(A)");
            for r in 0..n {
                for c in r + 1..n {
                    assert_eq!(l[r * n + c], 0.0, "L is lower triangular");
                }
            }
            let llt = value(&mut s, "cholesky(A) @ transpose(cholesky(A)) - A");
            assert!(max_abs(&llt) < 1e-10, "L·Lᵀ − A: {llt:?}");
            let lam = value(&mut s, "eigh(A).values");
            assert!(lam.windows(2).all(|w| w[0] <= w[1]), "ascending: {lam:?}");
            let av = value(
                &mut s,
                "A @ eigh(A).vectors - eigh(A).vectors * eigh(A).values",
            );
            assert!(max_abs(&av) < 1e-9, "A·v − λ·v: {av:?}");
            let vtv = value(
                &mut s,
                &format!("transpose(eigh(A).vectors) @ eigh(A).vectors - f64(eye({n}))"),
            );
            assert!(max_abs(&vtv) < 1e-10, "orthonormal vectors: {vtv:?}");
            let det = value(&mut s, "det(A)")[0];
            let prod: f64 = lam.iter().product();
            assert!(
                (det - prod).abs() <= 1e-9 * prod.abs(),
                "det {det} vs Πλ {prod}"
            );
        }
    }
}

#[test]
fn a_singular_matrix_gives_nan_and_a_bad_shape_an_error() {
    let mut s = Session::new(false);
    let inv = value(&mut s, "inv([[1.0, 2.0], [2.0, 4.0]])");
    assert!(inv.iter().all(|v| v.is_nan()), "{inv:?}");
    let chol = value(&mut s, "cholesky([[1.0, 2.0], [2.0, 1.0]])");
    assert!(
        chol.iter().all(|v| v.is_nan()),
        "not positive definite: {chol:?}"
    );
    let err = s.eval("solve(eye(3), [1.0, 2.0])").expect_err("shape");
    assert!(err.contains("solve needs b with 3 rows"), "{err}");
    let err = s.eval("det(zeros(2, 3))").expect_err("square");
    assert!(err.contains("square matrix"), "{err}");
}
