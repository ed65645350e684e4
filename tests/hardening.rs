//! Issue #14's classes of failure, each run the way a user meets it: silent
//! wrong answers, aborts, lost work and misleading messages. Every test here
//! failed on the code before its fix.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn dlc_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dlc"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("dlc runs")
}

/// A fresh scratch folder for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dlc-hard-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch folder");
    d
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `dlc` and asserts exit 1 with every needle in stderr.
fn fails_with(dir: &Path, args: &[&str], needles: &[&str]) -> String {
    let out = dlc_in(dir, args);
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?}\nstdout {}\nstderr {err}",
        text(&out.stdout)
    );
    for n in needles {
        assert!(err.contains(n), "{args:?}: `{n}` not in\n{err}");
    }
    err
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn repl(input: &str) -> (String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_dlc"))
        .arg("repl")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dlc repl runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("input written");
    let out = child.wait_with_output().expect("the REPL ends");
    // A script exits 1 when some input failed (its error is on stderr).
    let failed = !out.stderr.is_empty();
    assert_eq!(
        out.status.code(),
        Some(i32::from(failed)),
        "{}",
        text(&out.stderr)
    );
    (text(&out.stdout), text(&out.stderr))
}

// ---------------------------------------------------------------------------
// Binary classification

/// A one-logit logistic regression on the breast cancer data, `loss` given.
fn one_logit(dir: &Path, loss: &str, width: u64, metrics: &str) -> PathBuf {
    let csv = root().join("programs/data/breast_cancer.csv");
    let src = format!(
        r#"data cancer = csv("{}", label = "target", classes = 2, standardize = true, test = 0.25)
model logistic(x: f32[B, D]) -> f32[B, {width}] {{
    param W: f32[D, {width}] = zeros
    param b: f32[{width}] = zeros
    x @ W + b
}}
train logistic on cancer {{
    loss = {loss}
    optimizer = sgd(lr = 0.1)
    batch = 32
    epochs = 10
    seed = 7
    metrics = {metrics}
}}
"#,
        csv.display()
    );
    let p = dir.join(format!("w{width}.dl"));
    std::fs::write(&p, src).expect("program written");
    p
}

