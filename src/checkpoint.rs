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
use std::io::Write;
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

/// A stable hash of the program text (hex).
pub fn program_hash(src: &str) -> String {
    let mut h: u64 = 0x6a09_e667_f3bc_c909;
    for chunk in src.as_bytes().chunks(8) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        h = crate::rng::mix(h ^ u64::from_le_bytes(b));
    }
    format!("{h:016x}")
}

fn f32_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| (*x as f32).to_le_bytes()).collect()
}

/// Writes `ck` for `run` to `path` atomically.
pub fn save(path: &Path, run: &Run, ck: &Checkpoint) -> Result<(), String> {
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
    meta.insert("epoch".to_string(), ck.epoch.to_string());
    meta.insert("step".to_string(), ck.step.to_string());
    meta.insert("seed".to_string(), ck.seed.to_string());
    if !ck.folds.is_empty() {
        meta.insert("folds".to_string(), ck.folds.len().to_string());
    }
    if let Some(p) = &ck.preprocessing {
        meta.insert("preprocessing".to_string(), p.to_json()?);
    }
    let bytes = safetensors::serialize(views, Some(meta))
        .map_err(|e| format!("cannot encode the checkpoint: {e}"))?;
    write_atomic(path, &bytes)
        .map_err(|e| format!("cannot write checkpoint {}: {e}", path.display()))
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder,
/// synced, then renamed over the target, so a crash never leaves a
/// half-written file and an old file survives a failed write. A symbolic
/// link is written through (its target is replaced, the link stays), and
/// temporaries left by processes that died while saving this path are
/// removed first.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let path = resolve_links(path);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let prefix = temp_prefix(&path);
    remove_stale_temporaries(&dir, &prefix);
    let tmp = dir.join(format!("{prefix}{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Checks, before a long run, that `path` can be written by
/// [`write_atomic`]: its folder exists and takes a new file.
pub fn check_writable(path: &Path) -> Result<(), String> {
    let path = resolve_links(path);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(format!(
            "cannot save to {}: the folder {} does not exist",
            path.display(),
            dir.display()
        ));
    }
    if path.is_dir() {
        return Err(format!("cannot save to {}: it is a folder", path.display()));
    }
    let probe = dir.join(format!("{}{}", temp_prefix(&path), std::process::id()));
    std::fs::File::create(&probe)
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| format!("cannot save to {}: {e}", path.display()))
}

/// `path` with symbolic links followed (at most 40, as the kernel does).
fn resolve_links(path: &Path) -> std::path::PathBuf {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        let Ok(target) = std::fs::read_link(&p) else {
            break;
        };
        p = match p.parent() {
            Some(dir) if target.is_relative() => dir.join(target),
            _ => target,
        };
    }
    p
}

/// The name of `path`'s temporaries, less the process id: `.NAME.tmp-`,
/// with a long NAME shortened to a prefix and a hash so that the whole name
/// stays within the 255 bytes a file name may have.
fn temp_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.len() <= 200 {
        return format!(".{name}.tmp-");
    }
    let mut cut = 150;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(".{}~{}.tmp-", &name[..cut], &program_hash(&name)[..8])
}

/// Removes `dir/PREFIX<pid>` files whose process is no longer running (a
/// save killed midway); a live process's temporary is left alone.
fn remove_stale_temporaries(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
        if !alive {
            let _ = std::fs::remove_file(e.path());
        }
    }
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
    for (name, _) in st.tensors() {
        // A parameter, or any optimizer's state of one (another optimizer's
        // is ignored: a run may change its optimizer).
        let known = run.params.iter().any(|p| {
            if folds > 0 {
                return (1..=folds).any(|f| name == format!("fold{f}.param.{}", p.name));
            }
            name == format!("param.{}", p.name)
                || crate::optim::all_slots().any(|s| name == format!("{}.{}", s.name, p.name))
        });
        if !known {
            return Err(format!(
                "checkpoint {} does not fit run {}: it has `{name}`, which the program does not declare",
                path.display(),
                run.name
            ));
        }
    }
    // Checked after the tensors, whose mismatch says more.
    if *saved_by != run.name {
        return Err(bad(format!(
            "it was saved by run `{saved_by}`, not by run `{}`",
            run.name
        )));
    }
    state_complete(&st, run, (params.len(), state.len())).map_err(bad)?;
    let what = format!("checkpoint {}", path.display());
    let preprocessing = match meta.get("preprocessing") {
        Some(text) => Some(Preprocessing::from_json(text, &what)?),
        None => None,
    };
    Ok(Checkpoint {
        run: saved_by.clone(),
        program_hash: get("program_hash"),
        epoch,
        step,
        seed,
        params,
        state,
        folds: fold_params,
        preprocessing,
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
    Ok(Some(
        t.data()
            .chunks_exact(4)
            .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            .collect(),
    ))
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
