//! The closed set of primitive operations and their shape rules.
//!
//! Everything else the language offers (sub, div, mean, softmax,
//! logsumexp, cross-entropy, norms, dropout, ...) is built from these in
//! `check::composite`, so each later stage (derivative, interpreter,
//! lowering) needs a rule for these primitives only. Each variant's doc line
//! states its forward math and shape; derivatives live with autodiff.

use super::types::{DType, Dim, IrError, Shape, Type};

/// Which distribution `Op::Random` draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dist {
    /// Uniform on [0, 1).
    Uniform,
    /// Standard normal.
    Normal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn name(self) -> &'static str {
        match self {
            CmpOp::Eq => "eq",
            CmpOp::Ne => "ne",
            CmpOp::Lt => "lt",
            CmpOp::Le => "le",
            CmpOp::Gt => "gt",
            CmpOp::Ge => "ge",
        }
    }
}

/// A primitive. Elementwise binary ops and `Select` broadcast their
/// operands NumPy-style; every other op sees exact shapes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    // ---- leaves ----
    /// Function input `i` (`Graph::inputs[i]`); type as declared.
    Input(u32),
    /// A scalar constant (f64 bits, rounded to the node's dtype); shape [].
    Const(u64),
    /// Tensor literal `i` (`Graph::literals[i]`, row-major).
    Literal(u32),
    /// `out[i₀,…,iₙ] = i_axis`: the index along `axis`; type given.
    Iota { axis: u32 },
    /// The run-time batch size B, as a scalar of the node's dtype.
    BatchSize,
    /// Random numbers keyed by (seed, step, stream, element index) from a
    /// counter-based generator; inputs: the step (i32 scalar) and, in a
    /// data-parallel step, the index of this process's first row in the
    /// global batch (i32 scalar), from which the element index counts:
    /// a sample then draws the same numbers on any number of processes
    /// (`step::data_parallel`); type given.
    Random { dist: Dist, stream: u32 },

    // ---- elementwise unary: shape and dtype of the input ----
    /// −x
    Neg,
    /// 1/x
    Recip,
    /// eˣ
    Exp,
    /// ln x
    Log,
    /// √x
    Sqrt,
    /// |x|
    Abs,
    /// tanh x
    Tanh,
    /// sin x
    Sin,
    /// cos x
    Cos,
    /// ⌊x⌋, the largest integer ≤ x (zero gradient)
    Floor,
    /// σ(x) = 1/(1+e⁻ˣ)
    Sigmoid,
    /// x converted to the node's dtype (floats truncate toward zero into i32;
    /// nonzero is true).
    Cast,
    /// x forward; no gradient flows through (d2l's `detach`).
    StopGradient,

    // ---- elementwise binary: broadcast shape, common dtype ----
    /// a + b
    Add,
    /// a · b (Hadamard)
    Mul,
    /// max(a, b)
    Max,
    /// aᵇ
    Pow,
    /// a ⋄ b → bool
    Cmp(CmpOp),

    // ---- ternary ----
    /// where(c, a, b): a where c is true, else b; broadcast shape.
    Select,

    // ---- reductions: the listed axes are removed ----
    /// Σ over `axes` (a bit set).
    ReduceSum { axes: u32 },
    /// max over `axes`.
    ReduceMax { axes: u32 },
    /// The index of the first maximum along `axis` (removed); i32.
    ArgMax { axis: u32 },

    // ---- shape ----
    /// x broadcast NumPy-style to the node's shape.
    Broadcast,
    /// x with the same elements (row-major) in the node's shape.
    Reshape,
    /// out axes = input axes permuted: out.shape[i] = in.shape[perm[i]].
    Transpose { perm: Vec<u8> },
    /// Elements `start, start+step, … < end` along `axis`.
    Slice {
        axis: u32,
        start: u64,
        end: u64,
        step: u64,
    },

    /// The adjoint of `Slice`: x placed at `start, start+step, …` along
    /// `axis` of a zero tensor whose length there is `len`.
    Pad {
        axis: u32,
        start: u64,
        step: u64,
        len: u64,
    },

    // ---- linear algebra ----
    /// [m,k] @ [k,n] → [m,n].
    MatMul,
    /// Small dense linear algebra on a fixed n×n matrix (`linalg.rs`).
    Linalg(Linalg),

    // ---- across processes ----
    /// Σ over the processes of a data-parallel run of x (each holding its
    /// own x of the same type); x itself in a run of one process. Only a
    /// data-parallel training step has it (`step::data_parallel`).
    AllReduce,
}

