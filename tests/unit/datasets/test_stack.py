"""Stacks: one .npy array equal to the dataset's images in index order, or nothing at all."""

import numpy as np
import pytest
from pixelflow.datasets.shards import write_generated_shard
from pixelflow.datasets.stack import (
    BLOCK_BYTES,
    WRITE_MODES,
    build_stack,
    stack_layout,
    stack_write_mode,
    write_array_stack,
)
from pixelflow.io.images import ImageError, read_image, write_image
from pixelflow.io.manifest import read_image_paths, read_manifests
from pixelflow.runner import WorkerError


def make_dataset(folder, name, shape, dtype, fmt, counts, generator="uniform", start=0):
    """Shards of ``counts`` images each, from index ``start``; returns the shard folders."""
    spec = {
        "name": name,
        "generator": generator,
        "seed": 3,
        "shape": list(shape),
        "dtype": dtype,
        "format": fmt,
        "compression": 0,
    }
    shards = []
    for count in counts:
        shard = folder / f"shard-{len(shards):04d}"
        write_generated_shard(shard, spec, start, start + count, 1)
        shards.append(shard)
        start += count
    return shards


@pytest.mark.parametrize(
    ("shape", "dtype", "fmt"),
    [
        ((7, 5), "uint8", "png"),
        ((4, 6, 3), "uint16", "png"),
        ((3, 5, 4), "uint16", "tiff"),
        ((6, 4), "float32", "tiff"),
    ],
)
@pytest.mark.parametrize(("processes", "block_bytes"), [(1, BLOCK_BYTES), (2, 4096), (2, 8192)])
@pytest.mark.parametrize("writes", WRITE_MODES)
def test_stack_equals_the_images_in_index_order(tmp_path, shape, dtype, fmt, processes, block_bytes, writes):
    # 120 images: several blocks of 4 KiB, with images cut at block edges
    shards = make_dataset(tmp_path / "data", "stackme", shape, dtype, fmt, [40, 30, 50], generator="gaussian_ramp")
    output = tmp_path / "stack.npy"
    # shard order does not matter, indexes do
    returned = build_stack(output, list(reversed(shards)), processes, block_bytes=block_bytes, writes=writes)
    stack = np.load(output)
    expected = np.stack([read_image(row["path"]) for row in read_manifests(shards)])
    assert returned == stack.shape == expected.shape == (120, *shape)
    assert stack.dtype == np.dtype(dtype)
    assert np.array_equal(stack, expected)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data", "stack.npy"]


@pytest.mark.parametrize("count", [1, 2, 409, 410, 411])
def test_the_file_is_exactly_what_numpy_saves(tmp_path, count):
    # 10-byte images: the data ends before, at or after a 4 KiB edge, so direct writes pad and truncate
    shards = make_dataset(tmp_path / "data", "exact", (2, 5), "uint8", "png", [count])
    build_stack(tmp_path / "stack.npy", shards, 2, block_bytes=4096, writes="direct")
    np.save(tmp_path / "saved.npy", np.stack([read_image(row["path"]) for row in read_manifests(shards)]))
    assert (tmp_path / "stack.npy").read_bytes() == (tmp_path / "saved.npy").read_bytes()


def test_the_write_mode_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("PIXELFLOW_STACK_WRITES", raising=False)
    assert stack_write_mode() == "direct"
    monkeypatch.setenv("PIXELFLOW_STACK_WRITES", "buffered")
    assert stack_write_mode() == "buffered"
    monkeypatch.setenv("PIXELFLOW_STACK_WRITES", "mmap")
    with pytest.raises(ValueError, match="PIXELFLOW_STACK_WRITES"):
        stack_write_mode()


def test_mixed_shapes_name_the_first_misfit_and_leave_nothing(tmp_path):
    shards = make_dataset(tmp_path / "a", "mixed", (8, 8), "uint8", "png", [3])
    shards += make_dataset(tmp_path / "b", "mixed", (8, 9), "uint8", "png", [3], start=3)
    rows = read_manifests(shards)
    output = tmp_path / "out" / "stack.npy"
    with pytest.raises(ImageError) as caught:
        build_stack(output, shards, 2)
    message = str(caught.value)
    assert str(rows[3]["path"]) in message  # the first image of another shape
    assert str(rows[4]["path"]) not in message and str(rows[5]["path"]) not in message
    assert not output.exists()
    assert not output.parent.exists() or list(output.parent.iterdir()) == []


