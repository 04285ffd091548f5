"""Zarr datasets through every stage: a folder of photos packed into an array, and a generated array, read
by the montage, a filter pipeline, the stats and a mosaic library exactly as the same images kept as files.

Two real `snakemake` runs of one config differ only in the datasets' ``storage``; every result computed
from the images must be the same, and only the columns that name where an image is kept may differ.
"""

import copy
import re
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import zarr
from conftest import REPORT_TABLE, partial_entries, planned_jobs, run_ok, run_snakemake, sha256_file, write_config

pytestmark = pytest.mark.slow

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from pixelflow.io.images import read_image  # noqa: E402

PHOTOS = 7  # in shards of 3: two full shards and a short one

STAGES_CONFIG = {
    "seed": 5,
    "shard_size": 3,
    "max_threads": 2,
    "montage": {"count": 5, "cell": 8},
    "datasets": {
        "photos": {"path": "photos/*.png"},
        "noise": {"generator": "uniform", "count": 8, "shape": [12, 12], "dtype": "uint8"},
    },
    "pipelines": {
        "smooth": {
            "dataset": "photos",
            "steps": [{"op": "rgb2gray"}, {"op": "gaussian", "sigma": 1.5}],
            "metrics": ["mean", "var"],
            "save": "tiff",
            "contact": 3,
        },
        "edges": {"dataset": "noise", "steps": [{"op": "sobel"}], "metrics": ["mean"], "save": "png"},
    },
    "stats": {"datasets": ["photos", "noise"], "sigmas": [1.0]},
    "libraries": {"tiles": {"dataset": "photos", "cut": True}},
    "mosaics": {"poster": {"target": "photos/p03.png", "library": "tiles", "tile": 4}},
}


def stages_config(storage: str, **zarr_keys) -> dict:
    config = copy.deepcopy(STAGES_CONFIG)
    for spec in config["datasets"].values():
        spec["storage"] = storage
        if storage == "zarr":
            spec.update(zarr_keys)
    return config


def write_photos(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(11)
    for number in range(PHOTOS):
        base = rng.integers(0, 256, (4, 5, 3)).astype(np.uint8)
        photo = cv2.resize(base, (20, 16), interpolation=cv2.INTER_LINEAR)  # smooth, so that the filters matter
        assert cv2.imwrite(str(folder / f"p{number:02d}.png"), photo)


def results(workdir: Path, folder: str, by_number: bool = False) -> dict[str, str]:
    """{path: sha256} of the files under results/<folder>; ``by_number`` names a dataset's shards by number alone.

    A files dataset's shards are named shard-0001, a zarr dataset's shard-1 (as its array numbers them).
    """
    root = workdir / "results" / folder
    return {
        re.sub(r"shard-0*(\d)", r"shard-\1", path.relative_to(root).as_posix())
        if by_number
        else path.relative_to(root).as_posix(): sha256_file(path)
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != ".snakemake_timestamp"
    }


def table(path: Path, skip: tuple = ()) -> list[list[str]]:
    """A TSV's rows without the columns named in ``skip``."""
    header, *rows = [line.split("\t") for line in path.read_text().splitlines()]
    keep = [number for number, name in enumerate(header) if name not in skip]
    return [[header[number] for number in keep]] + [[row[number] for number in keep] for row in rows]


@pytest.fixture(scope="module")
def stage_runs(tmp_path_factory):
    """The config run with storage files, and with storage zarr (photos zstd, noise blosc), in two folders."""
    runs = {}
    for storage in ("files", "zarr"):
        workdir = tmp_path_factory.mktemp(f"stages-{storage}")
        write_photos(workdir / "photos")
        config = stages_config(storage, compression="zstd")
        if storage == "zarr":
            config["datasets"]["noise"]["compression"] = "blosc"
        run_ok(workdir, config)
        runs[storage] = workdir
    return runs


def test_the_photos_are_packed_into_one_array_of_the_readers_pixels(stage_runs):
    folder = stage_runs["zarr"] / "results" / "datasets" / "photos"
    array = zarr.open_array(str(folder / "images.zarr"), mode="r")
    photos = sorted((stage_runs["zarr"] / "photos").glob("*.png"))
    assert array.shape == (PHOTOS, 16, 20, 3) and array.dtype == np.uint8
    assert np.array_equal(array[:], np.stack([read_image(path) for path in photos]))
    written = sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())
    shards = [f"images.zarr/c/{k}/0/0/0" for k in range(3)] + [f"shard-{k}/manifest.tsv" for k in range(3)]
    assert written == sorted([*shards, "images.zarr/zarr.json", "manifest.tsv", "montage.png"])


