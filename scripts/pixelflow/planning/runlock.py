"""Recover from Snakemake locks left behind by a killed run.

While it runs, Snakemake locks its files in ``.snakemake/locks`` and removes
the locks when it ends. A run killed with SIGKILL (the out-of-memory killer,
a lost login node, a power cut) leaves them, and every later run refuses to
start until someone runs ``snakemake --unlock``. The workflow therefore
records each of its main processes in ``.snakemake/pixelflow-runs/``; when
every recorded run has ended but locks remain, the locks are stale and are
removed, so that the next run simply completes the work.

The folder may be shared by several machines (the login nodes of a cluster),
and a process can only be looked up on the machine that runs it. A record is
therefore a JSON object naming the machine::

    {"host": "login1", "boot_id": "6f0c...", "pid": 4242, "started": "81234", "written": 1718000000.0}

``host`` is the host name, ``boot_id`` the kernel's boot id (null where the
kernel has none), ``started`` the process's start time as
:func:`process_start_time` gives it and ``written`` the Unix time of writing.
A record is of this machine when host name and boot id both match; only then
is its process looked up. A record of this host name but another boot id,
written before this machine last booted, is of a run the reboot ended. Any
other record (another machine, a machine without a boot id, an unreadable or
unparsable file) cannot be checked here: it is left alone and the locks are
kept while it exists (see :func:`stale_lock_report`). Records named
``<pid>-<start time>``, written before hosts were recorded, are taken to be
this machine's (the code that wrote them only ever checked them here) and are
checked by process alone.
"""

import contextlib
import json
import os
import re
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from pixelflow.atomic import write_text

RUNS_FOLDER = "pixelflow-runs"
BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")
# Records written before hosts were recorded are named ``<pid>-<start time>``.
_OLD_STYLE_NAME = re.compile(r"(\d+)-([^.]+)")


@dataclass(frozen=True)
class Run:
    """A recorded run as its record describes it; a field the record lacks or garbles is None."""

    record: Path
    host: str | None = None
    boot_id: str | None = None
    pid: int | None = None
    started: str | None = None
    written: float | None = None


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of a process of this machine (guards against PID reuse).

    Parameters
    ----------
    pid : int
        The process id.

    Returns
    -------
    str or None
        The start time in clock ticks since boot, or None if the process has
        ended. Where /proc is missing, a live process gives ``"alive"`` and the
        PID check stands alone.
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


def boot_id() -> str | None:
    """This machine's kernel boot id, new at every boot.

    Returns
    -------
    str or None
        The id, or None where the kernel does not give one (records of such a
        machine cannot be checked, even on the machine itself).
    """
    try:
        text = BOOT_ID_FILE.read_text(encoding="ascii").strip()
    except (OSError, ValueError):
        return None
    return text or None


def read_run(record) -> Run:
    """Read a record, tolerating any content.

    Parameters
    ----------
    record : path-like
        A file of the runs folder.

    Returns
    -------
    Run
        What the record says; a field that is missing or of the wrong type is
        None, and all fields are None for an unreadable or unparsable file.
    """
    record = Path(record)
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Run(record)
    if not isinstance(data, dict):
        return Run(record)
    return Run(
        record,
        host=_field(data, "host", str),
        boot_id=_field(data, "boot_id", str),
        pid=_field(data, "pid", int),
        started=_field(data, "started", str),
        written=_field(data, "written", (int, float)),
    )


def uncheckable_runs(snakemake_dir) -> list[Run]:
    """Recorded runs that may be going on elsewhere; records of ended runs of this machine are deleted.

    Old-style records (``<pid>-<start time>``, from before hosts were
    recorded) are taken to be this machine's, as the code that wrote them
    only ever looked them up here: they are checked like this machine's
    records, whatever its boot id.

    Parameters
    ----------
    snakemake_dir : path-like
        The ``.snakemake`` folder.

    Returns
    -------
    list of Run
        Runs of other machines, of machines without a boot id, and unreadable
        records, sorted by record name. Their records are left in place.
    """
    return _sweep(snakemake_dir)[1]


def clear_stale_locks(snakemake_dir) -> bool:
    """Remove Snakemake's locks if no recorded run can still own them.

    Records of ended runs of this machine are deleted on the way. Locks are
    kept while any run of this machine is alive or any record cannot be
    checked (:func:`stale_lock_report` then says which).

    Parameters
    ----------
    snakemake_dir : path-like
        The ``.snakemake`` folder.

    Returns
    -------
    bool
        Whether locks were removed.
    """
    alive, uncheckable = _sweep(snakemake_dir)
    locks = Path(snakemake_dir) / "locks"
    if alive or uncheckable or not _has_locks(locks):
        return False
    shutil.rmtree(locks, ignore_errors=True)
    return True


