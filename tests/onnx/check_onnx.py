"""Checks a dlc ONNX export with a real client (run by tests/onnx.rs).

    python check_onnx.py MODEL.onnx CKPT INPUT DLC_RAW.csv

onnx.checker (full_check) must accept MODEL; onnxruntime's outputs on
INPUT (a .npy of model input, or a CSV / IDX file encoded with the
checkpoint's preprocessing by tools/dlc_preprocess.py) at batch sizes 1,
96 and 256 must equal dlc's raw outputs (`dlc predict --raw`) to 1e-5.
"""

import csv
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))
import dlc_preprocess  # noqa: E402


def main(model_path, ckpt, data, raw_csv):
    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == 8, model.ir_version
    assert [o.version for o in model.opset_import] == [17]
    if data.endswith(".npy"):
        x = np.load(data)
    else:
        prep = dlc_preprocess.read_preprocessing(ckpt)
        if prep["input"]["source"] == "idx":
            rows = dlc_preprocess.encode_idx(prep, data)
        else:
            rows = dlc_preprocess.encode_csv(prep, data)[1]
        x = np.array(rows, dtype=np.float32)
    inp = model.graph.input[0]
    dims = [d.dim_value for d in inp.type.tensor_type.shape.dim[1:]]
    assert inp.type.tensor_type.shape.dim[0].dim_param == "B"
    x = x.reshape([x.shape[0]] + dims).astype(np.float32)
    with open(raw_csv, newline="") as f:
        rec = list(csv.reader(f))
    cols = [i for i, h in enumerate(rec[0]) if h == "output" or h.startswith("output_")]
    want = np.array([[float(r[i]) for i in cols] for r in rec[1:]])
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    worst = 0.0
    for batch in (1, 96, 256):
        got = np.concatenate(
            [session.run(None, {inp.name: x[i : i + batch]})[0] for i in range(0, len(x), batch)]
        ).reshape(len(x), -1)
        err = np.abs(got - want) / np.maximum(1.0, np.abs(want))
        worst = max(worst, float(err.max()))
        if err.max() > 1e-5:
            r = int(err.max(axis=1).argmax())
            print(f"batch {batch}: row {r}: onnxruntime {got[r]}, dlc {want[r]}")
            return 1
    print(f"{len(x)} rows, batches 1, 96, 256: largest difference {worst:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
