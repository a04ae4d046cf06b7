"""How questions are routed and escalated, read from `KNOWFLOW_ROUTING_*` variables."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RoutingSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="KNOWFLOW_ROUTING_", env_file=".env", extra="ignore"
    )

    # People asked per ranked round (the first at creation, the second on escalation).
    people_per_round: int = Field(default=3, ge=1, le=20)
    # Hours without an answer before the next round, for public questions and for groups
    # whose owner set nothing (PUT /routing/groups/{id}).
    escalation_hours: float = Field(default=24.0, gt=0)
    # Nobody is asked more than this many times in any 24 hours.
    max_asks_per_day: int = Field(default=5, ge=1)
    # The last round (tag followers of a public question) asks at most this many people.
    last_round_people: int = Field(default=10, ge=1, le=100)
    # A question already older than this when it reaches search (an import, a replay) is
    # history, not a question waiting for an answer: it is not routed.
    route_questions_newer_than_hours: float = Field(default=24.0, gt=0)
    # Each earlier decline of a question sharing a tag multiplies a person's score by this.
    decline_factor: float = Field(default=0.5, gt=0, le=1)
    # How many ranked people are considered before exclusions (asker, cap, not readers).
    candidates: int = Field(default=50, ge=1, le=100)
    schedule_enabled: bool = True
    tick_seconds: float = Field(default=60.0, gt=0)
