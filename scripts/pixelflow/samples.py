"""scikit-image's bundled sample images as files (for libraries and targets)."""

from pixelflow.imageio import write_image
from pixelflow.plan_mosaics import SKIMAGE_SAMPLES
from pixelflow.tiles import to_uint8


def sample_image(name: str):
    """The sample image ``name`` of skimage.data (only those shipped inside the package)."""
    import skimage.data

    if name not in SKIMAGE_SAMPLES:
        raise ValueError(f"unknown sample image {name!r}; choose one of {', '.join(SKIMAGE_SAMPLES)}")
    return to_uint8(getattr(skimage.data, name)(), name)


def write_sample(name: str, path) -> tuple:
    """Write sample ``name`` as a PNG (deflate level 6) and return its shape."""
    image = sample_image(name)
    write_image(path, image, "png", compression=6)
    return image.shape
