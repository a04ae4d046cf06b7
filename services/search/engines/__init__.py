"""Search engines behind one interface; `Settings.search_url` picks which one runs.

Empty `search_url` selects the embedded SQLite FTS5 engine, which keeps its index in
the service's own (SQLite) database; an http(s) URL will select OpenSearch.
"""

from collections.abc import Callable

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlmodel import Session

from services.search.engines.base import SearchEngine
from services.search.engines.embedded import EmbeddedEngine, create_schema
from shared.settings import Settings

EngineFactory = Callable[[Session], SearchEngine]

EMBEDDED = "embedded"


def engine_name(settings: Settings) -> str:
    """Which engine the settings select; raises when it cannot run."""
    if settings.search_url:
        raise ValueError(
            f"search_url={settings.search_url!r}: only the embedded engine exists so far; "
            "leave KNOWFLOW_SEARCH_URL empty"
        )
    if make_url(settings.database_url).get_backend_name() != "sqlite":
        raise ValueError("the embedded search engine (FTS5) needs a SQLite database_url")
    return EMBEDDED


def engine_factory(settings: Settings) -> EngineFactory:
    """How to get an engine bound to a session (the embedded one shares its transaction)."""
    engine_name(settings)

    def embedded(session: Session) -> SearchEngine:
        return EmbeddedEngine(session.connection())

    return embedded


def prepare_engine(settings: Settings, database: Engine) -> None:
    """Create the chosen engine's storage if missing, before consumers start."""
    if engine_name(settings) == EMBEDDED:
        with database.begin() as connection:
            create_schema(connection)
