"""Per-image statistics, shard outputs and the variance theory check."""

import math
from pathlib import Path

import numpy as np
import pytest
from pixelflow.atomic import PARTIAL_MARK
from pixelflow.benchtable import read_benchmarks, write_benchmark_table
from pixelflow.datasets.shards import write_generated_shard as write_generated_dataset_shard
from pixelflow.formats import FORMATS
from pixelflow.io.images import read_image, write_image
from pixelflow.io.manifest import read_manifest
from pixelflow.pipelines import filters
from pixelflow.runner import WorkerError
from pixelflow.stats import tables as stats_tables
from pixelflow.stats import variance

SETTINGS = {"sigmas": [1.0, 2.5], "truncate": 4.0, "mode": "reflect", "save_filtered": "bmp"}


def test_moments_match_numpy():
    image = np.random.default_rng(1).normal(0.3, 0.1, (17, 23, 3)).astype(np.float32)
    mean, var, low, high = variance.moments(image)
    assert mean == pytest.approx(float(np.mean(image, dtype=np.float64)), rel=1e-9)
    assert var == pytest.approx(float(np.var(image, dtype=np.float64)), rel=1e-6)
    assert (low, high) == (float(image.min()), float(image.max()))


def test_interior_is_the_part_the_borders_cannot_reach():
    image = np.random.default_rng(2).random((30, 40), dtype=np.float32)
    assert variance.interior_variance(image, 5) == pytest.approx(float(np.var(image[5:25, 5:35])), rel=1e-6)
    assert math.isnan(variance.interior_variance(image, 15))


def noise_rows(sigmas, count, mean, sd, size=256, seed=5):
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(count):
        image = rng.normal(mean, sd, (size, size)).astype(np.float32)
        image_rows, _ = variance.image_rows(index, f"{index}.tif", image, sigmas, 4.0, "reflect")
        rows += [dict(zip(stats_tables.COLUMNS, row, strict=True)) for row in image_rows]
    return rows


def test_theory_ratio_holds_for_unclipped_independent_noise():
    # 20 images of 256²: the ratio's standard error is about 1.5 % for σ = 3, less for smaller σ.
    sigmas = [1.5, 3.0]
    rows = noise_rows(sigmas, 20, 0.5, 0.05)
    checks = stats_tables.theory_rows(rows, sigmas, 4.0)
    table = {row[0]: dict(zip(stats_tables.THEORY_COLUMNS, row, strict=True)) for row in checks}
    for sigma in sigmas:
        check = table[sigma]
        assert check["images"] == 20
        assert check["predicted_continuous"] == pytest.approx(1 / (4 * math.pi * sigma**2))
        weights = filters.gaussian_kernel(sigma, 4.0)
        assert check["predicted_discrete"] == pytest.approx(float(np.sum(weights**2)) ** 2)
        assert check["measured_ratio"] == pytest.approx(check["predicted_continuous"], rel=0.06)
        assert check["measured_ratio"] == pytest.approx(check["predicted_discrete"], rel=0.06)
        assert check["error_vs_discrete"] == pytest.approx(check["measured_ratio"] / check["predicted_discrete"] - 1)


def test_theory_leaves_out_clipped_images():
    rows = noise_rows([2.0], 3, 0.0, 0.05, size=64)  # half of every image sits at or below 0
    (check,) = stats_tables.theory_rows(rows, [2.0], 4.0)
    assert all(row["clipped_in"] > 0.4 for row in rows)
    assert check[2] == 0 and math.isnan(check[3])


def make_shard(folder: Path, count: int) -> list[tuple]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(9)
    images = []
    for index in range(count):
        path = folder / f"img_{index}.png"
        write_image(path, rng.integers(0, 256, (12 + index, 15), dtype=np.uint8))
        images.append((index, path.name, str(path)))
    return images


