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
//! [`serve`] runs on any connection: the tests drive it in memory.

mod analysis;

use std::collections::HashMap;

use lsp_server::{Connection, Message, Notification, Request, Response};
use lsp_types::notification::Notification as _;
use lsp_types::request::Request as _;
use serde_json::{json, Value};

pub use analysis::Analysis;

/// Serves the client on stdin and stdout until it exits.
pub fn stdio() -> Result<(), String> {
    let (conn, threads) = Connection::stdio();
    serve(&conn)?;
    threads.join().map_err(|e| e.to_string())
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

/// The initialize handshake, then every message until `exit`. Never
/// panics on a client's input: a request it cannot answer gets an error
/// response, a notification it does not know is ignored.
pub fn serve(conn: &Connection) -> Result<(), String> {
    let (id, _params) = conn.initialize_start().map_err(|e| e.to_string())?;
    conn.initialize_finish(
        id,
        json!({
            "capabilities": capabilities(),
            "serverInfo": { "name": "dlc", "version": env!("CARGO_PKG_VERSION") }
        }),
    )
    .map_err(|e| e.to_string())?;
    let mut docs: HashMap<String, Analysis> = HashMap::new();
    let cache = std::sync::Arc::new(crate::check::data::DataCache::default());
    for msg in &conn.receiver {
        match msg {
            Message::Request(req) => {
                if conn.handle_shutdown(&req).map_err(|e| e.to_string())? {
                    return Ok(());
                }
                let resp = answer(&docs, &req);
                conn.sender
                    .send(Message::Response(resp))
                    .map_err(|e| e.to_string())?;
            }
            Message::Notification(n) => {
                if let Some(uri) = document_changed(&mut docs, &n, &cache) {
                    let diags = docs
                        .get(&uri)
                        .map(Analysis::diagnostics)
                        .unwrap_or_default();
                    let note = Notification::new(
                        lsp_types::notification::PublishDiagnostics::METHOD.to_string(),
                        json!({ "uri": uri, "diagnostics": diags }),
                    );
                    conn.sender
                        .send(Message::Notification(note))
                        .map_err(|e| e.to_string())?;
                }
            }
            Message::Response(_) => {}
        }
    }
    Ok(())
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

/// The response to a request.
fn answer(docs: &HashMap<String, Analysis>, req: &Request) -> Response {
    use lsp_types::request::{
        Completion, DocumentSymbolRequest, Formatting, GotoDefinition, HoverRequest,
        InlayHintRequest, References,
    };
    let p = &req.params;
    let uri = p["textDocument"]["uri"].as_str().unwrap_or_default();
    let Some(doc) = docs.get(uri) else {
        return Response::new_ok(req.id.clone(), Value::Null);
    };
    let pos = || -> Option<usize> {
        let line = p["position"]["line"].as_u64()? as usize;
        let ch = p["position"]["character"].as_u64()? as usize;
        doc.offset(line, ch)
    };
    let result = match req.method.as_str() {
        HoverRequest::METHOD => pos().and_then(|o| doc.hover(o)),
        GotoDefinition::METHOD => pos().and_then(|o| doc.definition(o)),
        References::METHOD => pos().map(|o| {
            let with_decl = p["context"]["includeDeclaration"].as_bool().unwrap_or(true);
            doc.references(o, with_decl)
        }),
        Completion::METHOD => pos().map(|o| doc.completion(o)),
        DocumentSymbolRequest::METHOD => Some(doc.symbols()),
        Formatting::METHOD => Some(doc.formatting()),
        InlayHintRequest::METHOD => Some(doc.inlay_hints()),
        _ => {
            return Response::new_err(
                req.id.clone(),
                lsp_server::ErrorCode::MethodNotFound as i32,
                format!("dlc lsp does not answer {}", req.method),
            )
        }
    };
    Response::new_ok(req.id.clone(), result.unwrap_or(Value::Null))
}
