"""What every benchmark script shares: timing, settling the machine, a scratch copy of the workflow, tables.

Timing
    :func:`seconds` (one call), :func:`timed` (repeated calls, median), :func:`run_process` (a whole process,
    start to exit, its output in a log file); :func:`spread` and :func:`fmt_spread` give ``median [min–max]``.
Settling
    :class:`Settler` syncs, waits a minimum time, then until the disk and the CPUs stay quiet and creating a
    small file costs what it usually does (see benchmarks/README.md, "Keeping the numbers honest").
Scratch and the workflow
    Each stage works in ``benchmarks/scratch/<stage>/`` (git-ignored; :func:`remove_tree` deletes
    nothing outside benchmarks/scratch). :func:`snapshot_workflow` copies the committed
    workflow (``--source head``, the default), the working tree (``worktree``) or takes the repository in
    place (``live``), so that edits made while a benchmark runs cannot change what it measures;
    :func:`snakemake_command` and :func:`write_config` run Snakemake on that copy.
Tables
    :func:`md_table` prints markdown; :func:`benchmark_record` reads a job's Snakemake ``benchmark:`` file.

Progress goes to stderr (:func:`log`), so that stdout holds only the result tables.
"""

import compileall
import io
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO / "benchmarks"
SCRATCH = BENCH_DIR / "scratch"
RESULTS = BENCH_DIR / "results"
SOURCES = ("head", "worktree", "live")
PRESSURE_FILE = Path("/proc/pressure/io")


def log(message: str) -> None:
    """Progress goes to stderr so that stdout holds only the result tables."""
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


# Figures and tables ---------------------------------------------------------------------------------------------------


def spread(values) -> tuple[float, float, float] | None:
    """(median, min, max) of the values that are not None, or None."""
    values = [value for value in values if value is not None]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def median_of(values):
    summary = spread(values)
    return None if summary is None else summary[0]


