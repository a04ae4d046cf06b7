"""A TCP forwarder a test controls: pass traffic to a real server, cut it, or stall it."""

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

Mode = Literal["pass", "stall", "refuse"]


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `target`; `mode` says what happens to the bytes.

    - pass: bytes flow both ways.
    - stall: connections stay open (new ones are accepted) but no byte moves, like a
      frozen server or a network that drops packets silently.
    - refuse: every open connection is reset and new ones are closed at once.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode: Mode = "pass"
        self._loop = asyncio.new_event_loop()
        self._flowing = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = listener.getsockname()[1]
        self._thread = threading.Thread(target=self._run, args=(listener,), daemon=True)
        self._thread.start()

    def _run(self, listener: socket.socket) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._flowing.set)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, sock=listener))
        try:
            self._loop.run_forever()
        finally:
            server.close()
            self._loop.run_until_complete(server.wait_closed())
            self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "refuse":
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )
        for each in (writer, up_writer):
            self._writers.discard(each)
            each.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            await self._flowing.wait()
            writer.write(data)
            await writer.drain()
        writer.transport.abort()

    def set_mode(self, mode: Mode) -> None:
        """Change what happens to traffic, for open and new connections."""

        async def apply() -> None:
            self.mode = mode
            if mode == "pass":
                self._flowing.set()
            else:
                self._flowing.clear()
            if mode == "refuse":
                for writer in list(self._writers):
                    writer.transport.abort()
                self._writers.clear()

        asyncio.run_coroutine_threadsafe(apply(), self._loop).result(timeout=5)

    def close(self) -> None:
        async def stop() -> None:
            for writer in list(self._writers):
                writer.transport.abort()
            # Forwarding tasks end here rather than being destroyed pending with the loop.
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(stop(), self._loop)
        self._thread.join(timeout=5)


@contextmanager
def tcp_proxy(target_host: str, target_port: int) -> Iterator[TcpProxy]:
    proxy = TcpProxy(target_host, target_port)
    try:
        yield proxy
    finally:
        proxy.close()
