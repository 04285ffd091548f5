"""TIFF input and output of reproject_file: the hand-written layout code (pixelflow.io.rawtiff) against tifffile.

A 10800x5400 RGB uint8 uncompressed TIFF (the bundled map upscaled, made
once in ``--scratch``) is reprojected to a 10800x5400 transverse Mercator
``.tif``, bilinear, threads=2: the source memory-mapped where it lies, the
output laid out by the TIFF code and filled in place by the render threads.

old
    The ``scripts/pixelflow`` tree of ``--old`` (default dbf8d57, the last commit with it), unpacked with
    ``git archive`` into a temporary folder.
new
    The working tree's ``scripts/pixelflow``.

Each run is a fresh interpreter with PYTHONPATH on its tree, alternating
old and new; reported: the ``reproject_file`` call, the import of
``pixelflow.maps.reproject`` and the whole process, medians of
``--repeats``. Prints a markdown table. Run it alone on the machine.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import tifffile

REPO = Path(__file__).resolve().parents[1]
MAP = REPO / "resources" / "natural_earth_shaded_relief_720x360.png"
WIDTH, HEIGHT = 10800, 5400
CHILD = """
import json, sys, time
start = time.perf_counter()
from pixelflow.maps.reproject import load_source, reproject_file
imported = time.perf_counter()
projection = {"kind": "transverse_mercator", "width": int(sys.argv[3]), "height": int(sys.argv[4])}
reproject_file(sys.argv[1], sys.argv[2], {}, projection, interpolation="bilinear", threads=2)
done = time.perf_counter()
mapped = load_source(sys.argv[1], 2, 1 << 30, in_place=True)[1]
print(json.dumps({"import": imported - start, "call": done - imported, "mapped": mapped}))
"""


def make_input(folder: Path) -> Path:
    path = folder / f"world_{WIDTH}x{HEIGHT}.tif"
    if not path.exists():
        image = cv2.resize(cv2.imread(str(MAP)), (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(path), image, [cv2.IMWRITE_TIFF_COMPRESSION, 1])
    return path


def run(tree: Path, source: Path, output: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree / "scripts")}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, source, output, str(WIDTH), str(HEIGHT)], env=env, check=True, capture_output=True
    )
    result = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return {**result, "process": time.perf_counter() - start}


def stored(path: Path) -> tuple:
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        return page.asarray(), page.dataoffsets[0], len(page.dataoffsets), path.stat().st_size


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--old", default="dbf8d57", help="a commit with the hand-written TIFF code (io/rawtiff.py)")
    parser.add_argument("--scratch", default=str(REPO / "benchmarks" / "scratch" / "maps_tiff_io"))
    args = parser.parse_args()
    scratch = Path(args.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    source = make_input(scratch)
    with tempfile.TemporaryDirectory(dir=scratch) as old_tree:
        archive = subprocess.run(
            ["git", "archive", args.old, "scripts/pixelflow"], cwd=REPO, check=True, capture_output=True
        )
        subprocess.run(["tar", "-x", "-C", old_tree], input=archive.stdout, check=True)
        trees = {"old (rawtiff)": Path(old_tree), "new (tifffile)": REPO}
        times = {name: [] for name in trees}
        for name, tree in trees.items():  # warm-up: the source in the page cache, the outputs kept to compare
            run(tree, source, scratch / f"{name.split()[0]}.tif")
        for repeat in range(args.repeats):
            order = list(trees) if repeat % 2 == 0 else list(trees)[::-1]
            for name in order:
                output = scratch / "out.tif"
                times[name].append(run(trees[name], source, output))
                output.unlink()
    outputs = {name: stored(scratch / f"{name.split()[0]}.tif") for name in trees}
    print(f"{WIDTH}x{HEIGHT} RGB uint8 uncompressed TIFF -> {WIDTH}x{HEIGHT} transverse Mercator .tif, bilinear,")
    print(f"threads=2, {os.cpu_count()} CPUs, median of {args.repeats} alternating runs [min–max], seconds\n")
    print("| variant | source mapped | reproject_file | import | whole process | data offset | strips | file bytes |")
    print("|---|---|---|---|---|---|---|---|")
    for name, runs in times.items():
        cells = []
        for key in ("call", "import", "process"):
            values = [run[key] for run in runs]
            cells.append(f"{statistics.median(values):.3f} [{min(values):.3f}–{max(values):.3f}]")
        cells += map(str, outputs[name][1:])
        print(f"| {name} | {all(run['mapped'] for run in runs)} | {' | '.join(cells)} |")
    old, new = ([run["call"] for run in times[name]] for name in trees)
    paired = [b / a for a, b in zip(old, new, strict=True)]
    spread = f"{statistics.median(paired):.3f} [{min(paired):.3f}–{max(paired):.3f}]"
    print(f"\nnew/old reproject_file, paired: median {spread}")
    print(f"pixels of the two outputs identical: {np.array_equal(*(pixels for pixels, *_ in outputs.values()))}")


if __name__ == "__main__":
    main()
