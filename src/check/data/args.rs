//! What the data sources share: reading their arguments, resolving their
//! paths, the IDX-style image options and the "no rows" error.

use std::path::{Path, PathBuf};

use crate::diag::{Code, Diagnostic};
use crate::span::Span;
use crate::syntax::ast::Arg;

use super::super::consts::{self, Const};
use super::super::lower::nearest;
use super::spec::{Missing, Rows};

pub(super) struct Opts<'a> {
    pub(super) name: &'a str,
    pub(super) args: &'a [Arg],
    pub(super) diags: Vec<Diagnostic>,
}

impl<'a> Opts<'a> {
    /// Checks keyword names; returns the positional arguments.
    pub(super) fn new(
        name: &'a str,
        allowed: &'static [&'static str],
        args: &'a [Arg],
        positional: usize,
    ) -> Opts<'a> {
        let mut o = Opts {
            name,
            args,
            diags: Vec::new(),
        };
        let mut pos = 0;
        let mut seen: Vec<&str> = Vec::new();
        for a in args {
            match &a.name {
                None => {
                    pos += 1;
                    if pos > positional {
                        o.diags.push(
                            Diagnostic::new(
                                Code::Arity,
                                format!("`{name}` takes {positional} positional argument(s)"),
                            )
                            .label(a.value.span, "name this option, like `scale = 1/255`"),
                        );
                    }
                }
                Some(k) => {
                    if !allowed.contains(&k.node.as_str()) {
                        let mut d = Diagnostic::new(
                            Code::Arity,
                            format!("`{name}` has no option `{}`", k.node),
                        )
                        .label(k.span, "unknown option");
                        d = match nearest(&k.node, allowed.iter().copied()) {
                            Some(s) => d.note(format!("did you mean `{s}`?")),
                            None => d.note(format!("its options are: {}", allowed.join(", "))),
                        };
                        o.diags.push(d);
                    }
                    if seen.contains(&k.node.as_str()) {
                        o.diags.push(
                            Diagnostic::new(
                                Code::DuplicateDefinition,
                                format!("option `{}` given twice", k.node),
                            )
                            .label(k.span, "given again here"),
                        );
                    }
                    seen.push(k.node.as_str());
                }
            }
        }
        o
    }

    pub(super) fn positional(&self, i: usize) -> Option<&'a Arg> {
        self.args.iter().filter(|a| a.name.is_none()).nth(i)
    }

    pub(super) fn get(&self, key: &str) -> Option<&'a Arg> {
        self.args
            .iter()
            .find(|a| a.name.as_ref().is_some_and(|n| n.node == key))
    }

    pub(super) fn bad(&mut self, a: &Arg, what: &str) {
        let key = a
            .name
            .as_ref()
            .map(|n| n.node.clone())
            .unwrap_or_else(|| "argument".into());
        self.diags.push(
            Diagnostic::new(
                Code::BadArgument,
                format!("`{key}` of `{}` must be {what}", self.name),
            )
            .label(a.value.span, format!("expected {what}")),
        );
    }

    pub(super) fn number(
        &mut self,
        key: &str,
        default: f64,
        ok: impl Fn(f64) -> bool,
        what: &str,
    ) -> f64 {
        match self.get(key) {
            None => default,
            Some(a) => match consts::number(&a.value) {
                Some(v) if ok(v) => v,
                _ => {
                    self.bad(a, what);
                    default
                }
            },
        }
    }

    /// A `true` or `false` option (default false).
    pub(super) fn flag(&mut self, key: &str) -> bool {
        match self.get(key) {
            None => false,
            Some(a) => match consts::eval(&a.value) {
                Some(Const::Bool(b)) => b,
                _ => {
                    self.bad(a, "true or false");
                    false
                }
            },
        }
    }

    /// `missing = "mean"` (the default) or `"drop"`.
    pub(super) fn missing(&mut self) -> Missing {
        match self.get("missing") {
            None => Missing::Mean,
            Some(a) => match consts::eval(&a.value) {
                Some(Const::Str(s)) | Some(Const::Name(s)) if s == "mean" => Missing::Mean,
                Some(Const::Str(s)) | Some(Const::Name(s)) if s == "drop" => Missing::Drop,
                _ => {
                    self.bad(a, "\"mean\" or \"drop\"");
                    Missing::Mean
                }
            },
        }
    }

    pub(super) fn count(&mut self, key: &str, default: u64, min: u64) -> u64 {
        match self.get(key) {
            None => default,
            Some(a) => match consts::integer(&a.value) {
                Some(v) if v >= min as i64 && v <= 100_000_000 => v as u64,
                _ => {
                    self.bad(a, &format!("an integer ≥ {min}"));
                    default
                }
            },
        }
    }

    pub(super) fn numbers(&mut self, key: &str) -> Option<Vec<f64>> {
        let a = self.get(key)?;
        let vals = match consts::eval(&a.value) {
            Some(Const::List(items)) => items
                .into_iter()
                .map(|c| match c {
                    Const::Num(v, _) if v.is_finite() => Some(v),
                    _ => None,
                })
                .collect::<Option<Vec<f64>>>(),
            Some(Const::Num(v, _)) if v.is_finite() => Some(vec![v]),
            _ => None,
        };
        match vals {
            Some(v) if !v.is_empty() => Some(v),
            _ => {
                self.bad(a, "a list of numbers");
                None
            }
        }
    }

    pub(super) fn strings(&mut self, key: &str, what: &str) -> Option<Vec<String>> {
        let a = self.get(key)?;
        let vals = match consts::eval(&a.value) {
            Some(Const::List(items)) => items
                .into_iter()
                .map(|c| match c {
                    Const::Str(s) => Some(s),
                    _ => None,
                })
                .collect::<Option<Vec<String>>>(),
            _ => None,
        };
        if vals.is_none() {
            self.bad(a, what);
        }
        vals
    }

    pub(super) fn string(&mut self, key: &str) -> Option<String> {
        let a = self.get(key)?;
        match consts::eval(&a.value) {
            Some(Const::Str(s)) => Some(s),
            _ => {
                self.bad(a, "a string");
                None
            }
        }
    }
}

