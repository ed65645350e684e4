//! The abstract syntax tree. Every child carries its span; `Error` nodes
//! stand where the parser recovered, so a tree always exists.

use crate::span::{Span, Spanned};

pub type Ident = Spanned<String>;

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Program {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Data(DataDecl),
    Model(ModelDecl),
    Fn(FnDecl),
    Train(TrainDecl),
    Let(Let),
    Assign(Assign),
    Expr(Expr),
    /// Where the parser skipped input after an error.
    Error(Span),
}

/// `data NAME = SOURCE`: the source is a call such as `idx("dir", scale = 1/255)`.
#[derive(Clone, Debug, PartialEq)]
pub struct DataDecl {
    pub name: Ident,
    pub source: Expr,
    pub span: Span,
}

/// `model NAME(x: T, ...) -> T { param ...; let ...; result }`
#[derive(Clone, Debug, PartialEq)]
pub struct ModelDecl {
    pub name: Ident,
    pub inputs: Vec<(Ident, TypeAnn)>,
    pub output: Option<TypeAnn>,
    pub body: Vec<Stmt>,
    pub span: Span,
}

impl ModelDecl {
    /// Whether the parser recovered inside this model's body.
    pub fn broken(&self) -> bool {
        self.body.iter().any(|s| matches!(s, Stmt::Error(_)))
    }
}

/// `fn NAME(a, b) = expr` or `fn NAME(a, b) { let ...; expr }`.
#[derive(Clone, Debug, PartialEq)]
pub struct FnDecl {
    pub name: Ident,
    pub params: Vec<Ident>,
    pub body: Vec<Stmt>,
    pub span: Span,
}

/// `train [RUN:] MODEL on DATA { key = value ... }`
#[derive(Clone, Debug, PartialEq)]
pub struct TrainDecl {
    pub run: Option<Ident>,
    pub model: Ident,
    pub data: Ident,
    pub settings: Vec<Setting>,
    /// Whether the parser skipped a malformed setting in this block.
    pub broken: bool,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    pub key: Ident,
    pub value: Expr,
}

/// A statement of a model or function body. The body's last statement is
/// its result and must be an expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Stmt {
    Param(ParamDecl),
    Let(Let),
    Expr(Expr),
    Error(Span),
}

/// `param NAME: T = INIT`
#[derive(Clone, Debug, PartialEq)]
pub struct ParamDecl {
    pub name: Ident,
    pub ty: TypeAnn,
    pub init: Option<Expr>,
    pub span: Span,
}

/// `let NAME [: T] = VALUE`
#[derive(Clone, Debug, PartialEq)]
pub struct Let {
    pub name: Ident,
    pub ty: Option<TypeAnn>,
    pub value: Expr,
    pub span: Span,
}

/// `x += e`, `x -= e`, `x *= e`, `x /= e`, or `x[...] = e`: in-place updates.
#[derive(Clone, Debug, PartialEq)]
pub struct Assign {
    pub target: Ident,
    pub index: Option<Vec<IndexArg>>,
    pub op: AssignOp,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssignOp {
    Set,
    Add,
    Sub,
    Mul,
    Div,
}

impl AssignOp {
    pub fn symbol(self) -> &'static str {
        match self {
            AssignOp::Set => "=",
            AssignOp::Add => "+=",
            AssignOp::Sub => "-=",
            AssignOp::Mul => "*=",
            AssignOp::Div => "/=",
        }
    }
}

/// `f32[B, 784]`; `f32` alone is a scalar.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeAnn {
    pub dtype: Ident,
    pub dims: Vec<Spanned<DimAnn>>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum DimAnn {
    Fixed(u64),
    /// `B` (the batch) or a width variable bound from the data.
    Name(String),
}

pub type Expr = Spanned<ExprKind>;

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Name(String),
    /// `[a, b, c]`: a tensor literal, or a list argument.
    List(Vec<Expr>),
    Call {
        callee: Box<Expr>,
        args: Vec<Arg>,
    },
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    Unary {
        op: UnOp,
        operand: Box<Expr>,
    },
    Index {
        base: Box<Expr>,
        indices: Vec<IndexArg>,
    },
    Field {
        base: Box<Expr>,
        name: Ident,
    },
    Error,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
}

#[derive(Clone, Debug, PartialEq)]
pub enum IndexArg {
    /// `x[i]`
    Single(Expr),
    /// `x[a:b:s]`, each part optional.
    Slice {
        start: Option<Expr>,
        end: Option<Expr>,
        step: Option<Expr>,
        span: Span,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    MatMul,
    Pow,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::MatMul => "@",
            BinOp::Pow => "**",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::And => "and",
            BinOp::Or => "or",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnOp {
    Neg,
    Plus,
    Not,
}
