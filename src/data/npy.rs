//! NumPy's array files: `.npy` (one array) and `.npz` (a zip archive of
//! `.npy` members, stored as `np.savez` writes them or deflated as
//! `np.savez_compressed` does). [`header`] reads an array's dtype and shape
//! and nothing of its data (what the checker needs); [`read`] reads its
//! values. Invariant: no input makes these panic; every error is one line
//! naming the file (and the member).

use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// An array: a `.npy` file, or member `NAME.npy` of a `.npz` archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyRef {
    pub path: PathBuf,
    pub member: Option<String>,
}

impl fmt::Display for NpyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.member {
            Some(m) => write!(f, "{} (array `{m}`)", self.path.display()),
            None => write!(f, "{}", self.path.display()),
        }
    }
}

/// The element types dlc reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NpyType {
    F32,
    F64,
    /// Signed integers of 1, 2, 4 or 8 bytes.
    Int(u8),
    /// Unsigned integers of 1, 2, 4 or 8 bytes.
    UInt(u8),
    Bool,
}

impl NpyType {
    fn parse(descr: &str) -> Option<NpyType> {
        let mut chars = descr.chars();
        let order = chars.next()?;
        let kind = chars.as_str();
        let little = matches!(order, '<' | '|' | '=');
        if !little {
            return None;
        }
        Some(match kind {
            "f4" => NpyType::F32,
            "f8" => NpyType::F64,
            "i1" => NpyType::Int(1),
            "i2" => NpyType::Int(2),
            "i4" => NpyType::Int(4),
            "i8" => NpyType::Int(8),
            "u1" => NpyType::UInt(1),
            "u2" => NpyType::UInt(2),
            "u4" => NpyType::UInt(4),
            "u8" => NpyType::UInt(8),
            "b1" => NpyType::Bool,
            _ => return None,
        })
    }

    pub fn size(self) -> usize {
        match self {
            NpyType::F32 => 4,
            NpyType::F64 => 8,
            NpyType::Int(n) | NpyType::UInt(n) => usize::from(n),
            NpyType::Bool => 1,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, NpyType::F32 | NpyType::F64)
    }

    /// NumPy's name: `float32`, `int64`, `uint8`, `bool`.
    pub fn name(self) -> String {
        match self {
            NpyType::F32 => "float32".into(),
            NpyType::F64 => "float64".into(),
            NpyType::Int(n) => format!("int{}", 8 * n),
            NpyType::UInt(n) => format!("uint{}", 8 * n),
            NpyType::Bool => "bool".into(),
        }
    }

    /// Element `b` (little-endian bytes) as an f64 (exact but for 64-bit
    /// integers past 2⁵³).
    fn value(self, b: &[u8]) -> f64 {
        let mut w = [0u8; 8];
        w[..b.len()].copy_from_slice(b);
        let u = u64::from_le_bytes(w);
        match self {
            NpyType::F32 => f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            NpyType::F64 => f64::from_le_bytes(w),
            NpyType::Bool => f64::from(u8::from(b[0] != 0)),
            NpyType::UInt(_) => u as f64,
            NpyType::Int(n) => {
                let shift = 64 - 8 * u32::from(n);
                (((u << shift) as i64) >> shift) as f64
            }
        }
    }
}

/// An array's dtype and shape, and where its data starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyHeader {
    pub ty: NpyType,
    pub dims: Vec<usize>,
    /// The data's offset in the `.npy` bytes.
    data: usize,
}

