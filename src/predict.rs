//! `dlc predict`: a saved model's predictions on new, unlabelled data — a
//! CSV file without the label column, or an IDX images file — encoded
//! with the preprocessing the checkpoint carries, run through the compiled
//! eval function (dropout off), and written as CSV: the identifier column
//! when the data declares one, then the prediction (the target on the
//! label's scale, or the class's name), then with `--proba` one
//! probability per class. A K-fold checkpoint predicts with the average
//! of its fold models' outputs, as `dlc eval` measures them.
//!
//! Rows are read, predicted and written a chunk at a time, so memory does
//! not grow with the input. The output file appears only once every row
//! has been predicted (a bad row is an error naming its line, and the old
//! file stays); on stdout the rows before a bad one have been printed.

use std::io::Read;
use std::path::Path;

use crate::check::data::DataSpec;
use crate::check::run::Run;
use crate::data::meta;
use crate::data::prep::{self, CellError, Column, Input, Preprocessing, Unseen};
use crate::data::table::{Features, Table};
use crate::train::predicted_class;

/// What to predict and how (`dlc predict`'s options).
pub struct Request<'a> {
    pub checkpoint: &'a Path,
    pub input: &'a Path,
    /// One probability column per class (classifiers only).
    pub proba: bool,
    /// The model's raw outputs too (`output`, or `output_K` per column).
    pub raw: bool,
    /// Rows per call of the compiled function (default: the run's batch).
    pub batch: Option<u64>,
    pub threads: Option<usize>,
}

/// What a prediction wrote, and what is worth a warning or a note.
pub struct Prediction {
    pub rows: usize,
    pub notes: Vec<String>,
    /// The checkpoint read (for its provenance).
    pub checkpoint: crate::checkpoint::Checkpoint,
}

/// Predicts `req.input` with the checkpoint's model(s) of `run`, trained
/// on `data`, and writes the CSV to `out` a chunk of rows at a time, so
/// memory does not grow with the input (the caller makes the file appear
/// only once it is complete: see `output`).
pub fn predict(
    run: &Run,
    data: &DataSpec,
    req: &Request,
    out: &mut dyn std::io::Write,
) -> Result<Prediction, String> {
    let ck = crate::checkpoint::load(req.checkpoint, run)?;
    let mut notes = Vec::new();
    let prep = match &ck.preprocessing {
        Some(p) => p.clone(),
        None => {
            // A checkpoint of a dlc that did not save its preprocessing:
            // fitted again on the program's data, which is the same
            // computation on the same rows.
            notes.push(format!(
                "note: checkpoint {} carries no preprocessing (an older dlc saved it); it is fitted again on data `{}`",
                req.checkpoint.display(),
                data.name
            ));
            crate::data::load::load(data, ck.seed)?.prep
        }
    };
    let width = data.features() as usize;
    if prep.width != width {
        return Err(format!(
            "checkpoint {}: its preprocessing makes {} features, but run {} reads {width}",
            req.checkpoint.display(),
            prep.width,
            run.name
        ));
    }
    if req.proba && prep.label.classes.is_none() {
        return Err(format!(
            "--proba: run {} predicts a number (`{}`), not a class",
            run.name, prep.label.name
        ));
    }
    let batch = req.batch.unwrap_or(run.settings.batch).max(1) as usize;
    // The eval function `dlc eval` runs, averaging a K-fold checkpoint's
    // models as it does (its buffers checked against the memory budget
    // before any exist).
    let mut eval = crate::train::Evaluator::compile(
        run,
        (batch, ck.seed),
        (req.threads, crate::jit::Matmul::default()),
    )?;
    let mut rows = open_rows(&prep, req.input, &mut notes)?;
    let models = ck.models();
    let mut csv = CsvOut::new(&prep, out, (req.proba, req.raw));
    let (mut x, mut ids) = (Vec::new(), Vec::new());
    loop {
        x.clear();
        ids.clear();
        let n = rows.next_chunk(batch, &mut x, &mut ids)?;
        if n == 0 {
            break;
        }
        let chunk = Table {
            x: Features::F32(std::mem::take(&mut x)),
            y: vec![0.0; n],
            width,
        };
        let outputs = eval.average_outputs(&models, &chunk)?;
        if let Features::F32(v) = chunk.x {
            x = v;
        }
        csv.rows((&outputs, n), (!ids.is_empty()).then_some(&ids))?;
    }
    let n = rows.count();
    if n == 0 {
        let why = match rows {
            Rows::Csv(_) => "it has a header and no data rows",
            Rows::Idx { .. } => "it holds no samples",
        };
        return Err(format!(
            "{}: no rows to predict ({why})",
            req.input.display()
        ));
    }
    let non_finite = csv.finish()?;
    if let Some(w) = rows.unseen() {
        notes.push(format!(
            "warning: {}: {} unseen in training, encoded as missing",
            req.input.display(),
            w
        ));
    }
    if let Some((count, first)) = non_finite {
        notes.push(format!(
            "warning: {count} of {n} predictions are not finite numbers (the first is row {}): the model's output overflowed float32 on them; they are written as inf, -inf or NaN",
            first + 1
        ));
    }
    Ok(Prediction {
        rows: n,
        notes,
        checkpoint: ck,
    })
}

