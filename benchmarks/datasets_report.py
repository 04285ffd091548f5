"""The datasets benchmark's records and reports.

A :class:`Run` per timed process; :func:`job_breakdown` reads where a workflow run's time went from its jobs'
benchmark files and logs; the reports hold headline rows against the targets, that breakdown, every run
and the machine.
"""

import contextlib
import os
import platform
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from common import benchmark_record, fmt, fmt_spread, md_table, median_of

FINISHED_IN = re.compile(r"finished in ([0-9.]+) s")
WORKER_PROCESSES = re.compile(r"images from index [0-9]+, ([0-9]+) worker process")
HEADERS = {
    "generate-stack": ["scenario", "baseline (median s)", "workflow (median s)", "ratio workflow/baseline"],
    "noop": ["scenario", "baseline (median s)", "workflow (median s)", "ratio workflow/baseline"],
}


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
    records = {
        str(path.relative_to(bench_dir).with_suffix("")): benchmark_record(path) for path in bench_dir.rglob("*.tsv")
    }
    jobs = {name: record for name, record in sorted(records.items()) if record}

    def number(row, key):
        return row.get(key)  # None for "NA": the job ended before Snakemake's first sample

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


def walls(runs, label, count=None, cores=None) -> list[float]:
    return [
        run.wall
        for run in runs
        if not run.discarded
        and run.label == label
        and (count is None or run.count == count)
        and (cores is None or run.cores == cores)
    ]


def verdict(met) -> str:
    return "—" if met is None else ("yes" if met else "**no**")


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


def headline_table(scenario: str, runs: list[Run], args) -> str:
    """The scenario's table of medians against its targets."""
    if scenario == "generate-stack":
        rows = generate_stack_rows(runs, args.counts)
    elif scenario == "noop":
        rows = noop_rows(runs, args.noop_count)
    else:
        rows = scaling_rows(runs, args.scaling_count, args.scaling_cores, args.scaling_baseline)
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
