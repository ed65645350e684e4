#!/usr/bin/env python3
"""The preprocessing a dlc checkpoint carries, applied in Python.

dlc saves, in a checkpoint's safetensors metadata under `preprocessing`, all
it takes to turn raw rows into the model's input (docs/preprocessing.md).
This file reads it and encodes a CSV file or an IDX images file exactly as
`dlc predict` does, so that another runtime (onnxruntime, NumPy, PyTorch)
can be given the same input. It needs only the standard library.

    python3 tools/dlc_preprocess.py CKPT DATA [--ids]

prints one line per row: the model's input features (each the float32
value, written so that it reads back exactly), comma-separated; with
--ids, the identifier column first. As a module:

    prep = read_preprocessing("model.safetensors")
    ids, rows = encode_csv(prep, "new.csv")   # rows: lists of float32 values
"""

import csv
import gzip
import json
import math
import re
import struct
import sys

# The numbers dlc reads (Rust's f64 grammar): ASCII digits, an optional
# sign, point and exponent; Python's float() also takes spaces, `1_000`
# and other scripts' digits, which dlc refuses.
NUMBER = re.compile(r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)", re.IGNORECASE)


def read_preprocessing(checkpoint):
    """The `preprocessing` JSON of a dlc checkpoint, as a dict."""
    with open(checkpoint, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    meta = header.get("__metadata__", {})
    if "preprocessing" not in meta:
        raise ValueError(f"{checkpoint}: no preprocessing in its metadata")
    prep = json.loads(meta["preprocessing"])
    if prep.get("format") != "dlc preprocessing 1":
        raise ValueError(f"{checkpoint}: preprocessing format {prep.get('format')!r}")
    return prep


def f32(x):
    """x rounded to the nearest float32 (as a Python float)."""
    try:
        return struct.unpack("<f", struct.pack("<f", x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


def is_missing(cell):
    """dlc's rule: exactly `NA` and the empty field are missing."""
    return cell == "" or cell == "NA"


def encode_cell(column, cell, out):
    """Appends a cell's features to `out`; True for an unseen category."""
    if column["kind"] == "numeric":
        if is_missing(cell):
            v = column["fill"]
        else:
            v = float(cell) if NUMBER.fullmatch(cell) else math.nan
            if not math.isfinite(v):
                raise ValueError(f"column {column['name']}: {cell!r} is not a finite number")
        x = f32((v - column["shift"]) / column["scale"])
        if not math.isfinite(x):
            raise ValueError(f"column {column['name']}: {cell} is beyond float32's range once encoded")
        out.append(x)
        return False
    index = {c: i for i, c in enumerate(column["categories"])}
    hit = index.get(cell)
    out.extend(1.0 if hit == i else 0.0 for i in range(len(index)))
    if column["missing"]:
        out.append(1.0 if hit is None else 0.0)
    return hit is None and not is_missing(cell)


def encode_csv(prep, path):
    """(ids, rows) of a CSV file: each row the model's input features."""
    if prep["input"]["source"] != "csv":
        raise ValueError("the model was not trained on a CSV file")
    columns = prep["input"]["columns"]
    opener = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    with opener(path, "rt", newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = [h.lstrip("\ufeff") for h in next(reader)]
        where = {h: i for i, h in enumerate(header)}
        if len(where) != len(header):
            raise ValueError(f"{path}: a column appears twice in the header")
        id_col = prep["input"].get("id")
        known = {c["name"] for c in columns} | {prep["label"]["name"], id_col}
        known |= set(prep["input"].get("ignored", []))
        unknown = [h for h in header if h not in known]
        if unknown:
            raise ValueError(f"{path}: column {unknown[0]} was not in the training data")
        missing = [c["name"] for c in columns if c["name"] not in where]
        if missing:
            raise ValueError(f"{path}: no column {missing[0]}")
        ids, rows = [], []
        for rec in reader:
            if not rec:
                continue  # a blank line, which dlc skips too
            if len(rec) != len(header):
                raise ValueError(f"{path}: line {reader.line_num} has {len(rec)} fields, the header {len(header)}")
            out = []
            for c in columns:
                encode_cell(c, rec[where[c["name"]]], out)
            rows.append(out)
            if id_col is not None and id_col in where:
                ids.append(rec[where[id_col]])
    return ids, rows


def encode_idx(prep, path):
    """The rows of an IDX images file: each value times the scale, as float32."""
    scale = prep["input"]["scale"]
    raw = open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    kind, rank = raw[2], raw[3]
    dims = struct.unpack(f">{rank}I", raw[4 : 4 + 4 * rank])
    fmt = {0x08: "B", 0x09: "b", 0x0B: "h", 0x0C: "i", 0x0D: "f", 0x0E: "d"}[kind]
    size = struct.calcsize(fmt)
    width = math.prod(dims[1:])
    body = raw[4 + 4 * rank :]
    values = struct.unpack(f">{dims[0] * width}{fmt}", body[: dims[0] * width * size])
    return [[f32(v * scale) for v in values[r * width : (r + 1) * width]] for r in range(dims[0])]


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    prep = read_preprocessing(argv[0])
    if prep["input"]["source"] == "npy":
        print(f"the model reads NumPy arrays: each value times {prep['input']['scale']}, as float32", file=sys.stderr)
        return 1
    if prep["input"]["source"] == "idx":
        ids, rows = [], encode_idx(prep, argv[1])
    else:
        ids, rows = encode_csv(prep, argv[1])
    with_ids = "--ids" in argv[2:]
    w = csv.writer(sys.stdout, lineterminator="\n")
    for i, row in enumerate(rows):
        w.writerow(([ids[i]] if with_ids and ids else []) + [repr(v) for v in row])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
