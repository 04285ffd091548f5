"""Mosaic assembly, colour correction, quality figures, band-parallel matching and input checks."""

import numpy as np
import pytest
from pixelflow.io.images import read_image
from pixelflow.mosaics import render as mosaic
from pixelflow.mosaics.render import assemble, cell_bands, check_fits, make_mosaic, quality
from pixelflow.mosaics.tiles import cut_tiles, pooled_features
from pixelflow.planning.config import ConfigError
from skimage.color import deltaE_ciede2000, rgb2lab

RNG = np.random.default_rng(11)


def spec(**changes):
    base = {
        "tile": [8, 8],
        "grid": 4,
        "space": "lab",
        "assignment": "optimal",
        "max_repeats": None,
        "min_spacing": 0,
        "colour_correction": 0.0,
        "scale": [8, 8],
        "key": "mosaics.m",
        "library": "lib",
    }
    return {**base, **changes}


def library(tiles):
    return tiles, {"lab": pooled_features(tiles, "lab"), "rgb": pooled_features(tiles, "rgb")}


def test_a_target_made_of_library_tiles_is_rebuilt_exactly():
    tiles = RNG.integers(0, 256, (60, 8, 8, 3), dtype=np.uint8)
    layout = RNG.permutation(60)[:48]
    target = assemble(tiles[layout], 6, 8)
    image, report = make_mosaic(target, *library(tiles), spec(max_repeats=1))
    assert np.array_equal(image, target)
    assert report["mean_ciede2000"] == 0 and report["psnr_db"] is None
    assert report["distinct_tiles"] == 48 and report["max_uses"] == 1 and report["cells"] == [6, 8]


def test_assemble_inverts_cutting():
    image = RNG.integers(0, 256, (24, 40, 3), dtype=np.uint8)
    assert np.array_equal(assemble(cut_tiles(image, 8), 3, 5), image)


@pytest.mark.parametrize("max_repeats", [None, 1, 2])
def test_band_parallel_matching_gives_the_same_mosaic(monkeypatch, max_repeats):
    tiles = RNG.integers(0, 256, (400, 8, 8, 3), dtype=np.uint8)
    target = RNG.integers(0, 256, (96, 160, 3), dtype=np.uint8)
    inline, inline_report = make_mosaic(target, *library(tiles), spec(grid=2, max_repeats=max_repeats), 1)
    monkeypatch.setattr(mosaic, "PARALLEL_MIN_PAIRS", 0)
    monkeypatch.setattr(mosaic, "BAND_CELLS", 40)
    assert len(cell_bands(12, 20)) == 6
    parallel, report = make_mosaic(target, *library(tiles), spec(grid=2, max_repeats=max_repeats), 2)
    assert np.array_equal(parallel, inline)
    assert report["max_uses"] <= (max_repeats or 240)
    assert report["mean_ciede2000"] == inline_report["mean_ciede2000"]


def test_full_colour_correction_moves_each_cell_to_the_target_mean():
    tiles = RNG.integers(60, 190, (30, 8, 8, 3), dtype=np.uint8)
    target = RNG.integers(100, 150, (32, 32, 3), dtype=np.uint8)
    image, _ = make_mosaic(target, *library(tiles), spec(colour_correction=1.0))
    got = cut_tiles(image, 8).astype(float).mean(axis=(1, 2))
    want = cut_tiles(target, 8).astype(float).mean(axis=(1, 2))
    assert np.abs(got - want).max() <= 0.5
    half, _ = make_mosaic(target, *library(tiles), spec(colour_correction=0.5))
    plain, _ = make_mosaic(target, *library(tiles), spec())
    half_means = cut_tiles(half, 8).astype(float).mean(axis=(1, 2))
    plain_means = cut_tiles(plain, 8).astype(float).mean(axis=(1, 2))
    assert np.abs(half_means - (plain_means + want) / 2).max() <= 0.5


