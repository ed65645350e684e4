//! `dlc lsp` in memory (issue #20): a session on programs/mlp.dl whose
//! requests and answers are one snapshot — initialize, open and its
//! diagnostics, hover on the model's lines, go to definition, references,
//! completion inside `train { }`, symbols, inlay hints, a broken edit and
//! its diagnostics, formatting — and the server on inputs that break it;
//! then the real process on pipes, as an editor runs it: its exit codes
//! within a second of `exit`, MethodNotFound, and framing that is too
//! large, not JSON or cannot be followed, under an address-space limit.

use std::path::PathBuf;
use std::thread::JoinHandle;

use lsp_server::{Connection, Message, Notification, Request, RequestId, Response};
use serde_json::{json, Value};

struct Client {
    conn: Connection,
    server: Option<JoinHandle<Result<i32, String>>>,
    next: i32,
    /// (what was sent, what came back), for the snapshot.
    transcript: Vec<String>,
    root: PathBuf,
}

impl Client {
    fn start() -> Client {
        let (server, client) = Connection::memory();
        let handle = std::thread::spawn(move || dlc::lsp::serve(&server));
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let mut c = Client {
            conn: client,
            server: Some(handle),
            next: 0,
            transcript: Vec::new(),
            root,
        };
        let init = c.request("initialize", json!({ "capabilities": {} }));
        c.log("initialize", &json!({}), &init);
        c.notify("initialized", json!({}));
        c
    }

    fn uri(&self) -> String {
        format!("file://{}/programs/mlp.dl", self.root.display())
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = RequestId::from(self.next);
        self.conn
            .sender
            .send(Message::Request(Request::new(
                id.clone(),
                method.to_string(),
                params,
            )))
            .expect("sent");
        loop {
            match self.conn.receiver.recv().expect("an answer") {
                Message::Response(Response {
                    id: rid,
                    result,
                    error,
                }) if rid == id => {
                    return match error {
                        Some(e) => json!({ "error": e.message }),
                        None => result.unwrap_or(Value::Null),
                    };
                }
                _ => continue,
            }
        }
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.conn
            .sender
            .send(Message::Notification(Notification::new(
                method.to_string(),
                params,
            )))
            .expect("sent");
    }

    /// The next publishDiagnostics notification's diagnostics.
    fn diagnostics(&mut self) -> Value {
        loop {
            if let Message::Notification(n) = self.conn.receiver.recv().expect("a notification") {
                if n.method == "textDocument/publishDiagnostics" {
                    return n.params["diagnostics"].clone();
                }
            }
        }
    }

    fn log(&mut self, what: &str, sent: &Value, got: &Value) {
        let root = self.root.display().to_string();
        let show = |v: &Value| {
            serde_json::to_string_pretty(v)
                .expect("json")
                .replace(&root, "ROOT")
        };
        self.transcript
            .push(format!("--> {what} {}\n<-- {}", show(sent), show(got)));
    }

    fn at(&mut self, what: &str, method: &str, line: u32, character: u32, extra: Value) -> Value {
        let mut params = json!({
            "textDocument": { "uri": self.uri() },
            "position": { "line": line, "character": character },
        });
        if let (Some(p), Some(e)) = (params.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                p.insert(k.clone(), v.clone());
            }
        }
        let got = self.request(method, params.clone());
        self.log(what, &params["position"], &got);
        got
    }

    fn stop(mut self) {
        let _ = self.request("shutdown", Value::Null);
        self.notify("exit", Value::Null);
        if let Some(h) = self.server.take() {
            // 0: `exit` after `shutdown`.
            assert_eq!(h.join().expect("the server thread"), Ok(0));
        }
    }
}

