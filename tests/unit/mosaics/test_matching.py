"""Nearest-tile search against brute force, and the capacity-limited assignment against a plain greedy oracle."""

import numpy as np
import pytest
from pixelflow.mosaics.matching import assign_cells, nearest


def brute_force(queries, library, k):
    """All distances, sorted by (distance, index)."""
    distances = np.sqrt(((queries[:, None, :].astype(float) - library[None, :, :].astype(float)) ** 2).sum(-1))
    order = np.lexsort((np.broadcast_to(np.arange(len(library)), distances.shape), distances), axis=-1)[:, :k]
    return order, np.take_along_axis(distances, order, 1)


def oracle_greedy(queries, library, max_repeats):
    """Every (cell, tile) pair in order of (distance, cell, tile); take it if both are still free."""
    distances = np.sqrt(((queries[:, None, :] - library[None, :, :]) ** 2).sum(-1))
    cells, tiles = np.meshgrid(np.arange(len(queries)), np.arange(len(library)), indexing="ij")
    order = np.lexsort((tiles.ravel(), cells.ravel(), distances.ravel()))
    assignment, uses = [-1] * len(queries), [0] * len(library)
    for pair in order:
        cell, tile = int(cells.ravel()[pair]), int(tiles.ravel()[pair])
        if assignment[cell] < 0 and uses[tile] < max_repeats:
            assignment[cell], uses[tile] = tile, uses[tile] + 1
    return np.array(assignment)


def assign_limited(features, library, max_repeats):
    """The greedy over one row of cells."""
    return assign_cells(features, library, rows=1, cols=len(features), max_repeats=max_repeats, assignment="greedy")


@pytest.mark.parametrize("method", ["blas", "kdtree"])
@pytest.mark.parametrize(("dimensions", "k"), [(3, 1), (3, 7), (12, 1), (48, 5)])
def test_nearest_equals_brute_force(method, dimensions, k):
    rng = np.random.default_rng(dimensions * 10 + k)
    library = rng.normal(50, 30, (3000, dimensions)).astype(np.float32)
    queries = rng.normal(50, 30, (700, dimensions)).astype(np.float32)
    indices, distances = nearest(queries, library, k, method)
    expected_indices, expected_distances = brute_force(queries, library, k)
    assert np.allclose(distances, expected_distances, rtol=1e-9, atol=1e-9)
    assert np.mean(indices == expected_indices) == 1.0


@pytest.mark.parametrize("method", ["blas", "kdtree"])
def test_nearest_is_exact_among_near_duplicates_and_ties(method):
    rng = np.random.default_rng(1)
    # Noise-like tiles: features within a fraction of a unit of each other around a large value, plus exact copies.
    library = 127.5 + rng.normal(0, 0.05, (2000, 3))
    library[1000:1100] = library[:100]
    queries = 127.5 + rng.normal(0, 0.05, (500, 3))
    indices, distances = nearest(queries, library, 3, method)
    expected_indices, expected_distances = brute_force(queries, library, 3)
    assert np.allclose(distances, expected_distances, rtol=0, atol=1e-12)
    assert np.array_equal(indices[:, 0], expected_indices[:, 0])
    exact_copy, _ = nearest(library[1000:1100], library, 1, method)
    assert exact_copy[:, 0].tolist() == list(range(100))  # a tie goes to the lower index


@pytest.mark.parametrize(
    ("cells", "tiles", "dimensions", "max_repeats"), [(200, 200, 3, 1), (300, 120, 12, 3), (90, 400, 3, 1)]
)
def test_limited_assignment_is_the_best_distance_first_greedy(cells, tiles, dimensions, max_repeats):
    rng = np.random.default_rng(cells + tiles)
    library = rng.random((tiles, dimensions)) * 100
    # Clustered targets compete for the same tiles, so later rounds are needed.
    queries = rng.random((cells, dimensions)) * 20 + 40
    assignment = assign_limited(queries, library, max_repeats)
    assert (assignment >= 0).all()
    assert np.bincount(assignment, minlength=tiles).max() <= max_repeats
    assert np.array_equal(assignment, oracle_greedy(queries, library, max_repeats))
    assert np.array_equal(assignment, assign_limited(queries.copy(), library.copy(), max_repeats))


def test_unlimited_assignment_is_the_nearest_tile():
    rng = np.random.default_rng(3)
    library, queries = rng.random((500, 12)), rng.random((100, 12))
    assert np.array_equal(assign_limited(queries, library, None), brute_force(queries, library, 1)[0][:, 0])


def test_too_small_library_says_how_many_tiles_are_needed():
    with pytest.raises(ValueError, match="need at least 50 tiles at max_repeats=2, the library has 40"):
        assign_limited(np.zeros((100, 3)), np.zeros((40, 3)), 2)
