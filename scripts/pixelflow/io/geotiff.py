"""Georeferenced rasters through GDAL (rasterio): header, pixels and validity in; GeoTIFF, COG and ``.prj`` out.

The maps stage reads any raster GDAL opens (GeoTIFF, or an image with a world
file and a ``.prj``) and writes GeoTIFFs or Cloud-Optimized GeoTIFFs with the
coordinate system, transform, nodata value and alpha band embedded.
Transforms are 6-tuples in GDAL's order: ``x = t0 + col*t1 + row*t2``,
``y = t3 + col*t4 + row*t5``, at pixel corners. Every file that cannot be read,
or that this module does not support, raises :class:`ImageError` naming it;
every output is written atomically.
"""

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pyproj
import rasterio
import rasterio.shutil
from pyproj.enums import WktVersion
from rasterio.crs import CRS as RasterioCRS
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.transform import Affine

from pixelflow.atomic import atomic_file, write_text
from pixelflow.errors import ImageError

COMPRESSIONS = ("deflate", "zstd", "lzw", "none")
DTYPES = ("uint8", "uint16", "int16", "float32", "float64")
BLOCK_SIZE = 512
PRJ_SUFFIXES = (".prj", ".PRJ")
# GDAL's names of the pixel types, for opening a MEM dataset over an array.
GDAL_TYPES = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "float32": "Float32", "float64": "Float64"}
# Rotation or shear terms that move no corner of the image by more than this
# fraction of a pixel are rounding noise (some writers store 1e-16) and count as zero.
ROTATION_TOLERANCE = 1e-6


@dataclass(frozen=True)
class RasterInfo:
    """What a raster file holds, as :func:`raster_info` reads it from its header.

    Attributes
    ----------
    path : str
        The file.
    width, height : int
        Size in pixels.
    count : int
        Number of colour bands; an alpha band is not counted.
    dtype : str
        Numpy dtype name shared by all bands: ``uint8``, ``uint16``, ``int16``,
        ``float32`` or ``float64``.
    crs : str or None
        The coordinate system as WKT2, from the file or else from a ``.prj``
        beside it; None when neither gives one.
    transform : tuple of 6 float or None
        GDAL-order north-up affine transform (``t2 == t4 == 0``) of pixel
        corners; None when the file is not georeferenced.
    nodata : float or None
        The file's nodata value (may be NaN), None when it has none.
    alpha : bool
        Whether the file has an alpha band (colour interpretation alpha).
    mask : bool
        Whether the file has a per-dataset mask (an internal mask or a
        ``.msk`` file), apart from alpha and nodata.
    """

    path: str
    width: int
    height: int
    count: int
    dtype: str
    crs: str | None
    transform: tuple | None
    nodata: float | None
    alpha: bool
    mask: bool


