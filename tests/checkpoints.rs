//! What a checkpoint must be before any command uses it, and before it is
//! saved: finite numbers only, the model it was trained as, preprocessing
//! that makes sense; and the same bytes from the same run. Run the way a
//! user runs them.

mod cmd;

use std::collections::HashMap;
use std::path::Path;

use cmd::{dlc, ok, scratch, text};

const PROGRAM: &str = r#"
# A regression on d.csv.
data d = csv("d.csv", label = "y", test = 0.25)
model linear(x: f32[B, D]) -> f32[B, 1] {
    param w: f32[D, 1] = zeros
    param b: f32[1] = zeros
    tanh(x @ w + b) * 10.0
}
train fit: linear on d {
    loss = squared_loss(output, label)
    optimizer = sgd(lr = 0.05)
    batch = 4
    epochs = 2
}
"#;

fn folder(name: &str) -> std::path::PathBuf {
    cmd::trained_regression(name, PROGRAM)
}

/// Rewrites the checkpoint at `path`: `f` may change its tensors (name →
/// f32 values) and its metadata.
fn rewrite(
    path: &Path,
    f: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>, &mut HashMap<String, String>),
) {
    let bytes = std::fs::read(path).expect("checkpoint");
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).expect("header");
    let mut meta: HashMap<String, String> = meta.metadata().clone().expect("metadata");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| {
            let v = t
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (n, t.shape().to_vec(), v)
        })
        .collect();
    f(&mut tensors, &mut meta);
    let raw: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(n, s, v)| (n, s, v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = raw
        .iter()
        .map(|(n, s, b)| {
            let v = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                .expect("view");
            (n.clone(), v)
        })
        .collect();
    let out = safetensors::serialize(views, Some(meta)).expect("serialize");
    std::fs::write(path, out).expect("write");
}

/// Every command that reads a checkpoint, on `ckpt`.
fn readers(ckpt: &str) -> Vec<Vec<String>> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    vec![
        s(&["eval", "p.dl", "--load", ckpt]),
        s(&[
            "predict", "p.dl", "--load", ckpt, "--input", "new.csv", "--out", "o.csv",
        ]),
        s(&["export", "p.dl", "--load", ckpt, "--out", "m.onnx"]),
        s(&["export", "p.dl", "--load", ckpt, "--out", "m.npz"]),
        s(&["train", "p.dl", "--resume", ckpt, "--epochs", "3"]),
    ]
}

fn refused_by_all(d: &Path, ckpt: &str, says: &str) {
    for args in readers(ckpt) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = dlc(d, &args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "dlc {}: {err}", args.join(" "));
        assert!(err.contains(says), "dlc {}: {err}", args.join(" "));
        assert!(!d.join("o.csv").exists() && !d.join("m.onnx").exists());
    }
}