def test_every_stage_reads_a_zarr_dataset_as_it_reads_the_same_images_as_files(stage_runs):
    files, packed = stage_runs["files"], stage_runs["zarr"]
    # The montage of the photos, and the pipelines' saved images and their manifests.
    for name in ("photos", "noise"):
        assert sha256_file(files / f"results/datasets/{name}/montage.png") == sha256_file(
            packed / f"results/datasets/{name}/montage.png"
        )
    for pipeline in ("smooth", "edges"):
        outputs = {path: digest for path, digest in results(files, "datasets").items() if path.startswith(pipeline)}
        assert len(outputs) > 6
        images = {path: digest for path, digest in outputs.items() if not path.endswith("/metrics.tsv")}
        assert {path: results(packed, "datasets")[path] for path in images} == images
        for path in set(outputs) - set(images):  # a shard's metrics name its input: a file, or a place in an array
            shard = Path("results/datasets", path)
            assert table(files / shard, skip=("file",)) == table(packed / shard, skip=("file",))
        # Metrics and summaries: the same numbers; only the column naming the input file differs.
        metrics = Path("results/pipelines", pipeline, "metrics.tsv")
        assert table(files / metrics, skip=("file",)) == table(packed / metrics, skip=("file",))
        for name in ("summary.tsv", "contact.png"):
            path = Path("results/pipelines", pipeline, name)
            if (files / path).exists():
                assert sha256_file(files / path) == sha256_file(packed / path), path
    # The stats: filtered images and every number of the shard tables and summaries.
    stats_files, stats_packed = results(files, "stats", by_number=True), results(packed, "stats", by_number=True)
    assert stats_files.keys() == stats_packed.keys() and len(stats_files) > 20
    for path, digest in stats_files.items():
        if "/shards/" in path:
            continue  # below
        if path.endswith(".tsv"):  # the tables name each image: a file, or its place in an array
            assert table(files / "results/stats" / path, skip=("file",)) == table(
                packed / "results/stats" / path, skip=("file",)
            )
        else:
            assert stats_packed[path] == digest, path
    assert table(packed / "results/stats/photos/summary.tsv")[5][:2] == ["4", "images.zarr[4]"]
    for name in ("photos", "noise"):
        folder_files = files / f"results/stats/{name}/shards"
        rows_files = [table(path, skip=("file",)) for path in sorted(folder_files.glob("*.tsv"))]
        rows_packed = [
            table(path, skip=("file",)) for path in sorted((packed / f"results/stats/{name}/shards").glob("*.tsv"))
        ]
        assert rows_files == rows_packed and len(rows_files) == 3
    # The mosaic library's tiles and the mosaic made from them.
    with (
        np.load(files / "results/mosaics/libraries/tiles-4px.npz") as a,
        np.load(packed / "results/mosaics/libraries/tiles-4px.npz") as b,
    ):
        assert np.array_equal(a["tiles"], b["tiles"]) and len(a["tiles"]) > 20
    assert sha256_file(files / "results/mosaics/poster.png") == sha256_file(packed / "results/mosaics/poster.png")
    assert partial_entries(packed) == []


def test_an_edited_photo_reruns_its_shard_and_what_reads_that_shard_only(stage_runs, tmp_path):
    workdir = tmp_path / "work"
    shutil.copytree(stage_runs["zarr"], workdir, symlinks=True)
    packed = copy.deepcopy(stages_config("zarr", compression="zstd"))
    packed["datasets"]["noise"]["compression"] = "blosc"
    config = write_config(tmp_path / "config.yaml", packed)
    assert planned_jobs(run_ok(workdir, config, "-n")) == {}
    photo = cv2.imread(str(workdir / "photos" / "p04.png"))
    assert cv2.imwrite(str(workdir / "photos" / "p04.png"), 255 - photo)  # image 4: shard 1
    plan = planned_jobs(run_ok(workdir, config, "-n"))
    rules = {output: rule for output, rule in plan.items() if output != REPORT_TABLE}
    shard_jobs = {
        output
        for output, rule in rules.items()
        if rule in ("dataset_zarr_shard_colour", "pipeline_shard", "stats_shard")
    }
    assert shard_jobs == {
        "results/datasets/photos/images.zarr/c/1/0/0/0",
        "results/datasets/smooth/shard-0001",
        "results/stats/photos/shards/shard-1.tsv",
    }
    assert "results/mosaics/libraries/tiles-4px.npz" in rules  # the library holds every photo
    assert not any(output.startswith("results/datasets/noise") or "edges" in output for output in rules)
    run_ok(workdir, config)
    array = zarr.open_array(str(workdir / "results/datasets/photos/images.zarr"), mode="r")
    assert np.array_equal(array[4], read_image(workdir / "photos" / "p04.png"))
    assert planned_jobs(run_ok(workdir, config, "-n")) == {}


def test_a_photo_of_another_shape_is_named_and_the_array_is_kept(stage_runs, tmp_path):
    workdir = tmp_path / "work"
    shutil.copytree(stage_runs["zarr"], workdir, symlinks=True)
    store = workdir / "results/datasets/photos/images.zarr"
    before = {path: sha256_file(path) for path in store.rglob("*") if path.is_file()}
    assert cv2.imwrite(str(workdir / "photos" / "p05.png"), np.zeros((16, 21, 3), np.uint8))
    packed = stages_config("zarr", compression="zstd")
    packed["datasets"]["noise"]["compression"] = "blosc"
    returncode, output = run_snakemake(workdir, packed)
    assert returncode != 0
    assert "photos/p05.png: image 5 of datasets.photos is 16x21x3 uint8, not 16x20x3 uint8 as its first file" in output
    assert not (store / "c" / "1").exists()  # shard 1 is not half-written; Snakemake removed its old file
    assert {path: sha256_file(path) for path in store.rglob("*") if path.is_file() and "/c/1/" not in str(path)} == {
        path: digest for path, digest in before.items() if "/c/1/" not in str(path)
    }
    assert partial_entries(workdir) == []
