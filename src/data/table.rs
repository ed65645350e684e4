//! The table every command trains and evaluates on: features (f32, or one
//! byte per value for IDX images with its decoding) and targets, row by
//! row, with the row gathers and cache prefetches the training loop uses.

use crate::prefetch::prefetch;

/// Features (row-major, `n × width`) and targets (`n`).
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub x: Features,
    pub y: Vec<f64>,
    pub width: usize,
}

/// A table's feature values, row-major.
#[derive(Clone, Debug, PartialEq)]
pub enum Features {
    /// Stored as f32, the models' dtype: half the memory and half the
    /// gather traffic of f64.
    F32(Vec<f32>),
    /// One byte per value (IDX images), each standing for `decode`'s f32:
    /// a quarter of the memory and of the gather traffic of f32.
    Bytes { codes: Vec<u8>, decode: Decode },
}

/// What each byte of [`Features::Bytes`] stands for: `table[code]`, which
/// `fast` (when present) computes without the lookup, bit for bit.
#[derive(Clone, Debug, PartialEq)]
pub struct Decode {
    table: Box<[f32; 256]>,
    fast: Fast,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fast {
    /// code as f32 · m
    Mul(f32),
    /// code as f32 / d (for a scale 1/255: what `ToTensor` computes)
    Div(f32),
    Lookup,
}

impl Decode {
    /// Byte c stands for (c · `scale`) rounded to f32.
    pub fn scaled(scale: f64) -> Decode {
        let table: Box<[f32; 256]> = Box::new(std::array::from_fn(|c| (c as f64 * scale) as f32));
        let exact = |f: &dyn Fn(f32) -> f32| {
            (0..=255u8).all(|c| f(f32::from(c)).to_bits() == table[c as usize].to_bits())
        };
        let (m, d) = (scale as f32, (1.0 / scale) as f32);
        let fast = if exact(&|c| c * m) {
            Fast::Mul(m)
        } else if exact(&|c| c / d) {
            Fast::Div(d)
        } else {
            Fast::Lookup
        };
        Decode { table, fast }
    }

    /// Decodes `codes` into `out` (of the same length).
    fn run(&self, codes: &[u8], out: &mut [f32]) {
        match self.fast {
            Fast::Mul(m) => crate::prefetch::decode_bytes(codes, out, |c| f32::from(c) * m),
            Fast::Div(d) => crate::prefetch::decode_bytes(codes, out, |c| f32::from(c) / d),
            Fast::Lookup => {
                for (o, c) in out.iter_mut().zip(codes) {
                    *o = self.table[*c as usize];
                }
            }
        }
    }
}

impl Features {
    /// The number of values.
    pub fn len(&self) -> usize {
        match self {
            Features::F32(v) => v.len(),
            Features::Bytes { codes, .. } => codes.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Value `i`.
    pub fn get(&self, i: usize) -> f32 {
        match self {
            Features::F32(v) => v[i],
            Features::Bytes { codes, decode } => decode.table[codes[i] as usize],
        }
    }

    /// All values, in order.
    pub fn iter(&self) -> impl Iterator<Item = f32> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Values `from..from + out.len()` into `out`; `None` when they run
    /// past the end.
    pub fn copy_into(&self, from: usize, out: &mut [f32]) -> Option<()> {
        let to = from.checked_add(out.len())?;
        match self {
            Features::F32(v) => out.copy_from_slice(v.get(from..to)?),
            Features::Bytes { codes, decode } => decode.run(codes.get(from..to)?, out),
        }
        Some(())
    }

    /// Starts loading values `from..to` into cache (see [`prefetch`]).
    pub fn prefetch(&self, from: usize, to: usize) {
        match self {
            Features::F32(v) => prefetch(v.get(from..to).unwrap_or(&[])),
            Features::Bytes { codes, .. } => prefetch(codes.get(from..to).unwrap_or(&[])),
        }
    }

    /// Values `from..to` as f32s.
    pub fn values(&self, from: usize, to: usize) -> Vec<f32> {
        let mut out = vec![0.0; to.saturating_sub(from)];
        let _ = self.copy_into(from, &mut out);
        out
    }

    /// Rows `rows` (of `width` values), in that order, kept in this form.
    pub fn select(&self, rows: &[usize], width: usize) -> Features {
        let span = |r: usize| r * width..(r + 1) * width;
        match self {
            Features::F32(v) => Features::F32(
                rows.iter()
                    .flat_map(|&r| v[span(r)].iter().copied())
                    .collect(),
            ),
            Features::Bytes { codes, decode } => Features::Bytes {
                codes: rows
                    .iter()
                    .flat_map(|&r| codes[span(r)].iter().copied())
                    .collect(),
                decode: decode.clone(),
            },
        }
    }
}

impl Table {
    /// Adds the table's contents to `d`, bit for bit: its width, each
    /// feature value (or byte code and what each code decodes to) and
    /// each label.
    pub fn digest(&self, d: &mut crate::rng::Digest) {
        d.word(self.width as u64);
        match &self.x {
            Features::F32(v) => {
                d.word(v.len() as u64);
                for pair in v.chunks(2) {
                    let hi = pair.get(1).map_or(0, |x| u64::from(x.to_bits()));
                    d.word(u64::from(pair[0].to_bits()) | hi << 32);
                }
            }
            Features::Bytes { codes, decode } => {
                d.bytes(codes);
                for v in decode.table.iter() {
                    d.word(u64::from(v.to_bits()));
                }
            }
        }
        d.word(self.y.len() as u64);
        for y in &self.y {
            d.word(y.to_bits());
        }
    }

    pub fn len(&self) -> usize {
        self.y.len()
    }

    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Starts loading row `r`'s features into cache.
    pub fn prefetch_row(&self, r: usize) {
        self.x.prefetch(r * self.width, (r + 1) * self.width);
    }

    /// Rows `from..to`.
    pub fn rows(&self, from: usize, to: usize) -> Table {
        Table {
            x: self.x.select(&(from..to).collect::<Vec<_>>(), self.width),
            y: self.y[from..to].to_vec(),
            width: self.width,
        }
    }
}
