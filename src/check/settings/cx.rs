//! What the settings' checks share: the train block being checked, the
//! diagnostics found so far, and the readers of numbers and calls.

use crate::diag::{Code, Diagnostic};
use crate::span::Span;
use crate::syntax::ast::{self, ExprKind, TrainDecl};

use super::super::consts;

pub(super) struct SettingsCx<'a> {
    pub(super) diags: Vec<Diagnostic>,
    pub(super) decl: &'a TrainDecl,
}

impl SettingsCx<'_> {
    pub(super) fn get(&self, key: &str) -> Option<&ast::Setting> {
        self.decl.settings.iter().find(|s| s.key.node == key)
    }

    pub(super) fn bad(&mut self, s: &ast::Setting, what: &str) {
        self.diags.push(
            Diagnostic::new(Code::BadRun, format!("`{}` must be {what}", s.key.node))
                .label(s.value.span, format!("expected {what}")),
        );
    }

    pub(super) fn count(&mut self, key: &str, default: u64, min: u64) -> u64 {
        let Some(s) = self.get(key) else {
            return default;
        };
        const MAX: f64 = 1e9;
        let s = s.clone();
        match consts::number(&s.value) {
            Some(v) if v.fract() == 0.0 && v >= min as f64 && v <= MAX => v as u64,
            Some(v) if v.fract() != 0.0 => {
                self.bad(&s, "a whole number");
                default
            }
            Some(v) if v > MAX => {
                self.bad(&s, &format!("at most {MAX:.0}"));
                default
            }
            _ => {
                self.bad(&s, &format!("an integer ≥ {min}"));
                default
            }
        }
    }

    /// Whether `v`, the value of `what` written at `span`, fits the f32
    /// the training step computes in: finite, |v| ≤ f32::MAX (3.4e38), and
    /// not a nonzero value f32 rounds to 0. Else a diagnostic.
    pub(super) fn fits_f32(&mut self, what: &str, v: f64, span: Span) -> bool {
        let problem = if !v.is_finite() || v.abs() > f64::from(f32::MAX) {
            "is beyond f32's range: |value| ≤ 3.4e38"
        } else if v != 0.0 && v as f32 == 0.0 {
            "is so small that f32 rounds it to 0"
        } else {
            return true;
        };
        self.diags.push(
            Diagnostic::new(
                Code::BadRun,
                format!("`{what}` does not fit f32: {v:e} {problem}"),
            )
            .label(span, "the training step computes in f32")
            .note(format!("write `{what}` as a number f32 holds")),
        );
        false
    }

    /// A positive number that fits f32, if set.
    pub(super) fn positive(&mut self, key: &str) -> Option<f64> {
        let s = self.get(key)?.clone();
        match consts::number(&s.value) {
            Some(v) if v > 0.0 => self.fits_f32(key, v, s.value.span).then_some(v),
            _ => {
                self.bad(&s, "a positive number");
                None
            }
        }
    }

    pub(super) fn fraction(&mut self, key: &str) -> Option<f64> {
        let s = self.get(key)?.clone();
        match consts::number(&s.value) {
            Some(v) if v > 0.0 && v < 1.0 => Some(v),
            _ => {
                self.bad(&s, "a fraction between 0 and 1");
                None
            }
        }
    }
}

pub(super) fn call_parts(e: &ast::Expr) -> Option<(&str, &[ast::Arg])> {
    match &e.node {
        ExprKind::Name(n) => Some((n.as_str(), &[])),
        ExprKind::Call { callee, args } => match &callee.node {
            ExprKind::Name(n) => Some((n.as_str(), args.as_slice())),
            _ => None,
        },
        _ => None,
    }
}
