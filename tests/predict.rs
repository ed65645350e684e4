//! `dlc predict`, a labelled test file of its own, and the preprocessing
//! a checkpoint carries, run the way a user runs them.

mod cmd;

mod common;

use std::path::Path;
use std::process::Command;

use cmd::{dlc, ok, root, scratch, text};

/// The CSV records of `path` (header first).
fn records(path: &Path) -> Vec<Vec<String>> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(path)
        .expect("csv");
    r.records()
        .map(|x| x.expect("record").iter().map(str::to_string).collect())
        .collect()
}

/// `test_NAME`'s value in `dlc eval --json`'s final line.
fn eval_metric(json: &str, name: &str) -> f64 {
    let key = format!("\"test_{name}\":");
    let at = json
        .find(&key)
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        + key.len();
    let end = json[at..].find([',', '}']).expect("end") + at;
    json[at..end].parse().expect("a number")
}

/// penguins.csv split into train.csv (three rows in four) and test.csv
/// (the fourth), the test file's columns in reverse order.
fn penguin_files(dir: &Path) {
    let rows = records(&root().join("programs/data/penguins.csv"));
    let mut train = csv::Writer::from_path(dir.join("train.csv")).expect("w");
    let mut test = csv::Writer::from_path(dir.join("test.csv")).expect("w");
    for (i, r) in rows.iter().enumerate() {
        let reversed: Vec<&String> = r.iter().rev().collect();
        if i == 0 {
            train.write_record(r).expect("w");
            test.write_record(reversed).expect("w");
        } else if i % 4 == 0 {
            test.write_record(reversed).expect("w");
        } else {
            train.write_record(r).expect("w");
        }
    }
}

const MASS: &str = r#"
data p = csv("train.csv", label = "body_mass_g", test = "test.csv", standardize = true)
model linear(x: f32[B, D]) -> f32[B, 1] {
    param w: f32[D, 1] = normal(0.01)
    param b: f32[1] = zeros
    x @ w + b
}
train mass: linear on p {
    loss = squared_loss(output, label)
    optimizer = sgd(lr = 0.05)
    batch = 16
    epochs = 20
    metrics = [loss, rmse, log_rmse]
}
train folds: linear on p {
    loss = squared_loss(output, label)
    optimizer = sgd(lr = 0.05)
    kfold = 3
    batch = 16
    epochs = 10
    metrics = [loss, rmse]
}
"#;

const SPECIES: &str = r#"
data p = csv("train.csv", label = "species", test = "test.csv", standardize = true)
model softmax(x: f32[B, D]) -> f32[B, 3] {
    param W: f32[D, 3] = normal(0.01)
    param b: f32[3] = zeros
    x @ W + b
}
train species: softmax on p {
    loss = cross_entropy(output, label)
    optimizer = sgd(lr = 0.1)
    batch = 16
    epochs = 5
    metrics = [loss, acc]
}
"#;

/// Trains `run` of `program` in `dir` with --save, and returns `dlc eval
/// --json`'s output and the checkpoint.
fn train_and_eval(dir: &Path, program: &str, run: &str) -> (String, String) {
    let ck = format!("{run}.safetensors");
    ok(&dlc(
        dir,
        &["train", program, "--run", run, "--save", &ck, "--quiet"],
    ));
    let json = ok(&dlc(
        dir,
        &["eval", program, "--run", run, "--load", &ck, "--json"],
    ));
    (json, ck)
}

