"""Image file formats the workflow writes, and the pixel types each can hold (standard library only)."""

FORMAT_SUFFIXES = {"png": ".png", "tiff": ".tif", "bmp": ".bmp"}
FORMAT_DTYPES = {
    "png": ("uint8", "uint16"),
    "tiff": ("uint8", "uint16", "float32"),
    "bmp": ("uint8",),
}
