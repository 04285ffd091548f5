"""The registry of per-image operations that a filter pipeline chains.

An operation is a function ``f(image, **params) -> ndarray`` registered with
:func:`operation`, which also declares its parameters (:class:`Param`) and the
input it takes. A config step ``{op: median, size: 3}`` is checked against the
registry by :func:`check_step` before any job runs, and checked steps are run in
order by :func:`apply_steps`.

Each operation is a thin wrapper of the library function that defines it, named
in its docstring, with that function's border handling; colour images go through
its ``channel_axis`` where it has one, and channel by channel otherwise.

Dtypes:

- the input image is first converted as scikit-image's ``img_as_float32`` does:
  uint8 and uint16 scaled to [0, 1], float kept, bool as 0 and 1, all as float32;
- every operation works on float32 and returns float32, except that ``threshold``
  returns bool, the binary operations (``binary_opening``, ``binary_closing``,
  ``remove_small_objects``) take and return bool, and ``invert`` keeps bool as bool;
  a bool image given to any other operation is taken as 0 and 1 in float32;
- images are grey (h, w) or RGB (h, w, 3), channel last. An operation that needs
  a grey image given colour, or a binary image given another, raises ValueError
  naming the operation, what it got and the step to add before it.

The libraries are imported inside the operations, so that checking a config
against the registry (:func:`check_step`, while the Snakefile is parsed) costs
no library start-up.
"""

import dataclasses
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

from pixelflow.errors import ConfigError
from pixelflow.pipelines.kernel import BORDER_MODES
from pixelflow.pipelines.user_code import parse_reference


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
# The op of a user's own step: {op: python, function: "module:name", ...its keyword arguments}.
PYTHON = "python"
Takes = Literal["any", "grey", "binary"]
TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


