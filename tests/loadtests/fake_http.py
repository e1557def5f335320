"""A minimal keep-alive HTTP/1.1 server for the load generator's tests: it answers every
request after `delay` seconds, with the status and extra headers it is given."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class FakeServer:
    delay: float = 0.0
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False
    body: bytes = b'{"ok": true}'
    port: int = 0
    connections: int = 0
    requests: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                self.requests += 1
                await asyncio.sleep(self.delay)
                writer.write(self.response())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def response(self) -> bytes:
        lines = [f"HTTP/1.1 {self.status} X", *(f"{name}: {value}" for name, value in self.headers.items())]
        if self.chunked:
            half = len(self.body) // 2
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (self.body[:half], self.body[half:]))
            return ("\r\n".join([*lines, "Transfer-Encoding: chunked"]) + "\r\n\r\n").encode() + chunks + b"0\r\n\r\n"
        return ("\r\n".join([*lines, f"Content-Length: {len(self.body)}"]) + "\r\n\r\n").encode() + self.body


@asynccontextmanager
async def serving(fake: FakeServer) -> AsyncIterator[FakeServer]:
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    fake.port = server.sockets[0].getsockname()[1]
    try:
        yield fake
    finally:
        server.close()
