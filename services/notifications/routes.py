"""The inbox and preferences: parse, call the service, return."""

from fastapi import APIRouter

from shared.idempotency import IdempotentRoute

router = APIRouter(prefix="/notifications", tags=["notifications"], route_class=IdempotentRoute)
