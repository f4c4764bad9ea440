"""The Textual front-end; `run_tui` is what the CLI calls (Textual loads only then)."""

from __future__ import annotations


def run_tui(path: str | None = None, *, model: str | None = None) -> int:
    from assistant.tui.app import AssistApp
    from assistant.tui.logfile import log_file_for, logging_to_file

    # AssistApp() starts multiprocessing's resource tracker while stderr is still the terminal.
    app = AssistApp(path, model=model)
    with logging_to_file(log_file_for(path)):
        app.run()
    return app.return_code or 0
