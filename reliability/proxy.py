"""A TCP proxy that can drop every connection on demand: the network failure of the
connection-loss scenario. It runs an asyncio loop in a thread of its own.

Kafka clients reconnect to the address the broker advertises, not to the bootstrap address,
so the broker behind this proxy must advertise the proxy's port
(`LocalBroker(port=..., advertised_port=proxy.port)`).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Self

from parafka.core.lifecycle import Background
from parafka.testing.broker import free_port

HOST = "127.0.0.1"


class FlakyProxy(Background):
    """Forwards HOST:`port` to HOST:`target_port`. `cut()` resets every open connection and
    every new one until `restore()`."""

    def __init__(self, target_port: int, port: int | None = None) -> None:
        self.target_port = target_port
        self.port = port or free_port(HOST)
        self.accepted = 0  # connections forwarded
        self.refused = 0  # connections reset because the proxy was cut
        self._down = False
        self._open: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="flaky-proxy", daemon=True)
        self._error: BaseException | None = None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self) -> Self:
        """Start forwarding; returns once listening."""
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        """Stop forwarding and close every connection."""
        if self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(10)

    def cut(self) -> None:
        """Reset every connection now and every new one until `restore()`."""
        asyncio.run_coroutine_threadsafe(self._cut(), self._loop).result(10)

    def restore(self) -> None:
        """Let connections through again."""
        asyncio.run_coroutine_threadsafe(self._restore(), self._loop).result(10)

    # -- the loop's side ---------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stopped = asyncio.Event()
        server = await asyncio.start_server(self._handle, HOST, self.port)
        self._ready.set()
        async with server:
            await self._stopped.wait()
            await self._cut()

    async def _cut(self) -> None:
        self._down = True
        for client, upstream in list(self._open):
            client.transport.abort()  # an RST, as when a network path drops
            upstream.transport.abort()
        self._open.clear()

    async def _restore(self) -> None:
        self._down = False

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._down:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.accepted += 1
        pair = (writer, up_writer)
        self._open.add(pair)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._open.discard(pair)
            writer.transport.abort()
            up_writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes one way until either side closes; then close the other way too."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.transport.abort()
