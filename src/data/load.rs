//! Loading a data set into tables for training: IDX files (any element
//! type; validated against their headers), CSV files (missing values,
//! one-hot categories, standardization from the training part only, a
//! seeded test split) and d2l's synthetic sets.

use std::path::Path;

use super::meta::{self, IdxElem};
use super::npy;
use super::prep::{self, Column, Input, Label, Preprocessing, Unseen};
use super::synthetic;
use super::table::{Decode, Features, Table};
use crate::check::data::{DataSpec, FeatureKind, LabelKind, Missing, Source};
use crate::rng;

/// A data set's training and test parts, the preprocessing that encoded
/// them (fitted on the training part), and what is worth a warning.
pub struct Parts {
    pub train: Table,
    pub test: Table,
    pub prep: Preprocessing,
    pub warnings: Vec<String>,
    /// Per file that lost rows to a missing label (or `missing = "drop"`):
    /// "penguins.csv: 344 rows read, 342 kept (2 without a label `sex`)".
    pub dropped: Vec<String>,
    /// Where each row of [train, test] comes from: its index among its
    /// file's samples or data rows, from 0 (a CSV's header not counted,
    /// its dropped rows counted), for `dlc data --split-indices`.
    pub rows: [Vec<usize>; 2],
}

/// Reads an IDX file: its dims and its elements as f64.
pub fn read_idx(path: &Path) -> Result<(Vec<usize>, Vec<f64>), String> {
    read_idx_as(path, |v| v)
}

/// Reads an IDX file: its dims, element type and payload (the elements'
/// bytes, big-endian), read no further than the header says.
fn read_idx_raw(path: &Path) -> Result<(Vec<usize>, IdxElem, Vec<u8>), String> {
    let (h, bytes) = meta::read_idx_payload(path).map_err(|e| e.to_string())?;
    Ok((h.dims, h.elem, bytes))
}

/// Reads an IDX file: its dims and its elements, each (as an exact f64)
/// passed through `conv`.
pub fn read_idx_as<T>(
    path: &Path,
    conv: impl Fn(f64) -> T,
) -> Result<(Vec<usize>, Vec<T>), String> {
    let (dims, elem, p) = read_idx_raw(path)?;
    let values = decode_idx(elem, &p, conv);
    Ok((dims, values))
}

/// An IDX payload's elements, each (as an exact f64) passed through
/// `conv`.
fn decode_idx<T>(elem: IdxElem, p: &[u8], conv: impl Fn(f64) -> T) -> Vec<T> {
    let n = p.len() / elem.size();
    let be = |i: usize, k: usize| -> Vec<u8> { p[i * k..(i + 1) * k].to_vec() };
    let values: Vec<T> = match elem {
        IdxElem::U8 => p.iter().map(|b| conv(f64::from(*b))).collect(),
        IdxElem::I8 => p.iter().map(|b| conv(f64::from(*b as i8))).collect(),
        IdxElem::I16 => (0..n)
            .map(|i| {
                let b = be(i, 2);
                conv(f64::from(i16::from_be_bytes([b[0], b[1]])))
            })
            .collect(),
        IdxElem::I32 => (0..n)
            .map(|i| {
                let b = be(i, 4);
                conv(f64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]])))
            })
            .collect(),
        IdxElem::F32 => (0..n)
            .map(|i| {
                let b = be(i, 4);
                conv(f64::from(f32::from_be_bytes([b[0], b[1], b[2], b[3]])))
            })
            .collect(),
        IdxElem::F64 => (0..n)
            .map(|i| {
                let b = be(i, 8);
                conv(f64::from_be_bytes([
                    b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
                ]))
            })
            .collect(),
    };
    values
}

