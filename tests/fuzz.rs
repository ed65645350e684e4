//! The front end never panics and never overflows the stack, whatever it is
//! given: 100,000 inputs, most of them mutations of the shipped programs,
//! the grammar examples and the bad programs (token deletions, swaps,
//! duplications, truncations, changed numbers, inserted tokens), some random
//! bytes, and 10,000-deep nesting. Every input must come back as a tree and
//! diagnostics; the test reports how many reached type checking.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use dlc::syntax::lexer::lex;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

const CASES: u32 = 100_000;

fn seeds(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for dir in ["programs", "tests/ui"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .expect("seed folder")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "dl"))
            .collect();
        files.sort();
        for f in files {
            out.push(std::fs::read_to_string(f).expect("seed file"));
        }
    }
    let readme = std::fs::read_to_string(root.join("grammar/README.md")).expect("grammar");
    for block in readme.split("```dl\n").skip(1) {
        if let Some(end) = block.find("```") {
            out.push(block[..end].to_string());
        }
    }
    out
}

/// Replacement tokens for insertions and changes.
const TOKENS: &[&str] = &[
    "(", ")", "[", "]", "{", "}", ",", ":", ";", "=", "->", "+", "-", "*", "/", "@", "**", "==",
    "<", "+=", "data", "model", "param", "let", "fn", "train", "on", "not", "and", "x", "B", "f32",
    "i32", "bool", "relu", "sum", "axis", "0", "1", "-1", "256", "1e-4", "\"s\"", "label",
    "output", "$", "\"",
];

#[derive(Clone, Debug)]
enum Mutation {
    Delete(usize),
    Swap(usize, usize),
    Duplicate(usize, usize),
    Truncate(usize),
    Number(usize, i64),
    Insert(usize, usize),
}

/// Rebuilds `src` from its tokens (with the original whitespace between
/// them) after applying the mutations at token granularity.
fn mutate(src: &str, muts: &[Mutation]) -> String {
    let lexed = lex(src);
    let mut pieces: Vec<String> = Vec::new();
    let mut last = 0;
    for (tok, span) in &lexed.tokens {
        let gap = &src[last..span.start];
        let text = &src[span.start..span.end];
        let _ = tok;
        pieces.push(format!("{gap}{text}"));
        last = span.end;
    }
    for m in muts {
        let n = pieces.len();
        if n == 0 {
            break;
        }
        match *m {
            Mutation::Delete(i) => {
                pieces.remove(i % n);
            }
            Mutation::Swap(i, j) => pieces.swap(i % n, j % n),
            Mutation::Duplicate(i, len) => {
                let i = i % n;
                let j = (i + 1 + len % 8).min(n);
                let copy: Vec<String> = pieces[i..j].to_vec();
                for (k, p) in copy.into_iter().enumerate() {
                    pieces.insert(j + k, p);
                }
            }
            Mutation::Truncate(i) => pieces.truncate(i % n),
            Mutation::Number(i, v) => {
                // Change the first number at or after position i.
                let start = i % n;
                if let Some(k) = (start..n).find(|&k| {
                    let t = pieces[k].trim_start();
                    t.chars().next().is_some_and(|c| c.is_ascii_digit())
                }) {
                    let ws: String = pieces[k]
                        .chars()
                        .take_while(|c| c.is_whitespace())
                        .collect();
                    pieces[k] = format!("{ws}{v}");
                }
            }
            Mutation::Insert(i, t) => {
                pieces.insert(i % (n + 1), format!(" {}", TOKENS[t % TOKENS.len()]))
            }
        }
    }
    pieces.concat()
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => any::<usize>().prop_map(Mutation::Delete),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::Swap(a, b)),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::Duplicate(a, b)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        2 => (any::<usize>(), prop_oneof![Just(0i64), Just(1), Just(-1), Just(2), Just(4_000_000_000), any::<i64>()])
            .prop_map(|(a, v)| Mutation::Number(a, v)),
        3 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::Insert(a, b)),
    ]
}

#[derive(Clone, Debug)]
enum Input {
    Mutated(usize, Vec<Mutation>),
    Bytes(Vec<u8>),
}

fn input(n_seeds: usize) -> impl Strategy<Value = Input> {
    prop_oneof![
        19 => (0..n_seeds, prop::collection::vec(mutation(), 0..5)).prop_map(|(s, m)| Input::Mutated(s, m)),
        1 => prop::collection::vec(any::<u8>(), 0..200).prop_map(Input::Bytes),
    ]
}

struct Counts {
    total: AtomicUsize,
    typed: AtomicUsize,
    clean: AtomicUsize,
}

