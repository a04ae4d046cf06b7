"""Pytest fixtures for real infrastructure: NATS now; OpenSearch and PostgreSQL alongside."""
