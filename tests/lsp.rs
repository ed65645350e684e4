//! `dlc lsp` in memory (issue #20): a session on programs/mlp.dl whose
//! requests and answers are one snapshot — initialize, open and its
//! diagnostics, hover on the model's lines, go to definition, references,
//! completion inside `train { }`, symbols, inlay hints, a broken edit and
//! its diagnostics, formatting — and the server on inputs that break it.

use std::path::PathBuf;
use std::thread::JoinHandle;

use lsp_server::{Connection, Message, Notification, Request, RequestId, Response};
use serde_json::{json, Value};

struct Client {
    conn: Connection,
    server: Option<JoinHandle<Result<(), String>>>,
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
            assert_eq!(h.join().expect("the server thread"), Ok(()));
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
    // An unknown request is an error answer, not a crash.
    let r = c.request("textDocument/nonsense", json!({}));
    assert!(r.get("error").is_some() || r.is_null());
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
    let opts = dlc::check::Options {
        base_dir: dir.clone(),
        ..Default::default()
    };
    let calls = std::cell::Cell::new(0);
    let read = || {
        cache.describe(decl, &opts, || {
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
