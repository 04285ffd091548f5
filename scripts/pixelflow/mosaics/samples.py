"""scikit-image's bundled sample images, for tile libraries and mosaic targets (standard library only at import).

Only the samples shipped inside the scikit-image package are offered, so that
exporting one needs no download. scikit-image is imported on first use.
"""

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


def sample_image(name: str):
    """The sample image ``name`` of ``skimage.data`` as scikit-image gives it (any dtype).

    Returns
    -------
    ndarray
        Grey (h, w), or channel-last RGB or RGBA.

    Raises
    ------
    ValueError
        For a name that is not one of :data:`SKIMAGE_SAMPLES`.
    """
    if name not in SKIMAGE_SAMPLES:
        raise ValueError(f"unknown sample image {name!r}; choose one of {', '.join(SKIMAGE_SAMPLES)}")
    import skimage.data

    return getattr(skimage.data, name)()
