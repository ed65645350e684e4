//! ONNX export checked by a real client: every run of every program in
//! programs/ is trained for an epoch, exported, checked by
//! `onnx.checker.check_model(full_check=True)` and run by onnxruntime at
//! batch sizes 1, 96 and 256, whose outputs must equal dlc's to 1e-5
//! (tests/onnx/check_onnx.py). It runs where Python can import onnx,
//! onnxruntime and numpy (`DLC_PYTHON`, else `python3`; `.ci/run` makes
//! such a virtual environment) and says so when it skips.

mod cmd;

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use cmd::{dlc, root, text};

/// A Python that imports onnx, onnxruntime and numpy, if there is one.
fn python() -> Option<String> {
    let py = std::env::var("DLC_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let ok = Command::new(&py)
        .args(["-c", "import onnx, onnxruntime, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(py)
}

/// The program's runs, as `dlc` lists them.
fn runs(program: &Path) -> Vec<String> {
    let p = program.to_str().expect("utf-8");
    let out = dlc(&root(), &["train", p, "--run", "?"]);
    let err = text(&out.stderr);
    let list = err.split("the runs are: ").nth(1).expect("a list of runs");
    list.trim().split(", ").map(str::to_string).collect()
}

/// The file a CSV program reads: `csv("data/x.csv", ...)`.
fn csv_file(src: &str) -> Option<PathBuf> {
    // `csv("file", ...)`, or broken after `(` as `dlc fmt` lays a long call.
    let after = src.find("csv(")? + 4;
    let at = after + src[after..].find('"')? + 1;
    let end = src[at..].find('"')? + at;
    Some(root().join("programs").join(&src[at..end]))
}

/// 300 rows of `width` values in [-2, 2) as a float32 .npy.
fn npy(path: &Path, width: usize) {
    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
    common::write_npy_f32(path, (300, width), |_| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
    });
}

#[test]
fn onnxruntime_runs_every_exported_program_like_dlc() {
    let Some(py) = python() else {
        eprintln!("skipped: no Python with onnx, onnxruntime and numpy (set DLC_PYTHON, or see README: .ci/run makes one)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("dlc-onnx-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let script = root().join("tests/onnx/check_onnx.py");
    let mut programs: Vec<PathBuf> = std::fs::read_dir(root().join("programs"))
        .expect("programs")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "dl"))
        .collect();
    programs.sort();
    let mut checked = Vec::new();
    let mut not_exported = Vec::new();
    for program in &programs {
        let src = std::fs::read_to_string(program).expect("program");
        let p = program.to_str().expect("utf-8");
        for run in runs(program) {
            let ck = dir.join(format!("{run}.safetensors"));
            let ck_s = ck.to_str().expect("utf-8");
            let train = dlc(
                &dir,
                &[
                    "train", p, "--run", &run, "--epochs", "1", "--save", ck_s, "--quiet",
                ],
            );
            assert_eq!(
                train.status.code(),
                Some(0),
                "{p} {run}: {}",
                text(&train.stderr)
            );
            let model = dir.join(format!("{run}.onnx"));
            let model_s = model.to_str().expect("utf-8");
            let export = dlc(
                &dir,
                &["export", p, "--run", &run, "--load", ck_s, "--out", model_s],
            );
            if export.status.code() != Some(0) {
                not_exported.push(format!("{p} {run}: {}", text(&export.stderr).trim()));
                continue;
            }
            // The test set of a file's data; generated data has none on
            // disk, so 300 rows of model input.
            let input = if src.contains("idx(") {
                root().join("programs/data/fashion-mnist/t10k-images-idx3-ubyte.gz")
            } else if let Some(f) = csv_file(&src) {
                f
            } else {
                let bytes = std::fs::read(&ck).expect("checkpoint");
                let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).expect("meta");
                let meta = meta.metadata().clone().expect("metadata");
                let prep = dlc::data::prep::Preprocessing::from_json(&meta["preprocessing"], "ck")
                    .expect("preprocessing");
                let f = dir.join(format!("{run}-x.npy"));
                npy(&f, prep.width);
                f
            };
            let input_s = input.to_str().expect("utf-8");
            let raw = dir.join(format!("{run}-raw.csv"));
            let raw_s = raw.to_str().expect("utf-8");
            let pred = dlc(
                &dir,
                &[
                    "predict", p, "--run", &run, "--load", ck_s, "--input", input_s, "--out",
                    raw_s, "--raw",
                ],
            );
            assert_eq!(
                pred.status.code(),
                Some(0),
                "{p} {run}: {}",
                text(&pred.stderr)
            );
            let check = Command::new(&py)
                .arg(&script)
                .args([model_s, ck_s, input_s, raw_s])
                .output()
                .expect("python runs");
            assert!(
                check.status.success(),
                "{p} {run}: {}{}",
                text(&check.stdout),
                text(&check.stderr)
            );
            checked.push(format!("{p} {run}: {}", text(&check.stdout).trim()));
        }
    }
    eprintln!("{}", checked.join("\n"));
    // Every program's model exports (none uses linalg or random draws in
    // its output).
    assert!(not_exported.is_empty(), "{not_exported:?}");
    assert!(checked.len() >= programs.len(), "{checked:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_op_onnx_cannot_express_is_an_error_naming_it_and_its_line() {
    let dir = std::env::temp_dir().join(format!("dlc-onnx-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let program = r#"data d = linear(w = [2, -3.4], b = 4.2, n_train = 64, n_test = 16)
model m(x: f32[B, 2]) -> f32[B, 1] {
    param A: f32[2, 2] = constant(1)
    param w: f32[2, 1] = zeros
    x @ inv(A + eye(2)) @ w
}
train main: m on d {
    loss = squared_loss(output, label)
    optimizer = sgd(lr = 0.01)
    epochs = 1
}
"#;
    std::fs::write(dir.join("inv.dl"), program).expect("w");
    let out = dlc(
        &dir,
        &["train", "inv.dl", "--save", "m.safetensors", "--quiet"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = dlc(
        &dir,
        &[
            "export",
            "inv.dl",
            "--load",
            "m.safetensors",
            "--out",
            "m.onnx",
        ],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("`linalg inv` (inv.dl:5) has no ONNX counterpart"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!dir.join("m.onnx").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