#[test]
fn a_checkpoint_with_a_non_finite_value_is_refused_by_every_command() {
    let d = folder("ckpt-nonfinite");
    for (k, bad) in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY]
        .into_iter()
        .enumerate()
    {
        let name = format!("bad{k}.st");
        std::fs::copy(d.join("m.st"), d.join(&name)).expect("copy");
        rewrite(&d.join(&name), |t, _| {
            let w = t.iter_mut().find(|(n, _, _)| n == "param.w").expect("w");
            w.2[1] = bad;
        });
        refused_by_all(&d, &name, "param.w holds");
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_checkpoint_of_a_changed_model_is_refused_and_a_changed_comment_is_a_note() {
    let d = folder("ckpt-changed");
    // The same parameters, another activation: refused everywhere.
    std::fs::write(d.join("p.dl"), PROGRAM.replace("tanh(", "sigmoid(")).expect("edit");
    refused_by_all(&d, "m.st", "saved from a different model");
    // A comment and the recipe changed, the model not: used, with a note.
    let edited = PROGRAM
        .replace("# A regression", "# Still a regression")
        .replace("lr = 0.05", "lr = 0.01");
    std::fs::write(d.join("p.dl"), edited).expect("edit");
    for args in readers("m.st") {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = dlc(&d, &args);
        // Training and eval print their notes with their report.
        let err = text(&out.stderr) + &text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "dlc {}: {err}", args.join(" "));
        assert!(
            err.contains("saved from a different version of the program"),
            "dlc {}: {err}",
            args.join(" ")
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// A change to a checkpoint's preprocessing document.
type Edit = Box<dyn Fn(&mut serde_json::Value)>;

#[test]
fn preprocessing_that_makes_no_sense_is_refused() {
    let d = folder("ckpt-prep");
    let edits: Vec<(&str, Edit)> = vec![
        (
            "not positive",
            Box::new(|p| p["input"]["columns"][0]["scale"] = (-2.0).into()),
        ),
        ("twice", Box::new(|p| p["input"]["id"] = "a".into())),
        (
            "twice",
            Box::new(|p| p["input"]["ignored"] = serde_json::json!(["b"])),
        ),
    ];
    for (k, (says, edit)) in edits.into_iter().enumerate() {
        let name = format!("prep{k}.st");
        std::fs::copy(d.join("m.st"), d.join(&name)).expect("copy");
        rewrite(&d.join(&name), |_, meta| {
            let mut p: serde_json::Value =
                serde_json::from_str(&meta["preprocessing"]).expect("json");
            edit(&mut p);
            meta.insert("preprocessing".into(), p.to_string());
        });
        let out = dlc(
            &d,
            &[
                "predict", "p.dl", "--load", &name, "--input", "new.csv", "--out", "-",
            ],
        );
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains(says), "{name}: {err}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_parameter_that_turns_nan_under_a_finite_loss_stops_training_and_is_not_saved() {
    let d = folder("ckpt-nan-param");
    // `c` is read only under a mask that is never true, through sqrt of a
    // negative number: its gradient is 0 · NaN, the loss stays finite.
    let program = PROGRAM.replace(
        "    tanh(x @ w + b) * 10.0",
        "    param c: f32[1] = zeros\n    tanh(x @ w + b) * 10.0 + where(x[:, 0:1] > 1e9, sqrt(c - 1.0), 0.0)",
    );
    std::fs::write(d.join("nan.dl"), program).expect("program");
    let out = dlc(&d, &["train", "nan.dl", "--save", "nan.st"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("parameter `c` holds NaN"), "{err}");
    assert!(!d.join("nan.st").exists(), "a diverged model was saved");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn identical_runs_write_identical_checkpoints() {
    let d = folder("ckpt-bytes");
    for k in 0..3 {
        ok(&dlc(
            &d,
            &[
                "train",
                "p.dl",
                "--save",
                &format!("again{k}.st"),
                "--quiet",
            ],
        ));
    }
    let first = std::fs::read(d.join("m.st")).expect("read");
    for k in 0..3 {
        assert_eq!(
            std::fs::read(d.join(format!("again{k}.st"))).expect("read"),
            first
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn predict_refuses_a_batch_beyond_memory_and_reports_overflowed_predictions() {
    let d = folder("ckpt-predict-sizes");
    let out = dlc(
        &d,
        &[
            "predict",
            "p.dl",
            "--load",
            "m.st",
            "--input",
            "new.csv",
            "--out",
            "o.csv",
            "--batch",
            "1000000000000",
        ],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("needs about"), "{err}");
    assert!(!d.join("o.csv").exists());
    // A linear model on values near float32's limit overflows to ±inf.
    std::fs::write(
        d.join("p2.dl"),
        PROGRAM.replace("tanh(x @ w + b) * 10.0", "x @ w + b"),
    )
    .expect("program");
    ok(&dlc(&d, &["train", "p2.dl", "--save", "lin.st", "--quiet"]));
    std::fs::write(
        d.join("huge.csv"),
        "a,b\n1,1\n3e38,-3e38\n2,2\n-3e38,3e38\n",
    )
    .expect("csv");
    let out = dlc(
        &d,
        &[
            "predict", "p2.dl", "--load", "lin.st", "--input", "huge.csv", "--out", "-",
        ],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("2 of 4 predictions are not finite"), "{err}");
    assert!(err.contains("row 2"), "{err}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn every_k_fold_model_starts_from_its_own_initialization() {
    let d = folder("ckpt-kfold-init");
    // A learning rate too small to move a float32: the saved fold models
    // are their initial parameters.
    let program = PROGRAM
        .replace(
            "param w: f32[D, 1] = zeros",
            "param w: f32[D, 1] = normal(0.5)",
        )
        .replace("lr = 0.05", "lr = 1e-30")
        .replace("epochs = 2", "epochs = 1\n    kfold = 3");
    std::fs::write(d.join("k.dl"), program).expect("program");
    ok(&dlc(&d, &["train", "k.dl", "--save", "k.st", "--quiet"]));
    let bytes = std::fs::read(d.join("k.st")).expect("checkpoint");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let w = |f: usize| {
        st.tensor(&format!("fold{f}.param.w"))
            .expect("w")
            .data()
            .to_vec()
    };
    assert_ne!(w(1), w(2), "folds 1 and 2 start from the same parameters");
    assert_ne!(w(2), w(3), "folds 2 and 3 start from the same parameters");
    assert_ne!(w(1), w(3));
    // Reproducible: the same seed, the same fold models.
    ok(&dlc(&d, &["train", "k.dl", "--save", "k2.st", "--quiet"]));
    assert_eq!(std::fs::read(d.join("k2.st")).expect("read"), bytes);
    let _ = std::fs::remove_dir_all(&d);
}

/// The parameters and metadata epoch of a checkpoint.
fn params_of(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).expect("checkpoint");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let mut v: Vec<(String, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n.starts_with("param."))
        .map(|(n, t)| (n, t.data().to_vec()))
        .collect();
    v.sort();
    v
}

/// `dlc train --json`'s lines of `event`.
fn events(out: &std::process::Output, event: &str) -> Vec<serde_json::Value> {
    text(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["event"] == event)
        .collect()
}

#[test]
fn a_run_with_early_stopping_resumes_as_if_trained_straight_through() {
    let d = scratch("ckpt-early-resume");
    let csv = cmd::root().join("programs/data/breast_cancer.csv");
    let program = format!(
        r#"data cancer = csv("{}", label = "target", classes = 2, standardize = true, test = 0.25)
model logistic(x: f32[B, D]) -> f32[B, 1] {{
    param W: f32[D, 1] = zeros
    param b: f32[1] = zeros
    x @ W + b
}}
train logistic on cancer {{
    loss = binary_cross_entropy(output, label)
    optimizer = adam(lr = 0.05)
    batch = 32
    epochs = 60
    seed = 7
    valid = 0.25
    early_stop = patience(3, valid_loss)
    metrics = [loss, acc]
}}
"#,
        csv.display()
    );
    std::fs::write(d.join("es.dl"), program).expect("program");
    let straight = dlc(&d, &["train", "es.dl", "--json", "--save", "straight.st"]);
    ok(&straight);
    let stop = &events(&straight, "early_stop")[0];
    let (best, stopped) = (
        stop["best_epoch"].as_u64().expect("best"),
        stop["stopped_epoch"].as_u64().expect("it stopped"),
    );
    let epoch_lines = events(&straight, "epoch");
    let final_line = &events(&straight, "final")[0];
    // Interrupted before the best epoch, between it and the stop, and
    // after the stop; each resumed to the program's 60 epochs.
    for k in [best.saturating_sub(1).max(1), best + 1, stopped] {
        let part = format!("part{k}.st");
        ok(&dlc(
            &d,
            &[
                "train",
                "es.dl",
                "--json",
                "--epochs",
                &k.to_string(),
                "--save",
                &part,
            ],
        ));
        let res = format!("resumed{k}.st");
        let resumed = dlc(
            &d,
            &[
                "train", "es.dl", "--json", "--resume", &part, "--save", &res,
            ],
        );
        ok(&resumed);
        let what = format!("interrupted after epoch {k} (best {best}, stopped {stopped})");
        assert_eq!(
            params_of(&d.join(&res)),
            params_of(&d.join("straight.st")),
            "{what}"
        );
        assert_eq!(
            events(&resumed, "early_stop"),
            events(&straight, "early_stop"),
            "{what}"
        );
        let fin = &events(&resumed, "final")[0];
        for key in ["test_loss", "test_acc", "epochs"] {
            assert_eq!(fin[key], final_line[key], "{what}: {key}");
        }
        // The epochs it trained are the straight run's.
        for e in events(&resumed, "epoch") {
            let n = e["epoch"].as_u64().expect("epoch") as usize;
            for key in ["train_loss", "valid_loss", "valid_acc"] {
                assert_eq!(e[key], epoch_lines[n - 1][key], "{what}: epoch {n} {key}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn predict_and_export_need_only_the_program_and_the_checkpoint() {
    let d = scratch("ckpt-deployed");
    std::fs::create_dir_all(d.join("data")).expect("dir");
    std::fs::copy(
        cmd::root().join("programs/data/penguins.csv"),
        d.join("data/penguins.csv"),
    )
    .expect("copy");
    let program = r#"
data penguins = csv("data/penguins.csv", label = "species", standardize = true, test = 0.2, drop = ["year"])
model softmax(x: f32[B, D]) -> f32[B, C] {
    param W: f32[D, C] = zeros
    param b: f32[C] = zeros
    x @ W + b
}
train softmax on penguins {
    loss = cross_entropy(output, label)
    optimizer = sgd(lr = 0.1)
    batch = 16
    epochs = 3
    metrics = [loss, acc]
}
"#;
    std::fs::write(d.join("p.dl"), program).expect("program");
    ok(&dlc(&d, &["train", "p.dl", "--save", "m.st", "--quiet"]));
    // New rows: the training file without its label, columns shuffled.
    let rows = std::fs::read_to_string(d.join("data/penguins.csv")).expect("csv");
    let mut new = String::new();
    for line in rows.lines().take(40) {
        let c: Vec<&str> = line.split(',').collect();
        new.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            c[6], c[1], c[2], c[3], c[4], c[5], c[7]
        ));
    }
    std::fs::write(d.join("new.csv"), new).expect("new");
    let predict = [
        "predict", "p.dl", "--load", "m.st", "--input", "new.csv", "--out", "-", "--proba",
    ];
    let with_data = ok(&dlc(&d, &predict));
    ok(&dlc(
        &d,
        &["export", "p.dl", "--load", "m.st", "--out", "with.onnx"],
    ));
    // Deployed: the training data is gone.
    std::fs::remove_dir_all(d.join("data")).expect("rm");
    let out = dlc(&d, &predict);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), with_data);
    assert!(
        with_data.starts_with("species,p_Adelie,p_Chinstrap,p_Gentoo\n"),
        "{with_data}"
    );
    ok(&dlc(
        &d,
        &["export", "p.dl", "--load", "m.st", "--out", "without.onnx"],
    ));
    assert_eq!(
        std::fs::read(d.join("with.onnx")).expect("onnx"),
        std::fs::read(d.join("without.onnx")).expect("onnx")
    );
    let out = dlc(&d, &["export", "p.dl", "--load", "m.st", "--out", "m.npz"]);
    ok(&out);
    assert!(
        text(&out.stderr).contains("wrote the parameters as NumPy arrays to m.npz"),
        "export says what it wrote: {}",
        text(&out.stderr)
    );
    // Commands that need the data still say it is missing.
    let out = dlc(&d, &["eval", "p.dl", "--load", "m.st"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("penguins.csv"),
        "{}",
        text(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// An IDX file: magic (0, 0, u8 code 0x08, rank), dims big-endian, bytes.
fn write_idx(path: &Path, dims: &[u32], payload: &[u8]) {
    let mut b = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend(payload);
    std::fs::write(path, b).expect("idx");
}

#[test]
fn an_image_model_predicts_without_its_training_folder() {
    let d = scratch("ckpt-deployed-idx");
    std::fs::create_dir_all(d.join("data")).expect("dir");
    let pixels = |n: usize, seed: usize| -> Vec<u8> {
        (0..n * 16)
            .map(|i| ((i * 37 + seed * 11) % 251) as u8)
            .collect()
    };
    let labels = |n: usize| -> Vec<u8> { (0..n).map(|i| (i % 2) as u8).collect() };
    for (split, n) in [("train", 20), ("t10k", 10)] {
        write_idx(
            &d.join(format!("data/{split}-images-idx3-ubyte")),
            &[n, 4, 4],
            &pixels(n as usize, 1),
        );
        write_idx(
            &d.join(format!("data/{split}-labels-idx1-ubyte")),
            &[n],
            &labels(n as usize),
        );
    }
    write_idx(&d.join("new-images"), &[7, 4, 4], &pixels(7, 3));
    std::fs::write(
        d.join("p.dl"),
        "data d = idx(\"data\", scale = 1 / 255, classes = 2, names = [\"dark\", \"light\"])\nmodel m(x: f32[B, D]) -> f32[B, 2] {\n    param w: f32[D, 2] = normal(0.1)\n    x @ w\n}\ntrain m on d {\n    loss = cross_entropy(output, label)\n    optimizer = sgd(lr = 0.1)\n    epochs = 2\n}\n",
    )
    .expect("program");
    ok(&dlc(&d, &["train", "p.dl", "--save", "m.st", "--quiet"]));
    let predict = [
        "predict",
        "p.dl",
        "--load",
        "m.st",
        "--input",
        "new-images",
        "--out",
        "-",
        "--raw",
    ];
    let with_data = ok(&dlc(&d, &predict));
    assert_eq!(with_data.lines().count(), 8, "{with_data}");
    std::fs::remove_dir_all(d.join("data")).expect("rm");
    let out = dlc(&d, &predict);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), with_data);
    let _ = std::fs::remove_dir_all(&d);
}
