//! `dlc repl` on inputs that broke it: multi-byte characters anywhere in a
//! `:command` (an internal error once: byte offsets taken from the trimmed
//! line were used in the untrimmed one), and scripts through a pipe with
//! lines that fail, lines that are not UTF-8 and lines longer than the cap.

use std::io::Write;
use std::process::{Command, Stdio};

use dlc::repl::{Reply, Session};

/// 2-, 3- and 4-byte characters, and whitespace of 2 and 3 bytes.
const WIDE: [&str; 7] = ["Å", "é", "€", "中", "😀", "\u{a0}", "\u{3000}"];

/// Every command whose argument is sliced by byte offsets, as typed.
const COMMANDS: [&str; 9] = [
    ":type x + 1",
    ":ir x * 2",
    ":time x + 1",
    ":grad sum(x * x) wrt x",
    ":grad x wrt x",
    ":id x",
    ":load nowhere.safetensors",
    ":vars",
    ":nonsense x",
];

/// What an input gives, or the panic's message.
fn eval(s: &mut Session, input: &str) -> Result<Result<Reply, String>, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.eval(input))).map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|m| m.to_string()))
            .unwrap_or_default()
    })
}

/// A multi-byte character inserted at every character boundary of every
/// command, and typed before and after it with spaces around, is an
/// answer or an error, never a panic.
#[test]
fn a_multi_byte_character_anywhere_in_a_command_is_no_panic() {
    let mut s = Session::new(false);
    s.eval("let x = [1.0, 2.0]").expect("bound");
    let mut tried = 0;
    for cmd in COMMANDS {
        for wide in WIDE {
            let mut inputs: Vec<String> = cmd
                .char_indices()
                .map(|(i, _)| i)
                .chain([cmd.len()])
                .map(|i| format!("{}{wide}{}", &cmd[..i], &cmd[i..]))
                .collect();
            // Around the whole command, with the trailing whitespace the
            // old offsets miscounted.
            for pad in ["", " ", "  ", "\t"] {
                inputs.push(format!("{pad}{cmd}{pad}{wide}{pad}"));
                inputs.push(format!("{pad}{cmd} {wide}{pad}"));
                inputs.push(format!("{pad}{wide}{cmd}{pad}"));
            }
            for input in inputs {
                // :time runs for a tenth of a second when it compiles.
                if input.contains(":time") && !input.contains(wide) {
                    continue;
                }
                tried += 1;
                match eval(&mut s, &input) {
                    Err(panic) => panic!("`{input}` panicked: {panic}"),
                    Ok(Err(e)) => assert!(!e.contains("internal compiler error"), "`{input}`: {e}"),
                    Ok(Ok(_)) => {}
                }
            }
        }
    }
    assert!(tried > 800, "{tried}");
}

/// Trailing whitespace after a command no longer moves its diagnostics:
/// the caret is under the character, and the answers are the same.
#[test]
fn a_command_with_trailing_whitespace_points_at_what_was_typed() {
    let mut s = Session::new(false);
    s.eval("let x = [1.0, 2.0]").expect("bound");
    assert_eq!(s.eval(":type x @ x   "), Ok(Reply::Text("f32[]".into())));
    assert_eq!(
        s.eval(":grad sum(x * x) wrt x \t "),
        Ok(Reply::Text("[2. 4.]".into()))
    );
    assert_eq!(
        s.eval(":grad\u{3000}sum(x * x) wrt x "),
        Ok(Reply::Text("[2. 4.]".into())),
        "a wide space after the command's name"
    );
    for input in [":type Å  ", ":type   Å", "  :ir 1 + Å ", ":grad Å wrt x  "] {
        let e = s.eval(input).expect_err("not a token");
        assert!(e.contains("unexpected character `Å`"), "{input}: {e}");
        // ariadne's caret line: the column of Å in characters, plus the
        // gutter (" 1 │ ").
        let col = input.chars().position(|c| c == 'Å').expect("Å");
        let caret = e
            .lines()
            .find(|l| l.contains('┬'))
            .and_then(|l| l.chars().position(|c| c == '┬'))
            .expect("a caret");
        let gutter = e
            .lines()
            .find(|l| l.contains('Å') && l.contains('│'))
            .and_then(|l| l.chars().position(|c| c == '│'))
            .expect("the source line")
            + 2;
        assert_eq!(caret, gutter + col, "{input}:\n{e}");
    }
}

/// Completion's word start is a byte offset after any character, however
/// wide (`a→b` completes `b`).
#[test]
fn completion_finds_words_after_wide_characters() {
    use dlc::repl::line::word_start;
    assert_eq!(word_start("x→ab"), "x→".len());
    assert_eq!(word_start("€€:ty"), "€€".len());
    assert_eq!(word_start("sum(中文"), "sum(".len());
    assert_eq!(word_start("😀"), "😀".len());
    assert_eq!(word_start("abc"), 0);
    for wide in WIDE {
        for text in [
            format!("{wide}x"),
            format!("x{wide}"),
            format!("{wide}{wide}"),
        ] {
            let at = word_start(&text);
            assert!(text.is_char_boundary(at), "{text}");
        }
    }
}

