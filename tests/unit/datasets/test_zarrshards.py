"""Zarr datasets: the pixels of a files dataset, a manifest per shard, shards rewritten alone when the count changes."""

import hashlib
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import zarr
from pixelflow.datasets.generators import generate_image
from pixelflow.datasets.shards import write_generated_shard
from pixelflow.datasets.zarrarray import FORMAT_VERSION, array_attributes, array_metadata, finish_store
from pixelflow.datasets.zarrshards import pack_zarr_shard, write_zarr_shard
from pixelflow.errors import ImageError
from pixelflow.io import zarrstore
from pixelflow.io.images import read_image
from pixelflow.io.manifest import MANIFEST_COLUMNS, read_manifests, write_dataset_index


def zarr_spec(name="noise", generator="uniform", shape=(6, 5), dtype="uint8", seed=12, compression="zstd", size=4):
    return {
        "name": name,
        "generator": generator,
        "seed": seed,
        "shape": list(shape),
        "dtype": dtype,
        "compression": compression,
        "shard_size": size,
    }


def write_dataset(folder: Path, spec: dict, count: int, shards=None) -> list[Path]:
    """Write the shards of ``count`` images (all, or the given numbers) as the shard jobs do, then finish the store."""
    size = spec["shard_size"]
    numbers = range(-(-count // size)) if shards is None else shards
    for shard in numbers:
        start = shard * size
        write_zarr_shard(
            folder / "images.zarr", folder / f"shard-{shard}" / "manifest.tsv", spec, start, min(start + size, count)
        )
    finish_store(folder / "images.zarr", spec, count)
    return [folder / f"shard-{shard}" for shard in range(-(-count // size))]


def file_digests(store: Path) -> dict[str, str]:
    return {
        path.relative_to(store).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(store.rglob("*"))
        if path.is_file()
    }


FILES_TWINS = [  # a zarr spec and the files format holding the same pixels
    (zarr_spec(), "png"),
    (zarr_spec(name="ramp", generator="gaussian_ramp", shape=(4, 7), dtype="float32", compression="none"), "tiff"),
    (zarr_spec(name="rgb16", shape=(3, 4, 3), dtype="uint16", compression="blosc"), "png"),
    (zarr_spec(name="rgba", generator="gaussian_ramp", shape=(3, 4, 4), compression="zstd"), "tiff"),
]


@pytest.mark.parametrize(
    ("spec", "fmt"), FILES_TWINS, ids=lambda value: value["name"] if isinstance(value, dict) else ""
)
def test_the_array_holds_the_pixels_of_a_files_dataset_of_the_same_spec(tmp_path, spec, fmt):
    write_dataset(tmp_path / "zarr", spec, 10)
    files = {key: spec[key] for key in ("name", "generator", "seed", "shape", "dtype")}
    write_generated_shard(tmp_path / "files", {**files, "format": fmt, "compression": 0}, 0, 10, 1)
    array = zarr.open_array(str(tmp_path / "zarr" / "images.zarr"), mode="r")
    assert array.shape == (10, *spec["shape"]) and array.dtype == np.dtype(spec["dtype"])
    decoded = np.stack([read_image(row["path"]) for row in read_manifests([tmp_path / "files"])])
    assert np.array_equal(array[:], decoded)
    drawn = [
        generate_image(spec["generator"], spec["seed"], spec["name"], i, spec["shape"], spec["dtype"])
        for i in range(10)
    ]
    assert np.array_equal(array[:], np.stack(drawn))
    assert array.attrs.asdict() == array_attributes(spec)


def test_the_arrays_values_are_the_same_for_any_shard_size(tmp_path):
    arrays = {}
    for size in (1, 3, 4, 10, 16):
        write_dataset(tmp_path / str(size), zarr_spec(shape=(4, 5, 3), size=size), 10)
        arrays[size] = zarr.open_array(str(tmp_path / str(size) / "images.zarr"), mode="r")
        assert arrays[size].shards == (size, 4, 5, 3)
    for size, array in arrays.items():
        assert np.array_equal(array[:], arrays[1][:]), size


def test_each_shard_has_a_manifest_of_its_images_with_their_pixel_digests(tmp_path):
    spec = zarr_spec(shape=(3, 4, 3), dtype="uint16")
    shard_dirs = write_dataset(tmp_path, spec, 10)
    lines = (shard_dirs[1] / "manifest.tsv").read_text().splitlines()
    assert lines[0].split("\t") == list(MANIFEST_COLUMNS)
    rows = read_manifests(shard_dirs)
    assert [row["index"] for row in rows] == list(range(10))
    array = zarrstore.open_images(tmp_path / "images.zarr")
    for row in rows:
        assert (row["file"], row["height"], row["width"], row["channels"], row["dtype"]) == (
            "../images.zarr",
            3,
            4,
            3,
            "uint16",
        )
        assert row["sha256"] == zarrstore.pixel_digest(array[row["index"]])
    # The dataset's index points at the store from its own folder.
    assert write_dataset_index(tmp_path / "manifest.tsv", shard_dirs) == 10
    index_rows = [line.split("\t") for line in (tmp_path / "manifest.tsv").read_text().splitlines()[1:]]
    assert {row[1] for row in index_rows} == {"images.zarr"}
    assert [row[6] for row in index_rows] == [row["sha256"] for row in rows]


def test_the_attributes_keep_the_generation_spec_and_format_version_but_not_the_count():
    spec = zarr_spec()
    attributes = array_attributes(spec)
    assert attributes == {
        "format_version": FORMAT_VERSION,
        "spec": {"name": "noise", "generator": "uniform", "seed": 12, "shape": [6, 5], "dtype": "uint8"},
    }
    assert array_metadata(spec, 10)["attributes"] == array_metadata(spec, 99)["attributes"]


@pytest.mark.parametrize(("old", "new"), [(10, 14), (10, 13), (10, 18), (10, 7), (10, 5), (10, 12)])
def test_a_new_count_rewrites_only_the_changed_shards_and_equals_a_store_written_anew(tmp_path, old, new):
    spec = zarr_spec(size=4)
    grown, fresh = tmp_path / "grown", tmp_path / "fresh"
    write_dataset(grown, spec, old)
    store = grown / "images.zarr"
    before = {name: os.stat(store / name).st_ino for name in file_digests(store) if name != "zarr.json"}
    changed = zarrstore.changed_shards(array_metadata(spec, old), array_metadata(spec, new))
    write_dataset(grown, spec, new, shards=changed)  # what the workflow reruns: the changed shards, then the index
    write_dataset(fresh, spec, new)
    assert file_digests(store) == file_digests(fresh / "images.zarr")
    for name, inode in before.items():
        shard = int(name.split("/")[1])
        if shard not in changed and shard < -(-new // 4):
            assert os.stat(store / name).st_ino == inode, f"{name} was rewritten"


def test_another_spec_is_refused_naming_the_difference_and_nothing_is_written(tmp_path):
    spec = zarr_spec()
    write_dataset(tmp_path, spec, 8)
    store = tmp_path / "images.zarr"
    before = file_digests(store)
    for changes, words in [
        ({"seed": 13}, "attributes differ: spec.seed 12 vs 13"),
        ({"compression": "none"}, "compression zstd"),
        ({"shard_size": 2}, "images per shard 4 vs 2"),
    ]:
        other = {**spec, **changes}
        with pytest.raises(ImageError, match=words):
            write_zarr_shard(store, tmp_path / "shard-0" / "manifest.tsv", other, 0, other["shard_size"])
        with pytest.raises(ImageError, match=words):
            finish_store(store, other, 8)
    assert file_digests(store) == before


@pytest.mark.parametrize(("start", "stop"), [(1, 4), (0, 5), (4, 4), (8, 7)])
def test_bounds_that_are_not_one_shard_are_refused(tmp_path, start, stop):
    with pytest.raises(ValueError, match="not one shard of 4 images"):
        write_zarr_shard(tmp_path / "images.zarr", tmp_path / "manifest.tsv", zarr_spec(), start, stop)
    assert not (tmp_path / "images.zarr").exists()


def test_progress_counts_every_image(tmp_path):
    counted = []
    write_zarr_shard(tmp_path / "images.zarr", tmp_path / "m.tsv", zarr_spec(), 4, 7, progress=counted.append)
    assert counted == [1, 1, 1]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["images.zarr", "m.tsv"]
    # The shard job writes its shard file alone: zarr.json is the index's.
    assert [
        path.relative_to(tmp_path).as_posix() for path in (tmp_path / "images.zarr").rglob("*") if path.is_file()
    ] == ["images.zarr/c/1/0/0"]


def external_spec(shape, dtype="uint8", size=3, compression="blosc"):
    return {
        "name": "photos",
        "path": "photos/*.png",
        "shape": list(shape),
        "dtype": dtype,
        "compression": compression,
        "shard_size": size,
    }


def write_photos(folder: Path, shapes, dtype=np.uint8) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(8)
    paths = []
    for number, shape in enumerate(shapes):
        path = folder / f"p{number:02d}.png"
        assert cv2.imwrite(str(path), rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype))
        paths.append(path)
    return paths


@pytest.mark.parametrize("threads", [1, 2])
def test_packed_files_hold_the_pixels_the_image_reader_gives(tmp_path, threads):
    paths = write_photos(tmp_path / "photos", [(5, 4, 3)] * 7, np.uint16)
    spec = external_spec((5, 4, 3), "uint16")
    store = tmp_path / "images.zarr"
    for shard in range(3):
        start = shard * 3
        rows = pack_zarr_shard(
            store, tmp_path / f"shard-{shard}" / "manifest.tsv", spec, paths[start : start + 3], start, threads
        )
        assert [row[0] for row in rows] == list(range(start, min(start + 3, 7)))
    finish_store(store, spec, 7)
    array = zarr.open_array(str(store), mode="r")
    assert array.shape == (7, 5, 4, 3) and array.dtype == np.uint16
    assert array.attrs["spec"]["path"] == "photos/*.png" and "generator" not in array.attrs["spec"]
    for index, path in enumerate(paths):
        assert np.array_equal(array[index], read_image(path))
    for row in read_manifests([tmp_path / f"shard-{shard}" for shard in range(3)]):
        assert row["sha256"] == zarrstore.pixel_digest(read_image(paths[row["index"]]))


def test_a_file_of_another_form_is_named_and_nothing_of_its_shard_is_written(tmp_path):
    paths = write_photos(tmp_path / "photos", [(5, 4), (5, 4), (5, 4), (5, 4), (4, 5), (5, 4, 3)])
    spec = external_spec((5, 4))
    store = tmp_path / "images.zarr"
    pack_zarr_shard(
        store, tmp_path / "shard-0" / "manifest.tsv", spec, paths[:3], 0, origin="its first file p00.png is"
    )
    before = file_digests(store)
    with pytest.raises(ImageError) as caught:
        pack_zarr_shard(
            store, tmp_path / "shard-1" / "manifest.tsv", spec, paths[3:], 3, origin="its first file p00.png is"
        )
    message = str(caught.value)
    assert message.startswith(
        f"{paths[4]}: image 4 of datasets.photos is 4x5 uint8, not 5x4 uint8 as its first file p00.png is"
    )
    assert file_digests(store) == before  # shard 1's file was not written, shard 0's is untouched
    assert not (tmp_path / "shard-1" / "manifest.tsv").exists()
    with pytest.raises(ImageError, match="p99.png"):
        pack_zarr_shard(store, tmp_path / "shard-1" / "manifest.tsv", spec, [tmp_path / "p99.png"], 3)
    assert file_digests(store) == before
