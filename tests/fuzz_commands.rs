//! Every command, under a 4 GiB address-space limit, on inputs built to
//! break it: mutated programs (tokens and numbers changed, sizes blown up,
//! numbers beyond f32, comments inside calls and lists; checked, trained
//! with `--lr` beyond f32, and formatted by `dlc fmt`, then `--check`ed),
//! hyper-parameters at the edges of their ranges,
//! mutated CSV files (non-finite and huge numbers, ragged rows, quotes,
//! missing cells, wide and high-cardinality columns), random IDX headers
//! (gzipped or not, payloads short, long or absent), damaged checkpoints
//! (bytes flipped, truncated, metadata rewritten), REPL lines of large
//! constructors, language-server sessions with broken framing (huge,
//! negative, overflowing or missing Content-Length values, endless header
//! lines, truncated bodies, invalid JSON, unknown methods, random
//! positions, documents with multi-byte characters) and REPL scripts with
//! multi-byte characters in every command, lines that are not UTF-8 and
//! lines over the 16 MiB cap, and NumPy files: `.npy` headers in every form `np.load`
//! reads and forms it refuses (quotes, spacing, key order, trailing
//! commas, Fortran order, byte orders, versions, huge shapes and header
//! lengths), `.npz` archives with duplicate or odd member names, labels
//! at the i32/i64 extremes, fractions and NaN. Each run must end with exit 0, 1 or 2 within its time
//! limit: never 101 (a panic), 134 (an abort), 3 (an internal error), a
//! signal, or a hang.
//!
//! `DLC_FUZZ_CASES=N` sets the number of cases (default 240, about ten
//! seconds), `DLC_FUZZ_SECONDS=S` runs for S seconds instead,
//! `DLC_FUZZ_SEED` changes the seed and `DLC_FUZZ_BIN` the binary. A failing case is left in its scratch
//! folder and named in the message, with the command that reproduces it.

use std::io::Write;

mod common;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// xorshift64*: a small generator whose sequence depends only on the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const LIMIT_KIB: u64 = 4 << 20;
const TIMEOUT_S: u64 = 60;

/// Runs dlc with `args` in `dir` under the address-space limit and a time
/// limit, with `input` on stdin; the exit code, or None for a signal.
fn run(dir: &Path, args: &[String], input: &[u8]) -> (Option<i32>, String) {
    let mut script = format!("ulimit -v {LIMIT_KIB}; exec timeout -s KILL {TIMEOUT_S} \"$0\"");
    for i in 1..=args.len() {
        script.push_str(&format!(" \"${i}\""));
    }
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .arg(bin())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sh runs");
    // Written from a thread: a command may write much to stderr before it
    // has read all of its input, or stop reading it (dlc lsp at a framing
    // it cannot follow).
    let writer = child.stdin.take().map(|mut stdin| {
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        })
    });
    let out = child.wait_with_output().expect("the run ends");
    if let Some(w) = writer {
        let _ = w.join();
    }
    let err = String::from_utf8_lossy(&out.stderr);
    (out.status.code(), err.chars().take(600).collect())
}

/// The binary under test: this build's, or `DLC_FUZZ_BIN` (a copy kept
/// apart for a long run while the build changes).
fn bin() -> String {
    std::env::var("DLC_FUZZ_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_dlc").to_string())
}

// ---- programs ----

const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1",
    "2",
    "3",
    "1e12",
    "1e999",
    "-1e999",
    "2147483648",
    "4294967296",
    "100000",
    "0.5",
    "-0.5",
    "1e-45",
    "99999999999",
    // Beyond f32, and below its smallest value.
    "1e39",
    "3.5e38",
    "1e-60",
];

/// A shipped program (of those whose data is small) with a few of its
/// numbers and tokens changed.
fn program(rng: &mut Rng, seeds: &[String]) -> String {
    let src = rng.pick(seeds).clone();
    let mut words: Vec<String> = src
        .split_inclusive(char::is_whitespace)
        .map(String::from)
        .collect();
    for _ in 0..1 + rng.below(3) {
        let i = rng.below(words.len());
        let w = words[i].trim_end().to_string();
        let tail = &words[i][w.len()..].to_string();
        let new = if w.chars().any(|c| c.is_ascii_digit()) || rng.chance(40) {
            // a number in place of a number (or of anything)
            let digits: String = w.chars().filter(|c| c.is_ascii_digit()).collect();
            let n = rng.pick(NUMBERS).to_string();
            if digits.is_empty() || rng.chance(50) {
                n
            } else {
                w.replacen(&digits, &n, 1)
            }
        } else {
            match rng.below(4) {
                0 => String::new(),
                1 => w.repeat(2),
                2 => rng
                    .pick(&["(", "]", "+", "@", "param", "fn", "relu(", "B", "-1", ":"])
                    .to_string(),
                _ => words[rng.below(words.len())].trim_end().to_string(),
            }
        };
        words[i] = format!("{new}{tail}");
    }
    // Comments inside calls and lists, where `dlc fmt` keeps them on their
    // lines: after an argument's comma or an opening bracket.
    for _ in 0..rng.below(3) {
        let i = rng.below(words.len());
        let w = words[i].trim_end().to_string();
        if w.ends_with([',', '(', '[']) {
            words[i] = format!("{w}  # note\n");
        }
    }
    words.concat()
}

