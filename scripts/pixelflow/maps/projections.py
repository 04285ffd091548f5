"""Map projections on a sphere: closed-form inverse (and forward) formulas, PROJ strings, output grids.

A projection is a plain dict, as in the config: ``{"kind": ..., parameters}``;
angles are in degrees there and radians in the formulas. Projected coordinates
are metres on a sphere of radius :data:`RADIUS`. Every output image is placed by
a GDAL-style affine transform from pixel (column, row) corners to projected
coordinates: ``x = t[0] + col * t[1] + row * t[2]``, ``y = t[3] + col * t[4] + row * t[5]``.
"""

import math

import numpy as np

RADIUS = 6371000.0  # metres; the sphere of every PROJ string written here
# The geographic coordinates of a plain image placed by its config entry: on the presets' sphere.
SPHERE_LONLAT = f"+proj=longlat +R={RADIUS:.0f} +no_defs +type=crs"
# Parameters (degrees) each projection kind takes, and their defaults.
PARAMETERS = {
    "equirectangular": {"lon_0": 0.0},
    "mercator": {"lon_0": 0.0, "max_latitude": 85.0511},
    "transverse_mercator": {"lon_0": 0.0},
    "rotated_pole": {"pole_latitude": 90.0, "pole_longitude": 0.0},
    "orthographic": {"lat_0": 0.0, "lon_0": 0.0},
}
KINDS = tuple(PARAMETERS)
# One thread renders about 60 Mpx/s, so a reprojection asks for a thread per
# 4 Mpx of output at most: small maps take a few tens of milliseconds on one
# core and leave the other cores to other jobs.
PIXELS_PER_THREAD = 4_000_000
DEFAULT_MAX_LATITUDE = PARAMETERS["mercator"]["max_latitude"]


class ProjectionError(ValueError):
    """A projection the code does not know, or parameters it cannot use."""


def parameters(projection: dict) -> dict:
    """The parameters of a projection's kind, as floats in degrees, with the defaults filled in.

    Parameters
    ----------
    projection : dict
        A projection entry: ``kind`` and any of its parameters (:data:`PARAMETERS`); other keys are ignored.

    Returns
    -------
    dict
        Every parameter of the kind, by name.

    Raises
    ------
    ProjectionError
        If ``kind`` is missing or unknown.
    """
    kind = projection.get("kind")
    if kind not in PARAMETERS:
        raise ProjectionError(f"unknown projection kind {kind!r}; expected one of {', '.join(KINDS)}")
    return {name: float(projection.get(name, default)) for name, default in PARAMETERS[kind].items()}


def with_defaults(projection: dict) -> dict:
    """A copy of a projection entry with its kind's missing parameters set to their defaults.

    The other keys (``width``, ``scale``, ...) and the given parameters are kept as they are.

    Raises
    ------
    ProjectionError
        If ``kind`` is missing or unknown.
    """
    parameters(projection)  # a known kind
    spec = dict(projection)
    for name, default in PARAMETERS[spec["kind"]].items():
        spec.setdefault(name, default)
    return spec


def natural_height(projection: dict, width: int) -> int:
    """Output height in pixels for ``width`` with square pixels over the projection's natural extent.

    That extent is 2:1 for every kind but two: a square for orthographic, and
    360 degrees by +-``max_latitude`` (default :data:`DEFAULT_MAX_LATITUDE`) for Mercator.

    Parameters
    ----------
    projection : dict
        A projection entry; only ``kind`` and, for Mercator, ``max_latitude`` (degrees) are read.
    width : int
        Output width in pixels.

    Returns
    -------
    int
        The rounded height, at least 1.
    """
    kind = projection["kind"]
    if kind == "mercator":
        limit = math.radians(float(projection.get("max_latitude", DEFAULT_MAX_LATITUDE)))
        ratio = math.log(math.tan(math.pi / 4 + limit / 2)) / math.pi
    elif kind == "orthographic":
        ratio = 1.0
    else:
        ratio = 0.5
    return max(1, round(width * ratio))


