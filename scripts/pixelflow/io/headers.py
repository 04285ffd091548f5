"""Image sizes from file headers, without decoding the pixels (Pillow).

Pillow is imported on first use, so that the Snakefile's parse pays for it
only when a map's size is needed to plan a job.
"""

from pathlib import Path

from pixelflow.errors import ImageError


def image_size(path) -> tuple[int, int]:
    """``(width, height)`` of an image from its file header.

    Parameters
    ----------
    path : str or path-like
        Any image file Pillow opens; no pixel limit is applied.

    Returns
    -------
    tuple of int
        ``(width, height)`` in pixels.

    Raises
    ------
    ImageError
        Naming the file, if it is missing or not a readable image.
    """
    from PIL import Image

    if not Path(path).is_file():
        raise ImageError(f"{path}: no such image file")
    Image.MAX_IMAGE_PIXELS = None  # the header only; callers apply their own limit
    try:
        with Image.open(path) as image:
            return image.size
    except Exception as error:
        raise ImageError(f"{path}: not a readable image ({type(error).__name__}: {error})") from error
