"""Time the pixelflow workflow's datasets stage against the hand-written Pool baseline on this machine.

Scenarios
---------
generate-stack
    N uniform 100x100 uint8 PNGs generated and stacked into one .npy: the
    workflow (a fresh scratch folder, ``snakemake ... results/datasets/noise/stack.npy``)
    against ``benchmarks/baseline_pool.py``, runs interleaved. With ``--storage zarr``
    (or ``zarr-zstd``, ``zarr-blosc``; several may be given, ``files`` among them) the
    images are generated into one Zarr array instead and the target is what makes it
    ready (``manifest.tsv`` and ``images.zarr/zarr.json``; no stack); the data files
    each shard job wrote are counted.
noop
    A dry run in an empty folder (planning), the first full run, then a second
    identical ``snakemake`` call on the finished folder (nothing to do) and a dry
    run (``snakemake -n``) on it; for each ``--storage``.
scaling
    The workflow with ``--cores 1`` against ``--cores 2``.
random-read
    Single random images read from a ``--read-count``-image zarr array, one per
    ``--read-compressions``, opened once (``pixelflow.io.zarrstore``), against
    ``cv2.imread`` of one PNG of a files dataset: per-read median, p90 and max,
    with the page cache dropped and cached, in this process.

Every timed whole run also records the peak of RSS and PSS summed over its
process tree (Snakemake and every job), sampled every ``--memory-interval`` s.

Every timed run is a whole process, start to exit (engine start-up included),
of a copy of the committed workflow (``--source``) so that edits made meanwhile
cannot change what is measured. Before each run the harness syncs and waits for
the disk and the CPUs to settle (:class:`common.Settler`). After a run's time is
recorded its large files are deleted and its small ones are kept, with their page
cache dropped, until the harness ends (:func:`datasets_harness.retire`):
deleting 100,000 small files would slow the file creation of the runs after it.
Scratch data lives in ``benchmarks/scratch/datasets/``. Results go to stdout and to
``benchmarks/results/<scenario>.md`` (raw numbers in ``<scenario>.json``, headline
tables in ``summary.md``).
"""

import argparse
import json
import os
import shlex
import sys
from dataclasses import asdict
from pathlib import Path

from common import RESULTS, SCRATCH, add_source_option, log, remove_tree, snapshot_workflow
from datasets_harness import Bench
from datasets_report import caution, headline_table, machine_facts, random_read_report, random_read_table, report

SCENARIOS = ("generate-stack", "noop", "scaling", "random-read")
DEFAULT_SCENARIOS = ("generate-stack", "noop", "scaling")
STORAGE_CHOICES = ("files", "zarr", "zarr-none", "zarr-zstd", "zarr-blosc")
COMPRESSIONS = ("none", "zstd", "blosc")
STAGE_SCRATCH = SCRATCH / "datasets"


