//! The memory budget: what this process may still allocate, and the check
//! every command makes before it allocates tensors.
//!
//! Invariant: a tensor, an arena or a data table larger than
//! [`available`] is refused with "needs X GiB, Y GiB available" before
//! any of it is allocated, so no input makes dlc abort on a failed
//! allocation (DESIGN.md: never 134). The budget is the smaller of the
//! machine's available memory and what the address-space limit
//! (`ulimit -v`, RLIMIT_AS) leaves beside what the process already maps.

use crate::ir::{Dim, Graph, Shape};

/// Bytes this process can still allocate, or `None` where unknown.
pub fn available() -> Option<u128> {
    let physical = meminfo_available();
    let address_space = address_space_left();
    match (physical, address_space) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// MemAvailable from /proc/meminfo.
fn meminfo_available() -> Option<u128> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    kib_field(&text, "MemAvailable:")
}

/// RLIMIT_AS (from /proc/self/limits) less the address space already
/// mapped (VmSize); `None` when there is no limit.
fn address_space_left() -> Option<u128> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max address space"))?;
    // "Max address space   <soft>   <hard>   bytes"
    let soft = line
        .trim_start_matches("Max address space")
        .split_whitespace()
        .next()?;
    let limit: u128 = soft.parse().ok()?; // "unlimited" does not parse
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let used = kib_field(&status, "VmSize:").unwrap_or(0);
    Some(limit.saturating_sub(used))
}

/// Whether an address-space limit (RLIMIT_AS) is set.
pub fn address_space_limited() -> bool {
    address_space_left().is_some()
}

fn kib_field(text: &str, key: &str) -> Option<u128> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kb: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `b` bytes as "1.2 GiB" (or MiB below a GiB).
pub fn format_bytes(b: u128) -> String {
    let gib = b as f64 / (1u128 << 30) as f64;
    if gib >= 1.0 {
        format!("{gib:.1} GiB")
    } else {
        format!("{:.1} MiB", b as f64 / (1u128 << 20) as f64)
    }
}

/// What a run needs besides its tensors: thread stacks, JIT code, the
/// allocator's per-thread arenas (measured: `mlp.dl` aborted under a
/// `ulimit -v` 30 MiB above its tensors' estimate, and ran 70 MiB above).
pub const RESERVE: u128 = 96 << 20;

/// Refuses `need` bytes (plus [`RESERVE`]) for `what` when they exceed
/// what is available.
pub fn check(what: &str, need: u128) -> Result<(), String> {
    let need = need + RESERVE;
    match available() {
        Some(avail) if need > avail => Err(format!(
            "{what} needs about {}, but only {} is available{}",
            format_bytes(need),
            format_bytes(avail),
            if address_space_left().is_some_and(|a| a < meminfo_available().unwrap_or(u128::MAX)) {
                " (under the address-space limit, ulimit -v)"
            } else {
                ""
            }
        )),
        _ => Ok(()),
    }
}

/// The elements of every live node of `g` at batch size `batch`: the
/// values an evaluation of `g` holds at most, one buffer each.
pub fn graph_elements(g: &Graph, batch: u64) -> u128 {
    let live = crate::ir::print::live_nodes(g);
    g.nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| live[*i])
        .map(|(_, n)| elements(&n.ty.shape, batch))
        .sum()
}

/// The elements of a tensor of `shape` at batch size `batch`.
pub fn elements(shape: &Shape, batch: u64) -> u128 {
    shape
        .0
        .iter()
        .map(|d| match d {
            Dim::Fixed(k) => u128::from(*k),
            Dim::Batch => u128::from(batch),
        })
        .product()
}
