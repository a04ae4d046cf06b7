"""E-mail endpoints: one-click unsubscribe (no login) and the local outbox page (admins)."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from services.notifications.mail.files import list_stored, read_stored
from services.notifications.mail.rendering import KIND_NAMES, environment
from services.notifications.mail.transport import FileTransport
from services.notifications.mail.unsubscribe import ALL, check_token, do_unsubscribe
from shared.auth import CurrentUser
from shared.db import SessionDep
from shared.errors import Forbidden, NotFound
from shared.idempotency import IdempotentRoute
from shared.settings import Settings

router = APIRouter(prefix="/notifications", tags=["notifications"], route_class=IdempotentRoute)

TokenParam = Annotated[
    str, Query(min_length=1, max_length=500, description="The signed token of the e-mail's link.")
]
BAD_TOKEN: dict[int | str, dict[str, Any]] = {
    400: {"description": "The link is not one Knowflow signed, or was altered"}
}


def _kind_name(kind: str) -> str:
    return "any kind" if kind == ALL else KIND_NAMES.get(kind, kind)


def _page(template: str, **context: object) -> HTMLResponse:
    return HTMLResponse(environment().get_template(template).render(context))


@router.get("/unsubscribe", response_class=HTMLResponse, responses=BAD_TOKEN)
def show_unsubscribe(request: Request, token: TokenParam) -> HTMLResponse:
    """A page with a confirm button: following a link (mail scanners do) changes nothing."""
    unsubscription = check_token(request.app.state.settings, token)
    return _page(
        "unsubscribe.html", done=None, token=token, kind_name=_kind_name(unsubscription.kind)
    )


@router.post("/unsubscribe", response_class=HTMLResponse, responses=BAD_TOKEN)
def unsubscribe(request: Request, session: SessionDep, token: TokenParam) -> HTMLResponse:
    """RFC 8058 one-click unsubscribe: the kind (or every kind) goes to the inbox only."""
    unsubscription = check_token(request.app.state.settings, token)
    changed = do_unsubscribe(session=session, unsubscription=unsubscription)
    return _page(
        "unsubscribe.html",
        done=bool(changed),
        token=token,
        kind_name=_kind_name(unsubscription.kind),
    )


ADMIN_OUTBOX: dict[int | str, dict[str, Any]] = {
    403: {"description": "Not an admin"},
    404: {"description": "E-mail goes to an SMTP server, or no such message"},
}


def _outbox_settings(request: Request, principal: CurrentUser) -> Settings:
    if not principal.is_admin:
        raise Forbidden("only admins see the mail outbox")
    if not isinstance(request.app.state.mail_transport, FileTransport):
        raise NotFound("e-mail goes to an SMTP server; there is no local outbox")
    settings: Settings = request.app.state.settings
    return settings


@router.get("/mail/outbox", response_class=HTMLResponse, responses=ADMIN_OUTBOX)
def show_outbox(request: Request, principal: CurrentUser) -> HTMLResponse:
    """The e-mails written to files because no SMTP server is configured, newest first."""
    settings = _outbox_settings(request, principal)
    return _page(
        "outbox.html", directory=str(settings.mail_dir), messages=list_stored(settings.mail_dir)
    )


@router.get("/mail/outbox/{mail_id}", response_class=HTMLResponse, responses=ADMIN_OUTBOX)
def show_outbox_message(request: Request, principal: CurrentUser, mail_id: str) -> HTMLResponse:
    """One written e-mail: its headers, its text, its HTML as source."""
    settings = _outbox_settings(request, principal)
    message = read_stored(settings.mail_dir, mail_id)
    if message is None:
        raise NotFound("no such e-mail")
    return _page("outbox_message.html", message=message)
