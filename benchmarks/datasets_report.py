"""The datasets benchmark's records and reports.

A :class:`Run` per timed process; :func:`job_breakdown` reads where a workflow run's time went from its jobs'
benchmark files and logs; the reports hold headline rows against the targets, that breakdown, what the runs
wrote and held in memory, every run and the machine. :func:`random_read_report` reports the random-read
scenario (single images read from a zarr array, against one PNG with OpenCV).
"""

import contextlib
import math
import os
import platform
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from common import benchmark_record, fmt, fmt_spread, md_table, median_of

FINISHED_IN = re.compile(r"finished in ([0-9.]+) s")
WORKER_PROCESSES = re.compile(r"images from index [0-9]+, ([0-9]+) (?:worker process|thread)")
GiB = 1024.0  # MiB
HEADERS = {
    "generate-stack": ["scenario", "baseline (median s)", "workflow (median s)", "ratio workflow/baseline"],
    "noop": ["scenario", "baseline (median s)", "workflow (median s)", "ratio workflow/baseline"],
}


def storage_words(storage: str) -> str:
    """``files`` or ``zarr (zstd)``: a storage variant of the harness (``files``, ``zarr-<compression>``)."""
    return storage if storage == "files" else f"zarr ({storage.split('-', 1)[1]})"


@dataclass
class Run:
    """One timed process."""

    scenario: str
    label: str
    count: int
    cores: int
    repeat: int
    command: str
    storage: str = "files"
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
    # Peak over samples of the RSS and PSS summed over the timed process tree (MiB), and the sample count.
    memory: dict = field(default_factory=dict)
    # A workflow run's data files (see datasets_harness.written_files).
    written: dict = field(default_factory=dict)


def job_breakdown(workdir: Path, max_threads: int, cores: int) -> dict:
    """Per-job times from the workflow's benchmark TSVs and in-script times from its job logs."""
    bench_dir = workdir / "results" / "benchmarks"
    records = {
        str(path.relative_to(bench_dir).with_suffix("")): benchmark_record(path) for path in bench_dir.rglob("*.tsv")
    }
    jobs = {name: record for name, record in sorted(records.items()) if record}

    def number(row, key):
        return row.get(key)  # None for "NA": the job ended before Snakemake's first sample

    stack = next((row for name, row in jobs.items() if name.endswith("/stack")), {})
    index = next((row for name, row in jobs.items() if name.endswith("/index")), {})
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
        "index_s": number(index, "s"),
        "index_max_rss": number(index, "max_rss"),
        "job_max_rss": max((number(row, "max_rss") or 0.0 for row in jobs.values()), default=None),
        "core_s": core,
        "concurrent_jobs": max(1, cores // threads),
    }


def walls(runs, label, count=None, cores=None, storage=None) -> list[float]:
    return [
        run.wall
        for run in runs
        if not run.discarded
        and run.label == label
        and (count is None or run.count == count)
        and (cores is None or run.cores == cores)
        and (storage is None or run.storage == storage)
    ]


def kept(runs, label, count=None, storage=None) -> list[Run]:
    """The runs not discarded with this label (count, storage)."""
    return [
        run
        for run in runs
        if not run.discarded
        and run.label == label
        and (count is None or run.count == count)
        and (storage is None or run.storage == storage)
    ]


def verdict(met) -> str:
    return "—" if met is None else ("yes" if met else "**no**")


def shard_job_files(members: list[Run]) -> float | None:
    """Median data files written per shard job (by the shard jobs: shard files, images, shard manifests)."""
    return median_of(
        [run.written["by_shard_jobs"] / run.written["shard_jobs"] for run in members if run.written.get("shard_jobs")]
    )


def peak_memory(members: list[Run], key: str = "peak_pss_mb") -> list[float]:
    return [run.memory[key] for run in members if run.memory.get(key) is not None]


