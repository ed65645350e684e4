//! `dlc data`: a program's data summarized, drawn or split into indices.

use std::fmt::Write as _;
use std::path::Path;

use crate::check::{self};

use super::program::{
    as_inputs, is_data_file, load_checked, per_name, program_inputs, selected_runs, unknown_run,
    Loaded, ProgramArgs,
};

/// `dlc data FILE`: each data source's parts, shapes, class balance and
/// feature statistics (per column for CSV: kind, missing count, mean, std).
pub fn cmd_data(
    args: &ProgramArgs,
    show: Option<usize>,
    picture: Option<&Path>,
    stdout: &mut dyn std::io::Write,
    stderr: &mut dyn std::io::Write,
) -> i32 {
    let l = match data_program(args, stdout, stderr) {
        Ok(l) => l,
        Err(code) => return code,
    };
    // The picture may not be one of the files it is drawn from.
    if let Some(p) = picture {
        let inputs = program_inputs(args, &l, None);
        for d in &l.checked.data {
            let p = match l.checked.data.len() {
                1 => p.to_path_buf(),
                _ => per_name(p, &d.name),
            };
            if let Err(e) = crate::output::prepare(&p, &as_inputs(&inputs)) {
                let _ = writeln!(stderr, "error: --out: {e}");
                return 1;
            }
        }
    }
    for (di, d) in l.checked.data.iter().enumerate() {
        let mut out = String::new();
        let _ = writeln!(out, "data {}: {}", d.name, d.summary);
        let parts = match crate::data::load::load(d, split_seed(&l, di)) {
            Ok(p) => p,
            Err(e) => {
                let _ = writeln!(stderr, "error: {e}");
                return 1;
            }
        };
        for w in &parts.warnings {
            let _ = writeln!(stderr, "warning: {w}");
        }
        for r in &parts.dropped {
            let _ = writeln!(stderr, "note: data `{}`: {r}", d.name);
            let _ = writeln!(out, "  rows: {r}");
        }
        for (name, t) in [("train", &parts.train), ("test", &parts.test)] {
            if !t.is_empty() {
                write_part_summary(&mut out, d, name, t);
            }
        }
        if let crate::check::data::Source::Csv { path, features, .. } = &d.source {
            write_csv_columns(&mut out, path, features);
        }
        // Samples: a picture with --out (18 by default, as d2l shows), or
        // rows of numbers with --show alone.
        if let Some(n) = show.or(picture.map(|_| 18)) {
            let shown = match picture {
                Some(p) => {
                    let p = if l.checked.data.len() > 1 {
                        per_name(p, &d.name)
                    } else {
                        p.to_path_buf()
                    };
                    draw_samples(d, &parts.train, n, &p)
                }
                None => Ok(sample_rows(d, &parts.train, n)),
            };
            match shown {
                Ok(s) => out.push_str(&s),
                Err(e) => {
                    let _ = stdout.write_all(out.as_bytes());
                    let _ = writeln!(stderr, "error: {e}");
                    return 1;
                }
            }
        }
        if stdout.write_all(out.as_bytes()).is_err() {
            return 0;
        }
    }
    0
}

/// The program `dlc data` summarizes: a data file or folder is summarized
/// directly, as if a program read it. `Err` is the exit code, once the
/// error (or a CSV file's whole summary) has been written.
fn data_program(
    args: &ProgramArgs,
    stdout: &mut dyn std::io::Write,
    stderr: &mut dyn std::io::Write,
) -> Result<Loaded, i32> {
    if args.file.is_dir() {
        idx_folder_program(args, stderr).ok_or(1)
    } else if is_data_file(&args.file) && args.file.extension().is_none_or(|e| e != "dl") {
        Err(csv_file_summary(&args.file, stdout, stderr))
    } else {
        load_checked(args, stderr).ok_or(1)
    }
}

