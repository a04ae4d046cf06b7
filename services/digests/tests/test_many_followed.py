"""A window's read names the followed sources in slices: a round works however many people
are followed, not only up to what one statement may bind (SQLite allows 32,766 values by
default, PostgreSQL 65,535)."""

import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import Engine, event, insert
from sqlmodel import Session

from services.digests.batch import IN_LIST, Request, build_digests
from services.digests.main import SPEC
from services.digests.models import DigestContent, DigestFollow, DigestUser
from shared.db import make_engine
from shared.ids import new_id, utcnow

# Low enough that the followed people below do not fit in one statement, high enough for
# a slice of each kind of source (lists are padded up to 512 values).
BOUND_PARAMETERS = 1_600
FOLLOWED = 1_700


def engine_binding_at_most(path: Path, limit: int) -> Engine:
    engine = make_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _bound(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)

    SPEC.prepare_database(engine)
    return engine


def item(author: UUID, *, hours_ago: float, root: UUID | None = None) -> dict[str, Any]:
    content_id = new_id()
    return {
        "content_id": content_id,
        "kind": "post",
        "author_id": author,
        "visibility": "public",
        "excerpt": "about the build",
        "tags": [],
        "mentions": [],
        "parent_id": root,
        "thread_root_id": root or content_id,
        "created_at": utcnow() - timedelta(hours=hours_ago),
        "version": 1,
    }


def test_a_reader_following_more_people_than_a_statement_binds_gets_them_all(
    tmp_path: Path,
) -> None:
    assert FOLLOWED * 2 > BOUND_PARAMETERS > 3 * 512  # one statement could not name them
    assert IN_LIST <= 512
    engine = engine_binding_at_most(tmp_path / "digests.db", BOUND_PARAMETERS)
    now = utcnow()
    reader, stranger = new_id(), new_id()
    authors = [new_id() for _ in range(FOLLOWED)]
    people = [reader, stranger, *authors]
    # Each followed person posts once this week; the last also replies to a stranger's
    # older thread, which reaches the reader through that reply.
    rows = [item(author, hours_ago=24) for author in authors]
    old_root = item(stranger, hours_ago=24 * 9)
    rows += [old_root, item(authors[-1], hours_ago=2, root=old_root["content_id"])]
    with Session(engine) as session:
        session.execute(
            insert(DigestUser),
            [
                {"user_id": p, "handle": f"p{n}", "display_name": f"P {n}", "changed_at": now}
                for n, p in enumerate(people)
            ],
        )
        session.execute(
            insert(DigestFollow),
            [
                {
                    "follower_id": reader,
                    "target_type": "user",
                    "target": str(author),
                    "active": True,
                    "changed_at": now - timedelta(days=30),
                }
                for author in authors
            ],
        )
        session.execute(insert(DigestContent), rows)
        session.commit()
    with Session(engine) as session:
        digests = build_digests(
            session=session, requests=[Request(reader, "weekly", now, None)], now=now
        )
    digest = digests[reader]
    # Every followed person's post, and the stranger's thread the last one replied in.
    assert digest.total_items + digest.omitted_items == FOLLOWED + 1
    assert (
        old_root["content_id"]
        in {shown.content_id for section in digest.sections for shown in section.items}
        or digest.omitted_items > 0
    )
