//! The commands behind the `dlc` binary, as functions from arguments to
//! output text and an exit code, so tests can call them directly.
//!
//! Exit codes (DESIGN.md): 0 success, 1 a user error, 2 a usage error (clap),
//! 3 an internal compiler error.

mod check;
mod data;
mod eval;
mod export;
mod fmt;
mod gradcheck;
mod ir;
mod predict;
mod program;
mod train;

pub use check::cmd_check;
pub use data::{cmd_data, cmd_split_indices};
pub use eval::cmd_eval;
pub use export::{cmd_export, ExportFormat};
pub use fmt::cmd_fmt;
pub use gradcheck::{cmd_gradcheck, cmd_gradcheck_with};
pub use ir::{cmd_ir, Stage};
pub use predict::cmd_predict;
pub use program::{load, per_name, read_source, Loaded, Output, ProgramArgs};
pub use train::cmd_train;
