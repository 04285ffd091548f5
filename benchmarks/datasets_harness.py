"""The datasets benchmark's runs: one timed process each, with what the machine did meanwhile.

:class:`Bench` runs the scenarios of benchmarks/datasets.py (generate-stack, noop, scaling, random-read): the
workflow (``snakemake ... results/datasets/noise/stack.npy`` in a fresh folder for ``storage: files``;
``.../manifest.tsv .../images.zarr/zarr.json``, the array ready, for ``storage: zarr``) and
benchmarks/baseline_pool.py, each run settled first (:class:`common.Settler`), timed from start to exit, with
the CPU used by the timed process tree, by kernel threads and by anything else, and the peak memory of that
tree (:class:`TreeMemory`). After a run's time is recorded, the files its shard jobs wrote are counted
(:func:`written_files`), its large files are deleted and its small ones kept, with their page cache dropped,
until the harness ends (:func:`retire`): deleting 100,000 small files would slow the file creation of the
runs after it. random-read times single images read from zarr arrays in this process.
"""

import contextlib
import csv
import hashlib
import os
import re
import resource
import shlex
import shutil
import subprocess
import sys
import threading
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
    use_scripts,
    write_config,
)
from datasets_report import Run, job_breakdown

BASELINE = BENCH_DIR / "baseline_pool.py"
DATASET = "noise"
TARGET_FILE = f"results/datasets/{DATASET}/stack.npy"
# What makes a zarr dataset's array ready: its index job's outputs (with zarr, stack defaults to false).
ZARR_TARGETS = (f"results/datasets/{DATASET}/manifest.tsv", f"results/datasets/{DATASET}/images.zarr/zarr.json")
# Storage variants: files (PNGs, stacked) or zarr with a compression.
STORAGES = ("files", "zarr-none", "zarr-zstd", "zarr-blosc")
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


# Memory of a timed process tree -------------------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc/<pid>/task/<tid>/children)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in os.scandir(f"/proc/{current}/task"):
                with contextlib.suppress(OSError), open(f"{task.path}/children", encoding="ascii") as handle:
                    queue += [int(child) for child in handle.read().split()]
    return found


def rss_pss_kib(pid: int) -> tuple[int, int]:
    """RSS and PSS of one process in KiB (0, 0 if it is gone)."""
    rss = pss = 0
    with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
                break
    return rss, pss


class TreeMemory:
    """The peak, over samples every ``interval`` seconds, of RSS and PSS summed over a process and its descendants.

    Snakemake's ``benchmark:`` records hold each job's own peak; this is the whole run's (Snakemake and every
    job process at once), as a machine must hold it. A thread samples until :meth:`stop`.
    """

    def __init__(self, pid: int, interval: float):
        self.pid, self.interval = pid, interval
        self.peak_rss = self.peak_pss = 0
        self.samples = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()

    def sample(self) -> None:
        while True:
            rss = pss = 0
            for pid in descendants(self.pid):
                one_rss, one_pss = rss_pss_kib(pid)
                rss, pss = rss + one_rss, pss + one_pss
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            self.samples += 1
            if self.done.wait(self.interval):
                return

    def stop(self) -> dict:
        self.done.set()
        self.thread.join()
        return {"peak_rss_mb": self.peak_rss / 1024, "peak_pss_mb": self.peak_pss / 1024, "samples": self.samples}


