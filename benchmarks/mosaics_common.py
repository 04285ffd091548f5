"""Shared pieces of the photomosaic benchmarks: sample-image libraries, timing, markdown tables.

The grey library reproduces the 22,852-tile count of the issue from the
scikit-image sample images shipped inside the package (no download): the
non-overlapping 16-px tiles of astronaut (1024), cell (1394), chelsea (504),
coffee (925), logo (961), shepp_logan_phantom (625) and text (280) are
5,713 tiles; in 4 rotations, 22,852. Colour images are converted to grey
(ITU-R 601 luma; logo's alpha composited over white first). Several subsets of
the bundled images add up to 5,713; this one keeps the grey target (camera)
out of its own library.
"""

import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from pixelflow.mosaics.tiles import cut_tiles, evenly_spaced, merge_tiles, orient, to_uint8_grey_or_rgb  # noqa: E402

GREY_LIBRARY_IMAGES = ("astronaut", "cell", "chelsea", "coffee", "logo", "shepp_logan_phantom", "text")
COLOUR_LIBRARY_IMAGES = ("chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field")


def sample(name: str) -> np.ndarray:
    """A scikit-image sample image as 8-bit grey or RGB (alpha over white)."""
    import skimage.data

    image = getattr(skimage.data, name)()
    if image.dtype != np.uint8:
        image = np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)
    return to_uint8_grey_or_rgb(image, name)


def grey(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def grey_library(tile: int = 16) -> np.ndarray:
    """The 22,852 grey 16-px tiles: 7 sample images cut into pieces, 4 rotations."""
    parts = [cut_tiles(grey(sample(name)), tile) for name in GREY_LIBRARY_IMAGES]
    return orient(merge_tiles(parts, tile), (0, 90, 180, 270))


def colour_library(count: int = 5000, tile: int = 16) -> np.ndarray:
    """``count`` RGB tiles, evenly spaced among the 16-px pieces of 5 colour sample photos (not astronaut)."""
    tiles = merge_tiles([cut_tiles(sample(name), tile) for name in COLOUR_LIBRARY_IMAGES], tile)
    return np.ascontiguousarray(tiles[evenly_spaced(len(tiles), count)])


def timed(function, repeats: int):
    """(median seconds, all seconds, last result) of ``repeats`` calls."""
    seconds, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), seconds, result


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    import os
    import platform

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