#[test]
fn a_labelled_test_file_is_encoded_with_the_training_files_preprocessing() {
    let dir = scratch("predict-testfile");
    penguin_files(&dir);
    std::fs::write(dir.join("mass.dl"), MASS).expect("w");
    let out = ok(&dlc(&dir, &["data", "mass.dl"]));
    // 344 rows: 258 in train.csv, 86 in test.csv, two of which have no mass.
    assert!(out.contains("train: 258 samples"), "{out}");
    assert!(out.contains("test: 84 samples"), "{out}");
    // The test file's own columns do not change the encoding: training
    // statistics, the training file's categories.
    let (json, _) = train_and_eval(&dir, "mass.dl", "mass");
    assert!(eval_metric(&json, "rmse") < 1000.0, "{json}");
    // A category the training file lacks is encoded as missing, with a count.
    let t = std::fs::read_to_string(dir.join("test.csv")).expect("r");
    std::fs::write(
        dir.join("test.csv"),
        t.replacen(",Biscoe,", ",Atlantis,", 3),
    )
    .expect("w");
    let out = dlc(
        &dir,
        &["train", "mass.dl", "--run", "mass", "--epochs", "1"],
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("3 values of `island` unseen in the training file, encoded as missing"),
        "{err}"
    );
    // A test file that does not fit is a diagnostic naming what is wrong.
    let recs = records(&dir.join("test.csv"));
    let year = recs[0].iter().position(|h| h == "year").expect("year");
    let no_year: String = recs
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.remove(year);
            r.join(",") + "\n"
        })
        .collect();
    for (bad, expect) in [
        (
            t.replacen("island,", "kind,", 1),
            "has a column `kind` that the training file",
        ),
        (
            t.replacen("body_mass_g,", "mass,", 1),
            "has a column `mass`",
        ),
        (no_year, "has no column `year`"),
    ] {
        std::fs::write(dir.join("bad.csv"), &bad).expect("w");
        let prog = MASS.replace("test.csv", "bad.csv");
        std::fs::write(dir.join("bad.dl"), prog).expect("w");
        let out = dlc(&dir, &["check", "bad.dl"]);
        assert_eq!(out.status.code(), Some(1), "{expect}");
        assert!(
            text(&out.stderr).contains(expect),
            "{expect}: {}",
            text(&out.stderr)
        );
    }
    // A class the training file does not have.
    let bad = t.replacen(",Adelie", ",Dodo", 1);
    std::fs::write(dir.join("bad.csv"), bad).expect("w");
    let prog = SPECIES.replace("test.csv", "bad.csv");
    std::fs::write(dir.join("bad.dl"), prog).expect("w");
    let out = dlc(&dir, &["check", "bad.dl"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("holds class `Dodo`"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Σ over the labelled rows of `f(prediction, label)`, in row order, from
/// a predictions file and the labelled file it predicted.
fn label_column(file: &Path, name: &str) -> Vec<String> {
    let rows = records(file);
    let at = rows[0]
        .iter()
        .position(|h| h == name)
        .expect("label column");
    rows[1..].iter().map(|r| r[at].clone()).collect()
}

#[test]
fn predictions_of_a_labelled_file_reproduce_evals_test_metrics_exactly() {
    let dir = scratch("predict-exact");
    penguin_files(&dir);
    std::fs::write(dir.join("mass.dl"), MASS).expect("w");
    std::fs::write(dir.join("species.dl"), SPECIES).expect("w");
    let test = dir.join("test.csv");
    for (program, run) in [("mass.dl", "mass"), ("mass.dl", "folds")] {
        let (json, ck) = train_and_eval(&dir, program, run);
        let out = dlc(
            &dir,
            &[
                "predict", program, "--run", run, "--load", &ck, "--input", "test.csv", "--out",
                "pred.csv",
            ],
        );
        ok(&out);
        let pred = records(&dir.join("pred.csv"));
        assert_eq!(pred[0], ["body_mass_g"]);
        let labels = label_column(&test, "body_mass_g");
        assert_eq!(pred.len() - 1, labels.len(), "a prediction per row");
        // eval leaves out the rows without a label; so does the sum here.
        let (mut se, mut sle, mut n) = (0.0f64, 0.0f64, 0usize);
        for (p, y) in pred[1..].iter().zip(&labels) {
            let p: f64 = p[0].parse().expect("a number");
            assert!(p.is_finite());
            if y == "NA" {
                continue;
            }
            let y: f64 = y.parse().expect("label");
            se += (p - y).powi(2);
            sle += (p.max(1.0).ln() - y.ln()).powi(2);
            n += 1;
        }
        assert_eq!((se / n as f64).sqrt(), eval_metric(&json, "rmse"), "{run}");
        if run == "mass" {
            let log_rmse = (sle / n as f64).sqrt();
            assert_eq!(log_rmse, eval_metric(&json, "log_rmse"), "{run}");
        }
    }
    // A classifier: the predicted classes' accuracy, and --proba.
    let (json, ck) = train_and_eval(&dir, "species.dl", "species");
    let out = dlc(
        &dir,
        &[
            "predict",
            "species.dl",
            "--load",
            &ck,
            "--input",
            "test.csv",
            "--out",
            "-",
            "--proba",
        ],
    );
    let csv_text = ok(&out);
    std::fs::write(dir.join("pred.csv"), &csv_text).expect("w");
    let pred = records(&dir.join("pred.csv"));
    assert_eq!(pred[0], ["species", "p_Adelie", "p_Chinstrap", "p_Gentoo"]);
    let labels = label_column(&test, "species");
    let correct = pred[1..]
        .iter()
        .zip(&labels)
        .filter(|(p, y)| &p[0] == *y)
        .count();
    assert_eq!(
        correct as f64 / labels.len() as f64,
        eval_metric(&json, "acc")
    );
    for p in &pred[1..] {
        let probs: Vec<f64> = p[1..].iter().map(|v| v.parse().expect("p")).collect();
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-5, "{p:?}");
        let best = (0..3).fold(0, |b, i| if probs[i] > probs[b] { i } else { b });
        assert_eq!(pred[0][best + 1], format!("p_{}", p[0]), "{p:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_house_price_submission_has_a_price_for_every_id_of_the_test_file() {
    let dir = scratch("predict-kaggle");
    let program = root().join("programs/house_prices.dl");
    let program = program.to_str().expect("utf-8");
    let test = root().join("programs/data/kaggle_house_pred_test.csv");
    let ck = dir.join("houses.safetensors");
    let ck = ck.to_str().expect("utf-8");
    ok(&dlc(
        &dir,
        &[
            "train", program, "--run", "mlp", "--epochs", "10", "--save", ck, "--quiet",
        ],
    ));
    // The K-fold run keeps its five models.
    let bytes = std::fs::read(ck).expect("checkpoint");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    for k in 1..=5 {
        assert!(st.tensor(&format!("fold{k}.param.W1")).is_ok(), "fold {k}");
    }
    let out = dlc(
        &dir,
        &[
            "predict",
            program,
            "--run",
            "mlp",
            "--load",
            ck,
            "--input",
            test.to_str().expect("utf-8"),
            "--out",
            "submission.csv",
        ],
    );
    ok(&out);
    // The fold models as NumPy arrays, `foldK.NAME`.
    let out = dlc(
        &dir,
        &[
            "export",
            program,
            "--run",
            "mlp",
            "--load",
            ck,
            "--out",
            "folds.npz",
        ],
    );
    ok(&out);
    let npz = std::fs::read(dir.join("folds.npz")).expect("npz");
    for k in 1..=5 {
        let member = format!("fold{k}.W1.npy");
        assert!(
            npz.windows(member.len()).any(|w| w == member.as_bytes()),
            "{member}"
        );
    }
    let sub = records(&dir.join("submission.csv"));
    assert_eq!(sub[0], ["Id", "SalePrice"]);
    assert_eq!(sub.len() - 1, 1459);
    assert_eq!(
        label_column(&test, "Id"),
        label_column(&dir.join("submission.csv"), "Id")
    );
    for r in &sub[1..] {
        let price: f64 = r[1].parse().unwrap_or(f64::NAN);
        assert!(price.is_finite() && price > 0.0, "{r:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A model trained on a CSV with an id column predicts a `.npy` of model
/// input, which has no ids: the predictions have no id column (they had
/// its header and not its values: "found record with 2 fields").
#[test]
fn model_input_without_ids_predicts_without_an_id_column() {
    let dir = scratch("predict-npy-ids");
    let program = root().join("programs/house_prices.dl");
    let program = program.to_str().expect("utf-8");
    let ck = dir.join("linear.safetensors");
    let ck = ck.to_str().expect("utf-8");
    ok(&dlc(
        &dir,
        &[
            "train", program, "--run", "linear", "--epochs", "1", "--save", ck, "--quiet",
        ],
    ));
    let bytes = std::fs::read(ck).expect("checkpoint");
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).expect("metadata");
    let meta = meta.metadata().clone().expect("metadata");
    let prep = dlc::data::prep::Preprocessing::from_json(&meta["preprocessing"], "ck")
        .expect("preprocessing");
    // Three rows of model input as a float32 .npy.
    let rows = 3;
    common::write_npy_f32(&dir.join("x.npy"), (rows, prep.width), |i| {
        (i % 5) as f32 * 0.1
    });
    let out = dlc(
        &dir,
        &[
            "predict", program, "--run", "linear", "--load", ck, "--input", "x.npy", "--out",
            "p.csv",
        ],
    );
    ok(&out);
    let rec = records(&dir.join("p.csv"));
    assert_eq!(rec[0], ["SalePrice"]);
    assert_eq!(rec.len(), rows + 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn predictions_of_an_idx_file_match_evals_accuracy() {
    let dir = scratch("predict-idx");
    let program = root().join("programs/softmax.dl");
    let program = program.to_str().expect("utf-8");
    let (json, ck) = {
        ok(&dlc(
            &dir,
            &[
                "train",
                program,
                "--epochs",
                "1",
                "--save",
                "sm.safetensors",
                "--quiet",
            ],
        ));
        let json = ok(&dlc(
            &dir,
            &["eval", program, "--load", "sm.safetensors", "--json"],
        ));
        (json, "sm.safetensors")
    };
    let images = root().join("programs/data/fashion-mnist/t10k-images-idx3-ubyte.gz");
    let out = dlc(
        &dir,
        &[
            "predict",
            program,
            "--load",
            ck,
            "--input",
            images.to_str().expect("utf-8"),
            "--out",
            "classes.csv",
        ],
    );
    ok(&out);
    let pred = records(&dir.join("classes.csv"));
    assert_eq!(pred[0], ["label"]);
    let labels = {
        use std::io::Read;
        let f = std::fs::File::open(
            root().join("programs/data/fashion-mnist/t10k-labels-idx1-ubyte.gz"),
        )
        .expect("labels");
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(f)
            .read_to_end(&mut raw)
            .expect("gunzip");
        raw[8..].to_vec()
    };
    let names = [
        "t-shirt",
        "trouser",
        "pullover",
        "dress",
        "coat",
        "sandal",
        "shirt",
        "sneaker",
        "bag",
        "ankle boot",
    ];
    assert_eq!(pred.len() - 1, labels.len());
    let correct = pred[1..]
        .iter()
        .zip(&labels)
        .filter(|(p, y)| p[0] == names[**y as usize])
        .count();
    assert_eq!(
        correct as f64 / labels.len() as f64,
        eval_metric(&json, "acc")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn columns_of_huge_numbers_standardize_and_their_checkpoint_reads_back() {
    let dir = scratch("predict-huge");
    let mut csv = String::from("a,b,y\n");
    for i in 0..20 {
        let sign = if i % 2 == 0 { "" } else { "-" };
        csv.push_str(&format!("1e308,{sign}1e200,{}\n", i % 3));
    }
    std::fs::write(dir.join("h.csv"), &csv).expect("w");
    let program = r#"data d = csv("h.csv", label = "y", standardize = true)
model m(x: f32[B, 2]) -> f32[B, 1] {
    param w: f32[2, 1] = zeros
    x @ w
}
train main: m on d {
    loss = squared_loss(output, label)
    optimizer = sgd(lr = 0.01)
    epochs = 1
}
"#;
    std::fs::write(dir.join("h.dl"), program).expect("w");
    ok(&dlc(
        &dir,
        &["train", "h.dl", "--save", "h.safetensors", "--quiet"],
    ));
    let out = dlc(
        &dir,
        &[
            "predict",
            "h.dl",
            "--load",
            "h.safetensors",
            "--input",
            "h.csv",
            "--out",
            "-",
        ],
    );
    assert_eq!(ok(&out).lines().count(), 21);
    // Unstandardized, 1e308 has no float32: an error naming the column.
    std::fs::write(
        dir.join("raw.dl"),
        program.replace(", standardize = true", ""),
    )
    .expect("w");
    let out = dlc(&dir, &["train", "raw.dl"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("column `a`: 1e308 is beyond float32's range"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_checkpoint_without_preprocessing_predicts_after_fitting_it_again() {
    let dir = scratch("predict-old");
    penguin_files(&dir);
    std::fs::write(dir.join("mass.dl"), MASS).expect("w");
    let (_, ck) = train_and_eval(&dir, "mass.dl", "mass");
    let predict = |ck: &str| {
        dlc(
            &dir,
            &[
                "predict", "mass.dl", "--run", "mass", "--load", ck, "--input", "test.csv",
                "--out", "-",
            ],
        )
    };
    let new = predict(&ck);
    ok(&new);
    // The same checkpoint as an older dlc wrote it: no `preprocessing`.
    let bytes = std::fs::read(dir.join(&ck)).expect("checkpoint");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).expect("metadata");
    let mut meta = meta.metadata().clone().expect("metadata");
    meta.remove("preprocessing");
    let tensors: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n.to_string(), t))
        .collect();
    let old = safetensors::serialize(tensors, Some(meta)).expect("serialize");
    std::fs::write(dir.join("old.safetensors"), old).expect("w");
    let out = predict("old.safetensors");
    assert_eq!(ok(&out), text(&new.stdout), "the same predictions");
    assert!(
        text(&out.stderr).contains("carries no preprocessing"),
        "{}",
        text(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_is_one_line_and_exit_1_and_leaves_no_file() {
    let dir = scratch("predict-bad");
    penguin_files(&dir);
    std::fs::write(dir.join("mass.dl"), MASS).expect("w");
    let (_, ck) = train_and_eval(&dir, "mass.dl", "mass");
    let good = std::fs::read_to_string(dir.join("test.csv")).expect("r");
    let header = good.lines().next().expect("header").to_string();
    let second = good.lines().nth(1).expect("row").to_string();
    // An IDX file of 2 images of 3×3.
    let mut idx = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 3];
    idx.extend([7u8; 18]);
    std::fs::write(dir.join("images-idx3-ubyte"), &idx).expect("w");
    // test.csv without its `island` column.
    let recs = records(&dir.join("test.csv"));
    let island = recs[0].iter().position(|h| h == "island").expect("island");
    let gone: String = recs
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.remove(island);
            r.join(",") + "\n"
        })
        .collect();
    // The year comes first in test.csv's reversed columns.
    let year = second.split(',').next().expect("year").len();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "extra.csv",
            good.replacen("sex,", "sex,colour,", 1),
            "column `colour` was not in the training data",
        ),
        (
            "renamed.csv",
            good.replacen("island,", "isle,", 1),
            "column `isle` was not in the training data",
        ),
        (
            "gone.csv",
            gone,
            "no column `island`, which the model was trained on",
        ),
        (
            "text.csv",
            format!("{header}\ntwo thousand{}\n", &second[year..]),
            "column `year`: `two thousand` is not a number",
        ),
        ("width.csv", format!("{header}\n{second},1\n"), "fields"),
        ("empty.csv", String::new(), "empty"),
        ("header.csv", format!("{header}\n"), "no rows to predict"),
        (
            "images-idx3-ubyte",
            String::new(),
            "does not look like a CSV file",
        ),
    ];
    for (file, content, expect) in &cases {
        if !content.is_empty() || *file == "empty.csv" {
            std::fs::write(dir.join(file), content).expect("w");
        }
        // A prediction file already there is not touched by a failure.
        std::fs::write(dir.join("keep.csv"), "old\n").expect("w");
        for out_name in ["new.csv", "keep.csv"] {
            let _ = std::fs::remove_file(dir.join("new.csv"));
            let out = dlc(
                &dir,
                &[
                    "predict", "mass.dl", "--run", "mass", "--load", &ck, "--input", file, "--out",
                    out_name,
                ],
            );
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{file}: {err}");
            assert_eq!(err.lines().count(), 1, "{file}: {err}");
            assert!(
                err.starts_with("error: ") && err.contains(expect),
                "{file}: {err}"
            );
            assert!(!dir.join("new.csv").exists(), "{file}: a partial file");
            assert_eq!(
                std::fs::read_to_string(dir.join("keep.csv")).expect("r"),
                "old\n"
            );
            let stray = std::fs::read_dir(&dir)
                .expect("dir")
                .flatten()
                .any(|e| e.file_name().to_string_lossy().contains(".tmp-"));
            assert!(!stray, "{file}: a temporary left behind");
        }
    }
    // --proba on a regression, and a CSV file for an IDX model.
    let out = dlc(
        &dir,
        &[
            "predict", "mass.dl", "--run", "mass", "--load", &ck, "--input", "test.csv", "--out",
            "-", "--proba",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("predicts a number"));
    assert!(out.stdout.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn python_reads_the_preprocessing_and_reproduces_the_model_input() {
    let dir = scratch("predict-python");
    penguin_files(&dir);
    std::fs::write(dir.join("mass.dl"), MASS).expect("w");
    let (_, ck) = train_and_eval(&dir, "mass.dl", "mass");
    // Ten raw rows: missing numbers and categories, a category unseen in
    // training, columns in another order than training's.
    let t = std::fs::read_to_string(dir.join("test.csv")).expect("r");
    let mut lines: Vec<String> = t.lines().take(11).map(str::to_string).collect();
    lines[2] = lines[2]
        .replacen(",Biscoe,", ",Atlantis,", 1)
        .replacen(",Dream,", ",Atlantis,", 1)
        .replacen(",Torgersen,", ",Atlantis,", 1);
    lines[3] = lines[3]
        .replacen(",male,", ",NA,", 1)
        .replacen(",female,", ",NA,", 1);
    lines[4] = lines[4].replacen(",Adelie", ",", 1);
    let fields = lines[5].split(',').count();
    lines[5] = std::iter::repeat_n("NA", fields)
        .collect::<Vec<_>>()
        .join(",");
    let raw = dir.join("raw.csv");
    std::fs::write(&raw, lines.join("\n") + "\n").expect("w");
    // dlc's encoding, as `dlc predict` feeds the model.
    let bytes = std::fs::read(dir.join(&ck)).expect("checkpoint");
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).expect("metadata");
    let meta = meta.metadata().clone().expect("metadata");
    let prep =
        dlc::data::prep::Preprocessing::from_json(&meta["preprocessing"], "ck").expect("prep");
    let (x, n) = dlc::predict::encode(&prep, &raw).expect("encodes");
    assert_eq!(n, 10);
    let script = root().join("tools/dlc_preprocess.py");
    let py = Command::new("python3")
        .arg(&script)
        .arg(dir.join(&ck))
        .arg(&raw)
        .output();
    let Ok(py) = py else {
        eprintln!("skipped: python3 is not installed, so the Python side of the preprocessing was not run");
        return;
    };
    assert_eq!(py.status.code(), Some(0), "{}", text(&py.stderr));
    // A number dlc refuses, the tool refuses too (Python's float() would
    // take `1_000`).
    let bad = dir.join("bad.csv");
    let mut bad_lines = lines.clone();
    let year = bad_lines[1].split(',').next().expect("year").len();
    bad_lines[1] = format!("1_000{}", &bad_lines[1][year..]);
    std::fs::write(&bad, bad_lines.join("\n") + "\n").expect("w");
    assert!(dlc::predict::encode(&prep, &bad).is_err());
    let refused = Command::new("python3")
        .arg(&script)
        .arg(dir.join(&ck))
        .arg(&bad)
        .output()
        .expect("python3 runs");
    assert!(!refused.status.success(), "{}", text(&refused.stdout));
    let rows: Vec<Vec<f32>> = text(&py.stdout)
        .lines()
        .map(|l| {
            l.split(',')
                .map(|v| v.parse::<f64>().expect("number") as f32)
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 10);
    let width = x.len() / n;
    for (r, row) in rows.iter().enumerate() {
        let ours = &x[r * width..(r + 1) * width];
        let same = row.len() == width
            && row
                .iter()
                .zip(ours)
                .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "row {r}: python {row:?}, dlc {ours:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