/// The front end on one input: parse, then check. Returns (reached type
/// checking, passed it).
fn front_end(src: &str, base: &Path) -> (bool, bool) {
    let (program, diags) = dlc::syntax::parse(src);
    let opts = dlc::check::Options {
        base_dir: base.to_path_buf(),
        data_override: None,
        data_cache: None,
        ..Default::default()
    };
    let (_, cdiags) = dlc::check::check(&program, &opts);
    // Rendering must not panic either.
    let all: Vec<_> = diags.iter().chain(cdiags.iter()).cloned().collect();
    let _ = dlc::diag::render(&all, "fuzz.dl", src, false);
    (diags.is_empty(), all.is_empty())
}

/// What `dlc lsp` does with a document: its analysis, diagnostics, and the
/// position requests at its start, middle and end.
fn language_server(src: &str) {
    let a = dlc::lsp::Analysis::new("file:///nonexistent/fuzz.dl", src);
    let _ = a.diagnostics();
    let lines = src.lines().count();
    for (line, ch) in [(0, 0), (lines / 2, 3), (lines, 0), (1, 1000)] {
        if let Some(off) = a.offset(line, ch) {
            let _ = (a.hover(off), a.definition(off), a.completion(off));
            let _ = a.references(off, true);
        }
    }
    let _ = (a.symbols(), a.inlay_hints(), a.formatting());
}

fn run_on_big_stack<F: FnOnce() + Send + 'static>(f: F) {
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(f)
        .expect("thread")
        .join()
        .expect("the front end panicked");
}

#[test]
fn the_front_end_never_panics_on_100k_inputs() {
    run_on_big_stack(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let seeds = seeds(&root);
        assert!(seeds.len() > 50, "{} seeds", seeds.len());
        let base = root.join("programs");
        let counts = Counts {
            total: AtomicUsize::new(0),
            typed: AtomicUsize::new(0),
            clean: AtomicUsize::new(0),
        };
        let config = Config {
            cases: CASES,
            failure_persistence: None,
            ..Config::default()
        };
        let mut runner =
            TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
        let result = runner.run(&input(seeds.len()), |inp| {
            let src = match &inp {
                Input::Mutated(s, m) => mutate(&seeds[*s], m),
                Input::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            };
            let (typed, clean) = front_end(&src, &base);
            // The language server analyses it and answers at a few places
            // without panicking (a panic fails the case).
            language_server(&src);
            // A well-formed input (it parses) formats as `dlc fmt` promises.
            if typed {
                if let Err(e) = common::fmt_holds(&src) {
                    return Err(TestCaseError::fail(format!("dlc fmt on\n{src}\n: {e}")));
                }
            }
            counts.total.fetch_add(1, Ordering::Relaxed);
            counts
                .typed
                .fetch_add(usize::from(typed), Ordering::Relaxed);
            counts
                .clean
                .fetch_add(usize::from(clean), Ordering::Relaxed);
            Ok(())
        });
        if let Err(e) = result {
            panic!("{e}");
        }
        let (t, ty, c) = (
            counts.total.load(Ordering::Relaxed),
            counts.typed.load(Ordering::Relaxed),
            counts.clean.load(Ordering::Relaxed),
        );
        // Written past the test harness's capture, so CI logs show it.
        let _ = writeln!(
            std::io::stderr(),
            "fuzz: {t} inputs, {ty} reached type checking ({:.1}%), {c} passed it",
            100.0 * ty as f64 / t.max(1) as f64
        );
        assert!(t >= CASES as usize);
        // Most mutations keep the program parseable: if almost none reach
        // the checker, the mutator (not the front end) is broken.
        assert!(ty * 10 > t, "only {ty} of {t} inputs reached type checking");
    });
}

#[test]
fn ten_thousand_deep_nesting_is_a_diagnostic() {
    run_on_big_stack(|| {
        let n = 10_000;
        let cases = [
            format!("let a = {}1{}", "(".repeat(n), ")".repeat(n)),
            format!("let a = {}1{}", "[".repeat(n), "]".repeat(n)),
            format!("let a = {}1", "-".repeat(n)),
            format!("let a = {}true", "not ".repeat(n)),
            format!("let a = {}1", "1 + ".repeat(n)),
            format!("let a = 2{}", " ** 2".repeat(n)),
            format!("let a = {}", "f(".repeat(n)),
            format!("model m(x: f32[B, 1]) -> f32[B, 1] {}", "{".repeat(n)),
            format!("let a = x{}", "[0]".repeat(n)),
            format!("let a = x{}", ".T".repeat(n)),
            format!("fn f(x) = x\nlet a = {}1{}", "f(".repeat(n), ")".repeat(n)),
        ];
        for src in cases {
            let (_, diags) = dlc::syntax::parse(&src);
            let (program, _) = dlc::syntax::parse(&src);
            let (_, cd) = dlc::check::check(&program, &dlc::check::Options::default());
            assert!(
                !diags.is_empty() || !cd.is_empty(),
                "accepted without a diagnostic: {}…",
                &src[..40]
            );
        }
    });
}
