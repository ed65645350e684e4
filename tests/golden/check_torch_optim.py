#!/usr/bin/env python3
"""A one-off cross-check of optim.json against torch.optim itself.

tests/optimizers.rs checks dlc against optim.json, which gen_optim.py writes
from the update rules as torch.optim's documentation states them. This
script runs torch.optim's own Adam, AdamW, SGD (Nesterov) and RMSprop on the
same 3-4-1 MLP, initial weights and 50 batches (read from optim.json), and
prints, per case and dtype, the largest relative difference between
torch's final parameters and the golden file's. dlc's decoupled decay of
chosen parameters is torch's per-group weight_decay (W1 and W2 decayed,
the biases not); SGD with *decoupled* decay has no torch.optim form and is
skipped.

Needs torch (not a test dependency; ../shared/bench/README.md says how to
install it):

    python3 tests/golden/check_torch_optim.py
"""
import json
import os

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
gold = json.load(open(os.path.join(HERE, "optim.json")))
SHAPES = {"W1": (3, 4), "b1": (4,), "W2": (4, 1), "b2": (1,)}
B = gold["batch"]


def optimizer(name, groups):
    decayed, plain = groups
    if name == "sgd_nesterov":
        return torch.optim.SGD(decayed + plain, lr=0.02, momentum=0.9, nesterov=True)
    if name == "adam":
        return torch.optim.Adam(decayed + plain, lr=0.01)
    if name == "adam_betas":
        return torch.optim.Adam(decayed + plain, lr=0.02, betas=(0.8, 0.99), eps=1e-6)
    if name == "adamw":
        return torch.optim.AdamW([{"params": decayed, "weight_decay": 0.1},
                                  {"params": plain, "weight_decay": 0.0}], lr=0.01)
    if name == "rmsprop":
        return torch.optim.RMSprop(decayed + plain, lr=0.01, alpha=0.9)
    return None


worst_all = 0.0
for case in gold["cases"]:
    name, dtype = case["name"].rsplit("_", 1)
    dt = torch.float64 if dtype == "f64" else torch.float32
    p = {k: torch.tensor(v, dtype=dt).reshape(SHAPES[k]).requires_grad_()
         for k, v in gold["init"].items()}
    # The learning rates are f32 values in the golden file (dlc's lr input
    # is f32); torch gets the same by rounding them here.
    opt = optimizer(name, ([p["W1"], p["W2"]], [p["b1"], p["b2"]]))
    if opt is None:
        print(f"{case['name']:<28} skipped (no torch.optim form)")
        continue
    for g in opt.param_groups:
        g["lr"] = float(torch.tensor(g["lr"], dtype=torch.float32))
    for batch in gold["batches"]:
        x = torch.tensor(batch["x"], dtype=dt).reshape(B, 3)
        y = torch.tensor(batch["y"], dtype=dt).reshape(B, 1)
        out = torch.relu(x @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]
        loss = ((out - y) ** 2).mean() / 2
        opt.zero_grad()
        loss.backward()
        opt.step()
    worst = 0.0
    for k, want in case["final"].items():
        got = p[k].detach().to(torch.float64).reshape(-1)
        want = torch.tensor(want, dtype=torch.float64)
        rel = ((got - want).abs() / want.abs().clamp(min=1e-3)).max().item()
        worst = max(worst, rel)
    worst_all = max(worst_all, worst) if dtype == "f64" else worst_all
    print(f"{case['name']:<28} max relative difference {worst:.2e}")
print(f"f64 worst: {worst_all:.2e}")
