"""Coordinate reference systems through PROJ (pyproj): parsing, footprints, output grids, point location.

This module opens map reprojection to any coordinate system PROJ knows: an
EPSG or other authority code, a PROJ string or WKT. Coordinates are always in
"x, y" order (PROJ's ``always_xy``): easting then northing, or longitude then
latitude in degrees for a geographic CRS. Output grids follow GDAL: a north-up
affine transform in GDAL order, ``x = t0 + col * t1 + row * t2``,
``y = t3 + col * t4 + row * t5``, from pixel corners.

pyproj is imported inside the functions only: planning code imports this
module while Snakemake parses the workflow, and most configs need no PROJ.
"""

import math
from functools import lru_cache

import numpy as np

# Projected coordinates further than this many semi-major axes from the
# origin are taken as the projection's points at infinity: PROJ returns huge
# finite values there rather than inf (about 4e16 axes for the opposite pole
# of a polar stereographic projection, 38 for a pole in Mercator), while maps
# of the Earth stay within a few axes (Mollweide 2.8, plate carree 3.1, a
# north polar stereographic map reaching 80 S about 23).
FAR_AXES = 30.0
# Bisection steps that close in on a seam or a domain edge between two samples
# (each halves the interval: 20 steps leave a millionth of it).
REFINE_STEPS = 20
# The extreme samples are looked at again on a ZOOM_SAMPLES x ZOOM_SAMPLES grid
# over the cells around them, ZOOM_LEVELS times, each finer by (ZOOM_SAMPLES - 1) / 2.
ZOOM_LEVELS = 2
ZOOM_SAMPLES = 17
# Longer texts are named by their CRS name in messages (a WKT runs to pages).
SHORT_TEXT = 80


class CRSError(ValueError):
    """A coordinate system PROJ does not understand, or a grid it cannot place; the message names what the user gave."""


def _describe(text) -> str:
    """How messages name a CRS the user gave: the text itself, or its name when the text is long (WKT)."""
    if isinstance(text, str):
        if len(text) <= SHORT_TEXT:
            return repr(text)
        return f"{' '.join(text.split())[: SHORT_TEXT - 3]!r}..."
    name = getattr(text, "name", None)
    return repr(name) if name else repr(text)


@lru_cache(maxsize=128)
def _parse(text: str):
    from pyproj import CRS

    return CRS.from_user_input(text)


def parse_crs(text: str, where: str):
    """The coordinate reference system a text names, checked to be a 2-D horizontal CRS.

    Parameters
    ----------
    text : str
        An authority code (``"EPSG:3035"``, ``"ESRI:54009"``), a PROJ string
        (``"+proj=laea +lat_0=52 ..."``) or WKT. A ``pyproj.CRS`` is checked and returned as it is.
    where : str
        What error messages name, e.g. ``"config key projections.europe.crs"``.

    Returns
    -------
    pyproj.CRS
        Geographic (longitude, latitude) or projected, two axes; a bound CRS
        (a PROJ string with ``+towgs84``) counts as the CRS it is bound to.

    Raises
    ------
    CRSError
        Naming ``where`` and the text: when it is not a string, PROJ refuses it,
        or it is geocentric, vertical, compound, 3-D or otherwise not 2-D horizontal.
    """
    from pyproj import CRS
    from pyproj.exceptions import CRSError as ProjCRSError

    if isinstance(text, CRS):
        crs = text
    elif not isinstance(text, str):
        raise CRSError(
            f"{where}: a coordinate system must be a string such as 'EPSG:4326', a PROJ string or WKT, "
            f"not {type(text).__name__} {text!r}"
        )
    else:
        try:
            crs = _parse(text.strip())
        except ProjCRSError as error:
            message = f"{where}: PROJ does not understand the coordinate system {_describe(text)}: {error}"
            raise CRSError(message) from None
    kind = crs.type_name
    if crs.is_geocentric:
        raise CRSError(f"{where}: {_describe(text)} is a geocentric CRS ({kind}); maps need a 2-D horizontal CRS")
    if crs.is_vertical and not (crs.is_geographic or crs.is_projected):
        raise CRSError(f"{where}: {_describe(text)} is a vertical CRS ({kind}); maps need a 2-D horizontal CRS")
    if crs.is_compound or len(crs.axis_info) != 2 or not (crs.is_geographic or crs.is_projected):
        hint = ""
        if crs.is_geographic or crs.is_projected or crs.is_compound:
            try:
                hint = f"; its horizontal part is {crs.to_2d().name!r}"
            except Exception:  # PROJ cannot split every CRS; the message is still complete without the hint
                hint = ""
        raise CRSError(
            f"{where}: {_describe(text)} is a {kind} with {len(crs.axis_info)} axes; "
            f"maps need a 2-D horizontal (geographic or projected) CRS{hint}"
        )
    return crs


