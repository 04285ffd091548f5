"""Job logs: a rule's messages and failures land in its log file, and only for the job's duration."""

import logging
import textwrap

import pytest
from pixelflow.joblog import job_log, logger

from .support import run_python


def test_job_log_records_start_messages_and_finish(tmp_path):
    path = tmp_path / "logs" / "job.log"
    with job_log(path, "shard 0001") as log:
        log.info("wrote %d images", 7)
    text = path.read_text()
    assert "shard 0001 started" in text
    assert "wrote 7 images" in text
    assert "shard 0001 finished in" in text


def test_job_log_records_a_failure_with_its_traceback_and_reraises(tmp_path):
    path = tmp_path / "job.log"
    with pytest.raises(ZeroDivisionError), job_log(path, "stack"):
        1 / 0  # noqa: B018
    text = path.read_text()
    assert "stack failed: ZeroDivisionError" in text
    assert "Traceback" in text
    assert "finished" not in text


WARNINGS_IN_A_SCRIPT = textwrap.dedent(
    """
    import sys, warnings
    from pixelflow.joblog import job_log

    warnings.simplefilter("always")
    with job_log(sys.argv[1], "montage"):
        warnings.warn("careful with that axe", UserWarning)
    warnings.warn("after the job", UserWarning)
    """
)


def run_job_with_warnings(tmp_path):
    """Run a job that warns, then warn after it, in a fresh interpreter (as an entry script runs;
    pytest itself intercepts warnings). Return the job's log text and the process's stderr."""
    path = tmp_path / "job.log"
    result = run_python(WARNINGS_IN_A_SCRIPT, str(path))
    assert result.returncode == 0, result.stderr
    return path.read_text(), result.stderr


def test_job_log_captures_warnings_of_the_job(tmp_path):
    log, _ = run_job_with_warnings(tmp_path)
    assert "careful with that axe" in log
    assert "after the job" not in log


def test_job_log_detaches_its_handlers_when_the_job_ends(tmp_path):
    before = {name: list(logging.getLogger(name).handlers) for name in ("pixelflow", "py.warnings")}
    with job_log(tmp_path / "first.log", "first"):
        pass
    with job_log(tmp_path / "second.log", "second"):
        logger.info("only in the second log")
    assert "only in the second log" not in (tmp_path / "first.log").read_text()
    after = {name: list(logging.getLogger(name).handlers) for name in ("pixelflow", "py.warnings")}
    assert after == before
    # Otherwise the closed handler swallows every later warning of the process.
    _, stderr = run_job_with_warnings(tmp_path)
    assert "after the job" in stderr
