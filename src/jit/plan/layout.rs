//! The memory plan: every buffer's place in one arena at a batch size, reused by liveness (best fit).

use crate::interp::concrete;
use crate::ir::{Graph, NodeId};
use crate::jit::exec::elem_size;

use super::kernel::{Plan, Storage};

/// The last kernel that reads each node's memory (through views too);
/// `Some(kernels)` for outputs, which are read after the last kernel.
/// `root` resolves a node to the node whose memory it reads.
pub(super) fn last_uses(
    g: &Graph,
    storage: &[Storage],
    kernel_of: &[Option<usize>],
    kernels: usize,
    mut root: impl FnMut(NodeId) -> NodeId,
) -> Vec<Option<usize>> {
    let mut last: Vec<Option<usize>> = vec![None; g.len()];
    for (i, node) in g.nodes.iter().enumerate() {
        if storage[i] == Storage::Unused {
            continue;
        }
        let k = match kernel_of[i] {
            Some(k) => k,
            None => continue,
        };
        for x in &node.inputs {
            let r = root(*x).index();
            last[r] = Some(last[r].map_or(k, |l: usize| l.max(k)));
        }
    }
    for (_, o) in &g.outputs {
        last[root(*o).index()] = Some(kernels);
    }
    last
}

/// Where every buffer lives at one batch size.
#[derive(Clone, Debug)]
pub struct Layout {
    pub batch: usize,
    /// Each node's offset in the arena, in 8-byte words (aliases resolved).
    pub offsets: Vec<Option<usize>>,
    /// The arena's size in words.
    pub words: usize,
    /// Distinct buffers.
    pub buffers: usize,
    /// Bytes of temporaries (buffers that are neither inputs, constants
    /// nor outputs): with reuse, the most alive at once over the kernels;
    /// without, all of them.
    pub temp_bytes: usize,
}

/// The largest row kept on a thread's stack (worker threads have 2 MiB).
pub const STACK_ROW_BYTES: usize = 16 << 10;

/// Bytes of one row of node `id` (its value without the leading axis).
pub fn row_bytes(g: &Graph, id: NodeId) -> usize {
    let t = g.ty(id);
    let rest = crate::ir::Shape(t.shape.0.iter().skip(1).copied().collect());
    concrete(&rest, 1).iter().product::<usize>() * elem_size(t.dtype)
}

/// Bytes of node `id`'s value at `batch` (one row for scratch).
fn bytes(g: &Graph, id: NodeId, batch: usize, scratch: bool) -> usize {
    let t = g.ty(id);
    let n: usize = concrete(&t.shape, if scratch { 1 } else { batch })
        .iter()
        .product();
    n * elem_size(t.dtype)
}

/// Lays the plan's buffers out in one arena for batch size `batch`: with
/// `reuse`, a buffer takes the place of one that died before it was
/// defined (best fit); without, every buffer has its own place.
pub fn layout(g: &Graph, plan: &Plan, batch: usize, reuse: bool) -> Layout {
    let n = g.len();
    let kernels = plan.kernels.len();
    let last = last_uses(g, &plan.storage, &plan.kernel_of, kernels, |x| plan.root(x));
    let mut outputs = vec![false; n];
    for (_, o) in &g.outputs {
        outputs[o.index()] = true;
    }
    let is_output = |id: usize| outputs[id];
    // (def, last, words, node, temporary) of every owned buffer.
    let mut bufs: Vec<Buf> = Vec::new();
    for (i, &last_use) in last.iter().enumerate() {
        let scratch = match plan.storage[i] {
            Storage::Own => false,
            Storage::Scratch => true,
            Storage::Unused | Storage::Alias(_) | Storage::Inline(_) | Storage::Stack => continue,
        };
        let words = bytes(g, NodeId(i as u32), batch, scratch).div_ceil(64) * 8;
        let words = words.max(8);
        let def = plan.kernel_of[i].unwrap_or(0);
        let end = if scratch {
            def
        } else {
            last_use.unwrap_or(def).max(def)
        };
        let leaf = plan.kernel_of[i].is_none();
        let temp = !leaf && !is_output(i);
        bufs.push((def, end, words, i, temp));
    }
    let mut offsets: Vec<Option<usize>> = vec![None; n];
    let mut words_total = 0;
    if reuse {
        words_total = best_fit(plan, &mut bufs, &mut offsets);
    } else {
        for &(_, _, words, i, _) in &bufs {
            offsets[i] = Some(words_total);
            words_total += words;
        }
    }
    // Aliases share their root's place (in id order: an alias points to a
    // lower id, whose place is already resolved).
    for i in 0..n {
        if let Storage::Alias(r) = plan.storage[i] {
            offsets[i] = offsets[r.index()];
        }
    }
    Layout {
        batch,
        offsets,
        words: words_total,
        buffers: bufs.len(),
        // Without reuse every temporary holds its memory for the whole run.
        temp_bytes: if !reuse {
            bufs.iter().filter(|b| b.4).map(|b| b.2 * 8).sum()
        } else {
            peak_temporaries(&bufs, kernels)
        },
    }
}

/// An owned buffer: (defining kernel, last kernel, words, node, temporary).
type Buf = (usize, usize, usize, usize, bool);

/// Places the buffers by best fit, leaves first; returns the arena's
/// words.
fn best_fit(plan: &Plan, bufs: &mut [Buf], offsets: &mut [Option<usize>]) -> usize {
    // Leaves (inputs, constants) live from before the first kernel to
    // the end: they go first, one after another.
    let mut base = 0;
    for &(_, _, words, i, _) in bufs.iter() {
        if plan.kernel_of[i].is_none() {
            offsets[i] = Some(base);
            base += words;
        }
    }
    let mut words_total = base;
    // The others by definition, each in the best-fitting gap between
    // the blocks still live (sorted by offset); a block dead before a
    // definition is dropped, since definitions only move on.
    bufs.sort_by_key(|b| (b.0, b.3));
    let mut live: Vec<(usize, usize, usize)> = Vec::new(); // (off, words, end)
    for &(def, end, words, i, _) in bufs.iter() {
        if plan.kernel_of[i].is_none() {
            continue;
        }
        live.retain(|(_, _, e)| *e >= def);
        let mut best: Option<(usize, usize)> = None; // (gap, off)
        let mut at = base;
        for (o, w, _) in &live {
            if *o >= at + words {
                let gap = o - at;
                if best.is_none_or(|(g, _)| gap < g) {
                    best = Some((gap, at));
                }
            }
            at = at.max(o + w);
        }
        let off = best.map_or(at, |(_, o)| o);
        let k = live.partition_point(|(o, _, _)| *o < off);
        live.insert(k, (off, words, end));
        offsets[i] = Some(off);
        words_total = words_total.max(off + words);
    }
    words_total
}

/// The most bytes of temporaries alive at once: a sweep over the kernels,
/// each temporary alive from its definition through its last use.
fn peak_temporaries(bufs: &[Buf], kernels: usize) -> usize {
    let span = kernels.max(1);
    let mut delta = vec![0i64; span + 1];
    for b in bufs.iter().filter(|b| b.4) {
        if b.0 <= b.1 && b.0 < span {
            delta[b.0] += (b.2 * 8) as i64;
            delta[(b.1 + 1).min(span)] -= (b.2 * 8) as i64;
        }
    }
    let mut alive = 0i64;
    let mut most = 0i64;
    for d in &delta[..span] {
        alive += d;
        most = most.max(alive);
    }
    most as usize
}
