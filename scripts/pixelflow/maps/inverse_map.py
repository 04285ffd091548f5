"""The inverse pixel mapping of a reprojection: exact values on an error-checked coarse grid, interpolated.

For every output pixel the source pixel it comes from is found by the
projection's inverse: its closed form (float32, SIMD-fast) for a preset
projection of a geographic source, else PROJ (float64). Doing that exactly for
every pixel costs more than the resampling itself, so the exact inverse is
evaluated on a grid every ``grid_step`` pixels and interpolated bilinearly
(``cv2.resize``). Each cell's interpolation error is measured against the
exact inverse at the cell's centre and edge midpoints, where a bilinear
interpolant's error from the quadratic part of the map peaks.

A cell that misses half the threshold is computed row by row, as GDAL's
approximate transformer does (:func:`line_segments`): each pixel row of the
cell a straight line between exact ends, checked a quarter and three quarters
of the way along and halved where it misses, down to four pixels, which are
computed exactly. Along a row most projections bend gently, and
pseudocylindrical ones (Mollweide) not at all, so a row costs four exact
points where the grid fails near Mollweide's poles. Threshold 0 computes every
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
    then refined row by row by :func:`refine_cells`, in float64.

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
    values, counts = refine_cells(bad_cells, step, row0, col0, limit, period, exact_double)
    return TileGrid(nodes, bad_cells, values, counts)


def _check_step(step: int) -> None:
    if step % 2:
        raise ValueError(f"grid step {step} must be even")


def refine_cells(cells, step, row0, col0, limit, period, exact):
    """Pixels of coarse ``cells``, row by row (:func:`line_segments`): each pixel row of a cell is one segment at first.

    Parameters
    ----------
    cells : ndarray
        (n, 2) (row, column) indices of coarse cells, relative to the tile (:func:`tile_grid`).
    step : int
        The coarse grid step in pixels.
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
    first_y = row0 + cells[:, 0] * step - step // 2  # the first output row and column of each cell
    first_x = col0 + cells[:, 1] * step - step // 2
    cell, row = np.divmod(np.arange(len(cells) * step), step)  # one segment per pixel row of each cell
    y, x0 = first_y[cell] + row, first_x[cell]
    ends = np.stack(exact(y[:, None], x0[:, None] - 0.5 + np.array([0, step])), axis=-1)  # (m, 2, 2)
    values = straight_lines(ends, step)
    exact_pixels = line_segments(values, ends, y, x0, limit, period, exact)
    return values.reshape(len(cells), step, step, 2), exact_pixels.reshape(-1, step).sum(axis=1).astype(np.int32)


def straight_lines(ends: np.ndarray, length: int) -> np.ndarray:
    """Straight segments of ``length`` (even) pixels between ``ends`` (m, 2, 2), the values at their edges.

    Pixel j lies ``(j + 0.5) / length`` of the way from the left end to the
    right one: ``cv2.resize`` interpolates linearly (in float32) with the ends
    ``length`` pixels apart and offset by half of that. A segment with a NaN
    end gets finite values that mean nothing (NaN would leak into the next
    segment through resize's zero vertical weights); :func:`line_segments` replaces them.

    Returns
    -------
    ndarray
        (m, length, 2) float32, C-contiguous.
    """
    import cv2

    ends = cv2.patchNaNs(np.array(ends, np.float32), 0.0)
    resized = cv2.resize(ends, (2 * length, len(ends)), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(resized[:, length // 2 : length // 2 + length])


def line_segments(values, ends, y, x0, limit, period, exact):
    """Check the straight row segments in ``values`` and halve those that miss, until they do not.

    Row i of ``values`` holds one segment: ``values.shape[1]`` pixels of
    output row ``y[i]`` from column ``x0[i]``, filled with the straight line
    between the exact values ``ends[i]`` at its two edges (:func:`straight_lines`).
    The line is checked against the exact values a quarter and three quarters
    of the way along (a bent row misses at both, an S-shaped one at one of
    them). A segment that misses by more than ``limit``, or where one of the
    four points has no source, is halved at its exactly computed midpoint and
    each half checked the same way; a segment of four pixels or fewer (or of
    an odd length) has its pixels computed exactly. A segment without a source at
    any of its four points lies outside the projection's domain: its pixels
    keep none (NaN).

    Parameters
    ----------
    values : ndarray
        (m, length, 2) float32 source (column, row), corrected in place
        (where an end is NaN, the line's values are not read).
    ends : ndarray
        (m, 2, 2) exact source (column, row) at each segment's left and right edges.
    y, x0 : ndarray
        (m,) int: each segment's output row and first output column.
    limit : float
        Largest allowed miss in source pixels.
    period : int
        The source width on a wrapping map, else 0: columns then compare
        modulo the width, and a segment across the seam misses by about half of it.
    exact : callable
        ``exact(y, x)`` gives the true source (column, row) at output positions, NaN where there is none.

    Returns
    -------
    ndarray
        (m,) int64: pixels of each row of ``values`` computed exactly.
    """
    length = values.shape[1]
    index, start = np.arange(len(y)), np.zeros(len(y), np.int64)
    exact_pixels = np.zeros(len(y), np.int64)
    first_round = True
    while index.size:
        if length <= 4 or length % 2:
            columns = np.arange(length)
            truth = np.stack(exact(y[:, None], x0[:, None] + columns), axis=-1)
            values[index[:, None], start[:, None] + columns] = truth
            np.add.at(exact_pixels, index, length)
            break
        left, right = ends[:, 0], ends[:, 1]
        quarters = np.stack(exact(y[:, None], x0[:, None] - 0.5 + length * np.array([0.25, 0.75])), axis=-1)
        miss = np.zeros(index.shape)
        for point, share in enumerate((0.25, 0.75)):
            guess = left + (right - left) * share
            miss = np.maximum(miss, _difference(quarters[:, point, 0], guess[:, 0], period))
            miss = np.maximum(miss, np.abs(quarters[:, point, 1] - guess[:, 1]))
        outside = np.isnan(ends[..., 0]).all(axis=1) & np.isnan(quarters[..., 0]).all(axis=1)
        good = (miss <= limit) | outside  # a NaN miss is not good
        if first_round:  # the lines are in place; a segment outside the domain has no source
            values[index[outside]] = np.nan
        elif good.any():
            t = ((np.arange(length, dtype=np.float32) + 0.5) / length)[:, None]
            first = left[good].astype(np.float32)[:, None]
            line = first + (right[good].astype(np.float32)[:, None] - first) * t
            values[index[good, None], start[good, None] + np.arange(length)] = line
        first_round = False
        keep = ~good
        index, start, y, x0, ends = index[keep], start[keep], y[keep], x0[keep], ends[keep]
        length //= 2
        middle = np.stack(exact(y, x0 - 0.5 + length), axis=-1)  # (k, 2)
        index, y = np.repeat(index, 2), np.repeat(y, 2)
        start = np.stack([start, start + length], axis=1).reshape(-1)
        x0 = np.stack([x0, x0 + length], axis=1).reshape(-1)
        ends = np.stack([ends[:, 0], middle, middle, ends[:, 1]], axis=1).reshape(-1, 2, 2)
    return exact_pixels


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