/// An IDX images file as features: its dims and its values, each the f32
/// of v · `scale` (u8 images stay bytes, each standing for that f32).
pub fn idx_features(images: &Path, scale: Option<f64>) -> Result<(Vec<usize>, Features), String> {
    // Scaled in f64, then stored as f32: the same f32s the model would
    // have been given from an f64 table.
    let s = scale.unwrap_or(1.0);
    let (idims, elem, raw) = read_idx_raw(images)?;
    let x = match elem {
        IdxElem::U8 => Features::Bytes {
            codes: raw,
            decode: Decode::scaled(s),
        },
        _ => {
            let x = decode_idx(elem, &raw, |v| (v * s) as f32);
            let width: usize = idims[1..].iter().product();
            if let Some(i) = x.iter().position(|v| !v.is_finite()) {
                return Err(format!(
                    "{}: sample {}, value {}: {} is not a finite number{}",
                    images.display(),
                    i / width.max(1),
                    i % width.max(1),
                    decode_idx(elem, &raw[i * elem.size()..(i + 1) * elem.size()], |v| v)[0],
                    if s == 1.0 { "" } else { " once scaled" }
                ));
            }
            Features::F32(x)
        }
    };
    Ok((idims, x))
}

fn idx_table(
    images: &Path,
    labels: &Path,
    scale: Option<f64>,
    kind: &LabelKind,
) -> Result<Table, String> {
    let (idims, x) = idx_features(images, scale)?;
    let (ldims, y) = read_idx(labels)?;
    if idims[0] != ldims[0] {
        return Err(format!(
            "{} has {} images but {} has {} labels",
            images.display(),
            idims[0],
            labels.display(),
            ldims[0]
        ));
    }
    check_labels(&y, kind, &labels.display())?;
    let width = idims[1..].iter().product();
    Ok(Table { x, y, width })
}

/// Labels as `kind` reads them, one rule for every source: a target is
/// any finite number; a class label is class k when it is the number k (a
/// float with no fraction is one: `1.0` is class 1) and k is below the
/// class count when one is declared. Anything else is refused with the
/// label's index.
fn check_labels(y: &[f64], kind: &LabelKind, file: &dyn std::fmt::Display) -> Result<(), String> {
    let classes = match kind {
        LabelKind::Target => {
            return match y.iter().position(|v| !v.is_finite()) {
                Some(i) => Err(format!(
                    "{file}: label {i} is {}, not a finite number",
                    y[i]
                )),
                None => Ok(()),
            };
        }
        LabelKind::Class { classes } => *classes,
    };
    let fits = |v: f64| v >= 0.0 && v.fract() == 0.0 && classes.is_none_or(|c| v < c as f64);
    match y.iter().position(|v| !fits(*v)) {
        None => Ok(()),
        Some(i) => Err(format!(
            "{file}: label {i} is {}, not a class {}",
            y[i],
            match classes {
                Some(c) => format!("in 0..{c}"),
                None => "index (a whole number ≥ 0)".to_string(),
            }
        )),
    }
}

/// With no class count declared, the largest label says how many classes
/// there are: a count the rows cannot back (more classes than rows, or
/// more than memory holds a count for) is refused before anything is
/// sized by it.
fn inferred_classes(spec: &DataSpec, parts: &[&Table]) -> Result<(), String> {
    if spec.label != (LabelKind::Class { classes: None }) {
        return Ok(());
    }
    let rows: usize = parts.iter().map(|t| t.len()).sum();
    let mut top: Option<(f64, usize, &str)> = None;
    for (t, part) in parts.iter().zip(["training", "test"]) {
        if let Some(r) = (0..t.y.len()).max_by(|a, b| t.y[*a].total_cmp(&t.y[*b])) {
            if top.is_none_or(|(v, _, _)| t.y[r] > v) {
                top = Some((t.y[r], r, part));
            }
        }
    }
    let Some((max, r, part)) = top else {
        return Ok(());
    };
    let count = max + 1.0;
    let what = format!("data `{}`", spec.name);
    let refuse = |why: String| {
        Err(format!(
            "{what}: label {max} (row {r} of the {part} part) would make {count} classes, {why}; declare classes = N"
        ))
    };
    if count > rows as f64 {
        return refuse(format!("more than its {rows} rows"));
    }
    // A count per class (the class balance, the samplers' groups).
    crate::memory::check(&what, count as u128 * 32).or_else(refuse)
}

