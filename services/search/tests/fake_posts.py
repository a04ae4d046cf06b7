"""A stand-in for posts' `GET /internal/content` over real HTTP, for rebuild tests.

Search's tests may not import the posts service (services meet only through HTTP and
events), so this serves the same contract: `Page[ContentSnapshot]` in id order, an
opaque cursor, pages capped at 100, admins only. Tests change `items` exactly as posts
would: before the matching event is published (posts commits, then its outbox relays).
"""

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse
from uuid import UUID

from shared.auth import TokenVerifier
from shared.events.contracts import ContentSnapshot
from shared.pagination import decode_cursor, encode_cursor


class FakePosts:
    def __init__(self, verifier: TokenVerifier, page_delay: float = 0.0) -> None:
        self.verifier = verifier
        self.page_delay = page_delay
        self.items: dict[UUID, ContentSnapshot] = {}
        self.lock = threading.Lock()
        self.pages_served = 0

    def put(self, item: ContentSnapshot) -> None:
        with self.lock:
            self.items[item.content_id] = item

    def remove(self, content_id: UUID) -> None:
        with self.lock:
            self.items.pop(content_id, None)

    def page(self, cursor: str | None, limit: int) -> dict[str, object]:
        after = decode_cursor(cursor, 1)
        with self.lock:
            ordered = sorted(self.items.values(), key=lambda item: item.content_id)
        if after is not None:
            ordered = [item for item in ordered if str(item.content_id) > after[0]]
        page = ordered[:limit]
        more = len(ordered) > limit
        self.pages_served += 1
        time.sleep(self.page_delay)
        return {
            "items": [item.model_dump(mode="json") for item in page],
            "next_cursor": encode_cursor([str(page[-1].content_id)]) if more else None,
        }


@contextmanager
def serve_fake_posts(posts: FakePosts) -> Iterator[str]:
    """Serve `posts` on 127.0.0.1; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path != "/internal/content":
                return self.reply(404, {"detail": "not found"})
            try:
                token = self.headers.get("authorization", "").removeprefix("Bearer ")
                principal = posts.verifier.verify(token)
            except Exception:
                return self.reply(401, {"detail": "bad token"})
            if not principal.is_admin:
                return self.reply(403, {"detail": "admins only"})
            query = parse_qs(url.query)
            limit = min(int(query.get("limit", ["100"])[0]), 100)
            cursor = query.get("cursor", [None])[0]
            return self.reply(200, posts.page(cursor, limit))

        def reply(self, status: int, body: object) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