def run_shard(tmp_path, images, processes, name="out", dataset="demo"):
    table = tmp_path / name / "shard-0000.tsv"
    folders = [tmp_path / name / f"sigma-{s:g}" for s in SETTINGS["sigmas"]]
    count = variance.write_shard(table, folders, dataset, images, SETTINGS, processes)
    return table, folders, count


def test_shard_rows_and_saved_images_are_the_filtered_images(tmp_path):
    images = make_shard(tmp_path / "in", 5)
    table, folders, count = run_shard(tmp_path, images, 2)
    rows = stats_tables.read_table(table)
    assert count == len(rows) == 10
    assert [(row["index"], row["sigma"]) for row in rows] == [(i, s) for i in range(5) for s in SETTINGS["sigmas"]]
    for index, file, path in images:
        values = filters.to_float(read_image(path))
        for folder, sigma in zip(folders, SETTINGS["sigmas"], strict=True):
            expected = filters.gaussian(values, sigma, 4.0, "reflect")
            saved = read_image(folder / f"demo_{index:06d}.bmp")
            np.testing.assert_array_equal(saved, filters.to_uint8(expected))
            row = next(r for r in rows if r["index"] == index and r["sigma"] == sigma)
            assert row["file"] == file
            assert row["var_out"] == pytest.approx(float(np.var(expected, dtype=np.float64)), rel=1e-5)
            assert row["var_in"] == pytest.approx(float(np.var(values, dtype=np.float64)), rel=1e-5)


def test_shard_outputs_do_not_depend_on_the_number_of_processes(tmp_path):
    images = make_shard(tmp_path / "in", 6)
    one = run_shard(tmp_path, images, 1, "one")
    two = run_shard(tmp_path, images, 2, "two")
    assert one[0].read_bytes() == two[0].read_bytes()
    for a, b in zip(one[1], two[1], strict=True):
        assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
        assert all((a / p.name).read_bytes() == (b / p.name).read_bytes() for p in a.iterdir())


GENERATED_CASES = [
    (fmt, dtype, shape)
    for fmt, dtypes in ((name, spec.dtypes) for name, spec in FORMATS.items())
    for dtype in dtypes
    for shape in ([13, 17], [11, 9, 3], [10, 12, 4])
    if not (fmt == "bmp" and len(shape) == 3 and shape[2] == 4)
]


@pytest.mark.parametrize(("fmt", "dtype", "shape"), GENERATED_CASES)
@pytest.mark.parametrize("generator", ["uniform", "gaussian_ramp"])
def test_generated_images_in_memory_give_the_rows_and_images_of_the_stored_files(
    tmp_path, generator, fmt, dtype, shape
):
    spec = {"name": "gen", "generator": generator, "seed": 7, "shape": shape, "dtype": dtype, "format": fmt}
    shard = tmp_path / "dataset" / "shard-0000"
    write_generated_dataset_shard(shard, dict(spec, compression=6), 3, 8, 1)
    stored = [(row["index"], row["file"], row["path"]) for row in read_manifest(shard)]
    from_files = run_shard(tmp_path, stored, 1, "files", dataset="gen")
    table = tmp_path / "memory" / "shard-0000.tsv"
    folders = [tmp_path / "memory" / f"sigma-{s:g}" for s in SETTINGS["sigmas"]]
    assert variance.write_generated_shard(table, folders, spec, 3, 8, SETTINGS, 2) == 10
    assert table.read_bytes() == from_files[0].read_bytes()
    assert [row["index"] for row in stats_tables.read_table(table)] == [3, 3, 4, 4, 5, 5, 6, 6, 7, 7]
    for memory, files in zip(folders, from_files[1], strict=True):
        names = sorted(path.name for path in files.iterdir())
        assert names == sorted(path.name for path in memory.iterdir()) and len(names) == 5
        assert all((memory / name).read_bytes() == (files / name).read_bytes() for name in names)


