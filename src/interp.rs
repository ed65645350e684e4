//! The reference interpreter: the semantics of every primitive, in plain
//! Rust over `f64` storage.
//!
//! It is the oracle the JIT and every optimization pass are tested against,
//! so it is written to be obviously correct, not fast: broadcasting is an
//! explicit index map, reductions and matmul are plain loops. In
//! `Precision::F32` every f32 node's result is rounded to f32 (what the
//! compiled program computes); in `Precision::F64` floats stay f64
//! throughout (what gradient checking uses).
//!
//! Semantics at the edges: `max` and reductions propagate NaN; `argmax`
//! returns the first maximum (a NaN counts as the maximum, as in NumPy);
//! casts from float to i32 truncate toward zero and saturate; sigmoid is
//! evaluated in its stable form for both signs.

use crate::ir::{CmpOp, DType, Dim, Dist, Graph, Node, NodeId, Op, Shape};
use crate::rng;

/// A concrete tensor: dtype, shape, row-major values.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl Tensor {
    pub fn new(dtype: DType, shape: Vec<usize>, data: Vec<f64>) -> Tensor {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Tensor { dtype, shape, data }
    }

    pub fn scalar(v: f64, dtype: DType) -> Tensor {
        Tensor::new(dtype, Vec::new(), vec![v])
    }

    pub fn numel(&self) -> usize {
        self.data.len()
    }
}

/// How float results are rounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// Round every f32 node to f32, as compiled code does.
    F32,
    /// Keep every float in f64 (gradient checking).
    F64,
}

/// The run-time context: the batch size B and the random seed.
#[derive(Clone, Copy, Debug)]
pub struct Env {
    pub batch: usize,
    pub seed: u64,
}

/// The concrete shape of `s` for batch size `batch`.
pub fn concrete(s: &Shape, batch: usize) -> Vec<usize> {
    s.0.iter()
        .map(|d| match d {
            Dim::Fixed(n) => *n as usize,
            Dim::Batch => batch,
        })
        .collect()
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut st = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        st[i] = st[i + 1] * shape[i + 1];
    }
    st
}

/// For each flat index of `out`, the flat index of `inp` that NumPy
/// broadcasting reads (a size-1 or missing axis repeats).
fn broadcast_map(inp: &[usize], out: &[usize]) -> Vec<usize> {
    let n: usize = out.iter().product();
    let off = out.len() - inp.len();
    let ist = strides(inp);
    let ost = strides(out);
    (0..n)
        .map(|flat| {
            let mut src = 0;
            for (a, &o) in ost.iter().enumerate() {
                let idx = (flat / o) % out[a].max(1);
                if a >= off && inp[a - off] != 1 {
                    src += idx * ist[a - off];
                }
            }
            src
        })
        .collect()
}

fn round(v: f64, dtype: DType, prec: Precision) -> f64 {
    match dtype {
        DType::F32 if prec == Precision::F32 => v as f32 as f64,
        DType::F32 | DType::F64 => v,
        // Integer arithmetic wraps like i32 does.
        DType::I32 => (v as i64) as i32 as f64,
        DType::Bool => f64::from(u8::from(v != 0.0)),
    }
}

