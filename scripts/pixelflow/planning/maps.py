"""Planning of the maps stage while the Snakefile is parsed.

Every map in ``maps`` is reprojected to every projection in ``projections``;
settings shared by all of them live in ``reprojection``. A map file that
carries georeferencing (GeoTIFF tags, or a world file with a ``.prj``) is read
by GDAL for its coordinate system and grid; a plain image is placed by its
``projection`` and ``bounds``. For a projection given as ``crs``, the output
grid (extent, resolution, size) is found here with PROJ, once per map, and
handed to the job (:func:`plan_maps`). With
``reprojection.cache_inverse`` on, each distinct inverse map is computed once,
by a ``map_inverse`` job, into a file named by a key of exactly the values it
depends on (then Pillow reads the maps' sizes from their file headers).
"""

import functools
import hashlib
import json
import math
from dataclasses import dataclass, field
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
CRS_KEYS = ("crs", "bounds", "resolution", "width", "height")
# Suffixes of images that carry no georeferencing of their own (a world file beside them may add it).
PLAIN_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
OUTPUT_SUFFIXES = {"png": ".png", "tiff": ".tif", "cog": ".tif"}
DEFAULT_COMPRESSION = {"png": 3, "tiff": "none", "cog": "deflate"}
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
    if ("kind" in spec) == ("crs" in spec):
        raise ConfigError(f"config key {key_path(where)}: give kind (a preset on a sphere) or crs, one of them")
    if "crs" in spec:
        check_crs_projection(name, spec)
        return
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


def check_crs_projection(name: str, spec: dict) -> None:
    """Check a projection given as ``crs``: PROJ reads it, its keys go together, its bounds lie in its area of use.

    Raises
    ------
    ConfigError
        Naming the key: a key of the presets (``scale``, ``lon_0``, ...), a
        coordinate system PROJ does not understand, ``resolution`` with
        ``width`` or ``height``, bounds that are empty or outside the system's area of use.
    """
    from pixelflow.maps.crs import CRSError, check_bounds_in_area_of_use, parse_crs

    where = ["projections", name]
    for key in spec:
        if key not in CRS_KEYS:
            raise ConfigError(
                f"config key {key_path(where + [key])}: not used with crs; it takes {', '.join(CRS_KEYS)}"
            )
    try:
        crs = parse_crs(spec["crs"], f"config key {key_path(where + ['crs'])}")
    except CRSError as error:
        raise ConfigError(str(error)) from None
    if "resolution" in spec and ("width" in spec or "height" in spec):
        raise ConfigError(
            f"config key {key_path(where + ['resolution'])}: give resolution or width/height, not both (as gdalwarp)"
        )
    bounds = spec.get("bounds")
    if bounds is not None:
        xmin, ymin, xmax, ymax = bounds
        if not (xmin < xmax and ymin < ymax):
            raise ConfigError(f"config key {key_path(where + ['bounds'])}: {bounds} must be [xmin, ymin, xmax, ymax]")
        try:
            check_bounds_in_area_of_use(crs, bounds, f"config key {key_path(where + ['bounds'])}")
        except CRSError as error:
            raise ConfigError(str(error)) from None


def world_file(path: Path) -> Path | None:
    """The world file beside an image, as GDAL looks for it (``.pgw``, ``.pngw``, ``.wld``, ...), or None."""
    suffix = path.suffix.lower()
    if len(suffix) < 2:
        return None
    for candidate in (suffix[1] + suffix[-1] + "w", suffix[1:] + "w", "wld"):
        for spelling in (candidate, candidate.upper()):
            sibling = path.with_suffix("." + spelling)
            if sibling.is_file():
                return sibling
    return None


@functools.lru_cache(maxsize=64)
def _raster_info(path: str, stamp: tuple):
    from pixelflow.io.geotiff import raster_info

    return raster_info(path)


