"""Image file formats: their names in the config, file suffixes and the pixel types each holds (standard library only).

One table serves every stage. TIFF is spelled ``tiff`` in the config and the
docs; ``tif`` is accepted as the same format (:func:`format_name`).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageFormat:
    """An image file format the workflow writes."""

    name: str
    suffix: str  # of the files written in it
    dtypes: tuple[str, ...]  # pixel types it holds
    world_suffix: str  # of the world file beside a georeferenced image


FORMATS = {
    "png": ImageFormat("png", ".png", ("uint8", "uint16"), ".pgw"),
    "tiff": ImageFormat("tiff", ".tif", ("uint8", "uint16", "float32"), ".tfw"),
    "bmp": ImageFormat("bmp", ".bmp", ("uint8",), ".bpw"),
}
ALIASES = {"tif": "tiff"}
# Bytes per pixel value of each pixel type a dataset may have.
DTYPE_BYTES = {"uint8": 1, "uint16": 2, "float32": 4}


def format_name(name: str) -> str:
    """The canonical name of a format (``tif`` is ``tiff``); ValueError for an unknown one."""
    name = ALIASES.get(name, name)
    if name not in FORMATS:
        raise ValueError(f"unknown image format {name!r}; expected one of {', '.join(FORMATS)}")
    return name


def image_format(name: str) -> ImageFormat:
    """The :class:`ImageFormat` of a format name or alias."""
    return FORMATS[format_name(name)]


def format_of_path(path) -> str:
    """The format a file's suffix names (``.tif`` and ``.tiff`` are tiff); ValueError for another suffix."""
    suffix = str(path).rpartition(".")[2].lower()
    try:
        return format_name(suffix)
    except ValueError:
        raise ValueError(f"{path}: cannot tell the image format from the suffix {'.' + suffix!r}") from None


def image_file_name(dataset: str, index: int, fmt: str) -> str:
    """File name of image ``index`` of a generated dataset: ``{dataset}_{index:06d}{suffix}``."""
    return f"{dataset}_{index:06d}{image_format(fmt).suffix}"
