//! Writing a trained model for other tools: `dlc export --format npz`, the
//! parameters as NumPy arrays under their names (`np.load` reads them; a
//! PyTorch `load_state_dict` takes them after the transposes README shows),
//! and `--format onnx`, the eval function as an ONNX model ([`onnx`]).
//!
//! An `.npz` file is a zip archive of `.npy` files; both formats are small
//! enough to write here: each array is stored (not compressed), with a CRC-32
//! from `flate2`. The npy header is version 1.0, padded so that the data
//! starts at a multiple of 64 bytes, as NumPy writes it.

pub mod onnx;

use crate::ir::DType;

/// One array to write: its name (the archive member is `name.npy`), shape,
/// dtype and values in row-major order.
pub struct Array<'a> {
    pub name: &'a str,
    pub shape: &'a [usize],
    pub dtype: DType,
    pub values: &'a [f64],
}

/// The bytes of an `.npy` file holding `a`.
pub fn npy(a: &Array) -> Result<Vec<u8>, String> {
    let (descr, width) = match a.dtype {
        DType::F32 => ("<f4", 4),
        DType::F64 => ("<f8", 8),
        DType::I32 | DType::Bool => ("<i4", 4),
    };
    let n: usize = a.shape.iter().product();
    if n != a.values.len() {
        return Err(format!(
            "compiler bug: {} holds {} values for shape {:?}",
            a.name,
            a.values.len(),
            a.shape
        ));
    }
    let dims: Vec<String> = a.shape.iter().map(|d| d.to_string()).collect();
    let shape = match dims.as_slice() {
        [one] => format!("({one},)"),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic (6), version (2), header length (2), then the header, padded
    // with spaces and ended by a newline to a multiple of 64 bytes.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let len = u16::try_from(header.len()).map_err(|_| {
        format!(
            "{}: a shape of {} axes is too long for an npy header",
            a.name,
            a.shape.len()
        )
    })?;
    let mut out = Vec::with_capacity(10 + header.len() + n * width);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in a.values {
        match a.dtype {
            DType::F32 => out.extend_from_slice(&(*v as f32).to_le_bytes()),
            DType::F64 => out.extend_from_slice(&v.to_le_bytes()),
            DType::I32 | DType::Bool => out.extend_from_slice(&(*v as i32).to_le_bytes()),
        }
    }
    Ok(out)
}

/// The bytes of an `.npz` archive holding `arrays` (members `name.npy`, in
/// order). An archive past 4 GiB or 65,535 members would need zip64, which
/// is not written: that is an error.
pub fn npz(arrays: &[Array]) -> Result<Vec<u8>, String> {
    let too_big =
        || "the parameters exceed 4 GiB, more than an npz without zip64 holds".to_string();
    let mut out: Vec<u8> = Vec::new();
    let mut central: Vec<u8> = Vec::new();
    let u16_of = |n: usize| u16::try_from(n).map_err(|_| too_big());
    let u32_of = |n: usize| u32::try_from(n).map_err(|_| too_big());
    for a in arrays {
        let data = npy(a)?;
        let name = format!("{}.npy", a.name);
        let mut crc = flate2::Crc::new();
        crc.update(&data);
        let offset = u32_of(out.len())?;
        let (size, name_len) = (u32_of(data.len())?, u16_of(name.len())?);
        // Version 2.0 needed, no flags, stored, 1980-01-01 00:00.
        let common = |v: &mut Vec<u8>| {
            v.extend_from_slice(&20u16.to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes());
            v.extend_from_slice(&0x21u16.to_le_bytes());
            v.extend_from_slice(&crc.sum().to_le_bytes());
            v.extend_from_slice(&size.to_le_bytes());
            v.extend_from_slice(&size.to_le_bytes());
            v.extend_from_slice(&name_len.to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes());
        };
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        common(&mut out);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&data);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes());
        common(&mut central);
        // Comment length, disk, internal and external attributes, offset.
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&0u32.to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let (entries, cd_offset, cd_size) = (
        u16_of(arrays.len())?,
        u32_of(out.len())?,
        u32_of(central.len())?,
    );
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&entries.to_le_bytes());
    out.extend_from_slice(&entries.to_le_bytes());
    out.extend_from_slice(&cd_size.to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    u32_of(out.len())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header NumPy expects, the data right after it at a multiple of
    /// 64 bytes, little-endian values.
    #[test]
    fn npy_header_and_data() {
        let a = Array {
            name: "W",
            shape: &[2, 3],
            dtype: DType::F32,
            values: &[1.0, 2.0, 3.0, 4.0, 5.0, -6.5],
        };
        let b = npy(&a).expect("encodes");
        assert_eq!(&b[..8], b"\x93NUMPY\x01\x00");
        let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + hl) % 64, 0);
        let header = std::str::from_utf8(&b[10..10 + hl]).expect("ascii");
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
        assert!(header.ends_with('\n'));
        let data = &b[10 + hl..];
        assert_eq!(data.len(), 24);
        assert_eq!(
            f32::from_le_bytes(data[20..24].try_into().expect("4")),
            -6.5
        );
        let v = npy(&Array {
            name: "b",
            shape: &[3],
            dtype: DType::F64,
            values: &[1.0, 2.0, 3.0],
        })
        .expect("encodes");
        assert!(String::from_utf8_lossy(&v).contains("'shape': (3,)"));
    }
}
