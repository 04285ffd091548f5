"""Where the pixels of a source map lie on the globe, and the georeferencing files written beside outputs."""

import json
import math
import warnings
from dataclasses import dataclass

import numpy as np

from pixelflow.atomic import write_text
from pixelflow.maps.projections import DEFAULT_MAX_LATITUDE, mercator_y, modulo


class GeometryError(ValueError):
    """A source map whose size or bounds do not fit its declared projection."""


@dataclass(frozen=True)
class SourceGeometry:
    """A source map's grid: ``width`` x ``height`` pixels covering ``bounds``.

    Attributes
    ----------
    kind : str
        ``equirectangular`` (rows linear in latitude) or ``mercator`` (rows
        linear in Mercator northing), columns linear in longitude either way,
        bounds in degrees; or ``projected``: rows and columns linear in the
        coordinates of ``crs`` (a north-up affine grid), bounds in its units.
    width, height : int
        The map's size in pixels.
    bounds : tuple of float
        ``(west, south, east, north)``: the outer edges of the outer pixels.
    crs : str or None
        The source's coordinate system (WKT) when the file carries one; None
        for a plain image placed by its config entry, whose longitudes and
        latitudes are taken on the sphere of the projection presets.
    """

    kind: str
    width: int
    height: int
    bounds: tuple
    crs: str | None = None

    @property
    def wraps(self) -> bool:
        """The map spans all 360 degrees of longitude, so its columns wrap around."""
        west, _, east, _ = self.bounds
        return math.isclose(east - west, 360.0)

    @property
    def geographic(self) -> bool:
        """Columns and rows follow longitude and latitude (every kind but ``projected``)."""
        return self.kind != "projected"

    @property
    def has_poles(self) -> bool:
        """The map reaches both poles, so a neighbour across a pole exists (equirectangular, global)."""
        return self.kind == "equirectangular" and self.wraps and self.bounds[1] == -90.0 and self.bounds[3] == 90.0

    @property
    def covers_globe(self) -> bool:
        """Every longitude and latitude has a source pixel (the same as :attr:`has_poles`)."""
        return self.has_poles

    def native_to_pixel(self, u, v):
        """Fractional source (column, row) of coordinates in the source's own units, NaN off the map.

        Parameters
        ----------
        u, v : array_like
            Longitude and latitude in degrees for a geographic grid
            (:meth:`to_pixel`), else easting and northing in the units of :attr:`crs`.

        Returns
        -------
        col, row : ndarray
            float64 pixel coordinates, centres at integers.
        """
        if self.geographic:
            return self.to_pixel(np.radians(u), np.radians(v))
        west, south, east, north = self.bounds
        col = (np.asarray(u, np.float64) - west) * (self.width / (east - west)) - 0.5
        row = (north - np.asarray(v, np.float64)) * (self.height / (north - south)) - 0.5
        inside = (col >= -0.5) & (col <= self.width - 0.5) & (row >= -0.5) & (row <= self.height - 0.5)
        return np.where(inside, col, np.nan), np.where(inside, row, np.nan)

    def to_pixel(self, lon, lat):
        """Fractional source (column, row) of longitudes and latitudes in radians, pixel centres at integers.

        On a wrapping map columns are reduced to [-0.5, width - 0.5); on
        another, a longitude beyond the bounds gives a NaN column. A latitude
        beyond the bounds gives NaN in both.

        Parameters
        ----------
        lon, lat : array_like
            Radians; they broadcast together.

        Returns
        -------
        col, row : ndarray
            Source pixel coordinates, NaN where the map has no pixel.
        """
        west, south, east, north = self.bounds
        lon_deg = np.degrees(lon)
        col = (lon_deg - west) * (self.width / (east - west)) - 0.5
        if self.wraps:
            col = modulo(col + 0.5, self.width) - 0.5
        else:
            col = np.where((col >= -0.5) & (col <= self.width - 0.5), col, np.nan)
        if self.kind == "mercator":
            top, bottom = float(mercator_y(math.radians(north))), float(mercator_y(math.radians(south)))
            with np.errstate(divide="ignore", invalid="ignore"):
                row = (top - mercator_y(lat)) * (self.height / (top - bottom)) - 0.5
        else:
            row = (north - np.degrees(lat)) * (self.height / (north - south)) - 0.5
        inside = (row >= -0.5) & (row <= self.height - 0.5)
        return np.where(inside, col, np.nan), np.where(inside, row, np.nan)


