-- Driven by tests/nvim.rs: Neovim's built-in LSP client with `dlc lsp` on
-- a copy of programs/mlp.dl. Writes what it saw to $DLC_OUT, then quits:
-- the hover text on `h` (line 22), then the diagnostics after a shape
-- error is injected (W2's rows no longer match h's 256 columns).
local dlc, file, out = os.getenv("DLC_BIN"), os.getenv("DLC_FILE"), os.getenv("DLC_OUT")
local lines = {}
local function say(s) table.insert(lines, s) end

vim.cmd("edit " .. file)
local bufnr = vim.api.nvim_get_current_buf()
local id = vim.lsp.start_client({
  name = "dlc",
  cmd = { dlc, "lsp" },
  root_dir = vim.fn.fnamemodify(file, ":p:h"),
})
vim.lsp.buf_attach_client(bufnr, id)
local ok = vim.wait(10000, function()
  local c = vim.lsp.get_client_by_id(id)
  return c ~= nil and c.initialized
end, 50)
say("initialized=" .. tostring(ok))

-- Hover on `h` in `    let h = relu(x @ W1 + b1)` (0-based line 21).
local params = { textDocument = { uri = vim.uri_from_bufnr(bufnr) }, position = { line = 21, character = 8 } }
local hover = ""
vim.wait(10000, function()
  local res = vim.lsp.buf_request_sync(bufnr, "textDocument/hover", params, 2000) or {}
  for _, r in pairs(res) do
    if r.result and r.result.contents then
      hover = r.result.contents.value or ""
    end
  end
  return hover ~= ""
end, 100)
say("hover=" .. hover:gsub("\n", " "))

-- The injected error.
vim.api.nvim_buf_set_lines(bufnr, 19, 20, false, { "    param W2: f32[128, 10] = normal(0.01)" })
vim.wait(10000, function() return #vim.diagnostic.get(bufnr) > 0 end, 50)
for _, d in ipairs(vim.diagnostic.get(bufnr)) do
  say("diagnostic=" .. (d.lnum + 1) .. ": " .. d.message:gsub("\n", " "))
end

local f = io.open(out, "w")
f:write(table.concat(lines, "\n") .. "\n")
f:close()
vim.cmd("qa!")
