//! The data's splits have their own seed (`split_seed`, the program's
//! `seed` by default): `--seed` redraws the initialization and the
//! shuffle, not which rows are scored; `dlc data --split-indices` prints
//! the splits training draws, so they can be reproduced elsewhere.

mod cmd;

use std::collections::BTreeSet;
use std::path::Path;

use cmd::{dlc, ok, scratch, text};

/// A regression whose label is the row's index (a few labels missing), so
/// a part's target mean names its rows.
fn folder(name: &str, settings: &str) -> std::path::PathBuf {
    let d = scratch(name);
    let mut csv = String::from("a,y\n");
    for i in 0..200 {
        let y = if i % 37 == 5 {
            String::new()
        } else {
            i.to_string()
        };
        csv.push_str(&format!("{},{y}\n", f64::from(i) / 100.0));
    }
    std::fs::write(d.join("d.csv"), csv).expect("csv");
    let program = format!(
        r#"data d = csv("d.csv", label = "y", test = 0.25)
model linear(x: f32[B, D]) -> f32[B, 1] {{
    param w: f32[D, 1] = zeros
    param b: f32[1] = zeros
    x @ w + b
}}
train fit: linear on d {{
    loss = squared_loss(output, label)
    optimizer = sgd(lr = 1e-30)
    batch = 8
    epochs = 1
    seed = 4
{settings}}}
"#
    );
    std::fs::write(d.join("p.dl"), program).expect("program");
    d
}

/// `dlc data --split-indices`: (part, row, fold) per line.
fn indices(d: &Path, extra: &[&str]) -> Vec<(String, usize, String)> {
    let mut args = vec!["data", "p.dl", "--split-indices"];
    args.extend(extra);
    let out = ok(&dlc(d, &args));
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("run,part,row,fold"));
    lines
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (
                c[1].to_string(),
                c[2].parse().expect("row"),
                c[3].to_string(),
            )
        })
        .collect()
}

fn rows_of(ix: &[(String, usize, String)], part: &str) -> BTreeSet<usize> {
    ix.iter()
        .filter(|(p, _, _)| p == part)
        .map(|(_, r, _)| *r)
        .collect()
}

/// The final line's test loss of `dlc train|eval --json`.
fn test_loss(out: &std::process::Output) -> f64 {
    let o = text(&out.stdout);
    let line = o
        .lines()
        .find(|l| l.contains("\"final\""))
        .unwrap_or_else(|| panic!("no final line in {o}{}", text(&out.stderr)));
    let v: serde_json::Value = serde_json::from_str(line).expect("json");
    v["test_loss"].as_f64().expect("test_loss")
}

#[test]
fn seed_redraws_the_model_not_the_test_rows() {
    let d = folder("splits-seed", "");
    // A model that cannot move from zero: its test loss is the mean of
    // the held-out labels' squares, so it names the test rows.
    let a = dlc(
        &d,
        &["train", "p.dl", "--json", "--seed", "1", "--save", "a.st"],
    );
    let b = dlc(&d, &["train", "p.dl", "--json", "--seed", "2"]);
    ok(&a);
    ok(&b);
    assert_eq!(test_loss(&a), test_loss(&b), "--seed redrew the test rows");
    let ea = dlc(&d, &["eval", "p.dl", "--load", "a.st", "--json"]);
    assert_eq!(test_loss(&ea), test_loss(&a));
    let ix = indices(&d, &[]);
    let test = rows_of(&ix, "test");
    let train = rows_of(&ix, "train");
    assert_eq!(test.len(), 49, "a quarter of 194 labelled rows: {test:?}");
    assert_eq!(train.len(), 145);
    assert!(test.is_disjoint(&train));
    // Rows without a label are in no part.
    for r in [5, 42, 79] {
        assert!(!test.contains(&r) && !train.contains(&r));
    }
    // The test part `dlc data` summarizes is those rows (the label is the
    // row's index, so the target's mean names them).
    let summary = ok(&dlc(&d, &["data", "p.dl"]));
    let mean = test.iter().sum::<usize>() as f64 / test.len() as f64;
    let line = summary
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("test:"))
        .nth(1)
        .expect("test target line");
    assert!(
        line.contains(&format!("mean {mean:.4}")),
        "{line} against {mean}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn split_seed_draws_other_rows_and_the_indices_cover_validation_and_folds() {
    let d = folder("splits-own-seed", "    split_seed = 11\n    valid = 0.2\n");
    let default = folder("splits-default", "    valid = 0.2\n");
    let ix = indices(&d, &[]);
    let other = indices(&default, &[]);
    assert_ne!(rows_of(&ix, "test"), rows_of(&other, "test"));
    let (train, valid, test) = (
        rows_of(&ix, "train"),
        rows_of(&ix, "valid"),
        rows_of(&ix, "test"),
    );
    assert_eq!(valid.len(), 29, "a fifth of the 145 training rows");
    assert_eq!(train.len() + valid.len() + test.len(), 194);
    assert!(valid.is_disjoint(&train) && valid.is_disjoint(&test));
    // K-fold: every training row in exactly one fold, the folds 1..=4.
    let k = folder("splits-kfold", "    kfold = 4\n");
    let ix = indices(&k, &[]);
    let folds: Vec<&String> = ix
        .iter()
        .filter(|(p, _, _)| p == "train")
        .map(|(_, _, f)| f)
        .collect();
    for f in ["1", "2", "3", "4"] {
        let n = folds.iter().filter(|x| x.as_str() == f).count();
        assert!((36..=37).contains(&n), "fold {f}: {n} rows");
    }
    assert_eq!(folds.len(), 145);
    for dir in [d, default, k] {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