/// A seeded permutation of 0..n.
pub fn permutation(n: usize, seed: u64, stream: u32) -> Vec<usize> {
    let key = rng::key(seed, 0, stream);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (rng::bits(key, i as u64) % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// Rows `rows` of `t`, in that order.
pub fn select(t: &Table, rows: &[usize]) -> Table {
    Table {
        x: t.x.select(rows, t.width),
        y: rows.iter().map(|&r| t.y[r]).collect(),
        width: t.width,
    }
}

/// A labelled CSV row: its label (class index or target) and its feature
/// columns' cells, in the order of the source's features.
type RawRow = (f64, Vec<String>);

fn csv_parts(spec: &DataSpec, seed: u64) -> Result<Parts, String> {
    let Source::Csv {
        path,
        test,
        test_file,
        ..
    } = &spec.source
    else {
        return Err("not a CSV source".into());
    };
    let (mut raw, dropped) = read_labelled(spec, path)?;
    let mut notes = Vec::new();
    notes.extend(dropped.describe(spec, path));
    let (train_raw, test_raw, rows) = match test_file {
        Some(tp) => {
            let (test_raw, test_dropped) = read_labelled(spec, tp)?;
            notes.extend(test_dropped.describe(spec, tp));
            let rows = [dropped.kept.clone(), test_dropped.kept.clone()];
            (raw, test_raw, rows)
        }
        None => {
            // The test part: a seeded shuffle, the last `test` fraction
            // held out. Each part keeps the file's order (contiguous folds
            // cut it).
            let mut order = permutation(raw.len(), seed, 0x7e57);
            let n_test = (raw.len() as f64 * test).round() as usize;
            let (train_rows, test_rows) = order.split_at_mut(raw.len() - n_test);
            train_rows.sort_unstable();
            test_rows.sort_unstable();
            let mut held = vec![false; raw.len()];
            for &r in test_rows.iter() {
                held[r] = true;
            }
            let mut test_part = Vec::with_capacity(n_test);
            let mut k = 0;
            raw.retain_mut(|row| {
                k += 1;
                if held[k - 1] {
                    test_part.push(std::mem::take(row));
                }
                !held[k - 1]
            });
            let kept = &dropped.kept;
            let rows = [
                train_rows.iter().map(|r| kept[*r]).collect(),
                test_rows.iter().map(|r| kept[*r]).collect(),
            ];
            (raw, test_part, rows)
        }
    };
    let prep = csv_preprocessing(spec, &train_raw)?;
    let name = format!("data `{}`", spec.name);
    let (train, _) = encode_rows(&train_raw, &prep, &format!("{name}, training part"))?;
    let (test, unseen) = encode_rows(&test_raw, &prep, &format!("{name}, test part"))?;
    let mut warnings = Vec::new();
    if let (Some(tp), false) = (test_file, unseen.is_empty()) {
        warnings.push(format!(
            "data `{}`: test file {}: {} unseen in the training file, encoded as missing",
            spec.name,
            tp.display(),
            unseen.describe()
        ));
    }
    Ok(Parts {
        train,
        test,
        prep,
        warnings,
        dropped: notes,
        rows,
    })
}

/// The rows of a CSV file: how many were read, and how many were dropped
/// for want of a label or (with `missing = "drop"`) of a number.
#[derive(Clone, Debug, Default)]
struct Dropped {
    read: usize,
    unlabelled: usize,
    incomplete: usize,
    /// The kept rows' indices among the file's data rows, from 0.
    kept: Vec<usize>,
}

impl Dropped {
    /// "penguins.csv: 344 rows read, 342 kept (2 without a label `sex`)",
    /// when rows were dropped.
    fn describe(&self, spec: &DataSpec, path: &Path) -> Option<String> {
        let Source::Csv { label, .. } = &spec.source else {
            return None;
        };
        let mut why = Vec::new();
        if self.unlabelled > 0 {
            why.push(format!("{} without a label `{label}`", self.unlabelled));
        }
        if self.incomplete > 0 {
            why.push(format!(
                "{} missing a number, dropped by missing = \"drop\"",
                self.incomplete
            ));
        }
        (!why.is_empty()).then(|| {
            format!(
                "{}: {} rows read, {} kept ({})",
                path.display(),
                self.read,
                self.read - self.unlabelled - self.incomplete,
                why.join(", ")
            )
        })
    }
}

/// The labelled rows of a CSV file (the training file or the test file),
/// its columns found by name: rows without a label are dropped, and with
/// `missing = "drop"` rows missing a number (and both are counted).
fn read_labelled(spec: &DataSpec, path: &Path) -> Result<(Vec<RawRow>, Dropped), String> {
    let Source::Csv {
        label,
        classes,
        features,
        missing,
        index_labels,
        ..
    } = &spec.source
    else {
        return Err("not a CSV source".into());
    };
    // Streamed: a gzipped file is decompressed as it is parsed.
    let (real, reader) = meta::open_reader(path).map_err(|e| e.to_string())?;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(reader);
    let headers = rdr
        .headers()
        .map_err(|e| format!("{}: {e}", real.display()))?
        .clone();
    let positions: std::collections::HashMap<&str, usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| (h.trim_start_matches('\u{feff}'), i))
        .collect();
    let col = |name: &str| positions.get(name).copied();
    let li = col(label).ok_or_else(|| format!("{}: no column {label}", real.display()))?;
    let fcols: Vec<usize> = features
        .iter()
        .map(|f| {
            col(&f.column).ok_or_else(|| format!("{}: no column {}", real.display(), f.column))
        })
        .collect::<Result<_, _>>()?;
    let is_missing = meta::is_missing;
    let class_index: std::collections::HashMap<&str, usize> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let mut raw: Vec<RawRow> = Vec::new();
    let mut dropped = Dropped::default();
    for rec in rdr.records() {
        dropped.read += 1;
        let rec = rec.map_err(|e| format!("{}: {e}", real.display()))?;
        let line = rec.position().map_or(0, |p| p.line());
        let at = |col: &str| format!("{}: line {line}, column `{col}`", real.display());
        let lv = rec.get(li).unwrap_or("");
        if is_missing(lv) {
            dropped.unlabelled += 1;
            continue;
        }
        let y = class_or_target(lv, &at(label), (*index_labels, classes, &class_index))?;
        let mut cells: Vec<String> = Vec::with_capacity(fcols.len());
        for (f, &c) in features.iter().zip(&fcols) {
            let cell = rec.get(c).unwrap_or("");
            if f.kind == FeatureKind::Numeric && !is_missing(cell) {
                match cell.parse::<f64>() {
                    Ok(v) if v.is_finite() => {}
                    _ => {
                        return Err(format!(
                            "{}: `{cell}` is not a finite number (a missing value is written NA or left empty)",
                            at(&f.column)
                        ))
                    }
                }
            }
            cells.push(cell.to_string());
        }
        if *missing == Missing::Drop
            && features
                .iter()
                .zip(&cells)
                .any(|(f, c)| f.kind == FeatureKind::Numeric && is_missing(c))
        {
            dropped.incomplete += 1;
            continue;
        }
        raw.push((y, cells));
        dropped.kept.push(dropped.read - 1);
    }
    Ok((raw, dropped))
}

/// A label cell as a class index or a regression target: with
/// `index_labels` (`classes = N`) a whole number below N (`1.0` is class
/// 1), with no classes a finite number, else one of the class names.
fn class_or_target(
    lv: &str,
    at: &str,
    (index_labels, classes, class_index): (
        bool,
        &[String],
        &std::collections::HashMap<&str, usize>,
    ),
) -> Result<f64, String> {
    if index_labels {
        // `classes = N`: whole numbers 0..N (`1.0` is class 1).
        match lv.parse::<f64>() {
            Ok(v) if v.fract() == 0.0 && v >= 0.0 && v < classes.len() as f64 => Ok(v),
            _ => Err(format!(
                "{at}: `{lv}` is not a class index below {}",
                classes.len()
            )),
        }
    } else if classes.is_empty() {
        match lv.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err(format!("{at}: label `{lv}` is not a finite number")),
        }
    } else {
        class_index
            .get(lv)
            .map(|c| *c as f64)
            .ok_or_else(|| format!("{at}: unknown class `{lv}`"))
    }
}

