//! Metadata of data files, read without loading them into tensors.
//!
//! [`read_idx_header`] reads the magic and the dimensions of an IDX file
//! (the MNIST / Fashion-MNIST format) and nothing of its payload;
//! [`scan_csv`] streams a CSV once to learn its column names, row count and
//! per-column kind. Both accept `name` or, when that does not exist,
//! `name.gz`; gzip is recognised by its magic bytes, never by the file name.
//! Invariant: no input makes these functions panic, and every error is a
//! [`MetaError`] whose one-line message starts with the file's path.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

/// Element type of an IDX file (the third byte of the magic).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdxElem {
    U8,
    I8,
    I16,
    I32,
    F32,
    F64,
}

impl IdxElem {
    /// The element type for an IDX type code, if the code is one of the six
    /// the format defines.
    fn from_code(code: u8) -> Option<IdxElem> {
        match code {
            0x08 => Some(IdxElem::U8),
            0x09 => Some(IdxElem::I8),
            0x0B => Some(IdxElem::I16),
            0x0C => Some(IdxElem::I32),
            0x0D => Some(IdxElem::F32),
            0x0E => Some(IdxElem::F64),
            _ => None,
        }
    }

    /// The name used in printed types: `"u8"`, `"i8"`, `"i16"`, `"i32"`,
    /// `"f32"`, `"f64"`.
    pub fn name(self) -> &'static str {
        match self {
            IdxElem::U8 => "u8",
            IdxElem::I8 => "i8",
            IdxElem::I16 => "i16",
            IdxElem::I32 => "i32",
            IdxElem::F32 => "f32",
            IdxElem::F64 => "f64",
        }
    }

    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            IdxElem::U8 | IdxElem::I8 => 1,
            IdxElem::I16 => 2,
            IdxElem::I32 | IdxElem::F32 => 4,
            IdxElem::F64 => 8,
        }
    }
}

/// The header of an IDX file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxHeader {
    /// The file actually opened (`name` or `name.gz`).
    pub path: PathBuf,
    pub elem: IdxElem,
    /// Dimensions, outermost first; 1 to 4 of them, none zero.
    pub dims: Vec<usize>,
    /// Whether the file is gzip-compressed.
    pub gzipped: bool,
}

/// A failure to read a data file's metadata; `message` is one line and
/// names the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaError {
    pub message: String,
}

impl MetaError {
    /// An error about `path`: the message reads `path: what`.
    fn at(path: &Path, what: impl fmt::Display) -> MetaError {
        MetaError {
            message: format!("{}: {}", path.display(), what),
        }
    }
}

impl fmt::Display for MetaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for MetaError {}

/// An opened data file: the path really opened, a reader that yields the
/// decompressed bytes, and what is needed to check the length later.
struct Opened {
    path: PathBuf,
    reader: Box<dyn Read>,
    gzipped: bool,
    /// Length on disk, for uncompressed files.
    len: Option<u64>,
}

/// `path` with `.gz` appended to its last component (`a.csv` -> `a.csv.gz`).
fn with_gz(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(".gz");
    PathBuf::from(name)
}

/// Opens `path`, or `path.gz` if `path` does not exist, and sniffs the first
/// two bytes for the gzip magic `1f 8b`.
fn open_data(path: &Path) -> Result<Opened, MetaError> {
    let (path, file) = match File::open(path) {
        Ok(file) => (path.to_path_buf(), file),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let gz = with_gz(path);
            match File::open(&gz) {
                Ok(file) => (gz, file),
                Err(e2) if e2.kind() == io::ErrorKind::NotFound => {
                    return Err(MetaError::at(
                        path,
                        format!("no such file (nor {})", gz.display()),
                    ));
                }
                Err(e2) => return Err(MetaError::at(&gz, format!("cannot open: {e2}"))),
            }
        }
        Err(e) => return Err(MetaError::at(path, format!("cannot open: {e}"))),
    };
    let len = file
        .metadata()
        .map_err(|e| MetaError::at(&path, format!("cannot read metadata: {e}")))?
        .len();
    let mut file = BufReader::new(file);
    // Read the sniffed prefix by hand (a single `read` may return short) and
    // put it back in front of the rest of the stream.
    let mut magic = [0u8; 2];
    let mut got = 0;
    while got < magic.len() {
        match file.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(MetaError::at(&path, format!("cannot read: {e}"))),
        }
    }
    let stream = Cursor::new(magic[..got].to_vec()).chain(file);
    if got == 2 && magic == [0x1f, 0x8b] {
        Ok(Opened {
            path,
            reader: Box::new(MultiGzDecoder::new(stream)),
            gzipped: true,
            len: None,
        })
    } else {
        Ok(Opened {
            path,
            reader: Box::new(stream),
            gzipped: false,
            len: Some(len),
        })
    }
}

