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
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
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
            vec!["no labels"],
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