/// What the model's output means for `spec`: its label's name and classes.
pub fn label_of(spec: &DataSpec) -> Label {
    let classes = match &spec.label {
        LabelKind::Target => None,
        LabelKind::Class { classes } => Some(
            (0..classes.unwrap_or(0) as usize)
                .map(|c| spec.class_name(c))
                .collect(),
        ),
    };
    let name = match &spec.source {
        Source::Csv { label, .. } => label.clone(),
        Source::Idx { .. } | Source::Npy { .. } | Source::Synthetic { .. } => "label".to_string(),
    };
    Label { name, classes }
}

/// The CSV preprocessing fitted on the training rows: each numeric
/// column's mean (its fill for missing values) and, with standardization,
/// its standard deviation (population, as d2l's pandas `std` is not: that
/// one's n − 1 makes no difference worth a second convention); each
/// categorical column's categories.
fn csv_preprocessing(spec: &DataSpec, train: &[RawRow]) -> Result<Preprocessing, String> {
    let Source::Csv {
        features,
        standardize,
        id,
        dropped,
        ..
    } = &spec.source
    else {
        return Err("not a CSV source".into());
    };
    let mut columns = Vec::with_capacity(features.len());
    for (k, f) in features.iter().enumerate() {
        columns.push(match &f.kind {
            FeatureKind::Numeric => {
                let vals: Vec<f64> = train
                    .iter()
                    .filter_map(|r| r.1[k].parse::<f64>().ok())
                    .collect();
                let n = vals.len().max(1) as f64;
                // Summed at a scale where no partial sum can overflow
                // (values up to f64::MAX), then scaled back.
                let big = vals.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                let k = if big > 1e150 { big } else { 1.0 };
                let mean = vals.iter().map(|v| v / k).sum::<f64>() / n * k;
                let var = vals.iter().map(|v| ((v - mean) / k).powi(2)).sum::<f64>() / n;
                let std = var.sqrt() * k;
                if !mean.is_finite() || !std.is_finite() {
                    return Err(format!(
                        "data `{}`: column `{}` is too large to standardize (its mean or deviation overflows)",
                        spec.name, f.column
                    ));
                }
                let (shift, scale) = match (*standardize, std > 0.0) {
                    (true, true) => (mean, std),
                    (true, false) => (mean, 1.0),
                    (false, _) => (0.0, 1.0),
                };
                Column::Numeric {
                    name: f.column.clone(),
                    fill: mean,
                    shift,
                    scale,
                }
            }
            FeatureKind::Categorical {
                categories,
                missing,
            } => Column::Categorical {
                name: f.column.clone(),
                categories: categories.clone(),
                missing: *missing,
            },
        });
    }
    Ok(Preprocessing {
        format: prep::FORMAT.to_string(),
        width: spec.features() as usize,
        input: Input::Csv {
            id: id.clone(),
            ignored: dropped.clone(),
            columns,
        },
        label: label_of(spec),
    })
}

