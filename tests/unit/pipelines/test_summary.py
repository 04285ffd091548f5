"""A pipeline's gathered table and summary agree with numpy; the plot and contact sheet are written."""

import math

import cv2
import numpy as np
import pytest
from pixelflow.io.tables import read_rows, write_table
from pixelflow.pipelines.summary import (
    SUMMARY_COLUMNS,
    gather_metrics,
    metric_values,
    plot_metrics,
    summary_rows,
    write_pairs_sheet,
)

HEADER = ["index", "file", "output", "nonfinite", "mean", "ratio"]


def _shard(path, rows):
    write_table(path, HEADER, rows)
    return path


def test_shard_tables_are_gathered_in_index_order(tmp_path):
    first = _shard(tmp_path / "a.tsv", [(2, "c.png", "o2.png", 0, 0.5, 1.0), (3, "d.png", "o3.png", 0, 0.25, 2.0)])
    second = _shard(
        tmp_path / "b.tsv", [(0, "a.png", "o0.png", 1, 0.125, math.nan), (1, "b.png", "o1.png", 0, 1.0, 4.0)]
    )
    header, rows = gather_metrics([first, second], tmp_path / "metrics.tsv")
    assert header == HEADER
    assert [row[0] for row in rows] == ["0", "1", "2", "3"]
    assert read_rows(tmp_path / "metrics.tsv") == (header, rows)
    values = metric_values(header, rows)
    assert list(values) == ["nonfinite", "mean", "ratio"]
    np.testing.assert_array_equal(values["mean"], [0.125, 1.0, 0.5, 0.25])


def test_gathering_refuses_gaps_and_other_headers(tmp_path):
    first = _shard(tmp_path / "a.tsv", [(0, "a.png", "o.png", 0, 0.5, 1.0)])
    gap = _shard(tmp_path / "b.tsv", [(2, "c.png", "o.png", 0, 0.5, 1.0)])
    with pytest.raises(ValueError, match="image index 2 found where 1 was expected"):
        gather_metrics([first, gap], tmp_path / "metrics.tsv")
    write_table(tmp_path / "c.tsv", HEADER[:-1], [(1, "b.png", "o.png", 0, 0.5)])
    with pytest.raises(ValueError, match=r"c\.tsv: columns .* differ"):
        gather_metrics([first, tmp_path / "c.tsv"], tmp_path / "metrics.tsv")
    assert not (tmp_path / "metrics.tsv").exists()


def test_summary_statistics_are_numpys_over_the_finite_values():
    rng = np.random.default_rng(3)
    column = rng.normal(size=101)
    column[[4, 50]] = [math.nan, math.inf]
    (row,) = summary_rows({"x": column})
    assert len(row) == len(SUMMARY_COLUMNS)
    finite = column[np.isfinite(column)]
    expected = [
        finite.mean(),
        finite.std(),
        finite.min(),
        *np.quantile(finite, [0.05, 0.25, 0.5, 0.75, 0.95]),
        finite.max(),
    ]
    assert row[:3] == ("x", 99, 2)
    np.testing.assert_allclose(row[3:], expected, rtol=0, atol=0)
    (empty,) = summary_rows({"y": np.array([math.nan])})
    assert empty[:3] == ("y", 0, 1) and all(math.isnan(value) for value in empty[3:])


def test_the_plot_and_the_pairs_sheet_are_pngs(tmp_path):
    values = {"nonfinite": np.zeros(5), "mean": np.linspace(0, 1, 5), "entropy": np.array([1, 2, math.nan, 3, 4.0])}
    plot_metrics(tmp_path / "metrics.png", values, "test")
    plot = cv2.imread(str(tmp_path / "metrics.png"))
    assert plot.shape[0] > plot.shape[1] / 3  # two rows: nonfinite is all 0, so not drawn
    paths = []
    for index in range(3):
        path = tmp_path / f"{index}.png"
        cv2.imwrite(str(path), np.full((20, 10), 80 * index, np.uint8))
        paths.append(str(path))
    shape = write_pairs_sheet(tmp_path / "contact.png", paths, paths[::-1], cell=16, processes=1)
    sheet = cv2.imread(str(tmp_path / "contact.png"))
    assert shape == sheet.shape == (2 + 18, 2 + 6 * 18, 3)  # three pairs on one row
