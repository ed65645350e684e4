//! Compile-time constants: the values of settings, data options, axes and
//! indices (`lr = 0.1`, `scale = 1/255`, `axis = -1`, `[0.8, 0.2]`).

use crate::syntax::ast::{BinOp, Expr, ExprKind, UnOp};

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