// ---- CSV ----

const CELLS: &[&str] = &[
    "nan", "inf", "-inf", "1e999", "NA", "", "\"a,b\"", "\"", "x", "0", "-0", "1.0", "3", "1e308",
    "  7", "é", "\u{feff}", "0x10", "true",
];

fn csv(rng: &mut Rng) -> String {
    let cols = 2 + rng.below(5);
    let rows = rng.below(40);
    let mut s = String::new();
    let mut names: Vec<String> = (0..cols).map(|i| format!("c{i}")).collect();
    names[cols - 1] = "y".into();
    if rng.chance(10) {
        names[0] = "y".into(); // duplicate header
    }
    s.push_str(&names.join(","));
    s.push('\n');
    let id_column = rng.chance(15);
    for r in 0..rows {
        let mut n = cols;
        if rng.chance(5) {
            n = rng.below(cols + 2); // ragged
        }
        let cells: Vec<String> = (0..n)
            .map(|c| {
                if id_column && c == 0 {
                    format!("id{r}")
                } else if rng.chance(12) {
                    rng.pick(CELLS).to_string()
                } else if c == cols - 1 {
                    (rng.below(3)).to_string()
                } else {
                    format!("{}", (rng.next() % 1000) as f64 / 10.0)
                }
            })
            .collect();
        s.push_str(&cells.join(","));
        s.push('\n');
    }
    s
}

fn csv_program(rng: &mut Rng) -> String {
    let opts = rng.pick(&[
        "",
        ", classes = 3",
        ", classes = 2",
        ", missing = \"drop\"",
        ", test = 0.5",
        ", standardize = true",
        ", test = 0.99",
        ", drop = [\"c0\"]",
        ", test = \"t.csv\"",
        ", id = \"c0\"",
        ", test = \"t.csv\", classes = 3",
    ]);
    let (out, loss, metrics) = if opts.contains("classes") {
        let k = if opts.contains('3') { 3 } else { 2 };
        (k, "cross_entropy(output, label)", "[loss, acc]")
    } else {
        (1, "squared_loss(output, label)", "[loss, rmse]")
    };
    let extra = rng.pick(&[
        "",
        "valid = 0.5",
        "kfold = 3",
        "kfold = contiguous(3)",
        "batch = 1",
        "sampler = weighted",
        "epochs = 2",
        "lr_schedule = warmup(3, then = cosine(min_lr = 0.01))",
        "lr_schedule = step(every = 1, gamma = 0.5)",
        "clip_grad_norm = 0.5",
        "valid = 0.5\n    early_stop = patience(1, valid_loss)",
        // Hyper-parameters at the edges of their ranges and of f32's.
        "lr_schedule = cosine(min_lr = 10)",
        "lr_schedule = warmup(2, then = cosine(min_lr = 0.1))",
        "lr_schedule = step(every = 1, gamma = 1e39)",
        "clip_grad_norm = 1e39",
        "weight_decay = penalty(1e39)",
    ]);
    let optimizer = rng.pick(&[
        "sgd(lr = 0.1)",
        "sgd(lr = 0.1, momentum = 0.9, nesterov = true)",
        "adam(lr = 0.01)",
        "adamw(lr = 0.01, weight_decay = 0.1)",
        "rmsprop(lr = 0.01)",
        "sgd(lr = 1e39)",
        "adam(lr = 0.01, eps = 1e-60)",
        "adam(lr = 3e38)",
    ]);
    format!(
        "data d = csv(\"d.csv\", label = \"y\"{opts})\n\
         model m(x: f32[B, D]) -> f32[B, {out}] {{\n    param w: f32[D, {out}] = normal(0.1)\n    param b: f32[{out}] = zeros\n    x @ w + b\n}}\n\
         train m on d {{\n    loss = {loss}\n    optimizer = {optimizer}\n    epochs = 2\n    metrics = {metrics}\n    {extra}\n}}\n"
    )
}

// ---- IDX ----

fn idx_file(rng: &mut Rng, images: bool) -> Vec<u8> {
    let code = *rng.pick(&[0x08u8, 0x08, 0x0D, 0x0C, 0x09, 0x0B, 0x0E, 0x07, 0xFF]);
    let nd = if images {
        *rng.pick(&[3u8, 3, 2, 1, 0, 5])
    } else {
        *rng.pick(&[1u8, 1, 2, 0])
    };
    let mut b = vec![if rng.chance(3) { 1 } else { 0 }, 0, code, nd];
    let mut n: u64 = 1;
    for d in 0..nd {
        let v: u32 = if rng.chance(5) {
            *rng.pick(&[0, u32::MAX, 1 << 20, 65_536])
        } else if d == 0 {
            4 + rng.below(8) as u32
        } else {
            1 + rng.below(5) as u32
        };
        n = n.saturating_mul(u64::from(v));
        b.extend_from_slice(&v.to_be_bytes());
    }
    let size = match code {
        0x08 | 0x09 => 1,
        0x0B => 2,
        0x0C | 0x0D => 4,
        _ => 8,
    };
    let mut payload = (n.min(4096) * size) as usize;
    match rng.below(10) {
        0 => payload = payload.saturating_sub(1 + rng.below(8)),
        1 => payload += 1 + rng.below(100),
        _ => {}
    }
    for _ in 0..payload {
        b.push((rng.next() & 0xFF) as u8);
    }
    if !images && code == 0x08 {
        // labels mostly in range
        let start = 4 + 4 * nd as usize;
        for x in b.iter_mut().skip(start) {
            if !rng.chance(3) {
                *x %= 2;
            }
        }
    }
    b
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).expect("gzip");
    gz.finish().expect("gzip")
}

