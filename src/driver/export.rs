//! `dlc export`: a saved model as ONNX or as NumPy arrays.

use std::path::Path;

use super::program::{as_inputs, load_deployed, one_run, program_inputs, ProgramArgs};

/// What `dlc export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// The parameters as NumPy arrays under their names.
    Npz,
    /// The eval function as an ONNX model.
    Onnx,
}

/// `dlc export FILE --load CKPT --out OUT`: a checkpoint's parameters in
/// another format, written atomically.
pub fn cmd_export(
    args: &ProgramArgs,
    ckpt: &Path,
    out: &Path,
    format: ExportFormat,
    stderr: &mut dyn std::io::Write,
) -> i32 {
    let Some(l) = load_deployed(args, ckpt, stderr) else {
        return 1;
    };
    let Some(run) = one_run(&l, args, "export", stderr) else {
        return 1;
    };
    let written = (|| {
        let mut inputs = program_inputs(args, &l, None);
        inputs.push(("the checkpoint (--load)".to_string(), ckpt.to_path_buf()));
        let target = crate::output::prepare(out, &as_inputs(&inputs))?;
        let ck = crate::checkpoint::load(ckpt, run)?;
        if let Some(note) = crate::checkpoint::changed_note(&ck, &l.src, ckpt) {
            let _ = writeln!(stderr, "{note}");
        }
        let shapes: Vec<Vec<usize>> = run
            .params
            .iter()
            .map(|p| crate::interp::concrete(&p.ty.shape, 1))
            .collect();
        // A K-fold checkpoint's models are `fold1.W`, `fold2.W`, ...
        let models = ck.models();
        let names: Vec<Vec<String>> = (1..=models.len())
            .map(|k| {
                run.params
                    .iter()
                    .map(|p| match ck.folds.is_empty() {
                        true => p.name.clone(),
                        false => format!("fold{k}.{}", p.name),
                    })
                    .collect()
            })
            .collect();
        let arrays: Vec<crate::export::Array> = models
            .iter()
            .zip(&names)
            .flat_map(|(model, names)| {
                run.params
                    .iter()
                    .zip(&shapes)
                    .zip(model.iter().zip(names))
                    .map(|((p, shape), (values, name))| crate::export::Array {
                        name,
                        shape,
                        dtype: p.ty.dtype,
                        values,
                    })
            })
            .collect();
        let bytes = match format {
            ExportFormat::Npz => crate::export::npz(&arrays)?,
            ExportFormat::Onnx => {
                let weights = crate::export::onnx::Weights { models };
                let g = crate::step::eval_function(run);
                crate::export::onnx::model(&g, &weights, (&l.src, &l.file_name))?
            }
        };
        target.write(&bytes)?;
        let what = match format {
            ExportFormat::Npz => "the parameters as NumPy arrays",
            ExportFormat::Onnx => "the model as ONNX",
        };
        let _ = writeln!(stderr, "wrote {what} to {}", out.display());
        Ok::<(), String>(())
    })();
    match written {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(stderr, "error: {e}");
            1
        }
    }
}
