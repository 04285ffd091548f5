"""Planning of the mosaics rules while the Snakefile is parsed (standard library only).

A library is indexed once per (library, tile size) into
``results/mosaics/libraries/{library}-{tile}px.npz``; each mosaic writes
``results/mosaics/{mosaic}.png`` and ``.json``. Scikit-image sample images can
be exported by a rule to ``results/mosaics/samples/{name}.png`` and named as
library images or targets.
"""

import glob
from pathlib import Path

from pixelflow.plan import ConfigError, check_name

# scikit-image sample images bundled inside the package (no download needed).
SKIMAGE_SAMPLES = (
    "astronaut",
    "brick",
    "camera",
    "cell",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "colorwheel",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "logo",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
)
SAMPLE_DIR = "results/mosaics/samples"


def library_path(library: str, tile: int) -> str:
    return f"results/mosaics/libraries/{library}-{tile}px.npz"


def mosaic_paths(mosaic: str) -> list[str]:
    return [f"results/mosaics/{mosaic}.png", f"results/mosaics/{mosaic}.json"]


def sample_path(sample: str) -> str:
    return f"{SAMPLE_DIR}/{sample}.png"


def glob_files(pattern: str, where: str, workdir) -> list[str]:
    """Files a library's glob names, sorted, relative to ``workdir`` when inside it."""
    base = Path(workdir)
    full = pattern if Path(pattern).is_absolute() else str(base / pattern)
    matches = sorted(path for path in glob.glob(full, recursive=True) if Path(path).is_file())
    if not matches:
        raise ConfigError(f"config key {where}: the glob {pattern!r} matches no files (an empty library)")
    base = base.resolve()
    return [str(Path(m).resolve().relative_to(base)) if Path(m).resolve().is_relative_to(base) else m for m in matches]


def check(config: dict, workdir=".") -> None:
    """Rules between keys that the schema cannot express; raises ConfigError naming the key."""
    libraries = config.get("libraries", {})
    for name, spec in libraries.items():
        check_name(name, ["libraries", name])
        if "dataset" in spec and spec["dataset"] not in config.get("datasets", {}):
            raise ConfigError(f"config key libraries.{name}.dataset: no dataset named {spec['dataset']!r}")
        if len(set(spec["rotations"])) != len(spec["rotations"]):
            raise ConfigError(f"config key libraries.{name}.rotations: {spec['rotations']} repeats a rotation")
        if "path" in spec:
            glob_files(spec["path"], f"libraries.{name}.path", workdir)
    for name, spec in config.get("mosaics", {}).items():
        check_name(name, ["mosaics", name])
        if spec["library"] not in libraries:
            raise ConfigError(f"config key mosaics.{name}.library: no library named {spec['library']!r}")
        if spec["features"]["grid"] > spec["tile"]:
            raise ConfigError(
                f"config key mosaics.{name}.features.grid: a {spec['features']['grid']}x"
                f"{spec['features']['grid']} grid needs tiles of at least that many px (tile is {spec['tile']})"
            )


def library_files(config: dict, library: str, workdir=".") -> list[str]:
    """Image files of a `path` or `images` library (empty for a dataset library)."""
    spec = config["libraries"][library]
    if "path" in spec:
        return glob_files(spec["path"], f"libraries.{library}.path", workdir)
    return list(spec.get("images", []))


def library_inputs(config: dict, library: str, shard_dirs, workdir=".") -> dict:
    """Inputs of a library job: the dataset's shard folders, or the image files."""
    spec = config["libraries"][library]
    if "dataset" in spec:
        return {"shards": shard_dirs(spec["dataset"])}
    return {"images": library_files(config, library, workdir)}


def library_params(config: dict, library: str) -> dict:
    """Everything a library's tiles depend on besides its input files."""
    spec = config["libraries"][library]
    return {
        "key": f"libraries.{library}",
        "mode": "resize" if "dataset" in spec else "cut",
        "rotations": list(spec["rotations"]),
        "flip": spec["flip"],
        "max_tiles": spec.get("max_tiles"),
    }


def mosaic_inputs(config: dict, mosaic: str) -> dict:
    spec = config["mosaics"][mosaic]
    return {"target": spec["target"], "library": library_path(spec["library"], spec["tile"])}


def mosaic_params(config: dict, mosaic: str) -> dict:
    """Everything a mosaic depends on besides its target and library files."""
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


def outputs(config: dict) -> list[str]:
    """Every final output of the mosaics stage the config asks for (after checking the config)."""
    check(config)
    paths = []
    for name in config.get("mosaics", {}):
        paths += mosaic_paths(name)
    return paths
