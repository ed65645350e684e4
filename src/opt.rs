//! The optimizer: IR → IR passes, then the kernel-level passes the JIT
//! applies when it compiles (fusion, in-place reuse and the memory plan,
//! see `jit/plan.rs`).
//!
//! The pipeline, in order, repeated while it still changes the graph (at
//! most three rounds):
//!
//! ```text
//! fold → simplify → cse → dce
//! ```
//!
//! Every pass is a pure function `&Graph -> Graph` in its own module. In
//! debug builds the IR verifier runs after each one. `Passes` switches each
//! pass (and the JIT's) on or off, for `--no-opt`, the differential tests
//! and for measuring what each buys.

pub mod cse;
pub mod dce;
pub mod fold;
pub mod rewrite;
pub mod simplify;

use crate::ir::Graph;

/// Which passes run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Passes {
    pub fold: bool,
    pub simplify: bool,
    pub cse: bool,
    pub dce: bool,
    /// Kernel fusion in the JIT (row groups and matmul epilogues).
    pub fuse: bool,
    /// In-place buffers and the liveness memory plan in the JIT.
    pub inplace: bool,
    /// Optimizer updates recognized in fused row groups, each run as one
    /// routine over the row in the JIT (`jit/update.rs`).
    pub update: bool,
    /// tanh, sigmoid and exp of f32 rows at least 16 wide run as one
    /// 8-lane routine over the row in the JIT (`jit/exec/wide.rs`).
    pub wide: bool,
}

impl Passes {
    /// Every pass on (the default).
    pub fn all() -> Passes {
        Passes {
            fold: true,
            simplify: true,
            cse: true,
            dce: true,
            fuse: true,
            inplace: true,
            update: true,
            wide: true,
        }
    }

    /// No pass: one kernel and one buffer per primitive (`--no-opt`).
    pub fn none() -> Passes {
        Passes {
            fold: false,
            simplify: false,
            cse: false,
            dce: false,
            fuse: false,
            inplace: false,
            update: false,
            wide: false,
        }
    }

    /// The passes' names, in pipeline order.
    pub const NAMES: [&'static str; 8] = [
        "fold", "simplify", "cse", "dce", "fuse", "inplace", "update", "wide",
    ];

    /// Every pass but `name`.
    pub fn without(name: &str) -> Passes {
        Passes::all().and_without(name)
    }

    /// These passes but `name`.
    pub fn and_without(self, name: &str) -> Passes {
        let mut p = self;
        match name {
            "fold" => p.fold = false,
            "simplify" => p.simplify = false,
            "cse" => p.cse = false,
            "dce" => p.dce = false,
            "fuse" => p.fuse = false,
            "inplace" => p.inplace = false,
            "update" => p.update = false,
            "wide" => p.wide = false,
            _ => {}
        }
        p
    }
}

impl Default for Passes {
    fn default() -> Passes {
        Passes::all()
    }
}

fn checked(name: &str, g: Graph) -> Graph {
    if cfg!(debug_assertions) {
        if let Err(e) = crate::ir::verify::verify(&g) {
            panic!("compiler bug: the IR is invalid after pass {name}: {e}");
        }
    }
    g
}

/// Runs the IR passes `p` switches on.
pub fn optimize(g: &Graph, p: &Passes) -> Graph {
    let mut g = g.clone();
    for _ in 0..3 {
        let before = g.len();
        if p.fold {
            g = checked("fold", fold::fold(&g));
        }
        if p.simplify {
            g = checked("simplify", simplify::simplify(&g));
        }
        if p.cse {
            g = checked("cse", cse::cse(&g));
        }
        if p.dce {
            g = checked("dce", dce::dce(&g));
        }
        if g.len() == before {
            break;
        }
    }
    g
}
