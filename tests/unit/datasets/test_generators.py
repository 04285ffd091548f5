"""Synthetic generators: their statistics, their scaling and the determinism of their streams."""

import hashlib
import math
import textwrap

import numpy as np
import pytest
from pixelflow.datasets.generators import GENERATORS, dataset_key, from_unit_interval, generate_image, image_rng
from pixelflow.planning.config import load_schema
from pixelflow.runner import parallel_map

from .. import workers
from ..support import SCHEMA_PATH, run_python

SIGMAS = 5  # tolerance of every statistical check, in standard errors
RAMP_SD = 20 / 255


def pooled(generator, dtype, count, shape, seed=3, dataset="stats"):
    """Pixels of images 0..count-1 of a dataset, flattened together."""
    return np.concatenate(
        [generate_image(generator, seed, dataset, index, shape, dtype).ravel() for index in range(count)]
    )


def assert_mean_and_variance(values, mean, variance, fourth_central_moment):
    """Sample mean and variance within SIGMAS standard errors of the population's."""
    n = values.size
    values = values.astype(np.float64)
    assert abs(values.mean() - mean) <= SIGMAS * math.sqrt(variance / n)
    variance_error = math.sqrt((fourth_central_moment - variance**2) / n)
    assert abs(values.var() - variance) <= SIGMAS * variance_error


# uniform -----------------------------------------------------------------------


def test_uniform_uint8_is_the_discrete_uniform_distribution():
    values = pooled("uniform", "uint8", 4, (512, 512))  # 2**20 pixels
    assert values.dtype == np.uint8
    levels = np.arange(256, dtype=np.float64)
    mean, variance = levels.mean(), levels.var()
    assert (mean, variance) == (127.5, 5461.25)  # the documented moments of 0..255
    assert_mean_and_variance(values, mean, variance, ((levels - mean) ** 4).mean())
    counts = np.bincount(values, minlength=256)
    assert counts.size == 256 and counts.min() > 0  # every level appears
    # Pearson's chi-square over the 256 levels (255 degrees of freedom: mean 255, sd sqrt(510)).
    expected = values.size / 256
    chi_square = (((counts - expected) ** 2) / expected).sum()
    assert chi_square <= 255 + SIGMAS * math.sqrt(2 * 255)


def test_uniform_uint16_spans_the_full_range():
    values = pooled("uniform", "uint16", 8, (512, 512))  # 2**21 pixels
    assert values.dtype == np.uint16
    top = 65535
    mean, variance = top / 2, ((top + 1) ** 2 - 1) / 12
    fourth = ((top + 1) ** 2 - 1) * (3 * (top + 1) ** 2 - 7) / 240  # discrete uniform on 0..top
    assert_mean_and_variance(values, mean, variance, fourth)
    assert values.min() == 0 and values.max() == top  # each extreme is missed with probability e**-32
    # The 256 high bytes are themselves uniform.
    assert np.bincount(values >> 8, minlength=256).min() > 0.9 * values.size / 256


def test_uniform_float32_is_uniform_on_the_unit_interval():
    values = pooled("uniform", "float32", 4, (512, 512))
    assert values.dtype == np.float32
    assert values.min() >= 0.0 and values.max() < 1.0
    assert_mean_and_variance(values, 0.5, 1 / 12, 1 / 80)
    histogram, _ = np.histogram(values, bins=16, range=(0.0, 1.0))
    expected = values.size / 16
    assert np.all(np.abs(histogram - expected) <= SIGMAS * math.sqrt(expected))


@pytest.mark.parametrize("shape", [(4, 5), (4, 5, 3), (4, 5, 4)])
@pytest.mark.parametrize("generator", sorted(GENERATORS))
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_images_have_the_requested_shape_and_dtype(generator, dtype, shape):
    image = generate_image(generator, 0, "shape", 9, list(shape), dtype)
    assert image.shape == shape
    assert image.dtype == np.dtype(dtype)


# gaussian_ramp ---------------------------------------------------------------


def normal_cdf(z):
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def normal_pdf(z):
    return math.exp(-z * z / 2) / math.sqrt(2 * math.pi)