def crs_text(crs) -> str:
    """The CRS as WKT2 (2019), the form outputs embed and job params carry.

    Parameters
    ----------
    crs : str or pyproj.CRS
        Any text :func:`parse_crs` accepts, or a parsed CRS.

    Returns
    -------
    str
        One-line WKT2; parsing it gives an equal CRS.

    Raises
    ------
    CRSError
        If the CRS is not a 2-D horizontal CRS PROJ understands, or PROJ cannot write it as WKT2.
    """
    from pyproj.enums import WktVersion

    parsed = parse_crs(crs, "coordinate system")
    text = parsed.to_wkt(WktVersion.WKT2_2019, pretty=False)
    if not text:
        raise CRSError(f"PROJ cannot write the coordinate system {_describe(crs)} as WKT2")
    return text


def is_geographic(crs_text: str) -> bool:
    """Whether a CRS is geographic: longitude and latitude (in degrees for every common CRS), not a projection.

    Raises
    ------
    CRSError
        If PROJ does not understand the text, or it is not a 2-D horizontal CRS.
    """
    return bool(parse_crs(crs_text, "coordinate system").is_geographic)


def crs_bounds_of_use(crs):
    """The area of use PROJ records for a CRS: ``(west, south, east, north)`` in degrees, or None.

    West may exceed east for an area across the antimeridian (as PROJ records it).
    A CRS from a PROJ string or a hand-written WKT usually has none.
    """
    area = parse_crs(crs, "coordinate system").area_of_use
    if area is None:
        return None
    return tuple(float(value) for value in area.bounds)


def _turn(crs) -> float:
    """A full turn of longitude in a geographic CRS's angle unit (360 for degrees)."""
    factor = crs.axis_info[0].unit_conversion_factor  # radians per unit
    return 2 * math.pi / factor if factor else 360.0


def _far(crs) -> float:
    """Coordinates beyond this magnitude are a projected CRS's points at infinity (:data:`FAR_AXES`)."""
    ellipsoid = crs.ellipsoid
    axis = ellipsoid.semi_major_metre if ellipsoid is not None else 6378137.0
    factor = crs.axis_info[0].unit_conversion_factor or 1.0  # metres per unit
    return FAR_AXES * axis / factor


def _check_bounds(bounds, what: str, where: str) -> tuple:
    try:
        values = tuple(float(value) for value in bounds)
    except (TypeError, ValueError):
        raise CRSError(f"{where}: {what} {bounds!r} must be four numbers (xmin, ymin, xmax, ymax)") from None
    if len(values) != 4 or not all(math.isfinite(value) for value in values):
        raise CRSError(f"{where}: {what} {list(bounds)} must be four finite numbers (xmin, ymin, xmax, ymax)")
    xmin, ymin, xmax, ymax = values
    if not (xmin < xmax and ymin < ymax):
        raise CRSError(f"{where}: {what} {list(values)} must have xmin < xmax and ymin < ymax")
    return values


def _ring(left, bottom, right, top, count):
    """Points around a box, in order: top left to right, right side down, bottom right to left, left side up."""
    t = np.linspace(0.0, 1.0, count)[:-1]
    east, south = left + t * (right - left), top - t * (top - bottom)  # running east, running south
    west, north = right - t * (right - left), bottom + t * (top - bottom)
    x = np.concatenate([east, np.full_like(t, right), west, np.full_like(t, left)])
    y = np.concatenate([np.full_like(t, top), south, np.full_like(t, bottom), north])
    return x, y


