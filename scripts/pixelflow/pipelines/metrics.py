"""Per-image metrics of a pipeline's output, by name, as a pipeline's ``metrics:`` list names them.

A metric is a function ``f(output, input) -> float`` registered in :data:`METRICS`
by the :func:`metric` decorator, which also declares what the metric needs:

==========  ==========================================================================
needs       meaning
==========  ==========================================================================
any         any output: float (mostly float32 in [0, 1]) or bool, grey or colour
binary      the output is a 2-D bool image (a mask)
same_shape  compares the output with the pipeline's input, which has the same shape
==========  ==========================================================================

``output`` is the pipeline's result; ``input`` is the pipeline's input image as
``skimage.util.img_as_float32`` makes it. Colour images are channel-last
(``(height, width, channels)``); any 3-D image is taken as colour. A bool output
counts as 0 and 1 wherever a metric expects numbers.

Each metric is defined by the library function it equals:

===================  ======================================================================
metric               definition
===================  ======================================================================
mean, var, std       ``numpy.mean`` / ``var`` / ``std`` over all pixels and channels, float64
                     (var and std within 1e-7 relative; computed with OpenCV, see :func:`moments`)
min, max             ``numpy.min`` / ``max`` over all pixels and channels
entropy              ``skimage.measure.shannon_entropy`` (bits) of :func:`entropy_levels`
mse                  ``skimage.metrics.mean_squared_error(output, input)``
psnr                 ``skimage.metrics.peak_signal_noise_ratio(input, output, data_range=1)``
ssim                 ``skimage.metrics.structural_similarity(output, input, data_range=1)``,
                     ``channel_axis=-1`` for colour
foreground_fraction  share of True pixels
object_count         number of 8-connected objects, ``skimage.measure.label(connectivity=2)``
===================  ======================================================================

A NaN or infinity in the output is not an error here: the metrics it reaches
return NaN or infinity, and :func:`nonfinite_count` counts such pixels so that
the caller can report them per image. ``psnr`` of an output equal to its input
is infinity.
"""

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pixelflow.errors import ConfigError
from pixelflow.pipelines.user_code import parse_reference

NEEDS = ("any", "binary", "same_shape")
ENTROPY_LEVELS = 256
SSIM_WINDOW = 7
# Columns of every metrics table, before the metrics' own.
RESERVED_COLUMNS = ("index", "file", "output", "nonfinite")
COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Metric:
    """A registered metric: its name, its function ``f(output, input) -> float`` and what it needs (:data:`NEEDS`)."""

    name: str
    function: Callable[[np.ndarray, np.ndarray], float]
    needs: str


METRICS: dict[str, Metric] = {}


def metric(name: str, needs: str = "any"):
    """Register the decorated function in :data:`METRICS` under ``name``.

    Parameters
    ----------
    name : str
        The name users write in a pipeline's ``metrics:`` list.
    needs : {"any", "binary", "same_shape"}
        What the metric needs of its images (see the module's description).

    Returns
    -------
    callable
        A decorator that registers the function and returns it unchanged.
    """
    if needs not in NEEDS:
        raise ValueError(f"metric {name}: needs must be one of {', '.join(NEEDS)}, got {needs!r}")

    def register(function):
        if name in METRICS:
            raise ValueError(f"metric {name} is registered twice")
        METRICS[name] = Metric(name, function, needs)
        return function

    return register


def _numbers(image: np.ndarray) -> np.ndarray:
    """``image`` itself, or as float32 0 and 1 when it is bool."""
    return image.astype(np.float32) if image.dtype == bool else image


def _describe(image: np.ndarray) -> str:
    return f"{image.dtype} image of shape {image.shape}"


def _opencv_rows(image: np.ndarray) -> np.ndarray | None:
    """All values of a float image as one 2-D OpenCV channel (a view where possible), else None."""
    if image.dtype not in (np.float32, np.float64) or image.ndim not in (2, 3) or image.size == 0:
        return None
    return image.reshape(image.shape[0], -1)


