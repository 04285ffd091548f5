"""The pipeline operations equal the library functions that define them; config steps are checked with clear errors."""

import warnings

import numpy as np
import pytest
import scipy.ndimage as ndi
import skimage.color
import skimage.exposure
import skimage.filters
import skimage.morphology
import skimage.restoration
import skimage.transform
import skimage.util
from pixelflow.errors import ConfigError
from pixelflow.pipelines.operations import OPERATIONS, Param, apply_steps, as_float32, check_step


def _blobs(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Smooth noise stretched to [0, 1] in float32: objects to threshold, edges to find."""
    noise = np.random.default_rng(seed).random(shape)
    smooth = ndi.gaussian_filter(noise, sigma=(2, 2) + (0,) * (len(shape) - 2))
    return ((smooth - smooth.min()) / (smooth.max() - smooth.min())).astype(np.float32)


GREY = _blobs((32, 40), seed=1)
COLOUR = _blobs((32, 40, 3), seed=2)
MASK = GREY > 0.5


def per_channel(function, image, **kwargs):
    if image.ndim == 2:
        return function(image, **kwargs)
    return np.stack([function(image[..., c], **kwargs) for c in range(3)], axis=-1)


def channel_axis(image):
    return 2 if image.ndim == 3 else None


def square(size):
    return np.ones((size, size), dtype=bool)


def deprecated(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return function(*args, **kwargs)


THRESHOLD = {"op": "threshold", "method": "value", "value": 0.5}

# (id, steps, the library's result for the image, absolute tolerance, whether the operation takes colour).
# Binary operations start from MASK, made by the THRESHOLD step.
CASES = [
    (
        "gaussian",
        [{"op": "gaussian", "sigma": 1.5, "truncate": 3, "mode": "reflect"}],
        lambda im: skimage.filters.gaussian(im, sigma=1.5, truncate=3, mode="reflect", channel_axis=channel_axis(im)),
        1e-6,
        True,
    ),
    (
        "gaussian-default",
        [{"op": "gaussian"}],
        lambda im: skimage.filters.gaussian(im, channel_axis=channel_axis(im)),
        1e-6,
        True,
    ),
    (
        "median-3",
        [{"op": "median", "size": 3}],
        lambda im: per_channel(skimage.filters.median, im, footprint=square(3)),
        0,
        True,
    ),
    (
        "median-5",
        [{"op": "median", "size": 5}],
        lambda im: per_channel(skimage.filters.median, im, footprint=square(5)),
        0,
        True,
    ),
    (
        "median",
        [{"op": "median", "size": 7}],
        lambda im: per_channel(skimage.filters.median, im, footprint=square(7)),
        0,
        True,
    ),
    (
        "uniform",
        [{"op": "uniform", "size": 4}],
        lambda im: per_channel(ndi.uniform_filter, im, size=4),
        0,
        True,
    ),
    ("sobel", [{"op": "sobel"}], lambda im: per_channel(skimage.filters.sobel, im), 1e-6, True),
    ("scharr", [{"op": "scharr"}], lambda im: per_channel(skimage.filters.scharr, im), 1e-6, True),
    ("laplace", [{"op": "laplace", "ksize": 5}], lambda im: per_channel(skimage.filters.laplace, im, ksize=5), 0, True),
    (
        "unsharp_mask",
        [{"op": "unsharp_mask", "radius": 2, "amount": 1.5}],
        lambda im: skimage.filters.unsharp_mask(im, radius=2, amount=1.5, channel_axis=channel_axis(im)),
        0,
        True,
    ),
    (
        "equalize_hist",
        [{"op": "equalize_hist", "nbins": 64}],
        lambda im: per_channel(skimage.exposure.equalize_hist, im, nbins=64),
        0,
        True,
    ),
    (
        "equalize_adapthist",
        [{"op": "equalize_adapthist", "clip_limit": 0.02, "kernel_size": 8}],
        lambda im: skimage.exposure.equalize_adapthist(im, kernel_size=8, clip_limit=0.02).astype(np.float32),
        0,
        True,
    ),
    (
        "equalize_adapthist-default",
        [{"op": "equalize_adapthist"}],
        lambda im: skimage.exposure.equalize_adapthist(im).astype(np.float32),
        0,
        True,
    ),
    (
        "denoise_tv",
        [{"op": "denoise_tv", "weight": 0.2}],
        lambda im: skimage.restoration.denoise_tv_chambolle(im, weight=0.2, channel_axis=channel_axis(im)),
        0,
        True,
    ),
    (
        "bilateral",
        [{"op": "bilateral", "sigma_color": 0.1, "sigma_spatial": 2}],
        lambda im: skimage.restoration.denoise_bilateral(
            im, sigma_color=0.1, sigma_spatial=2, channel_axis=channel_axis(im)
        ).astype(np.float32),
        0,
        True,
    ),
    (
        "rescale",
        [{"op": "rescale", "scale": 0.5}],
        lambda im: skimage.transform.rescale(im, 0.5, anti_aliasing=True, channel_axis=channel_axis(im)),
        0,
        True,
    ),
    (
        "rescale-up",
        [{"op": "rescale", "scale": 1.5, "anti_aliasing": False}],
        lambda im: skimage.transform.rescale(im, 1.5, anti_aliasing=False, channel_axis=channel_axis(im)),
        0,
        True,
    ),
    (
        "resize",
        [{"op": "resize", "height": 20, "width": 50}],
        lambda im: skimage.transform.resize(im, (20, 50), anti_aliasing=True),
        0,
        True,
    ),
    (
        "rgb2gray",
        [{"op": "rgb2gray"}],
        lambda im: im if im.ndim == 2 else skimage.color.rgb2gray(im),
        0,
        True,
    ),
    ("invert", [{"op": "invert"}], skimage.util.invert, 0, True),
    ("invert-bool", [THRESHOLD, {"op": "invert"}], lambda im: ~(im > 0.5), 0, False),
    *[
        (
            f"threshold-{method}",
            [{"op": "threshold", "method": method}],
            lambda im, method=method: im > getattr(skimage.filters, f"threshold_{method}")(im),
            0,
            False,
        )
        for method in ("otsu", "li", "yen", "triangle")
    ],
    ("threshold-value", [THRESHOLD], lambda im: im > 0.5, 0, False),
    (
        "binary_opening",
        [THRESHOLD, {"op": "binary_opening", "radius": 2}],
        lambda im: deprecated(skimage.morphology.binary_opening, im > 0.5, skimage.morphology.disk(2)),
        0,
        False,
    ),
    (
        "binary_closing",
        [THRESHOLD, {"op": "binary_closing", "radius": 2}],
        lambda im: deprecated(skimage.morphology.binary_closing, im > 0.5, skimage.morphology.disk(2)),
        0,
        False,
    ),
    (
        "remove_small_objects",
        [THRESHOLD, {"op": "remove_small_objects", "max_size": 20}],
        lambda im: skimage.morphology.remove_small_objects(im > 0.5, max_size=20),
        0,
        False,
    ),
]
IDS = [case[0] for case in CASES]


def checked(steps):
    return [check_step(step, f"pipelines.test.steps.{i}") for i, step in enumerate(steps)]


def assert_same(actual, expected, atol):
    assert actual.shape == expected.shape
    if expected.dtype == bool:
        assert actual.dtype == bool
        np.testing.assert_array_equal(actual, expected)
    else:
        assert actual.dtype == np.float32
        np.testing.assert_allclose(actual, expected, rtol=0, atol=atol)


def test_every_operation_is_tested():
    assert {steps[-1]["op"] for _, steps, *_ in CASES} == set(OPERATIONS)


@pytest.mark.parametrize(("steps", "reference", "atol"), [case[1:4] for case in CASES], ids=IDS)
def test_grey_equals_the_library(steps, reference, atol):
    assert_same(apply_steps(GREY, checked(steps)), reference(GREY), atol)


@pytest.mark.parametrize(
    ("steps", "reference", "atol"), [case[1:4] for case in CASES if case[4]], ids=[case[0] for case in CASES if case[4]]
)
def test_colour_equals_the_library(steps, reference, atol):
    assert_same(apply_steps(COLOUR, checked(steps)), reference(COLOUR), atol)


def test_the_binary_cases_are_not_trivial():
    assert 0.2 < MASK.mean() < 0.8
    opened = apply_steps(GREY, checked([THRESHOLD, {"op": "binary_opening", "radius": 2}]))
    assert not np.array_equal(opened, MASK)


def test_the_morphology_equals_scikit_image_0_26_replacements():
    footprint = skimage.morphology.disk(1)
    opened = apply_steps(GREY, checked([THRESHOLD, {"op": "binary_opening"}]))
    closed = apply_steps(GREY, checked([THRESHOLD, {"op": "binary_closing"}]))
    np.testing.assert_array_equal(opened, skimage.morphology.opening(MASK, footprint, mode="ignore"))
    np.testing.assert_array_equal(closed, skimage.morphology.closing(MASK, footprint, mode="ignore"))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_integer_input_is_scaled_like_img_as_float32(dtype):
    image = (GREY * np.iinfo(dtype).max).round().astype(dtype)
    converted = apply_steps(image, [])
    assert converted.dtype == np.float32
    assert converted.min() >= 0 and converted.max() <= 1
    np.testing.assert_array_equal(converted, skimage.util.img_as_float32(image))
    np.testing.assert_array_equal(as_float32(image), skimage.util.img_as_float32(image))


def test_float_input_keeps_its_values_as_float32():
    image = GREY.astype(np.float64) * 3 - 1
    converted = apply_steps(image, [])
    assert converted.dtype == np.float32
    np.testing.assert_array_equal(converted, image.astype(np.float32))


def test_colour_unsharp_mask_is_the_grey_one_per_channel():
    """scikit-image 0.26's unsharp_mask with channel_axis=-1 fills the wrong axis; the operation must not."""
    result = apply_steps(COLOUR, checked([{"op": "unsharp_mask", "radius": 2, "amount": 1.5}]))
    np.testing.assert_array_equal(result, per_channel(skimage.filters.unsharp_mask, COLOUR, radius=2, amount=1.5))


def test_a_uint8_colour_chain_equals_the_library_chain():
    image = (COLOUR * 255).round().astype(np.uint8)
    steps = [{"op": "rgb2gray"}, {"op": "median", "size": 3}, {"op": "threshold", "method": "otsu"}]
    grey = skimage.color.rgb2gray(skimage.util.img_as_float32(image))
    smooth = skimage.filters.median(grey, footprint=square(3))
    np.testing.assert_array_equal(apply_steps(image, checked(steps)), smooth > skimage.filters.threshold_otsu(smooth))


def test_the_documented_chain_equals_the_library_chain():
    steps = [
        {"op": "median", "size": 3},
        {"op": "gaussian", "sigma": 2},
        {"op": "threshold", "method": "otsu"},
        {"op": "binary_opening", "radius": 1},
    ]
    smooth = skimage.filters.gaussian(skimage.filters.median(GREY, footprint=square(3)), sigma=2, mode="nearest")
    mask = smooth > skimage.filters.threshold_otsu(smooth)
    expected = deprecated(skimage.morphology.binary_opening, mask, skimage.morphology.disk(1))
    result = apply_steps(GREY, checked(steps))
    assert result.dtype == bool
    np.testing.assert_array_equal(result, expected)


def test_a_mask_given_to_a_float_operation_is_zero_and_one():
    result = apply_steps(GREY, checked([THRESHOLD, {"op": "gaussian", "sigma": 1}]))
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, skimage.filters.gaussian(MASK.astype(np.float32), sigma=1), rtol=0, atol=1e-6)


