"""Search engines behind one interface; `Settings.search_url` picks which one runs.

Empty `search_url` selects the embedded SQLite FTS5 engine, which keeps its index in
the service's own (SQLite) database; an http(s) URL selects OpenSearch, and then the
service's own tables (projections, processed events, outbox) may live in any SQL
database, PostgreSQL included.
"""

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlmodel import Session

from services.search.engines.base import SearchEngine
from services.search.engines.embedded import EmbeddedEngine, create_schema
from shared.settings import Settings

if TYPE_CHECKING:  # imported when used: the client costs the embedded engine ~20 MB
    from services.search.engines.opensearch import OpenSearchEngine

EngineFactory = Callable[[Session], SearchEngine]

EMBEDDED = "embedded"
OPENSEARCH = "opensearch"


def engine_name(settings: Settings) -> str:
    """Which engine the settings select; raises when it cannot run."""
    if settings.search_url:
        if not settings.search_url.startswith(("http://", "https://")):
            raise ValueError(f"search_url={settings.search_url!r} is not an http(s) URL")
        return OPENSEARCH
    if make_url(settings.database_url).get_backend_name() != "sqlite":
        raise ValueError(
            "the embedded search engine (FTS5) needs a SQLite database_url; "
            "set KNOWFLOW_SEARCH_URL to use OpenSearch with another database"
        )
    return EMBEDDED


@lru_cache(maxsize=16)
def opensearch_engine(url: str, prefix: str) -> "OpenSearchEngine":
    """One client per cluster and prefix in a process (the client is thread-safe)."""
    from services.search.engines.opensearch import OpenSearchEngine
    from services.search.engines.opensearch_schema import connect

    return OpenSearchEngine(connect(url), prefix)


def engine_factory(settings: Settings) -> EngineFactory:
    """How to get an engine bound to a session (the embedded one shares its transaction)."""
    if engine_name(settings) == OPENSEARCH:
        shared = opensearch_engine(settings.search_url, settings.search_index_prefix)

        def clustered(_session: Session) -> SearchEngine:
            return shared

        return clustered

    def embedded(session: Session) -> SearchEngine:
        return EmbeddedEngine(session.connection())

    return embedded


def prepare_engine(settings: Settings, database: Engine) -> None:
    """Create the chosen engine's storage if missing, before consumers start."""
    if engine_name(settings) == OPENSEARCH:
        opensearch_engine(settings.search_url, settings.search_index_prefix).ensure_index()
        return
    with database.begin() as connection:
        create_schema(connection)
