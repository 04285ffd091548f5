"""Planning of the mosaics stage while the Snakefile is parsed (standard library only).

A library is indexed once per (library, tile shape) into
``results/mosaics/libraries/{library}-{tile}px.npz`` (``{tile}`` is ``16`` for
16 x 16 tiles, ``8x12`` for 8 high and 12 wide); each mosaic writes
``results/mosaics/{mosaic}.png``, ``.json`` and ``.tsv``. scikit-image's sample
images can be exported by a rule to ``results/mosaics/samples/{name}.png`` and
named as library images or targets.
"""

from typing import TYPE_CHECKING

from pixelflow.errors import ConfigError
from pixelflow.mosaics.samples import SKIMAGE_SAMPLES  # noqa: F401 (the sample rule's wildcard values)
from pixelflow.planning.config import check_name, glob_files
from pixelflow.planning.datasets import dataset_names

if TYPE_CHECKING:  # the types of what planning hands to the jobs; not imported while the Snakefile is parsed
    from pixelflow.mosaics.render import MosaicSpec
    from pixelflow.mosaics.tiles import LibrarySpec

FOLDER = "results/mosaics"


def tile_shape(tile) -> tuple[int, int]:
    """(height, width) of a ``tile`` config value: an int for a square, or [height, width]."""
    return (tile, tile) if isinstance(tile, int) else (int(tile[0]), int(tile[1]))


def tile_label(shape) -> str:
    """The ``{tile}`` wildcard of a tile shape: ``16`` for (16, 16), ``8x12`` for 8 high and 12 wide."""
    height, width = tile_shape(shape)
    return str(height) if height == width else f"{height}x{width}"


def parse_tile_label(label: str) -> tuple[int, int]:
    """(height, width) from a ``{tile}`` wildcard (:func:`tile_label`)."""
    height, _, width = label.partition("x")
    return int(height), int(width or height)


def scale_shape(scale, tile) -> tuple[int, int]:
    """Output (height, width) of one placed tile: ``scale`` [h, w], or an int height with the tile's aspect.

    ``scale`` None gives the tile's own shape; an int height gives a width of
    ``round(height * tile width / tile height)``, at least 1.
    """
    height, width = tile_shape(tile)
    if scale is None:
        return height, width
    if isinstance(scale, int):
        return scale, max(1, round(scale * width / height))
    return int(scale[0]), int(scale[1])


def feature_grid(spec: dict) -> int:
    """A mosaic's feature grid: ``features.grid``, or by default 8 and at most the largest of 4, 2, 1 that fits."""
    grid = spec["features"]["grid"]
    if grid is not None:
        return grid
    side = min(tile_shape(spec["tile"]))
    return next(size for size in (8, 4, 2, 1) if size <= side)


def library_path(library: str, tile) -> str:
    """The file of a library's indexed tiles at one tile shape (an int side or (height, width))."""
    return f"{FOLDER}/libraries/{library}-{tile_label(tile)}px.npz"


def mosaic_paths(mosaic: str) -> list[str]:
    """The image, the JSON report and the placement table of a mosaic."""
    return [f"{FOLDER}/{mosaic}.png", f"{FOLDER}/{mosaic}.json", f"{FOLDER}/{mosaic}.tsv"]


