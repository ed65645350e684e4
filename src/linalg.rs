//! Small dense linear algebra for the `linalg` ops (d2l §2.3 and the
//! REPL): inverse, determinant, solve, Cholesky factor and the symmetric
//! eigendecomposition, by nalgebra, in f64. The interpreter and the JIT's
//! kernels (through `jit::exec::externs::dlc_linalg`) both call [`apply`], so they
//! agree exactly.
//!
//! Conventions (NumPy's, with JAX's answer to failure): eigenvalues in
//! ascending order, eigenvectors as the columns, each with its largest
//! component positive; a singular matrix (inverse, solve) or one that is
//! not positive definite (Cholesky) gives NaN rather than an error, since
//! a kernel cannot stop the program.

use nalgebra::DMatrix;

use crate::ir::Linalg;

/// Computes `kind` of the n×n row-major matrix `a` (and, for `Solve`, the
/// right-hand side `b`: n values, or n rows of k), writing into `out`
/// (sized by the op's shape rule).
pub fn apply(kind: Linalg, n: usize, a: &[f64], b: &[f64], out: &mut [f64]) {
    let m = DMatrix::from_row_slice(n, n, &a[..n * n]);
    let fill_nan = |out: &mut [f64]| out.iter_mut().for_each(|v| *v = f64::NAN);
    let put = |out: &mut [f64], r: &DMatrix<f64>| {
        for i in 0..r.nrows() {
            for j in 0..r.ncols() {
                out[i * r.ncols() + j] = r[(i, j)];
            }
        }
    };
    match kind {
        Linalg::Inv => match m.try_inverse() {
            Some(x) => put(out, &x),
            None => fill_nan(out),
        },
        Linalg::Det => out[0] = m.determinant(),
        Linalg::Solve => {
            let k = b.len() / n.max(1);
            let rhs = DMatrix::from_row_slice(n, k, &b[..n * k]);
            match m.lu().solve(&rhs) {
                Some(x) => put(out, &x),
                None => fill_nan(out),
            }
        }
        Linalg::Cholesky => match m.cholesky() {
            Some(c) => put(out, &c.l()),
            None => fill_nan(out),
        },
        Linalg::EigVals | Linalg::EigVecs => {
            let e = m.symmetric_eigen();
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|i, j| e.eigenvalues[*i].total_cmp(&e.eigenvalues[*j]));
            if kind == Linalg::EigVals {
                for (o, i) in order.iter().enumerate() {
                    out[o] = e.eigenvalues[*i];
                }
                return;
            }
            for (c, i) in order.iter().enumerate() {
                let v = e.eigenvectors.column(*i);
                let big = (0..n).fold(0, |b, r| if v[r].abs() > v[b].abs() { r } else { b });
                let sign = if v[big] < 0.0 { -1.0 } else { 1.0 };
                for r in 0..n {
                    out[r * n + c] = sign * v[r];
                }
            }
        }
    }
}
