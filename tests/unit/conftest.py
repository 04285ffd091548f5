"""Shared fixtures of the unit tests."""

import faulthandler
import sys

import pytest

from .support import SCHEMA_PATH

# A hung test must fail, not hang the suite: after this many seconds the test
# process prints every thread's stack and exits with an error.
WATCHDOG_SECONDS = 120


@pytest.fixture(autouse=True)
def watchdog():
    """Arm a per-test watchdog: a worker pool that never returns ends the run instead of blocking it."""
    faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True, file=sys.__stderr__)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="session")
def schema() -> dict:
    """The workflow's config schema (config/schema.yaml), parsed."""
    from pixelflow.planning.config import load_schema

    return load_schema(SCHEMA_PATH)
