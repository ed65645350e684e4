//! A cache hint: the one `unsafe` outside `jit/exec.rs`, for the table's
//! row gathers (`data::table`).

#![allow(unsafe_code)]

/// Asks the CPU to start loading `values` into cache (a hint: no effect on
/// what any load returns), so that a gather touching rows at random finds
/// the next rows there instead of waiting for memory row by row.
pub fn prefetch<T>(values: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        let start = values.as_ptr().cast::<i8>();
        for off in (0..std::mem::size_of_val(values)).step_by(64) {
            // SAFETY: a prefetch never faults and changes no memory; the
            // address is inside `values`.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    start.wrapping_add(off),
                )
            };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = values;
}
