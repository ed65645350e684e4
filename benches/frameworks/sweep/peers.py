#!/usr/bin/env python3
"""One point of the sweep (points.py) in NumPy (primed), PyTorch,
torch.compile or JAX, with ../shared/bench's workload: its data loading,
thread pinning, batch order and epoch definition (common.py), and its
recipe generalized from the one-layer MLP of bench_train.py to any hidden
widths and activation — d2l's N(0, 0.01²) weights, zero biases,
cross-entropy, SGD or torch.optim.AdamW's update.

    peers.py --framework torch --point w256x2-relu-b64-adamw --threads 2 --data DIR

prints a JSON line per measured epoch (kind epoch, with `point`), then a
train_summary line. BENCH names the bench folder (default
../../../../shared/bench from here)."""
import argparse, os, sys

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.environ.get("BENCH") or os.path.join(HERE, "..", "..", "..", "..", "shared", "bench")
sys.path.insert(0, os.path.abspath(BENCH))
sys.path.insert(0, HERE)
import common  # noqa: E402
import points  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--framework", required=True, choices=["numpy_primed", "torch", "torch_compile", "jax"])
ap.add_argument("--point", required=True, choices=sorted(points.POINTS))
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--data", required=True)
ap.add_argument("--epochs", type=int, default=3)
ap.add_argument("--warmup", type=int, default=1)
ap.add_argument("--seed", type=int, default=0)
args = ap.parse_args()
common.setup_threads(args.threads)

import numpy as np  # noqa: E402

HIDDEN, ACT, BS, OPT = points.POINTS[args.point]
W = points.widths(args.point)
LR = points.lr(args.point)
ADAM = OPT == "adamw"
B1, B2, EPS = 0.9, 0.999, 1e-8
D = common.load_data(args.data)
NTR = D["Xtr"].shape[0]


def init_params():
    r = np.random.default_rng(args.seed + 1000)
    p = {}
    for i, (a, b) in enumerate(zip(W[:-1], W[1:])):
        p[f"W{i}"] = (0.01 * r.standard_normal((a, b))).astype(np.float32)
        p[f"b{i}"] = np.zeros(b, np.float32)
    return p


L = len(W) - 1


# ---------------------------------------------------------------- numpy
def make_numpy():
    P = init_params()
    X, y = D["Xtr"], D["ytr"]
    state = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in P.items()}
    t = [0]

    def act(z):
        if ACT == "relu":
            return np.maximum(z, 0)
        if ACT == "tanh":
            return np.tanh(z)
        return 1 / (1 + np.exp(-z))

    def dact(h, z):
        if ACT == "relu":
            return z > 0
        if ACT == "tanh":
            return 1 - h * h
        return h * (1 - h)

    def update(k, g):
        if not ADAM:
            P[k] -= np.float32(LR) * g
            return
        m, v = state[k]
        m *= np.float32(B1); m += np.float32(1 - B1) * g
        v *= np.float32(B2); v += np.float32(1 - B2) * (g * g)
        c1, c2 = 1 - B1 ** t[0], 1 - B2 ** t[0]
        P[k] -= np.float32(LR / c1) * m / (np.sqrt(v / np.float32(c2)) + np.float32(EPS))

    def epoch(e):
        for b in common.batches(NTR, BS, e, args.seed):
            t[0] += 1
            hs, zs = [X[b]], []
            for i in range(L):
                z = hs[-1] @ P[f"W{i}"]
                z += P[f"b{i}"]
                zs.append(z)
                hs.append(act(z) if i < L - 1 else z)
            d = hs[-1]
            d -= d.max(axis=1, keepdims=True)
            np.exp(d, out=d)
            d /= d.sum(axis=1, keepdims=True)
            d[np.arange(d.shape[0]), y[b]] -= 1.0
            d *= np.float32(1.0 / d.shape[0])
            for i in reversed(range(L)):
                gW = hs[i].T @ d
                gb = d.sum(0)
                if i > 0:
                    d = (d @ P[f"W{i}"].T) * dact(hs[i], zs[i - 1])
                update(f"W{i}", gW)
                update(f"b{i}", gb)
    return epoch


