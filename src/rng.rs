//! The counter-based random number generator behind `Op::Random` and
//! parameter initialization.
//!
//! A value is a pure function of (seed, step, stream, element index): no
//! state is carried between draws, so training is reproducible for any
//! thread count, the interpreter and the JIT agree bit for bit, and backward
//! regenerates a dropout mask instead of storing it. The mixing function is
//! splitmix64's finalizer, a few multiplies and shifts that Cranelift emits
//! directly.

/// splitmix64's finalizer: a bijective 64-bit mix.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A digest of a stream of 64-bit words (and bytes, eight to a word):
/// each word mixed into the state by [`mix`]. Not cryptographic: it tells
/// apart data that differ by accident (processes reading different
/// files), in one pass at memory speed.
pub struct Digest(u64);

impl Default for Digest {
    fn default() -> Self {
        Digest(0x6a09_e667_f3bc_c909)
    }
}

impl Digest {
    /// Adds one word.
    pub fn word(&mut self, w: u64) {
        self.0 = mix(self.0 ^ w).wrapping_add(GOLDEN);
    }

    /// Adds `bytes` (their count too, so that a trailing zero counts).
    pub fn bytes(&mut self, bytes: &[u8]) {
        self.word(bytes.len() as u64);
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]));
        }
        let mut last = [0u8; 8];
        last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        self.word(u64::from_le_bytes(last));
    }

    /// The digest of what was added.
    pub fn finish(&self) -> u64 {
        mix(self.0)
    }
}

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// A stable hash of a text, in hex: the program's in a checkpoint (to
/// notice a changed program), a long file name's in a temporary's name.
pub fn text_hash(text: &str) -> String {
    let mut h: u64 = 0x6a09_e667_f3bc_c909;
    for chunk in text.as_bytes().chunks(8) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        h = mix(h ^ u64::from_le_bytes(b));
    }
    format!("{h:016x}")
}

/// The key of one random tensor: a seed, the training step, and the
/// tensor's stream (each `Op::Random` site has its own).
pub fn key(seed: u64, step: u64, stream: u32) -> u64 {
    mix(mix(seed ^ GOLDEN).wrapping_add(step) ^ (u64::from(stream) << 32 | 0x5bd1))
}

/// 64 random bits for element `i` under `key`.
pub fn bits(key: u64, i: u64) -> u64 {
    mix(key.wrapping_add(i.wrapping_mul(GOLDEN)))
}

/// Uniform on [0, 1) with 24 bits, so the value is exact in f32 too.
pub fn uniform(key: u64, i: u64) -> f64 {
    (bits(key, i) >> 40) as f64 / (1u64 << 24) as f64
}

/// Standard normal by Box–Muller from elements 2i and 2i+1 of the stream.
pub fn normal(key: u64, i: u64) -> f64 {
    // u1 in (0, 1], so the logarithm is finite.
    let u1 = ((bits(key, 2 * i) >> 40) + 1) as f64 / (1u64 << 24) as f64;
    let u2 = uniform(key, 2 * i + 1);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_moments_are_right() {
        let k = key(42, 7, 3);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|i| uniform(k, i)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.005, "{mean}");
        assert!((var - 1.0 / 12.0).abs() < 0.002, "{var}");
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
    }

    #[test]
    fn normal_moments_are_right() {
        let k = key(1, 0, 0);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|i| normal(k, i)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01, "{mean}");
        assert!((var - 1.0).abs() < 0.02, "{var}");
    }

    #[test]
    fn keys_differ_by_seed_step_and_stream() {
        let a = key(1, 2, 3);
        assert_ne!(a, key(2, 2, 3));
        assert_ne!(a, key(1, 3, 3));
        assert_ne!(a, key(1, 2, 4));
        assert_eq!(a, key(1, 2, 3));
    }
}
