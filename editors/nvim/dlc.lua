-- dlc's language server in Neovim's built-in LSP client (Neovim 0.7 or
-- later). Put this file on your runtimepath (for example as
-- ~/.config/nvim/plugin/dlc.lua) with `dlc` on your PATH, or `:luafile` it.
-- .dl files get the `dl` filetype, and each one opened starts or reuses a
-- `dlc lsp` for its folder: diagnostics as you type, hover (K), go to
-- definition, references, completion, symbols, formatting and, where
-- Neovim shows them, inlay hints with each `let`'s type.

vim.cmd([[autocmd BufRead,BufNewFile *.dl setfiletype dl]])
vim.cmd([[autocmd FileType dl setlocal commentstring=#\ %s]])

local function start()
  local bufnr = vim.api.nvim_get_current_buf()
  local name = vim.api.nvim_buf_get_name(bufnr)
  local root = vim.fn.fnamemodify(name, ":p:h")
  local id = vim.lsp.start_client({
    name = "dlc",
    cmd = { "dlc", "lsp" },
    root_dir = root,
  })
  if id then
    vim.lsp.buf_attach_client(bufnr, id)
  end
end

vim.api.nvim_create_autocmd("FileType", { pattern = "dl", callback = start })
