"""Stack every image of a dataset into one ``.npy`` array, filled in parallel.

Workers decode their share of the images and write them straight into a
memory-mapped ``.npy`` file; each range is mapped, written and unmapped in
turn, so no process ever holds the whole array.
"""

from pathlib import Path

import numpy as np

from pixelflow.atomic import atomic_file
from pixelflow.datasets import image_shape
from pixelflow.imageio import ImageError, read_image
from pixelflow.runner import chunk_bounds, parallel_map

_stack_job: dict = {}


def stack_layout(rows: list[dict]) -> tuple[tuple, str]:
    """The common (shape, dtype) of all images, or an error naming the first misfit."""
    if not rows:
        raise ValueError("the dataset has no images to stack")
    shape, dtype = image_shape(rows[0]), rows[0]["dtype"]
    for row in rows[1:]:
        if image_shape(row) != shape or row["dtype"] != dtype:
            raise ImageError(
                f"{row['path']}: shape {list(image_shape(row))} {row['dtype']} differs from "
                f"{list(shape)} {dtype} of the first image {rows[0]['path']}; a stack needs one shape and dtype"
            )
    return shape, dtype


def _start_stack(path, paths, shape, dtype) -> None:
    _stack_job.update(path=path, paths=paths, shape=tuple(shape), dtype=np.dtype(dtype))


def _fill_range(bounds: tuple[int, int]) -> int:
    start, stop = bounds
    stack = np.load(_stack_job["path"], mmap_mode="r+")
    try:
        for index in range(start, stop):
            path = _stack_job["paths"][index]
            image = read_image(path)
            if image.shape != _stack_job["shape"] or image.dtype != _stack_job["dtype"]:
                raise ImageError(
                    f"{path}: shape {list(image.shape)} {image.dtype} differs from the manifest's "
                    f"{list(_stack_job['shape'])} {_stack_job['dtype']}; the file changed after its shard was made"
                )
            stack[index] = image
        stack.flush()
    finally:
        del stack
    return stop - start


def describe_range(bounds: tuple[int, int]) -> str:
    """Words naming a range of images in error messages."""
    return f"images {bounds[0]}..{bounds[1] - 1}"


def build_stack(output, rows: list[dict], processes: int, range_size: int = 256) -> tuple:
    """Write all images of ``rows`` (index order) to ``output`` as one array; return its shape."""
    shape, dtype = stack_layout(rows)
    full_shape = (len(rows), *shape)
    paths = [str(row["path"]) for row in rows]
    with atomic_file(Path(output)) as temporary:
        header = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.dtype(dtype), shape=full_shape)
        del header
        ranges = chunk_bounds(len(rows), processes, range_size)
        parallel_map(
            _fill_range,
            ranges,
            processes,
            initializer=_start_stack,
            initargs=(str(temporary), paths, shape, dtype),
            describe=describe_range,
        )
    return full_shape