/// Fills `buf` from the header of an IDX file; `what` names the part being
/// read, for the "truncated" message.
fn read_header_part(opened: &mut Opened, buf: &mut [u8], what: &str) -> Result<(), MetaError> {
    opened.reader.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            MetaError::at(
                &opened.path,
                format!("truncated IDX header: file ends inside the {what}"),
            )
        } else {
            MetaError::at(&opened.path, format!("cannot read IDX header: {e}"))
        }
    })
}

/// Reads the header of the IDX file `path` (or `path.gz`): the magic
/// `00 00 <type> <ndims>` and `ndims` big-endian `u32` dimensions.
///
/// Validates the type code, 1..=4 dimensions, no zero dimension, and that
/// the payload size fits `usize`. For an uncompressed file it also checks
/// that the file is exactly header plus payload long; for a gzipped one that
/// check is left to the loader, which has to decompress anyway.
pub fn read_idx_header(path: &Path) -> Result<IdxHeader, MetaError> {
    let mut opened = open_data(path)?;
    let mut magic = [0u8; 4];
    read_header_part(&mut opened, &mut magic, "magic number")?;
    let [zero0, zero1, code, ndims] = magic;
    if zero0 != 0 || zero1 != 0 {
        return Err(MetaError::at(
            &opened.path,
            format!("not an IDX file: magic starts {zero0:02x} {zero1:02x}, expected 00 00"),
        ));
    }
    let elem = IdxElem::from_code(code).ok_or_else(|| {
        MetaError::at(
            &opened.path,
            format!("unknown IDX element type code 0x{code:02x}"),
        )
    })?;
    if !(1..=4).contains(&ndims) {
        return Err(MetaError::at(
            &opened.path,
            format!("IDX file has {ndims} dimensions; expected 1 to 4"),
        ));
    }
    let mut raw = vec![0u8; 4 * usize::from(ndims)];
    read_header_part(&mut opened, &mut raw, "dimensions")?;
    let mut dims = Vec::with_capacity(usize::from(ndims));
    for (axis, chunk) in raw.chunks_exact(4).enumerate() {
        let bytes = [chunk[0], chunk[1], chunk[2], chunk[3]];
        let dim = u32::from_be_bytes(bytes);
        if dim == 0 {
            return Err(MetaError::at(
                &opened.path,
                format!("IDX dimension {axis} is zero"),
            ));
        }
        let dim = usize::try_from(dim).map_err(|_| {
            MetaError::at(
                &opened.path,
                format!("IDX dimension {axis} ({dim}) does not fit usize"),
            )
        })?;
        dims.push(dim);
    }
    let payload = dims
        .iter()
        .try_fold(elem.size(), |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            MetaError::at(
                &opened.path,
                format!("IDX payload {:?} of {} is too large", dims, elem.name()),
            )
        })?;
    if let Some(len) = opened.len {
        let header = 4 + 4 * u64::from(ndims);
        let expected = u64::try_from(payload)
            .ok()
            .and_then(|p| p.checked_add(header));
        if expected != Some(len) {
            let need = expected.map_or_else(|| "more".to_string(), |n| n.to_string());
            return Err(MetaError::at(
                &opened.path,
                format!(
                    "file is {len} bytes but an IDX header for {:?} of {} needs {need}",
                    dims,
                    elem.name()
                ),
            ));
        }
    }
    Ok(IdxHeader {
        path: opened.path,
        elem,
        dims,
        gzipped: opened.gzipped,
    })
}

/// What a CSV column holds.
#[derive(Clone, Debug, PartialEq)]
pub enum ColumnKind {
    /// Every present value parses as a finite f64.
    Numeric { min: f64, max: f64, mean: f64 },
    /// Some present value is not a number; categories sorted ascending,
    /// de-duplicated, "missing" cells not included. A column with no present
    /// value at all is also categorical, with no categories.
    Categorical { categories: Vec<String> },
}

/// One column of a CSV file.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    pub kind: ColumnKind,
    /// Number of cells that are exactly `NA` or empty.
    pub missing: usize,
    /// In a numeric column, the first value that is not an integer, with
    /// its line (class indices must be integers; `1.0` is one).
    pub non_integer: Option<(u64, String)>,
}