def test_a_grey_operation_given_colour_names_itself_and_the_fix():
    with pytest.raises(
        ValueError, match=r"threshold needs a grey image, got shape \(32, 40, 3\); add \{op: rgb2gray\}"
    ):
        apply_steps(COLOUR, checked([{"op": "threshold"}]))


def test_a_binary_operation_given_grey_names_itself_and_the_fix():
    with pytest.raises(ValueError, match=r"binary_opening needs a binary image, got float32 .*add \{op: threshold\}"):
        apply_steps(GREY, checked([{"op": "binary_opening"}]))


@pytest.mark.parametrize("shape", [(32, 40, 4), (32,), (2, 32, 40, 3)])
def test_an_image_neither_grey_nor_rgb_is_refused(shape):
    with pytest.raises(ValueError, match="grey .* or RGB"):
        apply_steps(np.zeros(shape, np.float32), [])


def test_check_step_fills_defaults_and_floats():
    assert check_step({"op": "median"}, "k") == {"op": "median", "size": 3}
    step = check_step({"op": "gaussian", "sigma": 2}, "k")
    assert step == {"op": "gaussian", "sigma": 2.0, "truncate": 4.0, "mode": "nearest"}
    assert type(step["sigma"]) is float
    assert check_step({"op": "equalize_adapthist"}, "k")["kernel_size"] is None
    assert check_step({"op": "threshold"}, "k") == {"op": "threshold", "method": "otsu", "value": None}


