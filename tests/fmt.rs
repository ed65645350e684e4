//! `dlc fmt` (issue #20): on every program, test program and grammar
//! example it is idempotent, keeps the tree and every comment; the shipped
//! programs and the grammar's examples are already in its layout; and the
//! command formats files in place, checks them and reads stdin. (The fuzz
//! test checks the same promises on every mutated input that parses.)

mod common;

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `.dl` files below `dir`, sorted.
fn dl_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("a folder").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(dl_files(&p));
        } else if p.extension().is_some_and(|x| x == "dl") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The grammar reference's ```dl examples.
fn grammar_examples() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("grammar/README.md")).expect("grammar");
    readme
        .split("```dl\n")
        .skip(1)
        .filter_map(|b| b.find("```").map(|e| b[..e].to_string()))
        .collect()
}

#[test]
fn every_program_and_example_formats_as_promised() {
    let mut checked = 0;
    for f in dl_files(&root().join("programs"))
        .into_iter()
        .chain(dl_files(&root().join("tests")))
        .chain(dl_files(&root().join("benches")))
    {
        let src = std::fs::read_to_string(&f).expect("readable");
        // The bad programs of tests/ui that do not parse have nothing to
        // format (`dlc fmt` refuses them with their diagnostics).
        if !dlc::syntax::parse(&src).1.is_empty() {
            continue;
        }
        if let Err(e) = common::fmt_holds(&src) {
            panic!("{}: {e}", f.display());
        }
        checked += 1;
    }
    for (i, ex) in grammar_examples().iter().enumerate() {
        if dlc::syntax::parse(ex).1.is_empty() {
            if let Err(e) = common::fmt_holds(ex) {
                panic!("grammar example {i}: {e}");
            }
            checked += 1;
        }
    }
    assert!(checked > 60, "only {checked} inputs checked");
}

#[test]
fn the_shipped_programs_are_in_the_layout() {
    let files = dl_files(&root().join("programs"))
        .into_iter()
        .chain(dl_files(&root().join("benches")))
        .chain(dl_files(&root().join("tests")));
    for f in files {
        let src = std::fs::read_to_string(&f).expect("readable");
        // tests/ holds bad programs that do not parse, and a REPL session.
        let Ok(formatted) = dlc::syntax::fmt::format(&src) else {
            continue;
        };
        assert!(
            formatted == src,
            "{} is not formatted: run `dlc fmt {}`",
            f.display(),
            f.display()
        );
    }
    for (i, ex) in grammar_examples().iter().enumerate() {
        let formatted = dlc::syntax::fmt::format(ex).expect("parses");
        assert!(
            &formatted == ex,
            "grammar example {i} is not formatted:\n{ex}\n--- would be ---\n{formatted}"
        );
    }
}

/// Layouts the formatter promises, one case each.
#[test]
fn layout_cases() {
    let cases = [
        // One statement a line, spaces around operators, the parentheses
        // written kept.
        (
            "model m(x: f32[B,2]) -> f32[B,1] { param w: f32[2,1] = zeros; (x@w)*2 }\n",
            "model m(x: f32[B, 2]) -> f32[B, 1] {\n    param w: f32[2, 1] = zeros\n    (x @ w) * 2\n}\n",
        ),
        // Parentheses where precedence needs them, and numbers as written.
        (
            "let a = (1e-4 + 2) * -(3 ** 2) ** 0.5\n",
            "let a = (1e-4 + 2) * -(3 ** 2) ** 0.5\n",
        ),
        ("let b = (- x) ** 2 + 2 ** -x\n", "let b = (-x) ** 2 + 2 ** -x\n"),
        ("let c = not (a and b) or c\n", "let c = not (a and b) or c\n"),
        ("let d = a - (b - c) - d\n", "let d = a - (b - c) - d\n"),
        // Parentheses precedence needs, where the source had none (a tree
        // built another way prints so that it parses back the same).
        ("let e = a*b+c\n", "let e = a * b + c\n"),
        // Comments: own line, after code, inside a statement (moved before
        // it); blank lines kept once.
        (
            "# head\n\n\n\nlet a = (1 +\n  # two\n  2)  # end\nlet b = 2 # two\n",
            "# head\n\n# two\nlet a = 1 + 2  # end\nlet b = 2  # two\n",
        ),
    ];
    for (src, want) in cases {
        let got = dlc::syntax::fmt::format(src).expect("parses");
        assert_eq!(got, want, "formatting {src:?}");
        common::fmt_holds(src).expect("the promises hold");
    }
}