def georeferencing(spec: dict, path: Path, where: list) -> dict | None:
    """What a map file says of where its pixels lie, or None for a plain image placed by its config entry.

    A PNG, JPEG, BMP, GIF or WebP without a world file beside it (and without
    ``crs``) is plain and not opened here. Any other file is read by GDAL
    (:func:`pixelflow.io.geotiff.raster_info`, kept per file and
    modification time): it is georeferenced when it has a transform and a
    coordinate system (its own, or ``crs`` of its entry).

    Parameters
    ----------
    spec : dict
        The map's validated entry.
    path : Path
        Its file, resolved.
    where : list
        The entry's keys, for messages.

    Returns
    -------
    dict or None
        ``crs`` (WKT), ``transform`` (GDAL order), ``width``, ``height``,
        ``count``, ``dtype`` and, when the entry gives one, ``nodata``.

    Raises
    ------
    ConfigError
        Naming the key: a file GDAL cannot read, a georeferenced file with
        ``projection`` or ``bounds`` too, ``crs`` or ``nodata`` for a file
        without georeferencing, or a coordinate system PROJ does not understand.
    """
    if path.suffix.lower() in PLAIN_SUFFIXES and world_file(path) is None and "crs" not in spec:
        info = None
    else:
        try:
            stat = path.stat()
            info = _raster_info(str(path), (stat.st_mtime_ns, stat.st_size))
        except ImageError as error:
            raise ConfigError(f"config key {key_path(where + ['path'])}: {error}") from None
    crs = spec.get("crs") or (info.crs if info is not None else None)
    if info is None or info.transform is None or crs is None:
        for key in ("crs", "nodata"):
            if key in spec:
                raise ConfigError(
                    f"config key {key_path(where + [key])}: {spec['path']} has no georeferencing (GeoTIFF tags, or a "
                    "world file); a plain image is placed by projection and bounds"
                )
        return None
    for key in ("projection", "bounds"):
        if key in spec:
            raise ConfigError(
                f"config key {key_path(where + [key])}: {spec['path']} is georeferenced; its own coordinate system "
                "and grid place it (remove this key, or give crs to override its coordinate system)"
            )
    from pixelflow.maps.crs import CRSError, crs_text, parse_crs

    try:
        wkt = crs_text(parse_crs(crs, f"config key {key_path(where + ['crs'])}"))
    except CRSError as error:
        raise ConfigError(str(error)) from None
    source = {
        "crs": wkt,
        "transform": [float(value) for value in info.transform],
        "width": info.width,
        "height": info.height,
        "count": info.count,
        "dtype": info.dtype,
    }
    if "nodata" in spec:
        source["nodata"] = float(spec["nodata"])
    return source


def check_map(name: str, spec: dict, workdir, pixel_limit: int | None = None) -> None:
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
    path = path if path.is_absolute() else Path(workdir) / path
    if not path.is_file():
        raise ConfigError(f"config key {key_path(where + ['path'])}: no such file {spec['path']!r}")
    source = georeferencing(spec, path, where)
    if source is not None:
        from pixelflow.maps.georef import GeometryError, raster_geometry

        if pixel_limit is not None and source["width"] * source["height"] > pixel_limit:
            raise ConfigError(
                f"config key {key_path(where + ['path'])}: {source['width']}x{source['height']} pixels is over "
                f"reprojection.pixel_limit ({pixel_limit})"
            )

        try:
            raster_geometry(source["width"], source["height"], source["transform"], source["crs"], spec["path"])
        except GeometryError as error:
            raise ConfigError(f"config key {key_path(where + ['path'])}: {error}") from None
        return
    bounds = spec.get("bounds")
    if bounds is not None:
        west, south, east, north = bounds
        if not (west < east <= west + 360 and -90 <= south < north <= 90):
            raise ConfigError(
                f"config key {key_path(where + ['bounds'])}: {bounds} must be [west, south, east, north] with "
                "west < east <= west + 360 and -90 <= south < north <= 90"
            )
        if spec.get("projection") == "mercator" and (south <= -90 or north >= 90):
            raise ConfigError(f"config key {key_path(where + ['bounds'])}: a Mercator map cannot reach a pole")