def source_geometry(spec: dict, width: int, height: int, where: str = "map") -> SourceGeometry:
    """The geometry of a source map from its config entry and its pixel size.

    A global equirectangular map without ``bounds`` must be 2:1; a Mercator map
    without ``bounds`` spans 360 degrees and +-``max_latitude``.

    Parameters
    ----------
    spec : dict
        The map's config entry: ``projection`` (``equirectangular``, the
        default, or ``mercator``), optionally ``bounds`` ``[west, south, east,
        north]`` in degrees and, for Mercator, ``max_latitude`` in degrees
        (default :data:`~pixelflow.maps.projections.DEFAULT_MAX_LATITUDE`).
    width, height : int
        The map's size in pixels.
    where : str
        What error messages name: the map's file.

    Returns
    -------
    SourceGeometry

    Raises
    ------
    GeometryError
        Naming ``where``: an unknown projection, an equirectangular map
        without bounds that is not 2:1, bounds that are not west < east <=
        west + 360 and -90 <= south < north <= 90, or Mercator bounds reaching a pole.
    """
    kind = spec.get("projection", "equirectangular")
    bounds = spec.get("bounds")
    if kind == "equirectangular":
        if bounds is None:
            if width != 2 * height:
                raise GeometryError(
                    f"{where}: an equirectangular map without bounds must be 2:1 (360 x 180 degrees), "
                    f"but it is {width}x{height} pixels; give bounds [west, south, east, north], or georeference "
                    "the file (GeoTIFF tags, or a world file and a .prj)"
                )
            bounds = (-180.0, -90.0, 180.0, 90.0)
    elif kind == "mercator":
        if bounds is None:
            limit = float(spec.get("max_latitude", DEFAULT_MAX_LATITUDE))
            bounds = (-180.0, -limit, 180.0, limit)
    else:
        raise GeometryError(f"{where}: unknown source projection {kind!r}; expected equirectangular or mercator")
    west, south, east, north = (float(value) for value in bounds)
    if not (west < east <= west + 360 and -90 <= south < north <= 90):
        raise GeometryError(
            f"{where}: bounds {list(bounds)} must be west < east <= west + 360, -90 <= south < north <= 90"
        )
    if kind == "mercator" and (south <= -90 or north >= 90):
        raise GeometryError(f"{where}: a Mercator map cannot reach a pole; bounds {list(bounds)}")
    return SourceGeometry(kind, int(width), int(height), (west, south, east, north))


