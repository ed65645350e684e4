//! `dlc predict`: a saved model's predictions for new rows.

use std::path::Path;

use super::program::{as_inputs, load_deployed, one_run, program_inputs, ProgramArgs};

/// `dlc predict FILE --load CKPT --input NEW --out OUT`: a saved model's
/// predictions on new data, as CSV, streamed to OUT (appearing whole once
/// every row is predicted: `output`) or to stdout for `-`.
pub fn cmd_predict(
    args: &ProgramArgs,
    (req, out): (&crate::predict::Request<'_>, &Path),
    stdout: &mut dyn std::io::Write,
    stderr: &mut dyn std::io::Write,
) -> i32 {
    let Some(l) = load_deployed(args, req.checkpoint, stderr) else {
        return 1;
    };
    let Some(run) = one_run(&l, args, "predict with", stderr) else {
        return 1;
    };
    let to_stdout = out == Path::new("-");
    let done = (|| {
        let p = if to_stdout {
            let p = crate::predict::predict(run, &l.checked.data[run.data], req, stdout)?;
            stdout
                .flush()
                .map_err(|e| format!("cannot write the predictions to stdout: {e}"))?;
            p
        } else {
            let mut inputs = program_inputs(args, &l, Some(run));
            inputs.push((
                "the checkpoint (--load)".to_string(),
                req.checkpoint.to_path_buf(),
            ));
            inputs.push(("the input (--input)".to_string(), req.input.to_path_buf()));
            let target = crate::output::prepare(out, &as_inputs(&inputs))?;
            let mut sink = target.create()?;
            let p = crate::predict::predict(run, &l.checked.data[run.data], req, &mut sink)?;
            sink.commit()?;
            p
        };
        let changed = crate::checkpoint::changed_note(&p.checkpoint, &l.src, req.checkpoint);
        for n in changed.iter().chain(&p.notes) {
            let _ = writeln!(stderr, "{n}");
        }
        if !to_stdout {
            let _ = writeln!(stderr, "wrote {} predictions to {}", p.rows, out.display());
        }
        Ok::<(), String>(())
    })();
    match done {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(stderr, "error: {e}");
            1
        }
    }
}
