"""Benchmark of the pipelines stage: a filter pipeline over 500 PNGs on disk, against dask.delayed.

The case
    500 uint8 grey 512x512 PNGs (``--count``, ``--size``), written once into
    ``benchmarks/scratch/pipelines/images/`` from a fixed seed (smooth random blobs
    on a gradient, plus noise; zlib level 6) and used as an external dataset; the
    pipeline ``edges``: median (size 3) -> gaussian (σ = 2) -> sobel, metrics mean,
    var and entropy, results saved as PNG, no contact sheet.
end to end (whole processes, start to exit)
    *workflow, shard_size S*: ``snakemake all --cores 2 --quiet --configfile
    config.yaml`` (``--shard-sizes``: 250 and 500, two shard jobs of one process each,
    or one of two) on a copy of the workflow (``--source``), in a fresh folder with
    an empty results folder: planning, the dataset's shard jobs (which check the
    images), the pipeline's shard and summary jobs, the report's job table.
    *serial*, *dask threads*, *dask processes*: ``pipelines_baseline.py`` (scikit-image
    and scipy per image, ``dask.compute(..., scheduler="threads"|"processes",
    num_workers=2)``; OpenCV reads and writes the PNGs, ``--baseline-io``), Python
    start-up and imports included as for the workflow. The ratio is to the faster
    dask variant; the issue's target is a whole workflow run at most 0.25x that.
    The scenarios run interleaved, in reversed order every other repeat, each in its
    own folder, after the settler (common.Settler) found the disk and the CPUs quiet;
    a run during which other processes used more than ``--foreign-limit`` % of the
    CPUs is done again (up to ``--retries`` times). The runs' folders are deleted at
    the end, never between two timed runs.
jobs
    Each workflow job's wall seconds and max_rss from its ``benchmark:`` file
    (medians over the repeats), and the baselines' seconds after their imports.
agreement
    The first workflow run's metrics and images against the serial baseline's.
per image (``--skip-profile`` to leave out)
    Milliseconds per step on one of the images, one thread, in this process (best of
    7 repeats): pixelflow's reading, conversion, steps, metrics, 8-bit conversion and
    PNG encoding (``pixelflow.pipelines.run``, from the copy of the workflow), and the
    baseline's counterparts.

Prints markdown tables and writes them to benchmarks/results/pipelines.md. Run alone on the machine,
e.g. ``python benchmarks/pipelines.py --repeats 3``.
"""

import argparse
import csv
import glob
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from common import (
    BENCH_DIR,
    RESULTS,
    SCRATCH,
    Settler,
    add_source_option,
    benchmark_record,
    cpu_times,
    fmt,
    fmt_spread,
    log,
    machine,
    md_table,
    median_of,
    remove_tree,
    snakemake_command,
    snapshot_workflow,
    tail,
    use_scripts,
    write_config,
)
from datasets_harness import busy_seconds, children_cpu_seconds, kernel_thread_seconds, kernel_thread_ticks

STAGE_SCRATCH = SCRATCH / "pipelines"
IMAGES = STAGE_SCRATCH / "images"
RUNS = STAGE_SCRATCH / "runs"
PROBES = STAGE_SCRATCH / "probes"
BASELINE = BENCH_DIR / "pipelines_baseline.py"
SEED = 2026
DATASET, PIPELINE = "photos", "edges"
TARGET = 0.25  # whole workflow run / faster dask variant
BASELINE_MODES = {"serial": "serial", "dask threads": "threads", "dask processes": "processes"}
BASELINE_SECONDS = re.compile(r"in ([0-9.]+) s after imports")
STEPS = [{"op": "median", "size": 3}, {"op": "gaussian", "sigma": 2}, {"op": "sobel"}]
METRICS = ["mean", "var", "entropy"]


# The images -----------------------------------------------------------------------------------------------------------


