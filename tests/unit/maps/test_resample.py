"""Nodata-aware resampling and area averaging of one tile, against GDAL's warper, OpenCV's remap and brute force.

GDAL's warper is driven through ``rasterio.warp.reproject`` with the source and
the output in the same CRS, their affine transforms differing by a scale and a
shift: output pixel (i, j) then reads source column ``shift_x + scale * (i + 0.5)
- 0.5`` and row ``shift_y + scale * (j + 0.5) - 0.5`` (pixel centres at
integers), which is the coordinate map given to :func:`resample`.
"""

import cv2
import numpy as np
import pytest
from affine import Affine
from pixelflow.maps.resample import RESAMPLINGS, resample
from rasterio.warp import Resampling, reproject

KERNELS = {
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "cubic": cv2.INTER_CUBIC,
    "lanczos": cv2.INTER_LANCZOS4,
}
PIXEL = 1024.0  # source pixel size in metres; powers of two keep GDAL's pixel coordinates exact
ORIGIN = (2.0**20, 2.0**21)


def map_coords(shape, scale, shift=(0.0, 0.0)):
    """The (h, w, 2) float32 source (column, row) of an output of ``shape`` pixels ``scale`` source pixels wide."""
    rows, columns = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    return np.stack([shift[0] + scale * (columns + 0.5) - 0.5, shift[1] + scale * (rows + 0.5) - 0.5], axis=-1).astype(
        np.float32
    )


def gdal_warp(source, shape, scale, resampling, shift=(0.0, 0.0), nodata=None):
    """GDAL's warp of the 2-D ``source`` onto the output :func:`map_coords` describes."""
    destination = np.full(shape, 0 if nodata is None else nodata, source.dtype)
    reproject(
        source,
        destination,
        src_transform=Affine(PIXEL, 0, ORIGIN[0], 0, -PIXEL, ORIGIN[1]),
        src_crs="EPSG:3857",
        dst_transform=Affine(
            scale * PIXEL, 0, ORIGIN[0] + shift[0] * PIXEL, 0, -scale * PIXEL, ORIGIN[1] - shift[1] * PIXEL
        ),
        dst_crs="EPSG:3857",
        resampling=resampling,
        src_nodata=nodata,
        dst_nodata=nodata,
    )
    return destination


def plain_remap(source, coords, interpolation, border=cv2.BORDER_REPLICATE):
    """``cv2.remap`` on maps converted to OpenCV's 1/32-pixel fixed point, as :mod:`pixelflow.maps.remap` does.

    (Given float maps, OpenCV 5 weights bilinear and cubic by the exact fraction instead.)
    """
    map1, map2 = cv2.convertMaps(coords, None, cv2.CV_16SC2, nninterpolation=interpolation == "nearest")
    pixels = cv2.remap(source, map1, map2, KERNELS[interpolation], borderMode=border)
    return pixels.reshape(coords.shape[:2] + source.shape[2:])


def smooth_image(height, width, noise=0.0, seed=0):
    """A smooth uint8 image, values 10..250, plus Gaussian noise of ``noise`` levels."""
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[0:height, 0:width]
    image = 130 + 80 * np.sin(columns / 9.0) * np.cos(rows / 7.0) + rng.normal(0, noise, (height, width))
    return np.clip(image, 10, 250).astype(np.uint8)


def with_holes(height, width):
    """(height, width) validity with a few nodata blocks, one of them a single pixel."""
    valid = np.ones((height, width), bool)
    for row, column, rows, columns in [(20, 30, 9, 12), (60, 80, 5, 5), (40, 100, 15, 3), (70, 10, 1, 1)]:
        valid[row : row + rows, column : column + columns] = False
    return valid


def rotated_coords(shape, height, width):
    """A rotated, scaled coordinate map over a (height, width) source with some NaN and some outside pixels."""
    rows, columns = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    angle = 0.3
    column = 3.3 + 1.1 * (np.cos(angle) * columns - np.sin(angle) * rows) + 12
    row = 2.7 + 1.1 * (np.sin(angle) * columns + np.cos(angle) * rows)
    coords = np.stack([column, row], axis=-1).astype(np.float32)
    coords[0, :5] = np.nan
    coords[-1, -3:] = (width + 2, 5)  # right of the source
    return coords