/// `dlc data FILE --split-indices`: every selected run's split as CSV
/// lines `run,part,row,fold` (see `train::split_indices`).
pub fn cmd_split_indices(
    args: &ProgramArgs,
    stdout: &mut dyn std::io::Write,
    stderr: &mut dyn std::io::Write,
) -> i32 {
    let Some(l) = load_checked(args, stderr) else {
        return 1;
    };
    if let Some(e) = unknown_run(&l, args) {
        let _ = write!(stderr, "{e}");
        return 1;
    }
    let mut w = csv::Writer::from_writer(stdout);
    let bad = |e: csv::Error| format!("cannot write the split: {e}");
    let written = (|| {
        w.write_record(["run", "part", "row", "fold"])
            .map_err(bad)?;
        for r in selected_runs(&l, args) {
            let rows = crate::train::split_indices(r, &l.checked.data[r.data])?;
            for (part, row, fold) in rows {
                let fold = fold.map(|f| f.to_string()).unwrap_or_default();
                w.write_record([r.name.as_str(), part, &row.to_string(), &fold])
                    .map_err(bad)?;
            }
        }
        w.flush()
            .map_err(|e| format!("cannot write the split: {e}"))
    })();
    match written {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(stderr, "error: {e}");
            1
        }
    }
}

/// The seed of the split a run of data source `di` uses, or 0.
fn split_seed(l: &Loaded, di: usize) -> u64 {
    l.checked
        .runs
        .iter()
        .find(|r| r.data == di)
        .map(|r| r.settings.split_seed)
        .unwrap_or(0)
}

/// One part's line (samples, feature mean and std), then its class balance
/// or its target's mean and std.
fn write_part_summary(
    out: &mut String,
    d: &crate::check::data::DataSpec,
    name: &str,
    t: &crate::data::table::Table,
) {
    use crate::check::data::LabelKind;
    let shape: Vec<String> = d.sample.iter().map(|x| x.to_string()).collect();
    let n = t.len() as f64;
    let mean = t.x.iter().map(f64::from).sum::<f64>() / (t.x.len().max(1) as f64);
    let var =
        t.x.iter()
            .map(|v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / (t.x.len().max(1) as f64);
    let _ = writeln!(
        out,
        "  {name}: {} samples of [{}] features (mean {mean:.4}, std {:.4})",
        t.len(),
        shape.join(", "),
        var.sqrt()
    );
    match &d.label {
        LabelKind::Class { .. } => {
            let classes = t.y.iter().fold(0usize, |m, y| m.max(*y as usize + 1));
            let mut counts = vec![0usize; classes];
            for y in &t.y {
                counts[*y as usize] += 1;
            }
            let parts: Vec<String> = counts
                .iter()
                .enumerate()
                .map(|(c, k)| format!("{} {k} ({:.1}%)", d.class_name(c), 100.0 * *k as f64 / n))
                .collect();
            let _ = writeln!(out, "    classes: {}", parts.join(", "));
        }
        LabelKind::Target => {
            let m = t.y.iter().sum::<f64>() / n;
            let sd = (t.y.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n).sqrt();
            let _ = writeln!(out, "    target: mean {m:.4}, std {sd:.4}");
        }
    }
}

/// A CSV source's columns over the whole file: kind, missing cells, and
/// the role the program gives each (nothing when the file cannot be read).
fn write_csv_columns(out: &mut String, path: &Path, features: &[crate::check::data::Feature]) {
    use crate::check::data::FeatureKind;
    let Ok(schema) = crate::data::meta::scan_csv(path) else {
        return;
    };
    let _ = writeln!(out, "  columns (whole file):");
    let by_column: std::collections::HashMap<&str, &crate::check::data::Feature> =
        features.iter().map(|f| (f.column.as_str(), f)).collect();
    for c in &schema.columns {
        let kind = match &c.kind {
            crate::data::meta::ColumnKind::Numeric { min, max, mean } => {
                format!("numeric, min {min}, max {max}, mean {mean:.4}")
            }
            crate::data::meta::ColumnKind::Categorical { categories } => {
                format!("categorical, {} categories", categories.len())
            }
        };
        let role = match by_column.get(c.name.as_str()) {
            Some(f) => match &f.kind {
                FeatureKind::Numeric => "feature".to_string(),
                FeatureKind::Categorical { .. } => {
                    format!("feature, one-hot ×{}", f.width())
                }
            },
            None => "label or dropped".to_string(),
        };
        let _ = writeln!(
            out,
            "    {:<22} {kind}; {} missing; {role}",
            c.name, c.missing
        );
    }
}

/// An IDX folder as the program `data NAME = idx(".")` in that folder.
fn idx_folder_program(args: &ProgramArgs, stderr: &mut dyn std::io::Write) -> Option<Loaded> {
    let dir = &args.file;
    let name: String = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let name = if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        format!("d{name}")
    } else {
        name
    };
    let src = format!("data {name} = idx(\".\")\n");
    let file = dir.join(format!("{name}.dl"));
    let (program, checked, diagnostics) = check::check_file(&file, &src, None);
    if !diagnostics.is_empty() {
        // Only the data source's own messages: without the program text
        // they read best as lines.
        for d in &diagnostics {
            let _ = writeln!(stderr, "error: {}: {}", dir.display(), d.message);
        }
        return None;
    }
    Some(Loaded {
        src,
        file_name: file.display().to_string(),
        program,
        checked,
        diagnostics,
    })
}

