"""Golden values for the reference interpreter, computed once with NumPy.

Each case is a .dl program that binds inputs and `result`, and the NumPy
expression that computes the same thing in float64. Run from this folder:

    python3 gen_golden.py > golden.json

tests/golden.rs runs each program through dlc's interpreter in f64 and
compares with these values (NaN and ±inf must match exactly).
"""
import json
import numpy as np

A = np.array([[0.5, -1.25, 2.0], [3.5, 0.0, -0.75]])
B = np.array([[1.5, 0.25, -2.0], [-0.5, 4.0, 1.0]])
V = np.array([1.0, -2.0, 0.5])
M = np.array([[2.0, 1.0], [-1.0, 3.0], [0.5, -0.5]])  # 3x2
Z = np.array([[1.0, 2.0, 3.0, 0.5], [1e4, -1e4, 0.0, 1e4], [-1e4, -1e4, -1e4, -1e4]])
LABELS = np.array([2, 1, 0])
TIES = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, -1.0]])
EXTREME = np.array([-1000.0, -30.0, -1e-8, 0.0, 1e-8, 30.0, 1000.0])
PRED = np.array([[0.5], [2.0], [3.0], [7.5]])
TARGET = np.array([[1.0], [2.5], [2.0], [8.0]])


def dl(x):
    """A float64 .dl literal."""
    return "f64(" + json.dumps(np.asarray(x).tolist()) + ")"


PRELUDE = "\n".join(
    [
        f"let a = {dl(A)}",
        f"let b = {dl(B)}",
        f"let v = {dl(V)}",
        f"let m = {dl(M)}",
        f"let z = {dl(Z)}",
        f"let labels = {json.dumps(LABELS.tolist())}",
        f"let ties = {dl(TIES)}",
        f"let ext = {dl(EXTREME)}",
        f"let pred = {dl(PRED)}",
        f"let target = {dl(TARGET)}",
    ]
)


def lse(x, axis=-1, keepdims=False):
    mx = np.max(x, axis=axis, keepdims=True)
    r = mx + np.log(np.sum(np.exp(x - mx), axis=axis, keepdims=True))
    return r if keepdims else np.squeeze(r, axis=axis)


def softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def sigmoid(x):
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


def cross_entropy(z, y):
    return np.mean(lse(z, axis=1) - z[np.arange(len(y)), y])


