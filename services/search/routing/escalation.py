"""The escalation schedule: every tick, each due question gets its next round, once.

Every replica runs it. Each question's round is its own transaction keyed by (question,
round) (`shared.schedule.run_once`): a replica that finds the round done does nothing, and
one that races another fails on the key at commit and rolls back, so its `QuestionRouted`
events are never sent. What is due is read from the database on each tick, so a restart
(or a replica that was down) picks up exactly where the schedule was.
"""

import asyncio
import logging
from datetime import datetime
from functools import partial
from uuid import UUID

from fastapi import FastAPI
from sqlalchemy import Engine
from sqlmodel import Session

from services.search.engines import EngineFactory
from services.search.routing import service
from services.search.routing.service import RoundReport
from services.search.routing.settings import RoutingSettings
from services.search.semantic.service import Semantic
from shared.ids import utcnow
from shared.schedule import run_every, run_once
from shared.tasks import stop_tasks

log = logging.getLogger(__name__)


def escalate_due(
    *,
    engine: Engine,
    engines: EngineFactory,
    now: datetime,
    settings: RoutingSettings,
    semantic: Semantic,
) -> list[RoundReport]:
    """Give every question due at `now` its next round; the rounds this process recorded."""
    with Session(engine) as session:
        due = service.list_due(session=session, now=now)
    reports = []
    for question_id in due:
        try:
            report, committed = run_once(
                engine,
                partial(
                    _escalate_one,
                    engines=engines,
                    question_id=question_id,
                    now=now,
                    settings=settings,
                    semantic=semantic,
                ),
            )
        except Exception:
            # One question that cannot be ranked now must not hold up the others.
            log.exception("escalating question %s failed; retrying at the next tick", question_id)
            continue
        if report is not None and committed:
            log.info(
                "question %s: round %d asked %d people",
                question_id,
                report.round,
                len(report.asked),
            )
            reports.append(report)
    return reports


def _escalate_one(
    session: Session,
    *,
    engines: EngineFactory,
    question_id: UUID,
    now: datetime,
    settings: RoutingSettings,
    semantic: Semantic,
) -> RoundReport | None:
    return service.do_escalate(
        session=session,
        engine=engines(session),
        question_id=question_id,
        now=now,
        settings=settings,
        semantic=semantic,
    )


async def start(app: FastAPI, settings: RoutingSettings) -> None:
    app.state.routing_schedule = None
    if settings.schedule_enabled:
        engine: Engine = app.state.engine
        engines: EngineFactory = app.state.engine_factory
        semantic: Semantic = app.state.semantic  # set by the semantic start, which runs first
        app.state.routing_schedule = asyncio.create_task(
            run_every(
                settings.tick_seconds,
                lambda: escalate_due(
                    engine=engine,
                    engines=engines,
                    now=utcnow(),
                    settings=settings,
                    semantic=semantic,
                ),
                name="escalating questions",
            ),
            name="search-routing-escalation",
        )


async def stop(app: FastAPI) -> None:
    task: asyncio.Task[None] | None = getattr(app.state, "routing_schedule", None)
    if task is not None:
        await stop_tasks([task])
