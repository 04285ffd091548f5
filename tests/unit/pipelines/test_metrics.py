"""The per-image metrics against the libraries that define them: numpy, scikit-image, scipy."""

import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import skimage.measure
import skimage.metrics
from pixelflow.errors import ConfigError
from pixelflow.pipelines import metrics

GREY = (23, 31)
COLOUR = (19, 22, 3)
MOMENTS = {"mean": np.mean, "var": np.var, "std": np.std, "min": np.min, "max": np.max}


def random_float(shape, seed):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def random_mask(shape, seed, share=0.4):
    return np.random.default_rng(seed).random(shape) < share


def images():
    """(label, output, input) triples: grey and colour float32 outputs, and a bool mask, each with a float32 input."""
    return [
        ("grey", random_float(GREY, 1), random_float(GREY, 2)),
        ("colour", random_float(COLOUR, 3), random_float(COLOUR, 4)),
        ("bool", random_mask(GREY, 5), random_float(GREY, 6)),
    ]


IMAGES = images()
IDS = [label for label, _, _ in IMAGES]


def as_numbers(image):
    return image.astype(np.float32) if image.dtype == bool else image


def test_every_metric_is_registered_with_a_known_need():
    assert set(metrics.METRICS) == {*MOMENTS, "entropy", "mse", "psnr", "ssim", "foreground_fraction", "object_count"}
    for name, entry in metrics.METRICS.items():
        assert entry.name == name
        assert entry.needs in metrics.NEEDS
    assert metrics.METRICS["psnr"].needs == "same_shape"
    assert metrics.METRICS["object_count"].needs == "binary"
    assert metrics.METRICS["mean"].needs == "any"


@pytest.mark.parametrize(("label", "output", "input"), IMAGES, ids=IDS)
@pytest.mark.parametrize("name", sorted(MOMENTS))
def test_moments_equal_numpy_in_float64(label, output, input, name):
    expected = MOMENTS[name](output.astype(np.float64))
    result = metrics.measure(output, input, [name])[name]
    assert type(result) is float
    # var and std: the values less their mean are rounded to float32 before squaring (see metrics._mean_var).
    assert result == pytest.approx(expected, rel=1e-7 if name in ("var", "std") else 1e-12, abs=1e-15)


@pytest.mark.parametrize("size", [64, 512, 2048])
@pytest.mark.parametrize(("base", "spread"), [(0.0, 1.0), (0.3, 0.1), (0.5, 1e-4), (0.99, 1e-5)])
def test_mean_and_variance_stay_exact_for_nearly_constant_images(size, base, spread):
    image = (base + spread * np.random.default_rng(size).random((size, size))).astype(np.float32)
    result = metrics.measure(image, image, ["mean", "var", "std"])
    assert result["mean"] == pytest.approx(np.mean(image, dtype=np.float64), rel=1e-12)
    assert result["var"] == pytest.approx(np.var(image, dtype=np.float64), rel=1e-7)
    assert result["std"] == pytest.approx(np.std(image, dtype=np.float64), rel=1e-7)


def test_moments_are_accumulated_in_float64():
    image = np.full((64, 64), 0.1, np.float32)
    image[0, 0] = 1e4
    expected = np.mean(image.astype(np.float64))
    assert metrics.measure(image, image, ["mean"])["mean"] == pytest.approx(expected, rel=1e-14)


def test_entropy_levels_are_the_bins_of_a_256_bin_histogram_over_0_1():
    values = np.array([0, 1 / 256, np.nextafter(np.float32(1 / 256), 0), 0.5, 0.999, 1.0], np.float32)
    image = np.concatenate([values, random_float(500, 7)])
    levels = metrics.entropy_levels(image)
    assert levels.dtype == np.uint8
    assert list(levels[: len(values)]) == [0, 1, 0, 128, 255, 255]
    histogram, _ = np.histogram(image, bins=256, range=(0, 1))
    np.testing.assert_array_equal(np.bincount(levels, minlength=256), histogram)
    assert list(metrics.entropy_levels(np.array([-0.5, 2.0, -np.inf, np.inf], np.float32))) == [0, 255, 0, 255]
    assert list(metrics.entropy_levels(np.array([False, True]))) == [0, 255]


