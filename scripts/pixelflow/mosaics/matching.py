"""Exact nearest library tiles for target cells, and their assignment under reuse limits.

Distances are Euclidean between feature vectors (in CIELAB that is the CIE76
colour difference). :func:`nearest` finds the ``k`` nearest library vectors of
each query, either from BLAS distance blocks or with a k-d tree; both are
exact and order equal distances by library index.

:func:`assign_cells` gives every cell of a rows x cols grid a tile with no
tile used more than ``max_repeats`` times and, optionally, no tile repeated
within ``min_spacing`` cells. ``optimal`` minimises the total distance
exactly (a min-cost matching over each cell's nearest tiles, proven optimal
for the whole library by tile prices, with more tiles offered where the proof
fails); ``greedy`` is the best-distance-first greedy. :func:`assignment_problem`
tells beforehand when the limits cannot be met.
"""

import heapq
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching
from scipy.spatial import cKDTree

# Chosen by `benchmarks/mosaics.py matching` on the development machine: the
# k-d tree wins up to 12 dimensions (mean colour, 2x2 grid), BLAS blocks above.
KDTREE_MAX_DIMENSIONS = 12
TIE_EXTRA = 8  # extra k-d tree neighbours fetched so that equal distances are ordered by index
BLOCK_ROWS = 256  # query rows per distance block (a 256 x 25,000 float32 block is 25 MB)
PAIR_CHUNK = 1 << 16  # pairs per chunk of pair_distances (65,536 x 192 float64 values: 100 MB)
LONG_LIST = 256  # longer lists of nearest tiles come from float64 distance blocks (_nearest_float64)


def choose_method(dimensions: int) -> str:
    """The search method for ``dimensions``-long features: "kdtree" up to KDTREE_MAX_DIMENSIONS, else "blas"."""
    return "kdtree" if dimensions <= KDTREE_MAX_DIMENSIONS else "blas"


@dataclass(frozen=True)
class Index:
    """A library prepared for repeated searches (built once per process).

    Attributes
    ----------
    library : ndarray
        (n, d) float64, contiguous.
    method : str
        ``kdtree`` or ``blas``.
    tree : scipy.spatial.cKDTree or None
        The tree, for ``kdtree``.
    centre : ndarray or None
        For ``blas``: (d,) float64 library mean.
    centred64, centred32 : ndarray or None
        For ``blas``: (n, d) library minus ``centre``, float64 and float32.
    norms : ndarray or None
        For ``blas``: (n,) float32 squared norms of the ``centred32`` rows.
    """

    library: np.ndarray
    method: str
    tree: object = None
    centre: np.ndarray | None = None
    centred64: np.ndarray | None = None
    centred32: np.ndarray | None = None
    norms: np.ndarray | None = None


def build_index(library: np.ndarray, method: str = "auto") -> Index:
    """Prepare ``library`` (n, d) for :func:`nearest` with ``method`` ("auto", "blas" or "kdtree").

    "auto" picks by the number of dimensions (:func:`choose_method`).

    Returns
    -------
    Index

    Raises
    ------
    ValueError
        For an empty library or an unknown method.
    """
    library64 = np.ascontiguousarray(library, np.float64)
    if len(library64) == 0:
        raise ValueError("the library is empty")
    if method == "auto":
        method = choose_method(library64.shape[1])
    if method == "kdtree":
        return Index(library64, method, tree=cKDTree(library64))
    if method != "blas":
        raise ValueError(f"unknown method {method!r}; use 'auto', 'blas' or 'kdtree'")
    centre = library64.mean(axis=0)
    centred64 = library64 - centre
    centred32 = centred64.astype(np.float32)
    norms = np.einsum("nd,nd->n", centred32, centred32)
    return Index(library64, method, centre=centre, centred64=centred64, centred32=centred32, norms=norms)


def exact_distances(queries: np.ndarray, library: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Euclidean distances (float64) from each query row to its candidate library rows.

    Parameters
    ----------
    queries : ndarray
        (q, d).
    library : ndarray
        (n, d).
    candidates : ndarray
        (q, k) int: library rows per query.

    Returns
    -------
    ndarray
        (q, k) float64.
    """
    differences = library[candidates].astype(np.float64) - queries[:, None, :].astype(np.float64)
    return np.sqrt(np.einsum("nkd,nkd->nk", differences, differences))


def pair_distances(queries: np.ndarray, library: np.ndarray, rows: np.ndarray, tiles: np.ndarray) -> np.ndarray:
    """(m,) float64 distances of ``queries[rows[i]]`` to ``library[tiles[i]]``, as :func:`exact_distances`.

    Computed in chunks of ``PAIR_CHUNK`` pairs, so millions of pairs need no
    more than a few hundred MB.
    """
    out = np.empty(len(rows))
    for start in range(0, len(rows), PAIR_CHUNK):
        part = slice(start, start + PAIR_CHUNK)
        out[part] = exact_distances(queries[rows[part]], library, tiles[part, None])[:, 0]
    return out


def _nearest_blas(index: Index, queries: np.ndarray, k: int, block_rows: int = BLOCK_ROWS):
    """k nearest from float32 GEMM blocks of ``|l|^2 - 2 q.l``, made exact.

    Every library row whose float32 score is within the rounding bound of the
    k-th best score is rechecked in float64.
    """
    if k > LONG_LIST:
        return _nearest_float64(index, queries, k)
    indices = np.empty((len(queries), k), np.int64)
    distances = np.empty((len(queries), k), np.float64)
    scores = np.empty((min(block_rows, len(queries)), len(index.library)), np.float32)
    for start in range(0, len(queries), block_rows):
        block64 = np.asarray(queries[start : start + block_rows], np.float64) - index.centre
        out = scores[: len(block64)]
        np.matmul(block64.astype(np.float32), index.centred32.T, out=out)
        out *= -2.0
        out += index.norms
        kth = out.min(axis=1) if k == 1 else np.partition(out, k - 1, axis=1)[:, k - 1]
        bound = _rounding_bound(index, np.einsum("nd,nd->n", block64, block64))
        rows, cols = np.nonzero(out <= (kth + 2 * bound)[:, None])  # both scores may be off by the bound
        exact = np.sqrt(((index.centred64[cols] - block64[rows]) ** 2).sum(axis=1))
        order = np.lexsort((cols, exact, rows))
        rows, cols, exact = rows[order], cols[order], exact[order]
        take = np.searchsorted(rows, np.arange(len(block64)))[:, None] + np.arange(k)[None, :]
        indices[start : start + len(block64)] = cols[take]
        distances[start : start + len(block64)] = exact[take]
    return indices, distances


def _nearest_float64(index: Index, queries: np.ndarray, k: int, block_rows: int = 64):
    """k nearest from float64 GEMM blocks of the centred vectors, for long lists.

    Rechecking every float32 candidate of a long list costs a gather of k
    vectors per query; one float64 distance block per 64 queries costs less
    (measured 4x faster: 1.7 s against 7.5 s for 512 1,000-long lists of 100,000 tiles). Distances are
    within about 1e-10 of the differences' (the assignment's certificate
    allows 1e-9); equal distances go to the lower index.
    """
    norms = np.einsum("nd,nd->n", index.centred64, index.centred64)
    indices = np.empty((len(queries), k), np.int64)
    distances = np.empty((len(queries), k), np.float64)
    for start in range(0, len(queries), block_rows):
        block = np.asarray(queries[start : start + block_rows], np.float64) - index.centre
        squared = block @ index.centred64.T
        squared *= -2.0
        squared += norms
        squared += np.einsum("nd,nd->n", block, block)[:, None]
        np.maximum(squared, 0.0, out=squared)
        part = np.argpartition(squared, k - 1, axis=1)[:, :k] if k < squared.shape[1] else None
        if part is None:
            part = np.broadcast_to(np.arange(squared.shape[1]), squared.shape)
        values = np.take_along_axis(squared, part, 1)
        order = np.lexsort((part, values), axis=-1)
        indices[start : start + len(block)] = np.take_along_axis(part, order, 1)
        distances[start : start + len(block)] = np.sqrt(np.take_along_axis(values, order, 1))
    return indices, distances


def _nearest_kdtree(index: Index, queries: np.ndarray, k: int):
    """k nearest with scipy's cKDTree; a few more are fetched so that equal distances go to the lower index."""
    queries = np.asarray(queries, np.float64)
    wanted = min(k + TIE_EXTRA, len(index.library))
    _, indices = index.tree.query(queries, k=wanted)
    indices = np.asarray(indices, np.int64).reshape(len(queries), wanted)
    distances = exact_distances(queries, index.library, indices)
    order = np.lexsort((indices, distances), axis=-1)[:, :k]
    return np.take_along_axis(indices, order, 1), np.take_along_axis(distances, order, 1)


