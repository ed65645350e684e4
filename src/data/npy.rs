//! NumPy's array files: `.npy` (one array) and `.npz` (a zip archive of
//! `.npy` members, stored as `np.savez` writes them or deflated as
//! `np.savez_compressed` does). [`header`] reads an array's dtype and shape
//! and nothing of its data (what the checker needs); [`read`] reads its
//! values, in C order. A header is read as `np.load` reads it: a Python
//! dict literal (any spacing and quoting) of exactly `descr`,
//! `fortran_order` and `shape`, at most 10,000 characters; either byte
//! order; Fortran-order data is reordered. Invariant: no input makes these
//! panic or allocate more than the memory budget allows; every error is
//! one line naming the file (and the member).

use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

mod literal;

use literal::Lit;

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
    F16,
    F32,
    F64,
    /// Signed integers of 1, 2, 4 or 8 bytes.
    Int(u8),
    /// Unsigned integers of 1, 2, 4 or 8 bytes.
    UInt(u8),
    Bool,
}

impl NpyType {
    /// A `descr` as `np.dtype` reads it: a byte order (`<` little, `>`
    /// big, `|` or `=` or none: this machine's) and a type code (`f4`,
    /// `i8`, `?`, `d`, ...), or a name (`float32`); with whether its
    /// bytes are big-endian. `None` for what dlc does not read.
    fn parse(descr: &str) -> Option<(NpyType, bool)> {
        let native = cfg!(target_endian = "big");
        let named = match descr {
            "float16" | "half" => Some(NpyType::F16),
            "float32" | "single" => Some(NpyType::F32),
            "float64" | "double" => Some(NpyType::F64),
            "int8" => Some(NpyType::Int(1)),
            "int16" => Some(NpyType::Int(2)),
            "int32" => Some(NpyType::Int(4)),
            "int64" => Some(NpyType::Int(8)),
            "uint8" => Some(NpyType::UInt(1)),
            "uint16" => Some(NpyType::UInt(2)),
            "uint32" => Some(NpyType::UInt(4)),
            "uint64" => Some(NpyType::UInt(8)),
            "bool" => Some(NpyType::Bool),
            _ => None,
        };
        if let Some(t) = named {
            return Some((t, native));
        }
        // The first byte is ASCII when it matches, so `[1..]` is a char
        // boundary.
        let (big, code) = match descr.as_bytes().first()? {
            b'<' => (false, &descr[1..]),
            b'>' => (true, &descr[1..]),
            b'|' | b'=' => (native, &descr[1..]),
            _ => (native, descr),
        };
        let ty = match code {
            "f2" | "e" => NpyType::F16,
            "f4" | "f" => NpyType::F32,
            "f8" | "d" => NpyType::F64,
            "i1" | "b" => NpyType::Int(1),
            "i2" | "h" => NpyType::Int(2),
            "i4" | "i" => NpyType::Int(4),
            "i8" | "q" => NpyType::Int(8),
            "u1" | "B" => NpyType::UInt(1),
            "u2" | "H" => NpyType::UInt(2),
            "u4" | "I" => NpyType::UInt(4),
            "u8" | "Q" => NpyType::UInt(8),
            "b1" | "?" => NpyType::Bool,
            _ => return None,
        };
        Some((ty, big))
    }

    pub fn size(self) -> usize {
        match self {
            NpyType::F16 => 2,
            NpyType::F32 => 4,
            NpyType::F64 => 8,
            NpyType::Int(n) | NpyType::UInt(n) => usize::from(n),
            NpyType::Bool => 1,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, NpyType::F16 | NpyType::F32 | NpyType::F64)
    }