def clipped_normal_moments(mean, sd):
    """Mean and variance of N(mean, sd) clipped to [0, 1]."""
    a, b = (0 - mean) / sd, (1 - mean) / sd
    inside = normal_cdf(b) - normal_cdf(a)
    above = 1 - normal_cdf(b)
    first = mean * inside + sd * (normal_pdf(a) - normal_pdf(b)) + above
    second = (
        mean**2 * inside
        + 2 * mean * sd * (normal_pdf(a) - normal_pdf(b))
        + sd**2 * (inside + a * normal_pdf(a) - b * normal_pdf(b))
        + above
    )
    return first, second - first**2


def ramp_mean(index):
    return ((index + 1) % 255) / 255


RAMP_SHAPE = (128, 128)


@pytest.mark.parametrize("index", [*range(0, 255), 255, 300, 508, 509, 510, 1000])
def test_gaussian_ramp_mean_follows_the_clipped_formula(index):
    image = generate_image("gaussian_ramp", 1, "ramp", index, RAMP_SHAPE, "float32")
    assert image.dtype == np.float32
    assert image.min() >= 0.0 and image.max() <= 1.0
    mean, variance = clipped_normal_moments(ramp_mean(index), RAMP_SD)
    assert abs(image.mean(dtype=np.float64) - mean) <= SIGMAS * math.sqrt(variance / image.size)


@pytest.mark.parametrize("index", range(60, 191, 10))
def test_gaussian_ramp_unclipped_mean_and_sd(index):
    # Here the mean is more than 3 sd inside [0, 1], so clipping changes nothing measurable.
    image = generate_image("gaussian_ramp", 1, "ramp", index, RAMP_SHAPE, "float32").astype(np.float64)
    n = image.size
    assert abs(image.mean() - ramp_mean(index)) <= SIGMAS * RAMP_SD / math.sqrt(n)
    assert abs(image.std() - RAMP_SD) <= SIGMAS * RAMP_SD / math.sqrt(2 * n)


@pytest.mark.parametrize("index", [253, 254])
def test_gaussian_ramp_clips_at_both_ends(index):
    # Index 253 has mean 254/255 (about half the pixels clip to 1); 254 wraps to mean 0 (half clip to 0).
    image = generate_image("gaussian_ramp", 1, "ramp", index, RAMP_SHAPE, "float32")
    mean = ramp_mean(index)
    expected_zeros = normal_cdf((0 - mean) / RAMP_SD)
    expected_ones = 1 - normal_cdf((1 - mean) / RAMP_SD)
    for fraction, expected in ((np.mean(image == 0.0), expected_zeros), (np.mean(image == 1.0), expected_ones)):
        assert abs(fraction - expected) <= SIGMAS * math.sqrt(max(expected * (1 - expected), 1e-12) / image.size)
    assert image.min() >= 0.0 and image.max() <= 1.0
    assert max(np.mean(image == 0.0), np.mean(image == 1.0)) > 0.45


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
@pytest.mark.parametrize("index", [0, 100, 253, 254])
def test_gaussian_ramp_integer_images_scale_the_float_image(dtype, index):
    # The stream is the same for every dtype, so integer images are the float image times the dtype's top.
    top = np.iinfo(dtype).max
    as_float = generate_image("gaussian_ramp", 4, "scaled", index, (64, 64), "float32")
    as_integer = generate_image("gaussian_ramp", 4, "scaled", index, (64, 64), dtype)
    assert as_integer.dtype == np.dtype(dtype)
    exact = np.rint(as_float.astype(np.float64) * top)
    difference = np.abs(as_integer.astype(np.float64) - exact)
    # Scaling in float32 may round a pixel lying within float32 precision of a half step the other way.
    assert difference.max() <= 1
    assert np.mean(difference != 0) < 0.01
    assert np.array_equal(as_integer[as_float == 0.0], np.zeros(np.sum(as_float == 0.0), dtype))
    assert np.all(as_integer[as_float == 1.0] == top)
    expected_mean, _ = clipped_normal_moments(ramp_mean(index), RAMP_SD)
    assert abs(as_integer.mean() / top - expected_mean) < 0.01