// ---- checkpoints ----

fn damage(rng: &mut Rng, good: &[u8]) -> Vec<u8> {
    let mut b = good.to_vec();
    match rng.below(5) {
        0 => b.truncate(rng.below(b.len())),
        1 => {
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
        }
        2 => {
            // the JSON header's numbers
            let text = String::from_utf8_lossy(&b).into_owned();
            let n = rng.pick(NUMBERS);
            b = text
                .replacen(char::is_numeric, n, 1 + rng.below(3))
                .into_bytes();
        }
        3 => {
            // the header length
            let len = rng.next() % (1 << 40);
            b[..8].copy_from_slice(&len.to_le_bytes());
        }
        _ => {
            let text = String::from_utf8_lossy(&b).into_owned();
            let key = rng.pick(&[
                "\"epoch\":\"",
                "\"step\":\"",
                "\"seed\":\"",
                "\"run\":\"",
                "\"format\":\"",
            ]);
            let val = rng.pick(&[
                "18446744073709551615",
                "-1",
                "abc",
                "",
                "9999999999",
                "sgd",
                "x\\u0000",
            ]);
            b = text.replacen(key, &format!("{key}{val}"), 1).into_bytes();
        }
    }
    b
}

// ---- REPL ----

fn repl_line(rng: &mut Rng) -> String {
    let n = rng.pick(&["0", "1", "3", "100000", "2000000000", "-5", "1e12", "65536"]);
    let m = rng.pick(&["1", "2", "100000", "70000"]);
    match rng.below(9) {
        0 => format!("zeros({n}, {m})"),
        1 => format!("arange({n})"),
        2 => format!("eye({n})"),
        3 => format!("randn({n}, {m}) @ randn({m}, {n})"),
        4 => format!("one_hot([{n}, 0], {m})"),
        5 => format!("multinomial({n}, [0.5, {m}])"),
        6 => format!("cumsum(ones({n}))"),
        7 => format!("concat([ones({n}, 2), ones({m}, 2)], axis = 0)"),
        _ => format!("sum(full([{n}, {m}], 1.0))"),
    }
}

/// Characters of 2, 3 and 4 bytes, and whitespace of 2 and 3.
const WIDE: &[&str] = &["Å", "é", "€", "中", "😀", "\u{a0}", "\u{3000}", "\u{301}"];

/// `text` with a wide character at a random character boundary.
fn widen(rng: &mut Rng, text: &str) -> String {
    let bounds: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain([text.len()])
        .collect();
    let at = *rng.pick(&bounds);
    format!("{}{}{}", &text[..at], rng.pick(WIDE), &text[at..])
}

// ---- LSP ----

/// One framed message.
fn frame(out: &mut Vec<u8>, body: &[u8]) {
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
}

/// A position as a client might send it: in range, past the end, negative,
/// past u32 or not a number.
fn position(rng: &mut Rng) -> serde_json::Value {
    let any = |rng: &mut Rng| -> serde_json::Value {
        match rng.below(8) {
            0 => serde_json::json!(-1),
            1 => serde_json::json!(u64::MAX),
            2 => serde_json::json!(4294967296u64),
            3 => serde_json::json!("3"),
            4 => serde_json::json!(1.5),
            _ => serde_json::json!(rng.below(30)),
        }
    };
    serde_json::json!({ "line": any(rng), "character": any(rng) })
}

