"""`stop_tasks`, and the revocation feed stopping through it, when a cancel is swallowed.

On Python 3.11 a cancel landing as nats-py's `fetch` completes its inner `wait_for` is lost
and the loop goes on; a single cancel then hangs shutdown (it hung a CI run).
"""

import asyncio
import logging
from typing import cast

import pytest

from shared.events.bus import Bus
from shared.revocation import RevocationFeed, Revocations
from shared.tasks import stop_tasks


async def follow_swallowing_cancels(swallow: int, swallowed: list[int]) -> None:
    """A follow loop whose first `swallow` cancels are lost, as in nats-py's fetch."""
    while True:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            if len(swallowed) >= swallow:
                raise
            swallowed.append(1)


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_a_task_that_swallowed_a_cancel_is_stopped() -> None:
    swallowed: list[int] = []
    task = asyncio.create_task(follow_swallowing_cancels(2, swallowed))
    await asyncio.sleep(0.01)
    await stop_tasks([task, None])
    assert task.cancelled() and len(swallowed) == 2


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_a_task_that_will_not_stop_is_left_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    swallowed: list[int] = []
    task = asyncio.create_task(follow_swallowing_cancels(10**6, swallowed), name="stubborn")
    await asyncio.sleep(0.01)  # a task cancelled before its first step never runs
    with caplog.at_level(logging.WARNING, logger="shared.tasks"):
        await stop_tasks([task], timeout=0.5)
    assert not task.done() and "stubborn did not stop" in caplog.text
    swallowed.extend([1] * 10**6)  # now the next cancel ends it
    await stop_tasks([task])
    assert task.cancelled()


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_the_revocation_feed_stops_when_its_follow_swallowed_a_cancel() -> None:
    """The follow task as `start` makes it (no NATS needed: nothing is subscribed yet)."""
    feed = RevocationFeed(cast(Bus, None), Revocations(keep_seconds=60), name="test")
    swallowed: list[int] = []
    feed._task = asyncio.create_task(follow_swallowing_cancels(1, swallowed))
    await asyncio.sleep(0.01)
    await feed.stop()
    assert swallowed == [1]