def test_mixed_dtypes_are_rejected_too(tmp_path):
    shards = make_dataset(tmp_path / "a", "mixed", (4, 4), "uint8", "png", [2])
    shards += make_dataset(tmp_path / "b", "mixed", (4, 4), "uint16", "png", [2], start=2)
    rows = read_manifests(shards)
    with pytest.raises(ImageError, match=str(rows[2]["path"])):
        stack_layout(*read_image_paths(shards))


@pytest.mark.parametrize("processes", [1, 2])
def test_an_image_changed_after_its_manifest_fails_and_leaves_no_stack(tmp_path, processes):
    shards = make_dataset(tmp_path / "data", "changed", (5, 5), "uint8", "png", [6])
    rows = read_manifests(shards)
    write_image(rows[4]["path"], np.zeros((5, 6), np.uint8))  # same name, other shape
    output = tmp_path / "stack.npy"
    with pytest.raises((WorkerError, ImageError)) as caught:
        build_stack(output, shards, processes, block_bytes=4096)
    assert str(rows[4]["path"]) in str(caught.value)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data"]  # no stack.npy, no partial


def test_an_empty_dataset_cannot_be_stacked(tmp_path):
    with pytest.raises(ValueError, match="no images"):
        build_stack(tmp_path / "stack.npy", [], 2)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("processes", "block_bytes"), [(1, 4096), (2, 4096), (3, 8192), (2, BLOCK_BYTES)])
def test_progress_gives_the_total_then_counts_every_image_once(tmp_path, processes, block_bytes):
    # 105-byte images: most blocks end inside an image, which counts with the block that ends it
    shards = make_dataset(tmp_path / "data", "counted", (7, 5, 3), "uint8", "png", [40, 30, 50])
    calls = []

    def progress(count, total=None):
        calls.append((count, total))

    build_stack(tmp_path / "counted.npy", shards, processes, block_bytes=block_bytes, progress=progress)
    assert calls[0] == (0, 120)
    assert all(count > 0 and total is None for count, total in calls[1:])
    assert sum(count for count, _ in calls) == 120
    build_stack(tmp_path / "plain.npy", shards, processes, block_bytes=block_bytes)
    assert (tmp_path / "counted.npy").read_bytes() == (tmp_path / "plain.npy").read_bytes()


@pytest.mark.parametrize(("shape", "dtype"), [((7, 5), "uint8"), ((3, 4, 3), "uint16"), ((6, 4), ">f4")])
@pytest.mark.parametrize("batch_bytes", [1, 100, BLOCK_BYTES])
def test_an_array_stack_is_exactly_what_numpy_saves(tmp_path, shape, dtype, batch_bytes):
    images = np.random.default_rng(1).integers(0, 200, (11, *shape)).astype(dtype)
    counted = []
    returned = write_array_stack(
        tmp_path / "stack.npy",
        images,
        batch_bytes=batch_bytes,
        progress=lambda n, total=None: counted.append((n, total)),
    )
    native = images.astype(np.dtype(dtype).newbyteorder("="))
    np.save(tmp_path / "saved.npy", native)
    assert returned == images.shape
    assert (tmp_path / "stack.npy").read_bytes() == (tmp_path / "saved.npy").read_bytes()
    assert counted[0] == (0, 11) and sum(n for n, _ in counted) == 11
    assert sorted(path.name for path in tmp_path.iterdir()) == ["saved.npy", "stack.npy"]


def test_an_empty_array_cannot_be_stacked(tmp_path):
    with pytest.raises(ValueError, match="no images"):
        write_array_stack(tmp_path / "stack.npy", np.zeros((0, 4, 4), np.uint8))
    assert not (tmp_path / "stack.npy").exists()