/// A comment after a call's argument, a list's item, an index or a
/// header's parameter (or after its opening bracket, or a binary operator)
/// stays on its line: the call or list breaks one element a line, the
/// comment after its element's comma.
#[test]
fn comments_on_elements_stay_on_their_lines() {
    let cases = [
        (
            "let y = f(a,  # first\n  b)\n",
            "let y = f(\n    a,  # first\n    b,\n)\n",
        ),
        // A list of atoms breaks one item a line instead of filling.
        ("let x = [1, # one\n 2]\n", "let x = [\n    1,  # one\n    2,\n]\n"),
        // The last element's comment, before the comma or the bracket.
        (
            "let x = [1,\n 2  # two\n]\n",
            "let x = [\n    1,\n    2,  # two\n]\n",
        ),
        (
            "let x = f(a  # a\n, b)\n",
            "let x = f(\n    a,  # a\n    b,\n)\n",
        ),
        // After the opening bracket, with no elements too.
        (
            "let z = g(  # open\n  a, b)\n",
            "let z = g(  # open\n    a,\n    b,\n)\n",
        ),
        ("let z = g(  # none\n)\n", "let z = g(  # none\n)\n"),
        // Nested: only the call around the comment and those around it break.
        (
            "let q = f(g(a,  # inner\n  b), c)  # end\n",
            "let q = f(\n    g(\n        a,  # inner\n        b,\n    ),\n    c,\n)  # end\n",
        ),
        // A train setting's call and list, named arguments.
        (
            "train m on d {\n    optimizer = adam(lr = 0.1,   # fast\n        beta1 = 0.9)\n    metrics = [accuracy,  # acc\n loss]\n}\n",
            "train m on d {\n    optimizer = adam(\n        lr = 0.1,  # fast\n        beta1 = 0.9,\n    )\n    metrics = [\n        accuracy,  # acc\n        loss,\n    ]\n}\n",
        ),
        // A model's inputs, an index, a function's parameters, a data source.
        (
            "model m(x: f32[B, 2],  # in\n  y: f32[B]) -> f32[B] {\n    x[0,  # row\n      1:2]\n}\n",
            "model m(\n    x: f32[B, 2],  # in\n    y: f32[B],\n) -> f32[B] {\n    x[\n        0,  # row\n        1:2\n    ]\n}\n",
        ),
        (
            "fn f(a,  # p\n  b) = a + b\n",
            "fn f(\n    a,  # p\n    b,\n) = a + b\n",
        ),
        (
            "data d = csv(\"d.csv\",  # the file\n  label = \"y\")\n",
            "data d = csv(\n    \"d.csv\",  # the file\n    label = \"y\",\n)\n",
        ),
        // An element in parentheses of its own; an index of a call.
        (
            "let y = f((a),  # c\n  b)\n",
            "let y = f(\n    a,  # c\n    b,\n)\n",
        ),
        (
            "let y = f(x)[0,  # c\n 1]\n",
            "let y = f(x)[\n    0,  # c\n    1\n]\n",
        ),
        // An index broken has no trailing comma (`x[i,] = v` would be
        // `x[i, :] = v`).
        ("x[  # c\n:] = 1\n", "x[  # c\n    :\n] = 1\n"),
        // After a binary operator.
        ("let w = a +  # plus\n  b\n", "let w = a +  # plus\n    b\n"),
    ];
    for (src, want) in cases {
        let got = dlc::syntax::fmt::format(src).expect("parses");
        assert_eq!(got, want, "formatting {src:?}");
        common::fmt_holds(src).expect("the promises hold");
    }
}

/// A call longer than the line breaks after `(`, one argument a line.
#[test]
fn long_calls_break_one_argument_a_line() {
    let src = format!(
        "data d = csv(\"{}\", label = \"y\", test = 0.2)\n",
        "x".repeat(90)
    );
    let got = dlc::syntax::fmt::format(&src).expect("parses");
    assert_eq!(
        got,
        format!(
            "data d = csv(\n    \"{}\",\n    label = \"y\",\n    test = 0.2,\n)\n",
            "x".repeat(90)
        )
    );
    assert!(got.lines().all(|l| l.len() <= 100));
}

#[test]
fn the_command_formats_checks_and_reads_stdin() {
    let dlc = env!("CARGO_BIN_EXE_dlc");
    let dir = std::env::temp_dir().join(format!("dlc-fmt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a folder");
    let messy = dir.join("messy.dl");
    let tidy = dir.join("tidy.dl");
    std::fs::write(&messy, "let a=1;let b = a+2 # sum\n").expect("written");
    std::fs::write(&tidy, "let a = 1\n").expect("written");
    let run = |args: &[&str]| {
        std::process::Command::new(dlc)
            .args(args)
            .output()
            .expect("runs")
    };
    let (m, t) = (
        messy.to_str().expect("utf-8"),
        tidy.to_str().expect("utf-8"),
    );
    // --check lists the file that would change, changes nothing, exits 1.
    let out = run(&["fmt", "--check", m, t]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{m}\n"));
    assert_eq!(
        std::fs::read_to_string(&messy).expect("read"),
        "let a=1;let b = a+2 # sum\n"
    );
    // Without it the file is rewritten; then --check passes.
    assert_eq!(run(&["fmt", m, t]).status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(&messy).expect("read"),
        "let a = 1\nlet b = a + 2  # sum\n"
    );
    assert_eq!(run(&["fmt", "--check", m, t]).status.code(), Some(0));
    // A program that does not parse: its diagnostics, exit 1, untouched.
    let broken = dir.join("broken.dl");
    std::fs::write(&broken, "let a = (1 +\n").expect("written");
    let out = run(&["fmt", broken.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!out.stderr.is_empty());
    assert_eq!(
        std::fs::read_to_string(&broken).expect("read"),
        "let a = (1 +\n"
    );
    // stdin to stdout.
    let mut child = std::process::Command::new(dlc)
        .arg("fmt")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"let x=[1,2]\n")
        .expect("written");
    let out = child.wait_with_output().expect("ends");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "let x = [1, 2]\n");
    let _ = std::fs::remove_dir_all(&dir);
}