def check_config(config: dict, workdir) -> None:
    """Check the rules between keys of libraries and mosaics that the schema cannot express.

    Parameters
    ----------
    config : dict
        The validated config.
    workdir : str or path
        The folder library globs are relative to.

    Raises
    ------
    ConfigError
        Naming the key: an unusable name, an unknown dataset or library, a
        repeated rotation, a library glob that matches no file, a feature
        grid larger than the tile, or a quarter turn of non-square tiles.
    """
    libraries = config["libraries"]
    for name, spec in libraries.items():
        check_name(name, ["libraries", name])
        if "dataset" in spec and spec["dataset"] not in dataset_names(config):
            raise ConfigError(
                f"config key libraries.{name}.dataset: no dataset, or pipeline that saves images, "
                f"named {spec['dataset']!r}"
            )
        if len(set(spec["rotations"])) != len(spec["rotations"]):
            raise ConfigError(f"config key libraries.{name}.rotations: {spec['rotations']} repeats a rotation")
        if "path" in spec:
            library_files(config, name, workdir)
    for name, spec in config["mosaics"].items():
        check_name(name, ["mosaics", name])
        if spec["library"] not in libraries:
            raise ConfigError(f"config key mosaics.{name}.library: no library named {spec['library']!r}")
        height, width = tile_shape(spec["tile"])
        grid = feature_grid(spec)
        if grid > min(height, width):
            raise ConfigError(
                f"config key mosaics.{name}.features.grid: a {grid}x{grid} grid needs tiles of at least that many "
                f"px each way (tile is {height}x{width})"
            )
        turned = [degrees for degrees in libraries[spec["library"]]["rotations"] if degrees % 180]
        if height != width and turned:
            raise ConfigError(
                f"config key libraries.{spec['library']}.rotations: a {turned[0]} degree turn does not fit the "
                f"{height}x{width} (height x width) tiles of mosaic {name!r}; only 0 and 180 do"
            )


def outputs(config: dict, datasets=None) -> list[str]:
    """Every final output of the mosaics stage: the image and report of each mosaic."""
    return [path for name in config["mosaics"] for path in mosaic_paths(name)]


def library_files(config: dict, library: str, workdir) -> list[str]:
    """Image files of a ``path`` or ``images`` library (empty for a dataset library).

    Raises
    ------
    ConfigError
        Naming ``libraries.<library>.path``, for a glob that matches no file.
    """
    spec = config["libraries"][library]
    if "path" in spec:
        return glob_files(spec["path"], f"libraries.{library}.path", workdir, "an empty library")
    return list(spec.get("images", []))


def library_dataset(config: dict, library: str) -> str | None:
    """The dataset a library takes its images from, or None when it names files (:func:`library_files`)."""
    return config["libraries"][library].get("dataset")


def library_params(config: dict, library: str) -> "LibrarySpec":
    """Everything a library's tiles depend on besides its input files.

    Returns
    -------
    LibrarySpec
        :class:`~pixelflow.mosaics.tiles.LibrarySpec`; ``mode`` is ``cut`` with the ``cut`` key, else ``fit``.
    """
    spec = config["libraries"][library]
    return {
        "key": f"libraries.{library}",
        "mode": "cut" if spec["cut"] else "fit",
        "fit": spec["fit"],
        "on_bad_image": spec["on_bad_image"],
        "rotations": list(spec["rotations"]),
        "flip": spec["flip"],
        "max_tiles": spec.get("max_tiles"),
    }


def mosaic_inputs(config: dict, mosaic: str) -> dict:
    """Inputs of a mosaic job: its target and its library's tiles at the mosaic's tile size."""
    spec = config["mosaics"][mosaic]
    return {"target": spec["target"], "library": library_path(spec["library"], spec["tile"])}


def mosaic_params(config: dict, mosaic: str) -> "MosaicSpec":
    """Everything a mosaic depends on besides its target and library files.

    Returns
    -------
    MosaicSpec
        :class:`~pixelflow.mosaics.render.MosaicSpec`; tile and scale as (height, width) (:func:`scale_shape`).
    """
    spec = config["mosaics"][mosaic]
    return {
        "key": f"mosaics.{mosaic}",
        "library": spec["library"],
        "tile": list(tile_shape(spec["tile"])),
        "grid": feature_grid(spec),
        "space": spec["features"]["space"],
        "assignment": spec["assignment"],
        "max_repeats": spec.get("max_repeats"),
        "min_spacing": spec["min_spacing"],
        "colour_correction": spec["colour_correction"],
        "scale": list(scale_shape(spec.get("scale"), spec["tile"])),
    }
