//! Data declarations: `data NAME = idx(...) | csv(...) | linear(...) |
//! polynomial(...)`, checked and described from metadata only.
//!
//! Invariant: nothing here loads a data set into tensors. IDX sources are
//! described by their headers; a CSV by its header and one scan of its
//! columns (to learn which are categorical and their categories).

use std::path::{Path, PathBuf};

use crate::data::meta::{self, ColumnKind, IdxElem};
use crate::data::npy::{self, NpyRef, NpyType};
use crate::diag::{Code, Diagnostic};
use crate::span::Span;
use crate::syntax::ast::{Arg, DataDecl, ExprKind};

use super::consts::{self, Const};
use super::lower::nearest;

/// What a data declaration provides, per sample.
#[derive(Clone, Debug, PartialEq)]
pub struct DataSpec {
    pub name: String,
    pub span: Span,
    pub source: Source,
    /// The shape of one sample's features (e.g. [28, 28]).
    pub sample: Vec<u64>,
    pub label: LabelKind,
    /// A one-line description for messages and `dlc data`.
    pub summary: String,
    /// How many rows the source has and how many reach each part.
    pub rows: Rows,
    /// Things worth a warning that are not errors (a categorical column
    /// whose values are mostly unique, like an id or a name).
    pub warnings: Vec<String>,
}

/// A data source's rows as its metadata tells them: how many the files
/// hold, and how many reach the training and test parts once rows without
/// a label (and, with `missing = "drop"`, incomplete rows) are dropped and
/// the test fraction is held out. `data::load` arrives at the same counts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rows {
    pub read: u64,
    pub train: u64,
    pub test: u64,
    /// Why rows were dropped (`2 without a label`), or empty.
    pub dropped: String,
    /// The test part's own file, when it has one.
    pub test_file: Option<String>,
    /// The counts are not known: the source was described from a
    /// checkpoint's preprocessing, not read (`DataSpec::from_preprocessing`).
    pub unknown: bool,
}

impl Rows {
    /// "3 rows read, 0 kept (3 without a label `y`)", or with a test split
    /// "50 rows read, 50 kept, 50 held out as the test part (test = 0.99)".
    pub fn describe(&self, test_fraction: Option<f64>) -> String {
        let kept = self.train + self.test;
        let mut s = format!("{} rows read, {kept} kept", self.read);
        if !self.dropped.is_empty() {
            s.push_str(&format!(" ({})", self.dropped));
        }
        if let Some(file) = &self.test_file {
            s.push_str(&format!("; {} test rows from {file}", self.test));
        } else if let Some(f) = test_fraction.filter(|f| *f > 0.0) {
            s.push_str(&format!(
                ", {} held out as the test part (test = {f})",
                self.test
            ));
        }
        s
    }
}

impl DataSpec {
    /// A data source as a checkpoint's preprocessing describes it: the
    /// sample's shape and the label the model was trained on, with no rows
    /// (what `dlc predict` and `dlc export` need, without the training
    /// files). `None` for generated data, which has no files to miss.
    pub fn from_preprocessing(
        name: &str,
        prep: &crate::data::prep::Preprocessing,
        checkpoint: &Path,
    ) -> Option<DataSpec> {
        use crate::data::prep::{Column, Input};
        let names = prep.label.classes.clone().unwrap_or_default();
        let label = match &prep.label.classes {
            Some(c) => LabelKind::Class {
                classes: Some(c.len() as u64),
            },
            None => LabelKind::Target,
        };
        let origin = checkpoint.to_path_buf();
        let dims = |shape: &[usize]| shape.iter().map(|d| *d as u64).collect::<Vec<u64>>();
        let (sample, source) = match &prep.input {
            Input::Csv {
                id,
                ignored,
                columns,
            } => {
                let features = columns
                    .iter()
                    .map(|c| Feature {
                        column: c.name().to_string(),
                        kind: match c {
                            Column::Numeric { .. } => FeatureKind::Numeric,
                            Column::Categorical {
                                categories,
                                missing,
                                ..
                            } => FeatureKind::Categorical {
                                categories: categories.clone(),
                                missing: *missing,
                            },
                        },
                    })
                    .collect();
                let source = Source::Csv {
                    path: origin,
                    label: prep.label.name.clone(),
                    classes: names,
                    features,
                    missing: Missing::Mean,
                    standardize: false,
                    test: 0.0,
                    test_file: None,
                    rows: 0,
                    test_rows: 0,
                    id: id.clone(),
                    dropped: ignored.clone(),
                    index_labels: false,
                };
                (vec![prep.width as u64], source)
            }
            Input::Idx { shape, scale } => {
                let source = Source::Idx {
                    dir: origin.parent().map(Path::to_path_buf).unwrap_or_default(),
                    images: [origin.clone(), origin.clone()],
                    labels: [origin.clone(), origin],
                    image_elem: IdxElem::U8,
                    label_elem: IdxElem::U8,
                    counts: [0, 0],
                    scale: Some(*scale),
                    names,
                };
                (dims(shape), source)
            }
            Input::Npy { shape, scale } => {
                let r = NpyRef {
                    path: origin,
                    member: None,
                };
                let source = Source::Npy {
                    train: [r.clone(), r],
                    test_arrays: None,
                    test: 0.0,
                    counts: [0, 0],
                    feature_ty: NpyType::F32,
                    scale: Some(*scale),
                    names,
                };
                (dims(shape), source)
            }
            Input::Synthetic => return None,
        };
        Some(DataSpec {
            name: name.to_string(),
            span: Span::default(),
            summary: format!(
                "as checkpoint {} describes it (its preprocessing)",
                checkpoint.display()
            ),
            source,
            sample,
            label,
            rows: Rows {
                unknown: true,
                ..Rows::default()
            },
            warnings: Vec::new(),
        })
    }

    /// The fraction of a CSV's rows held out as its test part.
    pub fn test_fraction(&self) -> Option<f64> {
        match &self.source {
            Source::Csv { test, .. } => Some(*test),
            Source::Npy {
                test, test_arrays, ..
            } => test_arrays.is_none().then_some(*test),
            Source::Idx { .. } | Source::Synthetic { .. } => None,
        }
    }

    /// About how many bytes loading this data takes: the decoded tables
    /// (one-hot columns included) and what the loader holds while it reads.
    pub fn bytes_estimate(&self) -> u128 {
        let width = u128::from(self.features());
        match &self.source {
            Source::Idx {
                image_elem, counts, ..
            } => {
                let n = u128::from(counts[0] + counts[1]);
                // u8 images stay bytes; other types are read, then decoded
                // to f32; labels are f64.
                let per = match image_elem {
                    IdxElem::U8 => 1,
                    e => e.size() as u128 + 4,
                };
                n * (width * per + 16)
            }
            Source::Csv {
                rows,
                test_rows,
                features,
                ..
            } => {
                // the encoded f32 rows, and each raw cell as a String
                u128::from(rows + test_rows) * (width * 4 + (features.len() as u128 + 1) * 40)
            }
            Source::Synthetic { train, test, .. } => u128::from(train + test) * (width + 1) * 12,
            Source::Npy {
                counts, feature_ty, ..
            } => {
                // the file's bytes and their f32s while they are read, then
                // the parts selected from them (another f32 each); labels
                // as bytes and f64s
                let n = u128::from(counts[0] + counts[1]);
                n * (width * (feature_ty.size() as u128 + 8) + 32)
            }
        }
    }

    pub fn features(&self) -> u64 {
        self.sample.iter().product()
    }

