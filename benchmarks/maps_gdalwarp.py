"""10800x5400 plate carree -> 10800x5400 transverse Mercator, bilinear, uncompressed TIFF: pixelflow against gdalwarp.

The input is the bundled 720x360 map upscaled (bicubic) to 10800x5400 and
saved as an uncompressed TIFF with a world file (made once in ``--scratch``).

pixelflow
    A ``snakemake --cores 2`` run of a config with that map and a
    ``transverse_mercator`` projection 10800 wide (format tif, bilinear,
    error threshold 0.125 px). The figure is the reprojection job's wall time
    from its ``benchmark:`` file (interpreter start-up, reading and writing
    included; Snakemake's own planning not), and its memory: max_rss (the
    job's process tree, shared pages counted once per process that maps them)
    and max_pss (shared pages split between the processes: the memory the job
    really holds). Run twice: with ``cache_inverse: false`` (the default: the
    job computes its inverse map) and ``true`` (a ``map_inverse`` job computes
    it first, timed from its own benchmark file, and the job reads it).
gdalwarp
    ``gdalwarp -r bilinear -wo NUM_THREADS=2`` from the same file to the same
    sphere, extent and pixel size (+proj=tmerc; gdalwarp writes north up, so
    its image is 5400 wide and 10800 high where pixelflow's pole-shift layout
    turns the same grid a quarter turn), wall time of the whole command.

Prints a markdown table (medians of ``--repeats`` interleaved runs). Run it
alone: ``flock /work/scratch/bench.lock python benchmarks/maps_gdalwarp.py``.
"""

import argparse
import csv
import math
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cv2
import yaml

REPO = Path(__file__).resolve().parents[1]
MAP = REPO / "resources" / "natural_earth_shaded_relief_720x360.png"
WIDTH, HEIGHT = 10800, 5400
RADIUS = 6371000