@pytest.mark.parametrize(("label", "output", "input"), IMAGES, ids=IDS)
def test_entropy_equals_scikit_image_on_the_levels(label, output, input):
    levels = np.minimum(np.floor(np.clip(as_numbers(output), 0, 1) * 256), 255).astype(np.uint8)
    expected = skimage.measure.shannon_entropy(levels)
    assert metrics.measure(output, input, ["entropy"])["entropy"] == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_entropy_of_known_histograms():
    assert metrics.measure(np.zeros((8, 8), np.float32), None, ["entropy"])["entropy"] == 0.0
    uniform = (np.arange(256 * 4, dtype=np.float32) % 256 / 256).reshape(32, 32)
    assert metrics.measure(uniform, None, ["entropy"])["entropy"] == pytest.approx(8.0, rel=1e-14)
    halves = np.zeros((4, 4), bool)
    halves[:2] = True
    assert metrics.measure(halves, None, ["entropy"])["entropy"] == pytest.approx(1.0, rel=1e-14)


@pytest.mark.parametrize(("label", "output", "input"), IMAGES, ids=IDS)
def test_comparisons_equal_scikit_image(label, output, input):
    numbers = as_numbers(output)
    channel_axis = -1 if output.ndim == 3 else None
    result = metrics.measure(output, input, ["mse", "psnr", "ssim"])
    assert list(result) == ["mse", "psnr", "ssim"]
    expected_mse = skimage.metrics.mean_squared_error(numbers, input)
    assert result["mse"] == pytest.approx(expected_mse, rel=1e-12)
    assert result["mse"] == pytest.approx(np.mean((numbers.astype(np.float64) - input) ** 2), rel=1e-6)
    expected_psnr = skimage.metrics.peak_signal_noise_ratio(input, numbers, data_range=1.0)
    assert result["psnr"] == pytest.approx(expected_psnr, rel=1e-12)
    assert result["psnr"] == pytest.approx(10 * math.log10(1 / result["mse"]), rel=1e-12)
    expected_ssim = skimage.metrics.structural_similarity(numbers, input, data_range=1.0, channel_axis=channel_axis)
    assert result["ssim"] == pytest.approx(expected_ssim, rel=1e-6, abs=1e-7)


def test_an_output_equal_to_its_input():
    image = random_float(COLOUR, 8)
    with np.errstate(all="raise"):
        result = metrics.measure(image, image.copy(), ["mse", "psnr", "ssim"])
    assert result["mse"] == 0.0
    assert result["psnr"] == math.inf
    assert result["ssim"] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("seed", [10, 11, 12])
def test_binary_metrics_equal_their_definitions(seed):
    mask = random_mask((29, 37), seed)
    result = metrics.measure(mask, None, ["foreground_fraction", "object_count"])
    assert result["foreground_fraction"] == pytest.approx(mask.sum() / mask.size, rel=1e-15)
    expected = skimage.measure.label(mask, connectivity=2).max()
    assert result["object_count"] == expected
    assert result["object_count"] == ndi.label(mask, structure=np.ones((3, 3)))[1]
    assert result["object_count"] < ndi.label(mask)[1]


def test_diagonal_neighbours_are_one_object():
    mask = np.zeros((6, 6), bool)
    mask[[0, 1, 2], [0, 1, 2]] = True
    mask[5, 5] = True
    result = metrics.measure(mask, None, ["object_count", "foreground_fraction"])
    assert result == {"object_count": 2.0, "foreground_fraction": 4 / 36}
    empty = metrics.measure(np.zeros((3, 3), bool), None, ["object_count", "foreground_fraction"])
    assert empty == {"object_count": 0.0, "foreground_fraction": 0.0}


@pytest.mark.parametrize("name", ["foreground_fraction", "object_count"])
def test_binary_metrics_refuse_other_outputs(name):
    with pytest.raises(ValueError, match=rf"metric {name} needs a 2-D bool image.*float32 image of shape \(23, 31\)"):
        metrics.measure(random_float(GREY, 1), None, ["mean", name])
    with pytest.raises(ValueError, match=rf"metric {name} .*bool image of shape \(4, 5, 3\)"):
        metrics.measure(np.zeros((4, 5, 3), bool), None, [name])


