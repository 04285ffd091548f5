"""Photomosaics: match every tile-sized cell of a target to a library tile, assemble, and measure.

Matching runs in worker processes over bands of cells (rows of the target);
each worker receives the library features once, from the pool initializer.
The band size does not depend on the number of processes, and the search is
exact with ties broken by tile index, so the mosaic does not depend on them.
"""

import math
import time
from typing import TypedDict

import cv2
import numpy as np
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import peak_signal_noise_ratio

from pixelflow.errors import ConfigError
from pixelflow.mosaics import matching
from pixelflow.mosaics.tiles import cut_tiles, grid_features, pooled_features, to_uint8_grey_or_rgb
from pixelflow.runner import parallel_map


class MosaicSpec(TypedDict):
    """What a mosaic depends on besides its target and library (planning hands it to the job).

    Attributes
    ----------
    key : str
        The mosaic's config key, for error messages.
    library : str
        The library's name, for error messages and the report.
    tile : int
        Cell size in target pixels.
    grid : int
        Features: grid x grid cell means (:func:`pixelflow.mosaics.tiles.grid_features`).
    space : str
        The features' colour space: ``lab`` or ``rgb``.
    max_repeats : int or None
        Uses of one tile at most; None: no limit.
    colour_correction : float
        From 0 to 1: how far tiles move toward their cell's mean colour.
    scale : int
        Output pixels per tile side.
    """

    key: str
    library: str
    tile: int
    grid: int
    space: str
    max_repeats: int | None
    colour_correction: float
    scale: int


BAND_CELLS = 256  # cells per matching task, about; whole rows of cells
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


