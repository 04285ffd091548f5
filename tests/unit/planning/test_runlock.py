"""Stale Snakemake locks: removed only when no recorded run is alive."""

import os
import subprocess
import sys

from pixelflow.planning import runlock


def make_locks(snakemake_dir):
    locks = snakemake_dir / "locks"
    locks.mkdir(parents=True)
    (locks / "0.output.lock").write_text("results/a\n", encoding="utf-8")
    return locks


def ended_process_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_locks_of_a_run_whose_process_ended_are_removed(tmp_path):
    locks = make_locks(tmp_path)
    pid = ended_process_pid()
    (tmp_path / runlock.RUNS_FOLDER).mkdir()
    (tmp_path / runlock.RUNS_FOLDER / f"{pid}-12345").touch()
    assert runlock.clear_stale_locks(tmp_path)
    assert not locks.exists()
    assert not any((tmp_path / runlock.RUNS_FOLDER).iterdir()), "the dead run's record is kept"


def test_locks_of_a_live_run_are_kept(tmp_path):
    locks = make_locks(tmp_path)
    record = runlock.register_run(tmp_path, os.getpid())
    assert not runlock.clear_stale_locks(tmp_path)
    assert (locks / "0.output.lock").is_file()
    runlock.end_run(record)
    assert runlock.clear_stale_locks(tmp_path)
    assert not locks.exists()


def test_a_reused_pid_does_not_pass_for_the_recorded_run(tmp_path):
    make_locks(tmp_path)
    (tmp_path / runlock.RUNS_FOLDER).mkdir()
    started = runlock.process_start_time(os.getpid())
    wrong_start = str(int(started) + 1)
    (tmp_path / runlock.RUNS_FOLDER / f"{os.getpid()}-{wrong_start}").touch()
    assert runlock.clear_stale_locks(tmp_path)


def test_nothing_happens_without_locks(tmp_path):
    assert not runlock.clear_stale_locks(tmp_path)
    (tmp_path / "locks").mkdir()
    assert not runlock.clear_stale_locks(tmp_path)
    assert (tmp_path / "locks").is_dir()


def test_start_time_is_none_for_an_ended_process():
    assert runlock.process_start_time(ended_process_pid()) is None
    assert runlock.process_start_time(os.getpid()) is not None
