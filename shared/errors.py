"""Domain errors that carry their HTTP status, and their rendering as RFC 9457 problem+json.

`problem_response` is the one renderer: the services' handler (`shared.web`) and the gateway
use it, and it needs no database, bus or migration code.

KnowflowError
 ├── BadRequest      400  the request is well-formed JSON but breaks a rule
 ├── Unauthorized    401  no token, or a token that does not verify
 ├── Forbidden       403  authenticated, but not allowed
 ├── NotFound        404  unknown id, or an item the caller may not see
 ├── Conflict        409  the change clashes with existing state
 ├── PreconditionFailed 412  If-Match names a version that is no longer current
 ├── UnprocessableContent 422  valid JSON that a rule refuses (e.g. a common password)
 └── Unavailable     503  a dependency (e.g. identity's signing keys) cannot be reached
"""

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from starlette.responses import JSONResponse

from shared.observability import forwarded_prefix_var, request_id_var

PROBLEM_JSON = "application/problem+json"


class KnowflowError(Exception):
    status = 500
    title = "Internal Server Error"
    headers: dict[str, str] = {}  # sent with the problem (e.g. WWW-Authenticate)

    def __init__(self, detail: str, **extensions: object) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions


class BadRequest(KnowflowError):
    status = 400
    title = "Bad Request"


class Unauthorized(KnowflowError):
    status = 401
    title = "Unauthorized"
    headers = {"WWW-Authenticate": "Bearer"}  # RFC 9110 15.5.2: a 401 names its scheme


class Forbidden(KnowflowError):
    status = 403
    title = "Forbidden"


class NotFound(KnowflowError):
    status = 404
    title = "Not Found"


class Conflict(KnowflowError):
    status = 409
    title = "Conflict"


class PreconditionFailed(KnowflowError):
    status = 412
    title = "Precondition Failed"


class UnprocessableContent(KnowflowError):
    status = 422
    title = "Unprocessable Content"


class Unavailable(KnowflowError):
    status = 503
    title = "Service Unavailable"
    headers = {"Retry-After": "5"}  # an outage is worth retrying, shortly


def problem_response(
    status: int,
    detail: str | None,
    *,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """A problem+json response; `instance` gets the gateway's prefix, the body the request id."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": forwarded_prefix_var.get() + instance if instance else instance,
        "request_id": request_id_var.get(),
    }
    body.update({key: value for key, value in extensions.items() if value is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)
