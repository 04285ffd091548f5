"""The inverse pixel mapping of a reprojection: exact values on an error-checked coarse grid, interpolated.

For every output pixel the source pixel it comes from is found by the
projection's closed-form inverse. Doing that exactly for every pixel costs
more than the resampling itself, so the exact inverse (in float32) is evaluated
on a grid every ``grid_step`` pixels and interpolated bilinearly
(``cv2.resize``). Each cell's interpolation error is measured against the
exact inverse at the cell's centre and edge midpoints, where a bilinear
interpolant's error from the quadratic part of the map peaks; a cell that
misses half the threshold gets a grid four times finer, and a fine cell that
still misses is computed exactly, pixel by pixel. Threshold 0 computes every
pixel exactly.

The output is worked on in tiles whose first row is a multiple of
``grid_step``: a tile's grid nodes and cells are then those of one grid over
the whole height, so :func:`tile_grid` gives the same values for a cell
whichever tile asks, and :mod:`pixelflow.maps.inverse_cache` can store that grid once.
"""

import math
from dataclasses import dataclass

import numpy as np

from pixelflow.maps import projections
from pixelflow.maps.georef import SourceGeometry

MAX_TILE = 16384  # pixels per tile side, below OpenCV remap's 32767
# A cell passes when the error measured at its midpoints is within this share
# of the threshold: the rest covers how the map's curvature varies inside the
# cell (steep near a pole or an orthographic limb), where the midpoints are not
# quite the worst points.
CHECK_MARGIN = 0.5


@dataclass(frozen=True)
class Mapping:
    """Where the pixels of a ``width`` x ``height`` output come from, and how exactly that is computed.

    Attributes
    ----------
    projection : dict
        The output projection's entry: ``kind`` and its parameters (degrees).
    transform : tuple of float
        The output's GDAL-style transform (:func:`pixelflow.maps.projections.geotransform`).
    width, height : int
        Output size in pixels.
    geometry : SourceGeometry
        The source map's grid.
    threshold : float
        Largest error of an interpolated source coordinate, in source pixels;
        0 computes every pixel exactly.
    grid_step : int
        Output pixels between coarse grid nodes; even.
    locate : callable or None
        None: the output's coordinates are turned into longitudes and
        latitudes by the projection's closed-form inverse
        (:func:`pixelflow.maps.projections.inverse`). Otherwise
        ``locate(x, y) -> (u, v)`` takes float64 output coordinates to the
        source's own (PROJ, :class:`pixelflow.maps.crs.Locator`), NaN where there is none.
    """

    projection: dict
    transform: tuple
    width: int
    height: int
    geometry: SourceGeometry
    threshold: float
    grid_step: int
    locate: object = None


@dataclass(frozen=True)
class TileGrid:
    """A tile's coarse grid: exact nodes, the cells that miss (tile-relative), their pixels and exact-pixel counts.

    Attributes
    ----------
    nodes : ndarray
        (rows, cols, 2) float32 source (column, row) at the nodes (:func:`grid_shape`).
    cells : ndarray
        (n, 2) integer (row, column) indices of the cells that miss the
        threshold, relative to the tile, in row-major order.
    values : ndarray
        (n, step, step, 2) float32 source (column, row) of every pixel of each such cell.
    exact : ndarray
        (n,) int32: pixels of each such cell computed exactly.
    """

    nodes: np.ndarray
    cells: np.ndarray
    values: np.ndarray
    exact: np.ndarray


def mapping_task(projection: dict, width: int, height: int, geometry: SourceGeometry, threshold=0.0, grid_step=8):
    """The :class:`Mapping` of a ``width`` x ``height`` output, its transform from the projection.

    Parameters
    ----------
    projection : dict
        The output projection's entry: ``kind`` and its parameters (degrees).
    width, height : int
        Output size in pixels.
    geometry : SourceGeometry
        The source map's grid.
    threshold : float
        Largest interpolation error in source pixels; 0 (the default) computes every pixel exactly.
    grid_step : int
        Output pixels between coarse grid nodes, even; default 8.

    Returns
    -------
    Mapping

    Raises
    ------
    ProjectionError
        If the projection's kind is unknown.
    """
    transform = projections.geotransform(projection, width, height)
    return Mapping(projection, transform, int(width), int(height), geometry, float(threshold), int(grid_step))


