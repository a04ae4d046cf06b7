"""The digest schedule: a background task that sends each period's digests once a window ends.

It is safe to run in every replica: `send_digests` records a window once, so the
replicas race harmlessly and the losers send nothing.
"""

import asyncio
import logging
from datetime import datetime, timedelta
from typing import get_args

from fastapi import FastAPI
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import Engine

from services.digests.delivery import DigestRunReport, latest_boundary, send_digests
from services.digests.schemas import DigestPeriod
from shared.ids import utcnow
from shared.schedule import run_every
from shared.web import stop_tasks

log = logging.getLogger(__name__)

# Events of the last moments of a window may still be on the bus when it ends.
SETTLE = timedelta(minutes=1)


class DigestSettings(BaseSettings):
    """When digests go out, read from `KNOWFLOW_DIGEST_*` variables."""

    model_config = SettingsConfigDict(
        env_prefix="KNOWFLOW_DIGEST_", env_file=".env", extra="ignore"
    )

    hour_utc: int = Field(default=6, ge=0, le=23)
    schedule_enabled: bool = True
    tick_seconds: float = Field(default=60.0, gt=0)


def send_due_digests(*, engine: Engine, now: datetime, hour_utc: int) -> list[DigestRunReport]:
    """Send every period whose latest settled window has no run yet."""
    reports = []
    for period in get_args(DigestPeriod):
        end = latest_boundary(period=period, now=now - SETTLE, hour_utc=hour_utc)
        reports.append(send_digests(engine=engine, period=period, now=now, window_end=end))
    return reports


async def run_schedule(engine: Engine, settings: DigestSettings) -> None:
    """Wake every tick and send what is due; an error is logged and the next tick retries."""
    await run_every(
        settings.tick_seconds,
        # Looked up on each tick, so the function can be replaced (tests make it fail).
        lambda: send_due_digests(engine=engine, now=utcnow(), hour_utc=settings.hour_utc),
        name="sending digests",
    )


async def start(app: FastAPI) -> None:
    settings = DigestSettings()
    app.state.digest_settings = settings
    app.state.digest_schedule = None
    if settings.schedule_enabled:
        app.state.digest_schedule = asyncio.create_task(
            run_schedule(app.state.engine, settings), name="digests-schedule"
        )


async def stop(app: FastAPI) -> None:
    task: asyncio.Task[None] | None = getattr(app.state, "digest_schedule", None)
    if task is not None:
        await stop_tasks([task])
