"""A pipeline's results gathered: its metrics table, their summary, plots and a contact sheet.

matplotlib is imported by the function that draws the plot only.
"""

import math
from pathlib import Path

import numpy as np

from pixelflow.atomic import atomic_file
from pixelflow.datasets.montage import write_montage
from pixelflow.io.tables import read_rows, write_table
from pixelflow.pipelines.metrics import RESERVED_COLUMNS

# Columns of summary.tsv: one row per metric (and for nonfinite).
SUMMARY_COLUMNS = ("metric", "count", "nan", "mean", "std", "min", "q05", "q25", "median", "q75", "q95", "max")
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def gather_metrics(tables, output) -> tuple[list[str], list[list[str]]]:
    """Join shard metrics tables into one, in index order, and write it to ``output``.

    Parameters
    ----------
    tables : iterable of str or path-like
        The shards' ``metrics.tsv`` files, in any order; they must share a header.
    output : str or path-like
        The joined table, written atomically.

    Returns
    -------
    header : list of str
    rows : list of list of str
        The rows as text, in index order.

    Raises
    ------
    ValueError
        Naming the table whose header differs from the first's, or an index
        that is missing or repeated.
    """
    header, rows = None, []
    for table in tables:
        columns, shard_rows = read_rows(table)
        if header is None:
            header = columns
        elif columns != header:
            raise ValueError(f"{table}: columns {columns} differ from {header}")
        rows += shard_rows
    if header is None:
        raise ValueError("no metrics tables to gather")
    rows.sort(key=lambda row: int(row[0]))
    for expected, row in enumerate(rows):
        if int(row[0]) != expected:
            raise ValueError(f"{output}: image index {row[0]} found where {expected} was expected")
    write_table(output, header, rows)
    return header, rows


def metric_values(header: list[str], rows: list[list[str]]) -> dict[str, np.ndarray]:
    """Each numeric column of a metrics table (``nonfinite`` and the metrics) as float64, by name."""
    numeric = [column for column in header if column not in RESERVED_COLUMNS or column == "nonfinite"]
    return {column: np.array([float(row[header.index(column)]) for row in rows]) for column in numeric}


def summary_rows(values: dict[str, np.ndarray]) -> list[tuple]:
    """One :data:`SUMMARY_COLUMNS` row per metric.

    ``count`` is the number of finite values and ``nan`` that of the others;
    the statistics are over the finite values (NaN when there are none):
    ``numpy.mean``, ``numpy.std`` (population), ``min``, ``max`` and
    ``numpy.quantile`` (linear interpolation) at :data:`QUANTILES`.
    """
    rows = []
    for name, column in values.items():
        finite = column[np.isfinite(column)]
        if finite.size:
            statistics = [float(finite.mean()), float(finite.std()), float(finite.min())]
            statistics += [float(q) for q in np.quantile(finite, QUANTILES)]
            statistics.append(float(finite.max()))
        else:
            statistics = [math.nan] * 9
        rows.append((name, int(finite.size), int(column.size - finite.size), *statistics))
    return rows


def write_summary(path, values: dict[str, np.ndarray]) -> list[tuple]:
    """Write :func:`summary_rows` to ``path`` as TSV, atomically; return the rows."""
    rows = summary_rows(values)
    write_table(path, SUMMARY_COLUMNS, rows)
    return rows


def plot_metrics(path, values: dict[str, np.ndarray], title: str) -> None:
    """Each metric against image index (left) and its histogram (right), a row per metric; PNG, atomically.

    ``nonfinite`` is drawn only when some image has such pixels. Non-finite
    values are left out of the histograms.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shown = {name: column for name, column in values.items() if name != "nonfinite" or column.any()}
    if not shown:
        shown = {"images": np.zeros(len(next(iter(values.values()))))}
    figure = Figure(figsize=(10, 0.4 + 2.2 * len(shown)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(shown), 2, squeeze=False)
    for (by_index, histogram), (name, column) in zip(axes, shown.items(), strict=True):
        by_index.plot(np.arange(column.size), column, marker=".", markersize=3, linestyle="none")
        by_index.set_xlabel("image index")
        by_index.set_ylabel(name)
        finite = column[np.isfinite(column)]
        histogram.hist(finite, bins=min(50, max(1, finite.size)))
        histogram.set_xlabel(name)
        histogram.set_ylabel("images")
    figure.suptitle(title)
    with atomic_file(Path(path)) as temporary:
        figure.savefig(temporary, format="png", dpi=80)


def write_pairs_sheet(output, inputs: list, outputs: list, cell: int, processes: int) -> tuple:
    """A contact sheet of image pairs, each input beside its output, four pairs to a row.

    Parameters
    ----------
    output : str or path-like
        The PNG written.
    inputs, outputs : list of str
        Image paths, pair by pair.
    cell : int
        Thumbnail size in pixels.
    processes : int
        Worker processes.

    Returns
    -------
    tuple of int
        The sheet's shape.
    """
    paths = [path for pair in zip(inputs, outputs, strict=True) for path in pair]
    return write_montage(output, paths, cell, processes, columns=2 * min(4, len(inputs)))
