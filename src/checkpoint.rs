//! Checkpoints: a run's parameters, optimizer state and progress in a
//! safetensors file (so PyTorch or Python's `safetensors` can read it),
//! written atomically: a temporary file beside the target, fsync, rename.
//!
//! Tensors are named `param.NAME` (f32, the parameter's shape; dense weights
//! keep d2l's `[n_in, n_out]` layout) and `SLOT.NAME` for the optimizer's
//! state (`velocity.NAME`, momentum; see `optim::Slot`).
//! A K-fold run's checkpoint holds its fold models instead, as
//! `foldK.param.NAME` (K from 1), and the fold count in `folds`.
//! The metadata holds the run, the program's hash, the epoch, the step,
//! the seed and the data's preprocessing (`preprocessing`, JSON: see
//! `data::prep` and docs/preprocessing.md).

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::check::run::Run;
use crate::data::prep::Preprocessing;
use crate::interp::concrete;

/// The `format` a checkpoint's metadata names.
const FORMAT: &str = "dlc checkpoint 1";

/// What a checkpoint holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub run: String,
    pub program_hash: String,
    pub epoch: u64,
    pub step: u64,
    pub seed: u64,
    /// The seed the data's splits were drawn with (`split_seed`; the
    /// seed, in checkpoints of a dlc before it was kept apart).
    pub split_seed: u64,
    /// Per parameter, in the run's order: values (row-major).
    pub params: Vec<Vec<f64>>,
    /// The optimizer's state: per parameter, one tensor per slot its rule
    /// keeps (empty when it keeps none, or the checkpoint holds none).
    pub state: Vec<Vec<f64>>,
    /// A K-fold run's models, each its parameters in the run's order
    /// (`foldK.param.NAME`, K from 1); then `params` and `state` are empty.
    pub folds: Vec<Vec<Vec<f64>>>,
    /// How raw data becomes the model's input (the `preprocessing`
    /// metadata); `None` in checkpoints of dlc before it was saved.
    pub preprocessing: Option<Preprocessing>,
    /// Where early stopping stood, for a run that has it: then `params`
    /// and `state` are the best epoch's (what eval and predict use), and
    /// training resumes from the last epoch's state kept here.
    pub early: Option<EarlyProgress>,
}

/// Early stopping's progress when a checkpoint was saved (metadata
/// `early_stop`, and the last epoch's tensors `last.param.NAME`,
/// `last.SLOT.NAME`), so that a resumed run goes on exactly as one
/// trained straight through.
#[derive(Clone, Debug, PartialEq)]
pub struct EarlyProgress {
    /// The watched metric's best value (at the checkpoint's `epoch`).
    pub best: f64,
    /// Epochs since the best one.
    pub since: u64,
    /// The epoch after which training stopped, if it did.
    pub stopped: Option<u64>,
    pub last_epoch: u64,
    pub last_step: u64,
    pub last_params: Vec<Vec<f64>>,
    pub last_state: Vec<Vec<f64>>,
}

impl Checkpoint {
    /// The models it holds: the K-fold models, or the one model.
    pub fn models(&self) -> Vec<&[Vec<f64>]> {
        if self.folds.is_empty() {
            vec![&self.params]
        } else {
            self.folds.iter().map(Vec::as_slice).collect()
        }
    }
}

fn f32_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| (*x as f32).to_le_bytes()).collect()
}

/// Writes `ck` for `run` to `path` (atomically, see `output`).
pub fn save(path: &Path, run: &Run, ck: &Checkpoint) -> Result<(), String> {
    let bytes = encode(run, ck)?;
    crate::output::write(path, &[], &bytes)
        .map_err(|e| e.replacen("cannot write", "cannot write checkpoint", 1))
}

/// The note every command that reads a checkpoint gives when the program
/// text it was saved from differs from `src` (a comment or the recipe may
/// have changed; a changed model is refused by [`load`]).
pub fn changed_note(ck: &Checkpoint, src: &str, path: &Path) -> Option<String> {
    (ck.program_hash != crate::rng::text_hash(src)).then(|| {
        format!(
            "note: {} was saved from a different version of the program",
            path.display()
        )
    })
}