# ---------------------------------------------------------------- torch
def make_torch(compiled):
    import torch
    import torch.nn as nn
    torch.set_num_threads(args.threads)
    P = init_params()
    act = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}[ACT]
    linears = [nn.Linear(a, b) for a, b in zip(W[:-1], W[1:])]
    mods = []
    for i, l in enumerate(linears):
        mods.append(l)
        if i < L - 1:
            mods.append(act())
    net = nn.Sequential(*mods)
    with torch.no_grad():
        for i, l in enumerate(linears):
            l.weight.copy_(torch.from_numpy(P[f"W{i}"].T.copy()))
            l.bias.copy_(torch.from_numpy(P[f"b{i}"]))
    lossf = nn.CrossEntropyLoss()

    class WithLoss(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x, target):
            return lossf(self.net(x), target)

    wl = WithLoss()
    params = list(net.parameters())
    if ADAM:
        try:
            opt = torch.optim.AdamW(params, lr=LR, betas=(B1, B2), eps=EPS, weight_decay=0.0, fused=True)
        except (RuntimeError, TypeError):
            opt = torch.optim.AdamW(params, lr=LR, betas=(B1, B2), eps=EPS, weight_decay=0.0, foreach=True)
    else:
        opt = torch.optim.SGD(params, lr=LR)
    X = torch.from_numpy(D["Xtr"])
    Y = torch.from_numpy(D["ytr"].astype(np.int64))
    fwd_loss, step_fn = wl, opt.step
    if compiled:
        fwd_loss = torch.compile(wl, dynamic=False)
        step_fn = torch.compile(opt.step, dynamic=False)

    def epoch(e):
        for b in common.batches(NTR, BS, e, args.seed):
            bi = torch.from_numpy(b)
            opt.zero_grad(set_to_none=True)
            fwd_loss(X[bi], Y[bi]).backward()
            step_fn()
    return epoch


# ---------------------------------------------------------------- jax
def make_jax():
    import jax
    import jax.numpy as jnp
    P = {k: jnp.asarray(v) for k, v in init_params().items()}
    X = jnp.asarray(D["Xtr"])
    Y = jnp.asarray(D["ytr"])
    act = {"relu": jax.nn.relu, "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid}[ACT]

    def loss_fn(p, x, target):
        h = x
        for i in range(L):
            h = h @ p[f"W{i}"] + p[f"b{i}"]
            if i < L - 1:
                h = act(h)
        lse = jax.nn.logsumexp(h, axis=1)
        return jnp.mean(lse - jnp.take_along_axis(h, target[:, None], axis=1)[:, 0])

    def step(p, opt, idx):
        g = jax.grad(loss_fn)(p, X[idx], Y[idx])
        if not ADAM:
            return {k: p[k] - LR * g[k] for k in p}, opt
        t = opt["t"] + 1
        c1, c2 = 1 - B1 ** t, 1 - B2 ** t
        m = {k: B1 * opt["m"][k] + (1 - B1) * g[k] for k in p}
        v = {k: B2 * opt["v"][k] + (1 - B2) * g[k] * g[k] for k in p}
        new = {k: p[k] - (LR / c1) * m[k] / (jnp.sqrt(v[k] / c2) + EPS) for k in p}
        return new, {"t": t, "m": m, "v": v}

    jstep = jax.jit(step, donate_argnums=(0, 1))
    opt0 = {"t": jnp.zeros((), jnp.float32), "m": {k: jnp.zeros_like(v) for k, v in P.items()},
            "v": {k: jnp.zeros_like(v) for k, v in P.items()}} if ADAM else {}
    state = {"p": P, "opt": opt0}

    def epoch(e):
        p, o = state["p"], state["opt"]
        for b in common.batches(NTR, BS, e, args.seed):
            p, o = jstep(p, o, b)
        jax.block_until_ready(p)
        state["p"], state["opt"] = p, o
    return epoch


if args.framework == "numpy_primed":
    # As bench_train.py: one untimed large sgemm warms OpenBLAS up.
    _c = np.ones((1024, 1024), np.float32); _c @ _c
    epoch = make_numpy()
elif args.framework in ("torch", "torch_compile"):
    epoch = make_torch(args.framework == "torch_compile")
else:
    epoch = make_jax()

base = {"framework": args.framework, "point": args.point, "threads": args.threads, "batch": BS}
for e in range(args.warmup):
    epoch(e)
times = []
for e in range(args.warmup, args.warmup + args.epochs):
    t0 = common.now(); epoch(e); dt = common.now() - t0
    times.append(dt)
    common.emit(dict(base, kind="epoch", epoch=e, seconds=dt))
fl = points.flops_per_sample(args.point) * NTR
med = common.median(times)
common.emit(dict(base, kind="train_summary", median_s=med, gflops=fl / med / 1e9))