/// The dense linear-algebra ops, each of an n×n matrix A.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Linalg {
    /// A⁻¹, [n,n].
    Inv,
    /// det A, a scalar.
    Det,
    /// x with A x = b, for b of [n] or [n,k].
    Solve,
    /// L lower-triangular with L Lᵀ = A, for symmetric positive definite A.
    Cholesky,
    /// The eigenvalues of symmetric A, ascending, [n].
    EigVals,
    /// The eigenvectors of symmetric A as columns, [n,n].
    EigVecs,
}

impl Linalg {
    pub fn name(self) -> &'static str {
        match self {
            Linalg::Inv => "inv",
            Linalg::Det => "det",
            Linalg::Solve => "solve",
            Linalg::Cholesky => "cholesky",
            Linalg::EigVals => "eigvals",
            Linalg::EigVecs => "eigvecs",
        }
    }
}

impl Op {
    /// The printed name (`dlc ir`).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input(_) => "input",
            Op::Const(_) => "const",
            Op::Literal(_) => "literal",
            Op::Iota { .. } => "iota",
            Op::BatchSize => "batch_size",
            Op::Random { .. } => "random",
            Op::Neg => "neg",
            Op::Recip => "recip",
            Op::Exp => "exp",
            Op::Log => "log",
            Op::Sqrt => "sqrt",
            Op::Abs => "abs",
            Op::Tanh => "tanh",
            Op::Sin => "sin",
            Op::Cos => "cos",
            Op::Floor => "floor",
            Op::Sigmoid => "sigmoid",
            Op::Cast => "cast",
            Op::StopGradient => "stop_gradient",
            Op::Add => "add",
            Op::Mul => "mul",
            Op::Max => "max",
            Op::Pow => "pow",
            Op::Cmp(c) => c.name(),
            Op::Select => "select",
            Op::ReduceSum { .. } => "reduce_sum",
            Op::ReduceMax { .. } => "reduce_max",
            Op::ArgMax { .. } => "argmax",
            Op::Broadcast => "broadcast",
            Op::Reshape => "reshape",
            Op::Transpose { .. } => "transpose",
            Op::Slice { .. } => "slice",
            Op::Pad { .. } => "pad",
            Op::MatMul => "matmul",
            Op::Linalg(k) => k.name(),
            Op::AllReduce => "all_reduce",
        }
    }

    /// The bracketed parameters printed after the name (`[axes=0,1]`), or "".
    pub fn params(&self) -> String {
        let list = |v: Vec<String>| v.join(",");
        match self {
            Op::Iota { axis } | Op::ArgMax { axis } => format!("[axis={axis}]"),
            Op::Random { dist, stream } => {
                let d = match dist {
                    Dist::Uniform => "uniform",
                    Dist::Normal => "normal",
                };
                format!("[{d},stream={stream}]")
            }
            Op::ReduceSum { axes } | Op::ReduceMax { axes } => {
                format!(
                    "[axes={}]",
                    list(axes_list(*axes).iter().map(|a| a.to_string()).collect())
                )
            }
            Op::Transpose { perm } => {
                format!(
                    "[perm={}]",
                    list(perm.iter().map(|a| a.to_string()).collect())
                )
            }
            Op::Slice {
                axis,
                start,
                end,
                step,
            } => format!("[axis={axis},{start}:{end}:{step}]"),
            Op::Pad {
                axis,
                start,
                step,
                len,
            } => format!("[axis={axis},{start}::{step},len={len}]"),
            Op::Input(_)
            | Op::Const(_)
            | Op::Literal(_)
            | Op::BatchSize
            | Op::Neg
            | Op::Recip
            | Op::Exp
            | Op::Log
            | Op::Sqrt
            | Op::Abs
            | Op::Tanh
            | Op::Sin
            | Op::Cos
            | Op::Floor
            | Op::Sigmoid
            | Op::Cast
            | Op::StopGradient
            | Op::Add
            | Op::Mul
            | Op::Max
            | Op::Pow
            | Op::Cmp(_)
            | Op::Select
            | Op::Broadcast
            | Op::Reshape
            | Op::MatMul
            | Op::Linalg(_)
            | Op::AllReduce => String::new(),
        }
    }

    pub fn is_elementwise(&self) -> bool {
        match self {
            Op::Neg
            | Op::Recip
            | Op::Exp
            | Op::Log
            | Op::Sqrt
            | Op::Abs
            | Op::Tanh
            | Op::Sin
            | Op::Cos
            | Op::Floor
            | Op::Sigmoid
            | Op::Cast
            | Op::StopGradient
            | Op::Add
            | Op::Mul
            | Op::Max
            | Op::Pow
            | Op::Cmp(_)
            | Op::Select => true,
            Op::Input(_)
            | Op::Const(_)
            | Op::Literal(_)
            | Op::Iota { .. }
            | Op::BatchSize
            | Op::Random { .. }
            | Op::ReduceSum { .. }
            | Op::ReduceMax { .. }
            | Op::ArgMax { .. }
            | Op::Broadcast
            | Op::Reshape
            | Op::Transpose { .. }
            | Op::Slice { .. }
            | Op::Pad { .. }
            | Op::MatMul
            | Op::Linalg(_)
            | Op::AllReduce => false,
        }
    }

    pub fn is_reduction(&self) -> bool {
        matches!(
            self,
            Op::ReduceSum { .. } | Op::ReduceMax { .. } | Op::ArgMax { .. }
        )
    }
}

