//! The `optimizer` and `weight_decay` settings: a rule of
//! [`optim::RULES`] with its learning rate and hyper-parameters, by
//! position or by name; decoupled or penalty decay and its parameters.

use crate::diag::{Code, Diagnostic};
use crate::optim;
use crate::syntax::ast;

use super::super::consts::{self, Const};
use super::super::lower::nearest;
use super::super::params::ParamSpec;
use super::cx::{call_parts, SettingsCx};

#[derive(Clone, Debug, PartialEq)]
pub enum Optimizer {
    /// A rule of [`optim::RULES`] with its learning rate and the values of
    /// its other hyper-parameters (in [`optim::Rule::hypers`] order).
    Rule {
        rule: &'static optim::Rule,
        lr: f64,
        hypers: Vec<f64>,
    },
    /// Linear regression's normal equations, W* = (XᵀX)⁻¹XᵀY.
    ClosedForm,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecayForm {
    /// w ← (1−ηλ)w − η·g
    Decoupled,
    /// λ/2·‖w‖² added to the loss.
    Penalty,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WeightDecay {
    pub form: DecayForm,
    pub lambda: f64,
    pub params: Vec<String>,
}

/// What the `optimizer` setting may be: every rule of [`optim::RULES`]
/// with its learning rate, or `closed_form`.
fn optimizer_choices() -> String {
    let rules: Vec<String> = optim::RULES
        .iter()
        .map(|r| format!("{}(lr = ...)", r.name))
        .collect();
    format!("{} or closed_form", rules.join(", "))
}

pub(super) fn optimizer(cx: &mut SettingsCx, s: &ast::Setting) -> Option<Optimizer> {
    let Some((name, args)) = call_parts(&s.value) else {
        cx.bad(s, &optimizer_choices());
        return None;
    };
    if name == "closed_form" && args.is_empty() {
        return Some(Optimizer::ClosedForm);
    }
    let Some(rule) = optim::rule(name) else {
        cx.bad(s, &optimizer_choices());
        return None;
    };
    // The learning rate first, then the rule's hyper-parameters, by
    // position or by name.
    let names: Vec<&str> = std::iter::once("lr")
        .chain(rule.hypers.iter().map(|h| h.name))
        .collect();
    let mut lr = None;
    let mut hypers: Vec<f64> = rule.hypers.iter().map(|h| h.default).collect();
    for (i, a) in args.iter().enumerate() {
        let key = match (&a.name, names.get(i)) {
            (Some(n), _) => n.node.as_str(),
            (None, Some(n)) => n,
            (None, None) => {
                cx.diags.push(
                    Diagnostic::new(
                        Code::Arity,
                        format!(
                            "`{}` takes at most {} arguments ({})",
                            rule.name,
                            names.len(),
                            names.join(", ")
                        ),
                    )
                    .label(a.value.span, "one too many"),
                );
                return None;
            }
        };
        let hyper = rule.hypers.iter().position(|h| h.name == key);
        // A flag is `true` or `false`; every other value a number.
        let v = match (hyper.map(|h| rule.hypers[h].flag), consts::eval(&a.value)) {
            (Some(true), Some(Const::Bool(b))) => Some(f64::from(u8::from(b))),
            (Some(true), _) => None,
            _ => consts::number(&a.value),
        };
        // Every value is held as f32 in the step.
        match (key, hyper, v) {
            ("lr", _, Some(v)) if v > 0.0 => {
                if !cx.fits_f32(key, v, a.value.span) {
                    return None;
                }
                lr = Some(v);
            }
            ("lr", _, _) => {
                cx.diags.push(
                    Diagnostic::new(Code::BadRun, "the learning rate must be a positive number")
                        .label(a.value.span, "expected lr > 0"),
                );
                return None;
            }
            (_, Some(h), Some(v)) if (rule.hypers[h].valid)(v) => {
                if !cx.fits_f32(key, v, a.value.span) {
                    return None;
                }
                hypers[h] = v;
            }
            (_, Some(h), _) => {
                cx.diags.push(
                    Diagnostic::new(Code::BadRun, rule.hypers[h].message)
                        .label(a.value.span, rule.hypers[h].expected),
                );
                return None;
            }
            (other, None, _) => {
                let mut d = Diagnostic::new(
                    Code::Arity,
                    format!("`{}` has no argument `{other}`", rule.name),
                )
                .label(a.value.span, "unknown argument");
                if let Some(n) = nearest(other, names.iter().copied()) {
                    d = d.note(format!("did you mean `{n}`?"));
                }
                cx.diags.push(d);
                return None;
            }
        }
    }
    if let Some(why) = (rule.conflict)(&hypers) {
        cx.diags.push(
            Diagnostic::new(Code::BadRun, format!("`{}`: {why}", rule.name))
                .label(s.value.span, "these arguments do not go together"),
        );
        return None;
    }
    match lr {
        Some(lr) => Some(Optimizer::Rule { rule, lr, hypers }),
        None => {
            cx.diags.push(
                Diagnostic::new(
                    Code::Arity,
                    format!("`{}` needs a learning rate", rule.name),
                )
                .label(s.value.span, format!("like {}(lr = 0.1)", rule.name)),
            );
            None
        }
    }
}

pub(super) fn weight_decay(
    cx: &mut SettingsCx,
    s: &ast::Setting,
    params: &[ParamSpec],
) -> Option<WeightDecay> {
    let what = "decoupled(λ) or penalty(λ), optionally with a list of parameters";
    let Some((name, args)) = call_parts(&s.value) else {
        cx.bad(s, what);
        return None;
    };
    let form = match name {
        "decoupled" => DecayForm::Decoupled,
        "penalty" => DecayForm::Penalty,
        _ => {
            cx.bad(s, what);
            return None;
        }
    };
    let lambda = args
        .first()
        .and_then(|a| Some((consts::number(&a.value)?, a.value.span)))
        .filter(|(v, _)| *v >= 0.0);
    let Some((lambda, span)) = lambda else {
        cx.bad(s, what);
        return None;
    };
    if !cx.fits_f32("weight_decay", lambda, span) {
        return None;
    }
    // Default: every parameter of rank ≥ 2 (d2l decays weights, not biases).
    let mut names: Vec<String> = params
        .iter()
        .filter(|p| p.ty.shape.rank() >= 2)
        .map(|p| p.name.clone())
        .collect();
    if let Some(a) = args.get(1) {
        names.clear();
        match consts::eval(&a.value) {
            Some(Const::List(items)) => {
                for it in items {
                    match it {
                        Const::Name(n) if params.iter().any(|p| p.name == n) => names.push(n),
                        Const::Name(n) => {
                            let mut d = Diagnostic::new(
                                Code::UnknownName,
                                format!("the model has no parameter `{n}`"),
                            )
                            .label(a.value.span, "in this list");
                            if let Some(s) = nearest(&n, params.iter().map(|p| p.name.as_str())) {
                                d = d.note(format!("did you mean `{s}`?"));
                            }
                            cx.diags.push(d);
                            return None;
                        }
                        _ => {
                            cx.bad(s, what);
                            return None;
                        }
                    }
                }
            }
            _ => {
                cx.bad(s, what);
                return None;
            }
        }
    }
    if args.len() > 2 {
        cx.bad(s, what);
        return None;
    }
    Some(WeightDecay {
        form,
        lambda,
        params: names,
    })
}
