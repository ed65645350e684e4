//! `dlc lsp`: a language server over stdio (issue #20), on rust-analyzer's
//! synchronous `lsp-server` scaffold and `lsp-types`.
//!
//! Every open document is parsed and checked as `dlc check` does (data
//! files found from the document's folder, their metadata read once and
//! cached while the files stay unchanged: `check::data::DataCache`), on
//! open and on every change, and the checker's diagnostics are published
//! with their codes, ranges and related spans. Requests are answered from that analysis:
//!
//! - hover: a name's or an expression's type (`h: f32[B,256]`, from the typed IR of a run that
//!   trains the model), a parameter's initializer, a data source's parts
//!   and shapes, a builtin's signature and one line;
//! - definition and references: lets, params, model inputs, fns, models,
//!   data sources and runs, by the language's scopes (a model's or fn's
//!   own names, then the program's);
//! - completion: the settings inside `train { }`, else the builtins and
//!   the names in scope;
//! - document symbols, formatting (`dlc fmt`), and inlay hints with the
//!   type of each `let` in a model.
//!
//! [`serve`] runs on any connection: the tests drive it in memory. [`stdio`]
//! gives it one over stdin and stdout whose framing is read by `framing.rs`
//! (a message is at most 64 MiB and never allocated before that is known),
//! and ends the process as the specification asks: at `exit`, with code 0
//! when `shutdown` came first and 1 otherwise, and with 1 at the end of the
//! input.

mod analysis;
mod framing;

use std::collections::HashMap;
use std::io::Write;

use crossbeam_channel::{Receiver, Sender};
use lsp_server::{Connection, ErrorCode, Message, Notification, Request, Response};
use lsp_types::notification::Notification as _;
use lsp_types::request::Request as _;
use serde::Deserialize;
use serde_json::{json, Value};

pub use analysis::Analysis;
pub use framing::{MAX_HEADERS, MAX_HEADER_LINE, MAX_MESSAGE};

/// Serves the client on stdin and stdout until `exit` or the end of the
/// input; returns the exit code (0 after `shutdown` then `exit`, else 1).
pub fn stdio() -> Result<i32, String> {
    // Rendezvous, as lsp-server's own: a client that sends faster than the
    // server answers waits in its pipe, not in this process's memory.
    let (to_server, from_client) = crossbeam_channel::bounded::<Message>(0);
    let (to_client, from_server) = crossbeam_channel::unbounded::<Message>();
    let spawn = |name: &str| std::thread::Builder::new().name(name.to_string());
    let writer = spawn("lsp-writer")
        .spawn(move || write_messages(&from_server))
        .map_err(|e| e.to_string())?;
    // Never joined: after `exit` it may be waiting on stdin, and the
    // process ends without it.
    spawn("lsp-reader")
        .spawn(move || read_messages(&to_server))
        .map_err(|e| e.to_string())?;
    let conn = Connection {
        sender: to_client,
        receiver: from_client,
    };
    let served = serve(&conn);
    // The writer ends once the connection's sender is gone and every
    // answer is written.
    drop(conn);
    let written = writer
        .join()
        .map_err(|_| "the writer thread failed".to_string())?;
    let code = served?;
    written.map_err(|e| format!("cannot write to stdout: {e}"))?;
    Ok(code)
}

/// The writer thread: every message the server sends, framed, to stdout.
fn write_messages(from_server: &Receiver<Message>) -> std::io::Result<()> {
    for msg in from_server {
        msg.write(&mut std::io::stdout().lock())?;
    }
    Ok(())
}

/// The reader thread: every message on stdin to the server, until `exit`
/// (forwarded), the end of the input or a framing it cannot follow. A
/// message it cannot pass on is answered here, with id null where it has
/// none.
fn read_messages(to_server: &Sender<Message>) {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    loop {
        let body = match framing::read(&mut input) {
            framing::Frame::Body(b) => b,
            framing::Frame::TooLarge(n) => {
                answer_unread(
                    Value::Null,
                    ErrorCode::InvalidRequest,
                    &format!(
                        "a message of {n} bytes is over the limit of {} MiB; it is skipped",
                        framing::MAX_MESSAGE >> 20
                    ),
                );
                if framing::skip(&mut input, n) {
                    continue;
                }
                return;
            }
            framing::Frame::Broken(why) => {
                answer_unread(
                    Value::Null,
                    ErrorCode::ParseError,
                    &format!("{why}; dlc lsp stops"),
                );
                return;
            }
            framing::Frame::End => return,
        };
        let value: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                answer_unread(
                    Value::Null,
                    ErrorCode::ParseError,
                    &format!("the message is not JSON: {e}"),
                );
                continue;
            }
        };
        let msg = match message(&value) {
            Ok(m) => m,
            Err(why) => {
                // Its id when it has one a client can match.
                let id = match &value["id"] {
                    id @ (Value::Number(_) | Value::String(_)) => id.clone(),
                    _ => Value::Null,
                };
                answer_unread(id, ErrorCode::InvalidRequest, &why);
                continue;
            }
        };
        let exit = matches!(&msg, Message::Notification(n) if n.method == "exit");
        if to_server.send(msg).is_err() || exit {
            return;
        }
    }
}

