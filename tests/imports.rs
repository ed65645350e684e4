//! The files of src/ import each other without a circle.
//!
//! Every path a file names (its `use` trees, expanded, and the `crate::`,
//! `super::`, `self::` and child-module paths in its code) is resolved to the file that
//! defines the named module, following `pub use` re-exports to the file the
//! name comes from. A file's own test module (`#[cfg(test)] mod … { … }`)
//! is left out: it sees its file's private names by design. The test fails
//! with every strongly connected set of files and the names that tie it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path from the crate root: `["jit", "exec"]` for src/jit/exec.rs.
type ModPath = Vec<String>;

struct File {
    path: PathBuf,
    module: ModPath,
    /// The paths the file names, each absolute (from the crate root).
    refs: Vec<ModPath>,
    /// `pub use` re-exports: the exported name and the absolute path it names.
    reexports: Vec<(String, ModPath)>,
}

#[test]
fn no_import_circles_between_files_of_src() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = read_files(&root);
    let edges = edges(&files);
    let circles = strongly_connected(files.len(), &edges);
    let mut report = String::new();
    for circle in &circles {
        report.push_str("circle:\n");
        for &a in circle {
            for (&(from, to), names) in &edges {
                if from == a && circle.contains(&to) {
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    report.push_str(&format!(
                        "  {} -> {}: {}\n",
                        rel(&root, &files[from].path),
                        rel(&root, &files[to].path),
                        names.join(", ")
                    ));
                }
            }
        }
    }
    assert!(circles.is_empty(), "import circles in src/:\n{report}");
}

