"""assign_cells against brute-force optima, its reuse and spacing rules, and assignment_problem's messages."""

import itertools

import numpy as np
import pytest
from pixelflow.mosaics import matching
from pixelflow.mosaics.matching import assign_cells, assignment_problem, candidate_count, nearest
from scipy.optimize import linear_sum_assignment


def all_distances(features, library):
    return np.sqrt(((features[:, None, :] - library[None, :, :]) ** 2).sum(-1))


def total(features, library, chosen):
    return float(np.sqrt(((features - library[chosen]) ** 2).sum(-1)).sum())


def reference_total(features, library, max_repeats):
    """The optimum by dense linear_sum_assignment with every tile repeated max_repeats times."""
    costs = all_distances(features, library)
    rows, columns = linear_sum_assignment(np.repeat(costs, max_repeats, axis=1))
    return float(costs[rows, columns // max_repeats].sum())


def spacing_violations(chosen, cols, min_spacing):
    """Pairs of distinct cells with the same tile within Chebyshev distance min_spacing, by brute force."""
    row, col = np.divmod(np.arange(len(chosen)), cols)
    near = (np.abs(row[:, None] - row[None, :]) <= min_spacing) & (np.abs(col[:, None] - col[None, :]) <= min_spacing)
    same = chosen[:, None] == chosen[None, :]
    np.fill_diagonal(same, False)
    return int((near & same).sum() // 2)


@pytest.fixture(params=["dense", "certificate"])
def solver(request, monkeypatch):
    """Run each optimality test twice: as configured, and with the dense shortcuts off (lists + certificate)."""
    if request.param == "certificate":
        monkeypatch.setattr(matching, "DENSE_ENTRIES", 0)
        monkeypatch.setattr(matching, "DENSE_SOLVE_ENTRIES", 0)
    return request.param


@pytest.mark.parametrize("max_repeats", [1, 2, 3])
def test_optimal_equals_enumeration_on_small_cases(solver, max_repeats):
    rng = np.random.default_rng(max_repeats)
    for case in range(6):
        library = rng.normal(50, 20, (6, 3))
        library[3] = library[0]  # a duplicate tile: ties
        features = rng.normal(50, 20, (5, 3))
        costs = all_distances(features, library)
        best = min(
            costs[np.arange(5), list(choice)].sum()
            for choice in itertools.product(range(6), repeat=5)
            if np.bincount(choice, minlength=6).max() <= max_repeats
        )
        chosen = assign_cells(features, library, rows=1, cols=5, max_repeats=max_repeats)
        assert np.bincount(chosen).max() <= max_repeats
        assert total(features, library, chosen) == pytest.approx(best, rel=1e-12), case


@pytest.mark.parametrize("max_repeats", [1, 2, 3])
@pytest.mark.parametrize("spread", [20.0, 2.0])
def test_optimal_equals_dense_assignment_on_medium_cases(solver, max_repeats, spread):
    # spread 2: every cell wants the same few tiles, so lists must grow before the certificate holds.
    rng = np.random.default_rng(int(spread) * 10 + max_repeats)
    library = rng.normal(50, 20, (400, 6))
    library[200:260] = library[:60]  # duplicate tiles
    features = rng.normal(50, spread, (300, 6))
    chosen = assign_cells(features, library, rows=15, cols=20, max_repeats=max_repeats)
    assert np.bincount(chosen).max() <= max_repeats
    assert total(features, library, chosen) == pytest.approx(reference_total(features, library, max_repeats), rel=1e-9)


def test_certificate_offers_tiles_when_nearest_tiles_collide(monkeypatch):
    monkeypatch.setattr(matching, "DENSE_ENTRIES", 0)
    monkeypatch.setattr(matching, "DENSE_SOLVE_ENTRIES", 0)
    rng = np.random.default_rng(7)
    library = rng.normal(50, 20, (300, 3))
    features = rng.normal(50, 1, (240, 3))
    candidates, distances = nearest(features, library, 8)
    options = {"rows": 12, "cols": 20, "max_repeats": 1, "candidates": candidates, "distances": distances}
    chosen, info = matching.solve_assignment(features, library, **options)
    assert info["rounds"] > 1 and info["filled"] > 0 and info["offered"] > 0 and info["proven"]
    assert total(features, library, chosen) == pytest.approx(reference_total(features, library, 1), rel=1e-9)


@pytest.mark.parametrize(("cells", "tiles", "max_repeats"), [(200, 150, 2), (300, 120, 3), (256, 400, 1)])
def test_optimal_is_never_worse_than_greedy(cells, tiles, max_repeats):
    rng = np.random.default_rng(cells + tiles)
    library = rng.random((tiles, 12)) * 100
    features = rng.random((cells, 12)) * 30 + 35
    options = {"rows": 1, "cols": cells, "max_repeats": max_repeats}
    optimal = assign_cells(features, library, **options)
    greedy = assign_cells(features, library, assignment="greedy", **options)
    for chosen in (optimal, greedy):
        assert np.bincount(chosen, minlength=tiles).max() <= max_repeats
    assert total(features, library, optimal) <= total(features, library, greedy) + 1e-9
    one_row = assign_cells(features, library, rows=1, cols=len(features), max_repeats=max_repeats, assignment="greedy")
    assert np.array_equal(greedy, one_row)  # without spacing the grid's shape does not matter


def test_unlimited_optimal_is_each_cells_nearest_tile():
    rng = np.random.default_rng(3)
    library, features = rng.random((500, 12)), rng.random((100, 12))
    chosen = assign_cells(features, library, rows=10, cols=10)
    assert np.array_equal(chosen, np.argmin(all_distances(features, library), axis=1))


@pytest.mark.parametrize("assignment", ["optimal", "greedy"])
@pytest.mark.parametrize(
    ("rows", "cols", "tiles", "max_repeats", "min_spacing", "spread"),
    [(12, 14, 40, None, 1, 3.0), (12, 12, 60, 6, 2, 3.0), (10, 16, 200, 2, 3, 20.0), (1, 30, 10, None, 4, 5.0)],
)
def test_spacing_keeps_repeats_apart(assignment, rows, cols, tiles, max_repeats, min_spacing, spread):
    rng = np.random.default_rng(rows * cols + tiles)
    library = rng.normal(50, 20, (tiles, 3))
    features = rng.normal(50, spread, (rows * cols, 3))
    chosen = assign_cells(
        features,
        library,
        rows=rows,
        cols=cols,
        max_repeats=max_repeats,
        min_spacing=min_spacing,
        assignment=assignment,
    )
    assert chosen.shape == (rows * cols,) and chosen.min() >= 0 and chosen.max() < tiles
    assert spacing_violations(chosen, cols, min_spacing) == 0
    if max_repeats is not None:
        assert np.bincount(chosen).max() <= max_repeats


def test_spacing_with_optimal_costs_no_more_than_greedy():
    rng = np.random.default_rng(11)
    library = rng.normal(50, 20, (120, 3))
    features = rng.normal(50, 8, (160, 3))
    options = {"rows": 10, "cols": 16, "max_repeats": 3, "min_spacing": 2}
    optimal = assign_cells(features, library, **options)
    greedy = assign_cells(features, library, assignment="greedy", **options)
    assert total(features, library, optimal) <= total(features, library, greedy) + 1e-9
    assert total(features, library, optimal) >= reference_total(features, library, 3) - 1e-9


@pytest.mark.parametrize("assignment", ["optimal", "greedy"])
@pytest.mark.parametrize(
    ("rows", "cols", "tiles", "max_repeats", "min_spacing"),
    [(4, 4, 4, None, 1), (8, 8, 16, 4, 3), (6, 6, 9, 4, 1), (5, 7, 9, None, 2)],
)
def test_tight_but_feasible_spacing_succeeds(assignment, rows, cols, tiles, max_repeats, min_spacing):
    # The library is as small as assignment_problem allows.
    assert assignment_problem(rows, cols, tiles, max_repeats, min_spacing) is None
    assert assignment_problem(rows, cols, tiles - 1, max_repeats, min_spacing) is not None
    rng = np.random.default_rng(tiles)
    library = rng.normal(50, 20, (tiles, 3))
    features = rng.normal(50, 5, (rows * cols, 3))
    chosen = assign_cells(
        features,
        library,
        rows=rows,
        cols=cols,
        max_repeats=max_repeats,
        min_spacing=min_spacing,
        assignment=assignment,
    )
    assert spacing_violations(chosen, cols, min_spacing) == 0
    if max_repeats is not None:
        assert np.bincount(chosen).max() <= max_repeats


def test_assignment_problem_messages():
    assert assignment_problem(32, 32, 1024, 1, 0) is None
    key, message = assignment_problem(32, 32, 900, 1, 0)
    assert key == "max_repeats"
    assert "the target's 32x32 = 1024 cells need at least 1024 tiles at max_repeats=1, the library has 900" in message
    key, message = assignment_problem(20, 20, 10, None, 3)
    assert key == "min_spacing"
    assert message.startswith("min_spacing 3 puts 4x4 = 16 cells within each tile's reach of one another")
    assert "the library has 10" in message
    # Spacing 1 lets a tile appear ceil(9/2) * ceil(9/2) = 25 times in 9x9 = 81 cells; 2x2 neighbours differ.
    assert assignment_problem(9, 9, 4, None, 1) is None
    assert assignment_problem(9, 9, 3, 30, 1)[0] == "min_spacing"
    assert assignment_problem(9, 9, 4, 20, 1)[0] == "max_repeats"
    assert assignment_problem(2, 3, 6, None, 5) is None  # the whole 2x3 grid is one neighbourhood
    assert assignment_problem(2, 3, 5, None, 5)[0] == "min_spacing"


def test_impossible_limits_raise_with_the_message():
    with pytest.raises(ValueError, match="cells need at least 50 tiles at max_repeats=2, the library has 40"):
        assign_cells(np.zeros((100, 3)), np.zeros((40, 3)), rows=10, cols=10, max_repeats=2)
    with pytest.raises(ValueError, match="every 9 neighbouring cells need distinct tiles; the library has 8"):
        assign_cells(np.zeros((100, 3)), np.zeros((8, 3)), rows=10, cols=10, min_spacing=2, assignment="greedy")


@pytest.mark.parametrize("min_spacing", [0, 2])
@pytest.mark.parametrize("assignment", ["optimal", "greedy"])
def test_deterministic_and_independent_of_given_lists(assignment, min_spacing, monkeypatch):
    monkeypatch.setattr(matching, "DENSE_ENTRIES", 0)  # take the list path, where given lists matter
    rng = np.random.default_rng(5)
    library = rng.normal(50, 20, (500, 12)).round()  # rounded: many equal distances
    library[250:] = library[:250]
    features = rng.normal(50, 10, (16 * 20, 12)).round()
    options = {"rows": 16, "cols": 20, "max_repeats": 2, "min_spacing": min_spacing, "assignment": assignment}
    first = assign_cells(features, library, **options)
    assert np.array_equal(first, assign_cells(features.copy(), library.copy(), **options))
    k = candidate_count(len(features), len(library), 2, min_spacing)
    candidates, distances = nearest(features, library, k)
    assert np.array_equal(first, assign_cells(features, library, candidates=candidates, distances=distances, **options))
    grid = assign_cells(features.reshape(16, 20, 12), library, **options)
    assert np.array_equal(first, grid)


def test_offered_pairs_keep_their_keys_for_large_grids_and_libraries():
    from pixelflow.mosaics.matching import _Lists

    library = np.zeros((100_000, 2))
    library[5] = (3.0, 4.0)
    lists = _Lists(np.zeros((65_536, 2)), library, None, None, "blas")
    lists.add(np.array([2, 65_535], np.int32), np.array([99_999, 5], np.int32))  # 65,535 x 100,000 > 2**31
    assert lists.extra.tolist() == [2 * 100_000 + 99_999, 65_535 * 100_000 + 5]
    assert lists.extra_costs.tolist() == [0.0, 5.0]


@pytest.mark.parametrize(("offset", "spread"), [(0.0, 30.0), (500.0, 1.0), (50.0, 1e-3)])
def test_distance_floor_is_a_tight_lower_bound(offset, spread):
    rng = np.random.default_rng(int(offset))
    library = rng.normal(offset, spread, (2000, 192)).astype(np.float32)
    queries = rng.normal(offset, spread, (300, 192)).astype(np.float32)
    queries[:5] = library[:5]  # zero distances
    exact = all_distances(queries.astype(np.float64), library.astype(np.float64))
    floor = matching._distance_floor(matching.build_index(library, "blas"), queries)
    assert (floor <= exact).all()
    scale = np.sqrt((library.astype(np.float64) - library.mean(0)) ** 2).sum(1).max() + 1
    assert (exact - floor).max() < 1e-3 * scale


def test_price_scan_offers_exactly_the_tiles_below_each_cells_level():
    rng = np.random.default_rng(3)
    library = rng.normal(50, 20, (500, 12))
    features = rng.normal(50, 20, (40, 12))
    prices = rng.random(500) * 5
    costs = all_distances(features, library) + prices
    ranked = np.sort(costs, axis=1)
    level = (ranked[:, 19] + ranked[:, 20]) / 2  # 20 tiles of each cell lie below its level
    lists = matching._Lists(features, library, None, None, "auto")
    least, offers = matching._price_scan(lists, np.arange(40), prices, level, 0.0)
    assert offers == 40 * min(20, matching.SCAN_OFFERS)
    assert (least <= costs.min(axis=1)).all() and (least > costs.min(axis=1) - 1e-3).all()
    keys, tiles, _ = lists.edges()
    offered = keys // 500
    for cell in range(40):
        below = ranked[cell, : min(20, matching.SCAN_OFFERS)]
        assert np.allclose(np.sort(costs[cell, tiles[offered == cell]]), below)
    _, again = matching._price_scan(lists, np.arange(40), prices, costs.min(axis=1), 1e-9)
    assert again == 0  # nothing lies below the least cost + price


def test_a_spent_scan_budget_returns_the_best_assignment_found_unproven(monkeypatch):
    monkeypatch.setattr(matching, "DENSE_ENTRIES", 0)
    monkeypatch.setattr(matching, "DENSE_SOLVE_ENTRIES", 0)
    monkeypatch.setattr(matching, "SCAN_BUDGET", 0)
    rng = np.random.default_rng(7)
    library = rng.normal(50, 20, (300, 3))
    features = rng.normal(50, 1, (240, 3))
    candidates, distances = nearest(features, library, 8)
    options = {"rows": 12, "cols": 20, "max_repeats": 1, "candidates": candidates, "distances": distances}
    chosen, info = matching.solve_assignment(features, library, **options)
    assert not info["proven"] and info["scanned"] == 0
    assert np.bincount(chosen).max() == 1
    greedy = assign_cells(features, library, assignment="greedy", **options)
    best = reference_total(features, library, 1)
    assert best <= total(features, library, chosen) <= total(features, library, greedy) * 1.5
