//! Running the `dlc` binary as a user does, for the test files of the
//! commands that read and write files (predict, export, NumPy data).
// Each test file uses some of these.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `dlc ARGS` run in `dir`.
pub fn dlc(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dlc"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("dlc runs")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The stdout of a run that must succeed.
pub fn ok(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// A fresh folder for one test.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dlc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("dir");
    d
}

/// A fresh folder `name` with `program` as `p.dl`, its data `d.csv` (24
/// rows of y = 2a − b + 1), new rows `new.csv` (columns a, b) and a
/// checkpoint `m.st` trained on them.
pub fn trained_regression(name: &str, program: &str) -> PathBuf {
    let d = scratch(name);
    let mut csv = String::from("a,b,y\n");
    let mut new = String::from("a,b\n");
    for i in 0..24 {
        let (a, b) = (f64::from(i) / 8.0, f64::from(i % 5) / 4.0);
        csv.push_str(&format!("{a},{b},{}\n", 2.0 * a - b + 1.0));
        new.push_str(&format!("{b},{a}\n"));
    }
    std::fs::write(d.join("d.csv"), csv).expect("csv");
    std::fs::write(d.join("new.csv"), new).expect("csv");
    std::fs::write(d.join("p.dl"), program).expect("program");
    ok(&dlc(&d, &["train", "p.dl", "--save", "m.st", "--quiet"]));
    d
}
