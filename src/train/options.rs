//! What a training run is given (the command line's overrides) and what it
//! carries from epoch to epoch (parameters, optimizer state, counters).

/// Command-line overrides of the program's recipe.
#[derive(Clone, Debug, Default)]
pub struct TrainOptions {
    pub epochs: Option<u64>,
    pub batch: Option<u64>,
    pub lr: Option<f64>,
    pub seed: Option<u64>,
    /// Worker threads (default: all cores).
    pub threads: Option<usize>,
    /// Timed runs of the final evaluation after the first (their median is
    /// reported; 0: the first alone).
    pub infer_reps: usize,
    /// Write a checkpoint here after training.
    pub save: Option<std::path::PathBuf>,
    /// Continue from this checkpoint up to the total `epochs`.
    pub resume: Option<std::path::PathBuf>,
    /// The program text's hash, recorded in checkpoints.
    pub program_hash: String,
    /// The program's file name and text, for `--profile`'s source lines.
    pub source_name: String,
    pub source: String,
    /// Time every kernel; report per source line after training.
    pub profile: bool,
    /// Compile without the optimizer's passes.
    pub no_opt: bool,
    /// Compile without these passes (`Passes::NAMES`).
    pub no_pass: Vec<String>,
    /// How matmuls run.
    pub matmul: crate::jit::Matmul,
    /// Print kernels and memory before and after the passes.
    pub verbose: bool,
    /// Report each parameter's mean gradient norm per epoch.
    pub grad_norms: bool,
    /// Gather the next batch on a second thread while the kernels run
    /// (`--prefetch`); else each batch is written straight into the
    /// step's inputs on the training thread.
    pub prefetch: bool,
    /// Draw learning curves to this .svg or .png file.
    pub plot: Option<std::path::PathBuf>,
    pub json: bool,
    pub quiet: bool,
}

/// Training progress: parameters, the optimizer's state (per parameter,
/// one tensor per slot of its rule), completed epochs and steps.
#[derive(Clone, Debug)]
pub struct State {
    pub params: Vec<Vec<f64>>,
    pub opt_state: Vec<Vec<f64>>,
    pub epoch: u64,
    pub step: u64,
}