class ShardReader:
    """Image ``i`` of an uncompressed sharded array read by hand: the floor of the file layout, not an API.

    Per read, two ``os.pread`` calls on the shard file: its 16-byte entry (offset, length) in the shard
    index at the file's end (Zarr v3 sharding, index last, then a 4-byte CRC32C, unchecked here), then the
    chunk's raw bytes. Only for ``compression: none`` and grey images.
    """

    def __init__(self, store: Path):
        import json

        metadata = json.loads((Path(store) / "zarr.json").read_text(encoding="utf-8"))
        self.store = Path(store)
        self.shard_images = metadata["chunk_grid"]["configuration"]["chunk_shape"][0]
        self.image_shape = tuple(metadata["shape"][1:])
        self.dtype = metadata["data_type"]
        self.files: dict[int, tuple[int, int]] = {}

    def __call__(self, index: int):
        import numpy as np

        shard, position = divmod(index, self.shard_images)
        if shard not in self.files:
            descriptor = os.open(self.store / "c" / str(shard) / "0" / "0", os.O_RDONLY)
            self.files[shard] = (descriptor, os.fstat(descriptor).st_size)
        descriptor, size = self.files[shard]
        entry = size - 4 - 16 * (self.shard_images - position)
        offset, length = np.frombuffer(os.pread(descriptor, 16, entry), dtype="<u8")
        data = os.pread(descriptor, int(length), int(offset))
        return np.frombuffer(data, dtype=self.dtype).reshape(self.image_shape)

    def close(self) -> None:
        for descriptor, _ in self.files.values():
            os.close(descriptor)
        self.files.clear()


# A finished run's files -----------------------------------------------------------------------------------------------


def written_files(folder: Path, storage: str) -> dict:
    """The data files of a finished workflow run below ``results/datasets/noise``, and its shard jobs.

    ``by_shard_jobs``: files in the shard folders (images and manifests) and, for zarr, the array's shard
    files (``images.zarr/c/...``); ``other``: the rest (the index job's manifest.tsv and zarr.json, the
    stack). ``shard_jobs`` counts the shard jobs' benchmark records.
    """
    dataset = folder / "results" / "datasets" / DATASET
    by_shards = other = size = 0
    for root, _, names in os.walk(dataset):
        relative = Path(root).relative_to(dataset).parts
        from_shard = bool(relative) and (relative[0].startswith("shard-") or relative[:2] == ("images.zarr", "c"))
        for name in names:
            if name.startswith("."):
                continue  # a temporary file left over (there should be none)
            with contextlib.suppress(OSError):
                size += os.lstat(os.path.join(root, name)).st_size
            if from_shard:
                by_shards += 1
            else:
                other += 1
    records = folder / "results" / "benchmarks" / "datasets" / DATASET
    shard_jobs = len(list(records.glob("shard-*.tsv")))
    return {
        "storage": storage,
        "shard_jobs": shard_jobs,
        "by_shard_jobs": by_shards,
        "other": other,
        "data_bytes": size,
    }


