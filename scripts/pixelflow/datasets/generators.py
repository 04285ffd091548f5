"""Synthetic image generators, each image from its own reproducible random stream.

An image's random stream is derived with :class:`numpy.random.SeedSequence`
from (master seed, dataset name, image index) only, so its bytes do not
depend on shard size, core count, executor or run order. A shard job gets
the same streams from :class:`pixelflow.datasets.seeding.ImageStreams`, which derives
them for the whole shard at once.

To add a generator, write a function ``f(rng, index, shape, dtype)``
returning the image, decorate it with ``@register("name")`` and add the name
to the ``generator`` enum in ``config/schema.yaml``.
"""

import functools
import hashlib
import math
from typing import NotRequired, TypedDict

import numpy as np


class GeneratedSpec(TypedDict):
    """Everything a generated image's bytes depend on besides its index (planning hands it to the jobs).

    Attributes
    ----------
    name : str
        The dataset's name, part of every image's random stream and file name.
    generator : str
        A registered generator's name (:data:`GENERATORS`).
    seed : int
        The master seed, non-negative.
    shape : list of int
        ``[height, width]`` grey or ``[height, width, channels]``.
    dtype : str
        ``uint8``, ``uint16`` or ``float32``.
    format : str
        The files' format name.
    compression : int, optional
        The files' compression (:func:`pixelflow.io.images.encode_params`); the
        pixels do not depend on it. Required by the shard writer only.
    """

    name: str
    generator: str
    seed: int
    shape: list[int]
    dtype: str
    format: str
    compression: NotRequired[int]


GENERATORS = {}
INTEGER_TOP = {"uint8": 255, "uint16": 65535}


def register(name: str):
    """Register a generator function under ``name``.

    Returns
    -------
    callable
        A decorator that stores ``f(rng, index, shape, dtype)`` in
        :data:`GENERATORS` (replacing one of the same name) and returns it unchanged.
    """

    def decorate(function):
        GENERATORS[name] = function
        return function

    return decorate


@functools.lru_cache(maxsize=64)
def dataset_key(name: str) -> int:
    """A stable 64-bit integer for a dataset name (independent of PYTHONHASHSEED).

    Returns
    -------
    int
        The first 8 bytes of the SHA-256 of the UTF-8 name, little-endian: 0 to 2**64 - 1.
    """
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "little")


def image_rng(seed: int, dataset: str, index: int) -> np.random.Generator:
    """The random generator of image ``index`` of ``dataset`` under master ``seed``.

    Parameters
    ----------
    seed : int
        The master seed, non-negative.
    dataset : str
        The dataset's name (:func:`dataset_key`).
    index : int
        The image's index, non-negative.

    Returns
    -------
    numpy.random.Generator
        A PCG64 generator seeded with ``SeedSequence(seed, spawn_key=(dataset_key(dataset), index))``.
    """
    sequence = np.random.SeedSequence(seed, spawn_key=(dataset_key(dataset), index))
    return np.random.Generator(np.random.PCG64(sequence))


def from_unit_interval(values: np.ndarray, dtype: str) -> np.ndarray:
    """Map values in [0, 1] to ``dtype``: float32 as is, integers over their full range.

    Parameters
    ----------
    values : ndarray
        Floats in [0, 1]; they are not clipped.
    dtype : str
        ``float32``, ``uint8`` or ``uint16``.

    Returns
    -------
    ndarray
        float32 values (not copied if already float32), or ``rint(values * top)``
        with top 255 or 65535.
    """
    if dtype == "float32":
        return values.astype(np.float32, copy=False)
    return np.rint(values * INTEGER_TOP[dtype]).astype(dtype)


@register("uniform")
def uniform(rng: np.random.Generator, index: int, shape: tuple, dtype: str) -> np.ndarray:
    """Every level of the dtype equally likely (uint8: 0..255, mean 127.5, variance 5461.25).

    float32 images are uniform on [0, 1).

    Parameters
    ----------
    rng : numpy.random.Generator
        The image's generator, at the start of its stream.
    index : int
        The image's index; unused.
    shape : tuple of int
        The image's shape.
    dtype : str
        ``uint8``, ``uint16`` or ``float32``.

    Returns
    -------
    ndarray
        An image of ``shape`` and ``dtype``.
    """
    if dtype == "float32":
        return rng.random(shape, dtype=np.float32)
    return uniform_levels(rng, shape, dtype)