@dataclasses.dataclass(frozen=True)
class Param:
    """One parameter of an operation: its type, default and accepted values.

    ``type`` is int, float, bool or str; ``default`` is a value, ``None`` for an
    optional parameter the library chooses when absent, or :data:`REQUIRED`.
    ``choices`` restricts a string; ``minimum``/``maximum`` (inclusive) and
    ``exclusive_minimum`` bound a number, as in JSON schema.
    """

    type: type
    default: Any = REQUIRED
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None

    def describe(self) -> str:
        """What the parameter accepts, in words: ``an integer >= 1``, ``one of otsu, li``."""
        if self.choices is not None:
            text = "one of " + ", ".join(self.choices)
        else:
            bounds = [
                f"{sign} {bound:g}"
                for sign, bound in ((">", self.exclusive_minimum), (">=", self.minimum), ("<=", self.maximum))
                if bound is not None
            ]
            text = " ".join([TYPE_NAMES[self.type], " and ".join(bounds)]).strip()
        return text + (" or null" if self.default is None else "")

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` is of this parameter's type (an int for a float; never a bool for a number) and range."""
        if value is None:
            return self.default is None
        if self.type is float:
            typed = isinstance(value, int | float) and not isinstance(value, bool)
        elif self.type is int:
            typed = isinstance(value, int) and not isinstance(value, bool)
        else:
            typed = isinstance(value, self.type)
        if not typed:
            return False
        if self.choices is not None and value not in self.choices:
            return False
        if self.type in (int, float):
            if isinstance(value, float) and not np.isfinite(value):
                return False
            if self.exclusive_minimum is not None and not value > self.exclusive_minimum:
                return False
            if self.minimum is not None and value < self.minimum:
                return False
            if self.maximum is not None and value > self.maximum:
                return False
        return True


@dataclasses.dataclass(frozen=True)
class Operation:
    """A registered operation.

    ``takes`` is "any" (grey or colour), "grey" or "binary" (bool); ``keeps_bool``
    passes a bool image through as bool instead of as 0 and 1; ``check``, given
    the filled parameters, returns ``(parameter, problem)`` for a combination
    the single parameters cannot express, or None.
    """

    name: str
    function: Callable[..., np.ndarray]
    params: Mapping[str, Param]
    takes: Takes = "any"
    keeps_bool: bool = False
    check: Callable[[dict], tuple[str, str] | None] | None = None


OPERATIONS: dict[str, Operation] = {}


def operation(
    name: str,
    *,
    takes: Takes = "any",
    keeps_bool: bool = False,
    check: Callable[[dict], tuple[str, str] | None] | None = None,
    **params: Param,
) -> Callable:
    """Register the decorated function as the operation ``name`` with parameters ``params``.

    Parameters
    ----------
    name : str
        The name a config step gives as ``op``.
    takes : {"any", "grey", "binary"}
        The input the function takes.
    keeps_bool : bool
        Whether a bool image reaches the function as bool.
    check : callable, optional
        See :class:`Operation`.
    **params : Param
        The function's keyword parameters.

    Returns
    -------
    callable
        A decorator that registers the function and returns it unchanged.
    """

    def register(function: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        OPERATIONS[name] = Operation(name, function, MappingProxyType(dict(params)), takes, keeps_bool, check)
        return function

    return register


def check_step(step: dict, key: str) -> dict:
    """Check one pipeline step against the registry; the step with every parameter filled.

    Parameters
    ----------
    step : dict
        ``{"op": name, parameter: value, ...}`` as read from the config.
    key : str
        The step's config key, e.g. ``pipelines.cells.steps.2``, for errors.

    Returns
    -------
    dict
        A new dict: ``op`` and every parameter of the operation, defaults filled
        and ints given for float parameters as floats. A user's step
        (``op: python``) is returned as given once its ``function`` is a
        ``"module:function"``; its other keys are the function's keyword arguments.

    Raises
    ------
    ConfigError
        Starting ``config key {key}...`` and naming the bad key: an unknown
        operation (listing the known ones), an unknown parameter (listing the
        operation's), a missing, ill-typed or out-of-range value (saying what is accepted).
    """
    if not isinstance(step, dict) or "op" not in step:
        raise ConfigError(
            f"config key {key}: a step is a mapping with an op, such as {{op: median, size: 3}}; got {step!r}"
        )
    name = step["op"]
    if name == PYTHON:
        if "function" not in step:
            raise ConfigError(f'config key {key}.function: required by op python, as "module:function"')
        parse_reference(step["function"], f"{key}.function")
        return dict(step)
    if not isinstance(name, str) or name not in OPERATIONS:
        known = ", ".join(sorted([*OPERATIONS, PYTHON]))
        raise ConfigError(f"config key {key}.op: unknown operation {name!r}; known operations: {known}")
    op = OPERATIONS[name]
    accepted = ", ".join(op.params) if op.params else "none"
    for given in step:
        if given != "op" and given not in op.params:
            raise ConfigError(
                f"config key {key}.{given}: {name} has no parameter {given!r}; its parameters: {accepted}"
            )
    filled = {"op": name}
    for param_name, param in op.params.items():
        if param_name not in step:
            if param.default is REQUIRED:
                raise ConfigError(
                    f"config key {key}.{param_name}: required by {name}; {param.describe()} "
                    f"({name}'s parameters: {accepted})"
                )
            filled[param_name] = param.default
            continue
        value = step[param_name]
        if not param.accepts(value):
            raise ConfigError(
                f"config key {key}.{param_name}: got {value!r}; expected {param.describe()} "
                f"({name}'s parameters: {accepted})"
            )
        filled[param_name] = float(value) if param.type is float and value is not None else value
    if op.check is not None and (problem := op.check(filled)) is not None:
        raise ConfigError(f"config key {key}.{problem[0]}: {problem[1]}")
    return filled


def as_float32(image: np.ndarray) -> np.ndarray:
    """``image`` converted as ``skimage.util.img_as_float32`` does, for a pipeline's input.

    Parameters
    ----------
    image : ndarray
        Grey (h, w) or RGB (h, w, 3); bool, uint8, uint16 or float.

    Returns
    -------
    ndarray
        float32: uint8 and uint16 scaled to [0, 1], bool as 0 and 1, float values kept.

    Raises
    ------
    ValueError
        For another shape or dtype, or float pixels that are NaN or infinite.
    """
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"a pipeline takes a grey (h, w) or RGB (h, w, 3) image, got shape {image.shape}")
    if image.dtype == bool:
        return image.astype(np.float32)
    from pixelflow.pipelines.filters import to_float

    return to_float(image)


def _prepare(op: Operation, image: np.ndarray) -> np.ndarray:
    if op.takes == "binary":
        if image.dtype != bool:
            raise ValueError(
                f"{op.name} needs a binary image, got {image.dtype} of shape {image.shape}; "
                "add {op: threshold} before it"
            )
        return image
    if image.dtype == bool and not op.keeps_bool:
        image = image.astype(np.float32)
    if op.takes == "grey" and image.ndim != 2:
        raise ValueError(f"{op.name} needs a grey image, got shape {image.shape}; add {{op: rgb2gray}} before it")
    return image


def user_result(result, function: str) -> np.ndarray:
    """A user step's result in the pipeline's dtypes: float32, or bool kept.

    Parameters
    ----------
    result : object
        What the user's function returned.
    function : str
        Its ``"module:function"``, for errors.

    Returns
    -------
    ndarray
        bool as it is; float as float32; uint8 and uint16 scaled to [0, 1] (:func:`as_float32`).

    Raises
    ------
    ValueError
        Naming the function, when the result is not an array, not grey (h, w)
        or RGB (h, w, 3), or of another dtype.
    """
    if not isinstance(result, np.ndarray):
        raise ValueError(f"{function} returned {type(result).__name__}, not a numpy array")
    if not (result.ndim == 2 or (result.ndim == 3 and result.shape[2] == 3)):
        raise ValueError(f"{function} returned an array of shape {result.shape}; expected (h, w) or (h, w, 3)")
    if result.dtype == bool:
        return result
    if np.issubdtype(result.dtype, np.floating):
        return result.astype(np.float32, copy=False)
    if result.dtype in (np.uint8, np.uint16):
        return as_float32(result)
    raise ValueError(f"{function} returned {result.dtype} pixels; expected bool, float, uint8 or uint16")


def apply_steps(image: np.ndarray, steps: list[dict], functions: Mapping[str, Callable] | None = None) -> np.ndarray:
    """Run checked pipeline steps on one image, in order.

    Parameters
    ----------
    image : ndarray
        Grey (h, w) or RGB (h, w, 3); converted first by :func:`as_float32`.
    steps : list of dict
        Steps as returned by :func:`check_step`.
    functions : mapping of str to callable, optional
        The users' functions of the ``op: python`` steps, by ``"module:function"``;
        each is called as ``f(image, **arguments)`` and its result checked by :func:`user_result`.

    Returns
    -------
    ndarray
        float32, or bool after a binary operation (see the module's dtype rules).

    Raises
    ------
    ValueError
        For an input :func:`as_float32` refuses, an operation given an image
        it does not take (naming the operation and what it got), or a user
        function's result :func:`user_result` refuses.
    Exception
        Whatever a user's function raises.
    """
    image = as_float32(image)
    for step in steps:
        if step["op"] == PYTHON:
            arguments = {name: value for name, value in step.items() if name not in ("op", "function")}
            # A copy: the image may be the pipeline's input, which the comparison metrics read afterwards.
            image = user_result(functions[step["function"]](image.copy(), **arguments), step["function"])
            continue
        op = OPERATIONS[step["op"]]
        params = {name: value for name, value in step.items() if name != "op"}
        result = op.function(_prepare(op, image), **params)
        image = result if result.dtype == bool else result.astype(np.float32, copy=False)
    return image


def _channel_axis(image: np.ndarray) -> int | None:
    # 2, not -1: scikit-image 0.26's unsharp_mask slices the wrong axis for a negative channel_axis.
    return 2 if image.ndim == 3 else None


def _per_channel(function: Callable[..., np.ndarray], image: np.ndarray, **kwargs: Any) -> np.ndarray:
    if image.ndim == 2:
        return function(image, **kwargs)
    return np.stack([function(image[..., c], **kwargs) for c in range(image.shape[2])], axis=-1)


def _square(image: np.ndarray, size: int) -> tuple[int, ...]:
    """A size x size window that never reaches across channels."""
    return (size, size) + (1,) * (image.ndim - 2)


@operation(
    "gaussian",
    sigma=Param(float, 1.0, exclusive_minimum=0),
    truncate=Param(float, 4.0, exclusive_minimum=0),
    mode=Param(str, "nearest", choices=BORDER_MODES),
)
def gaussian(image: np.ndarray, sigma: float, truncate: float, mode: str) -> np.ndarray:
    """Gaussian blur: :func:`pixelflow.pipelines.filters.gaussian`, equal to ``skimage.filters.gaussian`` in float32."""
    from pixelflow.pipelines.filters import gaussian

    return gaussian(image, sigma, truncate, mode)


@operation("median", size=Param(int, 3, minimum=1))
def median(image: np.ndarray, size: int) -> np.ndarray:
    """Median over a size x size square: ``scipy.ndimage.median_filter``, border 'nearest' as in skimage's median.

    Sizes 3 and 5 use OpenCV's ``medianBlur`` (its float32 sizes, border
    replicate), equal to scipy's for finite pixels and measured 40 times faster
    on a 512 x 512 image.
    """
    if size in (3, 5):
        import cv2

        return cv2.medianBlur(np.ascontiguousarray(image, dtype=np.float32), size)
    import scipy.ndimage as ndi

    return ndi.median_filter(image, size=_square(image, size), mode="nearest")


@operation("uniform", size=Param(int, 3, minimum=1))
def uniform(image: np.ndarray, size: int) -> np.ndarray:
    """Mean over a size x size box: ``scipy.ndimage.uniform_filter`` (border 'reflect')."""
    import scipy.ndimage as ndi

    return ndi.uniform_filter(image, size=_square(image, size))


# The smoothing weights of scikit-image's edge filters, across the derivative's axis.
SOBEL_SMOOTH = (0.25, 0.5, 0.25)
SCHARR_SMOOTH = (3 / 16, 10 / 16, 3 / 16)


def _edge_magnitude(image: np.ndarray, smooth: tuple[float, ...]) -> np.ndarray:
    """sqrt((gx² + gy²) / 2) of the derivative [1, 0, -1] smoothed across: scikit-image's edge magnitude.

    Computed with OpenCV's separable filter (border reflect, as scipy's
    'reflect'); equal to ``skimage.filters.sobel``/``scharr`` within float32
    rounding (1e-6) and measured 6.7 times faster on a 512 x 512 image. Each
    channel of a colour image is filtered on its own.
    """
    import cv2

    derivative = np.array([-1.0, 0.0, 1.0], np.float32)  # the correlation form of the convolution [1, 0, -1]
    weights = np.array(smooth, np.float32)
    image = np.ascontiguousarray(image, dtype=np.float32)
    across = cv2.sepFilter2D(image, cv2.CV_32F, derivative, weights, borderType=cv2.BORDER_REFLECT)
    down = cv2.sepFilter2D(image, cv2.CV_32F, weights, derivative, borderType=cv2.BORDER_REFLECT)
    return np.sqrt((across * across + down * down) * np.float32(0.5))


@operation("sobel")
def sobel(image: np.ndarray) -> np.ndarray:
    """Sobel edge magnitude: ``skimage.filters.sobel``, channel by channel (:func:`_edge_magnitude`)."""
    return _edge_magnitude(image, SOBEL_SMOOTH)


@operation("scharr")
def scharr(image: np.ndarray) -> np.ndarray:
    """Scharr edge magnitude: ``skimage.filters.scharr``, channel by channel (:func:`_edge_magnitude`)."""
    return _edge_magnitude(image, SCHARR_SMOOTH)


@operation("laplace", ksize=Param(int, 3, minimum=3))
def laplace(image: np.ndarray, ksize: int) -> np.ndarray:
    """Laplace edge map: ``skimage.filters.laplace``, channel by channel."""
    import skimage.filters

    return _per_channel(skimage.filters.laplace, image, ksize=ksize)


@operation(
    "unsharp_mask",
    radius=Param(float, 1.0, exclusive_minimum=0),
    amount=Param(float, 1.0),
)
def unsharp_mask(image: np.ndarray, radius: float, amount: float) -> np.ndarray:
    """Sharpen: ``skimage.filters.unsharp_mask`` (result clipped to [0, 1], or [-1, 1] for negative input)."""
    import skimage.filters

    return skimage.filters.unsharp_mask(image, radius=radius, amount=amount, channel_axis=_channel_axis(image))


@operation("equalize_hist", nbins=Param(int, 256, minimum=2))
def equalize_hist(image: np.ndarray, nbins: int) -> np.ndarray:
    """Histogram equalisation: ``skimage.exposure.equalize_hist``, channel by channel."""
    import skimage.exposure

    return _per_channel(skimage.exposure.equalize_hist, image, nbins=nbins)


@operation(
    "equalize_adapthist",
    clip_limit=Param(float, 0.01, minimum=0, maximum=1),
    kernel_size=Param(int, None, minimum=1),
)
def equalize_adapthist(image: np.ndarray, clip_limit: float, kernel_size: int | None) -> np.ndarray:
    """CLAHE: ``skimage.exposure.equalize_adapthist`` (colour through the HSV value channel).

    ``kernel_size`` None is the library's default, 1/8 of the height by 1/8 of the width.
    """
    import skimage.exposure

    return skimage.exposure.equalize_adapthist(image, kernel_size=kernel_size, clip_limit=clip_limit)


@operation("denoise_tv", weight=Param(float, 0.1, exclusive_minimum=0))
def denoise_tv(image: np.ndarray, weight: float) -> np.ndarray:
    """Total-variation denoising: ``skimage.restoration.denoise_tv_chambolle``."""
    import skimage.restoration

    return skimage.restoration.denoise_tv_chambolle(image, weight=weight, channel_axis=_channel_axis(image))


@operation(
    "bilateral",
    sigma_color=Param(float, None, exclusive_minimum=0),
    sigma_spatial=Param(float, 1.0, exclusive_minimum=0),
)
def bilateral(image: np.ndarray, sigma_color: float | None, sigma_spatial: float) -> np.ndarray:
    """Bilateral denoising: ``skimage.restoration.denoise_bilateral`` (``sigma_color`` None: the image's std)."""
    import skimage.restoration

    return skimage.restoration.denoise_bilateral(
        image, sigma_color=sigma_color, sigma_spatial=sigma_spatial, channel_axis=_channel_axis(image)
    )


@operation(
    "rescale",
    scale=Param(float, exclusive_minimum=0),
    anti_aliasing=Param(bool, True),
)
def rescale(image: np.ndarray, scale: float, anti_aliasing: bool) -> np.ndarray:
    """Scale both axes by ``scale``: ``skimage.transform.rescale``."""
    import skimage.transform

    return skimage.transform.rescale(image, scale, anti_aliasing=anti_aliasing, channel_axis=_channel_axis(image))


@operation(
    "resize",
    height=Param(int, minimum=1),
    width=Param(int, minimum=1),
    anti_aliasing=Param(bool, True),
)
def resize(image: np.ndarray, height: int, width: int, anti_aliasing: bool) -> np.ndarray:
    """Resize to height x width pixels, channels kept: ``skimage.transform.resize``."""
    import skimage.transform

    return skimage.transform.resize(image, (height, width), anti_aliasing=anti_aliasing)


@operation("rgb2gray")
def rgb2gray(image: np.ndarray) -> np.ndarray:
    """Luminance of an RGB image: ``skimage.color.rgb2gray``; a grey image passes through."""
    import skimage.color

    return image if image.ndim == 2 else skimage.color.rgb2gray(image)


@operation("invert", keeps_bool=True)
def invert(image: np.ndarray) -> np.ndarray:
    """1 - x for float, not x for bool: ``skimage.util.invert``."""
    import skimage.util

    return skimage.util.invert(image)


# Methods of ``threshold``, each ``skimage.filters.threshold_<method>``.
THRESHOLDS = ("otsu", "li", "yen", "triangle")


def _check_threshold(params: dict) -> tuple[str, str] | None:
    if params["method"] == "value" and params["value"] is None:
        return "value", "required when method is value"
    if params["method"] != "value" and params["value"] is not None:
        return "value", f"used only when method is value, not {params['method']}"
    return None


@operation(
    "threshold",
    takes="grey",
    check=_check_threshold,
    method=Param(str, "otsu", choices=(*THRESHOLDS, "value")),
    value=Param(float, None),
)
def threshold(image: np.ndarray, method: str, value: float | None) -> np.ndarray:
    """Foreground mask ``image > t``, t from ``skimage.filters.threshold_<method>`` or the given ``value``."""
    import skimage.filters

    level = value if method == "value" else getattr(skimage.filters, f"threshold_{method}")(image)
    return image > level


@operation("binary_opening", takes="binary", radius=Param(int, 1, minimum=1))
def binary_opening(image: np.ndarray, radius: int) -> np.ndarray:
    """Opening with a disk: ``skimage.morphology.opening`` of a bool image, ``footprint=disk(radius)``.

    Border mode 'ignore', as the ``binary_opening`` that scikit-image 0.26 deprecated in its favour.
    """
    import skimage.morphology

    return skimage.morphology.opening(image, footprint=skimage.morphology.disk(radius), mode="ignore")


@operation("binary_closing", takes="binary", radius=Param(int, 1, minimum=1))
def binary_closing(image: np.ndarray, radius: int) -> np.ndarray:
    """Closing with a disk: ``skimage.morphology.closing`` of a bool image, ``footprint=disk(radius)``.

    Border mode 'ignore', as the ``binary_closing`` that scikit-image 0.26 deprecated in its favour.
    """
    import skimage.morphology

    return skimage.morphology.closing(image, footprint=skimage.morphology.disk(radius), mode="ignore")


@operation("remove_small_objects", takes="binary", max_size=Param(int, 64, minimum=0))
def remove_small_objects(image: np.ndarray, max_size: int) -> np.ndarray:
    """Remove 4-connected objects of ``max_size`` pixels or fewer: ``skimage.morphology.remove_small_objects``.

    scikit-image 0.26 replaced ``min_size`` (objects strictly smaller) by ``max_size``; the name follows it.
    """
    import skimage.morphology

    return skimage.morphology.remove_small_objects(image, max_size=max_size)
