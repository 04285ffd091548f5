"""Variance before and after Gaussian filtering: per-image rows, shard tables, the theory check.

Statistics are taken on the filter's float scale: integer images in [0, 1]
(scikit-image's ``preserve_range=False``), float images as stored. For
independent pixel noise of variance v, a Gaussian blur leaves variance
v · (Σ w²)² in the interior (w the 1-D kernel), about v / (4πσ²) for σ ≳ 1.
"""

import contextlib
import math
import os
from typing import TypedDict

import cv2
import numpy as np

from pixelflow.atomic import atomic_dir
from pixelflow.datasets.generators import GeneratedSpec, generate_image
from pixelflow.formats import image_file_name
from pixelflow.io.images import encode_image, read_image
from pixelflow.runner import parallel_map
from pixelflow.stats import filters
from pixelflow.stats.tables import COLUMNS, write_table


class FilterSettings(TypedDict):
    """Everything a stats shard's outputs depend on besides its images (planning hands it to the job)."""

    sigmas: list[float]
    truncate: float
    mode: str  # border mode, as scipy.ndimage names it
    save_filtered: str  # format of the 8-bit filtered images, or "none"


def moments(values: np.ndarray) -> tuple[float, float, float, float]:
    """(mean, variance, min, max) over all pixels and channels, accumulated in float64."""
    rows = values.reshape(values.shape[0], -1)  # one channel; a view even for an interior crop
    mean, std = cv2.meanStdDev(rows)
    low, high, _, _ = cv2.minMaxLoc(rows)
    return float(mean[0, 0]), float(std[0, 0]) ** 2, float(low), float(high)


def interior_variance(filtered: np.ndarray, radius: int) -> float:
    """Variance of the pixels whose kernel support lies inside the image (NaN if none do)."""
    height, width = filtered.shape[:2]
    if height <= 2 * radius or width <= 2 * radius:
        return math.nan
    return moments(filtered[radius : height - radius, radius : width - radius])[1]


def clipped_fraction(values: np.ndarray) -> float:
    """Share of pixels at or beyond 0 or 1."""
    return float(np.count_nonzero((values <= 0) | (values >= 1))) / values.size


def image_rows(index: int, file: str, image: np.ndarray, sigmas, truncate: float, mode: str, name=None):
    """Statistics rows of one image for every σ, and the filtered images (float32); ``name`` is used in errors."""
    values = filters.to_float(image, file if name is None else name)
    mean_in, var_in, min_in, max_in = moments(values)
    clipped = clipped_fraction(values)
    rows, filtered = [], []
    for sigma in sigmas:
        out = filters.gaussian(values, sigma, truncate, mode)
        mean_out, var_out, min_out, max_out = moments(out)
        interior = interior_variance(out, filters.kernel_radius(sigma, truncate))
        stats_out = (mean_out, var_out, min_out, max_out, interior)
        rows.append((index, file, sigma, mean_in, var_in, min_in, max_in, *stats_out, clipped))
        filtered.append(out)
    return rows, filtered


# Worker side: the job's settings are handed to each worker once by the initializer.
_JOB: dict = {}


def init_worker(settings: dict) -> None:
    """Keep the shard job's settings (sigmas, truncate, mode, save format, output folders)."""
    _JOB.clear()
    _JOB.update(settings)


def filter_and_save(index: int, file: str, name: str, image: np.ndarray) -> list[tuple]:
    """Filter one image for every σ, save its 8-bit results, return its rows; ``name`` is used in errors."""
    rows, filtered = image_rows(index, file, image, _JOB["sigmas"], _JOB["truncate"], _JOB["mode"], name)
    fmt = _JOB["save_filtered"]
    if fmt != "none":
        saved = image_file_name(_JOB["dataset"], index, fmt)
        for folder, out in zip(_JOB["folders"], filtered, strict=True):
            with open(os.path.join(folder, saved), "wb") as handle:
                handle.write(encode_image(filters.to_uint8(out), fmt))
    return rows


def process_image(item: tuple) -> list[tuple]:
    """Read one image ``(index, file, path)`` and filter it (:func:`filter_and_save`)."""
    index, file, path = item
    return filter_and_save(index, file, str(path), read_image(path))


def process_generated(index: int) -> list[tuple]:
    """Draw image ``index`` of a generated dataset from its own random stream and filter it.

    The array is the one the dataset's shard job encodes; every format and dtype a
    generated dataset may use (png/tiff/bmp, uint8/uint16/float32) stores it losslessly,
    so the rows equal those of the decoded file.
    """
    spec = _JOB["spec"]
    image = generate_image(spec["generator"], spec["seed"], spec["name"], index, spec["shape"], spec["dtype"])
    file = image_file_name(spec["name"], index, spec["format"])
    return filter_and_save(index, file, f"{spec['name']} image {index} ({file})", image)


def describe_item(item: tuple) -> str:
    """An image's path, for error messages."""
    return str(item[2])


def describe_generated(index: int) -> str:
    """A generated image, for error messages (the error itself names the dataset)."""
    return f"image {index}"


def write_shard(table, folders, dataset: str, images, settings: FilterSettings, processes: int) -> int:
    """Filter a shard's image files ``[(index, file, path)]``; write the table and one folder per σ.

    All outputs appear together or not at all. Returns the number of rows.
    """
    return _write_shard(table, folders, dataset, settings, processes, process_image, images, describe_item)


def write_generated_shard(
    table, folders, spec: GeneratedSpec, start: int, stop: int, settings: FilterSettings, processes: int
) -> int:
    """Like :func:`write_shard` for images ``start..stop-1`` of a generated dataset, drawn in memory.

    ``spec`` holds the dataset's name, generator, seed, shape, dtype and format.
    """
    settings = dict(settings, spec=spec)
    # Images of one shape cost the same: one contiguous chunk per worker process.
    chunk = math.ceil((stop - start) / max(1, processes))
    items = range(start, stop)
    return _write_shard(
        table, folders, spec["name"], settings, processes, process_generated, items, describe_generated, chunk
    )


def _write_shard(table, folders, dataset, settings, processes, worker, items, describe, chunk_size=None) -> int:
    with contextlib.ExitStack() as stack:
        temporaries = [stack.enter_context(atomic_dir(folder)) for folder in folders]
        settings = dict(settings, dataset=dataset, folders=[str(path) for path in temporaries])
        if settings["save_filtered"] != "none" and len(temporaries) != len(settings["sigmas"]):
            raise ValueError(f"{len(temporaries)} output folders for {len(settings['sigmas'])} sigmas")
        results = parallel_map(
            worker,
            items,
            processes,
            chunk_size=chunk_size,
            initializer=init_worker,
            initargs=(settings,),
            describe=describe,
        )
        rows = [row for image in results for row in image]
        write_table(table, COLUMNS, rows)
    return len(rows)