def test_grey_target_and_grey_tiles_give_a_grey_mosaic_at_the_scale():
    tiles = RNG.integers(0, 256, (20, 8, 8), dtype=np.uint8)
    target = RNG.integers(0, 256, (30, 41), dtype=np.uint8)
    image, report = make_mosaic(target, *library(tiles), spec(scale=[5, 5], grid=1))
    assert image.shape == (15, 25) and report["cells"] == [3, 5]
    colour_target = RNG.integers(0, 256, (30, 41, 3), dtype=np.uint8)
    assert make_mosaic(colour_target, *library(tiles), spec(grid=1))[0].shape == (24, 40, 3)


def test_quality_matches_skimage_formulas():
    a = RNG.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    b = RNG.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    scores = quality(a, b)
    expected = deltaE_ciede2000(rgb2lab(a / 255.0), rgb2lab(b / 255.0)).mean()
    mse = ((a.astype(float) - b) ** 2).mean()
    assert scores["mean_ciede2000"] == pytest.approx(expected, abs=1e-4)
    assert scores["psnr_db"] == pytest.approx(10 * np.log10(255**2 / mse), abs=1e-4)


def test_input_checks_name_the_key():
    with pytest.raises(ConfigError, match=r"config key mosaics.m.tile: 40 px is larger than the 30x20 target"):
        check_fits((20, 30), 40, 10, None, "mosaics.m", "lib")
    with pytest.raises(ConfigError, match=r"mosaics.m.max_repeats: .*24 cells need at least 12 tiles"):
        check_fits((32, 48), 8, 5, 2, "mosaics.m", "lib")
    with pytest.raises(ConfigError, match="mosaics.m.library: library 'lib' has no tiles"):
        check_fits((20, 30), 8, 0, None, "mosaics.m", "lib")
    assert check_fits((20, 30), 8, 6, 2, "mosaics.m", "lib") == (2, 3)


def test_non_square_cells_give_the_output_geometry_and_rebuild_exactly():
    tiles = RNG.integers(0, 256, (50, 6, 10, 3), dtype=np.uint8)
    layout = RNG.permutation(50)[:20]
    target = assemble(tiles[layout], 4, 5)  # 24 x 50 px: 4 rows and 5 columns of 6 x 10 cells
    image, report = make_mosaic(target, *library(tiles), spec(tile=[6, 10], scale=[6, 10], grid=2, max_repeats=1))
    assert np.array_equal(image, target) and report["cells"] == [4, 5] and report["tile"] == [6, 10]
    wide, _ = make_mosaic(target, *library(tiles), spec(tile=[6, 10], scale=[12, 20], grid=2))
    assert wide.shape == (48, 100, 3)
    with pytest.raises(ValueError, match="library tiles are"):
        make_mosaic(target, *library(tiles), spec(tile=[10, 6]))


def test_bands_render_and_measure_as_the_whole_mosaic(monkeypatch):
    tiles = RNG.integers(0, 256, (80, 8, 8, 3), dtype=np.uint8)
    target = RNG.integers(0, 256, (88, 72, 3), dtype=np.uint8)
    whole, report = make_mosaic(target, *library(tiles), spec(grid=2, colour_correction=0.4, scale=[12, 12]))
    monkeypatch.setattr(mosaic, "BAND_PIXELS", 1)  # one row of cells per band
    layout = mosaic.match_mosaic(target, *library(tiles), spec(grid=2, colour_correction=0.4, scale=[12, 12]))
    sums = [0.0, 0.0, 0, 0]
    bands = list(mosaic.measured_bands(layout, mosaic.render_bands(layout, tiles, (12, 12), 0.4), (12, 12), sums))
    assert len(bands) == 11 and all(band.shape == (12, 108, 3) for band in bands)
    assert np.array_equal(np.concatenate(bands), whole)
    scores = mosaic.quality_from_sums(*sums)
    assert scores["mean_ciede2000"] == pytest.approx(report["mean_ciede2000"], abs=1e-3)
    assert scores["psnr_db"] == pytest.approx(report["psnr_db"], abs=1e-3)


