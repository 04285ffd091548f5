"""Remap for sources past OpenCV's 32767-pixel limit: the same pixels as remap on the whole source."""

import cv2
import numpy as np
import pytest
from pixelflow.maps import remap as remap_module
from pixelflow.maps.remap import INVALID, METHODS, fixed_point_maps, remap
from pixelflow.maps.remap import KERNEL_REACH as REACH

from .test_reproject import run, smooth_world


@pytest.mark.parametrize("nearest", [False, True])
def test_fixed_point_maps_are_opencvs(nearest):
    rng = np.random.default_rng(3)
    coords = rng.uniform(-20, 3000, (50, 70, 2)).astype(np.float32)
    coords[0, :20, 0] = np.arange(20, dtype=np.float32) / 64  # halves of a 1/32 step: rounding ties
    coords[1, :5] = INVALID
    map1, map2 = cv2.convertMaps(coords, None, cv2.CV_16SC2, nninterpolation=nearest)
    column, row, fraction = fixed_point_maps(coords, nearest)
    np.testing.assert_array_equal(column, map1[..., 0])
    np.testing.assert_array_equal(row, map1[..., 1])
    if nearest:
        assert fraction is None
    else:
        np.testing.assert_array_equal(fraction, map2)


def scattered_coords(height, width, rows, columns, seed):
    """Coordinates over a source of rows x columns: a smooth patch, a stripe over all longitudes, the seam, gaps."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    coords = np.stack([x * 0.37 + 5.2, y * 0.29 + 3.1], axis=-1)
    coords[: height // 3, :, 0] = rng.uniform(-0.5, columns - 0.5, (height // 3, width))  # reads all longitudes
    coords[-2:, :, 0] = columns - 0.5 + rng.uniform(-2, 2, (2, width))  # across the antimeridian
    coords[..., 1] = np.clip(coords[..., 1], 0, rows - 1)
    coords[height // 2, : width // 2] = INVALID
    return coords.astype(np.float32)


@pytest.mark.parametrize("interpolation", sorted(METHODS))
@pytest.mark.parametrize("border", [cv2.BORDER_WRAP, cv2.BORDER_REPLICATE])
@pytest.mark.parametrize("channels, dtype", [(3, np.uint8), (1, np.uint16), (4, np.uint8)])
@pytest.mark.parametrize("limit", [64, 170])  # every tile from blocks; footprints where they fit
def test_gathered_sources_give_remaps_pixels(monkeypatch, interpolation, border, channels, dtype, limit):
    source = np.ascontiguousarray(smooth_world(60, 120, channels=channels, dtype=dtype, seed=channels))
    source = source.reshape(60, 120, channels)
    coords = scattered_coords(40, 50, 60, 120, seed=limit)
    usable = coords[..., 0] > INVALID / 2
    method, reach, nearest = METHODS[interpolation], REACH[interpolation], interpolation == "nearest"
    expected = remap(source, coords.copy(), method, border, reach, nearest, INVALID)
    monkeypatch.setattr(remap_module, "REMAP_LIMIT", limit)
    monkeypatch.setattr(remap_module, "BLOCK_PIXELS", 300)  # several block batches per tile
    result = remap(source, coords.copy(), method, border, reach, nearest, INVALID)
    assert result.shape == expected.shape == (40, 50, channels)
    if dtype == np.uint16 and interpolation == "lanczos":
        # OpenCV sums 16-bit Lanczos in float, in another order where the kernel crosses the source's
        # edge (the antimeridian): the results may differ by one level there.
        difference = np.abs(result[usable].astype(int) - expected[usable].astype(int))
        assert difference.max() <= 1 and np.mean(difference) < 0.01
    else:
        np.testing.assert_array_equal(result[usable], expected[usable])


def test_a_source_wider_than_opencvs_limit_is_reprojected(tmp_path):
    # 40000 x 20 pixels over the globe (pixels 0.009 x 9 degrees), to a 317 x 20 plate carree:
    # nearest-neighbour output column c reads source column (c + 0.5) 40000 / 317 - 0.5, rounded.
    stripes = (np.arange(40000) * 7 % 251).astype(np.uint8)
    image = np.repeat(np.stack([stripes, stripes[::-1], stripes // 2], axis=-1)[None], 20, axis=0)
    facts, output = run(
        tmp_path,
        image,
        {"kind": "equirectangular", "width": 317, "height": 20},
        geometry={"bounds": [-180, -90, 180, 90]},
        interpolation="nearest",
        name="narrow.png",
    )
    assert facts["source"][:2] == (40000, 20)
    result = cv2.cvtColor(cv2.imread(str(output), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)
    position = (np.arange(317) + 0.5) * 40000 / 317 - 0.5
    ties = np.abs(position % 1 - 0.5) < 0.01
    assert ties.mean() < 0.1
    np.testing.assert_array_equal(result[:, ~ties], image[:, np.rint(position).astype(int)][:, ~ties])