def drop_cache(paths) -> None:
    """Drop the page cache of these files (clean pages only: call after ``os.sync()``)."""
    for path in paths:
        with contextlib.suppress(OSError):
            descriptor = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(descriptor)


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
        self.workflow = workflow
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

    def workflow_command(self, config: Path, cores: int, dry_run: bool = False, storage: str = "files") -> list[str]:
        command = snakemake_command(
            "--configfile", str(config), "--cores", str(cores), snakefile=self.snakefile, script=True
        )
        targets = [TARGET_FILE] if storage == "files" else list(ZARR_TARGETS)
        return [*command, *(["-n"] if dry_run else []), *targets]

    def baseline_command(self, count: int, folder: Path, processes: int) -> list[str]:
        return [sys.executable, str(BASELINE), str(count), str(folder), "--processes", str(processes)]

    def fresh_folder(self, name: str) -> Path:
        self.counter += 1
        folder = self.scratch / f"{self.counter:03d}-{name}"
        remove_tree(folder)
        folder.mkdir(parents=True)
        return folder

    @staticmethod
    def dataset_config(count: int, storage: str) -> dict:
        """A uniform 100x100 uint8 dataset: PNG files, or a zarr array (``zarr-<compression>``)."""
        dataset = {"generator": "uniform", "count": count, "shape": list(SHAPE), "dtype": "uint8"}
        if storage == "files":
            return {**dataset, "format": "png"}
        return {**dataset, "storage": "zarr", "compression": storage.split("-", 1)[1]}

    def write_config(self, folder: Path, count: int, storage: str = "files", datasets: dict | None = None) -> Path:
        config = {
            "seed": 2026,
            "shard_size": self.args.shard_size,
            "max_threads": self.args.max_threads,
            "montage": {"count": 0},
            "datasets": datasets or {DATASET: self.dataset_config(count, storage)},
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
        if self.args.prefault_gib > 0:
            touch = f"import numpy; numpy.ones({int(self.args.prefault_gib * 2**30)}, numpy.uint8)"
            subprocess.run([sys.executable, "-c", touch], check=True)
        stall_before, cpu_before = io_stall_total(), cpu_times()
        own_before, kernel_before = children_cpu_seconds(), kernel_thread_ticks()
        with open(log_path, "ab") as output:
            started = time.perf_counter()
            process = subprocess.Popen(
                command, cwd=cwd, env=self.env, stdout=output, stderr=subprocess.STDOUT, preexec_fn=self.start_process
            )
            memory = TreeMemory(process.pid, self.args.memory_interval) if self.args.memory_interval > 0 else None
            returncode = process.wait()
            run.wall = time.perf_counter() - started
            if memory is not None:
                run.memory = memory.stop()
        own_after, kernel_after = children_cpu_seconds(), kernel_thread_ticks()
        stall_after, cpu_after = io_stall_total(), cpu_times()
        if returncode != 0:
            raise RuntimeError(f"{shlex.join(command)} failed ({returncode}):\n{tail(log_path)}")
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
        peak = f", peak Σ PSS {run.memory['peak_pss_mb']:.0f} MiB" if run.memory else ""
        log(
            f"{run.scenario} {run.label} {run.storage if run.label != 'baseline' else ''} N={run.count} "
            f"cores={run.cores} #{run.repeat + 1}: {run.wall:.2f} s "
            f"(settled {run.settle:.0f} s; during the run: IO stall {fmt(run.io_stall)} s, "
            f"other CPU load {fmt(run.foreign, 1)} %{peak})"
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

    def run_workflow(
        self, scenario: str, count: int, cores: int, repeat: int, label: str = "workflow", storage: str = "files"
    ) -> Run:
        folder = self.fresh_folder(f"{scenario}-{label.replace(' ', '')}-{storage}-n{count}")
        config = self.write_config(folder, count, storage)
        command = self.workflow_command(config, cores, storage=storage)
        run = Run(scenario, label, count, cores, repeat, shlex.join(command), storage)
        try:
            self.timed(run, command, folder, folder / "run.log")
            run.jobs = job_breakdown(folder, self.args.max_threads, cores)
            run.written = written_files(folder, storage)
            return run
        finally:
            self.cleanup(folder)

    # scenarios

    def warm_up(self) -> None:
        """Untimed tiny runs so that the first timed run does not pay for cold module caches."""
        log("warm-up: a 200-image baseline and workflow run per storage (untimed)")
        folder = self.fresh_folder("warmup")
        try:
            self.execute(self.baseline_command(200, folder / "images", self.args.cores), folder, folder / "b.log")
            for storage in dict.fromkeys([*self.args.storage, *self.random_read_storages()]):
                run_folder = folder / storage
                run_folder.mkdir()
                config = self.write_config(run_folder, 200, storage)
                command = self.workflow_command(config, self.args.cores, storage=storage)
                self.execute(command, run_folder, run_folder / "w.log")
        finally:
            remove_tree(folder)
            os.sync()
            self.settle.deleted()

    def generate_stack(self) -> list[Run]:
        """Baseline and each storage's workflow run, interleaved (ABC, then CBA, ...)."""
        runs = []
        kinds = ["baseline", *self.args.storage]
        for count in self.args.counts:
            for repeat in range(self.args.repeats):
                for kind in kinds if repeat % 2 == 0 else kinds[::-1]:
                    if kind == "baseline":
                        runs += self.retrying(self.run_baseline, "generate-stack", count, self.args.cores, repeat)
                    else:
                        runs += self.retrying(
                            self.run_workflow, "generate-stack", count, self.args.cores, repeat, storage=kind
                        )
        return runs

    def noop(self) -> list[Run]:
        runs = []
        for storage in self.args.storage:
            runs += self.noop_of(storage)
        return runs

    def noop_of(self, storage: str) -> list[Run]:
        count, cores = self.args.noop_count, self.args.cores
        folder = self.fresh_folder(f"noop-{storage}-n{count}")
        runs = []
        try:
            config = self.write_config(folder, count, storage)
            scratch_command = self.workflow_command(config, cores, dry_run=True, storage=storage)
            scratch = self.timed(
                Run("noop", "dry run from scratch", count, cores, 0, shlex.join(scratch_command), storage),
                scratch_command,
                folder,
                folder / "dry-run-from-scratch.log",
            )
            runs.append(scratch)
            full_command = self.workflow_command(config, cores, storage=storage)
            full = self.timed(
                Run("noop", "full run", count, cores, 0, shlex.join(full_command), storage),
                full_command,
                folder,
                folder / "run.log",
            )
            full.jobs = job_breakdown(folder, self.args.max_threads, cores)
            full.written = written_files(folder, storage)
            runs.append(full)
            for repeat in range(self.args.repeats):
                order = (False, True) if repeat % 2 == 0 else (True, False)
                for dry_run in order:
                    command = self.workflow_command(config, cores, dry_run=dry_run, storage=storage)
                    label = "dry run" if dry_run else "no-op rerun"

                    def produce(command=command, label=label, repeat=repeat):
                        run = Run("noop", label, count, cores, repeat, shlex.join(command), storage)
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
            for storage in self.args.storage:
                for cores in order:
                    label = f"cores {cores}"
                    runs += self.retrying(self.run_workflow, "scaling", count, cores, repeat, label, storage)
            if self.args.scaling_baseline:
                for processes in order:
                    label = f"baseline {processes}"
                    runs += self.retrying(self.run_baseline, "scaling", count, processes, repeat, label=label)
        return runs

    # random-read

    def random_read_storages(self) -> list[str]:
        """The datasets random-read makes: a zarr array per compression and PNG files (the reference)."""
        if "random-read" not in self.args.scenarios:
            return []
        return [f"zarr-{compression}" for compression in self.args.read_compressions] + ["files"]

    def random_read(self) -> dict:
        """Single random images read from each array and, as the reference, PNGs with OpenCV.

        One untimed workflow run makes a dataset per reader. Then per repetition: settle, drop the page cache
        of the arrays and of the chosen PNGs, open each array once, and read ``--reads`` distinct random images
        with every reader, interleaved image by image in rotating order (page cache dropped), then the same
        images again (cached). Returns per-read milliseconds by reader and state, for the report.
        """
        import cv2
        import numpy as np
        import zarr  # noqa: F401  (imported before any open is timed; pixelflow.io.zarrstore imports it lazily)

        use_scripts(self.workflow)
        from pixelflow.io.zarrstore import open_images, open_reader, pixel_digest, read_image

        count, storages = self.args.read_count, self.random_read_storages()
        names = {storage: f"{DATASET}_{storage.replace('zarr-', '')}" for storage in storages}
        folder = self.fresh_folder(f"random-read-n{count}")
        datasets = {names[storage]: self.dataset_config(count, storage) for storage in storages}
        config = self.write_config(folder, count, datasets=datasets)
        targets = [f"results/datasets/{name}/manifest.tsv" for name in names.values()]
        command = snakemake_command(
            "--configfile", str(config), "--cores", str(self.args.cores), snakefile=self.snakefile, script=True
        )
        log(f"random-read: making {len(storages)} datasets of {count} images (untimed)")
        self.execute([*command, *targets], folder, folder / "set-up.log")
        os.sync()

        datasets_dir = folder / "results" / "datasets"
        manifests = {}
        for storage, name in names.items():
            with open(datasets_dir / name / "manifest.tsv", newline="", encoding="utf-8") as handle:
                manifests[storage] = [(row["file"], row["sha256"]) for row in csv.DictReader(handle, delimiter="\t")]
        stores = {storage: datasets_dir / names[storage] / "images.zarr" for storage in storages if storage != "files"}
        store_files = {
            storage: [os.path.join(root, name) for root, _, files in os.walk(store) for name in files]
            for storage, store in stores.items()
        }
        pngs = [str(datasets_dir / names["files"] / file) for file, _ in manifests["files"]]
        stored_mib = {
            storage: sum(os.path.getsize(path) for path in paths) / 2**20 for storage, paths in store_files.items()
        }
        stored_mib["files"] = sum(os.path.getsize(path) for path in pngs) / 2**20

        methods = list(storages) + (["zarr-python", "by-hand"] if "zarr-none" in storages else [])
        names = {
            storage: "PNG, cv2.imread (files)"
            if storage == "files"
            else f"zarr {storage.split('-', 1)[1]}, pixelflow's reader"
            for storage in storages
        }
        names["zarr-python"] = "zarr none through zarr-python (array[i])"
        names["by-hand"] = "zarr none by hand (2 os.pread)"
        stores["zarr-python"] = stores.get("zarr-none")
        result = {
            "count": count,
            "methods": methods,
            "names": {method: names[method] for method in methods},
            "stored_mib": stored_mib,
            "reads": {method: {"cold": [], "warm": [], "open_ms": []} for method in methods},
            "settle": [],
            "mismatches": 0,
        }
        stored = {method: "zarr-none" if method in ("zarr-python", "by-hand") else method for method in methods}
        rng = np.random.default_rng(2026)
        for repeat in range(self.args.repeats):
            indexes = [int(index) for index in rng.choice(count, size=min(self.args.reads, count), replace=False)]
            settled = self.settle(folder)
            result["settle"].append(settled[0])
            os.sync()
            for paths in store_files.values():
                drop_cache(paths)
            drop_cache(pngs[index] for index in indexes)
            arrays = {}
            for method in methods:
                if method != "files":
                    started = time.perf_counter()
                    if method == "by-hand":
                        arrays[method] = ShardReader(stores["zarr-none"])
                    elif method == "zarr-python":
                        arrays[method] = open_images(stores[method])
                    else:
                        arrays[method] = open_reader(stores[method])
                    result["reads"][method]["open_ms"].append(1e3 * (time.perf_counter() - started))
            for state in ("cold", "warm"):
                for position, index in enumerate(indexes):
                    turn = position % len(methods)
                    for method in methods[turn:] + methods[:turn]:
                        started = time.perf_counter()
                        if method == "files":
                            image = cv2.imread(pngs[index], cv2.IMREAD_UNCHANGED)
                        elif method == "by-hand":
                            image = arrays[method](index)
                        elif method == "zarr-python":
                            image = arrays[method][index]
                        else:
                            image = read_image(arrays[method], index)
                        elapsed = time.perf_counter() - started
                        result["reads"][method][state].append(1e3 * elapsed)
                        if method == "files":
                            with open(pngs[index], "rb") as handle:
                                digest = hashlib.sha256(handle.read()).hexdigest()
                            good = image is not None and image.shape == SHAPE and digest == manifests[method][index][1]
                        else:
                            good = pixel_digest(image) == manifests[stored[method]][index][1]
                        result["mismatches"] += not good
            log(
                f"random-read #{repeat + 1}: "
                + ", ".join(
                    f"{method} {np.median(result['reads'][method]['cold'][-len(indexes) :]):.3f}"
                    f"/{np.median(result['reads'][method]['warm'][-len(indexes) :]):.3f} ms"
                    for method in methods
                )
                + " (median cold/cached)"
            )
            if "by-hand" in arrays:
                arrays["by-hand"].close()
            del arrays
        if result["mismatches"]:
            raise RuntimeError(f"random-read: {result['mismatches']} images read differ from their manifest digest")
        self.cleanup(folder)
        return result
