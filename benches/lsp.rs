//! How soon `dlc lsp` publishes diagnostics after an edit, for every
//! program in programs/ (issue #20: within 50 ms). For each program an
//! in-memory server opens it, then 40 edits are replayed — a character
//! typed into a line and deleted again, at lines spread over the file —
//! each timed from the change sent to its diagnostics received. Prints the
//! median and the worst per program, and the worst of all.
//!
//!     cargo bench --bench lsp

use std::time::Instant;

use lsp_server::{Connection, Message, Notification, Request, RequestId};
use serde_json::json;

fn main() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(root.join("programs"))
        .expect("programs/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "dl"))
        .collect();
    files.sort();
    let mut worst_all: f64 = 0.0;
    println!("{:<20} {:>10} {:>10}", "program", "median ms", "worst ms");
    for f in files {
        let text = std::fs::read_to_string(&f).expect("readable");
        let uri = format!("file://{}", f.display());
        let (server, client) = Connection::memory();
        let handle = std::thread::spawn(move || dlc::lsp::serve(&server));
        let send = |m: Message| client.sender.send(m).expect("sent");
        send(Message::Request(Request::new(
            RequestId::from(1),
            "initialize".into(),
            json!({ "capabilities": {} }),
        )));
        let _ = client.receiver.recv();
        send(Message::Notification(Notification::new(
            "initialized".into(),
            json!({}),
        )));
        let wait = || loop {
            if let Ok(Message::Notification(n)) = client.receiver.recv() {
                if n.method == "textDocument/publishDiagnostics" {
                    return;
                }
            }
        };
        send(Message::Notification(Notification::new(
            "textDocument/didOpen".into(),
            json!({ "textDocument": { "uri": uri, "languageId": "dl", "version": 0, "text": text } }),
        )));
        wait();
        let lines: Vec<&str> = text.lines().collect();
        let mut times = Vec::new();
        for e in 0..40 {
            // Type `x` at the end of a line, then delete it.
            let at = (e / 2 * 7) % lines.len().max(1);
            let edited: String = if e % 2 == 0 {
                lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| {
                        if i == at {
                            format!("{l}x\n")
                        } else {
                            format!("{l}\n")
                        }
                    })
                    .collect()
            } else {
                text.clone()
            };
            let t = Instant::now();
            send(Message::Notification(Notification::new(
                "textDocument/didChange".into(),
                json!({ "textDocument": { "uri": uri, "version": e + 1 }, "contentChanges": [{ "text": edited }] }),
            )));
            wait();
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        send(Message::Request(Request::new(
            RequestId::from(2),
            "shutdown".into(),
            json!(null),
        )));
        send(Message::Notification(Notification::new(
            "exit".into(),
            json!(null),
        )));
        let _ = handle.join();
        times.sort_by(f64::total_cmp);
        let (median, worst) = (times[times.len() / 2], times[times.len() - 1]);
        worst_all = worst_all.max(worst);
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        println!("{name:<20} {median:>10.2} {worst:>10.2}");
    }
    println!("worst of all: {worst_all:.2} ms");
}