def test_every_operation_checks_with_its_required_parameters():
    required = {"rescale": {"scale": 0.5}, "resize": {"height": 4, "width": 4}}
    for name in OPERATIONS:
        step = {"op": name, **required.get(name, {})}
        assert check_step(step, "k").keys() == {"op", *OPERATIONS[name].params}


def test_an_unknown_operation_names_the_key_and_lists_the_operations():
    with pytest.raises(ConfigError) as error:
        check_step({"op": "blur"}, "pipelines.cells.steps.2")
    message = str(error.value)
    assert message.startswith("config key pipelines.cells.steps.2.op: unknown operation 'blur'")
    assert all(name in message for name in OPERATIONS)


def test_an_unknown_parameter_names_the_key_and_lists_the_parameters():
    with pytest.raises(ConfigError, match=r"^config key pipelines\.c\.steps\.0\.radius: .*parameters: size$"):
        check_step({"op": "median", "radius": 2}, "pipelines.c.steps.0")
    with pytest.raises(ConfigError, match=r"^config key k\.size: .*its parameters: none$"):
        check_step({"op": "sobel", "size": 2}, "k")


@pytest.mark.parametrize(
    ("step", "bad", "accepted"),
    [
        ({"op": "median", "size": 0}, "size", "an integer >= 1"),
        ({"op": "median", "size": 2.5}, "size", "an integer >= 1"),
        ({"op": "median", "size": True}, "size", "an integer >= 1"),
        ({"op": "median", "size": "3"}, "size", "an integer >= 1"),
        ({"op": "gaussian", "sigma": 0}, "sigma", "a number > 0"),
        ({"op": "gaussian", "sigma": False}, "sigma", "a number > 0"),
        ({"op": "gaussian", "sigma": float("nan")}, "sigma", "a number > 0"),
        ({"op": "gaussian", "mode": "edge"}, "mode", "one of reflect, mirror, nearest, constant, wrap"),
        ({"op": "threshold", "method": "mean"}, "method", "one of otsu, li, yen, triangle, value"),
        ({"op": "equalize_adapthist", "clip_limit": 2}, "clip_limit", "a number >= 0 and <= 1"),
        ({"op": "equalize_adapthist", "kernel_size": 0}, "kernel_size", "an integer >= 1 or null"),
        ({"op": "rescale", "scale": 0.5, "anti_aliasing": 1}, "anti_aliasing", "true or false"),
        ({"op": "gaussian", "sigma": None}, "sigma", "a number > 0"),
    ],
)
def test_a_bad_value_names_the_key_and_what_is_accepted(step, bad, accepted):
    with pytest.raises(ConfigError) as error:
        check_step(step, "pipelines.cells.steps.1")
    message = str(error.value)
    assert message.startswith(f"config key pipelines.cells.steps.1.{bad}: got {step[bad]!r}")
    op = OPERATIONS[step["op"]]
    assert message.endswith(f"expected {accepted} ({op.name}'s parameters: {', '.join(op.params)})")