def _open(path):
    """Open ``path`` for reading with rasterio; any failure is an ImageError naming it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(path)
    except RasterioError as error:
        raise ImageError(f"{path}: GDAL cannot open it as a raster ({error})") from error


def _bands(dataset, path) -> tuple[list[int], int | None]:
    """The 1-based indexes of the colour bands and of the alpha band (None without one)."""
    interpretations = dataset.colorinterp
    alpha = [index for index, kind in enumerate(interpretations, start=1) if kind == ColorInterp.alpha]
    colour = [index for index, kind in enumerate(interpretations, start=1) if kind != ColorInterp.alpha]
    if len(alpha) > 1:
        raise ImageError(f"{path}: {len(alpha)} alpha bands; one at most is supported")
    if not colour:
        raise ImageError(f"{path}: no colour bands (the file holds {dataset.count} bands, none but alpha)")
    return colour, (alpha[0] if alpha else None)


def _prj_crs(path) -> str | None:
    """The WKT2 of the ``.prj`` file beside ``path`` (same stem), None when there is none."""
    for suffix in PRJ_SUFFIXES:
        prj = Path(path).with_suffix(suffix)
        if prj.is_file():
            text = prj.read_text(encoding="utf-8", errors="replace").strip()
            try:
                return pyproj.CRS.from_user_input(text).to_wkt()
            except pyproj.exceptions.CRSError as error:
                raise ImageError(f"{prj}: not a coordinate system PROJ can read, for {path} ({error})") from error
    return None


def _north_up(transform: tuple, width: int, height: int, path) -> tuple:
    """``transform`` with rounding-noise rotation terms set to 0; ImageError for a rotated or sheared one."""
    t0, t1, t2, t3, t4, t5 = transform
    if t1 == 0 or t5 == 0:
        raise ImageError(f"{path}: degenerate georeferencing {transform} (a pixel size is zero)")
    if abs(t2) * height > ROTATION_TOLERANCE * abs(t1) or abs(t4) * width > ROTATION_TOLERANCE * abs(t5):
        raise ImageError(
            f"{path}: rotated or sheared georeferencing is not supported; warp it north-up first, e.g. gdalwarp"
        )
    return (t0, t1, 0.0, t3, 0.0, t5)


def _inspect(dataset, path) -> RasterInfo:
    """Build the :class:`RasterInfo` of an open dataset."""
    if dataset.count == 0:
        raise ImageError(f"{path}: no raster bands (a container of subdatasets?)")
    dtypes = set(dataset.dtypes)
    if len(dtypes) > 1:
        raise ImageError(f"{path}: bands of different pixel types {dataset.dtypes}; one type for all is supported")
    dtype = dataset.dtypes[0]
    if dtype not in DTYPES:
        raise ImageError(f"{path}: {dtype} pixels are not supported; use one of {', '.join(DTYPES)}")
    colour, alpha = _bands(dataset, path)
    if ColorInterp.palette in dataset.colorinterp:
        raise ImageError(
            f"{path}: palette colours are not supported; expand them first, e.g. gdal_translate -expand rgba"
        )

    transform = dataset.transform.to_gdal()
    if transform == Affine.identity().to_gdal():
        gcps, _ = dataset.gcps
        if gcps or dataset.rpcs is not None:
            raise ImageError(
                f"{path}: georeferenced by ground control points or RPCs only, which is not supported; "
                "warp it north-up first, e.g. gdalwarp"
            )
        transform = None
    else:
        transform = _north_up(transform, dataset.width, dataset.height, path)

    if dataset.crs is not None:
        crs = pyproj.CRS.from_wkt(dataset.crs.to_wkt(version="WKT2_2019")).to_wkt()
    else:
        crs = _prj_crs(path)

    nodata = dataset.nodata
    flags = dataset.mask_flag_enums[colour[0] - 1]
    mask = MaskFlags.per_dataset in flags and MaskFlags.alpha not in flags and MaskFlags.nodata not in flags
    return RasterInfo(
        path=str(path),
        width=dataset.width,
        height=dataset.height,
        count=len(colour),
        dtype=dtype,
        crs=crs,
        transform=transform,
        nodata=None if nodata is None else float(nodata),
        alpha=alpha is not None,
        mask=mask,
    )


def raster_info(path) -> RasterInfo:
    """Read a raster's size, pixel type, georeferencing, nodata, alpha and mask from its header.

    The georeferencing comes from the file (GeoTIFF tags, or a world file such
    as ``.pgw``, ``.tfw``, ``.jgw`` or ``.wld`` that GDAL reads beside it); when
    GDAL finds no coordinate system, a ``.prj`` file with the same stem is read
    (WKT1, ESRI WKT, WKT2 or anything else PROJ reads).

    Parameters
    ----------
    path : str or path-like
        Any raster GDAL opens.

    Returns
    -------
    RasterInfo
        The header; ``transform`` is None for a file without georeferencing
        (GDAL's identity transform and no ground control points).

    Raises
    ------
    ImageError
        Naming the file: GDAL cannot open it; its bands have different pixel
        types, or a type other than uint8, uint16, int16, float32 or float64;
        it has palette colours, no colour band or several alpha bands; its
        georeferencing is rotated or sheared, or made of ground control points
        or RPCs only; its ``.prj`` cannot be read.
    """
    with _open(path) as dataset:
        return _inspect(dataset, path)


def _typed_nodata(nodata: float, dtype: np.dtype):
    """``nodata`` as a scalar of ``dtype`` as GDAL compares it, or None when no pixel can equal it."""
    if math.isnan(nodata):
        return None
    if dtype.kind == "f":
        if math.isfinite(nodata) and abs(nodata) > float(np.finfo(dtype).max):
            return None
        return dtype.type(nodata)
    limits = np.iinfo(dtype)
    if not math.isfinite(nodata) or nodata != int(nodata) or not limits.min <= nodata <= limits.max:
        return None
    return dtype.type(int(nodata))


def read_raster(
    path, nodata: float | None = None, info: RasterInfo | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a raster's colour bands and which of its pixels are valid.

    A pixel is invalid when any of these holds:

    - the alpha band is 0 there;
    - the per-dataset mask (internal mask or ``.msk`` file) is 0 there;
    - every colour band equals the nodata value (``nodata`` when given, else
      the file's), as GDAL reads multi-band nodata: a pixel with only some
      bands equal to it is valid; the value is compared as a number of the
      file's pixel type, and one that type cannot hold matches nothing;
    - for float pixels, any colour band is NaN (a NaN nodata value says the
      same and adds nothing).

    Parameters
    ----------
    path : str or path-like
        Any raster :func:`raster_info` accepts.
    nodata : float, optional
        Overrides the file's nodata value.
    info : RasterInfo, optional
        The file's header as :func:`raster_info` returned it; saves reading it
        again.

    Returns
    -------
    pixels : ndarray
        (height, width, count) in the file's pixel type and native byte
        order; the colour bands only, the alpha band left out.
    valid : ndarray or None
        (height, width) bool, True where the pixel is valid; None when every
        pixel is.

    Raises
    ------
    ImageError
        Naming the file, as :func:`raster_info` raises it, when its pixels
        cannot be read, or when it no longer matches ``info``.
    """
    with _open(path) as dataset:
        if info is None:
            info = _inspect(dataset, path)
        colour, alpha = _bands(dataset, path)
        found = (dataset.height, dataset.width, len(colour), dataset.dtypes[0])
        if found != (info.height, info.width, info.count, info.dtype):
            raise ImageError(f"{path}: (height, width, colour bands, type) {found} do not match the header given")
        dtype = np.dtype(info.dtype)
        pixels = np.empty((info.height, info.width, info.count), dtype)
        valid = np.ones((info.height, info.width), bool)
        try:
            dataset.read(colour, out=pixels.transpose(2, 0, 1))  # GDAL fills the channel-last array in place
            if alpha is not None:
                valid &= dataset.read(alpha) != 0
            if info.mask:
                valid &= dataset.read_masks(colour[0]) != 0
        except RasterioError as error:
            raise ImageError(f"{path}: GDAL cannot read its pixels ({error})") from error

    value = info.nodata if nodata is None else nodata
    if value is not None:
        typed = _typed_nodata(float(value), dtype)
        if typed is not None:
            matches = pixels[:, :, 0] == typed
            for band in range(1, info.count):
                matches &= pixels[:, :, band] == typed
            valid &= ~matches
    if dtype.kind == "f":
        for band in range(info.count):
            valid &= ~np.isnan(pixels[:, :, band])
    return pixels, (None if valid.all() else valid)


def _parse_crs(crs) -> pyproj.CRS:
    """``crs`` (WKT, PROJ string, ``EPSG:n`` or anything PROJ reads) as a pyproj CRS; ValueError naming it."""
    try:
        return pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError as error:
        raise ValueError(f"not a coordinate system PROJ can read: {crs!r} ({error})") from error


def _channel_last(pixels: np.ndarray, alpha: bool) -> np.ndarray:
    """``pixels`` as a (h, w, c) array GDAL can read in place; ValueError for what cannot be written."""
    pixels = np.asanyarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[:, :, np.newaxis]
    if pixels.ndim != 3 or 0 in pixels.shape:
        raise ValueError(f"pixels must be a non-empty (h, w) or (h, w, c) array, not of shape {pixels.shape}")
    if pixels.dtype.name not in DTYPES:
        raise ValueError(f"cannot write {pixels.dtype} pixels; use one of {', '.join(DTYPES)}")
    if alpha and pixels.shape[2] < 2:
        raise ValueError("alpha=True needs at least one colour channel before the alpha channel")
    if not pixels.dtype.isnative:
        pixels = pixels.astype(pixels.dtype.newbyteorder("="))
    if min(pixels.strides) < 0:
        pixels = np.ascontiguousarray(pixels)
    return pixels


def _check_nodata(nodata, dtype: np.dtype) -> None:
    """ValueError when ``dtype`` cannot hold ``nodata``."""
    if nodata is None:
        return
    value = float(nodata)
    if dtype.kind == "f":
        if math.isfinite(value) and abs(value) > float(np.finfo(dtype).max):
            raise ValueError(f"nodata {nodata} is out of the range of {dtype}")
        return
    limits = np.iinfo(dtype)
    if not math.isfinite(value) or value != int(value) or not limits.min <= value <= limits.max:
        raise ValueError(f"{dtype} pixels cannot hold nodata {nodata}")


def _interpretations(channels: int, alpha: bool) -> list[ColorInterp]:
    """Colour interpretation of each band: RGB for three colour bands, grey otherwise; the alpha band last."""
    colours = channels - 1 if alpha else channels
    if colours == 3:
        kinds = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
    else:
        kinds = [ColorInterp.gray] + [ColorInterp.undefined] * (colours - 1)
    return kinds + ([ColorInterp.alpha] if alpha else [])


def _memory_view_name(pixels: np.ndarray) -> str:
    """The name that opens ``pixels`` (h, w, c, native order) as a GDAL MEM dataset without copying it."""
    height, width, channels = pixels.shape
    row, column, band = pixels.strides
    return (
        f"MEM:::DATAPOINTER={pixels.ctypes.data},PIXELS={width},LINES={height},BANDS={channels},"
        f"DATATYPE={GDAL_TYPES[pixels.dtype.name]},PIXELOFFSET={column},LINEOFFSET={row},BANDOFFSET={band}"
    )


def write_geotiff(
    path,
    pixels: np.ndarray,
    crs: str,
    transform: tuple,
    *,
    nodata: float | None = None,
    alpha: bool = False,
    compression: str = "deflate",
    cog: bool = False,
    threads: int = 1,
) -> None:
    """Write pixels as a GeoTIFF, or a Cloud-Optimized GeoTIFF, with their georeferencing, atomically.

    Three colour bands are written as RGB (photometric RGB), any other number
    as grey bands; an alpha band is written as a TIFF extra sample of type
    unassociated alpha, so that GDAL and QGIS read it as alpha. (GDAL's COG
    driver writes any three bands as photometric RGB: a COG of two colour
    bands and alpha records the alpha in GDAL's own metadata tag, which only
    GDAL-based readers such as QGIS read.) Compressed files use the horizontal
    predictor for integers and the floating-point predictor for floats. A
    plain GeoTIFF is tiled 512 x 512 when compressed and striped when not; a
    COG is written by GDAL's COG driver with 512 x 512 tiles and overviews
    averaged down until one fits in a tile. GDAL reads ``pixels`` where they
    lie (a memory map included), without a copy.

    Parameters
    ----------
    path : str or path-like
        The output file; its folder is created. It appears only once complete;
        a failure leaves an existing file there untouched.
    pixels : ndarray
        (h, w) or (h, w, c) of uint8, uint16, int16, float32 or float64.
    crs : str
        The coordinate system: WKT, a PROJ string, ``EPSG:n`` or anything
        else PROJ reads.
    transform : tuple of 6 float
        GDAL-order affine transform of pixel corners.
    nodata : float, optional
        The file's nodata value; the pixel type must hold it (NaN for floats).
    alpha : bool
        Whether the last channel is an alpha band.
    compression : str
        One of :data:`COMPRESSIONS`.
    cog : bool
        Write a Cloud-Optimized GeoTIFF instead of a plain GeoTIFF.
    threads : int
        GDAL's compression threads (NUM_THREADS); the bytes written do not
        depend on it.

    Raises
    ------
    ValueError
        For an unknown compression, a coordinate system PROJ cannot read, a
        transform that is not 6 finite numbers, pixels of another shape or
        type, a nodata value the pixel type cannot hold, or ``threads`` < 1.
    """
    if compression not in COMPRESSIONS:
        raise ValueError(f"unknown compression {compression!r}; use one of {', '.join(COMPRESSIONS)}")
    if isinstance(threads, bool) or int(threads) != threads or threads < 1:
        raise ValueError(f"threads must be a positive integer, not {threads!r}")
    parsed_crs = _parse_crs(crs)
    try:
        values = tuple(float(value) for value in transform)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 6 or not all(math.isfinite(value) for value in values):
        raise ValueError(f"transform must be 6 finite numbers in GDAL's order, not {transform!r}")
    pixels = _channel_last(pixels, alpha)
    _check_nodata(nodata, pixels.dtype)

    floating = pixels.dtype.kind == "f"
    options = {"num_threads": int(threads), "bigtiff": "IF_SAFER"}
    if compression == "none":
        options["compress"] = "NONE"
    else:
        options["compress"] = compression.upper()
    if cog:
        driver = "COG"
        options.update(blocksize=BLOCK_SIZE, overview_resampling="AVERAGE")
        if compression != "none":
            options["predictor"] = "FLOATING_POINT" if floating else "STANDARD"
    else:
        driver = "GTiff"
        options["photometric"] = "RGB" if pixels.shape[2] - alpha == 3 else "MINISBLACK"
        if compression != "none":
            options.update(tiled=True, blockxsize=BLOCK_SIZE, blockysize=BLOCK_SIZE, predictor=3 if floating else 2)

    settings = {
        "GDAL_MEM_ENABLE_OPEN": "YES",  # opening an array by address; GDAL refuses it by default
        "GDAL_NUM_THREADS": str(int(threads)),
        "GDAL_PAM_ENABLED": "NO",  # everything goes into the TIFF itself: no .aux.xml beside it
    }
    with rasterio.Env(**settings), atomic_file(path) as temporary, warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # the view has no georeferencing until it is set
        with rasterio.open(_memory_view_name(pixels), "r+") as source:
            source.crs = RasterioCRS.from_wkt(parsed_crs.to_wkt())
            source.transform = Affine.from_gdal(*values)
            source.colorinterp = _interpretations(pixels.shape[2], alpha)
            if nodata is not None:
                source.nodata = float(nodata)
            rasterio.shutil.copy(source, str(temporary), driver=driver, **options)


def georeference_tiff(path, crs: str, transform: tuple, *, nodata: float | None = None) -> None:
    """Embed a coordinate system, a transform and a nodata value in an existing TIFF, in place.

    GDAL opens the file for update and writes the GeoTIFF tags (and
    ``GDAL_NODATA``); the pixel data stay where they are, so a large
    uncompressed file filled in place (:func:`pixelflow.io.tiff.create_tiff`)
    becomes a GeoTIFF without being copied.

    Parameters
    ----------
    path : str or path-like
        The TIFF, not yet in its final place (the caller renames it).
    crs : str
        The coordinate system, as PROJ reads it.
    transform : sequence of float
        GDAL-order affine transform.
    nodata : float, optional
        The value of pixels without data.

    Raises
    ------
    ValueError
        For a coordinate system PROJ cannot read, or a transform that is not 6 finite numbers.
    """
    parsed_crs = _parse_crs(crs)
    values = tuple(float(value) for value in transform)
    if len(values) != 6 or not all(math.isfinite(value) for value in values):
        raise ValueError(f"transform must be 6 finite numbers in GDAL's order, not {transform!r}")
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(str(path), "r+") as dataset:
            dataset.crs = RasterioCRS.from_wkt(parsed_crs.to_wkt())
            dataset.transform = Affine.from_gdal(*values)
            if nodata is not None:
                dataset.nodata = float(nodata)


def write_prj(path, crs: str) -> None:
    """Write a coordinate system as a ``.prj`` file (ESRI-flavoured WKT1), atomically.

    CRSs that ESRI's WKT cannot express are written as GDAL's WKT1, and
    those neither can (some 3-D or dynamic ones) as WKT2, which GDAL and PROJ
    read too.

    Parameters
    ----------
    path : str or path-like
        The output file; its folder is created.
    crs : str
        The coordinate system: WKT, a PROJ string, ``EPSG:n`` or anything
        else PROJ reads.

    Raises
    ------
    ValueError
        For a coordinate system PROJ cannot read.
    """
    parsed = _parse_crs(crs)
    text = None
    for version in (WktVersion.WKT1_ESRI, WktVersion.WKT1_GDAL, WktVersion.WKT2_2019):
        try:
            text = parsed.to_wkt(version)
        except pyproj.exceptions.CRSError:
            text = None
        if text:
            break
    write_text(path, text + "\n")


def write_aux_xml(path, crs: str) -> None:
    """Write a raster's coordinate system into GDAL's side file for it (``<raster>.aux.xml``), atomically.

    GDAL, and so QGIS and rasterio, reads a PNG's grid from its world file but
    its coordinate system only from this file (GDAL's persistent auxiliary
    metadata), not from a ``.prj``. The coordinate system is written as WKT2;
    without an axis mapping GDAL takes the file's x as the easting or
    longitude, as a world file means it.

    Parameters
    ----------
    path : str or path-like
        The side file: the raster's path with ``.aux.xml`` appended.
    crs : str
        The coordinate system: WKT, a PROJ string, ``EPSG:n`` or anything else PROJ reads.

    Raises
    ------
    ValueError
        For a coordinate system PROJ cannot read.
    """
    wkt = _parse_crs(crs).to_wkt(WktVersion.WKT2_2019)
    write_text(path, f"<PAMDataset>\n  <SRS>{escape(wkt)}</SRS>\n</PAMDataset>\n")
