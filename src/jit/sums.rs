//! Where a data-parallel step's sums across processes run (`Op::AllReduce`,
//! issue #19): each starts, without waiting, in its operand's buffer as
//! soon as the kernel that computes the operand has run, and is waited for
//! just before the first kernel that reads it; the kernels in between (the
//! rest of the backward pass) run while the sum travels. Every process has
//! the same plan, so every process starts the same sums in the same order,
//! as MPI's collectives require.

use crate::ir::{Graph, NodeId, Op};

use super::plan::{Plan, Storage};

/// One sum across processes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sum {
    /// The `all_reduce` node.
    pub node: NodeId,
    /// The buffer summed in place (its operand's root).
    pub buf: NodeId,
    /// The kernel after which it starts (`None`: before the first).
    pub after: Option<usize>,
    /// Whether a kernel runs between its start and its first reader: if
    /// not, nothing would overlap it, and it runs as one blocking sum
    /// (MPI's blocking collective measured faster than its non-blocking
    /// one here: docs/distributed.md).
    pub overlapped: bool,
}

/// A step's sums, and for each kernel the sums to start after it and to
/// wait for before it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sums {
    pub sums: Vec<Sum>,
    /// Per kernel: the sums (indices into `sums`) its members read.
    pub waits: Vec<Vec<usize>>,
    /// Per kernel: the sums whose operand it completes.
    pub starts: Vec<Vec<usize>>,
}

impl Sums {
    /// The sums of `g`'s plan (none for a graph without `all_reduce`).
    pub fn of(g: &Graph, plan: &Plan) -> Sums {
        let k = plan.kernels.len();
        let mut out = Sums {
            sums: Vec::new(),
            waits: vec![Vec::new(); k],
            starts: vec![Vec::new(); k],
        };
        for (i, node) in g.nodes.iter().enumerate() {
            if node.op != Op::AllReduce || plan.storage[i] == Storage::Unused {
                continue;
            }
            let id = NodeId(i as u32);
            let after = producer(g, plan, node.inputs[0]);
            let si = out.sums.len();
            out.sums.push(Sum {
                node: id,
                buf: plan.root(id),
                after,
                overlapped: true,
            });
            if let Some(a) = after {
                out.starts[a].push(si);
            }
        }
        for (ki, kernel) in plan.kernels.iter().enumerate() {
            for (si, s) in out.sums.iter().enumerate() {
                let later = s.after.is_none_or(|a| ki > a);
                let reads = kernel
                    .nodes
                    .iter()
                    .any(|m| g.node(*m).inputs.iter().any(|x| plan.root(*x) == s.buf));
                if later && reads {
                    out.waits[ki].push(si);
                }
            }
        }
        for (si, s) in out.sums.iter_mut().enumerate() {
            let next = s.after.map_or(0, |a| a + 1);
            let first_reader = (0..k).find(|ki| out.waits[*ki].contains(&si)).unwrap_or(k);
            s.overlapped = first_reader > next;
        }
        out
    }

    /// The sums that start before the first kernel (of values no kernel
    /// computes).
    pub fn at_start(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.sums.len()).filter(|si| self.sums[*si].after.is_none())
    }
}

/// The kernel that computes `x`'s value: its own, or for a view (a
/// reshape, or another sum) its operand's; `None` for an input.
fn producer(g: &Graph, plan: &Plan, mut x: NodeId) -> Option<usize> {
    loop {
        if let Some(k) = plan.kernel_of[x.index()] {
            return Some(k);
        }
        match plan.storage[x.index()] {
            Storage::Alias(_) | Storage::Inline(_) => x = *g.node(x).inputs.first()?,
            _ => return None,
        }
    }
}
