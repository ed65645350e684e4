//! `dlc eval`: a saved model's metrics on the test part.

use std::path::Path;

use super::program::{load_checked, one_run, ProgramArgs};

/// `dlc eval FILE --load CKPT`: the test metrics of a saved model (one run:
/// the only one, or `--run NAME`).
pub fn cmd_eval(
    args: &ProgramArgs,
    ckpt: &Path,
    opts: &crate::train::TrainOptions,
    stdout: &mut dyn std::io::Write,
    stderr: &mut dyn std::io::Write,
) -> i32 {
    let Some(l) = load_checked(args, stderr) else {
        return 1;
    };
    let Some(run) = one_run(&l, args, "evaluate", stderr) else {
        return 1;
    };
    let mut opts = opts.clone();
    opts.program_hash = crate::rng::text_hash(&l.src);
    opts.source.clone_from(&l.src);
    let mut sink = crate::train::Sink {
        stdout,
        stderr,
        json: opts.json,
        quiet: opts.quiet,
        progress: false,
    };
    let data = &l.checked.data[run.data];
    match crate::train::eval_checkpoint(run, data, ckpt, &opts, &mut sink) {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(sink.stderr, "error: {e}");
            1
        }
    }
}
