//! Linear regression solved in closed form (d2l §3.1): the normal
//! equations, no epochs.

use std::time::Instant;

use crate::check::run::Run;
use crate::data::table::Table;

use super::report::{report_final, Final};
use super::{Sink, TrainOptions};

/// Solves `run` on `train`, saves it when asked, and reports.
pub(super) fn run_closed_form(
    run: &Run,
    data_name: &str,
    (train, test, prep): (&Table, &Table, &crate::data::prep::Preprocessing),
    (batch, (seed, split_seed), epochs): (usize, (u64, u64), u64),
    opts: &TrainOptions,
    sink: &mut Sink,
) -> Result<(), String> {
    let start = Instant::now();
    let mut params = super::init::fresh_params(run, seed);
    closed_form(run, train, &mut params)?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    sink.human(&format!(
        "run {}: {} on {data_name}, solved in closed form (normal equations) in {ms:.2} ms",
        run.name, run.model
    ));
    if opts.plot.is_some() {
        sink.human(&format!(
            "note: run {} has no epochs, so no learning curves to draw",
            run.name
        ));
    }
    let state = super::State {
        params,
        opt_state: Vec::new(),
        epoch: 0,
        step: 0,
    };
    super::checkpoints::save_if_asked(run, &state, None, ((seed, split_seed), prep), opts, sink)?;
    let f = Final {
        params: &state.params,
        train,
        test,
        batch,
        seed,
        epochs,
        compile_ms: 0.0,
    };
    report_final(run, f, opts, sink, None)
}

/// Linear regression's normal equations: θ = (XᵀX)⁻¹Xᵀy with a column of
/// ones for the bias, solved by Cholesky (nalgebra).
fn closed_form(run: &Run, t: &Table, params: &mut [Vec<f64>]) -> Result<(), String> {
    let wi = run
        .params
        .iter()
        .position(|p| p.ty.shape.rank() == 2)
        .ok_or("no weight matrix")?;
    let bi = run.params.iter().position(|p| p.ty.shape.rank() == 1);
    let f = t.width;
    let cols = f + usize::from(bi.is_some());
    let x = nalgebra::DMatrix::from_fn(t.len(), cols, |r, c| {
        if c < f {
            f64::from(t.x.get(r * f + c))
        } else {
            1.0
        }
    });
    let y = nalgebra::DVector::from_column_slice(&t.y);
    let xtx = x.transpose() * &x;
    let xty = x.transpose() * y;
    let chol = xtx
        .cholesky()
        .ok_or("the normal equations are singular (XᵀX is not positive definite): more features than independent samples?")?;
    let theta = chol.solve(&xty);
    params[wi] = theta.iter().take(f).copied().collect();
    if let Some(bi) = bi {
        params[bi] = vec![theta[f]];
    }
    Ok(())
}