def make_image(index: int, size: int, seed: int = SEED) -> np.ndarray:
    """One test image: a few smooth random blobs on a gentle gradient, plus noise, as uint8."""
    rng = np.random.default_rng([seed, index])
    axis = np.arange(size, dtype=np.float32) / size
    y, x = axis[:, None], axis[None, :]
    image = 0.2 + 0.2 * (rng.uniform(-1, 1) * x + rng.uniform(-1, 1) * y)
    for _ in range(rng.integers(8, 24)):
        cy, cx = rng.uniform(0, 1, 2)
        radius = rng.uniform(0.02, 0.15)
        image = image + rng.uniform(-0.4, 0.6) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * radius**2))
    image = image + rng.normal(0, 0.04, (size, size))
    return np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)


def write_images(folder: Path, count: int, size: int) -> str:
    """Write the test images once (kept while their count, size and seed are unchanged); their glob."""
    import cv2

    stamp = folder / "images.json"
    wanted = {"count": count, "size": size, "seed": SEED, "version": 1}
    names = [folder / f"img-{index:04d}.png" for index in range(count)]
    if stamp.exists() and json.loads(stamp.read_text()) == wanted and all(name.exists() for name in names):
        log(f"using the {count} images in {folder}")
    else:
        remove_tree(folder)
        folder.mkdir(parents=True)
        log(f"writing {count} images of {size}x{size} into {folder}")
        for index, name in enumerate(names):
            if not cv2.imwrite(str(name), make_image(index, size), [cv2.IMWRITE_PNG_COMPRESSION, 6]):
                raise OSError(f"cannot write {name}")
        stamp.write_text(json.dumps(wanted))
        os.sync()
    return str(folder / "img-*.png")


# The scenarios --------------------------------------------------------------------------------------------------------


def workflow_config(pattern: str, shard_size: int) -> dict:
    return {
        "shard_size": shard_size,
        "max_threads": 2,
        "montage": {"count": 0, "cell": 128},
        "datasets": {DATASET: {"path": pattern, "stack": False}},
        "pipelines": {
            PIPELINE: {"dataset": DATASET, "steps": STEPS, "metrics": METRICS, "save": "png", "contact": 0},
        },
    }


@dataclass
class Scenario:
    name: str
    shard_size: int | None = None  # workflow scenarios
    mode: str | None = None  # baseline scenarios

    @property
    def slug(self) -> str:
        return self.name.replace(" ", "-").replace(",", "").replace("=", "")

    @property
    def is_workflow(self) -> bool:
        return self.shard_size is not None


@dataclass
class Run:
    scenario: Scenario
    repeat: int
    folder: Path
    wall: float = 0.0
    foreign: float | None = None
    jobs: dict = field(default_factory=dict)  # workflow: job -> benchmark record
    compute: float | None = None  # baseline: seconds after imports


def command(scenario: Scenario, snakefile: Path, pattern: str, args) -> list[str]:
    if scenario.is_workflow:
        return snakemake_command("all", snakefile=snakefile) + [
            "--cores",
            "2",
            "--quiet",
            "--configfile",
            "config.yaml",
        ]
    return [sys.executable, str(BASELINE), scenario.mode, pattern, "out", "--workers", "2", "--io", args.baseline_io]


def prepare(scenario: Scenario, folder: Path, pattern: str) -> None:
    if folder.exists():
        remove_tree(folder)
    folder.mkdir(parents=True)
    if scenario.is_workflow:
        write_config(folder, workflow_config(pattern, scenario.shard_size))