/// `base/rel` with `.` and `dir/..` removed lexically, so messages show
/// `programs/data/x.csv` rather than `tests/ui/../../programs/data/x.csv`.
pub(super) fn join_clean(base: &Path, rel: &str) -> PathBuf {
    use std::path::Component;
    let joined = base.join(rel);
    let mut out: Vec<Component> = Vec::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out.iter().collect()
}

pub(super) fn path_arg(o: &mut Opts, base: &Path, override_path: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = override_path {
        return Some(p.to_path_buf());
    }
    let a = o.positional(0)?;
    match consts::eval(&a.value) {
        Some(Const::Str(s)) => Some(join_clean(base, &s)),
        _ => {
            o.bad(a, "a path string");
            None
        }
    }
}

/// For a missing file named by a relative path in the program: the folder
/// it was looked for in (the program's own, whatever the working folder).
pub(super) fn resolved_note(
    o: &Opts,
    base: &Path,
    ov: Option<&Path>,
    missing: bool,
) -> Option<String> {
    if ov.is_some() || !missing {
        return None;
    }
    let a = o.positional(0)?;
    let Some(Const::Str(s)) = consts::eval(&a.value) else {
        return None;
    };
    if Path::new(&s).is_absolute() {
        return None;
    }
    // The folder as the command line named it (so the message is the same
    // wherever the project lives).
    let folder = if base.as_os_str().is_empty() {
        "the current folder".to_string()
    } else {
        base.display().to_string()
    };
    Some(format!(
        "the relative path \"{s}\" is resolved against the program's folder ({folder}), not the working folder"
    ))
}

pub(super) fn missing_path(o: &mut Opts, span: Span) {
    o.diags.push(
        Diagnostic::new(
            Code::Arity,
            format!("`{}` needs a path as its first argument", o.name),
        )
        .label(span, "no path given"),
    );
}

/// The options of `idx(...)` other than its folder.
pub(super) struct IdxArgs {
    pub(super) scale: Option<f64>,
    /// Given, or the names' count.
    pub(super) classes: Option<u64>,
    pub(super) names: Vec<String>,
    /// The file name patterns, `{split}` standing for train or t10k.
    pub(super) images: String,
    pub(super) labels: String,
}

pub(super) fn idx_args(o: &mut Opts) -> IdxArgs {
    let scale = o.get("scale").map(|_| {
        o.number(
            "scale",
            1.0,
            |v| v.is_finite() && v != 0.0,
            "a nonzero number",
        )
    });
    let mut classes = o.get("classes").map(|_| o.count("classes", 2, 2));
    let names = o
        .strings("names", "a list of class names")
        .unwrap_or_default();
    if let Some(a) = o.get("names") {
        match classes {
            Some(k) if !names.is_empty() && k != names.len() as u64 => o.diags.push(
                Diagnostic::new(
                    Code::BadArgument,
                    format!("{} class names for {k} classes", names.len()),
                )
                .label(a.value.span, format!("expected {k} names")),
            ),
            None if !names.is_empty() => classes = Some(names.len() as u64),
            _ => {}
        }
    }
    IdxArgs {
        scale,
        classes,
        names,
        images: o
            .string("images")
            .unwrap_or_else(|| "{split}-images-idx3-ubyte".into()),
        labels: o
            .string("labels")
            .unwrap_or_else(|| "{split}-labels-idx1-ubyte".into()),
    }
}

/// "data `d` leaves no rows to train on: ...", at the declaration.
pub(super) fn no_rows(name: &str, rows: &Rows, test: f64, here: Span) -> Diagnostic {
    Diagnostic::new(
        Code::BadData,
        format!(
            "data `{name}` leaves no rows to train on: {}",
            rows.describe(Some(test))
        ),
    )
    .label(here, "declared here")
}