#[test]
fn a_session_on_the_mlp() {
    let mut c = Client::start();
    let text = std::fs::read_to_string(c.root.join("programs/mlp.dl")).expect("mlp.dl");
    let uri = c.uri();
    c.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": uri, "languageId": "dl", "version": 1, "text": text } }),
    );
    let d = c.diagnostics();
    c.log("didOpen programs/mlp.dl → diagnostics", &json!({}), &d);
    assert_eq!(d, json!([]));
    // Line 22 (0-based 21): `    let h = relu(x @ W1 + b1)`.
    let h = c.at("hover h", "textDocument/hover", 21, 8, json!({}));
    assert!(h["contents"]["value"]
        .as_str()
        .is_some_and(|v| v.contains("f32[B,256]")));
    c.at("hover relu", "textDocument/hover", 21, 13, json!({}));
    c.at("hover W1 (use)", "textDocument/hover", 21, 22, json!({}));
    c.at("hover x (input)", "textDocument/hover", 21, 17, json!({}));
    c.at(
        "hover fashion (data)",
        "textDocument/hover",
        25,
        14,
        json!({}),
    );
    // On `@` of `x @ W1`, and on the `+` of `x @ W1 + b1`: expressions.
    let at = c.at(
        "hover x @ W1 (the @)",
        "textDocument/hover",
        21,
        19,
        json!({}),
    );
    assert!(at["contents"]["value"]
        .as_str()
        .is_some_and(|v| v.contains("x @ W1: f32[B,256]")));
    c.at(
        "hover x @ W1 + b1 (the +)",
        "textDocument/hover",
        21,
        24,
        json!({}),
    );
    // `h @ W2 + b2` on line 23: h's definition is line 22.
    let def = c.at(
        "definition of h",
        "textDocument/definition",
        22,
        4,
        json!({}),
    );
    assert_eq!(def["range"]["start"]["line"], 21);
    c.at(
        "definition of mlp (train)",
        "textDocument/definition",
        25,
        6,
        json!({}),
    );
    c.at(
        "references of W2",
        "textDocument/references",
        19,
        10,
        json!({ "context": { "includeDeclaration": true } }),
    );
    // Inside `train mlp on fashion { ... }`.
    let comp = c.at(
        "completion in train",
        "textDocument/completion",
        29,
        4,
        json!({}),
    );
    let labels: Vec<&str> = comp["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["label"].as_str())
        .collect();
    assert!(labels.contains(&"optimizer") && labels.contains(&"relu"));
    c.transcript.pop();
    c.transcript.push(format!(
        "--> completion in train (line 29)\n<-- settings and more: {:?}",
        &labels[..16.min(labels.len())]
    ));
    let doc = json!({ "textDocument": { "uri": uri } });
    let syms = c.request("textDocument/documentSymbol", doc.clone());
    c.log("documentSymbol", &json!({}), &syms);
    let hints = c.request(
        "textDocument/inlayHint",
        json!({ "textDocument": { "uri": uri }, "range": { "start": { "line": 0, "character": 0 }, "end": { "line": 40, "character": 0 } } }),
    );
    c.log("inlayHint", &json!({}), &hints);
    // A broken edit: W2's rows no longer match h's 256 columns.
    let broken = text.replace("param W2: f32[256, 10]", "param W2: f32[128, 10]");
    c.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": uri, "version": 2 }, "contentChanges": [{ "text": broken }] }),
    );
    let d = c.diagnostics();
    c.log("didChange (W2: f32[128, 10]) → diagnostics", &json!({}), &d);
    assert!(!d.as_array().expect("a list").is_empty());
    // Formatting a messy line.
    let messy = text.replace("    h @ W2 + b2", "    h@W2+b2");
    c.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": uri, "version": 3 }, "contentChanges": [{ "text": messy }] }),
    );
    let _ = c.diagnostics();
    let edits = c.request(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": uri }, "options": { "tabSize": 4, "insertSpaces": true } }),
    );
    assert_eq!(edits[0]["newText"].as_str(), Some(text.as_str()));
    c.transcript
        .push("--> formatting `h@W2+b2`\n<-- one edit: the file as it was".into());
    let transcript = c.transcript.join("\n\n");
    c.stop();
    insta::assert_snapshot!(transcript);
}