/// The model input of every row of `input` (a CSV or IDX file) as
/// `prep` encodes it, row-major, and the row count: what `predict` feeds
/// the model, for tests and tools that compare another encoder with it.
pub fn encode(prep: &Preprocessing, input: &Path) -> Result<(Vec<f32>, usize), String> {
    let mut rows = open_rows(prep, input, &mut Vec::new())?;
    let (mut x, mut ids) = (Vec::new(), Vec::new());
    while rows.next_chunk(4096, &mut x, &mut ids)? > 0 {}
    Ok((x, rows.count()))
}

/// Rows of new data, encoded, a chunk at a time.
enum Rows {
    Csv(Box<CsvRows>),
    Idx {
        x: crate::data::table::Features,
        width: usize,
        n: usize,
        next: usize,
    },
}

struct CsvRows {
    rdr: csv::Reader<Box<dyn Read>>,
    layout: prep::Layout,
    columns: Vec<Column>,
    file: String,
    unseen: Unseen,
    count: usize,
    record: csv::StringRecord,
}

fn open_rows(prep: &Preprocessing, input: &Path, notes: &mut Vec<String>) -> Result<Rows, String> {
    if input.extension().is_some_and(|e| e == "npy") {
        // A model trained on NumPy arrays reads them scaled; any other
        // model reads a .npy as its input, as it is.
        let scale = match &prep.input {
            Input::Npy { scale, .. } => *scale,
            _ => 1.0,
        };
        let r = crate::data::npy::reference(input, None);
        let (h, values) = crate::data::npy::read(&r, |v| (v * scale) as f32)?;
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(format!("{r}: value {i} is not a finite number"));
        }
        let dims = h.dims;
        let width: usize = dims.get(1..).map_or(0, |d| d.iter().product());
        if dims.len() < 2 || width != prep.width {
            return Err(format!(
                "{}: an array of shape {dims:?}, but the model reads rows of {} features",
                input.display(),
                prep.width
            ));
        }
        return Ok(Rows::Idx {
            x: crate::data::table::Features::F32(values),
            width,
            n: dims[0],
            next: 0,
        });
    }
    match &prep.input {
        Input::Csv { columns, .. } => {
            let (real, reader) = meta::open_reader(input).map_err(|e| e.to_string())?;
            let file = real.display().to_string();
            let mut rdr = csv::ReaderBuilder::new()
                .has_headers(true)
                .from_reader(reader);
            let headers = rdr
                .headers()
                .map_err(|e| format!("{file}: {}", csv_error(&e)))?
                .clone();
            if headers.iter().all(str::is_empty) {
                return Err(format!("{file}: the file is empty (no header line)"));
            }
            if headers.iter().any(|h| h.chars().any(|c| c.is_control() && c != '\t')) {
                return Err(format!(
                    "{file} does not look like a CSV file: its first line has control characters (the model reads CSV files with a header line)"
                ));
            }
            let names: Vec<&str> = headers.iter().collect();
            let layout = prep::layout(prep, &names, &file)?;
            if let (Input::Csv { id: Some(id), .. }, None) = (&prep.input, layout.id) {
                notes.push(format!(
                    "warning: {file} has no id column `{id}`, so the predictions have none"
                ));
            }
            Ok(Rows::Csv(Box::new(CsvRows {
                rdr,
                layout,
                columns: columns.clone(),
                file,
                unseen: Unseen::default(),
                count: 0,
                record: csv::StringRecord::new(),
            })))
        }
        Input::Idx { shape, scale } => {
            let (dims, x) = crate::data::load::idx_features(input, Some(*scale))?;
            if dims[1..] != shape[..] {
                return Err(format!(
                    "{}: its samples are {}, but the model was trained on {}",
                    input.display(),
                    dims_text(&dims[1..]),
                    dims_text(shape)
                ));
            }
            Ok(Rows::Idx {
                x,
                width: shape.iter().product(),
                n: dims[0],
                next: 0,
            })
        }
        Input::Npy { .. } => Err(format!(
            "{}: the model was trained on NumPy arrays; give it a .npy file of samples",
            input.display()
        )),
        Input::Synthetic => Err(format!(
            "{}: the model was trained on generated data (linear or polynomial), so there is no file format to predict from",
            input.display()
        )),
    }
}

