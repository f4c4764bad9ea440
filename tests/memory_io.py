"""An in-memory stand-in for the asyncio reader the LSP framing reads from (the real server
reads stdin or a socket; these tests feed it exact bytes)."""

from __future__ import annotations

import io


class MemoryReader:
    def __init__(self, data: bytes) -> None:
        self.stream = io.BytesIO(data)

    async def readline(self) -> bytes:
        return self.stream.readline()

    async def readexactly(self, n: int) -> bytes:
        return self.stream.read(n)