/// `dlc data FILE.csv`: the file's rows and, per column, its kind, range or
/// categories and missing cells, from one scan.
fn csv_file_summary(
    path: &Path,
    stdout: &mut dyn std::io::Write,
    stderr: &mut dyn std::io::Write,
) -> i32 {
    let schema = match crate::data::meta::scan_csv(path) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(stderr, "error: {e}");
            return 1;
        }
    };
    if schema.rows == 0 {
        let _ = writeln!(
            stderr,
            "error: {} has a header and no data rows (columns {})",
            schema.path.display(),
            schema.names().join(", ")
        );
        return 1;
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: CSV, {} rows, {} columns",
        schema.path.display(),
        schema.rows,
        schema.columns.len()
    );
    for c in &schema.columns {
        let kind = match &c.kind {
            crate::data::meta::ColumnKind::Numeric { min, max, mean } => {
                format!("numeric, min {min}, max {max}, mean {mean:.4}")
            }
            crate::data::meta::ColumnKind::Categorical { categories } => {
                let shown: Vec<&str> = categories.iter().take(5).map(String::as_str).collect();
                format!(
                    "categorical, {} categories ({}{})",
                    categories.len(),
                    shown.join(", "),
                    if categories.len() > 5 { ", ..." } else { "" }
                )
            }
        };
        let _ = writeln!(out, "  {:<22} {kind}; {} missing", c.name, c.missing);
    }
    let last = schema.columns.last().map_or("COLUMN", |c| c.name.as_str());
    let _ = writeln!(
        out,
        "a program reads it with: data d = csv(\"{}\", label = \"{last}\")",
        path.display()
    );
    let _ = stdout.write_all(out.as_bytes());
    0
}

/// A sample's label as text: its class name, or the target's value.
fn label_text(d: &crate::check::data::DataSpec, y: f64) -> String {
    match d.label {
        crate::check::data::LabelKind::Class { .. } => d.class_name(y as usize),
        crate::check::data::LabelKind::Target => format!("{y:.4}"),
    }
}

/// The first `n` training samples drawn as a grid of labelled images.
fn draw_samples(
    d: &crate::check::data::DataSpec,
    t: &crate::data::table::Table,
    n: usize,
    path: &Path,
) -> Result<String, String> {
    let (channels, h, w) = match d.sample.as_slice() {
        [h, w] => (1, *h as usize, *w as usize),
        [c @ (1 | 3), h, w] => (*c as usize, *h as usize, *w as usize),
        _ => {
            return Err(format!(
                "data {} is not images (each sample is [{}]); --out draws image data, --show N alone prints rows",
                d.name,
                d.sample.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ")
            ))
        }
    };
    let n = n.min(t.len());
    let images: Vec<crate::plot::Image> = (0..n)
        .map(|r| crate::plot::Image {
            channels,
            h,
            w,
            values: t
                .x
                .values(r * t.width, (r + 1) * t.width)
                .iter()
                .map(|v| f64::from(*v))
                .collect(),
            caption: label_text(d, t.y[r]),
        })
        .collect();
    let title = format!("data {}: the first {n} training samples", d.name);
    crate::plot::image_grid(path, &title, &images)?;
    Ok(format!("  drew {n} samples to {}\n", path.display()))
}

/// The first `n` training samples as rows: label, then features (the first
/// eight, for wide samples).
fn sample_rows(
    d: &crate::check::data::DataSpec,
    t: &crate::data::table::Table,
    n: usize,
) -> String {
    let n = n.min(t.len());
    let mut s = format!("  the first {n} training samples (label: features):\n");
    for r in 0..n {
        let row = t.x.values(r * t.width, (r + 1) * t.width);
        let shown: Vec<String> = row.iter().take(8).map(|v| format!("{v:.4}")).collect();
        let more = if row.len() > 8 {
            format!(" … ({} more)", row.len() - 8)
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "    {:>5}  {}: {}{more}",
            r,
            label_text(d, t.y[r]),
            shown.join(" ")
        );
    }
    s
}