/// `rows` encoded by `prep` (numbers imputed and standardized, categories
/// one-hot), with the count of categories unseen in training.
fn encode_rows(
    rows: &[RawRow],
    prep: &Preprocessing,
    what: &str,
) -> Result<(Table, Unseen), String> {
    let columns: &[Column] = match &prep.input {
        Input::Csv { columns, .. } => columns,
        Input::Idx { .. } | Input::Npy { .. } | Input::Synthetic => &[],
    };
    let mut x = Vec::with_capacity(rows.len() * prep.width);
    let mut y = Vec::with_capacity(rows.len());
    let mut unseen = Unseen::default();
    for (r, (label, cells)) in rows.iter().enumerate() {
        for (c, cell) in columns.iter().zip(cells) {
            // Numbers were checked as the rows were read; what is left is
            // a value past float32's range.
            match c.encode(cell, &mut x) {
                Ok(true) => unseen.add(c.name()),
                Ok(false) => {}
                Err(_) => {
                    return Err(format!(
                        "{what}, row {}: column `{}`: {cell} is beyond float32's range{}",
                        r + 1,
                        c.name(),
                        if matches!(c, Column::Numeric { shift, scale, .. } if *shift != 0.0 || *scale != 1.0)
                        {
                            " once standardized"
                        } else {
                            " (standardize = true scales it)"
                        }
                    ))
                }
            }
        }
        y.push(*label);
    }
    let table = Table {
        x: Features::F32(x),
        y,
        width: prep.width,
    };
    Ok((table, unseen))
}

