"""The contract tests run against the whole platform, started as in the end-to-end tests."""

from tests.e2e.conftest import platform

__all__ = ["platform"]