    /// NumPy's name: `float32`, `int64`, `uint8`, `bool`.
    pub fn name(self) -> String {
        match self {
            NpyType::F16 => "float16".into(),
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
            NpyType::F16 => f16_value(u as u16),
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

/// An IEEE half's bits as the f64 they stand for (exactly).
fn f16_value(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let (exp, frac) = (i32::from((h >> 10) & 0x1f), f64::from(h & 0x3ff));
    match exp {
        0 => sign * frac * 2f64.powi(-24),
        31 if frac == 0.0 => sign * f64::INFINITY,
        31 => f64::NAN,
        e => sign * (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

/// An array's dtype and shape, and where its data starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyHeader {
    pub ty: NpyType,
    pub dims: Vec<usize>,
    /// Whether the data is in Fortran order (first index fastest);
    /// [`read`] returns it in C order.
    pub fortran: bool,
    /// Whether the elements' bytes are big-endian.
    big_endian: bool,
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

/// NumPy's limit on a header's length in characters (`np.load`'s
/// `max_header_size`): a longer header is refused before it is parsed.
pub const MAX_HEADER: usize = 10_000;

/// The bytes read to find a header: the 12-byte preamble and the longest
/// header allowed (version 3.0's UTF-8 takes up to 4 bytes a character).
const HEAD_READ: usize = 12 + 4 * MAX_HEADER;

/// Where an array's `.npy` bytes are: a file, or a member of an archive.
enum Place {
    /// From this offset of the file to its end (a `.npy` file).
    File(u64),
    /// A stored member: offset and length in the archive.
    Stored(u64, u64),
    /// A deflated member: offset, compressed length, and the length the
    /// archive says it has once inflated.
    Deflated(u64, u64, u64),
}

fn bad(r: &NpyRef, what: impl fmt::Display) -> String {
    format!("{r}: {what}")
}

/// An array's header: its dtype and shape.
pub fn header(r: &NpyRef) -> Result<NpyHeader, String> {
    let (mut f, place) = open(r)?;
    let head = read_part(&mut f, &place, HEAD_READ, r)?;
    parse_header(&head, r)
}

/// An array's header and its values in C order, each through `conv`.
/// The payload's size comes from the shape (overflow-checked) and is
/// checked against what the file holds and against the memory budget
/// before anything is allocated.
pub fn read<T>(r: &NpyRef, conv: impl Fn(f64) -> T) -> Result<(NpyHeader, Vec<T>), String> {
    let (mut f, place) = open(r)?;
    let head = read_part(&mut f, &place, HEAD_READ, r)?;
    let h = parse_header(&head, r)?;
    let n = h.len();
    let size = h.ty.size();
    let too_large = || bad(r, format!("its shape {:?} is too large", h.dims));
    let bytes = n.checked_mul(size).ok_or_else(too_large)?;
    let total = h.data.checked_add(bytes).ok_or_else(too_large)?;
    let holds = place_len(&mut f, &place, r)?;
    if holds < total as u64 {
        return Err(bad(
            r,
            format!(
                "its shape {:?} needs {bytes} bytes of {}, but it holds {}",
                h.dims,
                h.ty.name(),
                holds.saturating_sub(h.data as u64)
            ),
        ));
    }
    // The bytes, a reordered copy for Fortran order, and the values.
    let copies = if h.fortran { 2 } else { 1 };
    let need = bytes as u128 * copies + n as u128 * std::mem::size_of::<T>() as u128;
    crate::memory::check(&r.to_string(), need)?;
    let mut all = read_part(&mut f, &place, total.saturating_add(1), r)?;
    if all.len() != total {
        return Err(bad(
            r,
            format!(
                "its shape {:?} needs {bytes} bytes of {}, but it holds {}",
                h.dims,
                h.ty.name(),
                all.len().saturating_sub(h.data)
            ),
        ));
    }
    let mut data = all.split_off(h.data);
    drop(all);
    if h.big_endian && size > 1 {
        data.chunks_exact_mut(size).for_each(<[u8]>::reverse);
    }
    if h.fortran {
        data = fortran_to_c(&data, &h.dims, size);
    }
    let values = data
        .chunks_exact(size)
        .map(|b| conv(h.ty.value(b)))
        .collect();
    Ok((h, values))
}

/// The elements (`size` bytes each) of an array of `dims` laid out in
/// Fortran order (first index fastest), in C order (last index fastest).
fn fortran_to_c(raw: &[u8], dims: &[usize], size: usize) -> Vec<u8> {
    let n = raw.len() / size.max(1);
    // The Fortran layout's stride of each axis, in elements (each at most
    // n, since n is their product's bound).
    let mut strides = vec![1usize; dims.len()];
    for k in 1..dims.len() {
        strides[k] = strides[k - 1].saturating_mul(dims[k - 1]);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut index = vec![0usize; dims.len()];
    let mut at = 0usize;
    for _ in 0..n {
        out.extend_from_slice(&raw[at * size..(at + 1) * size]);
        // Next C-order index: the last axis moves fastest.
        for k in (0..dims.len()).rev() {
            index[k] += 1;
            at += strides[k];
            if index[k] < dims[k] {
                break;
            }
            at -= strides[k] * dims[k];
            index[k] = 0;
        }
    }
    out
}

fn open(r: &NpyRef) -> Result<(File, Place), String> {
    let mut f = File::open(&r.path).map_err(|e| format!("{}: {e}", r.path.display()))?;
    let Some(member) = &r.member else {
        return Ok((f, Place::File(0)));
    };
    let place = find_member(&mut f, member, r)?;
    Ok((f, place))
}

/// How many `.npy` bytes the place holds: the file's length, or the
/// member's (as the archive's directory gives it).
fn place_len(f: &mut File, place: &Place, r: &NpyRef) -> Result<u64, String> {
    Ok(match *place {
        Place::File(at) => f
            .metadata()
            .map_err(|e| bad(r, e))?
            .len()
            .saturating_sub(at),
        Place::Stored(_, len) | Place::Deflated(_, _, len) => len,
    })
}

/// Up to `max` of the array's `.npy` bytes.
fn read_part(f: &mut File, place: &Place, max: usize, r: &NpyRef) -> Result<Vec<u8>, String> {
    let io = |e: std::io::Error| bad(r, e);
    let mut out = Vec::new();
    // Reserved up front (the callers checked `max` against the budget), so
    // the buffer does not double as it grows.
    let reserve = place_len(f, place, r)?.min(max as u64) as usize;
    out.try_reserve_exact(reserve)
        .map_err(|_| bad(r, format!("cannot allocate {reserve} bytes")))?;
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
        Place::Deflated(at, len, _) => {
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

/// One entry of a zip archive's central directory.
struct Member {
    name: String,
    method: u64,
    compressed: u64,
    inflated: u64,
    local: u64,
}

impl Member {
    /// The name NumPy lists it under: without `.npy`.
    fn array(&self) -> &str {
        self.name.strip_suffix(".npy").unwrap_or(&self.name)
    }
}

/// The entries of a zip archive's central directory.
fn members(f: &mut File, r: &NpyRef) -> Result<Vec<Member>, String> {
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
    let mut out = Vec::new();
    for _ in 0..entries {
        if cd.get(i..i + 4) != Some(&[0x50, 0x4b, 0x01, 0x02]) {
            return Err(not_zip());
        }
        let field = |at: usize, wide: bool| {
            if wide {
                u32_at(&cd, i + at)
            } else {
                u16_at(&cd, i + at)
            }
            .ok_or_else(not_zip)
        };
        let (method, compressed, inflated) =
            (field(10, false)?, field(20, true)?, field(24, true)?);
        let (nlen, xlen, clen) = (
            field(28, false)? as usize,
            field(30, false)? as usize,
            field(32, false)? as usize,
        );
        let local = field(42, true)?;
        let name = cd.get(i + 46..i + 46 + nlen).ok_or_else(not_zip)?;
        let name = String::from_utf8_lossy(name).into_owned();
        i += 46 + nlen + xlen + clen;
        out.push(Member {
            name,
            method,
            compressed,
            inflated,
            local,
        });
    }
    Ok(out)
}

/// Finds array `name` (member `name` or `name.npy`, as NumPy looks it up)
/// in a zip archive. An archive where two members answer to one name is
/// refused: NumPy would read one of them and dlc should not guess which.
fn find_member(f: &mut File, name: &str, r: &NpyRef) -> Result<Place, String> {
    let not_zip = || format!("{} is not an .npz (zip) archive", r.path.display());
    let all = members(f, r)?;
    let mut seen: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for m in &all {
        if let Some(first) = seen.insert(m.array(), &m.name) {
            let what = if first == m.name {
                format!("two members named `{first}`")
            } else {
                format!(
                    "members `{first}` and `{}` both hold array `{}`",
                    m.name,
                    m.array()
                )
            };
            return Err(format!(
                "{}: {what}; rewrite the archive with one of each (np.savez)",
                r.path.display()
            ));
        }
    }
    let Some(m) = all.iter().find(|m| m.array() == name) else {
        let names: Vec<&str> = all.iter().map(Member::array).collect();
        return Err(format!(
            "{} has no array `{name}`; its arrays are: {}",
            r.path.display(),
            names.join(", ")
        ));
    };
    if m.compressed == 0xFFFF_FFFF || m.inflated == 0xFFFF_FFFF || m.local == 0xFFFF_FFFF {
        return Err(bad(
            r,
            "a zip64 member (over 4 GiB), which dlc does not read",
        ));
    }
    // The local header's name and extra field may differ in length from
    // the central directory's.
    f.seek(SeekFrom::Start(m.local)).map_err(|e| bad(r, e))?;
    let mut lh = [0u8; 30];
    f.read_exact(&mut lh).map_err(|_| not_zip())?;
    if lh[..4] != [0x50, 0x4b, 0x03, 0x04] {
        return Err(not_zip());
    }
    let data = m.local + 30 + u16_at(&lh, 26).unwrap_or(0) + u16_at(&lh, 28).unwrap_or(0);
    match m.method {
        0 => Ok(Place::Stored(data, m.compressed)),
        8 => Ok(Place::Deflated(data, m.compressed, m.inflated)),
        k => Err(bad(r, format!("compression method {k}, which dlc does not read (np.savez and np.savez_compressed write 0 and 8)"))),
    }
}

/// Parses an `.npy` header (versions 1.0, 2.0 and 3.0) as `np.load`
/// does: the header is a Python dict literal with exactly the keys
/// `descr`, `fortran_order` and `shape`, at most [`MAX_HEADER`]
/// characters long.
fn parse_header(b: &[u8], r: &NpyRef) -> Result<NpyHeader, String> {
    let not = |what: &str| bad(r, format!("not a NumPy array ({what})"));
    if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
        return Err(not("no \\x93NUMPY magic"));
    }
    let (len, start) = match (b[6], b[7]) {
        (1, 0) => (u16_at(b, 8).unwrap_or(0) as usize, 10),
        (2 | 3, 0) => (
            u32_at(b, 8).ok_or_else(|| not("a cut header"))? as usize,
            12,
        ),
        (major, minor) => {
            return Err(not(&format!(
                "format version {major}.{minor}; NumPy writes 1.0, 2.0 and 3.0"
            )))
        }
    };
    let utf8 = b[6] == 3;
    let too_long = |n: usize| {
        bad(
            r,
            format!("a header of {n} characters, over NumPy's limit of {MAX_HEADER} (np.load refuses it too)"),
        )
    };
    if len > if utf8 { 4 * MAX_HEADER } else { MAX_HEADER } {
        return Err(too_long(len));
    }
    let raw = b
        .get(start..start + len)
        .ok_or_else(|| not("a cut header"))?;
    // Version 3.0 is UTF-8; 1.0 and 2.0 are Latin-1.
    let text: String = if utf8 {
        std::str::from_utf8(raw)
            .map_err(|_| not("a version 3.0 header that is not UTF-8"))?
            .to_string()
    } else {
        raw.iter().map(|&c| char::from(c)).collect()
    };
    let chars = text.chars().count();
    if chars > MAX_HEADER {
        return Err(too_long(chars));
    }
    let lit = literal::parse(&text, !utf8)
        .map_err(|e| not(&format!("its header is not a Python literal: {e}")))?;
    let Lit::Dict(entries) = lit else {
        return Err(not("its header is not a dict"));
    };
    let get = |key: &str| {
        entries
            .iter()
            .find(|(k, _)| *k == Lit::Str(key.to_string()))
            .map(|(_, v)| v)
    };
    let (Some(descr), Some(fortran), Some(shape), 3) = (
        get("descr"),
        get("fortran_order"),
        get("shape"),
        entries.len(),
    ) else {
        let keys: Vec<String> = entries.iter().map(|(k, _)| show(k)).collect();
        return Err(not(&format!(
            "its header's keys are {{{}}}; NumPy's are exactly descr, fortran_order and shape",
            keys.join(", ")
        )));
    };
    let (ty, big_endian) = match descr {
        Lit::Str(d) => NpyType::parse(d).ok_or_else(|| {
            bad(
                r,
                format!("dtype `{d}`: dlc reads floats, integers and bools"),
            )
        })?,
        Lit::List(_) => {
            return Err(bad(
                r,
                "a structured dtype (named fields), which dlc does not read",
            ))
        }
        v => return Err(not(&format!("descr {} is not a dtype", show(v)))),
    };
    let Lit::Bool(fortran) = *fortran else {
        return Err(not(&format!(
            "fortran_order {} is not True or False",
            show(fortran)
        )));
    };
    let dims = dims_of(shape, ty.size(), r)?;
    Ok(NpyHeader {
        ty,
        dims,
        fortran,
        big_endian,
        data: start + len,
    })
}

/// The dimensions of a header's `shape`: a tuple of integers, none
/// negative, whose product of bytes (`size` a element) fits a `usize`.
fn dims_of(shape: &Lit, size: usize, r: &NpyRef) -> Result<Vec<usize>, String> {
    let not = |what: &str| bad(r, format!("not a NumPy array ({what})"));
    let Lit::Tuple(items) = shape else {
        return Err(not(&format!("shape {} is not a tuple", show(shape))));
    };
    let mut dims = Vec::with_capacity(items.len());
    for d in items {
        // (`True` passes NumPy's header check as an int, but np.load
        // then fails to make the array: refused here too.)
        let v = match d {
            Lit::Int(v) => *v,
            _ => {
                return Err(not(&format!(
                    "shape {} is not a tuple of integers",
                    show(shape)
                )))
            }
        };
        match v {
            Some(v) if v < 0 => {
                return Err(bad(
                    r,
                    format!("shape {}: a negative dimension", show(shape)),
                ))
            }
            _ => {}
        }
        dims.push(
            v.and_then(|v| usize::try_from(v).ok())
                .ok_or_else(|| bad(r, format!("shape {} is too large", show(shape))))?,
        );
    }
    dims.iter()
        .try_fold(size, |a, d| a.checked_mul(*d))
        .ok_or_else(|| bad(r, format!("shape {} is too large", show(shape))))?;
    Ok(dims)
}

/// A literal as Python prints it (for messages).
fn show(v: &Lit) -> String {
    let list = |items: &[Lit]| items.iter().map(show).collect::<Vec<_>>().join(", ");
    match v {
        Lit::Str(s) => format!("'{s}'"),
        Lit::Int(Some(i)) => i.to_string(),
        Lit::Int(None) => "(a huge integer)".into(),
        Lit::Bool(b) => if *b { "True" } else { "False" }.into(),
        Lit::None => "None".into(),
        Lit::Tuple(t) if t.len() == 1 => format!("({},)", show(&t[0])),
        Lit::Tuple(t) => format!("({})", list(t)),
        Lit::List(t) => format!("[{}]", list(t)),
        Lit::Dict(e) => format!(
            "{{{}}}",
            e.iter()
                .map(|(k, v)| format!("{}: {}", show(k), show(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
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
        assert_eq!(NpyType::parse("<f8"), Some((NpyType::F64, false)));
        assert_eq!(NpyType::parse(">f8"), Some((NpyType::F64, true)));
        assert_eq!(NpyType::parse("|b1"), Some((NpyType::Bool, false)));
        assert_eq!(NpyType::parse("?"), Some((NpyType::Bool, false)));
        assert_eq!(NpyType::parse("float32"), Some((NpyType::F32, false)));
        assert_eq!(NpyType::parse("<U3"), None);
        assert_eq!(f16_value(0x3c00), 1.0);
        assert_eq!(f16_value(0xc000), -2.0);
        assert_eq!(f16_value(0x0001), 2f64.powi(-24));
        assert_eq!(f16_value(0x7bff), 65504.0);
        assert!(f16_value(0x7e00).is_nan());
        assert_eq!(NpyType::parse(""), None);
        assert_eq!(NpyType::parse("é4"), None);
    }

    #[test]
    fn a_shape_is_checked_against_the_file_before_anything_is_allocated() {
        let path = std::env::temp_dir().join(format!("dlc-npy-{}.npy", std::process::id()));
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000, 3), }";
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend((header.len() as u16).to_le_bytes());
        b.extend(header.as_bytes());
        b.extend([0u8; 48]);
        std::fs::write(&path, &b).expect("write");
        let e = read(&reference(&path, None), |v| v).expect_err("too short");
        assert!(
            e.contains("needs 12000000000000 bytes of float32, but it holds 48"),
            "{e}"
        );
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn fortran_order_is_reordered_to_c_order() {
        // A 2×3×2 array whose element (i, j, k) is 100 i + 10 j + k.
        let dims = [2usize, 3, 2];
        let mut f = Vec::new();
        for k in 0..2u8 {
            for j in 0..3u8 {
                for i in 0..2u8 {
                    f.push(100 * i + 10 * j + k);
                }
            }
        }
        let c = fortran_to_c(&f, &dims, 1);
        let want: Vec<u8> = (0..2u8)
            .flat_map(|i| (0..3u8).flat_map(move |j| (0..2u8).map(move |k| 100 * i + 10 * j + k)))
            .collect();
        assert_eq!(c, want);
        assert!(fortran_to_c(&[], &[usize::MAX, usize::MAX, 0], 4).is_empty());
    }
}