/// The schema of a CSV file with a header row.
#[derive(Clone, Debug, PartialEq)]
pub struct CsvSchema {
    /// The file actually opened (`name` or `name.gz`).
    pub path: PathBuf,
    /// Number of data rows (the header row not counted).
    pub rows: usize,
    pub columns: Vec<Column>,
    /// Every missing cell as (data row, column), in file order: enough to
    /// count the rows a choice of label and `missing = "drop"` keeps.
    pub missing_cells: Vec<(u32, u32)>,
    /// Each column's position by name (files may have 100,000 columns).
    pub by_name: HashMap<String, usize>,
}

impl CsvSchema {
    /// The column called `name`, if any.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.position(name).map(|i| &self.columns[i])
    }

    /// The position of the column called `name`, if any.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The column names, in file order.
    pub fn names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }
}

/// Running statistics of one column during the scan.
struct ColumnAcc {
    missing: usize,
    /// Still true while every present value has been a finite number.
    numeric: bool,
    count: usize,
    min: f64,
    max: f64,
    sum: f64,
    /// Running mean, used only if `sum` overflows.
    running_mean: f64,
    /// Every distinct present value, needed if the column turns out to be
    /// categorical after many numbers.
    values: BTreeSet<String>,
    /// The first number that is not finite (`nan`, `inf`, `1e999`), with
    /// its line.
    non_finite: Option<(u64, String)>,
    non_integer: Option<(u64, String)>,
}

impl ColumnAcc {
    fn new() -> ColumnAcc {
        ColumnAcc {
            missing: 0,
            numeric: true,
            count: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sum: 0.0,
            running_mean: 0.0,
            values: BTreeSet::new(),
            non_finite: None,
            non_integer: None,
        }
    }

    /// Takes one cell; returns whether it is missing.
    fn push(&mut self, field: &str, line: u64) -> bool {
        if is_missing(field) {
            self.missing += 1;
            return true;
        }
        if self.numeric {
            match field.parse::<f64>() {
                Ok(x) if !x.is_finite() => {
                    if self.non_finite.is_none() {
                        self.non_finite = Some((line, field.to_string()));
                    }
                }
                Ok(x) if x.is_finite() => {
                    if x.fract() != 0.0 && self.non_integer.is_none() {
                        self.non_integer = Some((line, field.to_string()));
                    }
                    self.count += 1;
                    self.min = self.min.min(x);
                    self.max = self.max.max(x);
                    self.sum += x;
                    // Both terms are finite and at most half the range
                    // once count >= 2, so this update cannot overflow.
                    let n = self.count as f64;
                    self.running_mean += x / n - self.running_mean / n;
                }
                Ok(_) | Err(_) => self.numeric = false,
            }
        }
        if !self.values.contains(field) {
            self.values.insert(field.to_string());
        }
        false
    }

    /// The column's description; an error for a column of numbers with a
    /// value that is not finite (written `nan`, `inf`, or too large for an
    /// f64): it is neither a number a model can use nor a category.
    fn finish(self, name: String, path: &Path) -> Result<Column, MetaError> {
        if let (true, Some((line, v))) = (self.numeric, &self.non_finite) {
            return Err(MetaError::at(
                path,
                format!(
                    "line {line}, column `{name}`: `{v}` is not a finite number (a missing value is written NA or left empty)"
                ),
            ));
        }
        let kind = if self.numeric && self.count > 0 {
            let mean = if self.sum.is_finite() {
                self.sum / self.count as f64
            } else {
                self.running_mean
            };
            ColumnKind::Numeric {
                min: self.min,
                max: self.max,
                mean,
            }
        } else {
            ColumnKind::Categorical {
                categories: self.values.into_iter().collect(),
            }
        };
        let non_integer = if matches!(kind, ColumnKind::Numeric { .. }) {
            self.non_integer
        } else {
            None
        };
        Ok(Column {
            name,
            kind,
            missing: self.missing,
            non_integer,
        })
    }
}

fn names_index(columns: &[Column]) -> HashMap<String, usize> {
    columns
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.clone(), i))
        .collect()
}

/// A missing cell: exactly `NA`, or empty.
pub fn is_missing(field: &str) -> bool {
    field.is_empty() || field == "NA"
}

/// Where a CSV error happened, for the message.
fn csv_place(pos: Option<&csv::Position>) -> String {
    pos.map_or_else(|| "header".to_string(), |p| format!("line {}", p.line()))
}

/// Turns a `csv` error into a one-line message about `path`.
fn csv_error(path: &Path, err: &csv::Error) -> MetaError {
    if let csv::ErrorKind::UnequalLengths {
        pos,
        expected_len,
        len,
    } = err.kind()
    {
        return MetaError::at(
            path,
            format!(
                "{}: expected {expected_len} fields (as in the header), found {len}",
                csv_place(pos.as_ref())
            ),
        );
    }
    if let csv::ErrorKind::Utf8 { pos, err } = err.kind() {
        return MetaError::at(
            path,
            format!(
                "{}: invalid UTF-8 in field {}",
                csv_place(pos.as_ref()),
                err.field() + 1
            ),
        );
    }
    if let csv::ErrorKind::Io(e) = err.kind() {
        return MetaError::at(path, format!("cannot read: {e}"));
    }
    MetaError::at(path, err)
}

