"""Shared pytest wiring. Real services come from fixture plugins, one per service:
tests/fixtures/kafka.py (a real KRaft broker) and tests/fixtures/postgres.py (a real PostgreSQL)."""

pytest_plugins = ["tests.fixtures.kafka", "tests.fixtures.postgres"]
