//! `:save FILE x y` and `:load FILE`: plain tensors in safetensors files,
//! named by their bindings, so NumPy, PyTorch or JAX read them with the
//! `safetensors` package (and write files the REPL loads). Writes are
//! atomic: an old file survives a failed write.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::interp::Tensor;
use crate::ir::DType;

fn bytes_of(t: &Tensor) -> (Dtype, Vec<u8>) {
    match t.dtype {
        DType::F32 => (
            Dtype::F32,
            t.data
                .iter()
                .flat_map(|v| (*v as f32).to_le_bytes())
                .collect(),
        ),
        DType::F64 => (
            Dtype::F64,
            t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        DType::I32 => (
            Dtype::I32,
            t.data
                .iter()
                .flat_map(|v| (*v as i32).to_le_bytes())
                .collect(),
        ),
        DType::Bool => (
            Dtype::BOOL,
            t.data.iter().map(|v| u8::from(*v != 0.0)).collect(),
        ),
    }
}

/// Writes `tensors` to `path` as safetensors.
pub fn save(path: &Path, tensors: &[(String, Tensor)]) -> Result<(), String> {
    let owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, t)| {
            let (d, b) = bytes_of(t);
            (n.clone(), d, t.shape.clone(), b)
        })
        .collect();
    let mut views = Vec::new();
    for (name, dtype, shape, bytes) in &owned {
        let view = TensorView::new(*dtype, shape.clone(), bytes)
            .map_err(|e| format!("cannot encode {name}: {e}"))?;
        views.push((name.clone(), view));
    }
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), "dlc tensors 1".to_string());
    let bytes = crate::checkpoint::serialize(views, meta)
        .map_err(|e| format!("cannot encode the tensors: {e}"))?;
    crate::output::write(path, &[], &bytes)
}

/// Reads every tensor of a safetensors file, in name order.
pub fn load(path: &Path) -> Result<Vec<(String, Tensor)>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| format!("{} is not a safetensors file: {e}", path.display()))?;
    let mut out = Vec::new();
    let mut names = st.names();
    names.sort();
    for name in names {
        let t = st
            .tensor(name)
            .map_err(|e| format!("{}: {name}: {e}", path.display()))?;
        let d = t.data();
        let (dtype, data): (DType, Vec<f64>) = match t.dtype() {
            Dtype::F32 => (
                DType::F32,
                d.chunks_exact(4)
                    .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                    .collect(),
            ),
            Dtype::F64 => (
                DType::F64,
                d.chunks_exact(8)
                    .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                    .collect(),
            ),
            Dtype::I32 => (
                DType::I32,
                d.chunks_exact(4)
                    .map(|b| f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                    .collect(),
            ),
            Dtype::BOOL => (
                DType::Bool,
                d.iter().map(|b| f64::from(u8::from(*b != 0))).collect(),
            ),
            other => {
                return Err(format!(
                    "{}: {name} is {other:?}; the REPL reads F32, F64, I32 and BOOL tensors",
                    path.display()
                ))
            }
        };
        let shape = t.shape().to_vec();
        if shape.iter().product::<usize>() != data.len() {
            return Err(format!(
                "{}: {name} holds the wrong number of elements",
                path.display()
            ));
        }
        out.push((name.to_string(), Tensor::new(dtype, shape, data)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dtype_round_trips() {
        let dir = std::env::temp_dir().join(format!("dlc-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("t.safetensors");
        let tensors = vec![
            (
                "a".to_string(),
                Tensor::new(DType::F32, vec![2, 2], vec![1.5, -2.0, 0.25, 1e-3]),
            ),
            (
                "b".to_string(),
                Tensor::new(DType::F64, vec![2], vec![0.1, 1e300]),
            ),
            (
                "c".to_string(),
                Tensor::new(DType::I32, vec![3], vec![-7.0, 0.0, 9.0]),
            ),
            ("d".to_string(), Tensor::new(DType::Bool, vec![], vec![1.0])),
        ];
        save(&path, &tensors).expect("saved");
        let back = load(&path).expect("loaded");
        let f32_round = |v: f64| f64::from(v as f32);
        assert_eq!(back.len(), 4);
        assert_eq!(
            back[0].1.data,
            tensors[0]
                .1
                .data
                .iter()
                .map(|v| f32_round(*v))
                .collect::<Vec<_>>()
        );
        assert_eq!(back[1].1, tensors[1].1);
        assert_eq!(back[2].1, tensors[2].1);
        assert_eq!(back[3].1, tensors[3].1);
        std::fs::write(&path, b"not safetensors").expect("written");
        assert!(load(&path).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
