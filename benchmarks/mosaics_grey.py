"""Grey photomosaic: the classic Pool + one-query-per-tile scikit-learn approach against pixelflow.

Target: scikit-image's camera (512x512 grey), 16-px tiles, the 22,852-tile
grey library of mosaics_common.grey_library.

Baseline, written the way it is usually written: a ``multiprocessing.Pool(2)``
whose initializer hands each worker the library once and fits a scikit-learn
``NearestNeighbors`` on the raw tile pixels; ``pool.map`` then sends one
16x16 target tile per task, and each task asks ``kneighbors`` for that one
tile's nearest library tile. The parent pastes the tiles together.

pixelflow: ``pixelflow.mosaics.render.make_mosaic`` on the library's pooled features
(computed once per library by its own rule in the workflow, so not timed
here), no reuse limit, 2 processes, features and colour correction as listed
(grid 8 in CIELAB is the configuration compared with the baseline). Timed:
features of the target, matching and assembly (the phases of the job without
file input/output and without the quality figures).

Usage: ``python benchmarks/mosaics_grey.py [--repeats 3] [--baseline-repeats 1]``
"""

import argparse
import multiprocessing
import statistics
import sys
import time

import numpy as np
from mosaics_common import grey_library, machine, markdown_table, sample, timed
from pixelflow.mosaics.render import make_mosaic, quality
from pixelflow.mosaics.tiles import pooled_features

TILE = 16
_worker = {}


def baseline_init(library):
    from sklearn.neighbors import NearestNeighbors

    _worker["model"] = NearestNeighbors(n_neighbors=1).fit(library.reshape(len(library), -1).astype(np.float32))


def baseline_match(tile):
    distance, index = _worker["model"].kneighbors(tile.reshape(1, -1).astype(np.float32))
    return int(index[0, 0])


def baseline(target, library, processes=2):
    rows, cols = target.shape[0] // TILE, target.shape[1] // TILE
    tiles = [target[r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE] for r in range(rows) for c in range(cols)]
    with multiprocessing.Pool(processes, initializer=baseline_init, initargs=(library,)) as pool:
        chosen = pool.map(baseline_match, tiles)
    mosaic = np.zeros((rows * TILE, cols * TILE), np.uint8)
    for n, index in enumerate(chosen):
        r, c = divmod(n, cols)
        mosaic[r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE] = library[index]
    return mosaic


def ours(target, library, pooled, grid, correction, processes=2):
    spec = {
        "tile": TILE,
        "grid": grid,
        "space": "lab",
        "max_repeats": None,
        "colour_correction": correction,
        "scale": TILE,
        "key": "mosaics.grey",
        "library": "samples",
    }
    return make_mosaic(target, library, pooled, spec, processes)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs of each pixelflow variant (median reported)")
    parser.add_argument("--baseline-repeats", type=int, default=1)
    args = parser.parse_args(argv)

    library = grey_library(TILE)
    target = sample("camera")
    started = time.perf_counter()
    pooled = {"lab": pooled_features(library, "lab"), "rgb": pooled_features(library, "rgb")}
    index_seconds = time.perf_counter() - started

    base_median, base_all, base_mosaic = timed(lambda: baseline(target, library), args.baseline_repeats)
    base_quality = quality(base_mosaic, target)
    rows = [
        [
            "baseline: Pool(2) + NearestNeighbors, one tile per query (raw pixels)",
            f"{base_median:.3f}",
            "1",
            base_quality["mean_ciede2000"],
            base_quality["psnr_db"],
        ]
    ]
    for grid, correction in ((8, 0.0), (8, 0.25), (4, 0.0), (1, 0.0)):
        inside = []
        for _ in range(args.repeats):
            _, report = ours(target, library, pooled, grid, correction)
            phases = report["seconds"]
            inside.append(phases["features"] + phases["matching"] + phases["assembly"])
        median = statistics.median(inside)
        rows.append(
            [
                f"pixelflow: grid {grid}, Lab, {report['matching_method']}, colour_correction {correction}",
                f"{median:.3f}",
                f"{median / base_median:.4f}",
                report["mean_ciede2000"],
                report["psnr_db"],
            ]
        )
        print(f"  grid {grid} cc {correction}: {', '.join(f'{s:.3f}' for s in inside)} s", file=sys.stderr)
    print(f"## Grey photomosaic: 512x512 camera, {TILE}-px tiles, {len(library):,}-tile library\n")
    print(
        markdown_table(
            ["method", "seconds (median)", "× baseline", "mean CIEDE2000", "PSNR dB"],
            rows,
        )
    )
    print(
        f"\nLibrary features (indexing, once per library and tile size; not in the times above): {index_seconds:.3f} s."
        f"\nBaseline runs: {', '.join(f'{s:.2f}' for s in base_all)} s. pixelflow: median of {args.repeats}."
        f"\nMachine: {machine()}."
    )


if __name__ == "__main__":
    main()
