#!/usr/bin/env python3
"""Golden values for dlc's optimizers (tests/optimizers.rs), from NumPy.

A 3-4-1 ReLU MLP with d2l's squared loss (the batch mean of (y_hat - y)^2 / 2)
takes 50 steps on fixed batches under each optimizer, written from the update
rules as torch.optim's documentation states them (SGD with momentum and
Nesterov, Adam with bias correction, AdamW, RMSprop) and, for SGD, with
decoupled weight decay. Every case runs in float64 and in float32 (NumPy
computing in that dtype throughout).

dlc reads features and regression labels as f32 and the learning rate as an
f32 input, so the inputs, the labels, the initial weights and the learning
rates here are f32 values in both dtypes.

Run from the project root (needs NumPy):

    python3 tests/golden/gen_optim.py > tests/golden/optim.json
"""
import json

import numpy as np

STEPS, BATCH = 50, 8
rng = np.random.default_rng(20261128)
f32 = lambda a: np.asarray(a, dtype=np.float32)

init = {
    "W1": f32(rng.normal(0, 0.5, (3, 4))),
    "b1": f32(rng.normal(0, 0.1, (4,))),
    "W2": f32(rng.normal(0, 0.5, (4, 1))),
    "b2": f32(rng.normal(0, 0.1, (1,))),
}
batches = []
for _ in range(STEPS):
    x = f32(rng.normal(0, 1, (BATCH, 3)))
    y = f32(x @ np.array([[2.0], [-3.4], [1.0]]) + 4.2 + rng.normal(0, 0.1, (BATCH, 1)))
    batches.append((x, y))


def grads(p, x, y, dt):
    h_pre = x @ p["W1"] + p["b1"]
    h = np.maximum(h_pre, dt(0))
    out = h @ p["W2"] + p["b2"]
    # loss = mean((out - y)^2 / 2): d loss / d out = (out - y) / B
    d_out = (out - y) / dt(x.shape[0])
    g = {"W2": h.T @ d_out, "b2": d_out.sum(axis=0)}
    d_h = (d_out @ p["W2"].T) * (h_pre > 0).astype(dt)
    g["W1"] = x.T @ d_h
    g["b1"] = d_h.sum(axis=0)
    return g


def sgd(lr, momentum=0.0, nesterov=False, decay=0.0, decayed=()):
    def step(p, g, s, t, dt):
        for k in p:
            d = g[k]
            if momentum:
                s[k] = dt(momentum) * s.get(k, np.zeros_like(p[k])) + d
                d = d + dt(momentum) * s[k] if nesterov else s[k]
            if k in decayed:
                p[k] = p[k] * (dt(1) - dt(lr) * dt(decay))
            p[k] = p[k] - dt(lr) * d
    return step


def adam(lr, beta1=0.9, beta2=0.999, eps=1e-8, decay=0.0, decayed=()):
    def step(p, g, s, t, dt):
        for k in p:
            m = dt(beta1) * s.get("m" + k, np.zeros_like(p[k])) + dt(1 - beta1) * g[k]
            v = dt(beta2) * s.get("v" + k, np.zeros_like(p[k])) + dt(1 - beta2) * g[k] * g[k]
            s["m" + k], s["v" + k] = m, v
            m_hat = m / (dt(1) - dt(beta1) ** dt(t))
            v_hat = v / (dt(1) - dt(beta2) ** dt(t))
            if k in decayed:
                p[k] = p[k] * (dt(1) - dt(lr) * dt(decay))
            p[k] = p[k] - dt(lr) * (m_hat / (np.sqrt(v_hat) + dt(eps)))
    return step


def rmsprop(lr, alpha=0.99, eps=1e-8):
    def step(p, g, s, t, dt):
        for k in p:
            v = dt(alpha) * s.get(k, np.zeros_like(p[k])) + dt(1 - alpha) * g[k] * g[k]
            s[k] = v
            p[k] = p[k] - dt(lr) * (g[k] / (np.sqrt(v) + dt(eps)))
    return step


# (name, dlc's optimizer setting, dlc's weight_decay setting, reference)
lr = lambda v: float(np.float32(v))
CASES = [
    ("sgd_momentum_decoupled", "sgd(lr = 0.02, momentum = 0.9)", "decoupled(0.1, [W1, W2])",
     sgd(lr(0.02), momentum=0.9, decay=0.1, decayed=("W1", "W2"))),
    ("sgd_nesterov", "sgd(lr = 0.02, momentum = 0.9, nesterov = true)", None,
     sgd(lr(0.02), momentum=0.9, nesterov=True)),
    ("adam", "adam(lr = 0.01)", None, adam(lr(0.01))),
    ("adam_betas", "adam(lr = 0.02, beta1 = 0.8, beta2 = 0.99, eps = 1e-6)", None,
     adam(lr(0.02), beta1=0.8, beta2=0.99, eps=1e-6)),
    ("adamw", "adamw(lr = 0.01, weight_decay = 0.1)", None,
     adam(lr(0.01), decay=0.1, decayed=("W1", "W2"))),
    ("rmsprop", "rmsprop(lr = 0.01, alpha = 0.9)", None, rmsprop(lr(0.01), alpha=0.9)),
]

cases = []
for name, opt, wd, step in CASES:
    for dtype, dt in (("f64", np.float64), ("f32", np.float32)):
        p = {k: v.astype(dt) for k, v in init.items()}
        s = {}
        with np.errstate(all="raise"):
            for t, (x, y) in enumerate(batches, start=1):
                step(p, grads(p, x.astype(dt), y.astype(dt), dt), s, t, dt)
        cases.append({
            "name": f"{name}_{dtype}", "dtype": dtype, "optimizer": opt, "weight_decay": wd,
            "final": {k: v.astype(np.float64).ravel().tolist() for k, v in p.items()},
        })

print(json.dumps({
    "steps": STEPS,
    "batch": BATCH,
    "init": {k: v.astype(np.float64).ravel().tolist() for k, v in init.items()},
    "batches": [{"x": x.astype(np.float64).ravel().tolist(),
                 "y": y.astype(np.float64).ravel().tolist()} for x, y in batches],
    "cases": cases,
}, indent=1))
