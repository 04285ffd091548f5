"""2048x1024 transverse Mercator of the bundled world map: the classic per-pixel pool against pixelflow.

Three ways, each timed as wall clock, median of ``--repeats`` runs:

classic
    The hand-written demo: a Python function computes, for one output pixel,
    the source pixel it comes from (``math`` module, nearest neighbour); a
    ``ProcessPoolExecutor`` with 2 workers maps a row function over the rows.
reprojection
    ``pixelflow.reproject.reproject_file`` on the same map and size (up to 2
    processes; at 2 Mpx it runs inline, see ``PIXELS_PER_PROCESS``; bilinear,
    0.125 px error threshold), written as an uncompressed TIFF, in this
    process after one warm-up call (no interpreter start-up or imports).
workflow
    A whole ``snakemake --cores 2`` run (engine start-up, planning, the job's
    interpreter, PNG output) in a fresh folder, of a config with only this map
    and projection.

Prints a markdown table. Run it alone on the machine:
``flock /work/scratch/bench.lock python benchmarks/maps_classic.py``.
"""

import argparse
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


def reprojection(folder):
    sys.path.insert(0, str(REPO / "scripts"))
    from pixelflow.reproject import reproject_file

    projection = {"kind": "transverse_mercator"}
    reproject_file(MAP, Path(folder) / "pole_shift.tif", {}, projection, (WIDTH, None), processes=2)


def workflow(folder):
    folder = Path(folder)
    config = {
        "datasets": {},
        "maps": {"world": {"path": str(MAP)}},
        "projections": {"pole_shift": {"kind": "transverse_mercator", "width": WIDTH}},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile", "config.yaml"]
    subprocess.run(command + ["--cores", "2", "-q"], cwd=folder, check=True, capture_output=True)


def timed(func, *args):
    start = time.perf_counter()
    func(*args)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scratch", default="/work/scratch/maps/bench")
    args = parser.parse_args()
    Path(args.scratch).mkdir(parents=True, exist_ok=True)
    times = {"classic": [], "reprojection": [], "workflow": []}
    warm_up = tempfile.mkdtemp(dir=args.scratch)
    reprojection(warm_up)  # imports OpenCV and pixelflow once: not part of the reprojection's time
    shutil.rmtree(warm_up)
    for _ in range(args.repeats):
        times["classic"].append(timed(classic))
        for name in ("reprojection", "workflow"):
            folder = tempfile.mkdtemp(dir=args.scratch)
            times[name].append(timed(globals()[name], folder))
            shutil.rmtree(folder)
    base = statistics.median(times["classic"])
    print(f"2048x1024 transverse Mercator of the bundled 720x360 map, 2 processes, median of {args.repeats}\n")
    print("| method | wall time (s) | speed-up vs classic |")
    print("|---|---|---|")
    labels = {
        "classic": "classic per-pixel ProcessPoolExecutor",
        "reprojection": "pixelflow reproject_file (in process)",
        "workflow": "whole `snakemake --cores 2` run",
    }
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {labels[name]} | {median:.3f} | {base / median:.0f}x |")


if __name__ == "__main__":
    main()
