"""`run_every`: the loop behind every scheduled job (e-mail, webhooks, digests, escalation)."""

import asyncio
import threading
import time

import pytest

from shared.schedule import run_every


@pytest.mark.asyncio
async def test_a_stop_during_a_round_waits_for_the_round_to_finish() -> None:
    started, finished = threading.Event(), threading.Event()

    def round_of_work() -> None:
        started.set()
        time.sleep(0.3)  # e.g. sending the e-mails it claimed
        finished.set()

    loop = asyncio.create_task(run_every(0, round_of_work, name="test"))
    await asyncio.to_thread(started.wait, 5)
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    assert finished.is_set()


@pytest.mark.asyncio
async def test_repeated_cancels_still_wait_for_the_round() -> None:
    started, finished = threading.Event(), threading.Event()

    def round_of_work() -> None:
        started.set()
        time.sleep(0.3)
        finished.set()

    loop = asyncio.create_task(run_every(0, round_of_work, name="test"))
    await asyncio.to_thread(started.wait, 5)
    for _ in range(5):  # as shared.tasks.stop_tasks does
        loop.cancel()
        await asyncio.sleep(0.02)
    with pytest.raises(asyncio.CancelledError):
        await loop
    assert finished.is_set()


@pytest.mark.asyncio
async def test_a_failed_round_is_logged_and_the_next_tick_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rounds: list[int] = []
    three_rounds = threading.Event()

    def failing_round() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 3:
            three_rounds.set()
        raise RuntimeError("the SMTP server is down")

    loop = asyncio.create_task(run_every(0.01, failing_round, name="sending e-mail"))
    assert await asyncio.to_thread(three_rounds.wait, 5)
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    assert "sending e-mail failed; retrying at the next tick" in caplog.text
    assert "the SMTP server is down" in caplog.text