/// The message a JSON value is: an object with a string `method` (a
/// request when it also has an id, a number or a string, else a
/// notification), or without one a response. lsp-server's untagged enum
/// alone would take `[1]` or `{"id": 1, "method": 5}` for a response.
fn message(value: &Value) -> Result<Message, String> {
    let Some(object) = value.as_object() else {
        return Err("a message must be a JSON object".into());
    };
    let what = match (object.get("method"), object.get("id")) {
        (Some(Value::String(_)), None | Some(Value::Null)) => "a notification",
        (Some(Value::String(_)), Some(Value::Number(_) | Value::String(_))) => "a request",
        (Some(Value::String(_)), Some(_)) => {
            return Err("a request's id must be a number or a string".into())
        }
        (Some(_), _) => return Err("a message's method must be a string".into()),
        (None, _) => "a response",
    };
    let msg = Message::deserialize(value).map_err(|e| format!("not {what}: {e}"))?;
    match (&msg, what) {
        (Message::Request(_), "a request")
        | (Message::Notification(_), "a notification")
        | (Message::Response(_), "a response") => Ok(msg),
        _ => Err(format!("not {what}")),
    }
}

/// Answers a message the server never saw with a JSON-RPC error.
fn answer_unread(id: Value, code: ErrorCode, message: &str) {
    let text = json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": { "code": code as i32, "message": message }
    })
    .to_string();
    let mut out = std::io::stdout().lock();
    // A client that closed stdout hears nothing more; the server ends at
    // its next answer.
    let _ = write!(out, "Content-Length: {}\r\n\r\n{text}", text.len()).and_then(|_| out.flush());
}

/// What the server offers (`initialize`'s answer).
fn capabilities() -> Value {
    json!({
        "textDocumentSync": 1,
        "hoverProvider": true,
        "definitionProvider": true,
        "referencesProvider": true,
        "documentSymbolProvider": true,
        "documentFormattingProvider": true,
        "inlayHintProvider": true,
        "completionProvider": { "triggerCharacters": ["."] }
    })
}

/// Where the server is in the protocol's lifecycle.
#[derive(Clone, Copy, PartialEq)]
enum Stage {
    /// Before `initialize`: other requests get ServerNotInitialized.
    Starting,
    Running,
    /// After `shutdown`: only `exit` is expected.
    ShutDown,
}

