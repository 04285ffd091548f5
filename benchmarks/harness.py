"""Time the pixelflow workflow against the hand-written Pool baseline on this machine.

Scenarios
---------
generate-stack
    N uniform 100x100 uint8 PNGs generated and stacked into one .npy: the
    workflow (a fresh scratch folder, ``snakemake ... results/datasets/noise/stack.npy``)
    against ``benchmarks/baseline_pool.py``, runs interleaved.
noop
    A second identical ``snakemake`` call on a finished folder (nothing to do),
    and a dry run (``snakemake -n``) on the same folder.
scaling
    The workflow with ``--cores 1`` against ``--cores 2``.

Every timed run is a whole process, start to exit (engine start-up included),
of a copy of the committed workflow (``--source``) so that edits made meanwhile
cannot change what is measured. Before each run the harness syncs and waits for
the disk and the CPUs to settle (see :class:`Settler`). After a run's time is
recorded its large files are deleted and its small ones are kept, with their page
cache dropped, until the harness ends (see :func:`retire`): deleting
100,000 small files would slow the file creation of the runs after it.
Results go to stdout and to ``benchmarks/results/<scenario>.md`` (raw numbers
in ``<scenario>.json``, headline tables in ``summary.md``).
"""

import argparse
import contextlib
import csv
import io
import json
import os
import platform
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO / "benchmarks"
SCRATCH = BENCH_DIR / "scratch"
RESULTS = BENCH_DIR / "results"
BASELINE = BENCH_DIR / "baseline_pool.py"
SOURCES = ("head", "worktree", "live")
DATASET = "noise"
TARGET_FILE = f"results/datasets/{DATASET}/stack.npy"
SHAPE = (100, 100)
SCENARIOS = ("generate-stack", "noop", "scaling")
PRESSURE_FILE = Path("/proc/pressure/io")
FINISHED_IN = re.compile(r"finished in ([0-9.]+) s")
WORKER_PROCESSES = re.compile(r"images from index [0-9]+, ([0-9]+) worker process")
BASELINE_PHASES = re.compile(r"generate ([0-9.]+) s, stack ([0-9.]+) s")


# Small helpers ---------------------------------------------------------------------------------------------------


def log(message: str) -> None:
    """Progress goes to stderr so that stdout holds only the result tables."""
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def schema_default(workflow: Path, key: str):
    """A top-level default from the workflow's config/schema.yaml (shard_size, max_threads)."""
    import yaml

    with open(workflow / "config" / "schema.yaml", encoding="utf-8") as handle:
        return yaml.safe_load(handle)["properties"][key]["default"]


def spread(values) -> tuple[float, float, float] | None:
    """(median, min, max) of the values that are not None, or None."""
    values = [value for value in values if value is not None]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def fmt(value, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def fmt_spread(values, digits: int = 2) -> str:
    """``median [min–max]`` of a list of seconds."""
    summary = spread(values)
    if summary is None:
        return "—"
    median, low, high = summary
    if len(values) == 1:
        return fmt(median, digits)
    return f"{median:.{digits}f} [{low:.{digits}f}–{high:.{digits}f}]"


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, check=True)


def snapshot_workflow(source: str) -> tuple[Path, str]:
    """The workflow folder to run, and words saying what it is.

    ``head`` extracts the committed tree (``git archive HEAD``) and ``worktree`` copies the working tree's
    tracked and unignored files, both into benchmarks/scratch, so that edits made to the repository while the
    harness runs cannot change what it measures. ``live`` runs the repository in place.
    """
    commit = git("rev-parse", "--short", "HEAD").stdout.decode().strip()
    dirty = bool(git("status", "--porcelain", "--untracked-files=no").stdout.strip())
    if source == "live":
        return REPO, f"the repository in place (HEAD {commit}{', with uncommitted changes' if dirty else ''})"
    target = SCRATCH / "workflow"
    remove_tree(target)
    target.mkdir(parents=True)
    if source == "head":
        archive = git("archive", "--format=tar", "HEAD").stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(target, filter="data")
        note = " (uncommitted changes are not measured)" if dirty else ""
        return target, f"a copy of commit {commit}{note}"
    listed = git("ls-files", "-z", "--cached", "--others", "--exclude-standard").stdout.decode()
    for name in filter(None, listed.split("\0")):
        source_file = REPO / name
        if source_file.is_file() and not name.startswith("benchmarks/"):
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source_file, target / name)
    return target, f"a copy of the working tree on commit {commit}{', with uncommitted changes' if dirty else ''}"


def remove_tree(path: Path) -> None:
    """Delete a folder below the scratch folder (never anything else)."""
    path = Path(path).resolve()
    if SCRATCH.resolve() not in path.parents:
        raise RuntimeError(f"refusing to delete {path}: not below {SCRATCH}")
    shutil.rmtree(path, ignore_errors=True)


