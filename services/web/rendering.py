"""Templates, their filters, and the static files (cache-busted by content hash)."""

import hashlib
import mimetypes
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from services.web.markdown import render as render_markdown

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

# Pages load nothing from elsewhere and run no inline script or style: a strict policy
# that a Markdown or template slip cannot turn into script execution.
PAGE_CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    media_type: str
    version: str


def load_static() -> dict[str, StaticFile]:
    """Every file under static/, read once: they are small and change only with a release."""
    files: dict[str, StaticFile] = {}
    for path in sorted(STATIC.rglob("*")):
        if path.is_file():
            body = path.read_bytes()
            name = path.relative_to(STATIC).as_posix()
            media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
            if media_type.startswith("text/") or media_type.endswith("javascript"):
                media_type += "; charset=utf-8"
            files[name] = StaticFile(body, media_type, hashlib.sha256(body).hexdigest()[:12])
    return files


def when(value: str | datetime | None) -> str:
    """A moment as people read it: "5 min ago", "3 days ago", or the date."""
    if value is None:
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = (datetime.now(UTC) - moment).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        hours = int(seconds // 3600)
        return f"{hours} hour{'s' if hours != 1 else ''} ago"
    if seconds < 30 * 86400:
        days = int(seconds // 86400)
        return f"{days} day{'s' if days != 1 else ''} ago"
    return moment.strftime("%-d %b %Y")


def iso(value: str | datetime | None) -> str:
    """A moment for the `datetime` attribute of <time>."""
    if value is None:
        return ""
    return value if isinstance(value, str) else value.isoformat()


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    return f"{count} {singular if count == 1 else (plural_form or singular + 's')}"


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{round(value * 100)}%"


def item_url(kind: str, item_id: Any, thread_id: Any = None) -> str | None:
    """The page showing an item: a reply on its thread's post page (or its own, as
    `GET /posts/{id}` reads a reply too), an answer or a comment on its question's page; an
    answer's own address leads there when its question is not known here. A comment
    without its question has no page (the API has no `GET /comments/{id}`)."""
    if kind in ("question", "post", "article"):
        return f"/{kind}s/{item_id}"
    if kind in ("answer", "comment") and thread_id:
        return f"/questions/{thread_id}#{kind}-{item_id}"
    if kind == "reply":
        return f"/posts/{thread_id}#post-{item_id}" if thread_id else f"/posts/{item_id}"
    if kind == "answer":
        return f"/answers/{item_id}"
    return None


def make_environment(static: dict[str, StaticFile]) -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    environment.filters.update(markdown=render_markdown, when=when, iso=iso, percent=percent)

    def static_url(name: str) -> str:
        return f"/static/{name}?v={static[name].version}"

    environment.globals.update(static=static_url, plural=plural, item_url=item_url)
    return environment
