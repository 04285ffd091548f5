"""Zarr storage of a dataset: values, byte-identical files however the shards are written, nothing half-written."""

import errno
import hashlib
import json
import multiprocessing
import os
import re
import resource
import signal
from pathlib import Path

import numpy as np
import pytest
import zarr
from pixelflow.atomic import PARTIAL_MARK
from pixelflow.errors import ImageError
from pixelflow.io import zarrstore
from pixelflow.io.zarrstore import (
    COMPRESSIONS,
    array_metadata,
    changed_shards,
    check_metadata,
    ensure_metadata,
    finish,
    open_images,
    open_reader,
    pixel_digest,
    read_image,
    read_metadata,
    shard_count,
    shard_file,
    store_form,
    write_shard,
)

FORMS = {
    "grey-uint8": ((9, 7), "uint8"),
    "rgb-uint8": ((9, 7, 3), "uint8"),
    "grey-uint16": ((6, 5), "uint16"),
    "rgba-float32": ((6, 5, 4), "float32"),
}
ATTRIBUTES = {"spec": {"name": "noise", "seed": 1}, "format_version": 1}
# Spawned children import this module afresh: no state of the test process (zarr's loop thread) is inherited.
SPAWN = multiprocessing.get_context("spawn")


def make_images(count, image_shape, dtype, seed=0) -> np.ndarray:
    """Random images with some repeated content, all-zero and extreme values, so codecs meet every case."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        images = rng.normal(0, 1000, (count, *image_shape)).astype(dtype)
        images[1::4] = np.float32(np.nan)
    else:
        top = np.iinfo(dtype).max
        images = rng.integers(0, top, (count, *image_shape), endpoint=True).astype(dtype)
        images[1::4] = top
    images[::5] = 0
    return images


def metadata_for(count=11, image_shape=(9, 7), dtype="uint8", shard_images=4, compression="zstd", attributes=None):
    return array_metadata(
        count=count,
        image_shape=image_shape,
        dtype=dtype,
        shard_images=shard_images,
        compression=compression,
        attributes=ATTRIBUTES if attributes is None else attributes,
    )


def shard_images_of(images: np.ndarray, metadata: dict, shard: int) -> np.ndarray:
    size = metadata["chunk_grid"]["configuration"]["chunk_shape"][0]
    return images[shard * size : (shard + 1) * size]


def write_store(store, metadata, images, order=None) -> list[str]:
    """Ensure the metadata and write every shard (in ``order``) as a shard job does; the digests in index order."""
    digests = {}
    for shard in range(shard_count(metadata)) if order is None else order:
        ensure_metadata(store, metadata)
        part = shard_images_of(images, metadata, shard)
        digests[shard] = write_shard(store, metadata=metadata, shard=shard, images=iter(list(part)))
    return [digest for shard in sorted(digests) for digest in digests[shard]]


def file_digests(store) -> dict[str, str]:
    """sha256 of every file below ``store``, by relative path."""
    store = Path(store)
    return {
        str(path.relative_to(store)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(store.rglob("*"))
        if path.is_file()
    }


def files_of(store) -> list[str]:
    return sorted(str(path.relative_to(store)) for path in Path(store).rglob("*") if path.is_file())


def same_values(first: np.ndarray, second: np.ndarray) -> bool:
    return first.dtype == second.dtype and np.array_equal(first, second, equal_nan=first.dtype.kind == "f")


# Spawned shard jobs -----------------------------------------------------------


def shard_job(store, metadata, images, shard) -> None:
    """One workflow shard job in its own process: check the metadata (another step writes it), write one shard."""
    check_metadata(store, metadata, ignore_count=True)
    write_shard(store, metadata=metadata, shard=shard, images=shard_images_of(images, metadata, shard))


def stalled_shard_job(store, metadata, images, shard, started) -> None:
    """Write a shard from a generator that stalls after three images (one a batch) until the process is killed."""
    zarrstore.BATCH_BYTES = 1  # in this process only

    def stalling():
        for position, image in enumerate(shard_images_of(images, metadata, shard)):
            if position == 3:
                started.set()
                signal.pause()
            yield image

    write_shard(store, metadata=metadata, shard=shard, images=stalling())


def size_limited_shard_job(store, metadata, images, shard, limit) -> tuple | None:
    """Write a shard in a process whose files may not grow past ``limit`` bytes (RLIMIT_FSIZE).

    The kernel then refuses the write that would pass it, as a full disk
    would (EFBIG instead of ENOSPC; Python ignores SIGXFSZ). Returns the
    refusal: errno, message, whether another exception was being handled,
    and the name of the function that raised it.
    """
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    try:
        write_shard(store, metadata=metadata, shard=shard, images=shard_images_of(images, metadata, shard))
    except OSError as error:
        frame = error.__traceback__
        while frame.tb_next is not None:
            frame = frame.tb_next
        return error.errno, str(error), error.__context__ is not None, frame.tb_frame.f_code.co_name
    return None


# Values -----------------------------------------------------------------------


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("form", FORMS, ids=str)
def test_images_read_back_as_written(tmp_path, form, compression):
    image_shape, dtype = FORMS[form]
    images = make_images(11, image_shape, dtype)
    metadata = metadata_for(image_shape=image_shape, dtype=dtype, compression=compression)
    store = tmp_path / "images.zarr"
    digests = write_store(store, metadata, images)
    array = open_images(store)
    reader = open_reader(store)
    assert store_form(store) == (11, image_shape, dtype)
    assert (array.shape, str(array.dtype), len(reader)) == ((11, *image_shape), dtype, 11)
    for index in range(11):
        image = read_image(reader, index)
        assert image.shape == image_shape and same_values(image, images[index])
        assert same_values(image, array[index])  # what Zarr reads
        image[...] = 0  # writable, and a copy: the next read is unchanged
        assert same_values(read_image(reader, index), images[index])
    assert digests == [pixel_digest(image) for image in images]


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("form", FORMS, ids=str)
def test_shard_files_are_the_ones_zarr_writes_itself(tmp_path, form, compression):
    """A plain Zarr user reads the store; Zarr writing the whole array from the same metadata makes the same files."""
    image_shape, dtype = FORMS[form]
    images = make_images(11, image_shape, dtype, seed=3)
    metadata = metadata_for(image_shape=image_shape, dtype=dtype, compression=compression)
    ours, theirs = tmp_path / "ours.zarr", tmp_path / "theirs.zarr"
    write_store(ours, metadata, images, order=[2, 0, 1])

    plain = zarr.open_array(str(ours), mode="r")
    assert same_values(plain[:], images)
    assert same_values(plain[5], images[5])
    assert plain.attrs.asdict() == ATTRIBUTES

    theirs.mkdir()
    (theirs / "zarr.json").write_text(json.dumps(metadata))
    zarr.open_array(str(theirs), mode="r+").with_config({"write_empty_chunks": True})[:] = images
    shard_files = [name for name in files_of(ours) if name != "zarr.json"]
    assert shard_files == [name for name in files_of(theirs) if name != "zarr.json"]
    assert len(shard_files) == 3  # 4 + 4 + 3 images
    for name in shard_files:
        assert (ours / name).read_bytes() == (theirs / name).read_bytes(), name


def test_values_do_not_depend_on_the_shard_size(tmp_path):
    images = make_images(23, (9, 7, 3), "uint8", seed=5)
    arrays = []
    for shard_images in (4, 10):
        store = tmp_path / f"by-{shard_images}.zarr"
        write_store(store, metadata_for(count=23, image_shape=(9, 7, 3), shard_images=shard_images), images)
        arrays.append(open_images(store)[:])
        assert len(files_of(store)) == 1 + -(-23 // shard_images)
    assert same_values(arrays[0], arrays[1]) and same_values(arrays[0], images)


def test_none_stores_the_raw_bytes_and_the_codecs_compress(tmp_path):
    images = np.zeros((6, 32, 32), np.uint16)
    images[:, ::2] = np.arange(32, dtype=np.uint16) * 1000  # little-endian bytes differ from big-endian ones
    sizes = {}
    for compression in COMPRESSIONS:
        store = tmp_path / f"{compression}.zarr"
        metadata = metadata_for(count=6, image_shape=(32, 32), dtype="uint16", shard_images=6, compression=compression)
        write_store(store, metadata, images)
        data = shard_file(store, shard=0, image_shape=(32, 32)).read_bytes()
        sizes[compression] = len(data)
        assert same_values(open_images(store)[:], images)
    raw = shard_file(tmp_path / "none.zarr", shard=0, image_shape=(32, 32)).read_bytes()
    pixels = images.astype("<u2").tobytes()
    assert raw[: len(pixels)] == pixels  # the images' bytes in index order, then the index
    assert len(raw) == len(pixels) + 16 * 6 + 4
    assert sizes["zstd"] < len(pixels) // 4 and sizes["blosc"] < len(pixels) // 4


def test_codec_settings_are_pinned_in_the_metadata():
    inner = {
        compression: metadata_for(dtype=dtype, compression=compression)["codecs"][0]["configuration"]["codecs"][1:]
        for compression, dtype in (("none", "uint8"), ("zstd", "uint8"), ("blosc", "uint16"))
    }
    assert inner["none"] == []
    assert inner["zstd"] == [{"name": "zstd", "configuration": {"level": 3, "checksum": False}}]
    assert inner["blosc"] == [
        {
            "name": "blosc",
            "configuration": {"typesize": 2, "cname": "zstd", "clevel": 5, "shuffle": "shuffle", "blocksize": 0},
        }
    ]
    blosc_bytes = metadata_for(dtype="uint8", compression="blosc")["codecs"][0]["configuration"]["codecs"][1]
    assert blosc_bytes["configuration"]["shuffle"] == "bitshuffle"


# Determinism ------------------------------------------------------------------


def test_files_do_not_depend_on_the_order_of_the_shards(tmp_path):
    images = make_images(29, (9, 7), "uint8", seed=8)
    metadata = metadata_for(
        count=29, shard_images=5, attributes={"seed": 1, "name": "noise", "nested": {"b": 2, "a": 1}}
    )
    reordered = metadata_for(
        count=29, shard_images=5, attributes={"nested": {"a": 1, "b": 2}, "name": "noise", "seed": 1}
    )
    assert json.dumps(metadata) == json.dumps(reordered)  # the attributes' keys are sorted
    write_store(tmp_path / "forward.zarr", metadata, images)
    write_store(tmp_path / "backward.zarr", reordered, images, order=range(5, -1, -1))
    write_store(tmp_path / "again.zarr", metadata, images, order=[3, 1, 5, 0, 4, 2])
    forward = file_digests(tmp_path / "forward.zarr")
    assert len(forward) == 7
    assert file_digests(tmp_path / "backward.zarr") == forward
    assert file_digests(tmp_path / "again.zarr") == forward


def test_files_do_not_depend_on_how_many_processes_write_them(tmp_path):
    images = make_images(29, (9, 7, 3), "uint8", seed=9)
    metadata = metadata_for(count=29, image_shape=(9, 7, 3), shard_images=5, compression="blosc")
    serial = tmp_path / "serial.zarr"
    write_store(serial, metadata, images)
    orders = ([5, 4, 3, 2, 1, 0], [2, 0, 5, 1, 3, 4])
    with SPAWN.Pool(3) as pool:  # three shard jobs at once, each checking the metadata and writing its shard
        for number, order in enumerate(orders):
            pool.starmap(shard_job, [(tmp_path / f"{number}.zarr", metadata, images, shard) for shard in order], 1)
            finish(tmp_path / f"{number}.zarr", metadata)  # the one step after them writes zarr.json
    for number in range(len(orders)):
        assert file_digests(tmp_path / f"{number}.zarr") == file_digests(serial)


# At most two files, nothing half-written --------------------------------------


def test_a_shard_job_writes_the_metadata_and_its_shard_file_only(tmp_path):
    images = make_images(11, (9, 7), "uint8")
    metadata = metadata_for()
    store = tmp_path / "images.zarr"
    ensure_metadata(store, metadata)
    write_shard(store, metadata=metadata, shard=1, images=images[4:8])
    assert files_of(store) == ["c/1/0/0", "zarr.json"]
    before = {name: os.stat(store / name).st_mtime_ns for name in files_of(store)}

    def watched():
        for position, image in enumerate(images[8:]):
            if position == 2:  # mid-write: no shard file 2, only a hidden temporary beside where it goes
                visible = [name for name in files_of(store) if not Path(name).name.startswith(".")]
                assert visible == ["c/1/0/0", "zarr.json"]
                hidden = [path.name for path in (store / "c" / "2" / "0").iterdir()]
                assert len(hidden) == 1 and hidden[0].startswith(f".0{PARTIAL_MARK}")
            yield image

    ensure_metadata(store, metadata)  # the same metadata: left as it is
    write_shard(store, metadata=metadata, shard=2, images=watched())
    assert files_of(store) == ["c/1/0/0", "c/2/0/0", "zarr.json"]
    assert {name: os.stat(store / name).st_mtime_ns for name in before} == before


def test_an_image_source_that_fails_leaves_no_shard_file(tmp_path, monkeypatch):
    monkeypatch.setattr(zarrstore, "BATCH_BYTES", 9 * 7)  # one image a batch: some are written before it fails
    images = make_images(11, (9, 7), "uint8")
    metadata = metadata_for()
    store = tmp_path / "images.zarr"
    ensure_metadata(store, metadata)

    def failing():
        yield from images[4:6]
        raise RuntimeError("generator broke at image 6")

    with pytest.raises(RuntimeError, match="image 6"):
        write_shard(store, metadata=metadata, shard=1, images=failing())
    assert files_of(store) == ["zarr.json"]
    assert os.listdir(store / "c") == []  # no folder made for the shard stays

    write_shard(store, metadata=metadata, shard=1, images=images[4:8])
    finished = file_digests(store)
    with pytest.raises(RuntimeError, match="image 6"):
        write_shard(store, metadata=metadata, shard=1, images=failing())
    assert file_digests(store) == finished  # an earlier shard file is left as it was
    assert files_of(store) == ["c/1/0/0", "zarr.json"]


def test_a_killed_shard_job_leaves_only_a_hidden_temporary_removed_by_the_next_write(tmp_path):
    images = make_images(11, (9, 7), "uint8")
    metadata = metadata_for()
    store = tmp_path / "images.zarr"
    ensure_metadata(store, metadata)
    started = SPAWN.Event()
    job = SPAWN.Process(target=stalled_shard_job, args=(store, metadata, images, 1, started))
    job.start()
    try:
        assert started.wait(60)
    finally:
        job.kill()
        job.join()
    target = shard_file(store, shard=1, image_shape=(9, 7))
    assert not target.exists()
    assert [path.name.startswith(f".0{PARTIAL_MARK}") for path in target.parent.iterdir()] == [True]
    write_shard(store, metadata=metadata, shard=1, images=images[4:8])
    assert [path.name for path in target.parent.iterdir()] == ["0"]


def test_a_write_the_file_system_refuses_fails_once_naming_the_shard_file_and_keeps_nothing(tmp_path):
    images = make_images(11, (64, 64), "uint8")
    metadata = metadata_for(image_shape=(64, 64), compression="none")  # a chunk is an image's 4096 bytes
    store = tmp_path / "images.zarr"
    ensure_metadata(store, metadata)
    write_shard(store, metadata=metadata, shard=0, images=images[:4])
    finished = file_digests(store)
    target = shard_file(store, shard=1, image_shape=(64, 64))
    with SPAWN.Pool(1) as pool:  # two chunks and part of a third fit: the file system refuses mid-shard
        refusal = pool.apply(size_limited_shard_job, (store, metadata, images, 1, 2 * 4096 + 100))
    message = f"[Errno {errno.EFBIG}] {os.strerror(errno.EFBIG)}: '{target}'"  # once, naming the shard file
    assert refusal == (errno.EFBIG, message, False, "_write_all")
    assert file_digests(store) == finished  # no shard file, no temporary, the earlier shard as it was
    assert sorted(path.name for path in (store / "c").iterdir()) == ["0"]
    write_shard(store, metadata=metadata, shard=1, images=images[4:8])  # with room, the same shard is written
    assert same_values(open_images(store)[4:8], images[4:8])


@pytest.mark.parametrize(
    ("part", "message"),
    [
        (lambda images: images[4:7], r"shard 1: 3 images given, it holds 4 \(4\.\.7\)"),
        (lambda images: images[4:9], r"shard 1: more than its 4 images \(4\.\.7\) given"),
        (lambda images: images[4:8, :, :5], r"image 4: \(9, 5\) uint8 differs from the array's images, \(9, 7\) uint8"),
        (lambda images: images[4:8].astype(np.uint16), r"image 4: \(9, 7\) uint16 differs"),
    ],
)
def test_images_of_another_number_or_form_are_refused(tmp_path, part, message):
    images = make_images(11, (9, 7), "uint8")
    store = tmp_path / "images.zarr"
    with pytest.raises(ImageError, match=message):
        write_shard(store, metadata=metadata_for(), shard=1, images=part(images))
    assert files_of(store) == []


def test_a_shard_number_out_of_range_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"shard: 3 is not a shard of the array \(0\.\.2\)"):
        write_shard(tmp_path, metadata=metadata_for(), shard=3, images=[])


# Metadata ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"count": 12}, r"shape \(11, 9, 7\) vs \(12, 9, 7\)"),
        ({"image_shape": (9, 8)}, r"shape \(11, 9, 7\) vs \(11, 9, 8\)"),
        ({"dtype": "uint16"}, r"dtype uint8 vs uint16"),
        ({"shard_images": 5}, r"images per shard 4 vs 5"),
        ({"compression": "none"}, r'compression zstd {"checksum": false, "level": 3} vs none'),
        (
            {"attributes": {"spec": {"name": "noise", "seed": 2}, "format_version": 1}},
            r"attributes differ: spec.seed 1 vs 2",
        ),
        ({"attributes": {"spec": {"name": "noise", "seed": 1}}}, r"attributes differ: format_version 1 vs absent"),
    ],
)
def test_other_metadata_is_refused_naming_the_difference(tmp_path, change, message):
    store = tmp_path / "images.zarr"
    ensure_metadata(store, metadata_for())
    before = file_digests(store)
    with pytest.raises(ImageError, match=message) as caught:
        ensure_metadata(store, metadata_for(**change))
    assert str(store / "zarr.json") in str(caught.value)
    assert file_digests(store) == before


def test_several_differences_are_all_named(tmp_path):
    store = tmp_path / "images.zarr"
    ensure_metadata(store, metadata_for(count=1000, image_shape=(64, 64), attributes={"seed": 1}))
    with pytest.raises(ImageError, match=r"shape \(1000, 64, 64\) vs \(2000, 64, 64\); attributes differ: seed 1 vs 2"):
        ensure_metadata(store, metadata_for(count=2000, image_shape=(64, 64), attributes={"seed": 2}))


def test_the_metadata_file_is_zarrs_own_document_and_refused_arguments_are_named(tmp_path):
    metadata = metadata_for(image_shape=(9, 7, 3))
    ensure_metadata(tmp_path, metadata)
    assert read_metadata(tmp_path) == metadata
    assert zarr.open_array(str(tmp_path), mode="r").metadata.to_dict()["shape"] == (11, 9, 7, 3)
    assert metadata["dimension_names"] == ["image", "y", "x", "channel"]
    assert read_metadata(tmp_path / "nowhere") is None
    with pytest.raises(ValueError, match=r"compression: 'lz4' is not one of none, zstd, blosc"):
        metadata_for(compression="lz4")
    with pytest.raises(ValueError, match=r"image_shape: \[9\] is not"):
        metadata_for(image_shape=(9,))
    with pytest.raises(ValueError, match=r"dtype: complex64 is not"):
        metadata_for(dtype="complex64")
    with pytest.raises(ValueError, match=r"count: 0 is not a whole number of at least 1"):
        metadata_for(count=0)
    with pytest.raises(ValueError, match=r"shard_images: 2\.5 is not"):
        metadata_for(shard_images=2.5)
    with pytest.raises(ValueError, match=r"attributes: not JSON data"):
        metadata_for(attributes={"when": object()})


# A new count ------------------------------------------------------------------


def test_changed_shards_are_the_last_partial_one_and_the_new_ones():
    old = metadata_for(count=11)
    assert changed_shards(None, old) == [0, 1, 2]
    assert changed_shards(old, old) == []
    assert changed_shards(old, metadata_for(count=15)) == [2, 3]
    assert changed_shards(old, metadata_for(count=12)) == [2]
    assert changed_shards(metadata_for(count=12), metadata_for(count=13)) == [3]
    assert changed_shards(old, metadata_for(count=6)) == [1]
    assert changed_shards(old, metadata_for(count=8)) == []
    assert changed_shards(old, metadata_for(count=15, attributes={"seed": 2})) == [0, 1, 2, 3]
    assert changed_shards(old, metadata_for(count=15, compression="none")) == [0, 1, 2, 3]


# Shard jobs side by side: check, then finish after them all -------------------


def test_check_metadata_reads_and_compares_but_writes_nothing(tmp_path):
    store = tmp_path / "images.zarr"
    metadata = metadata_for(count=11)
    assert check_metadata(store, metadata) is None and not store.exists()
    ensure_metadata(store, metadata)
    assert check_metadata(store, metadata) == metadata
    longer = metadata_for(count=15)
    with pytest.raises(ImageError, match=r"shape \(11, 9, 7\) vs \(15, 9, 7\)"):
        check_metadata(store, longer)
    assert check_metadata(store, longer, ignore_count=True) == metadata
    with pytest.raises(ImageError, match="attributes differ: seed absent vs 2. Remove"):
        check_metadata(store, metadata_for(count=15, attributes={**ATTRIBUTES, "seed": 2}), ignore_count=True)
    assert read_metadata(store) == metadata and files_of(store) == ["zarr.json"]


@pytest.mark.parametrize("new_count", [15, 19, 6, 8, 11])
def test_shards_rewritten_in_place_then_finished_equal_a_store_written_anew(tmp_path, new_count):
    """The workflow's way: only the changed shards are rewritten (each over its old file), then finish."""
    images = make_images(19, (9, 7), "uint8", seed=4)
    store, fresh = tmp_path / "grown.zarr", tmp_path / "fresh.zarr"
    old = metadata_for(count=11)
    write_store(store, old, images[:11])
    kept = {name: os.stat(store / name).st_ino for name in files_of(store)}
    new = metadata_for(count=new_count)
    for shard in changed_shards(old, new):
        # A shard job knows the array only as far as its own last image.
        stop = min((shard + 1) * 4, new_count)
        as_far = metadata_for(count=stop)
        check_metadata(store, as_far, ignore_count=True)
        write_shard(store, metadata=as_far, shard=shard, images=images[shard * 4 : stop])
    removed = finish(store, new)
    assert removed == list(range(shard_count(new), shard_count(old)))
    write_store(fresh, new, images[:new_count])
    assert file_digests(store) == file_digests(fresh)
    for shard in range(shard_count(new)):
        if shard not in changed_shards(old, new):  # the very same files
            assert os.stat(store / f"c/{shard}/0/0").st_ino == kept[f"c/{shard}/0/0"]
    assert same_values(open_images(store)[:], images[:new_count])