def column_ranges(width: int) -> list[tuple[int, int]]:
    """Column ranges ``(start, stop)`` of the tiles: the whole width, split every :data:`MAX_TILE` pixels."""
    tile_width = min(width, MAX_TILE)
    return [(c, min(c + tile_width, width)) for c in range(0, width, tile_width)]


def exact_coordinates(task: Mapping, rows, cols, dtype=np.float64):
    """Exact source (column, row) of output pixels, NaN where there is no source.

    Parameters
    ----------
    task : Mapping
        The output's mapping.
    rows, cols : array_like
        Output pixel positions, centres at integers (fractions lie between
        them); they broadcast together.
    dtype : numpy dtype
        ``np.float64`` (the default) or ``np.float32``, several times faster
        (SIMD) and good to about 0.001 pixel on maps up to 32767 pixels wide.

    Returns
    -------
    col, row : ndarray
        Fractional source pixel coordinates, centres at integers
        (:meth:`pixelflow.maps.georef.SourceGeometry.to_pixel`).
    """
    if task.locate is not None:
        x, y = projections.pixel_centres_to_xy(task.transform, cols, rows, np.float64)
        col, row = task.geometry.native_to_pixel(*task.locate(x, y))
        return col.astype(dtype, copy=False), row.astype(dtype, copy=False)
    x, y = projections.pixel_centres_to_xy(task.transform, cols, rows, dtype)
    lon, lat = projections.inverse(task.projection, x, y)
    return task.geometry.to_pixel(lon, lat)


def _difference(a, b, period):
    difference = np.abs(a - b)
    if period:
        difference = np.minimum(difference, period - difference)
    return difference


def cell_errors(nodes: np.ndarray, mid_y, mid_x, node_y, node_x, exact, period) -> np.ndarray:
    """Largest miss of bilinear interpolation between ``nodes`` at each cell's centre and edge midpoints.

    Columns compare modulo ``period`` on a wrapping map; a cell straddling the
    wrap seam has nodes a width apart, so its linear guess misses by ~width/2.
    NaN (no source) counts as an infinite miss, except in a cell where all
    nine points are NaN: that cell lies outside the projection's domain (its
    interpolated values are NaN too), as no convex domain edge can bulge into a
    cell between all of them by a visible amount.

    Parameters
    ----------
    nodes : ndarray
        (..., rows, cols, 2) source (column, row) at the nodes.
    mid_y, mid_x : ndarray
        Output positions midway between node rows and node columns,
        broadcasting to (..., rows - 1, 1) and (..., 1, cols - 1).
    node_y, node_x : ndarray
        Output positions of the nodes, broadcasting to (..., rows, 1) and (..., 1, cols).
    exact : callable
        ``exact(y, x)`` gives the true source (column, row) at output positions.
    period : int
        The source width on a wrapping map, else 0.

    Returns
    -------
    ndarray
        (..., rows - 1, cols - 1): each cell's largest miss in source pixels,
        in column or row; 0 in a cell outside the domain, inf where a point lacks a source.
    """
    checks = (
        (
            mid_y,
            mid_x,
            (nodes[..., :-1, :-1, :] + nodes[..., 1:, :-1, :] + nodes[..., :-1, 1:, :] + nodes[..., 1:, 1:, :]) / 4,
        ),
        (mid_y, node_x, (nodes[..., :-1, :, :] + nodes[..., 1:, :, :]) / 2),
        (node_y, mid_x, (nodes[..., :, :-1, :] + nodes[..., :, 1:, :]) / 2),
    )
    missing = np.isnan(nodes[..., 0])
    empty = missing[..., :-1, :-1] & missing[..., 1:, :-1] & missing[..., :-1, 1:] & missing[..., 1:, 1:]
    error = None
    for kind, (points_y, points_x, guess) in enumerate(checks):
        truth_x, truth_y = exact(points_y, points_x)
        miss = np.maximum(_difference(truth_x, guess[..., 0], period), np.abs(truth_y - guess[..., 1]))
        absent = np.isnan(truth_x)
        miss = np.where(np.isnan(miss), np.inf, miss)
        if kind == 1:  # vertical edges: each belongs to the cells left and right
            miss = np.maximum(miss[..., :-1], miss[..., 1:])
            absent = absent[..., :-1] & absent[..., 1:]
        elif kind == 2:  # horizontal edges: the cells above and below
            miss = np.maximum(miss[..., :-1, :], miss[..., 1:, :])
            absent = absent[..., :-1, :] & absent[..., 1:, :]
        error = miss if error is None else np.maximum(error, miss)
        empty &= absent
    return np.where(empty, 0.0, error)