def _contains_point(crs, bounds, px, py) -> bool:
    """Whether a source extent contains a point given in its own coordinates (strictly inside, but see below).

    In a geographic CRS a pole sits on the extent's top or bottom edge; it is
    inside only when the extent spans a full turn of longitude (a cap around
    the pole), and longitudes are compared modulo a turn.
    """
    left, bottom, right, top = bounds
    if not (math.isfinite(px) and math.isfinite(py)):
        return False
    if crs.is_geographic:
        turn = _turn(crs)
        quarter = turn / 4
        if abs(abs(py) - quarter) <= 1e-9 * turn:  # a pole of the source's own coordinates
            return right - left >= turn * (1 - 1e-12) and bottom <= py + 1e-9 * turn and py - 1e-9 * turn <= top
        offset = (px - left) % turn
        return 0 < offset < right - left and bottom < py < top
    return left < px < right and bottom < py < top


def _longitude_range(lon, ring_lon, turn):
    """The narrowest range of longitudes holding all of ``lon``, for a footprint that crosses the antimeridian.

    ``ring_lon`` are the longitudes along the source's boundary, in order
    (NaN where the point has no image): if two neighbours differ by more than
    half a turn, the boundary crosses the antimeridian, and the range is cut at
    the widest empty arc between the sorted longitudes, so that it runs past
    the antimeridian (e.g. 170 to 190 rather than -180 to 180).
    """
    half = turn / 2
    both = np.isfinite(ring_lon) & np.isfinite(np.roll(ring_lon, -1))
    jumps = np.abs(np.roll(ring_lon, -1) - ring_lon)[both]
    if not np.any(jumps > half):
        return float(lon.min()), float(lon.max())
    wrapped = np.sort((lon + half) % turn - half)
    gaps = np.diff(wrapped)
    wrap_gap = wrapped[0] + turn - wrapped[-1]
    if gaps.size == 0 or gaps.max() <= wrap_gap:
        return float(wrapped[0]), float(wrapped[-1])
    cut = int(np.argmax(gaps))
    xmin, xmax = float(wrapped[cut + 1]), float(wrapped[cut] + turn)
    if xmin >= half:
        xmin, xmax = xmin - turn, xmax - turn
    return xmin, xmax


def _images(transformer, x, y):
    """PROJ's images of points (always_xy), NaN in both coordinates where PROJ has none."""
    u, v = transformer.transform(np.array(x, np.float64), np.array(y, np.float64), errcheck=False)
    u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
    missing = ~(np.isfinite(u) & np.isfinite(v))
    u[missing] = np.nan
    v[missing] = np.nan
    return u, v


def _refine(transformer, sx, sy, x, y, first, second):
    """Extra samples close to seams and domain edges between neighbouring samples, by bisection.

    A pair of neighbours brackets a domain edge when one has an image and the
    other not, and a seam (a projection's cut, such as the meridian opposite
    its central one) when an image coordinate changes sign between them, the
    test GDAL's GDALSuggestedWarpOutput2 uses; a sign change where the map is
    continuous just adds samples near zero. Each pair is halved
    :data:`REFINE_STEPS` times, keeping the half that still brackets the
    change; every midpoint with an image is returned.

    Parameters
    ----------
    transformer : pyproj.Transformer
        Source to target, always_xy.
    sx, sy : ndarray
        Source coordinates of the samples.
    x, y : ndarray
        Their images, NaN where there is none.
    first, second : ndarray
        Indices of each pair's two samples.

    Returns
    -------
    sx, sy, x, y : ndarray
        Source coordinates and images of the extra samples.
    """
    ax, ay, bx, by = x[first], y[first], x[second], y[second]
    valid_a, valid_b = ~np.isnan(ax), ~np.isnan(bx)
    flip_x = valid_a & valid_b & (ax * bx < 0)
    flip_y = valid_a & valid_b & (ay * by < 0)
    pick = (valid_a != valid_b) | flip_x | flip_y
    s0x, s0y, s1x, s1y = sx[first][pick], sy[first][pick], sx[second][pick], sy[second][pick]
    ax, ay, valid_a, valid_b, use_x = ax[pick], ay[pick], valid_a[pick], valid_b[pick], flip_x[pick]
    found = []
    for _ in range(REFINE_STEPS if pick.any() else 0):
        mx, my = (s0x + s1x) / 2, (s0y + s1y) / 2
        fx, fy = _images(transformer, mx, my)
        valid_m = ~np.isnan(fx)
        found.append((mx[valid_m], my[valid_m], fx[valid_m], fy[valid_m]))
        # Keep [start, mid] when the change lies there, else [mid, stop].
        sign_change = np.where(use_x, ax * fx < 0, ay * fy < 0)
        lower = np.where(valid_a & valid_b, ~valid_m | sign_change, np.where(valid_a, ~valid_m, valid_m))
        s1x, s1y = np.where(lower, mx, s1x), np.where(lower, my, s1y)
        s0x, s0y = np.where(lower, s0x, mx), np.where(lower, s0y, my)
        valid_b = np.where(lower, valid_m, valid_b)
        ax, ay = np.where(lower, ax, fx), np.where(lower, ay, fy)
        valid_a = np.where(lower, valid_a, valid_m)
    if not found:
        return np.empty(0), np.empty(0), np.empty(0), np.empty(0)
    return tuple(np.concatenate([part[k] for part in found]) for k in range(4))


