// Starts `dlc lsp` for .dl files (the language client does the rest).
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const command = vscode.workspace.getConfiguration("dlc").get("path") || "dlc";
  client = new LanguageClient(
    "dlc",
    "dlc",
    { command, args: ["lsp"] },
    { documentSelector: [{ scheme: "file", language: "dl" }] }
  );
  context.subscriptions.push({ dispose: () => client && client.stop() });
  client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
