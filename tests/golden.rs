//! The interpreter against golden values computed once with NumPy
//! (tests/golden/gen_golden.py, output committed as golden.json): every
//! primitive and composite, extreme logits (±1e4), ties for max and argmax,
//! log of 0, overflow, NaN.

mod common;

use dlc::interp::{self, Env, Precision, Tensor};
use dlc::ir::{DType, Role};

fn value(v: &serde_json::Value) -> f64 {
    match v {
        serde_json::Value::String(s) if s == "nan" => f64::NAN,
        serde_json::Value::String(s) if s == "inf" => f64::INFINITY,
        serde_json::Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
        other => other
            .as_f64()
            .unwrap_or_else(|| panic!("bad golden value {other}")),
    }
}

#[test]
fn the_interpreter_matches_numpy() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("tests/golden/golden.json")).expect("golden.json");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let cases = doc["cases"].as_array().expect("cases");
    assert!(cases.len() >= 60);
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let src = case["src"].as_str().expect("src");
        let checked = common::check_clean(src, &format!("{name}.dl"));
        let g = checked.session.expect("top-level values");
        let inputs: Vec<Tensor> = g
            .inputs
            .iter()
            .map(|i| {
                assert_eq!(i.role, Role::Step);
                Tensor::scalar(0.0, DType::I32)
            })
            .collect();
        let all =
            interp::run(&g, &inputs, &Env { batch: 1, seed: 0 }, Precision::F64).expect("runs");
        let idx = g
            .outputs
            .iter()
            .rposition(|(n, _)| n == "result")
            .expect("result");
        let got = &all[idx];
        let shape: Vec<usize> = case["shape"]
            .as_array()
            .expect("shape")
            .iter()
            .map(|d| d.as_u64().unwrap_or(0) as usize)
            .collect();
        assert_eq!(got.shape, shape, "{name}: shape");
        let rtol = case["rtol"].as_f64().unwrap_or(1e-10);
        let want: Vec<f64> = case["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(value)
            .collect();
        for (i, (g, w)) in got.data.iter().zip(&want).enumerate() {
            let ok = if w.is_nan() {
                g.is_nan()
            } else if w.is_infinite() {
                g == w
            } else {
                (g - w).abs() <= 1e-12 + rtol * w.abs()
            };
            assert!(ok, "{name}[{i}]: interpreter {g}, NumPy {w}");
        }
    }
}