def check_settings(settings: dict) -> None:
    """Check the ``reprojection`` keys that go together: ``compression`` fits ``format``.

    Raises
    ------
    ConfigError
        Naming ``reprojection.compression``: a codec name for PNG, or a zlib level for tif or cog.
    """
    compression = settings.get("compression")
    if compression is None:
        return
    png = settings["format"] == "png"
    if png != isinstance(compression, int):
        wanted = "a zlib level 0-9" if png else "deflate, zstd, lzw or none"
        raise ConfigError(
            f"config key reprojection.compression: {compression!r} does not fit format {settings['format']}; "
            f"it takes {wanted}"
        )


def check_config(config: dict, workdir) -> None:
    """Check every map and projection entry of a validated config, and the output grids of ``crs`` projections.

    :func:`check_map` and :func:`check_projection` check the entries;
    :func:`plan_maps` places each ``crs`` output with PROJ and checks its size.

    Raises
    ------
    ConfigError
        Naming the key.
    """
    limit = config["reprojection"]["pixel_limit"]
    check_settings(config["reprojection"])
    for name, spec in config["maps"].items():
        check_map(name, spec, workdir, limit)
    for name, spec in config["projections"].items():
        check_projection(name, spec, limit)
    plan_maps(config, workdir)


@dataclass
class MapsPlan:
    """What planning read and computed for the maps stage, once per parse.

    Attributes
    ----------
    sources : dict
        ``{map: georeferencing}`` (:func:`georeferencing`; None for a plain image).
    grids : dict
        ``{(map, projection): grid}`` for every projection given as ``crs``
        (:func:`crs_grid`): ``crs`` (WKT), ``transform``, ``width``, ``height``.
    """

    sources: dict = field(default_factory=dict)
    grids: dict = field(default_factory=dict)


_PLANS: dict = {}


def plan_maps(config: dict, workdir) -> MapsPlan:
    """Read every map's georeferencing and place every ``crs`` output (:class:`MapsPlan`).

    The plan of the same maps, projections, settings and folder is made once per process.

    Raises
    ------
    ConfigError
        Naming the key: as :func:`georeferencing` and :func:`crs_grid`, and an
        output grid over ``reprojection.pixel_limit``.
    """
    key = json.dumps([config["maps"], config["projections"], config["reprojection"], str(workdir)], sort_keys=True)
    if key in _PLANS:
        return _PLANS[key]
    plan = MapsPlan()
    limit = config["reprojection"]["pixel_limit"]
    for name, spec in config["maps"].items():
        path = Path(spec["path"])
        path = path if path.is_absolute() else Path(workdir) / path
        plan.sources[name] = georeferencing(spec, path, ["maps", name]) if path.is_file() else None
        for projection, entry in config["projections"].items():
            if "crs" not in entry or not path.is_file():
                continue
            grid = crs_grid(entry, plan.sources[name], spec, path, ["projections", projection], name)
            if grid["width"] * grid["height"] > limit:
                raise ConfigError(
                    f"config key {key_path(['projections', projection])}: map {name} gives a "
                    f"{grid['width']}x{grid['height']} output, over reprojection.pixel_limit ({limit}); "
                    "give a coarser resolution or smaller bounds"
                )
            plan.grids[name, projection] = grid
    _PLANS[key] = plan
    return plan


def source_extent(source: dict | None, spec: dict, path: Path) -> tuple:
    """A map's coordinate system, GDAL-style transform, size and bounds in its own units.

    A plain image's coordinates are longitudes and latitudes on the presets'
    sphere (:data:`~pixelflow.maps.projections.SPHERE_LONLAT`), its grid from
    its ``projection`` and ``bounds`` (taken as linear in latitude for the transform).

    Returns
    -------
    tuple
        ``(crs, transform, width, height, (left, bottom, right, top))``.

    Raises
    ------
    ImageError
        For a plain image whose header cannot be read.
    GeometryError
        For a plain image whose size does not fit its entry.
    """
    if source is not None:
        t, width, height = source["transform"], source["width"], source["height"]
        bounds = (t[0], t[3] + height * t[5], t[0] + width * t[1], t[3])
        return source["crs"], tuple(t), width, height, bounds
    from pixelflow.maps.projections import SPHERE_LONLAT

    width, height = image_size(path)
    west, south, east, north = source_geometry(spec, width, height, str(path)).bounds
    transform = (west, (east - west) / width, 0.0, north, 0.0, -(north - south) / height)
    return SPHERE_LONLAT, transform, width, height, (west, south, east, north)


