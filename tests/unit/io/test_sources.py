"""The shared reader: a file as the image reader gives it, an image of a zarr array as Zarr gives it."""

import cv2
import numpy as np
import pytest
import zarr
from pixelflow.datasets.zarrarray import finish_store
from pixelflow.datasets.zarrshards import write_zarr_shard
from pixelflow.errors import ImageError
from pixelflow.io.images import read_image
from pixelflow.io.manifest import read_manifest, read_manifests
from pixelflow.io.sources import array_source, read_source, split_source

SPEC = {
    "name": "noise",
    "generator": "uniform",
    "seed": 3,
    "shape": [5, 6, 3],
    "dtype": "uint16",
    "compression": "zstd",
    "shard_size": 4,
}


def test_a_source_names_a_file_or_an_image_of_an_array():
    assert array_source("results/datasets/a/images.zarr", 17) == "results/datasets/a/images.zarr[17]"
    assert split_source("results/datasets/a/images.zarr[17]") == ("results/datasets/a/images.zarr", 17)
    for file in ("photos/a.png", "photos/a.zarr", "a[1].png", "b.zarr[x]", "c.zarr[1]/d.png"):
        assert split_source(file) is None


def test_a_file_is_read_as_the_image_reader_reads_it(tmp_path):
    image = np.random.default_rng(1).integers(0, 255, (7, 9, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), image)
    assert np.array_equal(read_source(tmp_path / "a.png"), read_image(tmp_path / "a.png"))
    with pytest.raises(ImageError, match="missing.png"):
        read_source(tmp_path / "missing.png")


def test_manifest_rows_of_a_zarr_dataset_read_the_arrays_images(tmp_path):
    store = tmp_path / "images.zarr"
    for shard in range(3):
        start = shard * 4
        write_zarr_shard(store, tmp_path / f"shard-{shard}" / "manifest.tsv", SPEC, start, min(start + 4, 10))
    finish_store(store, SPEC, 10)
    expected = zarr.open_array(str(store), mode="r")[:]
    rows = read_manifests([tmp_path / f"shard-{shard}" / "manifest.tsv" for shard in range(3)])
    assert [row["path"] for row in rows] == [
        array_source(f"{tmp_path}/shard-{row['index'] // 4}/../images.zarr", row["index"]) for row in rows
    ]
    for row in rows:
        assert np.array_equal(read_source(row["path"]), expected[row["index"]])
    # A shard folder and its manifest file are the same listing.
    assert read_manifest(tmp_path / "shard-1") == read_manifest(tmp_path / "shard-1" / "manifest.tsv")
    with pytest.raises(IndexError, match="not in the array"):
        read_source(array_source(store, 10))
    with pytest.raises(FileNotFoundError, match="zarr.json"):
        read_source(array_source(tmp_path / "other.zarr", 0))
