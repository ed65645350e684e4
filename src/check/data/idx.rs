//! `idx("dir")`: IDX image and label files, described from their headers.

use std::path::Path;

use crate::data::meta::{self, IdxElem};
use crate::diag::{Code, Diagnostic};
use crate::syntax::ast::{Arg, DataDecl};

use super::args::{idx_args, missing_path, path_arg, resolved_note, IdxArgs, Opts};
use super::spec::{DataSpec, LabelKind, Rows, Source};

pub(super) fn idx(
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
