//! The plan in words and numbers: `dlc ir --stage kernels`, and the counts of `--verbose`.

use crate::ir::{Graph, NodeId, Op};
use crate::opt::Passes;

use super::plan::{layout, plan, root, Kernel, KernelKind, Plan, Storage};

/// Counts for `--verbose` and `dlc ir --stage kernels`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    pub kernels: usize,
    pub buffers: usize,
    /// The most bytes of temporaries alive at once.
    pub temp_bytes: usize,
    /// The arena: every buffer at once, as laid out.
    pub peak_bytes: usize,
}

/// The plan's counts at `batch` with passes `p` (the graph already
/// optimized by `p`'s IR passes).
pub fn stats(g: &Graph, p: &Passes, batch: usize) -> Stats {
    let plan = plan(g, p);
    let l = layout(g, &plan, batch, p.inplace);
    Stats {
        kernels: plan.kernels.len(),
        buffers: l.buffers,
        temp_bytes: l.temp_bytes,
        peak_bytes: l.words * 8,
    }
}

fn mib(b: usize) -> String {
    format!("{:.2} MiB", b as f64 / (1 << 20) as f64)
}

impl Stats {
    pub fn line(&self) -> String {
        format!(
            "{} kernels, {} buffers, temporaries {}, arena {}",
            self.kernels,
            self.buffers,
            mib(self.temp_bytes),
            mib(self.peak_bytes)
        )
    }
}

/// The kernels (what each computes and where its results go) and the
/// buffers' places at `batch`: `dlc ir --stage kernels`.
pub fn describe(g: &Graph, p: &Passes, batch: usize) -> String {
    use std::fmt::Write as _;
    let plan = plan(g, p);
    let l = layout(g, &plan, batch, p.inplace);
    let mut out = String::new();
    // The names `dlc ir --stage opt` prints.
    let names = crate::ir::print::names(g);
    let name = |id: NodeId| {
        names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("#{}", id.0))
    };
    let sums = super::sums::Sums::of(g, &plan);
    for (ki, k) in plan.kernels.iter().enumerate() {
        for &si in sums.waits[ki]
            .iter()
            .filter(|si| sums.sums[**si].overlapped)
        {
            let _ = writeln!(out, "     wait for all_reduce {}", name(sums.sums[si].node));
        }
        describe_kernel(&mut out, g, &plan, (ki, k), &name);
        for &si in &sums.starts[ki] {
            let s = &sums.sums[si];
            let (what, how) = if s.overlapped {
                ("start", "while the kernels below run")
            } else {
                ("sum", "now: the next kernel reads it")
            };
            let _ = writeln!(
                out,
                "     {what} all_reduce {} = Σ over the processes of {}, in its buffer, {how}",
                name(s.node),
                name(g.node(s.node).inputs[0])
            );
        }
    }
    if !sums.sums.is_empty() {
        let _ = writeln!(
            out,
            "     wait for every all_reduce still running (the step's outputs)"
        );
    }
    let _ = writeln!(
        out,
        "\nbuffers at batch {batch} (8-byte words from the arena's start):"
    );
    for (i, node) in g.nodes.iter().enumerate() {
        let id = NodeId(i as u32);
        let what = match plan.storage[i] {
            Storage::Unused => continue,
            Storage::Own => "own".to_string(),
            Storage::Scratch => "one-row scratch".to_string(),
            Storage::Stack => "one-row scratch on each thread's stack".to_string(),
            Storage::Alias(r) => match node.op {
                Op::Reshape => format!("view of {}", name(r)),
                Op::AllReduce => format!("summed across the processes in place of {}", name(r)),
                _ => format!("in place of {}", name(r)),
            },
            Storage::Inline(r) => format!("read transposed from {} by its matmuls", name(r)),
        };
        let role = match &node.op {
            Op::Input(k) => format!("  input {}", g.inputs[*k as usize].name),
            _ => String::new(),
        };
        let outs: Vec<&str> = g
            .outputs
            .iter()
            .filter(|(_, o)| *o == id)
            .map(|(n, _)| n.as_str())
            .collect();
        let outs = if outs.is_empty() {
            String::new()
        } else {
            format!("  output {}", outs.join(", "))
        };
        let off = l.offsets[i].map_or("-".to_string(), |o| o.to_string());
        let _ = writeln!(
            out,
            "  {:<6} {:<16} @{off:<9} {what}{role}{outs}",
            name(id),
            node.ty.to_string()
        );
    }
    out
}

/// One kernel's lines of [`describe`]: its op, or its row group's members
/// and which of them are written to memory.
fn describe_kernel(
    out: &mut String,
    g: &Graph,
    plan: &Plan,
    (ki, k): (usize, &Kernel),
    name: &dyn Fn(NodeId) -> String,
) {
    use std::fmt::Write as _;
    let first = g.node(k.nodes[0]);
    match k.kind {
        KernelKind::Node => {
            let _ = writeln!(
                out,
                "k{ki:<3} {:<12} {} = {}({})",
                first.op.name(),
                name(k.nodes[0]),
                first.ty,
                first
                    .inputs
                    .iter()
                    .map(|x| name(*x))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        KernelKind::Rows => {
            let ops: Vec<String> = k
                .nodes
                .iter()
                .map(|id| format!("{}:{}", name(*id), g.node(*id).op.name()))
                .collect();
            let _ = writeln!(
                out,
                "k{ki:<3} rows[{}]{:<w$} {}",
                k.rows,
                "",
                ops.join(" "),
                w = 7usize.saturating_sub(k.rows.to_string().len())
            );
            let kept: Vec<String> = k
                .nodes
                .iter()
                .filter(|id| {
                    let r = root(&plan.storage, **id);
                    !matches!(plan.storage[r.index()], Storage::Scratch | Storage::Stack)
                })
                .map(|id| name(*id))
                .collect();
            let _ = writeln!(
                out,
                "                  writes {}; the other {} stay in one-row scratch",
                if kept.is_empty() {
                    "nothing".to_string()
                } else {
                    kept.join(" ")
                },
                k.nodes.len() - kept.len()
            );
            for u in &k.updates {
                let _ = writeln!(
                    out,
                    "                  {}..{}: one routine over the row, {}",
                    name(u.nodes[0]),
                    name(u.nodes[u.nodes.len() - 1]),
                    u.describe()
                );
            }
            for id in &k.wide {
                let _ = writeln!(
                    out,
                    "                  {}: {} over the row 8 lanes at a time, one routine",
                    name(*id),
                    g.node(*id).op.name()
                );
            }
        }
    }
}