fn dims_text(d: &[usize]) -> String {
    d.iter().map(usize::to_string).collect::<Vec<_>>().join("×")
}

/// A CSV error as one line (the csv crate's messages name the line).
fn csv_error(e: &csv::Error) -> String {
    e.to_string().replace('\n', " ")
}

impl Rows {
    /// Appends up to `max` encoded rows to `x` (and their ids to `ids`);
    /// returns how many.
    fn next_chunk(
        &mut self,
        max: usize,
        x: &mut Vec<f32>,
        ids: &mut Vec<String>,
    ) -> Result<usize, String> {
        match self {
            Rows::Csv(c) => c.next_chunk(max, x, ids),
            Rows::Idx {
                x: t,
                width,
                n,
                next,
            } => {
                let take = max.min(*n - *next);
                let mut row = vec![0.0f32; *width];
                for r in *next..*next + take {
                    t.copy_into(r * *width, &mut row)
                        .ok_or_else(|| "the images end early".to_string())?;
                    x.extend_from_slice(&row);
                }
                *next += take;
                Ok(take)
            }
        }
    }

    fn count(&self) -> usize {
        match self {
            Rows::Csv(c) => c.count,
            Rows::Idx { n, .. } => *n,
        }
    }

    fn unseen(&self) -> Option<String> {
        match self {
            Rows::Csv(c) if !c.unseen.is_empty() => Some(c.unseen.describe()),
            _ => None,
        }
    }
}

impl CsvRows {
    fn next_chunk(
        &mut self,
        max: usize,
        x: &mut Vec<f32>,
        ids: &mut Vec<String>,
    ) -> Result<usize, String> {
        let mut got = 0;
        while got < max {
            let more = self
                .rdr
                .read_record(&mut self.record)
                .map_err(|e| format!("{}: {}", self.file, csv_error(&e)))?;
            if !more {
                break;
            }
            let line = self.record.position().map_or(0, |p| p.line());
            for (c, &pos) in self.columns.iter().zip(&self.layout.columns) {
                let cell = self.record.get(pos).unwrap_or("");
                match c.encode(cell, x) {
                    Ok(true) => self.unseen.add(c.name()),
                    Ok(false) => {}
                    Err(CellError::NotANumber) => {
                        return Err(format!(
                            "{}: line {line}, column `{}`: `{cell}` is not a number (a missing value is written NA or left empty)",
                            self.file,
                            c.name()
                        ))
                    }
                    Err(CellError::TooLarge) => {
                        return Err(format!(
                            "{}: line {line}, column `{}`: {cell} is beyond float32's range once encoded",
                            self.file,
                            c.name()
                        ))
                    }
                }
            }
            if let Some(i) = self.layout.id {
                ids.push(self.record.get(i).unwrap_or("").to_string());
            }
            got += 1;
            self.count += 1;
        }
        Ok(got)
    }
}

/// The predictions as CSV: `[id,] label [, p_CLASS ...]`, written as
/// they come; the header before the first rows, once the output's width
/// is known.
struct CsvOut<'a> {
    prep: &'a Preprocessing,
    w: csv::Writer<&'a mut dyn std::io::Write>,
    proba: bool,
    raw: bool,
    header: bool,
    written: usize,
    /// Rows with a non-finite output: how many, and the first's index.
    non_finite: Option<(usize, usize)>,
}

fn write_error(e: csv::Error) -> String {
    format!("cannot write the predictions: {e}")
}

impl<'a> CsvOut<'a> {
    fn new(
        prep: &'a Preprocessing,
        out: &'a mut dyn std::io::Write,
        (proba, raw): (bool, bool),
    ) -> Self {
        CsvOut {
            prep,
            w: csv::Writer::from_writer(out),
            proba,
            raw,
            header: false,
            written: 0,
            non_finite: None,
        }
    }

