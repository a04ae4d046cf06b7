"""Which real backing servers the tests use: embedded defaults, or the production stack.

- `KNOWFLOW_TEST_POSTGRES_URL` (e.g. from `deploy/postgres/run.sh url knowflow_test`):
  the production stack: every service database in the tests is a fresh schema in that
  PostgreSQL, and the end-to-end platform searches with OpenSearch.
- `KNOWFLOW_TEST_OPENSEARCH_URL` (e.g. http://127.0.0.1:9200): the OpenSearch engine
  is tested against that node.
- `KNOWFLOW_TEST_OIDC_URL` (e.g. from `deploy/oidc/run.sh url`): the real OpenID Provider
  (oidc-provider, deploy/oidc/provider.js) single sign-on is tested against.
- `KNOWFLOW_REQUIRE_REAL_BACKENDS=1` (CI): a missing server fails the tests instead
  of skipping them.
"""

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def postgres_url() -> str | None:
    return os.environ.get("KNOWFLOW_TEST_POSTGRES_URL") or None


def opensearch_url() -> str | None:
    return os.environ.get("KNOWFLOW_TEST_OPENSEARCH_URL") or None


def production_stack() -> bool:
    """PostgreSQL configured: run services as in production (OpenSearch for search too)."""
    return postgres_url() is not None


def real_backends_required() -> bool:
    return os.environ.get("KNOWFLOW_REQUIRE_REAL_BACKENDS", "") in {"1", "true", "yes"}


def require_opensearch() -> str:
    """The OpenSearch URL, or skip (locally) / fail (CI) with the reason."""
    url = opensearch_url()
    if url:
        return url
    if os.environ.get("KNOWFLOW_TEST_OPENSEARCH_ELSEWHERE"):
        # CI runs the OpenSearch suites once, on the production stack (PostgreSQL).
        pytest.skip(f"OpenSearch suites run in {os.environ['KNOWFLOW_TEST_OPENSEARCH_ELSEWHERE']}")
    reason = (
        "no OpenSearch node: start one with `bash deploy/opensearch/run.sh start` "
        "and set KNOWFLOW_TEST_OPENSEARCH_URL=http://127.0.0.1:9200"
    )
    if real_backends_required():
        pytest.fail(reason)
    pytest.skip(reason)


def require_oidc_provider() -> str:
    """The test OpenID Provider's issuer URL, or skip (locally) / fail (CI) with the reason."""
    url = os.environ.get("KNOWFLOW_TEST_OIDC_URL") or None
    if url:
        return url.rstrip("/")
    reason = (
        "no OpenID Provider: start one with `bash deploy/oidc/run.sh start` "
        "and set KNOWFLOW_TEST_OIDC_URL=http://127.0.0.1:55490"
    )
    if real_backends_required():
        pytest.fail(reason)
    pytest.skip(reason)


def require_chromium() -> str:
    """Chromium's executable (Debian's package), or skip (locally) / fail (CI) with the reason."""
    path = os.environ.get("KNOWFLOW_CHROMIUM") or shutil.which("chromium")
    if path:
        return path
    reason = (
        "no Chromium for the browser suite: `apt-get install chromium` "
        "(or set KNOWFLOW_CHROMIUM to the browser's executable)"
    )
    if real_backends_required():
        pytest.fail(reason)
    pytest.skip(reason)


@contextmanager
def fresh_database(tmp_path: Path, name: str) -> Iterator[str]:
    """A database URL nobody else uses: a SQLite file, or a new PostgreSQL schema."""
    base = postgres_url()
    if base is None:
        yield f"sqlite:///{tmp_path / name}.db"
        return
    schema = f"t_{name}_{secrets.token_hex(4)}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
