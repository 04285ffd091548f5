"""A pipeline shard: each image run through the library functions, measured, saved by the stated dtype rules."""

import hashlib
import sys

import cv2
import numpy as np
import pytest
import scipy.ndimage as ndi
import skimage.filters
import skimage.measure
import skimage.util
from pixelflow.errors import ConfigError, WorkerError
from pixelflow.io.images import read_image
from pixelflow.io.manifest import MANIFEST_NAME, read_manifest
from pixelflow.io.tables import read_rows
from pixelflow.pipelines.metrics import check_metrics
from pixelflow.pipelines.operations import check_step
from pixelflow.pipelines.run import METRICS_NAME, metrics_columns, process_image, saved_array, write_pipeline_shard

USER_MODULE = """
import numpy as np


def power(image, exponent=1.0):
    return image ** exponent


def brightest(output, input):
    return float(output.max())


def explode(image):
    raise RuntimeError("the user's own failure")


def holes(image):
    image = image.copy()
    image[0, :3] = np.nan
    return image


def wrong_shape(image):
    return image[None]


def text_metric(output, input):
    return "high"


def scrub(image):
    image[:] = 0
    return image
"""


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A working directory with the user's module pf_cellops.py; the module is forgotten afterwards."""
    (tmp_path / "pf_cellops.py").write_text(USER_MODULE)
    path = list(sys.path)
    yield tmp_path
    sys.modules.pop("pf_cellops", None)
    sys.path[:] = path


def _source_shard(folder, count=5, shape=(24, 32)):
    """A shard of uint8 PNGs with its manifest, as a dataset shard job writes it."""
    from pixelflow.io.manifest import manifest_row, write_manifest

    folder.mkdir(parents=True)
    rng = np.random.default_rng(4)
    rows = []
    for index in range(count):
        image = (ndi.gaussian_filter(rng.random(shape), 2) * 255).astype(np.uint8)
        name = f"img_{index}.png"
        cv2.imwrite(str(folder / name), image)
        rows.append(manifest_row(index + 10, name, image, hashlib.sha256((folder / name).read_bytes()).hexdigest()))
    write_manifest(folder / MANIFEST_NAME, rows)
    return read_manifest(folder)


def _spec(steps, metrics, save="png", name="cells"):
    return {
        "name": name,
        "steps": [check_step(step, f"pipelines.{name}.steps.{i}") for i, step in enumerate(steps)],
        "metrics": check_metrics(metrics, f"pipelines.{name}.metrics"),
        "save": save,
    }


def test_saved_pixels_follow_the_stated_rules():
    values = np.array([[-0.5, 0.0, 0.2, 0.50196, 1.0, 7.0, np.nan, np.inf]], np.float32)
    png = saved_array(values, "png")
    expected = skimage.util.img_as_ubyte(np.clip(np.nan_to_num(values, nan=0, posinf=0), 0, 1))
    np.testing.assert_array_equal(png, expected)
    assert png.dtype == np.uint8 and png[0, -1] == 0 and png[0, -2] == 0
    tiff = saved_array(values, "tiff")
    assert tiff.dtype == np.float32 and np.array_equal(tiff, values, equal_nan=True)
    mask = saved_array(np.array([[True, False]]), "tiff")
    np.testing.assert_array_equal(mask, [[255, 0]])
    assert mask.dtype == np.uint8


def test_an_image_runs_through_the_library_functions(workdir):
    from pixelflow.pipelines.run import user_functions

    spec = _spec(
        [{"op": "median", "size": 3}, {"op": "python", "function": "pf_cellops:power", "exponent": 2}, {"op": "sobel"}],
        ["mean", "var", {"function": "pf_cellops:brightest"}],
    )
    raw = (np.random.default_rng(5).random((20, 30)) * 255).astype(np.uint8)
    output, nonfinite, values = process_image(raw, spec, user_functions(spec, workdir))
    expected = skimage.filters.sobel(ndi.median_filter(skimage.util.img_as_float32(raw), 3, mode="nearest") ** 2)
    np.testing.assert_allclose(output, expected, rtol=1e-6, atol=1e-7)
    assert nonfinite == 0
    np.testing.assert_allclose(values, [expected.mean(), expected.var(), expected.max()], rtol=1e-5)


def test_a_user_step_that_writes_into_its_image_leaves_the_input_intact(workdir):
    from pixelflow.pipelines.run import user_functions

    spec = _spec([{"op": "python", "function": "pf_cellops:scrub"}], ["mse", "mean"])
    image = np.random.default_rng(6).random((12, 10)).astype(np.float32)
    original = image.copy()
    output, _, (mse, mean) = process_image(image, spec, user_functions(spec, workdir))
    np.testing.assert_array_equal(image, original)
    assert mean == 0.0 and mse == pytest.approx(float(np.mean(original.astype(np.float64) ** 2)), rel=1e-6)