def test_generated_image_that_cannot_be_filtered_fails_naming_it(tmp_path):
    spec = {"name": "gen", "generator": "uniform", "seed": 1, "shape": [4, 4], "dtype": "int8", "format": "tiff"}
    with pytest.raises(WorkerError, match=r"image 0"):
        variance.write_generated_shard(tmp_path / "t.tsv", [tmp_path / "a", tmp_path / "b"], spec, 0, 2, SETTINGS, 1)
    assert not list(tmp_path.iterdir())


def test_unreadable_image_fails_naming_it_and_writes_nothing(tmp_path):
    images = make_shard(tmp_path / "in", 4)
    Path(images[2][2]).write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(WorkerError, match=r"img_2\.png"):
        run_shard(tmp_path, images, 2)
    assert not (tmp_path / "out").exists() or not any(
        entry for entry in (tmp_path / "out").iterdir() if PARTIAL_MARK in entry.name or entry.suffix == ".tsv"
    )
    assert not any((tmp_path / "out").glob("sigma-*"))


def test_nan_in_a_float_image_fails_naming_it(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    image = np.full((10, 10), 0.5, np.float32)
    image[4, 4] = np.nan
    write_image(folder / "bad.tif", image)
    with pytest.raises(WorkerError, match=r"bad\.tif: 1 pixels are NaN"):
        run_shard(tmp_path, [(0, "bad.tif", str(folder / "bad.tif"))], 1)


def test_summary_gathers_shards_in_index_order(tmp_path):
    images = make_shard(tmp_path / "in", 4)
    first, _, _ = run_shard(tmp_path, images[:2], 1, "a")
    second, _, _ = run_shard(tmp_path, images[2:], 1, "b")
    rows, theory = stats_tables.write_summary(
        [second, first], tmp_path / "summary.tsv", tmp_path / "theory.tsv", [1.0, 2.5], 4.0
    )
    summary = stats_tables.read_table(tmp_path / "summary.tsv")
    assert [row["index"] for row in summary] == [0, 0, 1, 1, 2, 2, 3, 3]
    lines = (tmp_path / "summary.tsv").read_text().splitlines()
    assert lines == first.read_text().splitlines() + second.read_text().splitlines()[1:]
    assert [row["sigma"] for row in stats_tables.read_table(tmp_path / "theory.tsv")] == [1.0, 2.5]


def test_benchmark_table_lists_every_record(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for name, seconds in (("datasets/a/shard-0000", "1.5"), ("stats/a/summary", "0.25")):
        path = tmp_path / "benchmarks" / f"{name}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + f"{seconds}\t0:00:01\t50.1\t1\t1\t1\t0.1\t0.2\t9\t1.2\n")
    records = read_benchmarks(tmp_path / "benchmarks")
    assert [(r["job"], r["s"]) for r in records] == [("datasets/a/shard-0000", "1.5"), ("stats/a/summary", "0.25")]
    assert write_benchmark_table(tmp_path / "table.html", tmp_path / "benchmarks") == 2
    text = (tmp_path / "table.html").read_text()
    assert "<td>datasets/a/shard-0000</td><td>1.5</td>" in text and "<td>0.25</td>" in text


@pytest.mark.parametrize("processes", [1, 2])
def test_progress_counts_every_image_of_a_shard_once(tmp_path, processes):
    images = make_shard(tmp_path / "in", 5)
    counts = []
    folders = [tmp_path / "files" / f"sigma-{s:g}" for s in SETTINGS["sigmas"]]
    rows = variance.write_shard(
        tmp_path / "files.tsv", folders, "demo", images, SETTINGS, processes, progress=counts.append
    )
    assert rows == 10 and sum(counts) == len(images) and all(count > 0 for count in counts)
    spec = {"name": "gen", "generator": "uniform", "seed": 7, "shape": [9, 8], "dtype": "uint8", "format": "png"}
    counts = []
    folders = [tmp_path / "memory" / f"sigma-{s:g}" for s in SETTINGS["sigmas"]]
    variance.write_generated_shard(
        tmp_path / "memory.tsv", folders, spec, 3, 9, SETTINGS, processes, progress=counts.append
    )
    assert sum(counts) == 6 and all(count > 0 for count in counts)