def uniform_levels(rng: np.random.Generator, shape: tuple, dtype: str) -> np.ndarray:
    """Integers uniform over every level of ``dtype``: the stream's raw 64-bit words read as little-endian ``dtype``.

    Every bit of a PCG64 word is uniform, so each byte (uint8) or byte pair
    (uint16) is too; this skips ``Generator.integers``' per-call checks.

    Parameters
    ----------
    rng : numpy.random.Generator
        Its bit generator advances by ``ceil(size * itemsize / 8)`` words.
    shape : tuple of int
        The array's shape.
    dtype : str
        ``uint8`` or ``uint16``.

    Returns
    -------
    ndarray
        An array of ``shape`` and ``dtype``.
    """
    itemsize = np.dtype(dtype).itemsize
    count = math.prod(shape)
    words = rng.bit_generator.random_raw(-(-count * itemsize // 8)).astype("<u8", copy=False)
    return words.view(f"<u{itemsize}")[:count].astype(dtype, copy=False).reshape(shape)


@register("gaussian_ramp")
def gaussian_ramp(rng: np.random.Generator, index: int, shape: tuple, dtype: str) -> np.ndarray:
    """Normal noise with mean ((index + 1) mod 255) / 255 and sd 20 / 255, clipped to [0, 1].

    The values are then mapped to ``dtype`` (:func:`from_unit_interval`): for
    uint8, mean (index + 1) mod 255 and sd 20 levels before clipping.

    Parameters
    ----------
    rng : numpy.random.Generator
        The image's generator, at the start of its stream.
    index : int
        The image's index; it sets the mean.
    shape : tuple of int
        The image's shape.
    dtype : str
        ``uint8``, ``uint16`` or ``float32``.

    Returns
    -------
    ndarray
        An image of ``shape`` and ``dtype``.
    """
    values = rng.standard_normal(shape, dtype=np.float32)
    values *= np.float32(20 / 255)
    values += np.float32(((index + 1) % 255) / 255)
    np.clip(values, 0.0, 1.0, out=values)
    return from_unit_interval(values, dtype)


def generate_image(generator: str, seed: int, dataset: str, index: int, shape, dtype: str) -> np.ndarray:
    """Image ``index`` of a generated dataset.

    Parameters
    ----------
    generator : str
        A registered generator's name.
    seed : int
        The master seed, non-negative.
    dataset : str
        The dataset's name.
    index : int
        The image's index.
    shape : sequence of int
        (height, width) or (height, width, channels).
    dtype : str
        ``uint8``, ``uint16`` or ``float32``.

    Returns
    -------
    ndarray
        The image, of ``shape`` and ``dtype``.

    Raises
    ------
    ValueError
        For an unknown generator, naming it.
    """
    return generate_from(generator, image_rng(seed, dataset, index), index, shape, dtype)


def generate_from(generator: str, rng: np.random.Generator, index: int, shape, dtype: str) -> np.ndarray:
    """Image ``index`` of a generated dataset drawn from ``rng``, positioned as :func:`image_rng` gives it.

    Parameters
    ----------
    generator : str
        A registered generator's name.
    rng : numpy.random.Generator
        The image's generator, from :func:`image_rng` or
        :class:`pixelflow.datasets.seeding.ImageStreams`.
    index, shape, dtype
        As for :func:`generate_image`.

    Returns
    -------
    ndarray
        The image, of ``shape`` and ``dtype``.

    Raises
    ------
    ValueError
        For an unknown generator, naming it.
    """
    try:
        function = GENERATORS[generator]
    except KeyError:
        raise ValueError(f"unknown generator {generator!r}; known: {sorted(GENERATORS)}") from None
    return function(rng, index, tuple(shape), dtype)
