"""Planning of the maps stage while the Snakefile is parsed.

Every map in ``maps`` is reprojected to every projection in ``projections``;
settings shared by all of them live in ``reprojection``. With
``reprojection.cache_inverse`` on, each distinct inverse map is computed once,
by a ``map_inverse`` job, into a file named by a key of exactly the values it
depends on (then Pillow reads the maps' sizes from their file headers).
"""

import hashlib
import json
from pathlib import Path

from pixelflow.errors import ConfigError, ImageError
from pixelflow.formats import image_format
from pixelflow.io.headers import image_size
from pixelflow.maps.georef import GeometryError, source_geometry
from pixelflow.maps.inverse_cache import InverseSpec, inverse_spec
from pixelflow.maps.projections import PARAMETERS, natural_height, output_size, render_threads, with_defaults
from pixelflow.planning.config import check_name, key_path

FOLDER = "results/maps"
SIZE_KEYS = ("kind", "width", "height", "scale")
INVERSE_FOLDER = f"{FOLDER}/inverse"
INVERSE_SUFFIX = ".inv"


def check_projection(name: str, spec: dict, pixel_limit: int) -> None:
    """Check the rules of one projection entry that the schema cannot say.

    Parameters
    ----------
    name : str
        The projection's key under ``projections``.
    spec : dict
        Its validated entry.
    pixel_limit : int
        ``reprojection.pixel_limit``, which a given ``width`` times the
        ``height`` (given, or natural) must not exceed.

    Raises
    ------
    ConfigError
        Naming the key: an unusable name, a key that is neither a parameter of
        the kind nor a size key, both or neither of ``width`` and ``scale``,
        ``height`` with ``scale``, or a size over the pixel limit.
    """
    where = ["projections", name]
    check_name(name, where)
    kind = spec["kind"]
    allowed = set(PARAMETERS[kind]) | set(SIZE_KEYS)
    for key in spec:
        if key not in allowed:
            raise ConfigError(
                f"config key {key_path(where + [key])}: not a parameter of {kind}; "
                f"it takes {', '.join(sorted(PARAMETERS[kind]))}"
            )
    if ("width" in spec) == ("scale" in spec):
        raise ConfigError(f"config key {key_path(where)}: give the output width, or a scale of the source width")
    if "scale" in spec and "height" in spec:
        raise ConfigError(f"config key {key_path(where + ['height'])}: a scaled output takes its height from the width")
    if "width" in spec:
        height = spec.get("height") or natural_height(spec, spec["width"])
        if spec["width"] * height > pixel_limit:
            raise ConfigError(
                f"config key {key_path(where + ['width'])}: {spec['width']}x{height} pixels is over "
                f"reprojection.pixel_limit ({pixel_limit})"
            )


def check_map(name: str, spec: dict, workdir) -> None:
    """Check one map entry: a usable name, an existing file, sensible bounds.

    Parameters
    ----------
    name : str
        The map's key under ``maps``.
    spec : dict
        Its validated entry: ``path`` (relative to ``workdir`` unless absolute),
        ``projection`` and optionally ``bounds`` (degrees).
    workdir : str or path
        The workflow's folder.

    Raises
    ------
    ConfigError
        Naming the key: an unusable name, no such file, bounds that are not
        west < east <= west + 360 and -90 <= south < north <= 90, or Mercator
        bounds reaching a pole.
    """
    where = ["maps", name]
    check_name(name, where)
    path = Path(spec["path"])
    if not (path if path.is_absolute() else Path(workdir) / path).is_file():
        raise ConfigError(f"config key {key_path(where + ['path'])}: no such file {spec['path']!r}")
    bounds = spec.get("bounds")
    if bounds is not None:
        west, south, east, north = bounds
        if not (west < east <= west + 360 and -90 <= south < north <= 90):
            raise ConfigError(
                f"config key {key_path(where + ['bounds'])}: {bounds} must be [west, south, east, north] with "
                "west < east <= west + 360 and -90 <= south < north <= 90"
            )
        if spec["projection"] == "mercator" and (south <= -90 or north >= 90):
            raise ConfigError(f"config key {key_path(where + ['bounds'])}: a Mercator map cannot reach a pole")


def check_config(config: dict, workdir) -> None:
    """Check every map and projection entry of a validated config (:func:`check_map`, :func:`check_projection`).

    Raises
    ------
    ConfigError
        Naming the key.
    """
    limit = config["reprojection"]["pixel_limit"]
    for name, spec in config["maps"].items():
        check_map(name, spec, workdir)
    for name, spec in config["projections"].items():
        check_projection(name, spec, limit)


def image_suffix(config: dict) -> str:
    """Suffix of the reprojected images (``.png`` or ``.tif``)."""
    return image_format(config["reprojection"]["format"]).suffix


def world_suffix(config: dict) -> str:
    """Suffix of the world files beside the reprojected images (``.pgw`` or ``.tfw``)."""
    return image_format(config["reprojection"]["format"]).world_suffix


def outputs(config: dict, datasets=None) -> list[str]:
    """Every final output of the maps stage: an image, its JSON georeferencing and a world file per pair."""
    files = []
    for map_name in config["maps"]:
        for projection in config["projections"]:
            stem = f"{FOLDER}/{map_name}/{projection}"
            files += [stem + image_suffix(config), stem + ".json", stem + world_suffix(config)]
    return files


def map_geometry(config: dict, map_name: str) -> dict:
    """What the bytes of a map's outputs depend on about its source, apart from the file: its entry without ``path``."""
    spec = config["maps"][map_name]
    return {key: value for key, value in spec.items() if key != "path"}