def timed_run(scenario, repeat, snakefile, pattern, args, settle: Settler) -> Run:
    """One timed whole process in a fresh folder (retried while other load on the machine was high)."""
    for attempt in range(args.retries + 1):
        run = Run(scenario, repeat, RUNS / f"{scenario.slug}-{repeat}-{attempt}")
        prepare(scenario, run.folder, pattern)
        settle(PROBES)
        cpu_before, own_before, kernel_before = cpu_times(), children_cpu_seconds(), kernel_thread_ticks()
        call = command(scenario, snakefile, pattern, args)
        with open(run.folder / "run.log", "wb") as output:
            started = time.perf_counter()
            result = subprocess.run(call, cwd=run.folder, stdout=output, stderr=subprocess.STDOUT)
            run.wall = time.perf_counter() - started
        if result.returncode != 0:
            raise RuntimeError(f"{shlex.join(call)} failed ({result.returncode}):\n{tail(run.folder / 'run.log')}")
        own = sum(children_cpu_seconds()) - sum(own_before)
        kernel = kernel_thread_seconds(kernel_before, kernel_thread_ticks())
        busy = busy_seconds(cpu_before, cpu_times())
        if busy is not None:
            run.foreign = 100.0 * max(0.0, busy - own - kernel) / (run.wall * len(os.sched_getaffinity(0)))
        collect(run)
        log(f"{scenario.name} #{repeat + 1}: {run.wall:.2f} s (other CPU load {fmt(run.foreign, 1)} %)")
        if run.foreign is None or run.foreign <= args.foreign_limit:
            return run
        if attempt < args.retries:
            log(f"discarding that run: other CPU load {run.foreign:.0f} % > {args.foreign_limit:g} %; again")
    log(f"warning: kept a run with {run.foreign:.0f} % other CPU load (no retries left)")
    return run


def collect(run: Run) -> None:
    """A finished run's job records (workflow) or its time after imports (baseline)."""
    if run.scenario.is_workflow:
        root = run.folder / "results" / "benchmarks"
        for path in sorted(root.rglob("*.tsv")):
            run.jobs[str(path.relative_to(root).with_suffix(""))] = benchmark_record(path)
    else:
        found = BASELINE_SECONDS.search((run.folder / "run.log").read_text(errors="replace"))
        run.compute = float(found.group(1)) if found else None


def warm_up(scenarios, snakefile, pattern, args) -> None:
    """One untimed run of each scenario on 4 images: file caches, byte-compiled modules, Snakemake's own files."""
    few = pattern.replace("img-*.png", "img-000[0-3].png")
    for scenario in scenarios:
        folder = RUNS / f"warm-up-{scenario.slug}"
        prepare(scenario, folder, few)
        call = command(scenario, snakefile, few, args)
        with open(folder / "run.log", "wb") as output:
            if subprocess.run(call, cwd=folder, stdout=output, stderr=subprocess.STDOUT).returncode != 0:
                raise RuntimeError(f"warm-up {shlex.join(call)} failed:\n{tail(folder / 'run.log')}")
    log("warm-up runs done")


# Tables ---------------------------------------------------------------------------------------------------------------


def main_table(scenarios, runs) -> tuple[str, str]:
    walls = {scenario.name: [run.wall for run in runs if run.scenario is scenario] for scenario in scenarios}
    dask = [median_of(walls[name]) for name in ("dask threads", "dask processes") if walls.get(name)]
    fastest = min(dask) if dask else None
    rows = []
    for scenario in scenarios:
        median = median_of(walls[scenario.name])
        ratio = None if fastest is None else median / fastest
        target = f"≤ {TARGET}" if scenario.is_workflow else ""
        met = "" if not scenario.is_workflow or ratio is None else ("yes" if ratio <= TARGET else "no")
        foreign = max((run.foreign or 0.0) for run in runs if run.scenario is scenario)
        rows.append([scenario.name, fmt_spread(walls[scenario.name]), fmt(ratio), target, met, f"{foreign:.0f} %"])
    header = ["scenario", "seconds, median [min–max]", "ratio to faster dask", "target", "met?"]
    note = ""
    if any((run.foreign or 0) > 10 for run in runs):
        note = "Caution: some runs saw more than 10 % other CPU load (last column: the most any run of the row saw)."
    return md_table([*header, "other CPU load, max"], rows), note


