"""A filter pipeline over a zarr dataset: the workflow at two commits, side by side.

The case
    A generated zarr dataset (``--count`` uniform 64x64 uint8 images, ``--compression``,
    ``--shard-size`` images per shard) and the pipeline ``p``: a 3x3 median, metric mean,
    no saved images and no contact sheet. Each pipeline shard job reads every image of its
    shard through ``pixelflow.io.sources.read_source``, which is what differs between
    the commits compared.
What is timed
    For each commit (``--commits``; by default 35fb696, whose stages read an array's images
    through zarr-python's ``array[i]``, and HEAD), one untimed run makes the dataset in its own
    folder; then, interleaved and in reversed order every other repeat, each folder's
    pipeline is run again (``snakemake --cores 2 --quiet --forcerun pipeline_shard``), timed
    from start to exit after the settler (common.Settler) found the machine quiet. The table
    gives the whole run and each pipeline shard job's wall seconds (its ``benchmark:`` file),
    median [min-max] over the repeats. The commits' ``metrics.tsv`` must be byte-identical.

Usage: ``python benchmarks/zarr_stages.py [--repeats 3] [--commits 35fb696 HEAD]``
"""

import argparse
import io
import statistics
import tarfile
from pathlib import Path

from common import (
    SCRATCH,
    Settler,
    benchmark_record,
    fmt_spread,
    git,
    log,
    machine,
    md_table,
    remove_tree,
    run_process,
    snakemake_command,
    write_config,
)

STAGE = SCRATCH / "zarr_stages"


def workflow_at(commit: str, target: Path) -> tuple[Path, str]:
    """The committed tree of ``commit``, extracted into ``target``; and the commit's short name."""
    short = git("rev-parse", "--short", commit).stdout.decode().strip()
    remove_tree(target)
    target.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(git("archive", "--format=tar", short).stdout)) as tar:
        tar.extractall(target, filter="data")
    return target, short


def case_config(args) -> dict:
    dataset = {"generator": "uniform", "count": args.count, "shape": [64, 64], "dtype": "uint8"}
    pipeline = {"dataset": "frames", "steps": [{"op": "median", "size": 3}], "metrics": ["mean"]}
    return {
        "seed": 2026,
        "shard_size": args.shard_size,
        "max_threads": 1,
        "montage": {"count": 0},
        "datasets": {"frames": {**dataset, "storage": "zarr", "compression": args.compression}},
        "pipelines": {"p": {**pipeline, "save": "none", "contact": 0}},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commits", nargs=2, default=["35fb696", "HEAD"], help="the two commits to compare")
    parser.add_argument("--count", type=int, default=20_000, help="images in the dataset (default: %(default)s)")
    parser.add_argument("--shard-size", type=int, default=10_000, help="images per shard (default: %(default)s)")
    parser.add_argument("--compression", default="zstd", choices=("none", "zstd", "blosc"))
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per commit (default: %(default)s)")
    args = parser.parse_args()

    settle = Settler(minimum=2.0, maximum=120.0, io_quiet=3.0, cpu_quiet=25.0)
    runs = {}
    for number, commit in enumerate(args.commits):
        workflow, short = workflow_at(commit, STAGE / f"workflow-{number}")
        folder = STAGE / f"run-{number}"
        remove_tree(folder)
        folder.mkdir(parents=True)
        config = write_config(folder, case_config(args))
        command = snakemake_command(
            "--configfile", str(config), "--cores", "2", "--quiet", snakefile=workflow / "Snakefile"
        )
        log(f"{short}: making the dataset and a first pipeline run (untimed)")
        run_process(command, folder, folder / "snakemake.out", mode="w")
        runs[short] = {
            "command": [*command, "--forcerun", "pipeline_shard"],
            "folder": folder,
            "wall": [],
            "shards": [],
        }
    settle.calibrate(STAGE)
    names = list(runs)
    for repeat in range(args.repeats):
        for name in names if repeat % 2 == 0 else names[::-1]:
            run = runs[name]
            settle(run["folder"])
            wall = run_process(run["command"], run["folder"], run["folder"] / "snakemake.out")
            records = sorted((run["folder"] / "results" / "benchmarks" / "pipelines" / "p").glob("shard-*.tsv"))
            shards = [benchmark_record(path)["s"] for path in records]
            run["wall"].append(wall)
            run["shards"] += shards
            log(f"{name} #{repeat + 1}: {wall:.2f} s; pipeline shard jobs {', '.join(f'{s:.2f}' for s in shards)} s")
    metrics = {
        name: (run["folder"] / "results" / "pipelines" / "p" / "metrics.tsv").read_bytes() for name, run in runs.items()
    }
    if len(set(metrics.values())) != 1:
        raise SystemExit("the commits' metrics.tsv differ")
    rows = [
        [
            name,
            fmt_spread(run["wall"]),
            fmt_spread(run["shards"]),
            f"{1e3 * statistics.median(run['shards']) / args.shard_size:.3f}",
        ]
        for name, run in runs.items()
    ]
    print(
        f"## A pipeline over a zarr dataset ({args.count:,} images, {args.compression}, "
        f"shards of {args.shard_size:,})\n"
    )
    print(md_table(["commit", "whole run s", "pipeline shard job s", "ms per image (shard job)"], rows))
    print(f"\nmetrics.tsv byte-identical between the commits; {args.repeats} repeats; {machine()}")


if __name__ == "__main__":
    main()
