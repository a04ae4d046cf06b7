"""The OpenAPI document of every service says every status it can answer, as problem+json.

FastAPI documents a route's success and the statuses its decorator names. This hook adds
what the kit itself can answer on any route and rewrites every error answer to the RFC
9457 problem schema under `application/problem+json` (the media type actually sent):

- 401 on operations that need a token (they depend on `shared.auth.get_principal`);
- 422 (request does not match the schema) on operations with parameters or a body;
- 413 (body over the cap) on operations with a body;
- 400 (malformed Idempotency-Key) and the Idempotency-Key header on every POST;
- 503 everywhere: the database or another dependency may be unreachable.
"""

import json
from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from shared.auth import get_principal
from shared.errors import PROBLEM_JSON
from shared.idempotency import document_idempotency

PROBLEM_REF = "#/components/schemas/Problem"
HTTP_METHODS = ("get", "put", "post", "delete", "patch")
KIT_ANSWERS = {
    400: "A rule the schema cannot express: a body that is not JSON, a malformed cursor "
    "or Idempotency-Key",
    401: "No token, or a token that does not verify",
    413: "Request body over the size cap",
    422: "The request does not match the schema, or an Idempotency-Key reused with another body",
    503: "A dependency (database, signing keys) is unreachable; retry after `Retry-After`",
}
# FastAPI's default 422 schemas, replaced by the problem schema.
UNUSED_SCHEMAS = ("HTTPValidationError", "ValidationError")


def calls_of(dependant: Dependant) -> set[Any]:
    """Every callable a dependant depends on, transitively."""
    calls: set[Any] = set()
    for dependency in dependant.dependencies:
        calls.add(dependency.call)
        calls |= calls_of(dependency)
    return calls


def operations_needing_a_token(routes: Iterable[BaseRoute]) -> set[tuple[str, str]]:
    """(method, path) of the routes whose dependencies verify a token."""
    needing: set[tuple[str, str]] = set()
    for route in routes:
        if not isinstance(route, APIRoute):
            continue
        if get_principal in calls_of(route.dependant):
            needing |= {(method.lower(), route.path) for method in route.methods or ()}
    return needing


def problem_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}},
    }


def declare_problems(document: dict[str, Any], *, needing_a_token: set[tuple[str, str]]) -> None:
    """Add the kit's answers to every operation; every error answer becomes problem+json."""
    for path, item in document.get("paths", {}).items():
        for method in HTTP_METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            statuses = {503}
            if (method, path) in needing_a_token:
                statuses.add(401)
            if operation.get("parameters") or operation.get("requestBody") or method == "post":
                statuses.add(422)
            if operation.get("requestBody"):
                statuses.add(413)
            names = {parameter.get("name") for parameter in operation.get("parameters", [])}
            # A body that is not JSON, a malformed Idempotency-Key or cursor is a 400.
            if method == "post" or operation.get("requestBody") or "cursor" in names:
                statuses.add(400)
            for kit_status in statuses:
                responses.setdefault(str(kit_status), {"description": KIT_ANSWERS[kit_status]})
            for code, response in responses.items():
                if code[:1] in "45":
                    response["content"] = problem_response("")["content"]
                    if not response.get("description"):
                        response["description"] = KIT_ANSWERS.get(int(code), "Problem")
    schemas = document.get("components", {}).get("schemas", {})
    text = json.dumps(document.get("paths", {}))
    for name in UNUSED_SCHEMAS:
        if f'"#/components/schemas/{name}"' not in text:
            schemas.pop(name, None)


def install_contract_openapi(
    app: FastAPI, routes: Iterable[BaseRoute], *, unstored: frozenset[str]
) -> None:
    """Make `app.openapi()` return the completed document (built once, then cached)."""
    generate: Callable[[], dict[str, Any]] = app.openapi
    needing = operations_needing_a_token(routes)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            declare_problems(document, needing_a_token=needing)
            document_idempotency(document, unstored=unstored)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
