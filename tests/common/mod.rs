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
    // A comment after an element of a call, list or index (or after its
    // opening bracket), or after a binary operator, stays on the line of
    // the token before it. Comments that end code in the output are those
    // that did in the source, in order, less some that moved to lines of
    // their own (which they may when not kept): the output's must be such
    // a subsequence of the source's that holds every kept one.
    let trailing = |s: &str| -> Vec<(String, String, bool)> {
        fmt::comments(s)
            .into_iter()
            .zip(comment_places(s))
            .filter_map(|(text, (token, keep))| Some((text, token?, keep)))
            .collect()
    };
    let before = trailing(src);
    let after: Vec<(String, String)> = trailing(&once)
        .into_iter()
        .map(|(text, token, _)| (text, token))
        .collect();
    if !kept_in_order(&before, &after) {
        return Err(format!(
            "a comment after an element or operator moved: {before:?} -> {after:?}:\n{once}"
        ));
    }
    Ok(once)
}

/// Whether `after` is a subsequence of `before` (the same text; for an
/// entry marked kept the same token too) that holds every kept entry.
fn kept_in_order(before: &[(String, String, bool)], after: &[(String, String)]) -> bool {
    // can[i][j]: before[i..] can give after[j..].
    let (n, m) = (before.len(), after.len());
    let mut can = vec![vec![false; m + 1]; n + 1];
    can[n][m] = true;
    for i in (0..n).rev() {
        for j in (0..=m).rev() {
            let (text, token, keep) = &before[i];
            let skip = !keep && can[i + 1][j];
            let same = j < m && after[j].0 == *text && (!keep || after[j].1 == *token);
            let take = same && can[i + 1][j + 1];
            can[i][j] = skip || take;
        }
    }
    can[0][0]
}

/// Where each comment of `src` stands: `None` on a line of its own, else
/// the last token before it on its line (a trailing `,` or `;` dropped);
/// and whether `dlc fmt` keeps it there — after an element of a call, a
/// list or an index (`(`, `[` or `,` before it, or `)`, `]` or `,` next),
/// after their opening bracket, or after a binary operator.
pub fn comment_places(src: &str) -> Vec<(Option<String>, bool)> {
    #[derive(PartialEq)]
    enum Bracket {
        /// A call's, list's or index's: elements.
        Elements,
        /// Grouping parentheses or a type's dimensions.
        Other,
    }
    let operand_end = |t: &str| {
        t.trim_end()
            .ends_with(|c: char| c.is_alphanumeric() || "_)]\".".contains(c))
    };
    let mut stack = Vec::new();
    // The kind of the bracket closed last: a comment after a grouping
    // `)` may follow the element inside it (`f((a),  # c` → `a,  # c`).
    let mut closed = None;
    let mut places = Vec::new();
    let mut in_str = false;
    let mut line_start = 0;
    let mut skip_to = 0;
    for (i, ch) in src.char_indices() {
        if i < skip_to {
            continue;
        }
        match ch {
            '\n' => {
                line_start = i + 1;
                in_str = false;
            }
            '"' => in_str = !in_str,
            _ if in_str => {}
            // A call's `(` is on the line of what it calls.
            '(' => stack.push(if operand_end(&src[line_start..i]) {
                Bracket::Elements
            } else {
                Bracket::Other
            }),
            '[' => {
                // A type's dimensions: `[` after a name after `:` or `->`.
                let code = src[line_start..i].trim_end();
                let name = code.trim_end_matches(|c: char| c.is_alphanumeric() || c == '_');
                let dtype = name.len() < code.len() && name.trim_end().ends_with([':', '>']);
                stack.push(if dtype {
                    Bracket::Other
                } else {
                    Bracket::Elements
                });
            }
            ')' | ']' => closed = stack.pop(),
            '#' => {
                let end = src[i..].find('\n').map_or(src.len(), |e| i + e);
                skip_to = end;
                let raw = src[line_start..i].trim_end();
                if raw.is_empty() {
                    places.push((None, false));
                    continue;
                }
                let code = raw.trim_end_matches([',', ';', ' ', '\t']);
                let token = last_token(code);
                // The next code after the comment (past comment lines).
                let next = src[end..]
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty() && !l.starts_with('#'))
                    .and_then(|l| l.chars().next());
                let grouped = code.ends_with(')') && closed == Some(Bracket::Other);
                // (A `,` alone on its line has no token before it to follow.)
                let element = !grouped
                    && !code.is_empty()
                    && stack.last() == Some(&Bracket::Elements)
                    && (raw.ends_with([',', '(', '[']) || next.is_some_and(|c| ")],".contains(c)));
                let operator = [
                    "**", "*", "/", "@", "+", "-", "==", "!=", "<", "<=", ">", ">=",
                ]
                .contains(&token.as_str())
                    || token == "and"
                    || token == "or";
                let binary = operator && operand_end(&code[..code.len() - token.len()]);
                places.push((Some(token), element || binary));
            }
            _ => {}
        }
    }
    places
}

/// The last token of `code`: a run of name or number characters, a run of
/// operator characters, or one other character.
fn last_token(code: &str) -> String {
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == '.';
    let op = |c: char| "*+-/@<>=!".contains(c);
    let Some(last) = code.chars().last() else {
        return String::new();
    };
    let class: &dyn Fn(char) -> bool = if word(last) {
        &word
    } else if op(last) {
        &op
    } else {
        return last.to_string();
    };
    let n = code.chars().rev().take_while(|c| class(*c)).count();
    code.chars().skip(code.chars().count() - n).collect()
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