/// A session with the language server: initialize, then documents (a
/// mutated program with multi-byte characters), requests of every kind
/// (unknown methods too) at random positions, messages that are not JSON
/// or not JSON-RPC, and framing that breaks: Content-Length values huge,
/// negative, overflowing or missing, a header line that never ends, a
/// body cut short or over the 64 MiB limit; then shutdown and exit, exit
/// alone, or the end of the input.
fn lsp_session(rng: &mut Rng, program: &str) -> Vec<u8> {
    use serde_json::json;
    let uri = "file:///fuzz/p.dl";
    let mut out = Vec::new();
    if !rng.chance(5) {
        frame(
            &mut out,
            json!({ "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": { "capabilities": {} } })
                .to_string()
                .as_bytes(),
        );
    }
    let methods = [
        "textDocument/hover",
        "textDocument/definition",
        "textDocument/references",
        "textDocument/completion",
        "textDocument/documentSymbol",
        "textDocument/formatting",
        "textDocument/inlayHint",
        "dlc/unknown",
        "$/whatever",
        "initialize",
        "shutdown",
    ];
    let mut doc = program.to_string();
    // Half the sessions keep to framing the server can follow, so that
    // they reach their end (shutdown and exit, exit alone, or none).
    let breaks = rng.chance(50);
    for id in 1..2 + rng.below(12) {
        let kind = match rng.below(16) {
            10..=13 if !breaks => 3,
            k => k,
        };
        match kind {
            0..=2 => {
                for _ in 0..1 + rng.below(4) {
                    doc = widen(rng, &doc);
                }
                let method = if rng.chance(50) {
                    "textDocument/didOpen"
                } else {
                    "textDocument/didChange"
                };
                let body = json!({ "jsonrpc": "2.0", "method": method, "params": {
                    "textDocument": { "uri": uri, "languageId": "dl", "version": id, "text": doc },
                    "contentChanges": [{ "text": doc }],
                } });
                frame(&mut out, body.to_string().as_bytes());
            }
            3..=8 => {
                let params = match rng.below(6) {
                    0 => json!([1, 2]),
                    1 => json!(null),
                    _ => {
                        json!({ "textDocument": { "uri": uri }, "position": position(rng), "context": { "includeDeclaration": rng.chance(50) } })
                    }
                };
                let body = json!({ "jsonrpc": "2.0", "id": id, "method": rng.pick(&methods), "params": params });
                frame(&mut out, body.to_string().as_bytes());
            }
            9 => {
                let bad: &[u8] = rng.pick::<&[u8]>(&[
                    b"{not json",
                    b"[1]",
                    b"5",
                    b"{\"id\": 1.5, \"method\": \"textDocument/hover\"}",
                    b"{\"id\": 2, \"method\": 5}",
                    b"{\"jsonrpc\": \"2.0\", \"id\": 3}",
                    b"\xff\xfe",
                    b"",
                ]);
                frame(&mut out, bad);
            }
            10 => {
                // A Content-Length that is not a size the server can read.
                let n = rng.pick(&[
                    "1000000000000",
                    "9223372036854775808",
                    "18446744073709551616",
                    "99999999999999999999999",
                    "-1",
                    "",
                    "abc",
                    "1e3",
                    " 12 ",
                    "0",
                ]);
                out.extend_from_slice(format!("Content-Length: {n}\r\n\r\n{{}}").as_bytes());
            }
            11 => out.extend_from_slice(rng.pick::<&[u8]>(&[
                b"\r\n{}",
                b"Content-Type: x\r\n\r\n{}",
                b"Content-Length 5\r\n\r\nhello",
                b"\n\n\n",
            ])),
            12 => {
                // A header line that never ends.
                out.resize(out.len() + (8 << 10) + rng.below(1 << 20), b'a');
                break;
            }
            13 => {
                // A body cut short by the end of the input.
                out.extend_from_slice(b"Content-Length: 100\r\n\r\n{\"jsonrpc\"");
                break;
            }
            14 if rng.chance(10) => {
                // Over the 64 MiB limit: read past, then the session goes on.
                let n = (64 << 20) + 1 + rng.below(1000);
                out.extend_from_slice(format!("Content-Length: {n}\r\n\r\n").as_bytes());
                out.resize(out.len() + n, b' ');
            }
            _ => {
                let mut header = format!("Content-Length: {}\r\n", 2);
                for _ in 0..rng.below(40) {
                    header.push_str("X-Extra: 1\r\n");
                }
                header.push_str("\r\n{}");
                out.extend_from_slice(header.as_bytes());
            }
        }
    }
    match rng.below(3) {
        0 => {
            frame(
                &mut out,
                br#"{"jsonrpc":"2.0","id":999,"method":"shutdown"}"#,
            );
            frame(&mut out, br#"{"jsonrpc":"2.0","method":"exit"}"#);
        }
        1 => frame(&mut out, br#"{"jsonrpc":"2.0","method":"exit"}"#),
        _ => {}
    }
    out
}

// ---- REPL scripts ----

/// A REPL script of commands with multi-byte characters anywhere (and
/// trailing whitespace), lines that are not UTF-8, lines over the 16 MiB
/// cap, and inputs left open across such lines.
fn repl_script(rng: &mut Rng) -> Vec<u8> {
    let commands = [
        ":type x + 1",
        ":ir x * 2",
        ":grad sum(x * x) wrt x",
        ":grad x wrt x",
        ":id x",
        ":vars",
        ":load nowhere.st",
        ":save t.st x",
        ":nonsense",
        "x + 1",
        "let y = [1.0,",
        ":time x",
    ];
    let mut out = b"let x = [1.0, 2.0]\n".to_vec();
    for _ in 0..2 + rng.below(8) {
        match rng.below(20) {
            0..=1 => {
                let n = 1 + rng.below(6);
                out.extend((0..n).map(|_| 0x80 + rng.below(0x80) as u8));
                out.push(b'\n');
            }
            2 if rng.chance(15) => {
                // Over the cap: read past without being kept.
                let n = (16 << 20) + 1 + rng.below(1 << 20);
                out.resize(out.len() + n, *rng.pick(&[b'x', b'(', b' ', 0xc3]));
                out.push(b'\n');
            }
            _ => {
                let mut line = rng.pick(&commands).to_string();
                // :time runs for a tenth of a second when it compiles.
                let times = if line.starts_with(":time") {
                    1
                } else {
                    1 + rng.below(3)
                };
                for _ in 0..times {
                    line = widen(rng, &line);
                }
                line.push_str(rng.pick::<&str>(&["", " ", "  ", "\t", "\u{3000}"]));
                out.extend_from_slice(line.as_bytes());
                out.push(b'\n');
            }
        }
    }
    out
}

/// The kinds of case: programs, CSVs, IDX folders, checkpoints, REPL
/// sessions, LSP sessions, REPL scripts, NumPy files.
const KINDS: usize = 8;

/// An `.npy` header in one of the forms `np.load` reads (keys in any
/// order, either quote, any spacing, trailing commas, Fortran or C order,
/// any byte order) or one it refuses (another key, a missing one, a bad
/// dtype or shape, over 10,000 characters), with a payload for
/// `rows` × `width` values (`width` 0: a 1-d array), often cut or long.
fn npy_file(rng: &mut Rng, rows: usize, width: usize, labels: bool) -> Vec<u8> {
    // Mostly forms np.load reads, so that most arrays get past the header.
    let descr = match (labels, rng.chance(8)) {
        (_, true) => *rng.pick(&["<U3", "<c8", "O", "<f16", "[('a', '<f4')]"]),
        (true, false) => *rng.pick(&["<i4", "<i8", ">i8", "<f8", "<f4", "|u1", "|b1", "f8", "=i4"]),
        (false, false) => *rng.pick(&[
            "<f4", ">f4", "<f8", ">f8", "|f4", "=f4", "f4", "<f2", "float32", "<i4", "|u1", "?",
        ]),
    };
    let fortran = rng.chance(40);
    let mut dims = if width == 0 {
        vec![rows]
    } else {
        vec![rows, width]
    };
    if rng.chance(10) {
        dims = vec![
            *rng.pick(&[0, 1, usize::MAX, 1 << 40, 1 << 62]),
            *rng.pick(&[0, 2, 1 << 40]),
        ];
    }
    let shape = match rng.below(20) {
        0 => format!(
            "({})",
            dims.iter().map(|d| d.to_string() + ",").collect::<String>()
        ),
        1 => format!(
            "( {} )",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(" , ")
        ),
        2 => "()".to_string(),
        3 => format!(
            "({}, {})",
            rng.pick(&[
                "-8",
                "99999999999999999999999999",
                "8L",
                "True",
                "0x8",
                "8.0",
                "'8'"
            ]),
            width
        ),
        4 => format!(
            "[{}]",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ if dims.len() == 1 => format!("({},)", dims[0]),
        _ => format!(
            "({})",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let q = |rng: &mut Rng, k: &str| {
        let c = if rng.chance(30) { '"' } else { '\'' };
        format!("{c}{k}{c}")
    };
    let colon = *rng.pick(&[": ", ":", " : ", " :\n\t"]);
    let mut entries = vec![
        format!("{}{colon}{}", q(rng, "descr"), q(rng, descr)),
        format!(
            "{}{colon}{}",
            q(rng, "fortran_order"),
            match (rng.chance(5), fortran) {
                (true, _) => *rng.pick(&["1", "None", "'True'"]),
                (false, true) => "True",
                (false, false) => "False",
            }
        ),
        format!("{}{colon}{shape}", q(rng, "shape")),
    ];
    if rng.chance(10) {
        entries.push(format!("{}{colon}1", q(rng, "extra")));
    }
    if rng.chance(8) {
        let gone = rng.below(entries.len());
        entries.remove(gone);
    }
    for i in (1..entries.len()).rev() {
        let j = rng.below(i + 1);
        entries.swap(i, j);
    }
    let mut header = format!(
        "{{{}{}}}",
        entries.join(*rng.pick(&[", ", ",", " ,\n "])),
        rng.pick(&["", ", ", ",", " # note\n"])
    );
    header.push_str(&" ".repeat(if rng.chance(5) { 10_000 } else { rng.below(60) }));
    header.push('\n');
    let version = if rng.chance(4) {
        *rng.pick(&[4u8, 0])
    } else {
        *rng.pick(&[1u8, 1, 2, 3])
    };
    let size = match descr.trim_start_matches(['<', '>', '|', '=']) {
        "f8" | "i8" | "c8" => 8,
        "f4" | "i4" | "float32" => 4,
        "f2" => 2,
        _ => 1,
    };
    let big = descr.starts_with('>');
    let n = rows * width.max(1);
    let extremes = rng.chance(40);
    let mut payload = Vec::new();
    for i in 0..n {
        // Labels at the extremes, integral and not, and NaN.
        let v: f64 = if labels && !extremes {
            (i % 2) as f64
        } else if labels {
            *rng.pick(&[
                0.0,
                1.0,
                1.0,
                0.0,
                2147483647.0,
                -2147483648.0,
                9.2e18,
                -1.0,
                0.5,
                1.0000001,
                f64::NAN,
                f64::INFINITY,
                9007199254740993.0,
            ])
        } else {
            i as f64 / 4.0
        };
        let mut b = match size {
            8 if descr.contains('i') => (v as i64).to_le_bytes().to_vec(),
            8 => v.to_le_bytes().to_vec(),
            4 if descr.contains('i') => (v as i32).to_le_bytes().to_vec(),
            4 => (v as f32).to_le_bytes().to_vec(),
            2 => vec![0x00, 0x3c],
            _ => vec![v as u8],
        };
        if big {
            b.reverse();
        }
        payload.extend(b);
    }
    match rng.below(10) {
        0 => payload.truncate(rng.below(payload.len() + 1)),
        1 => payload.extend(std::iter::repeat_n(7u8, rng.below(40) + 1)),
        _ => {}
    }
    let mut out = b"\x93NUMPY".to_vec();
    out.extend([version, if rng.chance(3) { 1 } else { 0 }]);
    let len = if rng.chance(5) {
        *rng.pick(&[0u32, u32::MAX, 0xFFFF, 10_001, 1 << 30])
    } else {
        header.len() as u32
    };
    if version == 1 {
        out.extend((len as u16).to_le_bytes());
    } else {
        out.extend(len.to_le_bytes());
    }
    out.extend(header.as_bytes());
    out.extend(payload);
    out
}

/// A stored zip of `x` and `y` under names that are right, duplicated
/// (NumPy reads the last) or odd.
fn npz_file(rng: &mut Rng, x: Vec<u8>, y: Vec<u8>) -> Vec<u8> {
    let names: &[&str] = rng.pick::<&[&str]>(&[
        &["x.npy", "y.npy"],
        &["x.npy", "y.npy", "x.npy"],
        &["x", "y.npy", "x.npy"],
        &["x", "y"],
        &["dir/x.npy", "y.npy"],
        &["", "y.npy"],
        &["x.npy", "y.npy", "y"],
        &["x.NPY", "\u{e9}.npy"],
    ]);
    let members: Vec<(&str, Vec<u8>)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (*n, if i % 2 == 0 { x.clone() } else { y.clone() }))
        .collect();
    common::zip(&members, rng.chance(30))
}

#[test]
fn no_input_makes_any_command_panic_abort_or_hang() {
    let cases: usize = std::env::var("DLC_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(240);
    let seconds: Option<u64> = std::env::var("DLC_FUZZ_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok());
    let seed: u64 = std::env::var("DLC_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed);
    let mut rng = Rng(seed | 1);
    let dir = std::env::temp_dir().join(format!("dlc-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    // Programs whose data is small or synthetic (a Fashion-MNIST epoch
    // under a loaded machine can pass the time limit without hanging).
    let seeds: Vec<String> = [
        "linreg.dl",
        "polyfit.dl",
        "weight_decay.dl",
        "kfold.dl",
        "imbalanced.dl",
    ]
    .iter()
    .filter_map(|f| std::fs::read_to_string(root().join("programs").join(f)).ok())
    .map(|s| s.replace("\"data/", &format!("\"{}/programs/data/", root().display())))
    .collect();
    // A good checkpoint to damage.
    std::fs::write(dir.join("lin.dl"), &seeds[0]).expect("program");
    let (code, err) = run(
        &dir,
        &[
            "train".into(),
            "lin.dl".into(),
            "--run".into(),
            "sgd".into(),
            "--save".into(),
            "good.st".into(),
        ],
        b"",
    );
    assert_eq!(code, Some(0), "{err}");
    let good = std::fs::read(dir.join("good.st")).expect("checkpoint");
    // Good NumPy files to damage: 8 samples of 2 features, labels 0 and 1.
    let xs: Vec<f64> = (0..16).map(|i| f64::from(i) / 4.0).collect();
    let ys: Vec<f64> = (0..8).map(|i| f64::from(i % 2)).collect();
    let array = |name: &str, shape: &[usize], dtype, values: &[f64]| {
        dlc::export::npy(&dlc::export::Array {
            name,
            shape,
            dtype,
            values,
        })
        .expect("npy")
    };
    let good_x = array("x", &[8, 2], dlc::ir::DType::F32, &xs);
    let good_y = array("y", &[8], dlc::ir::DType::I32, &ys);
    let good_npz = dlc::export::npz(&[
        dlc::export::Array {
            name: "x",
            shape: &[8, 2],
            dtype: dlc::ir::DType::F64,
            values: &xs,
        },
        dlc::export::Array {
            name: "y",
            shape: &[8],
            dtype: dlc::ir::DType::I32,
            values: &ys,
        },
    ])
    .expect("npz");

    let start = Instant::now();
    let mut count = [0usize; KINDS];
    let mut exits = [0usize; 3];
    let mut case = 0usize;
    loop {
        match seconds {
            Some(s) if start.elapsed() >= Duration::from_secs(s) => break,
            None if case >= cases => break,
            _ => {}
        }
        case += 1;
        let kind = case % KINDS;
        count[kind] += 1;
        let cdir = dir.join(format!("case{case}"));
        std::fs::create_dir_all(&cdir).expect("case folder");
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
        let runs: Vec<(Vec<String>, Vec<u8>)> = match kind {
            0 => {
                std::fs::write(cdir.join("p.dl"), program(&mut rng, &seeds)).expect("program");
                let cmd = rng
                    .pick(&["check", "ir", "gradcheck", "train", "data", "fmt"])
                    .to_string();
                let mut a = vec![cmd.clone(), "p.dl".to_string()];
                if cmd == "ir" {
                    let stage = *rng.pick(&["typed", "grad", "opt", "kernels"]);
                    a.extend(s(&["--stage", stage]));
                }
                // The flags that take a size, at any size.
                let size = rng
                    .pick(&[
                        "0",
                        "1",
                        "3",
                        "256",
                        "1000000000000",
                        "18446744073709551615",
                        "-2",
                    ])
                    .to_string();
                match cmd.as_str() {
                    "train" => {
                        a.extend(s(&["--epochs", "1"]));
                        let flag = *rng.pick(&["--threads", "--batch", "--seed"]);
                        a.extend([flag.to_string(), size]);
                        let lr = *rng.pick(&["0.01", "1e39", "3.5e38", "1e-60", "inf", "0.001"]);
                        if rng.chance(30) {
                            a.extend(s(&["--lr", lr]));
                        }
                    }
                    "data" if rng.chance(50) => a.extend(["--show".to_string(), size]),
                    "data" => a.push("--split-indices".to_string()),
                    "gradcheck" => a.extend(["--samples".to_string(), size]),
                    _ => {}
                }
                let mut runs = vec![(a, Vec::new())];
                if cmd == "fmt" {
                    // Formatted once, the file is in the layout.
                    runs.push((s(&["fmt", "--check", "p.dl"]), Vec::new()));
                }
                runs
            }
            1 => {
                std::fs::write(cdir.join("d.csv"), csv(&mut rng)).expect("csv");
                std::fs::write(cdir.join("t.csv"), csv(&mut rng)).expect("csv");
                std::fs::write(cdir.join("new.csv"), csv(&mut rng)).expect("csv");
                std::fs::write(cdir.join("p.dl"), csv_program(&mut rng)).expect("program");
                // Sizes and paths from the command line: a batch of any
                // size, an output that is a device, a folder, an input,
                // a link to one, or in a folder that does not exist.
                let batch = rng
                    .pick(&[
                        "0",
                        "1",
                        "3",
                        "1000000000000",
                        "18446744073709551615",
                        "99999999999999999999",
                        "-1",
                    ])
                    .to_string();
                let out = rng
                    .pick(&[
                        "o.csv",
                        "/dev/null",
                        ".",
                        "new.csv",
                        "m.st",
                        "p.dl",
                        "d.csv",
                        "link.csv",
                        "no/such/o.csv",
                        "/dev/stdout",
                    ])
                    .to_string();
                let _ = std::os::unix::fs::symlink("new.csv", cdir.join("link.csv"));
                let save = rng
                    .pick(&["m.st", "m.st", "p.dl", "d.csv", "/dev/null", "."])
                    .to_string();
                vec![
                    (s(&["check", "p.dl"]), Vec::new()),
                    (s(&["train", "p.dl", "--save", "m.st"]), Vec::new()),
                    (s(&["data", "d.csv"]), Vec::new()),
                    (s(&["data", "p.dl", "--split-indices"]), Vec::new()),
                    (
                        s(&["train", "p.dl", "--save", &save, "--batch", &batch]),
                        Vec::new(),
                    ),
                    (
                        s(&[
                            "predict", "p.dl", "--load", "m.st", "--input", "new.csv", "--out",
                            &out, "--batch", &batch, "--proba", "--raw",
                        ]),
                        Vec::new(),
                    ),
                    (
                        s(&[
                            "export", "p.dl", "--load", "m.st", "--out", &out, "--format", "npz",
                        ]),
                        Vec::new(),
                    ),
                    (
                        s(&[
                            "predict", "p.dl", "--load", "m.st", "--input", "new.csv", "--out",
                            "o.csv", "--proba",
                        ]),
                        Vec::new(),
                    ),
                    (
                        s(&[
                            "predict", "p.dl", "--load", "m.st", "--input", "d.csv", "--out", "-",
                            "--raw",
                        ]),
                        Vec::new(),
                    ),
                    (
                        s(&["export", "p.dl", "--load", "m.st", "--out", "m.onnx"]),
                        Vec::new(),
                    ),
                ]
            }
            2 => {
                for split in ["train", "t10k"] {
                    for (what, images) in
                        [("images-idx3-ubyte", true), ("labels-idx1-ubyte", false)]
                    {
                        let mut b = idx_file(&mut rng, images);
                        let mut name = format!("{split}-{what}");
                        if rng.chance(40) {
                            b = gzip(&b);
                            name.push_str(".gz");
                        }
                        std::fs::write(cdir.join(name), b).expect("idx");
                    }
                }
                std::fs::write(
                    cdir.join("p.dl"),
                    "data d = idx(\".\", classes = 2)\nmodel m(x: f32[B, D]) -> f32[B, 2] {\n    param w: f32[D, 2] = zeros\n    x @ w\n}\ntrain m on d {\n    loss = cross_entropy(output, label)\n    optimizer = sgd(lr = 0.1)\n    epochs = 1\n}\n",
                )
                .expect("program");
                vec![
                    (s(&["train", "p.dl", "--save", "m.st"]), Vec::new()),
                    (s(&["data", "."]), Vec::new()),
                    (
                        s(&[
                            "predict",
                            "p.dl",
                            "--load",
                            "m.st",
                            "--input",
                            "t10k-images-idx3-ubyte",
                            "--out",
                            "o.csv",
                        ]),
                        Vec::new(),
                    ),
                ]
            }
            3 => {
                std::fs::write(cdir.join("lin.dl"), &seeds[0]).expect("program");
                std::fs::write(cdir.join("c.st"), damage(&mut rng, &good)).expect("checkpoint");
                // NumPy data, damaged: a .npy of features, labels, an .npz.
                std::fs::write(cdir.join("x.npy"), damage(&mut rng, &good_x)).expect("npy");
                std::fs::write(cdir.join("y.npy"), damage(&mut rng, &good_y)).expect("npy");
                std::fs::write(cdir.join("d.npz"), damage(&mut rng, &good_npz)).expect("npz");
                let src = rng.pick(&[
                    "npy(\"x.npy\", labels = \"y.npy\")",
                    "npy(\"d.npz\", test = 0.5)",
                    "npy(\"d.npz\", features = \"x\", labels = \"y\", test = [\"x\", \"y\"])",
                ]);
                std::fs::write(
                    cdir.join("n.dl"),
                    format!("data d = {src}\nmodel m(x: f32[B, D]) -> f32[B, 2] {{\n    param w: f32[D, 2] = zeros\n    x @ w\n}}\ntrain m on d {{\n    loss = cross_entropy(output, label)\n    optimizer = sgd(lr = 0.1)\n    epochs = 1\n}}\n"),
                )
                .expect("program");
                vec![
                    (
                        s(&[
                            "train", "lin.dl", "--run", "sgd", "--resume", "c.st", "--epochs", "5",
                        ]),
                        Vec::new(),
                    ),
                    (
                        s(&["eval", "lin.dl", "--run", "sgd", "--load", "c.st"]),
                        Vec::new(),
                    ),
                    (
                        s(&[
                            "export", "lin.dl", "--run", "sgd", "--load", "c.st", "--out", "m.onnx",
                        ]),
                        Vec::new(),
                    ),
                    (
                        s(&[
                            "predict", "lin.dl", "--run", "sgd", "--load", "c.st", "--input",
                            "x.npy", "--out", "-",
                        ]),
                        Vec::new(),
                    ),
                    (s(&["check", "n.dl"]), Vec::new()),
                    (s(&["train", "n.dl"]), Vec::new()),
                ]
            }
            4 => {
                let lines: Vec<String> = (0..4).map(|_| repl_line(&mut rng)).collect();
                vec![(s(&["repl"]), (lines.join("\n") + "\n").into_bytes())]
            }
            5 => {
                let doc = program(&mut rng, &seeds);
                vec![(s(&["lsp"]), lsp_session(&mut rng, &doc))]
            }
            6 => vec![(s(&["repl"]), repl_script(&mut rng))],
            _ => {
                // NumPy headers in every form np.load reads and some it
                // refuses; labels at the integer extremes, fractions, NaN.
                let x = npy_file(&mut rng, 8, 2, false);
                let y = npy_file(&mut rng, 8, 0, true);
                std::fs::write(cdir.join("d.npz"), npz_file(&mut rng, x.clone(), y.clone()))
                    .expect("npz");
                std::fs::write(cdir.join("x.npy"), x).expect("npy");
                std::fs::write(cdir.join("y.npy"), y).expect("npy");
                let src = rng.pick(&[
                    "npy(\"x.npy\", labels = \"y.npy\")",
                    "npy(\"x.npy\", labels = \"y.npy\", classes = 2, test = 0.25)",
                    "npy(\"d.npz\", test = 0.5)",
                    "npy(\"d.npz\", classes = 2, test = [\"x\", \"y\"])",
                ]);
                std::fs::write(
                    cdir.join("n.dl"),
                    format!("data d = {src}\nmodel m(x: f32[B, D]) -> f32[B, 2] {{\n    param w: f32[D, 2] = zeros\n    x @ w\n}}\ntrain m on d {{\n    loss = cross_entropy(output, label)\n    optimizer = sgd(lr = 0.1)\n    epochs = 1\n}}\n"),
                )
                .expect("program");
                vec![
                    (s(&["check", "n.dl"]), Vec::new()),
                    (s(&["data", "n.dl"]), Vec::new()),
                    (s(&["train", "n.dl", "--save", "m.st"]), Vec::new()),
                    (
                        s(&[
                            "predict", "n.dl", "--load", "m.st", "--input", "x.npy", "--out", "-",
                        ]),
                        Vec::new(),
                    ),
                ]
            }
        };
        for (args, input) in runs {
            let (code, err) = run(&cdir, &args, &input);
            if let Some(c @ 0..=2) = code {
                exits[c as usize] += 1;
            }
            assert!(
                matches!(code, Some(0..=2))
                    && !err.contains("panicked")
                    && !err.contains("internal compiler error"),
                "case {case} (seed {seed}): `dlc {}` in {} ended with {code:?}:\n{err}\ninput: {}",
                args.join(" "),
                cdir.display(),
                String::from_utf8_lossy(&input[..input.len().min(2000)])
            );
        }
        let _ = std::fs::remove_dir_all(&cdir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "fuzzed {case} cases in {:.0} s: {} programs, {} CSVs, {} IDX folders, {} checkpoints, {} REPL sessions, {} LSP sessions, {} REPL scripts, {} NumPy files; runs exited 0: {}, 1: {}, 2: {}",
        start.elapsed().as_secs_f64(),
        count[0],
        count[1],
        count[2],
        count[3],
        count[4],
        count[5],
        count[6],
        count[7],
        exits[0],
        exits[1],
        exits[2]
    );
}
