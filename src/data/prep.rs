//! A data set's preprocessing: everything that turns a raw row (a CSV
//! record, an IDX image) into the model's input — numeric statistics from
//! the training part, category vocabularies from the training file's scan
//! — saved in checkpoints, so that `dlc predict` (and Python, with
//! `tools/dlc_preprocess.py`) encode new data exactly as training did.
//!
//! Invariant: training, the test part, `dlc predict` and the exported
//! preprocessing all encode a row through [`Column::encode`] (CSV) or
//! [`crate::data::table::Decode`] (IDX), so a model never sees inputs
//! prepared two ways.
//!
//! The JSON form (a checkpoint's `preprocessing` metadata) is documented in
//! docs/preprocessing.md; a number in it is an f64 written with the
//! fewest digits that read back to the same f64.

use serde::{Deserialize, Serialize};

use super::meta::is_missing;

/// The `format` of the JSON form.
pub const FORMAT: &str = "dlc preprocessing 1";

/// How raw rows become the model's input, and what its output means.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    pub format: String,
    /// Features per sample once encoded (the model's `D`).
    pub width: usize,
    pub input: Input,
    pub label: Label,
}

/// The raw input's form and its encoding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "lowercase")]
pub enum Input {
    /// CSV records: each column in `columns` encoded in turn.
    Csv {
        /// The identifier column passed through to predictions (`id = ...`).
        id: Option<String>,
        /// Columns of the training file the model does not read (`drop`).
        ignored: Vec<String>,
        columns: Vec<Column>,
    },
    /// IDX images of `shape`: value v becomes the f32 of v · `scale`.
    Idx { shape: Vec<usize>, scale: f64 },
    /// NumPy arrays of rows of `shape`: value v becomes the f32 of
    /// v · `scale`.
    Npy { shape: Vec<usize>, scale: f64 },
    /// Generated data: features are given as they are.
    Synthetic,
}

/// One CSV column's encoding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Column {
    /// One feature: the f32 of (v − shift) / scale, where a missing v
    /// (`NA` or empty) is `fill`, the training part's mean. Without
    /// standardization shift is 0 and scale 1; a standardized column whose
    /// training values are all equal has shift = mean and scale 1 (so it
    /// is 0 there, as d2l's `fillna(0)` after (x − μ)/σ makes it).
    Numeric {
        name: String,
        fill: f64,
        shift: f64,
        scale: f64,
    },
    /// One-hot over `categories` (in this order), then, when `missing`, one
    /// more feature that is 1 for a missing value or one unseen in
    /// training.
    Categorical {
        name: String,
        categories: Vec<String>,
        missing: bool,
    },
}

/// What the model predicts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Label {
    /// The label column's name (`label` for IDX files).
    pub name: String,
    /// The class names in index order, or `None` for a regression target
    /// (predicted on the label's own scale).
    pub classes: Option<Vec<String>>,
}

/// Why a cell could not be encoded.
#[derive(Clone, Debug, PartialEq)]
pub enum CellError {
    /// A numeric column holds something that is not a finite number.
    NotANumber,
    /// A number whose encoded value is beyond float32's range.
    TooLarge,
}

impl Column {
    pub fn name(&self) -> &str {
        match self {
            Column::Numeric { name, .. } | Column::Categorical { name, .. } => name,
        }
    }

    /// Features this column becomes.
    pub fn width(&self) -> usize {
        match self {
            Column::Numeric { .. } => 1,
            Column::Categorical {
                categories,
                missing,
                ..
            } => categories.len() + usize::from(*missing),
        }
    }

    /// Appends `cell`'s features to `out`; `Ok(true)` when it is a category
    /// not seen in training (encoded as missing).
    pub fn encode(&self, cell: &str, out: &mut Vec<f32>) -> Result<bool, CellError> {
        match self {
            Column::Numeric {
                fill, shift, scale, ..
            } => {
                let v = if is_missing(cell) {
                    *fill
                } else {
                    match cell.parse::<f64>() {
                        Ok(v) if v.is_finite() => v,
                        _ => return Err(CellError::NotANumber),
                    }
                };
                let x = ((v - shift) / scale) as f32;
                if !x.is_finite() {
                    return Err(CellError::TooLarge);
                }
                out.push(x);
                Ok(false)
            }
            Column::Categorical {
                categories,
                missing,
                ..
            } => {
                // Categories are sorted (the metadata scan's BTreeSet).
                let hit = categories.binary_search_by(|c| c.as_str().cmp(cell)).ok();
                out.extend((0..categories.len()).map(|i| f32::from(u8::from(hit == Some(i)))));
                if *missing {
                    out.push(f32::from(u8::from(hit.is_none())));
                }
                Ok(hit.is_none() && !is_missing(cell))
            }
        }
    }
}

impl Preprocessing {
    /// The JSON form.
    pub fn to_json(&self) -> Result<String, String> {
        serde_json::to_string(self).map_err(|e| format!("cannot encode the preprocessing: {e}"))
    }