/// A digest of what `run`'s model computes: its eval function's output,
/// printed without source lines, hashed. A comment, a blank line or a
/// change to the training recipe leaves it; an activation, a constant or
/// a layer's wiring changes it.
pub fn model_digest(run: &Run) -> String {
    let mut g = run.eval.clone();
    g.outputs.retain(|(name, _)| name == "output");
    crate::rng::text_hash(&crate::ir::print::graph(&g, None))
}

/// The safetensors bytes of `ck` for `run`; refused when a tensor holds a
/// value that is not a finite number (a model that diverged is not saved).
pub fn encode(run: &Run, ck: &Checkpoint) -> Result<Vec<u8>, String> {
    let last = ck
        .early
        .iter()
        .flat_map(|e| e.last_params.iter().chain(&e.last_state));
    let tensors = ck
        .folds
        .iter()
        .flatten()
        .chain(&ck.params)
        .chain(&ck.state)
        .chain(last);
    if let Some(i) = tensors.flatten().position(|v| !v.is_finite()) {
        return Err(format!(
            "run {}: the model has a value that is not a finite number (element {i} of its tensors), so it is not saved",
            run.name
        ));
    }
    let slots = slots(run);
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (f, fold) in ck.folds.iter().enumerate() {
        for (p, values) in run.params.iter().zip(fold) {
            owned.push((
                format!("fold{}.param.{}", f + 1, p.name),
                concrete(&p.ty.shape, 1),
                f32_bytes(values),
            ));
        }
    }
    for (i, p) in run.params.iter().enumerate() {
        let shape = concrete(&p.ty.shape, 1);
        let Some(values) = ck.params.get(i) else {
            continue;
        };
        owned.push((
            format!("param.{}", p.name),
            shape.clone(),
            f32_bytes(values),
        ));
        for (k, slot) in slots.iter().enumerate() {
            if let Some(v) = ck.state.get(i * slots.len() + k) {
                owned.push((
                    format!("{}.{}", slot.name, p.name),
                    shape.clone(),
                    f32_bytes(v),
                ));
            }
        }
    }
    if let Some(e) = &ck.early {
        for (i, p) in run.params.iter().enumerate() {
            let shape = concrete(&p.ty.shape, 1);
            if let Some(v) = e.last_params.get(i) {
                owned.push((
                    format!("last.param.{}", p.name),
                    shape.clone(),
                    f32_bytes(v),
                ));
            }
            for (k, slot) in slots.iter().enumerate() {
                if let Some(v) = e.last_state.get(i * slots.len() + k) {
                    owned.push((
                        format!("last.{}.{}", slot.name, p.name),
                        shape.clone(),
                        f32_bytes(v),
                    ));
                }
            }
        }
    }
    let mut views = Vec::new();
    for (name, shape, bytes) in &owned {
        let view = TensorView::new(Dtype::F32, shape.clone(), bytes)
            .map_err(|e| format!("checkpoint tensor {name}: {e}"))?;
        views.push((name.clone(), view));
    }
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), FORMAT.to_string());
    meta.insert("run".to_string(), ck.run.clone());
    meta.insert("program_hash".to_string(), ck.program_hash.clone());
    meta.insert("model_digest".to_string(), model_digest(run));
    meta.insert("epoch".to_string(), ck.epoch.to_string());
    meta.insert("step".to_string(), ck.step.to_string());
    meta.insert("seed".to_string(), ck.seed.to_string());
    meta.insert("split_seed".to_string(), ck.split_seed.to_string());
    if !ck.folds.is_empty() {
        meta.insert("folds".to_string(), ck.folds.len().to_string());
    }
    if let Some(p) = &ck.preprocessing {
        meta.insert("preprocessing".to_string(), p.to_json()?);
    }
    if let Some(e) = &ck.early {
        let doc = serde_json::json!({
            "best": e.best,
            "since": e.since,
            "stopped": e.stopped,
            "last_epoch": e.last_epoch,
            "last_step": e.last_step,
        });
        meta.insert("early_stop".to_string(), doc.to_string());
    }
    serialize(views, meta).map_err(|e| format!("cannot encode the checkpoint: {e}"))
}

