//! A run's eval function as an ONNX model (opset 17, IR version 8): the
//! features in under the model's argument name (`x` in every program)
//! with a symbolic batch `B`, the model's output out as
//! `output`, the parameters as initializers under their names, dropout
//! gone (the eval graph has none). A K-fold checkpoint becomes one model
//! that averages its folds' outputs (`Mean`), as `dlc eval` does.
//!
//! The protobuf is written here: ONNX needs five message types and two
//! wire types (varints and length-delimited fields), which is a few dozen
//! lines, and needs no `protoc` at build time. Field numbers are onnx.proto's.
//!
//! Each IR primitive maps to one ONNX op or a short sequence; one that
//! dlc does not export (the `linalg` ops, random draws, a strided `pad`)
//! is an error naming the op and its source line.

use crate::interp::concrete;
use crate::ir::{CmpOp, DType, Dim, Graph, NodeId, Op, Role, Shape};
use crate::span::LineIndex;

/// The model's parameters: per model (one, or a K-fold run's folds), each
/// parameter's values in the graph's input order.
pub struct Weights<'a> {
    pub models: Vec<&'a [Vec<f64>]>,
}

/// Encodes `g` (an eval graph whose outputs include `output`) as an ONNX
/// model. `src` and `file` name source lines in errors and node docs.
pub fn model(g: &Graph, w: &Weights, (src, file): (&str, &str)) -> Result<Vec<u8>, String> {
    let Some(&(_, out)) = g.outputs.iter().find(|(n, _)| n == "output") else {
        return Err("the run's model has no output".into());
    };
    let lines = LineIndex::new(src);
    let mut b = Builder {
        g,
        nodes: Vec::new(),
        inits: Vec::new(),
        lines,
        file,
        batch: None,
        counter: 0,
        x: String::new(),
    };
    let x_input = g
        .inputs
        .iter()
        .find(|i| i.role == Role::Features)
        .ok_or("the run has no features input")?;
    b.x = x_input.name.clone();
    let k = w.models.len();
    let mut outs = Vec::new();
    for (m, params) in w.models.iter().enumerate() {
        let prefix = if k > 1 {
            format!("fold{}.", m + 1)
        } else {
            String::new()
        };
        outs.push(b.graph_copy(&prefix, params, out)?);
    }
    let final_out = "output".to_string();
    if k > 1 {
        b.node(
            "Mean",
            &outs,
            &final_out,
            Vec::new(),
            "the average of the fold models",
        );
    } else {
        b.node("Identity", &outs, &final_out, Vec::new(), "");
    }
    let x_ty = g.ty(x_input.node).clone();
    let o_ty = g.ty(out).clone();
    let mut graph = Vec::new();
    for n in &b.nodes {
        field_bytes(&mut graph, 1, n);
    }
    field_str(&mut graph, 2, "dlc");
    for t in &b.inits {
        field_bytes(&mut graph, 5, t);
    }
    field_bytes(&mut graph, 11, &value_info(&b.x, x_ty.dtype, &x_ty.shape));
    field_bytes(
        &mut graph,
        12,
        &value_info(&final_out, o_ty.dtype, &o_ty.shape),
    );
    let mut model = Vec::new();
    field_varint(&mut model, 1, 8); // ir_version
    field_str(&mut model, 2, "dlc");
    field_str(&mut model, 3, env!("CARGO_PKG_VERSION"));
    field_bytes(&mut model, 7, &graph);
    let mut opset = Vec::new();
    field_str(&mut opset, 1, "");
    field_varint(&mut opset, 2, 17);
    field_bytes(&mut model, 8, &opset);
    Ok(model)
}

/// ONNX's TensorProto.DataType of a dtype.
fn onnx_type(d: DType) -> u64 {
    match d {
        DType::F32 => 1,
        DType::F64 => 11,
        DType::I32 => 6,
        DType::Bool => 9,
    }
}