impl NpyHeader {
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where an array's `.npy` bytes are: a file, or a member of an archive.
enum Place {
    /// From this offset of the file to its end (a `.npy` file).
    File(u64),
    /// A stored member: offset and length in the archive.
    Stored(u64, u64),
    /// A deflated member: offset and compressed length.
    Deflated(u64, u64),
}

fn bad(r: &NpyRef, what: impl fmt::Display) -> String {
    format!("{r}: {what}")
}

/// An array's header: its dtype and shape.
pub fn header(r: &NpyRef) -> Result<NpyHeader, String> {
    let (mut f, place) = open(r)?;
    // A header is at most a few kilobytes; read up to 64 KiB of the array.
    let head = read_part(&mut f, &place, 1 << 16, r)?;
    parse_header(&head, r)
}

/// An array's header and its values, each through `conv`.
pub fn read<T>(r: &NpyRef, conv: impl Fn(f64) -> T) -> Result<(NpyHeader, Vec<T>), String> {
    let h = header(r)?;
    let n = h.len();
    let bytes = n
        .checked_mul(h.ty.size())
        .ok_or_else(|| bad(r, "an array too large"))?;
    crate::memory::check(&r.to_string(), bytes as u128 * 2)?;
    let (mut f, place) = open(r)?;
    let all = read_part(&mut f, &place, h.data + bytes + 1, r)?;
    let data = &all[h.data.min(all.len())..];
    if data.len() != bytes {
        return Err(bad(
            r,
            format!(
                "its shape {:?} needs {bytes} bytes of {}, but it holds {}",
                h.dims,
                h.ty.name(),
                data.len()
            ),
        ));
    }
    let values = data
        .chunks_exact(h.ty.size())
        .map(|b| conv(h.ty.value(b)))
        .collect();
    Ok((h, values))
}

fn open(r: &NpyRef) -> Result<(File, Place), String> {
    let mut f = File::open(&r.path).map_err(|e| format!("{}: {e}", r.path.display()))?;
    let Some(member) = &r.member else {
        return Ok((f, Place::File(0)));
    };
    let place = find_member(&mut f, &format!("{member}.npy"), r)?;
    Ok((f, place))
}

/// Up to `max` of the array's `.npy` bytes.
fn read_part(f: &mut File, place: &Place, max: usize, r: &NpyRef) -> Result<Vec<u8>, String> {
    let io = |e: std::io::Error| bad(r, e);
    let mut out = Vec::new();
    match *place {
        Place::File(at) => {
            f.seek(SeekFrom::Start(at)).map_err(io)?;
            f.take(max as u64).read_to_end(&mut out).map_err(io)?;
        }
        Place::Stored(at, len) => {
            f.seek(SeekFrom::Start(at)).map_err(io)?;
            f.take(len.min(max as u64))
                .read_to_end(&mut out)
                .map_err(io)?;
        }
        Place::Deflated(at, len) => {
            f.seek(SeekFrom::Start(at)).map_err(io)?;
            let z = flate2::read::DeflateDecoder::new(f.take(len));
            z.take(max as u64)
                .read_to_end(&mut out)
                .map_err(|e| bad(r, format!("a damaged compressed member: {e}")))?;
        }
    }
    Ok(out)
}

fn u16_at(b: &[u8], i: usize) -> Option<u64> {
    Some(u64::from(u16::from_le_bytes(
        b.get(i..i + 2)?.try_into().ok()?,
    )))
}

fn u32_at(b: &[u8], i: usize) -> Option<u64> {
    Some(u64::from(u32::from_le_bytes(
        b.get(i..i + 4)?.try_into().ok()?,
    )))
}

/// Finds `name` in a zip archive's central directory.
fn find_member(f: &mut File, name: &str, r: &NpyRef) -> Result<Place, String> {
    let io = |e: std::io::Error| bad(r, e);
    let not_zip = || format!("{} is not an .npz (zip) archive", r.path.display());
    let len = f.seek(SeekFrom::End(0)).map_err(io)?;
    // The end record is the last 22 bytes, before a comment of < 64 KiB.
    let tail_len = len.min(22 + 65_535);
    f.seek(SeekFrom::Start(len - tail_len)).map_err(io)?;
    let mut tail = Vec::new();
    f.take(tail_len).read_to_end(&mut tail).map_err(io)?;
    let end = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| tail[i..i + 4] == [0x50, 0x4b, 0x05, 0x06])
        .ok_or_else(not_zip)?;
    let (entries, cd_size, cd_offset) = (
        u16_at(&tail, end + 10).ok_or_else(not_zip)?,
        u32_at(&tail, end + 12).ok_or_else(not_zip)?,
        u32_at(&tail, end + 16).ok_or_else(not_zip)?,
    );
    if cd_offset == 0xFFFF_FFFF || entries == 0xFFFF {
        return Err(bad(
            r,
            "a zip64 archive (over 4 GiB), which dlc does not read",
        ));
    }
    f.seek(SeekFrom::Start(cd_offset)).map_err(io)?;
    let mut cd = Vec::new();
    f.take(cd_size).read_to_end(&mut cd).map_err(io)?;
    let mut i = 0;
    let mut names = Vec::new();
    for _ in 0..entries {
        if cd.get(i..i + 4) != Some(&[0x50, 0x4b, 0x01, 0x02]) {
            return Err(not_zip());
        }
        let method = u16_at(&cd, i + 10).ok_or_else(not_zip)?;
        let csize = u32_at(&cd, i + 20).ok_or_else(not_zip)?;
        let (nlen, xlen, clen) = (
            u16_at(&cd, i + 28).ok_or_else(not_zip)? as usize,
            u16_at(&cd, i + 30).ok_or_else(not_zip)? as usize,
            u16_at(&cd, i + 32).ok_or_else(not_zip)? as usize,
        );
        let local = u32_at(&cd, i + 42).ok_or_else(not_zip)?;
        let member = cd.get(i + 46..i + 46 + nlen).ok_or_else(not_zip)?;
        let member = String::from_utf8_lossy(member).into_owned();
        i += 46 + nlen + xlen + clen;
        if member != name {
            names.push(member.trim_end_matches(".npy").to_string());
            continue;
        }
        if csize == 0xFFFF_FFFF || local == 0xFFFF_FFFF {
            return Err(bad(
                r,
                "a zip64 member (over 4 GiB), which dlc does not read",
            ));
        }
        // The local header's name and extra field may differ in length
        // from the central directory's.
        f.seek(SeekFrom::Start(local)).map_err(io)?;
        let mut lh = [0u8; 30];
        f.read_exact(&mut lh).map_err(|_| not_zip())?;
        if lh[..4] != [0x50, 0x4b, 0x03, 0x04] {
            return Err(not_zip());
        }
        let data = local + 30 + u16_at(&lh, 26).unwrap_or(0) + u16_at(&lh, 28).unwrap_or(0);
        return match method {
            0 => Ok(Place::Stored(data, csize)),
            8 => Ok(Place::Deflated(data, csize)),
            m => Err(bad(r, format!("compression method {m}, which dlc does not read (np.savez and np.savez_compressed write 0 and 8)"))),
        };
    }
    Err(format!(
        "{} has no array `{}`; its arrays are: {}",
        r.path.display(),
        name.trim_end_matches(".npy"),
        names.join(", ")
    ))
}