def generate_stack_rows(runs, counts, storages=("files",)) -> list[list]:
    rows = []
    for count in counts:
        baseline = walls(runs, "baseline", count)
        b = median_of(baseline)
        for storage in storages:
            workflow = walls(runs, "workflow", count, storage=storage)
            w = median_of(workflow)
            ratio = w / b if b and w is not None else None
            zarr = storage != "files"
            limit = 0.2 if zarr else 0.6
            if count == 100_000:
                target, met = f"ratio ≤ {limit:g}", ratio is not None and ratio <= limit
            elif count == 2000 and not zarr:
                target, met = "workflow ≤ baseline + 2 s", b is not None and w is not None and w <= b + 2.0
            else:
                target, met = "(none for this N)", None
            name = f"generate+stack N={count}" if not zarr else f"generate into {storage_words(storage)} N={count}"
            rows.append(
                [
                    name,
                    fmt_spread(baseline),
                    fmt_spread(workflow),
                    fmt(ratio) + (f" (+{w - b:.2f} s)" if count == 2000 and b is not None and w is not None else ""),
                    target,
                    verdict(met),
                ]
            )
            if zarr:
                per_job = shard_job_files(kept(runs, "workflow", count, storage))
                target = "≤ 2 files" if count == 100_000 else "(information)"
                met = per_job is not None and per_job <= 2 if count == 100_000 else None
                rows.append(
                    [f"data files per shard job, {storage_words(storage)} N={count}", "n/a", fmt(per_job), "—"]
                    + [target, verdict(met)]
                )
    return rows


def noop_rows(runs, count, storages=("files",)) -> list[list]:
    rows = []
    targeted = count in (100_000, 1_000_000)
    for storage in storages:
        where = "" if storage == "files" else f" {storage_words(storage)}"
        full = kept(runs, "full run", count, storage)
        for label, target in (("dry run from scratch", 3.0), ("no-op rerun", 3.0), ("dry run", None)):
            values = walls(runs, label, storage=storage)
            w = median_of(values)
            if target is not None and targeted:
                text, met = f"≤ {target:g} s", w is not None and w <= target
            elif target is not None:
                text, met = f"≤ {target:g} s (set for N=100000 and 1000000)", None
            else:
                text, met = "(information)", None
            rows.append([f"{label}{where} N={count}", "n/a", fmt_spread(values), "—", text, verdict(met)])
        rows.append(
            [f"first full run{where} N={count} (set-up)", "n/a", fmt_spread([run.wall for run in full]), "—"]
            + ["(information)", "—"]
        )
        pss = peak_memory(full)
        if pss:
            limit = 24 * GiB
            met = max(pss) <= limit if count == 1_000_000 else None
            rows.append(
                [f"first full run{where} N={count}: peak memory, Σ PSS (Σ RSS) MiB", "n/a"]
                + [f"{max(pss):.0f} ({max(peak_memory(full, 'peak_rss_mb')):.0f})", "—"]
                + ["≤ 24 GiB" if count == 1_000_000 else "(information)", verdict(met)]
            )
    return rows


def scaling_rows(runs, count, cores_pair, with_baseline, storages=("files",)) -> list[list]:
    low, high = cores_pair
    rows = []
    pairs = [(f"workflow {storage_words(storage)}", f"cores {low}", f"cores {high}", storage) for storage in storages]
    if with_baseline:
        pairs.append(("baseline_pool", f"baseline {low}", f"baseline {high}", None))
    for name, low_label, high_label, storage in pairs:
        slow, fast = walls(runs, low_label, storage=storage), walls(runs, high_label, storage=storage)
        s, f = median_of(slow), median_of(fast)
        speedup = s / f if s and f else None
        if storage == "files" and count == 100_000 and (low, high) == (1, 2):
            target, met = "speed-up ≥ 1.8", speedup is not None and speedup >= 1.8
        else:
            target, met = "(information)", None
        rows.append([f"{name} N={count}", fmt_spread(slow), fmt_spread(fast), fmt(speedup), target, verdict(met)])
    return rows


def headline_table(scenario: str, runs: list[Run], args) -> str:
    """The scenario's table of medians against its targets."""
    storages = getattr(args, "storage", ["files"])
    if scenario == "generate-stack":
        rows = generate_stack_rows(runs, args.counts, storages)
    elif scenario == "noop":
        rows = noop_rows(runs, args.noop_count, storages)
    else:
        rows = scaling_rows(runs, args.scaling_count, args.scaling_cores, args.scaling_baseline, storages)
    low, high = args.scaling_cores
    header = HEADERS.get(
        scenario, ["scenario", f"cores {low} (median s)", f"cores {high} (median s)", f"speed-up {low}→{high}"]
    )
    return md_table([*header, "target", "met?"], rows)


