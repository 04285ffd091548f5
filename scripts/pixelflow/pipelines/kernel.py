"""The 1-D Gaussian kernel of scipy.ndimage (and so scikit-image), numpy only.

Kept apart from the filter itself so that table and theory code can use it
without loading OpenCV.
"""

import functools

import numpy as np

# The border modes of the Gaussian filter, as scipy.ndimage names them.
BORDER_MODES = ("reflect", "mirror", "nearest", "constant", "wrap")


def kernel_radius(sigma: float, truncate: float = 4.0) -> int:
    """Half-width of the kernel: scipy's ``int(truncate * sigma + 0.5)``."""
    return int(truncate * float(sigma) + 0.5)


def gaussian_kernel(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """The normalised 1-D kernel (float64, length 2r + 1) of scipy.ndimage.gaussian_filter.

    r is :func:`kernel_radius`; the weights sum to 1.

    Raises
    ------
    ValueError
        For sigma not above 0.
    """
    return _kernel(float(sigma), float(truncate)).astype(np.float64)


@functools.lru_cache(maxsize=32)
def _kernel(sigma: float, truncate: float) -> np.ndarray:
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    radius = kernel_radius(sigma, truncate)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 / sigma**2 * x**2)
    weights /= weights.sum()
    weights.setflags(write=False)
    return weights