def test_from_unit_interval_maps_ends_to_the_dtype_range():
    values = np.array([0.0, 0.25, 0.5, 1.0], dtype=np.float32)
    assert from_unit_interval(values, "float32").dtype == np.float32
    for dtype in ("uint8", "uint16"):
        top = np.iinfo(dtype).max
        scaled = from_unit_interval(values, dtype)
        assert scaled.dtype == np.dtype(dtype)
        assert scaled[0] == 0 and scaled[-1] == top
        assert abs(int(scaled[2]) - top / 2) <= 0.5


# determinism -------------------------------------------------------------------


@pytest.mark.parametrize("generator", sorted(GENERATORS))
def test_no_two_images_of_a_dataset_are_identical(generator):
    digests = {
        hashlib.sha256(generate_image(generator, 0, "distinct", index, (8, 8), "uint8").tobytes()).digest()
        for index in range(300)  # includes indexes 255 apart, whose ramp means are equal
    }
    assert len(digests) == 300


@pytest.mark.parametrize("generator", sorted(GENERATORS))
def test_same_seed_name_and_index_give_the_same_bytes(generator):
    first = generate_image(generator, 11, "again", 5, (16, 16, 3), "uint16")
    second = generate_image(generator, 11, "again", 5, (16, 16, 3), "uint16")
    assert first.tobytes() == second.tobytes()
    assert image_rng(11, "again", 5).bytes(64) == image_rng(11, "again", 5).bytes(64)


@pytest.mark.parametrize("generator", sorted(GENERATORS))
def test_images_are_identical_across_processes(generator):
    jobs = [(generator, 7, "across", index, (6, 9, 3), "float32") for index in range(12)]
    here = [workers.generated_bytes(job) for job in jobs]
    for start_method in ("spawn", "forkserver"):
        assert parallel_map(workers.generated_bytes, jobs, 2, chunk_size=2, start_method=start_method) == here


@pytest.mark.parametrize("generator", sorted(GENERATORS))
def test_seed_and_dataset_name_change_the_images(generator):
    reference = generate_image(generator, 0, "alpha", 3, (16, 16), "uint8")
    for seed, name in ((1, "alpha"), (0, "beta"), (0, "Alpha"), (2**40, "alpha")):
        assert not np.array_equal(generate_image(generator, seed, name, 3, (16, 16), "uint8"), reference)


def test_dataset_key_is_a_stable_64_bit_integer():
    names = ["noise", "ramp", "a", "a-b_c", "ü"]
    keys = [dataset_key(name) for name in names]
    assert all(0 <= key < 2**64 for key in keys)
    assert len(set(keys)) == len(names)
    assert dataset_key("noise") == dataset_key("noise")


DATASET_KEYS_IN_CHILD = textwrap.dedent(
    """
    import hashlib, json, sys
    from pixelflow.datasets.generators import dataset_key, generate_image
    names = json.loads(sys.argv[1])
    image = generate_image("uniform", 5, names[0], 2, (8, 8), "uint8")
    print(json.dumps({"keys": [dataset_key(n) for n in names], "image": hashlib.sha256(image.tobytes()).hexdigest(),
                      "hash": hash(names[0])}))
    """
)


def test_dataset_key_does_not_depend_on_pythonhashseed():
    import json

    names = ["noise", "ramp", "world-map"]
    expected_keys = [dataset_key(name) for name in names]
    expected_image = hashlib.sha256(generate_image("uniform", 5, names[0], 2, (8, 8), "uint8").tobytes()).hexdigest()
    builtin_hashes = set()
    for hash_seed in ("1", "2", "random"):
        result = run_python(DATASET_KEYS_IN_CHILD, json.dumps(names), PYTHONHASHSEED=hash_seed)
        assert result.returncode == 0, result.stderr
        child = json.loads(result.stdout)
        assert child["keys"] == expected_keys
        assert child["image"] == expected_image
        builtin_hashes.add(child["hash"])
    assert len(builtin_hashes) > 1  # the children really ran under different string hashes


def test_generate_image_rejects_unknown_generators():
    with pytest.raises(ValueError, match="perlin"):
        generate_image("perlin", 0, "x", 0, (4, 4), "uint8")


def test_schema_generator_enum_equals_the_registry():
    schema = load_schema(SCHEMA_PATH)
    enum = schema["$defs"]["generated"]["properties"]["generator"]["enum"]
    assert len(enum) == len(set(enum))
    assert set(enum) == set(GENERATORS)
