//! The types of the IR: element types, dimensions (fixed or the batch `B`),
//! shapes, and the error a violated shape or dtype rule is.

use std::fmt;

/// Element types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F64,
    I32,
    Bool,
}

impl DType {
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I32 => "i32",
            DType::Bool => "bool",
        }
    }

    pub fn from_name(s: &str) -> Option<DType> {
        match s {
            "f32" => Some(DType::F32),
            "f64" => Some(DType::F64),
            "i32" => Some(DType::I32),
            "bool" => Some(DType::Bool),
            _ => None,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F64 => 8,
            DType::Bool => 1,
        }
    }
}

/// One dimension: a fixed size, or the batch size `B`, known only at run
/// time (one compiled step serves every batch size).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    Fixed(u64),
    Batch,
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Batch => f.write_str("B"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub Vec<Dim>);

impl Shape {
    pub fn scalar() -> Shape {
        Shape(Vec::new())
    }

    pub fn fixed(dims: &[u64]) -> Shape {
        Shape(dims.iter().map(|&d| Dim::Fixed(d)).collect())
    }

    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// The number of elements as `(static factor, uses B)`.
    pub fn numel(&self) -> (u64, bool) {
        let mut n: u64 = 1;
        let mut batch = false;
        for d in &self.0 {
            match d {
                Dim::Fixed(k) => n = n.saturating_mul(*k),
                Dim::Batch => batch = true,
            }
        }
        (n, batch)
    }

    pub fn has_batch(&self) -> bool {
        self.0.contains(&Dim::Batch)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// A dtype and a shape, printed `f32[B,784]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Type {
    pub dtype: DType,
    pub shape: Shape,
}

impl Type {
    pub fn new(dtype: DType, shape: Shape) -> Type {
        Type { dtype, shape }
    }

    pub fn scalar(dtype: DType) -> Type {
        Type::new(dtype, Shape::scalar())
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}{}", self.dtype.name(), self.shape)
    }
}

/// A shape or dtype rule violated while adding a node.
#[derive(Clone, Debug, PartialEq)]
pub struct IrError {
    pub kind: IrErrorKind,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrErrorKind {
    Shape,
    DType,
    Axis,
}

impl IrError {
    pub fn shape(message: impl Into<String>) -> IrError {
        IrError {
            kind: IrErrorKind::Shape,
            message: message.into(),
        }
    }
    pub fn dtype(message: impl Into<String>) -> IrError {
        IrError {
            kind: IrErrorKind::DType,
            message: message.into(),
        }
    }
    pub fn axis(message: impl Into<String>) -> IrError {
        IrError {
            kind: IrErrorKind::Axis,
            message: message.into(),
        }
    }
}
