"""The stats stage's tables: shard rows, the summary in index order, and the theory check.

Numpy only (no OpenCV), so the summary and plot jobs start quickly.
"""

import math

import numpy as np

from pixelflow.io.tables import read_rows, write_table
from pixelflow.pipelines.kernel import gaussian_kernel, kernel_radius

COLUMNS = (
    "index",
    "file",
    "sigma",
    "mean_in",
    "var_in",
    "min_in",
    "max_in",
    "mean_out",
    "var_out",
    "min_out",
    "max_out",
    "var_out_interior",
    "clipped_in",
)
THEORY_COLUMNS = (
    "sigma",
    "radius",
    "images",
    "measured_ratio",
    "predicted_continuous",
    "predicted_discrete",
    "error_vs_continuous",
    "error_vs_discrete",
)
# Images with more of their pixels at 0 or 1 than this are left out of the theory check.
MAX_CLIPPED = 0.01


def read_table(path) -> list[dict]:
    """Rows of a stats TSV as dicts (numbers parsed).

    Returns
    -------
    list of dict
        Keyed by the header: ``index``, ``radius`` and ``images`` as int,
        ``file`` as text, every other column as float.
    """
    header, rows = read_rows(path)
    return [{key: _parse(key, value) for key, value in zip(header, fields, strict=True)} for fields in rows]


def _parse(key: str, text: str):
    if key in ("index", "radius", "images"):
        return int(text)
    if key == "file":
        return text
    return float(text)


def write_summary(tables, summary, theory, sigmas, truncate: float) -> tuple[list[dict], list[tuple]]:
    """Gather shard tables into ``summary`` (index order) and write the theory check to ``theory``.

    Parameters
    ----------
    tables : iterable of str or path-like
        The shards' TSV tables.
    summary, theory : str or path-like
        The output tables, :data:`COLUMNS` and :data:`THEORY_COLUMNS`.
    sigmas : sequence of float
        The sigmas to check, in order.
    truncate : float
        Kernel radius in standard deviations.

    Returns
    -------
    rows : list of dict
        Every row, sorted by index (the σ order kept within an image).
    checks : list of tuple
        The theory rows (:func:`theory_rows`).
    """
    rows = [row for table in tables for row in read_table(table)]
    rows.sort(key=lambda row: row["index"])  # stable: the σ order is kept within an image
    write_table(summary, COLUMNS, [tuple(row[key] for key in COLUMNS) for row in rows])
    checks = theory_rows(rows, sigmas, truncate)
    write_table(theory, THEORY_COLUMNS, checks)
    return rows, checks


def theory_rows(rows: list[dict], sigmas, truncate: float) -> list[tuple]:
    """Measured vs predicted variance ratio per σ, from the images that are not clipped.

    The measured ratio is the mean of ``var_out_interior / var_in`` over the
    images with at most :data:`MAX_CLIPPED` of their pixels clipped, ``var_in``
    above 0 and an interior (NaN if there is none). It is compared with the
    continuous prediction 1 / (4πσ²) and the discrete one (Σ w²)², w the kernel.

    Parameters
    ----------
    rows : list of dict
        Stats rows (:func:`read_table`).
    sigmas : sequence of float
        One check per σ, in order.
    truncate : float
        Kernel radius in standard deviations.

    Returns
    -------
    list of tuple
        In :data:`THEORY_COLUMNS` order; the errors are measured / predicted - 1.
    """
    table = []
    for sigma in sigmas:
        kernel = gaussian_kernel(sigma, truncate)
        discrete = float(np.sum(kernel**2) ** 2)
        continuous = 1 / (4 * math.pi * sigma**2)
        ratios = [
            row["var_out_interior"] / row["var_in"]
            for row in rows
            if row["sigma"] == sigma
            and row["clipped_in"] <= MAX_CLIPPED
            and row["var_in"] > 0
            and not math.isnan(row["var_out_interior"])
        ]
        measured = float(np.mean(ratios)) if ratios else math.nan
        table.append(
            (
                sigma,
                kernel_radius(sigma, truncate),
                len(ratios),
                measured,
                continuous,
                discrete,
                measured / continuous - 1,
                measured / discrete - 1,
            )
        )
    return table
