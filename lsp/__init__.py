"""The assist language server (pygls); started by `assist lsp`."""
