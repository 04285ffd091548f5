"""The Gaussian filter against scikit-image (the definition), the kernel against scipy's."""

import numpy as np
import pytest
import scipy.ndimage as ndi
import skimage.filters
from pixelflow.pipelines import filters

MODES = sorted(filters.BORDERS)
SHAPES = [(37, 53), (5, 3), (1, 9), (24, 31, 3), (20, 18, 4), (19, 300), (40, 257, 3)]  # wider than a strip too


def random_image(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == "float32":
        return rng.random(shape, dtype=np.float32)
    top = np.iinfo(dtype).max
    return rng.integers(0, top + 1, size=shape, dtype=dtype)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("sigma", [0.4, 1.3, 3.0, 10.0])
def test_gaussian_matches_scikit_image(mode, shape, sigma):
    image = random_image(shape, "float32", seed=len(shape) * 100 + shape[0])
    expected = skimage.filters.gaussian(image, sigma=sigma, mode=mode, channel_axis=-1 if len(shape) == 3 else None)
    result = filters.gaussian(filters.to_float(image), sigma, 4.0, mode)
    assert result.shape == expected.shape
    assert result.dtype == np.float32
    assert np.max(np.abs(result - expected)) <= 1e-5


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
@pytest.mark.parametrize("truncate", [1.0, 2.5, 4.0])
def test_integer_images_are_scaled_like_scikit_image(dtype, truncate):
    image = random_image((40, 45), dtype, seed=3)
    expected = skimage.filters.gaussian(image, sigma=2.2, mode="reflect", truncate=truncate, preserve_range=False)
    result = filters.gaussian(filters.to_float(image), 2.2, truncate, "reflect")
    assert np.max(np.abs(result - expected)) <= 1e-5


@pytest.mark.parametrize("sigma", [0.3, 1.0, 2.49, 2.5, 7.3, 10.0])
@pytest.mark.parametrize("truncate", [4.0, 3.3])
def test_kernel_is_scipys_impulse_response(sigma, truncate):
    impulse = np.zeros(201)
    impulse[100] = 1.0
    response = ndi.gaussian_filter1d(impulse, sigma, truncate=truncate, mode="constant")
    kernel = filters.gaussian_kernel(sigma, truncate)
    radius = filters.kernel_radius(sigma, truncate)
    assert len(kernel) == 2 * radius + 1
    assert np.count_nonzero(response) == len(kernel)
    np.testing.assert_allclose(response[100 - radius : 101 + radius], kernel, rtol=1e-12, atol=1e-15)


def test_filtering_leaves_the_input_alone():
    image = random_image((30, 30), "float32")
    before = image.copy()
    filters.gaussian(image, 2.0, 4.0, "wrap")
    np.testing.assert_array_equal(image, before)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_float_pixels_are_refused_naming_the_file(bad):
    image = random_image((8, 8, 3), "float32")
    image[3, 4, 1] = bad
    with pytest.raises(ValueError, match=r"some/file\.tif: 1 pixels are NaN or infinite"):
        filters.to_float(image, "some/file.tif")


def test_bad_sigma_and_mode_are_refused():
    with pytest.raises(ValueError, match="sigma"):
        filters.gaussian_kernel(0.0)
    with pytest.raises(ValueError, match="mode"):
        filters.gaussian(np.zeros((4, 4), np.float32), 1.0, 4.0, "periodic")


def test_to_uint8_clips_scales_and_rounds():
    values = np.array([[-0.5, 0.0, 0.5 / 255, 0.49 / 255, 0.5, 1.0, 7.0]], np.float32)
    np.testing.assert_array_equal(filters.to_uint8(values), [[0, 0, 0, 0, 128, 255, 255]])


@pytest.mark.parametrize("path", ["matrix", "opencv"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [(70, 130), (3, 200), (66, 65, 3)])
@pytest.mark.parametrize("sigma", [0.7, 5.0, 10.0])
def test_both_filter_paths_match_scikit_image(monkeypatch, path, mode, shape, sigma):
    """Band matrices and OpenCV's separable filter, each forced for every radius."""
    monkeypatch.setattr(filters, "MATRIX_MIN_RADIUS", 0 if path == "matrix" else 10**9)
    image = random_image(shape, "float32", seed=shape[1])
    expected = skimage.filters.gaussian(image, sigma=sigma, mode=mode, channel_axis=-1 if len(shape) == 3 else None)
    result = filters.gaussian(image, sigma, 4.0, mode)
    assert np.max(np.abs(result - expected)) <= 1e-5


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("length", [1, 2, 7, 64, 65, 100])
def test_axis_bands_sum_to_the_kernel_applied_to_each_pixel(mode, length):
    """Every output's weights total 1 (0 for what 'constant' reads past the edge) and bands tile the axis."""
    bands = filters.axis_bands(length, 3.0, 4.0, mode)
    assert [band[0] for band in bands] == list(range(0, length, bands[0][1] - bands[0][0]))
    assert bands[-1][1] == length
    line = np.ones(length, np.float32)
    filtered = np.concatenate([matrix @ line[lo:hi] for _, _, lo, hi, matrix in bands])
    expected = ndi.gaussian_filter1d(line.astype(np.float64), 3.0, mode=mode, truncate=4.0)
    np.testing.assert_allclose(filtered, expected, atol=1e-6)