/// Loads `spec` (its files, or its synthetic generator).
pub fn load(spec: &DataSpec, seed: u64) -> Result<Parts, String> {
    crate::memory::check(&format!("data `{}`", spec.name), spec.bytes_estimate())?;
    match &spec.source {
        Source::Synthetic {
            kind,
            train,
            test,
            noise,
        } => {
            let all = synthetic::generate(kind, (train + test) as usize, *noise, seed);
            Ok(Parts {
                train: all.rows(0, *train as usize),
                test: all.rows(*train as usize, all.len()),
                rows: [
                    (0..*train as usize).collect(),
                    (*train as usize..all.len()).collect(),
                ],
                prep: Preprocessing {
                    format: prep::FORMAT.to_string(),
                    width: spec.features() as usize,
                    input: Input::Synthetic,
                    label: label_of(spec),
                },
                warnings: Vec::new(),
                dropped: Vec::new(),
            })
        }
        Source::Idx {
            images,
            labels,
            scale,
            ..
        } => {
            let train = idx_table(&images[0], &labels[0], *scale, &spec.label)?;
            let test = idx_table(&images[1], &labels[1], *scale, &spec.label)?;
            inferred_classes(spec, &[&train, &test])?;
            Ok(Parts {
                rows: [(0..train.len()).collect(), (0..test.len()).collect()],
                train,
                test,
                prep: Preprocessing {
                    format: prep::FORMAT.to_string(),
                    width: spec.features() as usize,
                    input: Input::Idx {
                        shape: spec.sample.iter().map(|d| *d as usize).collect(),
                        scale: scale.unwrap_or(1.0),
                    },
                    label: label_of(spec),
                },
                warnings: Vec::new(),
                dropped: Vec::new(),
            })
        }
        Source::Csv { .. } => csv_parts(spec, seed),
        Source::Npy { .. } => npy_parts(spec, seed),
    }
}

