"""A unique index prefix on the test OpenSearch node, with everything under it removed after."""

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from opensearchpy import OpenSearch

from shared.testing.backends import require_opensearch


@contextmanager
def opensearch_prefix() -> Iterator[tuple[str, str]]:
    """`(url, prefix)`: skips (locally) or fails (CI) without a node; deletes `prefix-*` after."""
    url = require_opensearch()
    prefix = f"test-{secrets.token_hex(6)}"
    try:
        yield url, prefix
    finally:
        client = OpenSearch(hosts=[url], timeout=30)
        try:
            # Delete by name: a node may refuse wildcard deletes (destructive_requires_name).
            names = client.indices.get(index=f"{prefix}-*", params={"expand_wildcards": "all"})
            for name in names:
                client.indices.delete(index=name, params={"ignore_unavailable": "true"})
        finally:
            client.close()