    /// The name of class `c`: the declared name (IDX `names = [...]`, a CSV
    /// label's categories), else its number.
    pub fn class_name(&self, c: usize) -> String {
        let names = match &self.source {
            Source::Idx { names, .. } => names.as_slice(),
            Source::Csv { classes, .. } => classes.as_slice(),
            Source::Npy { names, .. } => names.as_slice(),
            Source::Synthetic { .. } => &[],
        };
        names.get(c).cloned().unwrap_or_else(|| c.to_string())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum LabelKind {
    /// Class indices (i32); the class count when the metadata tells it.
    Class { classes: Option<u64> },
    /// One regression target per sample.
    Target,
}

impl LabelKind {
    /// "a number" or "N classes", for summaries.
    fn describe(&self) -> String {
        match self {
            LabelKind::Target => "a number".to_string(),
            LabelKind::Class { classes } => format!("{} classes", classes.unwrap_or(0)),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Missing {
    /// Replace a missing number by the training part's mean.
    Mean,
    /// Drop rows with a missing number.
    Drop,
}

#[derive(Clone, Debug, PartialEq)]
pub enum FeatureKind {
    Numeric,
    /// One-hot over `categories`, plus a "missing" category when some are missing.
    Categorical {
        categories: Vec<String>,
        missing: bool,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Feature {
    pub column: String,
    pub kind: FeatureKind,
}

impl Feature {
    pub fn width(&self) -> u64 {
        match &self.kind {
            FeatureKind::Numeric => 1,
            FeatureKind::Categorical {
                categories,
                missing,
            } => categories.len() as u64 + u64::from(*missing),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Synthetic {
    /// y = Xw + b + noise, X ~ N(0, 1) (d2l §3.2, §4.5).
    Linear { w: Vec<f64>, b: f64 },
    /// y = Σᵢ wᵢ xⁱ/i! + noise, features xⁱ/i! for i < `features` (d2l §4.4).
    Polynomial { w: Vec<f64>, features: u64 },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    Idx {
        dir: PathBuf,
        /// [train, test] image files as found (plain or .gz).
        images: [PathBuf; 2],
        labels: [PathBuf; 2],
        image_elem: IdxElem,
        label_elem: IdxElem,
        counts: [u64; 2],
        scale: Option<f64>,
        /// The classes' names in label order (`names = [...]`), if declared.
        names: Vec<String>,
    },
    Csv {
        path: PathBuf,
        label: String,
        /// For a categorical label, its classes in index order.
        classes: Vec<String>,
        features: Vec<Feature>,
        missing: Missing,
        standardize: bool,
        /// The fraction of rows held out as the test part (0 with a test
        /// file).
        test: f64,
        /// A labelled test set in a file of its own (`test = "file.csv"`),
        /// encoded with the training file's preprocessing.
        test_file: Option<PathBuf>,
        /// Rows of the training file, and of the test file.
        rows: u64,
        test_rows: u64,
        /// The identifier column (`id = "Id"`): not a feature, passed
        /// through to `dlc predict`'s output.
        id: Option<String>,
        /// Columns of the file the model does not read (`drop`).
        dropped: Vec<String>,
        /// The label column holds class indices (`classes = N`): `1` and
        /// `1.0` are class 1. Otherwise `classes` names the classes.
        index_labels: bool,
    },
    Synthetic {
        kind: Synthetic,
        train: u64,
        test: u64,
        noise: f64,
    },
    /// NumPy arrays: features `[N, ...]` and labels `[N]`, in `.npy` files
    /// or members of an `.npz`.
    Npy {
        /// [features, labels] of the training part (or of all rows).
        train: [NpyRef; 2],
        /// [features, labels] of a test part of their own.
        test_arrays: Option<[NpyRef; 2]>,
        /// The fraction of rows held out as the test part (without
        /// `test_arrays`).
        test: f64,
        /// Rows of `train` and of `test_arrays`.
        counts: [u64; 2],
        feature_ty: NpyType,
        scale: Option<f64>,
        /// The classes' names in label order (`names = [...]`), if declared.
        names: Vec<String>,
    },
}

/// Data sources described before, by the declaration's text and place and
/// the folder and override they were read with; an entry stands while the
/// files it read keep their size and modification time. Only a source
/// that described without an error is kept.
#[derive(Debug, Default)]
pub struct DataCache(std::sync::Mutex<std::collections::HashMap<CacheKey, Cached>>);

type CacheKey = (String, usize, PathBuf, Option<PathBuf>);

#[derive(Debug)]
struct Cached {
    spec: DataSpec,
    diags: Vec<Diagnostic>,
    stamps: Vec<(PathBuf, Option<(std::time::SystemTime, u64)>)>,
}

/// A file's modification time and size, if it can be read.
fn stamp(p: &Path) -> Option<(std::time::SystemTime, u64)> {
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl Source {
    /// The files a source reads.
    fn files(&self) -> Vec<PathBuf> {
        match self {
            Source::Idx { images, labels, .. } => images.iter().chain(labels).cloned().collect(),
            Source::Csv {
                path, test_file, ..
            } => std::iter::once(path.clone())
                .chain(test_file.clone())
                .collect(),
            Source::Synthetic { .. } => Vec::new(),
            Source::Npy {
                train, test_arrays, ..
            } => train
                .iter()
                .chain(test_arrays.iter().flatten())
                .map(|r| r.path.clone())
                .collect(),
        }
    }
}

impl DataCache {
    /// `describe()`'s answer for `d`, from the cache while its files are
    /// unchanged.
    pub fn describe(
        &self,
        d: &DataDecl,
        opts: &super::Options,
        describe: impl FnOnce() -> (Option<DataSpec>, Vec<Diagnostic>),
    ) -> (Option<DataSpec>, Vec<Diagnostic>) {
        let key: CacheKey = (
            format!("{:?}", (&d.name.node, &d.source)),
            d.span.start,
            opts.base_dir.clone(),
            opts.data_override.clone(),
        );
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = map.get(&key) {
            if c.stamps.iter().all(|(p, s)| stamp(p) == *s) {
                return (Some(c.spec.clone()), c.diags.clone());
            }
        }
        let (spec, diags) = describe();
        match &spec {
            Some(s) if diags.is_empty() => {
                let stamps = s.source.files().into_iter().map(|p| {
                    let st = stamp(&p);
                    (p, st)
                });
                let cached = Cached {
                    spec: s.clone(),
                    diags: diags.clone(),
                    stamps: stamps.collect(),
                };
                map.insert(key, cached);
            }
            _ => {
                map.remove(&key);
            }
        }
        (spec, diags)
    }
}

struct Opts<'a> {
    name: &'a str,
    args: &'a [Arg],
    diags: Vec<Diagnostic>,
}

impl<'a> Opts<'a> {
    /// Checks keyword names; returns the positional arguments.
    fn new(
        name: &'a str,
        allowed: &'static [&'static str],
        args: &'a [Arg],
        positional: usize,
    ) -> Opts<'a> {
        let mut o = Opts {
            name,
            args,
            diags: Vec::new(),
        };
        let mut pos = 0;
        let mut seen: Vec<&str> = Vec::new();
        for a in args {
            match &a.name {
                None => {
                    pos += 1;
                    if pos > positional {
                        o.diags.push(
                            Diagnostic::new(
                                Code::Arity,
                                format!("`{name}` takes {positional} positional argument(s)"),
                            )
                            .label(a.value.span, "name this option, like `scale = 1/255`"),
                        );
                    }
                }
                Some(k) => {
                    if !allowed.contains(&k.node.as_str()) {
                        let mut d = Diagnostic::new(
                            Code::Arity,
                            format!("`{name}` has no option `{}`", k.node),
                        )
                        .label(k.span, "unknown option");
                        d = match nearest(&k.node, allowed.iter().copied()) {
                            Some(s) => d.note(format!("did you mean `{s}`?")),
                            None => d.note(format!("its options are: {}", allowed.join(", "))),
                        };
                        o.diags.push(d);
                    }
                    if seen.contains(&k.node.as_str()) {
                        o.diags.push(
                            Diagnostic::new(
                                Code::DuplicateDefinition,
                                format!("option `{}` given twice", k.node),
                            )
                            .label(k.span, "given again here"),
                        );
                    }
                    seen.push(k.node.as_str());
                }
            }
        }
        o
    }

    fn positional(&self, i: usize) -> Option<&'a Arg> {
        self.args.iter().filter(|a| a.name.is_none()).nth(i)
    }

    fn get(&self, key: &str) -> Option<&'a Arg> {
        self.args
            .iter()
            .find(|a| a.name.as_ref().is_some_and(|n| n.node == key))
    }

    fn bad(&mut self, a: &Arg, what: &str) {
        let key = a
            .name
            .as_ref()
            .map(|n| n.node.clone())
            .unwrap_or_else(|| "argument".into());
        self.diags.push(
            Diagnostic::new(
                Code::BadArgument,
                format!("`{key}` of `{}` must be {what}", self.name),
            )
            .label(a.value.span, format!("expected {what}")),
        );
    }

    fn number(&mut self, key: &str, default: f64, ok: impl Fn(f64) -> bool, what: &str) -> f64 {
        match self.get(key) {
            None => default,
            Some(a) => match consts::number(&a.value) {
                Some(v) if ok(v) => v,
                _ => {
                    self.bad(a, what);
                    default
                }
            },
        }
    }

    /// A `true` or `false` option (default false).
    fn flag(&mut self, key: &str) -> bool {
        match self.get(key) {
            None => false,
            Some(a) => match consts::eval(&a.value) {
                Some(Const::Bool(b)) => b,
                _ => {
                    self.bad(a, "true or false");
                    false
                }
            },
        }
    }

    /// `missing = "mean"` (the default) or `"drop"`.
    fn missing(&mut self) -> Missing {
        match self.get("missing") {
            None => Missing::Mean,
            Some(a) => match consts::eval(&a.value) {
                Some(Const::Str(s)) | Some(Const::Name(s)) if s == "mean" => Missing::Mean,
                Some(Const::Str(s)) | Some(Const::Name(s)) if s == "drop" => Missing::Drop,
                _ => {
                    self.bad(a, "\"mean\" or \"drop\"");
                    Missing::Mean
                }
            },
        }
    }

    fn count(&mut self, key: &str, default: u64, min: u64) -> u64 {
        match self.get(key) {
            None => default,
            Some(a) => match consts::integer(&a.value) {
                Some(v) if v >= min as i64 && v <= 100_000_000 => v as u64,
                _ => {
                    self.bad(a, &format!("an integer ≥ {min}"));
                    default
                }
            },
        }
    }

    fn numbers(&mut self, key: &str) -> Option<Vec<f64>> {
        let a = self.get(key)?;
        let vals = match consts::eval(&a.value) {
            Some(Const::List(items)) => items
                .into_iter()
                .map(|c| match c {
                    Const::Num(v, _) if v.is_finite() => Some(v),
                    _ => None,
                })
                .collect::<Option<Vec<f64>>>(),
            Some(Const::Num(v, _)) if v.is_finite() => Some(vec![v]),
            _ => None,
        };
        match vals {
            Some(v) if !v.is_empty() => Some(v),
            _ => {
                self.bad(a, "a list of numbers");
                None
            }
        }
    }

    fn strings(&mut self, key: &str, what: &str) -> Option<Vec<String>> {
        let a = self.get(key)?;
        let vals = match consts::eval(&a.value) {
            Some(Const::List(items)) => items
                .into_iter()
                .map(|c| match c {
                    Const::Str(s) => Some(s),
                    _ => None,
                })
                .collect::<Option<Vec<String>>>(),
            _ => None,
        };
        if vals.is_none() {
            self.bad(a, what);
        }
        vals
    }

    fn string(&mut self, key: &str) -> Option<String> {
        let a = self.get(key)?;
        match consts::eval(&a.value) {
            Some(Const::Str(s)) => Some(s),
            _ => {
                self.bad(a, "a string");
                None
            }
        }
    }
}

/// Describes a data declaration. `base` is the program's folder;
/// `override_path` is `--data`.
pub fn describe(
    decl: &DataDecl,
    base: &Path,
    override_path: Option<&Path>,
) -> (Option<DataSpec>, Vec<Diagnostic>) {
    let ExprKind::Call { callee, args } = &decl.source.node else {
        let d = Diagnostic::new(
            Code::BadData,
            "a data source is a call like idx(\"dir\") or csv(\"file.csv\", label = \"y\")",
        )
        .label(decl.source.span, "not a data source");
        return (None, vec![d]);
    };
    let ExprKind::Name(kind) = &callee.node else {
        let d = Diagnostic::new(Code::BadData, "unknown data source")
            .label(callee.span, "expected idx, csv, npy, linear or polynomial");
        return (None, vec![d]);
    };
    let name = decl.name.node.clone();
    let result = match kind.as_str() {
        "idx" => idx(&name, decl, args, base, override_path),
        "csv" => csv(&name, decl, args, base, override_path),
        "npy" => npy_source(&name, decl, args, base, override_path),
        "linear" | "polynomial" => synthetic(&name, kind, decl, args),
        other => {
            let mut d = Diagnostic::new(Code::BadData, format!("unknown data source `{other}`"))
                .label(callee.span, "expected idx, csv, npy, linear or polynomial");
            if let Some(s) = nearest(
                other,
                ["idx", "csv", "npy", "linear", "polynomial"].into_iter(),
            ) {
                d = d.note(format!("did you mean `{s}`?"));
            }
            (None, vec![d])
        }
    };
    result
}

/// `base/rel` with `.` and `dir/..` removed lexically, so messages show
/// `programs/data/x.csv` rather than `tests/ui/../../programs/data/x.csv`.
fn join_clean(base: &Path, rel: &str) -> PathBuf {
    use std::path::Component;
    let joined = base.join(rel);
    let mut out: Vec<Component> = Vec::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out.iter().collect()
}

fn path_arg(o: &mut Opts, base: &Path, override_path: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = override_path {
        return Some(p.to_path_buf());
    }
    let a = o.positional(0)?;
    match consts::eval(&a.value) {
        Some(Const::Str(s)) => Some(join_clean(base, &s)),
        _ => {
            o.bad(a, "a path string");
            None
        }
    }
}

/// For a missing file named by a relative path in the program: the folder
/// it was looked for in (the program's own, whatever the working folder).
fn resolved_note(o: &Opts, base: &Path, ov: Option<&Path>, missing: bool) -> Option<String> {
    if ov.is_some() || !missing {
        return None;
    }
    let a = o.positional(0)?;
    let Some(Const::Str(s)) = consts::eval(&a.value) else {
        return None;
    };
    if Path::new(&s).is_absolute() {
        return None;
    }
    // The folder as the command line named it (so the message is the same
    // wherever the project lives).
    let folder = if base.as_os_str().is_empty() {
        "the current folder".to_string()
    } else {
        base.display().to_string()
    };
    Some(format!(
        "the relative path \"{s}\" is resolved against the program's folder ({folder}), not the working folder"
    ))
}

fn missing_path(o: &mut Opts, span: Span) {
    o.diags.push(
        Diagnostic::new(
            Code::Arity,
            format!("`{}` needs a path as its first argument", o.name),
        )
        .label(span, "no path given"),
    );
}

fn idx(
    name: &str,
    decl: &DataDecl,
    args: &[Arg],
    base: &Path,
    ov: Option<&Path>,
) -> (Option<DataSpec>, Vec<Diagnostic>) {
    let mut o = Opts::new(
        "idx",
        &["scale", "classes", "names", "images", "labels"],
        args,
        1,
    );
    let Some(dir) = path_arg(&mut o, base, ov) else {
        if o.positional(0).is_none() {
            missing_path(&mut o, decl.source.span);
        }
        return (None, o.diags);
    };
    let IdxArgs {
        scale,
        classes,
        names,
        images,
        labels,
    } = idx_args(&mut o);
    if !o.diags.is_empty() {
        return (None, o.diags);
    }
    let Some(headers) = idx_headers(&mut o, name, decl, (&dir, &images, &labels), (base, ov))
    else {
        return (None, o.diags);
    };
    let (ti, si, tl, sl) = (&headers[0], &headers[1], &headers[2], &headers[3]);
    if let Some(p) = idx_problem(ti, si, tl, sl) {
        o.diags.push(
            Diagnostic::new(Code::BadData, format!("data `{name}` is inconsistent: {p}"))
                .label(decl.source.span, "declared here"),
        );
        return (None, o.diags);
    }
    // Float labels are targets unless a class count is declared; then
    // they are class indices, as a CSV's `1.0` is class 1.
    let label = match tl.elem {
        IdxElem::F32 | IdxElem::F64 if classes.is_none() => LabelKind::Target,
        IdxElem::F32 | IdxElem::F64 | IdxElem::U8 | IdxElem::I8 | IdxElem::I16 | IdxElem::I32 => {
            LabelKind::Class { classes }
        }
    };
    let sample: Vec<u64> = ti.dims[1..].iter().map(|&d| d as u64).collect();
    let summary = format!(
        "IDX {} train + {} test samples of {} {}, labels {}",
        ti.dims[0],
        si.dims[0],
        sample
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("×"),
        ti.elem.name(),
        tl.elem.name()
    );
    let spec = DataSpec {
        name: name.to_string(),
        span: decl.span,
        source: Source::Idx {
            dir,
            images: [ti.path.clone(), si.path.clone()],
            labels: [tl.path.clone(), sl.path.clone()],
            image_elem: ti.elem,
            label_elem: tl.elem,
            counts: [ti.dims[0] as u64, si.dims[0] as u64],
            scale,
            names,
        },
        sample,
        label,
        summary,
        rows: Rows {
            read: ti.dims[0] as u64 + si.dims[0] as u64,
            train: ti.dims[0] as u64,
            test: si.dims[0] as u64,
            dropped: String::new(),
            test_file: None,
            unknown: false,
        },
        warnings: Vec::new(),
    };
    if spec.rows.train == 0 {
        o.diags.push(
            Diagnostic::new(
                Code::BadData,
                format!(
                    "data `{name}` has no training samples: {} holds 0",
                    ti.path.display()
                ),
            )
            .label(decl.source.span, "declared here"),
        );
        return (None, o.diags);
    }
    (Some(spec), o.diags)
}

/// The options of `idx(...)` other than its folder.
struct IdxArgs {
    scale: Option<f64>,
    /// Given, or the names' count.
    classes: Option<u64>,
    names: Vec<String>,
    /// The file name patterns, `{split}` standing for train or t10k.
    images: String,
    labels: String,
}

fn idx_args(o: &mut Opts) -> IdxArgs {
    let scale = o.get("scale").map(|_| {
        o.number(
            "scale",
            1.0,
            |v| v.is_finite() && v != 0.0,
            "a nonzero number",
        )
    });
    let mut classes = o.get("classes").map(|_| o.count("classes", 2, 2));
    let names = o
        .strings("names", "a list of class names")
        .unwrap_or_default();
    if let Some(a) = o.get("names") {
        match classes {
            Some(k) if !names.is_empty() && k != names.len() as u64 => o.diags.push(
                Diagnostic::new(
                    Code::BadArgument,
                    format!("{} class names for {k} classes", names.len()),
                )
                .label(a.value.span, format!("expected {k} names")),
            ),
            None if !names.is_empty() => classes = Some(names.len() as u64),
            _ => {}
        }
    }
    IdxArgs {
        scale,
        classes,
        names,
        images: o
            .string("images")
            .unwrap_or_else(|| "{split}-images-idx3-ubyte".into()),
        labels: o
            .string("labels")
            .unwrap_or_else(|| "{split}-labels-idx1-ubyte".into()),
    }
}

/// The first way the four IDX files disagree: sample shapes, counts, the
/// labels' shape, element types.
fn idx_problem(
    ti: &meta::IdxHeader,
    si: &meta::IdxHeader,
    tl: &meta::IdxHeader,
    sl: &meta::IdxHeader,
) -> Option<String> {
    let mut problems = Vec::new();
    if ti.dims[1..] != si.dims[1..] {
        problems.push(format!(
            "train images are {:?} per sample but test images {:?}",
            &ti.dims[1..],
            &si.dims[1..]
        ));
    }
    if ti.dims[0] != tl.dims[0] || si.dims[0] != sl.dims[0] {
        problems.push(format!(
            "image and label counts differ: train {} vs {}, test {} vs {}",
            ti.dims[0], tl.dims[0], si.dims[0], sl.dims[0]
        ));
    }
    if tl.dims.len() != 1 && !(tl.dims.len() == 2 && tl.dims[1] == 1) {
        problems.push(format!(
            "labels must hold one value per sample, found dims {:?}",
            tl.dims
        ));
    }
    if ti.elem != si.elem || tl.elem != sl.elem {
        problems.push("train and test files have different element types".into());
    }
    problems.into_iter().next()
}

/// The headers of the train and test image and label files, in that
/// order, or a diagnostic for the first that cannot be read.
fn idx_headers(
    o: &mut Opts,
    name: &str,
    decl: &DataDecl,
    (dir, images, labels): (&Path, &str, &str),
    (base, ov): (&Path, Option<&Path>),
) -> Option<Vec<meta::IdxHeader>> {
    let mut headers = Vec::new();
    for pattern in [images, labels] {
        for split in ["train", "t10k"] {
            let p = dir.join(pattern.replace("{split}", split));
            match meta::read_idx_header(&p) {
                Ok(h) => headers.push(h),
                Err(e) => {
                    let mut d = Diagnostic::new(Code::BadData, format!("cannot read data `{name}`: {e}"))
                        .label(decl.source.span, "declared here")
                        .note("IDX data is a folder with train-* and t10k-* files (plain or .gz); --data PATH replaces the folder");
                    if let Some(n) = resolved_note(o, base, ov, !dir.exists()) {
                        d = d.note(n);
                    }
                    o.diags.push(d);
                    return None;
                }
            }
        }
    }
    Some(headers)
}

fn csv(
    name: &str,
    decl: &DataDecl,
    args: &[Arg],
    base: &Path,
    ov: Option<&Path>,
) -> (Option<DataSpec>, Vec<Diagnostic>) {
    let mut o = Opts::new(
        "csv",
        &[
            "label",
            "classes",
            "drop",
            "missing",
            "standardize",
            "test",
            "id",
        ],
        args,
        1,
    );
    let path = path_arg(&mut o, base, ov);
    if o.positional(0).is_none() && ov.is_none() {
        missing_path(&mut o, decl.source.span);
    }
    let a = csv_args(&mut o, decl.source.span);
    let (Some(path), Some(label)) = (path, a.label.clone()) else {
        return (None, o.diags);
    };
    if !o.diags.is_empty() {
        return (None, o.diags);
    }
    let Some(schema) = csv_schema(&mut o, name, decl, (&path, base, ov)) else {
        return (None, o.diags);
    };
    if schema.rows == 0 {
        o.diags.push(
            Diagnostic::new(
                Code::BadData,
                format!(
                    "data `{name}`: {} has a header and no data rows",
                    schema.path.display()
                ),
            )
            .label(decl.source.span, "declared here"),
        );
        return (None, o.diags);
    }
    let label_span = o
        .get("label")
        .map(|a| a.value.span)
        .unwrap_or(decl.source.span);
    let Some(label_col) = label_column(&mut o, (&schema, &path), &label, label_span) else {
        return (None, o.diags);
    };
    let drop = csv_ignored(&mut o, (&schema, &path), &label, &a);
    let Some((label_kind, classes)) = csv_label(
        &mut o,
        name,
        (&label, label_span),
        label_col,
        a.int_classes,
        schema.rows,
    ) else {
        return (None, o.diags);
    };
    let features = csv_features(&schema, &label, &drop);
    let width = match encoded_width(name, decl.source.span, schema.rows, &features) {
        Ok(w) => w,
        Err(d) => {
            o.diags.push(d);
            return (None, o.diags);
        }
    };
    let mut rows = csv_rows(&schema, &label, &features, &a.missing, a.test);
    let mut test_rows = 0;
    let test_file = match &a.test_file {
        None => None,
        Some((file, span)) => {
            let tp = join_clean(base, file);
            let train = (&schema, label.as_str(), label_col, features.as_slice());
            let Some(test) = csv_test_file(&mut o, (&tp, *span), train, a.int_classes) else {
                return (None, o.diags);
            };
            test_rows = test.rows as u64;
            let kept = csv_rows(&test, &label, &features, &a.missing, 0.0);
            rows.test = kept.train;
            rows.test_file = Some(test.path.display().to_string());
            Some(test.path)
        }
    };
    if !o.diags.is_empty() {
        return (None, o.diags);
    }
    let warnings = mostly_unique(name, &schema, &features);
    if rows.train == 0 {
        o.diags.push(no_rows(name, &rows, a.test, decl.source.span));
        return (None, o.diags);
    }
    let summary = format!(
        "CSV {} rows, {} feature columns ({width} after one-hot), label `{label}` ({})",
        schema.rows,
        features.len(),
        label_kind.describe()
    );
    let spec = DataSpec {
        name: name.to_string(),
        span: decl.span,
        source: Source::Csv {
            path: schema.path.clone(),
            label,
            classes,
            features,
            missing: a.missing,
            standardize: a.standardize,
            test: a.test,
            test_file,
            rows: schema.rows as u64,
            test_rows,
            index_labels: a.int_classes.is_some(),
            id: a.id.map(|(id, _)| id),
            dropped: a.drop.into_iter().map(|(c, _)| c).collect(),
        },
        sample: vec![width],
        label: label_kind,
        summary,
        rows,
        warnings,
    };
    (Some(spec), o.diags)
}

/// The columns that are not features: the dropped ones and the id, each
/// checked to be a column of the file (and the id not the label).
fn csv_ignored(
    o: &mut Opts,
    (schema, path): (&meta::CsvSchema, &Path),
    label: &str,
    a: &CsvArgs,
) -> Vec<(String, Span)> {
    let mut ignored = a.drop.clone();
    if let Some((id, span)) = &a.id {
        if id == label {
            o.diags.push(
                Diagnostic::new(
                    Code::BadArgument,
                    format!("`{id}` is the label, so it cannot be the id"),
                )
                .label(*span, "the identifier column"),
            );
        }
        ignored.push((id.clone(), *span));
    }
    for (c, span) in ignored.iter().filter(|(c, _)| schema.column(c).is_none()) {
        o.diags.push(
            Diagnostic::new(
                Code::DataMismatch,
                format!("`{}` has no column `{c}`", path.display()),
            )
            .label(*span, "not a column of the file"),
        );
    }
    ignored
}

/// "data `d` leaves no rows to train on: ...", at the declaration.
fn no_rows(name: &str, rows: &Rows, test: f64, here: Span) -> Diagnostic {
    Diagnostic::new(
        Code::BadData,
        format!(
            "data `{name}` leaves no rows to train on: {}",
            rows.describe(Some(test))
        ),
    )
    .label(here, "declared here")
}

/// The options of `csv(...)` other than its path.
struct CsvArgs {
    label: Option<String>,
    drop: Vec<(String, Span)>,
    missing: Missing,
    standardize: bool,
    test: f64,
    /// `test = "file.csv"`: the test part's own file, as written.
    test_file: Option<(String, Span)>,
    /// `id = "column"`: the identifier column.
    id: Option<(String, Span)>,
    /// `classes = N`: an integer label column holds class indices 0..N.
    int_classes: Option<u64>,
}

fn csv_args(o: &mut Opts, source: Span) -> CsvArgs {
    let label = o.string("label");
    if label.is_none() && o.get("label").is_none() {
        o.diags.push(
            Diagnostic::new(Code::Arity, "`csv` needs `label = \"column\"`")
                .label(source, "which column is the label?"),
        );
    }
    let drop_span = o.get("drop").map(|a| a.value.span);
    let test_file = match o
        .get("test")
        .map(|a| (a.value.span, consts::eval(&a.value)))
    {
        Some((span, Some(Const::Str(s)))) => Some((s, span)),
        _ => None,
    };
    // In this order, so that the diagnostics come in the arguments' order.
    CsvArgs {
        label,
        drop: o
            .strings("drop", "a list of column names")
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| Some((c, drop_span?)))
            .collect(),
        missing: o.missing(),
        standardize: o.flag("standardize"),
        test: if test_file.is_some() {
            0.0
        } else {
            o.number(
                "test",
                0.0,
                |v| (0.0..1.0).contains(&v),
                "a fraction in [0, 1) or a file name",
            )
        },
        test_file,
        id: o.string("id").zip(o.get("id").map(|a| a.value.span)),
        int_classes: o.get("classes").map(|_| o.count("classes", 2, 2)),
    }
}

/// The schema of `test = "file.csv"`, checked against the training file's:
/// the same columns (in any order; the ignored ones may be left out), the
/// label's values among the training file's classes, numbers where the
/// training file has numbers. A category the training file lacks is no
/// error: it is encoded as missing, and loading counts them.
fn csv_test_file(
    o: &mut Opts,
    (path, span): (&Path, Span),
    (train, label, label_col, features): (&meta::CsvSchema, &str, &meta::Column, &[Feature]),
    int_classes: Option<u64>,
) -> Option<meta::CsvSchema> {
    let err = |o: &mut Opts, msg: String, here: &str| {
        o.diags.push(
            Diagnostic::new(Code::DataMismatch, msg)
                .label(span, here.to_string())
                .note(format!(
                    "the test file needs the training file's columns: {}",
                    train.names().join(", ")
                )),
        );
    };
    let test = match meta::scan_csv(path) {
        Ok(s) => s,
        Err(e) => {
            o.diags.push(
                Diagnostic::new(Code::BadData, format!("cannot read the test file: {e}"))
                    .label(span, "the test part's file"),
            );
            return None;
        }
    };
    let shown = test.path.display().to_string();
    if test.rows == 0 {
        o.diags.push(
            Diagnostic::new(
                Code::BadData,
                format!("the test file {shown} has a header and no data rows"),
            )
            .label(span, "the test part's file"),
        );
        return None;
    }
    if let Some(extra) = test.names().into_iter().find(|c| train.column(c).is_none()) {
        err(
            o,
            format!(
                "test file `{shown}` has a column `{extra}` that the training file `{}` does not",
                train.path.display()
            ),
            "the test part's file",
        );
        return None;
    }
    let needed = std::iter::once(label).chain(features.iter().map(|f| f.column.as_str()));
    if let Some(gone) = needed.into_iter().find(|c| test.column(c).is_none()) {
        err(
            o,
            format!("test file `{shown}` has no column `{gone}`"),
            "the test part's file",
        );
        return None;
    }
    for f in features.iter().filter(|f| f.kind == FeatureKind::Numeric) {
        if let Some(ColumnKind::Categorical { categories }) =
            test.column(&f.column).map(|c| &c.kind)
        {
            if let Some(v) = categories.first() {
                err(
                    o,
                    format!("column `{}` of test file `{shown}` holds `{v}`, but it holds numbers in the training file", f.column),
                    "the test part's file",
                );
                return None;
            }
        }
    }
    let test_label = test.column(label)?;
    let bad_label = match (&label_col.kind, &test_label.kind) {
        (ColumnKind::Categorical { categories }, ColumnKind::Categorical { categories: t })
            if int_classes.is_none() =>
        {
            t.iter()
                .find(|c| !categories.contains(c))
                .map(|c| format!("class `{c}`, which the training file does not have"))
        }
        (ColumnKind::Categorical { .. }, ColumnKind::Numeric { .. }) => {
            // Numbers as class names: each must be a training class.
            Some("numbers where the training file has class names".to_string())
        }
        (ColumnKind::Numeric { .. }, ColumnKind::Numeric { min, max, .. }) => match int_classes {
            Some(n) if *min < 0.0 || *max >= n as f64 || test_label.non_integer.is_some() => Some(
                format!("values from {min} to {max}, not class indices below {n}"),
            ),
            _ => None,
        },
        (ColumnKind::Numeric { .. }, ColumnKind::Categorical { categories }) => {
            categories.first().map(|c| format!("`{c}`, not a number"))
        }
        (ColumnKind::Categorical { .. }, ColumnKind::Categorical { .. }) => None,
    };
    if let Some(what) = bad_label {
        o.diags.push(
            Diagnostic::new(
                Code::DataMismatch,
                format!("the label `{label}` of test file `{shown}` holds {what}"),
            )
            .label(span, "the test part's file"),
        );
        return None;
    }
    Some(test)
}

/// The CSV file's schema from its metadata scan, or a diagnostic saying why
/// it cannot be read (and where a relative path was resolved).
fn csv_schema(
    o: &mut Opts,
    name: &str,
    decl: &DataDecl,
    (path, base, ov): (&Path, &Path, Option<&Path>),
) -> Option<meta::CsvSchema> {
    match meta::scan_csv(path) {
        Ok(s) => Some(s),
        Err(e) => {
            let mut d = Diagnostic::new(Code::BadData, format!("cannot read data `{name}`: {e}"))
                .label(decl.source.span, "declared here");
            let gone = !path.exists() && !PathBuf::from(format!("{}.gz", path.display())).exists();
            if let Some(n) = resolved_note(o, base, ov, gone) {
                d = d.note(n);
            }
            o.diags.push(d);
            None
        }
    }
}

/// The label column, or a diagnostic naming the nearest column.
fn label_column<'s>(
    o: &mut Opts,
    (schema, path): (&'s meta::CsvSchema, &Path),
    label: &str,
    label_span: Span,
) -> Option<&'s meta::Column> {
    let col = schema.column(label);
    if col.is_none() {
        let mut d = Diagnostic::new(
            Code::DataMismatch,
            format!("`{}` has no column `{label}`", path.display()),
        )
        .label(label_span, "not a column of the file");
        d = match nearest(label, schema.names().into_iter()) {
            Some(s) => d.note(format!("did you mean `{s}`?")),
            None => d.note(format!("its columns are: {}", schema.names().join(", "))),
        };
        o.diags.push(d);
    }
    col
}

/// The label column's kind: class indices below `classes = N` (checked
/// against its values), a numeric target, or categories as classes.
fn csv_label(
    o: &mut Opts,
    name: &str,
    (label, label_span): (&str, Span),
    col: &meta::Column,
    int_classes: Option<u64>,
    rows: usize,
) -> Option<(LabelKind, Vec<String>)> {
    let (label_kind, classes) = match &col.kind {
        ColumnKind::Numeric { min, max, .. } if int_classes.is_some() => {
            let n = int_classes.unwrap_or(2);
            if let Some((line, v)) = &col.non_integer {
                o.diags.push(
                    Diagnostic::new(
                        Code::DataMismatch,
                        format!("column `{label}` holds `{v}` (line {line}), not a class index"),
                    )
                    .label(label_span, "declared as a class label here")
                    .note(format!("class indices are whole numbers 0 to {}", n - 1)),
                );
                return None;
            }
            if *min < 0.0 || *max >= n as f64 {
                o.diags.push(
                    Diagnostic::new(
                        Code::DataMismatch,
                        format!("column `{label}` holds values from {min} to {max}, not class indices below {n}"),
                    )
                    .label(label_span, "declared as a class label here"),
                );
                return None;
            }
            (
                LabelKind::Class { classes: Some(n) },
                (0..n).map(|c| c.to_string()).collect(),
            )
        }
        ColumnKind::Numeric { .. } => (LabelKind::Target, Vec::new()),
        ColumnKind::Categorical { categories } if categories.is_empty() => {
            o.diags.push(
                Diagnostic::new(
                    Code::BadData,
                    format!(
                        "data `{name}` has no labels: column `{label}` is missing in all {} rows",
                        rows
                    ),
                )
                .label(label_span, "the label column"),
            );
            return None;
        }
        ColumnKind::Categorical { categories } => (
            LabelKind::Class {
                classes: Some(categories.len() as u64),
            },
            categories.clone(),
        ),
    };
    Some((label_kind, classes))
}

/// The feature columns: every column but the label and the dropped ones.
fn csv_features(schema: &meta::CsvSchema, label: &str, drop: &[(String, Span)]) -> Vec<Feature> {
    let dropped: std::collections::HashSet<&str> = drop.iter().map(|(d, _)| d.as_str()).collect();
    let mut features = Vec::new();
    for col in &schema.columns {
        if col.name == label || dropped.contains(col.name.as_str()) {
            continue;
        }
        let kind = match &col.kind {
            ColumnKind::Numeric { .. } => FeatureKind::Numeric,
            ColumnKind::Categorical { categories } => FeatureKind::Categorical {
                categories: categories.clone(),
                missing: col.missing > 0,
            },
        };
        features.push(Feature {
            column: col.name.clone(),
            kind,
        });
    }
    features
}

/// The width of the features once one-hot encoded, which must not be 0.
/// One-hot encoding can multiply a small file into gigabytes (an id column
/// of 50,000 values in 50,000 rows is 10 GB of f32): the encoded size is
/// estimated and refused here, before anything is encoded, naming the
/// widest columns.
fn encoded_width(
    name: &str,
    span: Span,
    rows: usize,
    features: &[Feature],
) -> Result<u64, Diagnostic> {
    let width: u64 = features.iter().map(|f| f.width()).sum();
    if width == 0 {
        return Err(Diagnostic::new(
            Code::BadData,
            format!("data `{name}` has no feature columns"),
        )
        .label(span, "declared here"));
    }
    let encoded = rows as u128 * u128::from(width) * 4;
    if let Err(e) = crate::memory::check("one-hot encoding", encoded) {
        let mut wide: Vec<&Feature> = features
            .iter()
            .filter(|f| matches!(f.kind, FeatureKind::Categorical { .. }))
            .collect();
        wide.sort_by_key(|f| std::cmp::Reverse(f.width()));
        let named: Vec<String> = wide
            .iter()
            .take(3)
            .map(|f| format!("`{}` ({} categories)", f.column, f.width()))
            .collect();
        let mut d = Diagnostic::new(
            Code::BadData,
            format!(
                "data `{name}` is too large once encoded: {} rows × {width} features; {e}",
                rows
            ),
        )
        .label(span, "declared here");
        if let Some(top) = wide.first() {
            d = d.note(format!(
                "the widest one-hot columns: {}; leave one out with drop = [\"{}\"]",
                named.join(", "),
                top.column
            ));
        }
        return Err(d);
    }
    Ok(width)
}

/// Warnings for categorical feature columns whose values are mostly
/// unique: one-hot encoding them gives a feature per row (an id, a name, a
/// ticket number), which a model can only memorize.
fn mostly_unique(name: &str, schema: &meta::CsvSchema, features: &[Feature]) -> Vec<String> {
    let mut out = Vec::new();
    for f in features {
        let FeatureKind::Categorical { categories, .. } = &f.kind else {
            continue;
        };
        let present = schema
            .column(&f.column)
            .map_or(schema.rows, |c| schema.rows - c.missing);
        if categories.len() >= 20 && categories.len() * 2 > present {
            out.push(format!(
                "data `{name}`: column `{}` is text with {} distinct values in {present} rows, one-hot encoded into {} features (an identifier?); drop = [\"{}\"] leaves it out",
                f.column,
                categories.len(),
                f.width(),
                f.column
            ));
        }
    }
    out
}

/// The rows of a CSV file that reach each part: a row without a label is
/// dropped, and with `missing = "drop"` so is a row missing a number among
/// the features; the test part is the rounded `test` fraction of the rest.
fn csv_rows(
    schema: &meta::CsvSchema,
    label: &str,
    features: &[Feature],
    missing: &Missing,
    test: f64,
) -> Rows {
    let index = |c: &str| schema.position(c);
    let li = index(label).map(|i| i as u32);
    let mut numeric = vec![false; schema.columns.len()];
    if *missing == Missing::Drop {
        for f in features.iter().filter(|f| f.kind == FeatureKind::Numeric) {
            if let Some(i) = index(&f.column) {
                numeric[i] = true;
            }
        }
    }
    let (mut unlabelled, mut incomplete) = (0u64, 0u64);
    let mut cells = schema.missing_cells.iter().peekable();
    while let Some(&&(row, _)) = cells.peek() {
        let (mut no_label, mut gap) = (false, false);
        while let Some(&&(r, c)) = cells.peek() {
            if r != row {
                break;
            }
            no_label |= Some(c) == li;
            gap |= numeric[c as usize];
            cells.next();
        }
        if no_label {
            unlabelled += 1;
        } else if gap {
            incomplete += 1;
        }
    }
    let read = schema.rows as u64;
    let kept = read - unlabelled - incomplete;
    let n_test = (kept as f64 * test).round() as u64;
    let mut why = Vec::new();
    if unlabelled > 0 {
        why.push(format!("{unlabelled} without a label `{label}`"));
    }
    if incomplete > 0 {
        why.push(format!(
            "{incomplete} missing a number, dropped by missing = \"drop\""
        ));
    }
    Rows {
        read,
        train: kept - n_test,
        test: n_test,
        dropped: why.join(", "),
        test_file: None,
        unknown: false,
    }
}

/// `npy("x.npy", labels = "y.npy", test = 0.2 | ["xt.npy", "yt.npy"])`, or
/// with an `.npz`, arrays by name: `npy("d.npz", features = "x", labels =
/// "y", test = ["x_test", "y_test"])`. Described from the arrays' headers.
fn npy_source(
    name: &str,
    decl: &DataDecl,
    args: &[Arg],
    base: &Path,
    ov: Option<&Path>,
) -> (Option<DataSpec>, Vec<Diagnostic>) {
    let mut o = Opts::new(
        "npy",
        &["labels", "features", "test", "classes", "names", "scale"],
        args,
        1,
    );
    let Some(path) = path_arg(&mut o, base, ov) else {
        if o.positional(0).is_none() {
            missing_path(&mut o, decl.source.span);
        }
        return (None, o.diags);
    };
    let here = decl.source.span;
    let Some((pairs, test)) = npy_arrays(&mut o, &path, base, here) else {
        return (None, o.diags);
    };
    let IdxArgs {
        scale,
        classes,
        names,
        ..
    } = idx_args(&mut o);
    if !o.diags.is_empty() {
        return (None, o.diags);
    }
    let read = |o: &mut Opts, r: &NpyRef| match npy::header(r) {
        Ok(h) => Some(h),
        Err(e) => {
            o.diags.push(
                Diagnostic::new(Code::BadData, format!("cannot read data `{name}`: {e}"))
                    .label(here, "declared here"),
            );
            None
        }
    };
    let mut heads = Vec::new();
    for [f, l] in &pairs {
        // One diagnostic: the labels are not read once the features fail.
        let Some(fh) = read(&mut o, f) else {
            return (None, o.diags);
        };
        let Some(lh) = read(&mut o, l) else {
            return (None, o.diags);
        };
        heads.push((fh, lh));
    }
    let problem = npy_problem(&pairs, &heads, classes.is_some());
    if let Some(p) = problem {
        o.diags.push(
            Diagnostic::new(Code::BadData, format!("data `{name}` is inconsistent: {p}"))
                .label(here, "declared here"),
        );
        return (None, o.diags);
    }
    let (fh, lh) = &heads[0];
    // Float labels are targets unless a class count is declared; then
    // they are class indices, as a CSV's `1.0` is class 1.
    let label = if lh.ty.is_float() && classes.is_none() {
        LabelKind::Target
    } else {
        LabelKind::Class { classes }
    };
    let sample: Vec<u64> = fh.dims[1..].iter().map(|&d| d as u64).collect();
    let n = fh.dims[0] as u64;
    let n_test = heads.get(1).map_or(0, |(f, _)| f.dims[0] as u64);
    let held = (n as f64 * test).round() as u64;
    let rows = Rows {
        read: n + n_test,
        train: n - held,
        test: n_test + held,
        dropped: String::new(),
        test_file: pairs.get(1).map(|t| t[0].to_string()),
        unknown: false,
    };
    let summary = format!(
        "NumPy {} samples of {} {}, labels {}",
        n + n_test,
        sample
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("×"),
        fh.ty.name(),
        lh.ty.name()
    );
    if rows.train == 0 {
        o.diags.push(no_rows(name, &rows, test, here));
        return (None, o.diags);
    }
    let spec = DataSpec {
        name: name.to_string(),
        span: decl.span,
        source: Source::Npy {
            train: pairs[0].clone(),
            test_arrays: pairs.get(1).cloned(),
            test,
            counts: [n, n_test],
            feature_ty: fh.ty,
            scale,
            names,
        },
        sample,
        label,
        summary,
        rows,
        warnings: Vec::new(),
    };
    (Some(spec), o.diags)
}

/// The arrays of `npy(path, ...)`: [features, labels] of the training
/// part, then of the test part when `test` names them; and the held-out
/// fraction otherwise. An `.npz`'s arrays are named (default `x` and `y`),
/// `.npy` files are paths.
fn npy_arrays(
    o: &mut Opts,
    path: &Path,
    base: &Path,
    here: Span,
) -> Option<(Vec<[NpyRef; 2]>, f64)> {
    let archive = path.extension().is_some_and(|e| e == "npz");
    let array = |what: &str| -> NpyRef {
        if archive {
            npy::reference(path, Some(what))
        } else {
            npy::reference(&join_clean(base, what), None)
        }
    };
    let features = match (o.string("features"), archive) {
        (f, true) => array(f.as_deref().unwrap_or("x")),
        (None, false) => npy::reference(path, None),
        (Some(_), false) => {
            o.diags.push(
                Diagnostic::new(
                    Code::BadArgument,
                    "`features` names an array of an .npz archive",
                )
                .label(here, "this source is one .npy file of features"),
            );
            return None;
        }
    };
    let labels = match (o.string("labels"), archive) {
        (Some(l), _) => array(&l),
        (None, true) => array("y"),
        (None, false) => {
            o.diags.push(
                Diagnostic::new(Code::Arity, "`npy` needs `labels = \"labels.npy\"`")
                    .label(here, "which file holds the labels?"),
            );
            return None;
        }
    };
    let mut pairs = vec![[features, labels]];
    let what = "a fraction in [0, 1), or [features, labels] of the test part";
    let test = match o.get("test").map(|a| (a, consts::eval(&a.value))) {
        Some((a, Some(Const::List(items)))) => match items.as_slice() {
            [Const::Str(f), Const::Str(l)] => {
                pairs.push([array(f), array(l)]);
                0.0
            }
            _ => {
                o.bad(a, what);
                return None;
            }
        },
        _ => o.number("test", 0.0, |v| (0.0..1.0).contains(&v), what),
    };
    Some((pairs, test))
}

/// The first way the arrays disagree: features of rank < 2, labels that
/// are not one per row, test samples of another shape, labels of another
/// kind (integers and floats are both class indices when the class count
/// is `declared`).
fn npy_problem(
    pairs: &[[NpyRef; 2]],
    heads: &[(npy::NpyHeader, npy::NpyHeader)],
    declared: bool,
) -> Option<String> {
    let (f0, l0) = &heads[0];
    for ([f, l], (fh, lh)) in pairs.iter().zip(heads) {
        if fh.dims.len() >= 2 && fh.dims[1..].contains(&0) {
            return Some(format!(
                "the features {f} have shape {:?}: a sample needs at least one value",
                fh.dims
            ));
        }
        if fh.dims.len() < 2 {
            return Some(format!(
                "the features {f} have shape {:?}: they need a row per sample, [N, features...]",
                fh.dims
            ));
        }
        let per_row = matches!(lh.dims.as_slice(), [n] | [n, 1] if *n == fh.dims[0]);
        if !per_row {
            return Some(format!(
                "the labels {l} have shape {:?}, but the features {f} hold {} rows: labels are [N] (or [N, 1])",
                lh.dims, fh.dims[0]
            ));
        }
        if fh.dims[1..] != f0.dims[1..] {
            return Some(format!(
                "the test features {f} are {:?} per sample but the training features {:?}",
                &fh.dims[1..],
                &f0.dims[1..]
            ));
        }
        if lh.ty.is_float() != l0.ty.is_float() && !declared {
            return Some(format!(
                "the test labels {l} are {}, the training labels {} (classes are integers, targets floats)",
                lh.ty.name(),
                l0.ty.name()
            ));
        }
    }
    None
}

fn synthetic(
    name: &str,
    kind: &str,
    decl: &DataDecl,
    args: &[Arg],
) -> (Option<DataSpec>, Vec<Diagnostic>) {
    let allowed: &'static [&'static str] = if kind == "linear" {
        &["w", "b", "features", "n_train", "n_test", "noise"]
    } else {
        &["w", "features", "n_train", "n_test", "noise"]
    };
    let mut o = Opts::new(kind, allowed, args, 0);
    let w = o.numbers("w");
    if o.get("w").is_none() {
        o.diags.push(
            Diagnostic::new(
                Code::Arity,
                format!("`{kind}` needs the true weights `w = [...]`"),
            )
            .label(decl.source.span, "no `w`"),
        );
    }
    let train = o.count("n_train", 1000, 1);
    let test = o.count("n_test", 0, 0);
    let noise = o.number("noise", 0.01, |v| v >= 0.0, "a noise level ≥ 0");
    let (synth, sample) = if kind == "linear" {
        let b = o.number("b", 0.0, |_| true, "a number");
        // `w` is a list of weights, or one weight repeated `features` times.
        let features = o.get("features").map(|_| o.count("features", 1, 1));
        let w = match (w, features) {
            (Some(w), Some(f)) if w.len() == 1 => Some(vec![w[0]; f as usize]),
            (Some(w), Some(f)) if w.len() as u64 != f => {
                if let Some(a) = o.get("features") {
                    o.diags.push(
                        Diagnostic::new(
                            Code::BadArgument,
                            format!("{} weights but {f} features", w.len()),
                        )
                        .label(
                            a.value.span,
                            "give one weight per feature, or a single weight to repeat",
                        ),
                    );
                }
                None
            }
            (w, _) => w,
        };
        let n = w.as_ref().map(|w| w.len() as u64).unwrap_or(1);
        (w.map(|w| Synthetic::Linear { w, b }), vec![n])
    } else {
        let features = o.count("features", 20, 1);
        if let (Some(w), Some(a)) = (&w, o.get("features")) {
            if (w.len() as u64) > features {
                o.diags.push(
                    Diagnostic::new(
                        Code::BadArgument,
                        format!("{} true weights but only {features} features", w.len()),
                    )
                    .label(a.value.span, "fewer features than weights"),
                );
            }
        }
        (
            w.map(|w| Synthetic::Polynomial { w, features }),
            vec![features],
        )
    };
    let Some(synth) = synth else {
        return (None, o.diags);
    };
    if !o.diags.is_empty() {
        return (None, o.diags);
    }
    let summary = format!(
        "synthetic {kind}: {train} train + {test} test samples of {} features, noise {noise}",
        sample[0]
    );
    let spec = DataSpec {
        name: name.to_string(),
        span: decl.span,
        source: Source::Synthetic {
            kind: synth,
            train,
            test,
            noise,
        },
        sample,
        label: LabelKind::Target,
        summary,
        rows: Rows {
            read: train + test,
            train,
            test,
            dropped: String::new(),
            test_file: None,
            unknown: false,
        },
        warnings: Vec::new(),
    };
    (Some(spec), o.diags)
}