/// Serves every message until `exit` or the end of the input, and returns
/// the exit code the specification asks for: 0 at an `exit` after
/// `shutdown`, 1 at an `exit` without it or at the end of the input. Never
/// panics on a client's input: a request it cannot answer gets an error
/// response, a notification it does not know is ignored. `Err` only when
/// the client can no longer be written to.
pub fn serve(conn: &Connection) -> Result<i32, String> {
    use lsp_types::notification::Exit;
    use lsp_types::request::{Initialize, Shutdown};
    let mut stage = Stage::Starting;
    let mut docs: HashMap<String, Analysis> = HashMap::new();
    let cache = std::sync::Arc::new(crate::check::data::DataCache::default());
    let send = |m: Message| conn.sender.send(m).map_err(|e| e.to_string());
    for msg in &conn.receiver {
        match msg {
            Message::Notification(n) if n.method == Exit::METHOD => {
                return Ok(if stage == Stage::ShutDown { 0 } else { 1 });
            }
            Message::Request(req) => {
                let err = |code: ErrorCode, text: &str| {
                    Response::new_err(req.id.clone(), code as i32, text.to_string())
                };
                let resp = match (stage, req.method.as_str()) {
                    (Stage::Starting, Initialize::METHOD) => {
                        stage = Stage::Running;
                        Response::new_ok(
                            req.id.clone(),
                            json!({
                                "capabilities": capabilities(),
                                "serverInfo": { "name": "dlc", "version": env!("CARGO_PKG_VERSION") }
                            }),
                        )
                    }
                    (Stage::Starting, _) => err(
                        ErrorCode::ServerNotInitialized,
                        "the first request must be `initialize`",
                    ),
                    (Stage::Running, Initialize::METHOD) => err(
                        ErrorCode::InvalidRequest,
                        "the server is already initialized",
                    ),
                    (Stage::Running, Shutdown::METHOD) => {
                        stage = Stage::ShutDown;
                        Response::new_ok(req.id.clone(), Value::Null)
                    }
                    (Stage::Running, _) => answer(&docs, &req),
                    (Stage::ShutDown, _) => err(
                        ErrorCode::InvalidRequest,
                        "the server is shut down; only `exit` is expected",
                    ),
                };
                send(Message::Response(resp))?;
            }
            Message::Notification(n) if stage == Stage::Running => {
                if let Some(uri) = document_changed(&mut docs, &n, &cache) {
                    let diags = docs
                        .get(&uri)
                        .map(Analysis::diagnostics)
                        .unwrap_or_default();
                    let note = Notification::new(
                        lsp_types::notification::PublishDiagnostics::METHOD.to_string(),
                        json!({ "uri": uri, "diagnostics": diags }),
                    );
                    send(Message::Notification(note))?;
                }
            }
            Message::Notification(_) | Message::Response(_) => {}
        }
    }
    Ok(1)
}

/// Applies an open, change or close; returns the document to publish
/// diagnostics for.
fn document_changed(
    docs: &mut HashMap<String, Analysis>,
    n: &Notification,
    cache: &std::sync::Arc<crate::check::data::DataCache>,
) -> Option<String> {
    use lsp_types::notification::{
        DidChangeTextDocument, DidCloseTextDocument, DidOpenTextDocument,
    };
    let p = &n.params;
    let uri = p["textDocument"]["uri"].as_str()?.to_string();
    let text = match n.method.as_str() {
        DidOpenTextDocument::METHOD => p["textDocument"]["text"].as_str()?.to_string(),
        // Full sync: the last change holds the whole text.
        DidChangeTextDocument::METHOD => p["contentChanges"]
            .as_array()?
            .last()?
            .get("text")?
            .as_str()?
            .to_string(),
        // Closed: forgotten, and its diagnostics cleared (none published).
        DidCloseTextDocument::METHOD => {
            docs.remove(&uri);
            return Some(uri);
        }
        _ => return None,
    };
    docs.insert(
        uri.clone(),
        Analysis::with_cache(&uri, &text, Some(std::sync::Arc::clone(cache))),
    );
    Some(uri)
}

/// The response to a request: MethodNotFound for one the server does not
/// answer, whatever its parameters; null for a document never opened.
fn answer(docs: &HashMap<String, Analysis>, req: &Request) -> Response {
    use lsp_types::request::{
        Completion, DocumentSymbolRequest, Formatting, GotoDefinition, HoverRequest,
        InlayHintRequest, References,
    };
    let p = &req.params;
    let uri = p["textDocument"]["uri"].as_str().unwrap_or_default();
    let doc = docs.get(uri);
    let pos = || -> Option<(&Analysis, usize)> {
        let doc = doc?;
        let line = usize::try_from(p["position"]["line"].as_u64()?).ok()?;
        let ch = usize::try_from(p["position"]["character"].as_u64()?).ok()?;
        Some((doc, doc.offset(line, ch)?))
    };
    let result = match req.method.as_str() {
        HoverRequest::METHOD => pos().and_then(|(d, o)| d.hover(o)),
        GotoDefinition::METHOD => pos().and_then(|(d, o)| d.definition(o)),
        References::METHOD => pos().map(|(d, o)| {
            let with_decl = p["context"]["includeDeclaration"].as_bool().unwrap_or(true);
            d.references(o, with_decl)
        }),
        Completion::METHOD => pos().map(|(d, o)| d.completion(o)),
        DocumentSymbolRequest::METHOD => doc.map(Analysis::symbols),
        Formatting::METHOD => doc.map(Analysis::formatting),
        InlayHintRequest::METHOD => doc.map(Analysis::inlay_hints),
        _ => {
            return Response::new_err(
                req.id.clone(),
                ErrorCode::MethodNotFound as i32,
                format!("dlc lsp does not answer {}", req.method),
            )
        }
    };
    Response::new_ok(req.id.clone(), result.unwrap_or(Value::Null))
}
