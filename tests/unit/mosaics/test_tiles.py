"""Tile libraries: pixel conversion, cutting, orientation, pooled features, library files."""

import cv2
import numpy as np
import pytest
from pixelflow.io.images import ImageError, write_image
from pixelflow.mosaics.tiles import (
    area_weights,
    build_library,
    cut_tiles,
    evenly_spaced,
    grid_features,
    load_library,
    orient,
    pooled_features,
    resize_tile,
    save_library,
    to_uint8,
    to_uint8_grey_or_rgb,
)
from skimage.color import rgb2lab

RNG = np.random.default_rng(4)


def test_to_uint8_rescales_16_bit_float_and_bool():
    levels = np.array([0, 257, 65535, 32896], np.uint16)
    assert to_uint8(levels).tolist() == [0, 1, 255, 128]
    assert to_uint8(np.array([0.0, 0.5, 1.0, 1.7, -1.0], np.float32)).tolist() == [0, 128, 255, 255, 0]
    assert to_uint8(np.array([True, False])).tolist() == [255, 0]
    with pytest.raises(ImageError, match="int32"):
        to_uint8(np.zeros(3, np.int32), "x.tif")


def test_alpha_is_composited_over_white():
    rgba = RNG.integers(0, 256, (5, 6, 4), dtype=np.uint8)
    out = to_uint8_grey_or_rgb(rgba)
    alpha = rgba[..., 3:].astype(float) / 255
    expected = np.rint(rgba[..., :3] * alpha + 255 * (1 - alpha))
    assert out.shape == (5, 6, 3) and np.abs(out.astype(int) - expected).max() <= 1
    grey_alpha = rgba[..., [0, 3]]
    assert to_uint8_grey_or_rgb(grey_alpha).shape == (5, 6)
    assert to_uint8_grey_or_rgb(rgba[..., :1]).shape == (5, 6)


@pytest.mark.parametrize("shape", [(48, 64), (50, 70, 3)])
def test_cut_tiles_are_the_non_overlapping_pieces_in_row_order(shape):
    image = RNG.integers(0, 256, shape, dtype=np.uint8)
    tiles = cut_tiles(image, 16)
    expected = [image[r : r + 16, c : c + 16] for r in range(0, shape[0] - 15, 16) for c in range(0, shape[1] - 15, 16)]
    assert len(tiles) == len(expected) == (shape[0] // 16) * (shape[1] // 16)
    assert all(np.array_equal(a, b) for a, b in zip(tiles, expected, strict=True))


def test_resize_tile_takes_the_centred_square():
    image = np.zeros((20, 40), np.uint8)
    image[:, 10:30] = 200
    assert np.all(resize_tile(image, 5) == 200)


def test_orient_gives_each_rotation_then_mirrors():
    tiles = RNG.integers(0, 256, (3, 4, 4, 3), dtype=np.uint8)
    out = orient(tiles, (0, 90, 270), flip=True)
    assert out.shape == (18, 4, 4, 3)
    for i, tile in enumerate(tiles):
        assert np.array_equal(out[3 + i], np.rot90(tile))
        assert np.array_equal(out[6 + i], np.rot90(tile, 3))
        assert np.array_equal(out[9 + 3 + i], np.fliplr(np.rot90(tile)))


def test_evenly_spaced_keeps_order_and_count():
    assert evenly_spaced(10, None).tolist() == list(range(10))
    kept = evenly_spaced(10, 4)
    assert kept.tolist() == [0, 2, 5, 7]


@pytest.mark.parametrize("size", [8, 10, 13])
def test_area_pooling_matches_opencv_inter_area(size):
    tiles = RNG.random((5, size, size, 3)).astype(np.float32) * 255
    rgb_tiles = np.rint(tiles).astype(np.uint8)
    pooled = pooled_features(rgb_tiles, "rgb", cells=4)
    weights = area_weights(size, 4)
    assert np.allclose(weights.sum(axis=1), 1)
    for tile, features in zip(rgb_tiles, pooled, strict=True):
        expected = cv2.resize(tile.astype(np.float32), (4, 4), interpolation=cv2.INTER_AREA)
        assert np.allclose(features, expected, atol=1e-3)


def test_lab_features_are_means_of_pixel_lab_values():
    tiles = RNG.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    features = grid_features(pooled_features(tiles, "lab"), 1)
    expected = rgb2lab(tiles / 255.0).mean(axis=(1, 2))
    assert np.allclose(features, expected, atol=1e-3)
    two = grid_features(pooled_features(tiles, "lab"), 2).reshape(6, 2, 2, 3)
    lab = rgb2lab(tiles / 255.0)
    assert np.allclose(two[:, 1, 0], lab[:, 8:, :8].mean(axis=(1, 2)), atol=1e-3)


def test_grey_tiles_have_the_features_of_their_rgb_copies():
    grey = RNG.integers(0, 256, (4, 8, 8), dtype=np.uint8)
    assert np.allclose(pooled_features(grey), pooled_features(grey[..., None].repeat(3, -1)))


def test_library_of_mixed_images_is_rgb_and_names_a_broken_file(tmp_path):
    write_image(tmp_path / "grey.png", RNG.integers(0, 256, (32, 40), dtype=np.uint8))
    write_image(tmp_path / "deep.png", RNG.integers(0, 65536, (16, 16), dtype=np.uint16))
    write_image(tmp_path / "alpha.png", RNG.integers(0, 256, (20, 33, 4), dtype=np.uint8))
    paths = [tmp_path / name for name in ("grey.png", "deep.png", "alpha.png")]
    tiles = build_library(paths, 16, "cut", rotations=(0, 180), processes=2)
    assert tiles.shape == ((2 * 2 + 1 + 2) * 2, 16, 16, 3) and tiles.dtype == np.uint8
    grey_only = build_library(paths[:2], 16, "cut")
    assert grey_only.shape == (5, 16, 16)
    (tmp_path / "broken.png").write_bytes((tmp_path / "grey.png").read_bytes()[:100])
    with pytest.raises(Exception, match="broken.png"):
        build_library([*paths, tmp_path / "broken.png"], 16, "cut", processes=2)


def test_saved_library_round_trips(tmp_path):
    tiles = RNG.integers(0, 256, (7, 12, 12, 3), dtype=np.uint8)
    save_library(tmp_path / "lib.npz", tiles)
    loaded, pooled = load_library(tmp_path / "lib.npz")
    assert np.array_equal(loaded, tiles)
    assert np.allclose(pooled["lab"], pooled_features(tiles, "lab"))
    assert [p.name for p in tmp_path.iterdir()] == ["lib.npz"]
