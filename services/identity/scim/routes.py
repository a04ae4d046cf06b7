"""SCIM 2.0 provisioning (RFC 7643/7644): /scim/v2 Users, Groups and the discovery endpoints.

Resources, list responses, PATCH and filters are scim2-models' (parsed and applied by the
library); this module maps them onto identity's users, groups and memberships, through the
same functions as the rest of identity so the same events are emitted. Answers are
`application/scim+json`; errors are SCIM error bodies (RFC 7644 §3.12), not problem+json.
"""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response
from scim2_models import (
    Context,
    InvalidFilterException,
    InvalidSyntaxException,
    InvalidValueException,
    ListResponse,
    NotFoundException,
    NotImplementedException,
    PatchOp,
    ResourceType,
    ResponseParameters,
    SCIMException,
    ScimFilter,
    SearchRequest,
)
from scim2_models import Group as ScimGroup
from scim2_models import User as ScimUser
from scim2_models.path import (
    AttrPath,
    CompareOperator,
    Comparison,
    FilterNode,
    LogicalExpr,
    LogicalOperator,
)
from sqlmodel import Session

from services.identity.audit import Origin
from services.identity.models import ScimClient
from services.identity.provisioning import ProvisioningClient
from services.identity.scim import store as scim_store
from services.identity.scim.discovery import (
    SCHEMAS,
    SERVICE_PROVIDER_CONFIG,
    resource_types,
)
from shared.db import SessionDep
from shared.idempotency import IdempotentRoute
from shared.settings import Settings

SCIM_JSON = "application/scim+json"
MAX_COUNT = 200

router = APIRouter(prefix="/scim/v2", include_in_schema=False, route_class=IdempotentRoute)


def scim_response(payload: dict[str, Any], status_code: int = 200, **headers: str) -> Response:
    return Response(
        json.dumps(payload, default=str),
        status_code=status_code,
        media_type=SCIM_JSON,
        headers=headers,
    )


async def on_scim_error(request: Request, exc: Exception) -> Response:
    """A SCIM error body (RFC 7644 §3.12) with the exception's status."""
    assert isinstance(exc, SCIMException)
    error = exc.to_error()
    headers = {"WWW-Authenticate": 'Bearer realm="scim"'} if exc.status == 401 else {}
    return scim_response(error.model_dump(scim_ctx=Context.DEFAULT), exc.status, **headers)


