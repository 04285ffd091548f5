"""Stack every image of a dataset into one ``.npy`` array, filled in parallel.

The file (the ``.npy`` header, then the images in index order) is cut into
blocks of ``block_bytes``; each worker fills whole blocks, decoding the images
that fall in a block into one of two reused buffers, and a thread writes each
filled block with one ``os.pwrite`` while the next is filled. No process holds
more than two blocks.

By default the blocks are written with ``O_DIRECT``, from the buffer straight
to the disk, past the page cache: a stack is large, written once and read by
later jobs, and on the benchmark machine copying it into freshly allocated
page cache cost more CPU than decoding its images. ``PIXELFLOW_STACK_WRITES=buffered``
keeps the page cache (for a disk slower than the decoding); file systems
without ``O_DIRECT`` get buffered writes too.
"""

import ctypes
import errno
import io
import mmap
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from pixelflow.atomic import atomic_file
from pixelflow.errors import ImageError
from pixelflow.io.images import read_image
from pixelflow.io.manifest import read_image_paths
from pixelflow.runner import chunk_bounds, parallel_map, report_done

BLOCK_BYTES = 4 << 20
# Offsets, lengths and buffer addresses of O_DIRECT writes are multiples of this
# (the largest logical block size in common use; mmap buffers are page aligned).
DIRECT_ALIGN = 4096
WRITE_MODES = ("direct", "buffered")
_stack_job: dict = {}


def stack_write_mode() -> str:
    """How stack blocks are written: ``PIXELFLOW_STACK_WRITES``, else direct.

    Returns
    -------
    str
        ``direct`` or ``buffered``.

    Raises
    ------
    ValueError
        Naming the variable, for another value.
    """
    mode = os.environ.get("PIXELFLOW_STACK_WRITES", "direct")
    if mode not in WRITE_MODES:
        raise ValueError(f"PIXELFLOW_STACK_WRITES={mode!r}; expected one of {list(WRITE_MODES)}")
    return mode


def stack_layout(paths: list[str], forms: list[tuple[str, tuple, str]]) -> tuple[tuple, str]:
    """The one (shape, dtype) of all images, or an error naming the first image of another form.

    ``forms`` lists each distinct (first path, shape, dtype) in image order, as
    :func:`pixelflow.io.manifest.read_image_paths` gives them.

    Parameters
    ----------
    paths : list of str
        Every image's path, in index order.
    forms : list of tuple
        ``(first path, shape, dtype)`` of each distinct form.

    Returns
    -------
    shape : tuple of int
        The images' shape.
    dtype : str
        The images' pixel type.

    Raises
    ------
    ValueError
        If there are no images.
    ImageError
        Naming the first image of a second form, and the first image.
    """
    if not paths:
        raise ValueError("the dataset has no images to stack")
    (first, shape, dtype), *others = forms
    if others:
        misfit, other_shape, other_dtype = others[0]
        raise ImageError(
            f"{misfit}: shape {list(other_shape)} {other_dtype} differs from "
            f"{list(shape)} {dtype} of the first image {first}; a stack needs one shape and dtype"
        )
    return shape, dtype


def npy_header(shape: tuple, dtype) -> bytes:
    """The ``.npy`` header numpy writes for a C-ordered array of ``shape`` and ``dtype``.

    Returns
    -------
    bytes
        Format version 1.0: magic, version, length and the padded header
        dictionary; the array data follows it.
    """
    stream = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(stream, header)
    return stream.getvalue()


def _start_stack(path, header, paths, shape, dtype, block_bytes, direct, prefetch) -> None:
    dtype = np.dtype(dtype)
    _stack_job.clear()
    _stack_job.update(
        path=path,
        header=np.frombuffer(header, np.uint8),
        paths=paths,
        shape=tuple(shape),
        dtype=dtype,
        image_bytes=int(np.prod(shape)) * dtype.itemsize,
        total=len(header) + len(paths) * int(np.prod(shape)) * dtype.itemsize,
        block_bytes=block_bytes,
        direct=direct,
        prefetch=prefetch,
    )


def _block_buffers() -> list[np.ndarray]:
    """This process's two page-aligned block buffers (made once, then reused)."""
    job = _stack_job
    if "buffers" not in job:
        job["buffers"] = [np.frombuffer(mmap.mmap(-1, job["block_bytes"]), np.uint8) for _ in range(2)]
    return job["buffers"]


def _read_checked(index: int) -> np.ndarray:
    job = _stack_job
    path = job["paths"][index]
    image = read_image(path)
    if image.shape != job["shape"] or image.dtype != job["dtype"]:
        raise ImageError(
            f"{path}: shape {list(image.shape)} {image.dtype} differs from the manifest's "
            f"{list(job['shape'])} {job['dtype']}; the file changed after its shard was made"
        )
    return image


