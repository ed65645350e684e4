//! A minibatch on its way into a compiled function: rows gathered from the
//! table (on the prefetch thread) or written straight into the function's
//! input buffers, and the function's inputs in order (batch, parameters,
//! optimizer state, step counter, learning rate).

use crate::data::table::Table;
use crate::interp::{concrete, Tensor};
use crate::ir::{Graph, Role};

/// One minibatch's data: the features and labels of some rows, in the
/// dtypes and shapes the graph's `x` and `label` inputs declare.
pub(super) struct Batch {
    pub x: Option<Tensor>,
    pub y: Option<Tensor>,
    pub rows: usize,
    /// The rows are already in the compiled step's input buffers (see
    /// `Compiled::write_input_rows`): give no tensors for them.
    pub written: bool,
}

impl Batch {
    /// `rows` rows already written into the compiled function's buffers.
    pub fn written(rows: usize) -> Batch {
        Batch {
            x: None,
            y: None,
            rows,
            written: true,
        }
    }
}

/// Writes rows `rows` of `t`'s features as input `k` of `c`.
pub(super) fn write_features(
    c: &mut crate::jit::Compiled,
    k: usize,
    t: &Table,
    rows: &[usize],
) -> Result<(), String> {
    let w = t.width;
    // The rows lie anywhere in the table: each is fetched from memory a few
    // rows ahead of its copy, so the waits overlap.
    const AHEAD: usize = 4;
    for &r in rows.iter().take(AHEAD) {
        t.prefetch_row(r);
    }
    c.fill_input_rows(k, w, rows, |i, r, out| {
        if let Some(&next) = rows.get(i + AHEAD) {
            t.prefetch_row(next);
        }
        t.x.copy_into(r * w, out)
    })
}

/// Gathers rows `rows` of `t` for the graph `g` (this is the work the
/// prefetch thread does while the kernels run).
pub(super) fn gather(g: &Graph, t: &Table, rows: &[usize]) -> Batch {
    let bs = rows.len();
    let mut batch = Batch {
        x: None,
        y: None,
        rows: bs,
        written: false,
    };
    for info in &g.inputs {
        let ty = g.ty(info.node);
        let shape = concrete(&ty.shape, bs);
        match info.role {
            Role::Features => {
                let mut v = Vec::with_capacity(bs * t.width);
                let mut row = vec![0.0f32; t.width];
                for &r in rows {
                    // Rows come from the epoch's order over the table.
                    let copied = t.x.copy_into(r * t.width, &mut row);
                    debug_assert!(copied.is_some(), "row {r} is outside the table");
                    v.extend(row.iter().map(|v| f64::from(*v)));
                }
                batch.x = Some(Tensor::new(ty.dtype, shape, v));
            }
            Role::Label => {
                let v = rows.iter().map(|&r| t.y[r]).collect();
                batch.y = Some(Tensor::new(ty.dtype, shape, v));
            }
            Role::Param { .. }
            | Role::State(_)
            | Role::Step
            | Role::Epoch
            | Role::Hyper
            | Role::Value
            | Role::Samples
            | Role::FirstSample => {}
        }
    }
    batch
}

/// Parameter and optimizer-state values, each in the graph's input order.
pub(super) type Values<'a> = (&'a [Vec<f64>], &'a [Vec<f64>]);

/// Inputs of a training-step or eval graph: a gathered batch, the
/// parameters and optimizer state (`None`: leave them in the compiled step's
/// buffers, where the last step's in-place update put them), the step and
/// epoch counters (steps taken; epochs completed before this step's), the
/// base learning rate, and where the batch's rows lie in the global batch
/// of a data-parallel step (`dist::Share`; the whole of it in one process).
pub(super) fn step_inputs(
    g: &Graph,
    batch: Batch,
    state: Option<Values<'_>>,
    (step, epoch): (u64, u64),
    lr: f64,
    share: crate::dist::Share,
) -> Vec<Option<Tensor>> {
    let (bs, written) = (batch.rows, batch.written);
    let (mut x, mut y) = (batch.x, batch.y);
    let mut pi = 0;
    let mut si = 0;
    g.inputs
        .iter()
        .map(|info| {
            let ty = g.ty(info.node);
            let shape = concrete(&ty.shape, bs);
            let values = match info.role {
                Role::Param { .. } => {
                    pi += 1;
                    state?.0[pi - 1].clone()
                }
                Role::State(_) => {
                    si += 1;
                    state?.1[si - 1].clone()
                }
                Role::Features => match x.take() {
                    Some(t) => return Some(t),
                    None if written => return None,
                    None => vec![0.0; shape.iter().product()],
                },
                Role::Label => match y.take() {
                    Some(t) => return Some(t),
                    None if written => return None,
                    None => vec![0.0; shape.iter().product()],
                },
                Role::Step => vec![step as f64],
                Role::Epoch => vec![epoch as f64],
                Role::Hyper => vec![lr],
                Role::Value => vec![0.0; shape.iter().product()],
                Role::Samples => vec![share.total as f64],
                Role::FirstSample => vec![share.first as f64],
            };
            Some(Tensor::new(ty.dtype, shape, values))
        })
        .collect()
}
