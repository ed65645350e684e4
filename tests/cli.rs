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
}

#[test]
fn train_accepts_every_documented_flag() {
    // Training comes in a later version; the flags of the contract parse
    // now, and the program is checked before dlc says what is missing.
    let out = dlc(&[
        "train",
        "programs/mlp.dl",
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
        "main",
        "--json",
        "--quiet",
        "--profile",
        "--grad-norms",
        "--verbose",
        "--no-opt",
        "--save",
        "x.safetensors",
        "--plot",
        "x.svg",
        "--data",
        "programs/data/fashion-mnist",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not built yet"));
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