/// The checker itself finds a circle and the names behind it.
#[test]
fn a_circle_is_found() {
    let dir = std::env::temp_dir().join(format!("dlc-imports-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("a")).expect("the file system answers");
    std::fs::write(dir.join("lib.rs"), "pub mod a;\npub mod b;\n")
        .expect("the file system answers");
    std::fs::write(
        dir.join("a.rs"),
        "mod inner;\npub use inner::Thing;\npub struct Top;\n",
    )
    .expect("the file system answers");
    std::fs::write(
        dir.join("a/inner.rs"),
        "//! crate::b::Nothing in a comment\nuse crate::{b::{self, Other as O}};\npub struct Thing(O);\nfn f() -> \"crate::a::Top\" { b::g() }\n#[cfg(test)]\nmod tests { use super::super::Top; }\n",
    )
    .expect("the file system answers");
    std::fs::write(
        dir.join("b.rs"),
        "pub struct Other;\npub fn g() -> crate::a::Thing { todo!() }\n",
    )
    .expect("the file system answers");
    let files = read_files(&dir);
    let edges = edges(&files);
    let name = |i: usize| rel(&dir, &files[i].path);
    let mut found: Vec<(String, String, Vec<String>)> = edges
        .iter()
        .map(|(&(a, b), n)| (name(a), name(b), n.iter().cloned().collect()))
        .collect();
    found.sort();
    // a.rs re-exports inner's Thing, so b's `crate::a::Thing` is inner.rs;
    // the comment, the string and the test module name nothing.
    assert_eq!(
        found,
        vec![
            ("a.rs".into(), "a/inner.rs".into(), vec!["Thing".into()]),
            (
                "a/inner.rs".into(),
                "b.rs".into(),
                vec!["Other".into(), "b".into()]
            ),
            ("b.rs".into(), "a/inner.rs".into(), vec!["Thing".into()]),
        ]
    );
    let circles = strongly_connected(files.len(), &edges);
    assert_eq!(circles.len(), 1);
    let mut members: Vec<String> = circles[0].iter().map(|&i| name(i)).collect();
    members.sort();
    assert_eq!(members, vec!["a/inner.rs".to_string(), "b.rs".to_string()]);
    std::fs::remove_dir_all(&dir).expect("the file system answers");
}

fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn read_files(root: &Path) -> Vec<File> {
    let mut paths = Vec::new();
    collect(root, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let module = module_of(root, &path);
            let text = std::fs::read_to_string(&path).expect("the file system answers");
            let tokens = tokens(&strip(&text));
            let tokens = without_test_modules(&tokens);
            let (refs, reexports) = paths_named(&module, &tokens);
            File {
                path,
                module,
                refs,
                reexports,
            }
        })
        .collect()
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("the file system answers") {
        let path = entry.expect("the file system answers").path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn module_of(root: &Path, path: &Path) -> ModPath {
    let rel = path
        .strip_prefix(root)
        .expect("a file under the root")
        .with_extension("");
    let mut parts: ModPath = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The text without comments, string and character literals.
fn strip(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !ident_char(prev(&chars, i))
        {
            // A raw string: r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|k| chars.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{..}'), else a lifetime.
            if next == Some('\\') {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push_str("' '");
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn prev(chars: &[char], i: usize) -> char {
    if i == 0 {
        ' '
    } else {
        chars[i - 1]
    }
}

fn ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Identifiers, `::` and single punctuation characters.
fn tokens(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if ident_char(c) {
            let start = i;
            while i < chars.len() && ident_char(chars[i]) {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push("::".into());
            i += 2;
        } else {
            if !c.is_whitespace() {
                out.push(c.to_string());
            }
            i += 1;
        }
    }
    out
}

/// The tokens without `#[cfg(test)] mod name { … }` blocks.
fn without_test_modules(tokens: &[String]) -> Vec<String> {
    let attr = ["#", "[", "cfg", "(", "test", ")", "]"];
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let is_attr =
            tokens.len() >= i + attr.len() && (0..attr.len()).all(|k| tokens[i + k] == attr[k]);
        let j = i + attr.len();
        if is_attr
            && tokens.get(j).map(String::as_str) == Some("mod")
            && tokens.get(j + 2).map(String::as_str) == Some("{")
        {
            let mut depth = 0;
            let mut k = j + 2;
            while k < tokens.len() {
                match tokens[k].as_str() {
                    "{" => depth += 1,
                    "}" => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                k += 1;
            }
            i = k + 1;
        } else {
            out.push(tokens[i].clone());
            i += 1;
        }
    }
    out
}

/// The absolute paths a file names, and its `pub use` re-exports.
fn paths_named(module: &ModPath, tokens: &[String]) -> (Vec<ModPath>, Vec<(String, ModPath)>) {
    // Child modules declared here (`mod x;`) may start a path.
    let mut children = BTreeSet::new();
    for w in tokens.windows(3) {
        if w[0] == "mod" && w[2] == ";" {
            children.insert(w[1].clone());
        }
    }
    let mut refs = Vec::new();
    let mut reexports = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i] == "use" {
            let public = i > 0 && (tokens[i - 1] == "pub" || tokens[i - 1] == ")");
            let end = tokens[i..]
                .iter()
                .position(|t| t == ";")
                .map_or(tokens.len(), |p| i + p);
            let mut leaves = Vec::new();
            expand(&tokens[i + 1..end], Vec::new(), &mut leaves);
            for (path, alias) in leaves {
                if let Some(abs) = absolute(module, &children, &path) {
                    if public {
                        reexports.push((alias, abs.clone()));
                    }
                    refs.push(abs);
                }
            }
            i = end + 1;
        } else if (matches!(tokens[i].as_str(), "crate" | "super" | "self")
            || children.contains(&tokens[i]))
            && tokens.get(i + 1).map(String::as_str) == Some("::")
            && (i == 0 || tokens[i - 1] != "::")
        {
            let mut path = vec![tokens[i].clone()];
            let mut j = i + 1;
            while tokens.get(j).map(String::as_str) == Some("::")
                && tokens.get(j + 1).is_some_and(|t| t.chars().all(ident_char))
            {
                path.push(tokens[j + 1].clone());
                j += 2;
            }
            if let Some(abs) = absolute(module, &children, &path) {
                refs.push(abs);
            }
            i = j;
        } else {
            i += 1;
        }
    }
    (refs, reexports)
}

/// Expands a use tree into its leaf paths, each with the name it binds.
fn expand(tokens: &[String], prefix: Vec<String>, out: &mut Vec<(Vec<String>, String)>) {
    // Split at top-level commas.
    let mut depth = 0;
    let mut start = 0;
    let mut parts = Vec::new();
    for (k, t) in tokens.iter().enumerate() {
        match t.as_str() {
            "{" => depth += 1,
            "}" => depth -= 1,
            "," if depth == 0 => {
                parts.push(&tokens[start..k]);
                start = k + 1;
            }
            _ => {}
        }
    }
    parts.push(&tokens[start..]);
    for part in parts {
        let mut path = prefix.clone();
        let mut k = 0;
        if part.first().map(String::as_str) == Some("::") {
            k += 1;
        }
        loop {
            match part.get(k).map(String::as_str) {
                None => {
                    if let Some(last) = path.last().cloned() {
                        let name = if last == "self" {
                            path.pop();
                            path.last().cloned().unwrap_or_default()
                        } else {
                            last
                        };
                        out.push((path, name));
                    }
                    break;
                }
                Some("{") => {
                    let inner = &part[k + 1..part.len() - 1];
                    expand(inner, path, out);
                    break;
                }
                Some("*") => {
                    out.push((path, "*".into()));
                    break;
                }
                Some("as") => {
                    let alias = part.get(k + 1).cloned().unwrap_or_default();
                    out.push((path, alias));
                    break;
                }
                Some("::") => k += 1,
                Some(name) => {
                    path.push(name.to_string());
                    k += 1;
                }
            }
        }
    }
}

/// A path made absolute from the crate root, or None for one outside the
/// crate (std, a dependency).
fn absolute(module: &ModPath, children: &BTreeSet<String>, path: &[String]) -> Option<ModPath> {
    let first = path.first()?;
    let mut base: ModPath;
    let rest: &[String];
    match first.as_str() {
        "crate" => {
            base = Vec::new();
            rest = &path[1..];
        }
        "self" => {
            base = module.clone();
            rest = &path[1..];
        }
        "super" => {
            base = module.clone();
            let mut k = 0;
            while path.get(k).map(String::as_str) == Some("super") {
                base.pop();
                k += 1;
            }
            rest = &path[k..];
        }
        name if children.contains(name) => {
            base = module.clone();
            rest = path;
        }
        _ => return None,
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The file a path names, following re-exports, with the name it takes.
fn resolve(
    files: &[File],
    by_module: &BTreeMap<ModPath, usize>,
    path: &ModPath,
    depth: usize,
) -> Option<(usize, String)> {
    let k = (0..=path.len())
        .rev()
        .find(|&k| by_module.contains_key(&path[..k]))?;
    let file = by_module[&path[..k]];
    let name = path
        .get(k)
        .cloned()
        .unwrap_or_else(|| path.last().cloned().unwrap_or_default());
    if depth < 8 {
        if let Some(next) = path.get(k) {
            for (alias, target) in &files[file].reexports {
                if alias == next {
                    let mut target = target.clone();
                    target.extend(path[k + 1..].iter().cloned());
                    return resolve(files, by_module, &target, depth + 1).map(|(f, _)| (f, name));
                }
            }
        }
    }
    Some((file, name))
}

/// Edges between files, with the names each takes from the other.
fn edges(files: &[File]) -> BTreeMap<(usize, usize), BTreeSet<String>> {
    let by_module: BTreeMap<ModPath, usize> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.module.clone(), i))
        .collect();
    let mut edges: BTreeMap<(usize, usize), BTreeSet<String>> = BTreeMap::new();
    for (i, file) in files.iter().enumerate() {
        for path in &file.refs {
            if let Some((j, name)) = resolve(files, &by_module, path, 0) {
                // The crate root only declares modules.
                if j != i && !files[j].module.is_empty() {
                    edges.entry((i, j)).or_default().insert(name);
                }
            }
        }
    }
    edges
}

/// Tarjan's strongly connected components of more than one file.
fn strongly_connected(
    n: usize,
    edges: &BTreeMap<(usize, usize), BTreeSet<String>>,
) -> Vec<Vec<usize>> {
    let mut next: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in edges.keys() {
        next[a].push(b);
    }
    struct State {
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        counter: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(v: usize, next: &[Vec<usize>], s: &mut State) {
        s.index[v] = Some(s.counter);
        s.low[v] = s.counter;
        s.counter += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for &w in &next[v] {
            match s.index[w] {
                None => {
                    visit(w, next, s);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                _ => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut component = Vec::new();
            loop {
                let w = s.stack.pop().expect("v is on the stack");
                s.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut s = State {
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        counter: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(v, &next, &mut s);
        }
    }
    s.out
}
