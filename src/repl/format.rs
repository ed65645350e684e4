//! NumPy-like printing of tensors: `[[1. 2.]\n [3. 4.]]`, one format for all
//! elements so columns line up, and the middle of large tensors elided
//! (more than 1000 elements: the first and last 3 along each axis, as
//! NumPy's `threshold` and `edgeitems`).

use crate::interp::Tensor;
use crate::ir::DType;

/// Tensors with more elements than this print with the middles elided.
const THRESHOLD: usize = 1000;
/// Elements kept at each end of an elided axis.
const EDGE: usize = 3;
/// Characters per line before a row wraps (NumPy's `linewidth`).
const LINE_WIDTH: usize = 75;

/// How the elements of one tensor are written.
enum Style {
    /// Floats that are all whole numbers: `3.`
    Whole,
    /// Fixed point with this many decimals (trailing zeros trimmed to the
    /// longest any element needs).
    Fixed(usize),
    /// Scientific, for very large or very small magnitudes.
    Sci,
    Int,
    Bool,
}

fn style(t: &Tensor, shown: &[f64]) -> Style {
    match t.dtype {
        DType::I32 => return Style::Int,
        DType::Bool => return Style::Bool,
        DType::F32 | DType::F64 => {}
    }
    let finite: Vec<f64> = shown.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.iter().all(|v| v.fract() == 0.0 && v.abs() < 1e16) {
        return Style::Whole;
    }
    let max = finite.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let min = finite
        .iter()
        .filter(|v| **v != 0.0)
        .fold(f64::INFINITY, |m, v| m.min(v.abs()));
    if max >= 1e8 || min < 1e-4 {
        return Style::Sci;
    }
    // The fewest decimals (up to 4) that show every element as it rounds.
    let decimals = (1..=4)
        .find(|d| {
            finite.iter().all(|v| {
                let s = format!("{v:.d$}", d = *d);
                s.parse::<f64>()
                    .is_ok_and(|r| (r - v).abs() <= 1e-9 * v.abs().max(1.0))
            })
        })
        .unwrap_or(4);
    Style::Fixed(decimals)
}

fn one(v: f64, s: &Style) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    match s {
        Style::Whole => format!("{v:.0}."),
        Style::Fixed(d) => format!("{v:.d$}", d = *d),
        Style::Sci => format!("{v:.4e}"),
        Style::Int => format!("{}", v as i64),
        Style::Bool => if v != 0.0 { "True" } else { "False" }.to_string(),
    }
}

/// The indices shown along an axis of length n (`None` marks the elision).
fn shown(n: usize, elide: bool) -> Vec<Option<usize>> {
    if !elide || n <= 2 * EDGE {
        return (0..n).map(Some).collect();
    }
    (0..EDGE)
        .map(Some)
        .chain(std::iter::once(None))
        .chain((n - EDGE..n).map(Some))
        .collect()
}

