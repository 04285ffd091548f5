"""Photomosaics: match every tile-sized cell of a target to a library tile, assign, render and measure.

The nearest tiles of every cell are searched in worker processes over bands
of cells (rows of the target); each worker receives the library features once,
from the pool initializer. The band size does not depend on the number of
processes, and the search is exact with ties broken by tile index, so the
mosaic does not depend on them. The assignment under reuse limits is
:func:`pixelflow.mosaics.matching.assign_cells`. The mosaic is then rendered
and measured in bands of cell rows (:func:`render_bands`), so that a large
print is never held whole in memory.
"""

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypedDict

import cv2
import numpy as np
from skimage.color import deltaE_ciede2000, rgb2lab

from pixelflow.errors import ConfigError
from pixelflow.mosaics import matching
from pixelflow.mosaics.tiles import cut_tiles, grid_features, pooled_features, tile_shape, to_uint8_grey_or_rgb
from pixelflow.runner import parallel_map


class MosaicSpec(TypedDict):
    """What a mosaic depends on besides its target and library (planning hands it to the job).

    Attributes
    ----------
    key : str
        The mosaic's config key, for error messages.
    library : str
        The library's name, for error messages and the report.
    tile : list of int
        Cell [height, width] in target pixels.
    grid : int
        Features: grid x grid cell means (:func:`pixelflow.mosaics.tiles.grid_features`).
    space : str
        The features' colour space: ``lab`` or ``rgb``.
    assignment : str
        ``optimal`` or ``greedy`` (:func:`pixelflow.mosaics.matching.assign_cells`).
    max_repeats : int or None
        Uses of one tile at most; None: no limit.
    min_spacing : int
        No tile again within this Chebyshev distance in cells; 0: no rule.
    colour_correction : float
        From 0 to 1: how far tiles move toward their cell's mean colour.
    scale : list of int
        Output [height, width] of each placed tile.
    """

    key: str
    library: str
    tile: list[int]
    grid: int
    space: str
    assignment: str
    max_repeats: int | None
    min_spacing: int
    colour_correction: float
    scale: list[int]


BAND_CELLS = 256  # cells per matching task, about; whole rows of cells
BAND_PIXELS = 1 << 24  # output pixels per rendered band, about (whole rows of cells, at least one)
# Starting the worker pool costs about 0.1 s here, while one process matches
# 1024 cells against 22,852 tiles in 0.01-0.1 s: smaller searches run inline.
PARALLEL_MIN_PAIRS = 50_000_000

_WORKER: dict = {}


def share_library(features: np.ndarray, method: str) -> None:
    """Pool initializer: keep the library features, prepared for searching, in this worker."""
    _WORKER.clear()
    _WORKER["index"] = matching.build_index(features, method)


def match_band(item):
    """Worker: the ``k`` nearest library tiles of one band's cell features.

    The item is ``(first cell, (b, d) features, k)``; the result is
    :func:`pixelflow.mosaics.matching.nearest`'s ``(indices, distances)``.
    """
    _, queries, k = item
    return matching.nearest(queries, _WORKER["index"], k)


def describe_band(item) -> str:
    """Words naming a band (the item as for :func:`match_band`) in error messages: its cells."""
    return f"cells {item[0]}..{item[0] + len(item[1]) - 1}"


def cell_bands(rows: int, cols: int) -> list[tuple[int, int]]:
    """(first cell, stop cell) of each band: whole rows of cells, about BAND_CELLS each.

    Cells are numbered row-major; a band is ``ceil(BAND_CELLS / cols)`` rows
    (the last may be shorter), so at least one row.

    Returns
    -------
    list of tuple of int
    """
    step = max(1, math.ceil(BAND_CELLS / cols)) * cols
    return [(start, min(start + step, rows * cols)) for start in range(0, rows * cols, step)]