# --------------------------------------------------------------------------------------------------
# Kernels


@pytest.mark.parametrize("interpolation", sorted(KERNELS))
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32])
def test_without_invalid_pixels_the_pixels_are_plain_remaps(interpolation, dtype):
    rng = np.random.default_rng(1)
    low, high = (-3000, 3000) if dtype == np.int16 else (0, 250)
    source = rng.uniform(low, high, (40, 50, 3)).astype(dtype)
    coords = rotated_coords((30, 35), 40, 50)
    inside = np.isfinite(coords[..., 0]) & (coords[..., 0] <= 49.5) & (coords[..., 1] <= 39.5)
    expected = plain_remap(source, np.where(inside[..., None], coords, 0).astype(np.float32), interpolation)
    for valid in (None, np.ones((40, 50), bool)):
        pixels, valid_out = resample(source, coords, interpolation, valid=valid)
        assert pixels.dtype == dtype and pixels.shape == (30, 35, 3)
        np.testing.assert_array_equal(valid_out, inside)
        np.testing.assert_array_equal(pixels[inside], expected[inside])
        if dtype == np.float32:
            assert np.isnan(pixels[~inside]).all()
        else:
            assert (pixels[~inside] == 0).all()


@pytest.mark.parametrize("interpolation", sorted(KERNELS))
def test_wrapping_sources_are_read_across_the_seam(interpolation):
    source = smooth_image(30, 60)[..., None]
    coords = map_coords((20, 40), 0.9, shift=(-12.0, 3.0))  # columns -12 .. 24: across column 0
    coords[5] += (60, 0)  # a row of columns a whole turn further: the same source pixels
    pixels, valid_out = resample(source, coords, interpolation, wraps=True)
    unwrapped = coords.copy()
    unwrapped[5] -= (60, 0)
    assert valid_out is None
    np.testing.assert_array_equal(pixels, plain_remap(source, unwrapped, interpolation, cv2.BORDER_WRAP))
    _, inside = resample(source, coords, interpolation, wraps=False)
    assert not inside[0, :10].any() and inside[0, -5:].all()  # without wrapping, columns left of 0 have no source


@pytest.mark.parametrize("interpolation", sorted(KERNELS))
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize(
    "width, shape, scale, shift, wraps",
    [
        (128, (110, 150), 0.77, (2.3, 1.1), False),  # a compact window of the source
        (128, (11, 15), 8.0, (0.0, 0.0), False),  # sparse reads, every coordinate half-way between pixels
        (128, (110, 60), 0.77, (-20.3, 1.1), True),  # across the seam
        (127, (40, 40), 1.0, (-20.5, 0.0), True),  # across the seam of an odd width, half-way coordinates
        (127, (11, 15), 8.0, (-40.0, 0.0), True),  # the same, sparse
    ],
)
def test_nodata_is_never_blended_into_valid_pixels(interpolation, dtype, width, shape, scale, shift, wraps):
    valid = with_holes(96, width)
    valid[:, :3] = valid[:, -2:] = False  # holes on both sides of the seam
    source = np.where(valid, 200, np.nan if dtype == np.float32 else 0).astype(dtype)[..., None]
    coords = map_coords(shape, scale, shift)
    coords[0, :4] = np.nan
    coords[1, :4] = (width + 5, 3) if not wraps else (3, -2)  # off the source
    pixels, valid_out = resample(source, coords, interpolation, valid=valid)
    assert valid_out is not None and not valid_out[:2, :4].any() and 0.3 < valid_out.mean() < 1
    np.testing.assert_allclose(pixels[valid_out], 200, atol=1e-3)  # exactly 200 once rounded
    if dtype == np.uint8:
        assert (pixels[~valid_out] == 0).all()
    else:
        assert np.isnan(pixels[~valid_out]).all()


