"""Schemathesis hooks for the contract run (loaded through SCHEMATHESIS_HOOKS).

Idempotency-Key is state across requests: the same key with another body is meant to be
422. Generated keys repeat (hypothesis favours "0"), which would turn schema-valid POSTs
into deliberate 422s; so a valid generated key is replaced by a fresh one per request.
Invalid keys are sent as generated, so their 400 is still tested. The replay semantics
themselves are proven in services/posts/tests/test_idempotency.py.
"""

import re
import uuid
from typing import Any

import schemathesis

from shared.idempotency import HEADER, KEY_PATTERN

VALID_KEY = re.compile(KEY_PATTERN)


def fresh_keys(headers: dict[str, Any] | None) -> dict[str, Any] | None:
    """The headers with a valid Idempotency-Key replaced by a new unique one."""
    for name in list(headers or {}):
        value = headers[name] if headers else None
        if name.lower() == HEADER.lower() and isinstance(value, str) and VALID_KEY.fullmatch(value):
            headers[name] = uuid.uuid4().hex  # type: ignore[index]
    return headers


@schemathesis.hook
def map_headers(context: Any, headers: dict[str, Any] | None) -> dict[str, Any] | None:
    return fresh_keys(headers)


@schemathesis.hook
def before_call(context: Any, case: Any, **kwargs: Any) -> None:
    # The coverage phase sends fixed values (no map_headers there): "0" again and again.
    fresh_keys(case.headers)