def retire(folder: Path, large: int = 2**20) -> None:
    """Delete ``folder``'s files of ``large`` bytes or more; drop the page cache of the others.

    The many small files (the images) stay on disk until the harness ends. Deleting them now
    would leave their inodes recently deleted, which file creation on ext4 without a journal
    scans past for minutes (see :class:`Settler`); dropping their cached pages leaves memory
    as a delete would. Call after ``os.sync()``: only clean pages are dropped.
    """
    if SCRATCH.resolve() not in Path(folder).resolve().parents:
        raise RuntimeError(f"refusing to retire {folder}: not below {SCRATCH}")
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with contextlib.suppress(OSError):
                if os.lstat(path).st_size >= large:
                    os.unlink(path)
                    continue
                descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
                try:
                    os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(descriptor)


# Disk and CPU probes ------------------------------------------------------------------------------------------------


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


def busy_seconds(before, after) -> float | None:
    """CPU seconds all CPUs spent on user, nice, system, irq and softirq work between two samples."""
    if not before or not after or len(before) < 7:
        return None
    ticks = sum(after[i] - before[i] for i in (0, 1, 2, 5, 6))
    return ticks / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> tuple[float, float]:
    """User and system CPU seconds of this process's finished (waited-for) descendants."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime, usage.ru_stime


def kernel_thread_ticks() -> dict[int, int]:
    """CPU clock ticks used so far by each kernel thread (children of kthreadd): writeback, journal, discard, ..."""
    ticks = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] in ("2", "0") and entry.name != "1":  # parent kthreadd (2), or kthreadd itself
            ticks[int(entry.name)] = int(fields[11]) + int(fields[12])
    return ticks


def kernel_thread_seconds(before: dict[int, int], after: dict[int, int]) -> float:
    """CPU seconds kernel threads used between two samples (threads that exited meanwhile are not counted)."""
    return sum(max(0, used - before.get(pid, 0)) for pid, used in after.items()) / os.sysconf("SC_CLK_TCK")


def steal_percent(before, after) -> float | None:
    """Share of CPU time stolen by the hypervisor between two /proc/stat samples."""
    if not before or not after or len(before) < 8:
        return None
    total = sum(after[:8]) - sum(before[:8])
    return 100.0 * (after[7] - before[7]) / total if total > 0 else None


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
    this, as its few files may land where nothing was deleted. The harness therefore deletes
    runs' images only at its end, or when the disk runs short (:meth:`Bench.cleanup`).
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


# Runs ----------------------------------------------------------------------------------------------------------------


@dataclass
class Run:
    """One timed process."""

    scenario: str
    label: str
    count: int
    cores: int
    repeat: int
    command: str
    wall: float = 0.0
    settle: float = 0.0
    io_before: float | None = None
    cpu_before: float | None = None
    probe_before: float | None = None
    io_stall: float | None = None
    steal: float | None = None
    cpu_busy: float | None = None
    foreign: float | None = None
    own_cpu: float | None = None
    own_system: float | None = None
    kernel_cpu: float | None = None
    discarded: bool = False
    jobs: dict = field(default_factory=dict)
    phases: dict = field(default_factory=dict)


def job_breakdown(workdir: Path, max_threads: int, cores: int) -> dict:
    """Per-job times from the workflow's benchmark TSVs and in-script times from its job logs."""
    bench_dir = workdir / "results" / "benchmarks"
    jobs = {}
    for path in sorted(bench_dir.rglob("*.tsv")):
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        if rows:
            jobs[str(path.relative_to(bench_dir).with_suffix(""))] = rows[-1]

    def number(row, key):
        try:
            return float(row[key])
        except (KeyError, TypeError, ValueError):
            return None  # "NA": the job ended before Snakemake's first sample

    stack = next((row for name, row in jobs.items() if name.endswith("/stack")), {})
    shard_times = [number(row, "s") or 0.0 for name, row in jobs.items() if "/shard-" in name]
    core = 0.0
    threads = max(1, min(max_threads, cores))
    for path in (workdir / "results" / "logs").rglob("*.log"):
        text = path.read_text(encoding="utf-8", errors="replace")
        match = FINISHED_IN.search(text)
        core += float(match.group(1)) if match else 0.0
        workers = WORKER_PROCESSES.search(text)
        if workers and "/shard-" in path.as_posix():  # shard jobs may get fewer threads than max_threads
            threads = min(threads, int(workers.group(1)))
    return {
        "jobs": len(jobs),
        "job_s": sum(number(row, "s") or 0.0 for row in jobs.values()),
        "shard_s": sum(shard_times),
        "shard_max_s": max(shard_times, default=None),
        "stack_s": number(stack, "s"),
        "stack_max_rss": number(stack, "max_rss"),
        "stack_max_pss": number(stack, "max_pss"),
        "stack_io_out": number(stack, "io_out"),
        "core_s": core,
        "concurrent_jobs": max(1, cores // threads),
    }


class Bench:
    def __init__(self, args, workflow: Path):
        self.args = args
        self.snakefile = workflow / "Snakefile"
        self.settle = Settler(
            args.settle,
            args.settle_max,
            args.io_quiet,
            args.cpu_quiet,
            args.quiet_seconds,
            args.probe_factor,
            args.after_delete,
        )
        bin_dir = Path(sys.executable).parent
        snakemake = bin_dir / "snakemake"
        self.snakemake = str(snakemake) if snakemake.exists() else shutil.which("snakemake") or "snakemake"
        self.env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
        self.counter = 0

    # commands

    def workflow_command(self, config: Path, cores: int, dry_run: bool = False) -> list[str]:
        command = [self.snakemake, "-s", str(self.snakefile), "--configfile", str(config), "--cores", str(cores)]
        return [*command, *(["-n"] if dry_run else []), TARGET_FILE]

    def baseline_command(self, count: int, folder: Path, processes: int) -> list[str]:
        return [sys.executable, str(BASELINE), str(count), str(folder), "--processes", str(processes)]

    def fresh_folder(self, name: str) -> Path:
        self.counter += 1
        folder = SCRATCH / f"{self.counter:03d}-{name}"
        remove_tree(folder)
        folder.mkdir(parents=True)
        return folder

    def write_config(self, folder: Path, count: int) -> Path:
        import yaml

        config = {
            "seed": 2026,
            "shard_size": self.args.shard_size,
            "max_threads": self.args.max_threads,
            "montage": {"count": 0},
            "datasets": {
                DATASET: {
                    "generator": "uniform",
                    "count": count,
                    "shape": list(SHAPE),
                    "dtype": "uint8",
                    "format": "png",
                }
            },
        }
        path = folder / "config.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return path

    # timing

    def start_process(self) -> None:
        """Runs in each timed child before exec: apply --nice (children inherit it)."""
        if self.args.nice:
            os.setpriority(os.PRIO_PROCESS, 0, self.args.nice)

    def execute(self, command: list[str], cwd: Path, log_path: Path) -> None:
        """Run untimed (set-up runs); fail loudly."""
        with open(log_path, "ab") as output:
            result = subprocess.run(
                command, cwd=cwd, env=self.env, stdout=output, stderr=subprocess.STDOUT, preexec_fn=self.start_process
            )
        if result.returncode != 0:
            raise RuntimeError(f"{shlex.join(command)} failed ({result.returncode}):\n{tail(log_path)}")

    def timed(self, run: Run, command: list[str], cwd: Path, log_path: Path) -> Run:
        """Settle the disk, then time one process from start to exit."""
        run.settle, run.io_before, run.cpu_before, run.probe_before = self.settle(cwd)
        stall_before, cpu_before = io_stall_total(), cpu_times()
        own_before, kernel_before = children_cpu_seconds(), kernel_thread_ticks()
        with open(log_path, "ab") as output:
            started = time.perf_counter()
            result = subprocess.run(
                command, cwd=cwd, env=self.env, stdout=output, stderr=subprocess.STDOUT, preexec_fn=self.start_process
            )
            run.wall = time.perf_counter() - started
        own_after, kernel_after = children_cpu_seconds(), kernel_thread_ticks()
        stall_after, cpu_after = io_stall_total(), cpu_times()
        if result.returncode != 0:
            raise RuntimeError(f"{shlex.join(command)} failed ({result.returncode}):\n{tail(log_path)}")
        if stall_before is not None and stall_after is not None:
            run.io_stall = stall_after - stall_before
        run.steal = steal_percent(cpu_before, cpu_after)
        run.cpu_busy = busy_percent(cpu_before, cpu_after)
        run.own_cpu = sum(own_after) - sum(own_before)
        run.own_system = own_after[1] - own_before[1]
        run.kernel_cpu = kernel_thread_seconds(kernel_before, kernel_after)
        machine = busy_seconds(cpu_before, cpu_after)
        capacity = run.wall * len(os.sched_getaffinity(0))
        if machine is not None and capacity > 0:
            # CPU the machine spent on neither the timed process tree nor kernel threads: other work.
            run.foreign = 100.0 * max(0.0, machine - run.own_cpu - run.kernel_cpu) / capacity
        log(
            f"{run.scenario} {run.label} N={run.count} cores={run.cores} #{run.repeat + 1}: {run.wall:.2f} s "
            f"(settled {run.settle:.0f} s; during the run: IO stall {fmt(run.io_stall)} s, "
            f"other CPU load {fmt(run.foreign, 1)} %)"
        )
        return run

    def retrying(self, produce, *args, **kwargs) -> list[Run]:
        """Call ``produce(*args, **kwargs)`` (one fresh timed run) until a run saw little other CPU load.

        Returns every attempt; all but the last are marked discarded.
        """
        attempts = []
        for attempt in range(self.args.retries + 1):
            run = produce(*args, **kwargs)
            attempts.append(run)
            if run.foreign is None or run.foreign <= self.args.foreign_limit or attempt == self.args.retries:
                if run.foreign is not None and run.foreign > self.args.foreign_limit:
                    log(f"warning: kept a run with {run.foreign:.0f} % other CPU load (no retries left)")
                return attempts
            run.discarded = True
            log(f"discarding that run: other CPU load {run.foreign:.0f} % > {self.args.foreign_limit:g} %; again")
        return attempts

    def cleanup(self, folder: Path) -> None:
        """Put a run's data out of the next run's way once its time is recorded (the next run settles first)."""
        if self.args.keep:
            return
        os.sync()
        if shutil.disk_usage(SCRATCH).free < self.args.keep_free_gb * 2**30:
            remove_tree(folder)
            os.sync()
            self.settle.deleted()
        else:
            retire(folder)

    # one run of each kind

    def run_baseline(self, scenario: str, count: int, processes: int, repeat: int, label: str = "baseline") -> Run:
        folder = self.fresh_folder(f"{scenario}-{label.replace(' ', '')}-n{count}")
        command = self.baseline_command(count, folder / "images", processes)
        run = Run(scenario, label, count, processes, repeat, shlex.join(command))
        try:
            self.timed(run, command, folder, folder / "run.log")
            match = BASELINE_PHASES.search((folder / "run.log").read_text(errors="replace"))
            if match:
                run.phases = {"generate": float(match.group(1)), "stack": float(match.group(2))}
            return run
        finally:
            self.cleanup(folder)

    def run_workflow(self, scenario: str, count: int, cores: int, repeat: int, label: str = "workflow") -> Run:
        folder = self.fresh_folder(f"{scenario}-{label.replace(' ', '')}-n{count}")
        config = self.write_config(folder, count)
        command = self.workflow_command(config, cores)
        run = Run(scenario, label, count, cores, repeat, shlex.join(command))
        try:
            self.timed(run, command, folder, folder / "run.log")
            run.jobs = job_breakdown(folder, self.args.max_threads, cores)
            return run
        finally:
            self.cleanup(folder)

    # scenarios

    def warm_up(self) -> None:
        """Untimed tiny runs so that the first timed run does not pay for cold module caches."""
        log("warm-up: a 200-image baseline and workflow run (untimed)")
        folder = self.fresh_folder("warmup")
        try:
            self.execute(self.baseline_command(200, folder / "images", self.args.cores), folder, folder / "b.log")
            config = self.write_config(folder, 200)
            self.execute(self.workflow_command(config, self.args.cores), folder, folder / "w.log")
        finally:
            remove_tree(folder)
            os.sync()
            self.settle.deleted()

    def generate_stack(self) -> list[Run]:
        runs = []
        for count in self.args.counts:
            for repeat in range(self.args.repeats):
                order = ("baseline", "workflow") if repeat % 2 == 0 else ("workflow", "baseline")
                for kind in order:
                    if kind == "baseline":
                        runs += self.retrying(self.run_baseline, "generate-stack", count, self.args.cores, repeat)
                    else:
                        runs += self.retrying(self.run_workflow, "generate-stack", count, self.args.cores, repeat)
        return runs

    def noop(self) -> list[Run]:
        count, cores = self.args.noop_count, self.args.cores
        folder = self.fresh_folder(f"noop-n{count}")
        runs = []
        try:
            config = self.write_config(folder, count)
            scratch_command = self.workflow_command(config, cores, dry_run=True)
            scratch = self.timed(
                Run("noop", "dry run from scratch", count, cores, 0, shlex.join(scratch_command)),
                scratch_command,
                folder,
                folder / "dry-run-from-scratch.log",
            )
            runs.append(scratch)
            full = self.timed(
                Run("noop", "full run", count, cores, 0, shlex.join(self.workflow_command(config, cores))),
                self.workflow_command(config, cores),
                folder,
                folder / "run.log",
            )
            full.jobs = job_breakdown(folder, self.args.max_threads, cores)
            runs.append(full)
            for repeat in range(self.args.repeats):
                order = (False, True) if repeat % 2 == 0 else (True, False)
                for dry_run in order:
                    command = self.workflow_command(config, cores, dry_run=dry_run)
                    label = "dry run" if dry_run else "no-op rerun"

                    def produce(command=command, label=label, repeat=repeat):
                        run = Run("noop", label, count, cores, repeat, shlex.join(command))
                        log_path = folder / f"{label.replace(' ', '-')}-{repeat}.log"
                        log_path.unlink(missing_ok=True)
                        self.timed(run, command, folder, log_path)
                        if "Nothing to be done" not in log_path.read_text(errors="replace"):
                            log(f"warning: the {label} planned jobs on a finished folder:\n{tail(log_path)}")
                        return run

                    runs += self.retrying(produce)
        finally:
            self.cleanup(folder)
        return runs

    def scaling(self) -> list[Run]:
        count = self.args.scaling_count
        low, high = self.args.scaling_cores
        runs = []
        for repeat in range(self.args.repeats):
            order = (low, high) if repeat % 2 == 0 else (high, low)
            for cores in order:
                runs += self.retrying(self.run_workflow, "scaling", count, cores, repeat, label=f"cores {cores}")
            if self.args.scaling_baseline:
                for processes in order:
                    label = f"baseline {processes}"
                    runs += self.retrying(self.run_baseline, "scaling", count, processes, repeat, label=label)
        return runs


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# Reports --------------------------------------------------------------------------------------------------------------


def walls(runs, label, count=None, cores=None) -> list[float]:
    return [
        run.wall
        for run in runs
        if not run.discarded
        and run.label == label
        and (count is None or run.count == count)
        and (cores is None or run.cores == cores)
    ]


def median_of(values):
    summary = spread(values)
    return None if summary is None else summary[0]


def generate_stack_rows(runs, counts) -> list[list]:
    rows = []
    for count in counts:
        baseline, workflow = walls(runs, "baseline", count), walls(runs, "workflow", count)
        b, w = median_of(baseline), median_of(workflow)
        ratio = w / b if b and w is not None else None
        if count == 100_000:
            target, met = "ratio ≤ 0.6", ratio is not None and ratio <= 0.6
        elif count == 2000:
            target, met = "workflow ≤ baseline + 2 s", b is not None and w is not None and w <= b + 2.0
        else:
            target, met = "(none for this N)", None
        rows.append(
            [
                f"generate+stack N={count}",
                fmt_spread(baseline),
                fmt_spread(workflow),
                fmt(ratio) + (f" (+{w - b:.2f} s)" if count == 2000 and b is not None and w is not None else ""),
                target,
                verdict(met),
            ]
        )
    return rows


def noop_rows(runs, count) -> list[list]:
    rows = []
    full = walls(runs, "full run")
    for label, target in (("dry run from scratch", 3.0), ("no-op rerun", 3.0), ("dry run", None)):
        values = walls(runs, label)
        w = median_of(values)
        if target is not None and count == 100_000:
            text, met = f"≤ {target:g} s", w is not None and w <= target
        elif target is not None:
            text, met = f"≤ {target:g} s (set for N=100000)", None
        else:
            text, met = "(information)", None
        rows.append([f"{label} N={count}", "n/a", fmt_spread(values), "—", text, verdict(met)])
    rows.append([f"first full run N={count} (set-up)", "n/a", fmt_spread(full), "—", "(information)", "—"])
    return rows


def scaling_rows(runs, count, cores_pair, with_baseline) -> list[list]:
    low, high = cores_pair
    rows = []
    pairs = [("workflow", f"cores {low}", f"cores {high}")]
    if with_baseline:
        pairs.append(("baseline_pool", f"baseline {low}", f"baseline {high}"))
    for name, low_label, high_label in pairs:
        slow, fast = walls(runs, low_label), walls(runs, high_label)
        s, f = median_of(slow), median_of(fast)
        speedup = s / f if s and f else None
        if name == "workflow" and count == 100_000 and (low, high) == (1, 2):
            target, met = "speed-up ≥ 1.8", speedup is not None and speedup >= 1.8
        else:
            target, met = "(information)", None
        rows.append([f"{name} N={count}", fmt_spread(slow), fmt_spread(fast), fmt(speedup), target, verdict(met)])
    return rows


def verdict(met) -> str:
    return "—" if met is None else ("yes" if met else "**no**")


def breakdown_table(runs) -> str:
    """Medians over workflow runs of the split between job time and engine overhead."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        if run.jobs and not run.discarded:
            groups.setdefault((run.label, run.count, run.cores), []).append(run)
    rows = []
    for (label, count, cores), members in groups.items():

        def med(key, members=members):
            return median_of([run.jobs.get(key) for run in members])

        sequential = all(run.jobs["concurrent_jobs"] == 1 for run in members)
        overhead = median_of([run.wall - run.jobs["job_s"] for run in members]) if sequential else None
        start_up = median_of([run.jobs["job_s"] - run.jobs["core_s"] for run in members])
        rows.append(
            [
                f"{label} N={count}" + ("" if label.startswith("cores") else f" cores={cores}"),
                fmt(median_of([run.wall for run in members])),
                f"{med('job_s'):.2f} ({int(med('jobs'))} jobs)",
                fmt(med("shard_s")),
                fmt(med("stack_s")),
                fmt(med("core_s")),
                fmt(start_up),
                fmt(overhead) if sequential else "n/a (jobs overlapped)",
                fmt(med("stack_max_rss"), 0),
                fmt(med("stack_max_pss"), 0),
            ]
        )
    header = [
        "workflow run",
        "wall s",
        "Σ job s (TSV)",
        "shard jobs s",
        "stack job s",
        "in-script s (logs)",
        "job start-up s",
        "engine overhead s",
        "stack max_rss MB",
        "stack max_pss MB",
    ]
    return md_table(header, rows)


def baseline_phase_table(runs) -> str:
    """Medians of the baseline's own phase times (its Pool work, without interpreter start-up)."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        if run.phases and not run.discarded:
            groups.setdefault((run.label, run.count, run.cores), []).append(run)
    rows = [
        [
            f"{label} N={count} processes={cores}",
            fmt(median_of([run.wall for run in members])),
            fmt(median_of([run.phases["generate"] for run in members])),
            fmt(median_of([run.phases["stack"] for run in members])),
        ]
        for (label, count, cores), members in groups.items()
    ]
    return md_table(["baseline run", "wall s", "generate phase s", "stack phase s"], rows)


def runs_table(runs) -> str:
    rows = [
        [
            index + 1,
            run.label,
            run.count,
            run.cores,
            run.repeat + 1,
            fmt(run.wall),
            fmt(run.settle, 0),
            fmt(run.io_before, 1),
            fmt(run.cpu_before, 1),
            fmt(run.probe_before, 0),
            fmt(run.io_stall),
            f"{fmt(run.own_cpu, 1)} ({fmt(run.own_system, 1)})",
            fmt(run.kernel_cpu, 1),
            fmt(run.foreign, 1) + (" (discarded)" if run.discarded else ""),
            fmt(run.steal, 1),
        ]
        for index, run in enumerate(runs)
    ]
    header = [
        "#",
        "run",
        "N",
        "cores",
        "repeat",
        "wall s",
        "settle s",
        "IO % before",
        "CPU % before",
        "file creation µs before",
        "IO stall s during",
        "own CPU s (of it system)",
        "kernel threads CPU s",
        "other CPU load %",
        "steal %",
    ]
    return md_table(header, rows)


def machine_facts(workflow_note: str) -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    import cv2
    import numpy

    try:
        snakemake_version = version("snakemake")
    except PackageNotFoundError:
        snakemake_version = "?"
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().splitlines()[0].split()[1])
        memory = f"{kib / (1 << 20):.1f} GiB"
    return [
        f"- nproc: {os.cpu_count()} (usable: {len(os.sched_getaffinity(0))}); CPU: {model}; memory: {memory}",
        f"- Python {platform.python_version()}, Snakemake {snakemake_version}, numpy {numpy.__version__}, "
        f"OpenCV {cv2.__version__}; {platform.system()} {platform.release()}",
        f"- scratch disk: {mount_of(SCRATCH)}",
        f"- workflow measured: {workflow_note}",
    ] + (
        ["- PYTHONDONTWRITEBYTECODE is set: modules without a cached .pyc are compiled in every process"]
        if os.environ.get("PYTHONDONTWRITEBYTECODE")
        else []
    )