def match_cells(cell_features, library_features, k, method, processes):
    """(indices, distances) of the k nearest tiles of every cell, computed band by band in workers.

    Parameters
    ----------
    cell_features : ndarray
        (rows, cols, d) features of the target's cells.
    library_features : ndarray
        (n, d) features of the tiles.
    k : int
        Nearest tiles per cell.
    method : str
        ``auto``, ``blas`` or ``kdtree`` (:func:`pixelflow.mosaics.matching.build_index`).
    processes : int
        Worker processes; a search of fewer than :data:`PARALLEL_MIN_PAIRS`
        cell-tile pairs runs in this process.

    Returns
    -------
    indices : ndarray
        (rows * cols, k) int64, cells in row-major order, nearest first.
    distances : ndarray
        (rows * cols, k) float64.

    Raises
    ------
    WorkerError
        Naming the band's cells, when a search fails.
    """
    rows_cols = cell_features.shape[:2]
    flat = cell_features.reshape(-1, cell_features.shape[-1])
    items = [(start, flat[start:stop], k) for start, stop in cell_bands(*rows_cols)]
    if len(flat) * len(library_features) < PARALLEL_MIN_PAIRS:
        processes = 1
    results = parallel_map(
        match_band,
        items,
        processes,
        chunk_size=1 if len(items) <= 4 * processes else None,
        initializer=share_library,
        initargs=(library_features, method),
        describe=describe_band,
    )
    return np.concatenate([r[0] for r in results]), np.concatenate([r[1] for r in results])


def rgb_float(images: np.ndarray) -> np.ndarray:
    """float32 RGB copies of a stack of grey (n, h, w) or RGB (n, h, w, 3) images.

    Only a 4-D array ending in 3 channels counts as RGB; anything else gets
    its values repeated along a new last axis of 3.
    """
    images = images.astype(np.float32)
    return images if images.shape[-1:] == (3,) and images.ndim == 4 else images[..., None].repeat(3, -1)


def placed_tiles(tiles, assignment, scale, tile_means=None, cell_means=None, correction=0.0, rgb=False) -> np.ndarray:
    """The tiles of ``assignment`` at ``scale``, shifted by ``correction`` toward their cell's mean colour.

    Parameters
    ----------
    tiles : ndarray
        (n, h, w) grey or (n, h, w, 3) RGB uint8.
    assignment : ndarray
        (cells,) int tile per cell.
    scale : tuple of int
        Output (height, width) of a tile; resizing averages areas when
        shrinking and is bilinear when enlarging.
    tile_means, cell_means : ndarray, optional
        (n, channels) and (cells, channels) mean colours on [0, 255], one
        channel for a grey result; unused when ``correction`` is 0 or less.
    correction : float
        The fraction of ``cell mean - tile mean`` added to every pixel of a
        placed tile; the result is rounded and clipped to [0, 255].
    rgb : bool
        Give grey tiles three equal channels.

    Returns
    -------
    ndarray
        (cells, height, width) or (cells, height, width, 3) uint8.
    """
    used, inverse = np.unique(assignment, return_inverse=True)
    chosen = tiles[used]
    if rgb and chosen.ndim == 3:
        chosen = chosen[..., None].repeat(3, -1)
    height, width = scale
    if (height, width) != chosen.shape[1:3]:
        shrinking = height * width < chosen.shape[1] * chosen.shape[2]
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        resized = [cv2.resize(t, (width, height), interpolation=interpolation) for t in chosen]
        chosen = np.stack(resized).reshape(len(used), height, width, *chosen.shape[3:])
    placed = chosen[inverse.ravel()]
    if correction <= 0:
        return placed
    shift = correction * (cell_means - tile_means[assignment])  # (cells, channels)
    shift = shift[:, None, None, :] if placed.ndim == 4 else shift[:, None, None, 0]
    return np.clip(np.rint(placed.astype(np.float32) + shift), 0, 255).astype(np.uint8)