struct Builder<'g> {
    g: &'g Graph,
    nodes: Vec<Vec<u8>>,
    inits: Vec<Vec<u8>>,
    lines: LineIndex,
    file: &'g str,
    /// The batch size as an int64 [1] tensor, once made.
    batch: Option<String>,
    counter: usize,
    x: String,
}

/// An attribute: (name, encoded AttributeProto).
type Attr = Vec<u8>;

fn attr_int(name: &str, v: i64) -> Attr {
    let mut a = Vec::new();
    field_str(&mut a, 1, name);
    field_varint(&mut a, 3, v as u64);
    field_varint(&mut a, 20, 2);
    a
}

fn attr_ints(name: &str, vs: &[i64]) -> Attr {
    let mut a = Vec::new();
    field_str(&mut a, 1, name);
    for v in vs {
        field_varint(&mut a, 8, *v as u64);
    }
    field_varint(&mut a, 20, 7);
    a
}

impl Builder<'_> {
    fn fresh(&mut self, what: &str) -> String {
        self.counter += 1;
        format!("{what}_{}", self.counter)
    }

    fn node(&mut self, op: &str, inputs: &[String], output: &str, attrs: Vec<Attr>, doc: &str) {
        let mut n = Vec::new();
        for i in inputs {
            field_str(&mut n, 1, i);
        }
        field_str(&mut n, 2, output);
        let name = self.fresh(op);
        field_str(&mut n, 3, &name);
        field_str(&mut n, 4, op);
        for a in &attrs {
            field_bytes(&mut n, 5, a);
        }
        if !doc.is_empty() {
            field_str(&mut n, 6, doc);
        }
        self.nodes.push(n);
    }

    /// An initializer named `name`.
    fn init(&mut self, name: &str, dtype: DType, dims: &[usize], values: &[f64]) {
        let mut t = Vec::new();
        for d in dims {
            field_varint(&mut t, 1, *d as u64);
        }
        field_varint(&mut t, 2, onnx_type(dtype));
        field_str(&mut t, 8, name);
        let raw: Vec<u8> = match dtype {
            DType::F32 => values
                .iter()
                .flat_map(|v| (*v as f32).to_le_bytes())
                .collect(),
            DType::F64 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            DType::I32 => values
                .iter()
                .flat_map(|v| (*v as i32).to_le_bytes())
                .collect(),
            DType::Bool => values.iter().map(|v| u8::from(*v != 0.0)).collect(),
        };
        field_bytes(&mut t, 9, &raw);
        self.inits.push(t);
    }

    fn int64s(&mut self, what: &str, values: &[i64]) -> String {
        let name = self.fresh(what);
        let mut t = Vec::new();
        field_varint(&mut t, 1, values.len() as u64);
        field_varint(&mut t, 2, 7);
        field_str(&mut t, 8, &name);
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        field_bytes(&mut t, 9, &raw);
        self.inits.push(t);
        name
    }

    /// The batch size as an int64 tensor of shape [1].
    fn batch(&mut self) -> String {
        if let Some(b) = &self.batch {
            return b.clone();
        }
        let shape = self.fresh("x_shape");
        let x = self.x.clone();
        self.node("Shape", &[x], &shape, Vec::new(), "");
        let (lo, hi) = (self.int64s("zero", &[0]), self.int64s("one", &[1]));
        let b = self.fresh("batch");
        self.node("Slice", &[shape, lo, hi], &b, Vec::new(), "the batch size");
        self.batch = Some(b.clone());
        b
    }

    /// A shape as an int64 tensor (the batch dimension from `x`).
    fn shape(&mut self, s: &Shape) -> String {
        if s.0.iter().all(|d| matches!(d, Dim::Fixed(_))) {
            let v: Vec<i64> =
                s.0.iter()
                    .map(|d| match d {
                        Dim::Fixed(n) => *n as i64,
                        Dim::Batch => 0,
                    })
                    .collect();
            return self.int64s("shape", &v);
        }
        let parts: Vec<String> =
            s.0.iter()
                .map(|d| match d {
                    Dim::Fixed(n) => self.int64s("dim", &[*n as i64]),
                    Dim::Batch => self.batch(),
                })
                .collect();
        let name = self.fresh("shape");
        self.node("Concat", &parts, &name, vec![attr_int("axis", 0)], "");
        name
    }

    fn place(&self, id: NodeId) -> String {
        let sp = self.g.node(id).span;
        if sp.end > sp.start {
            format!("{}:{}", self.file, self.lines.line(sp.start))
        } else {
            String::new()
        }
    }

    /// Emits the graph's nodes once, names prefixed with `prefix`, the
    /// parameters from `params`; returns the name of `out`'s value.
    fn graph_copy(
        &mut self,
        prefix: &str,
        params: &[Vec<f64>],
        out: NodeId,
    ) -> Result<String, String> {
        let g = self.g;
        let live = crate::ir::print::needed_by(g, &[out]);
        let mut names: Vec<String> = vec![String::new(); g.nodes.len()];
        let param_inputs = g
            .inputs
            .iter()
            .filter(|i| matches!(i.role, Role::Param { .. }));
        for (info, values) in param_inputs.zip(params) {
            let ty = g.ty(info.node);
            let name = format!("{prefix}{}", info.name);
            self.init(&name, ty.dtype, &concrete(&ty.shape, 1), values);
            names[info.node.index()] = name;
        }
        for i in (0..g.nodes.len()).filter(|i| live[*i]) {
            let id = NodeId(i as u32);
            let ins: Vec<String> = g
                .node(id)
                .inputs
                .iter()
                .map(|n| names[n.index()].clone())
                .collect();
            if let Some(name) = self.emit(id, &ins, format!("{prefix}v{i}"))? {
                names[i] = name;
            }
        }
        Ok(names[out.index()].clone())
    }

    /// Node `id` as ONNX ops computing the value `name` from `ins`; its
    /// value's name (`None` for a parameter, already an initializer), or
    /// why ONNX export cannot express it.
    #[warn(clippy::wildcard_enum_match_arm)]
    fn emit(&mut self, id: NodeId, ins: &[String], name: String) -> Result<Option<String>, String> {
        let g = self.g;
        let node = g.node(id);
        let (ty, doc) = (&node.ty, self.place(id));
        let to = || attr_int("to", onnx_type(ty.dtype) as i64);
        let one = |b: &mut Self, op: &str, attrs: Vec<Attr>| {
            b.node(op, ins, &name, attrs, &doc);
        };
        match &node.op {
            Op::Input(k) => {
                let info = &g.inputs[*k as usize];
                return match info.role {
                    Role::Features => Ok(Some(self.x.clone())),
                    Role::Param { .. } => Ok(None),
                    Role::Label
                    | Role::Step
                    | Role::Epoch
                    | Role::Value
                    | Role::Hyper
                    | Role::State(_)
                    | Role::Samples
                    | Role::FirstSample => Err(format!(
                        "the model's output depends on the input `{}` ({doc}), which ONNX export cannot give it",
                        info.name
                    )),
                };
            }
            Op::Neg => one(self, "Neg", Vec::new()),
            Op::Recip => one(self, "Reciprocal", Vec::new()),
            Op::Exp => one(self, "Exp", Vec::new()),
            Op::Log => one(self, "Log", Vec::new()),
            Op::Sqrt => one(self, "Sqrt", Vec::new()),
            Op::Abs => one(self, "Abs", Vec::new()),
            Op::Tanh => one(self, "Tanh", Vec::new()),
            Op::Sin => one(self, "Sin", Vec::new()),
            Op::Cos => one(self, "Cos", Vec::new()),
            Op::Floor => one(self, "Floor", Vec::new()),
            Op::Sigmoid => one(self, "Sigmoid", Vec::new()),
            Op::StopGradient => one(self, "Identity", Vec::new()),
            Op::AllReduce => {
                return Err(format!(
                    "{doc} sums across the processes of a data-parallel run, which ONNX export cannot express"
                ))
            }
            Op::Add => one(self, "Add", Vec::new()),
            Op::Mul => one(self, "Mul", Vec::new()),
            Op::Max => one(self, "Max", Vec::new()),
            Op::Pow => one(self, "Pow", Vec::new()),
            Op::Select => one(self, "Where", Vec::new()),
            Op::MatMul => one(self, "MatMul", Vec::new()),
            Op::Cast => one(self, "Cast", vec![to()]),
            Op::Const(bits) => self.init(&name, ty.dtype, &[], &[f64::from_bits(*bits)]),
            Op::Literal(l) => {
                let values = &g.literals[*l as usize];
                self.init(&name, ty.dtype, &concrete(&ty.shape, 1), values);
            }
            Op::Iota { axis } if ty.shape.0.iter().all(|d| matches!(d, Dim::Fixed(_))) => {
                let dims = concrete(&ty.shape, 1);
                self.init(&name, ty.dtype, &dims, &iota(&dims, *axis as usize));
            }
            Op::BatchSize => {
                let b = self.batch();
                let scalar = self.fresh("batch_scalar");
                let empty = self.int64s("scalar_shape", &[]);
                self.node("Reshape", &[b, empty], &scalar, Vec::new(), &doc);
                self.node("Cast", &[scalar], &name, vec![to()], &doc);
            }
            Op::Cmp(c) => {
                let op = match c {
                    CmpOp::Eq | CmpOp::Ne => "Equal",
                    CmpOp::Lt => "Less",
                    CmpOp::Le => "LessOrEqual",
                    CmpOp::Gt => "Greater",
                    CmpOp::Ge => "GreaterOrEqual",
                };
                if *c == CmpOp::Ne {
                    let eq = self.fresh("eq");
                    self.node(op, ins, &eq, Vec::new(), &doc);
                    self.node("Not", &[eq], &name, Vec::new(), &doc);
                } else {
                    one(self, op, Vec::new());
                }
            }
            // No axes: the value itself (ONNX would reduce them all).
            Op::ReduceSum { axes: 0 } | Op::ReduceMax { axes: 0 } => {
                one(self, "Identity", Vec::new())
            }
            Op::ReduceSum { axes } => {
                let a = self.int64s("axes", &bits(*axes));
                let inputs = [ins[0].clone(), a];
                self.node(
                    "ReduceSum",
                    &inputs,
                    &name,
                    vec![attr_int("keepdims", 0)],
                    &doc,
                );
            }
            Op::ReduceMax { axes } => {
                one(
                    self,
                    "ReduceMax",
                    vec![attr_ints("axes", &bits(*axes)), attr_int("keepdims", 0)],
                );
            }
            Op::ArgMax { axis } => {
                let i64s = self.fresh("argmax");
                let attrs = vec![attr_int("axis", i64::from(*axis)), attr_int("keepdims", 0)];
                self.node("ArgMax", ins, &i64s, attrs, &doc);
                self.node("Cast", &[i64s], &name, vec![to()], &doc);
            }
            Op::Broadcast | Op::Reshape => {
                let op = if node.op == Op::Broadcast {
                    "Expand"
                } else {
                    "Reshape"
                };
                let s = self.shape(&ty.shape);
                self.node(op, &[ins[0].clone(), s], &name, Vec::new(), &doc);
            }
            Op::Transpose { perm } => {
                let p: Vec<i64> = perm.iter().map(|v| i64::from(*v)).collect();
                one(self, "Transpose", vec![attr_ints("perm", &p)]);
            }
            Op::Slice {
                axis,
                start,
                end,
                step,
            } => {
                let mut inputs = vec![ins[0].clone()];
                for (what, v) in [
                    ("starts", *start),
                    ("ends", *end),
                    ("axes", u64::from(*axis)),
                    ("steps", *step),
                ] {
                    inputs.push(self.int64s(what, &[v as i64]));
                }
                self.node("Slice", &inputs, &name, Vec::new(), &doc);
            }
            Op::Pad {
                axis,
                start,
                step: 1,
                len,
            } => {
                let shape = &g.ty(node.inputs[0]).shape.0;
                let Some(Dim::Fixed(n)) = shape.get(*axis as usize) else {
                    return Err(unsupported("pad along the batch", &doc));
                };
                let mut pads = vec![0i64; 2 * shape.len()];
                pads[*axis as usize] = *start as i64;
                pads[shape.len() + *axis as usize] = (*len - *start - n) as i64;
                let p = self.int64s("pads", &pads);
                self.node("Pad", &[ins[0].clone(), p], &name, Vec::new(), &doc);
            }
            Op::Pad { .. } => return Err(unsupported("pad with a step", &doc)),
            Op::Iota { .. } => return Err(unsupported("iota along the batch", &doc)),
            Op::Random { .. } => return Err(unsupported("random", &doc)),
            Op::Linalg(l) => return Err(unsupported(&format!("linalg {}", l.name()), &doc)),
        }
        Ok(Some(name))
    }
}

