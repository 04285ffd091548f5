"""Paths and helpers shared by the unit tests (not tests themselves)."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
SCHEMA_PATH = REPO / "config" / "schema.yaml"


def child_environment(**extra: str) -> dict:
    """Environment of a Python subprocess that can import what this process imports.

    The subprocess gets this process's ``sys.path`` (pixelflow from scripts/,
    and the tests folder) as PYTHONPATH.
    """
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(path for path in sys.path if path)
    environment.update(extra)
    return environment


def run_python(code: str, *args: str, timeout: float = 60, **extra_environment: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter; a run longer than ``timeout`` seconds fails the test."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_environment(**extra_environment),
        cwd=REPO,
    )