/// NumPy arrays as tables: the features scaled and stored as f32, the
/// labels checked (finite; class indices below the class count), then
/// the test part: its own arrays, or the held-out fraction chosen as a
/// CSV's is.
fn npy_parts(spec: &DataSpec, seed: u64) -> Result<Parts, String> {
    let Source::Npy {
        train,
        test_arrays,
        test,
        scale,
        ..
    } = &spec.source
    else {
        return Err("not a NumPy source".into());
    };
    let s = scale.unwrap_or(1.0);
    let table = |[f, l]: &[npy::NpyRef; 2]| -> Result<Table, String> {
        let (h, x) = npy::read(f, |v| (v * s) as f32)?;
        // Checked by `dlc check`; again here, since the file may have
        // changed since.
        let want = &spec.sample;
        let fits = h.dims.len() == want.len() + 1
            && h.dims[1..].iter().zip(want).all(|(a, b)| *a as u64 == *b);
        if !fits {
            return Err(format!(
                "{f}: shape {:?}, but data `{}` has samples of {want:?} (did the file change?)",
                h.dims, spec.name
            ));
        }
        let width: usize = h.dims[1..].iter().product();
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(format!(
                "{f}: sample {}, value {}: not a finite number{}",
                i / width.max(1),
                i % width.max(1),
                if s == 1.0 { "" } else { " once scaled" }
            ));
        }
        let (_, y) = npy::read(l, |v| v)?;
        if y.len() != h.dims[0] {
            return Err(format!("{l}: {} labels for {} samples", y.len(), h.dims[0]));
        }
        check_labels(&y, &spec.label, l)?;
        Ok(Table {
            x: Features::F32(x),
            y,
            width,
        })
    };
    let all = table(train)?;
    let (train_part, test_part, rows) = match test_arrays {
        Some(t) => {
            let test = table(t)?;
            let rows = [(0..all.len()).collect(), (0..test.len()).collect()];
            (all, test, rows)
        }
        None => {
            let mut order = permutation(all.len(), seed, 0x7e57);
            let n_test = (all.len() as f64 * test).round() as usize;
            let (keep, held) = order.split_at_mut(all.len() - n_test);
            keep.sort_unstable();
            held.sort_unstable();
            let rows = [keep.to_vec(), held.to_vec()];
            (select(&all, keep), select(&all, held), rows)
        }
    };
    inferred_classes(spec, &[&train_part, &test_part])?;
    Ok(Parts {
        train: train_part,
        test: test_part,
        prep: Preprocessing {
            format: prep::FORMAT.to_string(),
            width: spec.features() as usize,
            input: Input::Npy {
                shape: spec.sample.iter().map(|d| *d as usize).collect(),
                scale: s,
            },
            label: label_of(spec),
        },
        warnings: Vec::new(),
        dropped: Vec::new(),
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{check, Options};
    use std::path::PathBuf;

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    fn spec(src: &str) -> DataSpec {
        let (program, diags) = crate::syntax::parse(src);
        assert!(diags.is_empty());
        let (checked, cd) = check(
            &program,
            &Options {
                base_dir: root().join("programs"),
                data_override: None,
                data_cache: None,
                described: Default::default(),
            },
        );
        assert!(cd.is_empty(), "{cd:?}");
        checked.data.into_iter().next().expect("a data source")
    }

    #[test]
    fn fashion_mnist_loads_from_the_gzipped_files() {
        let (dims, x) =
            read_idx(&root().join("programs/data/fashion-mnist/t10k-images-idx3-ubyte"))
                .expect("loads");
        assert_eq!(dims, vec![10000, 28, 28]);
        assert!(x.iter().all(|v| (0.0..=255.0).contains(v)));
        let (ldims, y) =
            read_idx(&root().join("programs/data/fashion-mnist/t10k-labels-idx1-ubyte"))
                .expect("loads");
        assert_eq!(ldims, vec![10000]);
        // Balanced classes: 1000 per class in the test set.
        for c in 0..10 {
            assert_eq!(y.iter().filter(|v| **v == c as f64).count(), 1000);
        }
    }

    #[test]
    fn a_truncated_idx_file_is_an_error() {
        let dir = std::env::temp_dir().join(format!("dlc-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let f = dir.join("bad-idx1-ubyte");
        std::fs::write(&f, [0, 0, 8, 1, 0, 0, 0, 5, 1, 2]).expect("write");
        let e = read_idx(&f).expect_err("truncated");
        assert!(e.contains("needs 13"), "{e}");
        // Dims whose product overflows are an error, not a wrapped size.
        let mut huge = vec![0, 0, 0x0D, 4];
        for _ in 0..4 {
            huge.extend([0xFF, 0xFF, 0xFF, 0xFF]);
        }
        std::fs::write(&f, huge).expect("write");
        let e = read_idx(&f).expect_err("too large");
        assert!(e.contains("too large"), "{e}");
    }

    #[test]
    fn penguins_are_imputed_one_hot_encoded_and_standardized_from_the_training_part() {
        let s = spec("data p = csv(\"data/penguins.csv\", label = \"body_mass_g\", standardize = true, test = 0.2)");
        let parts = load(&s, 42).expect("loads");
        // 344 rows, 2 without a label; 20% held out.
        assert_eq!(parts.train.len() + parts.test.len(), 342);
        assert_eq!(parts.test.len(), 68);
        assert_eq!(parts.train.width, 13);
        // Standardized numeric columns have mean 0 on the training part.
        let Source::Csv { features, .. } = &s.source else {
            panic!("csv")
        };
        let mut col = 0;
        for f in features {
            if f.kind == FeatureKind::Numeric {
                let n = parts.train.len();
                let mean: f64 = (0..n)
                    .map(|r| f64::from(parts.train.x.get(r * 13 + col)))
                    .sum::<f64>()
                    / n as f64;
                assert!(mean.abs() < 1e-6, "{}: mean {mean}", f.column);
            }
            col += f.width() as usize;
        }
        // Every one-hot group has exactly one 1 per row (missing sex included).
        let sex = features
            .iter()
            .position(|f| f.column == "sex")
            .expect("sex");
        let start: usize = features[..sex].iter().map(|f| f.width() as usize).sum();
        for r in 0..parts.train.len() {
            let ones: f32 = (0..3).map(|k| parts.train.x.get(r * 13 + start + k)).sum();
            assert_eq!(ones, 1.0);
        }
    }

    #[test]
    fn dropping_incomplete_rows() {
        let s =
            spec("data p = csv(\"data/penguins.csv\", label = \"species\", missing = \"drop\")");
        let parts = load(&s, 1).expect("loads");
        // Two rows lack every measurement; sex is categorical (a category of its own).
        assert_eq!(parts.train.len(), 342);
        assert!(parts.train.y.iter().all(|c| (0.0..3.0).contains(c)));
    }
}