    /// Reads the JSON form; `what` names its origin in errors.
    pub fn from_json(text: &str, what: &str) -> Result<Preprocessing, String> {
        let p: Preprocessing = serde_json::from_str(text)
            .map_err(|e| format!("{what}: its preprocessing cannot be read: {e}"))?;
        if p.format != FORMAT {
            return Err(format!(
                "{what}: its preprocessing is `{}`, not `{FORMAT}`",
                p.format
            ));
        }
        let bad = |why: String| Err(format!("{what}: its preprocessing {why}"));
        let encoded = match &p.input {
            Input::Csv {
                columns,
                id,
                ignored,
            } => {
                for c in columns {
                    match c {
                        Column::Numeric {
                            name,
                            fill,
                            shift,
                            scale,
                        } => {
                            // The scale is a standard deviation (or 1).
                            if !(fill.is_finite()
                                && shift.is_finite()
                                && scale.is_finite()
                                && *scale > 0.0)
                            {
                                return bad(format!(
                                    "gives column `{name}` a non-finite statistic or a scale that is not positive"
                                ));
                            }
                        }
                        Column::Categorical {
                            name, categories, ..
                        } => {
                            // `encode` looks categories up by binary search.
                            if !categories.windows(2).all(|w| w[0] < w[1]) {
                                return bad(format!("lists the categories of `{name}` out of order (they are sorted, each once)"));
                            }
                        }
                    }
                }
                // Each column once: not twice a feature, nor a feature and
                // the id or an ignored column.
                let mut names: Vec<&str> = columns.iter().map(Column::name).collect();
                names.extend(id.as_deref());
                names.extend(ignored.iter().map(String::as_str));
                names.sort_unstable();
                if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
                    return bad(format!(
                        "names column `{}` twice (as a feature, the id or an ignored column)",
                        w[0]
                    ));
                }
                Some(columns.iter().map(Column::width).sum())
            }
            Input::Idx { shape, scale } | Input::Npy { shape, scale } => {
                // A scale that takes a byte's 255 past float32's range
                // makes every input infinite.
                if !(scale.is_finite() && *scale > 0.0 && *scale * 255.0 <= f64::from(f32::MAX)) {
                    return bad(format!("has the scale {scale} (a positive number that keeps values within float32 is expected)"));
                }
                shape.iter().try_fold(1usize, |a, d| a.checked_mul(*d))
            }
            Input::Synthetic => Some(p.width),
        };
        let Some(encoded) = encoded else {
            return bad("has a shape too large".to_string());
        };
        if let Some(classes) = &p.label.classes {
            let mut sorted: Vec<&String> = classes.iter().collect();
            sorted.sort_unstable();
            if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
                return bad(format!("names class `{}` twice", w[0]));
            }
        }
        if encoded != p.width {
            return Err(format!(
                "{what}: its preprocessing encodes {encoded} features, but says {}",
                p.width
            ));
        }
        Ok(p)
    }

    /// The name of class `c`, or its number.
    pub fn class_name(&self, c: usize) -> String {
        self.label
            .classes
            .as_ref()
            .and_then(|n| n.get(c).cloned())
            .unwrap_or_else(|| c.to_string())
    }
}

/// Counts of categories unseen in training, per column, for the warning
/// that says how many values were encoded as missing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Unseen {
    counts: Vec<(String, usize)>,
}

