//! Compile-time constants: the values of settings, data options, axes and
//! indices (`lr = 0.1`, `scale = 1/255`, `axis = -1`, `[0.8, 0.2]`).

use std::collections::HashMap;

use crate::syntax::ast::{BinOp, Expr, ExprKind, Let, UnOp};

#[derive(Clone, Debug, PartialEq)]
pub enum Const {
    /// A number, and whether it is an integer.
    Num(f64, bool),
    Bool(bool),
    Str(String),
    /// A bare name (`closed_form`, `mean`, a parameter in a list).
    Name(String),
    List(Vec<Const>),
}

impl Const {
    pub fn describe(&self) -> &'static str {
        match self {
            Const::Num(_, true) => "an integer",
            Const::Num(_, false) => "a number",
            Const::Bool(_) => "a bool",
            Const::Str(_) => "a string",
            Const::Name(_) => "a name",
            Const::List(_) => "a list",
        }
    }
}

/// Evaluates `e` if it is a constant: numbers under `+ - * / **` and unary
/// minus, bools, strings, names and lists of these.
pub fn eval(e: &Expr) -> Option<Const> {
    match &e.node {
        ExprKind::Int(v) => Some(Const::Num(*v as f64, true)),
        ExprKind::Float(v) => Some(Const::Num(*v, false)),
        ExprKind::Bool(b) => Some(Const::Bool(*b)),
        ExprKind::Str(s) => Some(Const::Str(s.clone())),
        ExprKind::Name(n) => Some(Const::Name(n.clone())),
        ExprKind::List(items) => items
            .iter()
            .map(eval)
            .collect::<Option<Vec<_>>>()
            .map(Const::List),
        ExprKind::Unary { op, operand } => match (op, eval(operand)?) {
            (UnOp::Neg, Const::Num(v, i)) => Some(Const::Num(-v, i)),
            (UnOp::Plus, Const::Num(v, i)) => Some(Const::Num(v, i)),
            (UnOp::Not, Const::Bool(b)) => Some(Const::Bool(!b)),
            _ => None,
        },
        ExprKind::Binary { op, lhs, rhs } => match (eval(lhs)?, eval(rhs)?) {
            (Const::Num(a, ia), Const::Num(b, ib)) => {
                let int = ia && ib;
                match op {
                    BinOp::Add => Some(Const::Num(a + b, int)),
                    BinOp::Sub => Some(Const::Num(a - b, int)),
                    BinOp::Mul => Some(Const::Num(a * b, int)),
                    BinOp::Div => Some(Const::Num(a / b, false)),
                    BinOp::Pow => Some(Const::Num(a.powf(b), int && b >= 0.0)),
                    _ => None,
                }
            }
            _ => None,
        },
        ExprKind::Call { .. }
        | ExprKind::Index { .. }
        | ExprKind::Field { .. }
        | ExprKind::Error => None,
    }
}

/// A finite number, if `e` is a constant one.
pub fn number(e: &Expr) -> Option<f64> {
    match eval(e)? {
        Const::Num(v, _) if v.is_finite() => Some(v),
        _ => None,
    }
}

/// An integer, if `e` is a constant one.
pub fn integer(e: &Expr) -> Option<i64> {
    match eval(e)? {
        Const::Num(v, true) if v.abs() < 9.0e15 => Some(v as i64),
        _ => None,
    }
}

/// `e` with every name bound by a top-level `let` to a constant (a number,
/// bool, string or list of them) replaced by that constant, so that
/// settings can say `lr = lr` after `let lr = 0.1`. A replaced name keeps
/// its own span, for messages. Names of other things (`closed_form`, a
/// parameter in a list) and lets that are not constants stay as they are.
pub fn substitute(e: &Expr, lets: &HashMap<&str, &Let>) -> Expr {
    substitute_at(e, lets, 0)
}

fn substitute_at(e: &Expr, lets: &HashMap<&str, &Let>, depth: usize) -> Expr {
    // Lets that refer to lets, at most this deep (and no further for a
    // cycle, which the checker reports elsewhere).
    const DEPTH: usize = 16;
    let sub = |x: &Expr| Box::new(substitute_at(x, lets, depth));
    let node = match &e.node {
        ExprKind::Name(n) if depth < DEPTH => {
            if let Some(l) = lets.get(n.as_str()) {
                let v = substitute_at(&l.value, lets, depth + 1);
                if matches!(
                    eval(&v),
                    Some(Const::Num(..) | Const::Bool(_) | Const::Str(_) | Const::List(_))
                ) {
                    return Expr {
                        node: v.node,
                        span: e.span,
                    };
                }
            }
            return e.clone();
        }
        ExprKind::List(items) => ExprKind::List(
            items
                .iter()
                .map(|x| substitute_at(x, lets, depth))
                .collect(),
        ),
        ExprKind::Unary { op, operand } => ExprKind::Unary {
            op: *op,
            operand: sub(operand),
        },
        ExprKind::Binary { op, lhs, rhs } => ExprKind::Binary {
            op: *op,
            lhs: sub(lhs),
            rhs: sub(rhs),
        },
        ExprKind::Call { callee, args } => ExprKind::Call {
            callee: callee.clone(),
            args: args
                .iter()
                .map(|a| crate::syntax::ast::Arg {
                    name: a.name.clone(),
                    value: substitute_at(&a.value, lets, depth),
                })
                .collect(),
        },
        _ => return e.clone(),
    };
    Expr { node, span: e.span }
}
