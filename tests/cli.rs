//! The binary, run the way a user runs it: exit codes and output streams.

use std::process::{Command, Stdio};

fn dlc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dlc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("dlc runs")
}

#[test]
fn check_accepts_a_good_program() {
    let out = dlc(&["check", "programs/mlp.dl"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn check_rejects_a_bad_program_with_exit_1() {
    let out = dlc(&["check", "tests/ui/matmul_mismatch.dl"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("E0200") && err.contains("[B,784]") && err.contains("[785,10]"),
        "{err}"
    );
}

#[test]
fn a_missing_file_is_a_one_line_error() {
    let out = dlc(&["check", "no/such/program.dl"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("no/such/program.dl"));
}

#[test]
fn bad_flags_exit_2() {
    assert_eq!(dlc(&["check"]).status.code(), Some(2));
    assert_eq!(
        dlc(&["check", "programs/mlp.dl", "--frobnicate"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        dlc(&["ir", "programs/mlp.dl", "--stage", "nope"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(dlc(&["launch"]).status.code(), Some(2));
    assert_eq!(
        dlc(&["train", "programs/linreg.dl", "--batch", "0"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        dlc(&["train", "programs/linreg.dl", "--epochs", "0"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        dlc(&["train", "programs/linreg.dl", "--lr", "-1"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn train_accepts_every_documented_flag() {
    let plot = std::env::temp_dir().join(format!("dlc-flags-{}.svg", std::process::id()));
    let out = dlc(&[
        "train",
        "programs/linreg.dl",
        "--epochs",
        "1",
        "--batch",
        "64",
        "--lr",
        "0.1",
        "--seed",
        "1",
        "--threads",
        "1",
        "--run",
        "sgd",
        "--json",
        "--quiet",
        "--profile",
        "--grad-norms",
        "--verbose",
        "--no-opt",
        "--no-pass",
        "fuse",
        "--prefetch",
        "--plot",
        plot.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(plot.exists());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("not built yet"));
    // Without --quiet, --verbose reports kernels and memory before and
    // after the passes, for the step and the eval function.
    let verbose = dlc(&[
        "train",
        "programs/linreg.dl",
        "--run",
        "sgd",
        "--epochs",
        "1",
        "--verbose",
    ]);
    let text = String::from_utf8_lossy(&verbose.stdout);
    assert!(
        text.contains("kernels and memory at batch 10")
            && text.contains("training step")
            && text.contains("eval function"),
        "{text}"
    );
    // Four columns: each function before and after the passes, and the
    // passes leave fewer kernels.
    let kernels: Vec<usize> = text
        .lines()
        .find(|l| l.starts_with("  kernels "))
        .expect("a kernels row")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    assert_eq!(kernels.len(), 4, "{text}");
    assert!(kernels[1] < kernels[0] && kernels[3] < kernels[2], "{text}");
    // A pass that is not one is a bad flag.
    let bad = dlc(&["train", "programs/linreg.dl", "--no-pass", "bogus"]);
    assert_eq!(bad.status.code(), Some(2));
    let _ = std::fs::remove_file(&plot);
}

#[test]
fn ir_prints_the_typed_stage_on_stdout() {
    let out = dlc(&[
        "ir",
        "programs/linreg.dl",
        "--stage",
        "typed",
        "--run",
        "sgd",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("matmul") && text.contains("# linreg.dl:"),
        "{text}"
    );
    assert!(
        !text.contains("closed_form"),
        "--run selects one run:\n{text}"
    );
}

#[test]
fn unknown_run_is_a_user_error() {
    let out = dlc(&["ir", "programs/linreg.dl", "--run", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sgd, closed_form"));
}

#[test]
fn data_flag_replaces_the_data_source() {
    let out = dlc(&["check", "programs/mlp.dl", "--data", "no/such/mnist"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no/such/mnist"));
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dlc"))
        .args(["ir", "programs/mlp_dropout.dl"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dlc runs");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("dlc ends");
    assert_ne!(out.status.code(), Some(101));
    assert!(out.status.code().is_some(), "killed by a signal");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn binary_input_is_refused_cleanly() {
    let dir = std::env::temp_dir().join(format!("dlc-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let f = dir.join("bin.dl");
    std::fs::write(&f, [0xff, 0xfe, 0x00, 0x41]).expect("write");
    let out = dlc(&["check", f.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not UTF-8"));
}

fn json_lines(out: &std::process::Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

fn params_of(line: &serde_json::Value, name: &str) -> Vec<f64> {
    line["params"][name]
        .as_array()
        .unwrap_or_else(|| panic!("no param {name} in {line}"))
        .iter()
        .map(|v| v.as_f64().unwrap_or(f64::NAN))
        .collect()
}

#[test]
fn train_recovers_linear_regression_by_sgd_and_in_closed_form() {
    for run in ["sgd", "closed_form"] {
        let out = dlc(&["train", "programs/linreg.dl", "--run", run, "--json"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines = json_lines(&out);
        for l in &lines {
            assert!(l["event"].is_string() && l["run"] == run, "{l}");
            assert!(
                l.as_object()
                    .is_some_and(|o| o.values().all(|v| !v.is_null())),
                "{l}"
            );
        }
        let last = lines.last().expect("a final line");
        assert_eq!(last["event"], "final");
        assert_eq!(last["final"], true);
        let w = params_of(last, "w");
        let b = params_of(last, "b");
        assert!(
            (w[0] - 2.0).abs() < 0.01 && (w[1] + 3.4).abs() < 0.01,
            "{run}: w = {w:?}"
        );
        assert!((b[0] - 4.2).abs() < 0.01, "{run}: b = {b:?}");
        if run == "sgd" {
            assert_eq!(lines.iter().filter(|l| l["event"] == "epoch").count(), 3);
            assert!(last["compile_ms"].as_f64().is_some_and(|ms| ms > 0.0));
            // The test set's inference, timed apart from compiling.
            assert!(last["infer_seconds"].as_f64().is_some_and(|s| s > 0.0));
            if cfg!(target_os = "linux") {
                assert!(last["peak_rss_bytes"].as_u64().is_some_and(|b| b > 1 << 20));
            }
        }
    }
}

#[test]
fn train_flags_override_the_recipe_and_seeded_runs_repeat() {
    let a = dlc(&[
        "train",
        "programs/linreg.dl",
        "--run",
        "sgd",
        "--json",
        "--epochs",
        "1",
        "--seed",
        "7",
    ]);
    let b = dlc(&[
        "train",
        "programs/linreg.dl",
        "--run",
        "sgd",
        "--json",
        "--epochs",
        "1",
        "--seed",
        "7",
    ]);
    let (la, lb) = (json_lines(&a), json_lines(&b));
    assert_eq!(la.iter().filter(|l| l["event"] == "epoch").count(), 1);
    assert_eq!(
        la[0]["train_loss"], lb[0]["train_loss"],
        "same seed, same losses"
    );
    let c = dlc(&[
        "train",
        "programs/linreg.dl",
        "--run",
        "sgd",
        "--json",
        "--epochs",
        "1",
        "--seed",
        "8",
    ]);
    assert_ne!(la[0]["train_loss"], json_lines(&c)[0]["train_loss"]);
    let quiet = dlc(&["train", "programs/linreg.dl", "--run", "sgd", "--quiet"]);
    assert_eq!(quiet.status.code(), Some(0));
    // Quiet drops the table, not the result.
    let q = String::from_utf8_lossy(&quiet.stdout);
    assert!(
        q.starts_with("run sgd: final:") && q.lines().count() == 1,
        "{q}"
    );
    assert!(quiet.stderr.is_empty());
}

#[test]
fn k_fold_reports_each_fold_the_mean_and_the_ensembles_test_score() {
    let out = dlc(&["train", "programs/kfold.dl", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    let folds: Vec<_> = lines.iter().filter(|l| l["event"] == "fold").collect();
    assert_eq!(folds.len(), 5);
    for (i, f) in folds.iter().enumerate() {
        assert_eq!(f["fold"], i + 1);
        assert_eq!(f["folds"], 5);
        assert!(
            f["valid_log_rmse"]
                .as_f64()
                .is_some_and(|v| v > 0.0 && v < 0.5),
            "{f}"
        );
    }
    let summary = lines
        .iter()
        .find(|l| l["event"] == "kfold")
        .expect("a kfold line");
    let mean = summary["mean_valid_log_rmse"].as_f64().expect("mean");
    let by_hand = folds
        .iter()
        .map(|f| f["valid_log_rmse"].as_f64().unwrap_or(0.0))
        .sum::<f64>()
        / 5.0;
    assert!((mean - by_hand).abs() < 1e-12);
    assert!(summary["std_valid_log_rmse"].as_f64().is_some());
    let last = lines.last().expect("final");
    assert_eq!(last["event"], "final");
    assert!(
        last["test_log_rmse"].as_f64().is_some_and(|v| v < 0.2),
        "{last}"
    );
}

#[test]
fn a_program_too_large_for_memory_is_refused_with_an_estimate() {
    let check = dlc(&["check", "tests/programs/huge.dl"]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let out = dlc(&["train", "tests/programs/huge.dl"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("GiB") && err.contains("needs about"), "{err}");
}

#[test]
fn softmax_regression_trains_on_fashion_mnist() {
    // One epoch of d2l §3.6 on the real files (60000 images): d2l's first
    // epoch reaches about 0.75 train accuracy and 0.79 test accuracy.
    let out = dlc(&["train", "programs/softmax.dl", "--epochs", "1", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    let epoch = &lines[0];
    assert_eq!(epoch["event"], "epoch");
    assert!(
        epoch["train_acc"].as_f64().is_some_and(|a| a > 0.70),
        "{epoch}"
    );
    let last = lines.last().expect("final");
    assert!(
        last["test_acc"].as_f64().is_some_and(|a| a > 0.75),
        "{last}"
    );
    assert!(
        last["params"].get("W").is_none(),
        "7840 elements are too many to list"
    );
    assert_eq!(last["params"]["b"].as_array().map(|a| a.len()), Some(10));
}

#[test]
fn a_validation_split_is_reported_every_epoch() {
    let out = dlc(&[
        "train",
        "programs/mlp_dropout.dl",
        "--epochs",
        "1",
        "--json",
        "--batch",
        "512",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    let epoch = &lines[0];
    assert!(
        epoch["valid_acc"].as_f64().is_some_and(|a| a > 0.3),
        "{epoch}"
    );
    assert!(epoch["valid_loss"].as_f64().is_some(), "{epoch}");
}

#[test]
fn checkpoints_save_resume_and_evaluate() {
    let dir = std::env::temp_dir().join(format!("dlc-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let ck = dir.join("linreg.safetensors");
    let ck_s = ck.to_str().expect("utf-8");
    // 1 epoch, saved; resumed to 3 epochs: the same as 3 epochs straight.
    let first = dlc(&[
        "train",
        "programs/linreg.dl",
        "--run",
        "sgd",
        "--epochs",
        "1",
        "--save",
        ck_s,
        "--json",
    ]);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(ck.exists());
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    let resumed = dlc(&[
        "train",
        "programs/linreg.dl",
        "--run",
        "sgd",
        "--epochs",
        "3",
        "--resume",
        ck_s,
        "--json",
    ]);
    let straight = dlc(&[
        "train",
        "programs/linreg.dl",
        "--run",
        "sgd",
        "--epochs",
        "3",
        "--json",
    ]);
    let (r, s) = (json_lines(&resumed), json_lines(&straight));
    assert_eq!(
        r.iter().filter(|l| l["event"] == "epoch").count(),
        2,
        "epochs 2 and 3 only"
    );
    assert_eq!(
        r.last().expect("final")["params"],
        s.last().expect("final")["params"]
    );
    // dlc eval reports the saved model's metrics.
    let ev = dlc(&[
        "eval",
        "programs/linreg.dl",
        "--run",
        "sgd",
        "--load",
        ck_s,
        "--json",
    ]);
    assert_eq!(
        ev.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ev.stderr)
    );
    let e = json_lines(&ev);
    assert_eq!(e.len(), 1);
    assert_eq!(
        e[0]["params"],
        json_lines(&first).last().expect("final")["params"]
    );
    // A checkpoint of another shape, or not a checkpoint at all, is a clear error.
    let wrong = dlc(&[
        "eval",
        "programs/weight_decay.dl",
        "--run",
        "penalty",
        "--load",
        ck_s,
    ]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("param.w has shape [2, 1]"));
    let junk = dir.join("junk.safetensors");
    std::fs::write(&junk, b"not a checkpoint").expect("write");
    let bad = dlc(&[
        "eval",
        "programs/linreg.dl",
        "--run",
        "sgd",
        "--load",
        junk.to_str().expect("utf-8"),
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a safetensors checkpoint"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn grad_norms_show_vanishing_gradients() {
    // d2l §4.8: with N(0, 0.01²) weights the first layer's gradient of a
    // deep sigmoid network is orders of magnitude below Xavier's.
    let out = dlc(&[
        "train",
        "programs/init.dl",
        "--epochs",
        "1",
        "--grad-norms",
        "--json",
        "--batch",
        "1024",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    let norm = |run: &str| -> f64 {
        let l = lines
            .iter()
            .find(|l| l["event"] == "epoch" && l["run"] == run)
            .expect("an epoch line");
        l["grad_norms"]["W1"].as_f64().expect("W1's norm")
    };
    let (xavier, small) = (norm("xavier"), norm("small_normal"));
    assert!(small * 20.0 < xavier, "xavier {xavier}, small {small}");
}

#[test]
fn imbalanced_classes_train_with_a_focal_loss_and_a_weighted_sampler() {
    let out = dlc(&["train", "programs/imbalanced.dl", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = json_lines(&out).pop().expect("final");
    assert!(last["test_acc"].as_f64().is_some_and(|a| a > 0.9), "{last}");
}

#[test]
fn a_diverging_learning_rate_stops_with_the_epoch_and_batch() {
    let out = dlc(&["train", "programs/linreg.dl", "--run", "sgd", "--lr", "1e6"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("diverged") && err.contains("epoch 1, batch"),
        "{err}"
    );
}

/// Writes an IDX file (big-endian header, u8 payload) to `path`.
fn write_idx(path: &std::path::Path, dims: &[u32], payload: &[u8]) {
    let mut b = vec![0u8, 0, 8, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(payload);
    std::fs::write(path, b).expect("write idx");
}

/// A Fashion-MNIST-shaped folder of tiny IDX files, with `tweak` applied.
fn idx_folder(name: &str, tweak: impl Fn(&std::path::Path)) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("dlc-bad-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    for split in ["train", "t10k"] {
        write_idx(
            &dir.join(format!("{split}-images-idx3-ubyte")),
            &[4, 28, 28],
            &vec![7u8; 4 * 784],
        );
        write_idx(
            &dir.join(format!("{split}-labels-idx1-ubyte")),
            &[4],
            &[0, 1, 2, 3],
        );
    }
    tweak(&dir);
    dir
}

fn one_line_error(args: &[&str], needle: &str) {
    let out = dlc(args);
    assert_eq!(out.status.code(), Some(1), "{args:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    // One error: a one-line message, or one diagnostic when the checker
    // already finds it from the file's metadata.
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("error") || l.contains("] Error:"))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(err.contains(needle), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_data_gives_one_line_errors() {
    let ok = idx_folder("ok", |_| {});
    let out = dlc(&[
        "train",
        "programs/softmax.dl",
        "--data",
        ok.to_str().expect("utf-8"),
        "--epochs",
        "1",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the tiny folder itself trains: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cases: Vec<(std::path::PathBuf, &str)> = vec![
        (
            idx_folder("missing", |d| {
                std::fs::remove_file(d.join("t10k-labels-idx1-ubyte")).expect("rm")
            }),
            "no such file",
        ),
        (
            idx_folder("magic", |d| {
                std::fs::write(
                    d.join("train-labels-idx1-ubyte"),
                    [1u8, 2, 8, 1, 0, 0, 0, 4, 0, 1, 2, 3],
                )
                .expect("w")
            }),
            "magic",
        ),
        (
            idx_folder("count", |d| {
                write_idx(&d.join("train-labels-idx1-ubyte"), &[3], &[0, 1, 2])
            }),
            "counts differ",
        ),
        (
            idx_folder("truncated", |d| {
                // A gzip stream cut in half, under the .gz name.
                let raw = std::fs::read(d.join("train-images-idx3-ubyte")).expect("read");
                let mut gz =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                std::io::Write::write_all(&mut gz, &raw).expect("gz");
                let bytes = gz.finish().expect("gz");
                std::fs::remove_file(d.join("train-images-idx3-ubyte")).expect("rm");
                std::fs::write(
                    d.join("train-images-idx3-ubyte.gz"),
                    &bytes[..bytes.len() / 2],
                )
                .expect("w");
            }),
            "train-images-idx3-ubyte.gz",
        ),
    ];
    for (dir, needle) in cases {
        one_line_error(
            &[
                "train",
                "programs/softmax.dl",
                "--data",
                dir.to_str().expect("utf-8"),
                "--epochs",
                "1",
            ],
            needle,
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    let _ = std::fs::remove_dir_all(&ok);
}

#[test]
fn bad_csv_gives_one_line_errors() {
    let dir = std::env::temp_dir().join(format!("dlc-badcsv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let ragged = dir.join("ragged.csv");
    std::fs::write(&ragged, "a,b,body_mass_g\n1,2,3\n4,5\n").expect("w");
    one_line_error(
        &[
            "train",
            "programs/kfold.dl",
            "--data",
            ragged.to_str().expect("utf-8"),
        ],
        "line 3",
    );
    // Text in the numeric label column of a regression: the scan finds the
    // column categorical, and the regression metrics are refused.
    let text = dir.join("text.csv");
    let mut rows = String::from("a,body_mass_g\n2,heavy\n");
    for i in 0..10 {
        rows.push_str(&format!("{i},{}\n", 3000 + i));
    }
    std::fs::write(&text, rows).expect("w");
    one_line_error(
        &[
            "train",
            "programs/kfold.dl",
            "--data",
            text.to_str().expect("utf-8"),
        ],
        "class labels",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unwritable_save_path_fails_and_leaves_the_old_checkpoint() {
    let dir = std::env::temp_dir().join(format!("dlc-save-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let ck = dir.join("keep.safetensors");
    let ck_s = ck.to_str().expect("utf-8");
    let first = dlc(&[
        "train",
        "programs/linreg.dl",
        "--run",
        "sgd",
        "--epochs",
        "1",
        "--save",
        ck_s,
    ]);
    assert_eq!(first.status.code(), Some(0));
    let before = std::fs::read(&ck).expect("saved");
    one_line_error(
        &[
            "train",
            "programs/linreg.dl",
            "--run",
            "sgd",
            "--epochs",
            "1",
            "--save",
            "/nonexistent-dir/x.safetensors",
        ],
        "/nonexistent-dir does not exist",
    );
    // A checkpoint of another program is refused by name and shape.
    one_line_error(
        &[
            "train",
            "programs/weight_decay.dl",
            "--run",
            "penalty",
            "--resume",
            ck_s,
        ],
        "does not fit run penalty",
    );
    assert_eq!(std::fs::read(&ck).expect("still there"), before);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_terminal_gets_a_progress_bar_and_a_pipe_does_not() {
    // `script` gives the command a pseudo-terminal; skip where it is absent.
    let Ok(out) = Command::new("script")
        .args([
            "-qec",
            &format!(
                "{} train programs/softmax.dl --epochs 1",
                env!("CARGO_BIN_EXE_dlc")
            ),
            "/dev/null",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
    else {
        return;
    };
    if !out.status.success() {
        return;
    }
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(tty.contains("batches") && tty.contains("loss"), "{tty}");
    let piped = dlc(&["train", "programs/linreg.dl", "--run", "sgd"]);
    assert!(!String::from_utf8_lossy(&piped.stderr).contains("batches"));
}

#[test]
fn dlc_data_summarizes_parts_classes_and_columns() {
    let out = dlc(&["data", "programs/mlp.dl"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // Fashion-MNIST after /255: mean 0.2860, std 0.3530; 6000 images per class.
    assert!(
        text.contains("train: 60000 samples of [28, 28] features (mean 0.2860, std 0.3530)"),
        "{text}"
    );
    // Classes by the names the program declares.
    assert!(text.contains("ankle boot 6000 (10.0%)"), "{text}");
    let csv = dlc(&["data", "programs/kfold.dl"]);
    let text = String::from_utf8_lossy(&csv.stdout);
    assert!(
        text.contains("sex") && text.contains("11 missing") && text.contains("one-hot ×3"),
        "{text}"
    );
}

use dlc::plot::svg_texts;

#[test]
fn plot_draws_learning_curves_with_axis_labels_and_a_legend() {
    let dir = std::env::temp_dir().join(format!("dlc-plot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let svg = dir.join("curves.svg");
    let out = dlc(&[
        "train",
        "programs/linreg.dl",
        "--plot",
        svg.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Two runs: the SGD run draws curves-sgd.svg; the closed form has no
    // epochs and says so.
    let text = std::fs::read_to_string(dir.join("curves-sgd.svg")).expect("curves-sgd.svg");
    let texts = svg_texts(&text);
    for want in [
        "epoch",
        "loss",
        "RMSE",
        "train loss",
        "train rmse",
        "run sgd",
    ] {
        assert!(texts.iter().any(|t| t == want), "{want} not in {texts:?}");
    }
    assert!(!dir.join("curves-closed_form.svg").exists());
    assert!(String::from_utf8_lossy(&out.stdout).contains("no learning curves"));

    // PNG: K-fold draws the first fold's train and validation curves.
    let png = dir.join("kfold.png");
    let out = dlc(&[
        "train",
        "programs/kfold.dl",
        "--epochs",
        "5",
        "--quiet",
        "--plot",
        png.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let img = image::open(&png).expect("a PNG").to_rgb8();
    assert_eq!(img.dimensions(), (1040, 400));
    // Both curves' colours are on it.
    assert!(img.pixels().any(|p| p.0 == [31, 119, 180]));
    assert!(img.pixels().any(|p| p.0 == [255, 127, 14]));

    // A picture must be .svg or .png: a bad flag, exit 2.
    let bad = dlc(&["train", "programs/linreg.dl", "--plot", "curves.jpg"]);
    assert_eq!(bad.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn profile_charges_kernel_time_to_source_lines() {
    let out = dlc(&["train", "programs/linreg.dl", "--run", "sgd", "--profile"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("profile:"), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("x @ w + b"))
        .expect("the model's line is in the profile");
    assert!(line.contains("linreg.dl:"), "{line}");
    assert!(text.contains("slowest kernels"), "{text}");
    assert!(text.contains("matmul"), "{text}");
}

#[test]
fn data_show_draws_samples_with_their_class_names() {
    let dir = std::env::temp_dir().join(format!("dlc-show-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let svg = dir.join("samples.svg");
    let out = dlc(&[
        "data",
        "programs/mlp.dl",
        "--show",
        "4",
        "--out",
        svg.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Fashion-MNIST's first four training images: ankle boot, t-shirt,
    // t-shirt, dress (labels 9, 0, 0, 3).
    let texts = svg_texts(&std::fs::read_to_string(&svg).expect("written"));
    let captions: Vec<&String> = texts
        .iter()
        .filter(|t| ["ankle boot", "t-shirt", "dress"].contains(&t.as_str()))
        .collect();
    assert_eq!(captions, ["ankle boot", "t-shirt", "t-shirt", "dress"]);

    let png = dir.join("samples.png");
    let out = dlc(&[
        "data",
        "programs/mlp.dl",
        "--out",
        png.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(image::open(&png).is_ok());

    // Without names, classes are numbers; tabular data prints rows.
    let rows = dlc(&["data", "programs/imbalanced.dl", "--show", "3"]);
    assert_eq!(rows.status.code(), Some(0));
    let text = String::from_utf8_lossy(&rows.stdout);
    assert!(text.contains("the first 3 training samples"), "{text}");
    // ... and cannot be drawn.
    let bad = dlc(&[
        "data",
        "programs/imbalanced.dl",
        "--out",
        png.to_str().expect("utf-8"),
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not images"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn house_prices_from_shared_data_train_by_k_fold() {
    // d2l §4.10 on Kaggle's house prices, which are not committed: this
    // runs only where ../shared/data holds them.
    let csv = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/house-prices/kaggle_house_pred_train.csv");
    if !csv.exists() {
        eprintln!("skipped: {} is absent", csv.display());
        return;
    }
    let summary = dlc(&["data", "tests/programs/house_prices.dl"]);
    assert_eq!(
        summary.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&summary.stderr)
    );
    let text = String::from_utf8_lossy(&summary.stdout);
    assert!(text.contains("CSV 1460 rows, 79 feature columns"), "{text}");
    // Exactly `NA` is missing: 6965 cells in 19 columns (the data README's
    // count); MasVnrType's `None` is a category.
    let missing: Vec<usize> = text
        .lines()
        .filter_map(|l| l.split("; ").nth(1)?.strip_suffix(" missing")?.parse().ok())
        .collect();
    assert_eq!(missing.iter().sum::<usize>(), 6965, "{text}");
    assert_eq!(missing.iter().filter(|m| **m > 0).count(), 19, "{text}");
    let mas = text
        .lines()
        .find(|l| l.trim_start().starts_with("MasVnrType"))
        .expect("MasVnrType");
    assert!(mas.contains("8 missing"), "{mas}");

    let out = dlc(&["train", "tests/programs/house_prices.dl", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    assert_eq!(lines.iter().filter(|l| l["event"] == "fold").count(), 5);
    let kfold = lines
        .iter()
        .find(|l| l["event"] == "kfold")
        .expect("the summary");
    // d2l's linear model reaches about 0.17 averaged over its folds.
    let mean = kfold["mean_valid_log_rmse"].as_f64().expect("mean");
    assert!(mean > 0.05 && mean < 0.25, "{kfold}");
    let last = lines.last().expect("final");
    let test = last["test_log_rmse"].as_f64().expect("test log rmse");
    assert!(test < 0.25, "{last}");
}

/// The REPL driven through a pipe, as a script would: one result per input,
/// no prompts, errors as diagnostics on stderr that leave the session alive
/// (stderr is merged into stdout by the shell, in order), and exit 1 at the
/// end because some inputs failed.
#[test]
fn repl_transcript_through_a_pipe() {
    use std::io::Write;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = std::fs::read_to_string(root.join("tests/repl/session.dl")).expect("script");
    // :save writes into the working folder: a scratch one.
    let dir = std::env::temp_dir().join(format!("dlc-repl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch folder");
    let mut child = Command::new("sh")
        .current_dir(&dir)
        .arg("-c")
        .arg(format!("'{}' repl 2>&1", env!("CARGO_BIN_EXE_dlc")))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("dlc repl starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("script written");
    let out = child.wait_with_output().expect("dlc repl ends");
    // The transcript shows errors on purpose: every input still runs, and
    // then the script exits 1.
    assert_eq!(out.status.code(), Some(1), "exit {:?}", out.status);
    assert!(dir.join("tensors.safetensors").exists());
    let _ = std::fs::remove_dir_all(&dir);
    let raw = String::from_utf8_lossy(&out.stdout);
    // Buffer addresses differ from run to run: name them in order of
    // appearance, so the snapshot shows which are the same.
    let mut seen: Vec<String> = Vec::new();
    let text: String = raw
        .lines()
        .map(|l| {
            if l.starts_with("compiled in ") {
                // :time's figures vary; its form does not.
                let kernels = l.split(['(', ')']).nth(1).unwrap_or("");
                format!("compiled in <ms> ({kernels}); <µs> per run\n")
            } else if l.starts_with("0x") && l[2..].chars().all(|c| c.is_ascii_hexdigit()) {
                let k = seen.iter().position(|a| a == l).unwrap_or_else(|| {
                    seen.push(l.to_string());
                    seen.len() - 1
                });
                format!("<buffer {}>\n", k + 1)
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert_eq!(
        seen.len(),
        2,
        "x += 1 keeps the buffer, let makes a new one:\n{text}"
    );
    // Nothing after :quit runs.
    assert!(!text.trim_end().ends_with("[[ 0.  1.  2.  3.]"));
    insta::assert_snapshot!(text);
}

/// The members of a stored (uncompressed) zip archive, in order: name and
/// data, each checked against its CRC-32.
fn zip_members(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]) as usize;
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
    let mut members = Vec::new();
    let mut at = 0;
    while u32_at(at) == 0x0403_4b50 {
        assert_eq!(u16_at(at + 8), 0, "stored, not compressed");
        let (crc, size) = (u32_at(at + 14), u32_at(at + 18) as usize);
        let (name_len, extra) = (u16_at(at + 26), u16_at(at + 28));
        let name = String::from_utf8(bytes[at + 30..at + 30 + name_len].to_vec()).expect("utf-8");
        let start = at + 30 + name_len + extra;
        let data = bytes[start..start + size].to_vec();
        let mut c = flate2::Crc::new();
        c.update(&data);
        assert_eq!(c.sum(), crc, "{name}: CRC-32");
        members.push((name, data));
        at = start + size;
    }
    assert_eq!(u32_at(at), 0x0201_4b50, "the central directory follows");
    let end = bytes.len() - 22;
    assert_eq!(
        u32_at(end),
        0x0605_4b50,
        "the archive ends with its directory's end"
    );
    assert_eq!(
        u16_at(end + 10),
        members.len(),
        "every member is in the directory"
    );
    members
}

/// `dlc export --format npz` writes the checkpoint's parameters as `.npy`
/// members under their names, with their shapes and values (and NumPy
/// reads them, where it is installed); a bad destination is one line and
/// exit 1.
#[test]
fn export_npz_holds_the_checkpoints_parameters() {
    let dir = std::env::temp_dir().join(format!("dlc-npz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (ck, npz) = (dir.join("m.safetensors"), dir.join("m.npz"));
    let (ck_s, npz_s) = (ck.to_str().expect("utf-8"), npz.to_str().expect("utf-8"));
    let train = dlc(&[
        "train",
        "programs/linreg.dl",
        "--run",
        "sgd",
        "--epochs",
        "2",
        "--save",
        ck_s,
        "--quiet",
    ]);
    assert_eq!(
        train.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&train.stderr)
    );
    let export = dlc(&[
        "export",
        "programs/linreg.dl",
        "--run",
        "sgd",
        "--load",
        ck_s,
        "--out",
        npz_s,
    ]);
    assert_eq!(
        export.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let checkpoint = std::fs::read(&ck).expect("checkpoint");
    let tensors = safetensors::SafeTensors::deserialize(&checkpoint).expect("safetensors");
    let members = zip_members(&std::fs::read(&npz).expect("npz"));
    let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["w.npy", "b.npy"]);
    for ((name, data), shape) in members.iter().zip(["(2, 1)", "(1,)"]) {
        assert_eq!(&data[..8], b"\x93NUMPY\x01\x00", "{name}");
        let hl = u16::from_le_bytes([data[8], data[9]]) as usize;
        let header = std::str::from_utf8(&data[10..10 + hl]).expect("ascii");
        assert!(
            header.contains("'descr': '<f4'") && header.contains(&format!("'shape': {shape}")),
            "{name}: {header}"
        );
        let param = tensors
            .tensor(&format!("param.{}", name.trim_end_matches(".npy")))
            .expect("in the checkpoint");
        assert_eq!(
            &data[10 + hl..],
            param.data(),
            "{name}: the checkpoint's values"
        );
    }
    // NumPy, where it is installed, reads the same values.
    let numpy = Command::new("python3")
        .args([
            "-c",
            "import sys, numpy as np; d = np.load(sys.argv[1]); \
             print(d['w'].shape, d['b'].shape, float(d['w'][1, 0]))",
            npz_s,
        ])
        .output();
    match numpy {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            assert!(text.starts_with("(2, 1) (1,) "), "{text}");
            let w = tensors.tensor("param.w").expect("w");
            let w10 = f32::from_le_bytes(w.data()[4..8].try_into().expect("4"));
            let got: f64 = text
                .split_whitespace()
                .last()
                .expect("value")
                .parse()
                .expect("number");
            assert_eq!(got, f64::from(w10));
        }
        _ => eprintln!("skipped the NumPy check: python3 with numpy is not importable here"),
    }
    // A bad destination, a checkpoint of another run or another program:
    // one line, exit 1, nothing written.
    let other = dir.join("other.npz");
    let other_s = other.to_str().expect("utf-8");
    for args in [
        ["programs/linreg.dl", "sgd", "/nonexistent-dir/m.npz"],
        ["programs/linreg.dl", "closed_form", other_s],
        ["programs/mlp.dl", "main", other_s],
    ] {
        let bad = dlc(&[
            "export", args[0], "--run", args[1], "--load", ck_s, "--out", args[2],
        ]);
        assert_eq!(bad.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&bad.stderr);
        assert!(
            err.starts_with("error: ") && err.lines().count() == 1,
            "{err}"
        );
        assert!(!other.exists(), "{args:?}: nothing written");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A linear-regression program on synthetic data with `settings` in its
/// train block, written to a temporary file named after `tag`.
fn program_with(tag: &str, settings: &str) -> std::path::PathBuf {
    let src = format!(
        "data synth = linear(w = [2, -3.4], b = 4.2, n_train = 100)\n\
         model lin(x: f32[B, 2]) -> f32[B, 1] {{\n    param w: f32[2, 1] = normal(0.01)\n    \
         param b: f32[1] = zeros\n    x @ w + b\n}}\n\
         train lin on synth {{\n    loss = squared_loss(output, label)\n    batch = 10\n    \
         epochs = 1\n{settings}}}\n"
    );
    let path = std::env::temp_dir().join(format!("dlc-hyper-{}-{tag}.dl", std::process::id()));
    std::fs::write(&path, src).expect("written");
    path
}

/// Every learning rate and hyper-parameter is held as f32 in the step: a
/// value beyond f32's range (or one f32 rounds to 0) is a check-time
/// diagnostic at the value, and a cosine's `min_lr` must not exceed the
/// `lr` it decays from (in the program, or given by `--lr`).
#[test]
fn hyper_parameters_are_checked_against_f32_and_the_learning_rate() {
    let refused = [
        ("optimizer = sgd(lr = 1e39)\n", "`lr` does not fit f32"),
        ("optimizer = sgd(lr = -1e39)\n", "learning rate must be"),
        ("optimizer = sgd(lr = 1e-50)\n", "f32 rounds it to 0"),
        ("optimizer = sgd(1e39)\n", "`lr` does not fit f32"),
        (
            "optimizer = adam(lr = 0.1, eps = 1e39)\n",
            "`eps` does not fit f32",
        ),
        (
            "optimizer = adam(lr = 0.1, eps = 1e-60)\n",
            "`eps` does not fit f32",
        ),
        (
            "optimizer = adamw(lr = 0.1, weight_decay = 4e38)\n",
            "`weight_decay` does not fit f32",
        ),
        (
            "optimizer = sgd(lr = 0.1)\n    weight_decay = penalty(1e39)\n",
            "`weight_decay` does not fit f32",
        ),
        (
            "optimizer = sgd(lr = 0.1)\n    clip_grad_norm = 1e39\n",
            "`clip_grad_norm` does not fit f32",
        ),
        (
            "optimizer = sgd(lr = 0.1)\n    lr_schedule = cosine(min_lr = 10)\n",
            "above the learning rate",
        ),
        (
            "optimizer = sgd(lr = 0.1)\n    lr_schedule = cosine(epochs = 3, eta_min = 0.2)\n",
            "above the learning rate",
        ),
        (
            "optimizer = sgd(lr = 0.1)\n    lr_schedule = warmup(5, then = cosine(min_lr = 1))\n",
            "above the learning rate",
        ),
        (
            "optimizer = sgd(lr = 0.1)\n    lr_schedule = cosine(min_lr = 1e39)\n",
            "`min_lr` does not fit f32",
        ),
        (
            "optimizer = sgd(lr = 0.1)\n    lr_schedule = step(every = 1, gamma = 1e39)\n",
            "`gamma` does not fit f32",
        ),
    ];
    for (i, (settings, message)) in refused.iter().enumerate() {
        let path = program_with(&format!("bad{i}"), &format!("    {settings}"));
        let out = dlc(&["check", path.to_str().expect("utf-8")]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{settings}: {err}");
        assert!(err.contains(message), "{settings}: {err}");
        let _ = std::fs::remove_file(path);
    }
    let accepted = [
        "optimizer = sgd(lr = 3e38)\n",
        "optimizer = adam(lr = 0.1, eps = 1e-30)\n",
        "optimizer = sgd(lr = 0.1)\n    lr_schedule = cosine(min_lr = 0.1)\n",
        "optimizer = sgd(lr = 0.1)\n    lr_schedule = warmup(5, then = cosine(min_lr = 0.01))\n",
    ];
    for (i, settings) in accepted.iter().enumerate() {
        let path = program_with(&format!("good{i}"), &format!("    {settings}"));
        let out = dlc(&["check", path.to_str().expect("utf-8")]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{settings}: {err}");
        let _ = std::fs::remove_file(path);
    }
    // `--lr` as a flag: a value f32 does not hold is a bad flag value.
    for lr in ["1e39", "3.5e38", "1e-50", "inf", "NaN"] {
        let out = dlc(&["train", "programs/linreg.dl", "--lr", lr]);
        assert_eq!(out.status.code(), Some(2), "--lr {lr}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(lr),
            "--lr {lr}"
        );
    }
    // Below a cosine's min_lr: refused before training.
    let path = program_with(
        "flag",
        "    optimizer = sgd(lr = 0.1)\n    lr_schedule = cosine(min_lr = 0.01)\n",
    );
    let out = dlc(&["train", path.to_str().expect("utf-8"), "--lr", "0.001"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("below the lr_schedule's min_lr"), "{err}");
    assert!(!err.contains("epoch"), "{err}");
    let _ = std::fs::remove_file(path);
}
