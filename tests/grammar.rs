//! Every `dl` example in grammar/README.md is a complete program that checks.

use std::path::Path;

#[test]
fn every_example_in_the_language_reference_checks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("grammar/README.md")).expect("grammar/README.md");
    let mut examples = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```dl") => current = Some(String::new()),
            (Some(src), "```") => {
                examples.push(std::mem::take(src));
                current = None;
            }
            (Some(src), l) => {
                src.push_str(l);
                src.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(examples.len() >= 10, "found {} examples", examples.len());
    let opts = dlc::check::Options {
        base_dir: root.join("grammar"),
        data_override: None,
        data_cache: None,
        ..Default::default()
    };
    for (i, src) in examples.iter().enumerate() {
        let (program, mut diags) = dlc::syntax::parse(src);
        let (checked, cd) = dlc::check::check(&program, &opts);
        diags.extend(cd);
        assert!(
            diags.is_empty(),
            "example {} does not check:\n{}\n{}",
            i + 1,
            src,
            dlc::diag::render(&diags, "example.dl", src, false)
        );
        let defines_something =
            !checked.runs.is_empty() || checked.session.is_some() || !checked.data.is_empty();
        assert!(defines_something, "example {} is empty", i + 1);
    }
}
