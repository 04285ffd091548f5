"""Uncompressed TIFF used where it lies: find a pixel area to map, or lay out a file to fill in place (tifffile).

Large maps are read by memory-mapping an uncompressed TIFF's pixels and
written by filling a new file's pixel area from several threads with
``os.pwrite``, so that no image is held twice in memory. tifffile parses and
writes the headers; it is imported only once a file is known to be a TIFF.
"""

import sys

import numpy as np

TIFF_SIGNATURES = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")  # classic TIFF and BigTIFF, either byte order
NATIVE_ORDER = "<" if sys.byteorder == "little" else ">"


def uncompressed_layout(path) -> tuple | None:
    """``(height, width, channels, dtype, offset)`` of a TIFF whose pixels can be used where they lie, else None.

    That is, the first image of the file (read by tifffile) is uncompressed
    grey, RGB or RGBA with interleaved 8- or 16-bit unsigned samples in this
    machine's byte order, stored in one piece (strips, or full-width tiles,
    back to back): rows of pixels from ``offset`` on.

    Parameters
    ----------
    path : str or path
        Any file; only one starting with a TIFF or BigTIFF signature is parsed.

    Returns
    -------
    tuple or None
        ``(height, width, channels, dtype, offset)``: the size in pixels, 1, 3
        or 4 channels, a uint8 or uint16 dtype in native byte order, and the
        pixels' byte offset. None for any other file, including one that
        cannot be read or parsed.
    """
    try:
        with open(path, "rb") as file:
            if file.read(4) not in TIFF_SIGNATURES:
                return None
        import tifffile  # here, not at the top: jobs without TIFFs do not pay its import (about 20 ms)

        photometric = tifffile.PHOTOMETRIC
        forms = {(photometric.MINISBLACK, 1), (photometric.RGB, 3), (photometric.RGB, 4)}  # grey, RGB, RGBA
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            dtype = page.dtype
            channels = page.samplesperpixel
            usable = (
                page.is_final  # uncompressed, in one piece, no predictor, fill order or subsampling
                and page.imagedepth == 1
                and (page.planarconfig == tifffile.PLANARCONFIG.CONTIG or channels == 1)
                and (page.photometric, channels) in forms
                and dtype is not None
                and dtype.kind == "u"
                and dtype.itemsize in (1, 2)
                and (dtype.itemsize == 1 or tif.byteorder == NATIVE_ORDER)
            )
            if not usable:
                return None
            return page.imagelength, page.imagewidth, channels, dtype.newbyteorder("="), page.dataoffsets[0]
    except Exception:  # unreadable, or a TIFF tifffile cannot parse: the decoder reads it, or names its fault
        return None


def create_tiff(path, height: int, width: int, channels: int, dtype) -> int:
    """Create an uncompressed interleaved TIFF with its pixels not yet written; returns where they start.

    The pixel area (rows of pixels back to back, zeros until written; a
    sparse file) is filled in place. Strips of about 1 MiB, as OpenCV reads
    no strip over 1 GiB; BigTIFF when over 4 GB, as tifffile chooses.

    Parameters
    ----------
    path : str or path
        The file to create.
    height, width : int
        Size in pixels.
    channels : int
        1 (grey), 2 (grey and unassociated alpha), 3 (RGB) or 4 (RGBA, unassociated alpha).
    dtype : numpy dtype
        The samples' type, stored in this machine's byte order.

    Returns
    -------
    int
        The byte offset of the pixel area.
    """
    import tifffile

    dtype = np.dtype(dtype)
    row_bytes = width * channels * dtype.itemsize
    offset, size = tifffile.imwrite(
        path,
        shape=(height, width) if channels == 1 else (height, width, channels),
        dtype=dtype,
        byteorder=NATIVE_ORDER,
        photometric="minisblack" if channels <= 2 else "rgb",
        extrasamples=("unassalpha",) if channels in (2, 4) else None,
        rowsperstrip=max(1, (1 << 20) // row_bytes),
        metadata=None,
        returnoffset=True,
    )
    assert size == height * row_bytes, (path, size)
    return offset