/// `dlc repl` with `script` on stdin (stderr merged into stdout) under an
/// address-space limit of `limit_kib`: the exit code and the output.
fn script(script: &[u8], limit_kib: u64) -> (i32, String) {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {limit_kib}; exec \"$0\" repl 2>&1"))
        .arg(env!("CARGO_BIN_EXE_dlc"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("dlc repl starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let bytes = script.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&bytes);
    });
    let out = child.wait_with_output().expect("dlc repl ends");
    writer.join().expect("written");
    (
        out.status.code().expect("an exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

const GIB4: u64 = 4 << 20;

/// A script whose inputs fail still runs every line, then exits 1; one
/// without failures exits 0.
#[test]
fn a_script_with_a_failing_input_exits_1() {
    let (code, out) = script(b"1 + 1\nnope\n2 + 2\n", GIB4);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("unknown name `nope`"), "{out}");
    assert!(
        out.starts_with("2\n") && out.trim_end().ends_with('4'),
        "{out}"
    );
    let (code, out) = script(b"nope\n:quit\n3 + 3\n", GIB4);
    assert_eq!(code, 1, "{out}");
    assert!(!out.contains('6'), "nothing after :quit runs: {out}");
    let (code, out) = script(b"let x = 1\nx + 1\n", GIB4);
    assert_eq!((code, out.as_str()), (0, "2\n"));
}

/// A line that is not UTF-8 is an error naming the line, and the script
/// goes on (it used to end there with exit 0).
#[test]
fn a_line_that_is_not_utf8_is_an_error_and_the_script_goes_on() {
    let (code, out) = script(
        b"1 + 1\n\xff\xfe x\n2 + 2\nlet y = [1.0,\n\xc3\n 2.0]\n3 + 3\n",
        GIB4,
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("line 2 is not UTF-8 text"), "{out}");
    assert!(
        out.contains("line 5 is not UTF-8 text") && out.contains("the input begun on line 4"),
        "{out}"
    );
    for value in ["2\n", "4\n", "6\n"] {
        assert!(out.contains(value), "{value} missing: {out}");
    }
}

/// A line over 16 MiB is an error naming the line and its size, read past
/// without being kept: 300 MB under a 256 MiB address-space limit (it
/// aborted before), and the script goes on.
#[test]
fn a_line_over_the_cap_is_skipped_without_being_kept() {
    let mut bytes = b"1 + 1\n".to_vec();
    bytes.resize(bytes.len() + 300_000_000, b'a');
    bytes.extend_from_slice(b"\n2 + 2\n");
    let (code, out) = script(&bytes, 256 << 10);
    assert_eq!(code, 1, "{}", &out[..out.len().min(2000)]);
    assert!(
        out.contains("line 2 is 300000000 bytes, over the limit of 16 MiB"),
        "{}",
        &out[..out.len().min(2000)]
    );
    assert!(
        out.starts_with("2\n") && out.trim_end().ends_with('4'),
        "{out}"
    );
    // At the cap exactly, the line is read (a comment: nothing to show).
    let mut bytes = b"#".to_vec();
    bytes.resize(dlc::repl::script::MAX_INPUT, b'#');
    bytes.extend_from_slice(b"\n5 + 5\n");
    let (code, out) = script(&bytes, GIB4);
    assert_eq!((code, out.as_str()), (0, "10\n"));
}

/// An input open over many lines is scanned once, line by line (it was
/// scanned whole again at each line: 300,000 lines took minutes). The
/// time limit is generous, to catch a hang, not to time it.
#[test]
fn an_input_open_over_many_lines_is_read_in_one_pass() {
    let mut text = String::from("let x = sum([\n");
    for _ in 0..300_000 {
        text.push_str("1,\n");
    }
    text.push_str("])\nx\n");
    let mut child = Command::new("timeout")
        .args(["-s", "KILL", "60"])
        .arg(env!("CARGO_BIN_EXE_dlc"))
        .arg("repl")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("dlc repl starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(text.as_bytes());
    });
    let out = child.wait_with_output().expect("dlc repl ends");
    writer.join().expect("written");
    assert_eq!(out.status.code(), Some(0), "killed after 60 s, or failed");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "300000");
}

/// `grad` with respect to an integer or bool tensor names its dtype (it
/// said "does not depend on the variable": the variable was converted to
/// a new float tensor first), as a call and as `:grad`.
#[test]
fn grad_with_respect_to_an_integer_tensor_names_its_dtype() {
    let mut s = Session::new(false);
    s.eval("let k = [1, 2]").expect("bound");
    s.eval("let m = [true, false]").expect("bound");
    for (input, dtype) in [
        ("grad(sum(k * k), k)", "i32"),
        (":grad sum(k * k) wrt k", "i32"),
        ("grad(sum(f32(m)), m)", "bool"),
        (":grad sum(f32(m)) wrt m", "bool"),
    ] {
        let e = s.eval(input).expect_err(input);
        assert!(
            e.contains("floating-point") && e.contains(&format!("is {dtype}")),
            "`{input}`: {e}"
        );
        assert!(!e.contains("does not depend"), "`{input}`: {e}");
    }
    // A float copy is differentiable.
    s.eval("let kf = f32(k)").expect("bound");
    assert!(s.eval("grad(sum(kf * kf), kf)").is_ok());
}