def test_the_placement_table_names_each_cells_tile_and_its_source():
    tiles = RNG.integers(0, 256, (30, 8, 8, 3), dtype=np.uint8)
    target = RNG.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    provenance = {
        "source": np.arange(30) % 3,
        "top": np.arange(30) * 8,
        "left": np.zeros(30, np.int64),
        "rotation": np.where(np.arange(30) < 15, 0, 180),
        "flip": np.arange(30) % 2 == 1,
    }
    layout = mosaic.match_mosaic(target, *library(tiles), spec(grid=2, max_repeats=1))
    lines = mosaic.placement_table(layout, provenance, ["a.jpg", "b.jpg", "c.jpg"]).splitlines()
    assert lines[0].split("\t") == list(mosaic.PLACEMENT_COLUMNS) and len(lines) == 1 + 12
    rebuilt = []
    for line in lines[1:]:
        row, col, tile, file, top, left, rotation, flip, distance = line.split("\t")
        tile = int(tile)
        assert int(row) * 4 + int(col) == len(rebuilt)
        assert file == "abc"[tile % 3] + ".jpg" and int(top) == tile * 8 and int(flip) == tile % 2
        assert int(rotation) == (0 if tile < 15 else 180)
        assert float(distance) == pytest.approx(layout.distances[len(rebuilt)], abs=1e-4)
        rebuilt.append(tiles[tile])
    image, _ = make_mosaic(target, *library(tiles), spec(grid=2, max_repeats=1))
    assert np.array_equal(assemble(np.stack(rebuilt), 3, 4), image)


def test_min_spacing_and_assignment_reach_the_mosaic():
    tiles = RNG.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    target = RNG.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    layout = mosaic.match_mosaic(target, *library(tiles), spec(grid=2, min_spacing=2))
    grid = layout.assignment.reshape(6, 6)
    for r in range(6):
        for c in range(6):
            near = grid[max(0, r - 2) : r + 3, max(0, c - 2) : c + 3]
            assert np.count_nonzero(near == grid[r, c]) == 1
    greedy = mosaic.match_mosaic(target, *library(tiles), spec(grid=2, max_repeats=1, assignment="greedy"))
    optimal = mosaic.match_mosaic(target, *library(tiles), spec(grid=2, max_repeats=1))
    assert optimal.distances.sum() <= greedy.distances.sum() + 1e-9
    with pytest.raises(ConfigError, match="config key mosaics.m.min_spacing"):
        mosaic.match_mosaic(target, *library(tiles[:8]), spec(grid=2, min_spacing=2))


def test_a_large_print_is_written_without_holding_it_whole(tmp_path, monkeypatch):
    import tracemalloc

    import cv2
    from pixelflow.io.png import write_png_bands

    tiles = RNG.integers(0, 256, (50, 8, 8, 3), dtype=np.uint8)
    target = RNG.integers(0, 256, (192, 192, 3), dtype=np.uint8)
    scale = (200, 200)  # 24 x 24 cells of 200 px: a 4800 x 4800 RGB print, 69 MB of pixels
    monkeypatch.setattr(mosaic, "BAND_PIXELS", 1 << 20)  # one row of cells, 2.9 MB, per band
    layout = mosaic.match_mosaic(target, *library(tiles), spec(grid=2, scale=list(scale)))
    sums = [0.0, 0.0, 0, 0]
    tracemalloc.start()
    bands = mosaic.measured_bands(layout, mosaic.render_bands(layout, tiles, scale, 0.0), scale, sums)
    write_png_bands(tmp_path / "print.png", 4800, 4800, 3, bands)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4800 * 4800 * 3 / 4
    written = read_image(tmp_path / "print.png")
    assert written.shape == (4800, 4800, 3) and sums[2] == 192 * 192
    last = layout.assignment[-1]
    assert np.array_equal(written[-200:, -200:], cv2.resize(tiles[last], scale, interpolation=cv2.INTER_LINEAR))
