//! The runtime's unsafe core: the one module that calls JIT code and views
//! buffers as typed slices.
//!
//! Every buffer is a `Vec<u64>` (8-byte aligned, so f32, i32 and f64 views
//! are aligned). Before a kernel runs, `Compiled::run` has checked that every
//! buffer the kernel touches holds at least the bytes its shape needs at the
//! current batch size; the kernels index only within those shapes.
#![allow(unsafe_code)]

use crate::ir::DType;

/// A compiled kernel: the buffer table, the batch size, the seed, and the
/// range [lo, hi) of output rows to compute (only matmul kernels split their
/// rows; the others ignore the range).
pub type KernelFn = extern "C" fn(*const *mut u8, i64, i64, i64, i64);

/// Bytes per element in memory (bool is stored as an i32 0/1).
pub fn elem_size(d: DType) -> usize {
    match d {
        DType::F32 | DType::I32 | DType::Bool => 4,
        DType::F64 => 8,
    }
}

/// Writes `values` into `buf` in `dtype`'s memory representation.
pub fn write(buf: &mut [u64], dtype: DType, values: &[f64]) {
    let needed = values.len() * elem_size(dtype);
    assert!(buf.len() * 8 >= needed, "compiler bug: buffer too small");
    match dtype {
        DType::F32 => {
            // SAFETY: the buffer is 8-byte aligned and holds at least
            // values.len() f32s (checked above); f32 has no invalid bit patterns.
            let s = unsafe {
                std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<f32>(), values.len())
            };
            for (d, v) in s.iter_mut().zip(values) {
                *d = *v as f32;
            }
        }
        DType::F64 => {
            // SAFETY: as above, for f64.
            let s = unsafe {
                std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<f64>(), values.len())
            };
            s.copy_from_slice(values);
        }
        DType::I32 | DType::Bool => {
            // SAFETY: as above, for i32.
            let s = unsafe {
                std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<i32>(), values.len())
            };
            for (d, v) in s.iter_mut().zip(values) {
                *d = if dtype == DType::Bool {
                    i32::from(*v != 0.0)
                } else {
                    *v as i32
                };
            }
        }
    }
}

/// Reads `n` elements of `dtype` from `buf` as f64.
pub fn read(buf: &[u64], dtype: DType, n: usize) -> Vec<f64> {
    assert!(
        buf.len() * 8 >= n * elem_size(dtype),
        "compiler bug: buffer too small"
    );
    match dtype {
        DType::F32 => {
            // SAFETY: aligned, long enough (checked above).
            let s = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<f32>(), n) };
            s.iter().map(|v| f64::from(*v)).collect()
        }
        DType::F64 => {
            // SAFETY: aligned, long enough (checked above).
            let s = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<f64>(), n) };
            s.to_vec()
        }
        DType::I32 | DType::Bool => {
            // SAFETY: aligned, long enough (checked above).
            let s = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<i32>(), n) };
            s.iter().map(|v| f64::from(*v)).collect()
        }
    }
}

/// The callable kernel that `module` compiled for function `id`.
pub fn finalized_kernel(
    module: &cranelift_jit::JITModule,
    id: cranelift_module::FuncId,
) -> KernelFn {
    let ptr = module.get_finalized_function(id);
    // SAFETY: `id` was declared and defined by `jit::compile` with exactly
    // the signature (i64, i64, i64, i64, i64) -> () in the host's C calling
    // convention, and the module has been finalized; the module that owns
    // the code is stored beside the pointers in `Compiled` and outlives
    // every call.
    unsafe { std::mem::transmute::<*const u8, KernelFn>(ptr) }
}

/// Runs one kernel over the buffer table, for output rows [0, rows).
pub fn call(k: KernelFn, table: &[*mut u8], batch: usize, seed: u64, rows: usize) {
    // The callee reads table[i] for the buffers of its node and operands,
    // all of which the caller sized for `batch`; it writes only its own
    // node's buffer, rows [0, rows).
    k(table.as_ptr(), batch as i64, seed as i64, 0, rows as i64)
}

/// The buffer table, shareable with the worker threads of one call.
struct Table(*const *mut u8);

// SAFETY: the table's pointers stay valid for the whole `call_split` (the
// caller holds the buffers), and the threads that share it write disjoint
// row ranges of one output buffer and only read the others.
unsafe impl Send for Table {}
unsafe impl Sync for Table {}

/// Runs a row-splittable kernel with its `rows` output rows divided among
/// `threads` threads in chunks of whole 4-row tiles.
pub fn call_split(
    k: KernelFn,
    table: &[*mut u8],
    batch: usize,
    seed: u64,
    rows: usize,
    threads: usize,
) {
    let t = Table(table.as_ptr());
    let per = rows.div_ceil(threads.max(1)).next_multiple_of(4);
    std::thread::scope(|scope| {
        let t = &t;
        let mut lo = 0;
        while lo < rows {
            let hi = (lo + per).min(rows);
            scope.spawn(move || k(t.0, batch as i64, seed as i64, lo as i64, hi as i64));
            lo = hi;
        }
    });
}

// Math the kernels call per element (polynomial inline versions replace
// these in the performance work).
pub extern "C" fn dlc_expf(x: f32) -> f32 {
    x.exp()
}
pub extern "C" fn dlc_logf(x: f32) -> f32 {
    x.ln()
}
pub extern "C" fn dlc_tanhf(x: f32) -> f32 {
    x.tanh()
}
pub extern "C" fn dlc_powf(x: f32, y: f32) -> f32 {
    x.powf(y)
}
pub extern "C" fn dlc_sigmoidf(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}
pub extern "C" fn dlc_exp(x: f64) -> f64 {
    x.exp()
}
pub extern "C" fn dlc_log(x: f64) -> f64 {
    x.ln()
}
pub extern "C" fn dlc_tanh(x: f64) -> f64 {
    x.tanh()
}
pub extern "C" fn dlc_pow(x: f64, y: f64) -> f64 {
    x.powf(y)
}
pub extern "C" fn dlc_sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}
pub extern "C" fn dlc_rng_normal(key: i64, i: i64) -> f64 {
    crate::rng::normal(key as u64, i as u64)
}