async def scim_body(request: Request) -> dict[str, Any]:
    """The request's JSON object, or SCIM 400 invalidSyntax."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise InvalidSyntaxException(detail="the body is not JSON") from None
    if not isinstance(body, dict):
        raise InvalidSyntaxException(detail="the body must be a JSON object")
    return body


Body = Annotated[dict[str, Any], Depends(scim_body)]


def base_url(request: Request) -> str:
    settings: Settings = request.app.state.settings
    return settings.public_url.rstrip("/") + "/scim/v2"


def response_parameters(request: Request) -> ResponseParameters[Any]:
    query = request.query_params
    try:
        return ResponseParameters.model_validate(
            {
                "attributes": query.get("attributes"),
                "excludedAttributes": query.get("excludedAttributes"),
            }
        )
    except Exception as exc:
        raise InvalidValueException(detail=f"bad attributes: {exc}") from None


def dump(resource: ScimUser | ScimGroup, params: ResponseParameters[Any] | None = None) -> Any:
    return resource.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE, response_parameters=params)


def parse(model: type[ScimUser] | type[ScimGroup], body: dict[str, Any], ctx: Context) -> Any:
    """Validate a request body as `model`, or SCIM 400."""
    try:
        return model.model_validate(body, scim_ctx=ctx)
    except SCIMException:
        raise
    except Exception as exc:
        raise InvalidValueException(detail=_first_error(exc)) from None


def _first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
    return str(exc)


def check_id(resource_id: str) -> UUID:
    try:
        return UUID(resource_id)
    except ValueError:
        raise NotFoundException(detail=f"no resource {resource_id}") from None


# --- filters -------------------------------------------------------------------------------

# Attributes whose `eq` is answered by a query; other filters are evaluated on the resources.
INDEXED = {
    "User": {"username", "externalid", "displayname", "id"},
    "Group": {"displayname", "externalid", "id"},
}


def indexed_terms(node: FilterNode, kind: str) -> list[tuple[str, str]] | None:
    """`a eq "x" and b eq "y"` as [(a, x), (b, y)] when every `a` is indexed; else None."""
    if isinstance(node, Comparison):
        path: AttrPath = node.attr_path
        name = path.attr.lower()
        if (
            node.op == CompareOperator.eq
            and path.sub_attr is None
            and name in INDEXED[kind]
            and isinstance(node.value, str)
        ):
            return [(name, node.value)]
        return None
    if isinstance(node, LogicalExpr) and node.op == LogicalOperator.and_:
        terms: list[tuple[str, str]] = []
        for term in node.terms:
            found = indexed_terms(term, kind)
            if found is None:
                return None
            terms.extend(found)
        return terms
    return None


def parse_filter(
    text: str | None, model: type[ScimUser] | type[ScimGroup]
) -> ScimFilter[Any] | None:
    if not text:
        return None
    try:
        return ScimFilter[model](text)  # type: ignore[valid-type]
    except SCIMException as exc:
        raise InvalidFilterException(detail=str(exc)) from None
    except Exception as exc:
        raise InvalidFilterException(detail=f"invalid filter: {exc}") from None


def paging(start_index: Any, count: Any) -> tuple[int, int]:
    """startIndex (1-based, <1 is 1) and count (<0 is 0, capped), as RFC 7644 §3.4.2.4."""
    try:
        start = int(start_index) if start_index not in (None, "") else 1
        size = int(count) if count not in (None, "") else MAX_COUNT
    except (TypeError, ValueError):
        raise InvalidValueException(detail="startIndex and count are integers") from None
    return max(start, 1), min(max(size, 0), MAX_COUNT)


def list_resources(
    *,
    request: Request,
    session: SessionDep,
    kind: str,
    filter_text: str | None,
    start_index: Any,
    count: Any,
    params: ResponseParameters[Any] | None,
) -> Response:
    model: type[ScimUser] | type[ScimGroup] = ScimUser if kind == "User" else ScimGroup
    parsed = parse_filter(filter_text, model)
    start, size = paging(start_index, count)
    base = base_url(request)
    terms = indexed_terms(parsed.ast, kind) if parsed is not None else []
    if terms is not None:
        total, resources = scim_store.page(
            session=session, kind=kind, terms=terms, offset=start - 1, limit=size, base=base
        )
    else:
        assert parsed is not None
        every = scim_store.page(
            session=session, kind=kind, terms=[], offset=0, limit=None, base=base
        )[1]
        matching = [item for item in every if parsed.match(item)]
        total, resources = len(matching), matching[start - 1 : start - 1 + size]
    listing = ListResponse[model](  # type: ignore[valid-type]
        total_results=total,
        start_index=start,
        items_per_page=len(resources),
        resources=resources,
    )
    return scim_response(
        listing.model_dump(scim_ctx=Context.SEARCH_RESPONSE, response_parameters=params)
    )


def search_body(body: dict[str, Any]) -> SearchRequest[Any]:
    try:
        return SearchRequest.model_validate(body, scim_ctx=Context.SEARCH_REQUEST)
    except SCIMException:
        raise
    except Exception as exc:
        raise InvalidValueException(detail=_first_error(exc)) from None


# --- discovery -----------------------------------------------------------------------------


@router.get("/ServiceProviderConfig")
def service_provider_config(_client: ProvisioningClient) -> Response:
    return scim_response(SERVICE_PROVIDER_CONFIG)


@router.get("/ResourceTypes")
def list_resource_types(request: Request, _client: ProvisioningClient) -> Response:
    types = resource_types(base_url(request))
    listing = ListResponse[ResourceType](
        total_results=len(types), start_index=1, items_per_page=len(types), resources=types
    )
    return scim_response(listing.model_dump(scim_ctx=Context.SEARCH_RESPONSE))


@router.get("/ResourceTypes/{name}")
def read_resource_type(request: Request, name: str, _client: ProvisioningClient) -> Response:
    for item in resource_types(base_url(request)):
        if item.id == name:
            return scim_response(item.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))
    raise NotFoundException(detail=f"no resource type {name}")


@router.get("/Schemas")
def list_schemas(_client: ProvisioningClient) -> Response:
    return scim_response(
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": len(SCHEMAS),
            "startIndex": 1,
            "itemsPerPage": len(SCHEMAS),
            "Resources": list(SCHEMAS.values()),
        }
    )


@router.get("/Schemas/{schema_id}")
def read_schema(schema_id: str, _client: ProvisioningClient) -> Response:
    if schema_id not in SCHEMAS:
        raise NotFoundException(detail=f"no schema {schema_id}")
    return scim_response(SCHEMAS[schema_id])


# --- Users and Groups: the same seven operations over each resource type --------------------


@dataclass(frozen=True)
class ResourceEndpoints:
    """How one resource type (Users, Groups) is read and changed in identity's store."""

    path: str  # "/Users"
    kind: str  # "User": the name in `list_resources` and ResourceTypes
    model: type[ScimUser] | type[ScimGroup]
    show: Callable[[Session, UUID, str], ScimUser | ScimGroup]
    create: Callable[[Session, ScimClient, Any, Origin], UUID]
    write: Callable[[Session, ScimClient, UUID, Any, Origin], None]
    delete: Callable[[Session, ScimClient, UUID, Origin], None]