def mount_of(path: Path) -> str:
    """Device, type and options of the mount holding ``path``."""
    best = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            device, point, kind, options = line.split()[:4]
            if str(path.resolve()).startswith(point) and (best is None or len(point) > len(best[1])):
                best = (device, point, kind, options)
    return "?" if best is None else f"{best[0]} on {best[1]} ({best[2]}, {best[3]})"


def caution(runs: list[Run], args) -> str:
    """A warning when kept runs shared the machine with other work."""
    loaded = [run for run in runs if not run.discarded and (run.foreign or 0) > args.foreign_limit]
    if not loaded:
        return ""
    return (
        f"**Caution:** {len(loaded)} of the runs behind this table shared the machine with other work (more "
        f"than {args.foreign_limit:g} % of its CPU outside the timed processes, after {args.retries} retries); "
        "see 'other CPU load %' in the run list."
    )


def report(scenario: str, table: str, runs: list[Run], args, facts: list[str]) -> str:
    settle = (
        f"sync, then at least {args.settle:g} s (and {args.after_delete:g} s after any large delete) "
        f"and until, for {args.quiet_seconds} s, IO pressure stayed below "
        f"{args.io_quiet:g} %, CPU use below {args.cpu_quiet:g} % and creating a small file took at most "
        f"{args.probe_factor:g}x the best time seen (at most {args.settle_max:g} s)"
    )
    settle += (
        "; finished runs' images were kept, their page cache dropped, until the end"
        if not args.keep
        else "; every run's files were kept"
    )
    parts = [
        f"# pixelflow benchmark: {scenario}{' (quick mode)' if args.quick else ''}",
        "",
        f"{datetime.now():%Y-%m-%d %H:%M}; `{args.command_line}`",
        "",
        "Times are whole-process wall seconds, median [min–max] over "
        f"{args.repeats} interleaved repetition(s). Workflow config: one uniform 100x100 uint8 png dataset, "
        f"shard_size {args.shard_size}, max_threads {args.max_threads}, no montage. "
        f"Settling before each run: {settle}." + (f" Timed processes ran at nice {args.nice}." if args.nice else ""),
        "",
        table,
    ]
    if caution(runs, args):
        parts += ["", caution(runs, args)]
    if any(run.jobs for run in runs):
        parts += [
            "",
            "## Where the workflow's time goes (medians)",
            "",
            "Σ job s sums the `s` column of the per-job benchmark TSVs; in-script s sums the times the job logs "
            "report; job start-up is the difference (interpreter, imports, Snakemake's script preamble); engine "
            "overhead is wall minus Σ job s (meaningful only when jobs run one at a time). max_rss / max_pss are "
            "summed over the stack job's processes, as sampled by Snakemake.",
            "",
            breakdown_table(runs),
        ]
    if any(run.phases for run in runs):
        parts += ["", "## The baseline's phases (medians, as it prints them)", "", baseline_phase_table(runs)]
    parts += ["", "## Every run", "", runs_table(runs), "", "## Machine", "", *facts, ""]
    return "\n".join(parts)


