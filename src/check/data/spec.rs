//! What a described data source is: the shape of a sample, the label, the
//! rows and where they come from.

use std::path::{Path, PathBuf};

use crate::data::meta::IdxElem;
use crate::data::npy::{NpyRef, NpyType};
use crate::span::Span;

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
    pub(super) fn describe(&self) -> String {
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

impl Source {
    /// The files a source reads.
    pub fn files(&self) -> Vec<PathBuf> {
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