/// Whatever the document holds, and wherever the client asks, the server
/// answers and stays up.
#[test]
fn the_server_survives_any_document() {
    let mut c = Client::start();
    let uri = c.uri();
    let docs = [
        "",
        "model",
        "model m(x: f32[B, 2]) -> f32[B, 1] { let h = ",
        "\u{1F600}\u{0301} let é = 1\n\n\n",
        "train t: m on d { loss = }",
        "data d = idx(\"nowhere\")\nmodel m(x: f32[B, 784]) -> f32[B, 10] { x }\ntrain m on d { loss = cross_entropy(output, label) }",
        "((((((((((((((((((((",
    ];
    for (v, text) in docs.iter().enumerate() {
        c.notify(
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": uri, "languageId": "dl", "version": v, "text": text } }),
        );
        let _ = c.diagnostics();
        for line in [0u32, 1, 5, 1000] {
            for ch in [0u32, 1, 3, 7, 400] {
                for m in [
                    "textDocument/hover",
                    "textDocument/definition",
                    "textDocument/completion",
                ] {
                    let _ = c.request(
                        m,
                        json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": ch } }),
                    );
                }
                let _ = c.request(
                    "textDocument/references",
                    json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": ch }, "context": { "includeDeclaration": false } }),
                );
            }
        }
        for m in ["textDocument/documentSymbol", "textDocument/formatting"] {
            let _ = c.request(m, json!({ "textDocument": { "uri": uri } }));
        }
    }
    // An unknown request is MethodNotFound, whatever its parameters.
    for params in [
        json!({}),
        json!({ "textDocument": { "uri": uri } }),
        json!([1]),
    ] {
        let r = c.request("textDocument/nonsense", params);
        assert!(
            r["error"]
                .as_str()
                .is_some_and(|e| e.contains("does not answer")),
            "{r}"
        );
    }
    c.stop();
}

