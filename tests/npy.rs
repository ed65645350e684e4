//! The `npy(...)` data source: NumPy arrays in `.npy` files or `.npz`
//! archives (stored, as `np.savez` writes them, or deflated, as
//! `np.savez_compressed` does) train exactly as the same numbers in a CSV
//! file; bad arrays are diagnostics.

mod cmd;
mod common;

use cmd::{dlc, ok, scratch, text};
use common::{raw_npy, zip};

use dlc::export::{npy, Array};
use dlc::ir::DType;

fn array(name: &str, shape: &[usize], dtype: DType, values: &[f64]) -> Vec<u8> {
    npy(&Array {
        name,
        shape,
        dtype,
        values,
    })
    .expect("npy")
}

const ROWS: usize = 240;
const WIDTH: usize = 5;

/// Features (f32 values) and three classes from a fixed rule.
fn data() -> (Vec<f64>, Vec<f64>) {
    let mut s: u64 = 7;
    let mut x = Vec::new();
    let mut y = Vec::new();
    for _ in 0..ROWS {
        let row: Vec<f64> = (0..WIDTH)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                f64::from(((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0)
            })
            .collect();
        let c = if row[0] + row[1] > 0.5 {
            2
        } else if row[2] > 0.0 {
            1
        } else {
            0
        };
        x.extend(row);
        y.push(f64::from(c));
    }
    (x, y)
}

const MODEL: &str = r#"
model lin(x: f32[B, D]) -> f32[B, 3] {
    param W: f32[D, 3] = normal(0.1)
    param b: f32[3] = zeros
    x @ W + b
}
train main: lin on d {
    loss = cross_entropy(output, label)
    optimizer = sgd(lr = 0.1)
    batch = 16
    epochs = 4
    metrics = [loss, acc]
}
"#;