/// The axes in a reduction bit set, ascending.
pub fn axes_list(axes: u32) -> Vec<usize> {
    (0..32).filter(|a| axes & (1 << a) != 0).collect()
}

/// NumPy broadcasting of two shapes. `B` broadcasts with `B` and 1 only.
pub fn broadcast_shapes(a: &Shape, b: &Shape) -> Result<Shape, IrError> {
    let n = a.rank().max(b.rank());
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let da = if i + a.rank() >= n {
            a.0[i + a.rank() - n]
        } else {
            Dim::Fixed(1)
        };
        let db = if i + b.rank() >= n {
            b.0[i + b.rank() - n]
        } else {
            Dim::Fixed(1)
        };
        let d = match (da, db) {
            (x, y) if x == y => x,
            (Dim::Fixed(1), y) => y,
            (x, Dim::Fixed(1)) => x,
            _ => {
                return Err(IrError::shape(format!(
                    "shapes {a} and {b} do not broadcast: {da} and {db} differ at axis {i} of the result"
                )))
            }
        };
        out.push(d);
    }
    Ok(Shape(out))
}

fn same_dtype(name: &str, ts: &[&Type]) -> Result<DType, IrError> {
    let d = ts.first().map(|t| t.dtype).unwrap_or(DType::F32);
    for t in ts {
        if t.dtype != d {
            return Err(IrError::dtype(format!(
                "{name} needs operands of one dtype, found {} and {}",
                d.name(),
                t.dtype.name()
            )));
        }
    }
    Ok(d)
}

fn need_float(name: &str, t: &Type) -> Result<(), IrError> {
    if t.dtype.is_float() {
        Ok(())
    } else {
        Err(IrError::dtype(format!(
            "{name} needs a floating-point tensor, found {}",
            t.dtype.name()
        )))
    }
}