# Command line ---------------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Time the pixelflow workflow against benchmarks/baseline_pool.py (see benchmarks/README.md).",
    )
    parser.add_argument(
        "--scenarios",
        nargs="+",
        choices=SCENARIOS,
        default=list(SCENARIOS),
        help="which scenarios to run (default: all)",
    )
    parser.add_argument(
        "--counts", nargs="+", type=int, help="generate-stack sizes (default: 100000 2000; --quick: 2000)"
    )
    parser.add_argument("--noop-count", type=int, help="images in the noop scenario (default: 100000; --quick: 2000)")
    parser.add_argument(
        "--scaling-count", type=int, help="images in the scaling scenario (default: 100000; --quick: 2000)"
    )
    parser.add_argument(
        "--scaling-cores", nargs=2, type=int, default=[1, 2], metavar=("LOW", "HIGH"), help="(default: 1 2)"
    )
    parser.add_argument(
        "--scaling-baseline",
        action="store_true",
        help="also time the baseline with LOW and HIGH processes, to see what this machine allows",
    )
    parser.add_argument("--repeats", type=int, help="interleaved repetitions (default: 3; --quick: 1)")
    parser.add_argument(
        "--cores", type=int, default=os.cpu_count(), help="--cores / --processes of timed runs (default: %(default)s)"
    )
    parser.add_argument(
        "--shard-size",
        type=int,
        help="workflow shard_size (default: from config/schema.yaml)",
    )
    parser.add_argument(
        "--max-threads",
        type=int,
        help="workflow max_threads (default: from config/schema.yaml)",
    )
    parser.add_argument(
        "--settle", type=float, help="minimum seconds to wait after sync before a run (default: 20; --quick: 2)"
    )
    parser.add_argument("--settle-max", type=float, help="maximum settling seconds (default: 180; --quick: 5)")
    parser.add_argument(
        "--after-delete",
        type=float,
        help="minimum seconds between deleting a run's files and the next run (default: 65; --quick: 0)",
    )
    parser.add_argument(
        "--keep-free-gb",
        type=float,
        default=8.0,
        help="keep finished runs' images until the end while the disk has this many GiB free, "
        "else delete them at once (default: %(default)s)",
    )
    parser.add_argument(
        "--io-quiet",
        type=float,
        default=3.0,
        help="IO pressure (%% of time stalled, /proc/pressure/io) meaning settled (default: %(default)s)",
    )
    parser.add_argument(
        "--cpu-quiet", type=float, default=25.0, help="machine CPU use (%%) meaning idle (default: %(default)s)"
    )
    parser.add_argument(
        "--probe-factor",
        type=float,
        default=2.0,
        help="settled only when creating a small file takes at most this many times the best time seen "
        "(0: no file creation probe; default: %(default)s)",
    )
    parser.add_argument(
        "--quiet-seconds", type=int, help="consecutive quiet seconds that end settling (default: 3; --quick: 2)"
    )
    parser.add_argument(
        "--foreign-limit",
        type=float,
        default=10.0,
        help="redo a run if CPU use outside its own processes exceeded this %% of the machine (default: %(default)s)",
    )
    parser.add_argument("--retries", type=int, help="redos allowed per run (default: 2; --quick: 0)")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="scheduling priority of the timed processes (e.g. -10, needs root: other work on the machine then "
        "takes little CPU from them; default: %(default)s)",
    )
    parser.add_argument(
        "--source",
        choices=SOURCES,
        default="head",
        help="what to measure: a copy of the committed HEAD (default), a copy of the working tree, or the "
        "repository in place (live: edits made during the run change what is measured)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke check: N=2000 everywhere, 1 repeat, short settle")
    parser.add_argument("--no-warmup", dest="warmup", action="store_false", help="skip the untimed warm-up runs")
    parser.add_argument("--keep", action="store_true", help="keep every run's folder under benchmarks/scratch")
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=RESULTS,
        help="where the .md and .json reports go (default: benchmarks/results)",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "counts": [2000] if quick else [100_000, 2000],
        "noop_count": 2000 if quick else 100_000,
        "scaling_count": 2000 if quick else 100_000,
        "repeats": 1 if quick else 3,
        "settle": 1.0 if quick else 20.0,
        "quiet_seconds": 2 if quick else 3,
        "settle_max": 5.0 if quick else 180.0,
        "after_delete": 0.0 if quick else 65.0,
        "retries": 0 if quick else 2,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.repeats < 1 or min(args.counts) < 1 or args.cores < 1:
        parser.error("--repeats, --counts and --cores must be positive")
    args.command_line = shlex.join(["python", "benchmarks/harness.py", *(sys.argv[1:] if argv is None else argv)])
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    leftovers = SCRATCH.exists() and any(SCRATCH.iterdir())
    if leftovers:
        log(f"removing leftovers in {SCRATCH}")
        for entry in SCRATCH.iterdir():
            remove_tree(entry)
        os.sync()
    SCRATCH.mkdir(parents=True, exist_ok=True)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    suffix = ".quick" if args.quick else ""
    headlines = []
    try:
        workflow, workflow_note = snapshot_workflow(args.source)
        for key in ("shard_size", "max_threads"):
            if getattr(args, key) is None:
                setattr(args, key, schema_default(workflow, key))
        log(f"measuring {workflow_note}; shard_size {args.shard_size}, max_threads {args.max_threads}")
        facts = machine_facts(workflow_note)
        bench = Bench(args, workflow)
        if leftovers:
            bench.settle.deleted()
        if args.probe_factor > 0:
            bench.settle.calibrate(SCRATCH / "calibration")
        if args.warmup:
            bench.warm_up()
        for scenario in SCENARIOS:
            if scenario not in args.scenarios:
                continue
            log(f"scenario {scenario}")
            if scenario == "generate-stack":
                runs = bench.generate_stack()
                rows = generate_stack_rows(runs, args.counts)
                header = ["scenario", "baseline (median s)", "workflow (median s)", "ratio workflow/baseline"]
            elif scenario == "noop":
                runs = bench.noop()
                rows = noop_rows(runs, args.noop_count)
                header = ["scenario", "baseline (median s)", "workflow (median s)", "ratio workflow/baseline"]
            else:
                runs = bench.scaling()
                rows = scaling_rows(runs, args.scaling_count, args.scaling_cores, args.scaling_baseline)
                low, high = args.scaling_cores
                header = ["scenario", f"cores {low} (median s)", f"cores {high} (median s)", f"speed-up {low}→{high}"]
            table = md_table([*header, "target", "met?"], rows)
            headlines += [f"### {scenario}", "", table, ""] + ([caution(runs, args), ""] if caution(runs, args) else [])
            text = report(scenario, table, runs, args, facts)
            (args.results_dir / f"{scenario}{suffix}.md").write_text(text, encoding="utf-8")
            raw = {"command": args.command_line, "settings": vars_of(args), "runs": [asdict(run) for run in runs]}
            (args.results_dir / f"{scenario}{suffix}.json").write_text(json.dumps(raw, indent=1), encoding="utf-8")
            print(text, flush=True)
        summary = [f"# pixelflow benchmarks{' (quick mode)' if args.quick else ''}", "", f"`{args.command_line}`", ""]
        summary += headlines + ["Details: the per-scenario reports beside this file.", "", *facts, ""]
        (args.results_dir / f"summary{suffix}.md").write_text("\n".join(summary), encoding="utf-8")
    finally:
        if not args.keep:
            for entry in SCRATCH.iterdir():
                remove_tree(entry)
            os.sync()
    return 0


def vars_of(args) -> dict:
    return {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}


if __name__ == "__main__":
    sys.exit(main())