def _grid_samples(transformer, box, count):
    """Source coordinates and images of a ``count`` x ``count`` grid over a box (edges included), refined.

    The grid's neighbours along rows and columns are refined by :func:`_refine`.
    """
    left, bottom, right, top = box
    gx, gy = np.meshgrid(np.linspace(left, right, count), np.linspace(bottom, top, count))
    sx, sy = gx.ravel(), gy.ravel()
    x, y = _images(transformer, sx, sy)
    index = np.arange(count * count).reshape(count, count)
    first = np.concatenate([index[:, :-1].ravel(), index[:-1, :].ravel()])
    second = np.concatenate([index[:, 1:].ravel(), index[1:, :].ravel()])
    extra = _refine(transformer, sx, sy, x, y, first, second)
    return [np.concatenate([a, b]) for a, b in zip((sx, sy, x, y), extra, strict=True)]


def footprint(source_crs: str, source_bounds: tuple, target_crs: str, *, samples: int = 64) -> tuple:
    """Bounding box in the target CRS of a source extent given in its own CRS.

    The extent is sampled densely along its boundary (``8 * samples + 1``
    points a side) and on an interior grid (``samples`` x ``samples``, edges
    included); PROJ transforms the points (always_xy), and those without a
    finite image are dropped: the far hemisphere of an orthographic
    projection, the area beyond the poles, and so on. Between neighbouring
    samples where the image appears or disappears, or where an image
    coordinate changes sign (a projection's seam, such as the meridian
    opposite its central one), more samples are placed by bisection, as GDAL
    does, so that the box reaches the domain's edge and both sides of a seam.
    Last, the cells around the samples with the smallest and largest x and y
    are sampled again on finer grids (:data:`ZOOM_LEVELS`), which places an
    extreme lying inside the extent (the equator's end on a seam, the limb
    of an orthographic disc) to about 1e-6 of the box.

    Poles: the poles of the target's geographic coordinates (the target itself
    when it is geographic, else its geodetic CRS) are transformed into the
    source; a pole strictly inside the source extent (for a geographic source:
    an extent a full turn wide that reaches the pole's latitude) is added to
    the samples, so a polar cap reaches its pole.

    Geographic target and the antimeridian: longitudes are those PROJ gives.
    When the source's boundary crosses the antimeridian (two neighbouring
    boundary samples differ by more than 180 degrees), the longitude range is
    the narrowest one holding every sample: it is cut at the widest empty arc,
    so xmax may exceed 180 (xmin is then in [-180, 180)); a source 170..190
    gives xmin 170, xmax 190, not -180..180. A source holding a pole of the
    target spans all longitudes, -180..180, and its latitudes reach the pole.

    Parameters
    ----------
    source_crs, target_crs : str
        Texts :func:`parse_crs` accepts (or parsed CRSs).
    source_bounds : tuple of float
        ``(left, bottom, right, top)`` in source units; for a geographic source
        in degrees, at most 360 wide (right may exceed 180) and within +-90.
    samples : int
        Interior grid points along each axis (at least 2).

    Returns
    -------
    tuple of float
        ``(xmin, ymin, xmax, ymax)`` in target units.

    Raises
    ------
    CRSError
        If a CRS is not understood or the bounds are not a box; if no sample
        projects to a finite point ("the source has no footprint in ...");
        or if the footprint is unbounded: a sample lands beyond
        :data:`FAR_AXES` semi-major axes from the origin, where the target has
        its points at infinity (a global source in a polar stereographic
        projection reaches the opposite pole); give the output's bounds then.
    """
    from pyproj import Transformer

    source = parse_crs(source_crs, "source CRS")
    target = parse_crs(target_crs, "target CRS")
    bounds = _check_bounds(source_bounds, "source bounds", "source extent")
    left, bottom, right, top = bounds
    if source.is_geographic:
        turn = _turn(source)
        if right - left > turn * (1 + 1e-12) or bottom < -turn / 4 * (1 + 1e-12) or top > turn / 4 * (1 + 1e-12):
            raise CRSError(
                f"source extent: geographic bounds {list(bounds)} must be at most {turn:g} wide "
                f"and within +-{turn / 4:g} in latitude"
            )
    samples = max(2, int(samples))
    forward = Transformer.from_crs(source, target, always_xy=True)
    ring_sx, ring_sy = _ring(left, bottom, right, top, 8 * samples + 2)
    ring_x, ring_y = _images(forward, ring_sx, ring_sy)
    ring = np.arange(ring_sx.size)
    extra = _refine(forward, ring_sx, ring_sy, ring_x, ring_y, ring, np.roll(ring, -1))
    parts = [(ring_sx, ring_sy, ring_x, ring_y), extra, _grid_samples(forward, bounds, samples)]
    # Zoom in on the extreme samples: a finer grid over the cells around each, twice.
    step_x, step_y = (right - left) / (samples - 1), (top - bottom) / (samples - 1)
    for _ in range(ZOOM_LEVELS):
        sx, sy, x, y = (np.concatenate([part[k] for part in parts]) for k in range(4))
        finite = np.flatnonzero(~np.isnan(x))
        if finite.size == 0:
            break
        extremes = {int(finite[pick(v[finite])]) for v in (x, y) for pick in (np.argmin, np.argmax)}
        for i in sorted(extremes):
            box = (
                max(left, sx[i] - step_x),
                max(bottom, sy[i] - step_y),
                min(right, sx[i] + step_x),
                min(top, sy[i] + step_y),
            )
            parts.append(_grid_samples(forward, box, ZOOM_SAMPLES))
        step_x, step_y = 2 * step_x / (ZOOM_SAMPLES - 1), 2 * step_y / (ZOOM_SAMPLES - 1)
    x, y = (np.concatenate([part[k] for part in parts]) for k in (2, 3))

    # The poles of the target's geographic coordinates, when the source holds them.
    pole_crs = target if target.is_geographic else target.geodetic_crs
    quarter = _turn(pole_crs) / 4
    to_source = Transformer.from_crs(pole_crs, source, always_xy=True)
    to_target = Transformer.from_crs(pole_crs, target, always_xy=True)
    held = []
    for pole in (quarter, -quarter):
        px, py = to_source.transform(0.0, pole, errcheck=False)
        if _contains_point(source, bounds, float(px), float(py)):
            held.append(pole)
    if held:
        pole_x, pole_y = _images(to_target, np.zeros(len(held)), np.array(held, np.float64))
        x, y = np.concatenate([x, pole_x]), np.concatenate([y, pole_y])

    finite = ~np.isnan(x)
    if not finite.any():
        raise CRSError(
            f"the source has no footprint in {_describe(target_crs)}: no point of the extent {list(bounds)} "
            f"in {_describe(source_crs)} projects to a finite point"
        )
    if not target.is_geographic:
        far = _far(target)
        if np.any(np.abs(x[finite]) > far) or np.any(np.abs(y[finite]) > far):
            raise CRSError(
                f"the footprint of the extent {list(bounds)} in {_describe(source_crs)} is unbounded in "
                f"{_describe(target_crs)}: it reaches where that projection goes to infinity "
                "(such as the opposite pole of a polar stereographic projection); give the output's bounds"
            )
    fx, fy = x[finite], y[finite]
    ymin, ymax = float(fy.min()), float(fy.max())
    if target.is_geographic:
        turn = _turn(target)
        if held:
            xmin, xmax = -turn / 2, turn / 2
        else:
            xmin, xmax = _longitude_range(fx, ring_x, turn)
    else:
        xmin, xmax = float(fx.min()), float(fx.max())
    box = (xmin, ymin, xmax, ymax)
    if not all(math.isfinite(value) for value in box):
        raise CRSError(f"the footprint of {list(bounds)} in {_describe(target_crs)} is not finite: {box}")
    return box