fn cast(v: f64, to: DType, prec: Precision) -> f64 {
    match to {
        // Float to i32 truncates toward zero and saturates (NaN gives 0).
        DType::I32 => (v as i32) as f64,
        DType::Bool => f64::from(u8::from(v != 0.0)),
        DType::F32 | DType::F64 => round(v, to, prec),
    }
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

fn max_nan(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Runs `g` on `inputs` (in `g.inputs` order) and returns its outputs.
pub fn run(
    g: &Graph,
    inputs: &[Tensor],
    env: &Env,
    prec: Precision,
) -> Result<Vec<Tensor>, String> {
    let values = run_all(g, inputs, env, prec)?;
    g.outputs
        .iter()
        .map(|(name, id)| {
            values[id.index()]
                .clone()
                .ok_or_else(|| format!("output {name} was not computed"))
        })
        .collect()
}

/// Runs `g` and returns the value of every node the outputs need.
pub fn run_all(
    g: &Graph,
    inputs: &[Tensor],
    env: &Env,
    prec: Precision,
) -> Result<Vec<Option<Tensor>>, String> {
    if inputs.len() != g.inputs.len() {
        return Err(format!(
            "{} inputs given, the graph takes {}",
            inputs.len(),
            g.inputs.len()
        ));
    }
    let live = crate::ir::print::live_nodes(g);
    let mut vals: Vec<Option<Tensor>> = vec![None; g.len()];
    for (i, node) in g.nodes.iter().enumerate() {
        if !live[i] {
            continue;
        }
        let v = eval_node(g, node, &vals, inputs, env, prec)?;
        let want = concrete(&node.ty.shape, env.batch);
        if v.shape != want {
            return Err(format!(
                "%{i} ({}) gave shape {:?}, its type says {:?}",
                node.op.name(),
                v.shape,
                want
            ));
        }
        vals[i] = Some(v);
    }
    Ok(vals)
}

fn eval_node(
    g: &Graph,
    node: &Node,
    vals: &[Option<Tensor>],
    inputs: &[Tensor],
    env: &Env,
    prec: Precision,
) -> Result<Tensor, String> {
    let arg = |k: usize| -> Result<&Tensor, String> {
        let id: NodeId = *node.inputs.get(k).ok_or("missing operand")?;
        vals[id.index()]
            .as_ref()
            .ok_or_else(|| format!("operand {id} not computed"))
    };
    let dt = node.ty.dtype;
    let shape = concrete(&node.ty.shape, env.batch);
    let n: usize = shape.iter().product();
    let out = |data: Vec<f64>| -> Tensor {
        let data = data.into_iter().map(|v| round(v, dt, prec)).collect();
        Tensor::new(dt, shape.clone(), data)
    };
    let unary = |f: &dyn Fn(f64) -> f64| -> Result<Tensor, String> {
        let a = arg(0)?;
        Ok(out(a.data.iter().map(|&x| f(x)).collect()))
    };
    let binary = |f: &dyn Fn(f64, f64) -> f64| -> Result<Tensor, String> {
        let (a, b) = (arg(0)?, arg(1)?);
        let ma = broadcast_map(&a.shape, &shape);
        let mb = broadcast_map(&b.shape, &shape);
        Ok(out((0..n)
            .map(|i| f(a.data[ma[i]], b.data[mb[i]]))
            .collect()))
    };
    match &node.op {
        Op::Input(k) => {
            let t = inputs.get(*k as usize).ok_or("input missing")?;
            if t.shape != shape {
                let name = g
                    .inputs
                    .get(*k as usize)
                    .map(|i| i.name.as_str())
                    .unwrap_or("?");
                return Err(format!(
                    "input {name} has shape {:?}, expected {:?}",
                    t.shape, shape
                ));
            }
            Ok(out(t.data.clone()))
        }
        Op::Const(bits) => Ok(out(vec![f64::from_bits(*bits)])),
        Op::Literal(k) => {
            let v = g.literals.get(*k as usize).ok_or("literal missing")?;
            Ok(out(v.clone()))
        }
        Op::Iota { axis } => {
            let st = strides(&shape);
            let a = *axis as usize;
            Ok(out((0..n)
                .map(|i| ((i / st[a]) % shape[a]) as f64)
                .collect()))
        }
        Op::BatchSize => Ok(out(vec![env.batch as f64])),
        Op::Random { dist, stream } => {
            let step = arg(0)?.data[0];
            let key = rng::key(env.seed, step as i64 as u64, *stream);
            // A data-parallel step's rows start at row `first` of the
            // global batch: element i is element first·(row size) + i there.
            let first = match node.inputs.get(1) {
                Some(_) => arg(1)?.data[0] as u64,
                None => 0,
            };
            let row = shape.first().map_or(1, |&r| (n / r.max(1)) as u64);
            Ok(out((first * row..first * row + n as u64)
                .map(|i| match dist {
                    Dist::Uniform => rng::uniform(key, i),
                    Dist::Normal => rng::normal(key, i),
                })
                .collect()))
        }
        Op::Neg => unary(&|x| -x),
        Op::Recip => unary(&|x| 1.0 / x),
        Op::Exp => unary(&f64::exp),
        Op::Log => unary(&f64::ln),
        Op::Sqrt => unary(&f64::sqrt),
        Op::Abs => unary(&f64::abs),
        Op::Tanh => unary(&f64::tanh),
        Op::Sin => unary(&f64::sin),
        Op::Cos => unary(&f64::cos),
        Op::Floor => unary(&f64::floor),
        Op::Sigmoid => unary(&sigmoid),
        Op::Cast => {
            let a = arg(0)?;
            Ok(Tensor::new(
                dt,
                shape.clone(),
                a.data.iter().map(|&x| cast(x, dt, prec)).collect(),
            ))
        }
        // The interpreter is one process: the sum over it is x.
        Op::StopGradient | Op::AllReduce => unary(&|x| x),
        Op::Add => binary(&|a, b| a + b),
        Op::Mul => binary(&|a, b| a * b),
        Op::Max => binary(&max_nan),
        Op::Pow => binary(&f64::powf),
        Op::Cmp(c) => {
            let f = |a: f64, b: f64| -> f64 {
                let r = match c {
                    CmpOp::Eq => a == b,
                    CmpOp::Ne => a != b,
                    CmpOp::Lt => a < b,
                    CmpOp::Le => a <= b,
                    CmpOp::Gt => a > b,
                    CmpOp::Ge => a >= b,
                };
                f64::from(u8::from(r))
            };
            binary(&f)
        }
        Op::Select => {
            let (c, a, b) = (arg(0)?, arg(1)?, arg(2)?);
            let (mc, ma, mb) = (
                broadcast_map(&c.shape, &shape),
                broadcast_map(&a.shape, &shape),
                broadcast_map(&b.shape, &shape),
            );
            Ok(out((0..n)
                .map(|i| {
                    if c.data[mc[i]] != 0.0 {
                        a.data[ma[i]]
                    } else {
                        b.data[mb[i]]
                    }
                })
                .collect()))
        }
        Op::ReduceSum { axes } | Op::ReduceMax { axes } => {
            let a = arg(0)?;
            let is_sum = matches!(node.op, Op::ReduceSum { .. });
            // Map each input element to its output slot: the input index
            // with the reduced axes removed.
            let kept: Vec<usize> = (0..a.shape.len())
                .filter(|i| axes & (1 << i) == 0)
                .collect();
            let ist = strides(&a.shape);
            let ost = strides(&shape);
            let init = if is_sum { 0.0 } else { f64::NEG_INFINITY };
            let mut acc = vec![init; n.max(1)];
            for (flat, &x) in a.data.iter().enumerate() {
                let mut o = 0;
                for (k, &ax) in kept.iter().enumerate() {
                    o += ((flat / ist[ax]) % a.shape[ax]) * ost[k];
                }
                acc[o] = if is_sum {
                    acc[o] + x
                } else {
                    max_nan(acc[o], x)
                };
            }
            Ok(out(acc))
        }
        Op::ArgMax { axis } => {
            let a = arg(0)?;
            let ax = *axis as usize;
            let ist = strides(&a.shape);
            let len = a.shape[ax];
            if len == 0 && n > 0 {
                return Err("argmax over an empty axis".to_string());
            }
            // n: one index per output element (none for an empty batch).
            let mut res = vec![0.0; n];
            let ost = strides(&shape);
            for (o, slot) in res.iter_mut().enumerate() {
                // The input index of element 0 along `axis` for output o.
                let mut base = 0;
                let mut k = 0;
                for (d, &stride) in ist.iter().enumerate() {
                    if d == ax {
                        continue;
                    }
                    let idx = if shape.is_empty() {
                        0
                    } else {
                        (o / ost[k]) % shape[k]
                    };
                    base += idx * stride;
                    k += 1;
                }
                let mut best = 0;
                let mut best_v = a.data[base];
                for j in 1..len {
                    let v = a.data[base + j * ist[ax]];
                    if !best_v.is_nan() && (v > best_v || v.is_nan()) {
                        best = j;
                        best_v = v;
                    }
                }
                *slot = best as f64;
            }
            Ok(out(res))
        }
        Op::Broadcast => {
            let a = arg(0)?;
            let m = broadcast_map(&a.shape, &shape);
            Ok(out((0..n).map(|i| a.data[m[i]]).collect()))
        }
        Op::Reshape => Ok(out(arg(0)?.data.clone())),
        Op::Transpose { perm } => {
            let a = arg(0)?;
            let ist = strides(&a.shape);
            let ost = strides(&shape);
            Ok(out((0..n)
                .map(|flat| {
                    let mut src = 0;
                    for (i, &p) in perm.iter().enumerate() {
                        let idx = (flat / ost[i]) % shape[i];
                        src += idx * ist[p as usize];
                    }
                    a.data[src]
                })
                .collect()))
        }
        Op::Slice {
            axis, start, step, ..
        } => {
            let a = arg(0)?;
            let ax = *axis as usize;
            let ist = strides(&a.shape);
            let ost = strides(&shape);
            Ok(out((0..n)
                .map(|flat| {
                    let mut src = 0;
                    for d in 0..shape.len() {
                        let mut idx = (flat / ost[d]) % shape[d];
                        if d == ax {
                            idx = *start as usize + idx * *step as usize;
                        }
                        src += idx * ist[d];
                    }
                    a.data[src]
                })
                .collect()))
        }
        Op::Pad {
            axis, start, step, ..
        } => {
            let a = arg(0)?;
            let ax = *axis as usize;
            let ist = strides(&a.shape);
            let ost = strides(&shape);
            let mut res = vec![0.0; n];
            for (flat, &x) in a.data.iter().enumerate() {
                let mut dst = 0;
                for d in 0..a.shape.len() {
                    let mut idx = (flat / ist[d]) % a.shape[d];
                    if d == ax {
                        idx = *start as usize + idx * *step as usize;
                    }
                    dst += idx * ost[d];
                }
                res[dst] = x;
            }
            Ok(out(res))
        }
        Op::Linalg(k) => {
            let a = arg(0)?;
            let b = match k {
                crate::ir::Linalg::Solve => arg(1)?.data.clone(),
                _ => Vec::new(),
            };
            let mut res = vec![0.0; n];
            crate::linalg::apply(*k, a.shape[0], &a.data, &b, &mut res);
            Ok(out(res))
        }
        Op::MatMul => {
            let (a, b) = (arg(0)?, arg(1)?);
            let (m, k, nn) = (a.shape[0], a.shape[1], b.shape[1]);
            let mut res = vec![0.0; m * nn];
            for i in 0..m {
                for p in 0..k {
                    let x = a.data[i * k + p];
                    for j in 0..nn {
                        res[i * nn + j] += x * b.data[p * nn + j];
                    }
                }
            }
            Ok(out(res))
        }
    }
}
