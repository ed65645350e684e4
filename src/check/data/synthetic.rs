//! `linear(...)` and `polynomial(...)`: generated data, described from
//! its arguments.

use crate::diag::{Code, Diagnostic};
use crate::syntax::ast::{Arg, DataDecl};

use super::args::Opts;
use super::spec::{DataSpec, LabelKind, Rows, Source, Synthetic};

pub(super) fn synthetic(
    name: &str,
    kind: &str,
    decl: &DataDecl,
    args: &[Arg],
) -> (Option<DataSpec>, Vec<Diagnostic>) {
    let allowed: &'static [&'static str] = if kind == "linear" {
        &["w", "b", "features", "n_train", "n_test", "noise"]
    } else {
        &["w", "features", "n_train", "n_test", "noise"]
    };
    let mut o = Opts::new(kind, allowed, args, 0);
    let w = o.numbers("w");
    if o.get("w").is_none() {
        o.diags.push(
            Diagnostic::new(
                Code::Arity,
                format!("`{kind}` needs the true weights `w = [...]`"),
            )
            .label(decl.source.span, "no `w`"),
        );
    }
    let train = o.count("n_train", 1000, 1);
    let test = o.count("n_test", 0, 0);
    let noise = o.number("noise", 0.01, |v| v >= 0.0, "a noise level ≥ 0");
    let (synth, sample) = if kind == "linear" {
        let b = o.number("b", 0.0, |_| true, "a number");
        // `w` is a list of weights, or one weight repeated `features` times.
        let features = o.get("features").map(|_| o.count("features", 1, 1));
        let w = match (w, features) {
            (Some(w), Some(f)) if w.len() == 1 => Some(vec![w[0]; f as usize]),
            (Some(w), Some(f)) if w.len() as u64 != f => {
                if let Some(a) = o.get("features") {
                    o.diags.push(
                        Diagnostic::new(
                            Code::BadArgument,
                            format!("{} weights but {f} features", w.len()),
                        )
                        .label(
                            a.value.span,
                            "give one weight per feature, or a single weight to repeat",
                        ),
                    );
                }
                None
            }
            (w, _) => w,
        };
        let n = w.as_ref().map(|w| w.len() as u64).unwrap_or(1);
        (w.map(|w| Synthetic::Linear { w, b }), vec![n])
    } else {
        let features = o.count("features", 20, 1);
        if let (Some(w), Some(a)) = (&w, o.get("features")) {
            if (w.len() as u64) > features {
                o.diags.push(
                    Diagnostic::new(
                        Code::BadArgument,
                        format!("{} true weights but only {features} features", w.len()),
                    )
                    .label(a.value.span, "fewer features than weights"),
                );
            }
        }
        (
            w.map(|w| Synthetic::Polynomial { w, features }),
            vec![features],
        )
    };
    let Some(synth) = synth else {
        return (None, o.diags);
    };
    if !o.diags.is_empty() {
        return (None, o.diags);
    }
    let summary = format!(
        "synthetic {kind}: {train} train + {test} test samples of {} features, noise {noise}",
        sample[0]
    );
    let spec = DataSpec {
        name: name.to_string(),
        span: decl.span,
        source: Source::Synthetic {
            kind: synth,
            train,
            test,
            noise,
        },
        sample,
        label: LabelKind::Target,
        summary,
        rows: Rows {
            read: train + test,
            train,
            test,
            dropped: String::new(),
            test_file: None,
            unknown: false,
        },
        warnings: Vec::new(),
    };
    (Some(spec), o.diags)
}