def _round_half_up(value: float) -> int:
    """Nearest integer, halves up: GDAL's ``std::round`` (and older ``(int)(v + 0.5)``) for positive values."""
    return int(math.floor(value + 0.5))


def _positive_size(value, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise CRSError(f"{where}: {name} {value!r} must be a positive whole number of pixels")
    return int(value)


def _resolution_pair(resolution, where: str) -> tuple:
    if isinstance(resolution, (int, float, np.integer, np.floating)) and not isinstance(resolution, bool):
        pair = (float(resolution), float(resolution))
    else:
        try:
            pair = tuple(float(value) for value in resolution)
        except (TypeError, ValueError):
            raise CRSError(f"{where}: resolution {resolution!r} must be a number or (xres, yres)") from None
        if len(pair) != 2:
            raise CRSError(f"{where}: resolution {list(resolution)} must be a number or (xres, yres)")
    if not all(math.isfinite(value) and value > 0 for value in pair):
        raise CRSError(f"{where}: resolution {resolution!r} must be positive target units per pixel")
    return pair


def target_grid(
    extent: tuple | None, *, bounds=None, resolution=None, width=None, height=None, where: str = "projection"
) -> tuple:
    """The output grid: ``(transform, width, height)``, placed the way gdalwarp's -te, -tr and -ts place it.

    The box is ``bounds`` (``-te``) when given, else ``extent`` (the
    footprint, :func:`footprint`). The rules are those of gdalwarp's
    ``GDALWarpCreateOutput`` (apps/gdalwarp_lib.cpp):

    - ``resolution`` (``-tr xres yres``): the resolution is kept exactly and so
      are the box's left and top edges; ``width = max(1, round((xmax - xmin) / xres))``,
      ``height = max(1, round((ymax - ymin) / yres))``, rounding halves up, so the
      right and bottom edges move to ``xmin + width * xres`` and ``ymax - height * yres``.
    - ``width`` and ``height`` (``-ts w h``): the box is kept exactly;
      ``xres = (xmax - xmin) / width``, ``yres = (ymax - ymin) / height``.
    - ``width`` alone (``-ts w 0``): square pixels, ``res = (xmax - xmin) / width``,
      ``height = max(1, round((ymax - ymin) / res))``; the left and top edges stay.
      ``height`` alone likewise, the other way round.
    - ``resolution`` with ``width`` or ``height``: refused, as gdalwarp refuses
      ``-tr`` with ``-ts``.
    - none: refused; the caller picks a resolution, e.g. with :func:`default_resolution`.

    Parameters
    ----------
    extent : tuple of float or None
        ``(xmin, ymin, xmax, ymax)`` in target units: the footprint, used when ``bounds`` is None.
    bounds : tuple of float, optional
        ``(xmin, ymin, xmax, ymax)`` in target units.
    resolution : float or (float, float), optional
        Target units per pixel, one number for square pixels or ``(xres, yres)``, positive.
    width, height : int, optional
        Output size in pixels.
    where : str
        What error messages name (the config entry).

    Returns
    -------
    transform : tuple of float
        GDAL order, north up: ``(xmin, xres, 0, ymax, 0, -yres)``.
    width, height : int

    Raises
    ------
    CRSError
        Naming ``where``: no box, an empty, inverted or non-finite box,
        non-positive sizes or resolution, resolution together with a size, or neither.
    """
    box = bounds if bounds is not None else extent
    if box is None:
        raise CRSError(f"{where}: the output grid needs bounds (or the source's footprint)")
    xmin, ymin, xmax, ymax = _check_bounds(box, "bounds" if bounds is not None else "extent", where)
    if resolution is not None and (width is not None or height is not None):
        raise CRSError(f"{where}: give either a resolution or a width/height, not both (as gdalwarp's -tr and -ts)")
    if resolution is not None:
        xres, yres = _resolution_pair(resolution, where)
        columns = max(1, _round_half_up((xmax - xmin) / xres))
        rows = max(1, _round_half_up((ymax - ymin) / yres))
    elif width is not None and height is not None:
        columns, rows = _positive_size(width, "width", where), _positive_size(height, "height", where)
        xres, yres = (xmax - xmin) / columns, (ymax - ymin) / rows
    elif width is not None:
        columns = _positive_size(width, "width", where)
        xres = yres = (xmax - xmin) / columns
        rows = max(1, _round_half_up((ymax - ymin) / yres))
    elif height is not None:
        rows = _positive_size(height, "height", where)
        xres = yres = (ymax - ymin) / rows
        columns = max(1, _round_half_up((xmax - xmin) / xres))
    else:
        raise CRSError(f"{where}: the output grid needs a resolution or a width (or height)")
    return (xmin, xres, 0.0, ymax, 0.0, -yres), columns, rows


def default_resolution(
    source_crs: str, source_transform: tuple, source_width: int, source_height: int, target_crs: str, extent: tuple
) -> float:
    """A square target resolution keeping about as many pixels along the diagonal as the source has.

    GDAL's rule (``GDALSuggestedWarpOutput2`` in alg/gdaltransformer.cpp, what
    gdalwarp and ``rasterio.warp.calculate_default_transform`` use): the
    source's top-left corner (pixel 0, 0) and bottom-right corner (pixel
    ``width``, ``height``) are transformed to the target, and the distance
    between them divided by the source's diagonal in pixels,
    ``hypot(width, height)``. When a corner has no finite image, or the two
    share an x or a y (as the poles of a global map do in Mollweide), the
    diagonal of ``extent`` is used instead. For a geographic target, corner
    longitudes are first put in the extent's longitude range (it may run past
    180). GDAL then nudges the pixel size by under a pixel over the whole
    width so the last column still meets the source; that is left out.

    Parameters
    ----------
    source_crs, target_crs : str
        Texts :func:`parse_crs` accepts (or parsed CRSs).
    source_transform : tuple of float
        The source's GDAL-order transform (pixel corners to source units).
    source_width, source_height : int
        The source's size in pixels.
    extent : tuple of float
        The footprint in the target CRS, ``(xmin, ymin, xmax, ymax)`` (:func:`footprint`).

    Returns
    -------
    float
        Target units per pixel, positive.

    Raises
    ------
    CRSError
        If a CRS is not understood, the sizes are not positive, the extent is
        not a box, or no positive resolution results.
    """
    from pyproj import Transformer

    source = parse_crs(source_crs, "source CRS")
    target = parse_crs(target_crs, "target CRS")
    columns = _positive_size(source_width, "source width", "source grid")
    rows = _positive_size(source_height, "source height", "source grid")
    xmin, ymin, xmax, ymax = _check_bounds(extent, "extent", "target grid")
    t = [float(value) for value in source_transform]
    corner_x = np.array([t[0], t[0] + columns * t[1] + rows * t[2]])
    corner_y = np.array([t[3], t[3] + columns * t[4] + rows * t[5]])
    x, y = Transformer.from_crs(source, target, always_xy=True).transform(corner_x, corner_y, errcheck=False)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if target.is_geographic:
        # Corners outside the extent's longitudes are the same meridians a turn away (the extent may pass 180).
        turn = _turn(target)
        outside = (x < xmin - 1e-9 * turn) | (x > xmax + 1e-9 * turn)
        x = np.where(outside, xmin + (x - xmin) % turn, x)
    dx, dy = x[1] - x[0], y[1] - y[0]
    if not (math.isfinite(dx) and math.isfinite(dy)) or dx == 0 or dy == 0:
        dx, dy = xmax - xmin, ymax - ymin
    resolution = math.hypot(dx, dy) / math.hypot(columns, rows)
    if not (math.isfinite(resolution) and resolution > 0):
        raise CRSError(f"no default resolution for {_describe(target_crs)} from the source grid")
    return resolution


def _arcs_meet(a0, a1, b0, b1, turn) -> bool:
    """Whether two longitude ranges, each west to east (east below west: across the antimeridian), share a point."""
    width_a = a1 - a0 if a1 >= a0 else a1 - a0 + turn
    width_b = b1 - b0 if b1 >= b0 else b1 - b0 + turn
    if width_a >= turn or width_b >= turn:
        return True
    return (b0 - a0) % turn <= width_a or (a0 - b0) % turn <= width_b


def check_bounds_in_area_of_use(target_crs, bounds, where: str) -> None:
    """Refuse target bounds that lie wholly outside the target CRS's area of use.

    The bounds' footprint in longitude and latitude (:func:`footprint` to
    EPSG:4326) must meet the area of use PROJ records for the CRS
    (:func:`crs_bounds_of_use`); a CRS without one (a PROJ string) passes.
    This catches bounds given in the wrong units, such as degrees for
    EPSG:3035, whose metres near 0 lie in the Atlantic off Africa.

    Raises
    ------
    CRSError
        Naming ``where``: if the bounds are not a box, have no footprint on
        the globe, or miss the area of use.
    """
    target = parse_crs(target_crs, where)
    values = _check_bounds(bounds, "bounds", where)
    area = crs_bounds_of_use(target)
    if area is None:
        return
    try:
        west, south, east, north = footprint(target, values, "EPSG:4326")
    except CRSError as error:
        message = f"{where}: bounds {list(values)} lie outside the domain of {_describe(target_crs)} ({error})"
        raise CRSError(message) from None
    a_west, a_south, a_east, a_north = area
    meets = south <= a_north and north >= a_south and _arcs_meet(west, east, a_west, a_east, 360.0)
    if not meets:
        units = target.axis_info[0].unit_name
        raise CRSError(
            f"{where}: bounds {list(values)} lie outside the area of use of {_describe(target_crs)} "
            f"(west, south, east, north = {list(area)} degrees): they cover longitudes {west:.6g}..{east:.6g} "
            f"and latitudes {south:.6g}..{north:.6g}; are they in the CRS's unit ({units})?"
        )


class Locator:
    """Maps target CRS coordinates to source CRS coordinates through PROJ.

    ``Locator(target_crs, source_crs)(x, y)`` gives ``(u, v)``: float64 arrays
    of the broadcast shape of ``x`` and ``y``, in always_xy order (longitude
    first, in degrees, for a geographic CRS; longitudes as PROJ gives them,
    normally in [-180, 180], so a caller wraps them onto its own source grid),
    NaN where PROJ has no point (it returns inf, or a point is off the
    projection, such as outside Mollweide's ellipse).

    Thread safety: one Locator may be called from several threads at once. It
    holds one ``pyproj.Transformer``, which since pyproj 3.1 is safe to share
    between threads: it keeps its PROJ object in a ``threading.local`` and
    creates one per thread on first use (pyproj issue #782, "Multithread safe
    CRS, Proj, & Transformer" in the 3.1.0 notes; ``TransformerLocal`` in
    pyproj/transformer.py), and pyproj 3.7 gives each thread its own PROJ
    context. The PROJ call itself runs without the GIL, so threads overlap.
    Not picklable by design (jobs build their own).

    Parameters
    ----------
    target_crs, source_crs : str
        Texts :func:`parse_crs` accepts (or parsed CRSs).

    Attributes
    ----------
    target_crs, source_crs : pyproj.CRS
        The parsed coordinate systems.

    Raises
    ------
    CRSError
        If PROJ does not understand a CRS, or it is not 2-D horizontal.
    """

    def __init__(self, target_crs, source_crs):
        from pyproj import Transformer

        self.target_crs = parse_crs(target_crs, "target CRS")
        self.source_crs = parse_crs(source_crs, "source CRS")
        self._transformer = Transformer.from_crs(self.target_crs, self.source_crs, always_xy=True)

    def __call__(self, x, y):
        """Source coordinates ``(u, v)`` of target coordinates ``(x, y)``; see the class."""
        x, y = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(y, np.float64))
        shape = x.shape
        u = np.array(x, np.float64, order="C", copy=True).reshape(-1)
        v = np.array(y, np.float64, order="C", copy=True).reshape(-1)
        if u.size:
            self._transformer.transform(u, v, inplace=True, errcheck=False)
            missing = ~(np.isfinite(u) & np.isfinite(v))
            if missing.any():
                u[missing] = np.nan
                v[missing] = np.nan
        return u.reshape(shape), v.reshape(shape)
