"""2048x1024 transverse Mercator of the bundled world map: the classic per-pixel pool against pixelflow.

Three ways, each timed as wall clock, median of ``--repeats`` runs (the last
two also with the inverse-map cache on):

classic
    The hand-written demo: a Python function computes, for one output pixel,
    the source pixel it comes from (``math`` module, nearest neighbour); a
    ``ProcessPoolExecutor`` with 2 workers maps a row function over the rows.
reprojection
    ``pixelflow.maps.reproject.reproject_file`` on the same map and size (up to 2
    threads; at 2 Mpx it runs on one, see ``PIXELS_PER_THREAD``; bilinear,
    0.125 px error threshold), written as an uncompressed TIFF, in this
    process after one warm-up call (no interpreter start-up or imports).
    Cached: the same, reading the coarse grid from an inverse-map file
    written once beforehand (``pixelflow.maps.inverse_cache``).
workflow
    A whole ``snakemake --cores 2`` run (engine start-up, planning, the job's
    interpreter, PNG output) in a fresh folder, of a config with only this map
    and projection; also the reprojection job's own wall time from its
    ``benchmark:`` file. Cached: ``cache_inverse: true``, which adds a
    ``map_inverse`` job (its time from its own benchmark file).

Prints a markdown table. Run it alone on the machine:
``flock /work/scratch/bench.lock python benchmarks/maps_classic.py``.
"""

import argparse
import csv
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import yaml

REPO = Path(__file__).resolve().parents[1]
MAP = REPO / "resources" / "natural_earth_shaded_relief_720x360.png"
WIDTH, HEIGHT = 2048, 1024

source = cv2.imread(str(MAP))  # the classic demo keeps the map in a global the workers inherit


def source_pixel(col, row):
    """The source (column, row) for output pixel (col, row) of the pole-shift transverse Mercator map."""
    step = 2 * math.pi / WIDTH  # radians per output pixel on the unit sphere
    northing = -math.pi + (col + 0.5) * step
    easting = -HEIGHT * step / 2 + (row + 0.5) * step
    lat = math.asin(max(-1.0, min(1.0, math.sin(northing) / math.cosh(easting))))
    lon = math.atan2(math.sinh(easting), math.cos(northing))
    src_h, src_w = source.shape[:2]
    x = int((lon + math.pi) / (2 * math.pi) * src_w) % src_w
    y = min(src_h - 1, int((math.pi / 2 - lat) / math.pi * src_h))
    return x, y


def render_row(row):
    """One output row, pixel by pixel."""
    out = []
    for col in range(WIDTH):
        x, y = source_pixel(col, row)
        out.append(source[y, x])
    return out


def classic(processes=2):
    with ProcessPoolExecutor(processes) as pool:
        rows = list(pool.map(render_row, range(HEIGHT)))
    return rows


def reprojection(folder, inverse=None):
    sys.path.insert(0, str(REPO / "scripts"))
    from pixelflow.maps.reproject import reproject_file

    projection = {"kind": "transverse_mercator"}
    reproject_file(
        MAP, Path(folder) / "pole_shift.tif", {}, {**projection, "width": WIDTH}, threads=2, inverse_path=inverse
    )


def write_cache(folder) -> Path:
    """The inverse map of this map and projection at the defaults, as the map_inverse job writes it."""
    sys.path.insert(0, str(REPO / "scripts"))
    from pixelflow.maps.inverse_cache import write_inverse_map
    from pixelflow.planning import maps as plan_maps

    source = plan_maps.source_grid({}, *plan_maps.image_size(MAP))
    spec = plan_maps.inverse_spec({"kind": "transverse_mercator"}, WIDTH, HEIGHT, source, 0.125, 8)
    path = Path(folder) / "pole_shift.inv"
    write_inverse_map(path, spec)
    return path


def workflow(folder, cache=False, jobs=None):
    """A whole run; the jobs' wall times from their benchmark files are appended to ``jobs``."""
    folder = Path(folder)
    config = {
        "datasets": {},
        "maps": {"world": {"path": str(MAP)}},
        "projections": {"pole_shift": {"kind": "transverse_mercator", "width": WIDTH}},
        "reprojection": {"cache_inverse": cache},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile", "config.yaml"]
    subprocess.run(command + ["--cores", "2", "-q"], cwd=folder, check=True, capture_output=True)
    if jobs is not None:
        jobs.append({path.parent.name: job_seconds(path) for path in folder.glob("results/benchmarks/maps/*/*.tsv")})


def job_seconds(path) -> float:
    """A job's wall time from its Snakemake benchmark file."""
    with open(path, encoding="utf-8") as handle:
        return float(next(csv.DictReader(handle, delimiter="\t"))["s"])


def timed(func, *args, **options):
    start = time.perf_counter()
    func(*args, **options)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scratch", default="/work/scratch/maps/bench")
    args = parser.parse_args()
    Path(args.scratch).mkdir(parents=True, exist_ok=True)
    labels = {
        "classic": "classic per-pixel ProcessPoolExecutor",
        "reprojection": "pixelflow reproject_file (in process)",
        "reprojection_cached": "pixelflow reproject_file, coarse grid from a cached inverse map (in process)",
        "workflow": "whole `snakemake --cores 2` run",
        "workflow_cached": "whole `snakemake --cores 2` run, `cache_inverse: true`",
    }
    times = {name: [] for name in labels}
    jobs = {"workflow": [], "workflow_cached": []}
    cache_folder = tempfile.mkdtemp(dir=args.scratch)
    inverse = write_cache(cache_folder)
    reprojection(cache_folder)  # imports OpenCV and pixelflow once: not part of the reprojection's time
    for _ in range(args.repeats):
        times["classic"].append(timed(classic))
        for name, options in (
            ("reprojection", {}),
            ("reprojection_cached", {"inverse": inverse}),
            ("workflow", {"jobs": jobs["workflow"]}),
            ("workflow_cached", {"cache": True, "jobs": jobs["workflow_cached"]}),
        ):
            folder = tempfile.mkdtemp(dir=args.scratch)
            times[name].append(timed(globals()[name.removesuffix("_cached")], folder, **options))
            shutil.rmtree(folder)
    shutil.rmtree(cache_folder)
    base = statistics.median(times["classic"])
    print(f"2048x1024 transverse Mercator of the bundled 720x360 map, 2 cores, median of {args.repeats}\n")
    print("| method | wall time (s) [min–max] | speed-up vs classic | paired speed-up [min–max] |")
    print("|---|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        # Each repetition runs every method back to back: the ratio within one
        # repetition is less exposed to the machine's drift than the medians.
        paired = [classic / value for classic, value in zip(times["classic"], values, strict=True)]
        print(
            f"| {labels[name]} | {median:.3f} [{min(values):.3f}–{max(values):.3f}] | {base / median:.3g}x "
            f"| {statistics.median(paired):.3g}x [{min(paired):.3g}–{max(paired):.3g}] |"
        )
    print("\nJobs of the whole runs, wall time from their benchmark files (s):\n")
    print("| run | map_reproject job | map_inverse job |")
    print("|---|---|---|")
    for name, runs in jobs.items():
        reproject = statistics.median(run["world"] for run in runs)
        inverse_times = [run["inverse"] for run in runs if "inverse" in run]
        inverse_text = f"{statistics.median(inverse_times):.3f}" if inverse_times else "-"
        print(f"| {labels[name]} | {reproject:.3f} | {inverse_text} |")


if __name__ == "__main__":
    main()