def moments(image: np.ndarray) -> tuple[float, float, float, float]:
    """(mean, var, min, max) over all pixels and channels, in one go: the metrics of those names.

    A finite float image goes through OpenCV: ``meanStdDev`` (sums in float64)
    for the mean, then again for the population variance of the values less
    that mean (taking the mean off first keeps a nearly constant image exact;
    the centred values are float32, so the variance is within 1e-7 relative of
    ``numpy.var``'s, tested), and ``minMaxLoc``. Measured 8 times faster than
    numpy on a 2048 x 2048 image. Anything else (bool, integers, NaN or
    infinity) goes through ``numpy.mean``, ``var``, ``min`` and ``max``.

    Parameters
    ----------
    image : ndarray
        ``(height, width)`` or ``(height, width, channels)``; a crop of a larger array will do.
    """
    values = _numbers(image)
    rows = _opencv_rows(values)
    if rows is not None:
        import cv2

        mean = float(cv2.meanStdDev(rows)[0][0, 0])
        if math.isfinite(mean):  # else a NaN or infinity is among the values: numpy's rules below
            _, std = cv2.meanStdDev(cv2.subtract(rows, (mean, 0.0, 0.0, 0.0)))
            low, high, _, _ = cv2.minMaxLoc(rows)
            return mean, float(std[0, 0]) ** 2, float(low), float(high)
    return (
        float(np.mean(values, dtype=np.float64)),
        float(np.var(values, dtype=np.float64)),
        float(np.min(values)),
        float(np.max(values)),
    )


# The metrics :func:`moments` gives, by name: each its position there, or the variance's square root.
MOMENTS = {"mean": 0, "var": 1, "min": 2, "max": 3}


def _from_moments(name: str, values: tuple) -> float:
    return math.sqrt(values[1]) if name == "std" else values[MOMENTS[name]]


@metric("mean")
def mean(output: np.ndarray, input: np.ndarray) -> float:
    """Mean of all pixels and channels, accumulated in float64 (``numpy.mean``; :func:`moments`)."""
    return moments(output)[0]


@metric("var")
def var(output: np.ndarray, input: np.ndarray) -> float:
    """Variance (population, ``ddof=0``) of all pixels and channels: ``numpy.var`` in float64, within 1e-7 relative."""
    return moments(output)[1]


@metric("std")
def std(output: np.ndarray, input: np.ndarray) -> float:
    """Standard deviation (population, ``ddof=0``) of all pixels and channels: ``numpy.std``, within 1e-7 relative."""
    return math.sqrt(moments(output)[1])


@metric("min")
def minimum(output: np.ndarray, input: np.ndarray) -> float:
    """Smallest value over all pixels and channels; NaN if there is any NaN (``numpy.min``)."""
    return moments(output)[2]


@metric("max")
def maximum(output: np.ndarray, input: np.ndarray) -> float:
    """Largest value over all pixels and channels; NaN if there is any NaN (``numpy.max``)."""
    return moments(output)[3]


def entropy_levels(image: np.ndarray) -> np.ndarray:
    """The 256 histogram levels of an image in [0, 1], as uint8: the rule :func:`entropy` bins by.

    Level ``k`` holds the values in ``[k / 256, (k + 1) / 256)``, and the last
    level also holds 1: ``k = min(floor(256 * x), 255)``. These are the bins of
    ``numpy.histogram(image, bins=256, range=(0, 1))``. Values below 0 count as
    0 and values above 1 as 1 (so -inf and +inf too); a bool image has levels
    0 and 255. The caller handles NaN, which has no level.

    Parameters
    ----------
    image : ndarray
        float or bool, any shape, without NaN.

    Returns
    -------
    ndarray
        uint8 of ``image``'s shape.
    """
    values = np.clip(_numbers(image), 0, 1)
    return np.minimum(np.floor(values * ENTROPY_LEVELS), ENTROPY_LEVELS - 1).astype(np.uint8)


