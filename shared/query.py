"""Unknown query parameters are a 422, not silently ignored.

FastAPI drops query parameters an endpoint does not declare, so `?sort=votse` or
`?unanswerd=true` quietly answers something else. `StrictQuery` (a route dependency)
compares the request's parameters with every one the endpoint and its dependencies
declare, and refuses the others as a validation error (problem+json, like any 422).
"""

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

_declared: dict[int, frozenset[str]] = {}


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def declared_query_names(route: APIRoute) -> frozenset[str]:
    """The query parameter names a route accepts (cached per route)."""
    names = _declared.get(id(route))
    if names is None:
        names = frozenset(_query_names(route.dependant))
        _declared[id(route)] = names
    return names


def reject_unknown_query(request: Request) -> None:
    """Raise a 422 naming each query parameter the route does not declare."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    unknown = sorted(set(request.query_params.keys()) - declared_query_names(route))
    if unknown:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", name),
                    "msg": "unknown query parameter",
                    "type": "extra_forbidden",
                }
                for name in unknown
            ]
        )


StrictQuery = Depends(reject_unknown_query)