def add_resource_routes(endpoints: ResourceEndpoints) -> None:
    """List, search, create, read, replace, patch and delete for one resource type."""
    path, kind, model = endpoints.path, endpoints.kind, endpoints.model

    def list_all(request: Request, session: SessionDep, _client: ProvisioningClient) -> Response:
        query = request.query_params
        return list_resources(
            request=request,
            session=session,
            kind=kind,
            filter_text=query.get("filter"),
            start_index=query.get("startIndex"),
            count=query.get("count"),
            params=response_parameters(request),
        )

    def search(
        request: Request, body: Body, session: SessionDep, _client: ProvisioningClient
    ) -> Response:
        found = search_body(body)
        return list_resources(
            request=request,
            session=session,
            kind=kind,
            filter_text=str(found.filter) if found.filter else None,
            start_index=found.start_index,
            count=found.count,
            params=ResponseParameters(
                attributes=found.attributes, excluded_attributes=found.excluded_attributes
            ),
        )

    def create(
        request: Request, body: Body, session: SessionDep, client: ProvisioningClient
    ) -> Response:
        resource = parse(model, body, Context.RESOURCE_CREATION_REQUEST)
        created = endpoints.create(session, client, resource, Origin.of(request))
        shown = endpoints.show(session, created, base_url(request))
        assert shown.meta is not None and shown.meta.location is not None
        return scim_response(dump(shown), 201, Location=shown.meta.location)

    def read(
        request: Request, resource_id: str, session: SessionDep, _client: ProvisioningClient
    ) -> Response:
        shown = endpoints.show(session, check_id(resource_id), base_url(request))
        return scim_response(dump(shown, response_parameters(request)))

    def replace(
        request: Request,
        resource_id: str,
        body: Body,
        session: SessionDep,
        client: ProvisioningClient,
    ) -> Response:
        resource_uuid = check_id(resource_id)
        endpoints.show(session, resource_uuid, "")  # 404 first
        resource = parse(model, body, Context.RESOURCE_REPLACEMENT_REQUEST)
        endpoints.write(session, client, resource_uuid, resource, Origin.of(request))
        return scim_response(dump(endpoints.show(session, resource_uuid, base_url(request))))

    def patch(
        request: Request,
        resource_id: str,
        body: Body,
        session: SessionDep,
        client: ProvisioningClient,
    ) -> Response:
        resource_uuid = check_id(resource_id)
        resource = endpoints.show(session, resource_uuid, base_url(request))
        apply_patch(model, resource, body)
        endpoints.write(session, client, resource_uuid, resource, Origin.of(request))
        shown = endpoints.show(session, resource_uuid, base_url(request))
        return scim_response(dump(shown, response_parameters(request)))

    def delete(
        request: Request, resource_id: str, session: SessionDep, client: ProvisioningClient
    ) -> Response:
        endpoints.delete(session, client, check_id(resource_id), Origin.of(request))
        return Response(status_code=204)

    one = f"{path}/{{resource_id}}"
    name = kind.lower()
    router.add_api_route(path, list_all, methods=["GET"], name=f"list_{name}s")
    router.add_api_route(f"{path}/.search", search, methods=["POST"], name=f"search_{name}s")
    router.add_api_route(path, create, methods=["POST"], status_code=201, name=f"create_{name}")
    router.add_api_route(one, read, methods=["GET"], name=f"read_{name}")
    router.add_api_route(one, replace, methods=["PUT"], name=f"replace_{name}")
    router.add_api_route(one, patch, methods=["PATCH"], name=f"patch_{name}")
    router.add_api_route(one, delete, methods=["DELETE"], status_code=204, name=f"delete_{name}")