/// The tensor as NumPy's `str` would print it.
pub fn tensor(t: &Tensor) -> String {
    let elide = t.data.len() > THRESHOLD;
    // Every element that will be printed, to choose one style for all.
    let mut visible = Vec::new();
    collect(t, 0, 0, elide, &mut visible);
    let st = style(t, &visible);
    let width = visible
        .iter()
        .map(|v| one(*v, &st).len())
        .max()
        .unwrap_or(1);
    if t.shape.is_empty() {
        return one(t.data.first().copied().unwrap_or(f64::NAN), &st);
    }
    let mut out = String::new();
    write(t, 0, 0, elide, &st, width, &mut out);
    out
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

fn collect(t: &Tensor, axis: usize, base: usize, elide: bool, out: &mut Vec<f64>) {
    if axis == t.shape.len() {
        if let Some(v) = t.data.get(base) {
            out.push(*v);
        }
        return;
    }
    let st = strides(&t.shape);
    for i in shown(t.shape[axis], elide).into_iter().flatten() {
        collect(t, axis + 1, base + i * st[axis], elide, out);
    }
}

#[allow(clippy::too_many_arguments)]
fn write(
    t: &Tensor,
    axis: usize,
    base: usize,
    elide: bool,
    st: &Style,
    width: usize,
    out: &mut String,
) {
    let strides = strides(&t.shape);
    let last = axis + 1 == t.shape.len();
    out.push('[');
    let items = shown(t.shape[axis], elide);
    for (k, i) in items.iter().enumerate() {
        if k > 0 {
            if last {
                // Rows wrap at NumPy's line width, continuing under the
                // first element.
                let line = out.len() - out.rfind('\n').map_or(0, |p| p + 1);
                if line + 1 + width.max(3) + 1 > LINE_WIDTH {
                    out.push('\n');
                    out.push_str(&" ".repeat(axis + 1));
                } else {
                    out.push(' ');
                }
            } else {
                // Rows of a matrix on their own lines; blocks of higher
                // axes separated by blank lines, as NumPy does.
                let blank = t.shape.len() - axis - 2;
                out.push_str(&"\n".repeat(1 + blank));
                out.push_str(&" ".repeat(axis + 1));
            }
        }
        match i {
            None => out.push_str("..."),
            Some(i) if last => {
                let v = t
                    .data
                    .get(base + i * strides[axis])
                    .copied()
                    .unwrap_or(f64::NAN);
                out.push_str(&format!("{:>width$}", one(v, st)));
            }
            Some(i) => write(t, axis + 1, base + i * strides[axis], elide, st, width, out),
        }
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(dtype: DType, shape: &[usize], data: &[f64]) -> Tensor {
        Tensor::new(dtype, shape.to_vec(), data.to_vec())
    }

    #[test]
    fn prints_like_numpy() {
        assert_eq!(tensor(&t(DType::F32, &[], &[3.5])), "3.5");
        assert_eq!(
            tensor(&t(DType::F32, &[2, 2], &[1.0, 2.0, 3.0, 4.0])),
            "[[1. 2.]\n [3. 4.]]"
        );
        assert_eq!(
            tensor(&t(DType::F32, &[3], &[0.5, -1.25, 10.0])),
            "[ 0.50 -1.25 10.00]"
        );
        assert_eq!(
            tensor(&t(DType::I32, &[3], &[1.0, -20.0, 3.0])),
            "[  1 -20   3]"
        );
        assert_eq!(tensor(&t(DType::Bool, &[2], &[1.0, 0.0])), "[ True False]");
        assert_eq!(
            tensor(&t(DType::F32, &[2], &[1e-6, 2.0])),
            "[1.0000e-6  2.0000e0]"
        );
        assert_eq!(
            tensor(&t(DType::F32, &[3], &[f64::NAN, f64::INFINITY, 1.0])),
            "[nan inf  1.]"
        );
    }

    #[test]
    fn elides_the_middle_of_large_tensors() {
        let data: Vec<f64> = (0..2000).map(f64::from).collect();
        assert_eq!(
            tensor(&t(DType::F32, &[2000], &data)),
            "[   0.    1.    2. ... 1997. 1998. 1999.]"
        );
        let s = tensor(&t(DType::F32, &[40, 50], &data));
        assert_eq!(s.lines().count(), 7, "{s}");
        assert!(
            s.starts_with("[[   0.    1.    2. ...   47.   48.   49.]"),
            "{s}"
        );
        assert!(s.contains("\n ...\n"), "{s}");
    }

    #[test]
    fn long_rows_wrap_at_75_characters() {
        let data: Vec<f64> = (0..30).map(f64::from).collect();
        let s = tensor(&t(DType::F32, &[30], &data));
        assert!(s.lines().all(|l| l.chars().count() <= 75), "{s}");
        assert_eq!(s.lines().count(), 2, "{s}");
        assert!(s.lines().nth(1).is_some_and(|l| l.starts_with(' ')), "{s}");
    }

    #[test]
    fn separates_blocks_of_higher_axes() {
        let data: Vec<f64> = (0..8).map(f64::from).collect();
        assert_eq!(
            tensor(&t(DType::F32, &[2, 2, 2], &data)),
            "[[[0. 1.]\n  [2. 3.]]\n\n [[4. 5.]\n  [6. 7.]]]"
        );
    }
}
