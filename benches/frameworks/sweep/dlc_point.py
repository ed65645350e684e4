#!/usr/bin/env python3
"""One point of the sweep (points.py) in dlc: the point's MLP written as a
.dl program (`program(point)`, also `--print`), trained by `dlc train
--json` on the IDX data, and reported in the JSON lines peers.py prints
(kind epoch per measured epoch, then train_summary).

    dlc_point.py --point w256x2-relu-b64-adamw --threads 2 --data DIR

The binary is $DLC, else this repository's target/release/dlc."""
import argparse, json, os, statistics, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import points  # noqa: E402


def program(point):
    """The point's MLP: d2l's initialization, cross-entropy, SGD or AdamW
    (no weight decay, as the peers)."""
    hidden, act, batch, opt = points.POINTS[point]
    w = points.widths(point)
    lines = ["data bench = idx(\"bench-data\", scale = 1/255, classes = 10)", "",
             f"model net(x: f32[B, {w[0]}]) -> f32[B, {w[-1]}] {{"]
    for i, (a, b) in enumerate(zip(w[:-1], w[1:])):
        lines.append(f"    param W{i}: f32[{a}, {b}] = normal(0.01)")
        lines.append(f"    param b{i}: f32[{b}] = zeros")
    h = "x"
    for i in range(len(w) - 2):
        lines.append(f"    let h{i} = {act}({h} @ W{i} + b{i})")
        h = f"h{i}"
    last = len(w) - 2
    lines.append(f"    {h} @ W{last} + b{last}")
    lines.append("}")
    rule = "adamw(lr = 0.001, weight_decay = 0)" if opt == "adamw" else "sgd(lr = 0.1)"
    lines += ["", "train main: net on bench {", "    loss = cross_entropy(output, label)",
              f"    optimizer = {rule}", f"    batch = {batch}", "    epochs = 4", "    seed = 42",
              "    metrics = [loss, acc]", "}", ""]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--point", required=True, choices=sorted(points.POINTS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--print", action="store_true", help="print the program and stop")
    ap.add_argument("--extra", default="", help="more dlc train flags (e.g. --profile)")
    a = ap.parse_args()
    if a.print:
        print(program(a.point), end="")
        return 0
    dlc = os.environ.get("DLC") or os.path.join(HERE, "..", "..", "..", "target", "release", "dlc")
    with tempfile.NamedTemporaryFile("w", suffix=".dl", delete=False) as f:
        f.write(program(a.point))
    cmd = [dlc, "train", f.name, "--data", a.data, "--threads", str(a.threads),
           "--epochs", str(a.warmup + a.epochs), "--json", "--quiet"] + a.extra.split()
    run = subprocess.run(cmd, capture_output=True, text=True)
    os.unlink(f.name)
    if run.returncode != 0:
        sys.stderr.write(run.stderr)
        return run.returncode
    if a.extra:
        sys.stderr.write(run.stderr)
    lines = [json.loads(l) for l in run.stdout.splitlines() if l.startswith("{")]
    epochs = [l for l in lines if l.get("event") == "epoch"][a.warmup:]
    base = {"framework": "dlc", "point": a.point, "threads": a.threads, "batch": points.POINTS[a.point][2]}
    for e in epochs:
        print(json.dumps(dict(base, kind="epoch", epoch=e["epoch"] - 1, seconds=e["seconds"])))
    med = statistics.median(e["seconds"] for e in epochs)
    fl = points.flops_per_sample(a.point) * points.N_TRAIN
    print(json.dumps(dict(base, kind="train_summary", median_s=med, gflops=fl / med / 1e9)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
