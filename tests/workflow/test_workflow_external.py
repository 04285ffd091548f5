"""External datasets: shards check existing images in place and point at them."""

import math
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from conftest import (
    MANIFEST_COLUMNS,
    decode_rgb,
    dry_run_plan,
    partial_entries,
    plan_after_shard_change,
    planned_jobs,
    read_dataset_index,
    read_manifests,
    run_ok,
    sha256_file,
    without_report,
    write_config,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def external_run(tmp_path_factory):
    """Photos (PNG and JPEG, inside the working folder) and grey 16-bit scans (outside it, by absolute glob)."""
    root = tmp_path_factory.mktemp("external")
    workdir = root / "work"
    rng = np.random.default_rng(11)
    photos = []
    for index in range(5):
        suffix = ".jpg" if index % 2 else ".png"
        path = workdir / "inputs" / f"photo_{index}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        # Smooth content so that JPEG keeps it recognisable; pixels are BGR for OpenCV.
        image = cv2.GaussianBlur(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8), (5, 5), 0)
        assert cv2.imwrite(str(path), image)
        photos.append(path)
    scans = []
    for index in range(3):
        path = root / "elsewhere" / f"scan_{index}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(path), rng.integers(0, 65536, (5, 6), dtype=np.uint16))
        scans.append(path)
    config = {
        "shard_size": 2,
        "max_threads": 2,
        "montage": {"count": 3, "cell": 8},
        "datasets": {
            "photos": {"path": "inputs/photo_*"},
            "scans": {"path": str(root / "elsewhere" / "scan_*.png"), "dtype": "uint16", "shape": [5, 6]},
        },
    }
    configfile = write_config(workdir / "run.yaml", config)
    output = run_ok(workdir, configfile)
    originals = {"photos": sorted(photos), "scans": sorted(scans)}
    return workdir, configfile, originals, output


@pytest.mark.parametrize("name", ["photos", "scans"])
def test_manifest_points_at_the_originals(external_run, name):
    workdir, _, originals, _ = external_run
    dataset = workdir / "results" / "datasets" / name
    shards = sorted(path.name for path in dataset.glob("shard-*"))
    assert shards == [f"shard-{k:04d}" for k in range((len(originals[name]) + 1) // 2)]
    for shard in shards:
        lines = (dataset / shard / "manifest.tsv").read_text(encoding="utf-8").splitlines()
        assert lines[0].split("\t") == MANIFEST_COLUMNS
        # Nothing is copied: the shard folder holds only its manifest.
        assert {path.name for path in (dataset / shard).iterdir()} - {".snakemake_timestamp"} == {"manifest.tsv"}
    rows = read_manifests(dataset)
    assert [int(row["index"]) for row in rows] == list(range(len(originals[name])))
    for row, original in zip(rows, originals[name], strict=True):
        assert not os.path.isabs(row["file"]), row["file"]
        assert row["path"].resolve() == original.resolve()
        assert row["sha256"] == sha256_file(original)
        image = decode_rgb(original)
        assert (int(row["height"]), int(row["width"])) == image.shape[:2]
        assert int(row["channels"]) == (1 if image.ndim == 2 else image.shape[2])
        assert row["dtype"] == str(image.dtype)


@pytest.mark.parametrize("name", ["photos", "scans"])
def test_dataset_manifest_points_at_the_originals_in_index_order(external_run, name):
    workdir, _, originals, _ = external_run
    dataset = workdir / "results" / "datasets" / name
    header, rows = read_dataset_index(dataset)
    assert header == MANIFEST_COLUMNS
    assert [int(row["index"]) for row in rows] == list(range(len(originals[name])))
    shard_rows = read_manifests(dataset)
    for row, shard_row, original in zip(rows, shard_rows, originals[name], strict=True):
        # Relative to the dataset folder, also for the scans outside the working folder.
        assert not os.path.isabs(row["file"]), row["file"]
        assert row["path"].resolve() == original.resolve()
        assert row["sha256"] == sha256_file(original)
        assert {key: row[key] for key in MANIFEST_COLUMNS if key != "file"} == {
            key: shard_row[key] for key in MANIFEST_COLUMNS if key != "file"
        }


@pytest.mark.parametrize("name", ["photos", "scans"])
def test_stack_equals_the_decoded_originals(external_run, name):
    workdir, _, originals, _ = external_run
    stack = np.load(workdir / "results" / "datasets" / name / "stack.npy")
    expected = np.stack([decode_rgb(path) for path in originals[name]])
    assert stack.dtype == expected.dtype
    np.testing.assert_array_equal(stack, expected)


def test_montages_and_no_leftovers(external_run):
    workdir, configfile, _, _ = external_run
    for name in ("photos", "scans"):
        montage = decode_rgb(workdir / "results" / "datasets" / name / "montage.png")
        assert montage.ndim == 3 and montage.dtype == np.uint8
    assert partial_entries(workdir) == []
    assert dry_run_plan(workdir, configfile) == {}


@pytest.mark.parametrize("position", [3, 4])
def test_editing_an_original_replans_its_shard_and_dependents(external_run, tmp_path, position):
    workdir, configfile, originals, output = external_run
    config = yaml.safe_load(Path(configfile).read_text(encoding="utf-8"))
    copy = tmp_path / "work"
    shutil.copytree(workdir, copy, symlinks=True)
    configfile = copy / Path(configfile).name
    assert dry_run_plan(copy, configfile) == {}
    # Image `position` of "photos" lives in shard position // shard_size; the
    # montage shows the first images, i.e. the first few shards only.
    size = config["shard_size"]
    shard = f"shard-{position // size:04d}"
    shown = min(config["montage"]["count"], len(originals["photos"]))
    montage_shards = [f"shard-{k:04d}" for k in range(math.ceil(shown / size))]
    photo = copy / originals["photos"][position].relative_to(workdir)
    image = cv2.imread(str(photo))
    assert cv2.imwrite(str(photo), 255 - image)
    assert without_report(dry_run_plan(copy, configfile)) == plan_after_shard_change("photos", shard, montage_shards)
    # The run itself planned every job of both datasets.
    assert {job.split("/")[2] for job in without_report(planned_jobs(output))} == {"photos", "scans"}
