//! The IR printer: jaxpr-like text, one binder per line with its type.
//!
//! ```text
//! in  %0:f32[784,256] = param W1 ~ normal(0.01)      # mlp.dl:12
//!     %5:f32[B,256] = matmul %4 %0                     # mlp.dl:16
//!     %9:f32[] = mul %8 0.5:f32
//! out loss = %9
//! ```
//! Only nodes that an output depends on are printed (inputs always are),
//! ids are renumbered densely so snapshots stay stable, scalar constants
//! are written inline, and each line ends with the `.dl` line it came from.

use std::collections::HashMap;
use std::fmt::Write;

use super::{DType, Graph, NodeId, Op, Role};
use crate::span::LineIndex;

/// Where spans point: the file name and its line index.
pub struct SourceInfo<'a> {
    pub file: &'a str,
    pub lines: &'a LineIndex,
}

/// The nodes needed by the outputs, plus every input.
pub fn live_nodes(g: &Graph) -> Vec<bool> {
    let roots: Vec<NodeId> = g
        .outputs
        .iter()
        .map(|(_, id)| *id)
        .chain(g.inputs.iter().map(|i| i.node))
        .collect();
    needed_by(g, &roots)
}

/// The nodes `roots` depend on, themselves included (inputs precede
/// their users, so one backward sweep finds them).
pub fn needed_by(g: &Graph, roots: &[NodeId]) -> Vec<bool> {
    let mut live = vec![false; g.len()];
    for id in roots {
        live[id.index()] = true;
    }
    for i in (0..g.len()).rev() {
        if live[i] {
            for inp in &g.nodes[i].inputs {
                live[inp.index()] = true;
            }
        }
    }
    live
}

/// A value as its dtype holds it: f32 constants print with f32's shortest
/// round-trip digits (0.2, not 0.20000000298023224).
fn fmt_value(v: f64, dtype: DType) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        format!("{v:.1}")
    } else if dtype == DType::F32 {
        format!("{}", v as f32)
    } else {
        format!("{v}")
    }
}

/// The printed name of every live node: `%k` numbered in order, skipping
/// constants, which print as their value (`0.5:f32`).
pub fn names(g: &Graph) -> HashMap<NodeId, String> {
    let live = live_nodes(g);
    let mut names: HashMap<NodeId, String> = HashMap::new();
    let mut next = 0;
    for (i, node) in g.nodes.iter().enumerate() {
        if !live[i] {
            continue;
        }
        let id = NodeId(i as u32);
        if let Op::Const(bits) = node.op {
            names.insert(
                id,
                format!(
                    "{}:{}",
                    fmt_value(f64::from_bits(bits), node.ty.dtype),
                    node.ty.dtype.name()
                ),
            );
        } else {
            names.insert(id, format!("%{next}"));
            next += 1;
        }
    }
    names
}

pub fn graph(g: &Graph, src: Option<&SourceInfo>) -> String {
    let live = live_nodes(g);
    let names = names(g);
    let name = |id: &NodeId| names.get(id).cloned().unwrap_or_else(|| "?".to_string());
    let mut out = String::new();
    for (i, node) in g.nodes.iter().enumerate() {
        if !live[i] || matches!(node.op, Op::Const(_)) {
            continue;
        }
        let id = NodeId(i as u32);
        let mut line = String::new();
        let prefix = if matches!(node.op, Op::Input(_)) {
            "in  "
        } else {
            "    "
        };
        let _ = write!(line, "{prefix}{}:{} = ", name(&id), node.ty);
        let rhs = if let Op::Input(k) = &node.op {
            match g.inputs.get(*k as usize) {
                Some(info) => match &info.role {
                    Role::Param { init } => format!("param {} ~ {init}", info.name),
                    Role::Features => format!("features {}", info.name),
                    Role::Label if info.name == "label" => "label".to_string(),
                    Role::Label => format!("label {}", info.name),
                    Role::Step => "step".to_string(),
                    Role::Epoch => "epoch".to_string(),
                    Role::Value => format!("value {}", info.name),
                    Role::Hyper => format!("hyper {}", info.name),
                    Role::State(slot) => format!("{slot} {}", info.name),
                    Role::Samples => "samples".to_string(),
                    Role::FirstSample => "first_sample".to_string(),
                },
                None => "input ?".to_string(),
            }
        } else if let Op::Literal(k) = &node.op {
            let vals = g.literals.get(*k as usize).cloned().unwrap_or_default();
            if vals.len() <= 8 {
                let parts: Vec<String> =
                    vals.iter().map(|v| fmt_value(*v, node.ty.dtype)).collect();
                format!("literal[{}]", parts.join(","))
            } else {
                format!("literal[{} values]", vals.len())
            }
        } else {
            let op = &node.op;
            let args: Vec<String> = node.inputs.iter().map(name).collect();
            let mut s = format!("{}{}", op.name(), op.params());
            for a in args {
                s.push(' ');
                s.push_str(&a);
            }
            s
        };
        line.push_str(&rhs);
        if let Some(src) = src {
            if node.span.end > node.span.start {
                let pad = 52usize.saturating_sub(line.chars().count());
                let _ = write!(
                    line,
                    "{:pad$}  # {}:{}",
                    "",
                    src.file,
                    src.lines.line(node.span.start)
                );
            }
        }
        if let Some(fwd) = g.grad_of.get(&id) {
            let _ = write!(line, " d({} {})", name(fwd), g.node(*fwd).op.name());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    for (n, id) in &g.outputs {
        let _ = writeln!(out, "out {n} = {}", name(id));
    }
    out
}