def output_size(projection: dict, source_width: int) -> tuple[int, int]:
    """Output ``(width, height)`` in pixels of a projection entry for a source ``source_width`` pixels wide.

    Parameters
    ----------
    projection : dict
        A projection entry: ``width`` or ``scale`` (a multiple of the source
        width; it wins over ``width``), and optionally ``height``; without it
        (or with 0) the pixels are square over the projection's natural extent
        (:func:`natural_height`).
    source_width : int
        The source map's width in pixels; read only with ``scale``.

    Returns
    -------
    width, height : int
        A scaled width is rounded, and at least 1.

    Raises
    ------
    ProjectionError
        If the width or height is not positive.
    """
    if "scale" in projection:
        width = max(1, round(projection["scale"] * source_width))
    else:
        width = projection["width"]
    height = projection.get("height") or natural_height(projection, width)
    if width <= 0 or height <= 0:
        raise ProjectionError(f"output size {width}x{height} must be positive")
    return int(width), int(height)


def render_threads(max_threads: int, width: int, height: int, pixels_per_thread: int = PIXELS_PER_THREAD) -> int:
    """Threads to render a ``width`` x ``height`` output, from 1 to ``max_threads``.

    One thread per whole ``pixels_per_thread`` output pixels (a value below 1
    counts as 1), so that a small output renders on one thread.
    """
    return max(1, min(int(max_threads), width * height // max(1, pixels_per_thread)))


def modulo(value, period):
    """``value mod period`` in [0, period), keeping float32 as float32 (faster than np.mod)."""
    return value - np.floor(value * (1.0 / period)) * period


def _wrap_radians(angle):
    return modulo(angle + math.pi, 2 * math.pi) - math.pi


def mercator_y(latitude_radians):
    """Mercator northing ``ln(tan(pi / 4 + lat / 2))`` on the unit sphere of latitudes in radians."""
    return np.log(np.tan(np.pi / 4 + np.asarray(latitude_radians) / 2))


def geotransform(projection: dict, width: int, height: int) -> tuple:
    """GDAL-style affine transform of a ``width`` x ``height`` output (pixel corners to metres).

    The output covers the projection's whole extent:

    - equirectangular, rotated_pole: the whole sphere, 360 x 180 degrees.
    - mercator: 360 degrees wide, up to ``max_latitude`` north and south.
    - transverse_mercator: the pole-shift map. Its columns run along the central
      meridian's great circle (northing from -pi R to pi R, so the south pole sits
      at a quarter and the north pole at three quarters of the width, where 90 W
      and 90 E would be on a plate carrée map); rows run across it (easting) with
      square pixels, west of the central meridian at the top.
    - orthographic: the disc of radius R in a square.

    Parameters
    ----------
    projection : dict
        A projection entry: ``kind`` and its parameters (degrees).
    width, height : int
        Output size in pixels.

    Returns
    -------
    tuple of float
        ``(t0, ..., t5)``: ``x = t0 + col * t1 + row * t2``, ``y = t3 + col * t4 + row * t5``, in metres.

    Raises
    ------
    ProjectionError
        If the kind is unknown.
    """
    kind, p = projection["kind"], parameters(projection)
    R = RADIUS
    if kind in ("equirectangular", "rotated_pole"):
        return (-math.pi * R, 2 * math.pi * R / width, 0.0, math.pi / 2 * R, 0.0, -math.pi * R / height)
    if kind == "mercator":
        top = float(mercator_y(math.radians(p["max_latitude"]))) * R
        return (-math.pi * R, 2 * math.pi * R / width, 0.0, top, 0.0, -2 * top / height)
    if kind == "transverse_mercator":
        step = 2 * math.pi * R / width
        return (-height * step / 2, 0.0, step, -math.pi * R, step, 0.0)
    if kind == "orthographic":
        return (-R, 2 * R / width, 0.0, R, 0.0, -2 * R / height)
    raise ProjectionError(f"unknown projection kind {kind!r}")


def proj_string(projection: dict) -> str:
    """The PROJ definition of the output's projected coordinates, on the sphere of radius :data:`RADIUS`.

    Parameters are written in degrees to 12 significant digits; a rotated pole
    is ``ob_tran`` over ``eqc``, with ``lon_0`` 180 degrees east of the pole's longitude.

    Returns
    -------
    str
        A ``+proj=...`` string in metres, ending in ``+type=crs``.

    Raises
    ------
    ProjectionError
        If the kind is unknown.
    """
    kind, p = projection["kind"], parameters(projection)
    sphere = f"+R={RADIUS:.0f} +units=m +no_defs +type=crs"
    if kind == "equirectangular":
        return f"+proj=eqc +lon_0={p['lon_0']:.12g} {sphere}"
    if kind == "mercator":
        return f"+proj=merc +lon_0={p['lon_0']:.12g} {sphere}"
    if kind == "transverse_mercator":
        return f"+proj=tmerc +lon_0={p['lon_0']:.12g} +k_0=1 +x_0=0 +y_0=0 {sphere}"
    if kind == "rotated_pole":
        return (
            f"+proj=ob_tran +o_proj=eqc +o_lat_p={p['pole_latitude']:.12g} "
            f"+o_lon_p=0 +lon_0={p['pole_longitude'] + 180:.12g} {sphere}"
        )
    if kind == "orthographic":
        return f"+proj=ortho +lat_0={p['lat_0']:.12g} +lon_0={p['lon_0']:.12g} {sphere}"
    raise ProjectionError(f"unknown projection kind {kind!r}")


def pixel_centres_to_xy(transform, cols, rows, dtype=np.float64):
    """Projected coordinates in metres of the centres of pixels (``cols``, ``rows``).

    Parameters
    ----------
    transform : sequence of float
        The output's GDAL-style transform (:func:`geotransform`).
    cols, rows : array_like
        Pixel columns and rows, centres at integers; they broadcast together.
    dtype : numpy dtype
        ``np.float64`` (the default) or ``np.float32``, much faster and good to
        about 1e-7 of the sphere's radius (it computes in units of :data:`RADIUS`).

    Returns
    -------
    x, y : ndarray
        Of ``dtype``, in the broadcast shape.
    """
    cols = np.asarray(cols, dtype) + 0.5
    rows = np.asarray(rows, dtype) + 0.5
    t = [float(value) for value in transform]
    if dtype == np.float64:
        return t[0] + cols * t[1] + rows * t[2], t[3] + cols * t[4] + rows * t[5]
    # In units of the sphere's radius, so that float32 keeps its precision.
    t = [value / RADIUS for value in t]
    return (t[0] + cols * t[1] + rows * t[2]) * RADIUS, (t[3] + cols * t[4] + rows * t[5]) * RADIUS


def xy_to_pixel(transform, x, y):
    """Fractional pixel (column, row) of projected (x, y) in metres, pixel centres at integers.

    Inverts the affine ``transform`` (:func:`geotransform`) in float64.

    Returns
    -------
    cols, rows : ndarray
        float64, in the broadcast shape of ``x`` and ``y``.
    """
    t = transform
    det = t[1] * t[5] - t[2] * t[4]
    dx, dy = np.asarray(x, np.float64) - t[0], np.asarray(y, np.float64) - t[3]
    cols = (t[5] * dx - t[2] * dy) / det
    rows = (t[1] * dy - t[4] * dx) / det
    return cols - 0.5, rows - 0.5


def _rotation(pole_latitude, pole_longitude):
    """Matrix taking rotated-frame unit vectors to geographic ones (new north pole at the given point)."""
    theta = math.pi / 2 - pole_latitude
    c, s = math.cos(theta), math.sin(theta)
    ry = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    cl, sl = math.cos(pole_longitude), math.sin(pole_longitude)
    rz = np.array([[cl, -sl, 0.0], [sl, cl, 0.0], [0.0, 0.0, 1.0]])
    return rz @ ry


def _apply(matrix, vector):
    """``matrix @ vector`` for a tuple of coordinate arrays, keeping their dtype."""
    m = [[float(value) for value in row] for row in matrix]
    return [m[i][0] * vector[0] + m[i][1] * vector[1] + m[i][2] * vector[2] for i in range(3)]


def _lonlat(vector):
    """Longitude and latitude of a unit vector (atan2 keeps the poles well conditioned)."""
    return np.arctan2(vector[1], vector[0]), np.arctan2(vector[2], np.hypot(vector[0], vector[1]))


def _rotate(matrix, lon, lat):
    cos_lat = np.cos(lat)
    return _lonlat(_apply(matrix, (cos_lat * np.cos(lon), cos_lat * np.sin(lon), np.sin(lat))))


def inverse(projection: dict, x, y):
    """Geographic (lon, lat) in radians of projected (x, y) in metres; NaN outside the projection's domain.

    Parameters
    ----------
    projection : dict
        A projection entry: ``kind`` and its parameters (degrees).
    x, y : array_like
        Projected coordinates in metres; they broadcast together.

    Returns
    -------
    lon, lat : ndarray
        Radians, longitudes in [-pi, pi); float32 when ``x`` is float32, else
        float64. Off the projection's domain (beyond a pole in equirectangular
        and rotated pole, outside the orthographic disc) the latitude is NaN,
        and so is the longitude except in equirectangular. Mercator and
        transverse Mercator have a point everywhere.

    Raises
    ------
    ProjectionError
        If the kind is unknown.
    """
    kind, p = projection["kind"], parameters(projection)
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype != np.float32:
        x, y = x.astype(np.float64), y.astype(np.float64)
    x, y = x / RADIUS, y / RADIUS
    nan = np.asarray(np.nan, x.dtype)
    if kind == "equirectangular":
        lon, lat = x + math.radians(p["lon_0"]), y
        lat = np.where(np.abs(lat) <= math.pi / 2, lat, nan)
    elif kind == "mercator":
        lon, lat = x + math.radians(p["lon_0"]), np.arctan(np.sinh(y))
    elif kind == "transverse_mercator":
        sinh_x, cos_y = np.sinh(x), np.cos(y)
        lat = np.arctan2(np.sin(y), np.hypot(sinh_x, cos_y))
        lon = np.arctan2(sinh_x, cos_y) + math.radians(p["lon_0"])
    elif kind == "rotated_pole":
        inside = np.abs(y) <= math.pi / 2
        matrix = _rotation(math.radians(p["pole_latitude"]), math.radians(p["pole_longitude"]))
        lon, lat = _rotate(matrix, x + math.pi, np.where(inside, y, nan))
    elif kind == "orthographic":
        # The visible point in the viewer's frame (east, north, towards the viewer), turned to geographic axes.
        depth_squared = 1.0 - x * x - y * y
        depth = np.sqrt(np.where(depth_squared >= 0, depth_squared, nan))
        lat0, lon0 = math.radians(p["lat_0"]), math.radians(p["lon_0"])
        east = (-math.sin(lon0), math.cos(lon0), 0.0)
        north = (-math.sin(lat0) * math.cos(lon0), -math.sin(lat0) * math.sin(lon0), math.cos(lat0))
        centre = (math.cos(lat0) * math.cos(lon0), math.cos(lat0) * math.sin(lon0), math.sin(lat0))
        lon, lat = _lonlat([east[i] * x + north[i] * y + centre[i] * depth for i in range(3)])
    else:
        raise ProjectionError(f"unknown projection kind {kind!r}")
    return _wrap_radians(lon), lat


def forward(projection: dict, lon, lat):
    """Projected (x, y) in metres of geographic (lon, lat) in radians, computed in float64.

    Returns
    -------
    x, y : ndarray
        float64 metres; in equirectangular, Mercator and rotated pole, x is
        wrapped to [-pi R, pi R). NaN on the far side of an orthographic globe.

    Raises
    ------
    ProjectionError
        If the kind is unknown.
    """
    kind, p = projection["kind"], parameters(projection)
    lon = np.asarray(lon, np.float64)
    lat = np.asarray(lat, np.float64)
    if kind == "equirectangular":
        x, y = _wrap_radians(lon - math.radians(p["lon_0"])), lat
    elif kind == "mercator":
        x, y = _wrap_radians(lon - math.radians(p["lon_0"])), mercator_y(lat)
    elif kind == "transverse_mercator":
        d = lon - math.radians(p["lon_0"])
        x = np.arctanh(np.cos(lat) * np.sin(d))
        y = np.arctan2(np.tan(lat), np.cos(d))
    elif kind == "rotated_pole":
        matrix = _rotation(math.radians(p["pole_latitude"]), math.radians(p["pole_longitude"]))
        rlon, y = _rotate(matrix.T, lon, lat)
        x = _wrap_radians(rlon - math.pi)
    elif kind == "orthographic":
        lat0, lon0 = math.radians(p["lat_0"]), math.radians(p["lon_0"])
        d = lon - lon0
        cos_c = math.sin(lat0) * np.sin(lat) + math.cos(lat0) * np.cos(lat) * np.cos(d)
        x = np.cos(lat) * np.sin(d)
        y = math.cos(lat0) * np.sin(lat) - math.sin(lat0) * np.cos(lat) * np.cos(d)
        x, y = np.where(cos_c >= 0, x, np.nan), np.where(cos_c >= 0, y, np.nan)
    else:
        raise ProjectionError(f"unknown projection kind {kind!r}")
    return x * RADIUS, y * RADIUS