def test_finish_removes_leftovers_past_the_end_and_refuses_another_array_or_a_missing_shard(tmp_path):
    images = make_images(11, (9, 7), "uint8")
    store = tmp_path / "images.zarr"
    write_store(store, metadata_for(count=11), images)
    leftover = store / "c" / "5" / "0" / f".0{PARTIAL_MARK}1234abcd"  # an interrupted write of a shard past the end
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half")
    before = file_digests(store)
    with pytest.raises(ImageError, match="attributes differ: seed absent vs 2"):
        finish(store, metadata_for(count=11, attributes={**ATTRIBUTES, "seed": 2}))
    with pytest.raises(ImageError, match=r"c/3/0/0: shard 3 of the array is missing"):
        finish(store, metadata_for(count=15))
    assert file_digests(store) == before
    assert finish(store, metadata_for(count=5)) == [2, 5]
    assert files_of(store) == ["c/0/0/0", "c/1/0/0", "zarr.json"]
    assert read_metadata(store) == metadata_for(count=5)
    empty = tmp_path / "empty.zarr"
    with pytest.raises(ImageError, match="shard 0 of the array is missing"):
        finish(empty, metadata_for(count=5))


# Threads ----------------------------------------------------------------------


def thread_count_job(limit, outcomes) -> None:
    """Read a zstd array of many images, with Zarr's threads limited to ``limit`` or not; report its pool threads.

    The shard is written first, in this thread (write_shard encodes without Zarr's pool).
    """
    import threading

    if limit is not None:
        zarrstore.limit_threads(limit)
    store = outcomes.get()
    metadata = metadata_for(count=64, image_shape=(32, 32), shard_images=64, compression="zstd")
    write_shard(store, metadata=metadata, shard=0, images=make_images(64, (32, 32), "uint8"))
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("zarr_pool")]
    finish(store, metadata)
    assert open_images(store)[:].shape == (64, 32, 32)
    pool = [thread.name for thread in threading.enumerate() if thread.name.startswith(("zarr_pool", "asyncio_"))]
    outcomes.put(len(pool))


