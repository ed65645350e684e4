//! `dlc predict` streams: on a 200 MB CSV with `--proba --raw` it runs
//! under a 700 MB address-space limit (issue #34; before, it kept the
//! whole output in memory, peaked at 570 MB and aborted under the limit).

mod cmd;

use std::io::Write;
use std::process::Command;

use cmd::{dlc, ok, scratch, text};

#[test]
fn predict_on_200_mb_runs_under_a_700_mb_address_space_limit() {
    let d = scratch("predict-memory");
    let cols: Vec<String> = (0..12).map(|i| format!("f{i}")).collect();
    let mut train = cols.join(",") + ",label\n";
    for i in 0..400u32 {
        let v: Vec<f64> = (0..12)
            .map(|j| f64::from((i * 7 + j * 13) % 17) / 8.0 - 1.0)
            .collect();
        let label = ["a", "b", "c"][(i % 3) as usize];
        let cells: Vec<String> = v.iter().map(|x| format!("{x:.4}")).collect();
        train.push_str(&format!("{},{label}\n", cells.join(",")));
    }
    std::fs::write(d.join("train.csv"), train).expect("train");
    std::fs::write(
        d.join("p.dl"),
        r#"data d = csv("train.csv", label = "label", standardize = true)
model softmax(x: f32[B, D]) -> f32[B, C] {
    param W: f32[D, C] = zeros
    param b: f32[C] = zeros
    x @ W + b
}
train softmax on d {
    loss = cross_entropy(output, label)
    optimizer = sgd(lr = 0.1)
    epochs = 2
}
"#,
    )
    .expect("program");
    ok(&dlc(&d, &["train", "p.dl", "--save", "m.st", "--quiet"]));
    // 200 MB of rows to predict.
    let line = (0..12)
        .map(|j| format!("{:.5}", f64::from(j) / 7.0 - 0.8))
        .collect::<Vec<_>>()
        .join(",")
        + "\n";
    let rows = 200_000_000 / line.len();
    {
        let f = std::fs::File::create(d.join("new.csv")).expect("new");
        let mut w = std::io::BufWriter::new(f);
        w.write_all((cols.join(",") + "\n").as_bytes())
            .expect("header");
        for _ in 0..rows {
            w.write_all(line.as_bytes()).expect("row");
        }
    }
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 716800; exec \"$0\" predict p.dl --load m.st --input new.csv --out out.csv --proba --raw")
        .arg(env!("CARGO_BIN_EXE_dlc"))
        .current_dir(&d)
        .output()
        .expect("dlc runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("wrote {rows} predictions")),
        "{}",
        text(&out.stderr)
    );
    let written = std::fs::metadata(d.join("out.csv")).expect("out").len();
    assert!(written > 150_000_000, "{written} bytes of predictions");
    let _ = std::fs::remove_dir_all(&d);
}