def grid_shape(rows: int, cols: int, step: int) -> tuple[int, int]:
    """``(node rows, node columns)`` of the coarse grid of a ``rows`` x ``cols`` tile, one beyond each edge.

    See :func:`tile_grid` for where the nodes lie.
    """
    return math.floor((rows - 0.5) / step + 0.5) + 2, math.floor((cols - 0.5) / step + 0.5) + 2


def tile_grid(task: Mapping, row0: int, row1: int, col0: int, col1: int) -> TileGrid:
    """The coarse grid of a tile: exact nodes, then the cells that miss the threshold, refined.

    Node j sits at pixel (j - 1) * step + (step - 1) / 2 from the tile's
    corner, so that ``cv2.resize`` by ``step`` interpolates linearly between
    nodes, offset by ``step`` pixels; cell (i, j) lies between nodes i, i + 1
    and j, j + 1. The nodes are computed in float32. A cell misses when its
    error (:func:`cell_errors`) is over ``threshold * CHECK_MARGIN``; it is
    then refined by :func:`refine_cells` in float64, on a grid every
    ``step // 4`` pixels, or every pixel when ``step`` is not a multiple of 4.

    Parameters
    ----------
    task : Mapping
        The output's mapping.
    row0, row1, col0, col1 : int
        The tile: output rows ``row0:row1`` and columns ``col0:col1``. With
        ``row0`` a multiple of the grid step, a cell gets the same values
        whichever tile asks.

    Returns
    -------
    TileGrid

    Raises
    ------
    ValueError
        If the grid step is odd.
    """
    step = task.grid_step
    _check_step(step)

    def exact(y, x):
        return exact_coordinates(task, y, x, np.float32)

    def exact_double(y, x):  # where cells are refined the map is steep, and float32 too coarse near a pole
        return exact_coordinates(task, y, x, np.float64)

    limit = task.threshold * CHECK_MARGIN
    period = task.geometry.width if task.geometry.wraps else 0
    ny, nx = grid_shape(row1 - row0, col1 - col0, step)
    node_y = (row0 + (np.arange(ny) - 1) * step + (step - 1) / 2)[:, None]
    node_x = (col0 + (np.arange(nx) - 1) * step + (step - 1) / 2)[None, :]
    nodes = np.stack(exact(node_y, node_x), axis=-1)
    error = cell_errors(nodes, node_y[:-1] + step / 2, node_x[:, :-1] + step / 2, node_y, node_x, exact, period)
    bad_cells = np.argwhere(error > limit)
    if len(bad_cells) == 0:
        return TileGrid(nodes, bad_cells, np.empty((0, step, step, 2), np.float32), np.empty(0, np.int32))
    fine = step // 4 if step % 4 == 0 else 1
    values, counts = refine_cells(task, bad_cells, step, fine, row0, col0, limit, period, exact_double)
    return TileGrid(nodes, bad_cells, values, counts)


def _check_step(step: int) -> None:
    if step % 2:
        raise ValueError(f"grid step {step} must be even")


