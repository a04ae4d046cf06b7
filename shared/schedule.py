"""Scheduled work that survives restarts and runs once across replicas.

Every replica runs the same schedule; what makes a piece of work happen once is a row
keyed by the work (a digest window, a question's routing round) written in the same
transaction as the work's events. The first replica to commit wins; another finds the
row and does nothing, or fails on its key at commit and rolls back (`run_once`). The
schedule itself keeps no state in memory: what is due is read from the database on every
tick, so a restart loses nothing.
"""

import asyncio
import logging
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Engine
from sqlmodel import Session

from shared.db import is_unique_violation, is_write_conflict

log = logging.getLogger(__name__)

T = TypeVar("T")


def run_once(engine: Engine, work: Callable[[Session], T]) -> tuple[T | None, bool]:
    """Run `work` in a transaction of its own and commit it; (result, whether it committed).

    A unique violation (another process recorded the same work first) or a write
    conflict (another process changed what this one read) rolls back and returns
    (None, False): the work was done elsewhere, or the next tick looks again.
    """
    with Session(engine, expire_on_commit=False) as session:
        try:
            result = work(session)
            session.commit()
        except Exception as exc:
            session.rollback()
            if is_unique_violation(exc) or is_write_conflict(exc):
                return None, False
            raise
    return result, True


async def run_every(tick_seconds: float, job: Callable[[], object], *, name: str) -> None:
    """Wake every tick and run `job` in a thread; an error is logged and the next tick retries.

    A stop (cancellation) during a round waits for the round to end: the thread cannot be
    cancelled, and a round stopped halfway would leave its claims (e-mails, deliveries)
    held until their leases run out, minutes after the service is back.
    """
    while True:
        # Sleep first: after a restart the consumers catch up before anything is sent.
        await asyncio.sleep(tick_seconds)
        round_done = asyncio.ensure_future(asyncio.to_thread(job))
        stopping = False
        while not round_done.done():
            try:
                await asyncio.wait([round_done])  # a cancel interrupts the wait, not the round
            except asyncio.CancelledError:
                stopping = True
        if round_done.exception() is not None:
            log.error("%s failed; retrying at the next tick", name, exc_info=round_done.exception())
        if stopping:
            raise asyncio.CancelledError