add_resource_routes(
    ResourceEndpoints(
        path="/Users",
        kind="User",
        model=ScimUser,
        show=lambda session, user_id, base: scim_store.user_resource(
            session=session, user_id=user_id, base=base
        ),
        create=lambda session, client, resource, origin: scim_store.do_create_user(
            session=session, client=client, resource=resource, origin=origin
        ),
        write=lambda session, client, user_id, resource, origin: scim_store.do_write_user(
            session=session, client=client, user_id=user_id, resource=resource, origin=origin
        ),
        delete=lambda session, client, user_id, origin: scim_store.do_delete_user(
            session=session, client=client, user_id=user_id, origin=origin
        ),
    )
)
add_resource_routes(
    ResourceEndpoints(
        path="/Groups",
        kind="Group",
        model=ScimGroup,
        show=lambda session, group_id, base: scim_store.group_resource(
            session=session, group_id=group_id, base=base
        ),
        create=lambda session, client, resource, origin: scim_store.do_create_group(
            session=session, client=client, resource=resource, origin=origin
        ),
        write=lambda session, client, group_id, resource, origin: scim_store.do_write_group(
            session=session, client=client, group_id=group_id, resource=resource, origin=origin
        ),
        delete=lambda session, client, group_id, origin: scim_store.do_delete_group(
            session=session, client=client, group_id=group_id, origin=origin
        ),
    )
)


def apply_patch(
    model: type[ScimUser] | type[ScimGroup], resource: ScimUser | ScimGroup, body: dict[str, Any]
) -> None:
    """Apply a PatchOp body to `resource` in place (scim2-models does the RFC 7644 §3.5.2 work)."""
    try:
        operation = PatchOp[model].model_validate(  # type: ignore[valid-type]
            body, scim_ctx=Context.RESOURCE_PATCH_REQUEST
        )
        operation.patch(resource)
    except SCIMException:
        raise
    except Exception as exc:
        raise InvalidValueException(detail=_first_error(exc)) from None


class MethodNotAllowedException(SCIMException):
    """RFC 7644 §3.12: 405, a method this endpoint does not support (scim2-models has none)."""

    status = 405
    _default_detail = "The endpoint does not support this method"


KNOWN_ENDPOINT = re.compile(
    r"^(ServiceProviderConfig|ResourceTypes|Schemas|Users|Groups)(/[^/]+)?$"
)


@router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def unknown_endpoint(request: Request, rest: str, _client: ProvisioningClient) -> Response:
    """Anything else under /scim/v2 is a SCIM error, not a problem document."""
    if rest == ".search":
        raise NotImplementedException(detail="search one resource type: POST /Users/.search")
    if KNOWN_ENDPOINT.match(rest):
        raise MethodNotAllowedException(detail=f"{request.method} is not allowed on /{rest}")
    raise NotFoundException(detail=f"no SCIM endpoint /{rest}")