def breakdown_table(runs) -> str:
    """Medians over workflow runs of the split between job time and engine overhead."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        if run.jobs and not run.discarded:
            groups.setdefault((run.label, run.storage, run.count, run.cores), []).append(run)
    rows = []
    for (label, storage, count, cores), members in groups.items():

        def med(key, members=members):
            return median_of([run.jobs.get(key) for run in members])

        sequential = all(run.jobs["concurrent_jobs"] == 1 for run in members)
        overhead = median_of([run.wall - run.jobs["job_s"] for run in members]) if sequential else None
        start_up = median_of([run.jobs["job_s"] - run.jobs["core_s"] for run in members])
        rows.append(
            [
                f"{label} {storage_words(storage)} N={count}"
                + ("" if label.startswith("cores") else f" cores={cores}"),
                fmt(median_of([run.wall for run in members])),
                f"{med('job_s'):.2f} ({int(med('jobs'))} jobs)",
                fmt(med("shard_s")),
                fmt(med("index_s")),
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
        "index job s",
        "stack job s",
        "in-script s (logs)",
        "job start-up s",
        "engine overhead s",
        "stack max_rss MB",
        "stack max_pss MB",
    ]
    return md_table(header, rows)


def written_memory_table(runs) -> str:
    """Per kind of run: files written (per shard job) and the peak memory of the whole process tree."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        if (run.written or run.memory) and not run.discarded:
            storage = "" if run.label.startswith("baseline") else run.storage
            groups.setdefault((run.label, storage, run.count, run.cores), []).append(run)
    rows = []
    for (label, storage, count, cores), members in groups.items():

        def med(key, members=members):
            return median_of([run.written.get(key) for run in members])

        rss, pss = peak_memory(members, "peak_rss_mb"), peak_memory(members)
        rows.append(
            [
                f"{label} {storage_words(storage) if storage else ''} N={count} cores={cores}".replace("  ", " "),
                fmt(med("shard_jobs"), 0),
                fmt(med("by_shard_jobs"), 0),
                fmt(shard_job_files(members)),
                fmt(med("other"), 0),
                fmt(med("data_bytes") / 2**20 if med("data_bytes") is not None else None, 0),
                fmt_spread(rss, 0),
                fmt_spread(pss, 0),
                fmt(median_of([run.jobs.get("job_max_rss") for run in members]), 0),
            ]
        )
    header = [
        "run",
        "shard jobs",
        "data files by shard jobs",
        "per shard job",
        "other data files",
        "data MiB",
        "peak Σ RSS MiB, whole run",
        "peak Σ PSS MiB, whole run",
        "largest job max_rss MB (TSV)",
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
            run.label if run.label.startswith("baseline") else f"{run.label} {storage_words(run.storage)}",
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


def machine_facts(workflow_note: str, scratch: Path) -> list[str]:
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
        f"- scratch disk: {mount_of(scratch)}",
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


def settling_words(args) -> str:
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
    return settle


def report(scenario: str, table: str, runs: list[Run], args, facts: list[str]) -> str:
    settle = settling_words(args)
    storages = ", ".join(storage_words(storage) for storage in getattr(args, "storage", ["files"]))
    parts = [
        f"# pixelflow benchmark: {scenario}{' (quick mode)' if args.quick else ''}",
        "",
        f"{datetime.now():%Y-%m-%d %H:%M}; `{args.command_line}`",
        "",
        "Times are whole-process wall seconds, median [min–max] over "
        f"{args.repeats} interleaved repetition(s). Workflow config: one uniform 100x100 uint8 dataset "
        f"(storage: {storages}; files: png, target stack.npy; zarr: target manifest.tsv and images.zarr/zarr.json), "
        f"shard_size {args.shard_size}, max_threads {args.max_threads}, no montage. "
        f"Settling before each run: {settle}."
        + (f" Timed processes ran at nice {args.nice}." if args.nice else "")
        + (
            f" Before each timed run, a separate process touched and freed {args.prefault_gib:g} GiB of memory."
            if getattr(args, "prefault_gib", 0)
            else ""
        ),
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
    if any(run.written or run.memory for run in runs):
        parts += [
            "",
            "## What the runs wrote and held",
            "",
            "Data files: files under the dataset's folder after the run. Those written by the shard jobs are "
            "images (files) or the array's shard files (zarr) and the shards' manifests; other data files are the "
            "index job's (manifest.tsv, zarr.json) and the stack. Job logs and benchmark records (two per job, "
            "either storage) are not counted. Peak memory: the largest sum over the timed process tree (Snakemake "
            f"and every job process) of RSS and of PSS, sampled every {getattr(args, 'memory_interval', 0.5):g} s "
            "from /proc/<pid>/smaps_rollup.",
            "",
            written_memory_table(runs),
        ]
    if any(run.phases for run in runs):
        parts += ["", "## The baseline's phases (medians, as it prints them)", "", baseline_phase_table(runs)]
    parts += ["", "## Every run", "", runs_table(runs), "", "## Machine", "", *facts, ""]
    return "\n".join(parts)


# random-read ----------------------------------------------------------------------------------------------------------


def read_stats(values_ms: list[float]) -> tuple[str, str, str]:
    """Median, 90th percentile and maximum of per-read milliseconds, formatted."""
    if not values_ms:
        return "—", "—", "—"
    ordered = sorted(values_ms)
    p90 = ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)]
    return f"{median_of(ordered):.3f}", f"{p90:.3f}", f"{ordered[-1]:.3f}"