impl Unseen {
    pub fn add(&mut self, column: &str) {
        match self.counts.iter_mut().find(|(c, _)| c == column) {
            Some((_, n)) => *n += 1,
            None => self.counts.push((column.to_string(), 1)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// "3 values of `MSZoning` and 1 of `Utilities`".
    pub fn describe(&self) -> String {
        self.counts
            .iter()
            .enumerate()
            .map(|(i, (c, n))| {
                let what = match (i, *n) {
                    (0, 1) => "value",
                    (0, _) => "values",
                    _ => "",
                };
                if what.is_empty() {
                    format!("{n} of `{c}`")
                } else {
                    format!("{n} {what} of `{c}`")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A CSV file's columns matched to a preprocessing's: where each encoded
/// column, the label and the identifier are.
pub struct Layout {
    /// Per encoded column, its position in the file's records.
    pub columns: Vec<usize>,
    pub label: Option<usize>,
    pub id: Option<usize>,
}

/// Matches `headers` (a CSV file's, read from `file`) to the columns of
/// `prep`: every encoded column must be there; a column the training file
/// did not have is an error naming it; the label and id are optional here
/// (the caller decides whether it needs them).
pub fn layout(prep: &Preprocessing, headers: &[&str], file: &str) -> Result<Layout, String> {
    let Input::Csv {
        id,
        ignored,
        columns,
    } = &prep.input
    else {
        return Err(format!(
            "{file}: the model was trained on {}, not on a CSV file",
            match prep.input {
                Input::Idx { .. } => "IDX images",
                Input::Npy { .. } => "NumPy arrays",
                _ => "generated data",
            }
        ));
    };
    let names: Vec<&str> = headers
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}'))
        .collect();
    let find = |n: &str| names.iter().position(|h| *h == n);
    let known = |h: &str| {
        h == prep.label.name
            || id.as_deref() == Some(h)
            || ignored.iter().any(|i| i == h)
            || columns.iter().any(|c| c.name() == h)
    };
    if let Some(h) = names.iter().find(|h| !known(h)) {
        return Err(format!(
            "{file}: column `{h}` was not in the training data (the model reads {})",
            describe_columns(columns)
        ));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(h) = names.iter().find(|h| !seen.insert(**h)) {
        return Err(format!("{file}: column `{h}` appears twice in the header"));
    }
    let positions = columns
        .iter()
        .map(|c| {
            find(c.name()).ok_or_else(|| {
                format!(
                    "{file}: no column `{}`, which the model was trained on",
                    c.name()
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Layout {
        columns: positions,
        label: find(&prep.label.name),
        id: id.as_deref().and_then(find),
    })
}

/// "36 numeric and 43 categorical columns".
fn describe_columns(columns: &[Column]) -> String {
    let numeric = columns
        .iter()
        .filter(|c| matches!(c, Column::Numeric { .. }))
        .count();
    format!(
        "{numeric} numeric and {} categorical columns",
        columns.len() - numeric
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prep() -> Preprocessing {
        Preprocessing {
            format: FORMAT.to_string(),
            width: 4,
            input: Input::Csv {
                id: Some("Id".into()),
                ignored: vec!["note".into()],
                columns: vec![
                    Column::Numeric {
                        name: "a".into(),
                        fill: 2.5,
                        shift: 2.5,
                        scale: 0.1,
                    },
                    Column::Categorical {
                        name: "c".into(),
                        categories: vec!["x".into(), "y".into()],
                        missing: true,
                    },
                ],
            },
            label: Label {
                name: "y".into(),
                classes: None,
            },
        }
    }

    #[test]
    fn cells_encode_with_the_training_statistics() {
        let p = prep();
        let Input::Csv { columns, .. } = &p.input else {
            panic!("csv")
        };
        let mut out = Vec::new();
        assert_eq!(columns[0].encode("2.7", &mut out), Ok(false));
        assert_eq!(columns[0].encode("NA", &mut out), Ok(false));
        assert_eq!(columns[0].encode("", &mut out), Ok(false));
        assert_eq!(
            columns[0].encode("seven", &mut out),
            Err(CellError::NotANumber)
        );
        assert_eq!(
            columns[0].encode("inf", &mut out),
            Err(CellError::NotANumber)
        );
        assert_eq!(out, vec![((2.7 - 2.5) / 0.1) as f32, 0.0, 0.0]);
        out.clear();
        assert_eq!(columns[1].encode("y", &mut out), Ok(false));
        assert_eq!(columns[1].encode("NA", &mut out), Ok(false));
        assert_eq!(columns[1].encode("z", &mut out), Ok(true));
        assert_eq!(out, vec![0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn the_json_form_reads_back_exactly() {
        let mut p = prep();
        if let Input::Csv { columns, .. } = &mut p.input {
            columns[0] = Column::Numeric {
                name: "a".into(),
                fill: 0.1 + 0.2,
                shift: 1.0 / 3.0,
                scale: 1e-300,
            };
        }
        let json = p.to_json().expect("json");
        let back = Preprocessing::from_json(&json, "ck").expect("reads");
        assert_eq!(back, p);
        let bad = json.replace("\"width\":4", "\"width\":5");
        assert!(Preprocessing::from_json(&bad, "ck")
            .expect_err("width")
            .contains("encodes 4 features"));
        let unsorted = json.replace("[\"x\",\"y\"]", "[\"y\",\"x\"]");
        assert!(Preprocessing::from_json(&unsorted, "ck")
            .expect_err("order")
            .contains("out of order"));
    }

    #[test]
    fn headers_are_matched_by_name() {
        let p = prep();
        let l = layout(&p, &["c", "Id", "a", "note"], "f.csv").expect("fits");
        assert_eq!(l.columns, vec![2, 0]);
        assert_eq!((l.label, l.id), (None, Some(1)));
        let e = layout(&p, &["a", "c", "b"], "f.csv").err().expect("extra");
        assert!(e.contains("column `b` was not in the training data"), "{e}");
        let e = layout(&p, &["a", "y"], "f.csv").err().expect("missing");
        assert!(e.contains("no column `c`"), "{e}");
        let e = layout(&p, &["a", "c", "a"], "f.csv").err().expect("twice");
        assert!(e.contains("appears twice"), "{e}");
    }

    #[test]
    fn unseen_counts_read_as_a_sentence() {
        let mut u = Unseen::default();
        for c in ["MSZoning", "MSZoning", "Utilities"] {
            u.add(c);
        }
        assert_eq!(u.describe(), "2 values of `MSZoning`, 1 of `Utilities`");
    }
}