@pytest.mark.parametrize("name", ["mse", "psnr", "ssim"])
def test_comparisons_refuse_different_shapes(name):
    output, input = random_float((12, 16), 1), random_float((24, 32), 2)
    with pytest.raises(ValueError, match=rf"metric {name} .*output \(12, 16\), input \(24, 32\)"):
        metrics.measure(output, input, [name])
    with pytest.raises(ValueError, match=r"output \(24, 32\), input \(24, 32, 3\)"):
        metrics.measure(input, random_float((24, 32, 3), 3), [name])


def test_ssim_refuses_images_smaller_than_its_window():
    image = random_float((6, 40, 3), 1)
    with pytest.raises(ValueError, match=r"metric ssim needs an image of at least 7 x 7 pixels, got shape \(6, 40, 3"):
        metrics.measure(image, image, ["ssim"])


def test_measure_refuses_unknown_names_and_other_dtypes():
    image = random_float(GREY, 1)
    with pytest.raises(ValueError, match=r"unknown metric 'median'; the metrics are: entropy, foreground_fraction"):
        metrics.measure(image, image, ["mean", "median"])
    with pytest.raises(ValueError, match=r"bool or floating-point output, got a uint8 image of shape \(2, 2\)"):
        metrics.measure(np.zeros((2, 2), np.uint8), None, ["mean"])


def test_nonfinite_values_are_returned_and_counted():
    image = random_float(COLOUR, 9)
    input = image.copy()
    image[0, 0, 1] = np.nan
    image[3, 4, :] = np.inf
    image[5, 6, 2] = -np.inf
    assert metrics.nonfinite_count(image) == 3
    assert metrics.nonfinite_count(image[..., 0]) == 1
    assert metrics.nonfinite_count(input) == 0
    assert metrics.nonfinite_count(random_mask(GREY, 1)) == 0
    result = metrics.measure(image, input, ["mean", "var", "min", "max", "entropy", "mse", "psnr"])
    assert all(math.isnan(value) for value in result.values())
    image[0, 0, 1] = 0.5
    result = metrics.measure(image, input, ["mean", "max", "min", "entropy"])
    assert math.isnan(result["mean"])
    assert result["max"] == math.inf
    assert result["min"] == -math.inf
    assert math.isfinite(result["entropy"])


def test_check_metrics_passes_names_and_user_functions():
    names = ["mean", {"function": "my_metrics:sharpness"}, "object_count"]
    checked = metrics.check_metrics(names, "pipelines.edges.metrics")
    assert checked == ["mean", {"function": "my_metrics:sharpness", "name": "sharpness"}, "object_count"]
    assert metrics.metric_columns(checked) == ["mean", "sharpness", "object_count"]
    named = metrics.check_metrics([{"function": "a:b", "name": "c"}], "k")
    assert named == [{"function": "a:b", "name": "c"}]
    assert metrics.check_metrics([], "pipelines.edges.metrics") == []


def test_check_metrics_names_the_key_and_the_known_metrics():
    with pytest.raises(ConfigError) as error:
        metrics.check_metrics(["mean", "meen"], "pipelines.edges.metrics")
    message = str(error.value)
    assert message.startswith("config key pipelines.edges.metrics.1: ")
    assert "'meen'" in message
    assert all(name in message for name in metrics.METRICS)


@pytest.mark.parametrize(
    ("names", "start"),
    [
        ([3], "config key p.m.0: "),
        (["mean", {"func": "a:b"}], "config key p.m.1: "),
        ("mean", "config key p.m: "),
        (["mean", {"function": "ab"}], "config key p.m.1.function: "),
        ([{"function": "a:b", "colour": 1}], "config key p.m.0.colour: "),
        ([{"function": "a:b", "name": "no spaces"}], "config key p.m.0.name: "),
        (["var", {"function": "a:var"}], "config key p.m.1: "),
        (["mean", "mean"], "config key p.m.1: "),
        ([{"function": "a:file"}], "config key p.m.0: "),
    ],
)
def test_check_metrics_refuses_other_entries(names, start):
    with pytest.raises(ConfigError) as error:
        metrics.check_metrics(names, "p.m")
    assert str(error.value).startswith(start)


def test_the_decorator_refuses_unknown_needs_and_second_registrations():
    with pytest.raises(ValueError, match="needs must be one of any, binary, same_shape"):
        metrics.metric("x", needs="grey")
    with pytest.raises(ValueError, match="metric mean is registered twice"):
        metrics.metric("mean")(lambda output, input: 0.0)
    assert metrics.METRICS["mean"].function is metrics.mean
