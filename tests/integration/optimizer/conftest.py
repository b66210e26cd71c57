"""Fixtures for the optimizer's PostgreSQL tests: a throwaway database per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

from tai_store import create_database_if_missing, drop_database_if_exists

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def study_database_url() -> Iterator[str]:
    """Return the URL of a fresh, uniquely named PostgreSQL database (dropped afterwards)."""
    base = make_url(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    url = base.set(
        drivername="postgresql+psycopg", database=f"tai_optimizer_{uuid.uuid4().hex}"
    ).render_as_string(hide_password=False)
    create_database_if_missing(url)
    try:
        yield url
    finally:
        drop_database_if_exists(url)