def random_read_table(result: dict) -> str:
    """Per method and page-cache state: per-read milliseconds against the 1 ms target."""
    rows = []
    for method in result["methods"]:
        record = result["reads"][method]
        for state in ("cold", "warm"):
            median, p90, largest = read_stats(record[state])
            target = "≤ 1 ms" if method.startswith("zarr") else "(reference)"
            met = verdict(float(median) <= 1.0) if method.startswith("zarr") and median != "—" else "—"
            if method == "by-hand":
                target = "(floor of the layout)"
            rows.append(
                [
                    result["names"][method],
                    "page cache dropped" if state == "cold" else "cached",
                    len(record[state]),
                    median,
                    p90,
                    largest,
                    fmt(median_of(record["open_ms"]), 1) if state == "cold" else "",
                    target,
                    met,
                ]
            )
    header = ["reader", "state", "reads", "median ms", "p90 ms", "max ms", "open ms (median)", "target", "met?"]
    return md_table(header, rows)


def random_read_report(table: str, result: dict, args, facts: list[str]) -> str:
    sizes = ", ".join(f"{result['names'][method]} {mib:.0f} MiB" for method, mib in result["stored_mib"].items())
    return "\n".join(
        [
            f"# pixelflow benchmark: random-read{' (quick mode)' if args.quick else ''}",
            "",
            f"{datetime.now():%Y-%m-%d %H:%M}; `{args.command_line}`",
            "",
            f"One uniform 100x100 uint8 dataset of {args.read_count} images per reader, made by one untimed workflow "
            f"run (shard_size {args.shard_size}): zarr arrays with compression "
            f"{', '.join(args.read_compressions)}, and a files "
            f"dataset of PNGs as the reference. Stored: {sizes}. Each array is opened once per repetition "
            "(`pixelflow.io.zarrstore.open_reader`, the reader every stage uses; for zarr-python "
            "`pixelflow.io.zarrstore.open_images`, i.e. `zarr.open_array`), then every reader reads the same "
            f"{args.reads} distinct random images per repetition ({args.repeats} repetitions, new indexes each), "
            "interleaved image by image and in rotating order: `read_image(reader, i)` for pixelflow's reader, "
            "`array[i]` for zarr-python, "
            "`cv2.imread(path, cv2.IMREAD_UNCHANGED)` for a PNG (its path from the manifest); 'by hand' reads the "
            "uncompressed array's shard file with two `os.pread` calls (its shard-index entry, then the chunk), the "
            "floor of the file layout (`datasets_harness.ShardReader`, not a reader the project offers). A pass "
            "with the page cache of the arrays' files and of the chosen PNGs dropped first "
            "(`POSIX_FADV_DONTNEED`; the PNGs' directory entries and inodes stay cached), then the same images "
            "again (cached). Each read is timed alone with `time.perf_counter`; every image read is checked "
            "against its manifest digest afterwards. "
            f"Settling before each repetition: {settling_words(args)}.",
            "",
            table,
            "",
            "## Machine",
            "",
            *facts,
            "",
        ]
    )