def jobs_table(scenarios, runs) -> str:
    rows = []
    for scenario in scenarios:
        mine = [run for run in runs if run.scenario is scenario]
        if not scenario.is_workflow:
            rows.append([scenario.name, "(whole script after its imports)", fmt_spread([r.compute for r in mine]), ""])
            continue
        for job in sorted({job for run in mine for job in run.jobs}):
            records = [run.jobs[job] for run in mine if job in run.jobs]
            seconds = fmt_spread([record.get("s") for record in records])
            rss = median_of([record.get("max_rss") for record in records])
            rows.append([scenario.name, job, seconds, fmt(rss, 0)])
    return md_table(["scenario", "job", "seconds, median [min–max]", "max_rss MB, median"], rows)


def read_tsv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def agreement(workflow_run: Run, baseline_run: Run) -> str:
    """How far the workflow's metrics and saved images are from the serial baseline's."""
    import cv2

    ours = read_tsv(workflow_run.folder / "results" / "pipelines" / PIPELINE / "metrics.tsv")
    theirs = read_tsv(baseline_run.folder / "out" / "metrics.tsv")
    if len(ours) != len(theirs):
        return f"different row counts: workflow {len(ours)}, baseline {len(theirs)}"
    worst = {name: 0.0 for name in METRICS}
    for mine, other in zip(ours, theirs, strict=True):
        for name in METRICS:
            worst[name] = max(worst[name], abs(float(mine[name]) - float(other[name])))
    differing, largest = 0, 0
    for mine, other in zip(ours, theirs, strict=True):
        first = cv2.imread(str(workflow_run.folder / mine["output"]), cv2.IMREAD_UNCHANGED).astype(np.int16)
        second = cv2.imread(str(baseline_run.folder / other["output"]), cv2.IMREAD_UNCHANGED).astype(np.int16)
        difference = np.abs(first - second)
        differing += int(np.count_nonzero(difference))
        largest = max(largest, int(difference.max()))
    metrics = ", ".join(f"{name} {value:.2g}" for name, value in worst.items())
    return (
        f"Workflow ({workflow_run.scenario.name}) against the serial baseline, {len(ours)} images: largest metric "
        f"differences {metrics}; saved pixels differing: {differing} (largest difference {largest} levels)."
    )


# Per image, per step --------------------------------------------------------------------------------------------------


def best_ms(function, repeat: int = 7) -> float:
    import timeit

    number = max(1, int(0.2 / max(timeit.timeit(function, number=1), 1e-6)))
    return min(timeit.repeat(function, number=number, repeat=repeat)) / number * 1e3


