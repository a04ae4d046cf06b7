"""The security suite runs against the whole platform as real processes (see tests/e2e)."""

from tests.e2e.conftest import gateway, platform

__all__ = ["gateway", "platform"]