/// safetensors' bytes of `views` with `meta`, the header's keys in sorted
/// order (safetensors writes its metadata map in hash order, so two saves
/// of the same checkpoint would differ in their bytes).
pub fn serialize(
    views: Vec<(String, TensorView)>,
    meta: HashMap<String, String>,
) -> Result<Vec<u8>, String> {
    let mut bytes = safetensors::serialize(views, Some(meta)).map_err(|e| match e {
        safetensors::SafeTensorError::HeaderTooLarge => format!(
            "its header (names, shapes and metadata) is over safetensors' limit of {} MB",
            MAX_HEADER / 1_000_000
        ),
        e => e.to_string(),
    })?;
    let n = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or("safetensors wrote no header")? as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n])
        .map_err(|e| format!("safetensors wrote a header that is not JSON: {e}"))?;
    // serde_json's map is ordered by key; the same length as before, so
    // the padding and the data offsets stay.
    let mut sorted = serde_json::to_vec(&header).map_err(|e| e.to_string())?;
    if sorted.len() > n {
        return Err("the sorted header is longer than safetensors' own".to_string());
    }
    sorted.resize(n, b' ');
    bytes[8..8 + n].copy_from_slice(&sorted);
    Ok(bytes)
}

/// safetensors' limit on a header (`MAX_HEADER_SIZE`), which its reader
/// enforces: a longer one is refused when the file is read.
const MAX_HEADER: usize = 100_000_000;

/// Checks, before training, that a checkpoint of `run` with `prep` will
/// fit safetensors' header: what is saved after hours of training must not
/// fail then (a categorical column with millions of distinct values makes
/// a vocabulary of that size).
pub fn check_fits(run: &Run, prep: &Preprocessing, folds: usize) -> Result<(), String> {
    let meta = prep.to_json()?.len();
    // A tensor's entry: its name, dtype, shape and offsets, well under
    // 256 bytes; the optimizer's slots and fold copies multiply them.
    let entries = run.params.len() * (1 + crate::optim::all_slots().count()) * folds.max(1);
    let need = meta + 256 * entries + 4096;
    if need > MAX_HEADER {
        return Err(format!(
            "--save: the checkpoint's header would be about {} MB (its preprocessing alone {} MB), over safetensors' limit of {} MB; a categorical column with very many distinct values (an id or free text) is the usual cause: drop it (`drop = [...]`) or declare it `id`",
            need / 1_000_000,
            meta / 1_000_000,
            MAX_HEADER / 1_000_000
        ));
    }
    Ok(())
}

/// The run a checkpoint was saved by and the preprocessing it carries,
/// read from its header alone (before the program is checked: predict
/// and export describe the training data by it).
pub fn peek(path: &Path) -> Result<(String, Option<Preprocessing>), String> {
    use std::io::Read;
    let bad = |why: String| format!("checkpoint {}: {why}", path.display());
    let mut f = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|e| bad(e.to_string()))?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER as u64 {
        return Err(bad(format!(
            "its header of {n} bytes is over safetensors' limit"
        )));
    }
    let mut header = Vec::new();
    f.take(n)
        .read_to_end(&mut header)
        .map_err(|e| bad(e.to_string()))?;
    let doc: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| bad(format!("its header is not JSON: {e}")))?;
    let meta = &doc["__metadata__"];
    let run = meta["run"]
        .as_str()
        .ok_or_else(|| bad("its metadata names no run".to_string()))?;
    let what = format!("checkpoint {}", path.display());
    let prep = match meta["preprocessing"].as_str() {
        Some(text) => Some(Preprocessing::from_json(text, &what)?),
        None => None,
    };
    Ok((run.to_string(), prep))
}

