//! Bad programs: each file in tests/ui/ must be rejected with exit code 1,
//! and its rendered diagnostics (colour off) are snapshotted.

use dlc::driver::{cmd_check, ProgramArgs};

#[test]
fn every_bad_program_is_rejected_with_its_diagnostic() {
    let mut count = 0;
    insta::glob!("ui", "*.dl", |path| {
        // Relative to the package root (the tests' working directory), as a
        // user would name the file; messages then show relative paths.
        let path = path
            .strip_prefix(env!("CARGO_MANIFEST_DIR"))
            .unwrap_or(path);
        count += 1;
        let out = cmd_check(&ProgramArgs {
            file: path.to_path_buf(),
            ..ProgramArgs::default()
        });
        assert_eq!(out.code, 1, "{} was accepted", path.display());
        assert!(
            out.stderr.contains("Error"),
            "no diagnostic for {}",
            path.display()
        );
        // Diagnostics speak the program's language, never internal ids.
        assert!(!out.stderr.contains('%'), "internal id in:\n{}", out.stderr);
        let src = std::fs::read_to_string(path).expect("readable");
        insta::assert_snapshot!(format!(
            "== SOURCE ==\n{src}\n== DIAGNOSTICS ==\n{}",
            out.stderr
        ));
    });
    assert!(count >= 30, "only {count} bad programs");
}
