"""Mosaic assembly, colour correction, quality figures, band-parallel matching and input checks."""

import numpy as np
import pytest
from pixelflow.mosaics import render as mosaic
from pixelflow.mosaics.render import assemble, cell_bands, check_fits, make_mosaic, quality
from pixelflow.mosaics.tiles import cut_tiles, pooled_features
from pixelflow.planning.config import ConfigError
from skimage.color import deltaE_ciede2000, rgb2lab

RNG = np.random.default_rng(11)


def spec(**changes):
    base = {
        "tile": 8,
        "grid": 4,
        "space": "lab",
        "max_repeats": None,
        "colour_correction": 0.0,
        "scale": 8,
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
    image, report = make_mosaic(target, *library(tiles), spec(scale=5, grid=1))
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
    with pytest.raises(
        ConfigError, match=r"mosaics.m.max_repeats: .* 24 cells need at least 12 tiles at max_repeats=2"
    ):
        check_fits((32, 48), 8, 5, 2, "mosaics.m", "lib")
    with pytest.raises(ConfigError, match="mosaics.m.library: library 'lib' has no tiles"):
        check_fits((20, 30), 8, 0, None, "mosaics.m", "lib")
    assert check_fits((20, 30), 8, 6, 2, "mosaics.m", "lib") == (2, 3)
