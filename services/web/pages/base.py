"""What every page handler gets: the person's session, the API as them, and `render`.

A handler reads what it shows from the API, then renders a template; a form handler
checks the CSRF token, calls the API, and redirects (post/redirect/get) or shows the form
again with the API's refusal next to the fields it names.
"""

import asyncio
import re
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment
from starlette.datastructures import FormData

from services.web.api import (
    Api,
    ApiError,
    ApiUnavailable,
    Forwarding,
    SignInRequired,
)
from services.web.rendering import PAGE_CSP
from services.web.session import Person, Session, session_of
from shared.observability import client_address

# Messages shown once after a redirect, named in the query (`?done=answered`): never
# text from the request itself.
DONE_MESSAGES = {
    "signed-in": "Welcome back.",
    "registered": "Welcome to Knowflow.",
    "signed-out": "You are signed out.",
    "password-reset": "Your password is changed. Sign in with the new one.",
}


class CsrfRefused(Exception):
    """A form came back without this session's CSRF token (or from another site)."""


TAG_SEPARATORS = re.compile(r"[\s,]+")


def parse_tags(text: str) -> list[str]:
    """Tags typed in one field ("deploy, #kubernetes ops"): commas or spaces, '#' optional,
    each once (whatever its case), in order."""
    tags: list[str] = []
    for word in TAG_SEPARATORS.split(text):
        tag = word.lstrip("#")
        if tag and tag.lower() not in (seen.lower() for seen in tags):
            tags.append(tag)
    return tags


def safe_next(target: str | None, default: str = "/") -> str:
    """A same-site path to go to after signing in: nothing that leaves this site."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(character) < 32 for character in target)
    ):
        return default
    return target


@dataclass
class Page:
    """One request's view of Knowflow: who is asking, the API as them, the templates."""

    request: Request
    session: Session
    api: Api
    templates: Environment
    # The inbox badge's count, asked for as the request starts (alongside the page's own
    # reads) on a signed-in GET, awaited when the page renders.
    unread: "asyncio.Task[Any] | None" = None

    @property
    def person(self) -> Person | None:
        return self.session.person if self.session.signed_in else None

    def require_person(self) -> Person:
        """The signed-in person, or a redirect to the sign-in page (then back here)."""
        person = self.person
        if person is None:
            raise SignInRequired(401, "please sign in")
        return person

    async def form(self) -> FormData:
        """The submitted form, after checking it carries this session's CSRF token."""
        if self.request.headers.get("sec-fetch-site") == "cross-site":
            raise CsrfRefused
        form = await self.request.form()
        token = form.get("csrf_token")
        if not isinstance(token, str) or not self.session.check_csrf(token):
            raise CsrfRefused
        return form

    async def render(self, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
        unread = 0
        if self.person is not None:
            if self.unread is None:
                self.unread = asyncio.create_task(self.api.get("/notifications/unread-count"))
            try:
                unread = int((await self.unread)["unread"])
            except (ApiError, ApiUnavailable, KeyError, TypeError):
                unread = 0  # the badge is not worth failing the page for
        done = DONE_MESSAGES.get(self.request.query_params.get("done", ""))
        html = self.templates.get_template(template).render(
            person=self.person,
            csrf_token=self.session.csrf,
            unread=unread,
            done=done,
            path=self.request.url.path,
            **context,
        )
        return html_response(html, status=status, personal=self.person is not None)


def html_response(html: str, *, status: int = 200, personal: bool = True) -> HTMLResponse:
    headers = {
        "content-security-policy": PAGE_CSP,
        # A signed-in person's pages are theirs alone: never stored on the way.
        "cache-control": "no-store" if personal else "no-cache",
        "referrer-policy": "same-origin",
        "x-frame-options": "DENY",
    }
    return HTMLResponse(html, status_code=status, headers=headers)


def redirect(path: str, **query: str) -> RedirectResponse:
    """303 to a page of this site (after a form: post/redirect/get)."""
    target = path + ("?" + urlencode(query) if query else "")
    return RedirectResponse(target, status_code=303)


def sign_in_redirect(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(here, safe='')}", status_code=303)


async def page_of(request: Request) -> Page:
    state = request.app.state
    session = session_of(request)
    page = Page(
        request=request,
        session=session,
        api=Api(
            state.api_client,
            session,
            state.refreshes,
            Forwarding(state.forwarding_key, client_address(request)),
        ),
        templates=state.templates,
    )
    if request.method == "GET" and session.signed_in:
        page.unread = asyncio.create_task(page.api.get("/notifications/unread-count"))
        # A page that fails before rendering never awaits it: nothing to report then.
        page.unread.add_done_callback(lambda task: task.cancelled() or task.exception())
    return page


PageDep = Annotated[Page, Depends(page_of)]