/// Scans the CSV file `path` (or `path.gz`) once: header names, row count,
/// and per column the number of missing cells (exactly `NA` or empty) and
/// whether the present values are all finite numbers.
///
/// Errors on a missing or empty file, duplicate column names, a row whose
/// field count differs from the header's, and invalid UTF-8.
pub fn scan_csv(path: &Path) -> Result<CsvSchema, MetaError> {
    let opened = open_data(path)?;
    let path = opened.path;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(opened.reader);
    let header = reader.headers().map_err(|e| csv_error(&path, &e))?.clone();
    if header.is_empty() {
        return Err(MetaError::at(&path, "empty file: no header row"));
    }
    let mut names = Vec::with_capacity(header.len());
    let mut seen = HashSet::new();
    for (i, name) in header.iter().enumerate() {
        // The csv crate keeps a UTF-8 byte-order mark; it is not part of
        // the first column's name.
        let name = if i == 0 {
            name.strip_prefix('\u{feff}').unwrap_or(name)
        } else {
            name
        };
        if !seen.insert(name) {
            return Err(MetaError::at(
                &path,
                format!("duplicate column name {name:?} in the header"),
            ));
        }
        names.push(name.to_string());
    }
    let mut accs: Vec<ColumnAcc> = names.iter().map(|_| ColumnAcc::new()).collect();
    let mut rows = 0usize;
    let mut missing_cells = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {
                let line = record.position().map_or(0, |p| p.line());
                for (c, (acc, field)) in accs.iter_mut().zip(record.iter()).enumerate() {
                    if acc.push(field, line) {
                        missing_cells.push((rows as u32, c as u32));
                    }
                }
                rows += 1;
            }
            Ok(false) => break,
            Err(e) => return Err(csv_error(&path, &e)),
        }
    }
    let columns: Vec<Column> = names
        .into_iter()
        .zip(accs)
        .map(|(name, acc)| acc.finish(name, &path))
        .collect::<Result<_, _>>()?;
    let by_name = names_index(&columns);
    Ok(CsvSchema {
        path,
        rows,
        columns,
        missing_cells,
        by_name,
    })
}

#[cfg(test)]
mod tests;

/// The header and the payload (the elements' bytes, big-endian) of the IDX
/// file `path` (or `path.gz`). The payload is read to exactly the size the
/// header gives, into memory reserved (and checked against what is
/// available) up front; a file that goes on past it, such as a gzip stream
/// that expands far beyond its header, is an error after one byte more.
pub fn read_idx_payload(path: &Path) -> Result<(IdxHeader, Vec<u8>), MetaError> {
    let header = read_idx_header(path)?;
    let mut opened = open_data(&header.path)?;
    let mut skip = vec![0u8; 4 + 4 * header.dims.len()];
    read_header_part(&mut opened, &mut skip, "dimensions")?;
    let at = |what: String| MetaError::at(&header.path, what);
    let payload = header
        .dims
        .iter()
        .try_fold(header.elem.size(), |a, &d| a.checked_mul(d))
        .ok_or_else(|| at("the header's dims are too large".into()))?;
    crate::memory::check("its contents", payload as u128).map_err(&at)?;
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(payload)
        .map_err(|_| at(format!("cannot allocate its {payload} bytes")))?;
    (&mut opened.reader)
        .take(payload as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| at(format!("cannot read: {e}")))?;
    if bytes.len() < payload {
        return Err(at(format!(
            "the header promises {payload} bytes of {} but the file holds {}",
            header.elem.name(),
            bytes.len()
        )));
    }
    let mut more = [0u8; 1];
    match opened.reader.read(&mut more) {
        Ok(0) => {}
        Ok(_) => {
            return Err(at(format!(
                "the file goes on past the {payload} bytes of {} its header {:?} promises",
                header.elem.name(),
                header.dims
            )))
        }
        Err(e) => return Err(at(format!("cannot read: {e}"))),
    }
    Ok((header, bytes))
}

/// A streaming reader of the (decompressed) contents of `path`, or of
/// `path.gz` when `path` does not exist, and the path actually opened.
pub fn open_reader(path: &Path) -> Result<(PathBuf, Box<dyn Read>), MetaError> {
    let opened = open_data(path)?;
    Ok((opened.path, opened.reader))
}
