-- Headless Neovim as the LSP client of `assist lsp`, for tests/test_neovim.py.
-- Opens a file of the fixture repository, attaches the server with Neovim's own client, asks
-- for a completion, an inline completion and workspace symbols, and writes what came back as
-- JSON to $ASSIST_NVIM_OUT. Configuration a user copies is in docs/editors.md.
local out_path = vim.env.ASSIST_NVIM_OUT
local result = { errors = {} }

local function finish()
  local f = assert(io.open(out_path, "w"))
  f:write(vim.json.encode(result))
  f:close()
  vim.cmd("qa!")
end

local ok, err = pcall(function()
  local file = vim.env.ASSIST_NVIM_FILE
  vim.cmd("edit " .. vim.fn.fnameescape(file))
  local buf = vim.api.nvim_get_current_buf()
  local client_id = vim.lsp.start({
    name = "assist",
    cmd = { vim.env.ASSIST_BIN, "lsp" },
    root_dir = vim.env.ASSIST_NVIM_ROOT,
  }, { bufnr = buf })
  result.client_id = client_id
  local attached = vim.wait(20000, function()
    return #vim.lsp.get_clients({ bufnr = buf, name = "assist" }) > 0
  end, 50)
  result.attached = attached
  local client = vim.lsp.get_client_by_id(client_id)
  result.version = tostring(vim.version())

  -- An unsaved edit: the completion must see it (it is the only call of `area_of_circle` here).
  vim.api.nvim_buf_set_lines(buf, 6, 6, false, { "def edited():", "    return area_of" })
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(buf) },
    position = { line = 7, character = 18 },
  }
  local resp = client:request_sync("textDocument/completion", params, 30000, buf)
  result.completion = resp and (resp.result or resp.err) or "timeout"

  if client.server_capabilities.inlineCompletionProvider then
    local iparams = vim.tbl_extend("force", params, { context = { triggerKind = 1 } })
    local iresp = client:request_sync("textDocument/inlineCompletion", iparams, 30000, buf)
    result.inline = iresp and (iresp.result or iresp.err) or "timeout"
  end

  -- Wait for the first index to be usable, then ask for workspace symbols.
  local symbols
  vim.wait(30000, function()
    local sresp = client:request_sync("workspace/symbol", { query = "Rectangle" }, 10000, buf)
    symbols = sresp and sresp.result
    return symbols ~= nil and #symbols > 0
  end, 200)
  result.symbols = symbols
  local dresp = client:request_sync("textDocument/documentSymbol", {
    textDocument = { uri = vim.uri_from_bufnr(buf) },
  }, 10000, buf)
  result.document_symbols = dresp and dresp.result
  client:stop()
  vim.wait(5000, function() return client:is_stopped() end, 50)
end)
if not ok then
  table.insert(result.errors, tostring(err))
end
finish()