/// Reads a checkpoint and checks it against `run`: every parameter present
/// with its shape, nothing extra. Errors name the mismatch.
pub fn load(path: &Path, run: &Run) -> Result<Checkpoint, String> {
    let bytes = std::fs::read(path)
        .map_err(|e| format!("cannot read checkpoint {}: {e}", path.display()))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| format!("{} is not a safetensors checkpoint: {e}", path.display()))?;
    let (_, meta) =
        SafeTensors::read_metadata(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let get = |k: &str| meta.get(k).cloned().unwrap_or_default();
    let bad = |what: String| format!("checkpoint {}: {what}", path.display());
    let field = |k: &str| -> Result<&String, String> {
        meta.get(k)
            .ok_or_else(|| bad(format!("its metadata has no `{k}`")))
    };
    let num = |k: &str| -> Result<u64, String> {
        let v = field(k)?;
        v.parse::<u64>()
            .map_err(|_| bad(format!("`{k}` is `{v}`, not a whole number")))
    };
    let format = field("format")?;
    if format != FORMAT {
        return Err(bad(format!("the format is `{format}`, not `{FORMAT}`")));
    }
    let saved_by = field("run")?;
    let (epoch, step, seed) = (num("epoch")?, num("step")?, num("seed")?);
    let split_seed = match meta.get("split_seed") {
        Some(_) => num("split_seed")?,
        None => seed,
    };
    // The compiled step counts steps in an i32 (dropout's masks are keyed
    // by it).
    if step > i32::MAX as u64 {
        return Err(bad(format!(
            "`step` is {step}, more steps than a run can count (2³¹)"
        )));
    }
    let read = |name: &str, want: &[usize]| read_f32(&st, (path, run), name, want);
    let folds = match meta.get("folds") {
        None => 0,
        Some(_) => match num("folds")? {
            k @ 2..=1000 => k as usize,
            k => {
                return Err(bad(format!(
                    "`folds` is {k}, not a fold count from 2 to 1000"
                )))
            }
        },
    };
    let fold_params = (1..=folds)
        .map(|f| read_params(&st, (path, run), &format!("fold{f}.")))
        .collect::<Result<Vec<_>, _>>()?;
    let (mut params, mut state) = (Vec::new(), Vec::new());
    if folds == 0 {
        params = read_params(&st, (path, run), "")?;
        for p in &run.params {
            let shape = concrete(&p.ty.shape, 1);
            for slot in slots(run) {
                if let Some(v) = read(&format!("{}.{}", slot.name, p.name), &shape)? {
                    state.push(v);
                }
            }
        }
    }
    only_declared_tensors(&st, (path, run), folds)?;
    // Checked after the tensors, whose mismatch says more.
    same_model(&meta, run, saved_by).map_err(bad)?;
    state_complete(&st, run, (params.len(), state.len())).map_err(bad)?;
    let what = format!("checkpoint {}", path.display());
    let preprocessing = match meta.get("preprocessing") {
        Some(text) => Some(Preprocessing::from_json(text, &what)?),
        None => None,
    };
    let early = match meta.get("early_stop") {
        Some(doc) if folds == 0 => Some(read_early(&st, (path, run), doc).map_err(bad)?),
        _ => None,
    };
    Ok(Checkpoint {
        early,
        run: saved_by.clone(),
        program_hash: get("program_hash"),
        epoch,
        step,
        seed,
        split_seed,
        params,
        state,
        folds: fold_params,
        preprocessing,
    })
}