#[test]
fn arrays_train_exactly_as_the_same_numbers_in_a_csv_file() {
    let dir = scratch("npy-same");
    let (x, y) = data();
    // The CSV: each feature as the shortest text of its f32.
    let mut csv = (0..WIDTH)
        .map(|k| format!("f{k}"))
        .collect::<Vec<_>>()
        .join(",")
        + ",y\n";
    for r in 0..ROWS {
        for k in 0..WIDTH {
            csv.push_str(&format!("{},", x[r * WIDTH + k] as f32));
        }
        csv.push_str(&format!("{}\n", y[r]));
    }
    std::fs::write(dir.join("d.csv"), csv).expect("w");
    let xs = array("x", &[ROWS, WIDTH], DType::F32, &x);
    let ys = array("y", &[ROWS], DType::I32, &y);
    std::fs::write(dir.join("x.npy"), &xs).expect("w");
    std::fs::write(dir.join("y.npy"), &ys).expect("w");
    let members = [("x.npy", xs.clone()), ("y.npy", ys.clone())];
    std::fs::write(dir.join("stored.npz"), zip(&members, false)).expect("w");
    std::fs::write(dir.join("deflated.npz"), zip(&members, true)).expect("w");
    let sources = [
        r#"csv("d.csv", label = "y", classes = 3, test = 0.25)"#,
        r#"npy("x.npy", labels = "y.npy", classes = 3, test = 0.25)"#,
        r#"npy("stored.npz", classes = 3, test = 0.25)"#,
        r#"npy("deflated.npz", features = "x", labels = "y", classes = 3, test = 0.25)"#,
    ];
    let mut finals = Vec::new();
    for (i, src) in sources.iter().enumerate() {
        let file = format!("p{i}.dl");
        std::fs::write(dir.join(&file), format!("data d = {src}\n{MODEL}")).expect("w");
        let out = ok(&dlc(&dir, &["train", &file, "--json"]));
        let last = out.lines().last().expect("final").to_string();
        // compile_ms and timings differ; the metrics and parameters must not.
        let cut = last.find("\"compile_ms\"").expect("compile_ms");
        let tail = last.find("\"params\"").expect("params");
        finals.push(format!("{}{}", &last[..cut], &last[tail..]));
    }
    for f in &finals[1..] {
        assert_eq!(f, &finals[0]);
    }
    assert!(finals[0].contains("\"test_acc\""), "{}", finals[0]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn test_arrays_of_their_own_and_predictions_from_a_npy_file() {
    let dir = scratch("npy-test");
    let (x, y) = data();
    let cut = 180;
    let members = [
        (
            "x.npy",
            array("x", &[cut, WIDTH], DType::F64, &x[..cut * WIDTH]),
        ),
        ("y.npy", array("y", &[cut], DType::I32, &y[..cut])),
        (
            "x_test.npy",
            array(
                "x_test",
                &[ROWS - cut, WIDTH],
                DType::F64,
                &x[cut * WIDTH..],
            ),
        ),
        (
            "y_test.npy",
            array("y_test", &[ROWS - cut], DType::I32, &y[cut..]),
        ),
    ];
    std::fs::write(dir.join("d.npz"), zip(&members, true)).expect("w");
    std::fs::write(dir.join("x_test.npy"), &members[2].1).expect("w");
    let src = format!(
        "data d = npy(\"d.npz\", test = [\"x_test\", \"y_test\"], names = [\"low\", \"mid\", \"high\"])\n{MODEL}"
    );
    std::fs::write(dir.join("p.dl"), src).expect("w");
    let summary = ok(&dlc(&dir, &["data", "p.dl"]));
    assert!(
        summary.contains("train: 180 samples") && summary.contains("test: 60 samples"),
        "{summary}"
    );
    ok(&dlc(
        &dir,
        &["train", "p.dl", "--save", "m.safetensors", "--quiet"],
    ));
    let json = ok(&dlc(
        &dir,
        &["eval", "p.dl", "--load", "m.safetensors", "--json"],
    ));
    let acc: f64 = {
        let at = json.find("\"test_acc\":").expect("acc") + 11;
        let end = json[at..].find([',', '}']).expect("end") + at;
        json[at..end].parse().expect("number")
    };
    let pred = ok(&dlc(
        &dir,
        &[
            "predict",
            "p.dl",
            "--load",
            "m.safetensors",
            "--input",
            "x_test.npy",
            "--out",
            "-",
        ],
    ));
    let names = ["low", "mid", "high"];
    let classes: Vec<&str> = pred.lines().skip(1).collect();
    assert_eq!(classes.len(), ROWS - cut);
    let correct = classes
        .iter()
        .zip(&y[cut..])
        .filter(|(c, y)| **c == names[**y as usize])
        .count();
    assert_eq!(correct as f64 / (ROWS - cut) as f64, acc);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn arrays_that_do_not_fit_are_diagnostics() {
    let dir = scratch("npy-bad");
    let (x, y) = data();
    std::fs::write(
        dir.join("x.npy"),
        array("x", &[ROWS, WIDTH], DType::F32, &x),
    )
    .expect("w");
    std::fs::write(dir.join("y.npy"), array("y", &[ROWS], DType::I32, &y)).expect("w");
    std::fs::write(
        dir.join("flat.npy"),
        array("f", &[ROWS * WIDTH], DType::F32, &x),
    )
    .expect("w");
    std::fs::write(dir.join("short.npy"), array("s", &[5], DType::I32, &y[..5])).expect("w");
    std::fs::write(dir.join("yf.npy"), array("yf", &[ROWS], DType::F32, &y)).expect("w");
    let mut nan = x.clone();
    nan[7] = f64::NAN;
    std::fs::write(
        dir.join("nan.npy"),
        array("n", &[ROWS, WIDTH], DType::F32, &nan),
    )
    .expect("w");
    let mut neg = y.clone();
    neg[3] = 5.0;
    std::fs::write(dir.join("y5.npy"), array("y5", &[ROWS], DType::I32, &neg)).expect("w");
    let mut cut = array("x", &[ROWS, WIDTH], DType::F32, &x);
    cut.truncate(cut.len() - 4);
    std::fs::write(dir.join("cut.npy"), cut).expect("w");
    std::fs::write(
        dir.join("d.npz"),
        zip(
            &[("x.npy", array("x", &[2, 2], DType::F32, &[0.0; 4]))],
            false,
        ),
    )
    .expect("w");
    std::fs::write(dir.join("text.npy"), b"x,y\n1,2\n").expect("w");
    std::fs::write(
        dir.join("empty.npy"),
        array("e", &[ROWS, 0], DType::F32, &[]),
    )
    .expect("w");
    let mut big = y.clone();
    big[9] = 3.0;
    std::fs::write(dir.join("y3.npy"), array("y3", &[ROWS], DType::I32, &big)).expect("w");
    for (src, expect) in [
        (
            r#"npy("flat.npy", labels = "y.npy")"#,
            "need a row per sample",
        ),
        (r#"npy("x.npy", labels = "short.npy")"#, "hold 240 rows"),
        (
            r#"npy("x.npy", labels = "y.npy", test = ["x.npy", "yf.npy"])"#,
            "classes are integers, targets floats",
        ),
        (r#"npy("d.npz")"#, "has no array `y`; its arrays are: x"),
        (r#"npy("text.npy", labels = "y.npy")"#, "not a NumPy array"),
        (r#"npy("x.npy")"#, "needs `labels"),
        (r#"npy("none.npy", labels = "y.npy")"#, "none.npy"),
        (
            r#"npy("empty.npy", labels = "y.npy")"#,
            "a sample needs at least one value",
        ),
    ] {
        std::fs::write(dir.join("p.dl"), format!("data d = {src}\n{MODEL}")).expect("w");
        let out = dlc(&dir, &["check", "p.dl"]);
        assert_eq!(out.status.code(), Some(1), "{src}");
        assert!(
            text(&out.stderr).contains(expect),
            "{src}: {}",
            text(&out.stderr)
        );
    }
    // Found when the values are read: one line, exit 1.
    for (src, expect) in [
        (r#"npy("nan.npy", labels = "y.npy")"#, "not a finite number"),
        (
            r#"npy("x.npy", labels = "y5.npy", classes = 3)"#,
            "not a class in 0..3",
        ),
        (r#"npy("cut.npy", labels = "y.npy")"#, "needs 4800 bytes"),
        // No class count declared: the model's 3 outputs are the classes.
        (
            r#"npy("x.npy", labels = "y3.npy")"#,
            "label 3 (row 9 of the training part) is not a class of run main's model",
        ),
    ] {
        std::fs::write(dir.join("p.dl"), format!("data d = {src}\n{MODEL}")).expect("w");
        let out = dlc(&dir, &["train", "p.dl"]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{src}: {err}");
        assert!(
            err.contains(expect) && err.lines().count() == 1,
            "{src}: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

const SAMPLE: &str = r#"
model lin(x: f32[B, D]) -> f32[B, 2] {
    param W: f32[D, 2] = normal(0.1)
    x @ W
}
train main: lin on d {
    loss = cross_entropy(output, label)
    optimizer = sgd(lr = 0.1)
    batch = 2
    epochs = 1
}
"#;

/// `dlc data` on features `x.npy` (4 rows of 3) with two classes: its
/// output, or its one-line error.
fn summary(dir: &std::path::Path, x: &[u8]) -> Result<String, String> {
    std::fs::write(dir.join("x.npy"), x).expect("w");
    let src = format!("data d = npy(\"x.npy\", labels = \"y.npy\")\n{SAMPLE}");
    std::fs::write(dir.join("p.dl"), src).expect("w");
    let out = dlc(dir, &["data", "p.dl", "--show", "4"]);
    match out.status.code() {
        Some(0) => Ok(text(&out.stdout)),
        Some(1) => Err(text(&out.stderr)),
        c => panic!("exit {c:?}: {}", text(&out.stderr)),
    }
}

#[test]
fn headers_are_read_as_np_load_reads_them_and_fortran_order_is_honoured() {
    let dir = scratch("npy-headers");
    std::fs::write(
        dir.join("y.npy"),
        array("y", &[4], DType::I32, &[0.0, 1.0, 1.0, 0.0]),
    )
    .expect("w");
    // Element (r, c) is 10 r + c + 0.25, in C order and in Fortran order.
    let v = |r: usize, c: usize| (10 * r + c) as f64 + 0.25;
    let c_order: Vec<f64> = (0..4).flat_map(|r| (0..3).map(move |c| v(r, c))).collect();
    let f_order: Vec<f64> = (0..3).flat_map(|c| (0..4).map(move |r| v(r, c))).collect();
    let f4 = |vals: &[f64]| -> Vec<u8> {
        vals.iter()
            .flat_map(|x| (*x as f32).to_le_bytes())
            .collect()
    };
    let f4_big = |vals: &[f64]| -> Vec<u8> {
        vals.iter()
            .flat_map(|x| (*x as f32).to_be_bytes())
            .collect()
    };
    let f8 = |vals: &[f64]| -> Vec<u8> { vals.iter().flat_map(|x| x.to_le_bytes()).collect() };
    let expected = summary(
        &dir,
        &raw_npy(
            1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }",
            &f4(&c_order),
        ),
    )
    .expect("the reference reads");
    assert!(expected.contains("10.2500 11.2500 12.2500"), "{expected}");
    for (version, header, payload) in [
        (1, "{'descr': '<f4', 'fortran_order' : True, 'shape': (4, 3), }", f4(&f_order)),
        (1, r#"{"descr": "<f4", "fortran_order": True, "shape": (4, 3,)}"#, f4(&f_order)),
        (1, "{'shape':(4,3),'fortran_order':False,'descr':'<f4'}", f4(&c_order)),
        (1, "{\n  'descr' : \"<f4\" ,\n\t'fortran_order':False,  # C order\n 'shape' : ( 4 , 3 ) ,\n}   \n", f4(&c_order)),
        (2, "{'descr': '<f4', 'fortran_order': True, 'shape': (4, 3), }", f4(&f_order)),
        (3, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }", f4(&c_order)),
        (1, "{'descr': '>f4', 'fortran_order': True, 'shape': (4, 3), }", f4_big(&f_order)),
        (1, "{'descr': '>f4', 'fortran_order': False, 'shape': (4, 3), }", f4_big(&c_order)),
        (1, "{'descr': '<f8', 'fortran_order': True, 'shape': (4, 3), }", f8(&f_order)),
        (1, "{'descr': 'float32', 'fortran_order': False, 'shape': (4L, 3L), }", f4(&c_order)),
        (1, "{'descr': '<' 'f4', 'fortran_order': False, 'descr': '<f8', 'shape': (4, 3)}", f8(&c_order)),
    ] {
        let got = summary(&dir, &raw_npy(version, header, &payload))
            .unwrap_or_else(|e| panic!("{header}: {e}"));
        // The summary names the dtype; the samples must be the same.
        let samples = |s: &str| s[s.find("the first").expect("samples")..].to_string();
        assert_eq!(samples(&got), samples(&expected), "{header}");
    }
    // What np.load refuses, or dlc does not read: one line, exit 1.
    let long = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }}{}\n",
        " ".repeat(10_000)
    );
    for (version, header, expect) in [
        (
            1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), 'x': 1}",
            "exactly descr, fortran_order and shape",
        ),
        (
            1,
            "{'descr': '<f4', 'shape': (4, 3)}",
            "exactly descr, fortran_order and shape",
        ),
        (1, long.as_str(), "over NumPy's limit of 10000"),
        (
            1,
            "{'descr': '<f4', 'fortran_order': 1, 'shape': (4, 3)}",
            "not True or False",
        ),
        (
            1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-4, 3)}",
            "a negative dimension",
        ),
        (
            1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4)}",
            "too large",
        ),
        (
            1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': [4, 3]}",
            "is not a tuple",
        ),
        (
            1,
            "{'descr': '<f4' 'fortran_order': False, 'shape': (4, 3)}",
            "not a Python literal",
        ),
        (
            1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3)",
            "not a Python literal",
        ),
        (1, "[('a', '<f4')]", "not a dict"),
        (
            1,
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4,)}",
            "structured dtype",
        ),
        (
            1,
            "{'descr': '<U3', 'fortran_order': False, 'shape': (4, 3)}",
            "dtype `<U3`",
        ),
        (
            3,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4L, 3)}",
            "not a Python literal",
        ),
        (
            4,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3)}",
            "format version 4.0",
        ),
    ] {
        let e = summary(&dir, &raw_npy(version, header, &f4(&c_order))).expect_err(header);
        assert!(
            e.contains(expect) && e.trim().lines().count() <= 7,
            "{header}: {e}"
        );
    }
    // A header length beyond the limit is refused before it is read.
    let mut huge = raw_npy(2, "{}", &[]);
    huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = summary(&dir, &huge).expect_err("huge header length");
    assert!(e.contains("a header of 4294967295 characters"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_archive_with_two_members_for_one_array_is_refused() {
    let dir = scratch("npy-dup");
    let x = |v: f64| array("x", &[4, 3], DType::F32, &[v; 12]);
    let y = array("y", &[4], DType::I32, &[0.0, 1.0, 1.0, 0.0]);
    for (members, expect) in [
        (
            vec![("x.npy", x(1.0)), ("y.npy", y.clone()), ("x.npy", x(2.0))],
            "two members named `x.npy`",
        ),
        (
            vec![("x", x(1.0)), ("y.npy", y.clone()), ("x.npy", x(2.0))],
            "members `x` and `x.npy` both hold array `x`",
        ),
    ] {
        std::fs::write(dir.join("d.npz"), zip(&members, false)).expect("w");
        std::fs::write(
            dir.join("p.dl"),
            format!("data d = npy(\"d.npz\")\n{SAMPLE}"),
        )
        .expect("w");
        for cmd in ["check", "data", "train"] {
            let out = dlc(&dir, &[cmd, "p.dl"]);
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{cmd}: {err}");
            assert!(err.contains(expect), "{cmd}: {err}");
            assert_eq!(err.matches("Error").count(), 1, "{cmd}: {err}");
        }
    }
    // A member named as NumPy lists it (no `.npy`) is found.
    let members = [("x", x(1.0)), ("y.npy", y)];
    std::fs::write(dir.join("d.npz"), zip(&members, true)).expect("w");
    ok(&dlc(&dir, &["data", "p.dl"]));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_class_count_from_the_labels_is_checked_before_anything_is_sized_by_it() {
    let dir = scratch("npy-classes");
    std::fs::write(
        dir.join("x.npy"),
        array("x", &[4, 3], DType::F32, &[0.5; 12]),
    )
    .expect("w");
    let int64 = |top: i64| {
        let header = "{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }";
        let values: Vec<u8> = [0, 1, top, 1]
            .iter()
            .flat_map(|v: &i64| v.to_le_bytes())
            .collect();
        raw_npy(1, header, &values)
    };
    for (y, top) in [
        (
            array("y", &[4], DType::I32, &[0.0, 1.0, 2147483647.0, 1.0]),
            "2147483647",
        ),
        (int64(i64::MAX), "9223372036854775807"),
        (array("y", &[4], DType::I32, &[0.0, 1.0, 4.0, 1.0]), "4"),
    ] {
        std::fs::write(dir.join("y.npy"), y).expect("w");
        std::fs::write(
            dir.join("p.dl"),
            format!("data d = npy(\"x.npy\", labels = \"y.npy\")\n{SAMPLE}"),
        )
        .expect("w");
        for cmd in ["data", "train"] {
            let out = dlc(&dir, &[cmd, "p.dl"]);
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{cmd} {top}: {err}");
            assert!(
                err.contains("more than its 4 rows; declare classes = N")
                    && err.lines().count() == 1,
                "{cmd} {top}: {err}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn float_labels_are_classes_when_a_class_count_is_declared() {
    let dir = scratch("npy-float-classes");
    let (x, y) = data();
    std::fs::write(
        dir.join("x.npy"),
        array("x", &[ROWS, WIDTH], DType::F32, &x),
    )
    .expect("w");
    std::fs::write(dir.join("yi.npy"), array("y", &[ROWS], DType::I32, &y)).expect("w");
    std::fs::write(dir.join("yf.npy"), array("y", &[ROWS], DType::F64, &y)).expect("w");
    std::fs::write(dir.join("yh.npy"), array("y", &[ROWS], DType::F32, &y)).expect("w");
    let run = |labels: &str, test: &str| {
        let src = format!(
            "data d = npy(\"x.npy\", labels = \"{labels}\", classes = 3, test = {test})\n{MODEL}"
        );
        std::fs::write(dir.join("p.dl"), src).expect("w");
        dlc(&dir, &["train", "p.dl", "--json"])
    };
    let finals: Vec<String> = ["yi.npy", "yf.npy", "yh.npy"]
        .iter()
        .map(|l| {
            let out = ok(&run(l, "0.25"));
            let last = out.lines().last().expect("final").to_string();
            let cut = last.find("\"compile_ms\"").expect("compile_ms");
            let tail = last.find("\"params\"").expect("params");
            format!("{}{}", &last[..cut], &last[tail..])
        })
        .collect();
    assert_eq!(finals[1], finals[0]);
    assert_eq!(finals[2], finals[0]);
    // Integer test labels with float training labels are one kind here.
    ok(&run("yf.npy", "[\"x.npy\", \"yi.npy\"]"));
    // A fraction, a NaN, a negative or an out-of-range value is refused
    // with its index.
    for (v, expect) in [
        (0.5, "label 7 is 0.5, not a class in 0..3"),
        (f64::NAN, "label 7 is NaN, not a class in 0..3"),
        (-1.0, "label 7 is -1, not a class in 0..3"),
        (3.0, "label 7 is 3, not a class in 0..3"),
    ] {
        let mut bad = y.clone();
        bad[7] = v;
        std::fs::write(dir.join("yb.npy"), array("y", &[ROWS], DType::F64, &bad)).expect("w");
        let out = run("yb.npy", "0");
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{v}: {err}");
        assert!(
            err.contains(expect) && err.lines().count() == 1,
            "{v}: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A Python that imports numpy, if there is one (`DLC_PYTHON`, else
/// `python3`).
fn numpy_python() -> Option<String> {
    let py = std::env::var("DLC_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let ok = std::process::Command::new(&py)
        .args(["-c", "import numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(py)
}

#[test]
fn files_numpy_writes_read_as_numpy_reads_them() {
    let Some(py) = numpy_python() else {
        eprintln!(
            "skipped: no Python with numpy (set DLC_PYTHON, or see README: .ci/run makes one)"
        );
        return;
    };
    let dir = scratch("npy-numpy");
    // Each array's values, then its row sums as labels' reference.
    let script = r#"
import numpy as np
a = (np.arange(18).reshape(6, 3) * 0.25).astype(np.float32)
y = np.array([0, 1, 1, 0, 1, 0], dtype=np.int64)
np.save('c.npy', a)
np.save('f.npy', np.asfortranarray(a))
np.save('be.npy', a.astype('>f8'))
np.save('bef.npy', np.asfortranarray(a.astype('>f4')))
np.save('h.npy', a.astype(np.float16))
np.save('t.npy', a.T.copy().T)
np.save('y.npy', y)
np.save('yf.npy', y.astype(np.float64))
np.savez('s.npz', x=np.asfortranarray(a), y=y)
np.savez_compressed('z.npz', x=a, y=y.astype(np.float32))
for f in ['c', 'f', 'be', 'bef', 'h', 't']:
    assert (np.load(f + '.npy') == a).all(), f
print(np.load('f.npy').flags['F_CONTIGUOUS'])
"#;
    let out = std::process::Command::new(&py)
        .args(["-c", script])
        .current_dir(&dir)
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "True");
    let show = |src: &str| {
        std::fs::write(dir.join("p.dl"), format!("data d = {src}\n{SAMPLE}")).expect("w");
        let s = ok(&dlc(&dir, &["data", "p.dl", "--show", "6"]));
        s[s.find("the first").expect("samples")..].to_string()
    };
    let reference = show(r#"npy("c.npy", labels = "y.npy")"#);
    assert!(reference.contains("3.7500 4.0000 4.2500"), "{reference}");
    for src in [
        r#"npy("f.npy", labels = "y.npy")"#,
        r#"npy("be.npy", labels = "y.npy")"#,
        r#"npy("bef.npy", labels = "y.npy")"#,
        r#"npy("h.npy", labels = "y.npy")"#,
        r#"npy("t.npy", labels = "y.npy")"#,
        r#"npy("c.npy", labels = "yf.npy", classes = 2)"#,
        r#"npy("s.npz")"#,
        r#"npy("z.npz", classes = 2)"#,
    ] {
        assert_eq!(show(src), reference, "{src}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
