//! Shape and dtype rules, one line per case: the type the checker gives an
//! expression, or the error code it reports.

use dlc::check::{check, Options};
use dlc::syntax::parse;

/// The type of `expr` after the given top-level lets, or the error codes.
fn type_of(prelude: &str, expr: &str) -> String {
    let src = format!("{prelude}\nlet result = {expr}\n");
    let (program, mut diags) = parse(&src);
    let (checked, cd) = check(&program, &Options::default());
    diags.extend(cd);
    if !diags.is_empty() {
        let codes: Vec<&str> = diags.iter().map(|d| d.code.as_str()).collect();
        return codes.join(",");
    }
    let g = checked.session.expect("a session graph");
    let (_, id) = g
        .outputs
        .iter()
        .find(|(n, _)| n == "result")
        .expect("result bound");
    g.ty(*id).to_string()
}

const PRELUDE: &str = "
let m23 = ones(2, 3)
let m34 = ones(3, 4)
let v3 = [1.0, 2.0, 3.0]
let v4 = ones(4)
let col = ones(2, 1)
let ints = arange(6)
let d = f64(ones(2, 3))
let mask = v3 > 1.0
";

fn check_type(expr: &str, want: &str) {
    assert_eq!(type_of(PRELUDE, expr), want, "for `{expr}`");
}

#[test]
fn broadcasting() {
    check_type("m23 + v3", "f32[2,3]");
    check_type("m23 * col", "f32[2,3]");
    check_type("col + v3", "f32[2,3]");
    check_type("m23 + 1", "f32[2,3]");
    check_type("m23 + v4", "E0200");
    check_type("ones(3, 1, 2) + ones(4, 1)", "f32[3,4,2]");
}

#[test]
fn products() {
    check_type("m23 @ m34", "f32[2,4]");
    check_type("m23 @ v3", "f32[2]");
    check_type("v3 @ m34", "f32[4]");
    check_type("v3 @ v3", "f32[]");
    check_type("dot(v3, v3)", "f32[]");
    check_type("m34 @ m23", "E0200");
    check_type("m23.T", "f32[3,2]");
    check_type("transpose(ones(2, 3, 4), [2, 0, 1])", "f32[4,2,3]");
}

#[test]
fn reductions() {
    check_type("sum(m23)", "f32[]");
    check_type("sum(m23, axis = 0)", "f32[3]");
    check_type("sum(m23, axis = -1, keepdims = true)", "f32[2,1]");
    check_type("mean(m23, axis = [0, 1], keepdims = true)", "f32[1,1]");
    check_type("max(m23, axis = 1)", "f32[2]");
    check_type("min(m23, axis = 0)", "f32[3]");
    check_type("argmax(m23, axis = 1)", "i32[2]");
    check_type("sum(ints)", "i32[]");
    check_type("mean(ints)", "f32[]");
    check_type("sum(m23, axis = 2)", "E0201");
    check_type("sum(m23, axis = [0, 0])", "E0201");
    check_type("sum(mask)", "E0202");
}

#[test]
fn composites() {
    check_type("softmax(m23)", "f32[2,3]");
    check_type("softmax(m23, axis = 0)", "f32[2,3]");
    check_type("log_softmax(m23)", "f32[2,3]");
    check_type("logsumexp(m23)", "f32[2]");
    check_type("logsumexp(m23, keepdims = true)", "f32[2,1]");
    check_type("one_hot(arange(5), 3)", "f32[5,3]");
    check_type("cross_entropy(m23, [0, 2])", "f32[]");
    check_type("cross_entropy(m23, [0.0, 2.0])", "E0202");
    check_type("cross_entropy(m23, [0, 2, 1])", "E0200");
    check_type("squared_loss(col, [1.0, 2.0])", "f32[]");
    check_type("mse(v3, v3)", "f32[]");
    check_type("accuracy(m23, [0, 1])", "f32[]");
    check_type("l2(v3)", "f32[]");
    check_type("l1(m23)", "f32[]");
    check_type("norm(v3, p = 3)", "f32[]");
    check_type("norm(m23, axis = 1)", "f32[2]");
    check_type("frobenius(m34)", "f32[]");
    check_type("norm(v3, p = 0.5)", "E0103");
}

#[test]
fn dtypes() {
    check_type("ints + 1", "i32[6]");
    check_type("ints + 1.5", "f32[6]");
    check_type("ints / 2", "f32[6]");
    check_type("d + m23", "f64[2,3]");
    check_type("d * 2", "f64[2,3]");
    check_type("mask + 1.0", "E0202");
    check_type("f32(mask) + 1.0", "f32[3]");
    check_type("exp(ints)", "f32[6]");
    check_type("exp(mask)", "E0202");
    check_type("where(mask, v3, 0.0)", "f32[3]");
    check_type("where(v3, v3, 0.0)", "E0202");
    check_type("mask and not mask", "bool[3]");
    check_type("v3 and mask", "E0202");
    check_type("i32(v3)", "i32[3]");
}

#[test]
fn shapes_and_constructors() {
    check_type("reshape(ints, [2, -1])", "i32[2,3]");
    check_type("reshape(ints, [4, -1])", "E0200");
    check_type("m23[1]", "f32[3]");
    check_type("m23[:, 0:2]", "f32[2,2]");
    check_type("m23[-1, ::2]", "f32[2]");
    check_type("m23[5]", "E0201");
    check_type("eye(3)", "f32[3,3]");
    check_type("diag(v3)", "f32[3,3]");
    check_type("zeros([2, 3])", "f32[2,3]");
    check_type("full([2], 7)", "f32[2]");
    check_type("arange(1, 2, 0.25)", "f32[4]");
    check_type("rand(2, 2) + randn(2, 2)", "f32[2,2]");
    check_type("[[1, 2], [3, 4]]", "i32[2,2]");
    check_type("[[1, 2], [3]]", "E0200");
    check_type("[true, false]", "bool[2]");
}

#[test]
fn names_and_calls() {
    check_type("undefined_thing + 1", "E0100");
    check_type("relu(v3, v3)", "E0102");
    check_type("sum(v3, axes = 0)", "E0102");
    check_type("frobnicate(v3)", "E0100");
    check_type("\"text\"", "E0103");
    check_type("v3.shape", "E0100");
}

#[test]
fn user_functions_are_generic_over_shapes() {
    let prelude = "fn sq(x) = x * x\nfn twice(f_in) { let y = f_in + f_in\n y }";
    assert_eq!(type_of(prelude, "sq([1.0, 2.0])"), "f32[2]");
    assert_eq!(
        type_of(prelude, "sq(ones(2, 2)) + twice(ones(2))"),
        "f32[2,2]"
    );
    assert_eq!(type_of(prelude, "sq(1.0, 2.0)"), "E0102");
}

#[test]
fn batch_dimension_in_models() {
    // B broadcasts with B and 1, never with a number; reducing over it is static.
    let src = "
data synth = linear(w = [1, 2, 3], n_train = 10)
model m(x: f32[B, 3]) -> f32[3] {
    let xt = x.T
    let g = xt @ x
    sum(g, axis = 1) + mean(x, axis = 0)
}
";
    let (program, diags) = parse(src);
    assert!(diags.is_empty());
    let (_, cd) = check(&program, &Options::default());
    assert!(cd.is_empty(), "{cd:?}");
    let bad = "
model m(x: f32[B, 3]) -> f32[B, 3] {
    x + ones(4, 3)
}
";
    let (program, _) = parse(bad);
    let (_, cd) = check(&program, &Options::default());
    assert_eq!(cd.first().map(|d| d.code.as_str()), Some("E0200"), "{cd:?}");
}