def crs_grid(entry: dict, source: dict | None, spec: dict, path: Path, where: list, map_name: str) -> dict:
    """The output grid of a map in a projection given as ``crs``, as gdalwarp would choose it.

    The extent is ``bounds``, or else the map's footprint in the coordinate
    system (:func:`pixelflow.maps.crs.footprint`); the pixel size is
    ``resolution``, or follows ``width``/``height``, or else keeps about the
    map's pixel count along the diagonal (:func:`pixelflow.maps.crs.default_resolution`).

    Returns
    -------
    dict
        ``crs`` (WKT), ``transform`` (list, GDAL order), ``width`` and ``height``.

    Raises
    ------
    ConfigError
        Naming ``where`` and the map, when PROJ finds no footprint or grid.
    """
    from pixelflow.maps.crs import CRSError, crs_text, default_resolution, footprint, parse_crs, target_grid

    key = f"config key {key_path(where)}"
    try:
        target = crs_text(parse_crs(entry["crs"], f"{key}.crs"))
        source_crs, transform, width, height, bounds = source_extent(source, spec, path)
        extent = entry.get("bounds") or footprint(source_crs, bounds, target)
        resolution = entry.get("resolution")
        if resolution is None and "width" not in entry and "height" not in entry:
            resolution = default_resolution(source_crs, transform, width, height, target, extent)
        grid_transform, grid_width, grid_height = target_grid(
            extent,
            bounds=entry.get("bounds"),
            resolution=resolution,
            width=entry.get("width"),
            height=entry.get("height"),
            where=key,
        )
    except (CRSError, GeometryError, ImageError) as error:
        raise ConfigError(f"{key} (map {map_name}): {error}") from None
    if not all(math.isfinite(value) for value in grid_transform):
        raise ConfigError(f"{key} (map {map_name}): no finite output grid; give bounds")
    return {"crs": target, "transform": [float(v) for v in grid_transform], "width": grid_width, "height": grid_height}


def output_format(config: dict) -> str:
    """The maps' output format: ``png``, ``tiff`` or ``cog``."""
    return config["reprojection"]["format"]


def image_suffix(config: dict) -> str:
    """Suffix of the reprojected images (``.png``, or ``.tif`` for a GeoTIFF or COG)."""
    return OUTPUT_SUFFIXES[output_format(config)]


def aux_output(config: dict) -> dict:
    """The reprojection's extra named output: GDAL's ``.aux.xml`` beside a PNG, holding its coordinate system.

    GDAL, and so QGIS, takes a PNG's grid from its world file but its
    coordinate system only from that file, not from a ``.prj``. A GeoTIFF or
    COG holds both itself, and gets none.
    """
    if image_suffix(config) != ".png":
        return {}
    return {"aux": f"results/maps/{{map}}/{{projection}}{image_suffix(config)}.aux.xml"}


def world_suffix(config: dict) -> str:
    """Suffix of the world files beside the reprojected images (``.pgw``, or ``.tfw`` beside a GeoTIFF or COG)."""
    return image_format("png" if output_format(config) == "png" else "tiff").world_suffix


def compression(config: dict):
    """The output's compression: ``reprojection.compression``, or the format's default (:data:`DEFAULT_COMPRESSION`)."""
    settings = config["reprojection"]
    return settings.get("compression", DEFAULT_COMPRESSION[output_format(config)])


def outputs(config: dict, datasets=None) -> list[str]:
    """Every final output of the maps stage per map and projection: the image, its JSON, world file and ``.prj``.

    A GeoTIFF or COG embeds its coordinate system and transform as well.
    """
    files = []
    for map_name in config["maps"]:
        for projection in config["projections"]:
            stem = f"{FOLDER}/{map_name}/{projection}"
            files += [stem + image_suffix(config), stem + ".json", stem + world_suffix(config), stem + ".prj"]
    return files