/// Refuses a tensor that is neither a parameter of `run` nor any
/// optimizer's state of one (another optimizer's state is ignored: a run
/// may change its optimizer); with `folds`, only the folds' parameters.
fn only_declared_tensors(
    st: &SafeTensors,
    (path, run): (&Path, &Run),
    folds: usize,
) -> Result<(), String> {
    for (name, _) in st.tensors() {
        let known = run.params.iter().any(|p| {
            if folds > 0 {
                return (1..=folds).any(|f| name == format!("fold{f}.param.{}", p.name));
            }
            let own = name.strip_prefix("last.").unwrap_or(&name);
            own == format!("param.{}", p.name)
                || crate::optim::all_slots().any(|s| own == format!("{}.{}", s.name, p.name))
        });
        if !known {
            return Err(format!(
                "checkpoint {} does not fit run {}: it has `{name}`, which the program does not declare",
                path.display(),
                run.name
            ));
        }
    }
    Ok(())
}

/// Refuses a checkpoint saved by another run, or from a model that
/// computes something else than `run`'s now (the same parameters in
/// another computation, `tanh` made `relu`, would give silently wrong
/// answers). A checkpoint of a dlc that did not record the digest is
/// taken as it is.
fn same_model(meta: &HashMap<String, String>, run: &Run, saved_by: &str) -> Result<(), String> {
    if saved_by != run.name {
        return Err(format!(
            "it was saved by run `{saved_by}`, not by run `{}`",
            run.name
        ));
    }
    if let Some(d) = meta
        .get("model_digest")
        .filter(|d| **d != model_digest(run))
    {
        return Err(format!(
            "it was saved from a different model: its parameters fit run `{}`, but what the model computes has changed since (digest {d}, now {}); use the program it was trained with, or train again",
            run.name,
            model_digest(run)
        ));
    }
    Ok(())
}

/// Early stopping's progress: the `early_stop` metadata and the last
/// epoch's tensors.
fn read_early(
    st: &SafeTensors,
    (path, run): (&Path, &Run),
    doc: &str,
) -> Result<EarlyProgress, String> {
    let v: serde_json::Value =
        serde_json::from_str(doc).map_err(|e| format!("its `early_stop` is not JSON: {e}"))?;
    let int = |k: &str| {
        v[k].as_u64()
            .ok_or_else(|| format!("its `early_stop` has no count `{k}`"))
    };
    let best = v["best"]
        .as_f64()
        .filter(|b| b.is_finite())
        .ok_or("its `early_stop` has no finite `best`")?;
    let stopped = match &v["stopped"] {
        serde_json::Value::Null => None,
        s => Some(
            s.as_u64()
                .ok_or("its `early_stop` has a `stopped` that is not an epoch")?,
        ),
    };
    let last_params = read_params(st, (path, run), "last.")?;
    let mut last_state = Vec::new();
    for p in &run.params {
        let shape = concrete(&p.ty.shape, 1);
        for slot in slots(run) {
            if let Some(t) = read_f32(
                st,
                (path, run),
                &format!("last.{}.{}", slot.name, p.name),
                &shape,
            )? {
                last_state.push(t);
            }
        }
    }
    Ok(EarlyProgress {
        best,
        since: int("since")?,
        stopped,
        last_epoch: int("last_epoch")?,
        last_step: int("last_step")?,
        last_params,
        last_state,
    })
}

/// Every parameter of `run`, `PREFIXparam.NAME` (a K-fold checkpoint's
/// fold models have the prefix `foldK.`), or an error naming the first
/// missing.
fn read_params(
    st: &SafeTensors,
    (path, run): (&Path, &Run),
    prefix: &str,
) -> Result<Vec<Vec<f64>>, String> {
    run.params
        .iter()
        .map(|p| {
            let key = format!("{prefix}param.{}", p.name);
            read_f32(st, (path, run), &key, &concrete(&p.ty.shape, 1))?.ok_or_else(|| {
                format!(
                    "checkpoint {} does not fit run {}: it has no `{key}`",
                    path.display(),
                    run.name
                )
            })
        })
        .collect()
}

