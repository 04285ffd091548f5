"""The datasets benchmark's runs: one timed process each, with what the machine did meanwhile.

:class:`Bench` runs the scenarios of benchmarks/datasets.py (generate-stack, noop, scaling): the workflow
(``snakemake ... results/datasets/noise/stack.npy`` in a fresh folder) and benchmarks/baseline_pool.py, each
run settled first (:class:`common.Settler`), timed from start to exit, with the CPU used by the timed
process tree, by kernel threads and by anything else. After a run's time is recorded its large files are
deleted and its small ones kept, with their page cache dropped, until the harness ends (:func:`retire`):
deleting 100,000 small files would slow the file creation of the runs after it.
"""

import contextlib
import os
import re
import resource
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import (
    BENCH_DIR,
    Settler,
    busy_percent,
    cpu_times,
    fmt,
    io_stall_total,
    log,
    remove_tree,
    run_process,
    snakemake_command,
    tail,
    write_config,
)
from datasets_report import Run, job_breakdown

BASELINE = BENCH_DIR / "baseline_pool.py"
DATASET = "noise"
TARGET_FILE = f"results/datasets/{DATASET}/stack.npy"
SHAPE = (100, 100)
BASELINE_PHASES = re.compile(r"generate ([0-9.]+) s, stack ([0-9.]+) s")


# CPU accounting of a timed run ----------------------------------------------------------------------------------------


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


# A finished run's files -----------------------------------------------------------------------------------------------


def retire(folder: Path, scratch: Path, large: int = 2**20) -> None:
    """Delete ``folder``'s files of ``large`` bytes or more; drop the page cache of the others.

    The many small files (the images) stay on disk until the harness ends. Deleting them now
    would leave their inodes recently deleted, which file creation on ext4 without a journal
    scans past for minutes (see :class:`common.Settler`); dropping their cached pages leaves memory
    as a delete would. Call after ``os.sync()``: only clean pages are dropped.
    """
    if scratch.resolve() not in Path(folder).resolve().parents:
        raise RuntimeError(f"refusing to retire {folder}: not below {scratch}")
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


class Bench:
    def __init__(self, args, workflow: Path, scratch: Path):
        self.args = args
        self.scratch = scratch
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
        self.env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
        self.counter = 0

    # commands

    def workflow_command(self, config: Path, cores: int, dry_run: bool = False) -> list[str]:
        command = snakemake_command(
            "--configfile", str(config), "--cores", str(cores), snakefile=self.snakefile, script=True
        )
        return [*command, *(["-n"] if dry_run else []), TARGET_FILE]

    def baseline_command(self, count: int, folder: Path, processes: int) -> list[str]:
        return [sys.executable, str(BASELINE), str(count), str(folder), "--processes", str(processes)]

    def fresh_folder(self, name: str) -> Path:
        self.counter += 1
        folder = self.scratch / f"{self.counter:03d}-{name}"
        remove_tree(folder)
        folder.mkdir(parents=True)
        return folder

    def write_config(self, folder: Path, count: int) -> Path:
        dataset = {"generator": "uniform", "count": count, "shape": list(SHAPE), "dtype": "uint8", "format": "png"}
        config = {
            "seed": 2026,
            "shard_size": self.args.shard_size,
            "max_threads": self.args.max_threads,
            "montage": {"count": 0},
            "datasets": {DATASET: dataset},
        }
        return write_config(folder, config)

    # timing

    def start_process(self) -> None:
        """Runs in each timed child before exec: apply --nice (children inherit it)."""
        if self.args.nice:
            os.setpriority(os.PRIO_PROCESS, 0, self.args.nice)

    def execute(self, command: list[str], cwd: Path, log_path: Path) -> None:
        """Run untimed (set-up runs); fail loudly."""
        run_process(command, cwd, log_path, env=self.env, preexec_fn=self.start_process)

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
        if shutil.disk_usage(self.scratch).free < self.args.keep_free_gb * 2**30:
            remove_tree(folder)
            os.sync()
            self.settle.deleted()
        else:
            retire(folder, self.scratch)

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
            full_command = self.workflow_command(config, cores)
            full = self.timed(
                Run("noop", "full run", count, cores, 0, shlex.join(full_command)),
                full_command,
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