def reprojection_params(plan: MapsPlan, config: dict, map_name: str, projection: str) -> dict:
    """What a reprojection job is told besides its files: the source's geometry and the output's grid.

    Returns
    -------
    dict
        ``geometry``: the map's georeferencing (``crs``, ``transform``,
        optionally ``nodata``), or its entry without ``path`` for a plain
        image; ``grid``: the output grid of a ``crs`` projection, or an empty dict for a preset.
    """
    source = plan.sources.get(map_name)
    if source is not None:
        geometry = {key: source[key] for key in ("crs", "transform", "nodata") if key in source}
    else:
        geometry = map_geometry(config, map_name)
    return {"geometry": geometry, "grid": plan.grids.get((map_name, projection), {})}


def map_geometry(config: dict, map_name: str) -> dict:
    """What the bytes of a map's outputs depend on about its source, apart from the file: its entry without ``path``."""
    spec = config["maps"][map_name]
    return {key: value for key, value in spec.items() if key != "path"}


def projection_spec(config: dict, projection: str) -> dict:
    """A copy of a projection entry with its kind's defaults filled in (a ``crs`` entry as it is).

    Raises
    ------
    ProjectionError
        If its kind is unknown.
    """
    entry = config["projections"][projection]
    return dict(entry) if "crs" in entry else with_defaults(entry)


def job_mem_mb(config: dict, map_name: str, projection: str, attempt: int, plan: MapsPlan | None = None) -> int:
    """Memory in MB of a reprojection job: the decoded source, the output and the workers' tile maps.

    The source counts 8 times its file's size (64 MB when its path, taken
    from the current folder, is not a file; 5 bytes a pixel and band when
    ``plan`` read its header), the output 8 bytes a pixel (the source's count
    times ``scale`` squared for a scaled output), the threads 64 MB each of
    ``max_threads``, plus 512 MB; all times the attempt number.
    """
    plan = plan or MapsPlan()
    path = Path(config["maps"][map_name]["path"])
    source_mb = 8 * path.stat().st_size / (1 << 20) if path.is_file() else 64
    source = plan.sources.get(map_name)
    if source is not None:
        source_mb = max(source_mb, 5 * source["width"] * source["height"] * source["count"] / (1 << 20))
    grid = plan.grids.get((map_name, projection))
    if grid is not None:
        output_mb = 16 * grid["width"] * grid["height"] / (1 << 20)  # float32 with alpha, and the encoder's copy
        return int(attempt * (512 + source_mb + output_mb + 64 * config["max_threads"]))
    spec = projection_spec(config, projection)
    if "width" in spec:
        output_mb = 8 * spec["width"] * (spec.get("height") or natural_height(spec, spec["width"])) / (1 << 20)
    else:  # 8 bytes a pixel above: RGBA, 16-bit at most
        output_mb = source_mb * spec["scale"] ** 2
    return int(attempt * (512 + source_mb + output_mb + 64 * config["max_threads"]))


def job_threads(config: dict, projection: str, map_name: str | None = None, plan: MapsPlan | None = None) -> int:
    """Threads of a reprojection job (:func:`pixelflow.maps.projections.render_threads`).

    ``max_threads`` when the output's size follows the source (``scale``);
    for a ``crs`` projection, from the planned grid of ``map_name``.
    """
    grid = (plan or MapsPlan()).grids.get((map_name, projection))
    if grid is not None:
        return render_threads(config["max_threads"], grid["width"], grid["height"])
    if "crs" in config["projections"][projection]:
        return config["max_threads"]
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
    over the pixel limit gets none either, and so do georeferenced maps and
    ``crs`` projections (mapped through PROJ). Pairs with the same spec share one key.

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
    plan = plan_maps(config, workdir)
    for name, spec in config["maps"].items():
        if plan.sources.get(name) is not None:
            continue  # a georeferenced file: its outputs go through PROJ, without a cached inverse map
        path = Path(spec["path"])
        try:
            size = image_size(path if path.is_absolute() else Path(workdir) / path)
        except ImageError:
            continue
        source = None if size[0] * size[1] > limit else source_grid(spec, *size)
        if source is None:
            continue
        for projection in config["projections"]:
            if "crs" in config["projections"][projection]:
                continue  # mapped through PROJ, without a cached inverse map
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