def _fill_block(buffer: np.ndarray, start: int, stop: int) -> None:
    """Put the file's bytes ``start..stop-1`` (header and images) into ``buffer``."""
    job = _stack_job
    header, image_bytes = job["header"], job["image_bytes"]
    if start < len(header):
        buffer[: len(header) - start] = header[start:]
    first = max(0, (start - len(header)) // image_bytes)
    last = min(len(job["paths"]), -(-(stop - len(header)) // image_bytes))
    for index in range(first, last):
        pixels = _read_checked(index).reshape(-1).view(np.uint8)
        begin = len(header) + index * image_bytes
        low, high = max(begin, start), min(begin + image_bytes, stop)
        buffer[low - start : high - start] = pixels[low - begin : high - begin]


class BlockWriter:
    """Writes filled blocks to the stack file, direct or buffered, one block at a time.

    Parameters
    ----------
    path : str
        The stack file; it must exist, and is opened for writing without truncation.
    direct : bool
        Write with ``O_DIRECT``, past the page cache.
    prefetch : bool
        Before each buffered write, ask the kernel to read the block's pages
        in (``POSIX_FADV_WILLNEED``).
    """

    def __init__(self, path: str, direct: bool, prefetch: bool):
        self.path, self.direct, self.prefetch = path, direct, prefetch
        self.descriptor = os.open(path, os.O_WRONLY | (os.O_DIRECT if direct else 0))

    def write(self, buffer: np.ndarray, start: int, stop: int) -> None:
        """Write ``buffer``'s first ``stop - start`` bytes at file offset ``start``.

        A direct write is rounded up to a multiple of :data:`DIRECT_ALIGN` bytes,
        zeroed past ``stop - start`` in ``buffer`` (:func:`build_stack` truncates
        the file afterwards). Where the file system refuses it (EINVAL), this and
        every later write is buffered.

        Parameters
        ----------
        buffer : ndarray
            uint8, page aligned for direct writes, at least ``stop - start`` bytes
            rounded up to DIRECT_ALIGN.
        start, stop : int
            The file's bytes ``start..stop-1``.

        Raises
        ------
        OSError
            Naming the file, on a short write; other write errors pass through.
        """
        if self.direct:
            length = -(-(stop - start) // DIRECT_ALIGN) * DIRECT_ALIGN  # the file is truncated afterwards
            buffer[stop - start : length] = 0
            try:
                return self._write(buffer[:length], start)
            except OSError as error:
                if error.errno != errno.EINVAL:
                    raise
                # The file system wants a larger alignment: write buffered from here on.
                os.close(self.descriptor)
                self.descriptor, self.direct = os.open(self.path, os.O_WRONLY), False
        if self.prefetch:
            # Page cache pages for the block, allocated by readahead outside the
            # file's write lock; without it concurrent writes queue on that lock
            # while the kernel allocates and zeroes each page.
            os.posix_fadvise(self.descriptor, start, stop - start, os.POSIX_FADV_WILLNEED)
        self._write(buffer[: stop - start], start)

    def _write(self, data, offset: int) -> None:
        written = os.pwrite(self.descriptor, data, offset)
        if written != len(data):
            raise OSError(f"{self.path}: short write at byte {offset} ({written} of {len(data)} bytes)")

    def close(self) -> None:
        """Close the file."""
        os.close(self.descriptor)


def _images_ending(start: int, stop: int) -> int:
    """How many images end in the file's bytes ``start..stop-1``: over all blocks, each image once."""
    job = _stack_job
    header, image_bytes, count = len(job["header"]), job["image_bytes"], len(job["paths"])
    return min(count, max(0, (stop - header) // image_bytes)) - min(count, max(0, (start - header) // image_bytes))


def _fill_blocks(bounds: tuple[int, int]) -> int:
    job = _stack_job
    block_bytes, total = job["block_bytes"], job["total"]
    buffers = _block_buffers()
    writer = BlockWriter(job["path"], job["direct"], job["prefetch"])
    # One block is written by a thread (the system call releases the GIL) while the next is filled.
    with ThreadPoolExecutor(1) as thread:
        try:
            pending, written = None, 0
            for number, block in enumerate(range(*bounds)):
                start = block * block_bytes
                stop = min(start + block_bytes, total)
                buffer = buffers[number % 2]
                _fill_block(buffer, start, stop)
                if pending is not None:
                    pending.result()
                    report_done(written)
                pending = thread.submit(writer.write, buffer, start, stop)
                written = _images_ending(start, stop)  # counted as done once the block is written
            if pending is not None:
                pending.result()
                report_done(written)
        finally:
            thread.shutdown(wait=True)
            writer.close()
    return bounds[1] - bounds[0]


def _open_direct(path, size: int) -> bool:
    """Whether ``path`` takes O_DIRECT writes; if so, allocate its ``size`` bytes up front.

    Direct writes into allocated blocks run side by side; into a hole each waits
    for the others' block allocation. The fallocate system call is used as is:
    glibc's posix_fallocate would write every block where it is missing.
    """
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_DIRECT)
    except OSError as error:
        if error.errno == errno.EINVAL:
            return False
        raise
    try:
        fallocate = getattr(ctypes.CDLL(None, use_errno=True), "fallocate", None)
        if fallocate is not None:
            fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
            fallocate(descriptor, 0, 0, size)  # where unsupported, blocks are allocated as they are written
    finally:
        os.close(descriptor)
    return True


def describe_blocks(bounds: tuple[int, int]) -> str:
    """Words naming a range of stack blocks (the item: ``(first, stop)`` block numbers) in error messages."""
    return f"stack blocks {bounds[0]}..{bounds[1] - 1}"


def build_stack(
    output, shard_dirs, processes: int, block_bytes: int = BLOCK_BYTES, writes: str | None = None, progress=None
):
    """Write all images of the shards (index order) to ``output`` as one array; return its shape.

    ``writes`` is ``direct`` or ``buffered`` (default: :func:`stack_write_mode`);
    ``block_bytes`` must be a multiple of DIRECT_ALIGN.

    Parameters
    ----------
    output : str or path-like
        The ``.npy`` file, written atomically; ``np.load(output, mmap_mode="r")``
        reads it lazily.
    shard_dirs : iterable of str or path-like
        The dataset's shard folders.
    processes : int
        Worker processes, each filling a contiguous run of blocks.
    block_bytes : int
        Bytes per block, a positive multiple of :data:`DIRECT_ALIGN`; 4 MiB by default.
    writes : str, optional
        ``direct`` (falls back to buffered where the file system lacks
        ``O_DIRECT``); any other value writes buffered.
    progress : callable, optional
        First called as ``progress(0, total=n)`` with the number of images once
        the manifests are read, then with the number of images newly written
        (an image counts once the block holding its last byte is written); the
        counts add up to ``n``.

    Returns
    -------
    tuple of int
        The array's shape, ``(N, h, w)`` or ``(N, h, w, c)``.

    Raises
    ------
    ValueError
        For a bad ``block_bytes`` or ``PIXELFLOW_STACK_WRITES``, or no images;
        and as :func:`pixelflow.io.manifest.read_image_paths`.
    ImageError
        Naming the images, when they differ in shape or dtype (:func:`stack_layout`).
    WorkerError
        Naming the blocks and the cause, when an image cannot be read or no
        longer has its manifest's form.
    """
    if block_bytes <= 0 or block_bytes % DIRECT_ALIGN:
        raise ValueError(f"block_bytes {block_bytes} is not a positive multiple of {DIRECT_ALIGN}")
    writes = writes or stack_write_mode()
    paths, forms = read_image_paths(shard_dirs)
    shape, dtype = stack_layout(paths, forms)
    full_shape = (len(paths), *shape)
    header = npy_header(full_shape, dtype)
    total = len(header) + int(np.prod(full_shape)) * np.dtype(dtype).itemsize
    if progress is not None:
        progress(0, total=len(paths))
    with atomic_file(Path(output)) as temporary:
        Path(temporary).touch()
        direct = writes == "direct" and _open_direct(temporary, -(-total // DIRECT_ALIGN) * DIRECT_ALIGN)
        ranges = chunk_bounds(-(-total // block_bytes), processes)
        parallel_map(
            _fill_blocks,
            ranges,
            processes,
            initializer=_start_stack,
            # Only several buffered writers contend for the file's lock (measured: no gain with one).
            initargs=(
                str(temporary),
                header,
                paths,
                shape,
                dtype,
                block_bytes,
                direct,
                len(ranges) > 1 and processes > 1,
            ),
            describe=describe_blocks,
            progress=progress,
            count_items=False,
        )
        os.truncate(temporary, total)
    return full_shape


def write_array_stack(output, images, batch_bytes: int = BLOCK_BYTES, progress=None) -> tuple:
    """Write an array of images, (N, h, w[, c]), to ``output`` as one ``.npy`` file; return its shape.

    For a dataset that is one array already (a Zarr array opened read-only,
    :func:`pixelflow.io.zarrstore.open_images`): its images are read in
    batches of about ``batch_bytes`` and appended after the header, so the
    file is exactly what ``np.save`` writes for the whole array (in the
    machine's byte order).

    Parameters
    ----------
    output : str or path-like
        The ``.npy`` file, written atomically.
    images : array-like
        With ``shape``, ``dtype`` and slicing along its first axis (a numpy or Zarr array).
    batch_bytes : int
        Bytes read at once; at least one image.
    progress : callable, optional
        First called as ``progress(0, total=N)``, then with the number of images newly written.

    Returns
    -------
    tuple of int
        The array's shape.

    Raises
    ------
    ValueError
        If there are no images.
    """
    shape, dtype = tuple(images.shape), np.dtype(images.dtype).newbyteorder("=")
    if not shape or shape[0] == 0:
        raise ValueError("the dataset has no images to stack")
    image_bytes = int(np.prod(shape[1:])) * dtype.itemsize
    batch = max(1, batch_bytes // max(1, image_bytes))
    if progress is not None:
        progress(0, total=shape[0])
    with atomic_file(Path(output)) as temporary, open(temporary, "wb") as handle:
        handle.write(npy_header(shape, dtype))
        for start in range(0, shape[0], batch):
            part = np.ascontiguousarray(images[start : start + batch], dtype=dtype)
            handle.write(memoryview(part).cast("B"))
            if progress is not None:
                progress(len(part))
    return shape