def projection_spec(config: dict, projection: str) -> dict:
    """A copy of a projection entry with its kind's defaults filled in.

    Raises
    ------
    ProjectionError
        If its kind is unknown.
    """
    return with_defaults(config["projections"][projection])


def job_mem_mb(config: dict, map_name: str, projection: str, attempt: int) -> int:
    """Memory in MB of a reprojection job: the decoded source, the output and the workers' tile maps.

    The source counts 8 times its file's size (64 MB when its path, taken
    from the current folder, is not a file), the output 8 bytes a pixel (the
    source's count times ``scale`` squared for a scaled output), the threads
    64 MB each of ``max_threads``, plus 512 MB; all times the attempt number.
    """
    spec = projection_spec(config, projection)
    path = Path(config["maps"][map_name]["path"])
    source_mb = 8 * path.stat().st_size / (1 << 20) if path.is_file() else 64
    if "width" in spec:
        output_mb = 8 * spec["width"] * (spec.get("height") or natural_height(spec, spec["width"])) / (1 << 20)
    else:  # 8 bytes a pixel above: RGBA, 16-bit at most
        output_mb = source_mb * spec["scale"] ** 2
    return int(attempt * (512 + source_mb + output_mb + 64 * config["max_threads"]))


def job_threads(config: dict, projection: str) -> int:
    """Threads of a reprojection job (:func:`pixelflow.maps.projections.render_threads`).

    ``max_threads`` when the output's size follows the source (``scale``).
    """
    spec = projection_spec(config, projection)
    if "width" not in spec:  # the size follows the source: the job decides
        return config["max_threads"]
    return render_threads(config["max_threads"], *output_size(spec, 0))


def source_grid(spec: dict, width: int, height: int) -> dict | None:
    """Where a map's pixels lie (:func:`pixelflow.maps.georef.source_geometry`); None if it refuses.

    Returns
    -------
    dict or None
        ``kind``, ``width``, ``height`` and ``bounds`` (a list, degrees), as
        :func:`~pixelflow.maps.inverse_cache.inverse_spec` takes them; None when
        the geometry raises :class:`~pixelflow.maps.georef.GeometryError`.
    """
    try:
        geometry = source_geometry(spec, width, height)
    except GeometryError:
        return None
    return {"kind": geometry.kind, "width": geometry.width, "height": geometry.height, "bounds": list(geometry.bounds)}


def inverse_key(spec: dict) -> str:
    """A short stable name for an inverse map: the first 16 hex digits of the sha256 of its spec as canonical JSON."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def inverse_path(key: str) -> str:
    """Where the inverse map of a key is cached."""
    return f"{INVERSE_FOLDER}/{key}{INVERSE_SUFFIX}"


def plan_inverses(config: dict, workdir) -> tuple[dict, dict]:
    """The cached inverse maps of the config: ``{(map, projection): key}`` and ``{key: spec}``.

    Empty unless ``reprojection.cache_inverse`` is on and the error threshold
    is above 0. A map whose header cannot be read, that is over the pixel
    limit or whose grid cannot be resolved gets none: its jobs compute their
    own inverse maps and fail with the usual error naming the file. An output
    over the pixel limit gets none either. Pairs with the same spec share one key.

    Parameters
    ----------
    config : dict
        The validated config.
    workdir : str or path
        The folder map paths are relative to, unless absolute.

    Returns
    -------
    keys : dict
        ``{(map, projection): key}`` (:func:`inverse_key`).
    specs : dict
        ``{key: spec}`` (:func:`pixelflow.maps.inverse_cache.inverse_spec`).
    """
    settings = config["reprojection"]
    keys, specs = {}, {}
    if not settings["cache_inverse"] or settings["error_threshold"] <= 0:
        return keys, specs
    limit = settings["pixel_limit"]
    for name, spec in config["maps"].items():
        path = Path(spec["path"])
        try:
            size = image_size(path if path.is_absolute() else Path(workdir) / path)
        except ImageError:
            continue
        source = None if size[0] * size[1] > limit else source_grid(spec, *size)
        if source is None:
            continue
        for projection in config["projections"]:
            entry = projection_spec(config, projection)
            width, height = output_size(entry, source["width"])
            if width * height > limit:
                continue
            inverse = inverse_spec(entry, width, height, source, settings["error_threshold"], settings["grid_step"])
            keys[name, projection] = inverse_key(inverse)
            specs[keys[name, projection]] = inverse
    return keys, specs


def cached_inverse(keys: dict, map_name: str, projection: str) -> dict:
    """The ``inverse`` input of a reprojection job, ``{"inverse": path}``; empty when its inverse map is not cached."""
    key = keys.get((map_name, projection))
    return {} if key is None else {"inverse": inverse_path(key)}


def inverse_spec_of(specs: dict, key: str) -> InverseSpec:
    """The spec of a planned inverse map.

    Raises
    ------
    ValueError
        Naming the file, for a key that no map and projection of the config has.
    """
    if key not in specs:
        raise ValueError(f"{inverse_path(key)}: no map and projection of the config has this inverse map")
    return specs[key]


def inverse_mem_mb(specs: dict, key: str, attempt: int) -> int:
    """Memory in MB of an inverse-map job: bands of temporaries, the grid, and refined pixels (at most the full maps).

    512 MB plus 8 bytes per output pixel (512 MB for an unknown key), times the attempt number.
    """
    spec = specs.get(key)
    pixels = spec["width"] * spec["height"] if spec else 0
    return int(attempt * (512 + 8 * pixels / (1 << 20)))