fn need_numeric(name: &str, t: &Type) -> Result<(), IrError> {
    if t.dtype == DType::Bool {
        Err(IrError::dtype(format!("{name} is not defined for bool")))
    } else {
        Ok(())
    }
}

fn arity(op: &Op, ins: &[&Type], n: usize) -> Result<(), IrError> {
    if ins.len() == n {
        Ok(())
    } else {
        Err(IrError::shape(format!(
            "{} takes {n} operands, got {}",
            op.name(),
            ins.len()
        )))
    }
}

fn given<'a>(op: &Op, out: Option<&'a Type>) -> Result<&'a Type, IrError> {
    out.ok_or_else(|| IrError::shape(format!("{} needs its result type", op.name())))
}

fn check_axes(axes: u32, rank: usize) -> Result<(), IrError> {
    if rank < 32 && axes >> rank != 0 {
        let bad = axes_list(axes)
            .into_iter()
            .find(|&a| a >= rank)
            .unwrap_or(rank);
        return Err(IrError::axis(format!(
            "axis {bad} is out of range for a tensor of rank {rank}"
        )));
    }
    Ok(())
}

/// The type of `x` with its axes permuted by `perm`.
fn transposed(x: &Type, perm: &[u8]) -> Result<Type, IrError> {
    let r = x.shape.rank();
    let mut seen = vec![false; r];
    if perm.len() != r {
        return Err(IrError::axis(format!(
            "a permutation of {} axes for a tensor of rank {r}",
            perm.len()
        )));
    }
    for &p in perm {
        match seen.get_mut(p as usize) {
            Some(s) if !*s => *s = true,
            _ => return Err(IrError::axis("the transpose axes are not a permutation")),
        }
    }
    let dims = perm.iter().map(|&p| x.shape.0[p as usize]).collect();
    Ok(Type::new(x.dtype, Shape(dims)))
}

/// The type of `x` sliced along `axis` from `start` to `end` by `step`.
fn sliced(x: &Type, axis: u32, (start, end, step): (u64, u64, u64)) -> Result<Type, IrError> {
    let r = x.shape.rank();
    check_axes(1 << axis, r)?;
    if step == 0 || start > end {
        return Err(IrError::shape("an empty or backward slice"));
    }
    let mut dims = x.shape.0.clone();
    let a = axis as usize;
    if let Dim::Fixed(n) = dims[a] {
        if end > n {
            return Err(IrError::shape(format!(
                "slice end {end} is past the axis length {n}"
            )));
        }
    }
    dims[a] = Dim::Fixed((end - start).div_ceil(step));
    Ok(Type::new(x.dtype, Shape(dims)))
}

/// The type of `x` padded along `axis` to `len`, its elements placed from
/// `start` by `step`.
fn padded(x: &Type, axis: u32, (start, step, len): (u64, u64, u64)) -> Result<Type, IrError> {
    let r = x.shape.rank();
    check_axes(1 << axis, r)?;
    let mut dims = x.shape.0.clone();
    let a = axis as usize;
    let Dim::Fixed(n) = dims[a] else {
        return Err(IrError::shape("cannot pad along the batch axis"));
    };
    if step == 0 || n == 0 || start + (n - 1) * step >= len {
        return Err(IrError::shape(format!(
            "padding {n} elements from {start} by {step} does not fit in {len}"
        )));
    }
    dims[a] = Dim::Fixed(len);
    Ok(Type::new(x.dtype, Shape(dims)))
}