def test_a_shard_writes_images_manifest_and_metrics(tmp_path, workdir):
    sources = _source_shard(tmp_path / "in")
    spec = _spec([{"op": "gaussian", "sigma": 1}, {"op": "threshold"}], ["foreground_fraction", "object_count"])
    folder = tmp_path / "results/datasets/cells/shard-0000"
    rows = write_pipeline_shard(folder, sources, spec, processes=2, workdir=workdir)
    header, table = read_rows(folder / METRICS_NAME)
    assert (
        header
        == metrics_columns(spec)
        == ["index", "file", "output", "nonfinite", "foreground_fraction", "object_count"]
    )
    assert [int(row[0]) for row in table] == list(range(10, 15)) == [row[0] for row in rows]
    manifest = read_manifest(folder)
    assert [row["file"] for row in manifest] == [f"cells_{index:06d}.png" for index in range(10, 15)]
    for source, result, row in zip(sources, manifest, table, strict=True):
        image = skimage.util.img_as_float32(read_image(source["path"]))
        mask = skimage.filters.gaussian(image, sigma=1, mode="nearest", preserve_range=True)
        mask = mask > skimage.filters.threshold_otsu(mask)
        saved = read_image(result["path"])
        assert np.count_nonzero(saved != mask * 255) <= 2  # float32 Gaussian vs float64: ties at the threshold
        assert row[1] == str(tmp_path / "in" / source["file"]) and row[2].endswith(result["file"])
        assert float(row[4]) == pytest.approx(np.count_nonzero(saved) / saved.size, abs=2 / saved.size)
        assert float(row[5]) == skimage.measure.label(saved > 0, connectivity=2, return_num=True)[1]


def test_without_saving_a_shard_holds_its_metrics_only(tmp_path, workdir):
    sources = _source_shard(tmp_path / "in", count=3)
    folder = tmp_path / "shard"
    write_pipeline_shard(folder, sources, _spec([], ["mean"], save="none"), processes=1, workdir=workdir)
    assert sorted(path.name for path in folder.iterdir()) == [METRICS_NAME]
    header, table = read_rows(folder / METRICS_NAME)
    assert header == ["index", "file", "nonfinite", "mean"]
    expected = [skimage.util.img_as_float32(read_image(row["path"])).mean() for row in sources]
    np.testing.assert_allclose([float(row[3]) for row in table], expected, rtol=1e-6)


def test_non_finite_pixels_are_counted_and_written_as_0(tmp_path, workdir):
    sources = _source_shard(tmp_path / "in", count=2)
    folder = tmp_path / "shard"
    spec = _spec([{"op": "python", "function": "pf_cellops:holes"}], ["mean"])
    write_pipeline_shard(folder, sources, spec, processes=1, workdir=workdir)
    _, table = read_rows(folder / METRICS_NAME)
    assert [row[3] for row in table] == ["3", "3"]
    assert all(row[4] == "nan" for row in table)
    saved = read_image(read_manifest(folder)[0]["path"])
    np.testing.assert_array_equal(saved[0, :3], 0)


@pytest.mark.parametrize(
    ("step", "metric", "words"),
    [
        (
            {"op": "python", "function": "pf_cellops:explode"},
            "mean",
            ["/in/img_", "RuntimeError: the user's own failure", "pf_cellops.py"],
        ),
        (
            {"op": "python", "function": "pf_cellops:wrong_shape"},
            "mean",
            ["/in/img_", "pf_cellops:wrong_shape returned an array of shape (1, 24, 32)"],
        ),
        (
            {"op": "median"},
            {"function": "pf_cellops:text_metric"},
            ["/in/img_", "metric pf_cellops:text_metric returned 'high' (str), not a number"],
        ),
        (
            {"op": "binary_opening"},
            "mean",
            ["/in/img_", "binary_opening needs a binary image", "add {op: threshold} before it"],
        ),
    ],
)
def test_a_failing_image_is_named_and_nothing_is_written(tmp_path, workdir, step, metric, words):
    sources = _source_shard(tmp_path / "in", count=3)
    folder = tmp_path / "shard"
    with pytest.raises(WorkerError) as error:
        write_pipeline_shard(folder, sources, _spec([step], [metric]), processes=2, workdir=workdir)
    message = str(error.value)
    for word in words:
        assert word in message
    assert not folder.exists()


def test_a_missing_user_function_names_its_config_key(tmp_path, workdir):
    sources = _source_shard(tmp_path / "in", count=1)
    spec = _spec([{"op": "python", "function": "pf_cellops:absent"}], [])
    with pytest.raises(
        ConfigError, match=r"^config key pipelines\.cells\.steps\.0\.function: .*has no function 'absent'"
    ):
        write_pipeline_shard(tmp_path / "shard", sources, spec, processes=1, workdir=workdir)
    assert not (tmp_path / "shard").exists()


@pytest.mark.parametrize("processes", [1, 2])
def test_progress_counts_every_image_of_a_shard_once(tmp_path, workdir, processes):
    sources = _source_shard(tmp_path / "in", count=7)
    spec = _spec([{"op": "gaussian", "sigma": 1}], ["mean"])
    folder = tmp_path / "shard"
    plain = write_pipeline_shard(folder, sources, spec, processes, workdir)
    table = (folder / METRICS_NAME).read_bytes()
    counts = []
    rows = write_pipeline_shard(folder, sources, spec, processes, workdir, progress=counts.append)
    assert sum(counts) == len(sources) and all(count > 0 for count in counts)
    assert rows == plain and (folder / METRICS_NAME).read_bytes() == table  # unchanged by counting
