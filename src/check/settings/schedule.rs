//! `lr_schedule = ...`: a schedule of [`crate::schedule`], its arguments
//! by position or by name.

use crate::diag::{Code, Diagnostic};
use crate::schedule::Schedule;
use crate::syntax::ast;

use super::super::consts;
use super::super::lower::nearest;
use super::cx::{call_parts, SettingsCx};
use super::optimizer::Optimizer;

/// Each schedule's name and its arguments in positional order.
const FORMS: &[(&str, &[&str])] = &[
    ("constant", &[]),
    ("step", &["every", "gamma"]),
    ("cosine", &["epochs", "min_lr"]),
    ("warmup", &["steps", "then"]),
];

/// Other names an argument answers to: torch.optim.lr_scheduler's
/// (`StepLR(step_size)`, `CosineAnnealingLR(T_max, eta_min)`) and the
/// issue's words (`cosine(total, ...)`).
const ALIASES: &[(&str, &str)] = &[
    ("step_size", "every"),
    ("total", "epochs"),
    ("T_max", "epochs"),
    ("eta_min", "min_lr"),
];

const WHAT: &str = "constant, step(every = N, gamma = 0.1), cosine(epochs = N, min_lr = 0) \
                    or warmup(N, then = a schedule)";

impl SettingsCx<'_> {
    /// The `lr_schedule` setting of a train block of `epochs` epochs.
    pub(super) fn lr_schedule(
        &mut self,
        s: &ast::Setting,
        optimizer: Option<&Optimizer>,
        epochs: u64,
    ) -> Option<Schedule> {
        let lr = match optimizer {
            Some(Optimizer::ClosedForm) => {
                self.diags.push(
                    Diagnostic::new(Code::BadRun, "closed_form has no learning rate to schedule")
                        .label(s.value.span, "a schedule needs an optimizer with `lr`"),
                );
                return None;
            }
            Some(Optimizer::Rule { lr, .. }) => Some(*lr),
            None => None,
        };
        self.schedule(&s.value, epochs, lr, true)
    }

    /// The schedule `e` of a run of `epochs` epochs from the learning rate
    /// `lr` (when the optimizer gave one).
    fn schedule(
        &mut self,
        e: &ast::Expr,
        epochs: u64,
        lr: Option<f64>,
        outermost: bool,
    ) -> Option<Schedule> {
        let Some((name, args)) = call_parts(e) else {
            self.not_a_schedule(e, None);
            return None;
        };
        let Some((name, names)) = FORMS.iter().find(|(n, _)| *n == name) else {
            self.not_a_schedule(e, nearest(name, FORMS.iter().map(|(n, _)| *n)));
            return None;
        };
        let vals = self.bind(name, names, args)?;
        match *name {
            "constant" => Some(Schedule::Constant),
            "step" => {
                let every = self.whole(name, "every", vals[0], e)?;
                let gamma = match vals[1] {
                    None => 0.1,
                    Some(v) => self.number(v, "gamma", |g| g > 0.0, "a positive number")?,
                };
                Some(Schedule::Step { every, gamma })
            }
            "cosine" => {
                let epochs = match vals[0] {
                    None => epochs,
                    Some(v) => self.whole(name, "epochs", Some(v), e)?,
                };
                let min_lr = match vals[1] {
                    None => 0.0,
                    Some(v) => self.number(v, "min_lr", |m| m >= 0.0, "a number ≥ 0")?,
                };
                // The cosine decays from lr down to min_lr: above lr it
                // would rise instead (torch's eta_min has the same role).
                if let (Some(lr), Some(v)) = (lr, vals[1]) {
                    if min_lr > lr {
                        self.diags.push(
                            Diagnostic::new(
                                Code::BadRun,
                                format!("`min_lr` ({min_lr}) is above the learning rate ({lr})"),
                            )
                            .label(v.span, format!("expected min_lr ≤ lr = {lr}"))
                            .note("a cosine schedule decays from `lr` down to `min_lr`"),
                        );
                        return None;
                    }
                }
                Some(Schedule::Cosine { epochs, min_lr })
            }
            _ => {
                let steps = self.whole(name, "steps", vals[0], e)?;
                let then = match vals[1] {
                    None => Schedule::Constant,
                    Some(v) => self.schedule(v, epochs, lr, false)?,
                };
                if !outermost {
                    self.diags.push(
                        Diagnostic::new(Code::BadRun, "a warmup cannot follow another warmup")
                            .label(e.span, "one warmup, outermost: warmup(N, then = ...)"),
                    );
                    return None;
                }
                Some(Schedule::Warmup {
                    steps,
                    then: Box::new(then),
                })
            }
        }
    }

    fn not_a_schedule(&mut self, e: &ast::Expr, near: Option<String>) {
        let mut d = Diagnostic::new(Code::BadRun, format!("`lr_schedule` must be {WHAT}"))
            .label(e.span, "expected a schedule");
        if let Some(n) = near {
            d = d.note(format!("did you mean `{n}`?"));
        }
        self.diags.push(d);
    }

    /// The arguments of `form`, whose parameters are `names`, in their
    /// order: given by position or by name, each once.
    fn bind<'e>(
        &mut self,
        form: &str,
        names: &[&str],
        args: &'e [ast::Arg],
    ) -> Option<Vec<Option<&'e ast::Expr>>> {
        let mut vals = vec![None; names.len()];
        for (i, a) in args.iter().enumerate() {
            let slot = match &a.name {
                Some(n) => {
                    let canonical = ALIASES
                        .iter()
                        .find(|(alias, _)| *alias == n.node)
                        .map_or(n.node.as_str(), |(_, to)| to);
                    names.iter().position(|k| *k == canonical)
                }
                None => (i < names.len()).then_some(i),
            };
            let Some(slot) = slot else {
                let mut d = match &a.name {
                    Some(n) => Diagnostic::new(
                        Code::Arity,
                        format!("`{form}` has no argument `{}`", n.node),
                    )
                    .label(a.value.span, "unknown argument"),
                    None => Diagnostic::new(
                        Code::Arity,
                        format!("`{form}` takes at most {} arguments", names.len()),
                    )
                    .label(a.value.span, "one too many"),
                };
                if let Some(near) = a
                    .name
                    .as_ref()
                    .and_then(|n| nearest(&n.node, names.iter().copied()))
                {
                    d = d.note(format!("did you mean `{near}`?"));
                }
                if !names.is_empty() {
                    d = d.note(format!("`{form}` takes {}", names.join(", ")));
                }
                self.diags.push(d);
                return None;
            };
            if vals[slot].replace(&a.value).is_some() {
                self.diags.push(
                    Diagnostic::new(
                        Code::Arity,
                        format!("`{form}`'s `{}` is given twice", names[slot]),
                    )
                    .label(a.value.span, "given again here"),
                );
                return None;
            }
        }
        Some(vals)
    }

    /// A required whole number ≥ 1.
    fn whole(
        &mut self,
        form: &str,
        arg: &str,
        v: Option<&ast::Expr>,
        call: &ast::Expr,
    ) -> Option<u64> {
        let Some(v) = v else {
            self.diags.push(
                Diagnostic::new(Code::Arity, format!("`{form}` needs `{arg}`"))
                    .label(call.span, format!("give {arg} = N, a whole number ≥ 1")),
            );
            return None;
        };
        match consts::integer(v) {
            Some(n) if (1..=1_000_000_000).contains(&n) => Some(n as u64),
            _ => {
                self.diags.push(
                    Diagnostic::new(
                        Code::BadRun,
                        format!("`{arg}` must be a whole number from 1 to 10⁹"),
                    )
                    .label(v.span, "expected a whole number ≥ 1"),
                );
                None
            }
        }
    }

    /// A finite number that `ok` accepts and f32 holds.
    fn number(&mut self, v: &ast::Expr, arg: &str, ok: fn(f64) -> bool, what: &str) -> Option<f64> {
        match consts::number(v) {
            Some(x) if x.is_finite() && ok(x) => self.fits_f32(arg, x, v.span).then_some(x),
            _ => {
                self.diags.push(
                    Diagnostic::new(Code::BadRun, format!("`{arg}` must be {what}"))
                        .label(v.span, format!("expected {what}")),
                );
                None
            }
        }
    }
}
