"""Shard-wide seeding: every step equals numpy's own SeedSequence and PCG64, so the images do not change."""

from pathlib import Path

import numpy as np
import pytest
from pixelflow.datasets.generators import GENERATORS, dataset_key, image_rng
from pixelflow.datasets.seeding import ImageStreams, generate_state, int_words, mix_entropy, seed_pcg64, state_words
from pixelflow.datasets.shards import write_generated_shard
from pixelflow.io.images import image_encoder
from pixelflow.io.manifest import read_manifest

SEEDS = [0, 7, 2**32 + 5, 2**64 + 3, 2**130 + 1]
NAMES = ["noise", "ramp", "a rather longer dataset name"]
RANGES = [(0, 40), (2**32 - 20, 2**32 + 20)]  # with 0, 1, 2**32 - 1 and the step to two index words


def numpy_sequence(seed: int, key: int, index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=(key, index))


def numpy_rng(seed: int, name: str, index: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(numpy_sequence(seed, dataset_key(name), index)))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("start", "stop"), RANGES)
def test_state_words_equal_numpys_generate_state(seed, name, start, stop):
    key = dataset_key(name)
    words = state_words(seed, key, start, stop)
    expected = [numpy_sequence(seed, key, i).generate_state(4, np.uint64) for i in range(start, stop)]
    assert words.dtype == np.uint64
    assert np.array_equal(words, np.array(expected))


@pytest.mark.parametrize("key", [0, 1, 2**32, 2**64 - 1])
@pytest.mark.parametrize(("start", "stop"), [(0, 3), (2**32 - 1, 2**32 + 1), (2**64 - 2, 2**64 + 2), (5, 5)])
def test_state_words_of_unusual_keys_and_indexes(key, start, stop):
    words = state_words(3, key, start, stop)
    expected = [numpy_sequence(3, key, i).generate_state(4, np.uint64) for i in range(start, stop)]
    assert words.shape == (stop - start, 4)
    assert np.array_equal(words, np.array(expected).reshape(-1, 4))


@pytest.mark.parametrize("seed", SEEDS)
def test_mix_entropy_gives_numpys_pool(seed):
    key, indexes = dataset_key("pool"), np.array([0, 1, 2, 2**32 - 1], dtype=np.uint32)
    run = int_words(seed)
    run += [0] * (4 - len(run))
    columns = [np.array([word], dtype=np.uint32) for word in run + int_words(key)] + [indexes]
    pool = mix_entropy(columns)
    assert np.array_equal(pool, np.array([numpy_sequence(seed, key, int(i)).pool for i in indexes]))
    assert np.array_equal(
        generate_state(pool),
        np.array([numpy_sequence(seed, key, int(i)).generate_state(4, np.uint64) for i in indexes]),
    )


@pytest.mark.parametrize("seed", [0, 1, 2**32 - 1, 2**32, 2**96 - 1, 2**128, 2**160 + 9])
def test_int_words_are_numpys_run_entropy(seed):
    words = int_words(seed)
    columns = [np.array([word], dtype=np.uint32) for word in words + [0] * (4 - len(words)) + [1]]
    assert np.array_equal(mix_entropy(columns)[0], np.random.SeedSequence(seed, spawn_key=(1,)).pool)


def test_negative_seeds_and_indexes_are_refused_like_numpy():
    with pytest.raises(ValueError):
        state_words(-1, 5, 0, 3)
    with pytest.raises(ValueError):
        state_words(1, 5, -1, 3)


@pytest.mark.parametrize("seed", [0, 2**64 + 3])
def test_seed_pcg64_reaches_numpys_state_from_any_state(seed):
    bit_generator = np.random.PCG64(99)
    used = np.random.Generator(bit_generator)
    key = dataset_key("state")
    for index in [0, 1, 2**32 - 1, 2**32]:
        used.random(3, dtype=np.float32)  # leaves a spare 32-bit half behind
        assert bit_generator.state["has_uint32"] == 1
        seed_pcg64(bit_generator, state_words(seed, key, index, index + 1)[0])
        assert bit_generator.state == np.random.PCG64(numpy_sequence(seed, key, index)).state


@pytest.mark.parametrize("seed", [0, 12, 2**130 + 1])
def test_image_streams_draw_numpys_numbers(seed):
    name, start, stop = "draws", 2**32 - 3, 2**32 + 3
    streams = ImageStreams(seed, name, start, stop)
    for index in [2**32 + 2, start, 2**32 - 1, 2**32, start]:  # any order, repeats too
        rng = streams(index)
        expected = numpy_rng(seed, name, index)
        assert np.array_equal(rng.bit_generator.random_raw(5), expected.bit_generator.random_raw(5))
        assert np.array_equal(rng.standard_normal(7), expected.standard_normal(7))
        assert np.array_equal(
            rng.standard_normal((3, 3), dtype=np.float32), expected.standard_normal((3, 3), dtype=np.float32)
        )
        assert np.array_equal(rng.random(5, dtype=np.float32), expected.random(5, dtype=np.float32))
        assert rng.bytes(16) == expected.bytes(16)
        assert streams(index).bytes(16) == image_rng(seed, name, index).bytes(16)  # from the start again


def test_image_streams_refuse_indexes_outside_their_range():
    streams = ImageStreams(0, "bounds", 10, 20)
    assert streams(10) is streams(19)  # one reused generator
    for index in [9, 20, -1]:
        with pytest.raises(IndexError, match=f"image {index} is outside 10..19"):
            streams(index)


@pytest.mark.parametrize(
    ("generator", "shape", "dtype", "fmt"),
    [
        ("uniform", (8, 8), "uint8", "png"),
        ("gaussian_ramp", (8, 8), "float32", "tiff"),
        ("uniform", (5, 4, 3), "uint16", "png"),
    ],
)
@pytest.mark.parametrize("processes", [1, 2])
def test_shard_images_are_the_bytes_of_numpys_streams(tmp_path, generator, shape, dtype, fmt, processes):
    spec = {
        "name": "bytes",
        "generator": generator,
        "seed": 21,
        "shape": list(shape),
        "dtype": dtype,
        "format": fmt,
        "compression": 0,
    }
    write_generated_shard(tmp_path / "shard", spec, 0, 20, processes)
    encode = image_encoder(fmt, dtype, 0)
    rows = read_manifest(tmp_path / "shard")
    assert [row["index"] for row in rows] == list(range(20))
    for row in rows:
        image = GENERATORS[generator](numpy_rng(21, "bytes", row["index"]), row["index"], shape, dtype)
        assert Path(row["path"]).read_bytes() == encode(image)
