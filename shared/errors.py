"""Domain errors that carry their HTTP status; one handler in `shared.web` renders them.

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