with np.errstate(all="ignore"):
    CASES = [
        # primitives
        ("add_broadcast", "a + v", A + V),
        ("sub", "a - b", A - B),
        ("mul", "a * b", A * B),
        ("div", "a / b", A / B),
        ("neg", "-a", -A),
        ("recip_of_zero", "1.0 / a", 1.0 / A),
        ("exp", "exp(a)", np.exp(A)),
        ("exp_overflow", "exp(ext)", np.exp(EXTREME)),
        ("log", "log(abs(a))", np.log(np.abs(A))),
        ("log_of_zero", "log(f64([0.0, 1.0]))", np.log(np.array([0.0, 1.0]))),
        ("sqrt", "sqrt(abs(b))", np.sqrt(np.abs(B))),
        ("sqrt_of_negative", "sqrt(f64([-1.0, 4.0]))", np.sqrt(np.array([-1.0, 4.0]))),
        ("abs", "abs(a)", np.abs(A)),
        ("tanh", "tanh(ext)", np.tanh(EXTREME)),
        ("sigmoid", "sigmoid(ext)", sigmoid(EXTREME)),
        ("relu", "relu(a)", np.maximum(A, 0.0)),
        ("maximum", "maximum(a, b)", np.maximum(A, B)),
        ("minimum", "minimum(a, b)", np.minimum(A, B)),
        ("pow", "pow(abs(a), b)", np.power(np.abs(A), B)),
        ("square", "a ** 2", A**2),
        ("cube_negative", "v ** 3", V**3),
        ("eq", "f64(a == b * 0.0)", (A == B * 0.0).astype(float)),
        ("lt", "f64(a < b)", (A < B).astype(float)),
        ("ge", "f64(a >= 0.0)", (A >= 0.0).astype(float)),
        ("ne", "f64(a != b)", (A != B).astype(float)),
        ("le", "f64(a <= 0.5)", (A <= 0.5).astype(float)),
        ("gt", "f64(b > a)", (B > A).astype(float)),
        ("logic", "f64((a > 0.0) and not (b > 0.0) or (a == 0.0))", (((A > 0) & ~(B > 0)) | (A == 0)).astype(float)),
        ("where", "where(a > b, a, b)", np.where(A > B, A, B)),
        ("stop_gradient_is_identity", "stop_gradient(a)", A),
        ("broadcast_full", "f64(full([2, 3], 7.5))", np.full((2, 3), 7.5)),
        ("broadcast_ones_plus", "f64(ones(2, 1)) + v", np.ones((2, 1)) + V),
        ("sum_all", "sum(a)", np.sum(A)),
        ("sum_axis0", "sum(a, axis = 0)", np.sum(A, axis=0)),
        ("mean_axis1_keepdims", "mean(a, axis = 1, keepdims = true)", np.mean(A, axis=1, keepdims=True)),
        ("max_axis1", "max(a, axis = 1)", np.max(A, axis=1)),
        ("min_axis0", "min(a, axis = 0)", np.min(A, axis=0)),
        ("max_with_ties", "max(ties, axis = 1)", np.max(TIES, axis=1)),
        ("argmax_ties_first", "f64(argmax(ties, axis = 1))", np.argmax(TIES, axis=1).astype(float)),
        ("argmax_axis0", "f64(argmax(a, axis = 0))", np.argmax(A, axis=0).astype(float)),
        ("transpose", "a.T", A.T),
        ("reshape", "reshape(a, [3, 2])", A.reshape(3, 2)),
        ("slice", "a[:, 1:3]", A[:, 1:3]),
        ("slice_step", "ext[::3]", EXTREME[::3]),
        ("index", "a[1]", A[1]),
        ("negative_index", "a[-1, -1]", A[-1, -1]),
        ("matmul", "a @ m", A @ M),
        ("matvec", "a @ v", A @ V),
        ("vecmat", "v @ m", V @ M),
        ("dot", "dot(v, v)", np.dot(V, V)),
        ("cast_truncates", "f64(i32(f64([-2.7, -0.5, 0.5, 2.7])))", np.trunc(np.array([-2.7, -0.5, 0.5, 2.7]))),
        ("int_arithmetic", "f64(arange(6) * 2 + 1)", (np.arange(6) * 2 + 1).astype(float)),
        ("int_division_is_float", "f64(arange(4) / 2)", np.arange(4) / 2),
        ("iota_arange", "f64(arange(1, 2, 0.25))", np.arange(1, 2, 0.25)),
        ("eye", "f64(eye(3))", np.eye(3)),
        ("diag", "diag(v)", np.diag(V)),
        ("one_hot", "f64(one_hot(labels, 4))", np.eye(4)[LABELS]),
        # composites
        ("softmax", "softmax(z)", softmax(Z)),
        ("softmax_axis0", "softmax(a, axis = 0)", softmax(A, axis=0)),
        ("log_softmax_extreme", "log_softmax(z)", Z - lse(Z, axis=1, keepdims=True)),
        ("logsumexp_extreme", "logsumexp(z)", lse(Z, axis=1)),
        ("logsumexp_keepdims", "logsumexp(a, axis = 0, keepdims = true)", lse(A, axis=0, keepdims=True)),
        ("cross_entropy_extreme", "cross_entropy(z, labels)", cross_entropy(Z, LABELS)),
        ("squared_loss", "squared_loss(pred, target)", np.mean(0.5 * (PRED - TARGET) ** 2)),
        ("mse", "mse(pred, target)", np.mean((PRED - TARGET) ** 2)),
        # accuracy is an f32 value (its 1/3 is an f32 constant): f32 tolerance.
        ("accuracy", "f64(accuracy(z, labels))", np.mean(np.argmax(Z, axis=1) == LABELS), 1e-7),
        ("l1", "l1(a)", np.sum(np.abs(A))),
        ("l2", "l2(v)", np.linalg.norm(V)),
        ("lp3", "norm(v, p = 3)", np.sum(np.abs(V) ** 3) ** (1 / 3)),
        ("frobenius", "frobenius(a)", np.linalg.norm(A, "fro")),
        ("norm_axis", "norm(a, axis = 1)", np.linalg.norm(A, axis=1)),
        ("clamp", "clamp(a, min = -1.0, max = 1.0)", np.clip(A, -1.0, 1.0)),
        ("var_by_hand", "mean((a - mean(a, axis = 1, keepdims = true)) ** 2, axis = 1)", np.var(A, axis=1)),
    ]


def enc(x):
    if np.isnan(x):
        return "nan"
    if np.isinf(x):
        return "inf" if x > 0 else "-inf"
    return float(x)


out = []
for case in CASES:
    name, expr, val = case[:3]
    rtol = case[3] if len(case) > 3 else 1e-10
    val = np.asarray(val, dtype=np.float64)
    out.append(
        {
            "name": name,
            "src": PRELUDE + f"\nlet result = {expr}\n",
            "shape": list(val.shape),
            "rtol": rtol,
            "values": [enc(x) for x in val.reshape(-1)],
        }
    )
print(json.dumps({"numpy": np.__version__, "cases": out}, indent=1))