/// The server reads a data source's metadata once while its files stay as
/// they were, and again when one changes.
#[test]
fn data_metadata_is_cached_until_the_file_changes() {
    use dlc::check::data::DataCache;
    let dir = std::env::temp_dir().join(format!("dlc-lsp-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a folder");
    std::fs::write(dir.join("d.csv"), "a,y\n1,2\n3,4\n").expect("written");
    let src = "data d = csv(\"d.csv\", label = \"y\")\n";
    let (program, _) = dlc::syntax::parse(src);
    let dlc::syntax::ast::Item::Data(decl) = &program.items[0] else {
        panic!("a data item");
    };
    let cache = DataCache::default();
    let calls = std::cell::Cell::new(0);
    let read = || {
        cache.describe(decl, (dir.as_path(), None), || {
            calls.set(calls.get() + 1);
            let opts = dlc::check::Options {
                base_dir: dir.clone(),
                ..Default::default()
            };
            let (checked, diags) = dlc::check::check(&program, &opts);
            (checked.data.into_iter().next(), diags)
        })
    };
    let first = read().0.expect("described");
    assert_eq!(first.rows.read, 2);
    let _ = read();
    assert_eq!(calls.get(), 1, "read again with the file unchanged");
    std::fs::write(dir.join("d.csv"), "a,y\n1,2\n3,4\n5,6\n").expect("written");
    let again = read().0.expect("described");
    assert_eq!(calls.get(), 2);
    assert_eq!(again.rows.read, 3);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- `dlc lsp` as an editor runs it: a real process on pipes ----

/// A running `dlc lsp` under a 4 GiB address-space limit (as the fuzz
/// test's runs), with a thread that parses what it writes into messages.
struct Server {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    answers: std::sync::mpsc::Receiver<Value>,
}

/// One framed message, as a client sends it.
fn framed(body: &str) -> Vec<u8> {
    format!("Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

impl Server {
    fn start() -> Server {
        use std::process::{Command, Stdio};
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("ulimit -v 4194304; exec \"$0\" lsp")
            .arg(env!("CARGO_BIN_EXE_dlc"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dlc lsp starts");
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let (tx, answers) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::{BufRead, Read};
            loop {
                let mut length = None;
                loop {
                    let mut line = String::new();
                    if stdout.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(n) = line.strip_prefix("Content-Length: ") {
                        length = n.parse::<usize>().ok();
                    }
                }
                let mut body = vec![0; length.expect("every answer has a Content-Length")];
                if stdout.read_exact(&mut body).is_err() {
                    return;
                }
                let value = serde_json::from_slice(&body).expect("every answer is JSON");
                if tx.send(value).is_err() {
                    return;
                }
            }
        });
        Server {
            stdin: child.stdin.take(),
            child,
            answers,
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("stdin open");
        // The server may have stopped reading: then the write fails.
        let _ = stdin.write_all(bytes).and_then(|_| stdin.flush());
    }

    fn request(&mut self, id: i32, method: &str, params: Value) -> Value {
        self.send(&framed(
            &json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }).to_string(),
        ));
        self.answer_to(&json!(id))
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(&framed(
            &json!({ "jsonrpc": "2.0", "method": method, "params": params }).to_string(),
        ));
    }

    /// The next answer with this id (notifications are passed over).
    fn answer_to(&self, id: &Value) -> Value {
        loop {
            let got = self
                .answers
                .recv_timeout(std::time::Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no answer to {id}"));
            if got.get("id") == Some(id) {
                return got;
            }
        }
    }

    /// The exit code once the process has ended, at most `within` later;
    /// else the process is killed and the test fails.
    fn exit_code(mut self, within: std::time::Duration) -> i32 {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("waits") {
                return status.code().expect("an exit code, not a signal");
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("dlc lsp still running {within:?} later (killed)");
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

/// A test that fails leaves no process behind.
impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Initializes a process and asks something of it.
fn started() -> Server {
    let mut s = Server::start();
    let init = s.request(1, "initialize", json!({ "capabilities": {} }));
    assert!(init["result"]["capabilities"].is_object(), "{init}");
    s.notify("initialized", json!({}));
    s.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": "file:///tmp/a.dl", "languageId": "dl", "version": 1, "text": "let x = 1\n" } }),
    );
    let hover = s.request(
        2,
        "textDocument/hover",
        json!({ "textDocument": { "uri": "file:///tmp/a.dl" }, "position": { "line": 0, "character": 4 } }),
    );
    assert!(hover.get("error").is_none(), "{hover}");
    s
}

const ONE_SECOND: std::time::Duration = std::time::Duration::from_secs(1);

/// The specification: after `shutdown` and `exit` the server ends with 0,
/// within a second of `exit` (stdin still open, as an editor keeps it).
#[test]
fn the_process_exits_0_after_shutdown_and_exit() {
    let mut s = started();
    let done = s.request(3, "shutdown", Value::Null);
    assert_eq!(done["result"], Value::Null, "{done}");
    // After shutdown, a request is refused.
    let late = s.request(4, "textDocument/hover", json!({}));
    assert_eq!(late["error"]["code"], json!(-32600), "{late}");
    s.notify("exit", Value::Null);
    assert_eq!(s.exit_code(ONE_SECOND), 0);
}

/// `exit` without `shutdown` ends the server with 1.
#[test]
fn the_process_exits_1_after_exit_alone() {
    let mut s = started();
    s.notify("exit", Value::Null);
    assert_eq!(s.exit_code(ONE_SECOND), 1);
}

/// The end of stdin without `exit` ends the server (with 1), before
/// `initialize` too.
#[test]
fn the_process_ends_with_its_input() {
    let mut s = started();
    s.stdin = None;
    assert_eq!(s.exit_code(ONE_SECOND), 1);
    let mut s = Server::start();
    s.stdin = None;
    assert_eq!(s.exit_code(std::time::Duration::from_secs(10)), 1);
}

/// An unknown request method is MethodNotFound, whatever its parameters
/// and whether or not they name an open document.
#[test]
fn an_unknown_method_is_method_not_found() {
    let mut s = started();
    for (id, params) in [
        json!({}),
        json!([1, 2]),
        Value::Null,
        json!({ "textDocument": { "uri": "file:///tmp/a.dl" } }),
        json!({ "textDocument": { "uri": "file:///nowhere.dl" }, "position": { "line": 0, "character": 0 } }),
    ]
    .into_iter()
    .enumerate()
    {
        let got = s.request(10 + id as i32, "dlc/nonsense", params);
        assert_eq!(got["error"]["code"], json!(-32601), "{got}");
    }
    s.request(20, "shutdown", Value::Null);
    s.notify("exit", Value::Null);
    assert_eq!(s.exit_code(ONE_SECOND), 0);
}

/// An error answer with id null whose message contains `says`.
fn null_id_error(s: &Server, says: &str) -> Value {
    let got = s.answer_to(&Value::Null);
    let message = got["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(says), "{got}");
    got
}

/// A message over 64 MiB is answered with an error and read past without
/// being kept, and the session goes on; invalid JSON and messages that are
/// not JSON-RPC are answered too.
#[test]
fn a_message_too_large_or_not_json_is_answered_and_the_session_goes_on() {
    let mut s = started();
    let n = 64 * 1024 * 1024 + 1000;
    let mut big = format!("Content-Length: {n}\r\n\r\n").into_bytes();
    big.resize(big.len() + n, b' ');
    s.send(&big);
    let got = null_id_error(&s, "over the limit of 64 MiB");
    assert_eq!(got["error"]["code"], json!(-32600), "{got}");
    s.send(&framed("{\"jsonrpc\": \"2.0\", \"id\": "));
    let got = null_id_error(&s, "not JSON");
    assert_eq!(got["error"]["code"], json!(-32700), "{got}");
    s.send(&framed("[1]"));
    let got = null_id_error(&s, "JSON object");
    assert_eq!(got["error"]["code"], json!(-32600), "{got}");
    s.send(&framed("{\"jsonrpc\": \"2.0\", \"id\": 9, \"method\": 5}"));
    let got = s.answer_to(&json!(9));
    assert_eq!(got["error"]["code"], json!(-32600), "{got}");
    let done = s.request(3, "shutdown", Value::Null);
    assert_eq!(done["result"], Value::Null, "{done}");
    s.notify("exit", Value::Null);
    assert_eq!(s.exit_code(ONE_SECOND), 0);
}

/// Framing that cannot be followed — a Content-Length of a terabyte or
/// past i64 or u64, negative, missing, a header line that never ends —
/// is answered with an error and ends the server with 1: no abort (134),
/// no internal error (3), no process left behind, under a 4 GiB
/// address-space limit.
#[test]
fn framing_that_cannot_be_followed_ends_the_server_with_an_error() {
    let cases: [(&[u8], &str); 7] = [
        (b"Content-Length: 1000000000000\r\n\r\n{}", "over the limit"),
        (
            b"Content-Length: 9223372036854775808\r\n\r\n{}",
            "over the limit",
        ),
        (
            b"Content-Length: 18446744073709551616\r\n\r\n{}",
            "not a number",
        ),
        (b"Content-Length: -1\r\n\r\n{}", "not a number"),
        (b"Content-Type: x\r\n\r\n{}", "no Content-Length"),
        (b"Content-Length: 10\r\n\r\n{}", "ended inside a message"),
        (b"hello\r\n\r\n", "not a header"),
    ];
    for (bytes, says) in cases {
        let mut s = started();
        s.send(bytes);
        s.stdin = None;
        null_id_error(&s, says);
        let code = s.exit_code(std::time::Duration::from_secs(10));
        assert_eq!(code, 1, "{}", String::from_utf8_lossy(bytes));
    }
    // A header line that never ends: the server stops reading it at 8 KiB
    // (the writer below fails once it has gone).
    let mut s = started();
    let mut stdin = s.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..256 {
            if stdin.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    null_id_error(&s, "longer than 8 KiB");
    assert_eq!(s.exit_code(std::time::Duration::from_secs(10)), 1);
    writer.join().expect("the writer");
}
