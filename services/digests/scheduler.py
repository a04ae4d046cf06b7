"""The digest schedule: a background task that sends each person's digest once their window ends.

It is safe to run in every replica: `send_due_digests` records a person's window once,
so the replicas race harmlessly and the losers send nothing.
"""

import asyncio
import logging

from fastapi import FastAPI
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import Engine

from services.digests.delivery import send_due_digests
from shared.ids import utcnow
from shared.schedule import run_every
from shared.tasks import stop_tasks

log = logging.getLogger(__name__)


class DigestSettings(BaseSettings):
    """When digests go out, read from `KNOWFLOW_DIGEST_*` variables."""

    model_config = SettingsConfigDict(
        env_prefix="KNOWFLOW_DIGEST_", env_file=".env", extra="ignore"
    )

    schedule_enabled: bool = True
    tick_seconds: float = Field(default=60.0, gt=0)


async def run_schedule(engine: Engine, settings: DigestSettings) -> None:
    """Wake every tick and send what is due; an error is logged and the next tick retries."""
    await run_every(
        settings.tick_seconds,
        # Looked up on each tick, so the function can be replaced (tests make it fail).
        lambda: send_due_digests(engine=engine, now=utcnow()),
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
