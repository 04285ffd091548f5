"""Image file formats: their names in the config, file suffixes and the pixel types each holds (standard library only).

One table serves every stage. TIFF is spelled ``tiff`` in the config and the
docs; ``tif`` is accepted as the same format (:func:`format_name`).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageFormat:
    """An image file format the workflow writes.

    Attributes
    ----------
    name : str
        Canonical name, as in the config: ``png``, ``tiff`` or ``bmp``.
    suffix : str
        Suffix of the files written in it, with the dot (``.tif`` for tiff).
    dtypes : tuple of str
        Pixel types it holds.
    world_suffix : str
        Suffix of the world file beside a georeferenced image in it (``.pgw``, ``.tfw``, ``.bpw``).
    """

    name: str
    suffix: str
    dtypes: tuple[str, ...]
    world_suffix: str


FORMATS = {
    "png": ImageFormat("png", ".png", ("uint8", "uint16"), ".pgw"),
    "tiff": ImageFormat("tiff", ".tif", ("uint8", "uint16", "float32"), ".tfw"),
    "bmp": ImageFormat("bmp", ".bmp", ("uint8",), ".bpw"),
}
ALIASES = {"tif": "tiff"}
# Bytes per pixel value of each pixel type a dataset may have.
DTYPE_BYTES = {"uint8": 1, "uint16": 2, "float32": 4}


def format_name(name: str) -> str:
    """The canonical name of a format (``tif`` is ``tiff``).

    Parameters
    ----------
    name : str
        A format name or alias, lower case as in the config.

    Returns
    -------
    str
        ``png``, ``tiff`` or ``bmp``.

    Raises
    ------
    ValueError
        For an unknown name, naming it and the known formats.
    """
    name = ALIASES.get(name, name)
    if name not in FORMATS:
        raise ValueError(f"unknown image format {name!r}; expected one of {', '.join(FORMATS)}")
    return name


def image_format(name: str) -> ImageFormat:
    """The :class:`ImageFormat` of a format name or alias.

    Raises
    ------
    ValueError
        For an unknown name (:func:`format_name`).
    """
    return FORMATS[format_name(name)]


def format_of_path(path) -> str:
    """The format a file's suffix names, in any case (``.tif`` and ``.tiff`` are tiff).

    Parameters
    ----------
    path : str or path-like
        A file path; only the text after its last dot is looked at.

    Returns
    -------
    str
        The canonical format name.

    Raises
    ------
    ValueError
        Naming the path, when the suffix (or a path without a dot) names no known format.
    """
    suffix = str(path).rpartition(".")[2].lower()
    try:
        return format_name(suffix)
    except ValueError:
        raise ValueError(f"{path}: cannot tell the image format from the suffix {'.' + suffix!r}") from None


def image_file_name(dataset: str, index: int, fmt: str) -> str:
    """File name of image ``index`` of a generated dataset: ``{dataset}_{index:06d}{suffix}``.

    Parameters
    ----------
    dataset : str
        The dataset's name.
    index : int
        The image's index, zero-padded to six digits (more digits from 1,000,000 on).
    fmt : str
        Format name or alias; gives the suffix (``.png``, ``.tif`` or ``.bmp``).

    Returns
    -------
    str
        E.g. ``noise_000042.png``.

    Raises
    ------
    ValueError
        For an unknown format.
    """
    return f"{dataset}_{index:06d}{image_format(fmt).suffix}"
