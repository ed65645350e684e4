//! A model's parameters as the checker records them: name, type, where
//! they are declared and how they start. Below `settings` (weight decay
//! names parameters) and `run` (which declares them).

use crate::ir::Type;
use crate::span::Span;

/// How a parameter starts.
#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    Zeros,
    Ones,
    Constant(f64),
    Normal {
        mean: f64,
        std: f64,
    },
    Uniform {
        low: f64,
        high: f64,
    },
    /// U(±√(6/(n_in+n_out)))
    XavierUniform,
    /// N(0, 2/(n_in+n_out))
    XavierNormal,
    /// U(±√(6/n_in)): He et al. for ReLU, `torch.nn.init.kaiming_uniform_`
    /// with gain √2 and fan-in.
    KaimingUniform,
    /// N(0, 2/n_in): `torch.nn.init.kaiming_normal_`, gain √2, fan-in.
    KaimingNormal,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    pub ty: Type,
    pub init: Init,
    pub span: Span,
}
