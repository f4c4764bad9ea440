"""What the mode mixins (`chat_mode`, `agent_mode`) use of `AssistApp`, declared once for mypy."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from textual.app import App

if TYPE_CHECKING:
    from assistant.errors import AssistError
    from assistant.workspace import Workspace


class AppHost(App[int]):
    """The base of the mode mixins; `AssistApp` defines everything declared here."""

    if TYPE_CHECKING:
        ws: Workspace | None
        open_error: AssistError | None
        busy: str
        cancel: threading.Event | None

        def notify_error(self, exc: AssistError) -> None: ...
        def _from_thread(self, callback: Any, *args: Any) -> None: ...