def assemble(placed: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Lay ``rows * cols`` tiles (row-major) out as one image.

    Parameters
    ----------
    placed : ndarray
        (rows * cols, h, w) or (rows * cols, h, w, c).
    rows, cols : int
        The grid's size in tiles.

    Returns
    -------
    ndarray
        (rows * h, cols * w) or (rows * h, cols * w, c), contiguous.
    """
    height, width = placed.shape[1:3]
    grid = placed.reshape(rows, cols, height, width, *placed.shape[3:]).swapaxes(1, 2)
    return np.ascontiguousarray(grid.reshape(rows * height, cols * width, *placed.shape[3:]))


def difference_sums(mosaic: np.ndarray, target: np.ndarray) -> tuple[float, float, int, int]:
    """Sums behind :func:`quality`: (CIEDE2000 sum, squared-error sum, pixels, values).

    A mosaic of another size is first resized to the target's (area
    averaging); grey images are compared as RGB with equal channels when the
    other one is in colour.

    Parameters
    ----------
    mosaic, target : ndarray
        (h, w) grey or (h, w, 3) RGB uint8.

    Returns
    -------
    tuple
        The sum of per-pixel CIEDE2000 differences, the sum of squared value
        differences, the number of pixels, and of values (pixels x channels).
    """
    if mosaic.shape[:2] != target.shape[:2]:
        mosaic = cv2.resize(mosaic, target.shape[1::-1], interpolation=cv2.INTER_AREA)
    a, b = rgb_float(mosaic[None])[0] / 255.0, rgb_float(target[None])[0] / 255.0
    delta = float(deltaE_ciede2000(rgb2lab(a), rgb2lab(b)).sum(dtype=np.float64))
    if mosaic.ndim != target.ndim:
        mosaic, target = np.rint(a * 255).astype(np.uint8), np.rint(b * 255).astype(np.uint8)
    squared = float(((mosaic.astype(np.float64) - target) ** 2).sum())
    return delta, squared, int(np.prod(target.shape[:2])), int(target.size)


def quality_from_sums(delta: float, squared: float, pixels: int, values: int) -> dict:
    """Mean CIEDE2000 and PSNR (dB, None for identical images) from :func:`difference_sums`, summed over bands."""
    psnr = None if squared == 0 else 10 * math.log10(255.0**2 / (squared / values))
    return {"mean_ciede2000": round(delta / pixels, 4), "psnr_db": None if psnr is None else round(psnr, 4)}


def quality(mosaic: np.ndarray, target: np.ndarray) -> dict:
    """Mean CIEDE2000 and PSNR (dB, None if identical) of ``mosaic`` against ``target`` at the target's size.

    A mosaic of another size is first resized (area averaging). Grey images
    are compared as RGB with equal channels.

    Parameters
    ----------
    mosaic, target : ndarray
        (h, w) grey or (h, w, 3) RGB uint8.

    Returns
    -------
    dict
        ``mean_ciede2000`` and ``psnr_db``, rounded to 4 decimals.
    """
    return quality_from_sums(*difference_sums(mosaic, target))


def check_fits(target_shape, tile, library_size, max_repeats, key, library, min_spacing=0) -> tuple[int, int]:
    """(rows, cols) of cells, or a ConfigError naming the key when the tiles cannot cover the target.

    Parameters
    ----------
    target_shape : tuple of int
        The target's (h, w[, c]).
    tile : int or sequence of int
        Cell side, or (height, width), in target pixels.
    library_size : int
        Tiles in the library.
    max_repeats : int or None
        Uses of one tile at most; None: no limit.
    key : str
        The mosaic's config key.
    library : str
        The library's name.
    min_spacing : int
        No tile again within this many cells; 0: no rule.

    Returns
    -------
    tuple of int
        ``(h // tile height, w // tile width)``.

    Raises
    ------
    ConfigError
        Naming ``key.tile`` when the tile exceeds the target, ``key.library``
        when the library is empty, and ``key.max_repeats`` or
        ``key.min_spacing`` when the library cannot fill the cells under those
        limits (:func:`pixelflow.mosaics.matching.assignment_problem`).
    """
    height, width = target_shape[:2]
    tile_height, tile_width = tile_shape(tile)
    if tile_height > height or tile_width > width:
        size = f"{tile_height} px" if tile_height == tile_width else f"{tile_height}x{tile_width} px (height x width)"
        raise ConfigError(f"config key {key}.tile: {size} is larger than the {width}x{height} target")
    rows, cols = height // tile_height, width // tile_width
    if library_size == 0:
        raise ConfigError(f"config key {key}.library: library {library!r} has no tiles")
    problem = matching.assignment_problem(rows, cols, library_size, max_repeats, min_spacing)
    if problem is not None:
        limit, message = problem
        raise ConfigError(f"config key {key}.{limit}: {message} (library {library!r})")
    return rows, cols


@dataclass
class Layout:
    """A matched mosaic, ready to render band by band (:func:`render_bands`).

    Attributes
    ----------
    rows, cols : int
        Cells down and across.
    assignment : ndarray
        (rows * cols,) int64 tile per cell, row-major.
    distances : ndarray
        (rows * cols,) float64 feature distance of each cell to its tile.
    target : ndarray
        The 8-bit target cropped to whole cells.
    grey : bool
        A grey mosaic (grey target and grey tiles); otherwise RGB.
    cell_means, tile_means : ndarray or None
        Mean colours for colour correction, or None without it.
    method : str
        The nearest-tile search used (``kdtree`` or ``blas``).
    seconds : dict
        Seconds spent on features and on matching.
    solver : dict
        How the assignment was solved: ``solver`` and ``proven_optimal``
        (:func:`pixelflow.mosaics.matching.solve_assignment`).
    """

    rows: int
    cols: int
    assignment: np.ndarray
    distances: np.ndarray
    target: np.ndarray
    grey: bool
    cell_means: np.ndarray | None
    tile_means: np.ndarray | None
    method: str
    seconds: dict
    solver: dict


def match_mosaic(target, tiles, library_pooled, spec: MosaicSpec, processes: int = 1) -> Layout:
    """Features, nearest tiles and the assignment of a photomosaic.

    Parameters
    ----------
    target : ndarray
        Target image (grey, RGB or RGBA, any supported dtype).
    tiles : ndarray
        Library tiles, uint8 (n, h, w) grey or (n, h, w, 3) RGB.
    library_pooled : dict
        ``{"lab": ..., "rgb": ...}`` pooled features of the tiles (:func:`pixelflow.mosaics.tiles.pooled_features`).
    spec : MosaicSpec
        What the mosaic asks for.
    processes : int
        Worker processes searching bands of cells.

    Returns
    -------
    Layout

    Raises
    ------
    ValueError
        If the tiles are not of ``spec["tile"]``'s shape.
    ImageError
        For a target of an unsupported shape or dtype.
    ConfigError
        As :func:`check_fits`.
    WorkerError
        When matching fails in a worker.
    """
    seconds = {}
    started = time.perf_counter()
    target = to_uint8_grey_or_rgb(target, "target")
    tile = tile_shape(spec["tile"])
    if tuple(tiles.shape[1:3]) != tile:
        raise ValueError(f"library tiles are {tiles.shape[1:3]} px, the mosaic asks for {tile} px")
    max_repeats, min_spacing = spec["max_repeats"], spec["min_spacing"]
    rows, cols = check_fits(target.shape, tile, len(tiles), max_repeats, spec["key"], spec["library"], min_spacing)
    cropped = target[: rows * tile[0], : cols * tile[1]]
    cells = cut_tiles(cropped, tile)
    grey = tiles.ndim == 3 and target.ndim == 2
    cell_pooled = pooled_features(cells, spec["space"])
    cell_features = grid_features(cell_pooled, spec["grid"], grey)
    library_features = grid_features(library_pooled[spec["space"]], spec["grid"], grey)
    cell_means = tile_means = None
    if spec["colour_correction"] > 0:
        cell_means = cell_pooled.mean(axis=(1, 2)) if spec["space"] == "rgb" else rgb_float(cells).mean(axis=(1, 2))
        tile_means = library_pooled["rgb"].mean(axis=(1, 2))
        if grey:
            cell_means, tile_means = cell_means[:, :1], tile_means[:, :1]
    seconds["features"] = time.perf_counter() - started

    started = time.perf_counter()
    method = matching.choose_method(library_features.shape[1])
    k = matching.candidate_count(rows * cols, len(tiles), max_repeats, min_spacing, spec["assignment"])
    candidates = distances = None
    if k:
        candidates, distances = match_cells(
            cell_features.reshape(rows, cols, -1), library_features, k, method, processes
        )
    assignment, solver = matching.solve_assignment(
        cell_features,
        library_features,
        rows=rows,
        cols=cols,
        max_repeats=max_repeats,
        min_spacing=min_spacing,
        assignment=spec["assignment"],
        candidates=candidates,
        distances=distances,
        method=method,
    )
    chosen = library_features[assignment].astype(np.float64) - cell_features.astype(np.float64)
    cell_distances = np.sqrt(np.einsum("cd,cd->c", chosen, chosen))
    seconds["matching"] = time.perf_counter() - started
    solver = {"solver": solver["solver"], "proven_optimal": solver["proven"]}
    return Layout(
        rows, cols, assignment, cell_distances, cropped, grey, cell_means, tile_means, method, seconds, solver
    )


def band_rows(cols: int, scale) -> int:
    """Cell rows per rendered band: about :data:`BAND_PIXELS` output pixels, at least one row."""
    return max(1, BAND_PIXELS // (cols * scale[0] * scale[1]))


def render_bands(layout: Layout, tiles: np.ndarray, scale, correction: float = 0.0) -> Iterator[np.ndarray]:
    """The mosaic as bands of whole cell rows, from the top (:func:`band_rows` rows each).

    Parameters
    ----------
    layout : Layout
        From :func:`match_mosaic`.
    tiles : ndarray
        The library tiles the layout indexes.
    scale : tuple of int
        Output (height, width) of a tile.
    correction : float
        Colour correction (:func:`placed_tiles`).

    Yields
    ------
    ndarray
        (rows * scale height, cols * scale width) grey or (..., 3) RGB uint8.
    """
    step = band_rows(layout.cols, scale)
    for top in range(0, layout.rows, step):
        cells = slice(top * layout.cols, min(top + step, layout.rows) * layout.cols)
        assignment = layout.assignment[cells]
        cell_means = None if layout.cell_means is None else layout.cell_means[cells]
        placed = placed_tiles(tiles, assignment, scale, layout.tile_means, cell_means, correction, rgb=not layout.grey)
        yield assemble(placed, len(assignment) // layout.cols, layout.cols)


def measured_bands(layout: Layout, bands, scale, sums: list) -> Iterator[np.ndarray]:
    """Pass ``bands`` (of :func:`render_bands` at ``scale``) through, measuring each against its part of the target.

    Each band's :func:`difference_sums` are added to ``sums``, a list of
    [CIEDE2000 sum, squared-error sum, pixels, values], so that the mosaic is
    measured as it is written, without being kept.
    """
    tile_height = layout.target.shape[0] // layout.rows
    row = 0
    for band in bands:
        cell_rows = band.shape[0] // scale[0]
        part = layout.target[row * tile_height : (row + cell_rows) * tile_height]
        for index, value in enumerate(difference_sums(band, part)):
            sums[index] += value
        row += cell_rows
        yield band


def usage_report(layout: Layout, library_size: int) -> dict:
    """Distinct tiles used, the most uses of one, and the total and mean feature distance."""
    uses = np.bincount(layout.assignment, minlength=library_size)
    return {
        "distinct_tiles": int(np.count_nonzero(uses)),
        "max_uses": int(uses.max()),
        "total_distance": round(float(layout.distances.sum()), 4),
        "mean_distance": round(float(layout.distances.mean()), 4),
    }


def make_mosaic(target, tiles, library_pooled, spec: MosaicSpec, processes: int = 1):
    """Build a photomosaic in memory (for small mosaics, tests and benchmarks; the job writes it band by band).

    Parameters
    ----------
    target, tiles, library_pooled, spec, processes
        As for :func:`match_mosaic`.

    Returns
    -------
    mosaic : ndarray
        (rows * scale height, cols * scale width) uint8 when target and tiles
        are grey, else RGB; the target is cropped to whole cells.
    report : dict
        :func:`mosaic_report`, with :func:`quality` against the cropped target.

    Raises
    ------
    As :func:`match_mosaic`.
    """
    layout = match_mosaic(target, tiles, library_pooled, spec, processes)
    started = time.perf_counter()
    mosaic = np.concatenate(list(render_bands(layout, tiles, tile_shape(spec["scale"]), spec["colour_correction"])))
    layout.seconds["assembly"] = time.perf_counter() - started
    started = time.perf_counter()
    scores = quality(mosaic, layout.target)
    layout.seconds["quality"] = time.perf_counter() - started
    return mosaic, mosaic_report(layout, spec, len(tiles), list(mosaic.shape), scores)


def mosaic_report(layout: Layout, spec: MosaicSpec, library_size: int, shape, scores: dict) -> dict:
    """The figures of a mosaic's JSON report (docs/mosaics.md, "The report")."""
    return {
        "library": spec["library"],
        "library_tiles": int(library_size),
        "tile": list(tile_shape(spec["tile"])),
        "cells": [layout.rows, layout.cols],
        "mosaic_shape": shape,
        "features": {"grid": spec["grid"], "space": spec["space"]},
        "matching_method": layout.method,
        "assignment": spec["assignment"],
        "solver": layout.solver,
        "max_repeats": spec["max_repeats"],
        "min_spacing": spec["min_spacing"],
        **usage_report(layout, library_size),
        **scores,
        "seconds": {phase: round(value, 4) for phase, value in layout.seconds.items()},
    }


PLACEMENT_COLUMNS = ("row", "col", "tile", "file", "top", "left", "rotation", "flip", "distance")


def placement_table(layout: Layout, provenance: dict, files) -> str:
    """The placement table of a mosaic as tab-separated text, one line per cell in row-major order.

    Columns: the cell's ``row`` and ``col``; the library ``tile`` index; the
    source ``file`` it came from, and the ``top``/``left`` pixel of the piece
    or crop in that image (as a viewer shows it); its ``rotation`` (degrees
    counter-clockwise) and ``flip`` (1 if mirrored left to right, after the
    rotation); and the feature ``distance`` of the cell to the tile.

    Parameters
    ----------
    layout : Layout
        From :func:`match_mosaic`.
    provenance : dict
        Per library tile: ``source`` (index into ``files``), ``top``, ``left``,
        ``rotation`` and ``flip`` arrays.
    files : sequence of str
        The library's source files.

    Returns
    -------
    str
        A header line and ``rows * cols`` lines, each ending in a newline.
    """
    tiles = layout.assignment
    columns = [
        np.repeat(np.arange(layout.rows), layout.cols),
        np.tile(np.arange(layout.cols), layout.rows),
        tiles,
        np.asarray(files, dtype=object)[provenance["source"][tiles]],
        provenance["top"][tiles],
        provenance["left"][tiles],
        provenance["rotation"][tiles],
        provenance["flip"][tiles].astype(np.int64),
        [f"{value:.4f}" for value in layout.distances],
    ]
    lines = ["\t".join(map(str, values)) for values in zip(*columns, strict=True)]
    return "\t".join(PLACEMENT_COLUMNS) + "\n" + "".join(line + "\n" for line in lines)