def placed_tiles(tiles, assignment, scale, tile_means=None, cell_means=None, correction=0.0) -> np.ndarray:
    """The tiles of ``assignment`` at ``scale`` px, shifted by ``correction`` toward their cell's mean colour.

    Parameters
    ----------
    tiles : ndarray
        (n, t, t) grey or (n, t, t, 3) RGB uint8.
    assignment : ndarray
        (cells,) int tile per cell.
    scale : int
        Output tile side in pixels; resizing averages areas when shrinking and
        is bilinear when enlarging.
    tile_means, cell_means : ndarray, optional
        (n, channels) and (cells, channels) mean colours on [0, 255], one
        channel for grey tiles; unused when ``correction`` is 0 or less.
    correction : float
        The fraction of ``cell mean - tile mean`` added to every pixel of a
        placed tile; the result is rounded and clipped to [0, 255].

    Returns
    -------
    ndarray
        (cells, scale, scale) or (cells, scale, scale, 3) uint8.
    """
    used, inverse = np.unique(assignment, return_inverse=True)
    chosen = tiles[used]
    if scale != tiles.shape[1]:
        interpolation = cv2.INTER_AREA if scale < tiles.shape[1] else cv2.INTER_LINEAR
        chosen = np.stack([cv2.resize(t, (scale, scale), interpolation=interpolation) for t in chosen])
        chosen = chosen.reshape(len(used), scale, scale, *tiles.shape[3:])
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
        (rows * cols, s, s) or (rows * cols, s, s, c).
    rows, cols : int
        The grid's size in tiles.

    Returns
    -------
    ndarray
        (rows * s, cols * s) or (rows * s, cols * s, c), contiguous.
    """
    size = placed.shape[1]
    grid = placed.reshape(rows, cols, size, size, *placed.shape[3:]).swapaxes(1, 2)
    return np.ascontiguousarray(grid.reshape(rows * size, cols * size, *placed.shape[3:]))


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
    if mosaic.shape[:2] != target.shape[:2]:
        mosaic = cv2.resize(mosaic, target.shape[1::-1], interpolation=cv2.INTER_AREA)
    a, b = rgb_float(mosaic[None])[0] / 255.0, rgb_float(target[None])[0] / 255.0
    delta = float(deltaE_ciede2000(rgb2lab(a), rgb2lab(b)).mean())
    if mosaic.ndim != target.ndim:
        mosaic, target = np.rint(a * 255).astype(np.uint8), np.rint(b * 255).astype(np.uint8)
    psnr = peak_signal_noise_ratio(target, mosaic, data_range=255) if not np.array_equal(mosaic, target) else None
    return {"mean_ciede2000": round(delta, 4), "psnr_db": None if psnr is None else round(float(psnr), 4)}


def check_fits(target_shape, tile: int, library_size: int, max_repeats, key: str, library: str) -> tuple[int, int]:
    """(rows, cols) of cells, or a ConfigError naming ``key`` when the tile or library cannot cover the target.

    Parameters
    ----------
    target_shape : tuple of int
        The target's (h, w[, c]).
    tile : int
        Cell side in target pixels.
    library_size : int
        Tiles in the library.
    max_repeats : int or None
        Uses of one tile at most; None: no limit.
    key : str
        The mosaic's config key.
    library : str
        The library's name.

    Returns
    -------
    tuple of int
        ``(h // tile, w // tile)``.

    Raises
    ------
    ConfigError
        Naming ``key.tile`` when ``tile`` exceeds the target's shorter side,
        ``key.library`` when the library is empty, and ``key.max_repeats``
        when the library cannot fill the cells at that limit.
    """
    height, width = target_shape[:2]
    if tile > min(height, width):
        raise ConfigError(f"config key {key}.tile: {tile} px is larger than the {width}x{height} target")
    rows, cols = height // tile, width // tile
    if library_size == 0:
        raise ConfigError(f"config key {key}.library: library {library!r} has no tiles")
    if max_repeats is not None and library_size * max_repeats < rows * cols:
        raise ConfigError(
            f"config key {key}.max_repeats: the target's {rows}x{cols} = {rows * cols} cells need at least "
            f"{matching.tiles_needed(rows * cols, max_repeats)} tiles at max_repeats={max_repeats}, "
            f"library {library!r} has {library_size} (raise max_repeats to "
            f"{math.ceil(rows * cols / library_size)} or use a larger library)"
        )
    return rows, cols


def make_mosaic(target, tiles, library_pooled, spec: MosaicSpec, processes: int = 1):
    """Build a photomosaic.

    Parameters
    ----------
    target : ndarray
        Target image (grey, RGB or RGBA, any supported dtype).
    tiles : ndarray
        Library tiles, uint8 (n, t, t) grey or (n, t, t, 3) RGB.
    library_pooled : dict
        ``{"lab": ..., "rgb": ...}`` pooled features of the tiles (:func:`pixelflow.mosaics.tiles.pooled_features`).
    spec : MosaicSpec
        tile, grid, space, max_repeats (None: unlimited), colour_correction,
        scale, and key/library (names used in error messages).
    processes : int
        Worker processes matching bands of cells.

    Returns
    -------
    mosaic : ndarray
        (rows * scale, cols * scale) uint8 when target and tiles are grey, else
        (rows * scale, cols * scale, 3) RGB; the target is cropped to whole cells.
    report : dict
        The library, tile size, cells, mosaic shape, features, matching method,
        distinct tiles used and most uses of one, :func:`quality` against the
        cropped target, and seconds per phase.

    Raises
    ------
    ValueError
        If the tiles are not ``spec["tile"]`` pixels wide.
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
    tile, max_repeats = spec["tile"], spec["max_repeats"]
    if tiles.shape[1] != tile:
        raise ValueError(f"library tiles are {tiles.shape[1]} px, the mosaic asks for {tile} px")
    rows, cols = check_fits(target.shape, tile, len(tiles), max_repeats, spec["key"], spec["library"])
    cropped = target[: rows * tile, : cols * tile]
    cells = cut_tiles(cropped, tile)
    grey = tiles.ndim == 3 and target.ndim == 2
    cell_pooled = pooled_features(cells, spec["space"])
    cell_features = grid_features(cell_pooled, spec["grid"], grey).reshape(rows, cols, -1)
    library_features = grid_features(library_pooled[spec["space"]], spec["grid"], grey)
    seconds["features"] = time.perf_counter() - started

    started = time.perf_counter()
    method = matching.choose_method(library_features.shape[1])
    k = matching.candidate_count(rows * cols, len(tiles), max_repeats)
    candidates, distances = match_cells(cell_features, library_features, k, method, processes)
    assignment = matching.assign_limited(
        cell_features.reshape(rows * cols, -1), library_features, max_repeats, candidates, distances, method
    )
    seconds["matching"] = time.perf_counter() - started

    started = time.perf_counter()
    library_tiles = tiles if grey or tiles.ndim == 4 else tiles[..., None].repeat(3, -1)
    correction = float(spec["colour_correction"])
    cell_means = tile_means = None
    if correction > 0:
        cell_means = cell_pooled.mean(axis=(1, 2)) if spec["space"] == "rgb" else rgb_float(cells).mean(axis=(1, 2))
        tile_means = library_pooled["rgb"].mean(axis=(1, 2))
        if grey:
            cell_means, tile_means = cell_means[:, :1], tile_means[:, :1]
    placed = placed_tiles(library_tiles, assignment, spec["scale"], tile_means, cell_means, correction)
    mosaic = assemble(placed, rows, cols)
    seconds["assembly"] = time.perf_counter() - started

    started = time.perf_counter()
    scores = quality(mosaic, cropped)
    seconds["quality"] = time.perf_counter() - started
    uses = np.bincount(assignment, minlength=len(tiles))
    report = {
        "library": spec["library"],
        "library_tiles": int(len(tiles)),
        "tile": tile,
        "cells": [rows, cols],
        "mosaic_shape": list(mosaic.shape),
        "features": {"grid": spec["grid"], "space": spec["space"]},
        "matching_method": method,
        "max_repeats": max_repeats,
        "distinct_tiles": int(np.count_nonzero(uses)),
        "max_uses": int(uses.max()),
        **scores,
        "seconds": {phase: round(value, 4) for phase, value in seconds.items()},
    }
    return mosaic, report
