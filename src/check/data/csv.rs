//! `csv("file.csv", label = ...)`: a table, described from its header and
//! one scan of its columns.

use std::path::{Path, PathBuf};

use crate::data::meta::{self, ColumnKind};
use crate::diag::{Code, Diagnostic};
use crate::span::Span;
use crate::syntax::ast::{Arg, DataDecl};

use super::super::consts::{self, Const};
use super::super::lower::nearest;
use super::args::{join_clean, missing_path, no_rows, path_arg, resolved_note, Opts};
use super::spec::{DataSpec, Feature, FeatureKind, LabelKind, Missing, Rows, Source};

/// The keyword arguments of `csv(...)`.
const KEYWORDS: &[&str] = &[
    "label",
    "classes",
    "drop",
    "missing",
    "standardize",
    "test",
    "id",
];

/// Describes `csv(PATH, label = ...)` from the file's header and one scan
/// of its columns (and of the test part's own file, if it has one).
pub(super) fn csv(
    name: &str,
    decl: &DataDecl,
    args: &[Arg],
    base: &Path,
    ov: Option<&Path>,
) -> (Option<DataSpec>, Vec<Diagnostic>) {
    let mut o = Opts::new("csv", KEYWORDS, args, 1);
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
        o.diags.push(header_only(name, &schema, decl.source.span));
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
    let (test_file, test_rows) = match &a.test_file {
        None => (None, 0),
        Some((file, span)) => {
            let train = (&schema, label.as_str(), label_col, features.as_slice());
            let path = join_clean(base, file);
            match test_part(&mut o, (&path, *span), train, &a, &mut rows) {
                Some(t) => t,
                None => return (None, o.diags),
            }
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

/// "data `d`: FILE has a header and no data rows", at the declaration.
fn header_only(name: &str, schema: &meta::CsvSchema, here: Span) -> Diagnostic {
    Diagnostic::new(
        Code::BadData,
        format!(
            "data `{name}`: {} has a header and no data rows",
            schema.path.display()
        ),
    )
    .label(here, "declared here")
}

/// The test part's own file (`test = "test.csv"`), checked against the
/// training file's columns: its path and row count, with the rows it
/// keeps counted into `rows`. `None` when it does not fit (diagnosed).
fn test_part(
    o: &mut Opts,
    (path, span): (&Path, Span),
    train: (&meta::CsvSchema, &str, &meta::Column, &[Feature]),
    a: &CsvArgs,
    rows: &mut Rows,
) -> Option<(Option<PathBuf>, u64)> {
    let (_, label, _, features) = train;
    let test = csv_test_file(o, (path, span), train, a.int_classes)?;
    let kept = csv_rows(&test, label, features, &a.missing, 0.0);
    rows.test = kept.train;
    rows.test_file = Some(test.path.display().to_string());
    Some((Some(test.path), test.rows as u64))
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
