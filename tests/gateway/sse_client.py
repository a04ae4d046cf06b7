"""A small blocking Server-Sent Events client over a raw socket, for the live-stream tests.

A raw socket rather than httpx: `close()` must end the TCP connection at once, from the
test's thread, while a reader thread sits in `recv` (shutdown() wakes it; closing an
httpx response from another thread does not reliably).
"""

import contextlib
import json
import queue
import socket
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Event:
    event: str = "message"
    data: Any = None
    id: str | None = None


@dataclass
class EventStream:
    """One open GET; `status`/`headers` of the answer, events parsed as they come."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""  # the whole body of a non-stream answer (e.g. a 429 problem)
    comments: int = 0
    finished: bool = False  # the body ended with its last chunk (not broken off)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        self.sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=10)
        lines = [f"GET {target} HTTP/1.1", f"host: {parts.netloc}", "accept: text/event-stream"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.events: queue.Queue[Event] = queue.Queue()
        self.ended = threading.Event()
        self.buffer = b""
        head = self._read_until(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split(" ")[1])
        for line in header_lines:
            name, _, value = line.partition(":")
            self.response_headers[name.strip().lower()] = value.strip()
        if self.response_headers.get("content-type", "").startswith("text/event-stream"):
            self.sock.settimeout(None)
            threading.Thread(target=self._read_events, daemon=True).start()
        else:
            self.body = self._read_body()
            self.ended.set()
            self.sock.close()

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        return data

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            self.buffer += self._recv()
        found, _, self.buffer = self.buffer.partition(marker)
        return found

    def _read_exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self.buffer += self._recv()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def _chunks(self) -> Any:
        while True:
            size = int(self._read_until(b"\r\n").split(b";")[0], 16)
            if size == 0:
                self.finished = True
                return
            yield self._read_exactly(size)
            self._read_exactly(2)

    def _read_body(self) -> bytes:
        if "content-length" in self.response_headers:
            return self._read_exactly(int(self.response_headers["content-length"]))
        return b"".join(self._chunks())

    def _read_events(self) -> None:
        pending = b""
        current = Event()
        try:
            for chunk in self._chunks():
                pending += chunk
                while b"\n" in pending:
                    raw, _, pending = pending.partition(b"\n")
                    line = raw.decode()
                    if line == "":
                        if current.data is not None or current.id is not None:
                            self.events.put(current)
                        current = Event()
                    elif line.startswith(":"):
                        self.comments += 1
                    else:
                        name, _, value = line.partition(":")
                        value = value.removeprefix(" ")
                        if name == "data":
                            current.data = json.loads(value)
                        elif name == "event":
                            current.event = value
                        elif name == "id":
                            current.id = value
        except (OSError, ValueError):
            pass
        finally:
            self.ended.set()

    def next(self, event: str = "notification", timeout: float = 10.0) -> Event:
        """The next event of that kind (others are skipped)."""
        while True:
            try:
                item = self.events.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no {event!r} event within {timeout} s") from None
            if item.event == event:
                return item

    def drain(self, event: str = "notification", wait: float = 0.0) -> list[Event]:
        """The events of that kind received so far (after waiting `wait` seconds)."""
        if wait:
            self.ended.wait(wait)
        found: list[Event] = []
        while True:
            try:
                item = self.events.get_nowait()
            except queue.Empty:
                return found
            if item.event == event:
                found.append(item)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.ended.wait(5)

    def __enter__(self) -> "EventStream":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