fn unsupported(op: &str, place: &str) -> String {
    format!(
        "`{op}` ({}) has no ONNX counterpart that dlc exports",
        if place.is_empty() {
            "no source line"
        } else {
            place
        }
    )
}

/// The axes of a bit set.
fn bits(axes: u32) -> Vec<i64> {
    (0..32).filter(|a| axes & (1 << a) != 0).collect()
}

/// `out[i] = index along axis`, row-major over `dims`.
fn iota(dims: &[usize], axis: usize) -> Vec<f64> {
    let n: usize = dims.iter().product();
    let inner: usize = dims[axis + 1..].iter().product();
    (0..n).map(|i| ((i / inner) % dims[axis]) as f64).collect()
}

fn value_info(name: &str, dtype: DType, shape: &Shape) -> Vec<u8> {
    let mut dims = Vec::new();
    for d in &shape.0 {
        let mut dim = Vec::new();
        match d {
            Dim::Fixed(n) => field_varint(&mut dim, 1, *n),
            Dim::Batch => field_str(&mut dim, 2, "B"),
        }
        field_bytes(&mut dims, 1, &dim);
    }
    let mut tensor = Vec::new();
    field_varint(&mut tensor, 1, onnx_type(dtype));
    field_bytes(&mut tensor, 2, &dims);
    let mut ty = Vec::new();
    field_bytes(&mut ty, 1, &tensor);
    let mut v = Vec::new();
    field_str(&mut v, 1, name);
    field_bytes(&mut v, 2, &ty);
    v
}

// ---- protobuf wire format ----

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field_varint(out: &mut Vec<u8>, field: u64, v: u64) {
    varint(out, field << 3);
    varint(out, v);
}

fn field_bytes(out: &mut Vec<u8>, field: u64, b: &[u8]) {
    varint(out, (field << 3) | 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn field_str(out: &mut Vec<u8>, field: u64, s: &str) {
    field_bytes(out, field, s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_little_endian_base_128() {
        let mut v = Vec::new();
        varint(&mut v, 300);
        assert_eq!(v, [0xAC, 0x02]);
        let mut f = Vec::new();
        field_varint(&mut f, 1, 8);
        assert_eq!(f, [0x08, 0x08]);
        let mut s = Vec::new();
        field_str(&mut s, 2, "ab");
        assert_eq!(s, [0x12, 2, b'a', b'b']);
        assert_eq!(bits(0b101), vec![0, 2]);
        assert_eq!(iota(&[2, 3], 1), vec![0.0, 1.0, 2.0, 0.0, 1.0, 2.0]);
        assert_eq!(iota(&[2, 3], 0), vec![0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    }
}
