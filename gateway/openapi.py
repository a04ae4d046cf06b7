"""One OpenAPI 3.1 document for the public API, merged from every service's own.

Paths are rewritten to where the routing table exposes them (a path it does not route,
such as /healthz or /metrics, is left out). Schemas with the same name and the same
definition are shared; a name that means different things in two services is renamed
with the service as prefix (`PostsUserPublic`) and that service's `$ref`s follow.
"""

import asyncio
import logging
from typing import Any

import httpx

from gateway.routing import RouteTable, is_public

log = logging.getLogger(__name__)

SCHEMA_REF = "#/components/schemas/"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
BEARER = {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
PROBLEM = {"application/problem+json": {"schema": {"$ref": SCHEMA_REF + "Problem"}}}
# What the gateway itself may answer on any route, before or instead of the service.
GATEWAY_ANSWERS = {
    "429": "Too many requests from this client; retry after `Retry-After`",
    "431": "Request headers too large or too many",
    "502": "The service answered with something that is not HTTP",
    "503": "The service is unavailable; retry after `Retry-After`",
    "504": "The service did not answer in time",
}


def rewrite_refs(node: Any, renames: dict[str, str]) -> Any:
    """A copy of `node` whose schema `$ref`s point at renamed schemas."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(SCHEMA_REF):
                name = value[len(SCHEMA_REF) :]
                out[key] = SCHEMA_REF + renames.get(name, name)
            else:
                out[key] = rewrite_refs(value, renames)
        return out
    if isinstance(node, list):
        return [rewrite_refs(item, renames) for item in node]
    return node


def _renames_for(service: str, schemas: dict[str, Any], merged: dict[str, Any]) -> dict[str, str]:
    """Names of this service's schemas that clash with different merged ones, and their new names.

    Renaming one schema changes the text of those that refer to it, which may make them
    clash in turn; so repeat until nothing new clashes.
    """
    prefix = service[:1].upper() + service[1:]
    renames: dict[str, str] = {}
    changed = True
    while changed:
        changed = False
        for name, schema in schemas.items():
            if name in renames or name not in merged:
                continue
            if merged[name] != rewrite_refs(schema, renames):
                new_name = prefix + name
                while new_name in merged or new_name in schemas:
                    new_name = prefix + new_name
                renames[name] = new_name
                changed = True
    return renames


def merge_openapi(
    documents: dict[str, dict[str, Any]], table: RouteTable, *, title: str = "Knowflow API"
) -> dict[str, Any]:
    """Merge the services' documents (by service name) into the gateway's public one."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    tags: dict[str, Any] = {}
    operation_ids: set[str] = set()
    for service, document in documents.items():
        own_schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
        renames = _renames_for(service, own_schemas, schemas)
        for name, schema in own_schemas.items():
            schemas.setdefault(renames.get(name, name), rewrite_refs(schema, renames))
        for tag in document.get("tags", []):
            tags.setdefault(tag["name"], tag)
        for path, item in document.get("paths", {}).items():
            public = table.public_path(service, path)
            if public is None:
                continue
            item = rewrite_refs(item, renames)
            for method in HTTP_METHODS:
                operation = item.get(method)
                if operation is None:
                    continue
                operation_id = operation.get("operationId") or f"{method}_{public}"
                while operation_id in operation_ids:
                    operation_id = f"{service}_{operation_id}"
                operation_ids.add(operation_id)
                operation["operationId"] = operation_id
                if not is_public(method.upper(), public):
                    operation["security"] = [{"bearerAuth": []}]
                responses = operation.setdefault("responses", {})
                for status, description in GATEWAY_ANSWERS.items():
                    responses.setdefault(status, {"description": description, "content": PROBLEM})
            paths[public] = item
    merged: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": "1.0.0",
            "description": "The public Knowflow API, served by the gateway. "
            f"Merged from: {', '.join(documents) or 'no service'}.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": dict(sorted(schemas.items())), "securitySchemes": BEARER},
    }
    if tags:
        merged["tags"] = list(tags.values())
    return merged


class OpenAPICache:
    """Fetches and merges the services' documents; keeps the result once all of them answered."""

    def __init__(self, urls: dict[str, str], table: RouteTable, *, timeout: float = 5.0) -> None:
        self.urls = urls
        self.table = table
        self.timeout = timeout
        self._complete: dict[str, Any] | None = None
        self._lock = asyncio.Lock()

    async def _fetch(self, client: httpx.AsyncClient, url: str) -> dict[str, Any]:
        response = await client.get(f"{url}/openapi.json")
        response.raise_for_status()
        document: dict[str, Any] = response.json()
        return document

    async def document(self) -> tuple[dict[str, Any], list[str]]:
        """The merged document and the services that could not be reached (never cached)."""
        if self._complete is not None:
            return self._complete, []
        async with self._lock:
            if self._complete is not None:
                return self._complete, []
            async with httpx.AsyncClient(timeout=self.timeout, trust_env=False) as client:
                names = list(self.urls)
                results = await asyncio.gather(
                    *(self._fetch(client, self.urls[name]) for name in names),
                    return_exceptions=True,
                )
            documents: dict[str, dict[str, Any]] = {}
            missing: list[str] = []
            for name, result in zip(names, results, strict=True):
                if isinstance(result, BaseException):
                    log.warning("OpenAPI of %s unavailable: %r", name, result)
                    missing.append(name)
                else:
                    documents[name] = result
            merged = merge_openapi(documents, self.table)
            if not missing:
                self._complete = merged
            return merged, missing