/// Tensor `name` of a checkpoint as f64s, if present: f32, and of shape
/// `want`.
fn read_f32(
    st: &SafeTensors,
    (path, run): (&Path, &Run),
    name: &str,
    want: &[usize],
) -> Result<Option<Vec<f64>>, String> {
    let Ok(t) = st.tensor(name) else {
        return Ok(None);
    };
    if t.dtype() != Dtype::F32 {
        return Err(format!(
            "checkpoint {}: {name} is {:?}, expected F32",
            path.display(),
            t.dtype()
        ));
    }
    if t.shape() != want {
        return Err(format!(
            "checkpoint {} does not fit run {}: {name} has shape {:?}, the program declares {:?}",
            path.display(),
            run.name,
            t.shape(),
            want
        ));
    }
    let values: Vec<f64> = t
        .data()
        .chunks_exact(4)
        .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
        .collect();
    if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(format!(
            "checkpoint {}: {name} holds {v} at element {i}: a model with values that are not finite numbers is not used",
            path.display()
        ));
    }
    Ok(Some(values))
}

/// The optimizer's state is all there or not at all (then it starts at
/// zero): `held` of its tensors for `params` parameters.
fn state_complete(
    st: &SafeTensors,
    run: &Run,
    (params, held): (usize, usize),
) -> Result<(), String> {
    let slots = slots(run);
    if held == 0 || held == params * slots.len() {
        return Ok(());
    }
    for slot in slots {
        let missing: Vec<&str> = run
            .params
            .iter()
            .filter(|p| st.tensor(&format!("{}.{}", slot.name, p.name)).is_err())
            .map(|p| p.name.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "it holds the {} of only some parameters (none for {})",
                slot.what,
                missing.join(", ")
            ));
        }
    }
    Ok(())
}

/// The state slots the run's optimizer keeps per parameter.
fn slots(run: &Run) -> &'static [crate::optim::Slot] {
    run.settings.chosen().map_or(&[], |c| c.slots())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::prep::{Column, Input, Label};

    fn linreg() -> Run {
        let src = "data d = linear(w = [2, -3.4], b = 4.2, n_train = 10)\nmodel m(x: f32[B, 2]) -> f32[B, 1] {\n    param w: f32[2, 1] = zeros\n    x @ w\n}\ntrain m on d {\n    loss = squared_loss(output, label)\n    optimizer = sgd(lr = 0.1)\n}\n";
        let (_, checked, diags) = crate::check::check_file(Path::new("t.dl"), src, None);
        assert!(diags.is_empty(), "{diags:?}");
        checked.runs.into_iter().next().expect("a run")
    }

    #[test]
    fn a_preprocessing_over_the_header_limit_is_refused_before_training() {
        let run = linreg();
        let prep = |n: usize| Preprocessing {
            format: crate::data::prep::FORMAT.to_string(),
            width: n,
            input: Input::Csv {
                id: None,
                ignored: Vec::new(),
                columns: vec![Column::Categorical {
                    name: "free_text".into(),
                    categories: (0..n).map(|i| format!("{i:0>60}")).collect(),
                    missing: false,
                }],
            },
            label: Label {
                name: "y".into(),
                classes: None,
            },
        };
        assert!(check_fits(&run, &prep(1000), 1).is_ok());
        // 1.7 million categories of 60 characters: 110 MB of JSON.
        let e = check_fits(&run, &prep(1_700_000), 1).expect_err("refused");
        assert!(e.contains("over safetensors' limit of 100 MB"), "{e}");
    }

    #[test]
    fn headers_are_written_in_sorted_order_whatever_the_hash() {
        let data = [0u8; 4];
        let views = || {
            vec![(
                "t".to_string(),
                TensorView::new(Dtype::F32, vec![1], &data).expect("view"),
            )]
        };
        let meta = || -> HashMap<String, String> {
            (0..20).map(|i| (format!("k{i}"), i.to_string())).collect()
        };
        // Each HashMap has its own random order; the bytes do not.
        let first = serialize(views(), meta()).expect("bytes");
        for _ in 0..5 {
            assert_eq!(serialize(views(), meta()).expect("bytes"), first);
        }
        let st = SafeTensors::deserialize(&first).expect("readable");
        assert_eq!(st.tensor("t").expect("t").shape(), &[1]);
    }
}
