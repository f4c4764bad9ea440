"""LSP framing: reading messages from a byte stream that may be broken anywhere, and writing them.

pygls's reader trusts its input: `Content-Length: 99999999999999` makes it allocate until the
process dies, and after one malformed header block (a length that is not a number, negative or
missing, LF-only line ends, a lowercase name) the body that follows is read as headers, gluing
the next valid message's header onto it, so requests go unanswered until a stray CRLF comes.

Here a header block without a usable length is dropped, and the bytes after it are read as lines
until a `Content-Length` shows up again, even in the middle of a line (where it follows an
unterminated body): the next valid message is never lost. Header names match in any case, line
ends may be LF or CRLF, and lengths are bounded.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Protocol

MAX_CONTENT_LENGTH = 64 * 1024 * 1024
"""Larger messages are refused: no editor sends a 64 MB request, and reading one is memory."""
_LENGTH = re.compile(rb"content-length[ \t]*:[ \t]*(-?\d+)[ \t]*\r?\n?$", re.IGNORECASE)
_NAME = b"content-length"


class AsyncReader(Protocol):
    async def readline(self) -> bytes: ...
    async def readexactly(self, n: int) -> bytes: ...


async def frames(reader: AsyncReader, log: logging.Logger) -> AsyncIterator[bytes]:
    """Message bodies, one per well-formed frame, until the stream ends."""
    length: int | None = None
    while True:
        line = await reader.readline()
        if not line:
            return
        at = line.lower().find(_NAME)
        if at >= 0:
            if at > 0 and line[:at].strip():
                log.warning("dropped %d bytes that were not a message", at)
            match = _LENGTH.match(line[at:])
            size = int(match.group(1)) if match else -1
            if 0 <= size <= MAX_CONTENT_LENGTH:
                length = size
            else:
                log.warning("refused a header: %r", line[at : at + 80])
                length = None
            continue
        if line.strip():
            continue  # another header (Content-Type), or bytes being skipped to resynchronise
        if length is None:
            continue  # a header block without a usable length: look for the next one
        body = await reader.readexactly(length) if length else b""
        if len(body) < length:
            return  # the stream ended inside the body
        length = None
        yield body


def frame(body: bytes) -> bytes:
    """One outgoing message: the header pygls would write, then the body."""
    return (
        b"Content-Length: %d\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n"
        % len(body)
        + body
    )
