"""A marketplace's webhook receiver for tests: a tiny HTTP/1.1 server on 127.0.0.1 that records
every request and answers a scripted sequence of statuses (then `default`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from cli.stack import LOOPBACK


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int
    at: float

    @property
    def event(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class Receiver:
    script: list[int] = field(default_factory=list)
    default: int = 200
    requests: list[Received] = field(default_factory=list)
    url: str = ""

    def answered(self, status: int | None = None) -> list[Received]:
        return [r for r in self.requests if status is None or r.status == status]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            status = self.script.pop(0) if self.script else self.default
            self.requests.append(Received(headers, body, status, time.time()))
            writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def receiver(script: list[int] | None = None, default: int = 200) -> AsyncIterator[Receiver]:
    box = Receiver(list(script or []), default)
    server = await asyncio.start_server(box._serve, LOOPBACK, 0)
    port = server.sockets[0].getsockname()[1]
    box.url = f"http://{LOOPBACK}:{port}/hooks/offerhub"
    async with server:
        yield box