    /// The header line: the id column when the input had ids to copy (a
    /// `.npy` of model input, or a CSV without the column, has none).
    fn header(&mut self, width: usize, ids: bool) -> Result<(), String> {
        let prep = self.prep;
        if let Some(classes) = &prep.label.classes {
            let k = if width == 1 { 2 } else { width };
            if classes.len() != k {
                return Err(format!(
                    "the checkpoint's preprocessing names {} classes, but the model has {k} class scores",
                    classes.len()
                ));
            }
        }
        let mut header: Vec<String> = match (&prep.input, ids) {
            (Input::Csv { id: Some(id), .. }, true) => vec![id.clone()],
            _ => Vec::new(),
        };
        match (&prep.label.classes, width) {
            // A regression model with several outputs: one column each.
            (None, 2..) => header.extend((0..width).map(|k| format!("{}_{k}", prep.label.name))),
            _ => header.push(prep.label.name.clone()),
        }
        if self.proba {
            // One probability per logit (two for one logit), whether or
            // not the classes are named.
            let k = if width == 1 { 2 } else { width };
            header.extend((0..k).map(|c| format!("p_{}", prep.class_name(c))));
        }
        if self.raw {
            match width {
                1 => header.push("output".to_string()),
                _ => header.extend((0..width).map(|k| format!("output_{k}"))),
            }
        }
        self.w.write_record(&header).map_err(write_error)
    }

    /// Writes `n` rows of `outputs` (and their ids).
    fn rows(
        &mut self,
        (outputs, n): (&[f64], usize),
        ids: Option<&Vec<String>>,
    ) -> Result<(), String> {
        let width = outputs.len() / n.max(1);
        if width == 0 {
            return Err("the model's output has no values to write".to_string());
        }
        if !self.header {
            self.header(width, ids.is_some())?;
            self.header = true;
        }
        let classes = self.prep.label.classes.is_some();
        let mut rec: Vec<String> = Vec::new();
        for (r, row) in outputs.chunks_exact(width).enumerate() {
            if row.iter().any(|v| !v.is_finite()) {
                let first = self.non_finite.map_or(self.written + r, |(_, f)| f);
                let count = self.non_finite.map_or(0, |(c, _)| c);
                self.non_finite = Some((count + 1, first));
            }
            rec.clear();
            if let Some(ids) = ids {
                rec.push(ids.get(r).cloned().unwrap_or_default());
            }
            if classes {
                rec.push(self.prep.class_name(predicted_class(row)));
                if self.proba {
                    rec.extend(probabilities(row).into_iter().map(probability));
                }
            } else {
                rec.extend(row.iter().map(|v| number(*v)));
            }
            if self.raw {
                rec.extend(row.iter().map(|v| number(*v)));
            }
            self.w.write_record(&rec).map_err(write_error)?;
        }
        self.written += n;
        Ok(())
    }

    /// Flushes the rows; returns the non-finite rows' count and first.
    fn finish(mut self) -> Result<Option<(usize, usize)>, String> {
        self.w
            .flush()
            .map_err(|e| format!("cannot write the predictions: {e}"))?;
        Ok(self.non_finite)
    }
}

/// `v` with the fewest digits that read back, as a float64, to exactly
/// `v` (a model's f32 output, or an ensemble's f64 average); in
/// scientific notation where Python's `repr` uses it (below 1e-4 or from
/// 1e16 on), so a tiny value is not a line of zeros.
fn number(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && a.is_finite() && !(1e-4..1e16).contains(&a) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// A probability to float32 precision, in the fewest digits that read
/// back to that float32 (scientific below 1e-4).
fn probability(p: f64) -> String {
    let p = p as f32;
    if p != 0.0 && p.abs() < 1e-4 {
        format!("{p:e}")
    } else {
        format!("{p}")
    }
}

/// The class probabilities of a row of logits: their softmax, or for one
/// logit z, (1 − σ(z), σ(z)).
fn probabilities(row: &[f64]) -> Vec<f64> {
    match row {
        [z] => {
            let p = 1.0 / (1.0 + (-z).exp());
            vec![1.0 - p, p]
        }
        _ => {
            let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = row.iter().map(|v| (v - m).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(|v| v / s).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{number, probability};

    #[test]
    fn numbers_are_short_and_read_back() {
        for (v, text) in [
            (1e-30, "1e-30"),
            (2.5e-7, "2.5e-7"),
            (0.001, "0.001"),
            (181234.5, "181234.5"),
            (1e17, "1e17"),
            (0.0, "0"),
            (-3.0e-5, "-3e-5"),
        ] {
            assert_eq!(number(v), text);
            assert_eq!(text.parse::<f64>().ok(), Some(v));
        }
        // A probability to float32's precision, never a line of zeros.
        assert_eq!(probability(1e-30), "1e-30");
        assert_eq!(probability(0.25), "0.25");
        assert!(probability(f64::from(f32::MIN_POSITIVE) / 4.0).len() < 20);
    }
}
