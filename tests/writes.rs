//! Every command that writes a file, held to `output`'s rules, run the way
//! a user runs them: a FIFO, a device or `/dev/stdout` is written to and
//! stays what it was; an output that is one of the command's inputs is
//! refused and the input survives; a regular file appears whole.

mod cmd;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cmd::{dlc, ok, text};

/// A small regression on a CSV of its own: y = 2a − b + 1.
const PROGRAM: &str = r#"
data d = csv("d.csv", label = "y")
model linear(x: f32[B, D]) -> f32[B, 1] {
    param w: f32[D, 1] = zeros
    param b: f32[1] = zeros
    x @ w + b
}
train fit: linear on d {
    loss = squared_loss(output, label)
    optimizer = sgd(lr = 0.05)
    batch = 4
    epochs = 2
}
"#;

/// A folder with the program `p.dl`, its data `d.csv`, new rows `new.csv`
/// and a trained checkpoint `m.st`.
fn trained(name: &str) -> PathBuf {
    cmd::trained_regression(name, PROGRAM)
}

fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(st.success(), "mkfifo {}", path.display());
}

fn is_fifo(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

/// Runs `dlc ARGS` in `dir` (with `input` on stdin) while a reader drains
/// the FIFO `fifo` (for at most 60 s); returns dlc's output and what the
/// reader got.
fn through_fifo(
    dir: &Path,
    fifo: &str,
    args: &[&str],
    input: &str,
) -> (std::process::Output, Vec<u8>) {
    mkfifo(&dir.join(fifo));
    let got = dir.join(format!("{fifo}.got"));
    let mut reader = Command::new("timeout")
        .args(["60", "sh", "-c", "cat \"$0\" > \"$1\""])
        .arg(dir.join(fifo))
        .arg(&got)
        .spawn()
        .expect("the reader starts");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dlc"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dlc runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).expect("input");
    }
    let out = child.wait_with_output().expect("dlc ends");
    let _ = reader.wait();
    let bytes = std::fs::read(&got).unwrap_or_default();
    (out, bytes)
}