def test_a_missing_required_parameter_names_the_key():
    message = (
        r"^config key k\.width: required by resize; an integer >= 1 "
        r"\(resize's parameters: height, width, anti_aliasing\)$"
    )
    with pytest.raises(ConfigError, match=message):
        check_step({"op": "resize", "height": 4}, "k")


def test_threshold_value_goes_with_method_value():
    with pytest.raises(ConfigError, match=r"^config key k\.value: required when method is value"):
        check_step({"op": "threshold", "method": "value"}, "k")
    with pytest.raises(ConfigError, match=r"^config key k\.value: used only when method is value, not otsu"):
        check_step({"op": "threshold", "value": 0.3}, "k")
    assert check_step({"op": "threshold", "method": "value", "value": 1}, "k")["value"] == 1.0


@pytest.mark.parametrize("step", [{"size": 3}, "median", ["median"], {"op": ["median"]}])
def test_a_malformed_step_names_the_key(step):
    with pytest.raises(ConfigError, match=r"^config key pipelines\.c\.steps\.0"):
        check_step(step, "pipelines.c.steps.0")


def test_param_describes_what_it_accepts():
    assert Param(float, 1.0, minimum=0, maximum=1).describe() == "a number >= 0 and <= 1"
    assert Param(str, "a", choices=("a", "b")).describe() == "one of a, b"
    assert Param(int, None).describe() == "an integer or null"