def refine_cells(task, cells, step, fine, row0, col0, limit, period, exact):
    """Pixels of coarse ``cells`` by a grid every ``fine`` pixels inside each, exact where that misses.

    Parameters
    ----------
    task : Mapping
        The output's mapping (not read: ``exact`` gives the coordinates).
    cells : ndarray
        (n, 2) (row, column) indices of coarse cells, relative to the tile (:func:`tile_grid`).
    step : int
        The coarse grid step in pixels.
    fine : int
        The fine grid step in pixels; it divides ``step``.
    row0, col0 : int
        The tile's first output row and column.
    limit : float
        Largest allowed miss in source pixels (:func:`cell_errors`).
    period : int
        The source width on a wrapping map, else 0.
    exact : callable
        ``exact(y, x)`` gives the true source (column, row) at output positions.

    Returns
    -------
    values : ndarray
        (n, step, step, 2) float32 source (column, row) of every pixel of each
        cell (some may fall outside the tile).
    counts : ndarray
        (n,) int32: pixels of each cell computed exactly.
    """
    count = step // fine
    first_y = cells[:, 0] * step - step // 2  # the first pixel row of each cell, tile-relative
    first_x = cells[:, 1] * step - step // 2
    offsets = -0.5 + fine * np.arange(count + 1)
    node_y = (row0 + first_y[:, None] + offsets)[:, :, None]  # (n, count + 1, 1)
    node_x = (col0 + first_x[:, None] + offsets)[:, None, :]  # (n, 1, count + 1)
    nodes = np.stack(exact(node_y, node_x), axis=-1).astype(np.float32)  # (n, count + 1, count + 1, 2)
    error = cell_errors(nodes, node_y[:, :-1] + fine / 2, node_x[:, :, :-1] + fine / 2, node_y, node_x, exact, period)
    # Bilinear weights of the pixels inside a cell: pixel p lies in sub-cell p // fine.
    pixel = np.arange(step)
    sub = pixel // fine
    t = ((pixel - sub * fine + 0.5) / fine).astype(np.float32)[:, None]
    across = nodes[:, :, sub] * (1 - t) + nodes[:, :, sub + 1] * t  # (n, count + 1, step, 2)
    values = across[:, sub] * (1 - t[:, :, None]) + across[:, sub + 1] * t[:, :, None]  # (n, step, step, 2)
    bad = (error > limit)[:, sub][:, :, sub]  # (n, step, step)
    cell, py, px = np.nonzero(bad)
    if cell.size:
        values[cell, py, px] = np.stack(exact(row0 + first_y[cell] + py, col0 + first_x[cell] + px), axis=-1)
    return values, np.bincount(cell, minlength=len(cells)).astype(np.int32)


def interpolated_coordinates(task: Mapping, row0: int, row1: int, col0: int, col1: int, grid: TileGrid | None = None):
    """Source coordinates of a tile as a float32 (rows, cols, 2) map, NaN where there is no source.

    With a threshold of 0 or less every pixel is computed exactly (in float32)
    and ``grid`` is not used; otherwise the coarse grid is interpolated
    bilinearly and the refined cells' pixels put in place.

    Parameters
    ----------
    task : Mapping
        The output's mapping.
    row0, row1, col0, col1 : int
        The tile: output rows ``row0:row1`` and columns ``col0:col1``.
    grid : TileGrid, optional
        The tile's coarse grid (from the cache: the same values
        :func:`tile_grid` computes); computed here when None.

    Returns
    -------
    coords : ndarray
        (row1 - row0, col1 - col0, 2) float32 source (column, row), pixel centres at integers.
    exact : int
        The number of pixels computed exactly (those of refined cells may
        include some outside the tile).

    Raises
    ------
    ValueError
        If the grid step is odd.
    """
    import cv2

    height, width = row1 - row0, col1 - col0
    step = task.grid_step
    _check_step(step)
    if task.threshold <= 0 or step <= 1:
        rows, cols = np.mgrid[row0:row1, col0:col1]
        mx, my = exact_coordinates(task, rows, cols, np.float32)
        return np.dstack([mx, my]).astype(np.float32), height * width
    if grid is None:
        grid = tile_grid(task, row0, row1, col0, col1)
    ny, nx = grid.nodes.shape[:2]
    resized = cv2.resize(np.asarray(grid.nodes), (nx * step, ny * step), interpolation=cv2.INTER_LINEAR)
    coords = resized[step : step + height, step : step + width]
    if len(grid.cells) == 0:
        return coords, 0
    # Cell (i, j) covers resized[i * step + step // 2 :][:step, j * step + step // 2 :][:, :step].
    half = step // 2
    blocks = resized[half : half + (ny - 1) * step, half : half + (nx - 1) * step]
    blocks = blocks.reshape(ny - 1, step, nx - 1, step, 2)
    blocks[grid.cells[:, 0], :, grid.cells[:, 1], :] = grid.values
    return coords, int(grid.exact.sum())
