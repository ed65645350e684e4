//! `dlc train --profile`: where the training step's time goes, per `.dl`
//! source line (split into forward, backward and parameter update) and per
//! kernel.
//!
//! Every IR node carries the span of the source it came from; gradient
//! nodes carry their forward node's span (see autodiff.rs), and update
//! nodes the span of the parameter they update. So each kernel's time is
//! charged to a line a user wrote.

use std::fmt::Write as _;

use crate::ir::{Graph, NodeId};
use crate::span::LineIndex;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    Forward,
    Backward,
    Update,
}

/// Each node's phase: a gradient node is backward; a node computed from
/// gradients but not itself one (the SGD update) is update; the rest is
/// forward.
pub fn phases(g: &Graph) -> Vec<Phase> {
    let mut from_grad = vec![false; g.len()];
    let mut out = Vec::with_capacity(g.len());
    for (i, n) in g.nodes.iter().enumerate() {
        let id = NodeId(i as u32);
        let is_grad = g.grad_of.contains_key(&id);
        let uses_grad = n.inputs.iter().any(|x| from_grad[x.index()]);
        from_grad[i] = is_grad || uses_grad;
        out.push(if is_grad {
            Phase::Backward
        } else if uses_grad {
            Phase::Update
        } else {
            Phase::Forward
        });
    }
    out
}

/// A kernel's nodes and its seconds.
pub type KernelTime = (Vec<NodeId>, f64);

/// The profile table: per source line, milliseconds in each phase and the
/// share of all kernel time; then the ten slowest kernels. `kernels` gives
/// each kernel's nodes and seconds; a fused kernel's time is shared
/// equally among its nodes for the per-line table. `shared` gives, per
/// kernel split across threads, the fraction of its calls that shared
/// their rows with the workers (see `jit::adapt::Adapt`).
pub fn report(
    g: &Graph,
    (kernels, shared): (&[KernelTime], &[Option<f64>]),
    steps: u64,
    src: &str,
    file: &str,
) -> String {
    let p = Profile {
        g,
        kernels,
        shared,
        phase: phases(g),
        lines: LineIndex::new(src),
        total: kernels.iter().map(|k| k.1).sum(),
        file,
    };
    let steps = steps.max(1);
    let mut out = format!(
        "profile: {} kernels, {steps} steps, {:.3} s in kernels ({:.3} ms per step)\n",
        kernels.len(),
        p.total,
        p.total * 1e3 / steps as f64
    );
    p.write_line_table(&mut out, src);
    p.write_slowest_kernels(&mut out);
    out
}

/// What [`report`] reads: the graph, the kernels' times, each node's phase,
/// and the source's lines.
struct Profile<'a> {
    g: &'a Graph,
    kernels: &'a [(Vec<NodeId>, f64)],
    shared: &'a [Option<f64>],
    phase: Vec<Phase>,
    lines: LineIndex,
    /// Seconds in all kernels.
    total: f64,
    file: &'a str,
}

impl Profile<'_> {
    /// The source line a node came from, if it has a span.
    fn line_of(&self, id: NodeId) -> Option<usize> {
        let sp = self.g.node(id).span;
        (sp.end > sp.start).then(|| self.lines.line(sp.start))
    }

    /// Seconds per source line as [forward, backward, update], slowest line
    /// first; a kernel's time is shared equally among its nodes.
    fn per_line(&self) -> Vec<(Option<usize>, [f64; 3])> {
        let times: Vec<(NodeId, f64)> = self
            .kernels
            .iter()
            .flat_map(|(nodes, t)| {
                let share = t / nodes.len().max(1) as f64;
                nodes.iter().map(move |id| (*id, share))
            })
            .collect();
        // line → [forward, backward, update] seconds.
        let mut per_line: Vec<(Option<usize>, [f64; 3])> = Vec::new();
        for (id, t) in &times {
            let l = self.line_of(*id);
            let k = match self.phase[id.index()] {
                Phase::Forward => 0,
                Phase::Backward => 1,
                Phase::Update => 2,
            };
            match per_line.iter_mut().find(|e| e.0 == l) {
                Some(e) => e.1[k] += t,
                None => {
                    let mut v = [0.0; 3];
                    v[k] = *t;
                    per_line.push((l, v));
                }
            }
        }
        per_line.sort_by(|a, b| {
            let (x, y) = (a.1.iter().sum::<f64>(), b.1.iter().sum::<f64>());
            y.total_cmp(&x)
        });
        per_line
    }

    /// The per-line table: its header, then one row per source line.
    fn write_line_table(&self, out: &mut String, src: &str) {
        let file = self.file;
        let src_lines: Vec<&str> = src.lines().collect();
        let _ = writeln!(
            out,
            "  {:>14}  {:>11}  {:>11}  {:>11}  {:>6}  source",
            "line", "forward ms", "backward ms", "update ms", "share"
        );
        for (l, v) in &self.per_line() {
            let (at, text) = match l {
                Some(l) => (
                    format!("{file}:{l}"),
                    src_lines.get(l.saturating_sub(1)).map_or("", |s| s.trim()),
                ),
                None => ("-".to_string(), "(no source line)"),
            };
            let ms = |x: f64| {
                if x > 0.0 {
                    format!("{:.1}", x * 1e3)
                } else {
                    "-".to_string()
                }
            };
            let share = 100.0 * v.iter().sum::<f64>() / self.total.max(1e-12);
            let _ = writeln!(
                out,
                "  {at:>14}  {:>11}  {:>11}  {:>11}  {share:>5.1}%  {text}",
                ms(v[0]),
                ms(v[1]),
                ms(v[2])
            );
        }
    }

    /// The ten slowest kernels: op, type, time, share, phase and line.
    fn write_slowest_kernels(&self, out: &mut String) {
        let file = self.file;
        let mut slow: Vec<(usize, &(Vec<NodeId>, f64))> = self.kernels.iter().enumerate().collect();
        slow.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1));
        let _ = writeln!(out, "  slowest kernels:");
        for (k, (nodes, t)) in slow.into_iter().take(10) {
            let Some(first) = nodes.first() else {
                continue;
            };
            let n = self.g.node(*first);
            let what = match self.phase[first.index()] {
                Phase::Forward => "forward",
                Phase::Backward => "backward",
                Phase::Update => "update",
            };
            let at = self
                .line_of(*first)
                .map_or("-".to_string(), |l| format!("{file}:{l}"));
            let ops = if nodes.len() > 1 {
                format!("{} +{} fused", n.op.name(), nodes.len() - 1)
            } else {
                n.op.name().to_string()
            };
            let threads = match self.shared.get(k).copied().flatten() {
                Some(f) => format!("  (rows shared in {:.0}% of calls)", 100.0 * f),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "    k{k:<4} {ops:<18} {:<16} {:>9.1} ms  {:>5.1}%  {what:<8} {at}{threads}",
                n.ty.to_string(),
                t * 1e3,
                100.0 * t / self.total.max(1e-12)
            );
        }
    }
}