@metric("entropy")
def entropy(output: np.ndarray, input: np.ndarray) -> float:
    """Shannon entropy in bits of the 256-level histogram of all pixels and channels (see :func:`entropy_levels`).

    ``-sum(p_k log2 p_k)`` over the non-empty levels ``k``, ``p_k`` being the
    share of values at level ``k``: ``skimage.measure.shannon_entropy`` of
    ``entropy_levels(output)``. NaN if the output holds a NaN.
    """
    if output.dtype != bool and np.isnan(output).any():
        return float("nan")
    counts = np.bincount(entropy_levels(output).ravel(), minlength=ENTROPY_LEVELS)
    shares = counts[counts > 0] / output.size
    return float(-np.sum(shares * np.log2(shares)) + 0.0)


@metric("mse", needs="same_shape")
def mse(output: np.ndarray, input: np.ndarray) -> float:
    """Mean squared error between output and input (``skimage.metrics.mean_squared_error``)."""
    import skimage.metrics

    return float(skimage.metrics.mean_squared_error(_numbers(output), input))


@metric("psnr", needs="same_shape")
def psnr(output: np.ndarray, input: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of the output against the input, for a data range of 1.

    ``skimage.metrics.peak_signal_noise_ratio(input, output, data_range=1.0)``:
    ``10 log10(1 / mse)``, infinity when the output equals the input.
    """
    import skimage.metrics

    with np.errstate(divide="ignore"):
        return float(skimage.metrics.peak_signal_noise_ratio(input, _numbers(output), data_range=1.0))


@metric("ssim", needs="same_shape")
def ssim(output: np.ndarray, input: np.ndarray) -> float:
    """Mean structural similarity of output and input (``skimage.metrics.structural_similarity``).

    With ``data_range=1.0``, scikit-image's defaults otherwise (a 7 x 7
    uniform window), and ``channel_axis=-1`` for a colour image.

    Raises
    ------
    ValueError
        If the image is smaller than the 7 x 7 window.
    """
    import skimage.metrics

    colour = output.ndim == 3
    spatial = output.shape[:-1] if colour else output.shape
    if min(spatial) < SSIM_WINDOW:
        raise ValueError(
            f"metric ssim needs an image of at least {SSIM_WINDOW} x {SSIM_WINDOW} pixels, got shape {output.shape}"
        )
    return float(
        skimage.metrics.structural_similarity(
            _numbers(output), input, data_range=1.0, channel_axis=-1 if colour else None
        )
    )


@metric("foreground_fraction", needs="binary")
def foreground_fraction(output: np.ndarray, input: np.ndarray) -> float:
    """Share of the mask's pixels that are True, in [0, 1]."""
    return np.count_nonzero(output) / output.size


@metric("object_count", needs="binary")
def object_count(output: np.ndarray, input: np.ndarray) -> float:
    """Number of 8-connected objects of True pixels (``skimage.measure.label`` with ``connectivity=2``), as a float."""
    import skimage.measure

    _, count = skimage.measure.label(output, connectivity=2, return_num=True)
    return float(count)


def check_metrics(names: list, key: str) -> list:
    """Check a pipeline's ``metrics:`` list before any job runs; the list with user metrics' columns named.

    Parameters
    ----------
    names : list
        Metric names of :data:`METRICS`, and user metrics
        ``{"function": "module:name"}`` with an optional column ``name``
        (by default the function's name).
    key : str
        The list's config key, such as ``pipelines.edges.metrics``.

    Returns
    -------
    list
        A new list: the names as given, each user metric as a new
        ``{"function": ..., "name": ...}``.

    Raises
    ------
    ConfigError
        Naming ``key`` and the position of a wrong entry (``{key}.{i}``): a
        name that is not a metric (the message lists the metrics), a user
        metric that is not ``{"function": "module:name"}`` with an optional
        ``name``, a column name that repeats or is one of :data:`RESERVED_COLUMNS`,
        or an entry that is neither.
    """
    if not isinstance(names, list):
        raise ConfigError(f"config key {key}: expected a list of metric names, got {type(names).__name__}")
    known = ", ".join(sorted(METRICS))
    checked, columns = [], {}
    for i, name in enumerate(names):
        where = f"{key}.{i}"
        if isinstance(name, dict) and "function" in name:
            extra = sorted(set(name) - {"function", "name"})
            if extra:
                raise ConfigError(f"config key {where}.{extra[0]}: a user metric takes function and name only")
            _, function_name = parse_reference(name["function"], f"{where}.function")
            column = name.get("name", function_name)
            if not isinstance(column, str) or not COLUMN.match(column):
                raise ConfigError(f"config key {where}.name: {column!r} is not a column name (letters, digits, '_')")
            entry = {"function": name["function"], "name": column}
        elif not isinstance(name, str):
            raise ConfigError(
                f'config key {where}: expected a metric name or {{"function": "module:name"}}, got {name!r}'
            )
        elif name not in METRICS:
            raise ConfigError(f"config key {where}: unknown metric {name!r}; the metrics are: {known}")
        else:
            column = entry = name
        if column in RESERVED_COLUMNS:
            raise ConfigError(f"config key {where}: {column!r} is a column of every metrics table; choose another name")
        if column in columns:
            raise ConfigError(f"config key {where}: metric {column!r} repeats {key}.{columns[column]}")
        columns[column] = i
        checked.append(entry)
    return checked


