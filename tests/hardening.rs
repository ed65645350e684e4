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
