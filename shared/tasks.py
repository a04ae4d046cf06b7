"""Stopping background tasks for sure.

A single `task.cancel()` then `await task` can hang forever: on Python 3.11 a cancel that
lands as an inner `asyncio.wait_for` completes is swallowed (nats-py's `fetch` is one), and
the task goes on looping. Everything that stops a task goes through `stop_tasks`.
"""

import asyncio
import logging
from collections.abc import Iterable

log = logging.getLogger(__name__)


async def stop_tasks(tasks: Iterable[asyncio.Task[None] | None], timeout: float = 10.0) -> None:
    """Cancel the tasks again and again until they end, or give up after `timeout` (logged)."""
    pending = {task for task in tasks if task is not None}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while pending and loop.time() < deadline:
        for task in pending:
            task.cancel()
        _done, pending = await asyncio.wait(pending, timeout=0.2)
    for task in pending:
        log.warning("background task %s did not stop", task.get_name())
