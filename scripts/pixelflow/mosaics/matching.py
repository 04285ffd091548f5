"""Exact nearest library tiles for target cells, and capacity-limited assignment.

Distances are Euclidean between feature vectors (in CIELAB that is the CIE76
colour difference). :func:`nearest` finds the ``k`` nearest library vectors of
each query, either from BLAS distance blocks or with a k-d tree; both are
exact and order equal distances by library index. :func:`assign_limited`
turns them into an assignment in which no tile is used more than
``max_repeats`` times: the best-distance-first greedy, computed exactly.
"""

import heapq
import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

# Chosen by `benchmarks/mosaics.py matching` on the development machine: the
# k-d tree wins up to 12 dimensions (mean colour, 2x2 grid), BLAS blocks above.
KDTREE_MAX_DIMENSIONS = 12
TIE_EXTRA = 8  # extra k-d tree neighbours fetched so that equal distances are ordered by index
BLOCK_ROWS = 256  # query rows per distance block (a 256 x 25,000 float32 block is 25 MB)


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


def _nearest_blas(index: Index, queries: np.ndarray, k: int, block_rows: int = BLOCK_ROWS):
    """k nearest from float32 GEMM blocks of ``|l|^2 - 2 q.l``, made exact.

    Every library row whose float32 score is within the rounding bound of the
    k-th best score is rechecked in float64.
    """
    slack = 8 * index.library.shape[1] * float(np.finfo(np.float32).eps)
    largest = float(index.norms.max())
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
        bound = slack * (np.sqrt(np.einsum("nd,nd->n", block64, block64)) + math.sqrt(largest)) ** 2 + 1e-12
        rows, cols = np.nonzero(out <= (kth + bound)[:, None])
        exact = np.sqrt(((index.centred64[cols] - block64[rows]) ** 2).sum(axis=1))
        order = np.lexsort((cols, exact, rows))
        rows, cols, exact = rows[order], cols[order], exact[order]
        take = np.searchsorted(rows, np.arange(len(block64)))[:, None] + np.arange(k)[None, :]
        indices[start : start + len(block64)] = cols[take]
        distances[start : start + len(block64)] = exact[take]
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


def candidate_count(cells: int, library_size: int, max_repeats: int | None) -> int:
    """How many nearest tiles to find per cell up front (more are fetched for the cells that need them)."""
    if max_repeats is None:
        return 1
    return min(library_size, 64 + 2 * math.ceil(cells / (library_size * max_repeats)))


def assign_limited(features, library, max_repeats, candidates=None, distances=None, method="auto"):
    """Tile index per cell with no tile used more than ``max_repeats`` times (None: unlimited).

    Best-distance-first greedy: of all (cell, tile) pairs, taken in order of
    (distance, cell, tile), a pair is used when its cell is still open and its
    tile has uses left. Each cell walks its own sorted candidate list
    (``candidates``/``distances`` from :func:`nearest`, or found here); a heap
    holds every open cell's next pair, so the order is exact; a cell whose list
    runs out gets a list four times as long. Deterministic.

    Parameters
    ----------
    features : ndarray
        (c, d) features of the cells.
    library : ndarray
        (n, d) library features (an array, not an :class:`Index`).
    max_repeats : int or None
        Uses of one tile at most; None gives every cell its nearest tile.
    candidates, distances : ndarray, optional
        (c, k) from :func:`nearest` for these ``features`` and ``library``;
        searched here when ``candidates`` is None.
    method : str
        The search method (:func:`build_index`).

    Returns
    -------
    ndarray
        (c,) int64 library row per cell.

    Raises
    ------
    ValueError
        When ``n * max_repeats`` is less than the cells, naming both counts.
    """
    cells = len(features)
    if max_repeats is not None and len(library) * max_repeats < cells:
        raise ValueError(
            f"{cells} cells need at least {tiles_needed(cells, max_repeats)} tiles at max_repeats={max_repeats}, "
            f"the library has {len(library)}"
        )
    index = None
    if candidates is None:
        index = build_index(library, method)
        candidates, distances = nearest(features, index, candidate_count(cells, len(library), max_repeats))
    if max_repeats is None:
        return candidates[:, 0].copy()
    lists = candidates.tolist()
    list_distances = distances.tolist()
    position = [0] * cells
    uses = [0] * len(library)
    assignment = [-1] * cells
    heap = [(list_distances[cell][0], cell, lists[cell][0]) for cell in range(cells)]
    heapq.heapify(heap)
    while heap:
        distance, cell, tile = heapq.heappop(heap)
        if uses[tile] < max_repeats:
            assignment[cell] = tile
            uses[tile] += 1
            continue
        step = position[cell] + 1
        if step == len(lists[cell]):
            if index is None:
                index = build_index(library, method)
            lists[cell], list_distances[cell] = _longer_list(index, features[cell], lists[cell], list_distances[cell])
        position[cell] = step
        heapq.heappush(heap, (list_distances[cell][step], cell, lists[cell][step]))
    return np.array(assignment, np.int64)


def _longer_list(index: Index, feature, tiles: list, distances: list):
    """The cell's candidate list extended to four times its length (its current entries kept first)."""
    more, more_distances = nearest(feature[None, :], index, min(len(index.library), 4 * len(tiles)))
    seen = set(tiles)
    extra = [(d, t) for t, d in zip(more[0].tolist(), more_distances[0].tolist(), strict=True) if t not in seen]
    return tiles + [t for _, t in extra], distances + [d for d, _ in extra]
