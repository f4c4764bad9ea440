"""The Textual front-end; `run_tui` is what the CLI calls (Textual loads only then)."""

from __future__ import annotations


def run_tui(path: str | None = None, *, model: str | None = None) -> int:
    from assistant.tui.app import AssistApp

    app = AssistApp(path, model=model)
    app.run()
    return app.return_code or 0