@pytest.mark.parametrize(
    "interpolation, resampling, shape, scale, shift",
    [
        ("bilinear", Resampling.bilinear, (100, 140), 26 / 32, (3.0, 2.0)),
        ("nearest", Resampling.nearest, (100, 140), 26 / 32, (3.0, 2.0)),
        ("nearest", Resampling.nearest, (11, 15), 8.0, (0.25, 0.25)),  # GDAL's bilinear widens when downsampling
    ],
)
def test_kernels_with_nodata_agree_with_gdal(interpolation, resampling, shape, scale, shift):
    """GDAL renormalises bilinear over valid pixels and drops pixels whose containing pixel is nodata.

    Scale 26/32 and whole-pixel shifts put every coordinate on OpenCV's 1/32-pixel grid (its
    weights are then GDAL's) and never half-way between pixels (no rounding ties for the
    containing pixel); so does scale 8 with quarter-pixel shifts. Measured: the validity
    masks agree on every pixel, the values are equal on every pixel valid in both (near the
    holes included); asserted: masks equal except within a pixel of a hole's edge, values
    within 1 level.
    """
    valid = with_holes(96, 128)
    source = np.where(valid, smooth_image(96, 128), 0).astype(np.uint8)
    coords = map_coords(shape, scale, shift)
    pixels, valid_out = resample(source, coords, interpolation, valid=valid)
    expected = gdal_warp(source, shape, scale, resampling, shift, nodata=0)
    gdal_valid = expected != 0
    edges = cv2.morphologyEx((~valid).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    near_edge = plain_remap(edges, coords, "nearest").astype(bool)
    disagree = valid_out != gdal_valid
    assert not (disagree & ~near_edge).any()
    assert disagree.mean() < 0.002 and not valid_out.all()
    both = valid_out & gdal_valid
    assert np.abs(pixels.astype(int) - expected)[both].max() <= 1


def brute_force_bilinear(source, valid, coords, wraps):
    """Bilinear over valid pixels only, exact weights: (values, valid: containing pixel valid and weight > 0)."""
    height, width = source.shape
    column, row = coords[..., 0].astype(np.float64), coords[..., 1].astype(np.float64)
    left, top = np.floor(column).astype(int), np.floor(row).astype(int)
    across, down = column - left, row - top
    total = np.zeros(column.shape)
    weight = np.zeros(column.shape)
    for dy, wy in ((0, 1 - down), (1, down)):
        for dx, wx in ((0, 1 - across), (1, across)):
            r = np.clip(top + dy, 0, height - 1)
            c = (left + dx) % width if wraps else np.clip(left + dx, 0, width - 1)
            ok = valid[r, c]
            total += np.where(ok, wy * wx * np.where(ok, source[r, c], 0), 0)
            weight += np.where(ok, wy * wx, 0)
    nearest_row = np.clip(np.rint(row).astype(int), 0, height - 1)
    nearest_column = np.rint(column).astype(int) % width if wraps else np.rint(column).astype(int)
    good = valid[nearest_row, nearest_column] & (weight > 1e-5)
    return total / np.where(good, weight, 1), good


@pytest.mark.parametrize(
    "height, width, shape, scale, shift, wraps",
    [
        (96, 128, (60, 80), 26 / 32, (5.0, 3.0), False),  # a tile reading a compact window of the source
        (96, 128, (11, 15), 8.0, (0.0, 0.0), False),  # one pixel in 64 read: each kernel's pixels looked up
        (40, 40000, (40, 300), 26 / 32, (-150.0, 2.0), True),  # over OpenCV's remap limit, across the seam
        (40, 40000, (4, 40), 8.0, (-300.0, 2.0), True),
    ],
)
def test_renormalised_bilinear_is_the_weighted_mean_of_valid_pixels(height, width, shape, scale, shift, wraps):
    """Coordinates on OpenCV's 1/32-pixel grid, so that its weights are the exact ones."""
    rng = np.random.default_rng(2)
    source = rng.uniform(0, 100, (height, width)).astype(np.float32)
    valid = rng.uniform(size=(height, width)) > 0.15  # scattered nodata: NaN
    source[~valid] = np.nan
    coords = map_coords(shape, scale, shift)
    pixels, valid_out = resample(source, coords, "bilinear", wraps=wraps)
    expected, expected_valid = brute_force_bilinear(np.nan_to_num(source), valid, coords, wraps)
    np.testing.assert_array_equal(valid_out, expected_valid)
    np.testing.assert_allclose(pixels[valid_out], expected[valid_out], rtol=1e-5, atol=1e-3)
    assert pixels.dtype == np.float32 and np.isnan(pixels[~valid_out]).all()


@pytest.mark.parametrize("interpolation", ["cubic", "lanczos"])
def test_integer_overshoot_is_clipped_not_wrapped(interpolation):
    rng = np.random.default_rng(4)
    source = np.where(rng.uniform(size=(40, 50)) > 0.5, 255, 0).astype(np.uint8)
    valid = rng.uniform(size=(40, 50)) > 0.2
    coords = map_coords((50, 60), 0.71, shift=(4.1, 3.3))
    pixels, valid_out = resample(source, coords, interpolation, valid=valid)
    floats, float_valid = resample(source.astype(np.float32), coords, interpolation, valid=valid)
    np.testing.assert_array_equal(valid_out, float_valid)
    assert (floats[valid_out] < -10).any() and (floats[valid_out] > 265).any()  # the kernels do overshoot
    rounded = np.clip(np.rint(floats[valid_out]), 0, 255)
    assert np.abs(pixels[valid_out].astype(int) - rounded).max() <= 1


def test_float_sources_treat_nan_pixels_as_invalid():
    valid = with_holes(96, 128)
    image = smooth_image(96, 128).astype(np.float32)
    with_nan = np.where(valid, image, np.nan).astype(np.float32)[..., None]
    zeroed = np.where(valid, image, 0).astype(np.float32)[..., None]
    coords = map_coords((50, 70), 1.7, shift=(1.2, 0.4))
    for interpolation in RESAMPLINGS:
        pixels, valid_out = resample(with_nan, coords, interpolation)
        expected, expected_valid = resample(zeroed, coords, interpolation, valid=valid)
        assert pixels.dtype == np.float32
        np.testing.assert_array_equal(valid_out, expected_valid)
        np.testing.assert_array_equal(pixels[valid_out], expected[valid_out])
        assert np.isnan(pixels[~valid_out]).all() and not np.isnan(pixels[valid_out]).any()


@pytest.mark.parametrize("interpolation", RESAMPLINGS)
def test_coordinates_without_a_source_give_invalid_pixels(interpolation):
    source = smooth_image(20, 30)
    coords = map_coords((6, 8), 1.0, shift=(2.0, 2.0))
    pixels, valid_out = resample(source, coords, interpolation)
    assert valid_out is None and pixels.shape == (6, 8) and pixels.dtype == np.uint8
    coords[0, 0] = np.nan
    coords[1, 1] = (-0.6, 3)  # left of the source
    coords[2, 2] = (29.6, 3)  # right of it
    coords[3, 3] = (3, 19.6)  # below it
    coords[4, 4] = (-0.5, 19.5)  # the outer edge of the corner pixel is still on the source
    pixels, valid_out = resample(source, coords, interpolation)
    expected = np.ones((6, 8), bool)
    expected[[0, 1, 2, 3], [0, 1, 2, 3]] = False
    np.testing.assert_array_equal(valid_out, expected)
    assert (pixels[~expected] == 0).all()
    coords[1, 1] = (-40.6, 3)
    coords[2, 2] = (29.6, -0.7)
    _, valid_out = resample(source, coords, interpolation, wraps=True)  # columns wrap, rows do not
    expected[1, 1] = True
    expected[2, 2] = False
    np.testing.assert_array_equal(valid_out, expected)


def test_wrapping_tiles_reading_every_column_or_the_middle_only():
    """A polar-like tile whose kernels read all longitudes, and a tile in the middle of a wrapping source."""
    rng = np.random.default_rng(9)
    source = rng.uniform(0, 100, (30, 64)).astype(np.float32)
    valid = rng.uniform(size=(30, 64)) > 0.2
    columns = np.linspace(-0.5, 63.5, 90, dtype=np.float32)
    coords = np.stack(np.broadcast_arrays(columns[None, :], np.float32(0.7) * np.arange(6)[:, None] + 1), axis=-1)
    coords = (np.rint(coords * 32) / 32).astype(np.float32)  # on OpenCV's grid: its weights are exact
    middle = map_coords((20, 20), 26 / 32, shift=(20.0, 4.0))
    for tile in (coords, middle):
        pixels, valid_out = resample(np.where(valid, source, np.nan), tile, "bilinear", wraps=True)
        expected, expected_valid = brute_force_bilinear(source, valid, tile, wraps=True)
        np.testing.assert_array_equal(valid_out, expected_valid)
        np.testing.assert_allclose(pixels[valid_out], expected[valid_out], rtol=1e-5, atol=1e-3)
    rows, columns = np.mgrid[0:2, 0:8].astype(np.float32)
    spread = np.stack([3.3 + 8 * columns, 4.2 + 8 * rows], axis=-1)  # boxes 8 columns wide, together all columns
    whole_turn = np.stack([3.3 + 31.8 * (columns + rows), 4.2 + 8 * rows], axis=-1)  # each box nearly all columns
    for tile, half_column in ((spread, 4.0), (whole_turn, 31.8)):
        pixels, _ = resample(source, tile.astype(np.float32), "average", valid=valid, wraps=True)
        expected = brute_force_average(source, valid, tile, half_column, 4.0)
        np.testing.assert_allclose(pixels, expected, rtol=1e-5)


def test_splitting_into_chunks_and_blocks_changes_nothing(monkeypatch):
    from pixelflow.maps import resample as resample_module

    rng = np.random.default_rng(10)
    source = rng.uniform(0, 255, (120, 160, 3)).astype(np.uint8)
    valid = rng.uniform(size=(120, 160)) > 0.1
    cases = [("lanczos", map_coords((70, 90), 1.3, (2.0, 3.0))), ("average", map_coords((45, 50), 2.9, (1.0, 2.0)))]
    whole = [resample(source, coords, interpolation, valid=valid) for interpolation, coords in cases]
    for name, value in [
        ("_RENORMALISE_PIXELS", 100),
        ("_BLOCKS_PER_ROW", 7),
        ("_BLOCK_PIXELS", 200),
        ("_TABLE_PIXELS", 400),
    ]:
        monkeypatch.setattr(resample_module, name, value)
    for (interpolation, coords), (pixels, valid_out) in zip(cases, whole, strict=True):
        split_pixels, split_valid = resample(source, coords, interpolation, valid=valid)
        np.testing.assert_array_equal(split_valid, valid_out)
        np.testing.assert_allclose(split_pixels, pixels, atol=1 if interpolation == "average" else 0)


def test_tiles_without_source_sizes_and_dtypes():
    source = smooth_image(20, 30)
    coords = map_coords((4, 5), 1.0, shift=(40.0, 2.0))  # right of the source
    for interpolation in RESAMPLINGS:
        pixels, valid_out = resample(source, coords, interpolation)
        assert not valid_out.any() and (pixels == 0).all()
        pixels, valid_out = resample(source, coords[:0], interpolation)
        assert pixels.shape == (0, 5) and valid_out is None  # no pixel without a value
    for tile in (map_coords((1, 5), 2.0, shift=(2.0, 2.0)), map_coords((5, 1), 2.0, shift=(2.0, 2.0))):
        pixels, _ = resample(source.astype(np.float32), tile, "average")  # one row or column: boxes from one way
        expected = brute_force_average(source, np.ones(source.shape, bool), tile, 1.0, 1.0)
        np.testing.assert_allclose(pixels, expected, rtol=1e-6)
    coords = map_coords((4, 5), 1.7, shift=(2.0, 2.0))
    for interpolation in RESAMPLINGS:
        doubles, _ = resample(source.astype(np.float64), coords, interpolation)
        floats, _ = resample(source.astype(np.float32), coords, interpolation)
        assert doubles.dtype == np.float32 and doubles.shape == (4, 5)
        np.testing.assert_array_equal(doubles, floats)


def test_bad_arguments_are_refused():
    source = np.zeros((4, 4, 1), np.uint8)
    coords = np.zeros((2, 2, 2), np.float32)
    with pytest.raises(ValueError, match="unknown interpolation"):
        resample(source, coords, "mode")
    with pytest.raises(ValueError, match="source must be"):
        resample(source.astype(np.int32), coords, "nearest")
    with pytest.raises(ValueError, match="coords must be"):
        resample(source, coords[..., 0], "nearest")
    with pytest.raises(ValueError, match="valid must be"):
        resample(source, coords, "nearest", valid=np.ones((3, 4), bool))


# --------------------------------------------------------------------------------------------------
# Average


@pytest.mark.parametrize("cell", [1, 2])
def test_average_of_a_fine_checkerboard_is_flat_where_bilinear_aliases(cell):
    rows, columns = np.mgrid[0:256, 0:256] // cell
    board = np.where((rows + columns) % 2, 255, 0).astype(np.uint8)
    coords = map_coords((31, 31), 8.0, shift=(0.45, 0.4))  # boxes not on pixel edges
    average, valid_out = resample(board, coords, "average")
    bilinear, _ = resample(board, coords, "bilinear")
    assert valid_out is None
    assert np.abs(average.astype(float) - 127.5).max() <= 1
    assert np.abs(bilinear.astype(float) - 127.5).max() > 40  # aliasing: the pattern's phase, not its mean
    expected = gdal_warp(board, (31, 31), 8.0, Resampling.average, shift=(0.45, 0.4))
    assert np.abs(average.astype(int) - expected).max() <= 1


@pytest.mark.parametrize("scale, shape", [(8.0, (12, 16)), (5.3, (18, 24))])
def test_average_agrees_with_gdal(scale, shape):
    """Footprints from the Jacobian are GDAL's boxes for a scale and shift, and both weight partial pixels by area.

    Measured (GDAL 3.10): uint8 equal on every pixel at both scales; float32 equal at 8,
    max 4.6e-5 and mean 7.9e-6 at 5.3 (float32 rounding of the mean of values up to 251).
    Asserted: float32 within 1e-3; uint8 within 1 level (a mean half-way between two levels
    may round either way: GDAL rounds halves up, this module to even), mean difference 0.05.
    """
    image = smooth_image(96, 128, noise=20, seed=3)
    pixels, valid_out = resample(image, map_coords(shape, scale), "average")
    expected = gdal_warp(image, shape, scale, Resampling.average)
    difference = np.abs(pixels.astype(int) - expected)
    assert valid_out is None and difference.max() <= 1 and difference.mean() <= 0.05
    fine = image.astype(np.float32) + np.random.default_rng(5).uniform(0, 1, image.shape).astype(np.float32)
    pixels, _ = resample(fine, map_coords(shape, scale), "average")
    assert pixels.dtype == np.float32
    np.testing.assert_allclose(pixels, gdal_warp(fine, shape, scale, Resampling.average), atol=1e-3, rtol=0)


@pytest.mark.parametrize("scale, shape", [(8.0, (12, 16)), (5.3, (18, 24)), (2.5, (38, 51))])
def test_average_leaves_nodata_out_as_gdal_does(scale, shape):
    """Measured: the same valid pixels as GDAL; values equal but one pixel at scale 8, 1 level off.

    Asserted: the same mask, values within 1 level.
    """
    valid = with_holes(96, 128)
    valid[60:72, 16:40] = False  # a hole larger than a box: invalid output pixels
    image = np.where(valid, smooth_image(96, 128, noise=20, seed=6), 0).astype(np.uint8)
    pixels, valid_out = resample(image, map_coords(shape, scale), "average", valid=valid)
    expected = gdal_warp(image, shape, scale, Resampling.average, nodata=0)
    assert valid_out is not None and not valid_out.all()
    np.testing.assert_array_equal(valid_out, expected != 0)
    assert np.abs(pixels.astype(int) - expected)[valid_out].max() <= 1


def brute_force_average(source, valid, coords, half_column, half_row):
    """The area-weighted mean of valid pixels over each box, pixel by pixel, columns wrapping."""
    height, width = source.shape
    means = np.full(coords.shape[:2], np.nan)
    for index in np.ndindex(coords.shape[:2]):
        column, row = coords[index].astype(np.float64) + 0.5
        if np.isnan(column):
            continue
        left, right = column - half_column, column + half_column
        top, bottom = max(row - half_row, 0), min(row + half_row, height)
        columns = np.arange(np.floor(left), np.ceil(right)).astype(int)
        rows = np.arange(np.floor(top), np.ceil(bottom)).astype(int)
        across = np.minimum(columns + 1, right) - np.maximum(columns, left)
        down = np.minimum(rows + 1, bottom) - np.maximum(rows, top)
        weights = down[:, None] * across[None, :] * valid[np.ix_(rows, columns % width)]
        means[index] = (weights * source[np.ix_(rows, columns % width)]).sum() / weights.sum()
    return means


@pytest.mark.parametrize("width", [64, 40000])
def test_average_boxes_across_the_seam_read_both_edges(width):
    rng = np.random.default_rng(7)
    source = rng.uniform(0, 100, (16, width)).astype(np.float32)
    valid = rng.uniform(size=(16, width)) > 0.1
    coords = map_coords((3, 6), 4.0, shift=(width - 11.7, 1.3))  # columns width - 12 .. width + 12
    pixels, valid_out = resample(np.where(valid, source, 0), coords, "average", valid=valid, wraps=True)
    assert valid_out is None
    np.testing.assert_allclose(pixels, brute_force_average(source, valid, coords, 2.0, 2.0), rtol=1e-5)
    for turned in (coords - (width, 0), np.stack([(coords[..., 0] + 0.5) % width - 0.5, coords[..., 1]], axis=-1)):
        again, _ = resample(np.where(valid, source, 0), turned, "average", valid=valid, wraps=True)
        np.testing.assert_allclose(again, pixels, rtol=1e-5)  # the same places a turn lower, or wrapped in the map
    _, valid_out = resample(source, coords, "average", wraps=False)
    assert valid_out[0, :2].all() and not valid_out[0, -2:].any()  # without wrapping: past the right edge


def test_average_footprints_follow_the_coordinate_maps_jacobian():
    """A rotated, anisotropic map: boxes of half-sizes 0.5 (|dcol/dx| + |dcol/dy|), and so on, around each centre."""
    rng = np.random.default_rng(8)
    source = rng.uniform(0, 100, (120, 160)).astype(np.float32)
    rows, columns = np.mgrid[0:8, 0:9].astype(np.float64)
    jacobian = np.array([[3.0, 1.2], [-0.8, 4.0]])  # d(column, row) / d(x, y)
    column = 20 + jacobian[0, 0] * columns + jacobian[0, 1] * rows
    row = 15 + jacobian[1, 0] * columns + jacobian[1, 1] * rows
    coords = np.stack([column, row], axis=-1).astype(np.float32)
    coords[4, 4] = np.nan  # its neighbours fall back to one-sided differences: the same for a linear map
    pixels, valid_out = resample(source, coords, "average")
    half_column, half_row = 0.5 * np.abs(jacobian).sum(axis=1)
    expected = brute_force_average(source, np.ones(source.shape, bool), coords, half_column, half_row)
    np.testing.assert_array_equal(valid_out, np.isfinite(coords[..., 0]))
    np.testing.assert_allclose(pixels[valid_out], expected[valid_out], rtol=1e-5)
