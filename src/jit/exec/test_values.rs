//! Deterministic test values for the matmul tests.

/// Test values in [-0.5, 0.5) from a 64-bit LCG: the same sequence for
/// the same seed.
#[cfg(test)]
pub(crate) struct TestValues(pub u64);

#[cfg(test)]
impl TestValues {
    /// The next `n` values.
    pub fn take(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 = self
                    .0
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((self.0 >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }
}