def raster_geometry(width: int, height: int, transform, crs: str, where: str = "map") -> SourceGeometry:
    """The geometry of a georeferenced source from its file's affine transform and coordinate system.

    Parameters
    ----------
    width, height : int
        The raster's size in pixels.
    transform : sequence of float
        Its GDAL-style transform (``x = t0 + col * t1 + row * t2``, ``y = t3 + col * t4 + row * t5``).
    crs : str
        Its coordinate system, as PROJ reads it (WKT, ``EPSG:...``, PROJ string).
    where : str
        What error messages name: the map's file.

    Returns
    -------
    SourceGeometry
        ``equirectangular`` with bounds in degrees for a geographic system in
        degrees from Greenwich, else ``projected`` with bounds in the system's
        units; ``crs`` is the system as WKT.

    Raises
    ------
    GeometryError
        Naming ``where``: a rotated, sheared or south-up grid, or a geographic
        grid beyond the poles or wider than 360 degrees.
    """
    from pyproj import CRS

    t = [float(value) for value in transform]
    if t[2] != 0 or t[4] != 0:
        raise GeometryError(f"{where}: rotated or sheared georeferencing is not supported; warp it north-up first")
    if t[1] <= 0 or t[5] >= 0:
        raise GeometryError(f"{where}: the grid must run east along columns and south along rows (north up)")
    west, north = t[0], t[3]
    east, south = west + width * t[1], north + height * t[5]
    system = CRS.from_user_input(crs)
    unit = system.axis_info[0].unit_name if system.axis_info else ""
    if system.is_geographic and unit == "degree" and system.prime_meridian.longitude == 0:
        slack = 1e-6 * max(1.0, abs(t[5]))  # bounds written with rounding
        if not (-90 - slack <= south < north <= 90 + slack and east - west <= 360 + slack):
            raise GeometryError(
                f"{where}: its grid spans [{west}, {south}, {east}, {north}] degrees, beyond the poles or over 360"
            )
        south, north = max(south, -90.0), min(north, 90.0)
        east = min(east, west + 360.0)
        return SourceGeometry("equirectangular", int(width), int(height), (west, south, east, north), system.to_wkt())
    return SourceGeometry("projected", int(width), int(height), (west, south, east, north), system.to_wkt())


def georeference(crs: str, transform: tuple, width: int, height: int, nodata: float | None = None) -> dict:
    """The JSON-ready georeferencing of an output image.

    Parameters
    ----------
    crs : str
        The output's coordinate system as PROJ reads it (a preset's
        :func:`~pixelflow.maps.projections.proj_string`, or WKT).
    transform : sequence of float
        Its GDAL-style transform.
    width, height : int
        Its size in pixels.
    nodata : float, optional
        The value of pixels without a source, when they are not marked by an alpha channel.

    Returns
    -------
    dict
        ``crs`` (WKT2), ``proj`` (a PROJ string; lossy for some systems),
        ``transform`` (the six GDAL-style terms), ``transform_convention``
        (their meaning in words), ``width`` and ``height`` in pixels, and
        ``nodata`` (null when none; NaN is written as the string ``"nan"``).
    """
    from pyproj import CRS

    system = CRS.from_user_input(crs)
    with warnings.catch_warnings():  # the JSON says so: a PROJ string can lose detail of a WKT definition
        warnings.simplefilter("ignore", UserWarning)
        proj = crs if crs.lstrip().startswith("+") else system.to_proj4()
    if nodata is not None and math.isnan(nodata):
        nodata = "nan"
    return {
        "crs": system.to_wkt(),
        "proj": proj,
        "transform": [float(value) for value in transform],
        "transform_convention": "GDAL: x = t0 + col*t1 + row*t2, y = t3 + col*t4 + row*t5 (pixel corners)",
        "width": int(width),
        "height": int(height),
        "nodata": nodata,
    }


def world_file_text(transform: tuple) -> str:
    """The text of a world file: A, D, B, E and the centre of the top-left pixel (C, F), one a line.

    A, D, B, E are the transform's terms ``t1, t4, t2, t5`` (metres per
    pixel); C, F are in metres. Ten decimals each.
    """
    t = transform
    centre_x = t[0] + 0.5 * t[1] + 0.5 * t[2]
    centre_y = t[3] + 0.5 * t[4] + 0.5 * t[5]
    return "".join(f"{value:.10f}\n" for value in (t[1], t[4], t[2], t[5], centre_x, centre_y))


def write_georeference(json_path, world_path, crs: str, transform: tuple, width: int, height: int, nodata=None) -> None:
    """Write an output's georeferencing, each file atomically: JSON to ``json_path``, a world file to ``world_path``.

    The JSON is :func:`georeference`'s (of ``crs``, ``transform``, the size and
    ``nodata``), the world file :func:`world_file_text`.
    """
    write_text(json_path, json.dumps(georeference(crs, transform, width, height, nodata), indent=2) + "\n")
    write_text(world_path, world_file_text(transform))