def make_input(folder: Path) -> Path:
    """The upscaled input TIFF and its world file, made once."""
    path = folder / f"world_{WIDTH}x{HEIGHT}.tif"
    if not path.exists():
        image = cv2.resize(cv2.imread(str(MAP)), (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(path), image, [cv2.IMWRITE_TIFF_COMPRESSION, 1])
    if not path.with_suffix(".tfw").exists():
        step = 360 / WIDTH
        values = [step, 0, 0, -step, -180 + step / 2, 90 - step / 2]
        path.with_suffix(".tfw").write_text("".join(f"{value:.15f}\n" for value in values))
    return path


def run_gdalwarp(source: Path, folder: Path) -> float:
    target = folder / "gdalwarp.tif"
    target.unlink(missing_ok=True)
    half_width, half_height = math.pi * RADIUS / 2, math.pi * RADIUS
    command = [
        "gdalwarp", "-q", "-overwrite",
        "-s_srs", f"+proj=longlat +R={RADIUS} +no_defs",
        "-t_srs", f"+proj=tmerc +lon_0=0 +R={RADIUS} +units=m +no_defs",
        "-te", str(-half_width), str(-half_height), str(half_width), str(half_height),
        "-ts", str(HEIGHT), str(WIDTH),
        "-r", "bilinear", "-wo", "NUM_THREADS=2", "-co", "COMPRESS=NONE",
        str(source), str(target),
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True)
    elapsed = time.perf_counter() - start
    target.unlink()
    return elapsed


def benchmark_row(path: Path) -> dict:
    """Wall time and memory from a Snakemake benchmark file."""
    with open(path, encoding="utf-8") as handle:
        row = next(csv.DictReader(handle, delimiter="\t"))
    return {"s": float(row["s"]), "max_rss": float(row["max_rss"]), "max_pss": float(row["max_pss"])}


def run_pixelflow(source: Path, folder: Path, cache: bool) -> dict:
    """The reprojection job's figures and log, and with ``cache`` the inverse-map job's under "inverse"."""
    workdir = folder / "workflow"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir()
    config = {
        "datasets": {},
        "maps": {"big": {"path": str(source)}},
        "projections": {"pole_shift": {"kind": "transverse_mercator", "width": WIDTH}},
        "reprojection": {
            "format": "tif",
            "interpolation": "bilinear",
            "error_threshold": 0.125,
            "cache_inverse": cache,
        },
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile", "config.yaml"]
    subprocess.run(command + ["--cores", "2", "-q"], cwd=workdir, check=True, capture_output=True)
    result = benchmark_row(workdir / "results/benchmarks/maps/big/pole_shift.tsv")
    result["log"] = (workdir / "results/logs/maps/big/pole_shift.log").read_text()
    if cache:
        (inverse,) = (workdir / "results/benchmarks/maps/inverse").glob("*.tsv")
        result["inverse"] = benchmark_row(inverse)
        result["inverse"]["bytes"] = sum(p.stat().st_size for p in (workdir / "results/maps/inverse").iterdir())
    shutil.rmtree(workdir)
    return result


def mapping_error(rows_every: int = 5) -> float:
    """Largest distance in source pixels between the job's interpolated inverse map and the exact one.

    Every ``rows_every``-th output row of every tile, exact values in float64.
    """
    sys.path.insert(0, str(REPO / "scripts"))
    import numpy as np
    from pixelflow.maps.georef import source_geometry
    from pixelflow.maps.inverse_map import exact_coordinates, interpolated_coordinates, mapping_task
    from pixelflow.maps.reproject import plan_tiles

    geometry = source_geometry({}, WIDTH, HEIGHT)
    task = mapping_task({"kind": "transverse_mercator"}, WIDTH, HEIGHT, geometry, 0.125, 8)
    worst = 0.0
    for row0, row1, col0, col1 in plan_tiles(HEIGHT, WIDTH, task.grid_step):
        coords, _ = interpolated_coordinates(task, row0, row1, col0, col1)
        rows = np.arange(row0, row1, rows_every)
        cols = np.arange(col0, col1)
        exact_x, exact_y = exact_coordinates(task, rows[:, None], cols[None, :])
        got = coords[rows - row0]
        dx = np.abs(got[..., 0] - exact_x)
        dx = np.minimum(dx, WIDTH - dx)
        worst = max(worst, float(np.nanmax(np.maximum(dx, np.abs(got[..., 1] - exact_y)))))
    return worst


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scratch", default="/work/scratch/maps")
    args = parser.parse_args()
    folder = Path(args.scratch)
    folder.mkdir(parents=True, exist_ok=True)
    source = make_input(folder)
    gdal, computed, cached = [], [], []
    for _ in range(args.repeats):
        gdal.append(run_gdalwarp(source, folder))
        computed.append(run_pixelflow(source, folder, cache=False))
        cached.append(run_pixelflow(source, folder, cache=True))
    output_mb = WIDTH * HEIGHT * 3 / (1 << 20)
    gdal_s = statistics.median(gdal)
    rows = {
        "pixelflow job, inverse map computed in the job (cache_inverse: false)": computed,
        "pixelflow job, inverse map read from the cache (cache_inverse: true)": cached,
        "its map_inverse job (cache_inverse: true)": [run["inverse"] for run in cached],
    }
    print(f"{WIDTH}x{HEIGHT} plate carree -> {WIDTH}x{HEIGHT} transverse Mercator, bilinear, uncompressed TIFF, ")
    print(f"2 cores, median of {args.repeats} (output image {output_mb:.0f} MiB)\n")
    print("| method | wall time (s) | ratio to gdalwarp | max_rss (MiB) | max_pss (MiB) | rss/output | pss/output |")
    print("|---|---|---|---|---|---|---|")
    print(f"| gdalwarp -r bilinear -wo NUM_THREADS=2 | {gdal_s:.2f} | 1.00 | | | | |")
    for label, runs in rows.items():
        s, rss, pss = (statistics.median(run[key] for run in runs) for key in ("s", "max_rss", "max_pss"))
        memory = f"{rss:.0f} | {pss:.0f} | {rss / output_mb:.2f}x | {pss / output_mb:.2f}x"
        print(f"| {label} | {s:.2f} | {s / gdal_s:.2f} | {memory} |")
    print("\nSnakemake samples a job's memory every 0.5 s: a job under a second may be caught at its start.")
    print(f"cache file: {cached[-1]['inverse']['bytes'] / (1 << 20):.1f} MiB")
    print(f"largest inverse-map error (every 5th row, against float64 exact): {mapping_error():.4f} px")
    for label, runs in (("computed", computed), ("cached", cached)):
        print(f"\nlast pixelflow job log ({label}):\n")
        print("\n".join("    " + line for line in runs[-1]["log"].splitlines()))


if __name__ == "__main__":
    main()