@pytest.mark.parametrize("limit", [None, 1, 2])
def test_limit_threads_caps_the_threads_zarr_decodes_with(tmp_path, limit):
    outcomes = SPAWN.Queue()
    outcomes.put(str(tmp_path / "images.zarr"))
    job = SPAWN.Process(target=thread_count_job, args=(limit, outcomes))
    job.start()
    job.join(60)
    assert job.exitcode == 0
    threads = outcomes.get(timeout=5)
    if limit is None:
        assert threads > 2  # without a limit: asyncio's default pool, min(32, cores + 4) threads
    else:
        assert 1 <= threads <= limit
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="threads: "):
            zarrstore.limit_threads(bad)


# Reading and digests ----------------------------------------------------------


def test_reading_checks_the_index_and_the_store(tmp_path):
    store = tmp_path / "images.zarr"
    write_store(store, metadata_for(), make_images(11, (9, 7), "uint8"))
    array = open_images(store)
    reader = open_reader(store)
    for index in (-1, 11, 2.0, True):
        with pytest.raises(IndexError, match=r"is not in the array \(0\.\.10\)"):
            read_image(reader, index)
    assert read_image(reader, np.int64(10)).shape == (9, 7)
    for missing in (open_images, open_reader):
        with pytest.raises(FileNotFoundError, match="zarr.json: the array's metadata is missing"):
            missing(tmp_path / "missing.zarr")
    with pytest.raises(FileNotFoundError, match="zarr.json: the array's metadata is missing"):
        store_form(tmp_path / "missing.zarr")
    with pytest.raises(ValueError, match="read-only"):
        array[0] = 1


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_the_reader_reads_a_replaced_shard_anew(tmp_path, compression):
    images = make_images(11, (9, 7, 3), "uint16", seed=4)
    metadata = metadata_for(image_shape=(9, 7, 3), dtype="uint16", compression=compression)
    store = tmp_path / "images.zarr"
    write_store(store, metadata, images)
    reader = open_reader(store)
    assert same_values(read_image(reader, 5), images[5])
    other = make_images(4, (9, 7, 3), "uint16", seed=5)
    write_shard(store, metadata=metadata, shard=1, images=other)  # as a rerun of shard 1 does
    assert [same_values(read_image(reader, index), other[index - 4]) for index in range(4, 8)] == [True] * 4
    assert same_values(read_image(reader, 3), images[3]) and same_values(open_images(store)[5], other[1])


