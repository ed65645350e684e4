//! `dlc repl` on a real terminal (a pty, driven by rexpect): line editing,
//! history recall and history kept between sessions, tab completion, an
//! input continued over lines, and an error that leaves the session and its
//! bindings alive.

use rexpect::session::spawn_command;
use std::process::Command;

const UP: &str = "\x1b[A";
const HOME: &str = "\x01"; // Ctrl-A
const TAB: &str = "\t";

/// Waits for a fresh, empty prompt. (Keys sent before it may be dropped:
/// the line editor resets the terminal between inputs. Redraws of a line
/// being edited show `>>> text`, never `>>> ` then a carriage return.)
fn ready(p: &mut rexpect::session::PtySession) {
    p.exp_string(">>> \r").expect("a fresh prompt");
}

#[test]
fn a_terminal_session_edits_recalls_completes_and_survives_errors() {
    let dir = std::env::temp_dir().join(format!("dlc-pty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch folder");
    let history = dir.join("history");
    let start = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dlc"));
        cmd.arg("repl")
            .env("DLC_HISTORY", &history)
            .env("TERM", "xterm");
        let mut p = spawn_command(cmd, Some(20_000)).expect("dlc repl starts on a pty");
        p.exp_string("dlc repl").expect("banner");
        ready(&mut p);
        p
    };
    let mut p = start();
    p.send_line("let x = [1.0, 2.0]").expect("sent");
    ready(&mut p);
    // An error is a diagnostic; x is still bound afterwards.
    p.send_line("x + nope").expect("sent");
    p.exp_string("E0100").expect("a diagnostic");
    p.exp_string("nope").expect("pointing at the name");
    ready(&mut p);
    p.send_line("x * 2").expect("sent");
    p.exp_string("[2. 4.]").expect("x survived the error");
    ready(&mut p);
    // Line editing: type the end, go to the start of the line, add the rest.
    p.send("x * 3").expect("sent");
    p.send(HOME).expect("sent");
    p.send("let z = ").expect("sent");
    p.send_line("").expect("sent");
    ready(&mut p);
    p.send_line("z").expect("sent");
    p.exp_string("[3. 6.]").expect("z = x * 3");
    ready(&mut p);
    // History: Up recalls the last input.
    p.send(UP).expect("sent");
    p.send_line("").expect("sent");
    p.exp_string("[3. 6.]").expect("z again");
    ready(&mut p);
    // Completion of a binding's name.
    p.send_line("let longname = [7.0]").expect("sent");
    ready(&mut p);
    p.send("longn").expect("sent");
    p.send(TAB).expect("sent");
    p.send_line(" + 1").expect("sent");
    p.exp_string("[8.]").expect("longname completed");
    ready(&mut p);
    // An open bracket continues the input on the next line.
    p.send_line("let w = [1.0,").expect("sent");
    p.send_line("  5.0]").expect("sent");
    ready(&mut p);
    p.send_line("w").expect("sent");
    p.exp_string("[1. 5.]").expect("w spans two lines");
    ready(&mut p);
    p.send_line(":quit").expect("sent");
    p.exp_eof().expect("leaves");
    // The history was saved, and a new session recalls it.
    let saved = std::fs::read_to_string(&history).expect("history file");
    assert!(saved.contains("let z = x * 3"), "{saved}");
    let mut p = start();
    p.send_line("let x = [5.0, 6.0]").expect("sent");
    ready(&mut p);
    p.send(UP).expect("sent");
    p.send(UP).expect("sent");
    p.send_line("").expect("sent");
    // Up gives this session's line, then the last one of the previous
    // session, `:quit`, which ends this one too.
    p.exp_eof().expect("the recalled :quit ends the session");
    let _ = std::fs::remove_dir_all(&dir);
}
