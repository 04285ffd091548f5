"""Colour photomosaic with a reuse limit: scikit-image's astronaut from 5,000 tiles, each used at most once.

Target: astronaut (512x512 RGB), 16-px tiles (1,024 cells). Library: 5,000
16-px tiles, evenly spaced among the non-overlapping pieces of five other
sample photos (mosaics_common.colour_library). ``max_repeats: 1``, 2
processes. Timed: matching + assembly (and, separately, target features), as
reported by ``pixelflow.mosaics.render.make_mosaic``; the library's features are
computed once per library by its own rule and not timed here.

Usage: ``python benchmarks/mosaics_colour.py [--repeats 5]``
"""

import argparse
import statistics

from mosaics_common import colour_library, machine, markdown_table, sample
from pixelflow.mosaics.render import make_mosaic
from pixelflow.mosaics.tiles import pooled_features

TILE = 16
VARIANTS = [(1, 0.0), (2, 0.0), (4, 0.0), (8, 0.0), (4, 0.5)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    library = colour_library(5000, TILE)
    pooled = {"lab": pooled_features(library, "lab"), "rgb": pooled_features(library, "rgb")}
    target = sample("astronaut")
    rows = []
    for grid, correction in VARIANTS:
        spec = {
            "tile": TILE,
            "grid": grid,
            "space": "lab",
            "max_repeats": 1,
            "colour_correction": correction,
            "scale": TILE,
            "key": "mosaics.astronaut",
            "library": "samples",
        }
        matching_assembly, features = [], []
        for _ in range(args.repeats):
            _, report = make_mosaic(target, library, pooled, spec, 2)
            seconds = report["seconds"]
            matching_assembly.append(seconds["matching"] + seconds["assembly"])
            features.append(seconds["features"])
        rows.append(
            [
                f"grid {grid} ({grid * grid * 3} values), {report['matching_method']}",
                correction,
                f"{statistics.median(matching_assembly):.3f}",
                f"{statistics.median(features):.3f}",
                report["mean_ciede2000"],
                report["psnr_db"],
                report["distinct_tiles"],
                report["max_uses"],
            ]
        )
    print(f"## Colour photomosaic: 512x512 astronaut, {len(library):,} {TILE}-px tiles, max_repeats 1, 2 processes\n")
    print(
        markdown_table(
            [
                "features (Lab)",
                "colour_correction",
                "matching + assembly s",
                "target features s",
                "mean CIEDE2000",
                "PSNR dB",
                "distinct tiles",
                "max uses",
            ],
            rows,
        )
    )
    print(f"\nMedians of {args.repeats} runs. Machine: {machine()}.")


if __name__ == "__main__":
    main()