/// The type of a linear-algebra op on square matrices.
fn linalg(k: Linalg, ins: &[&Type]) -> Result<Type, IrError> {
    let what = k.name();
    let d = same_dtype(what, ins)?;
    need_float(what, ins[0])?;
    let a = &ins[0].shape;
    let n = match a.0[..] {
        [Dim::Fixed(r), Dim::Fixed(c)] if r == c && r > 0 => r,
        _ => {
            return Err(IrError::shape(format!(
                "{what} takes a square matrix of fixed size, found {a}"
            )))
        }
    };
    let shape = match k {
        Linalg::Inv | Linalg::Cholesky | Linalg::EigVecs => a.clone(),
        Linalg::Det => Shape::scalar(),
        Linalg::EigVals => Shape::fixed(&[n]),
        Linalg::Solve => {
            let b = &ins[1].shape;
            match b.0[..] {
                [Dim::Fixed(r)] | [Dim::Fixed(r), Dim::Fixed(_)] if r == n => b.clone(),
                _ => {
                    return Err(IrError::shape(format!(
                        "solve needs b with {n} rows to match {a}, found {b}"
                    )))
                }
            }
        }
    };
    Ok(Type::new(d, shape))
}

/// The shape rule: the type of `op` applied to operands of types `ins`.
/// `out` supplies the result type for ops that need it.
pub fn infer(op: &Op, ins: &[&Type], out: Option<&Type>) -> Result<Type, IrError> {
    match op {
        Op::Input(_) | Op::Literal(_) | Op::BatchSize => {
            arity(op, ins, 0)?;
            Ok(given(op, out)?.clone())
        }
        Op::Const(_) => {
            arity(op, ins, 0)?;
            let t = given(op, out)?;
            if t.shape.rank() != 0 {
                return Err(IrError::shape("a constant is a scalar"));
            }
            Ok(t.clone())
        }
        Op::Iota { axis } => {
            arity(op, ins, 0)?;
            let t = given(op, out)?;
            check_axes(1 << axis, t.shape.rank())?;
            Ok(t.clone())
        }
        Op::Random { .. } => {
            if ins.len() != 2 {
                arity(op, ins, 1)?;
            }
            let t = given(op, out)?;
            need_float("random", t)?;
            if ins
                .iter()
                .any(|i| i.dtype != DType::I32 || i.shape.rank() != 0)
            {
                return Err(IrError::dtype(
                    "random is keyed by an i32 scalar step (and first row)",
                ));
            }
            Ok(t.clone())
        }
        Op::Neg | Op::Abs => {
            arity(op, ins, 1)?;
            need_numeric(op.name(), ins[0])?;
            Ok(ins[0].clone())
        }
        Op::Recip
        | Op::Exp
        | Op::Log
        | Op::Sqrt
        | Op::Tanh
        | Op::Sin
        | Op::Cos
        | Op::Floor
        | Op::Sigmoid => {
            arity(op, ins, 1)?;
            need_float(op.name(), ins[0])?;
            Ok(ins[0].clone())
        }
        Op::StopGradient => {
            arity(op, ins, 1)?;
            Ok(ins[0].clone())
        }
        Op::AllReduce => {
            arity(op, ins, 1)?;
            need_numeric(op.name(), ins[0])?;
            Ok(ins[0].clone())
        }
        Op::Cast => {
            arity(op, ins, 1)?;
            let t = given(op, out)?;
            if t.shape != ins[0].shape {
                return Err(IrError::shape("cast keeps the shape"));
            }
            Ok(t.clone())
        }
        Op::Add | Op::Mul | Op::Max => {
            arity(op, ins, 2)?;
            let d = same_dtype(op.name(), ins)?;
            need_numeric(op.name(), ins[0])?;
            Ok(Type::new(
                d,
                broadcast_shapes(&ins[0].shape, &ins[1].shape)?,
            ))
        }
        Op::Pow => {
            arity(op, ins, 2)?;
            let d = same_dtype(op.name(), ins)?;
            need_float("pow", ins[0])?;
            Ok(Type::new(
                d,
                broadcast_shapes(&ins[0].shape, &ins[1].shape)?,
            ))
        }
        Op::Cmp(_) => {
            arity(op, ins, 2)?;
            same_dtype(op.name(), ins)?;
            Ok(Type::new(
                DType::Bool,
                broadcast_shapes(&ins[0].shape, &ins[1].shape)?,
            ))
        }
        Op::Select => {
            arity(op, ins, 3)?;
            if ins[0].dtype != DType::Bool {
                return Err(IrError::dtype(format!(
                    "the condition of where must be bool, found {}",
                    ins[0].dtype.name()
                )));
            }
            let d = same_dtype("where", &ins[1..])?;
            let s = broadcast_shapes(&ins[0].shape, &ins[1].shape)?;
            Ok(Type::new(d, broadcast_shapes(&s, &ins[2].shape)?))
        }
        Op::ReduceSum { axes } | Op::ReduceMax { axes } => {
            arity(op, ins, 1)?;
            need_numeric(op.name(), ins[0])?;
            check_axes(*axes, ins[0].shape.rank())?;
            let dims = ins[0]
                .shape
                .0
                .iter()
                .enumerate()
                .filter(|(i, _)| axes & (1 << i) == 0)
                .map(|(_, d)| *d)
                .collect();
            Ok(Type::new(ins[0].dtype, Shape(dims)))
        }
        Op::ArgMax { axis } => {
            arity(op, ins, 1)?;
            need_numeric("argmax", ins[0])?;
            check_axes(1 << axis, ins[0].shape.rank())?;
            let mut dims = ins[0].shape.0.clone();
            dims.remove(*axis as usize);
            Ok(Type::new(DType::I32, Shape(dims)))
        }
        Op::Broadcast => {
            arity(op, ins, 1)?;
            let t = given(op, out)?;
            let b = broadcast_shapes(&ins[0].shape, &t.shape)?;
            if b != t.shape || t.dtype != ins[0].dtype {
                return Err(IrError::shape(format!(
                    "cannot broadcast {} to {}",
                    ins[0].shape, t.shape
                )));
            }
            Ok(t.clone())
        }
        Op::Reshape => {
            arity(op, ins, 1)?;
            let t = given(op, out)?;
            let (a, ab) = ins[0].shape.numel();
            let (b, bb) = t.shape.numel();
            let batches = |s: &Shape| s.0.iter().filter(|d| **d == Dim::Batch).count();
            if a != b || ab != bb || batches(&ins[0].shape) > 1 || batches(&t.shape) > 1 {
                return Err(IrError::shape(format!(
                    "cannot reshape {} into {}: the element counts differ",
                    ins[0].shape, t.shape
                )));
            }
            if t.dtype != ins[0].dtype {
                return Err(IrError::dtype("reshape keeps the dtype"));
            }
            Ok(t.clone())
        }
        Op::Transpose { perm } => {
            arity(op, ins, 1)?;
            transposed(ins[0], perm)
        }
        Op::Slice {
            axis,
            start,
            end,
            step,
        } => {
            arity(op, ins, 1)?;
            sliced(ins[0], *axis, (*start, *end, *step))
        }
        Op::Pad {
            axis,
            start,
            step,
            len,
        } => {
            arity(op, ins, 1)?;
            padded(ins[0], *axis, (*start, *step, *len))
        }
        Op::MatMul => {
            arity(op, ins, 2)?;
            let d = same_dtype("matmul", ins)?;
            need_float("matmul", ins[0])?;
            let (a, b) = (&ins[0].shape, &ins[1].shape);
            if a.rank() != 2 || b.rank() != 2 {
                return Err(IrError::shape(format!(
                    "matmul multiplies matrices, found {a} and {b}"
                )));
            }
            if a.0[1] != b.0[0] {
                return Err(IrError::shape(format!(
                    "cannot multiply {a} by {b}: inner dimensions {} and {} differ",
                    a.0[1], b.0[0]
                )));
            }
            Ok(Type::new(d, Shape(vec![a.0[0], b.0[1]])))
        }
        Op::Linalg(k) => {
            arity(op, ins, if *k == Linalg::Solve { 2 } else { 1 })?;
            linalg(*k, ins)
        }
    }
}