def fmt(value, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def fmt_spread(values, digits: int = 2, unit: str = "") -> str:
    """``median [min–max]`` of a list of numbers (the median alone for one value)."""
    summary = spread(values)
    if summary is None:
        return "—"
    median, low, high = summary
    if len(values) == 1:
        return f"{median:.{digits}f}{unit}"
    return f"{median:.{digits}f}{unit} [{low:.{digits}f}–{high:.{digits}f}]"


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


# Timing ---------------------------------------------------------------------------------------------------------------


def seconds(function, *args, **options) -> float:
    """Wall seconds of one call."""
    started = time.perf_counter()
    function(*args, **options)
    return time.perf_counter() - started


def timed(function, repeats: int):
    """(median seconds, all seconds, last result) of ``repeats`` calls."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), times, result


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def run_process(command: list[str], cwd: Path, log_path: Path, mode: str = "ab", **options) -> float:
    """Wall seconds of a whole process, start to exit; its output goes to ``log_path``. Fails loudly."""
    with open(log_path, mode) as output:
        started = time.perf_counter()
        result = subprocess.run(command, cwd=cwd, stdout=output, stderr=subprocess.STDOUT, **options)
        wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed ({result.returncode}):\n{tail(log_path)}")
    return wall


# Scratch folders and the workflow copy --------------------------------------------------------------------------------


def remove_tree(path: Path) -> None:
    """Delete a folder below the scratch folder (never anything else)."""
    path = Path(path).resolve()
    if SCRATCH.resolve() not in path.parents:
        raise RuntimeError(f"refusing to delete {path}: not below {SCRATCH}")
    shutil.rmtree(path, ignore_errors=True)


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, check=True)


def add_source_option(parser, default: str = "head") -> None:
    parser.add_argument(
        "--source",
        choices=SOURCES,
        default=default,
        help="what to measure: a copy of the committed HEAD (default), a copy of the working tree, or the "
        "repository in place (live: edits made during the run change what is measured)",
    )


def snapshot_workflow(source: str, target: Path) -> tuple[Path, str]:
    """The workflow folder to run, and words saying what it is.

    ``head`` extracts the committed tree (``git archive HEAD``) and ``worktree`` copies the working tree's
    tracked and unignored files (benchmarks/ left out), both into ``target`` below benchmarks/scratch, so that
    edits made to the repository while a benchmark runs cannot change what it measures; the copy's core
    package is byte-compiled, as the repository's is after its first run. ``live`` runs the repository in place.
    """
    commit = git("rev-parse", "--short", "HEAD").stdout.decode().strip()
    dirty = bool(git("status", "--porcelain", "--untracked-files=no").stdout.strip())
    if source == "live":
        return REPO, f"the repository in place (HEAD {commit}{', with uncommitted changes' if dirty else ''})"
    remove_tree(target)
    target.mkdir(parents=True)
    if source == "head":
        with tarfile.open(fileobj=io.BytesIO(git("archive", "--format=tar", "HEAD").stdout)) as tar:
            tar.extractall(target, filter="data")
        note = f"a copy of commit {commit}" + (" (uncommitted changes are not measured)" if dirty else "")
    else:
        listed = git("ls-files", "-z", "--cached", "--others", "--exclude-standard").stdout.decode()
        for name in filter(None, listed.split("\0")):
            source_file = REPO / name
            if source_file.is_file() and not name.startswith("benchmarks/"):
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source_file, target / name)
        note = f"a copy of the working tree on commit {commit}{', with uncommitted changes' if dirty else ''}"
    compileall.compile_dir(target / "scripts", quiet=1)
    return target, note


def use_scripts(workflow: Path) -> None:
    """Import the core package (``pixelflow``) from this workflow folder in this process."""
    sys.path.insert(0, str(Path(workflow) / "scripts"))


def snakemake_command(*args: str, snakefile: Path | None = None, python: str | None = None, script=False) -> list:
    """A Snakemake call: ``python -m snakemake`` or (``script``) the environment's ``snakemake`` script."""
    python = python or sys.executable
    head = [python, "-m", "snakemake"]
    if script:  # another interpreter's script must exist; this one's may be found on PATH instead
        found = Path(python).parent / "snakemake"
        use_path = not found.exists() and python == sys.executable
        head = [shutil.which("snakemake") or "snakemake" if use_path else str(found)]
    return [*head, *(["-s", str(snakefile)] if snakefile else []), *args]


def write_config(folder: Path, config: dict, name: str = "config.yaml") -> Path:
    import yaml

    path = Path(folder) / name
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def benchmark_record(path: Path) -> dict:
    """The last row of a Snakemake ``benchmark:`` file, numbers as floats (None for "NA"); {} if it has none."""
    import csv

    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    record = {}
    for key, value in (rows[-1] if rows else {}).items():
        try:
            record[key] = float(value)
        except (TypeError, ValueError):
            record[key] = None  # "NA": the job ended before Snakemake's first sample
    return record


# Settling: disk and CPU probes ----------------------------------------------------------------------------------------


def io_stall_total() -> float | None:
    """Cumulative seconds during which some task waited on IO (PSI 'some' total), if the kernel reports it."""
    try:
        for line in PRESSURE_FILE.read_text().splitlines():
            if line.startswith("some"):
                return int(line.rsplit("total=", 1)[1]) / 1e6
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpu_times() -> list[int] | None:
    """The aggregate 'cpu' line of /proc/stat (user nice system idle iowait irq softirq steal ...)."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            return [int(value) for value in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None


def busy_percent(before, after) -> float | None:
    """Share of all CPUs' time spent not idle (nor waiting on IO) between two /proc/stat samples."""
    if not before or not after or len(before) < 5:
        return None
    total = sum(after[:8]) - sum(before[:8])
    idle = (after[3] + after[4]) - (before[3] + before[4])
    return 100.0 * (total - idle) / total if total > 0 else None


PROBE_FILES = 100
PROBE_BYTES = os.urandom(4096)


def file_creation_probe(folder: Path) -> float:
    """Microseconds per file to create and write ``PROBE_FILES`` small files in a new folder below ``folder``.

    On this VM, creating files is sometimes 5-50x slower than usual for a minute or more (after large deletes
    here or elsewhere on the disk); that is kernel CPU time, invisible to IO pressure. The files stay until
    ``folder`` is deleted with the run it belongs to.
    """
    folder.mkdir(parents=True, exist_ok=True)
    probe = Path(tempfile.mkdtemp(dir=folder))
    descriptor = os.open(probe, os.O_RDONLY | os.O_DIRECTORY)
    try:
        started = time.perf_counter()
        for index in range(PROBE_FILES):
            handle = os.open(f"p{index}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=descriptor)
            os.write(handle, PROBE_BYTES)
            os.close(handle)
        return 1e6 * (time.perf_counter() - started) / PROBE_FILES
    finally:
        os.close(descriptor)


@dataclass
class Settler:
    """Sync, wait a minimum time, then until the disk and the CPUs stay quiet (or a maximum time passes).

    Quiet means: in each of ``quiet_seconds`` consecutive one-second windows, tasks stalled on IO less
    than ``io_quiet`` % of the time (/proc/pressure/io), the CPUs were busy less than ``cpu_quiet`` %
    (/proc/stat; catches other work on the machine), and creating a file took at most ``probe_factor``
    times the fastest probe seen so far (see :func:`file_creation_probe`).

    It also waits until ``after_delete`` seconds have passed since the last large delete
    (:meth:`deleted`). ext4 without a journal, as on this machine's disk, does not reuse an inode
    freed less than 60 s ago (300 s more while its inode-table block is unwritten), and every file
    created meanwhile scans past those inodes: right after deleting 100,000 files, creating
    files costs several times its usual CPU time. New files written into the same inode-table
    blocks keep those blocks unwritten, so the slow-down can last minutes. The probe alone misses
    this, as its few files may land where nothing was deleted. The datasets harness therefore deletes
    runs' images only at its end, or when the disk runs short (``datasets_harness.Bench.cleanup``).
    """

    minimum: float
    maximum: float
    io_quiet: float
    cpu_quiet: float
    quiet_seconds: int = 3
    probe_factor: float = 2.0
    after_delete: float = 0.0
    best_probe: float = float("inf")
    last_delete: float = float("-inf")

    def deleted(self) -> None:
        """Note that files were just deleted (and synced)."""
        self.last_delete = time.monotonic()

    def calibrate(self, folder: Path, rounds: int = 5) -> None:
        """Find a first fastest probe time (it keeps improving during the run)."""
        for _ in range(rounds):
            self.best_probe = min(self.best_probe, file_creation_probe(folder))
            time.sleep(0.5)
        log(f"file creation probe: {self.best_probe:.0f} µs per file at best")

    def probe_ok(self, value: float | None) -> bool:
        return value is None or self.probe_factor <= 0 or value <= self.probe_factor * self.best_probe + 5.0

    def __call__(self, folder: Path) -> tuple[float, float | None, float | None, float | None]:
        """Return (seconds spent, IO pressure %, CPU busy %, probe µs per file) of the last one-second window."""
        started = time.monotonic()
        os.sync()
        time.sleep(max(self.minimum, self.last_delete + self.after_delete - time.monotonic()))
        streak = 0
        stall, cpu, then = io_stall_total(), cpu_times(), time.monotonic()
        while True:
            time.sleep(1.0)
            new_stall, new_cpu, now = io_stall_total(), cpu_times(), time.monotonic()
            io = None if stall is None or new_stall is None else 100.0 * (new_stall - stall) / max(now - then, 1e-6)
            busy = busy_percent(cpu, new_cpu)
            probe = file_creation_probe(folder / ".settle-probe") if self.probe_factor > 0 else None
            if probe is not None:
                self.best_probe = min(self.best_probe, probe)
            stall, cpu, then = new_stall, new_cpu, time.monotonic()
            quiet = (io is None or io < self.io_quiet) and (busy is None or busy < self.cpu_quiet)
            streak = streak + 1 if quiet and self.probe_ok(probe) else 0
            if streak >= self.quiet_seconds or now - started >= self.maximum:
                if streak < self.quiet_seconds:
                    log(
                        f"note: not quiet after {now - started:.0f} s (IO {fmt(io, 1)} %, CPU {fmt(busy, 1)} %, "
                        f"file creation {fmt(probe, 0)} µs, best {self.best_probe:.0f} µs)"
                    )
                return now - started, io, busy, probe
