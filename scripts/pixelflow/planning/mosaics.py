"""Planning of the mosaics stage while the Snakefile is parsed (standard library only).

A library is indexed once per (library, tile size) into
``results/mosaics/libraries/{library}-{tile}px.npz``; each mosaic writes
``results/mosaics/{mosaic}.png`` and ``.json``. scikit-image's sample images
can be exported by a rule to ``results/mosaics/samples/{name}.png`` and named
as library images or targets.
"""

from typing import TYPE_CHECKING

from pixelflow.errors import ConfigError
from pixelflow.mosaics.samples import SKIMAGE_SAMPLES  # noqa: F401 (the sample rule's wildcard values)
from pixelflow.planning.config import check_name, glob_files
from pixelflow.planning.datasets import dataset_names, shard_dir

if TYPE_CHECKING:  # the types of what planning hands to the jobs; not imported while the Snakefile is parsed
    from pixelflow.mosaics.render import MosaicSpec
    from pixelflow.mosaics.tiles import LibrarySpec

FOLDER = "results/mosaics"


def library_path(library: str, tile: int) -> str:
    """The file of a library's indexed tiles at one tile size (pixels)."""
    return f"{FOLDER}/libraries/{library}-{tile}px.npz"


def mosaic_paths(mosaic: str) -> list[str]:
    """The image and the JSON report of a mosaic."""
    return [f"{FOLDER}/{mosaic}.png", f"{FOLDER}/{mosaic}.json"]


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
        repeated rotation, a library glob that matches no file, or a feature
        grid larger than the tile.
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
        if spec["features"]["grid"] > spec["tile"]:
            raise ConfigError(
                f"config key mosaics.{name}.features.grid: a {spec['features']['grid']}x"
                f"{spec['features']['grid']} grid needs tiles of at least that many px (tile is {spec['tile']})"
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


def library_inputs(config: dict, datasets: dict, library: str, workdir) -> dict:
    """Inputs of a library job: the dataset's shard folders, or the image files (:func:`library_files`).

    ``datasets`` holds the dataset plans (:func:`pixelflow.planning.datasets.plan_datasets`).
    """
    spec = config["libraries"][library]
    if "dataset" in spec:
        name = spec["dataset"]
        return {"shards": [shard_dir(name, shard) for shard in datasets[name].shards]}
    return {"images": library_files(config, library, workdir)}


def library_params(config: dict, library: str) -> "LibrarySpec":
    """Everything a library's tiles depend on besides its input files.

    Returns
    -------
    LibrarySpec
        :class:`~pixelflow.mosaics.tiles.LibrarySpec`; ``mode`` is ``resize`` for a dataset library, else ``cut``.
    """
    spec = config["libraries"][library]
    return {
        "key": f"libraries.{library}",
        "mode": "resize" if "dataset" in spec else "cut",
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
        :class:`~pixelflow.mosaics.render.MosaicSpec`; ``scale`` defaults to the tile size.
    """
    spec = config["mosaics"][mosaic]
    return {
        "key": f"mosaics.{mosaic}",
        "library": spec["library"],
        "tile": spec["tile"],
        "grid": spec["features"]["grid"],
        "space": spec["features"]["space"],
        "max_repeats": spec.get("max_repeats"),
        "colour_correction": spec["colour_correction"],
        "scale": spec.get("scale") or spec["tile"],
    }
