"""Which engine the settings select (pure logic)."""

import pytest

from services.search.engines import EMBEDDED, OPENSEARCH, engine_name
from shared.settings import Settings

PG = "postgresql+psycopg://u:p@127.0.0.1/db"


def test_an_empty_search_url_selects_the_embedded_engine_on_sqlite_only() -> None:
    assert engine_name(Settings(search_url="", database_url="sqlite:///x.db")) == EMBEDDED
    with pytest.raises(ValueError, match="needs a SQLite"):
        engine_name(Settings(search_url="", database_url=PG))


def test_an_http_url_selects_opensearch_on_any_database() -> None:
    assert engine_name(Settings(search_url="http://127.0.0.1:9200", database_url=PG)) == OPENSEARCH
    with pytest.raises(ValueError, match="not an http"):
        engine_name(Settings(search_url="127.0.0.1:9200"))
