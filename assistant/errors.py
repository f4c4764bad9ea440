"""The one kind of failure a front-end shows to a person instead of a traceback."""

from __future__ import annotations


class AssistError(Exception):
    """A failure the user can act on: a one-line message and the fix."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message