def stale_lock_report(snakemake_dir) -> str | None:
    """A message for the user when locks exist and may belong to a run that cannot be checked here.

    Parameters
    ----------
    snakemake_dir : path-like
        The ``.snakemake`` folder.

    Returns
    -------
    str or None
        One line naming the host and PID of each such run (or its unreadable
        record) and how to unlock if none is going on; None when there are no
        locks or no such run.
    """
    locks = Path(snakemake_dir) / "locks"
    if not _has_locks(locks):
        return None
    runs = uncheckable_runs(snakemake_dir)
    if not runs:
        return None
    owners = " or ".join(
        f"a run on host {run.host} (pid {run.pid})"
        if run.host is not None and run.pid is not None
        else f"a run whose record {run.record} cannot be read"
        for run in runs
    )
    records = " and ".join(str(run.record) for run in runs)
    return (
        f"pixelflow: locks in {locks} may belong to {owners}; "
        f"if no such run is going on, run `snakemake --unlock` and delete {records}"
    )


def register_run(snakemake_dir, pid: int) -> Path:
    """Record a main Snakemake process of this machine as running.

    Parameters
    ----------
    snakemake_dir : path-like
        The ``.snakemake`` folder.
    pid : int
        The process id.

    Returns
    -------
    Path
        The record, written atomically; pass it to :func:`end_run`.
    """
    host = socket.gethostname()
    started = process_start_time(pid)
    name = f"{re.sub(r'[^A-Za-z0-9._-]', '_', host)}-{pid}-{started}.json"
    record = Path(snakemake_dir) / RUNS_FOLDER / name
    body = {"host": host, "boot_id": boot_id(), "pid": pid, "started": started, "written": time.time()}
    write_text(record, json.dumps(body))
    return record


def end_run(record) -> None:
    """Delete a run's record when it ends normally.

    Parameters
    ----------
    record : path-like
        What :func:`register_run` returned.
    """
    Path(record).unlink(missing_ok=True)


def _sweep(snakemake_dir) -> tuple[list[Run], list[Run]]:
    """Delete records of ended runs; return (runs alive on this machine, runs that cannot be checked)."""
    folder = Path(snakemake_dir) / RUNS_FOLDER
    if not folder.is_dir():
        return [], []
    host, boot, booted = socket.gethostname(), boot_id(), _boot_time()
    alive, uncheckable = [], []
    # Hidden entries are records still being written (see pixelflow.atomic).
    for record in sorted(entry for entry in folder.iterdir() if not entry.name.startswith(".")):
        old_style = _OLD_STYLE_NAME.fullmatch(record.name)
        if old_style:
            run = Run(record, pid=int(old_style[1]), started=old_style[2])
            state = _process_state(run)
        else:
            run = read_run(record)
            state = _state(run, host, boot, booted)
        if state == "alive":
            alive.append(run)
        elif state == "ended":
            with contextlib.suppress(OSError):
                record.unlink()
        else:
            uncheckable.append(run)
    return alive, uncheckable


def _state(run: Run, host: str, boot: str | None, booted: float | None) -> str:
    """``"alive"``, ``"ended"`` or ``"unknown"`` (the run cannot be checked on this machine)."""
    if run.host != host or run.boot_id is None or boot is None:
        return "unknown"
    if run.boot_id == boot:
        return _process_state(run)
    # Boot ids have no order, and two machines may share a host name: only a
    # record written before this boot began is certainly of an earlier boot.
    if run.written is not None and booted is not None and run.written < booted:
        return "ended"
    return "unknown"


def _process_state(run: Run) -> str:
    if run.pid is None or run.started is None:
        return "unknown"
    return "alive" if process_start_time(run.pid) == run.started else "ended"


def _boot_time() -> float | None:
    """When this machine booted (Unix time), from /proc/stat."""
    try:
        for line in Path("/proc/stat").read_text(encoding="ascii").splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _has_locks(locks: Path) -> bool:
    return locks.is_dir() and any(locks.iterdir())


def _field(data: dict, key: str, kind):
    value = data.get(key)
    return value if isinstance(value, kind) and not isinstance(value, bool) else None