def metric_columns(entries: list) -> list[str]:
    """The metrics table's column of each checked entry (:func:`check_metrics`), in order."""
    return [entry if isinstance(entry, str) else entry["name"] for entry in entries]


def _check_needs(entry: Metric, output: np.ndarray, input: np.ndarray) -> None:
    if entry.needs == "binary" and (output.dtype != bool or output.ndim != 2):
        raise ValueError(f"metric {entry.name} needs a 2-D bool image (a mask), got a {_describe(output)}")
    if entry.needs == "same_shape" and output.shape != input.shape:
        raise ValueError(
            f"metric {entry.name} compares the output with the input, which need the same shape: "
            f"output {output.shape}, input {input.shape}"
        )


def measure(output: np.ndarray, input: np.ndarray, names: list[str]) -> dict[str, float]:
    """Every metric of ``names`` for one image.

    Parameters
    ----------
    output : ndarray
        The pipeline's result: float (mostly float32 in [0, 1]) or bool;
        ``(height, width)`` or ``(height, width, channels)``.
    input : ndarray
        The pipeline's input as ``img_as_float32`` makes it; used by the
        comparison metrics only.
    names : list of str
        Names of :data:`METRICS`, as :func:`check_metrics` passed them.

    Returns
    -------
    dict
        ``{name: value}`` in the order of ``names``; a NaN or infinity is
        returned as it is.

    Raises
    ------
    ValueError
        Before computing anything: for a name that is not a metric, an output
        that is neither bool nor float, a binary metric on an output that is
        not a 2-D bool image (naming the metric and the output's dtype and
        shape), or a comparison metric where output and input differ in shape
        (naming both shapes).
    """
    if output.dtype != bool and not np.issubdtype(output.dtype, np.floating):
        raise ValueError(f"metrics need a bool or floating-point output, got a {_describe(output)}")
    entries = []
    for name in names:
        if not isinstance(name, str) or name not in METRICS:
            raise ValueError(f"unknown metric {name!r}; the metrics are: {', '.join(sorted(METRICS))}")
        entries.append(METRICS[name])
        _check_needs(METRICS[name], output, input)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        # mean, var, std, min and max come from one call of moments.
        shared = moments(output) if any(entry.name in (*MOMENTS, "std") for entry in entries) else None
        return {
            entry.name: _from_moments(entry.name, shared)
            if entry.name in (*MOMENTS, "std")
            else entry.function(output, input)
            for entry in entries
        }


def nonfinite_count(image: np.ndarray) -> int:
    """Number of pixels holding NaN or infinity; a colour pixel counts once whichever of its channels do.

    Parameters
    ----------
    image : ndarray
        ``(height, width)`` or ``(height, width, channels)``, any dtype.

    Returns
    -------
    int
        0 for a bool or integer image.
    """
    if not np.issubdtype(image.dtype, np.inexact):
        return 0
    bad = ~np.isfinite(image)
    if image.ndim == 3:
        bad = bad.any(axis=-1)
    return int(np.count_nonzero(bad))