def nearest(queries: np.ndarray, library, k: int = 1, method: str = "auto"):
    """(indices, distances), each (q, k), of the ``k`` nearest library rows of every query, nearest first.

    ``library`` is an (n, d) array or an :class:`Index` built from one
    (``method`` is then taken from the index).

    Parameters
    ----------
    queries : ndarray
        (q, d) feature vectors.
    library : ndarray or Index
        (n, d) library vectors, or an index of them.
    k : int
        Neighbours per query; at most n are returned.
    method : str
        ``auto``, ``blas`` or ``kdtree``, for an array ``library``.

    Returns
    -------
    indices : ndarray
        (q, k) int64 library rows, equal distances in index order.
    distances : ndarray
        (q, k) float64 Euclidean distances, computed exactly in float64.

    Raises
    ------
    ValueError
        As :func:`build_index`, for an array ``library``.
    """
    index = library if isinstance(library, Index) else build_index(library, method)
    k = min(k, len(index.library))
    if index.method == "blas":
        return _nearest_blas(index, queries, k)
    return _nearest_kdtree(index, queries, k)


def tiles_needed(cells: int, max_repeats: int | None) -> int:
    """Fewest library tiles that can fill ``cells`` cells when each is used at most ``max_repeats`` times (None: 1)."""
    return 1 if max_repeats is None else math.ceil(cells / max_repeats)


def spacing_capacity(rows: int, cols: int, min_spacing: int) -> int:
    """Most cells of a ``rows`` x ``cols`` grid one tile can fill with its uses more than ``min_spacing`` apart.

    Two uses closer than ``min_spacing + 1`` in both row and column are too
    close (Chebyshev distance), so a tile fits once per
    ``(min_spacing + 1)``-square block: ``ceil(rows / s) * ceil(cols / s)``
    with ``s = min_spacing + 1``.
    """
    step = min_spacing + 1
    return math.ceil(rows / step) * math.ceil(cols / step)


def uses_allowed(rows: int, cols: int, max_repeats: int | None, min_spacing: int) -> int | None:
    """Uses of one tile at most under ``max_repeats`` and ``min_spacing`` together; None when neither limits it."""
    limits = [] if max_repeats is None else [max_repeats]
    if min_spacing > 0:
        limits.append(spacing_capacity(rows, cols, min_spacing))
    return min(limits) if limits else None


def assignment_problem(
    rows: int, cols: int, library_size: int, max_repeats: int | None, min_spacing: int = 0
) -> tuple[str, str] | None:
    """Why a library cannot fill a ``rows`` x ``cols`` grid under the reuse limits, or None when it can be tried.

    The checks are necessary conditions: enough tile uses for the cells at
    ``max_repeats``; with ``min_spacing`` d, the cells of a (d+1)-square block
    are all within reach of one another, so they need distinct tiles, and a
    tile fits at most :func:`spacing_capacity` times.

    Parameters
    ----------
    rows, cols : int
        Cells down and across.
    library_size : int
        Tiles in the library.
    max_repeats : int or None
        Uses of one tile at most; None: no limit.
    min_spacing : int
        Least Chebyshev distance, in cells, between two uses of a tile is
        ``min_spacing + 1``; 0: no rule.

    Returns
    -------
    tuple of str or None
        ``(key, message)``: key is ``max_repeats`` or ``min_spacing`` (or
        ``library`` for an empty library), the message states the numbers.
    """
    cells = rows * cols
    if library_size < 1:
        return "library", "the library has no tiles"
    if max_repeats is not None and library_size * max_repeats < cells:
        return "max_repeats", (
            f"the target's {rows}x{cols} = {cells} cells need at least {tiles_needed(cells, max_repeats)} tiles "
            f"at max_repeats={max_repeats}, the library has {library_size}; raise max_repeats to "
            f"{math.ceil(cells / library_size)} or use a larger library"
        )
    if min_spacing > 0:
        height, width = min(rows, min_spacing + 1), min(cols, min_spacing + 1)
        if library_size < height * width:
            return "min_spacing", (
                f"min_spacing {min_spacing} puts {height}x{width} = {height * width} cells within each tile's reach "
                f"of one another, so every {height * width} neighbouring cells need distinct tiles; "
                f"the library has {library_size}"
            )
        reach = spacing_capacity(rows, cols, min_spacing)
        uses = uses_allowed(rows, cols, max_repeats, min_spacing)
        if library_size * uses < cells:
            return "min_spacing", (
                f"min_spacing {min_spacing} lets one tile appear at most {reach} times in the {rows}x{cols} grid "
                f"(once per {min_spacing + 1}x{min_spacing + 1} block), so its {cells} cells need at least "
                f"{math.ceil(cells / uses)} tiles; the library has {library_size}"
            )
    return None


def candidate_count(
    cells: int, library_size: int, max_repeats: int | None, min_spacing: int = 0, assignment: str = "greedy"
) -> int:
    """How many nearest tiles to find per cell up front (more are fetched for the cells that need them).

    0 when none are needed: an optimal assignment without spacing whose dense
    problem is small enough (``DENSE_ENTRIES``) is solved over every tile.
    """
    if max_repeats is None and min_spacing == 0:
        return 1
    if assignment == "optimal" and min_spacing == 0 and _dense_fits(cells, library_size, max_repeats, DENSE_ENTRIES):
        return 0
    count = 64
    if max_repeats is not None:
        count += 2 * math.ceil(cells / (library_size * max_repeats))
    if min_spacing > 0:
        count += (2 * min_spacing + 1) ** 2 - 1
    return min(library_size, count)