def profile_table(path: str) -> str:
    """Milliseconds per step on one image, one thread, pixelflow's code (from the workflow copy) and the baseline's."""
    import io

    import cv2
    import pipelines_baseline as baseline
    import scipy.ndimage as ndi
    import skimage.filters
    import skimage.io
    import skimage.measure
    import skimage.util
    from pixelflow.io.images import encode_image, read_image
    from pixelflow.io.manifest import manifest_row
    from pixelflow.pipelines.metrics import METRICS as REGISTRY
    from pixelflow.pipelines.metrics import check_metrics, measure
    from pixelflow.pipelines.operations import apply_steps, as_float32, check_step
    from pixelflow.pipelines.run import PNG_COMPRESSION, PNG_FILTER, PNG_STRATEGY, process_image, saved_array
    from pixelflow.runner import limit_native_threads

    limit_native_threads(1)
    scratch = STAGE_SCRATCH / "profile"
    scratch.mkdir(parents=True, exist_ok=True)
    steps = [check_step(step, f"pipelines.{PIPELINE}.steps.{i}") for i, step in enumerate(STEPS)]
    spec = {"name": PIPELINE, "steps": steps, "metrics": check_metrics(METRICS, "metrics"), "save": "png"}
    raw = read_image(path)
    image = as_float32(raw)
    after = [image]
    for step in steps:
        after.append(apply_steps(after[-1], [step]))
    output = after[-1]
    pixels = saved_array(output, "png")
    data = encode_image(pixels, "png", PNG_COMPRESSION, PNG_STRATEGY, PNG_FILTER)
    levels = np.minimum(np.floor(np.clip(output, 0, 1) * 256), 255).astype(np.uint8)

    def imsave_bytes():
        with warnings.catch_warnings():  # the plugin argument "extension" is deprecated; needed for a memory file
            warnings.simplefilter("ignore", FutureWarning)
            skimage.io.imsave(io.BytesIO(), pixels, extension=".png", check_contrast=False)

    def cv2_sobel(image):  # skimage's kernels (weights / 4), border 'reflect', magnitude sqrt((h² + v²) / 2)
        h = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3, scale=0.25, borderType=cv2.BORDER_REFLECT)
        v = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3, scale=0.25, borderType=cv2.BORDER_REFLECT)
        return np.sqrt((h * h + v * v) * np.float32(0.5))

    def whole_item():  # what pixelflow.pipelines.run's worker does for one image
        result, _, _ = process_image(read_image(path), spec, {})
        saved = saved_array(result, "png")
        encoded = encode_image(saved, "png", PNG_COMPRESSION, PNG_STRATEGY, PNG_FILTER)
        (scratch / "edges-0000.png").write_bytes(encoded)
        manifest_row(0, "edges-0000.png", saved, hashlib.sha256(encoded).hexdigest())

    rows = [  # step, pixelflow's call, the baseline's call, the baseline's call named when not obvious
        ("PNG read", lambda: read_image(path), lambda: cv2.imread(path, cv2.IMREAD_UNCHANGED), "cv2.imread"),
        ("PNG read", None, lambda: skimage.io.imread(path), "skimage.io.imread"),
        ("img_as_float32", lambda: as_float32(raw), lambda: skimage.util.img_as_float32(raw), ""),
        (
            "median, size 3",
            lambda: apply_steps(after[0], [steps[0]]),
            lambda: ndi.median_filter(after[0], size=3, mode="nearest"),
            "",
        ),
        (
            "gaussian, σ 2",
            lambda: apply_steps(after[1], [steps[1]]),
            lambda: skimage.filters.gaussian(after[1], sigma=2, preserve_range=True, mode="nearest", truncate=4),
            "",
        ),
        ("sobel", lambda: apply_steps(after[2], [steps[2]]), lambda: skimage.filters.sobel(after[2]), ""),
        (
            "metric mean",
            lambda: REGISTRY["mean"].function(output, image),
            lambda: np.mean(output, dtype=np.float64),
            "",
        ),
        ("metric var", lambda: REGISTRY["var"].function(output, image), lambda: np.var(output, dtype=np.float64), ""),
        (
            "metric entropy",
            lambda: REGISTRY["entropy"].function(output, image),
            lambda: baseline.entropy(output),
            "levels + skimage.measure.shannon_entropy",
        ),
        ("metric entropy", None, lambda: skimage.measure.shannon_entropy(levels), "shannon_entropy of the levels"),
        ("metrics, all three", lambda: measure(output, image, METRICS), None, ""),
        (
            "to 8 bits",
            lambda: saved_array(output, "png"),
            lambda: np.rint(np.clip(output, 0, 1) * 255).astype(np.uint8),
            "",
        ),
        (
            "PNG encode",
            lambda: encode_image(pixels, "png", PNG_COMPRESSION, PNG_STRATEGY, PNG_FILTER),
            lambda: cv2.imencode(".png", pixels),
            "cv2.imencode (its default)",
        ),
        ("PNG encode", None, imsave_bytes, "skimage.io.imsave, to memory"),
        ("sha256 of the PNG", lambda: hashlib.sha256(data).hexdigest(), None, ""),
        (
            "whole image",
            whole_item,
            lambda: baseline.one_image(0, path, str(scratch), "cv2"),
            "one_image with cv2; both write the file",
        ),
        ("alternative median", lambda: cv2.medianBlur(after[0], 3), None, "cv2.medianBlur(image, 3) directly"),
        (
            "alternative sobel",
            lambda: cv2_sobel(after[2]),
            None,
            "cv2.Sobel x and y directly (skimage kernels, reflect)",
        ),
    ]
    table = []
    for step, ours, theirs, what in rows:
        cells = ["" if call is None else f"{best_ms(call):.2f}" for call in (ours, theirs)]
        table.append([step, *cells, what])
    same_median = np.array_equal(cv2.medianBlur(after[0], 3), after[1])
    sobel_error = float(np.max(np.abs(cv2_sobel(after[2]) - after[3])))
    log(
        f"per-image profile: PNG {len(data)} bytes at zlib level {PNG_COMPRESSION}; cv2.medianBlur equal to "
        f"pixelflow's median: {same_median}; cv2 Sobel's largest difference from pixelflow's: {sobel_error:.2g}"
    )
    remove_tree(scratch)
    return md_table(["step", "pixelflow ms", "baseline ms", "baseline call (if not the obvious one)"], table)