/// Parses an `.npy` header (versions 1.0 to 3.0).
fn parse_header(b: &[u8], r: &NpyRef) -> Result<NpyHeader, String> {
    let not = |what: &str| bad(r, format!("not a NumPy array ({what})"));
    if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
        return Err(not("no \\x93NUMPY magic"));
    }
    let (len, start) = match b[6] {
        1 => (u16_at(b, 8).unwrap_or(0) as usize, 10),
        2 | 3 => (
            u32_at(b, 8).ok_or_else(|| not("a cut header"))? as usize,
            12,
        ),
        v => return Err(not(&format!("version {v}"))),
    };
    let header = b
        .get(start..start + len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| not("a cut header"))?;
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}':"))? + key.len() + 3;
        Some(header[at..].trim_start())
    };
    let descr = field("descr").ok_or_else(|| not("no descr"))?;
    let quoted = descr
        .strip_prefix('\'')
        .and_then(|d| d.split('\'').next())
        .ok_or_else(|| not("a bad descr"))?;
    let ty = NpyType::parse(quoted).ok_or_else(|| {
        bad(
            r,
            format!("dtype `{quoted}`: dlc reads little-endian floats, integers and bools"),
        )
    })?;
    if field("fortran_order").is_some_and(|f| f.starts_with("True")) {
        return Err(bad(
            r,
            "a Fortran-order array; save it in C order (np.ascontiguousarray)",
        ));
    }
    let shape = field("shape").ok_or_else(|| not("no shape"))?;
    let inside = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| not("a bad shape"))?;
    let dims: Vec<usize> = inside
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse::<usize>().map_err(|_| not("a bad shape")))
        .collect::<Result<_, _>>()?;
    dims.iter()
        .try_fold(1usize, |a, d| a.checked_mul(*d))
        .ok_or_else(|| bad(r, "a shape too large"))?;
    Ok(NpyHeader {
        ty,
        dims,
        data: start + len,
    })
}

/// `path`, or member `member` of it when it is an `.npz` archive.
pub fn reference(path: &Path, member: Option<&str>) -> NpyRef {
    NpyRef {
        path: path.to_path_buf(),
        member: member.map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_types_decode_exactly() {
        assert_eq!(NpyType::Int(1).value(&[0xFF]), -1.0);
        assert_eq!(NpyType::Int(2).value(&[0x00, 0x80]), -32768.0);
        assert_eq!(NpyType::UInt(2).value(&[0x00, 0x80]), 32768.0);
        assert_eq!(NpyType::Int(8).value(&(-5i64).to_le_bytes()), -5.0);
        assert_eq!(NpyType::F32.value(&0.1f32.to_le_bytes()), f64::from(0.1f32));
        assert_eq!(NpyType::parse("<f8"), Some(NpyType::F64));
        assert_eq!(NpyType::parse(">f8"), None);
        assert_eq!(NpyType::parse("|b1"), Some(NpyType::Bool));
        assert_eq!(NpyType::parse(""), None);
        assert_eq!(NpyType::parse("é4"), None);
    }
}