# cells x tile copies up to which every cell lists every tile (exact without a certificate): measured faster
# than lists with the certificate up to here (1,024 cells x 5,000 tiles: 0.25 s against 1.9 s)
DENSE_ENTRIES = 20_000_000
DENSE_SOLVE_ENTRIES = 20_000_000  # cells x tile copies up to which lists covering 1/8 of the pairs turn dense
GROWTH = 4  # a cell that fails the optimality certificate gets a list this many times longer
FLOAT32_MARGIN = 1e-6  # relative allowance for float32 roundings when screening whole distance rows
SCAN_BUDGET = 6  # price scans stop after checking this many times as many cells as the grid has
SCAN_OFFERS = 64  # tiles of least cost + price offered per round to a cell that fails the certificate
SPACING_ROUNDS = 8  # re-solves that forbid conflicting repeats before the greedy repair
COST_UNITS = 2**40  # integer cost steps of the min-cost flow solver (largest pair cost = COST_UNITS)
TOLERANCE = 1e-9  # relative rounding allowance of the optimality certificate


def assign_cells(
    features,
    library,
    *,
    rows: int,
    cols: int,
    max_repeats: int | None = None,
    min_spacing: int = 0,
    assignment: str = "optimal",
    candidates=None,
    distances=None,
    method: str = "auto",
) -> np.ndarray:
    """Tile index per cell of a ``rows`` x ``cols`` grid under a reuse limit and a minimum spacing of repeats.

    The cost of giving tile t to cell c is the Euclidean distance of their
    features (float64, as :func:`nearest` computes it).

    ``assignment="optimal"`` minimises the sum of the costs with no tile used
    more than ``max_repeats`` times, exactly (up to a relative rounding
    allowance of ``TOLERANCE``). Small problems are solved over every tile
    (scipy's ``linear_sum_assignment``). Larger ones are solved over each
    cell's nearest tiles as a min-cost flow (OR-Tools); when those lists admit
    no full assignment, each cell a maximum matching leaves open is given its
    nearest tile with uses left. Least tile prices p >= 0 are then found from
    the solution (p is 0 for tiles with uses left and every cell's tile
    minimises cost + price over its pairs). A cell whose own cost + price is
    at most the distance of its first unlisted tile cannot do better; the
    others are checked against every tile of the library, and those that could
    lower their cost + price are offered up to ``SCAN_OFFERS`` such tiles and
    the problem is solved again. When no cell can, the prices prove the
    assignment optimal for the whole library.

    ``assignment="greedy"`` is the best-distance-first greedy: of all
    (cell, tile) pairs, taken in order of (distance, cell, tile), a pair is
    used when its cell is still open, its tile has uses left and no cell
    within ``min_spacing`` (Chebyshev) already holds the tile (should it get
    stuck under spacing, the class layout described below is used).

    ``min_spacing`` d > 0 forbids a tile on two cells with ``|dr| <= d`` and
    ``|dc| <= d``. Optimal assignment under spacing is NP-hard in general, so
    ``optimal`` then solves with the reuse limit tightened to
    :func:`uses_allowed`, and for up to ``SPACING_ROUNDS`` rounds forbids each
    too-close repeat at the cell where it costs more and solves again; cells
    still too close are repaired greedily: cells keep their tiles in order of
    cost, and each cell that cannot gets its nearest tile with uses left and
    no use within reach. The greedy's answer is kept instead when it costs
    less. When both get stuck (tight limits), a layout that keeps the rule by
    construction is used: cells with equal (row, col) modulo
    ``min_spacing + 1`` may share tiles freely, so every tile is given to one
    such class. The result respects both rules or an error is raised.

    Deterministic: the same inputs give the same assignment; equal-cost
    optima are settled by the solvers' fixed order, not by chance.

    Parameters
    ----------
    features : ndarray
        (rows * cols, d) or (rows, cols, d) features of the cells, row-major.
    library : ndarray
        (n, d) library features (an array, not an :class:`Index`).
    rows, cols : int
        Cells down and across.
    max_repeats : int or None
        Uses of one tile at most; None: unlimited.
    min_spacing : int
        No tile again within this many cells (Chebyshev); 0: no rule.
    assignment : str
        ``optimal`` or ``greedy``.
    candidates, distances : ndarray, optional
        (rows * cols, k) from :func:`nearest` for these ``features`` and
        ``library`` (nearest first); searched here when ``candidates`` is None,
        and extended here when a cell needs more.
    method : str
        The search method (:func:`build_index`).

    Returns
    -------
    ndarray
        (rows * cols,) int64 library row per cell.

    Raises
    ------
    ValueError
        For bad arguments; when :func:`assignment_problem` finds the limits
        impossible (with its message); when no tile is left for a cell under
        the spacing rule, naming the cell and how many tiles had uses left.
    """
    chosen, _ = solve_assignment(
        features,
        library,
        rows=rows,
        cols=cols,
        max_repeats=max_repeats,
        min_spacing=min_spacing,
        assignment=assignment,
        candidates=candidates,
        distances=distances,
        method=method,
    )
    return chosen