#[test]
fn every_writer_writes_into_a_fifo_and_leaves_it_one() {
    let d = trained("writes-fifo");
    let cases: [(&str, Vec<&str>, &str, &[u8]); 6] = [
        (
            "pred.fifo",
            vec![
                "predict",
                "p.dl",
                "--load",
                "m.st",
                "--input",
                "new.csv",
                "--out",
                "pred.fifo",
            ],
            "",
            b"y\n",
        ),
        (
            "ckpt.fifo",
            vec!["train", "p.dl", "--save", "ckpt.fifo", "--quiet"],
            "",
            b"",
        ),
        (
            "onnx.fifo",
            vec![
                "export",
                "p.dl",
                "--load",
                "m.st",
                "--out",
                "onnx.fifo",
                "--format",
                "onnx",
            ],
            "",
            b"",
        ),
        (
            "npz.fifo",
            vec![
                "export", "p.dl", "--load", "m.st", "--out", "npz.fifo", "--format", "npz",
            ],
            "",
            b"PK",
        ),
        (
            "curve.svg",
            vec!["train", "p.dl", "--plot", "curve.svg", "--quiet"],
            "",
            b"",
        ),
        (
            "repl.fifo",
            vec!["repl"],
            "let x = [1.0, 2.0, 3.0]\n:save repl.fifo x\n",
            b"",
        ),
    ];
    for (fifo, args, input, starts) in cases {
        let (out, got) = through_fifo(&d, fifo, &args, input);
        let what = format!("dlc {}", args.join(" "));
        assert_eq!(out.status.code(), Some(0), "{what}: {}", text(&out.stderr));
        assert!(is_fifo(&d.join(fifo)), "{what}: {fifo} is no longer a FIFO");
        assert!(!got.is_empty(), "{what}: the FIFO's reader got nothing");
        assert!(
            got.starts_with(starts),
            "{what}: the reader got {:?}",
            text(&got[..got.len().min(80)])
        );
    }
    // What came through is what a file would have held.
    let (_, ckpt) = through_fifo(
        &d,
        "again.fifo",
        &["train", "p.dl", "--save", "again.fifo", "--quiet"],
        "",
    );
    ok(&dlc(&d, &["train", "p.dl", "--save", "file.st", "--quiet"]));
    assert_eq!(ckpt, std::fs::read(d.join("file.st")).expect("checkpoint"));
    // No temporary was left beside any of them.
    let left: Vec<String> = std::fs::read_dir(&d)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(left.is_empty(), "temporaries left: {left:?}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn devices_and_dev_stdout_are_written_to_not_replaced() {
    let d = trained("writes-devices");
    // /dev/null takes a checkpoint, a model and predictions, and stays a
    // device (as root, a rename would have replaced it).
    for args in [
        vec!["train", "p.dl", "--save", "/dev/null", "--quiet"],
        vec![
            "export",
            "p.dl",
            "--load",
            "m.st",
            "--out",
            "/dev/null",
            "--format",
            "npz",
        ],
        vec![
            "predict",
            "p.dl",
            "--load",
            "m.st",
            "--input",
            "new.csv",
            "--out",
            "/dev/null",
        ],
    ] {
        ok(&dlc(&d, &args));
        let m = std::fs::metadata("/dev/null").expect("/dev/null");
        assert!(!m.is_file(), "dlc {} replaced /dev/null", args.join(" "));
    }
    // /dev/stdout into a pipe: the predictions arrive on the pipe.
    let via_dev = dlc(
        &d,
        &[
            "predict",
            "p.dl",
            "--load",
            "m.st",
            "--input",
            "new.csv",
            "--out",
            "/dev/stdout",
        ],
    );
    let dash = dlc(
        &d,
        &[
            "predict", "p.dl", "--load", "m.st", "--input", "new.csv", "--out", "-",
        ],
    );
    assert_eq!(ok(&via_dev), ok(&dash));
    assert_eq!(ok(&dash).lines().count(), 25, "a header and 24 rows");
    // A regular file behind /dev/stdout (`> f`) gets the bytes too.
    let f = std::fs::File::create(d.join("redirected.csv")).expect("file");
    let st = Command::new(env!("CARGO_BIN_EXE_dlc"))
        .args([
            "predict",
            "p.dl",
            "--load",
            "m.st",
            "--input",
            "new.csv",
            "--out",
            "/dev/stdout",
        ])
        .current_dir(&d)
        .stdout(f)
        .status()
        .expect("dlc runs");
    assert!(st.success());
    assert_eq!(
        std::fs::read_to_string(d.join("redirected.csv")).expect("read"),
        ok(&dash)
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn an_output_that_is_an_input_is_refused_and_the_input_survives() {
    let d = trained("writes-inputs");
    std::os::unix::fs::symlink(d.join("m.st"), d.join("link.st")).expect("symlink");
    std::fs::hard_link(d.join("new.csv"), d.join("hard.csv")).expect("hard link");
    // Pictures must end in .svg or .png: links with those names.
    std::os::unix::fs::symlink(d.join("p.dl"), d.join("prog.svg")).expect("symlink");
    std::os::unix::fs::symlink("d.csv", d.join("data.png")).expect("symlink");
    let before: Vec<(String, Vec<u8>)> = ["p.dl", "d.csv", "new.csv", "m.st"]
        .iter()
        .map(|f| (f.to_string(), std::fs::read(d.join(f)).expect("read")))
        .collect();
    let predict = |out: &'static str| {
        vec![
            "predict", "p.dl", "--load", "m.st", "--input", "new.csv", "--out", out,
        ]
    };
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (predict("new.csv"), "the input (--input)"),
        (predict("hard.csv"), "the input (--input)"),
        (predict("m.st"), "the checkpoint (--load)"),
        (predict("link.st"), "the checkpoint (--load)"),
        (predict("./p.dl"), "the program"),
        (predict("d.csv"), "a file of data `d`"),
        (
            vec![
                "export", "p.dl", "--load", "m.st", "--out", "m.st", "--format", "npz",
            ],
            "the checkpoint (--load)",
        ),
        (
            vec![
                "export", "p.dl", "--load", "link.st", "--out", "m.st", "--format", "onnx",
            ],
            "the checkpoint (--load)",
        ),
        (vec!["train", "p.dl", "--save", "p.dl"], "the program"),
        (
            vec!["train", "p.dl", "--save", "d.csv"],
            "a file of data `d`",
        ),
        (vec!["train", "p.dl", "--plot", "prog.svg"], "the program"),
        (
            vec!["train", "p.dl", "--save", "c.svg", "--plot", "c.svg"],
            "the output of --save",
        ),
        (
            vec!["data", "p.dl", "--out", "data.png"],
            "a file of data `d`",
        ),
    ];
    for (args, role) in cases {
        let out = dlc(&d, &args);
        let err = text(&out.stderr);
        let what = format!("dlc {}", args.join(" "));
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert!(err.contains(&format!("it is {role}")), "{what}: {err}");
        for (f, bytes) in &before {
            assert_eq!(
                &std::fs::read(d.join(f)).expect("read"),
                bytes,
                "{what} changed {f}"
            );
        }
    }
    // Saving over the checkpoint a run resumes from continues the run.
    let out = dlc(
        &d,
        &[
            "train", "p.dl", "--resume", "m.st", "--save", "m.st", "--epochs", "3", "--quiet",
        ],
    );
    ok(&out);
    assert_ne!(std::fs::read(d.join("m.st")).expect("read"), before[3].1);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_failed_prediction_leaves_the_old_file_and_no_temporary() {
    let d = trained("writes-failed");
    std::fs::write(d.join("old.csv"), "kept\n").expect("old");
    let mut bad = String::from("a,b\n");
    for i in 0..5000 {
        bad.push_str(&format!("{i},1\n"));
    }
    bad.push_str("oops,1\n");
    std::fs::write(d.join("bad.csv"), bad).expect("bad");
    let out = dlc(
        &d,
        &[
            "predict", "p.dl", "--load", "m.st", "--input", "bad.csv", "--out", "old.csv",
            "--batch", "7",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("line 5002"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(d.join("old.csv")).expect("read"),
        "kept\n"
    );
    let names: Vec<String> = std::fs::read_dir(&d)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
    let _ = std::fs::remove_dir_all(&d);
}