#[test]
fn a_k_fold_ensemble_of_one_logit_models_predicts_by_the_sign() {
    // The fold models' average logit predicts class 1 where it is positive
    // (as `acc` counts for one model), not the argmax of one column, which
    // is always class 0.
    let dir = scratch("binary_kfold");
    let prog = one_logit(
        &dir,
        "binary_cross_entropy(output, label)",
        1,
        "[loss, acc]",
    );
    let src = std::fs::read_to_string(&prog).expect("program");
    std::fs::write(&prog, src.replace("seed = 7", "seed = 7\n    kfold = 3")).expect("written");
    let out = dlc_in(&dir, &["train", prog.to_str().expect("utf-8"), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines = json_lines(&out);
    let kfold = lines
        .iter()
        .find(|l| l["event"] == "kfold")
        .expect("a kfold line");
    let valid = kfold["mean_valid_acc"].as_f64().expect("mean_valid_acc");
    let fin = lines.last().expect("a final line");
    let test = fin["test_acc"].as_f64().expect("test_acc");
    assert!(valid > 0.9, "{valid}");
    assert!(test > 0.9, "the ensemble's test accuracy is {test}");
}

#[test]
fn contiguous_folds_are_the_files_consecutive_rows() {
    // Labels 0..10 in file order and a model that predicts 0 and barely
    // moves: fold f's validation loss, mean(y²)/2 over its rows, says which
    // rows it holds: rows 2f and 2f + 1 with contiguous(5).
    let dir = scratch("contiguous");
    let mut csv = String::from("x,y\n");
    for i in 0..10 {
        csv.push_str(&format!("{},{i}\n", (i * 7) % 10));
    }
    std::fs::write(dir.join("rows.csv"), csv).expect("csv");
    let src = "data d = csv(\"rows.csv\", label = \"y\")\n\
               model m(x: f32[B, 1]) -> f32[B, 1] {\n    param w: f32[1, 1] = zeros\n    x @ w\n}\n\
               train m on d {\n    loss = squared_loss(output, label)\n    optimizer = sgd(lr = 1e-30)\n    batch = 2\n    epochs = 1\n    kfold = FOLDS\n    seed = SEED\n}\n";
    let folds = |kfold: &str, seed: u64| -> Vec<f64> {
        let prog = src
            .replace("FOLDS", kfold)
            .replace("SEED", &seed.to_string());
        std::fs::write(dir.join("c.dl"), prog).expect("program");
        let out = dlc_in(&dir, &["train", "c.dl", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        json_lines(&out)
            .iter()
            .filter(|l| l["event"] == "fold")
            .map(|l| l["valid_loss"].as_f64().expect("valid_loss"))
            .collect()
    };
    let half_sq = |a: f64, b: f64| (a * a + b * b) / 4.0;
    let want: Vec<f64> = (0..5)
        .map(|f| half_sq(2.0 * f as f64, 2.0 * f as f64 + 1.0))
        .collect();
    for seed in [0, 1, 9] {
        let got = folds("contiguous(5)", seed);
        assert_eq!(got.len(), 5);
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-6 * w.max(1.0),
                "seed {seed}: {got:?}, want {want:?}"
            );
        }
    }
    // `kfold = 5` shuffles the rows into folds.
    assert_ne!(folds("5", 0), want);
    std::fs::write(
        dir.join("bad.dl"),
        src.replace("FOLDS", "contiguous(1)").replace("SEED", "0"),
    )
    .expect("program");
    fails_with(
        &dir,
        &["check", "bad.dl"],
        &["`kfold` must be K ≥ 2 or contiguous(K)"],
    );
}

#[test]
fn a_one_logit_classifier_reports_the_accuracy_its_saved_weights_give() {
    let dir = scratch("binary");
    let prog = one_logit(
        &dir,
        "binary_cross_entropy(output, label)",
        1,
        "[loss, acc]",
    );
    let ckpt = dir.join("w.safetensors");
    let out = dlc_in(
        &dir,
        &[
            "train",
            prog.to_str().expect("utf-8"),
            "--json",
            "--save",
            ckpt.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines = json_lines(&out);
    let fin = lines.last().expect("a final line");
    let reported = fin["test_acc"].as_f64().expect("test_acc");
    // Independently: the test part as dlc's loader splits it, the weights
    // from the checkpoint, logits in f64, class 1 where the logit is > 0.
    let l = dlc::driver::load(&dlc::driver::ProgramArgs {
        file: prog.clone(),
        data: None,
        run: None,
        color: false,
    })
    .expect("the program reads");
    let run = &l.checked.runs[0];
    let parts = dlc::data::load::load(&l.checked.data[run.data], run.settings.seed)
        .expect("the data loads");
    let bytes = std::fs::read(&ckpt).expect("checkpoint");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let f32s = |name: &str| -> Vec<f64> {
        st.tensor(name)
            .expect("tensor")
            .data()
            .chunks(4)
            .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect()
    };
    let (w, b) = (f32s("param.W"), f32s("param.b")[0]);
    let t = &parts.test;
    assert!(t.len() > 100);
    let mut correct = 0;
    for i in 0..t.len() {
        let row = t.x.values(i * t.width, (i + 1) * t.width);
        let z: f64 = row
            .iter()
            .zip(&w)
            .map(|(x, w)| f64::from(*x) * w)
            .sum::<f64>()
            + b;
        if (z > 0.0) == (t.y[i] == 1.0) {
            correct += 1;
        }
    }
    let acc = correct as f64 / t.len() as f64;
    assert!(
        (acc - reported).abs() < 1e-12,
        "reported {reported}, weights give {acc}"
    );
    assert!(
        acc > 0.9,
        "a logistic regression on this data is > 0.9 accurate: {acc}"
    );
}

#[test]
fn output_widths_that_are_not_the_class_count_are_diagnostics() {
    let dir = scratch("widths");
    // cross_entropy over one logit: always 0, so it is refused, with a hint.
    let p = one_logit(&dir, "cross_entropy(output, label)", 1, "[loss]");
    fails_with(
        &dir,
        &["check", p.to_str().expect("utf-8")],
        &["1 output", "2 classes", "binary_cross_entropy", "f32[B, 1]"],
    );
    // three scores for two classes
    let p = one_logit(&dir, "cross_entropy(output, label)", 3, "[loss]");
    fails_with(
        &dir,
        &["check", p.to_str().expect("utf-8")],
        &["3 outputs", "2 classes", "f32[B, 3]"],
    );
    let p = one_logit(&dir, "binary_cross_entropy(output, label)", 2, "[loss]");
    fails_with(
        &dir,
        &["check", p.to_str().expect("utf-8")],
        &["2 outputs", "2 classes"],
    );
    // a hand-written loss with acc: the metric checks the width itself
    let p = one_logit(&dir, "mean(output * output)", 3, "[loss, acc]");
    fails_with(
        &dir,
        &["train", p.to_str().expect("utf-8")],
        &["accuracy compares 3 outputs", "2 classes"],
    );
    // and both legal forms pass
    for (loss, w) in [
        ("binary_cross_entropy(output, label)", 1),
        ("cross_entropy(output, label)", 2),
    ] {
        let p = one_logit(&dir, loss, w, "[loss, acc]");
        let out = dlc_in(&dir, &["check", p.to_str().expect("utf-8")]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
}

#[test]
fn binary_cross_entropy_is_stable_and_its_gradient_is_sigmoid_minus_label() {
    let (out, err) = repl(
        "let z = [0.0, 0.0, 1e4, -1e4, 3.0]\n\
         binary_cross_entropy(z, [1, 0, 1, 0, 1])\n\
         grad(binary_cross_entropy(z, [1, 0, 1, 0, 1]), z)\n\
         accuracy([[2.0], [-1.0], [0.5]], [1, 0, 0])\n",
    );
    assert!(err.is_empty(), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    // mean(log 2, log 2, 0, 0, log(1 + e⁻³))
    let want = (2.0 * 2f64.ln() + (1.0 + (-3f64).exp()).ln()) / 5.0;
    let got: f64 = lines[0].trim().parse().expect("a number");
    assert!((got - want).abs() < 1e-4, "{got} vs {want}");
    // (σ(z) − y)/5 at z = 0 is ∓0.1, not the −y/5 of max and |z|'s
    // conventional zero derivatives
    let g: Vec<f64> = lines[1]
        .trim_matches(|c| c == '[' || c == ']')
        .split_whitespace()
        .map(|v| v.parse().expect("a number"))
        .collect();
    let s3 = 1.0 / (1.0 + (-3f64).exp());
    for (a, b) in g.iter().zip([-0.1, 0.1, 0.0, 0.0, (s3 - 1.0) / 5.0]) {
        assert!((a - b).abs() < 1e-4, "{g:?}");
    }
    assert_eq!(lines[2].trim(), "0.6667");
}

// ---------------------------------------------------------------------------
// Non-finite values and class labels

/// A small linear or classification program over `file` in `dir`.
fn csv_program(
    dir: &Path,
    name: &str,
    file: &str,
    opts: &str,
    classes: Option<u64>,
    settings: &str,
) -> String {
    let (out, loss) = match classes {
        Some(c) => (c, "cross_entropy(output, label)"),
        None => (1, "squared_loss(output, label)"),
    };
    let src = format!(
        r#"data d = csv("{file}", label = "y"{opts})
model m(x: f32[B, D]) -> f32[B, {out}] {{
    param w: f32[D, {out}] = normal(0.1)
    param b: f32[{out}] = zeros
    x @ w + b
}}
train m on d {{
    loss = {loss}
    optimizer = sgd(lr = 0.01)
    batch = 2
    epochs = 2
    {settings}
}}
"#
    );
    let p = dir.join(name);
    std::fs::write(&p, src).expect("program written");
    name.to_string()
}

#[test]
fn non_finite_numbers_in_a_csv_are_errors_naming_the_row_and_column() {
    let dir = scratch("nonfinite");
    let rows = |bad_a: &str, bad_y: &str| {
        format!("a,b,y\n1,2,0\n3,4,1\n{bad_a},6,{bad_y}\n7,8,0\n9,1,1\n")
    };
    for (i, (a, y, col)) in [
        ("nan", "1", "`a`"),
        ("inf", "0", "`a`"),
        ("1e999", "1", "`a`"),
        ("-Infinity", "0", "`a`"),
        ("5", "inf", "`y`"),
        ("5", "NaN", "`y`"),
    ]
    .into_iter()
    .enumerate()
    {
        let file = format!("n{i}.csv");
        std::fs::write(dir.join(&file), rows(a, y)).expect("csv");
        for classes in [None, Some(2)] {
            let opts = if classes.is_some() {
                ", classes = 2"
            } else {
                ""
            };
            let p = csv_program(&dir, &format!("n{i}.dl"), &file, opts, classes, "");
            for cmd in ["check", "train", "gradcheck", "data"] {
                fails_with(&dir, &[cmd, &p], &["line 4", col, "not a finite number"]);
            }
        }
    }
}

#[test]
fn class_labels_are_whole_numbers_and_1_0_is_class_1() {
    let dir = scratch("labels");
    std::fs::write(dir.join("f.csv"), "a,b,y\n1,2,0.0\n3,4,1.0\n5,6,1\n7,8,0\n").expect("csv");
    let p = csv_program(
        &dir,
        "f.dl",
        "f.csv",
        ", classes = 2",
        Some(2),
        "metrics = [loss, acc]",
    );
    let out = dlc_in(&dir, &["train", &p, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    std::fs::write(dir.join("h.csv"), "a,b,y\n1,2,0\n3,4,0.5\n5,6,1\n").expect("csv");
    let p = csv_program(&dir, "h.dl", "h.csv", ", classes = 2", Some(2), "");
    fails_with(
        &dir,
        &["check", &p],
        &["`0.5` (line 3)", "not a class index"],
    );
    // three distinct values for two classes
    std::fs::write(dir.join("t.csv"), "a,b,y\n1,2,0\n3,4,2\n5,6,1\n").expect("csv");
    let p = csv_program(&dir, "t.dl", "t.csv", ", classes = 2", Some(2), "");
    fails_with(&dir, &["check", &p], &["not class indices below 2"]);
}

fn write_idx(path: &Path, code: u8, dims: &[u32], payload: &[u8]) {
    let mut b = vec![0u8, 0, code, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(payload);
    std::fs::write(path, b).expect("write idx");
}

#[test]
fn non_finite_pixels_are_bad_data_in_the_training_and_the_test_part() {
    for part in ["train", "t10k"] {
        let dir = scratch(&format!("nanpix-{part}"));
        for split in ["train", "t10k"] {
            let mut px: Vec<u8> = Vec::new();
            for i in 0..4 * 4 {
                let v = if split == part && i == 9 {
                    f32::NAN
                } else {
                    i as f32 / 16.0
                };
                px.extend_from_slice(&v.to_be_bytes());
            }
            write_idx(
                &dir.join(format!("{split}-images-idx3-ubyte")),
                0x0D,
                &[4, 2, 2],
                &px,
            );
            write_idx(
                &dir.join(format!("{split}-labels-idx1-ubyte")),
                0x08,
                &[4],
                &[0, 1, 0, 1],
            );
        }
        std::fs::write(
            dir.join("p.dl"),
            "data d = idx(\".\", classes = 2)\nmodel m(x: f32[B, 2, 2]) -> f32[B, 2] {\n    param w: f32[4, 2] = zeros\n    reshape(x, [B, 4]) @ w\n}\ntrain m on d {\n    loss = cross_entropy(output, label)\n    optimizer = sgd(lr = 0.1)\n}\n",
        )
        .expect("program");
        let err = fails_with(
            &dir,
            &["train", "p.dl"],
            &["sample 2, value 1", "NaN", "not a finite number"],
        );
        assert!(err.contains(&format!("{part}-images")), "{err}");
        assert!(!err.contains("diverged"), "{err}");
    }
}

// ---------------------------------------------------------------------------
// Empty or degenerate data

#[test]
fn data_that_leaves_a_part_empty_is_refused_by_every_command() {
    let dir = scratch("empty");
    std::fs::write(dir.join("nolabel.csv"), "a,b,y\n1,2,NA\n3,4,\n5,6,NA\n").expect("csv");
    std::fs::write(dir.join("holes.csv"), "a,b,y\n1,NA,1\nNA,4,2\n5,NA,3\n").expect("csv");
    std::fs::write(dir.join("few.csv"), "a,b,y\n1,2,1\n3,4,2\n5,6,3\n7,8,4\n").expect("csv");
    std::fs::write(dir.join("header.csv"), "a,b,y\n").expect("csv");
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            csv_program(&dir, "a.dl", "nolabel.csv", "", None, ""),
            vec!["no labels", "missing in all 3 rows"],
        ),
        (
            csv_program(&dir, "b.dl", "holes.csv", ", missing = \"drop\"", None, ""),
            vec!["3 rows read, 0 kept", "dropped by missing = \"drop\""],
        ),
        (
            csv_program(&dir, "c.dl", "few.csv", ", test = 0.9", None, ""),
            vec!["4 rows read, 4 kept, 4 held out", "test = 0.9"],
        ),
        (
            csv_program(&dir, "d.dl", "few.csv", ", test = 0.5", None, "valid = 0.9"),
            vec!["valid = 0.9 of 2 training rows leaves no rows to train on"],
        ),
        (
            csv_program(&dir, "e.dl", "few.csv", ", test = 0.5", None, "valid = 0.1"),
            vec!["holds out no rows to validate on"],
        ),
        (
            csv_program(&dir, "f.dl", "few.csv", ", test = 0.25", None, "kfold = 5"),
            vec!["kfold = 5 needs at least 5 training rows, and there are 3"],
        ),
        (
            csv_program(&dir, "g.dl", "header.csv", "", None, ""),
            vec!["header.csv has a header and no data rows"],
        ),
    ];
    for (p, needles) in &cases {
        for cmd in ["check", "train", "gradcheck", "data"] {
            let err = fails_with(&dir, &[cmd, p], needles);
            assert!(!err.contains("internal"), "{err}");
        }
    }
    // the smallest legal split still trains
    let p = csv_program(&dir, "ok.dl", "few.csv", ", test = 0.25", None, "kfold = 3");
    let out = dlc_in(&dir, &["train", &p]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn a_runaway_loss_stops_long_before_it_overflows() {
    let dir = scratch("runaway");
    std::fs::write(
        dir.join("r.dl"),
        "data s = linear(w = [2, -3.4], b = 4.2, n_train = 1000, noise = 0.01)\n\
         model m(x: f32[B, 2]) -> f32[B, 1] {\n    param w: f32[2, 1] = normal(0.01)\n    param b: f32[1] = zeros\n    x @ w + b\n}\n\
         train m on s {\n    loss = squared_loss(output, label)\n    optimizer = sgd(lr = 2.5)\n    batch = 10\n    epochs = 50\n}\n",
    )
    .expect("program");
    let err = fails_with(
        &dir,
        &["train", "r.dl"],
        &[
            "diverged",
            "grew from",
            "epoch 1",
            "batch",
            "lower the learning rate (lr 2.5)",
        ],
    );
    // stopped at a finite loss, not at inf or NaN
    assert!(!err.contains("inf") && !err.contains("NaN"), "{err}");
}

// ---------------------------------------------------------------------------
// Checkpoints: resume that is a resume, one file per run, nothing lost

/// A small SGD program with momentum and a validation split, in `dir`.
fn sgd_program(dir: &Path, runs: &[&str]) -> String {
    let mut src = String::from(
        "data s = linear(w = [2, -3.4], b = 4.2, n_train = 200, noise = 0.01)\n\
         model m(x: f32[B, 2]) -> f32[B, 1] {\n    param w: f32[2, 1] = normal(0.01)\n    param b: f32[1] = zeros\n    x @ w + b\n}\n",
    );
    for r in runs {
        src.push_str(&format!(
            "train {r}: m on s {{\n    loss = squared_loss(output, label)\n    optimizer = sgd(lr = 0.01, momentum = 0.5)\n    batch = 16\n    epochs = 4\n    seed = 3\n    valid = 0.25\n}}\n"
        ));
    }
    std::fs::write(dir.join("s.dl"), src).expect("program");
    "s.dl".to_string()
}

fn final_params(out: &Output) -> String {
    let lines = json_lines(out);
    lines.last().expect("a final line")["params"].to_string()
}

/// A change to a checkpoint's metadata and tensor names.
type Edit = Box<dyn Fn(&mut std::collections::HashMap<String, String>, &mut Vec<String>)>;

/// Re-writes checkpoint `from` as `to` with `edit` applied to its metadata
/// and tensors.
fn doctor(
    from: &Path,
    to: &Path,
    edit: impl Fn(&mut std::collections::HashMap<String, String>, &mut Vec<String>),
) {
    let bytes = std::fs::read(from).expect("checkpoint");
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).expect("header");
    let mut meta = meta.metadata().clone().unwrap_or_default();
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    edit(&mut meta, &mut names);
    let views: Vec<(String, safetensors::tensor::TensorView)> = names
        .iter()
        .map(|n| (n.clone(), st.tensor(n).expect("tensor")))
        .collect();
    let out = safetensors::serialize(views, Some(meta)).expect("serialize");
    std::fs::write(to, out).expect("write");
}

#[test]
fn resume_validates_the_checkpoint_and_keeps_its_seed() {
    let dir = scratch("resume");
    let p = sgd_program(&dir, &["main"]);
    let straight = dlc_in(&dir, &["train", &p, "--json", "--seed", "9"]);
    assert_eq!(
        straight.status.code(),
        Some(0),
        "{}",
        text(&straight.stderr)
    );
    let half = dlc_in(
        &dir,
        &[
            "train", &p, "--json", "--seed", "9", "--epochs", "2", "--save", "c.st",
        ],
    );
    assert_eq!(half.status.code(), Some(0), "{}", text(&half.stderr));
    // Resumed without --seed: the stored seed 9, not the program's 3, so the
    // same shuffle and validation split as training straight through.
    let resumed = dlc_in(&dir, &["train", &p, "--json", "--resume", "c.st"]);
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed.stderr));
    assert_eq!(final_params(&resumed), final_params(&straight));
    fails_with(
        &dir,
        &["train", &p, "--resume", "c.st", "--seed", "3"],
        &["--seed 3 conflicts", "seed 9"],
    );
    fails_with(
        &dir,
        &["train", &p, "--resume", "c.st", "--epochs", "2"],
        &["at epoch 2", "--epochs 2 would train nothing"],
    );
    fails_with(
        &dir,
        &["train", &p, "--resume", "c.st", "--epochs", "1"],
        &["would train nothing"],
    );
    // Each defect of the metadata is its own one-line error.
    let c = dir.join("c.st");
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "huge",
            Box::new(|m, _| {
                m.insert("epoch".into(), u64::MAX.to_string());
            }),
            "would train nothing",
        ),
        (
            "abc",
            Box::new(|m, _| {
                m.insert("epoch".into(), "abc".into());
            }),
            "`epoch` is `abc`",
        ),
        (
            "neg",
            Box::new(|m, _| {
                m.insert("epoch".into(), "-1".into());
            }),
            "`epoch` is `-1`",
        ),
        (
            "noepoch",
            Box::new(|m, _| {
                m.remove("epoch");
            }),
            "no `epoch`",
        ),
        (
            "noseed",
            Box::new(|m, _| {
                m.remove("seed");
            }),
            "no `seed`",
        ),
        (
            "badstep",
            Box::new(|m, _| {
                m.insert("step".into(), "1e3".into());
            }),
            "`step` is `1e3`",
        ),
        (
            "hugestep",
            Box::new(|m, _| {
                m.insert("step".into(), u64::MAX.to_string());
            }),
            "more steps",
        ),
        (
            "run",
            Box::new(|m, _| {
                m.insert("run".into(), "other".into());
            }),
            "saved by run `other`",
        ),
        (
            "format",
            Box::new(|m, _| {
                m.insert("format".into(), "something else".into());
            }),
            "the format is `something else`",
        ),
        (
            "noformat",
            Box::new(|m, _| {
                m.remove("format");
            }),
            "no `format`",
        ),
        (
            "partial",
            Box::new(|_, n| n.retain(|t| t != "velocity.b")),
            "momentum of only some parameters (none for b)",
        ),
    ];
    for (name, edit, needle) in cases {
        let f = dir.join(format!("{name}.st"));
        doctor(&c, &f, edit);
        let err = fails_with(
            &dir,
            &[
                "train",
                &p,
                "--resume",
                f.to_str().expect("utf-8"),
                "--epochs",
                "5",
            ],
            &[needle],
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            !err.contains("epoch  train_loss"),
            "refused before training: {err}"
        );
    }
}

#[test]
fn a_checkpoint_holds_the_optimizers_state_and_nothing_else() {
    let dir = scratch("optstate");
    let names = |f: &Path| -> Vec<String> {
        let bytes = std::fs::read(f).expect("checkpoint");
        let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
        let mut n: Vec<String> = st.names().into_iter().map(str::to_string).collect();
        n.sort();
        n
    };
    // With momentum: a velocity per parameter.
    let p = sgd_program(&dir, &["main"]);
    let out = dlc_in(&dir, &["train", &p, "--save", "m.st"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        names(&dir.join("m.st")),
        ["param.b", "param.w", "velocity.b", "velocity.w"]
    );
    // Plain SGD keeps no state, and its checkpoint holds none.
    let src = std::fs::read_to_string(dir.join(&p)).expect("program");
    std::fs::write(dir.join("plain.dl"), src.replace(", momentum = 0.5", "")).expect("written");
    let out = dlc_in(&dir, &["train", "plain.dl", "--save", "p.st"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(names(&dir.join("p.st")), ["param.b", "param.w"]);
    // A run may change its optimizer on resuming: another optimizer's state
    // is ignored, and missing state starts at zero.
    for (prog, ck) in [("plain.dl", "m.st"), (p.as_str(), "p.st")] {
        let out = dlc_in(&dir, &["train", prog, "--resume", ck, "--epochs", "6"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{prog} from {ck}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn every_optimizer_resumes_bit_identically_with_its_state_saved_by_name() {
    let dir = scratch("optresume");
    let base = std::fs::read_to_string(dir.join(sgd_program(&dir, &["main"]))).expect("program");
    let cases = [
        ("adam(lr = 0.01)", &["adam_m", "adam_v"][..]),
        ("adamw(lr = 0.01)", &["adam_m", "adam_v"][..]),
        ("rmsprop(lr = 0.01)", &["rmsprop_v"][..]),
        (
            "sgd(lr = 0.01, momentum = 0.5, nesterov = true)",
            &["velocity"][..],
        ),
        // A schedule follows the step and epoch counters across the stop.
        (
            "adamw(lr = 0.01)\n    lr_schedule = warmup(9, then = cosine(min_lr = 0.001))",
            &["adam_m", "adam_v"][..],
        ),
        (
            "sgd(lr = 0.05)\n    lr_schedule = step(every = 1, gamma = 0.5)",
            &[][..],
        ),
    ];
    for (i, (opt, slots)) in cases.iter().enumerate() {
        let prog = format!("o{i}.dl");
        let src = base.replace("sgd(lr = 0.01, momentum = 0.5)", opt);
        std::fs::write(dir.join(&prog), src).expect("program");
        let straight = dlc_in(&dir, &["train", &prog, "--json"]);
        assert_eq!(
            straight.status.code(),
            Some(0),
            "{opt}: {}",
            text(&straight.stderr)
        );
        let ck = format!("o{i}.st");
        let half = dlc_in(&dir, &["train", &prog, "--epochs", "2", "--save", &ck]);
        assert_eq!(half.status.code(), Some(0), "{opt}: {}", text(&half.stderr));
        let resumed = dlc_in(&dir, &["train", &prog, "--json", "--resume", &ck]);
        assert_eq!(
            resumed.status.code(),
            Some(0),
            "{opt}: {}",
            text(&resumed.stderr)
        );
        assert_eq!(final_params(&straight), final_params(&resumed), "{opt}");
        // The state is saved by name, each parameter's under its slot.
        let bytes = std::fs::read(dir.join(&ck)).expect("checkpoint");
        let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
        let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
        names.sort();
        let mut want: Vec<String> = vec!["param.b".into(), "param.w".into()];
        for s in *slots {
            want.extend([format!("{s}.b"), format!("{s}.w")]);
        }
        want.sort();
        assert_eq!(names, want, "{opt}");
    }
}

#[test]
fn epoch_lines_report_the_learning_rate_the_step_used() {
    let dir = scratch("lrreport");
    let base = std::fs::read_to_string(dir.join(sgd_program(&dir, &["main"]))).expect("program");
    let cases = [
        // (optimizer and schedule, the rate of epochs 1..=4)
        ("sgd(lr = 0.01, momentum = 0.5)", [0.01; 4]),
        (
            "sgd(lr = 0.08)\n    lr_schedule = step(every = 2, gamma = 0.5)",
            [0.08, 0.08, 0.04, 0.04],
        ),
        (
            // cos(π·e/4) for e = 0, 1, 2, 3: 1, √½, 0, −√½.
            "adam(lr = 0.02)\n    lr_schedule = cosine(min_lr = 0.01)",
            [
                0.02,
                0.01 + 0.01 * (1.0 + 0.5f64.sqrt()) / 2.0,
                0.015,
                0.01 + 0.01 * (1.0 - 0.5f64.sqrt()) / 2.0,
            ],
        ),
    ];
    for (i, (opt, want)) in cases.iter().enumerate() {
        let prog = format!("r{i}.dl");
        let src = base.replace("sgd(lr = 0.01, momentum = 0.5)", opt);
        std::fs::write(dir.join(&prog), src).expect("program");
        let out = dlc_in(&dir, &["train", &prog, "--json"]);
        assert_eq!(out.status.code(), Some(0), "{opt}: {}", text(&out.stderr));
        let lrs: Vec<f64> = json_lines(&out)
            .iter()
            .filter(|l| l["event"] == "epoch")
            .map(|l| l["lr"].as_f64().expect("an lr"))
            .collect();
        assert_eq!(lrs.len(), 4, "{opt}");
        for (got, want) in lrs.iter().zip(want) {
            assert!(
                (got - want).abs() <= 1e-6 * want,
                "{opt}: {lrs:?}, want {want:?}"
            );
        }
        // The table has an lr column when a schedule moves it.
        let human = dlc_in(&dir, &["train", &prog]);
        let header = text(&human.stdout)
            .lines()
            .find(|l| l.starts_with("epoch"))
            .map(str::to_string)
            .expect("a table");
        assert_eq!(
            header.split_whitespace().any(|c| c == "lr"),
            i > 0,
            "{header}"
        );
    }
    // closed_form has no rate to schedule.
    let src = "data s = linear(w = [2, -3.4], b = 4.2, n_train = 200)\n\
               model m(x: f32[B, 2]) -> f32[B, 1] {\n    param w: f32[2, 1] = zeros\n    param b: f32[1] = zeros\n    x @ w + b\n}\n\
               train c: m on s {\n    loss = squared_loss(output, label)\n    optimizer = closed_form\n    lr_schedule = cosine()\n}\n";
    std::fs::write(dir.join("cf.dl"), src).expect("program");
    fails_with(
        &dir,
        &["check", "cf.dl"],
        &["closed_form has no learning rate to schedule"],
    );
}

#[test]
fn bad_optimizer_arguments_are_diagnostics() {
    let dir = scratch("optargs");
    let base = std::fs::read_to_string(dir.join(sgd_program(&dir, &["main"]))).expect("program");
    let cases: [(&str, &[&str]); 18] = [
        ("adam(lr = 0.1, beta1 = 1.5)", &["beta1 must be in [0, 1)"]),
        (
            "adam(lr = 0.1, eps = 0)",
            &["eps must be a positive number"],
        ),
        (
            "rmsprop(lr = 0.1, alpha = -0.1)",
            &["alpha must be in [0, 1)"],
        ),
        (
            "sgd(lr = 0.1, nesterov = true)",
            &["nesterov needs a momentum > 0"],
        ),
        (
            "sgd(lr = 0.1, momentum = 0.9, nesterov = 2)",
            &["nesterov must be true or false"],
        ),
        (
            "adam(lr = 0.1, betta1 = 0.9)",
            &["`adam` has no argument `betta1`", "did you mean `beta1`?"],
        ),
        (
            "adagrad(lr = 0.1)",
            &["sgd(lr = ...), adam(lr = ...), adamw(lr = ...), rmsprop(lr = ...) or closed_form"],
        ),
        ("adamw(beta1 = 0.9)", &["`adamw` needs a learning rate"]),
        (
            "sgd(lr = 0.1)\n    lr_schedule = cosin(10)",
            &[
                "`lr_schedule` must be constant, step(",
                "did you mean `cosine`?",
            ],
        ),
        (
            "sgd(lr = 0.1)\n    lr_schedule = step(gamma = 0.5)",
            &["`step` needs `every`"],
        ),
        (
            "sgd(lr = 0.1)\n    lr_schedule = step(2, gamma = 0)",
            &["`gamma` must be a positive number"],
        ),
        (
            "sgd(lr = 0.1)\n    lr_schedule = cosine(epochs = 2.5)",
            &["`epochs` must be a whole number from 1 to 10⁹"],
        ),
        (
            "sgd(lr = 0.1)\n    lr_schedule = cosine(min_lr = -1)",
            &["`min_lr` must be a number ≥ 0"],
        ),
        (
            "sgd(lr = 0.1)\n    lr_schedule = cosine(10, mn_lr = 0)",
            &["`cosine` has no argument `mn_lr`", "did you mean `min_lr`?"],
        ),
        (
            "sgd(lr = 0.1)\n    lr_schedule = step(2, 0.5, 3)",
            &["`step` takes at most 2 arguments"],
        ),
        (
            "sgd(lr = 0.1)\n    lr_schedule = step(2, every = 3)",
            &["`step`'s `every` is given twice"],
        ),
        (
            "sgd(lr = 0.1)\n    lr_schedule = warmup(5, then = warmup(3))",
            &["a warmup cannot follow another warmup"],
        ),
        (
            "sgd(lr = 0.1)\n    lr_schedule = 0.5",
            &["`lr_schedule` must be constant"],
        ),
    ];
    for (i, (opt, needles)) in cases.iter().enumerate() {
        let prog = format!("b{i}.dl");
        std::fs::write(
            dir.join(&prog),
            base.replace("sgd(lr = 0.01, momentum = 0.5)", opt),
        )
        .expect("program");
        fails_with(&dir, &["check", &prog], needles);
    }
    // AdamW decays on its own: not twice, and not by a penalty; nor do the
    // others' torch-style arguments go with a setting.
    for (settings, needle) in [
        (
            "sgd(lr = 0.01, weight_decay = 0.1)\n    weight_decay = penalty(0.1, [w])",
            "`sgd` decays the weights twice",
        ),
        (
            "rmsprop(lr = 0.01, weight_decay = -1)",
            "weight_decay must be a number ≥ 0",
        ),
        (
            "adamw(lr = 0.01, weight_decay = 0.1)\n    weight_decay = decoupled(0.1, [w])",
            "`adamw` decays the weights twice",
        ),
        (
            "adamw(lr = 0.01)\n    weight_decay = penalty(0.1)",
            "decoupled, not by a penalty",
        ),
    ] {
        let src = base.replace("sgd(lr = 0.01, momentum = 0.5)", settings);
        std::fs::write(dir.join("decay.dl"), src).expect("program");
        fails_with(&dir, &["check", "decay.dl"], &[needle]);
    }
    // With a decoupled setting, its λ and parameter list rule.
    let listed = base.replace(
        "sgd(lr = 0.01, momentum = 0.5)",
        "adamw(lr = 0.01)\n    weight_decay = decoupled(0.1, [b])",
    );
    std::fs::write(dir.join("listed.dl"), listed).expect("program");
    let out = dlc_in(&dir, &["check", "listed.dl"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn early_stopping_keeps_and_saves_the_best_epochs_parameters() {
    let dir = scratch("early");
    let csv = root().join("programs/data/breast_cancer.csv");
    let program = |early: &str| {
        format!(
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
{early}    metrics = [loss, acc]
}}
"#,
            csv.display()
        )
    };
    std::fs::write(
        dir.join("es.dl"),
        program("    early_stop = patience(3, valid_loss)\n"),
    )
    .expect("program");
    std::fs::write(dir.join("plain.dl"), program("")).expect("program");
    let out = dlc_in(&dir, &["train", "es.dl", "--json", "--save", "es.st"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines = json_lines(&out);
    let epochs: Vec<&serde_json::Value> = lines.iter().filter(|l| l["event"] == "epoch").collect();
    let event = lines
        .iter()
        .find(|l| l["event"] == "early_stop")
        .expect("an early_stop event");
    let best = event["best_epoch"].as_u64().expect("best_epoch");
    let stopped = event["stopped_epoch"].as_u64().expect("it stopped");
    // It trained past the best epoch, and stopped `patience` epochs after it.
    assert_eq!(stopped, best + 3);
    assert_eq!(epochs.len() as u64, stopped);
    assert!(stopped < 60);
    // The best epoch has the least validation loss of those trained.
    let losses: Vec<f64> = epochs
        .iter()
        .map(|l| l["valid_loss"].as_f64().expect("valid_loss"))
        .collect();
    let least = losses.iter().copied().fold(f64::INFINITY, f64::min);
    assert_eq!(losses[best as usize - 1], least);
    // The saved parameters are the best epoch's: the same run trained for
    // exactly that many epochs saves the same tensors.
    let best_s = best.to_string();
    let out = dlc_in(
        &dir,
        &[
            "train", "plain.dl", "--epochs", &best_s, "--save", "best.st",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let read = |f: &str| {
        let bytes = std::fs::read(dir.join(f)).expect("checkpoint");
        let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).expect("header");
        let epoch = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("epoch").cloned());
        let w = st.tensor("param.W").expect("W").data().to_vec();
        let b = st.tensor("param.b").expect("b").data().to_vec();
        (epoch, w, b)
    };
    assert_eq!(read("es.st"), read("best.st"));
    // Bad settings are diagnostics.
    for (early, needle) in [
        ("patience(0, valid_loss)", "`early_stop` must be"),
        ("patience(3, valid_rmse)", "which this run does not report"),
        ("stop(3)", "`early_stop` must be"),
    ] {
        std::fs::write(
            dir.join("bad.dl"),
            program(&format!("    early_stop = {early}\n")),
        )
        .expect("program");
        fails_with(&dir, &["check", "bad.dl"], &[needle]);
    }
    let no_valid =
        program("    early_stop = patience(3, valid_loss)\n").replace("    valid = 0.25\n", "");
    std::fs::write(dir.join("novalid.dl"), no_valid).expect("program");
    fails_with(
        &dir,
        &["check", "novalid.dl"],
        &["early_stop needs a validation part"],
    );
}

#[test]
fn several_runs_save_and_resume_one_checkpoint_each() {
    let dir = scratch("perrun");
    let p = sgd_program(&dir, &["a", "b"]);
    let full = dlc_in(&dir, &["train", &p, "--json"]);
    let out = dlc_in(
        &dir,
        &["train", &p, "--json", "--epochs", "2", "--save", "ck.st"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(dir.join("ck-a.st").exists() && dir.join("ck-b.st").exists());
    assert!(!dir.join("ck.st").exists());
    let res = dlc_in(&dir, &["train", &p, "--json", "--resume", "ck.st"]);
    assert_eq!(res.status.code(), Some(0), "{}", text(&res.stderr));
    let finals = |o: &Output| -> Vec<String> {
        json_lines(o)
            .into_iter()
            .filter(|l| l["event"] == "final")
            .map(|l| format!("{} {}", l["run"], l["params"]))
            .collect()
    };
    assert_eq!(finals(&res), finals(&full));
    // one run picked: the plain name
    let one = dlc_in(
        &dir,
        &[
            "train", &p, "--run", "a", "--epochs", "3", "--resume", "ck-a.st",
        ],
    );
    assert_eq!(one.status.code(), Some(0), "{}", text(&one.stderr));
    // a run's checkpoint does not resume another run
    fails_with(
        &dir,
        &["train", &p, "--run", "b", "--resume", "ck-a.st"],
        &["saved by run `a`, not by run `b`"],
    );
}

#[test]
fn resume_on_a_closed_form_run_and_data_on_synthetic_data_are_refused() {
    let dir = scratch("closedresume");
    let prog = root().join("programs/linreg.dl");
    let prog = prog.to_str().expect("utf-8");
    let out = dlc_in(&dir, &["train", prog, "--run", "sgd", "--save", "l.st"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    fails_with(
        &dir,
        &["train", prog, "--run", "closed_form", "--resume", "l.st"],
        &["closed form", "nothing to resume"],
    );
    for cmd in ["train", "check", "data", "gradcheck"] {
        fails_with(
            &dir,
            &[cmd, prog, "--data", "elsewhere.csv"],
            &["--data", "synthetic"],
        );
    }
}

#[test]
fn saving_is_checked_before_training_and_survives_a_closed_stdout() {
    let dir = scratch("save");
    let p = sgd_program(&dir, &["main"]);
    // A folder that does not exist: refused at once, before any epoch.
    let err = fails_with(
        &dir,
        &["train", &p, "--save", "no/such/dir/c.st"],
        &["no/such/dir", "does not exist"],
    );
    assert!(!err.contains("epoch"), "{err}");
    // `| head -1`: the pipe closes after the first line; the checkpoint
    // and the picture asked for are still written.
    let mut child = Command::new(env!("CARGO_BIN_EXE_dlc"))
        .args([
            "train",
            &p,
            "--json",
            "--epochs",
            "40",
            "--save",
            "piped.st",
            "--plot",
            "piped.svg",
        ])
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("dlc runs");
    {
        use std::io::BufRead;
        let stdout = child.stdout.take().expect("stdout");
        let mut first = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut first)
            .expect("a line");
        assert!(first.contains("\"event\":\"epoch\""), "{first}");
    } // the read end is dropped: the pipe is closed
    let status = child.wait().expect("dlc ends");
    assert_eq!(status.code(), Some(0));
    assert!(dir.join("piped.st").exists(), "the checkpoint was lost");
    assert!(dir.join("piped.svg").exists(), "the picture was lost");
}

#[test]
fn atomic_saves_clean_up_after_dead_processes_follow_links_and_fit_long_names() {
    let dir = scratch("atomic");
    let p = sgd_program(&dir, &["main"]);
    // Temporaries of a dead process (a save killed midway) are removed by
    // the next save of that path; a live process's is left alone.
    let mut dead = 4_000_000u32;
    while Path::new(&format!("/proc/{dead}")).exists() {
        dead += 1;
    }
    let stale = dir.join(format!(".c.st.tmp-{dead}"));
    let live = dir.join(format!(".c.st.tmp-{}", std::process::id()));
    let other = dir.join(format!(".d.st.tmp-{dead}"));
    for f in [&stale, &live, &other] {
        std::fs::write(f, vec![0u8; 1000]).expect("temporary");
    }
    let out = dlc_in(&dir, &["train", &p, "--save", "c.st"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!stale.exists(), "a dead process's temporary is removed");
    assert!(live.exists(), "a live process's temporary is kept");
    assert!(other.exists(), "another file's temporary is not touched");
    // A link is written through: it stays a link, its target is replaced.
    std::fs::create_dir_all(dir.join("real")).expect("dir");
    std::fs::write(dir.join("real/target.st"), b"old").expect("target");
    std::os::unix::fs::symlink("real/target.st", dir.join("link.st")).expect("symlink");
    let out = dlc_in(&dir, &["train", &p, "--save", "link.st"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let meta = std::fs::symlink_metadata(dir.join("link.st")).expect("link");
    assert!(
        meta.file_type().is_symlink(),
        "the link was replaced by a file"
    );
    assert!(
        std::fs::read(dir.join("real/target.st"))
            .expect("target")
            .len()
            > 100
    );
    // A 250-byte file name (legal) saves: its temporary stays within 255.
    let long = format!("{}.st", "n".repeat(247));
    assert_eq!(long.len(), 250);
    let out = dlc_in(&dir, &["train", &p, "--save", &long]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(dir.join(&long).exists());
    // and --resume from it works
    let out = dlc_in(&dir, &["train", &p, "--resume", &long, "--epochs", "5"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn quiet_still_prints_the_final_result() {
    let out = dlc_in(&root(), &["train", "programs/linreg.dl", "--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let o = text(&out.stdout);
    let lines: Vec<&str> = o.lines().collect();
    assert_eq!(lines.len(), 2, "{o}");
    assert!(
        lines[0].starts_with("run sgd: final:") && lines[0].contains("w = ["),
        "{o}"
    );
    assert!(lines[1].starts_with("run closed_form: final:"), "{o}");
    assert!(text(&out.stderr).is_empty());
    // K-fold: the summary and the ensemble's test score
    let out = dlc_in(
        &root(),
        &["train", "programs/kfold.dl", "--quiet", "--epochs", "2"],
    );
    let o = text(&out.stdout);
    assert!(
        o.contains("5-fold:") && o.contains("final (average of the 5 fold models)"),
        "{o}"
    );
    assert!(!o.contains("fold 1/5"), "{o}");
}

// ---------------------------------------------------------------------------
// Memory: refused with an estimate, never an abort

/// Runs `dlc args` under an address-space limit of `kib` KiB, with `input`
/// on stdin.
fn dlc_limited(dir: &Path, kib: u64, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut cmd = format!("ulimit -v {kib}; exec \"$0\"");
    for i in 1..=args.len() {
        cmd.push_str(&format!(" \"${i}\""));
    }
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .arg(env!("CARGO_BIN_EXE_dlc"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sh runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("input");
    child.wait_with_output().expect("dlc ends")
}

const FOUR_GIB: u64 = 4 << 20;

#[test]
fn the_repl_refuses_a_tensor_too_large_and_keeps_its_session() {
    let out = dlc_limited(
        &root(),
        FOUR_GIB,
        &["repl"],
        "let a = ones(3)\nzeros(100000, 100000)\n:time ones(50000, 50000) * 2.0\nlet b = randn(40000, 40000)\na + 1\n",
    );
    // Every input ran; the script exits 1 because some failed.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert_eq!(err.matches("needs about").count(), 3, "{err}");
    assert!(err.contains("GiB is available"), "{err}");
    assert_eq!(text(&out.stdout).trim(), "[2. 2. 2.]");
}

#[test]
fn every_command_checks_its_estimate_against_the_address_space_limit() {
    let dir = scratch("limits");
    // gradcheck and train of a program with a huge parameter
    let huge = root().join("tests/programs/huge.dl");
    let huge = huge.to_str().expect("utf-8");
    for cmd in ["gradcheck", "train"] {
        let out = dlc_limited(&dir, FOUR_GIB, &[cmd, huge], "");
        assert_eq!(out.status.code(), Some(1), "{cmd}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("needs about"),
            "{}",
            text(&out.stderr)
        );
    }
    // A program that fits the machine but not a 120 MiB address space: the
    // estimate sees the limit, and no allocation aborts.
    let mlp = root().join("programs/mlp.dl");
    let out = dlc_limited(
        &dir,
        120 << 10,
        &["train", mlp.to_str().expect("utf-8"), "--epochs", "1"],
        "",
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("ulimit -v"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn one_hot_encoding_is_estimated_before_it_is_allocated() {
    let dir = scratch("onehot");
    // 50,000 rows with an id column of 50,000 values: 10 GB once encoded.
    let mut csv = String::from("id,x,y\n");
    for i in 0..50_000 {
        csv.push_str(&format!("u{i},{},{}\n", i % 7, i % 3));
    }
    std::fs::write(dir.join("ids.csv"), &csv).expect("csv");
    let p = csv_program(&dir, "ids.dl", "ids.csv", "", None, "");
    for cmd in ["check", "train", "data"] {
        let out = dlc_limited(&dir, FOUR_GIB, &[cmd, &p], "");
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {err}");
        for n in ["`id` (50000 categories)", "drop = [\"id\"]", "needs about"] {
            assert!(err.contains(n), "{cmd}: `{n}` not in {err}");
        }
    }
    // A mostly unique text column that fits is a warning, not an error.
    let mut csv = String::from("name,x,y\n");
    for i in 0..200 {
        csv.push_str(&format!("person {i},{},{}\n", i % 7, i % 3));
    }
    std::fs::write(dir.join("names.csv"), &csv).expect("csv");
    let p = csv_program(&dir, "names.dl", "names.csv", "", None, "");
    for cmd in ["check", "train"] {
        let out = dlc_in(&dir, &[cmd, &p]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(
            err.contains("warning:")
                && err.contains("`name` is text with 200 distinct values in 200 rows"),
            "{err}"
        );
    }
}

#[test]
fn a_gzip_stream_is_read_no_further_than_its_idx_header_says() {
    use std::io::Write;
    let dir = scratch("gzbomb");
    for split in ["train", "t10k"] {
        let mut img = vec![0u8, 0, 8, 3];
        for d in [20u32, 4, 4] {
            img.extend_from_slice(&d.to_be_bytes());
        }
        img.extend(vec![7u8; 20 * 16]);
        if split == "train" {
            // 256 MiB of zeros past the header's 320 bytes: a few hundred
            // kilobytes compressed.
            img.extend(vec![0u8; 256 << 20]);
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&img).expect("gzip");
        std::fs::write(
            dir.join(format!("{split}-images-idx3-ubyte.gz")),
            gz.finish().expect("gzip"),
        )
        .expect("write");
        write_idx(
            &dir.join(format!("{split}-labels-idx1-ubyte")),
            0x08,
            &[20],
            &[1u8; 20],
        );
    }
    std::fs::write(
        dir.join("p.dl"),
        "data d = idx(\".\", classes = 2)\nmodel m(x: f32[B, 4, 4]) -> f32[B, 2] {\n    param w: f32[16, 2] = zeros\n    reshape(x, [B, 16]) @ w\n}\ntrain m on d {\n    loss = cross_entropy(output, label)\n    optimizer = sgd(lr = 0.1)\n}\n",
    )
    .expect("program");
    // Under a 1 GiB address space: decompressing it whole would not fit.
    for cmd in ["train", "data"] {
        let out = dlc_limited(&dir, 1 << 20, &[cmd, "p.dl"], "");
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("goes on past the 320 bytes") && err.contains("train-images"),
            "{err}"
        );
    }
    // A gzipped CSV trains as the plain file does.
    let rows: String = (0..40)
        .map(|i| format!("{},{},{}\n", i % 5, i % 3, i % 2))
        .collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(format!("a,b,y\n{rows}").as_bytes())
        .expect("gzip");
    std::fs::write(dir.join("z.csv.gz"), gz.finish().expect("gzip")).expect("write");
    let p = csv_program(&dir, "z.dl", "z.csv", "", None, "");
    let out = dlc_in(&dir, &["train", &p]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

// ---------------------------------------------------------------------------
// Messages that say what happened

#[test]
fn inlining_that_doubles_per_level_is_bounded_with_one_error() {
    let dir = scratch("inline");
    for (levels, needle) in [
        (24, "expands the program past 1000000 statements"),
        (34, "calls nested deeper than 32"),
    ] {
        let mut src = String::from("fn f0(x) = x * 1.0001\n");
        for i in 1..=levels {
            src.push_str(&format!("fn f{i}(x) = f{}(x) + f{}(x)\n", i - 1, i - 1));
        }
        src.push_str(&format!("let y = f{levels}([1.0, 2.0])\ny\n"));
        std::fs::write(dir.join("blow.dl"), &src).expect("program");
        let out = dlc_limited(&dir, FOUR_GIB, &["check", "blow.dl"], "");
        let err = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            &err[..err.len().min(2000)]
        );
        assert!(err.contains(needle), "{}", &err[..err.len().min(2000)]);
        assert!(
            err.ends_with("blow.dl: 1 error\n"),
            "one error, not one per path: {}",
            &err[err.len().saturating_sub(300)..]
        );
    }
}

#[test]
fn messages_name_the_real_problem() {
    let (out, err) = repl(
        "arange(3000000000)\neye(1000000)\narange(5, 1)\nlet x = ones(2, 3)\nx[:, ::-1]\nx[:, 2:1]\n",
    );
    assert!(out.is_empty(), "{out}");
    for needle in [
        "arange gives 3000000000 elements, more than the 2147483648 an axis may have",
        "eye(1000000) would be 1000000 × 1000000",
        "the step goes away from the stop",
        "a slice step must be positive, found -1",
        "reversing an axis (x[::-1]) is not supported",
        "the slice 2:1 of axis 1 of f32[2,3] is empty",
    ] {
        assert!(err.contains(needle), "`{needle}` not in {err}");
    }
    let dir = scratch("messages");
    // a long flat chain is not "nesting"
    let chain: Vec<&str> = vec!["1.0"; 300];
    std::fs::write(
        dir.join("flat.dl"),
        format!("let s = {}\ns\n", chain.join(" + ")),
    )
    .expect("program");
    fails_with(
        &dir,
        &["check", "flat.dl"],
        &["more than 256 operators in a chain", "sum("],
    );
    // settings take top-level constants; batch = 1e12 says what is wrong
    let prog = |batch: &str| {
        format!(
            "let lr = 0.05\nlet n = 2 * 8\ndata s = linear(w = [2, -3.4], b = 4.2, n_train = 100, noise = 0.01)\n\
             model m(x: f32[B, 2]) -> f32[B, 1] {{\n    param w: f32[2, 1] = normal(0.01)\n    x @ w\n}}\n\
             train m on s {{\n    loss = squared_loss(output, label)\n    optimizer = sgd(lr = lr)\n    batch = {batch}\n    epochs = 2\n}}\n"
        )
    };
    std::fs::write(dir.join("lr.dl"), prog("n")).expect("program");
    let out = dlc_in(&dir, &["train", "lr.dl"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("batch 16, lr 0.05"),
        "{}",
        text(&out.stdout)
    );
    std::fs::write(dir.join("big.dl"), prog("1e12")).expect("program");
    fails_with(
        &dir,
        &["check", "big.dl"],
        &["`batch` must be at most 1000000000"],
    );
    std::fs::write(dir.join("half.dl"), prog("2.5")).expect("program");
    fails_with(
        &dir,
        &["check", "half.dl"],
        &["`batch` must be a whole number"],
    );
    // a missing relative data path names the folder it was looked for in
    std::fs::create_dir_all(dir.join("sub")).expect("dir");
    std::fs::write(
        dir.join("sub/p.dl"),
        "data d = csv(\"data/x.csv\", label = \"y\")\n",
    )
    .expect("program");
    fails_with(
        &dir,
        &["check", "sub/p.dl"],
        &["\"data/x.csv\" is resolved against the program's folder (sub)"],
    );
    // a diagnostic whose labels are on two lines shows each under its own line
    let p = one_logit(&dir, "cross_entropy(output, label)", 1, "[loss]");
    let err = fails_with(
        &dir,
        &["check", p.to_str().expect("utf-8")],
        &["the model's output type"],
    );
    assert_eq!(
        err.matches("─[ ").count(),
        1,
        "one header, at the error: {err}"
    );
}

#[test]
fn a_function_whose_definition_failed_is_named_when_called() {
    let (out, err) = repl("fn f(x) {\n    param w: f32[2] = zeros\n    x * w\n}\nf([1.0, 2.0])\nfn f(x) = x + 1\nf([1.0, 2.0])\n");
    assert!(err.contains("`param` belongs in a model"), "{err}");
    assert!(
        err.contains("`f` is not defined: its definition had an error"),
        "{err}"
    );
    assert!(!err.contains("unknown function"), "{err}");
    assert_eq!(out.trim(), "[2. 3.]");
}

#[test]
fn data_files_are_summarized_directly_and_not_read_as_programs() {
    let dir = scratch("datafiles");
    let csv = root().join("programs/data/breast_cancer.csv");
    let csv = csv.to_str().expect("utf-8");
    let out = dlc_in(&dir, &["data", csv]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let o = text(&out.stdout);
    assert!(
        o.contains("569 rows, 31 columns")
            && o.contains("mean_radius")
            && o.contains("label = \"target\""),
        "{o}"
    );
    let mnist = root().join("programs/data/fashion-mnist");
    let out = dlc_in(&dir, &["data", mnist.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("60000 train + 10000 test samples of 28×28"),
        "{}",
        text(&out.stdout)
    );
    for cmd in ["check", "train", "gradcheck", "ir", "eval"] {
        let mut args = vec![cmd, csv];
        if cmd == "eval" {
            args.extend(["--load", "x.st"]);
        }
        let err = fails_with(
            &dir,
            &args,
            &["is a data file, not a .dl program", "dlc data"],
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    fails_with(
        &dir,
        &["train", mnist.to_str().expect("utf-8")],
        &["is a folder, not a .dl program"],
    );
}

// ---------------------------------------------------------------------------
// d2l chapter 2 operations: cumsum, concat, stack

#[test]
fn concat_stack_and_cumsum_follow_numpy() {
    let (out, err) = repl(
        "let X = reshape(arange(12.0), [3, 4])\n\
         let Y = [[2.0, 1.0, 4.0, 3.0], [1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]]\n\
         :type concat([X, Y], axis = 0)\n\
         :type concat([X, Y], axis = 1)\n\
         :type stack([X, Y])\n\
         :type stack([X, Y], axis = -1)\n\
         sum(concat([X, Y], axis = 1)[:, 4:8] - Y)\n\
         cumsum(X, axis = 0)[2]\n\
         cumsum(X, axis = 1)[:, 3]\n\
         cumsum(arange(5))\n\
         stack([X, Y], axis = 1)[1, 1]\n\
         grad(sum(cumsum(X, axis = 1) * Y), X)[0]\n\
         grad(sum(concat([X, 2.0 * Y], axis = 0) * ones(6, 4)), Y)[0]\n",
    );
    assert!(err.is_empty(), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "f32[6,4]",
            "f32[3,8]",
            "f32[2,3,4]",
            "f32[3,4,2]",
            "0.",
            "[12. 15. 18. 21.]",
            "[ 6. 22. 38.]",
            "[ 0  1  3  6 10]",
            "[1. 2. 3. 4.]",
            "[10.  8.  7.  3.]",
            "[2. 2. 2. 2.]",
        ],
        "{out}"
    );
    let (_, err) = repl("concat([ones(3, 4), ones(2, 3)], axis = 0)\ncumsum(ones(2, 2))\nstack([ones(2), ones(3)])\nconcat([ones(2), [true, false]])\n");
    for needle in [
        "agree except along axis 0, found [3,4] and [2,3]",
        "cumsum of a tensor of rank > 1 needs `axis`",
        "stack takes tensors of one shape",
        "one numeric dtype",
    ] {
        assert!(err.contains(needle), "`{needle}` not in {err}");
    }
}

#[test]
fn concat_stack_and_cumsum_differentiate_and_train() {
    let dir = scratch("joins");
    std::fs::write(
        dir.join("j.dl"),
        "data s = linear(w = [2, -3.4], b = 4.2, n_train = 200, noise = 0.01)\n\
         model m(x: f32[B, 2]) -> f32[B, 1] {\n    param W: f32[10, 1] = normal(0.1)\n    param b: f32[1] = zeros\n\
             let h = cumsum(concat([x, tanh(x) * x], axis = 1), axis = 1)\n\
             let s = reshape(stack([x, x * 0.5], axis = 1), [B, 4])\n\
             concat([h, s, x], axis = 1) @ W + b\n}\n\
         train m on s {\n    loss = squared_loss(output, label)\n    optimizer = sgd(lr = 0.01)\n    batch = 20\n    epochs = 30\n    metrics = [loss, rmse]\n}\n",
    )
    .expect("program");
    let out = dlc_in(&dir, &["gradcheck", "j.dl"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let out = dlc_in(&dir, &["train", "j.dl", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines = json_lines(&out);
    let first = lines[0]["train_loss"].as_f64().expect("loss");
    let last = lines[lines.len() - 2]["train_loss"].as_f64().expect("loss");
    assert!(last < first / 20.0, "trains: {first} -> {last}");
}

#[test]
fn repl_arguments_known_when_compiled_are_checked() {
    let (out, err) = repl("one_hot([5, -1], 3)\nmultinomial(10, [0.0, 0.0])\nmultinomial(10, [-0.5, 1.5])\none_hot([0, 2], 3)[1]\n");
    assert!(err.contains("one_hot: class 5 is not in 0..3"), "{err}");
    assert!(
        err.contains("multinomial: probabilities that are all zero"),
        "{err}"
    );
    assert!(err.contains("multinomial: a negative probability"), "{err}");
    assert_eq!(out.trim(), "[0. 0. 1.]");
    let dir = scratch("weighted");
    std::fs::write(dir.join("w.csv"), "a,y\n1,0\n2,1\n3,0\n4,1\n").expect("csv");
    for ws in ["[0, 0]", "[0.0, 0.0]"] {
        let p = csv_program(
            &dir,
            "w.dl",
            "w.csv",
            ", classes = 2",
            Some(2),
            &format!("sampler = weighted({ws})"),
        );
        fails_with(&dir, &["check", &p], &["some weight > 0"]);
    }
}

#[test]
fn a_constant_shared_by_forward_and_backward_passes_through_the_optimizer() {
    // Found by tests/fuzz_commands: `-1.0 - mean(output)` made a rule
    // return the constant −1 (interned before the forward node it was a
    // derivative of), and the next pass indexed past its node map (exit 3).
    let dir = scratch("fuzzfound");
    let csv = root().join("programs/data/breast_cancer.csv");
    for loss in [
        "-1.0 - mean(output)",
        "-1 - mean(output)",
        "2.0 * (-1.0 - mean(output * output))",
    ] {
        let src = format!(
            "data d = csv(\"{}\", label = \"target\", classes = 2, standardize = true)\n\
             model m(x: f32[B, D]) -> f32[B, 2] {{\n    param W: f32[D, 2] = zeros\n    x @ W\n}}\n\
             train m on d {{\n    loss = {loss}\n    optimizer = sgd(lr = 0.01)\n    epochs = 1\n}}\n",
            csv.display()
        );
        std::fs::write(dir.join("p.dl"), src).expect("program");
        for args in [
            &["ir", "p.dl", "--stage", "kernels"][..],
            &["train", "p.dl"][..],
        ] {
            let out = dlc_in(&dir, args);
            assert_eq!(out.status.code(), Some(0), "{loss}: {}", text(&out.stderr));
        }
    }
}

// ---------------------------------------------------------------------------
// Issue #34: labels read from files, one rule for every source

/// An IDX folder of 4 training and 4 test samples (2×2 bytes) with
/// labels of element type `code` (`label` per value).
fn idx_folder(dir: &Path, code: u8, labels: &[f64]) {
    for split in ["train", "t10k"] {
        write_idx(
            &dir.join(format!("{split}-images-idx3-ubyte")),
            0x08,
            &[4, 2, 2],
            &[7; 16],
        );
        let payload: Vec<u8> = labels
            .iter()
            .flat_map(|v| match code {
                0x0C => (*v as i32).to_be_bytes().to_vec(),
                0x0D => (*v as f32).to_be_bytes().to_vec(),
                _ => vec![*v as u8],
            })
            .collect();
        write_idx(
            &dir.join(format!("{split}-labels-idx1-ubyte")),
            code,
            &[4],
            &payload,
        );
    }
}

fn idx_program(dir: &Path, opts: &str) {
    std::fs::write(
        dir.join("p.dl"),
        format!("data d = idx(\".\"{opts})\nmodel m(x: f32[B, 2, 2]) -> f32[B, 2] {{\n    param w: f32[4, 2] = zeros\n    reshape(x, [B, 4]) @ w\n}}\ntrain m on d {{\n    loss = cross_entropy(output, label)\n    optimizer = sgd(lr = 0.1)\n    batch = 2\n    epochs = 1\n}}\n"),
    )
    .expect("program");
}

#[test]
fn idx_labels_follow_the_class_rule_and_size_nothing_unchecked() {
    let dir = scratch("idx-labels");
    // No class count: the largest label must be backed by the rows.
    idx_folder(&dir, 0x0C, &[0.0, 1.0, 2147483647.0, 1.0]);
    idx_program(&dir, "");
    for cmd in ["data", "train"] {
        let err = fails_with(
            &dir,
            &[cmd, "p.dl"],
            &["would make 2147483648 classes", "declare classes = N"],
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    // A negative label is no class, with or without a class count.
    idx_folder(&dir, 0x0C, &[0.0, 1.0, -3.0, 1.0]);
    for opts in ["", ", classes = 2"] {
        idx_program(&dir, opts);
        fails_with(&dir, &["data", "p.dl"], &["label 2 is -3, not a class"]);
    }
    // Float labels with a class count are classes; 0.5 is not one.
    idx_folder(&dir, 0x0D, &[0.0, 1.0, 1.0, 0.0]);
    idx_program(&dir, ", classes = 2");
    let out = dlc_in(&dir, &["train", "p.dl"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    idx_folder(&dir, 0x0D, &[0.0, 1.0, 0.5, 0.0]);
    fails_with(
        &dir,
        &["train", "p.dl"],
        &["label 2 is 0.5, not a class in 0..2"],
    );
}

#[test]
fn rows_without_a_label_are_counted_aloud() {
    let dir = scratch("unlabelled");
    std::fs::write(
        dir.join("m.csv"),
        "a,b,y\n1,2,0\n3,4,\n5,6,1\n7,8,NA\n1,1,1\n2,2,0\n3,3,1\n",
    )
    .expect("csv");
    std::fs::write(dir.join("t.csv"), "a,b,y\n1,2,0\n3,4,NA\n5,6,1\n").expect("csv");
    let note = "note: data `d`: m.csv: 7 rows read, 5 kept (2 without a label `y`)";
    for (file, opts, classes) in [("c.dl", ", classes = 2", Some(2)), ("r.dl", "", None)] {
        let p = csv_program(&dir, file, "m.csv", opts, classes, "");
        let out = dlc_in(&dir, &["train", &p]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains(note), "{}", text(&out.stderr));
        let out = dlc_in(&dir, &["data", &p]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains(note), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout)
                .contains("  rows: m.csv: 7 rows read, 5 kept (2 without a label `y`)"),
            "{}",
            text(&out.stdout)
        );
    }
    // A test file's own rows are counted too.
    let p = csv_program(&dir, "t.dl", "m.csv", ", test = \"t.csv\"", None, "");
    let out = dlc_in(&dir, &["train", &p]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("t.csv: 3 rows read, 2 kept (1 without a label `y`)"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_csv_with_a_header_and_no_rows_says_so() {
    let dir = scratch("header-only");
    std::fs::write(dir.join("h.csv"), "a,b,y\n").expect("csv");
    std::fs::write(dir.join("m.csv"), "a,b,y\n1,2,0\n3,4,1\n5,6,1\n7,8,0\n").expect("csv");
    let p = csv_program(&dir, "h.dl", "h.csv", "", None, "");
    for cmd in ["check", "data", "train"] {
        let err = fails_with(&dir, &[cmd, &p], &["h.csv has a header and no data rows"]);
        assert!(!err.contains("missing in all"), "{err}");
    }
    fails_with(
        &dir,
        &["data", "h.csv"],
        &["h.csv has a header and no data rows"],
    );
    let p = csv_program(&dir, "t.dl", "m.csv", ", test = \"h.csv\"", None, "");
    fails_with(
        &dir,
        &["check", &p],
        &["the test file h.csv has a header and no data rows"],
    );
    let p = csv_program(&dir, "m.dl", "m.csv", "", None, "");
    let out = dlc_in(&dir, &["train", &p, "--save", "m.safetensors", "--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    std::fs::write(dir.join("in.csv"), "a,b\n").expect("csv");
    fails_with(
        &dir,
        &[
            "predict",
            &p,
            "--load",
            "m.safetensors",
            "--input",
            "in.csv",
            "--out",
            "-",
        ],
        &["in.csv: no rows to predict (it has a header and no data rows)"],
    );
}