def test_a_damaged_or_missing_shard_file_is_named(tmp_path):
    store = tmp_path / "images.zarr"
    metadata = metadata_for(compression="zstd")
    write_store(store, metadata, make_images(11, (9, 7), "uint8"))
    first, second, third = (shard_file(store, shard=shard, image_shape=(9, 7)) for shard in range(3))
    data = bytearray(first.read_bytes())
    data[-3] ^= 0xFF  # the index's checksum
    first.write_bytes(bytes(data))
    data = bytearray(second.read_bytes())
    data[4:12] = bytes(8)  # inside image 4's zstd frame
    second.write_bytes(bytes(data))
    third.unlink()
    reader = open_reader(store)
    with pytest.raises(ImageError, match=rf"^{re.escape(str(first))}: the shard index is damaged"):
        read_image(reader, 0)
    with pytest.raises(ImageError, match=rf"^{re.escape(str(second))}: image 4 cannot be read"):
        read_image(reader, 4)
    with pytest.raises(FileNotFoundError) as missing:
        read_image(reader, 9)
    assert missing.value.filename == str(third)
    assert read_image(reader, 5).shape == (9, 7)  # the other images of a shard with a damaged one still read


def test_pixel_digest_is_the_sha256_of_the_c_order_bytes():
    image = make_images(1, (9, 7, 3), "uint16", seed=2)[0]
    assert pixel_digest(image) == hashlib.sha256(image.astype("<u2").tobytes(order="C")).hexdigest()
    assert pixel_digest(np.asfortranarray(image)) == pixel_digest(image)
    assert pixel_digest(image.astype(">u2")) == pixel_digest(image)  # the values, not their byte order in memory
    assert pixel_digest(image.astype(np.uint32)) != pixel_digest(image)
    assert pixel_digest(image.reshape(7, 9, 3)) == pixel_digest(image)  # only the bytes: the manifest keeps the shape


def test_shard_file_names_follow_zarrs_chunk_keys(tmp_path):
    assert shard_file(tmp_path, shard=7, image_shape=(9, 7)) == tmp_path / "c" / "7" / "0" / "0"
    assert shard_file(tmp_path, shard=0, image_shape=(9, 7, 3)) == tmp_path / "c" / "0" / "0" / "0" / "0"
