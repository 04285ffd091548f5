"""Your own pipeline functions: an example the demo config uses (see docs/pipelines.md).

A step function takes the image (float32 in [0, 1], or a bool mask) and its
keyword arguments from the config, and returns a numpy array; a metric takes
the pipeline's result and its input and returns a number.
"""

import numpy as np
import skimage.measure


def mean_object_area(output: np.ndarray, input: np.ndarray) -> float:
    """Mean area in pixels of the 8-connected objects of a mask (0 when there are none)."""
    labels = skimage.measure.label(output, connectivity=2)
    areas = np.bincount(labels.ravel())[1:]
    return float(areas.mean()) if areas.size else 0.0


def gamma(image: np.ndarray, power: float = 1.0) -> np.ndarray:
    """Raise every pixel to ``power``: below 1 brightens the darks, above 1 darkens them."""
    return np.power(image, power, dtype=np.float32)
