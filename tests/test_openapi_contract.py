"""Every service documents what it answers: Idempotency-Key on each POST, errors as problem+json."""

import importlib
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI

from shared.idempotency import HEADER, REPLAYED_HEADER

SERVICES = ["identity", "posts", "search", "digests", "notifications"]


def openapi_of(name: str) -> dict[str, Any]:
    app: FastAPI = importlib.import_module(f"services.{name}.main").create_app()
    return app.openapi()


def unstored_replies(name: str) -> frozenset[str]:
    """Paths whose replies are never stored (they carry tokens): no replay marker."""
    spec = importlib.import_module(f"services.{name}.main").SPEC
    return frozenset(spec.unstored_replies)


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


@pytest.mark.parametrize("name", SERVICES)
def test_every_post_documents_the_idempotency_key(name: str) -> None:
    document = openapi_of(name)
    posts = [(path, op) for method, path, op in operations(document) if method == "post"]
    assert posts
    for path, operation in posts:
        names = [parameter["name"] for parameter in operation.get("parameters", [])]
        assert HEADER in names, path
        if path not in unstored_replies(name):
            success = [code for code in operation["responses"] if code.startswith("2")]
            assert all(
                REPLAYED_HEADER in operation["responses"][code].get("headers", {})
                for code in success
            ), path


@pytest.mark.parametrize("name", SERVICES)
def test_every_error_answer_is_the_problem_schema_as_problem_json(name: str) -> None:
    document = openapi_of(name)
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for method, path, operation in operations(document):
        responses = operation["responses"]
        assert "503" in responses, (method, path)
        for code, response in responses.items():
            if code[0] in "45":
                assert response["content"] == {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                }, (method, path, code)
