//! dlc: a deep-learning compiler for the models of *Dive into Deep Learning*,
//! chapters 2–5. See ARCHITECTURE.md for the map of the pipeline.
#![deny(unsafe_code)]

pub mod autodiff;
pub mod check;
pub mod checkpoint;
pub mod data;
pub mod diag;
pub mod dist;
pub mod driver;
pub mod export;
pub mod gradcheck;
pub mod interp;
pub mod ir;
pub mod jit;
pub mod linalg;
pub mod lsp;
pub mod memory;
pub mod opt;
pub mod optim;
pub mod output;
pub mod plot;
pub mod predict;
pub mod prefetch;
pub mod profile;
pub mod repl;
pub mod rng;
pub mod schedule;
pub mod span;
pub mod step;
pub mod syntax;
pub mod train;
