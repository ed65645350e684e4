"""The sweep's grid: MLPs on Fashion-MNIST of the shapes d2l's exercises and
its readers train, from 64 to 1024 hidden units, one to three hidden
layers, batches of 32 to 512, ReLU, tanh and sigmoid, SGD and AdamW.

A point is NAME: (hidden widths, activation, batch, optimizer). Its matmul
work per sample counts 2mnk for each product of a step: every layer's
forward and weight gradient, and the input gradient of every layer but the
first (as ../shared/bench/common.py counts the bench's MLP)."""

POINTS = {
    "w256-relu-b256-sgd": ([256], "relu", 256, "sgd"),
    "w64-relu-b32-sgd": ([64], "relu", 32, "sgd"),
    "w128x2-tanh-b64-sgd": ([128, 128], "tanh", 64, "sgd"),
    "w512-relu-b128-adamw": ([512], "relu", 128, "adamw"),
    "w1024-relu-b512-sgd": ([1024], "relu", 512, "sgd"),
    "w256x3-relu-b256-sgd": ([256, 256, 256], "relu", 256, "sgd"),
    "w256x2-sigmoid-b128-sgd": ([256, 256], "sigmoid", 128, "sgd"),
    "w512x2-tanh-b256-adamw": ([512, 512], "tanh", 256, "adamw"),
    "w1024x2-relu-b256-adamw": ([1024, 1024], "relu", 256, "adamw"),
    "w64x3-sigmoid-b512-sgd": ([64, 64, 64], "sigmoid", 512, "sgd"),
    "w128-tanh-b32-adamw": ([128], "tanh", 32, "adamw"),
    "w256x2-relu-b64-adamw": ([256, 256], "relu", 64, "adamw"),
}

N_IN, N_OUT, N_TRAIN = 784, 10, 60000


def widths(point):
    hidden, _, _, _ = POINTS[point]
    return [N_IN] + list(hidden) + [N_OUT]


def flops_per_sample(point):
    w = widths(point)
    layers = list(zip(w[:-1], w[1:]))
    fwd = sum(2 * a * b for a, b in layers)
    dx = sum(2 * a * b for a, b in layers[1:])
    return 2 * fwd + dx


def lr(point):
    return 1e-3 if POINTS[point][3] == "adamw" else 0.1
