"""Dataset shards: the files, the manifest and their independence from how the work is split."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
from pixelflow.datasets.generators import generate_image
from pixelflow.datasets.shards import write_external_shard, write_generated_shard
from pixelflow.errors import ImageError
from pixelflow.formats import FORMATS, image_file_name
from pixelflow.io.images import decode_image, read_image, write_image
from pixelflow.io.manifest import (
    MANIFEST_COLUMNS,
    MANIFEST_NAME,
    image_shape,
    read_image_paths,
    read_manifest,
    read_manifests,
    write_manifest,
)
from pixelflow.runner import WorkerError


def spec(name="noise", generator="uniform", shape=(6, 5), dtype="uint8", fmt="png", seed=12, compression=0):
    return {
        "name": name,
        "generator": generator,
        "seed": seed,
        "shape": list(shape),
        "dtype": dtype,
        "format": fmt,
        "compression": compression,
    }


def image_bytes_by_index(folder: Path) -> dict[int, bytes]:
    return {row["index"]: Path(row["path"]).read_bytes() for row in read_manifest(folder)}


SPECS = [
    spec(),
    spec(name="ramp", generator="gaussian_ramp", shape=(4, 7), dtype="float32", fmt="tiff"),
    spec(name="rgb16", shape=(3, 4, 3), dtype="uint16", fmt="png", compression=6),
    spec(name="rgba", generator="gaussian_ramp", shape=(3, 4, 4), dtype="uint8", fmt="tiff"),
    spec(name="bitmap", shape=(5, 3, 3), fmt="bmp"),
]


@pytest.mark.parametrize("dataset", SPECS, ids=lambda s: s["name"])
def test_generated_shard_files_and_manifest(tmp_path, dataset):
    folder = tmp_path / "shard-0001"
    rows = write_generated_shard(folder, dataset, 10, 17, 1)
    expected_names = {image_file_name(dataset["name"], index, dataset["format"]) for index in range(10, 17)}
    assert {path.name for path in folder.iterdir()} == expected_names | {MANIFEST_NAME}
    assert all(name.endswith(FORMATS[dataset["format"]].suffix) for name in expected_names)
    assert [path.name for path in tmp_path.iterdir()] == ["shard-0001"]  # no partial left beside it

    manifest = read_manifest(folder)
    assert (folder / MANIFEST_NAME).read_text().splitlines()[0].split("\t") == list(MANIFEST_COLUMNS)
    assert [row["index"] for row in manifest] == list(range(10, 17))
    assert len(rows) == len(manifest)
    for row in manifest:
        data = Path(row["path"]).read_bytes()
        assert row["sha256"] == hashlib.sha256(data).hexdigest()
        image = decode_image(data, row["file"])
        assert image_shape(row) == image.shape == tuple(dataset["shape"])
        assert row["dtype"] == str(image.dtype) == dataset["dtype"]
        # Lossless formats: the file holds exactly the generated image.
        expected = generate_image(
            dataset["generator"], dataset["seed"], dataset["name"], row["index"], dataset["shape"], dataset["dtype"]
        )
        assert np.array_equal(image, expected)


def test_generated_images_do_not_depend_on_processes_or_shard_bounds(tmp_path):
    dataset = spec(name="split", generator="gaussian_ramp", shape=(9, 8, 3), dtype="uint16")
    whole_inline = write_generated_shard(tmp_path / "one-1", dataset, 0, 10, 1)
    write_generated_shard(tmp_path / "one-2", dataset, 0, 10, 2)
    write_generated_shard(tmp_path / "a", dataset, 0, 4, 2)
    write_generated_shard(tmp_path / "b", dataset, 4, 5, 1)
    write_generated_shard(tmp_path / "c", dataset, 5, 10, 2)
    reference = image_bytes_by_index(tmp_path / "one-1")
    assert sorted(reference) == list(range(10))
    assert image_bytes_by_index(tmp_path / "one-2") == reference
    pieces = {}
    for name in "abc":
        pieces.update(image_bytes_by_index(tmp_path / name))
    assert pieces == reference
    assert len(set(reference.values())) == 10
    # The manifests agree too (same digests, same forms).
    assert sorted(whole_inline) == [
        tuple(row[column] for column in MANIFEST_COLUMNS) for row in read_manifests([tmp_path / n for n in "abc"])
    ]


def test_generated_shard_replaces_an_existing_folder(tmp_path):
    folder = tmp_path / "shard-0000"
    folder.mkdir()
    (folder / "stale.png").write_bytes(b"old")
    write_generated_shard(folder, spec(), 0, 3, 1)
    assert "stale.png" not in {path.name for path in folder.iterdir()}
    assert len(read_manifest(folder)) == 3


def test_failed_generated_shard_leaves_no_folder(tmp_path):
    broken = spec(generator="no_such_generator")  # every image fails in its worker
    with pytest.raises(WorkerError, match=r"image [345] failed: ValueError: unknown generator 'no_such_generator'"):
        write_generated_shard(tmp_path / "shard-0000", broken, 3, 6, 2)
    assert list(tmp_path.iterdir()) == []


def test_a_format_that_cannot_hold_the_dtype_fails_before_any_image(tmp_path):
    with pytest.raises(ValueError, match=r"png cannot hold float32 pixels"):
        write_generated_shard(tmp_path / "shard-0000", spec(dtype="float32", fmt="png"), 0, 4, 2)
    assert list(tmp_path.iterdir()) == []


# External shards ----------------------------------------------------------------


def write_originals(folder: Path, count: int, shape=(5, 6, 3)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"photo_{index:02d}.png"
        write_image(path, generate_image("uniform", 0, "photos", index, shape, "uint8"))
        paths.append(path)
    return paths


@pytest.mark.parametrize("processes", [1, 2])
def test_external_shard_points_at_the_originals(tmp_path, processes):
    originals = write_originals(tmp_path / "inputs" / "photos", 6)
    folder = tmp_path / "results" / "photos" / "shard-0002"
    rows = write_external_shard(folder, originals, 20, processes, shape=[5, 6, 3], dtype="uint8")
    assert len(rows) == 6
    assert sorted(path.name for path in folder.iterdir()) == [MANIFEST_NAME]  # no copies of the images
    manifest = read_manifest(folder)
    assert [row["index"] for row in manifest] == list(range(20, 26))
    for row, original in zip(manifest, originals, strict=True):
        assert not Path(row["file"]).is_absolute()
        assert Path(row["path"]).resolve() == original.resolve()
        data = original.read_bytes()
        assert row["sha256"] == hashlib.sha256(data).hexdigest()
        image = read_image(row["path"])
        assert image_shape(row) == image.shape and row["dtype"] == str(image.dtype)


def test_external_shard_with_relative_paths_and_no_expectations(tmp_path, monkeypatch):
    originals = write_originals(tmp_path / "in", 3, shape=(4, 4))
    monkeypatch.chdir(tmp_path)
    write_external_shard(Path("out") / "shard-0000", [str(p.relative_to(tmp_path)) for p in originals], 0, 1)
    monkeypatch.chdir(tmp_path / "in")  # the manifest does not depend on the working directory
    for row, original in zip(read_manifest(tmp_path / "out" / "shard-0000"), originals, strict=True):
        assert Path(row["path"]).resolve() == original.resolve()
        assert image_shape(row) == (4, 4)


@pytest.mark.parametrize("processes", [1, 2])
def test_corrupt_external_file_is_named_and_no_shard_is_left(tmp_path, processes):
    originals = write_originals(tmp_path / "in", 6)
    originals[4].write_bytes(originals[4].read_bytes()[:60])  # truncated
    out = tmp_path / "out"
    with pytest.raises((WorkerError, ImageError)) as caught:
        write_external_shard(out / "shard-0000", originals, 0, processes)
    assert str(originals[4]) in str(caught.value)
    assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.parametrize(("shape", "dtype", "words"), [([5, 6], None, "shape"), (None, "uint16", "dtype")])
def test_external_file_of_the_wrong_form_is_named(tmp_path, shape, dtype, words):
    originals = write_originals(tmp_path / "in", 3)
    with pytest.raises((WorkerError, ImageError)) as caught:
        write_external_shard(tmp_path / "out" / "shard-0000", originals, 0, 1, shape=shape, dtype=dtype)
    assert str(originals[0]) in str(caught.value) and words in str(caught.value)
    assert not (tmp_path / "out" / "shard-0000").exists()


# Manifests ----------------------------------------------------------------------


def fake_shard(folder: Path, indexes) -> Path:
    folder.mkdir(parents=True)
    write_manifest(folder / MANIFEST_NAME, [(i, f"img_{i}.png", 2, 3, 1, "uint8", "0" * 64) for i in indexes])
    return folder


def test_read_manifests_orders_rows_across_shards(tmp_path):
    shards = [fake_shard(tmp_path / "s1", [5, 4, 3]), fake_shard(tmp_path / "s0", [0, 1, 2])]
    rows = read_manifests(shards)
    assert [row["index"] for row in rows] == list(range(6))
    assert Path(rows[0]["path"]) == tmp_path / "s0" / "img_0.png"
    assert image_shape(rows[0]) == (2, 3)


@pytest.mark.parametrize(
    "shard_indexes",
    [([0, 1], [3, 4]), ([1, 2],), ([0, 1], [1, 2]), ([0, 2],)],
    ids=["gap between shards", "missing zero", "duplicate", "gap inside"],
)
@pytest.mark.parametrize("reader", [read_manifests, read_image_paths])
def test_manifest_readers_reject_gaps_and_duplicates(tmp_path, shard_indexes, reader):
    shards = [fake_shard(tmp_path / f"s{k}", indexes) for k, indexes in enumerate(shard_indexes)]
    with pytest.raises(ValueError, match="expected"):
        reader(shards)


@pytest.mark.parametrize(
    "shard_indexes",
    [([0, 1, 2], [3, 4]), ([3, 4], [0, 1, 2]), ([2, 0, 1], [4, 3]), ([0, 2, 4], [1, 3]), ([], [0, 1])],
    ids=["in order", "shards reversed", "rows out of order", "interleaved shards", "an empty shard"],
)
def test_read_image_paths_agrees_with_read_manifests(tmp_path, shard_indexes):
    shards = [fake_shard(tmp_path / f"s{k}", indexes) for k, indexes in enumerate(shard_indexes)]
    rows = read_manifests(shards)
    paths, forms = read_image_paths(shards)
    assert paths == [row["path"] for row in rows]
    assert forms == [(rows[0]["path"], (2, 3), "uint8")]


def test_read_image_paths_lists_each_form_at_its_first_image(tmp_path):
    shard = tmp_path / "s0"
    shard.mkdir()
    forms = {0: (2, 3, 1, "uint8"), 1: (2, 3, 1, "uint8"), 2: (4, 3, 3, "uint8"), 3: (2, 3, 1, "uint16")}
    forms |= {4: forms[2], 5: forms[3]}
    write_manifest(shard / MANIFEST_NAME, [(i, f"img_{i}.png", *form, "0" * 64) for i, form in forms.items()])
    other = fake_shard(tmp_path / "s1", [6, 7])
    paths, listed = read_image_paths([other, shard])
    assert listed == [(paths[0], (2, 3), "uint8"), (paths[2], (4, 3, 3), "uint8"), (paths[3], (2, 3), "uint16")]


@pytest.mark.parametrize("reader", [read_manifest, lambda shard: read_image_paths([shard])])
@pytest.mark.parametrize("line", ["3\timg_3.png\t2\t3\t1\tuint8", "3\timg_3.png\t2\t3\t1\tuint8\tab\tcd"])
def test_a_line_with_a_wrong_field_count_is_named(tmp_path, reader, line):
    shard = fake_shard(tmp_path / "s0", [0, 1, 2])
    with open(shard / MANIFEST_NAME, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    with pytest.raises(ValueError, match=rf"{MANIFEST_NAME}: line 5 has {line.count(chr(9)) + 1} fields"):
        reader(shard)


def test_read_manifest_names_a_missing_manifest(tmp_path):
    (tmp_path / "empty-shard").mkdir()
    with pytest.raises(FileNotFoundError, match="empty-shard"):
        read_manifest(tmp_path / "empty-shard")


@pytest.mark.parametrize("processes", [1, 2])
def test_progress_counts_every_image_of_a_shard_once(tmp_path, processes):
    counts = []
    rows = write_generated_shard(tmp_path / "counted", spec(), 3, 12, processes, progress=counts.append)
    assert sum(counts) == 9 and all(count > 0 for count in counts)
    assert rows == write_generated_shard(tmp_path / "plain", spec(), 3, 12, processes)  # unchanged by counting
    files = [row["path"] for row in read_manifest(tmp_path / "plain")]
    counts = []
    checked = write_external_shard(tmp_path / "external", files, 3, processes, progress=counts.append)
    assert sum(counts) == len(files) == len(checked)
