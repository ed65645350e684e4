//! `npy(...)`: NumPy `.npy` arrays and `.npz` archives, described from
//! their array headers.

use std::path::Path;

use crate::data::npy::{self, NpyRef};
use crate::diag::{Code, Diagnostic};
use crate::span::Span;
use crate::syntax::ast::{Arg, DataDecl};

use super::super::consts::{self, Const};
use super::args::no_rows;
use super::args::{idx_args, IdxArgs};
use super::args::{join_clean, missing_path, path_arg, Opts};
use super::spec::{DataSpec, LabelKind, Rows, Source};

/// `npy("x.npy", labels = "y.npy", test = 0.2 | ["xt.npy", "yt.npy"])`, or
/// with an `.npz`, arrays by name: `npy("d.npz", features = "x", labels =
/// "y", test = ["x_test", "y_test"])`. Described from the arrays' headers.
pub(super) fn npy_source(
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
