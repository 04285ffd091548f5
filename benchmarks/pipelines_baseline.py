"""The pipelines stage's case written plainly with scikit-image and scipy: serially or with dask.delayed.

Each image (a PNG file of the glob, in sorted order) is read, converted with
``img_as_float32``, filtered (``scipy.ndimage.median_filter`` size 3, border
'nearest'; ``skimage.filters.gaussian`` σ = 2, truncate 4, border 'nearest';
``skimage.filters.sobel``), measured (mean and variance in float64, and
``skimage.measure.shannon_entropy`` of the 256 levels pixelflow's ``entropy``
bins by: ``min(floor(256 x), 255)`` of the values clipped to [0, 1]) and saved as
an 8-bit PNG (clipped to [0, 1], times 255, rounded), as ``edges-NNNN.png`` in the
output folder; ``metrics.tsv`` there holds index, file, output, mean, var,
entropy.

Modes: ``serial`` (a loop), ``threads`` and ``processes`` (one ``dask.delayed``
task per image, ``dask.compute(..., scheduler=..., num_workers=WORKERS)``; one
task per image rather than one per step, so that the process scheduler does not
send every intermediate image between processes). ``--io cv2`` (the default)
reads and writes with OpenCV (``cv2.imread``; ``cv2.imwrite`` at its default,
fastest PNG setting), ``--io skimage`` with ``skimage.io.imread`` / ``imsave``
(imageio and Pillow, zlib level 6).

    python benchmarks/pipelines_baseline.py serial|threads|processes GLOB OUTPUT_FOLDER [--workers 2] [--io cv2]
"""

import argparse
import glob
import os
import sys
import time
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi
import skimage.filters
import skimage.measure
import skimage.util

ENTROPY_LEVELS = 256
COLUMNS = ("index", "file", "output", "mean", "var", "entropy")


def read(path: str, io: str) -> np.ndarray:
    if io == "cv2":
        import cv2

        image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if image is None:
            raise OSError(f"cannot read {path}")
        return image
    import skimage.io

    return skimage.io.imread(path)


def write(path: str, pixels: np.ndarray, io: str) -> None:
    if io == "cv2":
        import cv2

        if not cv2.imwrite(path, pixels):
            raise OSError(f"cannot write {path}")
        return
    import skimage.io

    skimage.io.imsave(path, pixels, check_contrast=False)


def filtered(image: np.ndarray) -> np.ndarray:
    image = skimage.util.img_as_float32(image)
    image = ndi.median_filter(image, size=3, mode="nearest")
    image = skimage.filters.gaussian(image, sigma=2, preserve_range=True, mode="nearest", truncate=4)
    return skimage.filters.sobel(image)


def entropy(image: np.ndarray) -> float:
    """Shannon entropy (bits) of the image's 256 levels, binned as pixelflow's ``entropy_levels``."""
    levels = np.minimum(np.floor(np.clip(image, 0, 1) * ENTROPY_LEVELS), ENTROPY_LEVELS - 1).astype(np.uint8)
    return float(skimage.measure.shannon_entropy(levels))


def one_image(index: int, path: str, folder: str, io: str) -> tuple:
    """Read, filter, measure and save one image; its metrics row."""
    result = filtered(read(path, io))
    row = (float(np.mean(result, dtype=np.float64)), float(np.var(result, dtype=np.float64)), entropy(result))
    output = os.path.join(folder, f"edges-{index:04d}.png")
    write(output, np.rint(np.clip(result, 0, 1) * 255).astype(np.uint8), io)
    return (index, path, output, *row)


def run(mode: str, paths: list[str], folder: str, io: str, workers: int) -> list[tuple]:
    if mode == "serial":
        return [one_image(index, path, folder, io) for index, path in enumerate(paths)]
    import dask

    tasks = [dask.delayed(one_image)(index, path, folder, io) for index, path in enumerate(paths)]
    (rows,) = dask.compute(tasks, scheduler=mode, num_workers=workers)
    return list(rows)


def write_tsv(path: Path, rows: list[tuple]) -> None:
    lines = ["\t".join(COLUMNS)]
    lines += ["\t".join(str(value) if isinstance(value, int | str) else repr(value) for value in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("serial", "threads", "processes"))
    parser.add_argument("pattern", help="glob of the input PNGs (sorted)")
    parser.add_argument("folder", type=Path, help="output folder")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--io", choices=("cv2", "skimage"), default="cv2")
    args = parser.parse_args(argv)
    paths = sorted(glob.glob(args.pattern))
    if not paths:
        parser.error(f"no files match {args.pattern}")
    args.folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows = run(args.mode, paths, os.fspath(args.folder), args.io, args.workers)
    write_tsv(args.folder / "metrics.tsv", rows)
    print(f"{args.mode}: {len(rows)} images in {time.perf_counter() - started:.3f} s after imports")
    return 0


if __name__ == "__main__":
    sys.exit(main())