def solve_assignment(
    features,
    library,
    *,
    rows: int,
    cols: int,
    max_repeats: int | None = None,
    min_spacing: int = 0,
    assignment: str = "optimal",
    candidates=None,
    distances=None,
    method: str = "auto",
) -> tuple[np.ndarray, dict]:
    """:func:`assign_cells` (same arguments), also returning what the solver did.

    Returns
    -------
    chosen : ndarray
        (rows * cols,) int64 library row per cell.
    info : dict
        ``solver`` (``nearest``, ``dense``, ``optimal``, ``greedy`` or
        ``classes``), ``proven`` (True when the result is proven to have the
        least total: always for ``nearest`` and ``dense``, for ``optimal``
        when the tile prices proved it within ``SCAN_BUDGET``; False for
        greedy and under ``min_spacing``), and counts of the rounds, pairs
        and repairs it took.
    """
    if not (isinstance(rows, int | np.integer) and isinstance(cols, int | np.integer) and rows > 0 and cols > 0):
        raise ValueError(f"rows and cols must be positive integers, not {rows!r} and {cols!r}")
    if max_repeats is not None and max_repeats < 1:
        raise ValueError(f"max_repeats must be at least 1 or None, not {max_repeats!r}")
    if min_spacing < 0:
        raise ValueError(f"min_spacing must be 0 or more, not {min_spacing!r}")
    if assignment not in ("optimal", "greedy"):
        raise ValueError(f"unknown assignment {assignment!r}; use 'optimal' or 'greedy'")
    cells = rows * cols
    features = np.asarray(features)
    if features.size and features.reshape(-1, features.shape[-1]).shape[0] != cells:
        raise ValueError(f"{features.shape[:-1]} cell features for a {rows}x{cols} grid")
    features = features.reshape(cells, -1)
    library = np.asarray(library)
    problem = assignment_problem(rows, cols, len(library), max_repeats, min_spacing)
    if problem is not None:
        raise ValueError(problem[1])
    grid = _Grid(rows, cols, min_spacing)
    lists = _Lists(features, library, candidates, distances, method)
    if max_repeats is None and min_spacing == 0:
        return lists.first(1)[:, 0].copy(), {"solver": "nearest", "proven": True}
    if assignment == "greedy":
        if candidates is None:
            lists.fetch_all(candidate_count(cells, len(library), max_repeats, min_spacing))
        try:
            return _greedy(lists, max_repeats, grid), {"solver": "greedy", "proven": False}
        except ValueError as error:
            return _class_layout(lists, max_repeats, grid, error), {"solver": "classes", "proven": False}
    uses = uses_allowed(rows, cols, max_repeats, min_spacing)
    if max_repeats is None and not _dense_fits(cells, len(library), uses, DENSE_SOLVE_ENTRIES):
        uses = None  # the many copies of a tile that spacing alone allows are only worth it for a dense problem
    chosen, info = _optimal(lists, uses, cells, len(library), max_repeats, min_spacing)
    if min_spacing == 0:
        return chosen, info
    # Spacing makes the optimum a heuristic: keep the greedy's answer when it costs less.
    if (lists.length == 0).any():
        lists.fetch_all(candidate_count(cells, len(library), max_repeats, min_spacing))
    options, failure = [], None
    try:
        options.append((_spread(lists, chosen, uses, grid, info), info["solver"]))
    except ValueError as error:
        failure = error
    try:
        options.append((_greedy(lists, max_repeats, grid), "greedy"))
    except ValueError as error:
        failure = failure or error
    if not options:
        options.append((_class_layout(lists, max_repeats, grid, failure), "classes"))
    totals = [_total(lists, option) for option, _ in options]
    chosen, info["solver"] = options[int(np.argmin(totals))]
    info["proven"] = False  # spacing makes the optimum a heuristic
    _check(chosen, max_repeats, grid)
    return chosen, info


def _total(lists, chosen: np.ndarray) -> float:
    """Sum of the cell-to-tile distances of an assignment."""
    return float(exact_distances(lists.features, lists.library, chosen[:, None]).sum())


class _Grid:
    """Cell positions on the grid and the spacing rule between uses of one tile."""

    def __init__(self, rows: int, cols: int, spacing: int):
        self.rows, self.cols, self.spacing = rows, cols, spacing

    def conflicts(self, chosen: np.ndarray) -> np.ndarray:
        """(p, 2) cell pairs (first < second) holding the same tile within ``spacing`` of each other."""
        tiles = chosen.reshape(self.rows, self.cols)
        ids = np.arange(self.rows * self.cols).reshape(self.rows, self.cols)
        found = [np.empty((0, 2), np.int64)]
        reach = self.spacing
        for dr in range(reach + 1):
            for dc in range(-reach, reach + 1):
                if (dr == 0 and dc <= 0) or dr >= self.rows or abs(dc) >= self.cols:
                    continue
                c0, c1 = max(0, -dc), self.cols - max(0, dc)
                first, second = tiles[: self.rows - dr, c0:c1], tiles[dr:, c0 + dc : c1 + dc]
                same = (first == second) & (first >= 0)
                found.append(np.stack([ids[: self.rows - dr, c0:c1][same], ids[dr:, c0 + dc : c1 + dc][same]], 1))
        pairs = np.concatenate(found)
        return np.minimum(pairs, pairs[:, ::-1]) if len(pairs) else pairs

    def blocked(self, tiles2d: np.ndarray, cell: int, tile: int) -> bool:
        """Whether ``tile`` is on a cell within reach of ``cell`` in the (rows, cols) grid ``tiles2d`` (-1: empty)."""
        row, col = divmod(cell, self.cols)
        reach = self.spacing
        window = tiles2d[max(0, row - reach) : row + reach + 1, max(0, col - reach) : col + reach + 1]
        return bool((window == tile).any())


