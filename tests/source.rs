//! What a program file may hold besides the program: a UTF-8 byte-order
//! mark (written by some Windows editors), and the messages of settings a
//! user gets wrong.

mod cmd;

use cmd::{dlc, root, scratch, text};

#[test]
fn a_byte_order_mark_is_not_part_of_the_program() {
    let d = scratch("source-bom");
    let src = std::fs::read_to_string(root().join("programs/linreg.dl")).expect("program");
    std::fs::write(d.join("bom.dl"), format!("\u{feff}{src}")).expect("write");
    for cmd in ["check", "gradcheck"] {
        let out = dlc(
            &root().join("programs"),
            &[cmd, d.join("bom.dl").to_str().expect("path")],
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "dlc {cmd}: {}",
            text(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn patience_says_it_counts_at_least_one_epoch() {
    let d = scratch("source-patience");
    let src = std::fs::read_to_string(root().join("programs/linreg.dl"))
        .expect("program")
        .replace(
            "    seed = 42\n",
            "    seed = 42\n    early_stop = patience(0, valid_loss)\n",
        );
    std::fs::write(d.join("p.dl"), src).expect("write");
    let out = dlc(&d, &["check", "p.dl"]);
    let err = text(&out.stderr) + &text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("N ≥ 1"), "{err}");
    let _ = std::fs::remove_dir_all(&d);
}
