"""`in_list`: the same rows as a plain IN, written as one of a few statements."""

import random
from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, Table, event, select

from shared.db import in_list, make_engine

ITEMS = Table("item", MetaData(), Column("n", Integer, primary_key=True))


def test_in_list_finds_what_a_plain_in_finds_in_few_statements(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'in.db'}")
    ITEMS.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(ITEMS.insert(), [{"n": n} for n in range(3000)])
    statements: set[str] = set()

    @event.listens_for(engine, "before_cursor_execute")
    def remember(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        statements.add(statement)

    rng = random.Random(5)
    lengths = [0, 1, 2, 3, 511, 512, 513, 1024, 1025, 2500, *rng.sample(range(4, 700), 120)]
    with engine.connect() as connection:
        for length in lengths:
            wanted = rng.sample(range(-500, 3500), length)  # some match no row
            found = connection.execute(select(ITEMS.c.n).where(in_list(ITEMS.c.n, wanted))).all()
            assert sorted(row.n for row in found) == sorted(n for n in wanted if 0 <= n < 3000)
    # 130 lengths: the empty list, 11 buckets up to 1,024, then multiples of 1,024 (2 and 3).
    assert len(statements) <= 14, len(statements)