class _Lists:
    """Each cell's nearest tiles, nearest first, grown on demand, plus extra (cell, tile) pairs.

    A cell's list is a prefix of one nearest-tile search (the caller's or one
    made here); ``bound`` is a lower bound on the distance of any tile not in it.
    """

    def __init__(self, features, library, candidates, distances, method):
        self.features, self.library, self.method = features, library, method
        self.size = len(library)
        self._index = None
        self.sources = []  # (tiles, costs) arrays of nearest searches
        cells = len(features)
        self.source = np.full(cells, -1, np.int64)  # which search each list is a prefix of; -1: none yet
        self.row = np.arange(cells)
        self.length = np.zeros(cells, np.int64)
        self.extra = np.empty(0, np.int64)  # keys cell * size + tile
        self.extra_costs = np.empty(0)
        if candidates is not None:
            tiles = np.asarray(candidates, np.int64).reshape(cells, -1)
            costs = np.asarray(distances, np.float64).reshape(cells, -1)
            self.sources.append((tiles, costs))
            self.source[:] = 0
            self.length[:] = tiles.shape[1]

    def index(self) -> Index:
        if self._index is None:
            self._index = build_index(self.library, self.method)
        return self._index

    def scan_index(self) -> Index:
        """A ``blas`` index of the library, for scans of whole distance rows."""
        if self._index is None or self._index.method != "blas":
            self._scan = getattr(self, "_scan", None) or build_index(self.library, "blas")
            return self._scan
        return self._index

    def first(self, k: int) -> np.ndarray:
        """(c, k) nearest tiles of every cell (from the given lists when they are long enough)."""
        if self.sources and self.sources[0][0].shape[1] >= k:
            return self.sources[0][0][:, :k]
        self.fetch_all(k)
        return self.sources[-1][0][:, :k]

    def fetch_all(self, k: int):
        """Every cell's list becomes its ``k`` nearest tiles."""
        self.grow(np.arange(len(self.features)), np.full(len(self.features), k))

    def grow(self, cells: np.ndarray, lengths: np.ndarray):
        """Lists of ``cells`` lengthened to ``lengths`` (at most the library), searching again where needed."""
        lengths = np.minimum(np.maximum(lengths, self.length[cells]), self.size)
        widths = np.array([tiles.shape[1] for tiles, _ in self.sources] + [0], np.int64)[self.source[cells]]
        short = lengths > widths
        if short.any():
            missing = cells[short]
            k = int(lengths[short].max())
            self.sources.append(nearest(self.features[missing], self.index(), k))
            self.source[missing] = len(self.sources) - 1
            self.row[missing] = np.arange(len(missing))
        self.length[cells] = lengths

    def add(self, cells: np.ndarray, tiles: np.ndarray):
        """Pairs (cell, tile) to offer the solver beside the lists (their distances computed once, here)."""
        cells, tiles = np.asarray(cells, np.int64), np.asarray(tiles, np.int64)  # int32 cells would overflow
        keys = np.concatenate([self.extra, cells * self.size + tiles])
        new = pair_distances(self.features, self.library, cells, tiles)
        self.extra, first = np.unique(keys, return_index=True)
        self.extra_costs = np.concatenate([self.extra_costs, new])[first]

    def list_of(self, cell: int):
        """(tiles, costs) of one cell's list, nearest first (searched here when it has none)."""
        if self.length[cell] == 0:
            self.grow(np.array([cell]), np.array([64]))
        tiles, costs = self.sources[self.source[cell]]
        length = self.length[cell]
        return tiles[self.row[cell], :length], costs[self.row[cell], :length]

    def bound(self) -> np.ndarray:
        """(c,) lower bound on the distance of each cell to any tile outside its list (inf when it lists all)."""
        out = np.full(len(self.features), np.inf)
        for number, (tiles, costs) in enumerate(self.sources):
            members = np.nonzero(self.source == number)[0]
            if not len(members):
                continue
            length, rows = self.length[members], self.row[members]
            inner = length < tiles.shape[1]
            out[members[inner]] = costs[rows[inner], length[inner]]
            if tiles.shape[1] < self.size:
                edge = members[~inner]
                out[edge] = costs[rows[~inner], tiles.shape[1] - 1]
        out[self.length >= self.size] = np.inf
        return out

    def edges(self):
        """(keys, tiles, costs) of every listed and extra pair, sorted by key = cell * size + tile."""
        keys, costs = [], []
        for number, (tiles, source_costs) in enumerate(self.sources):
            members = np.nonzero(self.source == number)[0]
            if not len(members):
                continue
            inside = np.arange(tiles.shape[1])[None, :] < self.length[members][:, None]
            which, position = np.nonzero(inside)
            rows = self.row[members][which]
            keys.append(members[which] * self.size + tiles[rows, position])
            costs.append(source_costs[rows, position])
        keys = np.concatenate(keys) if keys else np.empty(0, np.int64)
        costs = np.concatenate(costs) if costs else np.empty(0)
        order = np.argsort(keys, kind="stable")
        keys, costs = keys[order], costs[order]
        if len(self.extra):
            at = np.minimum(np.searchsorted(keys, self.extra), max(len(keys) - 1, 0))
            unlisted = keys[at] != self.extra if len(keys) else np.ones(len(self.extra), bool)
            extra, extra_costs = self.extra[unlisted], self.extra_costs[unlisted]
            keys, costs = np.concatenate([keys, extra]), np.concatenate([costs, extra_costs])
            order = np.argsort(keys, kind="stable")
            keys, costs = keys[order], costs[order]
        return keys, keys % self.size, costs


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(start, start + count)`` for each pair."""
    total = int(counts.sum())
    steps = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(starts, counts) + steps


def _solve_restricted(keys, tiles, costs, cells: int, size: int, uses: int | None):
    """Tile per cell minimising the total cost over the listed pairs, each tile used at most ``uses`` times.

    ``uses`` None: every cell takes its cheapest listed tile (lowest index on
    ties). Otherwise, when the pairs fill at least an eighth of a matrix of
    cells x tile copies of up to ``DENSE_SOLVE_ENTRIES`` entries, each tile
    becomes ``min(uses, cells listing it)`` copies and scipy's
    ``linear_sum_assignment`` matches cells to copies; else
    :func:`_min_cost_flow` solves it over the pairs.

    Returns
    -------
    chosen : ndarray or None
        (cells,) int64 tiles, or None when the pairs admit no full assignment.
    partial : ndarray
        When ``chosen`` is None, the tiles of a maximum matching over the
        pairs (-1 for the cells it leaves open); else empty.
    """
    edge_cells = keys // size
    if uses is None:
        order = np.lexsort((tiles, costs, edge_cells))
        listed, first = np.unique(edge_cells[order], return_index=True)
        if len(listed) < cells:
            partial = np.full(cells, -1, np.int64)
            partial[listed] = tiles[order][first]
            return None, partial
        return tiles[order][first], np.empty(0, np.int64)
    copies = np.minimum(uses, np.bincount(tiles, minlength=size))
    slots = int(copies.sum())
    if cells * slots > DENSE_SOLVE_ENTRIES or 8 * int(copies[tiles].sum()) < cells * slots:
        chosen = _min_cost_flow(edge_cells, tiles, costs, cells, size, uses)
        if (chosen < 0).any():
            return None, chosen
        return chosen, np.empty(0, np.int64)
    repeats = copies[tiles]
    edge = np.repeat(np.arange(len(keys)), repeats)
    column = (np.cumsum(copies) - copies)[tiles[edge]] + _ranges(np.zeros(len(keys), np.int64), repeats)
    row, value = edge_cells[edge], costs[edge]
    # The matching needs nonzero entries; one more per pair does not change which pairs there are.
    graph = coo_matrix((value + 1.0, (row, column)), shape=(cells, slots)).tocsr()
    owner = np.repeat(np.arange(size), copies)
    matching = maximum_bipartite_matching(graph, perm_type="column")
    if (matching < 0).any():
        return None, np.where(matching >= 0, owner[np.maximum(matching, 0)], -1)
    dense = np.full((cells, slots), np.inf)
    dense[row, column] = value
    matched_rows, matched = linear_sum_assignment(dense)
    chosen = np.empty(cells, np.int64)
    chosen[matched_rows] = owner[matched]
    return chosen, np.empty(0, np.int64)


def _min_cost_flow(edge_cells, tiles, costs, cells: int, size: int, uses: int) -> np.ndarray:
    """Tile per cell (-1 for cells left open) of a maximum matching of least total cost over the listed pairs.

    OR-Tools' min-cost flow (cost scaling), source -> cell -> tile -> sink
    with ``uses`` per tile: measured 10x faster than scipy's LAPJVsp on
    65,536 cells x 100,000 tiles over 4.4 million pairs (6.3 s against 61 s),
    where many cells compete for few tiles. Costs are rounded to integers
    in units of ``max(costs) / COST_UNITS``, far below the certificate's
    ``TOLERANCE``.
    """
    from ortools.graph.python import min_cost_flow

    flow = min_cost_flow.SimpleMinCostFlow()
    source, sink = cells + size, cells + size + 1
    tails = np.concatenate([np.full(cells, source), edge_cells, cells + np.arange(size)])
    heads = np.concatenate([np.arange(cells), cells + tiles, np.full(size, sink)])
    capacities = np.concatenate([np.ones(cells + len(tiles), np.int64), np.full(size, uses, np.int64)])
    scale = COST_UNITS / max(float(costs.max()), 1e-300)
    units = np.concatenate(
        [np.zeros(cells, np.int64), np.rint(costs * scale).astype(np.int64), np.zeros(size, np.int64)]
    )
    arcs = flow.add_arcs_with_capacity_and_unit_cost(tails, heads, capacities, units)
    supplies = np.zeros(sink + 1, np.int64)
    supplies[source], supplies[sink] = cells, -cells
    flow.set_nodes_supplies(np.arange(sink + 1), supplies)
    status = flow.solve_max_flow_with_min_cost()
    if status != flow.OPTIMAL:
        raise RuntimeError(f"the min-cost flow solver stopped with status {status}")
    used = flow.flows(arcs[cells : cells + len(tiles)]) > 0
    chosen = np.full(cells, -1, np.int64)
    chosen[edge_cells[used]] = tiles[used]
    return chosen


def _least_prices(keys, tiles, costs, chosen, chosen_cost, size: int, uses: int, tolerance: float):
    """Least tile prices p >= 0 with p[t] >= chosen_cost[c] + p[chosen[c]] - cost(c, t) for every listed pair.

    Label-correcting from p = 0: only the cells on tiles whose price rose are
    looked at again. For an optimal restricted assignment no tile with uses
    left gets a price.

    Returns
    -------
    prices : ndarray
        (size,) float64.
    sweeps : int
        Rounds of the label-correcting loop.

    Raises
    ------
    RuntimeError
        When a tile with uses left gets a price (the assignment is not optimal).
    """
    cells = len(chosen)
    pointer = np.searchsorted(keys, np.arange(cells + 1) * size)
    held = np.bincount(chosen, minlength=size)
    holders = np.argsort(chosen, kind="stable")
    holder_start = np.cumsum(held) - held
    prices = np.zeros(size)
    active = np.arange(cells)
    for sweep in range(size + 2):
        counts = pointer[active + 1] - pointer[active]
        edge = _ranges(pointer[active], counts)
        push = np.repeat(chosen_cost[active] + prices[chosen[active]], counts) - costs[edge]
        target = tiles[edge]
        rise = push > prices[target] + tolerance
        if not rise.any():
            return prices, sweep + 1
        target, push = target[rise], push[rise]
        order = np.lexsort((-push, target))
        target, push = target[order], push[order]
        first = np.r_[True, target[1:] != target[:-1]]
        target, push = target[first], push[first]
        if (held[target] < uses).any():
            raise RuntimeError("the restricted assignment is not optimal: a tile with uses left got a price")
        prices[target] = push
        active = holders[_ranges(holder_start[target], held[target])]
    raise RuntimeError("tile prices did not settle (a cycle that lowers the cost)")


def _cost_matrix(features: np.ndarray, library: np.ndarray) -> np.ndarray:
    """(c, n) float64 Euclidean distances of every cell to every tile.

    Computed in float64 as ``|f|^2 + |l|^2 - 2 f.l`` (BLAS) after centring
    both on the library mean, block by block; measured 7-12x faster than
    ``scipy.spatial.distance.cdist`` for 1,024 x 5,000 tiles at 192 values,
    and within about 1e-10 of it.
    """
    library = np.asarray(library, np.float64)
    centre = library.mean(axis=0)
    centred = library - centre
    norms = np.einsum("nd,nd->n", centred, centred)
    out = np.empty((len(features), len(library)))
    for start in range(0, len(features), BLOCK_ROWS):
        block = np.asarray(features[start : start + BLOCK_ROWS], np.float64) - centre
        part = out[start : start + len(block)]
        np.matmul(block, centred.T, out=part)
        part *= -2.0
        part += norms
        part += np.einsum("nd,nd->n", block, block)[:, None]
        np.maximum(part, 0.0, out=part)
        np.sqrt(part, out=part)
    return out


def _solve_dense(costs: np.ndarray, uses: int) -> np.ndarray | None:
    """Tile per cell minimising the total of ``costs`` (c, n) with each tile used at most ``uses`` times.

    Each tile column is repeated ``min(uses, c)`` times for scipy's
    ``linear_sum_assignment``; inf marks a forbidden pair. None when no full
    assignment exists.
    """
    copies = min(uses, len(costs))
    try:
        _, matched = linear_sum_assignment(np.repeat(costs, copies, axis=1) if copies > 1 else costs)
    except ValueError:
        return None
    return matched // copies


def _dense_fits(cells: int, size: int, uses: int, limit: int) -> bool:
    """Whether the dense matrix of cells x tile copies has at most ``limit`` entries."""
    return cells * size * min(uses, cells) <= limit


def _rounding_bound(index: Index, lengths: np.ndarray) -> np.ndarray:
    """Bound on the float32 rounding error of ``|l|^2 - 2 q.l`` (centred) for queries of squared norms ``lengths``.

    A float32 dot product of d terms is within gamma_d |q| |l| of its value
    (gamma_d = d u / (1 - d u), u the unit roundoff, whatever the summation
    order); the norms and the sums add a few more roundings of (|q| + |l|)^2.
    """
    unit = float(np.finfo(np.float32).eps) / 2
    dimensions = index.centred32.shape[1]
    gamma = dimensions * unit / (1 - dimensions * unit)
    query, largest = np.sqrt(lengths), math.sqrt(float(index.norms.max()))
    return gamma * (2 * query * largest + largest**2) + 4 * unit * (query + largest) ** 2 + 1e-12


def _distance_floor(index: Index, queries: np.ndarray) -> np.ndarray:
    """(q, n) float32 lower bounds of the distances of ``queries`` to every tile of a ``blas`` index.

    One float32 GEMM block (as :func:`_nearest_blas`) less its rounding bound,
    so a tile whose floor is at least a level is not nearer than it (up to the
    float32 rounding of the floor itself, which callers allow for).
    """
    block64 = np.asarray(queries, np.float64) - index.centre
    floor = np.matmul(block64.astype(np.float32), index.centred32.T)
    floor *= -2.0
    floor += index.norms
    lengths = np.einsum("nd,nd->n", block64, block64)
    floor += (lengths - _rounding_bound(index, lengths)).astype(np.float32)[:, None]
    np.maximum(floor, 0.0, out=floor)
    np.sqrt(floor, out=floor)
    return floor


def _fill_open_cells(lists: _Lists, partial: np.ndarray, uses: int) -> None:
    """Pairs that complete a maximum matching: each open cell in turn gets its nearest tile with uses left.

    Many cells wanting the same few tiles (a smooth sky, say) list too few
    tiles between them for a full assignment. The matching plus these pairs
    is one, so the next solve succeeds, and the certificate then offers the
    cells better tiles where the prices show some. Tiles are ranked by
    :func:`_distance_floor` (the pairs' costs are computed exactly when solved).
    """
    index = lists.scan_index()
    left = uses - np.bincount(partial[partial >= 0], minlength=lists.size)
    open_cells = np.nonzero(partial < 0)[0]
    given = np.empty(len(open_cells), np.int64)
    for start in range(0, len(open_cells), BLOCK_ROWS):
        block = open_cells[start : start + BLOCK_ROWS]
        floor = _distance_floor(index, lists.features[block])
        floor[:, left <= 0] = np.inf
        for row in range(len(block)):
            tile = int(np.argmin(floor[row]))
            given[start + row] = tile
            left[tile] -= 1
            if left[tile] == 0:
                floor[:, tile] = np.inf
    lists.add(open_cells, given)


def _below(lists: _Lists, cell: int, tiles: np.ndarray, prices: np.ndarray, limit: float):
    """The ``tiles`` whose exact cost + price for ``cell`` is below ``limit``, and those sums."""
    sums = exact_distances(lists.features[cell : cell + 1], lists.library, tiles[None, :])[0] + prices[tiles]
    below = sums < limit
    return tiles[below], sums[below]


def _price_scan(lists: _Lists, cells: np.ndarray, prices: np.ndarray, level: np.ndarray, tolerance: float):
    """Check ``cells`` against every tile: offer each the tiles whose cost + price is below its own.

    ``level`` is each cell's cost + price of its tile. A cell fails when some
    tile t has ``cost(c, t) + prices[t] < level[c] - tolerance``; it is then
    offered those of its ``SCAN_OFFERS`` tiles of least float32 cost + price
    that are below in float64 (or, when none is, up to ``SCAN_OFFERS`` of
    all the tiles below).

    Returns
    -------
    least : ndarray
        (len(cells),) a lower bound on each cell's least cost + price over the library.
    offers : int
        Pairs offered (0: the prices prove the assignment optimal for these cells).
    """
    index = lists.scan_index()
    least = np.empty(len(cells))
    offered_cells, offered_tiles = [], []
    prices32 = prices.astype(np.float32)
    for start in range(0, len(cells), BLOCK_ROWS):
        block = cells[start : start + BLOCK_ROWS]
        reduced = _distance_floor(index, lists.features[block])
        reduced += prices32
        # Float32 sums are within a few roundings of their exact values: rows and tiles within
        # FLOAT32_MARGIN (relative) of the limit are checked in float64.
        limit = level[block] - tolerance
        screen = limit + FLOAT32_MARGIN * (np.abs(limit) + 1.0)
        lowest = reduced.min(axis=1).astype(np.float64)
        least[start : start + len(block)] = lowest - FLOAT32_MARGIN * (np.abs(lowest) + 1.0)
        rows = np.nonzero(lowest < screen)[0]
        if not len(rows):
            continue
        near = reduced[rows]
        k = min(SCAN_OFFERS, lists.size)
        tiles = np.argpartition(near, k - 1, axis=1)[:, :k] if k < lists.size else np.argsort(near, axis=1)
        sums = exact_distances(lists.features[block[rows]], lists.library, tiles) + prices[tiles]
        sums[sums >= limit[rows, None]] = np.inf
        order = np.lexsort((tiles, sums), axis=-1)
        tiles, sums = np.take_along_axis(tiles, order, 1), np.take_along_axis(sums, order, 1)
        # Rows with no tile below among the first k but more near it: check all of those (rare).
        for row in np.nonzero(np.isinf(sums[:, 0]) & ((near < screen[rows, None]).sum(axis=1) > k))[0].tolist():
            cell = int(block[rows[row]])
            below, costs = _below(lists, cell, np.nonzero(near[row] < screen[rows[row]])[0], prices, limit[rows[row]])
            below = below[np.lexsort((below, costs))[:SCAN_OFFERS]]
            offered_cells.append(np.full(len(below), cell))
            offered_tiles.append(below)
        finite = np.isfinite(sums)
        offered_cells.append(np.repeat(block[rows], finite.sum(axis=1)))
        offered_tiles.append(tiles[finite])
    offers = sum(len(tiles) for tiles in offered_tiles)
    if offers:
        lists.add(np.concatenate(offered_cells), np.concatenate(offered_tiles))
    return least, offers


def _optimal(lists: _Lists, uses: int | None, cells: int, size: int, max_repeats, min_spacing):
    """The exact minimum-total assignment under ``uses`` per tile (see :func:`assign_cells`), and solver facts."""
    info = {"solver": "optimal", "rounds": 0, "sweeps": 0, "filled": 0, "scanned": 0, "offered": 0}
    if uses is None:
        info["solver"], info["proven"] = "nearest", True
        return lists.first(1)[:, 0].copy(), info
    if not _dense_fits(cells, size, uses, DENSE_ENTRIES) and not lists.sources:
        lists.fetch_all(candidate_count(cells, size, max_repeats, min_spacing))
    while True:
        info["rounds"] += 1
        nearly_full = lists.sources and lists.length.sum() * 8 >= cells * size
        if _dense_fits(cells, size, uses, DENSE_ENTRIES) or (
            nearly_full and _dense_fits(cells, size, uses, DENSE_SOLVE_ENTRIES)
        ):
            # Every tile of every cell: exact by itself, no certificate needed.
            info["solver"], info["proven"] = "dense", True
            return _solve_dense(_cost_matrix(lists.features, lists.library), uses), info
        keys, tiles, costs = lists.edges()
        chosen, partial = _solve_restricted(keys, tiles, costs, cells, size, uses)
        if chosen is None:
            info["filled"] += int((partial < 0).sum())
            _fill_open_cells(lists, partial, uses)
            continue
        chosen_cost = costs[np.searchsorted(keys, np.arange(cells) * size + chosen)]
        tolerance = TOLERANCE * (1.0 + float(costs.max()))
        prices, sweeps = _least_prices(keys, tiles, costs, chosen, chosen_cost, size, uses, tolerance)
        info["sweeps"] += sweeps
        info["edges"] = len(keys)
        level = chosen_cost + prices[chosen]
        failed = np.nonzero(level > lists.bound() + tolerance)[0]
        if not len(failed):
            info["proven"] = True
            return chosen, info
        if info["scanned"] + len(failed) > SCAN_BUDGET * cells:
            info["proven"] = False
            return chosen, info
        info["scanned"] += len(failed)
        _, offers = _price_scan(lists, failed, prices, level, tolerance)
        if not offers:
            info["proven"] = True
            return chosen, info
        info["offered"] += offers


def _spread(lists: _Lists, chosen: np.ndarray, uses: int | None, grid: _Grid, info: dict) -> np.ndarray:
    """``chosen`` changed so that no tile repeats within ``grid.spacing``: forbid and re-solve, then repair.

    Each round forbids every too-close repeat at the cell of the pair where it
    costs more (the later cell on a tie) and solves again: over all tiles when
    the dense matrix is small (:func:`_dense_fits`), else over the lists (with
    each cell's current tile added to them).
    """
    size, cells = lists.size, len(chosen)
    dense = None
    if uses is not None and _dense_fits(cells, size, uses, DENSE_SOLVE_ENTRIES):
        dense = _cost_matrix(lists.features, lists.library)
    else:
        lists.add(np.arange(cells), chosen)
    forbidden = np.empty(0, np.int64)
    for _ in range(SPACING_ROUNDS):
        pairs = grid.conflicts(chosen)
        if not len(pairs):
            return chosen
        info["spacing_rounds"] = info.get("spacing_rounds", 0) + 1
        cost = exact_distances(lists.features, lists.library, chosen[:, None])[:, 0]
        first, second = pairs[:, 0], pairs[:, 1]
        loser = np.where(cost[second] >= cost[first], second, first)
        forbidden = np.union1d(forbidden, loser * size + chosen[loser])
        if dense is not None:
            dense.reshape(-1)[forbidden] = np.inf
            again = _solve_dense(dense, uses)
        else:
            keys, tiles, costs = lists.edges()
            allowed = ~np.isin(keys, forbidden)
            few = np.nonzero(np.bincount(keys[allowed] // size, minlength=cells) < 2)[0]
            if len(few):
                lists.grow(few, GROWTH * np.maximum(lists.length[few], 4))
                keys, tiles, costs = lists.edges()
                allowed = ~np.isin(keys, forbidden)
            again, _ = _solve_restricted(keys[allowed], tiles[allowed], costs[allowed], cells, size, uses)
        if again is None:
            break
        chosen = again
    return _repair(lists, chosen, uses, grid, info)


def _repair(lists: _Lists, chosen: np.ndarray, uses: int | None, grid: _Grid, info: dict) -> np.ndarray:
    """Cells keep their tiles in order of cost while no kept use is within reach; the rest get their nearest fit."""
    pairs = grid.conflicts(chosen)
    if not len(pairs):
        return chosen
    size = lists.size
    cost = exact_distances(lists.features, lists.library, chosen[:, None])[:, 0]
    involved = np.unique(pairs)
    placed = chosen.copy()
    placed[involved] = -1
    tiles2d = placed.reshape(grid.rows, grid.cols)
    count = np.bincount(placed[placed >= 0], minlength=size)
    dropped = []
    for cell in involved[np.lexsort((involved, cost[involved]))].tolist():
        tile = int(chosen[cell])
        if grid.blocked(tiles2d, cell, tile):
            dropped.append(cell)
        else:
            placed[cell] = tile
            count[tile] += 1
    limit = np.iinfo(np.int64).max if uses is None else uses
    for cell in sorted(dropped):
        while True:
            tiles, _ = lists.list_of(cell)
            fits = [t for t in tiles.tolist() if count[t] < limit and not grid.blocked(tiles2d, cell, t)]
            if fits:
                placed[cell] = fits[0]
                count[fits[0]] += 1
                break
            if len(tiles) >= size:
                row, col = divmod(cell, grid.cols)
                raise ValueError(
                    f"no tile fits cell {cell} (row {row}, col {col}): {int((count < limit).sum())} of {size} tiles "
                    f"had uses left, each already used within min_spacing {grid.spacing} of it"
                )
            lists.grow(np.array([cell]), np.array([GROWTH * max(len(tiles), 4)]))
    info["repaired"] = len(dropped)
    return placed


def _check(chosen: np.ndarray, max_repeats: int | None, grid: _Grid):
    """Raise ValueError unless ``chosen`` keeps ``max_repeats`` and the spacing rule."""
    uses = np.bincount(chosen).max()
    if max_repeats is not None and uses > max_repeats:
        raise ValueError(f"a tile is used {uses} times, more than max_repeats={max_repeats}")
    pairs = grid.conflicts(chosen)
    if len(pairs):
        raise ValueError(f"cells {pairs[0, 0]} and {pairs[0, 1]} share a tile within min_spacing {grid.spacing}")


def _greedy(lists: _Lists, max_repeats: int | None, grid: _Grid) -> np.ndarray:
    """The best-distance-first greedy (see :func:`assign_cells`) over ``lists``, lengthening a list that runs out."""
    cells, size = len(lists.features), lists.size
    limit = math.inf if max_repeats is None else max_repeats
    tile_lists, cost_lists = [], []
    for cell in range(cells):
        tiles, costs = lists.list_of(cell)
        tile_lists.append(tiles.tolist())
        cost_lists.append(costs.tolist())
    position = [0] * cells
    uses = [0] * size
    chosen = np.full(cells, -1, np.int64)
    tiles2d = chosen.reshape(grid.rows, grid.cols)
    spaced = grid.spacing > 0
    heap = [(cost_lists[cell][0], cell, tile_lists[cell][0]) for cell in range(cells)]
    heapq.heapify(heap)
    while heap:
        _, cell, tile = heapq.heappop(heap)
        if uses[tile] < limit and not (spaced and uses[tile] and grid.blocked(tiles2d, cell, tile)):
            chosen[cell] = tile
            uses[tile] += 1
            continue
        step = position[cell] + 1
        if step == len(tile_lists[cell]):
            if len(tile_lists[cell]) >= size:
                row, col = divmod(cell, grid.cols)
                left = sum(1 for count in uses if count < limit)
                raise ValueError(
                    f"no tile fits cell {cell} (row {row}, col {col}): {left} of {size} tiles had uses left, "
                    f"each already used within min_spacing {grid.spacing} of it"
                )
            tile_lists[cell], cost_lists[cell] = _longer_list(
                lists.index(), lists.features[cell], tile_lists[cell], cost_lists[cell]
            )
        position[cell] = step
        heapq.heappush(heap, (cost_lists[cell][step], cell, tile_lists[cell][step]))
    return chosen


def _longer_list(index: Index, feature, tiles: list, distances: list):
    """The cell's candidate list extended to four times its length (its current entries kept first)."""
    more, more_distances = nearest(feature[None, :], index, min(len(index.library), GROWTH * len(tiles)))
    seen = set(tiles)
    extra = [(d, t) for t, d in zip(more[0].tolist(), more_distances[0].tolist(), strict=True) if t not in seen]
    return tiles + [t for _, t in extra], distances + [d for d, _ in extra]


def _class_layout(lists: _Lists, max_repeats: int | None, grid: _Grid, failure: Exception) -> np.ndarray:
    """A layout that keeps the spacing rule by construction, for when the greedy gets stuck.

    Cells with the same (row, col) modulo a period p > ``spacing`` are more
    than ``spacing`` apart, so tiles may repeat freely inside such a class.
    The smallest period whose classes need no more tiles than the library has
    (``ceil(class cells / max_repeats)`` each, one without a limit) is used.
    Each tile is given to one class: first the tiles the classes need,
    matched to the classes' mean features, then every other tile to the class
    with the nearest mean; each class is then assigned optimally over its own
    tiles.

    Raises
    ------
    ValueError
        ``failure``'s message, when no period works.
    """
    size = lists.size
    rows, cols = np.divmod(np.arange(grid.rows * grid.cols), grid.cols)
    for period in range(grid.spacing + 1, max(grid.rows, grid.cols) + 1):
        classes, label = np.unique((rows % period) * period + cols % period, return_inverse=True)
        sizes = np.bincount(label)
        needed = np.ones(len(classes), np.int64) if max_repeats is None else -(-sizes // max_repeats)
        if needed.sum() <= size:
            break
    else:
        raise ValueError(str(failure))
    means = np.stack([lists.features[label == number].mean(axis=0) for number in range(len(classes))])
    closeness = _cost_matrix(means, lists.library)
    slot_class = np.repeat(np.arange(len(classes)), needed)
    _, tiles = linear_sum_assignment(closeness[slot_class])
    owner = np.full(size, -1, np.int64)
    owner[tiles] = slot_class
    rest = owner < 0
    owner[rest] = np.argmin(closeness[:, rest], axis=0)
    chosen = np.empty(len(label), np.int64)
    for number in range(len(classes)):
        members, own = np.nonzero(label == number)[0], np.nonzero(owner == number)[0]
        sub = _Lists(lists.features[members], lists.library[own], None, None, lists.method)
        uses = None if max_repeats is None else min(max_repeats, len(members))
        picked, _ = _optimal(sub, uses, len(members), len(own), max_repeats, 0)
        chosen[members] = own[picked]
    return chosen
