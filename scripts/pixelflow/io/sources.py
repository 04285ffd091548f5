"""The shared reader of dataset images: an image file, or one image of a dataset's Zarr array.

Every stage that reads a dataset names each image by a *source*, the ``path``
that :func:`pixelflow.io.manifest.read_manifest` gives its manifest row: the
file itself, or for a dataset with ``storage: zarr`` the array's folder with
the image's index in brackets, ``results/datasets/scans/images.zarr[17]``.
:func:`read_source` reads either, so the montage, stats, pipelines and mosaic
libraries take zarr datasets as they take file datasets. A file whose own name
ends in ``.zarr[<digits>]`` cannot be read through a source. The names are
made and split by :mod:`pixelflow.io.manifest` (which writes them), so that
code reading manifests of files alone does not depend on Zarr.
"""

from functools import lru_cache

import numpy as np

from pixelflow.io import zarrstore
from pixelflow.io.images import read_image
from pixelflow.io.manifest import ARRAY_NAME, ARRAY_SUFFIX, array_source, split_source

__all__ = ["ARRAY_NAME", "ARRAY_SUFFIX", "array_source", "read_source", "split_source"]

OPEN_ARRAYS = 8  # arrays kept open per process


@lru_cache(maxsize=OPEN_ARRAYS)
def _open_array(store: str) -> zarrstore.ImageReader:
    return zarrstore.open_reader(store)


def read_source(source) -> np.ndarray:
    """Read one dataset image: an image file, or an image of a Zarr array.

    Parameters
    ----------
    source : str or path-like
        A file (read by :func:`pixelflow.io.images.read_image`, as a viewer
        shows it), or ``<store>[<index>]`` (:func:`array_source`), read by
        :func:`pixelflow.io.zarrstore.read_image`; each array is opened once
        per process.

    Returns
    -------
    ndarray
        (h, w) or (h, w, c).

    Raises
    ------
    ImageError
        Naming the file, when it cannot be read or decoded (for an array, the
        shard file).
    FileNotFoundError
        Naming the array's ``zarr.json`` or shard file, when it is missing.
    IndexError
        For an index outside the array.
    """
    item = split_source(source)
    if item is None:
        return read_image(source)
    store, index = item
    return zarrstore.read_image(_open_array(store), index)