# Main -----------------------------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--count", type=int, default=500, help="images (default 500)")
    parser.add_argument("--size", type=int, default=512, help="image side (default 512)")
    parser.add_argument("--shard-sizes", type=int, nargs="*", default=[250, 500], help="workflow shard_size values")
    parser.add_argument(
        "--baselines", nargs="*", choices=list(BASELINE_MODES), default=list(BASELINE_MODES), help="which baselines"
    )
    parser.add_argument("--baseline-io", choices=("cv2", "skimage"), default="cv2", help="the baseline's PNG I/O")
    parser.add_argument("--foreign-limit", type=float, default=10.0, help="redo a run above this other CPU load %%")
    parser.add_argument("--retries", type=int, default=2)
    parser.add_argument("--skip-profile", action="store_true")
    parser.add_argument("--skip-end-to-end", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the runs' folders")
    add_source_option(parser)
    args = parser.parse_args(argv)

    workflow, note = snapshot_workflow(args.source, STAGE_SCRATCH / "workflow")
    use_scripts(workflow)
    log(f"measuring {note}")
    pattern = write_images(IMAGES, args.count, args.size)
    sections = [f"Machine: {machine()}. Measured: {note}."]
    if not args.skip_profile:
        table = profile_table(sorted(glob.glob(pattern))[0])
        print(table, flush=True)
        sections.append(f"## Per image, one {args.size}x{args.size} image, one thread, best of 7\n\n{table}")
    if not args.skip_end_to_end:
        scenarios = [Scenario(f"workflow, shard_size={size}", shard_size=size) for size in args.shard_sizes]
        scenarios += [Scenario(name, mode=BASELINE_MODES[name]) for name in args.baselines]
        settle = Settler(minimum=2.0, maximum=60.0, io_quiet=3.0, cpu_quiet=25.0, after_delete=65.0)
        if RUNS.exists():
            remove_tree(RUNS)
            os.sync()
            settle.deleted()
        settle.calibrate(PROBES)
        snakefile = workflow / "Snakefile"
        warm_up(scenarios, snakefile, pattern, args)
        runs = []
        for repeat in range(args.repeats):
            for scenario in scenarios if repeat % 2 == 0 else scenarios[::-1]:
                runs.append(timed_run(scenario, repeat, snakefile, pattern, args, settle))
        table, caution = main_table(scenarios, runs)
        jobs = jobs_table(scenarios, runs)
        checks = []
        first_workflow = next((run for run in runs if run.scenario.is_workflow), None)
        serial = next((run for run in runs if run.scenario.mode == "serial"), None)
        if first_workflow and serial:
            checks.append(agreement(first_workflow, serial))
        print(table, flush=True)
        if caution:
            print(caution)
        print(jobs)
        for line in checks:
            print(line)
        heading = f"## End to end, {args.count} images of {args.size}x{args.size}, seconds of whole processes"
        sections.append(
            f"{heading}, median [min–max] of {args.repeats} interleaved runs\n\n{table}\n\n{caution}".rstrip()
        )
        sections.append("## Jobs (benchmark files) and the baselines after their imports\n\n" + jobs)
        sections += checks
        if not args.keep:
            remove_tree(RUNS)
        remove_tree(PROBES)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pipelines.md").write_text("# Pipelines stage benchmarks\n\n" + "\n\n".join(sections) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