def schema_default(workflow: Path, key: str):
    """A top-level default from the workflow's config/schema.yaml (shard_size, max_threads)."""
    import yaml

    with open(workflow / "config" / "schema.yaml", encoding="utf-8") as handle:
        return yaml.safe_load(handle)["properties"][key]["default"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Time the pixelflow workflow against benchmarks/baseline_pool.py (see benchmarks/README.md).",
    )
    parser.add_argument(
        "--scenarios",
        nargs="+",
        choices=SCENARIOS,
        default=list(DEFAULT_SCENARIOS),
        help="which scenarios to run (default: all but random-read)",
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
    parser.add_argument(
        "--storage",
        nargs="+",
        choices=STORAGE_CHOICES,
        default=["files"],
        help="dataset storage of the workflow runs in generate-stack, noop and scaling: files (PNGs, stacked), "
        "zarr (= zarr-none) or zarr-<compression> (the array ready, no stack); several are interleaved "
        "(default: files)",
    )
    parser.add_argument(
        "--memory-interval",
        type=float,
        default=0.5,
        help="seconds between samples of a timed run's process-tree memory (0: none; default: %(default)s)",
    )
    parser.add_argument(
        "--read-count", type=int, help="images per array in random-read (default: 100000; --quick: 2000)"
    )
    parser.add_argument(
        "--reads", type=int, default=1000, help="random images read per reader and repetition (default: %(default)s)"
    )
    parser.add_argument(
        "--read-compressions",
        nargs="+",
        choices=COMPRESSIONS,
        default=list(COMPRESSIONS),
        help="zarr compressions random-read compares (default: all)",
    )
    parser.add_argument("--repeats", type=int, help="interleaved repetitions (default: 3; --quick: 1)")
    parser.add_argument(
        "--cores", type=int, default=os.cpu_count(), help="--cores / --processes of timed runs (default: %(default)s)"
    )
    parser.add_argument("--shard-size", type=int, help="workflow shard_size (default: from config/schema.yaml)")
    parser.add_argument("--max-threads", type=int, help="workflow max_threads (default: from config/schema.yaml)")
    parser.add_argument(
        "--settle", type=float, help="minimum seconds to wait after sync before a run (default: 20; --quick: 1)"
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
        "--prefault-gib",
        type=float,
        default=0,
        help="before each timed run (after settling), touch and free this many GiB of memory in a separate "
        "process (default: %(default)s, off). On a virtual machine whose host takes back the guest's free memory, "
        "pages the kernel hands out for the first time cost a host fault each; this shows how much of a run that is",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="scheduling priority of the timed processes (e.g. -10, needs root: other work on the machine then "
        "takes little CPU from them; default: %(default)s)",
    )
    add_source_option(parser)
    parser.add_argument("--quick", action="store_true", help="smoke check: N=2000 everywhere, 1 repeat, short settle")
    parser.add_argument("--no-warmup", dest="warmup", action="store_false", help="skip the untimed warm-up runs")
    parser.add_argument("--keep", action="store_true", help="keep every run's folder under benchmarks/scratch/datasets")
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
        "read_count": 2000 if quick else 100_000,
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
    if args.repeats < 1 or min(args.counts) < 1 or args.cores < 1 or args.read_count < 1 or args.reads < 1:
        parser.error("--repeats, --counts, --cores, --read-count and --reads must be positive")
    args.storage = list(dict.fromkeys("zarr-none" if storage == "zarr" else storage for storage in args.storage))
    args.command_line = shlex.join(["python", "benchmarks/datasets.py", *(sys.argv[1:] if argv is None else argv)])
    return args


def vars_of(args) -> dict:
    return {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}


def clear_scratch() -> None:
    for entry in STAGE_SCRATCH.iterdir():
        remove_tree(entry)
    os.sync()


def main(argv=None) -> int:
    args = parse_args(argv)
    leftovers = STAGE_SCRATCH.exists() and any(STAGE_SCRATCH.iterdir())
    if leftovers:
        log(f"removing leftovers in {STAGE_SCRATCH}")
        clear_scratch()
    STAGE_SCRATCH.mkdir(parents=True, exist_ok=True)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    suffix = ".quick" if args.quick else ""
    headlines = []
    try:
        workflow, workflow_note = snapshot_workflow(args.source, STAGE_SCRATCH / "workflow")
        for key in ("shard_size", "max_threads"):
            if getattr(args, key) is None:
                setattr(args, key, schema_default(workflow, key))
        log(f"measuring {workflow_note}; shard_size {args.shard_size}, max_threads {args.max_threads}")
        facts = machine_facts(workflow_note, STAGE_SCRATCH)
        bench = Bench(args, workflow, STAGE_SCRATCH)
        if leftovers:
            bench.settle.deleted()
        if args.probe_factor > 0:
            bench.settle.calibrate(STAGE_SCRATCH / "calibration")
        if args.warmup:
            bench.warm_up()
        for scenario in SCENARIOS:
            if scenario not in args.scenarios:
                continue
            log(f"scenario {scenario}")
            if scenario == "random-read":
                result = bench.random_read()
                table = random_read_table(result)
                headlines += [f"### {scenario}", "", table, ""]
                text = random_read_report(table, result, args, facts)
                (args.results_dir / f"{scenario}{suffix}.md").write_text(text, encoding="utf-8")
                raw = {"command": args.command_line, "settings": vars_of(args), "result": result}
                (args.results_dir / f"{scenario}{suffix}.json").write_text(json.dumps(raw, indent=1), encoding="utf-8")
                print(text, flush=True)
                continue
            runs = {"generate-stack": bench.generate_stack, "noop": bench.noop, "scaling": bench.scaling}[scenario]()
            table = headline_table(scenario, runs, args)
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
            clear_scratch()
    return 0


if __name__ == "__main__":
    sys.exit(main())
