//! Data declarations: `data NAME = idx(...) | csv(...) | linear(...) |
//! polynomial(...)`, checked and described from metadata only.
//!
//! Invariant: nothing here loads a data set into tensors. IDX sources are
//! described by their headers; a CSV by its header and one scan of its
//! columns (to learn which are categorical and their categories).

mod args;
mod cache;
mod csv;
mod idx;
mod npy;
mod spec;
mod synthetic;

use std::path::Path;

use crate::diag::{Code, Diagnostic};
use crate::syntax::ast::{DataDecl, ExprKind};

use super::lower::nearest;
pub use cache::DataCache;
use csv::csv;
use idx::idx;
use npy::npy_source;
pub use spec::{DataSpec, Feature, FeatureKind, LabelKind, Missing, Rows, Source, Synthetic};
use synthetic::synthetic;

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
