"""Recover from Snakemake locks left behind by a killed run.

While it runs, Snakemake locks its files in ``.snakemake/locks`` and removes
the locks when it ends. A run killed with SIGKILL (the out-of-memory killer,
a lost login node, a power cut) leaves them, and every later run refuses to
start until someone runs ``snakemake --unlock``. The workflow therefore
records each of its main processes in ``.snakemake/pixelflow-runs/``; when
every recorded process has ended but locks remain, the locks are stale and
are removed, so that the next run simply completes the work.
"""

import os
import shutil
from pathlib import Path

RUNS_FOLDER = "pixelflow-runs"


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of process ``pid`` (guards against PID reuse), or None if it is gone.

    Where /proc is missing, a live process gives "alive" and the PID check stands alone.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "alive"
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return fields[19]


def run_record(snakemake_dir, pid: int) -> Path:
    """The record of main process ``pid``: ``<pid>-<start time>`` in the runs folder."""
    return Path(snakemake_dir) / RUNS_FOLDER / f"{pid}-{process_start_time(pid)}"


def live_runs(snakemake_dir) -> list[Path]:
    """Records of runs whose process is still alive; records of ended runs are deleted."""
    folder = Path(snakemake_dir) / RUNS_FOLDER
    if not folder.is_dir():
        return []
    alive = []
    for record in folder.iterdir():
        pid_text, _, started = record.name.partition("-")
        if pid_text.isdigit() and process_start_time(int(pid_text)) == started:
            alive.append(record)
        else:
            record.unlink(missing_ok=True)
    return alive


def clear_stale_locks(snakemake_dir) -> bool:
    """Remove ``locks/`` when no recorded run is alive; return whether locks were removed."""
    locks = Path(snakemake_dir) / "locks"
    if live_runs(snakemake_dir) or not locks.is_dir() or not any(locks.iterdir()):
        return False
    shutil.rmtree(locks, ignore_errors=True)
    return True


def register_run(snakemake_dir, pid: int) -> Path:
    """Record main process ``pid`` as running; return its record."""
    record = run_record(snakemake_dir, pid)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.touch()
    return record


def end_run(record: Path) -> None:
    """Delete a run's record when it ends normally."""
    Path(record).unlink(missing_ok=True)
