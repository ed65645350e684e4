//! Helpers shared by the test files (each file uses some of them).
#![allow(dead_code)]

use dlc::interp::concrete;
use dlc::ir::{Graph, Op};

/// The longest reduction in `g` at batch size `batch`: the K of DESIGN.md's
/// bound |a − b| ≤ 1e-5·(1 + K)·max|b|.
pub fn longest_reduction(g: &Graph, batch: usize) -> usize {
    g.nodes
        .iter()
        .map(|n| match &n.op {
            Op::ReduceSum { axes } | Op::ReduceMax { axes } => {
                let s = concrete(&g.ty(n.inputs[0]).shape, batch);
                s.iter()
                    .enumerate()
                    .filter(|(i, _)| axes & (1 << i) != 0)
                    .map(|(_, d)| *d)
                    .product()
            }
            Op::MatMul => concrete(&g.ty(n.inputs[0]).shape, batch)[1],
            _ => 1,
        })
        .max()
        .unwrap_or(1)
}

/// `src` parsed and checked, with no diagnostic (else the test fails and
/// prints them as `file`).
pub fn check_clean(src: &str, file: &str) -> dlc::check::Checked {
    let (program, mut diags) = dlc::syntax::parse(src);
    let (checked, cd) = dlc::check::check(&program, &Default::default());
    diags.extend(cd);
    assert!(
        diags.is_empty(),
        "{}",
        dlc::diag::render(&diags, file, src, false)
    );
    checked
}

/// `dlc fmt`'s promises on `src`, a program that parses: it formats, a
/// second pass changes nothing, the result parses to the same tree (as
/// the fully parenthesized `ast` stage prints it, spans aside), and every
/// comment is still there, in order. `Err` says which failed.
pub fn fmt_holds(src: &str) -> Result<String, String> {
    use dlc::syntax::{fmt, parse, print};
    let once = fmt::format(src).map_err(|d| format!("did not format: {d:?}"))?;
    let twice = fmt::format(&once).map_err(|d| format!("its output did not parse: {d:?}"))?;
    if twice != once {
        return Err(format!("not idempotent:\n{once}\n---\n{twice}"));
    }
    let (a, _) = parse(src);
    let (b, _) = parse(&once);
    if print::program(&a) != print::program(&b) {
        return Err(format!(
            "the tree changed:\n{}\n---\n{}",
            print::program(&a),
            print::program(&b)
        ));
    }
    if fmt::comments(src) != fmt::comments(&once) {
        return Err(format!(
            "comments changed: {:?} -> {:?}",
            fmt::comments(src),
            fmt::comments(&once)
        ));
    }
    Ok(once)
}

/// A float32 `.npy` of `rows` × `width` values, element i being `value(i)`.
pub fn write_npy_f32(
    path: &std::path::Path,
    (rows, width): (usize, usize),
    mut value: impl FnMut(usize) -> f32,
) {
    let header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {width}), }}");
    let mut h = header.into_bytes();
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(b' ');
    }
    h.push(b'\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((h.len() as u16).to_le_bytes());
    bytes.extend(h);
    for i in 0..rows * width {
        bytes.extend(value(i).to_le_bytes());
    }
    std::fs::write(path, bytes).expect("npy");
}

/// A zip archive of `members` (name, bytes), deflated or stored.
pub fn zip(members: &[(&str, Vec<u8>)], deflate: bool) -> Vec<u8> {
    let (mut out, mut central) = (Vec::new(), Vec::new());
    for (name, data) in members {
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let body = if deflate {
            let mut z =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut z, data).expect("deflate");
            z.finish().expect("deflate")
        } else {
            data.clone()
        };
        let offset = out.len() as u32;
        let common = |v: &mut Vec<u8>| {
            v.extend(20u16.to_le_bytes());
            v.extend(0u16.to_le_bytes());
            v.extend(if deflate { 8u16 } else { 0u16 }.to_le_bytes());
            v.extend([0u8; 4]);
            v.extend(crc.sum().to_le_bytes());
            v.extend((body.len() as u32).to_le_bytes());
            v.extend((data.len() as u32).to_le_bytes());
            v.extend((name.len() as u16).to_le_bytes());
            v.extend(0u16.to_le_bytes());
        };
        out.extend(0x0403_4b50u32.to_le_bytes());
        common(&mut out);
        out.extend(name.as_bytes());
        out.extend(&body);
        central.extend(0x0201_4b50u32.to_le_bytes());
        central.extend(20u16.to_le_bytes());
        common(&mut central);
        central.extend([0u8; 10]);
        central.extend(offset.to_le_bytes());
        central.extend(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend(&central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    out.extend((members.len() as u16).to_le_bytes());
    out.extend((members.len() as u16).to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(cd_offset.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

/// An `.npy` file of format `version` (1, 2 or 3) with `header` as its
/// header text, as written, and `payload` after it.
pub fn raw_npy(version: u8, header: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = b"\x93NUMPY".to_vec();
    out.extend([version, 0]);
    if version == 1 {
        out.extend((header.len() as u16).to_le_bytes());
    } else {
        out.extend((header.len() as u32).to_le_bytes());
    }
    out.extend(header.as_bytes());
    out.extend(payload);
    out
}
